// Bindings of the softmax-attention kernel (attention.h), on (problems, T, depth) operands or
// (batch, T, heads, depth) ones (the projections' layout, no transposes). Every argument is
// checked (dtype, rank, shape agreement, overflow) before anything is allocated or the GIL released;
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

using fastdl::bindings::Array;
using fastdl::bindings::Shape;
using fastdl::bindings::shape_str;

// shape(a) == dims, where a -1 in dims matches any size.
void check_array(const py::array& a, const Shape& dims, const char* fn, const char* arg) {
    bool same = a.ndim() == static_cast<py::ssize_t>(dims.size());
    for (std::size_t i = 0; same && i < dims.size(); ++i) same = dims[i] < 0 || a.shape(i) == dims[i];
    FASTDL_CHECK(same, fn, ": ", arg, " must have shape ", shape_str(dims), " (-1: any), received ",
                 shape_str(a));
    fastdl::bindings::check_aligned(a, fn, arg);
}

// The shapes of attention_check: q, k, v and the output in one of the two layouts, and the
// probabilities (problems, tq, tk).
struct Layout {
    fastdl::AttentionParams p;
    bool heads_axis;  // 4-D (batch, T, heads, depth) operands, else 3-D (problems, T, depth)

    Shape operand(index_t rows, index_t depth) const {
        return heads_axis ? Shape{p.batch, rows, p.heads, depth} : Shape{p.batch, rows, depth};
    }
    // The strides of a C-contiguous operand of this layout.
    fastdl::HeadStrides strides(index_t rows, index_t depth) const {
        return heads_axis ? fastdl::HeadStrides{rows * p.heads * depth, depth, p.heads * depth}
                          : fastdl::HeadStrides{rows * depth, 0, depth};
    }
    Shape scores() const { return {p.problems(), p.tq, p.tk}; }
};

// The one shape check of forward and backward: q (B, Tq, dk), k (B, Tk, dk), v (B, Tk, dv),
// or with a heads axis q (B, Tq, H, dk), k (B, Tk, H, dk), v (B, Tk, H, dv).
template <typename T>
Layout attention_check(const Array<T>& q, const Array<T>& k, const Array<T>& v, double scale,
                       bool causal, const char* fn) {
    FASTDL_CHECK(q.ndim() == 3 || q.ndim() == 4, fn,
                 ": q must be 3-D (problems, Tq, dk) or 4-D (batch, Tq, heads, dk), received "
                 "shape ", shape_str(q));
    Layout l{};
    l.heads_axis = q.ndim() == 4;
    fastdl::AttentionParams& p = l.p;
    p.batch = q.shape(0), p.tq = q.shape(1), p.heads = l.heads_axis ? q.shape(2) : 1;
    p.dk = q.shape(q.ndim() - 1);
    check_array(q, l.operand(p.tq, p.dk), fn, "q");
    check_array(k, l.operand(-1, p.dk), fn, "k");
    p.tk = k.shape(1);
    check_array(v, l.operand(p.tk, -1), fn, "v");
    p.dv = v.shape(v.ndim() - 1);
    FASTDL_CHECK(std::isfinite(scale), fn, ": scale must be finite, received ", scale);
    fastdl::checked_product({p.batch, p.heads, p.tq, p.tk}, fn);
    fastdl::checked_product({p.batch, p.heads, p.tq, p.dv}, fn);
    p.causal = causal;
    p.scale = scale;
    p.q = p.grad_q = l.strides(p.tq, p.dk);
    p.k = p.grad_k = l.strides(p.tk, p.dk);
    p.v = p.grad_v = l.strides(p.tk, p.dv);
    p.out = l.strides(p.tq, p.dv);
    return l;
}

// None, or a C-contiguous array of exactly T and exactly this shape (the caller keeps obj alive).
template <typename T>
const T* optional_array(const py::object& obj, const Shape& dims, const char* fn,
                        const char* arg) {
    if (obj.is_none()) return nullptr;
    Array<T> a = fastdl::bindings::exact_array<T>(obj, fn, arg, true);
    check_array(a, dims, fn, arg);
    return a.data();
}

template <typename T>
py::tuple attention_forward(const Array<T>& q, const Array<T>& k, const Array<T>& v,
                            const py::object& mask, const py::object& drop, double scale,
                            bool causal) {
    const char* fn = "attention_forward";
    Layout l = attention_check(q, k, v, scale, causal, fn);
    auto& p = l.p;
    const bool* mp = optional_array<bool>(mask, {-1, p.tq, p.tk}, fn, "mask");
    if (mp) {
        p.mask_batch = py::reinterpret_borrow<py::array>(mask).shape(0);
        FASTDL_CHECK(p.mask_batch >= 1 && p.problems() % p.mask_batch == 0, fn,
                     ": the mask's first dimension must divide the batch ", p.problems(),
                     ", received mask shape ", shape_str(py::reinterpret_borrow<py::array>(mask)));
    }
    const T* dp = optional_array<T>(drop, l.scores(), fn, "drop");
    Array<T> out = fastdl::bindings::new_array<T>(l.operand(p.tq, p.dv), fn);
    Array<T> probs = fastdl::bindings::new_array<T>(l.scores(), fn);
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
    Layout l = attention_check(q, k, v, scale, false, fn);
    const auto& p = l.p;
    check_array(dout, l.operand(p.tq, p.dv), fn, "dout");
    check_array(probs, l.scores(), fn, "probs");
    const T* dp = optional_array<T>(drop, l.scores(), fn, "drop");
    Array<T> dq = fastdl::bindings::new_array<T>(l.operand(p.tq, p.dk), fn);
    Array<T> dk = fastdl::bindings::new_array<T>(l.operand(p.tk, p.dk), fn);
    Array<T> dv = fastdl::bindings::new_array<T>(l.operand(p.tk, p.dv), fn);
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
          "(out, probs): probs = masked softmax(q k^T * scale) over (P, Tq, Tk), out = "
          "(probs * drop) @ v, for q (P, Tq, dk), k (P, Tk, dk), v (P, Tk, dv), or with a "
          "heads axis q (B, Tq, H, dk), k (B, Tk, H, dk), v (B, Tk, H, dv) and P = B * H. "
          "mask: bool (M, Tq, Tk) with M dividing P, True = visible.");
    m.def("attention_backward", &attention_backward<T>, py::arg("dout").noconvert(),
          py::arg("q").noconvert(), py::arg("k").noconvert(), py::arg("v").noconvert(),
          py::arg("probs").noconvert(), py::arg("drop") = py::none(), py::arg("scale") = 1.0,
          "(dq, dk, dv) of attention_forward given dout and its probs, laid out like q, k, v.");
}

}  // namespace

void bind_attention(py::module_& m) {
    bind_attention_dtype<float>(m);
    bind_attention_dtype<double>(m);
}
