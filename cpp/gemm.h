// Matrix products: the building block of Dense and of im2col convolution.
#pragma once

#include "common.h"

namespace fastdl {

struct GemmParams {
    index_t m, n, k;        // op(a) is (m, k), op(b) is (k, n), c is (m, n)
    bool transpose_a, transpose_b;
};

// c (m, n) = op(a) @ op(b) (+ c when accumulate); a is (m,k) or (k,m) when transposed, likewise b.
template <typename T>
void matmul_forward(T* c, const T* a, const T* b, const GemmParams& p, bool accumulate = false);

// c (m, n) = op(a) @ op(b) + bias (n values added to every row), the bias added as the product's
// tiles are written (no second pass over c): Dense layers and attention projections.
template <typename T>
void matmul_bias_forward(T* c, const T* a, const T* b, const T* bias, const GemmParams& p);

// c (m, n) = op(a) @ op(b) and b_sums (n) = op(b)'s column sums (over its k rows), the sums taken
// as the product packs op(b): a dense layer's weight and bias gradients, x^T @ dy and dy's
// column sums, with one read of dy.
template <typename T>
void matmul_b_sums_forward(T* c, T* b_sums, const T* a, const T* b, const GemmParams& p);

// matmul_forward on sub-matrices: a, b and c are row-major with row strides lda, ldb, ldc
// (elements; the stored a is (m,k) or (k,m) when transposed, likewise b), e.g. column slices.
template <typename T>
void matmul_forward_strided(T* c, index_t ldc, const T* a, index_t lda, const T* b, index_t ldb,
                            const GemmParams& p, bool accumulate = false);

// Given dc (m, n): da = dc @ op(b)^T laid out like a, db = op(a)^T @ dc laid out like b.
// Either output may be null to skip it; both are overwritten.
template <typename T>
void matmul_backward(T* da, T* db, const T* dc, const T* a, const T* b, const GemmParams& p);

// The float32 GEMM in this build: "avx512" or "avx2" (fastdl's packed GEMM) or "eigen".
const char* gemm_backend();

}  // namespace fastdl
