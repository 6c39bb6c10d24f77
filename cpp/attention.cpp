// Softmax attention, forward and backward, one (query, key, value) problem per OpenMP
// iteration. Float on AVX2/AVX-512: each problem's products run on the GEMM's register tiles in
// blocks of query rows (scores, softmax and output of a block while its rows are in L1; K^T and
// V packed once per problem). Otherwise, and for the backward's two transposed products, they go
// through fastdl's GEMM on each problem's strided rows in place (single-threaded inside the
// region, the whole team when there is only one problem).
#include "attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FASTDL_SOFTMAX_AVX2 1
#endif

#include "gemm.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include "microkernel.h"
#define FASTDL_ATTENTION_TILES 1
#endif

namespace fastdl {

namespace {


template <typename T>
using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
template <typename T>
using ConstRow = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;
using RowF = Row<float>;
using ConstRowF = ConstRow<float>;

#ifdef FASTDL_SOFTMAX_AVX2
// exp(x) of 8 floats x <= 0 (a softmax's shifted scores), within 2 ulp: x = n ln2 + r with
// |r| <= ln2 / 2 (ln2 in two parts, so r is exact), exp(r) by Cephes's degree-6 polynomial, and
// 2^n built in the exponent bits. Arguments below -87.33 (2^-126) give the smallest normal
// float, as Eigen's exp does; NaN stays NaN. About three times the speed of Eigen's exp, which
// was two thirds of the softmax's time.
inline __m256 exp_nonpositive(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.3365447f), x);  // NaN in the second operand is kept
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i two_n = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(two_n));
}

#if defined(__AVX512F__)
// The same exp on 16 floats (AVX-512 builds: twice the lanes per instruction).
inline __m512 exp_nonpositive(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.3365447f), x);  // NaN in the second operand is kept
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i two_n = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(two_n));
}
#endif

// Softmax of one unmasked float row of n >= 1 scores, scaled: two passes (the largest score;
// then the exponentials, their sum kept in registers) and the normalisation.
inline void softmax_row(float* row, index_t n, float scale) {
    const ConstRowF r(row, n);
    // the largest scaled score: the scale times the largest (or, scale < 0, smallest) score
    const float top = scale >= 0.0f ? r.maxCoeff() * scale : r.minCoeff() * scale;
    if (top == -std::numeric_limits<float>::infinity()) {  // as the masked path: all hidden
        std::fill(row, row + n, 0.0f);
        return;
    }
    const __m256 vs = _mm256_set1_ps(scale), vt = _mm256_set1_ps(top);
    __m256 sum8 = _mm256_setzero_ps();
    index_t j = 0;
#if defined(__AVX512F__)
    const __m512 ws = _mm512_set1_ps(scale), wt = _mm512_set1_ps(top);
    __m512 sum16 = _mm512_setzero_ps();
    for (; j + 16 <= n; j += 16) {
        const __m512 e = exp_nonpositive(_mm512_fmsub_ps(_mm512_loadu_ps(row + j), ws, wt));
        _mm512_storeu_ps(row + j, e);
        sum16 = _mm512_add_ps(sum16, e);
    }
    sum8 = _mm256_add_ps(_mm512_castps512_ps256(sum16),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sum16), 1)));
#endif
    for (; j + 8 <= n; j += 8) {
        const __m256 e = exp_nonpositive(_mm256_fmsub_ps(_mm256_loadu_ps(row + j), vs, vt));
        _mm256_storeu_ps(row + j, e);
        sum8 = _mm256_add_ps(sum8, e);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, sum8);
    float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; j < n; ++j) {
        row[j] = std::exp(std::fma(row[j], scale, -top));
        sum += row[j];
    }
    RowF(row, n) *= 1.0f / sum;
}
#endif

// Row-wise masked softmax of rows [i0, i1) of a problem's scores in place, held at s (row i0
// first, rows of tk); s holds the unscaled scores on entry, mask (tq, tk) is the problem's or
// null. The exponentials are vectorised (the bulk of the forward's time otherwise).
template <typename T>
void softmax_rows(T* s, const std::uint8_t* mask, const AttentionParams& p, index_t i0,
                  index_t i1) {
    const T scale = static_cast<T>(p.scale);
    const T hidden = -std::numeric_limits<T>::infinity();
    for (index_t i = i0; i < i1; ++i) {
        T* row = s + (i - i0) * p.tk;
        const std::uint8_t* mrow = mask ? mask + i * p.tk : nullptr;
        const index_t visible_end = p.causal ? std::min(i + 1, p.tk) : p.tk;
#ifdef FASTDL_SOFTMAX_AVX2
        if constexpr (std::is_same_v<T, float>) {
            if (!mrow && visible_end > 0) {
                softmax_row(row, visible_end, scale);
                std::fill(row + visible_end, row + p.tk, 0.0f);
                continue;
            }
        }
#endif
        Row<T> r(row, visible_end);
        r *= scale;
        if (mrow)
            for (index_t j = 0; j < visible_end; ++j)
                if (!mrow[j]) row[j] = hidden;
        const T top = visible_end ? r.maxCoeff() : hidden;
        if (top == hidden) {  // nothing visible: zeros, as Keras
            std::fill(row, row + p.tk, T(0));
            continue;
        }
        r = (r - top).exp();
        if (mrow)  // Eigen's exp clamps its argument: exp(-inf) is tiny, not 0
            for (index_t j = 0; j < visible_end; ++j)
                if (!mrow[j]) row[j] = T(0);
        r *= T(1) / r.sum();
        std::fill(row + visible_end, row + p.tk, T(0));
    }
}

int team_size(index_t problems) { return problems > 1 ? num_threads() : 1; }

// The gradient of the scores from that of the weights, rows of tk in place:
// ds = P * (dW * drop - sum_j dW * drop * P) * scale (Eigen's vectorised row sums: a scalar sum
// is one add latency per element).
template <typename T>
void softmax_backward_rows(T* ds, const T* probs, const T* drop, index_t rows, index_t tk,
                           T scale) {
    for (index_t i = 0; i < rows; ++i) {
        Row<T> row(ds + i * tk, tk);
        const ConstRow<T> prow(probs + i * tk, tk);
        if (drop) row *= ConstRow<T>(drop + i * tk, tk);
        const T dot = (row * prow).sum();
        row = prow * (row - dot) * scale;
    }
}

#ifdef FASTDL_ATTENTION_TILES
// ---------------------------------------------------------------- float products on the tiles
// A problem's products are small (200 x 200 x 32 in a typical encoder): called through the GEMM,
// each one plans, takes scratch and packs its op(b) again. Here each operand is packed once per
// problem and the MR-row blocks of a product are computed where their inputs were just written.
namespace tiles {
constexpr int W = mk::kLanes<float>;
constexpr int NV = 2;
constexpr int NR = NV * W;
constexpr int MR = mk::kMaxNV == 4 ? 12 : 6;  // the float GEMM's tile rows

// Floats taken by op(b) (depth, n) packed into NR-column panels.
index_t packed_size(index_t depth, index_t n) { return ceil_div(n, index_t{NR}) * NR * depth; }

void pack(float* dst, const mk::View<float>& b, index_t depth, index_t n) {
    for (index_t j0 = 0; j0 < n; j0 += NR)
        mk::pack_b<float, NV>(dst + j0 * depth, b, 0, depth, j0,
                              static_cast<int>(std::min<index_t>(NR, n - j0)));
}

// c (rows x n, row stride ldc) = a (rows x depth, rows lda apart) @ b (packed by pack()).
void rows_times(float* c, index_t ldc, const float* a, index_t lda, int rows, const float* b,
                index_t depth, index_t n) {
    const mk::ARows<float> ar{a, lda};
    for (index_t j0 = 0; j0 < n; j0 += NR) {
        const int cols = static_cast<int>(std::min<index_t>(NR, n - j0));
        const mk::Out<float> o{c + j0, ldc, cols, mk::Out<float>::kSet};
        if (cols > W)
            mk::tile_rows<float, MR, NV, false>(rows, depth, ar, b + j0 * depth, NR, o);
        else
            mk::tile_rows<float, MR, 1, false>(rows, depth, ar, b + j0 * depth, NR, o);
    }
}

// Scratch floats of one problem's forward: K^T and V packed, MR rows of weights (and as many
// of dropped weights).
index_t forward_scratch(const AttentionParams& p, bool drop) {
    return packed_size(p.dk, p.tk) + packed_size(p.tk, p.dv) + (drop ? 2 : 1) * MR * p.tk;
}

// dst[0, n) = src[0, n) with non-temporal stores where dst is vector-aligned: the weights a
// forward returns (20 MB per layer in a typical encoder) are read again only by the backward,
// after they have left the caches, and a plain store first reads each line from memory.
void stream_copy(float* dst, const float* src, index_t n) {
    constexpr index_t align = W * sizeof(float);
    index_t e = 0;
    for (; e < n && reinterpret_cast<std::uintptr_t>(dst + e) % align != 0; ++e) dst[e] = src[e];
    for (; e + W <= n; e += W) {
        using V = mk::Vec<float>;
#if defined(__AVX512F__)
        _mm512_stream_ps(dst + e, (__m512)mk::load<V>(src + e));
#else
        _mm256_stream_ps(dst + e, (__m256)mk::load<V>(src + e));
#endif
    }
    for (; e < n; ++e) dst[e] = src[e];
}

// One problem's forward (out, q, k, v at the problem; s its (tq, tk) probs; mask and drop its
// own or null): per block of MR queries, the scores, their softmax and the output rows.
void forward(float* out, float* s, const float* q, const float* k, const float* v,
             const std::uint8_t* mask, const float* drop, const AttentionParams& p,
             float* scratch) {
    float* kt = scratch;
    float* vp = kt + packed_size(p.dk, p.tk);
    float* sr = vp + packed_size(p.tk, p.dv);  // the block's weights, rows of tk
    float* dropped = sr + MR * p.tk;
    pack(kt, {k, 1, p.k.row}, p.dk, p.tk);  // op(b) = K^T
    pack(vp, {v, p.v.row, 1}, p.tk, p.dv);
    for (index_t i0 = 0; i0 < p.tq; i0 += MR) {
        const int rows = static_cast<int>(std::min<index_t>(MR, p.tq - i0));
        rows_times(sr, p.tk, q + i0 * p.q.row, p.q.row, rows, kt, p.dk, p.tk);
        softmax_rows(sr, mask, p, i0, i0 + rows);
        stream_copy(s + i0 * p.tk, sr, rows * p.tk);
        const float* weights = sr;
        if (drop) {
            const float* d = drop + i0 * p.tk;
            for (index_t e = 0; e < rows * p.tk; ++e) dropped[e] = sr[e] * d[e];
            weights = dropped;
        }
        rows_times(out + i0 * p.out.row, p.out.row, weights, p.tk, rows, vp, p.tk, p.dv);
    }
    _mm_sfence();  // the streamed weights are visible before the region's end
}

// Scratch floats of one problem's backward rows: V^T and K packed.
index_t backward_scratch(const AttentionParams& p) {
    return packed_size(p.dv, p.tk) + packed_size(p.tk, p.dk);
}

// One problem's ds (tq, tk) and dq, per block of MR queries: d(weights) = dout @ V^T, ds, and
// dq = ds @ K.
void backward_rows(float* dq, float* ds, const float* dout, const float* k, const float* v,
                   const float* probs, const float* drop, const AttentionParams& p,
                   float* scratch) {
    float* vt = scratch;
    float* kp = vt + packed_size(p.dv, p.tk);
    pack(vt, {v, 1, p.v.row}, p.dv, p.tk);  // op(b) = V^T
    pack(kp, {k, p.k.row, 1}, p.tk, p.dk);
    for (index_t i0 = 0; i0 < p.tq; i0 += MR) {
        const int rows = static_cast<int>(std::min<index_t>(MR, p.tq - i0));
        float* dr = ds + i0 * p.tk;
        rows_times(dr, p.tk, dout + i0 * p.out.row, p.out.row, rows, vt, p.dv, p.tk);
        softmax_backward_rows(dr, probs + i0 * p.tk, drop ? drop + i0 * p.tk : nullptr,
                              index_t{rows}, p.tk, static_cast<float>(p.scale));
        rows_times(dq + i0 * p.grad_q.row, p.grad_q.row, dr, p.tk, rows, kp, p.tk, p.dk);
    }
}
}  // namespace tiles
#endif


template <typename T>
const T* at(const T* x, const HeadStrides& s, index_t b, index_t h) {
    return x + b * s.batch + h * s.head;
}
template <typename T>
T* at(T* x, const HeadStrides& s, index_t b, index_t h) {
    return x + b * s.batch + h * s.head;
}

// Per-thread scratch blocks of `each` elements (64-byte apart), taken before the parallel
// region so that an allocation failure is an exception, not a crash inside OpenMP.
template <typename T>
struct TeamScratch {
    index_t stride;
    T* base;
    Workspace ws;
    TeamScratch(int team, index_t each)
        : stride(round_up(each, 64 / static_cast<index_t>(sizeof(T)))),
          ws(each ? stride * team : 0, base, ScratchSlot::attention) {}
    T* of(int tid) const { return base ? base + tid * stride : nullptr; }
};

}  // namespace

// One problem per iteration, handed out dynamically: on a busy machine a preempted thread is
// left fewer problems instead of holding up the others. The per-problem products are
// sequential (the GEMM runs on one thread inside a parallel region), so every result is the
// same for every thread count.
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const std::uint8_t* mask, const T* drop, const AttentionParams& p) {
    const index_t ss = p.tq * p.tk;
    const index_t problems = p.problems();
    const index_t group = p.mask_batch ? problems / p.mask_batch : 1;
    const int team = team_size(problems);
#ifdef FASTDL_ATTENTION_TILES
    constexpr bool on_tiles = std::is_same_v<T, float>;
#else
    [[maybe_unused]] constexpr bool on_tiles = false;
#endif
    index_t each = drop ? ss : 0;
#ifdef FASTDL_ATTENTION_TILES
    if constexpr (on_tiles) each = tiles::forward_scratch(p, drop != nullptr);
#endif
    TeamScratch<T> scratch(team, each);
#pragma omp parallel num_threads(team)
    {
        T* own = scratch.of(omp_get_thread_num());
#pragma omp for schedule(dynamic)
        for (index_t pi = 0; pi < problems; ++pi) {
            const index_t b = pi / p.heads, h = pi % p.heads;
            T* s = probs + pi * ss;
            const std::uint8_t* m = p.mask_batch ? mask + (pi / group) * ss : nullptr;
            const T* d = drop ? drop + pi * ss : nullptr;
#ifdef FASTDL_ATTENTION_TILES
            if constexpr (on_tiles) {
                tiles::forward(at(out, p.out, b, h), s, at(q, p.q, b, h), at(k, p.k, b, h),
                               at(v, p.v, b, h), m, d, p, own);
                continue;
            }
#endif
            matmul_forward_strided(s, p.tk, at(q, p.q, b, h), p.q.row, at(k, p.k, b, h), p.k.row,
                                   GemmParams{p.tq, p.tk, p.dk, false, true});
            softmax_rows(s, m, p, 0, p.tq);
            const T* weights = s;
            if (d) {
                for (index_t i = 0; i < ss; ++i) own[i] = s[i] * d[i];
                weights = own;
            }
            matmul_forward_strided(at(out, p.out, b, h), p.out.row, weights, p.tk,
                                   at(v, p.v, b, h), p.v.row,
                                   GemmParams{p.tq, p.dv, p.tk, false, false});
        }
    }
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* probs, const T* drop, const AttentionParams& p) {
    const index_t ss = p.tq * p.tk;
    const index_t problems = p.problems();
    const T scale = static_cast<T>(p.scale);
    const int team = team_size(problems);
#ifdef FASTDL_ATTENTION_TILES
    constexpr bool on_tiles = std::is_same_v<T, float>;
    const index_t packed = on_tiles ? tiles::backward_scratch(p) : 0;
#else
    constexpr bool on_tiles = false;
    const index_t packed = 0;
#endif
    // per thread: ds, the dropped weights, the packed operands
    TeamScratch<T> scratch(team, (drop ? 2 : 1) * ss + packed);
#pragma omp parallel num_threads(team)
    {
        T* ds = scratch.of(omp_get_thread_num());
        T* dropped = ds + ss;
        [[maybe_unused]] T* own_packed = dropped + (drop ? ss : 0);
#pragma omp for schedule(dynamic)
        for (index_t pi = 0; pi < problems; ++pi) {
            const index_t b = pi / p.heads, h = pi % p.heads;
            const T* pb = probs + pi * ss;
            const T* db = drop ? drop + pi * ss : nullptr;
            const T* go = at(dout, p.out, b, h);
            const T *qb = at(q, p.q, b, h), *kb = at(k, p.k, b, h), *vb = at(v, p.v, b, h);
            // ds and dq
            if constexpr (on_tiles) {
#ifdef FASTDL_ATTENTION_TILES
                tiles::backward_rows(at(dq, p.grad_q, b, h), ds, go, kb, vb, pb, db, p,
                                     own_packed);
#endif
            } else {
                matmul_forward_strided(ds, p.tk, go, p.out.row, vb, p.v.row,
                                       GemmParams{p.tq, p.tk, p.dv, false, true});
                softmax_backward_rows(ds, pb, db, p.tq, p.tk, scale);
                matmul_forward_strided(at(dq, p.grad_q, b, h), p.grad_q.row, ds, p.tk, kb,
                                       p.k.row, GemmParams{p.tq, p.dk, p.tk, false, false});
            }
            // dv = weights^T @ dout, dk = ds^T @ q (whole products: the GEMM)
            const T* weights = pb;
            if (db) {
                for (index_t i = 0; i < ss; ++i) dropped[i] = pb[i] * db[i];
                weights = dropped;
            }
            matmul_forward_strided(at(dv, p.grad_v, b, h), p.grad_v.row, weights, p.tk, go,
                                   p.out.row, GemmParams{p.tk, p.dv, p.tq, true, false});
            matmul_forward_strided(at(dk, p.grad_k, b, h), p.grad_k.row, ds, p.tk, qb, p.q.row,
                                   GemmParams{p.tk, p.dk, p.tq, true, false});
        }
    }
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                       const std::uint8_t*, const float*, const AttentionParams&);
template void attention_forward<double>(double*, double*, const double*, const double*,
                                        const double*, const std::uint8_t*, const double*,
                                        const AttentionParams&);
template void attention_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, const float*,
                                        const AttentionParams&);
template void attention_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*,
                                         const double*, const AttentionParams&);

}  // namespace fastdl
