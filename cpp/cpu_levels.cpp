// fastdl._cpu: which x86-64 levels this CPU runs, so that fastdl/_core.py can load the build of
// the kernels (fastdl._core_v2, _v3, _v4) that fits. Compiled with the compiler's baseline
// x86-64 flags only, so it loads on any x86-64 CPU. GCC's __builtin_cpu_supports also asks the
// OS (XGETBV) whether it saves the AVX / AVX-512 registers: a CPU whose OS does not enable them
// does not report v3 / v4 (GCC >= 7.4, bug 85100).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

namespace {

std::vector<std::string> cpu_levels() {
    std::vector<std::string> levels;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v2")) levels.push_back("v2");
    if (__builtin_cpu_supports("x86-64-v3")) levels.push_back("v3");
    if (__builtin_cpu_supports("x86-64-v4")) levels.push_back("v4");
#endif
    return levels;
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
    m.doc() = "The x86-64 levels this CPU (and its OS) runs. Internal: see fastdl.build_info().";
    m.def("levels", &cpu_levels);
}
