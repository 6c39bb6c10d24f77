// Softmax attention, forward and backward, one (query, key, value) problem per OpenMP
// iteration; the products go through fastdl's GEMM on each problem's strided rows in place
// (single-threaded inside the region, the whole team when there is only one problem).
#include "attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FASTDL_SOFTMAX_AVX2 1
#endif

#include "gemm.h"

namespace fastdl {

namespace {


template <typename T>
using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
template <typename T>
using ConstRow = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;
using RowF = Row<float>;
using ConstRowF = ConstRow<float>;

#ifdef FASTDL_SOFTMAX_AVX2
// exp(x) of 8 floats x <= 0 (a softmax's shifted scores), within 2 ulp: x = n ln2 + r with
// |r| <= ln2 / 2 (ln2 in two parts, so r is exact), exp(r) by Cephes's degree-6 polynomial, and
// 2^n built in the exponent bits. Arguments below -87.33 (2^-126) give the smallest normal
// float, as Eigen's exp does; NaN stays NaN. About three times the speed of Eigen's exp, which
// was two thirds of the softmax's time.
inline __m256 exp_nonpositive(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.3365447f), x);  // NaN in the second operand is kept
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i two_n = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(two_n));
}

// Softmax of one unmasked float row of n >= 1 scores, scaled: two passes (the largest score;
// then the exponentials, their sum kept in registers) and the normalisation.
inline void softmax_row(float* row, index_t n, float scale) {
    const ConstRowF r(row, n);
    // the largest scaled score: the scale times the largest (or, scale < 0, smallest) score
    const float top = scale >= 0.0f ? r.maxCoeff() * scale : r.minCoeff() * scale;
    if (top == -std::numeric_limits<float>::infinity()) {  // as the masked path: all hidden
        std::fill(row, row + n, 0.0f);
        return;
    }
    const __m256 vs = _mm256_set1_ps(scale), vt = _mm256_set1_ps(top);
    __m256 sum8 = _mm256_setzero_ps();
    index_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 e = exp_nonpositive(_mm256_fmsub_ps(_mm256_loadu_ps(row + j), vs, vt));
        _mm256_storeu_ps(row + j, e);
        sum8 = _mm256_add_ps(sum8, e);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, sum8);
    float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; j < n; ++j) {
        row[j] = std::exp(std::fma(row[j], scale, -top));
        sum += row[j];
    }
    RowF(row, n) *= 1.0f / sum;
}
#endif

// Row-wise masked softmax of s (tq, tk) in place; s holds the unscaled scores on entry. The
// exponentials are Eigen's vectorised ones (the bulk of the forward's time otherwise).
template <typename T>
void masked_softmax(T* s, const std::uint8_t* mask, const AttentionParams& p) {
    const T scale = static_cast<T>(p.scale);
    const T hidden = -std::numeric_limits<T>::infinity();
    for (index_t i = 0; i < p.tq; ++i) {
        T* row = s + i * p.tk;
        const std::uint8_t* mrow = mask ? mask + i * p.tk : nullptr;
        const index_t visible_end = p.causal ? std::min(i + 1, p.tk) : p.tk;
#ifdef FASTDL_SOFTMAX_AVX2
        if constexpr (std::is_same_v<T, float>) {
            if (!mrow && visible_end > 0) {
                softmax_row(row, visible_end, scale);
                std::fill(row + visible_end, row + p.tk, 0.0f);
                continue;
            }
        }
#endif
        Row<T> r(row, visible_end);
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

template <typename T>
const T* at(const T* x, const HeadStrides& s, index_t b, index_t h) {
    return x + b * s.batch + h * s.head;
}
template <typename T>
T* at(T* x, const HeadStrides& s, index_t b, index_t h) {
    return x + b * s.batch + h * s.head;
}

// Per-thread scratch blocks of `each` elements (64-byte apart), taken before the parallel
// region so that an allocation failure is an exception, not a crash inside OpenMP.
template <typename T>
struct TeamScratch {
    index_t stride;
    T* base;
    Workspace ws;
    TeamScratch(int team, index_t each)
        : stride(round_up(each, 64 / static_cast<index_t>(sizeof(T)))),
          ws(each ? stride * team : 0, base, ScratchSlot::attention) {}
    T* of(int tid) const { return base ? base + tid * stride : nullptr; }
};

}  // namespace

// One problem per iteration, handed out dynamically: on a busy machine a preempted thread is
// left fewer problems instead of holding up the others. The per-problem products are
// sequential (the GEMM runs on one thread inside a parallel region), so every result is the
// same for every thread count.
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const std::uint8_t* mask, const T* drop, const AttentionParams& p) {
    const index_t ss = p.tq * p.tk;
    const index_t problems = p.problems();
    const index_t group = p.mask_batch ? problems / p.mask_batch : 1;
    const int team = team_size(problems);
    TeamScratch<T> scratch(team, drop ? ss : 0);
#pragma omp parallel num_threads(team)
    {
        T* dropped = scratch.of(omp_get_thread_num());
#pragma omp for schedule(dynamic)
        for (index_t pi = 0; pi < problems; ++pi) {
            const index_t b = pi / p.heads, h = pi % p.heads;
            T* s = probs + pi * ss;
            matmul_forward_strided(s, p.tk, at(q, p.q, b, h), p.q.row, at(k, p.k, b, h), p.k.row,
                                   GemmParams{p.tq, p.tk, p.dk, false, true});
            masked_softmax(s, p.mask_batch ? mask + (pi / group) * ss : nullptr, p);
            const T* weights = s;
            if (drop) {
                const T* d = drop + pi * ss;
                for (index_t i = 0; i < ss; ++i) dropped[i] = s[i] * d[i];
                weights = dropped;
            }
            matmul_forward_strided(at(out, p.out, b, h), p.out.row, weights, p.tk,
                                   at(v, p.v, b, h), p.v.row,
                                   GemmParams{p.tq, p.dv, p.tk, false, false});
        }
    }
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* probs, const T* drop, const AttentionParams& p) {
    const index_t ss = p.tq * p.tk;
    const index_t problems = p.problems();
    const T scale = static_cast<T>(p.scale);
    const int team = team_size(problems);
    TeamScratch<T> scratch(team, (drop ? 2 : 1) * ss);
#pragma omp parallel num_threads(team)
    {
        T* ds = scratch.of(omp_get_thread_num());
        T* dropped = ds + ss;
#pragma omp for schedule(dynamic)
        for (index_t pi = 0; pi < problems; ++pi) {
            const index_t b = pi / p.heads, h = pi % p.heads;
            const T* pb = probs + pi * ss;
            const T* db = drop ? drop + pi * ss : nullptr;
            const T* go = at(dout, p.out, b, h);
            const T *qb = at(q, p.q, b, h), *kb = at(k, p.k, b, h);
            const T* weights = pb;
            if (db) {
                for (index_t i = 0; i < ss; ++i) dropped[i] = pb[i] * db[i];
                weights = dropped;
            }
            // dv = weights^T @ dout; d(weights) = dout @ v^T
            matmul_forward_strided(at(dv, p.grad_v, b, h), p.grad_v.row, weights, p.tk, go, p.out.row,
                                   GemmParams{p.tk, p.dv, p.tq, true, false});
            matmul_forward_strided(ds, p.tk, go, p.out.row, at(v, p.v, b, h), p.v.row,
                                   GemmParams{p.tq, p.tk, p.dv, false, true});
            // through the dropout and the softmax: ds = P * (dP - sum_j dP P) * scale
            // (Eigen's vectorised row sums: a scalar sum is one add latency per element)
            for (index_t i = 0; i < p.tq; ++i) {
                Row<T> row(ds + i * p.tk, p.tk);
                const ConstRow<T> prow(pb + i * p.tk, p.tk);
                if (db) row *= ConstRow<T>(db + i * p.tk, p.tk);
                const T dot = (row * prow).sum();
                row = prow * (row - dot) * scale;
            }
            matmul_forward_strided(at(dq, p.grad_q, b, h), p.grad_q.row, ds, p.tk, kb, p.k.row,
                                   GemmParams{p.tq, p.dk, p.tk, false, false});
            matmul_forward_strided(at(dk, p.grad_k, b, h), p.grad_k.row, ds, p.tk, qb, p.q.row,
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
