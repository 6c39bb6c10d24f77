#include "gemm.h"

#include <omp.h>

#include <atomic>

namespace fastdl {

namespace {
std::atomic<int> g_threads{0};
}

int num_threads() {
    int n = g_threads.load(std::memory_order_relaxed);
    return n > 0 ? n : omp_get_max_threads();
}

void set_num_threads(int n) {
    g_threads.store(n, std::memory_order_relaxed);
    Eigen::setNbThreads(n);
}

namespace {

// Row-major view of op(x) where x is stored (rows, cols) and op transposes when asked.
template <typename T>
ConstMapR<T> stored(const T* x, index_t rows, index_t cols) {
    return ConstMapR<T>(x, rows, cols);
}

// c = alpha-free product of two maps, written into c with or without accumulation.
template <typename T, typename A, typename B>
void product_into(MapR<T>& c, const A& a, const B& b, bool accumulate) {
    if (accumulate)
        c.noalias() += a * b;
    else
        c.noalias() = a * b;
}

template <typename T, typename B>
void with_op_a(MapR<T>& c, const T* a, const B& opb, const GemmParams& p, bool accumulate) {
    if (p.transpose_a)
        product_into<T>(c, stored(a, p.k, p.m).transpose(), opb, accumulate);
    else
        product_into<T>(c, stored(a, p.m, p.k), opb, accumulate);
}

}  // namespace

// a (m,k)|(k,m), b (k,n)|(n,k) -> c (m,n)
template <typename T>
void matmul_forward(T* c, const T* a, const T* b, const GemmParams& p, bool accumulate) {
    MapR<T> cm(c, p.m, p.n);
    if (p.k == 0) {  // an empty reduction is a zero product
        if (!accumulate) cm.setZero();
        return;
    }
    if (p.m == 0 || p.n == 0) return;
    if (p.transpose_b)
        with_op_a<T>(cm, a, stored(b, p.n, p.k).transpose(), p, accumulate);
    else
        with_op_a<T>(cm, a, stored(b, p.k, p.n), p, accumulate);
}

// dc (m,n) -> da like a, db like b
template <typename T>
void matmul_backward(T* da, T* db, const T* dc, const T* a, const T* b, const GemmParams& p) {
    // da = dc @ op(b)^T, stored transposed when a was: da^T = op(b) @ dc^T
    if (da) {
        GemmParams q{p.m, p.k, p.n, false, !p.transpose_b};
        if (p.transpose_a) {  // da (k, m) = op(b) (k,n) @ dc^T (n,m)
            q = GemmParams{p.k, p.m, p.n, p.transpose_b, true};
            matmul_forward(da, b, dc, q);
        } else {
            matmul_forward(da, dc, b, q);
        }
    }
    // db = op(a)^T @ dc, stored transposed when b was: db (n,k) = dc^T @ op(a)
    if (db) {
        if (p.transpose_b) {
            GemmParams q{p.n, p.k, p.m, true, p.transpose_a};
            matmul_forward(db, dc, a, q);
        } else {
            GemmParams q{p.k, p.n, p.m, !p.transpose_a, false};
            matmul_forward(db, a, dc, q);
        }
    }
}

template void matmul_forward<float>(float*, const float*, const float*, const GemmParams&, bool);
template void matmul_forward<double>(double*, const double*, const double*, const GemmParams&, bool);
template void matmul_backward<float>(float*, float*, const float*, const float*, const float*,
                                     const GemmParams&);
template void matmul_backward<double>(double*, double*, const double*, const double*, const double*,
                                      const GemmParams&);

}  // namespace fastdl
