// The non-template parts of checks.h: shape spelling, alignment and shape checks, and the
// allocator of output arrays.
#include "checks.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <utility>

// CPython's tracemalloc C API. Python 3.11's tracemalloc.h declares it without extern "C", which
// would give C++ linkage; these declarations bind the C symbols under other names.
extern "C" int trace_track(unsigned int domain, std::uintptr_t ptr,
                           std::size_t size) __asm__("PyTraceMalloc_Track");
extern "C" int trace_untrack(unsigned int domain, std::uintptr_t ptr) __asm__("PyTraceMalloc_Untrack");

namespace fastdl::bindings {

std::string shape_str(const index_t* dims, std::size_t rank) {
    std::string s = "(";
    for (std::size_t i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + (rank == 1 ? ",)" : ")");
}

std::string shape_str(const py::array& a) {
    Shape dims(a.shape(), a.shape() + a.ndim());
    return shape_str(dims);
}

std::string describe(const py::handle& obj) {
    std::string s = py::str(py::type::handle_of(obj)).cast<std::string>();
    if (py::isinstance<py::array>(obj)) s += " of dtype " + py::str(obj.attr("dtype")).cast<std::string>();
    return s;
}

void check_aligned(const py::array& a, const char* fn, const char* arg) {
    FASTDL_CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() == 0, fn, ": ", arg,
                 " is not aligned to its dtype (", a.itemsize(),
                 " bytes); pass np.require(x, requirements='CA')");
}

void expect_shape(const py::array& a, const Shape& dims, const char* fn, const char* arg) {
    bool same = a.ndim() == static_cast<py::ssize_t>(dims.size());
    for (std::size_t i = 0; same && i < dims.size(); ++i) same = a.shape(i) == dims[i];
    FASTDL_CHECK(same, fn, ": ", arg, " must have shape ", shape_str(dims), ", received ",
                 shape_str(a));
    check_aligned(a, fn, arg);
}

bool parse_padding(const std::string& padding, const char* fn) {
    FASTDL_CHECK(padding == "valid" || padding == "same", fn,
                 ": padding must be 'valid' or 'same', received '", padding, "'");
    return padding == "same";
}

void check_positive_pair(index_t a, index_t b, const char* fn, const char* arg) {
    FASTDL_CHECK(a >= 1 && b >= 1, fn, ": ", arg, " must be positive integers, received (", a,
                 ", ", b, ")");
}

namespace {

// Output arrays hold 64-byte aligned blocks of the C allocator (freed with the array), not
// NumPy's: NumPy advises transparent huge pages for arrays of 4 MiB and more, and under the
// kernel's default defrag setting ("madvise") a fault on such fresh memory may first compact
// memory. Measured on the tutorial CNN at 2 threads: ~4% faster steps (8 of 9 interleaved
// pairs). The blocks are reported to tracemalloc under NumPy's domain, like NumPy's own.
//
// Large blocks are recycled: a training step allocates the same shapes as the step before,
// and glibc would hand their memory back to the kernel in between (page faults, zeroing).
// Freed blocks of at least kRecycleMin bytes wait in a small cache (at most kRecycleBlocks,
// kRecycleBytes in all) for a request of exactly their size; when it is full, the oldest
// blocks make room (so sizes the process no longer uses cannot stop the recycling). The cache
// is only touched with the GIL held: in allocate_output and in the capsule destructor, which
// runs at array deallocation.
constexpr unsigned kTraceDomain = 389047;  // NumPy's tracemalloc domain
constexpr std::size_t kHeader = 64;        // block size, kept in front of the data
constexpr std::size_t kRecycleMin = std::size_t{256} << 10;
constexpr std::size_t kRecycleBlocks = 32;
constexpr std::size_t kRecycleBytes = std::size_t{256} << 20;

struct RecycledBlocks {
    std::vector<std::pair<std::size_t, void*>> blocks;  // (data size, block)
    std::size_t bytes = 0;
};

RecycledBlocks& recycled() {
    static RecycledBlocks* cache = new RecycledBlocks;  // never destroyed: arrays may outlive
    return *cache;                                      // static destructors at exit
}

void free_output(void* data) {
    trace_untrack(kTraceDomain, reinterpret_cast<std::uintptr_t>(data));
    void* block = static_cast<char*>(data) - kHeader;
    const std::size_t size = *static_cast<std::size_t*>(block);
    RecycledBlocks& cache = recycled();
    if (size < kRecycleMin || size > kRecycleBytes) {
        std::free(block);
        return;
    }
    std::size_t evict = 0;  // the oldest blocks, until this one fits
    while (cache.blocks.size() - evict >= kRecycleBlocks || cache.bytes + size > kRecycleBytes) {
        cache.bytes -= cache.blocks[evict].first;
        std::free(cache.blocks[evict].second);
        ++evict;
    }
    cache.blocks.erase(cache.blocks.begin(), cache.blocks.begin() + evict);
    cache.blocks.emplace_back(size, block);
    cache.bytes += size;
}

// The most recently freed block of exactly `size` (the warmest in cache), or null.
void* take_recycled(std::size_t size) {
    RecycledBlocks& cache = recycled();
    for (auto it = cache.blocks.rbegin(); it != cache.blocks.rend(); ++it) {
        if (it->first == size) {
            void* block = it->second;
            cache.blocks.erase(std::next(it).base());
            cache.bytes -= size;
            return block;
        }
    }
    return nullptr;
}

}  // namespace

py::capsule allocate_output(index_t count, std::size_t itemsize, const char* fn, void** data) {
    const index_t bytes = checked_mul(count, static_cast<index_t>(itemsize), fn);
    FASTDL_CHECK(bytes <= std::numeric_limits<index_t>::max() - 2 * 64, fn, ": output of ",
                 bytes, " bytes is too big");
    const std::size_t size = static_cast<std::size_t>((std::max<index_t>(bytes, 1) + 63) / 64 * 64);
    void* block = size >= kRecycleMin ? take_recycled(size) : nullptr;
    if (!block) block = std::aligned_alloc(64, kHeader + size);
    if (!block) {
        PyErr_SetString(PyExc_MemoryError,
                        concat(fn, ": cannot allocate ", bytes, " bytes for the output").c_str());
        throw py::error_already_set();
    }
    *static_cast<std::size_t*>(block) = size;
    *data = static_cast<char*>(block) + kHeader;
    py::capsule owner;
    try {
        owner = py::capsule(*data, &free_output);
    } catch (...) {
        std::free(block);
        throw;
    }
    trace_track(kTraceDomain, reinterpret_cast<std::uintptr_t>(*data), size);
    return owner;
}

}  // namespace fastdl::bindings
