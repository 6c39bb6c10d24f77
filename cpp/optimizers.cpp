#include "optimizers.h"

#include <omp.h>

#include <cmath>

namespace fastdl {

namespace {
// Below this many elements a second thread costs more to wake than it saves.
constexpr index_t kParallelElements = index_t{1} << 16;

// np.maximum: NaN in either argument gives NaN (std::max would drop a NaN in its second).
template <typename T>
inline T nan_max(T a, T b) {
    return (a < b || b != b) ? b : a;
}
}  // namespace

template <typename T>
void adam_update(T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vhat, index_t n,
                 T alpha, T c1, T c2, T eps) {
#pragma omp parallel for num_threads(threads_for(n, kParallelElements)) schedule(static)
    for (index_t i = 0; i < n; ++i) {
        const T gi = g[i];
        const T mi = m[i] + (gi - m[i]) * c1;
        T vi = v[i] + (gi * gi - v[i]) * c2;
        m[i] = mi;
        v[i] = vi;
        if (vhat) {
            vi = nan_max(vhat[i], vi);
            vhat[i] = vi;
        }
        g[i] = (mi * alpha) / (std::sqrt(vi) + eps);
    }
}

template <typename T>
void rmsprop_update(T* __restrict g, T* __restrict v, T* __restrict avg, T* __restrict mom,
                    index_t n, T lr, T rho, T c, T momentum, T eps) {
#pragma omp parallel for num_threads(threads_for(n, kParallelElements)) schedule(static)
    for (index_t i = 0; i < n; ++i) {
        const T gi = g[i];
        const T vi = v[i] * rho + (gi * gi) * c;
        v[i] = vi;
        T den;
        if (avg) {
            const T ai = avg[i] * rho + gi * c;
            avg[i] = ai;
            den = (vi - ai * ai) + eps;
        } else {
            den = vi + eps;
        }
        const T inc = (gi * lr) / std::sqrt(den);
        g[i] = inc;
        if (mom) mom[i] = mom[i] * momentum + inc;
    }
}

template void adam_update<float>(float*, float*, float*, float*, index_t, float, float, float,
                                 float);
template void adam_update<double>(double*, double*, double*, double*, index_t, double, double,
                                  double, double);
template void rmsprop_update<float>(float*, float*, float*, float*, index_t, float, float, float,
                                    float, float);
template void rmsprop_update<double>(double*, double*, double*, double*, index_t, double, double,
                                     double, double, double);

}  // namespace fastdl
