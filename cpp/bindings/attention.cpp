// Bindings of the softmax-attention kernel (attention.h). Every argument is checked
// (dtype, rank, shape agreement, overflow) before anything is allocated or the GIL released;
// failures raise ValueError (TypeError for a wrong dtype) naming the argument and what came.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "attention.h"
#include "checks.h"
#include "common.h"

namespace py = pybind11;
using fastdl::index_t;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;

void check_array(const py::array& a, index_t b, index_t rows, index_t cols, const char* fn,
                 const char* arg) {
    FASTDL_CHECK(a.ndim() == 3, fn, ": ", arg, " must be 3-D, received shape ", fastdl::bindings::shape_str(a));
    FASTDL_CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() == 0, fn, ": ", arg,
                 " is not aligned to its dtype");
    FASTDL_CHECK((b < 0 || a.shape(0) == b) && (rows < 0 || a.shape(1) == rows) &&
                     (cols < 0 || a.shape(2) == cols),
                 fn, ": ", arg, " must have shape (", b, ", ", rows, ", ", cols,
                 ") (-1: any), received ", fastdl::bindings::shape_str(a));
}

// None, or a C-contiguous array of exactly T (the caller keeps obj alive).
template <typename T>
const T* optional_array(const py::object& obj, index_t b, index_t rows, index_t cols,
                        const char* fn, const char* arg) {
    if (obj.is_none()) return nullptr;
    if (!py::isinstance<Array<T>>(obj))
        throw py::type_error(fastdl::concat(
            fn, ": ", arg, " must be None or a C-contiguous ",
            py::str(py::dtype::of<T>()).cast<std::string>(), " array, received ",
            py::str(py::type::handle_of(obj)).cast<std::string>(),
            py::isinstance<py::array>(obj)
                ? " of dtype " + py::str(obj.attr("dtype")).cast<std::string>()
                : std::string()));
    auto a = py::reinterpret_borrow<py::array>(obj);
    check_array(a, b, rows, cols, fn, arg);
    return static_cast<const T*>(a.data());
}

template <typename T>
fastdl::AttentionParams attention_check(const Array<T>& q, const Array<T>& k, const Array<T>& v,
                                        double scale, bool causal, const char* fn) {
    check_array(q, -1, -1, -1, fn, "q");
    const index_t b = q.shape(0), tq = q.shape(1), dk = q.shape(2);
    check_array(k, b, -1, dk, fn, "k");
    const index_t tk = k.shape(1);
    check_array(v, b, tk, -1, fn, "v");
    FASTDL_CHECK(std::isfinite(scale), fn, ": scale must be finite, received ", scale);
    fastdl::checked_product({b, tq, tk}, fn);
    fastdl::checked_product({b, tq, v.shape(2)}, fn);
    return fastdl::AttentionParams{b, tq, tk, dk, static_cast<index_t>(v.shape(2)), 0, causal,
                                   scale};
}

template <typename T>
py::tuple attention_forward(const Array<T>& q, const Array<T>& k, const Array<T>& v,
                            const py::object& mask, const py::object& drop, double scale,
                            bool causal) {
    const char* fn = "attention_forward";
    auto p = attention_check(q, k, v, scale, causal, fn);
    const bool* mp = optional_array<bool>(mask, -1, p.tq, p.tk, fn, "mask");
    if (mp) {
        p.mask_batch = py::reinterpret_borrow<py::array>(mask).shape(0);
        FASTDL_CHECK(p.mask_batch >= 1 && p.batch % p.mask_batch == 0, fn,
                     ": the mask's first dimension must divide the batch ", p.batch,
                     ", received mask shape ", fastdl::bindings::shape_str(py::reinterpret_borrow<py::array>(mask)));
    }
    const T* dp = optional_array<T>(drop, p.batch, p.tq, p.tk, fn, "drop");
    Array<T> out({p.batch, p.tq, p.dv}), probs({p.batch, p.tq, p.tk});
    T* op = out.mutable_data();
    T* pp = probs.mutable_data();
    const T *qp = q.data(), *kp = k.data(), *vp = v.data();
    const auto* m8 = reinterpret_cast<const std::uint8_t*>(mp);
    {
        py::gil_scoped_release nogil;
        fastdl::attention_forward(op, pp, qp, kp, vp, m8, dp, p);
    }
    return py::make_tuple(out, probs);
}

template <typename T>
py::tuple attention_backward(const Array<T>& dout, const Array<T>& q, const Array<T>& k,
                             const Array<T>& v, const Array<T>& probs, const py::object& drop,
                             double scale) {
    const char* fn = "attention_backward";
    auto p = attention_check(q, k, v, scale, false, fn);
    check_array(dout, p.batch, p.tq, p.dv, fn, "dout");
    check_array(probs, p.batch, p.tq, p.tk, fn, "probs");
    const T* dp = optional_array<T>(drop, p.batch, p.tq, p.tk, fn, "drop");
    Array<T> dq({p.batch, p.tq, p.dk}), dk({p.batch, p.tk, p.dk}), dv({p.batch, p.tk, p.dv});
    T *dqp = dq.mutable_data(), *dkp = dk.mutable_data(), *dvp = dv.mutable_data();
    const T *gp = dout.data(), *qp = q.data(), *kp = k.data(), *vp = v.data(),
            *pp = probs.data();
    {
        py::gil_scoped_release nogil;
        fastdl::attention_backward(dqp, dkp, dvp, gp, qp, kp, vp, pp, dp, p);
    }
    return py::make_tuple(dq, dk, dv);
}

template <typename T>
void bind_attention_dtype(py::module_& m) {
    m.def("attention_forward", &attention_forward<T>, py::arg("q").noconvert(),
          py::arg("k").noconvert(), py::arg("v").noconvert(), py::arg("mask") = py::none(),
          py::arg("drop") = py::none(), py::arg("scale") = 1.0, py::arg("causal") = false,
          "(out, probs): probs = masked softmax(q k^T * scale) over (B, Tq, Tk), out = "
          "(probs * drop) @ v. mask: bool (M, Tq, Tk) with M dividing B, True = visible.");
    m.def("attention_backward", &attention_backward<T>, py::arg("dout").noconvert(),
          py::arg("q").noconvert(), py::arg("k").noconvert(), py::arg("v").noconvert(),
          py::arg("probs").noconvert(), py::arg("drop") = py::none(), py::arg("scale") = 1.0,
          "(dq, dk, dv) of attention_forward given dout and its probs.");
}

}  // namespace

void bind_attention(py::module_& m) {
    bind_attention_dtype<float>(m);
    bind_attention_dtype<double>(m);
}
