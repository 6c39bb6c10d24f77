// Recurrent layers: SimpleRNN, LSTM and GRU over a whole sequence, forward and backpropagation
// through time, with the time loop in C++.
//
// Shapes (N batch, T timesteps, I input features, U units, G gates: SimpleRNN 1, LSTM 4, GRU 3):
//   x (N,T,I), kernel (I,G*U), recurrent (U,G*U), bias (G*U,) or GRU reset_after (2,3U)
//   h0, c0 (N,U); mask (N,T) (true = the step is processed)
//   y (N,T,U) with return_sequences, else (N,U); h_last, c_last (N,U)
//
// Keras 3 semantics (keras/src/layers/rnn/{simple_rnn,lstm,gru}.py, backend rnn()):
//   SimpleRNN: h = act(x W + b + h_prev R)
//   LSTM (gates i,f,c,o): z = x W + h_prev R + b; i,f,o = sigmoid, g = tanh;
//                         c = f*c_prev + i*g; h = o*tanh(c)
//   GRU (gates z,r,h): reset_after: h~ = tanh(x W_h + b_xh + r*(h_prev R_h + b_rh)), bias (2,3U)
//                      reset_before: h~ = tanh(x W_h + b_h + (r*h_prev) R_h), bias (3U,)
//                      h = z*h_prev + (1-z)*h~
//   go_backwards: step s processes time T-1-s and y is returned in processing order (reversed).
//   mask: a masked step keeps the previous state(s); its output is the previous step's output
//         (zeros before the first processed step, as Keras's TensorFlow backend does), or
//         zeros with zero_output_for_mask (what Bidirectional asks of its layers).
//
// Design (measured on the tutorial shapes, N=64, T=200, I=32, U=64):
// - Batch rows are independent through time, so one OpenMP region splits the rows between
//   threads for the whole sequence: no barrier per step, and each row's result is bitwise the
//   same whatever the thread count. No Eigen GEMM runs inside the region.
// - Every product is a per-step GEMM on a thread's rows by one register-blocked kernel (rnn.cpp)
//   with the constant operands packed once per call: forward [x_t | h_prev] @ [W; R] (GRU:
//   x_t @ W and h_prev @ R apart, its h~ gate needs both parts); backward
//   dh_prev += dG @ R^T, dx_t = dG @ W^T, dW += x_t^T @ dG, dR += h_prev^T @ dG with per-thread
//   accumulators summed at the end. Eigen's GEMM was 1.3-3x slower on these shapes (latency-bound
//   32x64x256 products, and the all-timestep products with K = 32 or M = 32), and the per-step
//   weight-gradient products avoid an N*T*G*U buffer of d(gates).
// - One fused pass over the gates per step computes the activations and caches, per (step, row),
//   what the backward needs: (T,N,cache_width) in processing order, so that a step's rows are
//   contiguous for both passes.
// - float: rational tanh/sigmoid vectorised with GCC vector extensions, subnormals flushed to zero
//   in the kernels' threads (vanishing gradients otherwise cost ~20x on x86); double: libm.
#pragma once

#include <cstdint>

#include "common.h"

namespace fastdl {

enum class RnnCell : int { simple_rnn = 0, lstm = 1, gru = 2 };
// SimpleRNN activations (LSTM and GRU use tanh and sigmoid): derivatives come from the output.
enum class RnnActivation : int { tanh = 0, relu = 1, linear = 2, sigmoid = 3 };

struct RnnParams {
    RnnCell cell;
    index_t batch, steps, input, units;  // N, T, I, U
    RnnActivation activation;            // SimpleRNN only
    bool reset_after;                    // GRU only
    bool use_bias, return_sequences, go_backwards;
    bool zero_output_for_mask;  // a masked step outputs zeros instead of the previous output
};

// Sizes shared by the argument checks, the forward and the backward.
struct RnnSizes {
    index_t gates;        // G
    index_t gate_width;   // G*U: columns of kernel and recurrent kernel
    index_t bias_rows;    // 0 (no bias), 1, or 2 (GRU reset_after)
    index_t cache_width;  // values cached per (n,t) for the backward
    index_t hprev_offset; // position of h_prev inside a cache row
};
RnnSizes rnn_sizes(const RnnParams& p);

// Forward over the whole sequence.
// x (N,T,I), kernel (I,GU), recurrent (U,GU), bias (bias_rows*GU) or null, h0/c0 (N,U) or null
// (zeros), mask (N,T) or null -> y (N,T,U)|(N,U), h_last (N,U), c_last (N,U) (LSTM; else null),
// cache (T,N,cache_width) (processing order) or null for inference (no backward).
// recurrent_mask (N,G,U) or null: Keras's recurrent dropout, one mask per sample and gate for
// the whole sequence (values 0 or 1/(1-rate)); gate g's recurrent product becomes
// (h_prev * mask[:, g]) @ R_g (GRU reset_before: (r * h_prev * mask[:, 2]) @ R_h), while the
// state carried on (GRU's z * h_prev) stays unmasked. With a mask the per-step products run
// per gate (no fused [W; R] GEMM); without one nothing changes.
template <typename T>
void rnn_forward(T* y, T* h_last, T* c_last, T* cache, const T* x, const T* kernel,
                 const T* recurrent, const T* bias, const T* h0, const T* c0, const bool* mask,
                 const RnnParams& p, const T* recurrent_mask = nullptr);

// Backward through time. dy like y, dh_last/dc_last (N,U) or null (zero); cache from the
// forward with the same inputs (recurrent_mask included). Outputs are overwritten (not
// accumulated): dx (N,T,I), dkernel (I,GU), drecurrent (U,GU), dbias (bias_rows*GU) or null,
// dh0 (N,U), dc0 (N,U) (LSTM; else null). gate_grads (T,N,W) or null: each step's gradient of
// the pre-activation gates per row, in processing order (zeros at masked steps), from which
// the weight gradients are the products above (per-example gradients for fastdl.privacy):
// W = GU, dG (GRU reset_before: [dz, dr, dh~]), or for GRU reset_after W = 2 GU, [dG_r, dG_x].
template <typename T>
void rnn_backward(T* dx, T* dkernel, T* drecurrent, T* dbias, T* dh0, T* dc0, const T* dy,
                  const T* dh_last, const T* dc_last, const T* x, const T* kernel,
                  const T* recurrent, const bool* mask, const T* cache, const RnnParams& p,
                  const T* recurrent_mask = nullptr, T* gate_grads = nullptr);

}  // namespace fastdl
