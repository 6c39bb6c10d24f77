// Shared vocabulary of the fastdl kernels: Eigen row-major maps, int64 sizes,
// overflow-checked size arithmetic and the argument-check macro used by the bindings.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fastdl {

using index_t = std::int64_t;

template <typename T>
using MatrixR = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MapR = Eigen::Map<MatrixR<T>>;
template <typename T>
using ConstMapR = Eigen::Map<const MatrixR<T>>;
template <typename T>
using VecMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;
template <typename T>
using ConstVecMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;

// Builds an error message from any streamable pieces.
template <typename... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return out.str();
}

// Throws std::invalid_argument (pybind11 turns it into ValueError) unless cond holds.
#define FASTDL_CHECK(cond, ...)                                              \
    do {                                                                     \
        if (!(cond)) throw std::invalid_argument(::fastdl::concat(__VA_ARGS__)); \
    } while (0)

// a * b for non-negative sizes, or invalid_argument when the product overflows int64.
inline index_t checked_mul(index_t a, index_t b, const char* what) {
    FASTDL_CHECK(a >= 0 && b >= 0, what, ": negative size (", a, " x ", b, ")");
    if (a != 0 && b > std::numeric_limits<index_t>::max() / a)
        throw std::invalid_argument(concat(what, ": size ", a, " x ", b, " overflows int64"));
    return a * b;
}

// ceil(a / b) for a >= 0 and b >= 1 without forming a + b - 1 (which overflows for a stride
// near 2**63).
inline index_t ceil_div(index_t a, index_t b) { return a / b + (a % b != 0); }

// Product of all sizes, overflow-checked (element counts of tensors).
inline index_t checked_product(std::initializer_list<index_t> sizes, const char* what) {
    index_t p = 1;
    for (index_t s : sizes) p = checked_mul(p, s, what);
    return p;
}

// Number of threads fastdl's own OpenMP regions use (set_num_threads / OMP_NUM_THREADS).
int num_threads();
void set_num_threads(int n);

}  // namespace fastdl
