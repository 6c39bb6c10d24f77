// Bindings of 2-D max and average pooling (pool2d.h), forward and backward.
#include <cstdint>

#include "checks.h"
#include "pool2d.h"

using namespace fastdl::bindings;
using fastdl::index_t;

namespace {

// The window every pooling entry point takes after its arrays (and input size).
struct PoolWindow {
    index_t ph, pw, sh, sw;
    std::string padding;
};

// Shared by the pooling entry points: positive window, strides and input sizes, padding,
// output size >= 1 and overflow-checked element counts of x and y.
fastdl::Pool2dParams pool2d_check(index_t n, index_t h, index_t w, index_t c,
                                  const std::string& x_desc, const PoolWindow& o,
                                  const char* fn) {
    check_positive_pair(o.ph, o.pw, fn, "pool_size");
    check_positive_pair(o.sh, o.sw, fn, "strides");
    const bool same = parse_padding(o.padding, fn);
    FASTDL_CHECK(h >= 1 && w >= 1 && c >= 1, fn,
                 ": x must be (N, H, W, C) with positive H, W and C, received ", x_desc);
    fastdl::checked_product({n, h, w, c}, fn);
    auto p = fastdl::pool2d_params(n, h, w, c, o.ph, o.pw, o.sh, o.sw, same, fn);
    FASTDL_CHECK(p.oh >= 1 && p.ow >= 1, fn, ": output size (", p.oh, ", ", p.ow,
                 ") is less than 1 for input size (", h, ", ", w, "), pool_size (", o.ph, ", ",
                 o.pw, "), strides (", o.sh, ", ", o.sw, ") and padding '", o.padding, "'");
    fastdl::checked_product({n, p.oh, p.ow, c}, fn);
    return p;
}

fastdl::Pool2dParams pool2d_check_x(const py::array& x, const PoolWindow& o, const char* fn) {
    auto s = shape_of<4>(x, fn, "x");
    return pool2d_check(s[0], s[1], s[2], s[3], "shape " + shape_str(x), o, fn);
}

// For the backward passes: x is (N, input_h, input_w, C) with N and C from dy.
fastdl::Pool2dParams pool2d_check_dy(const py::array& dy, index_t input_h, index_t input_w,
                                     const PoolWindow& o, const char* fn) {
    auto s = shape_of<4>(dy, fn, "dy");
    auto p = pool2d_check(s[0], input_h, input_w, s[3],
                          fastdl::concat("input size (", input_h, ", ", input_w, ")"), o, fn);
    FASTDL_CHECK(s[1] == p.oh && s[2] == p.ow, fn, ": dy must have the output shape (", p.n,
                 ", ", p.oh, ", ", p.ow, ", ", p.c, ") of an input of size (", input_h, ", ",
                 input_w, "), received ", shape_str(dy));
    return p;
}

template <typename T>
py::tuple max_pool2d_forward(const Array<T>& x, const PoolWindow& o, bool need_argmax) {
    const char* fn = "max_pool2d_forward";
    auto p = pool2d_check_x(x, o, fn);
    auto y = new_array<T>({p.n, p.oh, p.ow, p.c}, fn);
    py::object am = py::none();
    std::int64_t* ap = nullptr;
    if (need_argmax) {
        auto a = new_array<std::int64_t>({p.n, p.oh, p.ow, p.c}, fn);
        ap = a.mutable_data();
        am = a;
    }
    T* yp = y.mutable_data();
    const T* xp = x.data();
    {
        py::gil_scoped_release nogil;
        fastdl::max_pool2d_forward(yp, ap, xp, p);
    }
    return py::make_tuple(y, am);
}

template <typename T>
Array<T> max_pool2d_backward(const Array<T>& dy, const Array<std::int64_t>& argmax,
                             index_t input_h, index_t input_w, const PoolWindow& o) {
    const char* fn = "max_pool2d_backward";
    auto p = pool2d_check_dy(dy, input_h, input_w, o, fn);
    auto sa = shape_of<4>(argmax, fn, "argmax");
    FASTDL_CHECK(sa[0] == p.n && sa[1] == p.oh && sa[2] == p.ow && sa[3] == p.c, fn,
                 ": argmax must have the shape of dy ", shape_str(dy), ", received ",
                 shape_str(argmax));
    const std::int64_t* ap = argmax.data();
    const char* bad_argmax = ": argmax must hold the flat indices into x that max_pool2d_forward "
                             "returned (each inside its own window and image)";
    // Overlapping windows scatter at argmax: validate first. Disjoint windows only compare with
    // argmax; the kernel counts the consistent entries instead (one pass, checked after).
    const bool disjoint = fastdl::max_pool2d_windows_disjoint(p);
    FASTDL_CHECK(disjoint || fastdl::max_pool2d_argmax_valid(ap, p), fn, bad_argmax);
    auto dx = new_array<T>({p.n, p.h, p.w, p.c}, fn);
    T* dxp = dx.mutable_data();
    const T* dyp = dy.data();
    index_t routed;
    {
        py::gil_scoped_release nogil;
        routed = fastdl::max_pool2d_backward(dxp, dyp, ap, p);
    }
    FASTDL_CHECK(routed == p.n * p.oh * p.ow * p.c, fn, bad_argmax);
    return dx;
}

template <typename T>
Array<T> avg_pool2d_forward(const Array<T>& x, const PoolWindow& o) {
    const char* fn = "avg_pool2d_forward";
    auto p = pool2d_check_x(x, o, fn);
    auto y = new_array<T>({p.n, p.oh, p.ow, p.c}, fn);
    T* yp = y.mutable_data();
    const T* xp = x.data();
    {
        py::gil_scoped_release nogil;
        fastdl::avg_pool2d_forward(yp, xp, p);
    }
    return y;
}

template <typename T>
Array<T> avg_pool2d_backward(const Array<T>& dy, index_t input_h, index_t input_w,
                             const PoolWindow& o) {
    const char* fn = "avg_pool2d_backward";
    auto p = pool2d_check_dy(dy, input_h, input_w, o, fn);
    auto dx = new_array<T>({p.n, p.h, p.w, p.c}, fn);
    T* dxp = dx.mutable_data();
    const T* dyp = dy.data();
    {
        py::gil_scoped_release nogil;
        fastdl::avg_pool2d_backward(dxp, dyp, p);
    }
    return dx;
}

template <typename T>
void bind_pool_t(py::module_& m) {
    m.def(
        "max_pool2d_forward",
        [](const Array<T>& x, index_t pool_h, index_t pool_w, index_t stride_h, index_t stride_w,
           const std::string& padding, bool need_argmax) {
            return max_pool2d_forward<T>(x, {pool_h, pool_w, stride_h, stride_w, padding},
                                         need_argmax);
        },
        py::arg("x").noconvert(), py::arg("pool_h"), py::arg("pool_w"), py::arg("stride_h"),
        py::arg("stride_w"), py::arg("padding"), py::arg("need_argmax") = true,
        "(y, argmax): window maxima of x (N,H,W,C) and their flat indices (None when "
        "need_argmax is False: inference).");
    m.def(
        "max_pool2d_backward",
        [](const Array<T>& dy, const Array<std::int64_t>& argmax, index_t input_h,
           index_t input_w, index_t pool_h, index_t pool_w, index_t stride_h, index_t stride_w,
           const std::string& padding) {
            return max_pool2d_backward<T>(dy, argmax, input_h, input_w,
                                          {pool_h, pool_w, stride_h, stride_w, padding});
        },
        py::arg("dy").noconvert(), py::arg("argmax").noconvert(), py::arg("input_h"),
        py::arg("input_w"), py::arg("pool_h"), py::arg("pool_w"), py::arg("stride_h"),
        py::arg("stride_w"), py::arg("padding"),
        "dx of max pooling: dy scattered (added) at argmax.");
    m.def(
        "avg_pool2d_forward",
        [](const Array<T>& x, index_t pool_h, index_t pool_w, index_t stride_h, index_t stride_w,
           const std::string& padding) {
            return avg_pool2d_forward<T>(x, {pool_h, pool_w, stride_h, stride_w, padding});
        },
        py::arg("x").noconvert(), py::arg("pool_h"), py::arg("pool_w"), py::arg("stride_h"),
        py::arg("stride_w"), py::arg("padding"),
        "Window means of x (N,H,W,C); padding is not counted.");
    m.def(
        "avg_pool2d_backward",
        [](const Array<T>& dy, index_t input_h, index_t input_w, index_t pool_h, index_t pool_w,
           index_t stride_h, index_t stride_w, const std::string& padding) {
            return avg_pool2d_backward<T>(dy, input_h, input_w,
                                          {pool_h, pool_w, stride_h, stride_w, padding});
        },
        py::arg("dy").noconvert(), py::arg("input_h"), py::arg("input_w"), py::arg("pool_h"),
        py::arg("pool_w"), py::arg("stride_h"), py::arg("stride_w"), py::arg("padding"),
        "dx of average pooling.");
}

}  // namespace

void bind_pool(py::module_& m) {
    bind_pool_t<float>(m);
    bind_pool_t<double>(m);
}
