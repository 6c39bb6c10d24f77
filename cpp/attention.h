// Softmax attention over a batch of (query, key, value) matrices: the kernel of
// MultiHeadAttention, Attention and ops.nn.dot_product_attention.
#pragma once

#include "common.h"

namespace fastdl {

struct AttentionParams {
    index_t batch;       // B*H: independent attention problems
    index_t tq, tk;      // query and key/value sequence lengths
    index_t dk, dv;      // query/key and value depths
    index_t mask_batch;  // 0 (no mask) or a divisor of batch: problem b reads mask b / (batch / mask_batch)
    bool causal;         // key j is visible to query i only when j <= i
    double scale;        // scores = q k^T * scale
};

// probs (batch, tq, tk) = softmax over the visible keys of q k^T * scale (0 where hidden; a
// query with no visible key gets all zeros); out (batch, tq, dv) = (probs * drop) @ v.
// mask (mask_batch, tq, tk): nonzero = visible. drop (batch, tq, tk): the dropout
// multipliers (0 or 1/(1-rate)), or null.
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const std::uint8_t* mask, const T* drop, const AttentionParams& p);

// Given dout (batch, tq, dv) and the forward's probs: dq, dk, dv laid out like q, k, v.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* probs, const T* drop, const AttentionParams& p);

}  // namespace fastdl
