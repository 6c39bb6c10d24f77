// Shared vocabulary of the fastdl kernels: Eigen row-major maps, int64 sizes,
// overflow-checked size arithmetic, the argument-check macro used by the bindings, the thread
// count of a parallel pass and the per-thread scratch workspace.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <memory>
#include <new>
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

// a rounded up to a multiple of b (a >= 0, b >= 1).
inline index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }

// Product of all sizes, overflow-checked (element counts of tensors).
inline index_t checked_product(std::initializer_list<index_t> sizes, const char* what) {
    index_t p = 1;
    for (index_t s : sizes) p = checked_mul(p, s, what);
    return p;
}

// Number of threads fastdl's own OpenMP regions use (set_num_threads / OMP_NUM_THREADS).
int num_threads();
void set_num_threads(int n);

// Threads for a parallel pass over `work` units (elements, multiply-adds): one below
// `min_parallel` units, where the OpenMP fork/join would cost more than the pass saves.
inline int threads_for(index_t work, index_t min_parallel) {
    return work < min_parallel ? 1 : num_threads();
}

// The scratch memory of the kernels: one 64-byte aligned block per (thread, slot), reused
// across calls by the calling thread (each Python thread has its own), so repeated calls do not
// page-fault fresh memory. A block above kKeepBytes is freed after its call instead of kept.
// Callers that are live at once (a GEMM's two packing buffers) take different slots; a second
// Workspace of the same slot on the same thread would be handed the same block.
enum class ScratchSlot : int { conv, gemm_a, gemm_b, attention, count };

class Workspace {
  public:
    static constexpr std::size_t kKeepBytes = std::size_t{32} << 20;

    // out = count elements of T (null when count <= 0), valid while this object lives.
    template <typename T>
    Workspace(index_t count, T*& out, ScratchSlot slot = ScratchSlot::conv) {
        out = nullptr;
        if (count <= 0) return;
        std::size_t bytes = static_cast<std::size_t>(count) * sizeof(T);
        bytes = (bytes + 63) / 64 * 64;
        Cache& cache = cache_(slot);
        if (cache.bytes >= bytes) {
            ptr_ = cache.ptr.get();
        } else if (bytes <= kKeepBytes) {
            cache.ptr.reset();  // before the new block: at most one of them at a time
            cache.bytes = 0;
            cache.ptr.reset(static_cast<char*>(aligned_or_throw(bytes)));
            cache.bytes = bytes;
            ptr_ = cache.ptr.get();
        } else {
            own_.reset(static_cast<char*>(aligned_or_throw(bytes)));
            ptr_ = own_.get();
        }
        out = reinterpret_cast<T*>(ptr_);
    }
    Workspace(const Workspace&) = delete;
    Workspace& operator=(const Workspace&) = delete;

  private:
    struct FreeDeleter {
        void operator()(void* ptr) const { std::free(ptr); }
    };
    struct Cache {
        std::unique_ptr<char[], FreeDeleter> ptr;
        std::size_t bytes = 0;
    };
    static void* aligned_or_throw(std::size_t bytes) {
        void* p = std::aligned_alloc(64, bytes);
        if (!p) throw std::bad_alloc();
        return p;
    }
    static Cache& cache_(ScratchSlot slot) {
        thread_local Cache caches[static_cast<int>(ScratchSlot::count)];
        return caches[static_cast<int>(slot)];
    }
    std::unique_ptr<char[], FreeDeleter> own_;
    char* ptr_ = nullptr;
};

}  // namespace fastdl
