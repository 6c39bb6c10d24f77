// 2-D convolution, NHWC, kernel (KH, KW, C/groups, F): im2col + GEMM forward and backward
// (tiled: see conv2d.cpp). Scratch memory is bounded: per-thread tiles of ~160 KiB, packed
// kernels, and in the backward one chunk of dcols (conv2d_chunk_bytes).
#pragma once

#include "common.h"

#include <cstdint>

namespace fastdl {

// Output size and leading padding of one spatial axis.
struct WindowAxis {
    index_t out;         // number of window positions (0 when the window does not fit)
    index_t pad_before;  // zero padding before the first element (the rest goes after)
};

// The one output-size rule of every windowed op (conv, pooling), TensorFlow/Keras's:
//   eff   = (k - 1) * dilation + 1
//   valid: out = (in - eff) / stride + 1 when eff <= in, else 0; no padding
//   same:  out = ceil(in / stride); total pad = max((out - 1) * stride + eff - in, 0),
//          pad_before = total / 2 (the extra element goes after: bottom / right)
// in, k, stride, dilation must be >= 1; throws invalid_argument when eff overflows int64.
WindowAxis window_output_size(index_t in, index_t k, index_t stride, index_t dilation, bool same,
                              const char* what);

struct Conv2dParams {
    index_t n, h, w, c;         // x (N, H, W, C)
    index_t kh, kw, f;          // kernel (KH, KW, C/groups, F)
    index_t sh, sw, dh, dw;     // strides, dilation
    index_t pad_top, pad_left;  // zero padding before row 0 / column 0
    index_t oh, ow;             // y (N, OH, OW, F)
    index_t groups;             // C and F are multiples of groups
};

// Fills pad_top, pad_left, oh, ow from the other fields with window_output_size.
Conv2dParams conv2d_params(index_t n, index_t h, index_t w, index_t c, index_t kh, index_t kw,
                           index_t f, index_t sh, index_t sw, index_t dh, index_t dw,
                           index_t groups, bool same, const char* what);

// Max pooling fused into conv2d_forward: ph x pw windows with strides ph, pw and no padding
// over the convolution's output y (N,OH,OW,F) (OH >= ph, OW >= pw) -> pooled
// (N, OH/ph, OW/pw, F) (floor) and, when not null, argmax: the flat index into y of each
// window's maximum. Windows are scanned in max_pool2d_forward's order with its rule, so the
// result is bitwise that of the two passes; each tile is pooled while it is in cache.
template <typename T>
struct MaxPoolOutput {
    index_t ph, pw;
    T* pooled;
    std::int64_t* argmax;  // null: the maxima alone (inference)
};

// x (N,H,W,C), w (KH,KW,C/G,F), bias (F) or null -> y (N,OH,OW,F) = [relu](conv(x, w) + bias)
// and, with pool, its max pooling. y may be null when pool is given (inference: the
// convolution's output is then never written).
template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p,
                    bool relu, const MaxPoolOutput<T>* pool = nullptr);

// dy (N,OH,OW,F), x, w -> dx (N,H,W,C), dw (KH,KW,C/G,F), dbias (F); each output is
// overwritten and may be null to skip it. relu_y (the forward's output, or null): when given,
// the forward was fused with ReLU and dy is first multiplied by (relu_y > 0).
template <typename T>
void conv2d_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w,
                     const T* relu_y, const Conv2dParams& p);

// The algorithm of 3x3, stride-1, undilated, ungrouped convolutions (every other shape runs
// im2col + GEMM): kAuto picks Winograd F(2x2, 3x3) (conv2d_winograd.cpp) when C and F are both
// >= 16, where it is faster; kIm2col and kWinograd force one (tests, benchmarks).
enum class Conv2dAlgorithm { kAuto = 0, kIm2col = 1, kWinograd = 2 };
void set_conv2d_algorithm(Conv2dAlgorithm algorithm);
Conv2dAlgorithm conv2d_algorithm();

// Bytes the backward's dcols buffers (chunks of output rows before col2im; one per thread when
// threads take whole images) may use in all (default 512 KiB; a tuning knob). Other scratch is
// per thread and L2-sized.
void set_conv2d_chunk_bytes(index_t bytes);
index_t conv2d_chunk_bytes();

}  // namespace fastdl
