// Affine resampling and its adjoint (see image_transform.h). One output pixel at a time: its
// taps (1 for nearest, 4 for bilinear) are input indices mapped into the image by the fill
// mode, with weights; a tap outside the image in constant mode reads fill_value. The backward
// pass scatters dy along the same taps; images are independent, so it runs one image per
// thread without atomics.
#include "image_transform.h"

#include <omp.h>

#include <cmath>
#include <cstring>

namespace fastdl {
namespace {

// Coordinates beyond this are far outside any image: clamping them keeps floor() and the
// integer conversion defined (a NaN coordinate reads as outside).
constexpr double kFar = 1e12;

struct Tap {
    index_t index;  // pixel offset in the image, or -1 for fill_value
    double weight;
};

inline index_t map_index(index_t i, index_t n, FillMode fill) {
    switch (fill) {
        case FillMode::reflect: {  // d c b a | a b c d | d c b a
            const index_t p = 2 * n;
            index_t m = i % p;
            if (m < 0) m += p;
            return m < n ? m : p - 1 - m;
        }
        case FillMode::wrap: {
            index_t m = i % n;
            return m < 0 ? m + n : m;
        }
        case FillMode::constant:
            return (i >= 0 && i < n) ? i : -1;
        default:
            return i < 0 ? 0 : (i >= n ? n - 1 : i);
    }
}

inline double clamp_far(double c) {
    if (!(c == c)) return -kFar;  // NaN
    return c < -kFar ? -kFar : (c > kFar ? kFar : c);
}

// The taps of output pixel (x, y) of image b; returns their count.
inline int taps_of(const double* m, index_t x, index_t y, index_t height, index_t width,
                   bool bilinear, FillMode fill, Tap* taps) {
    const double xs = clamp_far(m[0] * x + m[1] * y + m[2]);
    const double ys = clamp_far(m[3] * x + m[4] * y + m[5]);
    if (!bilinear) {  // ties to even, as np.rint and Keras's torch/JAX backends round
        const index_t iy = map_index(static_cast<index_t>(std::nearbyint(ys)), height, fill);
        const index_t ix = map_index(static_cast<index_t>(std::nearbyint(xs)), width, fill);
        taps[0] = {(iy < 0 || ix < 0) ? -1 : iy * width + ix, 1.0};
        return 1;
    }
    const double y0 = std::floor(ys), x0 = std::floor(xs);
    const double fy = ys - y0, fx = xs - x0;
    const index_t iy[2] = {map_index(static_cast<index_t>(y0), height, fill),
                           map_index(static_cast<index_t>(y0) + 1, height, fill)};
    const index_t ix[2] = {map_index(static_cast<index_t>(x0), width, fill),
                           map_index(static_cast<index_t>(x0) + 1, width, fill)};
    const double wy[2] = {1.0 - fy, fy}, wx[2] = {1.0 - fx, fx};
    int k = 0;
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b)
            taps[k++] = {(iy[a] < 0 || ix[b] < 0) ? -1 : iy[a] * width + ix[b], wy[a] * wx[b]};
    return 4;
}

}  // namespace

template <typename T>
void affine_transform(const T* images, index_t batch, index_t height, index_t width,
                      index_t channels, const double* matrices, bool bilinear, FillMode fill,
                      T fill_value, T* out) {
    const index_t image_size = height * width * channels;
#pragma omp parallel for collapse(2) schedule(static)
    for (index_t b = 0; b < batch; ++b) {
        for (index_t y = 0; y < height; ++y) {
            const T* img = images + b * image_size;
            const double* m = matrices + 6 * b;
            T* row = out + b * image_size + y * width * channels;
            Tap taps[4];
            for (index_t x = 0; x < width; ++x) {
                const int n = taps_of(m, x, y, height, width, bilinear, fill, taps);
                T* o = row + x * channels;
                for (index_t c = 0; c < channels; ++c) o[c] = T(0);
                for (int t = 0; t < n; ++t) {
                    const T w = static_cast<T>(taps[t].weight);
                    if (taps[t].index < 0) {
                        if (fill_value != T(0))
                            for (index_t c = 0; c < channels; ++c) o[c] += w * fill_value;
                        continue;
                    }
                    const T* src = img + taps[t].index * channels;
                    for (index_t c = 0; c < channels; ++c) o[c] += w * src[c];
                }
            }
        }
    }
}

template <typename T>
void affine_transform_backward(const T* dy, index_t batch, index_t height, index_t width,
                               index_t channels, const double* matrices, bool bilinear,
                               FillMode fill, T* dx) {
    const index_t image_size = height * width * channels;
    std::memset(dx, 0, sizeof(T) * static_cast<size_t>(batch * image_size));
#pragma omp parallel for schedule(static)
    for (index_t b = 0; b < batch; ++b) {
        const double* m = matrices + 6 * b;
        T* grad = dx + b * image_size;
        const T* g = dy + b * image_size;
        Tap taps[4];
        for (index_t y = 0; y < height; ++y)
            for (index_t x = 0; x < width; ++x) {
                const int n = taps_of(m, x, y, height, width, bilinear, fill, taps);
                const T* gi = g + (y * width + x) * channels;
                for (int t = 0; t < n; ++t) {
                    if (taps[t].index < 0) continue;
                    const T w = static_cast<T>(taps[t].weight);
                    T* d = grad + taps[t].index * channels;
                    for (index_t c = 0; c < channels; ++c) d[c] += w * gi[c];
                }
            }
    }
}

template void affine_transform<float>(const float*, index_t, index_t, index_t, index_t,
                                      const double*, bool, FillMode, float, float*);
template void affine_transform<double>(const double*, index_t, index_t, index_t, index_t,
                                       const double*, bool, FillMode, double, double*);
template void affine_transform_backward<float>(const float*, index_t, index_t, index_t,
                                               index_t, const double*, bool, FillMode, float*);
template void affine_transform_backward<double>(const double*, index_t, index_t, index_t,
                                                index_t, const double*, bool, FillMode,
                                                double*);

}  // namespace fastdl
