// Fused optimizer updates over flat buffers: one pass instead of the ten NumPy passes the same
// rule takes in Python. Each rule turns the gradient buffer g into the step d in place and
// updates its slots; the caller then applies w -= d (or w += d) per variable. The arithmetic is
// the Python rule's, operation by operation, compiled without FMA contraction, so the result
// is bitwise that of the NumPy form (fastdl/optimizers/*.py).
#pragma once

#include "common.h"

namespace fastdl {

// Adam / AMSGrad (Keras 3): m += (g - m) * c1; v += (g*g - v) * c2;
// vhat = max(vhat, v) when vhat is given; g = (m * alpha) / (sqrt(vhat or v) + eps).
template <typename T>
void adam_update(T* g, T* m, T* v, T* vhat, index_t n, T alpha, T c1, T c2, T eps);

// RMSprop (Keras 3): v = v*rho + (g*g)*c; centered: a = a*rho + g*c, den = (v - a*a) + eps,
// else den = v + eps; g = (g*lr) / sqrt(den); with momentum: mom = mom*momentum + g.
// avg and mom may be null.
template <typename T>
void rmsprop_update(T* g, T* v, T* avg, T* mom, index_t n, T lr, T rho, T c, T momentum, T eps);

}  // namespace fastdl
