// Building blocks shared by the conv2d algorithms (conv2d.cpp: im2col + GEMM,
// conv2d_winograd.cpp): SIMD packet sizes, the per-thread scratch workspace's slicer, and the
// single-threaded tile product (microkernel.h) with its fused bias/ReLU epilogue.
#pragma once

#include "common.h"
#include "conv2d.h"
#include "microkernel.h"

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

static_assert(Simd<float>::size == mk::kLanes<float> && Simd<double>::size == mk::kLanes<double>,
              "the conv paddings (multiples of Eigen's packet) must fit the micro-kernel's vectors");

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

// Single-threaded tile product: c (m, n) (+)= op(a) (m, depth) @ b (depth, n), where
// op(a)[r, t] = a[r*sa + t] (A_ROWS) or a[r + t*sa]; n must be a multiple of the packet size
// (callers pad b, c and bias). The epilogue [relu](c + bias) is applied once, at the end.
template <typename T, bool A_ROWS>
void tile_gemm(index_t m, index_t n, index_t depth, const T* a, index_t sa, const T* b,
               index_t ldb, T* c, index_t ldc, bool accumulate, const T* bias = nullptr,
               bool relu = false) {
    constexpr int PS = mk::kLanes<T>;
    for (index_t t0 = 0; t0 < depth; t0 += kDepthBlock) {
        const index_t dt = std::min(kDepthBlock, depth - t0);
        const bool last = t0 + dt == depth;
        const T* bt = b + t0 * ldb;
        for (index_t j0 = 0; j0 < n; j0 += mk::kMaxNV * PS) {
            const int np = static_cast<int>(std::min<index_t>(mk::kMaxNV, (n - j0) / PS));
            const mk::Out<T> o{c + j0, ldc, np * PS,
                               accumulate || t0 > 0 ? mk::Out<T>::kAdd : mk::Out<T>::kSet,
                               last && bias ? bias + j0 : nullptr, last && relu};
            mk::with_vectors(np, [&](auto k) {
                constexpr int NV = decltype(k)::value;
                if constexpr (A_ROWS)
                    mk::row_tiles<T, mk::kRows<NV>, NV>(m, dt, mk::ARows<T>{a + t0, sa}, bt + j0,
                                                        ldb, o);
                else
                    mk::row_tiles<T, mk::kRows<NV>, NV>(m, dt, mk::ACols<T>{a + t0 * sa, sa},
                                                        bt + j0, ldb, o);
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
