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
// The forward computes the input projection of all timesteps as one GEMM written into the gate
// slots of the cache, then runs the time loop in one OpenMP region over batch rows (rows are
// independent through time, so threads never synchronise): per step a small GEMM with the
// packed recurrent kernel and one fused pass over the gates. The backward runs the loop in
// reverse the same way, writing d(pre-activation gates) per (n,t); the kernel, recurrent-kernel
// and input gradients are then three large GEMMs over all timesteps.
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
    index_t dgate_width;  // values of d(gates) per (n,t) in the backward
    index_t hprev_offset; // position of h_prev inside a cache row
};
RnnSizes rnn_sizes(const RnnParams& p);

// Forward over the whole sequence.
// x (N,T,I), kernel (I,GU), recurrent (U,GU), bias (bias_rows*GU) or null, h0/c0 (N,U) or null
// (zeros), mask (N,T) or null -> y (N,T,U)|(N,U), h_last (N,U), c_last (N,U) (LSTM; else null),
// cache (N,T,cache_width) or null for inference (no backward).
template <typename T>
void rnn_forward(T* y, T* h_last, T* c_last, T* cache, const T* x, const T* kernel,
                 const T* recurrent, const T* bias, const T* h0, const T* c0, const bool* mask,
                 const RnnParams& p);

// Backward through time. dy like y, dh_last/dc_last (N,U) or null (zero); cache from the
// forward with the same inputs. Outputs are overwritten (not accumulated):
// dx (N,T,I), dkernel (I,GU), drecurrent (U,GU), dbias (bias_rows*GU) or null, dh0 (N,U),
// dc0 (N,U) (LSTM; else null).
template <typename T>
void rnn_backward(T* dx, T* dkernel, T* drecurrent, T* dbias, T* dh0, T* dc0, const T* dy,
                  const T* dh_last, const T* dc_last, const T* x, const T* kernel,
                  const T* recurrent, const bool* mask, const T* cache, const RnnParams& p);

}  // namespace fastdl
