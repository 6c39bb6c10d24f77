// Building blocks shared by the conv2d algorithms (conv2d.cpp: im2col + GEMM,
// conv2d_winograd.cpp): SIMD packet sizes and register blocking, the per-thread scratch
// workspace's slicer, and the single-threaded tile product with its fused bias/ReLU epilogue.
#pragma once

#include "common.h"
#include "conv2d.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

namespace fastdl {
namespace conv_tiles {

namespace ei = Eigen::internal;

constexpr index_t kDepthBlock = 128;                // reduction block (B panel stays in L1)
constexpr index_t kMinParallelMacs = index_t{1} << 18;  // smaller convolutions: one thread

template <typename T>
struct Simd {
    using P = typename ei::packet_traits<T>::type;
    static constexpr int size = ei::unpacket_traits<P>::size;
};

// Register blocking from the SIMD register count (EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS may
// use sizeof, so it is read in C++, not in #if): accumulators MR x NP <= 24 of 32 registers
// (AVX-512), <= 8 of 16.
constexpr int kRegisters = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS;
constexpr int kMaxPackets = kRegisters >= 32 ? 4 : 2;
constexpr int mr_for(int np) {
    return kRegisters >= 32 ? (np >= 4 ? 6 : 8) : (np >= 2 ? 4 : 8);
}

// Calls f(std::integral_constant<int, NP>{}) for a runtime packet count np in 1..kMaxPackets.
template <typename F>
inline void with_packets(int np, F&& f) {
    switch (np) {
        case 4: f(std::integral_constant<int, 4>{}); break;
        case 3: f(std::integral_constant<int, 3>{}); break;
        case 2: f(std::integral_constant<int, 2>{}); break;
        default: f(std::integral_constant<int, 1>{}); break;
    }
}

// Carves consecutive 64-byte aligned slices out of one workspace of `count` elements (callers
// size the workspace as the sum of Slicer::size of every slice they take).
template <typename T>
struct Slicer {
    T* next;
    T* end;
    Slicer(T* base, index_t count) : next(base), end(base + count) {}
    T* take(index_t count) {
        T* p = next;
        next += size(count);
        assert(next <= end && "conv2d workspace too small");
        return p;
    }
    static index_t size(index_t count) {
        return round_up(count, 64 / static_cast<index_t>(sizeof(T)));
    }
};

// c[r, :] = [relu]((c[r, :] if accumulate) + acc[r] + bias) for r < rows; bias nullable.
template <typename T, int MR, int NP>
inline void store_tile(const typename Simd<T>::P (&acc)[MR][NP], index_t rows, T* __restrict c,
                       index_t ldc, bool accumulate, const T* __restrict bias, bool relu) {
    using P = typename Simd<T>::P;
    constexpr int PS = Simd<T>::size;
    P bv[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) bv[j] = bias ? ei::ploadu<P>(bias + j * PS) : ei::pset1<P>(T(0));
    const P zero = ei::pset1<P>(T(0));
#pragma GCC unroll 16  // >= MR (up to 12): a partial unroll leaves acc in memory
    for (int r = 0; r < MR; ++r) {
        if (r >= rows) break;
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) {
            T* cp = c + r * ldc + j * PS;
            P v = acc[r][j];
            if (accumulate) v = ei::padd(v, ei::ploadu<P>(cp));
            if (bias) v = ei::padd(v, bv[j]);
            if (relu) v = ei::pmax(v, zero);  // pmax(NaN, 0) keeps NaN like the scalar path
            ei::pstoreu(cp, v);
        }
    }
}

// c[r, 0:NP*PS] (+)= sum_t a(r, t) * b[t, 0:NP*PS] for r < rows <= MR.
// a(r, t) = a[r * sa + t] (A_ROWS) or a[r + t * sa] (A^T: columns of a row-major a).
// Rows past `rows` repeat the last row (in-bounds reads) and are not stored.
// Epilogue (last reduction block only): c = [relu](c + bias[col]) with bias nullable.
template <typename T, int MR, int NP, bool A_ROWS>
void micro_kernel(index_t rows, index_t depth, const T* __restrict a, index_t sa,
                  const T* __restrict b, index_t ldb, T* __restrict c, index_t ldc,
                  bool accumulate, const T* __restrict bias, bool relu) {
    using P = typename Simd<T>::P;
    constexpr int PS = Simd<T>::size;
    P acc[MR][NP];
#pragma GCC unroll 16  // >= MR (up to 12): a partial unroll leaves acc in memory
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) acc[r][j] = ei::pset1<P>(T(0));
    if (A_ROWS) {
        const T* ar[MR];
#pragma GCC unroll 16  // >= MR (up to 12): a partial unroll leaves acc in memory
        for (int r = 0; r < MR; ++r) ar[r] = a + std::min<index_t>(r, rows - 1) * sa;
        for (index_t t = 0; t < depth; ++t) {
            P bj[NP];
#pragma GCC unroll 4
            for (int j = 0; j < NP; ++j) bj[j] = ei::ploadu<P>(b + t * ldb + j * PS);
#pragma GCC unroll 16  // >= MR (up to 12): a partial unroll leaves acc in memory
            for (int r = 0; r < MR; ++r) {
                const P av = ei::pset1<P>(ar[r][t]);
#pragma GCC unroll 4
                for (int j = 0; j < NP; ++j) acc[r][j] = ei::pmadd(av, bj[j], acc[r][j]);
            }
        }
    } else {
        index_t off[MR];
#pragma GCC unroll 16  // >= MR (up to 12): a partial unroll leaves acc in memory
        for (int r = 0; r < MR; ++r) off[r] = std::min<index_t>(r, rows - 1);
        for (index_t t = 0; t < depth; ++t) {
            P bj[NP];
#pragma GCC unroll 4
            for (int j = 0; j < NP; ++j) bj[j] = ei::ploadu<P>(b + t * ldb + j * PS);
            const T* at = a + t * sa;
#pragma GCC unroll 16  // >= MR (up to 12): a partial unroll leaves acc in memory
            for (int r = 0; r < MR; ++r) {
                const P av = ei::pset1<P>(at[off[r]]);
#pragma GCC unroll 4
                for (int j = 0; j < NP; ++j) acc[r][j] = ei::pmadd(av, bj[j], acc[r][j]);
            }
        }
    }
    store_tile<T, MR, NP>(acc, rows, c, ldc, accumulate, bias, relu);
}

template <typename T, int NP, bool A_ROWS>
void row_blocks(index_t m, index_t depth, const T* a, index_t sa, const T* b, index_t ldb, T* c,
                index_t ldc, bool accumulate, const T* bias, bool relu) {
    constexpr int MR = mr_for(NP);
    for (index_t r0 = 0; r0 < m; r0 += MR) {
        const T* ar = A_ROWS ? a + r0 * sa : a + r0;
        micro_kernel<T, MR, NP, A_ROWS>(std::min<index_t>(MR, m - r0), depth, ar, sa, b, ldb,
                                        c + r0 * ldc, ldc, accumulate, bias, relu);
    }
}

// Single-threaded tile product: c (m, n) (+)= op(a) (m, depth) @ b (depth, n), where
// op(a)[r, t] = a[r*sa + t] (A_ROWS) or a[r + t*sa]; n must be a multiple of the packet size
// (callers pad b, c and bias). The epilogue [relu](c + bias) is applied once, at the end.
template <typename T, bool A_ROWS>
void tile_gemm(index_t m, index_t n, index_t depth, const T* a, index_t sa, const T* b,
               index_t ldb, T* c, index_t ldc, bool accumulate, const T* bias = nullptr,
               bool relu = false) {
    constexpr int PS = Simd<T>::size;
    for (index_t t0 = 0; t0 < depth; t0 += kDepthBlock) {
        const index_t dt = std::min(kDepthBlock, depth - t0);
        const bool acc = accumulate || t0 > 0;
        const bool last = t0 + dt == depth;
        const T* at = A_ROWS ? a + t0 : a + t0 * sa;
        const T* bt = b + t0 * ldb;
        for (index_t j0 = 0; j0 < n; j0 += kMaxPackets * PS) {
            const int np = static_cast<int>(std::min<index_t>(kMaxPackets, (n - j0) / PS));
            const T* bj = last && bias ? bias + j0 : nullptr;
            const bool rj = last && relu;
            with_packets(np, [&](auto k) {
                row_blocks<T, decltype(k)::value, A_ROWS>(m, dt, at, sa, bt + j0, ldb, c + j0,
                                                          ldc, acc, bj, rj);
            });
        }
    }
}

}  // namespace conv_tiles

// Winograd F(2x2, 3x3) (conv2d_winograd.cpp): whether conv2d_forward / conv2d_backward hand
// the call to it (the shape qualifies and the algorithm setting allows it), and its two passes,
// with conv2d_forward's and conv2d_backward's contracts.
bool winograd_applies(const Conv2dParams& p);
// pool: null or a 2x2 window (conv2d_forward's MaxPoolOutput); y may then be null.
template <typename T>
void winograd_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p,
                      bool relu, const MaxPoolOutput<T>* pool);
template <typename T>
void winograd_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w,
                       const T* relu_y, const Conv2dParams& p);

}  // namespace fastdl
