// fastdl's one register-tile GEMM micro-kernel and its packing, used by the float GEMM
// (gemm.cpp), the convolutions (conv2d.cpp: im2col, conv2d_winograd.cpp) and the RNN cells
// (rnn.cpp), for float and double at every x86-64 level (and any GCC/clang target).
//
// A tile is ROWS x (NV vectors) of a row-major c: each k step loads NV vectors of one row of
// b and broadcasts ROWS scalars of one column of op(a): acc[i][v] += a(i, p) * b(p, v*W ..).
// Every output element is the sum over k in increasing order, fused multiply-adds where the
// target has FMA, started from zero (then added to c: Out::kAdd) or from c itself (kChain). So
// its value depends on neither the tile shape nor the thread split, only on how the caller
// blocks k, and every caller keeps its own blocking.
//
// SIMD style: GCC vector extensions (float and double at 16, 32 and 64 bytes from one source);
// intrinsics only where the extensions have no operation (fused multiply-add, masked loads).
#pragma once

#include "common.h"

#include <cstring>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#if !defined(__GNUC__)
#error "fastdl's kernels need GCC or clang (vector extensions)"
#endif

namespace fastdl {
namespace mk {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
constexpr int kMaxNV = 4;  // 32 vector registers: up to 24 accumulators
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
constexpr int kMaxNV = 2;  // 16 registers: up to 8 accumulators (12 in the float GEMM's 6x2)
#else
constexpr int kVecBytes = 16;
constexpr int kMaxNV = 2;
#endif

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
    typedef float type __attribute__((vector_size(kVecBytes)));
};
template <>
struct VecOf<double> {
    typedef double type __attribute__((vector_size(kVecBytes)));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
constexpr int kLanes = kVecBytes / static_cast<int>(sizeof(T));

// Accumulators a tile keeps in registers: 24 of 32 (AVX-512), 8 of 16; and the rows of a tile
// of NV vectors for conv and the RNN cells (the float GEMM picks its own tilings: gemm.cpp).
constexpr int kMaxAccumulators = kMaxNV == 4 ? 24 : 8;
template <int NV>
constexpr int kRows = kMaxAccumulators / NV > 12 ? 12 : kMaxAccumulators / NV;

template <typename V>
inline V load(const void* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}
template <typename V>
inline void store(void* p, const V& v) {
    std::memcpy(p, &v, sizeof(V));
}
// x in every lane (an exact broadcast: GCC builds a lane-by-lane splat from inserts).
template <typename T>
inline Vec<T> splat(T x) {
    using V = Vec<T>;
#if defined(__SSE2__)
    constexpr bool f = sizeof(T) == 4;
    if constexpr (sizeof(V) == 64) {
        if constexpr (f) return (V)_mm512_set1_ps(x);
        else return (V)_mm512_set1_pd(x);
    } else if constexpr (sizeof(V) == 32) {
        if constexpr (f) return (V)_mm256_set1_ps(x);
        else return (V)_mm256_set1_pd(x);
    } else {
        if constexpr (f) return (V)_mm_set1_ps(x);
        else return (V)_mm_set1_pd(x);
    }
#else
    V v;
    for (int l = 0; l < kLanes<T>; ++l) v[l] = x;
    return v;
#endif
}

// a * b + c, one rounding where the target has FMA (as Eigen's pmadd), else two.
template <typename V>
inline V madd(V a, V b, V c) {
#if defined(__FMA__) || defined(__AVX512F__)
    constexpr bool f = sizeof(a[0]) == 4;
    if constexpr (sizeof(V) == 64) {
        if constexpr (f) return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
        else return (V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
    } else if constexpr (sizeof(V) == 32) {
        if constexpr (f) return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
        else return (V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
    } else {
        if constexpr (f) return (V)_mm_fmadd_ps((__m128)a, (__m128)b, (__m128)c);
        else return (V)_mm_fmadd_pd((__m128d)a, (__m128d)b, (__m128d)c);
    }
#else
    return a * b + c;
#endif
}

// The first n lanes of a vector at p (the rest zero), and their store: loads and stores of
// ragged right edges. AVX2 and AVX-512 mask them; elsewhere lane by lane.
template <typename T>
struct Lanes {
#if defined(__AVX512F__)
    using M = std::conditional_t<sizeof(T) == 4, __mmask16, __mmask8>;
    M m;
    Lanes() = default;
    explicit Lanes(int n) : m(static_cast<M>(n >= kLanes<T> ? ~0u : (1u << (n > 0 ? n : 0)) - 1u)) {}
    Vec<T> load(const T* p) const {
        if constexpr (sizeof(T) == 4) return (Vec<T>)_mm512_maskz_loadu_ps(m, p);
        else return (Vec<T>)_mm512_maskz_loadu_pd(m, p);
    }
    void store(T* p, Vec<T> v) const {
        if constexpr (sizeof(T) == 4) _mm512_mask_storeu_ps(p, m, (__m512)v);
        else _mm512_mask_storeu_pd(p, m, (__m512d)v);
    }
#elif defined(__AVX2__)
    __m256i m;
    Lanes() = default;
    explicit Lanes(int n) {
        if constexpr (sizeof(T) == 4)
            m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        else
            m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    }
    Vec<T> load(const T* p) const {
        if constexpr (sizeof(T) == 4) return (Vec<T>)_mm256_maskload_ps(p, m);
        else return (Vec<T>)_mm256_maskload_pd(p, m);
    }
    void store(T* p, Vec<T> v) const {
        if constexpr (sizeof(T) == 4) _mm256_maskstore_ps(p, m, (__m256)v);
        else _mm256_maskstore_pd(p, m, (__m256d)v);
    }
#else
    int n;
    Lanes() = default;
    explicit Lanes(int count) : n(count) {}
    Vec<T> load(const T* p) const {
        Vec<T> v{};
        for (int l = 0; l < n && l < kLanes<T>; ++l) v[l] = p[l];
        return v;
    }
    void store(T* p, Vec<T> v) const {
        for (int l = 0; l < n && l < kLanes<T>; ++l) p[l] = v[l];
    }
#endif
};

// ---------------------------------------------------------------- op(a): where a(i, p) lives
// Row kinds give one pointer per row for each run of k (a(i, p0 + t) = ar[i][t]); column kinds
// one pointer per k step (a(i, p) = col(p)[i]). `shift(r)` moves a view down r rows.

// a(i, p) = a[i * as + p]: a row-major op(a) read in place.
template <typename T>
struct ARows {
    static constexpr bool kRowKind = true;
    const T* a;
    index_t as;
    index_t run(index_t depth) const { return depth; }
    const T* row(int i, index_t) const { return a + i * as; }
    ARows shift(index_t r) const { return {a + r * as, as}; }
};

// a(i, p) = a[p * as + i]: a packed panel (as = MR) or a transposed op(a) read in place.
template <typename T>
struct ACols {
    static constexpr bool kRowKind = false;
    const T* a;
    index_t as;
    const T* col(index_t p) const { return a + p * as; }
    ACols shift(index_t r) const { return {a + r, as}; }
};

// conv's implicit im2col: a(i, s * run + t) = rp[i][(s0 + s) * rs[i] + t], run elements of x
// per kernel row (segment).
template <typename T>
struct ASegments {
    static constexpr bool kRowKind = true;
    const T* const* rp;
    const index_t* rs;
    index_t s0, seg;  // first segment, segment length
    index_t run(index_t) const { return seg; }
    const T* row(int i, index_t s) const { return rp[i] + (s0 + s) * rs[i]; }
    ASegments shift(index_t r) const { return {rp + r, rs + r, s0, seg}; }
};

// Its transpose (conv's dkernel): a(i, p) = rp[p][s * rs[p] + o + i].
template <typename T>
struct ASegmentsT {
    static constexpr bool kRowKind = false;
    const T* const* rp;
    const index_t* rs;
    index_t s, o;
    const T* col(index_t p) const { return rp[p] + s * rs[p] + o; }
    ASegmentsT shift(index_t r) const { return {rp, rs, s, o + r}; }
};

// ---------------------------------------------------------------- the tile
// What a tile does with c (ldc row stride, cols <= NV * W valid columns; rows past the tile's
// are not touched): kSet c = acc; kAdd c = acc + c; kChain acc starts from c (the sum runs on
// from c's value; whole vectors). Then the epilogue c = [relu](c + bias) (bias: NV * W values,
// nullable).
template <typename T>
struct Out {
    enum Mode { kSet, kAdd, kChain };
    T* c;
    index_t ldc;
    int cols;
    Mode mode;
    const T* bias = nullptr;
    bool relu = false;
};

// c (ROWS x cols) (mode)= op(a) (ROWS x depth) @ b (depth x NV*W), b(p, j) = b[p * bs + j].
// MASKED reads only the cols valid columns of b (b unpacked at a ragged right edge);
// otherwise whole vectors are read (packed b is zero-padded).
template <typename T, int ROWS, int NV, bool MASKED, typename A>
void tile(index_t depth, const A a, const T* __restrict b, index_t bs, const Out<T> o) {
    using V = Vec<T>;
    constexpr int W = kLanes<T>;
    const bool full = o.cols == NV * W;
    Lanes<T> lanes[NV];
    if (MASKED || !full)
        for (int v = 0; v < NV; ++v) lanes[v] = Lanes<T>(o.cols - v * W);
    // Every loop over ROWS is unrolled in full so acc lives in registers.
    V acc[ROWS][NV];
    if (o.mode == Out<T>::kChain) {
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i)
            for (int v = 0; v < NV; ++v) acc[i][v] = load<V>(o.c + i * o.ldc + v * W);
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i)
            for (int v = 0; v < NV; ++v) acc[i][v] = V{};
    }
    // Touch the C tile early so its lines arrive while the k loop runs.
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i)
        for (int v = 0; v < NV; ++v) __builtin_prefetch(o.c + i * o.ldc + v * W, 0, 3);

    auto step = [&](const T* bq, auto&& ai) __attribute__((always_inline)) {
        V bv[NV];
        for (int v = 0; v < NV; ++v) {
            if constexpr (MASKED)
                bv[v] = lanes[v].load(bq + v * W);
            else
                bv[v] = load<V>(bq + v * W);
        }
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i) {
            const V av = splat<T>(ai(i));
            for (int v = 0; v < NV; ++v) acc[i][v] = madd(av, bv[v], acc[i][v]);
        }
    };
    if constexpr (A::kRowKind) {
        const index_t run = a.run(depth);
        for (index_t s = 0, p0 = 0; p0 < depth; ++s, p0 += run) {
            const T* ar[ROWS];
#pragma GCC unroll 16
            for (int i = 0; i < ROWS; ++i) ar[i] = a.row(i, s);
            for (index_t t = 0; t < run; ++t, b += bs)
                step(b, [&](int i) __attribute__((always_inline)) { return ar[i][t]; });
        }
    } else if constexpr (NV >= 2 && kMaxNV == 4) {
        // AVX-512: unrolled by hand (`#pragma GCC unroll` does not survive the -flto build):
        // rolled, the full-width loop was up to 15% slower when op(a) is read in place (stride
        // lda). With AVX2's 16 registers the unrolled loop kept one of the 12 accumulators on
        // the stack (GCC 12), and rolled ran faster: a 6 x 16 tile's ACols products 25-30%
        // (attention's dV and dK, conv1's dW = cols^T @ dY).
        index_t p = 0;
        for (; p + 4 <= depth; p += 4, b += 4 * bs) {
            for (int q = 0; q < 4; ++q) {
                const T* c = a.col(p + q);
                step(b + q * bs, [&](int i) __attribute__((always_inline)) { return c[i]; });
            }
        }
        for (; p < depth; ++p, b += bs) {
            const T* c = a.col(p);
            step(b, [&](int i) __attribute__((always_inline)) { return c[i]; });
        }
    } else {  // narrow tiles, and AVX2 (above), run faster rolled
        for (index_t p = 0; p < depth; ++p, b += bs) {
            const T* c = a.col(p);
            step(b, [&](int i) __attribute__((always_inline)) { return c[i]; });
        }
    }

    // Write back: whole vectors without an epilogue (GEMM's inner tiles, the RNN) first.
    if (full && !o.bias && !o.relu) {
        if (o.mode == Out<T>::kAdd) {
#pragma GCC unroll 16
            for (int i = 0; i < ROWS; ++i)
                for (int v = 0; v < NV; ++v) {
                    T* cv = o.c + i * o.ldc + v * W;
                    store(cv, acc[i][v] + load<V>(cv));
                }
        } else {
#pragma GCC unroll 16
            for (int i = 0; i < ROWS; ++i)
                for (int v = 0; v < NV; ++v) store(o.c + i * o.ldc + v * W, acc[i][v]);
        }
        return;
    }
    V bias[NV] = {};
    if (o.bias)
        for (int v = 0; v < NV; ++v) bias[v] = load<V>(o.bias + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
        T* ci = o.c + i * o.ldc;
        for (int v = 0; v < NV; ++v) {
            V r = acc[i][v];
            if (o.mode == Out<T>::kAdd) r = r + (full ? load<V>(ci + v * W) : lanes[v].load(ci + v * W));
            if (o.bias) r = r + bias[v];
            if (o.relu) r = V{} > r ? V{} : r;  // max(0, r) that keeps NaN
            if (full)
                store(ci + v * W, r);
            else
                lanes[v].store(ci + v * W, r);
        }
    }
}

// The tile for a runtime row count 1 <= rows <= MR.
template <typename T, int MR, int NV, bool MASKED, typename A>
inline void tile_rows(int rows, index_t depth, const A& a, const T* b, index_t bs,
                      const Out<T>& o) {
    if constexpr (MR > 1) {
        if (rows < MR) return tile_rows<T, MR - 1, NV, MASKED>(rows, depth, a, b, bs, o);
    }
    tile<T, MR, NV, MASKED, A>(depth, a, b, bs, o);
}

// c (m x cols) (mode)= op(a) (m x depth) @ b: MR-row tiles, then one for the rest.
template <typename T, int MR, int NV, typename A>
void row_tiles(index_t m, index_t depth, const A& a, const T* b, index_t bs, Out<T> o) {
    index_t i = 0;
    for (; i + MR <= m; i += MR) {
        Out<T> oi = o;
        oi.c += i * o.ldc;
        tile<T, MR, NV, false>(depth, a.shift(i), b, bs, oi);
    }
    if constexpr (MR > 1) {
        if (i < m) {
            o.c += i * o.ldc;
            tile_rows<T, MR - 1, NV, false>(static_cast<int>(m - i), depth, a.shift(i), b, bs, o);
        }
    }
}

// Calls f(std::integral_constant<int, NV>{}) for a runtime vector count 1 <= nv <= kMaxNV.
template <typename F>
inline void with_vectors(int nv, F&& f) {
    if constexpr (kMaxNV >= 4) {
        if (nv == 4) return f(std::integral_constant<int, 4>{});
        if (nv == 3) return f(std::integral_constant<int, 3>{});
    }
    if (nv >= 2) return f(std::integral_constant<int, 2>{});
    f(std::integral_constant<int, 1>{});
}

// ---------------------------------------------------------------- packing
// A strided view: element (i, j) at p[i * rs + j * cs].
template <typename T>
struct View {
    const T* p;
    index_t rs, cs;
    const T* at(index_t i, index_t j) const { return p + i * rs + j * cs; }
};

#if defined(__AVX512F__)
// In-register transpose of a 16 x 16 block: r[i] lane j -> r[j] lane i.
inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {
        r[g + 0] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        r[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
        r[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        r[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[c + 4], 0x88);
        t[c + 4] = _mm512_shuffle_f32x4(r[c], r[c + 4], 0xDD);
        t[c + 8] = _mm512_shuffle_f32x4(r[c + 8], r[c + 12], 0x88);
        t[c + 12] = _mm512_shuffle_f32x4(r[c + 8], r[c + 12], 0xDD);
    }
    for (int c = 0; c < 8; ++c) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
        r[c + 8] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xDD);
    }
}

// dst[p * dst_stride + i] = src[i * ld + p] for i < rows (<= 16), p < kc: the transpose of a
// row-major block, written as rows of `rows` floats (later rows may overlap earlier padding).
inline void pack_transposed16(float* __restrict dst, index_t dst_stride, const float* src,
                              index_t ld, int rows, index_t kc) {
    const __mmask16 keep = static_cast<__mmask16>((1u << rows) - 1u);
    index_t p = 0;
    for (; p + 16 <= kc; p += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
            r[i] = i < rows ? _mm512_loadu_ps(src + i * ld + p) : _mm512_setzero_ps();
        transpose16(r);
        for (int q = 0; q < 16; ++q) _mm512_mask_storeu_ps(dst + (p + q) * dst_stride, keep, r[q]);
    }
    if (p < kc) {
        const int rest = static_cast<int>(kc - p);
        const __mmask16 lanes = static_cast<__mmask16>((1u << rest) - 1u);
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
            r[i] = i < rows ? _mm512_maskz_loadu_ps(lanes, src + i * ld + p) : _mm512_setzero_ps();
        transpose16(r);
        for (int q = 0; q < rest; ++q) _mm512_mask_storeu_ps(dst + (p + q) * dst_stride, keep, r[q]);
    }
}
#endif

#if defined(__AVX2__)
// In-register transpose of an 8 x 8 block: r[i] lane j -> r[j] lane i.
inline void transpose8(__m256 r[8]) {
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    __m256 u[8];
    for (int g = 0; g < 8; g += 4) {
        u[g + 0] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
        u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {
        r[c] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
        r[c + 4] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
    }
}

// dst[p * dst_stride + i] = src[i * ld + p] for i < 8, p < kc8 (a multiple of 8): the transpose
// of eight full row-major rows, eight k steps at a time.
inline void pack_transposed8(float* __restrict dst, index_t dst_stride, const float* src,
                             index_t ld, index_t kc8) {
    for (index_t p = 0; p < kc8; p += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld + p);
        transpose8(r);
        for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + (p + q) * dst_stride, r[q]);
    }
}
#endif

// One panel of NV vectors of op(b): rows [p0, p0 + kc) x columns [j0, j0 + cols) ->
// dst[p * NV*W + j], zero-padded to NV*W columns (the layout tile() reads with bs = NV*W).
template <typename T, int NV>
void pack_b(T* __restrict dst, const View<T>& b, index_t p0, index_t kc, index_t j0, int cols) {
    using V = Vec<T>;
    constexpr int W = kLanes<T>, NR = NV * W;
    if (b.cs == 1) {  // row p of the panel is contiguous
        const T* src = b.at(p0, j0);
        if (cols == NR) {
            for (index_t p = 0; p < kc; ++p)
                for (int v = 0; v < NV; ++v)
                    store(dst + p * NR + v * W, load<V>(src + p * b.rs + v * W));
        } else {
            for (index_t p = 0; p < kc; ++p)
                for (int v = 0; v < NV; ++v)
                    store(dst + p * NR + v * W,
                          Lanes<T>(cols - v * W).load(src + p * b.rs + v * W));
        }
        return;
    }
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        if (b.rs == 1) {  // op(b) = stored^T: panel column j is a contiguous stored row
            for (int v = 0; v < NV; ++v) {
                const int c = cols - v * W < W ? cols - v * W : W;
                if (c > 0) {
                    pack_transposed16(dst + v * W, NR, b.at(p0, j0 + v * W), b.cs, c, kc);
                    if (c < W) {  // zero the padding columns of this vector
                        const __mmask16 pad = static_cast<__mmask16>(~((1u << c) - 1u));
                        for (index_t p = 0; p < kc; ++p)
                            _mm512_mask_storeu_ps(dst + p * NR + v * W, pad, _mm512_setzero_ps());
                    }
                } else {
                    for (index_t p = 0; p < kc; ++p) store(dst + p * NR + v * W, V{});
                }
            }
            return;
        }
    }
#endif
    index_t done = 0;  // k steps already packed
#if defined(__AVX2__) && !defined(__AVX512F__)
    // op(b) = stored^T in full vectors of 8 columns (the attention's q k^T, dense dx = dy w^T):
    // 8 x 8 in-register transposes instead of one strided scalar load per element.
    if constexpr (std::is_same_v<T, float>) {
        if (b.rs == 1 && cols == NR) {
            done = kc / 8 * 8;
            for (int v = 0; v < NV; ++v)
                pack_transposed8(dst + v * W, NR, b.at(p0, j0 + v * W), b.cs, done);
        }
    }
#endif
    for (index_t p = done; p < kc; ++p) {
        for (int j = 0; j < cols; ++j) dst[p * NR + j] = *b.at(p0 + p, j0 + j);
        for (int j = cols; j < NR; ++j) dst[p * NR + j] = T(0);
    }
}

// Where a tile finds an MR-row panel of op(a): rows (ARows) or columns (ACols) with stride as.
template <typename T>
struct APanel {
    const T* p;
    index_t as;
    bool rows;
};

// The panel of op(a) at rows [i0, ...) and columns [p0, ...), read in place.
template <typename T>
APanel<T> a_in_place(const View<T>& a, index_t i0, index_t p0) {
    if (a.cs == 1 && a.rs != 1) return {a.at(i0, p0), a.rs, true};
    return {a.at(i0, p0), a.cs, false};
}

// Copies the panel rows [i0, i0 + rows) x columns [p0, p0 + kc) of op(a) into dst (MR * kc
// elements) in the layout that costs the least to produce from the source:
//   op(a) = stored^T (columns contiguous): a(i, p) at dst[p * MR + i] (columns, stride MR);
//   row-major op(a): a(i, p) at dst[i * kc + p] (rows, stride kc), a plain copy of `rows` row
//   segments that removes the source's row stride (TLB, cache-set aliasing), no transpose.
template <typename T, int MR>
APanel<T> pack_a(T* __restrict dst, const View<T>& a, index_t i0, int rows, index_t p0,
                 index_t kc) {
    if (a.cs == 1) {
        for (int i = 0; i < rows; ++i) std::memcpy(dst + i * kc, a.at(i0 + i, p0), sizeof(T) * kc);
        return {dst, kc, true};
    }
    if (a.rs == 1) {
        const T* src = a.at(i0, p0);
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<T, float>) {
            const __mmask16 keep = static_cast<__mmask16>((1u << rows) - 1u);
            for (index_t p = 0; p < kc; ++p)
                _mm512_mask_storeu_ps(dst + p * MR, keep, _mm512_maskz_loadu_ps(keep, src + p * a.cs));
            return {dst, MR, false};
        }
#endif
        // A full panel copies a constant size (inlined moves); a library memcpy call per k step
        // cost the weight-gradient products (x^T @ dy) a third of their time.
        if (rows == MR)
            for (index_t p = 0; p < kc; ++p) std::memcpy(dst + p * MR, src + p * a.cs, sizeof(T) * MR);
        else
            for (index_t p = 0; p < kc; ++p) std::memcpy(dst + p * MR, src + p * a.cs, sizeof(T) * rows);
    } else {
        for (index_t p = 0; p < kc; ++p)
            for (int i = 0; i < rows; ++i) dst[p * MR + i] = *a.at(i0 + i, p0 + p);
    }
    return {dst, MR, false};
}

}  // namespace mk
}  // namespace fastdl
