// Softmax attention over a grid of (query, key, value) problems: the kernel of
// MultiHeadAttention, Attention and ops.nn.dot_product_attention.
#pragma once

#include "common.h"

namespace fastdl {

// Where problem (b, h) of an operand lies: the row-major (rows, depth) matrix at
// data + b * batch + h * head, its rows `row` elements apart. A (B, T, H, d) array (the heads
// side by side, as projections give them) is {T*H*d, d, H*d}; a (P, T, d) array of P problems
// is {T*d, 0, d} with one head.
struct HeadStrides {
    index_t batch, head, row;
};

struct AttentionParams {
    index_t batch, heads;  // batch * heads problems; problem (b, h) is number p = b * heads + h
    index_t tq, tk;        // query and key/value sequence lengths
    index_t dk, dv;        // query/key and value depths
    index_t mask_batch;    // 0 (no mask) or a divisor of the problems: p reads mask p / (problems / mask_batch)
    bool causal;           // key j is visible to query i only when j <= i
    double scale;          // scores = q k^T * scale
    // q, k, v, the output (forward) or its gradient (backward), and the backward's dq, dk, dv
    HeadStrides q, k, v, out, grad_q, grad_k, grad_v;

    index_t problems() const { return batch * heads; }
};

// probs (problems, tq, tk) = softmax over the visible keys of q k^T * scale (0 where hidden; a
// query with no visible key gets all zeros); out = (probs * drop) @ v.
// mask (mask_batch, tq, tk): nonzero = visible. drop (problems, tq, tk): the dropout
// multipliers (0 or 1/(1-rate)), or null.
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const std::uint8_t* mask, const T* drop, const AttentionParams& p);

// Given dout (laid out as p.out) and the forward's probs: dq, dk, dv (laid out as p.grad_q, p.grad_k, p.grad_v).
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* probs, const T* drop, const AttentionParams& p);

}  // namespace fastdl
