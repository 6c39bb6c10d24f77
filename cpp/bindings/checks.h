// Shared by the binding files (cpp/bindings/*.cpp, one per op family, each defining
// bind_<family>(m), all called from the module file cpp/bindings.cpp): the strict array type,
// the argument checks and the allocator of output arrays.
//
// Every entry point checks its arguments (types, rank, shape agreement, sizes, overflow) with
// these helpers before it allocates, releases the GIL or enters an OpenMP region; a failed check
// raises ValueError (FASTDL_CHECK) or TypeError naming the function, the argument, what was
// expected and what was received.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "common.h"

namespace fastdl::bindings {

namespace py = pybind11;

// Inputs are strict: C-contiguous, exact dtype (bound with .noconvert()), so nothing is copied
// silently.
template <typename T>
using Array = py::array_t<T, py::array::c_style>;

using Shape = std::vector<index_t>;

// "(2, 3)", "(4,)", "()": the one spelling of shapes in error messages.
std::string shape_str(const index_t* dims, std::size_t rank);
inline std::string shape_str(const Shape& dims) { return shape_str(dims.data(), dims.size()); }
std::string shape_str(const py::array& a);

// "<class 'list'>", "<class 'numpy.ndarray'> of dtype float64": what an argument was.
std::string describe(const py::handle& obj);

// Kernels load whole elements: an array whose data is not aligned to its dtype (a view at an
// odd byte offset) would be undefined behaviour, so every array argument passes this check.
void check_aligned(const py::array& a, const char* fn, const char* arg);

// The rank and alignment of an input array; its shape as int64.
template <std::size_t R>
std::array<index_t, R> shape_of(const py::array& a, const char* fn, const char* arg) {
    FASTDL_CHECK(a.ndim() == static_cast<py::ssize_t>(R), fn, ": ", arg, " must be ", R,
                 "-D, received shape ", shape_str(a));
    check_aligned(a, fn, arg);
    std::array<index_t, R> s{};
    for (std::size_t i = 0; i < R; ++i) s[i] = static_cast<index_t>(a.shape(i));
    return s;
}

// An array argument that must have exactly the shape `dims` (and be aligned).
void expect_shape(const py::array& a, const Shape& dims, const char* fn, const char* arg);

// obj as an array of exactly T, C-contiguous and aligned, or TypeError naming what it is.
// `optional` (the caller handles None) and `like` (" like x") complete the expectation stated
// in the message.
template <typename T>
Array<T> exact_array(const py::object& obj, const char* fn, const char* arg, bool optional,
                     const char* like = "") {
    if (!py::isinstance<Array<T>>(obj))
        throw py::type_error(fastdl::concat(fn, ": ", arg, " must be ", optional ? "None or " : "",
                                            "a C-contiguous ",
                                            py::str(py::dtype::of<T>()).cast<std::string>(),
                                            " array", like, ", received ", describe(obj)));
    auto a = py::reinterpret_borrow<Array<T>>(obj);
    check_aligned(a, fn, arg);
    return a;
}

// None (null), or an array of exactly T with exactly the shape `dims`. The pointer stays valid
// while obj (the caller's argument) lives.
template <typename T>
const T* optional_array(const py::object& obj, const Shape& dims, const char* fn,
                        const char* arg, const char* like = "") {
    if (obj.is_none()) return nullptr;
    Array<T> a = exact_array<T>(obj, fn, arg, true, like);
    expect_shape(a, dims, fn, arg);
    return a.data();
}

// Hyperparameters shared by convolution and pooling.
bool parse_padding(const std::string& padding, const char* fn);  // "same" -> true
void check_positive_pair(index_t a, index_t b, const char* fn, const char* arg);

// A 64-byte aligned, uninitialised block for an output array of `count` elements of
// `itemsize` bytes (count overflow-checked), and the capsule that frees it with the array.
// MemoryError when it cannot be allocated. See checks.cpp for why not NumPy's allocator.
py::capsule allocate_output(index_t count, std::size_t itemsize, const char* fn, void** data);

// A new uninitialised C-contiguous output array of this shape (its size checked for overflow
// before anything is allocated).
template <typename T>
Array<T> new_array(const Shape& shape, const char* fn) {
    index_t count = 1;
    for (index_t s : shape) count = fastdl::checked_mul(count, s, fn);
    void* data = nullptr;
    py::capsule owner = allocate_output(count, sizeof(T), fn, &data);
    return Array<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()), static_cast<T*>(data),
                    owner);
}

}  // namespace fastdl::bindings
