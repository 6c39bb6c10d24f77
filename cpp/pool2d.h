// 2-D max and average pooling, NHWC. Window positions follow conv2d's output-size rule
// (window_output_size with dilation 1): the same TensorFlow valid/same convention.
#pragma once

#include "common.h"
#include "conv2d.h"

namespace fastdl {

struct Pool2dParams {
    index_t n, h, w, c;         // x (N, H, W, C)
    index_t kh, kw;             // pool window
    index_t sh, sw;             // strides
    index_t pad_top, pad_left;  // padding before row 0 / column 0 (never part of a window)
    index_t oh, ow;             // y (N, OH, OW, C)
};

// Fills pad_top, pad_left, oh, ow with window_output_size (dilation 1).
Pool2dParams pool2d_params(index_t n, index_t h, index_t w, index_t c, index_t kh, index_t kw,
                           index_t sh, index_t sw, bool same, const char* what);

// x (N,H,W,C) -> y (N,OH,OW,C) window maxima, argmax (N,OH,OW,C) their flat indices into x
// (the first maximum on ties; padding never wins: every window holds an element of x).
// argmax may be null (inference: only the maxima, a third of the memory traffic).
template <typename T>
void max_pool2d_forward(T* y, std::int64_t* argmax, const T* x, const Pool2dParams& p);

// True when every argmax[n, ...] lies in image n of x: [n*H*W*C, (n+1)*H*W*C).
bool max_pool2d_argmax_valid(const std::int64_t* argmax, const Pool2dParams& p);

// True when no two windows overlap (strides >= pool size).
bool max_pool2d_windows_disjoint(const Pool2dParams& p);

// dy (N,OH,OW,C), argmax (N,OH,OW,C) -> dx (N,H,W,C) overwritten: dx[argmax[i]] += dy[i].
// Overlapping windows scatter, so argmax must first pass max_pool2d_argmax_valid (threads own
// whole images). Disjoint windows write each dx element once by comparing its index with its
// window's argmax (never indexing with argmax, so any values are memory-safe). Returns the
// number of dy elements routed to dx: N*OH*OW*C exactly when every argmax points into its own
// window (the binding rejects other counts).
template <typename T>
index_t max_pool2d_backward(T* dx, const T* dy, const std::int64_t* argmax,
                            const Pool2dParams& p);

// x (N,H,W,C) -> y (N,OH,OW,C) window means over the elements of x (padding not counted).
template <typename T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dParams& p);

// dy (N,OH,OW,C) -> dx (N,H,W,C) overwritten: each window spreads dy / count over its elements.
template <typename T>
void avg_pool2d_backward(T* dx, const T* dy, const Pool2dParams& p);

}  // namespace fastdl
