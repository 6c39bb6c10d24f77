// float32 GEMM building blocks for gemm.cpp: SIMD traits, the register-blocked micro-kernel and
// the packing routines (BLIS / GotoBLAS style). Only gemm.cpp includes this header.
//
// Orientation (C is row-major): a micro-tile is ROWS x (NV vectors) of C; each k step loads NV
// vectors of one row of op(b) and broadcasts ROWS scalars of one column of op(a), so the FMAs
// are acc[i][v] += a(i, p) * b(p, v*W .. v*W+W).
//   AVX-512: MR x NR = 12 x 32 (24 zmm accumulators), AVX2+FMA: 6 x 16 (12 ymm accumulators).
// Packed b (NR-column panel): b(p, j) at bp[p * NR + j], zero-padded to NR columns. Packed a
// (MR-row panel): a(i, p) at ap[p * MR + i] (from a transposed op(a)) or ap[i * kc + p] (a copy
// of row-major rows). The micro-kernel also reads op(a) and a row-major op(b) in place (see
// AMode and MASKED), which is how shapes that reuse an operand little skip the packing copy.
#pragma once

#include "common.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define FASTDL_GEMM_SIMD 1
#endif

#ifdef FASTDL_GEMM_SIMD

#include <array>
#include <cstring>
#include <utility>

namespace fastdl {
namespace gemm_detail {

#if defined(__AVX512F__)
struct Simd {
    using V = __m512;
    using Mask = __mmask16;
    static constexpr int W = 16;   // floats per vector
    static constexpr int MR = 12;  // rows of a micro-tile
    static constexpr int NV = 2;   // vectors per micro-tile row
    static constexpr const char* name = "avx512";
    static constexpr bool kCheapMask = true;  // masked loads/stores cost what plain ones do
    static V zero() { return _mm512_setzero_ps(); }
    static V bcast(const float* p) { return _mm512_set1_ps(*p); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static Mask mask(int lanes) {
        return lanes >= W ? Mask(0xFFFF) : Mask((1u << (lanes > 0 ? lanes : 0)) - 1u);
    }
    static V loadm(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    static void storem(float* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
};
#else
struct Simd {
    using V = __m256;
    using Mask = __m256i;
    static constexpr int W = 8;
    static constexpr int MR = 6;
    static constexpr int NV = 2;
    static constexpr const char* name = "avx2";
    static constexpr bool kCheapMask = false;
    static V zero() { return _mm256_setzero_ps(); }
    static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static Mask mask(int lanes) {
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), iota);
    }
    static V loadm(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    static void storem(float* p, V v, Mask m) { _mm256_maskstore_ps(p, m, v); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
};
#endif

constexpr int MR = Simd::MR;
constexpr int NR = Simd::NV * Simd::W;

// How the micro-kernel finds a(i, p) from its pointer a and stride as:
//   kColumns: a[p * as + i]  (packed panels with as = MR, or op(a) = stored^T with as = lda)
//   kRows:    a[i * as + p]  (op(a) = stored a, row-major, as = lda)
enum AMode { kColumns = 0, kRows = 1 };

// c (ROWS x nr, row stride ldc) (+)= a (ROWS x kc) @ b (kc x nr), nr <= NV * W.
// b(p, j) is b[p * bs + j]; MASKED loads only the nr valid columns of b (unpacked b), otherwise
// whole vectors are read (packed b is zero-padded to NR columns). c is written for j < nr only.
template <int ROWS, int NV, int AM, bool MASKED>
void micro_kernel(index_t kc, const float* __restrict a, index_t as, const float* __restrict b,
                  index_t bs, int nr, float* __restrict c, index_t ldc, bool accumulate) {
    using V = Simd::V;
    constexpr int W = Simd::W;
    typename Simd::Mask mk[NV];
    for (int v = 0; v < NV; ++v) mk[v] = Simd::mask(nr - v * W);
    // Every loop over ROWS is unrolled in full so acc lives in registers (a loop left rolled
    // would index acc and force it to the stack).
    V acc[ROWS][NV];
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = Simd::zero();
    const float* ar[ROWS];
    if constexpr (AM == kRows) {
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i) ar[i] = a + i * as;
    }
    // Touch the C tile early so its lines arrive while the k loop runs.
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i)
        for (int v = 0; v < NV; ++v)
            _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + v * W), _MM_HINT_T0);

    // One k step: acc += a(:, p + q) * b(p + q, :) with a, b at step p.
    auto step = [&](index_t p, index_t q) __attribute__((always_inline)) {
        const float* bq = b + q * bs;
        V bv[NV];
        for (int v = 0; v < NV; ++v)
            bv[v] = MASKED ? Simd::loadm(bq + v * W, mk[v]) : Simd::load(bq + v * W);
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i) {
            const V ai = AM == kRows ? Simd::bcast(ar[i] + p + q) : Simd::bcast(a + q * as + i);
            for (int v = 0; v < NV; ++v) acc[i][v] = Simd::fma(ai, bv[v], acc[i][v]);
        }
    };
    if constexpr (AM == kColumns && NV == Simd::NV) {
        // Unrolled by hand: `#pragma GCC unroll` does not survive the -flto build of the module,
        // and rolled, this full-width loop is up to 15% slower when op(a) is read in place
        // (stride lda). Narrow tiles (NV = 1, tiny products) run faster rolled.
        index_t p = 0;
        for (; p + 4 <= kc; p += 4) {
            step(p, 0);
            step(p, 1);
            step(p, 2);
            step(p, 3);
            b += 4 * bs;
            a += 4 * as;
        }
        for (; p < kc; ++p) {
            step(p, 0);
            b += bs;
            a += as;
        }
    } else {  // kRows (12 row pointers fill the registers: unrolling adds spills), narrow tiles
        for (index_t p = 0; p < kc; ++p) {
            step(p, 0);
            b += bs;
            if constexpr (AM == kColumns) a += as;
        }
    }

    // Write back: accumulate adds the old c (never read otherwise: it may be uninitialised).
    if constexpr (Simd::kCheapMask) {  // AVX-512: one masked path, no branches
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i) {
            float* ci = c + i * ldc;
            for (int v = 0; v < NV; ++v) {
                const auto rm = accumulate ? mk[v] : typename Simd::Mask(0);
                Simd::storem(ci + v * W, Simd::add(acc[i][v], Simd::loadm(ci + v * W, rm)), mk[v]);
            }
        }
    } else {
        const bool full = nr == NV * W;
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i) {
            float* ci = c + i * ldc;
            for (int v = 0; v < NV; ++v) {
                V r = acc[i][v];
                if (full) {
                    if (accumulate) r = Simd::add(r, Simd::load(ci + v * W));
                    Simd::store(ci + v * W, r);
                } else {
                    if (accumulate) r = Simd::add(r, Simd::loadm(ci + v * W, mk[v]));
                    Simd::storem(ci + v * W, r, mk[v]);
                }
            }
        }
    }
}

using KernelFn = void (*)(index_t, const float*, index_t, const float*, index_t, int, float*,
                          index_t, bool);

// kernel_table()[rows - 1][nv - 1][amode][masked]
using KernelTable = std::array<std::array<std::array<std::array<KernelFn, 2>, 2>, Simd::NV>, MR>;

template <int ROWS, int NV>
constexpr void fill_kernels(KernelTable& t) {
    t[ROWS - 1][NV - 1][kColumns][0] = &micro_kernel<ROWS, NV, kColumns, false>;
    t[ROWS - 1][NV - 1][kColumns][1] = &micro_kernel<ROWS, NV, kColumns, true>;
    t[ROWS - 1][NV - 1][kRows][0] = &micro_kernel<ROWS, NV, kRows, false>;
    t[ROWS - 1][NV - 1][kRows][1] = &micro_kernel<ROWS, NV, kRows, true>;
}

template <int... R>
KernelTable make_kernel_table(std::integer_sequence<int, R...>) {
    KernelTable t{};
    (fill_kernels<R + 1, 1>(t), ...);
    (fill_kernels<R + 1, Simd::NV>(t), ...);
    return t;
}

inline const KernelTable& kernel_table() {
    static const KernelTable table = make_kernel_table(std::make_integer_sequence<int, MR>{});
    return table;
}

// ---------------------------------------------------------------- packing
// A strided view: element (i, j) at p[i * rs + j * cs].
struct View {
    const float* p;
    index_t rs, cs;
    const float* at(index_t i, index_t j) const { return p + i * rs + j * cs; }
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

// Where the micro-kernel finds an MR-row panel of op(a): pointer, stride and AMode.
struct APanel {
    const float* p;
    index_t as;
    int mode;
};

// The panel of op(a) at rows [i0, ...) and columns [p0, ...), read in place.
inline APanel a_in_place(const View& a, index_t i0, index_t p0) {
    if (a.cs == 1 && a.rs != 1) return APanel{a.at(i0, p0), a.rs, kRows};
    return APanel{a.at(i0, p0), a.cs, kColumns};
}

// Copies the panel rows [i0, i0 + rows) x columns [p0, p0 + kc) of op(a) into dst (MR * kc
// floats) in the layout that costs the least to produce from the source, and says how to read it:
//   op(a) = stored^T (columns contiguous): a(i, p) at dst[p * MR + i] (kColumns, stride MR);
//   row-major op(a): a(i, p) at dst[i * kc + p] (kRows, stride kc), a plain copy of `rows`
//   row segments that removes the source's row stride (TLB, cache-set aliasing) and needs no
//   transpose.
inline APanel pack_a_panel(float* __restrict dst, const View& a, index_t i0, int rows, index_t p0,
                           index_t kc) {
    if (a.cs == 1) {
        for (int i = 0; i < rows; ++i) std::memcpy(dst + i * kc, a.at(i0 + i, p0), sizeof(float) * kc);
        return APanel{dst, kc, kRows};
    }
    if (a.rs == 1) {
        const float* src = a.at(i0, p0);
#if defined(__AVX512F__)
        const __mmask16 keep = static_cast<__mmask16>((1u << rows) - 1u);
        for (index_t p = 0; p < kc; ++p)
            _mm512_mask_storeu_ps(dst + p * MR, keep, _mm512_maskz_loadu_ps(keep, src + p * a.cs));
#else
        for (index_t p = 0; p < kc; ++p)
            std::memcpy(dst + p * MR, src + p * a.cs, sizeof(float) * rows);
#endif
    } else {
        for (index_t p = 0; p < kc; ++p)
            for (int i = 0; i < rows; ++i) dst[p * MR + i] = *a.at(i0 + i, p0 + p);
    }
    return APanel{dst, MR, kColumns};
}

// One NR-column panel of op(b): rows [p0, p0 + kc) x columns [j0, j0 + cols) -> dst[p * NR + j],
// zero-padded to NR columns.
inline void pack_b_panel(float* __restrict dst, const View& b, index_t p0, index_t kc, index_t j0,
                         int cols) {
    constexpr int W = Simd::W;
    if (b.cs == 1) {  // row p of the panel is contiguous
        typename Simd::Mask mk[Simd::NV];
        for (int v = 0; v < Simd::NV; ++v) mk[v] = Simd::mask(cols - v * W);
        const float* src = b.at(p0, j0);
        if (cols == NR) {
            for (index_t p = 0; p < kc; ++p)
                for (int v = 0; v < Simd::NV; ++v)
                    Simd::store(dst + p * NR + v * W, Simd::load(src + p * b.rs + v * W));
        } else {
            for (index_t p = 0; p < kc; ++p)
                for (int v = 0; v < Simd::NV; ++v)
                    Simd::store(dst + p * NR + v * W, Simd::loadm(src + p * b.rs + v * W, mk[v]));
        }
        return;
    }
#if defined(__AVX512F__)
    if (b.rs == 1) {  // op(b) = stored^T: panel column j is a contiguous stored row
        for (int v = 0; v < Simd::NV; ++v) {
            const int c = cols - v * W < W ? cols - v * W : W;
            if (c > 0) {
                pack_transposed16(dst + v * W, NR, b.at(p0, j0 + v * W), b.cs, c, kc);
                if (c < W) {  // zero the padding columns of this vector
                    const __mmask16 pad = static_cast<__mmask16>(~((1u << c) - 1u));
                    for (index_t p = 0; p < kc; ++p)
                        _mm512_mask_storeu_ps(dst + p * NR + v * W, pad, _mm512_setzero_ps());
                }
            } else {
                for (index_t p = 0; p < kc; ++p) _mm512_storeu_ps(dst + p * NR + v * W, _mm512_setzero_ps());
            }
        }
        return;
    }
#endif
    for (index_t p = 0; p < kc; ++p) {
        for (int j = 0; j < cols; ++j) dst[p * NR + j] = *b.at(p0 + p, j0 + j);
        for (int j = cols; j < NR; ++j) dst[p * NR + j] = 0.0f;
    }
}

}  // namespace gemm_detail
}  // namespace fastdl

#endif  // FASTDL_GEMM_SIMD
