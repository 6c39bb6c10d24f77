// Bindings of the 2-D convolution (conv2d.h): forward (optionally fused with ReLU and a
// following max pooling), backward, and the algorithm / chunk-size settings.
#include <cstdint>

#include "checks.h"
#include "conv2d.h"

using namespace fastdl::bindings;
using fastdl::index_t;

namespace {

// The hyperparameters every convolution entry point takes after its arrays.
struct ConvOptions {
    index_t sh, sw;
    std::string padding;
    index_t dh, dw, groups;
};

// Shared by every entry point: ranks, positive sizes and hyperparameters, channels/groups
// agreement, output size >= 1 and overflow-checked element counts.
fastdl::Conv2dParams conv2d_check(const py::array& x, const py::array& kernel,
                                  const ConvOptions& o, const char* fn) {
    auto sx = shape_of<4>(x, fn, "x");
    auto sk = shape_of<4>(kernel, fn, "kernel");
    check_positive_pair(o.sh, o.sw, fn, "strides");
    check_positive_pair(o.dh, o.dw, fn, "dilation_rate");
    FASTDL_CHECK(o.groups >= 1, fn, ": groups must be a positive integer, received ", o.groups);
    const bool same = parse_padding(o.padding, fn);
    FASTDL_CHECK(sx[1] >= 1 && sx[2] >= 1 && sx[3] >= 1, fn,
                 ": x must be (N, H, W, C) with positive H, W and C, received shape ",
                 shape_str(x));
    FASTDL_CHECK(sk[0] >= 1 && sk[1] >= 1 && sk[2] >= 1 && sk[3] >= 1, fn,
                 ": kernel must be (KH, KW, C/groups, F) with positive sizes, received shape ",
                 shape_str(kernel));
    FASTDL_CHECK(sx[3] % o.groups == 0, fn, ": the channels of x ", shape_str(x),
                 " must be a multiple of groups, received groups=", o.groups);
    FASTDL_CHECK(sk[3] % o.groups == 0, fn, ": the filters of kernel ", shape_str(kernel),
                 " must be a multiple of groups, received groups=", o.groups);
    FASTDL_CHECK(sk[2] * o.groups == sx[3], fn, ": kernel must be (KH, KW, C/groups=",
                 sx[3] / o.groups, ", F) for x of shape ", shape_str(x), " and groups=",
                 o.groups, ", received ", shape_str(kernel));
    auto p = fastdl::conv2d_params(sx[0], sx[1], sx[2], sx[3], sk[0], sk[1], sk[3], o.sh, o.sw,
                                   o.dh, o.dw, o.groups, same, fn);
    FASTDL_CHECK(p.oh >= 1 && p.ow >= 1, fn, ": output size (", p.oh, ", ", p.ow,
                 ") is less than 1 for input size (", p.h, ", ", p.w, "), kernel size (", p.kh,
                 ", ", p.kw, "), strides (", o.sh, ", ", o.sw, "), dilation_rate (", o.dh, ", ",
                 o.dw, ") and padding '", o.padding, "'");
    fastdl::checked_product({p.n, p.oh, p.ow, p.f}, fn);     // y and dy
    fastdl::checked_product({p.ow, p.kh, p.kw, sk[2]}, fn);  // one im2col row of pixels
    return p;
}

template <typename T>
Array<T> conv2d_forward(const Array<T>& x, const Array<T>& kernel, const py::object& bias,
                        const ConvOptions& o, bool relu) {
    const char* fn = "conv2d_forward";
    auto p = conv2d_check(x, kernel, o, fn);
    const T* bp = optional_array<T>(bias, {p.f}, fn, "bias", " like x");
    auto y = new_array<T>({p.n, p.oh, p.ow, p.f}, fn);
    const T *xp = x.data(), *kp = kernel.data();
    T* yp = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        fastdl::conv2d_forward(yp, xp, kp, bp, p, relu);
    }
    return y;
}

template <typename T>
py::tuple conv2d_max_pool_forward(const Array<T>& x, const Array<T>& kernel,
                                  const py::object& bias, const ConvOptions& o, bool relu,
                                  index_t pool_h, index_t pool_w, bool training) {
    const char* fn = "conv2d_max_pool_forward";
    auto p = conv2d_check(x, kernel, o, fn);
    check_positive_pair(pool_h, pool_w, fn, "pool_size");
    FASTDL_CHECK(p.oh >= pool_h && p.ow >= pool_w, fn, ": pool size (", pool_h, ", ", pool_w,
                 ") is larger than the convolution's output (", p.oh, ", ", p.ow, ")");
    const T* bp = optional_array<T>(bias, {p.f}, fn, "bias", " like x");
    const index_t ph = p.oh / pool_h, pw = p.ow / pool_w;
    auto pooled = new_array<T>({p.n, ph, pw, p.f}, fn);
    py::object y = py::none(), argmax = py::none();
    T* yp = nullptr;
    std::int64_t* ap = nullptr;
    if (training) {
        auto ya = new_array<T>({p.n, p.oh, p.ow, p.f}, fn);
        auto aa = new_array<std::int64_t>({p.n, ph, pw, p.f}, fn);
        yp = ya.mutable_data();
        ap = aa.mutable_data();
        y = ya;
        argmax = aa;
    }
    const T *xp = x.data(), *kp = kernel.data();
    const fastdl::MaxPoolOutput<T> pool{pool_h, pool_w, pooled.mutable_data(), ap};
    {
        py::gil_scoped_release nogil;
        fastdl::conv2d_forward(yp, xp, kp, bp, p, relu, &pool);
    }
    return py::make_tuple(pooled, y, argmax);
}

template <typename T>
py::tuple conv2d_backward(const Array<T>& dy, const Array<T>& x, const Array<T>& kernel,
                          const ConvOptions& o, bool need_dx, bool need_dkernel,
                          bool need_dbias, const py::object& relu_output) {
    const char* fn = "conv2d_backward";
    auto p = conv2d_check(x, kernel, o, fn);
    auto sd = shape_of<4>(dy, fn, "dy");
    FASTDL_CHECK(sd[0] == p.n && sd[1] == p.oh && sd[2] == p.ow && sd[3] == p.f, fn,
                 ": dy must have the output shape (", p.n, ", ", p.oh, ", ", p.ow, ", ", p.f,
                 ") of x ", shape_str(x), " and kernel ", shape_str(kernel), ", received ",
                 shape_str(dy));
    const T* rp = optional_array<T>(relu_output, {p.n, p.oh, p.ow, p.f}, fn, "relu_output",
                                    " like x");
    py::object dx = py::none(), dk = py::none(), db = py::none();
    T *dxp = nullptr, *dkp = nullptr, *dbp = nullptr;
    if (need_dx) {
        auto a = new_array<T>({p.n, p.h, p.w, p.c}, fn);
        dxp = a.mutable_data();
        dx = a;
    }
    if (need_dkernel) {
        auto a = new_array<T>({p.kh, p.kw, p.c / p.groups, p.f}, fn);
        dkp = a.mutable_data();
        dk = a;
    }
    if (need_dbias) {
        auto a = new_array<T>({p.f}, fn);
        dbp = a.mutable_data();
        db = a;
    }
    const T *dyp = dy.data(), *xp = x.data(), *kp = kernel.data();
    {
        py::gil_scoped_release nogil;
        fastdl::conv2d_backward(dxp, dkp, dbp, dyp, xp, kp, rp, p);
    }
    return py::make_tuple(dx, dk, db);
}

template <typename T>
void bind_conv2d_t(py::module_& m) {
    m.def(
        "conv2d_forward",
        [](const Array<T>& x, const Array<T>& kernel, const py::object& bias, index_t stride_h,
           index_t stride_w, const std::string& padding, index_t dilation_h, index_t dilation_w,
           index_t groups, bool relu) {
            return conv2d_forward<T>(
                x, kernel, bias, {stride_h, stride_w, padding, dilation_h, dilation_w, groups},
                relu);
        },
        py::arg("x").noconvert(), py::arg("kernel").noconvert(), py::arg("bias"),
        py::arg("stride_h"), py::arg("stride_w"), py::arg("padding"), py::arg("dilation_h"),
        py::arg("dilation_w"), py::arg("groups"), py::arg("relu"),
        "y = [relu](conv2d(x, kernel) + bias): x (N,H,W,C), kernel (KH,KW,C/groups,F), "
        "bias (F,) or None -> y (N,OH,OW,F).");
    m.def(
        "conv2d_max_pool_forward",
        [](const Array<T>& x, const Array<T>& kernel, const py::object& bias, index_t stride_h,
           index_t stride_w, const std::string& padding, index_t dilation_h, index_t dilation_w,
           index_t groups, bool relu, index_t pool_h, index_t pool_w, bool training) {
            return conv2d_max_pool_forward<T>(
                x, kernel, bias, {stride_h, stride_w, padding, dilation_h, dilation_w, groups},
                relu, pool_h, pool_w, training);
        },
        py::arg("x").noconvert(), py::arg("kernel").noconvert(), py::arg("bias"),
        py::arg("stride_h"), py::arg("stride_w"), py::arg("padding"), py::arg("dilation_h"),
        py::arg("dilation_w"), py::arg("groups"), py::arg("relu"), py::arg("pool_h"),
        py::arg("pool_w"), py::arg("training"),
        "(pooled, y, argmax): y = conv2d_forward(...), pooled, argmax = its max pooling with "
        "pool_h x pool_w windows = strides and no padding (max_pool2d_forward's results, "
        "bitwise), each conv tile pooled while in cache. training=False: y and argmax are "
        "None and the convolution's output is never written.");
    m.def(
        "conv2d_backward",
        [](const Array<T>& dy, const Array<T>& x, const Array<T>& kernel, index_t stride_h,
           index_t stride_w, const std::string& padding, index_t dilation_h, index_t dilation_w,
           index_t groups, bool need_dx, bool need_dkernel, bool need_dbias,
           const py::object& relu_output) {
            return conv2d_backward<T>(
                dy, x, kernel, {stride_h, stride_w, padding, dilation_h, dilation_w, groups},
                need_dx, need_dkernel, need_dbias, relu_output);
        },
        py::arg("dy").noconvert(), py::arg("x").noconvert(), py::arg("kernel").noconvert(),
        py::arg("stride_h"), py::arg("stride_w"), py::arg("padding"), py::arg("dilation_h"),
        py::arg("dilation_w"), py::arg("groups"), py::arg("need_dx"), py::arg("need_dkernel"),
        py::arg("need_dbias"), py::arg("relu_output"),
        "(dx, dkernel, dbias) of conv2d_forward, None where not needed; relu_output: the "
        "forward's output when it was fused with ReLU, else None.");
}

void set_conv2d_chunk_bytes(index_t bytes) {
    FASTDL_CHECK(bytes >= 1, "conv2d_set_chunk_bytes: bytes must be positive, received ", bytes);
    fastdl::set_conv2d_chunk_bytes(bytes);
}

void set_conv2d_algorithm(const std::string& name) {
    using A = fastdl::Conv2dAlgorithm;
    if (name == "auto") return fastdl::set_conv2d_algorithm(A::kAuto);
    if (name == "im2col") return fastdl::set_conv2d_algorithm(A::kIm2col);
    if (name == "winograd") return fastdl::set_conv2d_algorithm(A::kWinograd);
    throw std::invalid_argument(fastdl::concat(
        "conv2d_set_algorithm: algorithm must be 'auto', 'im2col' or 'winograd', received '",
        name, "'"));
}

std::string conv2d_algorithm() {
    switch (fastdl::conv2d_algorithm()) {
        case fastdl::Conv2dAlgorithm::kIm2col: return "im2col";
        case fastdl::Conv2dAlgorithm::kWinograd: return "winograd";
        default: return "auto";
    }
}

}  // namespace

void bind_conv(py::module_& m) {
    bind_conv2d_t<float>(m);
    bind_conv2d_t<double>(m);
    m.def("conv2d_set_chunk_bytes", &set_conv2d_chunk_bytes, py::arg("bytes"));
    m.def("conv2d_chunk_bytes", &fastdl::conv2d_chunk_bytes);
    m.def("conv2d_set_algorithm", &set_conv2d_algorithm, py::arg("algorithm"),
          "Algorithm of 3x3 stride-1 undilated ungrouped convolutions: 'auto' (Winograd "
          "F(2x2,3x3) when C and F are >= 16), 'im2col' or 'winograd' (forced; tests, benchmarks).");
    m.def("conv2d_algorithm", &conv2d_algorithm);
}
