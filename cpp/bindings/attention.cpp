// Bindings of the softmax-attention kernel (attention.h), on (problems, T, depth) operands or
// (batch, T, heads, depth) ones (the projections' layout, no transposes). q, k, v, dout and the
// backward's optional dq, dk, dv outputs are read and written in place by their strides when
// each row of a head is contiguous and no two rows overlap: so the query, key and value of one
// packed (batch, T, 3 * heads * depth) projection are three views, and their gradients three
// views of one packed gradient. Every argument is checked (dtype, rank, shape agreement,
// strides, overflow) before anything is allocated or the GIL released; failures raise
// ValueError (TypeError for a wrong dtype) naming the argument and what came.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
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

// An operand of any strides (exact dtype: bound with .noconvert()); Layout::strides checks them.
template <typename T>
using Strided = py::array_t<T, 0>;

// "(1536, 384, 32, 4)": an array's strides in bytes, for error messages (operands are 3-D or 4-D).
std::string stride_str(const py::array& a) {
    std::string out = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i)
        out += (i ? ", " : "") + std::to_string(a.strides(i));
    return out + ")";
}

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
    // The strides (in elements) of operand a of this layout, or ValueError: a head's row must be
    // contiguous, the heads of a row side by side, and rows and batches must not overlap (a
    // size-1 axis, or an empty array, may have any stride).
    fastdl::HeadStrides strides(const py::array& a, const char* fn, const char* arg) const {
        const auto size = static_cast<index_t>(a.itemsize());
        const int r = static_cast<int>(a.ndim());
        auto stride = [&](int axis) { return static_cast<index_t>(a.strides(axis)); };
        auto dim = [&](int axis) { return static_cast<index_t>(a.shape(axis)); };
        const index_t depth = dim(r - 1), heads = heads_axis ? dim(2) : 1;
        const index_t row = fastdl::checked_mul(fastdl::checked_mul(heads, depth, fn), size, fn);
        if (a.size() == 0)  // nothing is read or written (NumPy may give any strides): C order
            return {fastdl::checked_mul(dim(1), row / size, fn), heads_axis ? depth : 0, row / size};
        bool ok = dim(r - 1) <= 1 || stride(r - 1) == size;
        if (heads_axis) ok = ok && (heads <= 1 || stride(2) == depth * size);
        ok = ok && (dim(1) <= 1 || stride(1) >= row);
        ok = ok && (dim(0) <= 1 ||
                    stride(0) >= fastdl::checked_mul(dim(1), std::max(stride(1), row), fn));
        for (int i = 0; i < r; ++i) ok = ok && stride(i) % size == 0;
        FASTDL_CHECK(ok, fn, ": ", arg, " must have contiguous rows of each head that do not "
                     "overlap (a C-contiguous array, or a slice of the last axis of one); "
                     "received shape ", shape_str(a), " with strides ", stride_str(a));
        fastdl::bindings::check_aligned(a, fn, arg);
        return {stride(0) / size, heads_axis ? stride(2) / size : 0, stride(1) / size};
    }
    Shape scores() const { return {p.problems(), p.tq, p.tk}; }
};

// The one shape check of forward and backward: q (B, Tq, dk), k (B, Tk, dk), v (B, Tk, dv),
// or with a heads axis q (B, Tq, H, dk), k (B, Tk, H, dk), v (B, Tk, H, dv).
template <typename T>
Layout attention_check(const Strided<T>& q, const Strided<T>& k, const Strided<T>& v,
                       double scale, bool causal, const char* fn) {
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
    p.q = l.strides(q, fn, "q");
    p.k = l.strides(k, fn, "k");
    p.v = l.strides(v, fn, "v");
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
py::tuple attention_forward(const Strided<T>& q, const Strided<T>& k, const Strided<T>& v,
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
    p.out = l.strides(out, fn, "out");
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

// A gradient output the caller gave (None: the backward allocates one): exact dtype, writeable,
// shaped like its operand, rows laid out as Layout::strides accepts.
template <typename T>
void check_gradient_output(const py::object& given, const py::array& like, const Layout& l,
                           const char* fn, const char* arg) {
    if (given.is_none()) return;
    if (!py::isinstance<Strided<T>>(given))
        throw py::type_error(fastdl::concat(fn, ": ", arg, " must be None or a ",
                                            py::str(py::dtype::of<T>()).cast<std::string>(),
                                            " array, received ",
                                            fastdl::bindings::describe(given)));
    auto a = py::reinterpret_borrow<py::array>(given);
    FASTDL_CHECK(a.writeable(), fn, ": ", arg, " must be a writeable array");
    check_array(a, Shape(like.shape(), like.shape() + like.ndim()), fn, arg);
    l.strides(a, fn, arg);
}

// The given gradient output, or a new C-contiguous array shaped like its operand.
template <typename T>
Strided<T> gradient_output(const py::object& given, const py::array& like, const char* fn) {
    if (!given.is_none()) return py::reinterpret_borrow<Strided<T>>(given);
    Shape shape(like.shape(), like.shape() + like.ndim());
    return py::reinterpret_borrow<Strided<T>>(fastdl::bindings::new_array<T>(shape, fn));
}

template <typename T>
py::tuple attention_backward(const Strided<T>& dout, const Strided<T>& q, const Strided<T>& k,
                             const Strided<T>& v, const Array<T>& probs, const py::object& drop,
                             double scale, const py::object& dq_out, const py::object& dk_out,
                             const py::object& dv_out) {
    const char* fn = "attention_backward";
    Layout l = attention_check(q, k, v, scale, false, fn);
    auto& p = l.p;
    check_array(dout, l.operand(p.tq, p.dv), fn, "dout");
    p.out = l.strides(dout, fn, "dout");
    check_array(probs, l.scores(), fn, "probs");
    const T* dp = optional_array<T>(drop, l.scores(), fn, "drop");
    check_gradient_output<T>(dq_out, q, l, fn, "dq");
    check_gradient_output<T>(dk_out, k, l, fn, "dk");
    check_gradient_output<T>(dv_out, v, l, fn, "dv");
    Strided<T> dq = gradient_output<T>(dq_out, q, fn);
    Strided<T> dk = gradient_output<T>(dk_out, k, fn);
    Strided<T> dv = gradient_output<T>(dv_out, v, fn);
    p.grad_q = l.strides(dq, fn, "dq");
    p.grad_k = l.strides(dk, fn, "dk");
    p.grad_v = l.strides(dv, fn, "dv");
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
          "heads axis q (B, Tq, H, dk), k (B, Tk, H, dk), v (B, Tk, H, dv) and P = B * H; "
          "each head's rows contiguous (C-contiguous, or slices of a packed last axis). "
          "mask: bool (M, Tq, Tk) with M dividing P, True = visible.");
    m.def("attention_backward", &attention_backward<T>, py::arg("dout").noconvert(),
          py::arg("q").noconvert(), py::arg("k").noconvert(), py::arg("v").noconvert(),
          py::arg("probs").noconvert(), py::arg("drop") = py::none(), py::arg("scale") = 1.0,
          py::arg("dq") = py::none(), py::arg("dk") = py::none(), py::arg("dv") = py::none(),
          "(dq, dk, dv) of attention_forward given dout and its probs, shaped like q, k, v: "
          "new arrays, or written into the given dq, dk, dv (which must not overlap each other "
          "or the inputs).");
}

}  // namespace

void bind_attention(py::module_& m) {
    bind_attention_dtype<float>(m);
    bind_attention_dtype<double>(m);
}
