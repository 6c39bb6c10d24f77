// Bindings of the matrix products (gemm.h): matmul, matmul_backward.
#include "checks.h"
#include "gemm.h"

using namespace fastdl::bindings;
using fastdl::index_t;

namespace {

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
Array<T> matmul(const Array<T>& a, const Array<T>& b, bool ta, bool tb, const py::object& bias) {
    const char* fn = "matmul";
    auto p = matmul_shapes(a, b, ta, tb, fn);
    const T* biasp = optional_array<T>(bias, {p.n}, fn, "bias", " of the product's width");
    auto c = new_array<T>({p.m, p.n}, fn);
    const T* ap = a.data();
    const T* bp = b.data();
    T* cp = c.mutable_data();
    {
        py::gil_scoped_release nogil;
        if (biasp)
            fastdl::matmul_bias_forward(cp, ap, bp, biasp, p);
        else
            fastdl::matmul_forward(cp, ap, bp, p);
    }
    return c;
}

template <typename T>
py::tuple matmul_b_sums(const Array<T>& a, const Array<T>& b, bool ta, bool tb) {
    const char* fn = "matmul_b_sums";
    auto p = matmul_shapes(a, b, ta, tb, fn);
    auto c = new_array<T>({p.m, p.n}, fn);
    auto sums = new_array<T>({p.n}, fn);
    const T* ap = a.data();
    const T* bp = b.data();
    T *cp = c.mutable_data(), *sp = sums.mutable_data();
    {
        py::gil_scoped_release nogil;
        fastdl::matmul_b_sums_forward(cp, sp, ap, bp, p);
    }
    return py::make_tuple(c, sums);
}

template <typename T>
py::tuple matmul_backward(const Array<T>& dc, const Array<T>& a, const Array<T>& b, bool ta,
                          bool tb) {
    const char* fn = "matmul_backward";
    auto p = matmul_shapes(a, b, ta, tb, fn);
    auto sc = shape_of<2>(dc, fn, "dc");
    FASTDL_CHECK(sc[0] == p.m && sc[1] == p.n, fn, ": dc must have shape (", p.m, ", ", p.n,
                 "), received ", shape_str(dc));
    auto da = new_array<T>({static_cast<index_t>(a.shape(0)), static_cast<index_t>(a.shape(1))}, fn);
    auto db = new_array<T>({static_cast<index_t>(b.shape(0)), static_cast<index_t>(b.shape(1))}, fn);
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
void bind_gemm_t(py::module_& m) {
    m.def("matmul", &matmul<T>, py::arg("a").noconvert(), py::arg("b").noconvert(),
          py::arg("transpose_a") = false, py::arg("transpose_b") = false,
          py::arg("bias") = py::none(),
          "op(a) @ op(b) (+ bias, n values added to every row, in the same pass) for "
          "C-contiguous 2-D arrays of one float dtype.");
    m.def("matmul_b_sums", &matmul_b_sums<T>, py::arg("a").noconvert(), py::arg("b").noconvert(),
          py::arg("transpose_a") = false, py::arg("transpose_b") = false,
          "(op(a) @ op(b), op(b).sum(axis=0)) for C-contiguous 2-D arrays of one float dtype, "
          "the sums taken as the product reads op(b).");
    m.def("matmul_backward", &matmul_backward<T>, py::arg("dc").noconvert(),
          py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("transpose_a") = false,
          py::arg("transpose_b") = false, "(da, db) for c = op(a) @ op(b).");
}

}  // namespace

void bind_gemm(py::module_& m) {
    bind_gemm_t<float>(m);
    bind_gemm_t<double>(m);
}
