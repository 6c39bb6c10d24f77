// fastdl._core: the only file that includes pybind11.
// Every entry point checks its arguments (rank, shape agreement, sizes, overflow) before it
// allocates, releases the GIL or enters an OpenMP region; failures raise ValueError naming
// the function, the argument, what was expected and what was received.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <omp.h>

#include <array>
#include <string>
#include <vector>

#include "common.h"
#include "gemm.h"

namespace py = pybind11;
using fastdl::index_t;

namespace {

// Inputs are strict: C-contiguous, exact dtype (noconvert), so nothing is copied silently.
template <typename T>
using Array = py::array_t<T, py::array::c_style>;

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// Checks the rank of an input array and returns its shape as int64.
template <size_t R>
std::array<index_t, R> shape_of(const py::array& a, const char* fn, const char* arg) {
    FASTDL_CHECK(a.ndim() == static_cast<py::ssize_t>(R), fn, ": ", arg, " must be ", R,
                 "-D, received shape ", shape_str(a));
    std::array<index_t, R> s{};
    for (size_t i = 0; i < R; ++i) s[i] = static_cast<index_t>(a.shape(i));
    return s;
}

template <typename T>
Array<T> new_array(std::initializer_list<index_t> shape, const char* fn) {
    fastdl::checked_product(shape, fn);  // overflow check before numpy sees it
    return Array<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

// ---------------------------------------------------------------- gemm
fastdl::GemmParams matmul_shapes(const py::array& a, const py::array& b, bool ta, bool tb,
                                 const char* fn) {
    auto sa = shape_of<2>(a, fn, "a");
    auto sb = shape_of<2>(b, fn, "b");
    index_t m = ta ? sa[1] : sa[0], ka = ta ? sa[0] : sa[1];
    index_t kb = tb ? sb[1] : sb[0], n = tb ? sb[0] : sb[1];
    FASTDL_CHECK(ka == kb, fn, ": inner dimensions differ: a ", shape_str(a),
                 ta ? " (transposed)" : "", " and b ", shape_str(b), tb ? " (transposed)" : "",
                 " give ", ka, " != ", kb);
    return fastdl::GemmParams{m, n, ka, ta, tb};
}

template <typename T>
Array<T> matmul(const Array<T>& a, const Array<T>& b, bool ta, bool tb) {
    auto p = matmul_shapes(a, b, ta, tb, "matmul");
    auto c = new_array<T>({p.m, p.n}, "matmul");
    const T* ap = a.data();
    const T* bp = b.data();
    T* cp = c.mutable_data();
    {
        py::gil_scoped_release nogil;
        fastdl::matmul_forward(cp, ap, bp, p);
    }
    return c;
}

template <typename T>
py::tuple matmul_backward(const Array<T>& dc, const Array<T>& a, const Array<T>& b, bool ta,
                          bool tb) {
    auto p = matmul_shapes(a, b, ta, tb, "matmul_backward");
    auto sc = shape_of<2>(dc, "matmul_backward", "dc");
    FASTDL_CHECK(sc[0] == p.m && sc[1] == p.n, "matmul_backward: dc must have shape (", p.m,
                 ", ", p.n, "), received ", shape_str(dc));
    auto da = new_array<T>({static_cast<index_t>(a.shape(0)), static_cast<index_t>(a.shape(1))},
                           "matmul_backward");
    auto db = new_array<T>({static_cast<index_t>(b.shape(0)), static_cast<index_t>(b.shape(1))},
                           "matmul_backward");
    T* dap = da.mutable_data();
    T* dbp = db.mutable_data();
    const T *dcp = dc.data(), *ap = a.data(), *bp = b.data();
    {
        py::gil_scoped_release nogil;
        fastdl::matmul_backward(dap, dbp, dcp, ap, bp, p);
    }
    return py::make_tuple(da, db);
}

template <typename T>
void bind_gemm(py::module_& m) {
    m.def("matmul", &matmul<T>, py::arg("a").noconvert(), py::arg("b").noconvert(),
          py::arg("transpose_a") = false, py::arg("transpose_b") = false,
          "op(a) @ op(b) for C-contiguous 2-D arrays of one float dtype.");
    m.def("matmul_backward", &matmul_backward<T>, py::arg("dc").noconvert(),
          py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("transpose_a") = false,
          py::arg("transpose_b") = false, "(da, db) for c = op(a) @ op(b).");
}

// ---------------------------------------------------------------- threads and build info
void set_threads(int n) {
    FASTDL_CHECK(n >= 1, "set_num_threads: n must be a positive integer, received ", n);
    fastdl::set_num_threads(n);
}

py::dict build_info() {
    py::dict d;
    d["eigen_version"] = std::to_string(EIGEN_WORLD_VERSION) + "." +
                         std::to_string(EIGEN_MAJOR_VERSION) + "." +
                         std::to_string(EIGEN_MINOR_VERSION);
    d["simd"] = std::string(Eigen::SimdInstructionSetsInUse());
    d["openmp"] = static_cast<int>(_OPENMP);
#ifdef FASTDL_PORTABLE_BUILD
    d["portable"] = true;
#else
    d["portable"] = false;
#endif
#if defined(__SANITIZE_ADDRESS__)
    d["sanitizer"] = std::string("address,undefined");
#else
    d["sanitizer"] = py::none();
#endif
    return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastdl's C++ kernels (Eigen + OpenMP). Internal: use fastdl.ops and the layers.";
    bind_gemm<float>(m);
    bind_gemm<double>(m);
    m.def("set_num_threads", &set_threads, py::arg("n"));
    m.def("get_num_threads", &fastdl::num_threads);
    m.def("build_info", &build_info);
}
