// SimpleRNN / LSTM / GRU: whole-sequence forward and backpropagation through time.
// See rnn.h for the shapes, the Keras semantics and the overall design.
#include "rnn.h"

#include "microkernel.h"

#include <omp.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

namespace fastdl {

// ------------------------------------------------------------------ sizes
RnnSizes rnn_sizes(const RnnParams& p) {
    const index_t u = p.units;
    RnnSizes s{};
    switch (p.cell) {
        case RnnCell::simple_rnn:  // cache: [h_t, h_prev]
            s.gates = 1;
            s.cache_width = 2 * u;
            s.hprev_offset = u;
            break;
        case RnnCell::lstm:  // cache: [i, f, g, o, c_prev, h_prev]
            s.gates = 4;
            s.cache_width = 6 * u;
            s.hprev_offset = 5 * u;
            break;
        case RnnCell::gru:  // cache: [z, r, h~, h_prev R_h + b_rh (reset_after) | r*h_prev, h_prev]
            s.gates = 3;
            s.cache_width = 5 * u;
            s.hprev_offset = 4 * u;
            break;
    }
    s.gate_width = s.gates * u;
    s.bias_rows = p.use_bias ? ((p.cell == RnnCell::gru && p.reset_after) ? 2 : 1) : 0;
    return s;
}

namespace {

// Brings [p, p + bytes) towards L2 ahead of use: the rows of the next timestep are scattered
// (one row per batch element), which the hardware prefetchers do not follow.
inline void prefetch(const void* p, index_t bytes) {
#if defined(__GNUC__)
    const char* c = static_cast<const char*>(p);
    for (index_t o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 0, 2);
#else
    (void)p;
    (void)bytes;
#endif
}

// ------------------------------------------------------------------ small GEMM
// Every product runs per timestep on the rows one thread owns (e.g. 32x64 @ 64x256): such
// products are latency-bound, and Eigen's GEMM repacks both operands on every call (measured
// ~1.5x slower here), and is 2-3x slower still on the skinny all-timestep products (K = 32 or
// M = 32 with K = N*T). So fastdl's micro-kernel (microkernel.h) does them all, unblocked: B is
// read in column tiles of NV vectors (the constant kernels packed once; the d(gates) rows used
// in place) and A by rows or by columns in place (x_t^T and h_prev^T). Every output element is
// accumulated over k in the same order whatever the tile, so a row's result does not depend on
// the thread split.
using mk::kLanes;
using mk::kMaxNV;

template <typename T>
constexpr index_t kNR = static_cast<index_t>(kMaxNV) * kLanes<T>;  // the widest tile

// ------------------------------------------------------------------ activations
// The gate loops run over the units in SIMD vectors (GCC vector extensions) with a scalar tail;
// every activation is written once for a scalar or a vector X.
// float: Eigen 3.4's rational tanh (generic_fast_tanh_float: a few ulp, exact sign and
// saturation), sigmoid(x) = 0.5 + 0.5 tanh(x/2) (absolute error ~1e-7).
// double: the C library's tanh and exp, scalar (gradient checks need the accuracy, not speed).
template <typename X>
inline X splat(float v) {
    return X{} + v;
}

template <typename X>
inline X fast_tanh(X a) {
    const X hi = splat<X>(7.99881172180175781f), lo = splat<X>(-7.99881172180175781f);
    const X x = a < lo ? lo : (a > hi ? hi : a);
    const X x2 = x * x;
    X p = x2 * splat<X>(-2.76076847742355e-16f) + splat<X>(2.00018790482477e-13f);
    p = x2 * p + splat<X>(-8.60467152213735e-11f);
    p = x2 * p + splat<X>(5.12229709037114e-08f);
    p = x2 * p + splat<X>(1.48572235717979e-05f);
    p = x2 * p + splat<X>(6.37261928875436e-04f);
    p = x2 * p + splat<X>(4.89352455891786e-03f);
    p = x * p;
    X q = x2 * splat<X>(1.19825839466702e-06f) + splat<X>(1.18534705686654e-04f);
    q = x2 * q + splat<X>(2.26843463243900e-03f);
    q = x2 * q + splat<X>(4.89352518554385e-03f);
    const X ax = a < X{} ? -a : a;
    return ax < splat<X>(0.0004f) ? a : p / q;
}

template <typename X>
inline X act_tanh(X a) {
    if constexpr (std::is_same_v<X, double>)
        return std::tanh(a);
    else
        return fast_tanh(a);
}

template <typename X>
inline X act_sigmoid(X a) {
    if constexpr (std::is_same_v<X, double>)
        return 1.0 / (1.0 + std::exp(-a));
    else
        return splat<X>(0.5f) + splat<X>(0.5f) * fast_tanh(splat<X>(0.5f) * a);
}

template <RnnActivation A, typename X>
inline X simple_act(X v) {
    if constexpr (A == RnnActivation::tanh) return act_tanh(v);
    if constexpr (A == RnnActivation::relu) return v > X{} ? v : X{};
    if constexpr (A == RnnActivation::sigmoid) return act_sigmoid(v);
    if constexpr (A == RnnActivation::linear) return v;
}

// derivative of the activation expressed through its output y
template <RnnActivation A, typename X>
inline X simple_act_grad(X y) {
    const X one = X{} + 1;
    if constexpr (A == RnnActivation::tanh) return one - y * y;
    if constexpr (A == RnnActivation::relu) return y > X{} ? one : X{};
    if constexpr (A == RnnActivation::sigmoid) return y * (one - y);
    if constexpr (A == RnnActivation::linear) return one;
}

template <typename F>
inline void with_activation(RnnActivation a, F&& f) {
    switch (a) {
        case RnnActivation::tanh: f(std::integral_constant<RnnActivation, RnnActivation::tanh>{}); break;
        case RnnActivation::relu: f(std::integral_constant<RnnActivation, RnnActivation::relu>{}); break;
        case RnnActivation::sigmoid:
            f(std::integral_constant<RnnActivation, RnnActivation::sigmoid>{});
            break;
        default: f(std::integral_constant<RnnActivation, RnnActivation::linear>{}); break;
    }
}

template <typename X, typename T>
inline X ld(const T* p) {
    X v;
    std::memcpy(&v, p, sizeof(X));
    return v;
}
template <typename X, typename T>
inline void st(T* p, const X& v) {
    std::memcpy(p, &v, sizeof(X));
}

// body(X{}, j) for j in [0, n): float in whole SIMD vectors, then scalars.
template <typename T, typename F>
inline void for_lanes(index_t n, F&& body) {
    index_t j = 0;
    if constexpr (std::is_same_v<T, float>) {
        constexpr index_t L = kLanes<float>;
        for (; j + L <= n; j += L) body(mk::Vec<float>{}, j);
    }
    for (; j < n; ++j) body(T{}, j);
}

// d[0:n] = s[0:n] in whole SIMD vectors: the per-row copies of states and inputs are 32-256
// elements, for which a call of libc's memcpy costs more than the copy.
template <typename T>
inline void copy_row(T* __restrict d, const T* __restrict s, index_t n) {
    for_lanes<T>(n, [&](auto tag, index_t j) {
        using X = decltype(tag);
        st(d + j, ld<X>(s + j));
    });
}

// Subnormal floats make the FMA units take microcode assists (~100x slower); they appear as
// gradients vanish through long sequences. The float kernels flush them to zero in their own
// threads, as TensorFlow does, and restore the caller's floating-point mode afterwards.
class FlushDenormals {
   public:
    explicit FlushDenormals(bool on) {
#if defined(__SSE__)
        if (on) {
            saved_ = _mm_getcsr();
            active_ = true;
            _mm_setcsr(saved_ | 0x8040u);  // FTZ | DAZ
        }
#else
        (void)on;
#endif
    }
    ~FlushDenormals() {
#if defined(__SSE__)
        if (active_) _mm_setcsr(saved_);
#endif
    }
    FlushDenormals(const FlushDenormals&) = delete;
    FlushDenormals& operator=(const FlushDenormals&) = delete;

   private:
    unsigned saved_ = 0;
    bool active_ = false;
};

template <typename T>
using AlignedVector = std::vector<T, Eigen::aligned_allocator<T>>;

template <typename T>
inline index_t padded(index_t cols) {
    return round_up(cols, kNR<T>);
}

// Vectors per tile for B with this many columns: narrow B (e.g. W^T with 32 input features)
// would waste most of a wide tile.
template <typename T>
inline int tile_vectors(index_t cols) {
    const index_t l = kLanes<T>;
    return cols <= l ? 1 : (cols <= 2 * l || kMaxNV < 4) ? std::min(2, kMaxNV) : kMaxNV;
}

// B (k, tiles*nr) with nr = nv vectors: tile t starts at p + t*tile_stride, B(kk, j) within a
// tile at kk*ldb + j.
template <typename T>
struct BView {
    const T* p = nullptr;
    index_t tile_stride = 0, ldb = 0, k = 0, tiles = 0;
    int nv = 1;
    index_t width() const { return tiles * nv * kLanes<T>; }  // columns C must hold
};

// A dense row-major block used in place: columns beyond `cols` (up to the tile edge) are read,
// so the storage must extend that far; they only reach padding columns of C.
template <typename T>
BView<T> dense_b(const T* p, index_t ld, index_t k, index_t cols) {
    const int nv = tile_vectors<T>(cols);
    const index_t nr = nv * kLanes<T>;
    return BView<T>{p, nr, ld, k, ceil_div(cols, nr), nv};
}

// A constant B packed once into contiguous (k, nr) tiles, zero-padded on the right: the rows
// [0, k) of op(B) stacked from one or two strided parts (LSTM, SimpleRNN: [W; R]).
template <typename T>
struct PackedB {
    BView<T> v;
    AlignedVector<T> data;

    void pack(index_t cols, const mk::View<T>& top, index_t k_top,
              const mk::View<T>& bottom = {}, index_t k_bottom = 0) {
        const int nv = tile_vectors<T>(cols);
        const index_t k = k_top + k_bottom, nr = nv * kLanes<T>, tiles = ceil_div(cols, nr);
        data.resize(static_cast<size_t>(tiles * k * nr));
        mk::with_vectors(nv, [&](auto n) {
            constexpr int NV = decltype(n)::value;
            for (index_t t = 0; t < tiles; ++t) {
                T* dst = data.data() + t * k * nr;
                const int c = static_cast<int>(std::min(nr, cols - t * nr));
                mk::pack_b<T, NV>(dst, top, 0, k_top, t * nr, c);
                if (k_bottom) mk::pack_b<T, NV>(dst + k_top * nr, bottom, 0, k_bottom, t * nr, c);
            }
        });
        v = BView<T>{data.data(), k * nr, nr, k, tiles, nv};
    }
    // columns [col0, col0 + cols) of a row-major (k, ld) matrix
    void pack_block(const T* src, index_t ld, index_t k, index_t cols, index_t col0) {
        pack(cols, mk::View<T>{src + col0, ld, 1}, k);
    }
    // the transpose of columns [col0, col0 + k) of a row-major (cols, ld) matrix
    void pack_block_transposed(const T* src, index_t ld, index_t k, index_t cols, index_t col0) {
        pack(cols, mk::View<T>{src + col0, 1, ld}, k);
    }
    const BView<T>& view() const { return v; }
};

// C (rows, b.width()) (+)= A (rows, b.k) @ B with A(r, kk) = a[r*ars + kk*aks], aks = 1 or
// ars = 1. ACC: the sum runs on from C's values (weight gradients summed over the steps).
template <typename T, bool ACC>
void small_gemm(T* c, index_t ldc, const T* a, index_t ars, index_t aks, index_t rows,
                const BView<T>& b) {
    mk::with_vectors(b.nv, [&](auto n) {
        constexpr int NV = decltype(n)::value;
        constexpr int nr = NV * kLanes<T>;
        for (index_t t = 0; t < b.tiles; ++t) {
            const mk::Out<T> o{c + t * nr, ldc, nr, ACC ? mk::Out<T>::kChain : mk::Out<T>::kSet};
            const T* bt = b.p + t * b.tile_stride;
            if (aks == 1)
                mk::row_tiles<T, mk::kRows<NV>, NV>(rows, b.k, mk::ARows<T>{a, ars}, bt, b.ldb, o);
            else
                mk::row_tiles<T, mk::kRows<NV>, NV>(rows, b.k, mk::ACols<T>{a, aks}, bt, b.ldb, o);
        }
    });
}

// ------------------------------------------------------------------ threads
// Batch rows are independent through the whole sequence: each thread owns a contiguous block
// of rows for all timesteps, so the time loop needs no barrier; the weight gradients are
// accumulated per thread and summed once at the end.
constexpr index_t kMinRowsPerThread = 4;

int rnn_threads(index_t n) {
    const index_t by_rows = std::max<index_t>(1, n / kMinRowsPerThread);
    return static_cast<int>(std::min<index_t>(num_threads(), by_rows));
}

inline void thread_rows(index_t n, int nt, int tid, index_t& begin, index_t& count) {
    const index_t base = n / nt, rem = n % nt;
    begin = tid * base + std::min<index_t>(tid, rem);
    count = base + (tid < rem ? 1 : 0);
}

// Carves per-thread scratch arrays out of one allocation (sizes rounded to whole tiles, so
// every array starts aligned and has slack for the tile-wide reads of dense_b).
template <typename T>
struct Carver {
    T* p;
    T* take(index_t n) {
        T* out = p;
        p += padded<T>(n) + kNR<T>;
        return out;
    }
};
template <typename T>
index_t carve_size(std::initializer_list<index_t> sizes) {
    index_t total = 0;
    for (index_t n : sizes) total += padded<T>(n) + kNR<T>;
    return total;
}

// ------------------------------------------------------------------ forward
// Per step: zx = x_t @ W and zh = h_prev @ R (GRU reset_before: zh over the z, r columns, then
// (r * h_prev) @ R_h), then one fused pass over the gates that caches what the backward needs.
template <typename T>
struct ForwardCtx {
    const RnnParams& p;
    RnnSizes s;
    T* cache;  // (T,N,cache_width) in processing order, or null
    T* y;
    T* h;  // (N,U) state, updated in place
    T* c;  // (N,U) LSTM cell state
    const T* x;
    const T* bx;  // input-side bias (GU), zeros when the layer has none
    const T* br;  // GRU reset_after: recurrent-side bias (GU), else zeros
    const bool* mask;
    BView<T> w;    // kernel (I, GU)
    BView<T> r;    // recurrent kernel (GRU reset_before: its z, r columns)
    BView<T> r_h;  // GRU reset_before: the h~ columns of the recurrent kernel
    BView<T> wr;   // LSTM, SimpleRNN: [kernel; recurrent kernel] (I+U, GU), one GEMM per step
    const T* rmask;    // recurrent dropout (N,G,U) or null
    BView<T> rg[4];    // with rmask: gate g's block R_g (U,U) of the recurrent kernel
    index_t rgates;    // with rmask: gates whose recurrent product is in zh (GRU reset_before: 2)
};

// Recurrent dropout, per step: zh[:, g] = (h * mask[:, g]) @ R_g for the first `gates` gates
// (hm, zg: per-thread scratch; zg's width is that of the packed R_g).
template <typename T>
void masked_recurrent(T* zh, index_t ldh, const T* h, index_t ldhs, const T* rmask,
                      const BView<T>* rg, index_t gates, index_t G, index_t U, index_t n0,
                      index_t rows, T* hm, T* zg) {
    for (index_t g = 0; g < gates; ++g) {
        for (index_t r = 0; r < rows; ++r) {
            const T* __restrict mr = rmask + ((n0 + r) * G + g) * U;
            const T* __restrict hr = h + r * ldhs;
            T* __restrict out = hm + r * U;
            for (index_t j = 0; j < U; ++j) out[j] = hr[j] * mr[j];
        }
        const index_t ldg = rg[g].width();
        small_gemm<T, false>(zg, ldg, hm, U, 1, rows, rg[g]);
        for (index_t r = 0; r < rows; ++r) copy_row(zh + r * ldh + g * U, zg + r * ldg, U);
    }
}

template <typename T>
index_t forward_scratch(const ForwardCtx<T>& f, index_t rows) {
    const index_t U = f.p.units, I = f.p.input;
    return carve_size<T>({rows * std::max(f.w.width(), f.wr.width()), rows * f.r.width(),
                          rows * U, rows * f.r_h.width(), rows * (I + U),
                          f.rmask ? rows * U : 0, f.rmask ? rows * f.rg[0].width() : 0});
}

// FUSED (LSTM, SimpleRNN): the rows [x_t | h_prev] live side by side in one buffer and the
// step's pre-activations are one GEMM with [W; R] (K = I+U); otherwise x_t @ W and h_prev @ R
// are separate GEMMs (GRU needs the two parts of the h~ gate apart).
template <typename T, bool TRAIN, bool FUSED>
void forward_rows(const ForwardCtx<T>& f, index_t n0, index_t rows, T* scratch) {
    const RnnParams& p = f.p;
    const index_t U = p.units, T_ = p.steps, I = p.input, GU = f.s.gate_width, N = p.batch;
    const index_t cw = f.s.cache_width, ldx = FUSED ? f.wr.width() : f.w.width();
    const index_t ldh = f.r.width(), ldh2 = f.r_h.width();
    Carver<T> cv{scratch};
    T* zx = cv.take(rows * ldx);
    T* zh = cv.take(rows * ldh);
    T* rh = cv.take(rows * U);
    T* z2 = cv.take(rows * ldh2);
    T* xh = cv.take(rows * (I + U));  // FUSED: [x_t | h]
    T* hm = f.rmask ? cv.take(rows * U) : nullptr;               // h * mask[:, g]
    T* zg = f.rmask ? cv.take(rows * f.rg[0].width()) : nullptr;  // (h * mask[:, g]) @ R_g
    const T* __restrict bx = f.bx;
    const T* __restrict br = f.br;
    const index_t ldhs = FUSED ? I + U : U;  // row stride of the state h
    T* h = FUSED ? xh + I : f.h + n0 * U;
    if (FUSED)
        for (index_t r = 0; r < rows; ++r)
            copy_row(h + r * ldhs, f.h + (n0 + r) * U, U);
    T* c = f.c ? f.c + n0 * U : nullptr;
    const bool lstm = p.cell == RnnCell::lstm, gru = p.cell == RnnCell::gru;

    for (index_t s = 0; s < T_; ++s) {
        const index_t t = p.go_backwards ? T_ - 1 - s : s;
        if (s + 1 < T_) {
            const index_t tn = p.go_backwards ? t - 1 : t + 1;
            for (index_t r = 0; r < rows; ++r)
                prefetch(f.x + ((n0 + r) * T_ + tn) * I, I * static_cast<index_t>(sizeof(T)));
        }
        if (FUSED) {
            for (index_t r = 0; r < rows; ++r)
                copy_row(xh + r * (I + U), f.x + ((n0 + r) * T_ + t) * I, I);
            small_gemm<T, false>(zx, ldx, xh, I + U, 1, rows, f.wr);
        } else {
            small_gemm<T, false>(zx, ldx, f.x + (n0 * T_ + t) * I, T_ * I, 1, rows, f.w);
            if (f.rmask)
                masked_recurrent<T>(zh, ldh, h, ldhs, f.rmask, f.rg, f.rgates, f.s.gates, U, n0,
                                    rows, hm, zg);
            else
                small_gemm<T, false>(zh, ldh, h, U, 1, rows, f.r);
        }
        if (gru && !p.reset_after) {  // z and r first (kept in zh), then (r * h_prev) @ R_h
            for (index_t r = 0; r < rows; ++r) {
                const T* __restrict zxr = zx + r * ldx;
                T* __restrict zhr = zh + r * ldh;
                const T* __restrict hr = h + r * ldhs;
                T* __restrict rhr = rh + r * U;
                const T* mh = f.rmask ? f.rmask + ((n0 + r) * 3 + 2) * U : nullptr;
                for_lanes<T>(U, [&](auto tag, index_t j) {
                    using X = decltype(tag);
                    const X az = act_sigmoid(ld<X>(zxr + j) + ld<X>(bx + j) + ld<X>(zhr + j));
                    const X ar = act_sigmoid(ld<X>(zxr + U + j) + ld<X>(bx + U + j) +
                                             ld<X>(zhr + U + j));
                    st(zhr + j, az);
                    st(zhr + U + j, ar);
                    st(rhr + j, mh ? ar * ld<X>(hr + j) * ld<X>(mh + j) : ar * ld<X>(hr + j));
                });
            }
            small_gemm<T, false>(z2, ldh2, rh, U, 1, rows, f.r_h);
        }
        for (index_t r = 0; r < rows; ++r) {
            const index_t n = n0 + r;
            const bool m = f.mask ? f.mask[n * T_ + t] : true;
            T* __restrict g = TRAIN ? f.cache + (s * N + n) * cw : nullptr;
            T* __restrict hr = h + r * ldhs;
            T* __restrict yr = p.return_sequences ? f.y + (n * T_ + s) * U : f.y + n * U;
            if (TRAIN) {  // h_prev (and c_prev) are cached for every step, masked or not
                copy_row(g + f.s.hprev_offset, hr, U);
                if (lstm) copy_row(g + 4 * U, c + r * U, U);
            }
            if (!m) {  // carry the state; the output repeats the previous output (zeros at first)
                if (p.zero_output_for_mask || (p.return_sequences && s == 0))
                    std::fill(yr, yr + U, T(0));
                else if (p.return_sequences)
                    copy_row(yr, yr - U, U);
                // the gates are unused by the backward; GRU's r*h_prev slot must stay finite
                if (TRAIN) std::fill(g, g + (lstm ? GU : f.s.hprev_offset), T(0));
                continue;
            }
            const T* __restrict zxr = zx + r * ldx;
            const T* __restrict zhr = zh + r * ldh;
            if (lstm) {
                T* __restrict cr = c + r * U;
                for_lanes<T>(U, [&](auto tag, index_t j) {
                    using X = decltype(tag);
                    auto pre = [&](index_t k) {
                        if constexpr (FUSED)
                            return ld<X>(zxr + k * U + j) + ld<X>(bx + k * U + j);
                        else
                            return ld<X>(zxr + k * U + j) + ld<X>(zhr + k * U + j) +
                                   ld<X>(bx + k * U + j);
                    };
                    const X ai = act_sigmoid(pre(0)), af = act_sigmoid(pre(1));
                    const X ag = act_tanh(pre(2)), ao = act_sigmoid(pre(3));
                    const X cn = af * ld<X>(cr + j) + ai * ag;
                    const X hn = ao * act_tanh(cn);
                    if (TRAIN) {
                        st(g + j, ai);
                        st(g + U + j, af);
                        st(g + 2 * U + j, ag);
                        st(g + 3 * U + j, ao);
                    }
                    st(cr + j, cn);
                    st(hr + j, hn);
                    st(yr + j, hn);
                });
            } else if (gru && p.reset_after) {
                for_lanes<T>(U, [&](auto tag, index_t j) {
                    using X = decltype(tag);
                    const X az = act_sigmoid(ld<X>(zxr + j) + ld<X>(bx + j) + ld<X>(zhr + j) +
                                             ld<X>(br + j));
                    const X ar = act_sigmoid(ld<X>(zxr + U + j) + ld<X>(bx + U + j) +
                                             ld<X>(zhr + U + j) + ld<X>(br + U + j));
                    const X hrec = ld<X>(zhr + 2 * U + j) + ld<X>(br + 2 * U + j);
                    const X ah =
                        act_tanh(ld<X>(zxr + 2 * U + j) + ld<X>(bx + 2 * U + j) + ar * hrec);
                    const X hp = ld<X>(hr + j);
                    const X hn = az * hp + (X{} + 1 - az) * ah;
                    if (TRAIN) {
                        st(g + j, az);
                        st(g + U + j, ar);
                        st(g + 2 * U + j, ah);
                        st(g + 3 * U + j, hrec);
                    }
                    st(hr + j, hn);
                    st(yr + j, hn);
                });
            } else if (gru) {
                const T* __restrict z2r = z2 + r * ldh2;
                const T* __restrict rhr = rh + r * U;
                for_lanes<T>(U, [&](auto tag, index_t j) {
                    using X = decltype(tag);
                    const X az = ld<X>(zhr + j);
                    const X ah = act_tanh(ld<X>(zxr + 2 * U + j) + ld<X>(bx + 2 * U + j) +
                                          ld<X>(z2r + j));
                    const X hn = az * ld<X>(hr + j) + (X{} + 1 - az) * ah;
                    if (TRAIN) {
                        st(g + j, az);
                        st(g + U + j, ld<X>(zhr + U + j));
                        st(g + 2 * U + j, ah);
                        st(g + 3 * U + j, ld<X>(rhr + j));
                    }
                    st(hr + j, hn);
                    st(yr + j, hn);
                });
            } else {  // SimpleRNN
                with_activation(p.activation, [&](auto a) {
                    for_lanes<T>(U, [&](auto tag, index_t j) {
                        using X = decltype(tag);
                        X pre = ld<X>(zxr + j) + ld<X>(bx + j);
                        if constexpr (!FUSED) pre = pre + ld<X>(zhr + j);
                        const X hn = simple_act<decltype(a)::value>(pre);
                        if (TRAIN) st(g + j, hn);
                        st(hr + j, hn);
                        st(yr + j, hn);
                    });
                });
            }
        }
    }
    if (FUSED)
        for (index_t r = 0; r < rows; ++r)
            copy_row(f.h + (n0 + r) * U, h + r * ldhs, U);
}

}  // namespace

template <typename T>
void rnn_forward(T* y, T* h_last, T* c_last, T* cache, const T* x, const T* kernel,
                 const T* recurrent, const T* bias, const T* h0, const T* c0, const bool* mask,
                 const RnnParams& p, const T* recurrent_mask) {
    const RnnSizes s = rnn_sizes(p);
    const index_t N = p.batch, I = p.input, U = p.units, GU = s.gate_width;
    const bool lstm = p.cell == RnnCell::lstm;
    if (h0)
        std::memcpy(h_last, h0, sizeof(T) * N * U);
    else
        std::fill(h_last, h_last + N * U, T(0));
    if (lstm) {
        if (c0)
            std::memcpy(c_last, c0, sizeof(T) * N * U);
        else
            std::fill(c_last, c_last + N * U, T(0));
    }
    if (!p.return_sequences) std::fill(y, y + N * U, T(0));
    if (N == 0) return;

    const bool gru_before = p.cell == RnnCell::gru && !p.reset_after;
    const bool fused = p.cell != RnnCell::gru && !recurrent_mask;
    PackedB<T> w, rec, rec_h, wr, rg[4];
    const index_t rgates = gru_before ? 2 : s.gates;
    if (recurrent_mask)
        for (index_t g = 0; g < rgates; ++g) rg[g].pack_block(recurrent, GU, U, U, g * U);
    if (fused) {
        wr.pack(GU, mk::View<T>{kernel, GU, 1}, I, mk::View<T>{recurrent, GU, 1}, U);
    } else {
        w.pack_block(kernel, GU, I, GU, 0);
        rec.pack_block(recurrent, GU, U, gru_before ? 2 * U : GU, 0);
        if (gru_before) rec_h.pack_block(recurrent, GU, U, U, 2 * U);
    }
    std::vector<T> biases(static_cast<size_t>(2 * GU), T(0));  // [input side, recurrent side]
    if (bias) std::copy(bias, bias + s.bias_rows * GU, biases.begin());

    ForwardCtx<T> f{p, s, cache, y, h_last, lstm ? c_last : nullptr, x, biases.data(),
                    biases.data() + GU, mask, w.view(), rec.view(),
                    gru_before ? rec_h.view() : BView<T>{}, wr.view(), recurrent_mask,
                    {rg[0].view(), rg[1].view(), rg[2].view(), rg[3].view()}, rgates};
    const int nt = rnn_threads(N);
    const index_t per_thread = forward_scratch<T>(f, ceil_div(N, nt));
    AlignedVector<T> scratch(static_cast<size_t>(per_thread * nt));
#pragma omp parallel num_threads(nt)
    {
        FlushDenormals ftz(std::is_same_v<T, float>);
        const int tid = nt > 1 ? omp_get_thread_num() : 0;
        index_t n0, rows;
        thread_rows(N, nt, tid, n0, rows);
        if (rows > 0) {
            T* sc = scratch.data() + tid * per_thread;
            if (cache && fused)
                forward_rows<T, true, true>(f, n0, rows, sc);
            else if (cache)
                forward_rows<T, true, false>(f, n0, rows, sc);
            else if (fused)
                forward_rows<T, false, true>(f, n0, rows, sc);
            else
                forward_rows<T, false, false>(f, n0, rows, sc);
        }
    }
}

// ------------------------------------------------------------------ backward
// Per step (in reverse), for one thread's rows: the fused gate pass turns dL/dh_t (and dL/dc_t)
// into d(pre-activation gates) for the step, then
//   dh_prev += dG_r @ R^T        dx_t = dG_x @ W^T
//   dW += x_t^T @ dG_x           dR += h_prev^T @ dG_r        db += colsum(dG)
// where GRU reset_after has dG_r = [dz, dr, r * dh~] and dG_x = [dz, dr, dh~] (pre-activation).
// The d(gates) of a step live in a small per-thread buffer; nothing of size N*T is allocated.
namespace {

template <typename T>
struct BackwardCtx {
    const RnnParams& p;
    RnnSizes s;
    const T* cache;
    const T* dy;
    const T* dh_last;
    const T* dc_last;
    const T* x;
    const bool* mask;
    T* dx;
    BView<T> r_t;    // R^T over the dG_r columns (GRU reset_before: R_zr^T)
    BView<T> r_h_t;  // GRU reset_before: R_h^T
    BView<T> w_t;    // W^T
    // layout of one row of the d(gates) buffer
    index_t ldd, x_off, x_width, r_off, r_width;
    const T* rmask;   // recurrent dropout (N,G,U) or null
    BView<T> rg_t[4]; // with rmask: R_g^T of the first rgates gates
    index_t rgates;
    T* gate_grads;    // (T,N,gate_grads_width) or null: each step's d(gates) rows are copied there
    index_t gate_grads_width;
};

// Per-thread accumulators of the weight gradients, summed after the parallel region.
template <typename T>
struct GradAcc {
    T* dw;   // (I, ldw) over the dG_x columns
    T* dr;   // (U, ldr) over the dG_r columns (GRU reset_before: z, r only)
    T* drh;  // GRU reset_before: (U, ldrh)
    T* dsx;  // column sums of dG_x
    T* dsr;  // column sums of dG_r (GRU reset_after)
    T* drg;  // recurrent dropout: per gate g, (U, ldrg) at g * U * ldrg
    index_t ldw, ldr, ldrh, ldrg;
};

template <typename T>
void backward_rows(const BackwardCtx<T>& b, index_t n0, index_t rows, T* scratch,
                   const GradAcc<T>& acc, T* dh0, T* dc0) {
    const RnnParams& p = b.p;
    const index_t U = p.units, T_ = p.steps, I = p.input, cw = b.s.cache_width;
    const index_t ldd = b.ldd, ldgh = b.r_t.width(), ldxo = b.w_t.width();
    const index_t ldrh = b.r_h_t.width();
    Carver<T> cv{scratch};
    T* gh = cv.take(rows * ldgh);  // dL/dh of the state after the current step
    T* gc = cv.take(rows * U);     // LSTM dL/dc
    T* gy = cv.take(rows * U);     // gradient carried through masked outputs
    T* dg = cv.take(rows * ldd);   // d(gates) of the current step
    T* dxs = cv.take(rows * ldxo);  // dx_t
    T* drh = cv.take(rows * ldrh);  // GRU reset_before: d(r * h_prev)
    T* hm = b.rmask ? cv.take(rows * U) : nullptr;                  // h_prev * mask[:, g]
    T* tg = b.rmask ? cv.take(rows * b.rg_t[0].width()) : nullptr;  // dG_g @ R_g^T
    const index_t G = b.s.gates;
    const bool lstm = p.cell == RnnCell::lstm, gru = p.cell == RnnCell::gru;
    const bool gru_after = gru && p.reset_after, gru_before = gru && !p.reset_after;
    const bool has_mask = b.mask != nullptr;
    const index_t xr_ks = T_ * I, N = p.batch;

    for (index_t r = 0; r < rows; ++r) {
        const index_t n = n0 + r;
        for (index_t j = 0; j < U; ++j) {
            gh[r * ldgh + j] = b.dh_last ? b.dh_last[n * U + j] : T(0);
            gc[r * U + j] = (lstm && b.dc_last) ? b.dc_last[n * U + j] : T(0);
            gy[r * U + j] = T(0);
        }
    }
    for (index_t s = T_ - 1; s >= 0; --s) {
        const index_t t = p.go_backwards ? T_ - 1 - s : s;
        const index_t tn = p.go_backwards ? t + 1 : t - 1;  // the next step's time index
        for (index_t r = 0; r < rows; ++r) {
            const index_t n = n0 + r;
            if (s > 0) {  // the next step's rows, a few lines per row between the computations
                constexpr index_t sz = static_cast<index_t>(sizeof(T));
                prefetch(b.cache + ((s - 1) * N + n) * cw, cw * sz);
                prefetch(b.x + (n * T_ + tn) * I, I * sz);
                if (p.return_sequences) prefetch(b.dy + (n * T_ + s - 1) * U, U * sz);
            }
            const bool m = has_mask ? b.mask[n * T_ + t] : true;
            const T* dyr = p.return_sequences ? b.dy + (n * T_ + s) * U
                                              : (s == T_ - 1 ? b.dy + n * U : nullptr);
            T* __restrict d = dg + r * ldd;
            T* __restrict ghr = gh + r * ldgh;
            T* __restrict gyr = gy + r * U;
            if (!m) {  // the output gradient flows to the previous output, the state's to h_prev
                if (dyr && !p.zero_output_for_mask)
                    for (index_t j = 0; j < U; ++j) gyr[j] += dyr[j];
                std::fill(d, d + ldd, T(0));
                continue;
            }
            const T* __restrict cr = b.cache + (s * N + n) * cw;
            // total gradient of h_t: from the next step, the output, and carried outputs
            if (dyr)
                for (index_t j = 0; j < U; ++j) ghr[j] += dyr[j];
            if (has_mask)
                for (index_t j = 0; j < U; ++j) {
                    ghr[j] += gyr[j];
                    gyr[j] = T(0);
                }
            if (lstm) {
                T* __restrict gcr = gc + r * U;
                const T* __restrict cp = cr + 4 * U;
                for_lanes<T>(U, [&](auto tag, index_t j) {
                    using X = decltype(tag);
                    const X one = X{} + 1;
                    const X ai = ld<X>(cr + j), af = ld<X>(cr + U + j);
                    const X ag = ld<X>(cr + 2 * U + j), ao = ld<X>(cr + 3 * U + j);
                    const X cpj = ld<X>(cp + j);
                    const X tc = act_tanh(af * cpj + ai * ag);
                    const X dh = ld<X>(ghr + j);
                    const X dc = ld<X>(gcr + j) + dh * ao * (one - tc * tc);
                    st(d + j, dc * ag * ai * (one - ai));
                    st(d + U + j, dc * cpj * af * (one - af));
                    st(d + 2 * U + j, dc * ai * (one - ag * ag));
                    st(d + 3 * U + j, dh * tc * ao * (one - ao));
                    st(gcr + j, dc * af);
                    st(ghr + j, X{});
                });
            } else if (gru) {
                const T* __restrict hp = cr + 4 * U;
                T* __restrict dxg = d + b.x_off;  // [dz, dr, dh~]
                for_lanes<T>(U, [&](auto tag, index_t j) {
                    using X = decltype(tag);
                    const X one = X{} + 1;
                    const X az = ld<X>(cr + j), ar = ld<X>(cr + U + j);
                    const X ah = ld<X>(cr + 2 * U + j);
                    const X dh = ld<X>(ghr + j);
                    const X dz = dh * (ld<X>(hp + j) - ah) * az * (one - az);
                    const X dph = dh * (one - az) * (one - ah * ah);  // d(pre-activation of h~)
                    st(dxg + j, dz);
                    st(dxg + 2 * U + j, dph);
                    if (gru_after) {  // dG_r = [dz, dr, r * dph] at offset 0
                        const X dr = dph * ld<X>(cr + 3 * U + j) * ar * (one - ar);
                        st(dxg + U + j, dr);
                        st(d + j, dz);
                        st(d + U + j, dr);
                        st(d + 2 * U + j, dph * ar);
                    }
                    st(ghr + j, dh * az);
                });
            } else {
                with_activation(p.activation, [&](auto a) {
                    for_lanes<T>(U, [&](auto tag, index_t j) {
                        using X = decltype(tag);
                        st(d + j, ld<X>(ghr + j) * simple_act_grad<decltype(a)::value>(ld<X>(cr + j)));
                        st(ghr + j, X{});
                    });
                });
            }
        }
        const T* hp_t = b.cache + (s * N + n0) * cw + b.s.hprev_offset;  // h_prev^T in place
        if (gru_before) {
            // d(r*h_prev) = dh~ @ R_h^T; then dr and the direct h_prev term
            small_gemm<T, false>(drh, ldrh, dg + 2 * U, ldd, 1, rows, b.r_h_t);
            for (index_t r = 0; r < rows; ++r) {
                const index_t n = n0 + r;
                if (has_mask && !b.mask[n * T_ + t]) continue;
                const T* __restrict cr = b.cache + (s * N + n) * cw;
                T* __restrict d = dg + r * ldd;
                const T* __restrict drr = drh + r * ldrh;
                T* __restrict ghr = gh + r * ldgh;
                const T* hp = cr + 4 * U;
                if (b.rmask) {  // r * h_prev * mask[:, 2] went into R_h
                    const T* __restrict mh = b.rmask + (n * G + 2) * U;
                    for_lanes<T>(U, [&](auto tag, index_t j) {
                        using X = decltype(tag);
                        const X ar = ld<X>(cr + U + j), dd = ld<X>(drr + j) * ld<X>(mh + j);
                        st(d + U + j, dd * ld<X>(hp + j) * ar * (X{} + 1 - ar));
                        st(ghr + j, ld<X>(ghr + j) + dd * ar);
                    });
                    continue;
                }
                for_lanes<T>(U, [&](auto tag, index_t j) {
                    using X = decltype(tag);
                    const X ar = ld<X>(cr + U + j), dd = ld<X>(drr + j);
                    st(d + U + j, dd * ld<X>(hp + j) * ar * (X{} + 1 - ar));
                    st(ghr + j, ld<X>(ghr + j) + dd * ar);
                });
            }
            // dR_h += (r*h_prev)^T @ dh~
            small_gemm<T, true>(acc.drh, acc.ldrh, b.cache + (s * N + n0) * cw + 3 * U, 1,
                                cw, U, dense_b(dg + 2 * U, ldd, rows, U));
        }
        if (b.gate_grads)  // [dG_r, dG_x] for GRU reset_after, else dG_x (= dG_r) alone
            for (index_t r = 0; r < rows; ++r) {
                T* out = b.gate_grads + (s * N + n0 + r) * b.gate_grads_width;
                const T* d = dg + r * ldd;
                if (gru_after) {
                    copy_row(out, d + b.r_off, b.r_width);
                    out += b.r_width;
                }
                copy_row(out, d + b.x_off, b.x_width);
            }
        const T* dgr = dg + b.r_off;
        const T* dgx = dg + b.x_off;
        if (b.rmask) {
            // per gate: dh_prev += (dG_g @ R_g^T) * mask[:, g], dR_g += (h_prev*mask[:, g])^T dG_g
            for (index_t g = 0; g < b.rgates; ++g) {
                const index_t ldt = b.rg_t[g].width();
                small_gemm<T, false>(tg, ldt, dgr + g * U, ldd, 1, rows, b.rg_t[g]);
                for (index_t r = 0; r < rows; ++r) {
                    const T* __restrict mr = b.rmask + ((n0 + r) * G + g) * U;
                    const T* __restrict hpr = b.cache + (s * N + n0 + r) * cw + b.s.hprev_offset;
                    const T* __restrict tr = tg + r * ldt;
                    T* __restrict ghr = gh + r * ldgh;
                    T* __restrict hmr = hm + r * U;
                    for (index_t j = 0; j < U; ++j) {
                        ghr[j] += tr[j] * mr[j];
                        hmr[j] = hpr[j] * mr[j];
                    }
                }
                small_gemm<T, true>(acc.drg + g * U * acc.ldrg, acc.ldrg, hm, 1, U, U,
                                    dense_b(dgr + g * U, ldd, rows, U));
            }
        } else {
            small_gemm<T, true>(gh, ldgh, dgr, ldd, 1, rows, b.r_t);
        }
        small_gemm<T, false>(dxs, ldxo, dgx, ldd, 1, rows, b.w_t);
        for (index_t r = 0; r < rows; ++r)
            copy_row(b.dx + ((n0 + r) * T_ + t) * I, dxs + r * ldxo, I);
        small_gemm<T, true>(acc.dw, acc.ldw, b.x + (n0 * T_ + t) * I, 1, xr_ks, I,
                            dense_b(dgx, ldd, rows, b.x_width));
        if (!b.rmask)
            small_gemm<T, true>(acc.dr, acc.ldr, hp_t, 1, cw, U,
                                dense_b(dgr, ldd, rows, b.r_width));
        for (index_t r = 0; r < rows; ++r) {  // bias gradients
            const T* __restrict dxr = dgx + r * ldd;
            for (index_t j = 0; j < b.x_width; ++j) acc.dsx[j] += dxr[j];
            if (gru_after) {
                const T* __restrict drr = dgr + r * ldd;
                for (index_t j = 0; j < b.r_width; ++j) acc.dsr[j] += drr[j];
            }
        }
    }
    for (index_t r = 0; r < rows; ++r) {
        copy_row(dh0 + (n0 + r) * U, gh + r * ldgh, U);
        if (lstm) copy_row(dc0 + (n0 + r) * U, gc + r * U, U);
    }
}

}  // namespace

template <typename T>
void rnn_backward(T* dx, T* dkernel, T* drecurrent, T* dbias, T* dh0, T* dc0, const T* dy,
                  const T* dh_last, const T* dc_last, const T* x, const T* kernel,
                  const T* recurrent, const bool* mask, const T* cache, const RnnParams& p,
                  const T* recurrent_mask, T* gate_grads) {
    const RnnSizes s = rnn_sizes(p);
    const index_t N = p.batch, I = p.input, U = p.units, GU = s.gate_width;
    const bool lstm = p.cell == RnnCell::lstm;
    const bool gru_after = p.cell == RnnCell::gru && p.reset_after;
    const bool gru_before = p.cell == RnnCell::gru && !p.reset_after;
    std::fill(dkernel, dkernel + I * GU, T(0));
    std::fill(drecurrent, drecurrent + U * GU, T(0));
    if (dbias) std::fill(dbias, dbias + s.bias_rows * GU, T(0));
    if (N == 0) return;

    // d(gates) row layout: dG_r at r_off (width r_width), dG_x at x_off (width x_width)
    index_t r_off = 0, r_width = GU, x_off = 0, x_width = GU;
    if (gru_after) {
        x_off = padded<T>(GU);  // [dz, dr, r*dh~] at 0, [dz, dr, dh~] after it
    } else if (gru_before) {
        r_width = 2 * U;  // [dz, dr] for R_zr; dh~ (columns 2U..3U) goes with R_h
    }
    const index_t ldd = x_off + padded<T>(x_width) + kNR<T>;

    PackedB<T> rec_t, rec_h_t, w_t;  // transposed kernels
    rec_t.pack_block_transposed(recurrent, GU, r_width, U, 0);
    if (gru_before) rec_h_t.pack_block_transposed(recurrent, GU, U, U, 2 * U);
    w_t.pack_block_transposed(kernel, GU, x_width, I, 0);

    PackedB<T> rg_t[4];  // recurrent dropout: R_g^T per gate
    const index_t rgates = gru_before ? 2 : s.gates;
    if (recurrent_mask)
        for (index_t g = 0; g < rgates; ++g)
            rg_t[g].pack_block_transposed(recurrent, GU, U, U, g * U);
    BackwardCtx<T> b{p,  s,  cache, dy, dh_last, dc_last, x, mask, dx, rec_t.view(),
                     gru_before ? rec_h_t.view() : BView<T>{},
                     w_t.view(), ldd, x_off, x_width, r_off, r_width, recurrent_mask,
                     {rg_t[0].view(), rg_t[1].view(), rg_t[2].view(), rg_t[3].view()}, rgates,
                     gate_grads, gru_after ? 2 * GU : GU};

    const int nt = rnn_threads(N);
    const index_t max_rows = ceil_div(N, nt);
    const index_t ldw = padded<T>(x_width), ldr = padded<T>(r_width), ldrh = padded<T>(U);
    const index_t ldrg = recurrent_mask ? padded<T>(U) : 0;
    const index_t per_scratch = carve_size<T>({max_rows * rec_t.view().width(), max_rows * U,
                                               max_rows * U, max_rows * ldd,
                                               max_rows * w_t.view().width(),
                                               gru_before ? max_rows * ldrh : 0,
                                               recurrent_mask ? max_rows * U : 0,
                                               recurrent_mask ? max_rows * rg_t[0].view().width()
                                                              : 0});
    const index_t per_acc = carve_size<T>({I * ldw, U * ldr, gru_before ? U * ldrh : 0,
                                           ldw, ldr, rgates * U * ldrg});
    AlignedVector<T> scratch(static_cast<size_t>(per_scratch * nt));
    AlignedVector<T> accs(static_cast<size_t>(per_acc * nt), T(0));
    std::vector<GradAcc<T>> acc(static_cast<size_t>(nt));
    for (int i = 0; i < nt; ++i) {
        Carver<T> cv{accs.data() + i * per_acc};
        GradAcc<T>& a = acc[static_cast<size_t>(i)];
        a.dw = cv.take(I * ldw);
        a.dr = cv.take(U * ldr);
        a.drh = cv.take(gru_before ? U * ldrh : 0);
        a.dsx = cv.take(ldw);
        a.dsr = cv.take(ldr);
        a.drg = cv.take(rgates * U * ldrg);
        a.ldrg = ldrg;
        a.ldw = ldw;
        a.ldr = ldr;
        a.ldrh = ldrh;
    }
#pragma omp parallel num_threads(nt)
    {
        FlushDenormals ftz(std::is_same_v<T, float>);
        const int tid = nt > 1 ? omp_get_thread_num() : 0;
        index_t n0, rows;
        thread_rows(N, nt, tid, n0, rows);
        if (rows > 0)
            backward_rows<T>(b, n0, rows, scratch.data() + tid * per_scratch,
                             acc[static_cast<size_t>(tid)], dh0, lstm ? dc0 : nullptr);
    }

    // sum the per-thread accumulators (in thread order: deterministic for a thread count)
    for (int i = 0; i < nt; ++i) {
        const GradAcc<T>& a = acc[static_cast<size_t>(i)];
        for (index_t f = 0; f < I; ++f)
            for (index_t j = 0; j < x_width; ++j) dkernel[f * GU + j] += a.dw[f * ldw + j];
        if (recurrent_mask)
            for (index_t g = 0; g < rgates; ++g)
                for (index_t u = 0; u < U; ++u)
                    for (index_t j = 0; j < U; ++j)
                        drecurrent[u * GU + g * U + j] += a.drg[(g * U + u) * ldrg + j];
        for (index_t u = 0; u < U; ++u) {
            for (index_t j = 0; j < r_width; ++j) drecurrent[u * GU + j] += a.dr[u * ldr + j];
            if (gru_before)
                for (index_t j = 0; j < U; ++j)
                    drecurrent[u * GU + 2 * U + j] += a.drh[u * ldrh + j];
        }
        if (dbias) {
            for (index_t j = 0; j < x_width; ++j) dbias[j] += a.dsx[j];
            if (gru_after)  // row 1: the recurrent bias
                for (index_t j = 0; j < r_width; ++j) dbias[GU + j] += a.dsr[j];
        }
    }
}

template void rnn_forward<float>(float*, float*, float*, float*, const float*, const float*,
                                 const float*, const float*, const float*, const float*,
                                 const bool*, const RnnParams&, const float*);
template void rnn_forward<double>(double*, double*, double*, double*, const double*,
                                  const double*, const double*, const double*, const double*,
                                  const double*, const bool*, const RnnParams&, const double*);
template void rnn_backward<float>(float*, float*, float*, float*, float*, float*, const float*,
                                  const float*, const float*, const float*, const float*,
                                  const float*, const bool*, const float*, const RnnParams&,
                                  const float*, float*);
template void rnn_backward<double>(double*, double*, double*, double*, double*, double*,
                                   const double*, const double*, const double*, const double*,
                                   const double*, const double*, const bool*, const double*,
                                   const RnnParams&, const double*, double*);

}  // namespace fastdl
