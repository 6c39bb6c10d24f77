// Affine resampling of channels-last images (the kernel of RandomRotation, RandomZoom and
// RandomTranslation) and its adjoint. Semantics: python/fastdl/layers/preprocessing/
// image_sampling.py (Keras's affine_transform: output pixel (x, y) reads the input at
// (a0 x + a1 y + a2, b0 x + b1 y + b2), the image extended by the fill mode).
#pragma once

#include "common.h"

namespace fastdl {

enum class FillMode { reflect = 0, wrap = 1, constant = 2, nearest = 3 };

template <typename T>
void affine_transform(const T* images, index_t batch, index_t height, index_t width,
                      index_t channels, const double* matrices, bool bilinear, FillMode fill,
                      T fill_value, T* out);

template <typename T>
void affine_transform_backward(const T* dy, index_t batch, index_t height, index_t width,
                               index_t channels, const double* matrices, bool bilinear,
                               FillMode fill, T* dx);

}  // namespace fastdl
