// Softmax attention, forward and backward, one (query, key, value) problem per OpenMP
// iteration; the products go through fastdl's GEMM (single-threaded inside the region, the
// whole team when there is only one problem).
#include "attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gemm.h"

namespace fastdl {

namespace {

// Row-wise masked softmax of s (tq, tk) in place; s holds the unscaled scores on entry. The
// exponentials are Eigen's vectorised ones (the bulk of the forward's time otherwise).
template <typename T>
void masked_softmax(T* s, const std::uint8_t* mask, const AttentionParams& p) {
    using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
    const T scale = static_cast<T>(p.scale);
    const T hidden = -std::numeric_limits<T>::infinity();
    for (index_t i = 0; i < p.tq; ++i) {
        T* row = s + i * p.tk;
        const std::uint8_t* mrow = mask ? mask + i * p.tk : nullptr;
        const index_t visible_end = p.causal ? std::min(i + 1, p.tk) : p.tk;
        Row r(row, visible_end);
        r *= scale;
        if (mrow)
            for (index_t j = 0; j < visible_end; ++j)
                if (!mrow[j]) row[j] = hidden;
        const T top = visible_end ? r.maxCoeff() : hidden;
        if (top == hidden) {  // nothing visible: zeros, as Keras
            std::fill(row, row + p.tk, T(0));
            continue;
        }
        r = (r - top).exp();
        if (mrow)  // Eigen's exp clamps its argument: exp(-inf) is tiny, not 0
            for (index_t j = 0; j < visible_end; ++j)
                if (!mrow[j]) row[j] = T(0);
        r *= T(1) / r.sum();
        std::fill(row + visible_end, row + p.tk, T(0));
    }
}

int team_size(index_t problems) { return problems > 1 ? num_threads() : 1; }

}  // namespace

template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const std::uint8_t* mask, const T* drop, const AttentionParams& p) {
    const index_t ss = p.tq * p.tk;
    const index_t group = p.mask_batch ? p.batch / p.mask_batch : 1;
#pragma omp parallel num_threads(team_size(p.batch))
    {
        std::vector<T> dropped(drop ? ss : 0);
#pragma omp for schedule(static)
        for (index_t b = 0; b < p.batch; ++b) {
            T* s = probs + b * ss;
            matmul_forward(s, q + b * p.tq * p.dk, k + b * p.tk * p.dk,
                           GemmParams{p.tq, p.tk, p.dk, false, true});
            masked_softmax(s, p.mask_batch ? mask + (b / group) * ss : nullptr, p);
            const T* weights = s;
            if (drop) {
                const T* d = drop + b * ss;
                for (index_t i = 0; i < ss; ++i) dropped[i] = s[i] * d[i];
                weights = dropped.data();
            }
            matmul_forward(out + b * p.tq * p.dv, weights, v + b * p.tk * p.dv,
                           GemmParams{p.tq, p.dv, p.tk, false, false});
        }
    }
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* probs, const T* drop, const AttentionParams& p) {
    const index_t ss = p.tq * p.tk;
    const T scale = static_cast<T>(p.scale);
#pragma omp parallel num_threads(team_size(p.batch))
    {
        std::vector<T> ds(ss), dropped(drop ? ss : 0);
#pragma omp for schedule(static)
        for (index_t b = 0; b < p.batch; ++b) {
            const T* pb = probs + b * ss;
            const T* db = drop ? drop + b * ss : nullptr;
            const T* go = dout + b * p.tq * p.dv;
            const T* weights = pb;
            if (db) {
                for (index_t i = 0; i < ss; ++i) dropped[i] = pb[i] * db[i];
                weights = dropped.data();
            }
            // dv = weights^T @ dout; d(weights) = dout @ v^T
            matmul_forward(dv + b * p.tk * p.dv, weights, go,
                           GemmParams{p.tk, p.dv, p.tq, true, false});
            matmul_forward(ds.data(), go, v + b * p.tk * p.dv,
                           GemmParams{p.tq, p.tk, p.dv, false, true});
            // through the dropout and the softmax: ds = P * (dP - sum_j dP P) * scale
            for (index_t i = 0; i < p.tq; ++i) {
                T* row = ds.data() + i * p.tk;
                const T* prow = pb + i * p.tk;
                if (db) {
                    const T* drow = db + i * p.tk;
                    for (index_t j = 0; j < p.tk; ++j) row[j] *= drow[j];
                }
                T dot = 0;
                for (index_t j = 0; j < p.tk; ++j) dot += row[j] * prow[j];
                for (index_t j = 0; j < p.tk; ++j) row[j] = prow[j] * (row[j] - dot) * scale;
            }
            matmul_forward(dq + b * p.tq * p.dk, ds.data(), k + b * p.tk * p.dk,
                           GemmParams{p.tq, p.dk, p.tk, false, false});
            matmul_forward(dk + b * p.tk * p.dk, ds.data(), q + b * p.tq * p.dk,
                           GemmParams{p.tk, p.dk, p.tq, true, false});
        }
    }
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                       const std::uint8_t*, const float*, const AttentionParams&);
template void attention_forward<double>(double*, double*, const double*, const double*,
                                        const double*, const std::uint8_t*, const double*,
                                        const AttentionParams&);
template void attention_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, const float*,
                                        const AttentionParams&);
template void attention_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*,
                                         const double*, const AttentionParams&);

}  // namespace fastdl
