// Bindings of the image kernels (image_transform.h): affine resampling of channels-last
// images, forward and adjoint.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "common.h"
#include "image_transform.h"

namespace py = pybind11;
using fastdl::index_t;

namespace {

template <typename T>
using Images = py::array_t<T, py::array::c_style>;
using Matrices = py::array_t<double, py::array::c_style | py::array::forcecast>;

fastdl::FillMode fill_mode_of(const std::string& name) {
    if (name == "reflect") return fastdl::FillMode::reflect;
    if (name == "wrap") return fastdl::FillMode::wrap;
    if (name == "constant") return fastdl::FillMode::constant;
    if (name == "nearest") return fastdl::FillMode::nearest;
    throw std::invalid_argument("fill_mode must be one of 'reflect', 'wrap', 'constant', "
                                "'nearest'. Received: fill_mode='" + name + "'");
}

bool bilinear_of(const std::string& name) {
    if (name == "bilinear") return true;
    if (name == "nearest") return false;
    throw std::invalid_argument("interpolation must be 'bilinear' or 'nearest'. Received: "
                                "interpolation='" + name + "'");
}

// (batch, height, width, channels) of a 4-D array, and the (batch, 6) matrices checked.
template <typename T>
void check_shapes(const Images<T>& a, const Matrices& m, const char* fn, const char* arg) {
    FASTDL_CHECK(a.ndim() == 4, fn, ": ", arg, " must be 4-D (batch, height, width, channels), "
                 "received ", a.ndim(), "-D");
    FASTDL_CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0, fn, ": ", arg,
                 " is not aligned to its dtype");
    FASTDL_CHECK(a.shape(1) > 0 && a.shape(2) > 0, fn, ": ", arg,
                 " must have a positive height and width, received ", a.shape(1), "x",
                 a.shape(2));
    FASTDL_CHECK(m.ndim() == 2 && m.shape(0) == a.shape(0) && m.shape(1) == 6, fn,
                 ": matrices must have shape (", a.shape(0), ", 6), received ndim ", m.ndim(),
                 m.ndim() == 2 ? ", shape (" + std::to_string(m.shape(0)) + ", " +
                                     std::to_string(m.shape(1)) + ")"
                               : std::string());
}

template <typename T>
Images<T> affine_transform(const Images<T>& images, const Matrices& matrices,
                           const std::string& interpolation, const std::string& fill_mode,
                           double fill_value) {
    check_shapes<T>(images, matrices, "affine_transform", "images");
    const bool bilinear = bilinear_of(interpolation);
    const auto fill = fill_mode_of(fill_mode);
    Images<T> out({images.shape(0), images.shape(1), images.shape(2), images.shape(3)});
    const T* src = images.data();
    const double* m = matrices.data();
    T* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        fastdl::affine_transform<T>(src, images.shape(0), images.shape(1), images.shape(2),
                                    images.shape(3), m, bilinear, fill,
                                    static_cast<T>(fill_value), dst);
    }
    return out;
}

template <typename T>
Images<T> affine_transform_backward(const Images<T>& dy, const Matrices& matrices,
                                    const std::string& interpolation,
                                    const std::string& fill_mode) {
    check_shapes<T>(dy, matrices, "affine_transform_backward", "dy");
    const bool bilinear = bilinear_of(interpolation);
    const auto fill = fill_mode_of(fill_mode);
    Images<T> dx({dy.shape(0), dy.shape(1), dy.shape(2), dy.shape(3)});
    const T* g = dy.data();
    const double* m = matrices.data();
    T* d = dx.mutable_data();
    {
        py::gil_scoped_release nogil;
        fastdl::affine_transform_backward<T>(g, dy.shape(0), dy.shape(1), dy.shape(2),
                                             dy.shape(3), m, bilinear, fill, d);
    }
    return dx;
}

template <typename T>
void bind_image_t(py::module_& m) {
    m.def("affine_transform", &affine_transform<T>, py::arg("images").noconvert(),
          py::arg("matrices"), py::arg("interpolation"), py::arg("fill_mode"),
          py::arg("fill_value"),
          "Keras's affine_transform of channels-last images (batch, height, width, channels): "
          "output (x, y) reads the input at (a0 x + a1 y + a2, b0 x + b1 y + b2), one row "
          "[a0, a1, a2, b0, b1, b2] of matrices per image.");
    m.def("affine_transform_backward", &affine_transform_backward<T>,
          py::arg("dy").noconvert(), py::arg("matrices"), py::arg("interpolation"),
          py::arg("fill_mode"), "The adjoint of affine_transform: d(loss)/d(images) from dy.");
}

}  // namespace

void bind_image(py::module_& m) {
    bind_image_t<float>(m);
    bind_image_t<double>(m);
}
