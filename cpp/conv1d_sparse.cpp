// Backward of a valid 1-D convolution y[n, t, f] = sum_{k, c} x[n, t*s + k*d, c] * w[k, c, f]
// when the upstream gradient has few nonzeros (a Conv1D followed by GlobalMaxPooling1D: one per
// sample and filter). The nonzeros come as entries (n, t, f, g); each adds g * x[n, t*s+k*d, :]
// to dkernel[f, k, :] and g * w[k, :, f] to dx[n, t*s+k*d, :]: O(entries * K * C) work instead
// of the dense GEMMs' O(N * T * F * K * C). One thread (the work is small; entries of different
// samples may share a filter and vice versa, so threads would race on both outputs).
#include "conv1d_sparse.h"

#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "common.h"

namespace py = pybind11;
using fastdl::index_t;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;
using Index = py::array_t<std::int64_t, py::array::c_style>;

void require(bool ok, const std::string& message) {
    if (!ok) throw py::value_error("conv1d_sparse_backward: " + message);
}

// x (N, Tp, C), kernel_t (F, K, C) (the kernel (K, C, F) transposed), entries n, t, f (E,)
// int64 and g (E,) -> (dx (N, Tp, C) or None, dkernel_t (F, K, C))
template <typename T>
py::tuple conv1d_sparse_backward(const Array<T>& x, const Array<T>& kernel_t, const Index& n_idx,
                                 const Index& t_idx, const Index& f_idx, const Array<T>& g,
                                 index_t stride, index_t dilation, bool need_dx) {
    require(x.ndim() == 3, "x must be (N, steps, C)");
    require(kernel_t.ndim() == 3, "kernel_t must be (F, K, C)");
    require(n_idx.ndim() == 1 && t_idx.ndim() == 1 && f_idx.ndim() == 1 && g.ndim() == 1,
            "the entries must be 1-D");
    const index_t e = g.shape(0);
    require(n_idx.shape(0) == e && t_idx.shape(0) == e && f_idx.shape(0) == e,
            "n, t, f and g must have one length");
    require(stride >= 1 && dilation >= 1, "stride and dilation must be positive");
    const index_t n = x.shape(0), tp = x.shape(1), c = x.shape(2);
    const index_t f = kernel_t.shape(0), k = kernel_t.shape(1);
    require(kernel_t.shape(2) == c, "kernel_t's last axis must be x's channels");
    // bounded by the steps so that the index products below cannot overflow
    require(stride <= tp && dilation <= tp && k <= tp, "stride, dilation and kernel size must "
            "not exceed the steps of x");
    const std::int64_t* ns = n_idx.data();
    const std::int64_t* ts = t_idx.data();
    const std::int64_t* fs = f_idx.data();
    for (index_t i = 0; i < e; ++i) {
        require(ns[i] >= 0 && ns[i] < n && fs[i] >= 0 && fs[i] < f && ts[i] >= 0 &&
                    ts[i] < tp && ts[i] * stride + (k - 1) * dilation < tp,
                "entry " + std::to_string(i) + " lies outside x or the kernel");
    }
    Array<T> dk({f, k, c});
    std::fill(dk.mutable_data(), dk.mutable_data() + f * k * c, T(0));
    py::object dx_obj = py::none();
    T* dxp = nullptr;
    if (need_dx) {
        Array<T> dx({n, tp, c});
        dxp = dx.mutable_data();
        std::fill(dxp, dxp + n * tp * c, T(0));
        dx_obj = dx;
    }
    const T* xp = x.data();
    const T* wp = kernel_t.data();
    const T* gp = g.data();
    T* dkp = dk.mutable_data();
    {
        py::gil_scoped_release release;
        for (index_t i = 0; i < e; ++i) {
            const T gi = gp[i];
            for (index_t j = 0; j < k; ++j) {
                const index_t row = ns[i] * tp + ts[i] * stride + j * dilation;
                const T* __restrict xr = xp + row * c;
                T* __restrict dkr = dkp + (fs[i] * k + j) * c;
                for (index_t q = 0; q < c; ++q) dkr[q] += gi * xr[q];
                if (dxp != nullptr) {
                    const T* __restrict wr = wp + (fs[i] * k + j) * c;
                    T* __restrict dxr = dxp + row * c;
                    for (index_t q = 0; q < c; ++q) dxr[q] += gi * wr[q];
                }
            }
        }
    }
    return py::make_tuple(dx_obj, dk);
}

}  // namespace

void bind_conv1d_sparse(py::module_& m) {
    const char* doc =
        "(dx or None, dkernel_t) of a valid 1-D convolution for a sparse upstream gradient: "
        "x (N, steps, C), kernel_t (F, K, C), entries n, t, f (int64) with values g.";
    m.def("conv1d_sparse_backward", &conv1d_sparse_backward<float>, py::arg("x").noconvert(),
          py::arg("kernel_t").noconvert(), py::arg("n").noconvert(), py::arg("t").noconvert(),
          py::arg("f").noconvert(), py::arg("g").noconvert(), py::arg("stride"),
          py::arg("dilation"), py::arg("need_dx"), doc);
    m.def("conv1d_sparse_backward", &conv1d_sparse_backward<double>, py::arg("x").noconvert(),
          py::arg("kernel_t").noconvert(), py::arg("n").noconvert(), py::arg("t").noconvert(),
          py::arg("f").noconvert(), py::arg("g").noconvert(), py::arg("stride"),
          py::arg("dilation"), py::arg("need_dx"), doc);
}
