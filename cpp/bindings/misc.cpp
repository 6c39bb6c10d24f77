// Bindings of the module-wide settings and facts: the thread count, build_info() and, in the
// sanitizer build only, the sanitizer canary.
#include <omp.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "checks.h"
#include "gemm.h"

using namespace fastdl::bindings;
using fastdl::index_t;

namespace {

// The most threads fastdl runs: 4 per core, at least 64. More only adds stacks and switching,
// and a count beyond what the process can create is fatal: libgomp ends the process ("Thread
// creation failed") rather than report it.
int max_threads() { return std::max(64, 4 * omp_get_num_procs()); }

// How many threads (the caller plus n - 1 new ones) can exist at once now. The probe threads
// have the default stack size, as libgomp's do unless OMP_STACKSIZE is set; all n - 1 stay
// mapped until joined, so the probe asks for as much memory as the team will.
int creatable_threads(int n) {
    std::vector<std::thread> probe;
    probe.reserve(static_cast<std::size_t>(n - 1));
    try {
        for (int i = 1; i < n; ++i) probe.emplace_back([] {});
    } catch (const std::system_error&) {
    }
    const int made = static_cast<int>(probe.size()) + 1;
    for (auto& t : probe) t.join();
    return made;
}

void set_threads(int n) {
    FASTDL_CHECK(n >= 1, "set_num_threads: n must be a positive integer, received ", n);
    FASTDL_CHECK(n <= max_threads(), "set_num_threads: n must be at most ", max_threads(),
                 " (4 per core, at least 64), received ", n);
    const int made = creatable_threads(n);
    if (made < n)
        throw std::runtime_error(fastdl::concat(
            "set_num_threads: only ", made, " of ", n, " threads could be created (a memory or "
            "process limit); the thread count stays ", fastdl::num_threads()));
    fastdl::set_num_threads(n);
}

// At import: OMP_NUM_THREADS is libgomp's, read when it loaded; a count above max_threads() or
// more than the process can create is lowered, with a RuntimeWarning.
void clamp_initial_threads() {
    const int requested = omp_get_max_threads();  // libgomp wraps huge values: may be < 1
    int n = requested < 1 ? max_threads() : std::min(requested, max_threads());
    if (n > omp_get_num_procs()) n = creatable_threads(n);
    if (n == requested) return;
    fastdl::set_num_threads(n);
    const std::string asked = requested < 1 ? "an out-of-range count of" : std::to_string(requested);
    const std::string message = fastdl::concat(
        "fastdl: OMP_NUM_THREADS asks for ", asked, " threads; using ", n, " (at most ",
        max_threads(), ", 4 per core, and no more than the process can create)");
    if (PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 1) != 0) throw py::error_already_set();
}

py::dict build_info() {
    py::dict d;
    d["eigen_version"] = std::to_string(EIGEN_WORLD_VERSION) + "." +
                         std::to_string(EIGEN_MAJOR_VERSION) + "." +
                         std::to_string(EIGEN_MINOR_VERSION);
    d["simd"] = std::string(Eigen::SimdInstructionSetsInUse());
    d["openmp"] = static_cast<int>(_OPENMP);
    // The x86-64 level this module was compiled for ("v2", "v3", "v4"; "native" for a
    // -march=native or sanitizer build).
    d["isa"] = std::string(FASTDL_ISA_LEVEL);
    d["gemm"] = std::string(fastdl::gemm_backend());  // float32 GEMM: "avx512", "avx2" or "eigen"
#ifdef FASTDL_SANITIZED_BUILD
    d["sanitizer"] = std::string("address,undefined");
#else
    d["sanitizer"] = py::none();
#endif
    return d;
}

// Compiled into the sanitizer build only (FASTDL_SANITIZE): tests/test_sanitizer_canary.py calls
// it to prove the sanitizers are active. Kind "address" reads one element past a heap buffer
// (AddressSanitizer must abort the process); kind "undefined" overflows a signed int (UBSan must
// report it). The production module has no such function.
#ifdef FASTDL_SANITIZED_BUILD
bool sanitizer_canary(const std::string& kind) {
    FASTDL_CHECK(kind == "address" || kind == "undefined",
                 "_sanitizer_canary: kind must be 'address' or 'undefined', received '", kind, "'");
    volatile index_t past_end = 4;
    volatile int sink = 0;
    if (kind == "address") {
        int* buf = new int[past_end]();  // size unknown at compile time: ASan, not UBSan, reports
        sink = buf[past_end];            // heap-buffer-overflow: one element past the end
        delete[] buf;
    } else {
        volatile int big = std::numeric_limits<int>::max();
        sink = big + static_cast<int>(past_end);  // signed integer overflow
    }
    return sink == 0x7fffffff;
}
#endif

}  // namespace

void bind_misc(py::module_& m) {
    clamp_initial_threads();
    m.def("set_num_threads", &set_threads, py::arg("n"));
    m.def("max_threads", &max_threads);
    m.def("get_num_threads", &fastdl::num_threads);
    m.def("build_info", &build_info);
#ifdef FASTDL_SANITIZED_BUILD
    m.def("_sanitizer_canary", &sanitizer_canary, py::arg("kind") = "address");
#endif
}
