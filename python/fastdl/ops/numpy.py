"""Differentiable array ops with ``keras.ops`` names, signatures and NumPy broadcasting.

Each op computes its value with NumPy (or a C++ kernel from :mod:`fastdl.ops.core`) and, only
while a GradientTape records, records itself with a vector-Jacobian rule: a plain function
``vjp(cache, g) -> (grad per input)``. Ops accept Tensors, Variables, NumPy arrays and Python
scalars and return Tensors. Conversion follows Keras: Python floats become float32, Python
ints int32; NumPy arrays keep their dtype.
"""
import builtins

import numpy as np

from fastdl.ops import core
from fastdl.tensor import tape as _tape
from fastdl.tensor.tensor import Tensor, Variable

_TAPES = _tape._TAPES
_record = _tape.record
_tracked = _tape.tracked
_FLOAT32 = np.dtype(np.float32)


# ----------------------------------------------------------------------------------------------
# conversion

def _standard_dtype(dtype):
    if dtype is None:
        return None
    return np.dtype(str(dtype) if isinstance(dtype, str) else dtype)


def _array(x, dtype=None):
    """``x`` as a NumPy array (or scalar) with Keras's default dtypes for Python values."""
    if isinstance(x, Tensor):
        v = x._value
    elif isinstance(x, (np.ndarray, np.generic)):
        v = x
    elif isinstance(x, bool):
        v = np.bool_(x)
    elif isinstance(x, int):
        v = np.array(x, np.int32) if -2**31 <= x < 2**31 else np.array(x, np.int64)
    elif isinstance(x, float):
        v = np.array(x, np.float32)
    else:
        v = np.asarray(x)
        if v.dtype == object:
            raise TypeError(f"cannot convert {type(x).__name__} {x!r:.80} to a tensor")
        if v.dtype == np.float64:
            v = v.astype(np.float32)
        elif v.dtype == np.int64 and v.size and np.abs(v).max() < 2**31:
            v = v.astype(np.int32)
    if dtype is not None:
        dtype = _standard_dtype(dtype)
        if v.dtype != dtype:
            v = v.astype(dtype)
    return v


def _operand(x):
    """An operand of a binary op: Python numbers stay Python numbers (NumPy treats them as
    weakly typed: ``float32_array + 1.0`` stays float32)."""
    if isinstance(x, Tensor):
        return x._value
    if isinstance(x, (np.ndarray, np.generic, int, float)):
        return x
    return _array(x)


def _binary_values(x1, x2):
    a, b = _operand(x1), _operand(x2)
    py_a, py_b = type(a) in (int, float, bool), type(b) in (int, float, bool)
    if py_a and py_b:
        return _array(a), _array(b)
    # Keras: an integer tensor with a Python float gives float32 (NumPy would give float64)
    if py_b and type(b) is float and a.dtype.kind in "iub":
        a = a.astype(np.float32)
    elif py_a and type(a) is float and b.dtype.kind in "iub":
        b = b.astype(np.float32)
    return a, b


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """``x`` as a Tensor (a Tensor of the same dtype is returned as is)."""
    if isinstance(x, Tensor) and not isinstance(x, Variable):
        if dtype is None or x._value.dtype == _standard_dtype(dtype):
            return x
        return cast(x, dtype)
    if isinstance(x, Variable):
        return x if dtype is None else cast(x, dtype)
    return Tensor(_array(x, dtype))


def convert_to_numpy(x):
    """``x`` as a NumPy array."""
    return np.asarray(x._value if isinstance(x, Tensor) else x)


def _unbroadcast(g, shape):
    """Sum ``g`` over the axes broadcasting added to an operand of shape ``shape``."""
    gs = np.shape(g)
    if gs == shape:
        return g
    extra = len(gs) - len(shape)
    if extra:
        g = np.sum(g, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = np.sum(g, axis=axes, keepdims=True)
    return np.reshape(g, shape)


def _is_float_value(v):
    return np.asarray(v).dtype.kind in "fc"


# ----------------------------------------------------------------------------------------------
# elementwise binary ops


def _binary(fn, vjp):
    def op(x1, x2):
        a, b = _binary_values(x1, x2)
        out = Tensor(fn(a, b))
        if _TAPES:
            _record(out, (x1, x2), vjp, (a, b, out._value))
        return out
    return op


def _add_vjp(c, g):
    return _unbroadcast(g, np.shape(c[0])), _unbroadcast(g, np.shape(c[1]))


def _subtract_vjp(c, g):
    return _unbroadcast(g, np.shape(c[0])), _unbroadcast(-g, np.shape(c[1]))


def _multiply_vjp(c, g):
    a, b, _ = c
    return _unbroadcast(g * b, np.shape(a)), _unbroadcast(g * a, np.shape(b))


def _divide_vjp(c, g):
    a, b, y = c
    gb = g / b
    return _unbroadcast(gb, np.shape(a)), _unbroadcast(-gb * y, np.shape(b))


def _power_vjp(c, g):
    a, b, y = c
    ga = g * b * np.power(a, b - 1) if _is_float_value(a) else None
    gb = None
    if _is_float_value(b):
        with np.errstate(divide="ignore", invalid="ignore"):
            gb = g * y * np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0)
    return (None if ga is None else _unbroadcast(ga, np.shape(a)),
            None if gb is None else _unbroadcast(gb, np.shape(b)))


def _maximum_vjp(c, g):
    a, b, _ = c
    mask = a >= b  # ties go to the first operand, as TensorFlow
    return (_unbroadcast(np.where(mask, g, 0), np.shape(a)),
            _unbroadcast(np.where(mask, 0, g), np.shape(b)))


def _minimum_vjp(c, g):
    a, b, _ = c
    mask = a <= b
    return (_unbroadcast(np.where(mask, g, 0), np.shape(a)),
            _unbroadcast(np.where(mask, 0, g), np.shape(b)))


def _none2(c, g):
    return None, None


add = _binary(np.add, _add_vjp)
add.__name__, add.__doc__ = "add", "``x1 + x2`` (broadcasting)."
subtract = _binary(np.subtract, _subtract_vjp)
subtract.__name__, subtract.__doc__ = "subtract", "``x1 - x2`` (broadcasting)."
multiply = _binary(np.multiply, _multiply_vjp)
multiply.__name__, multiply.__doc__ = "multiply", "``x1 * x2`` (broadcasting)."


def _true_div(a, b):
    if np.result_type(a, b).kind in "iub":  # Keras: dividing integers gives float32
        return np.true_divide(a, b, dtype=np.float32)
    return np.true_divide(a, b)


divide = _binary(_true_div, _divide_vjp)
divide.__name__, divide.__doc__ = "divide", "``x1 / x2`` (true division, broadcasting)."
true_divide = _binary(_true_div, _divide_vjp)
true_divide.__name__, true_divide.__doc__ = "true_divide", "``x1 / x2``, as :func:`divide`."
power = _binary(np.power, _power_vjp)
power.__name__, power.__doc__ = "power", "``x1 ** x2`` (broadcasting)."
maximum = _binary(np.maximum, _maximum_vjp)
maximum.__name__, maximum.__doc__ = "maximum", "Elementwise maximum (ties: gradient to x1)."
minimum = _binary(np.minimum, _minimum_vjp)
minimum.__name__, minimum.__doc__ = "minimum", "Elementwise minimum (ties: gradient to x1)."
floor_divide = _binary(np.floor_divide, _none2)
floor_divide.__name__ = "floor_divide"
mod = _binary(np.mod, lambda c, g: (_unbroadcast(g, np.shape(c[0])), _unbroadcast(
    -g * np.floor_divide(c[0], c[1]), np.shape(c[1]))))
mod.__name__ = "mod"


def _comparison(fn, name):
    def op(x1, x2):
        a, b = _binary_values(x1, x2)
        return Tensor(fn(a, b))
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` (a bool tensor; not differentiable)."
    return op


equal = _comparison(np.equal, "equal")
not_equal = _comparison(np.not_equal, "not_equal")
less = _comparison(np.less, "less")
less_equal = _comparison(np.less_equal, "less_equal")
greater = _comparison(np.greater, "greater")
greater_equal = _comparison(np.greater_equal, "greater_equal")
logical_and = _comparison(np.logical_and, "logical_and")
logical_or = _comparison(np.logical_or, "logical_or")
logical_xor = _comparison(np.logical_xor, "logical_xor")
bitwise_and = _comparison(np.bitwise_and, "bitwise_and")
bitwise_or = _comparison(np.bitwise_or, "bitwise_or")
bitwise_xor = _comparison(np.bitwise_xor, "bitwise_xor")


def _unary_nograd(fn, name):
    def op(x):
        return Tensor(fn(_array(x)))
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` (not differentiable)."
    return op


logical_not = _unary_nograd(np.logical_not, "logical_not")
isnan = _unary_nograd(np.isnan, "isnan")
isinf = _unary_nograd(np.isinf, "isinf")
isfinite = _unary_nograd(np.isfinite, "isfinite")
sign = _unary_nograd(np.sign, "sign")
floor = _unary_nograd(np.floor, "floor")
ceil = _unary_nograd(np.ceil, "ceil")
round = _unary_nograd(np.round, "round")  # noqa: A001  (keras.ops.round)
bitwise_invert = _unary_nograd(np.invert, "bitwise_invert")


# ----------------------------------------------------------------------------------------------
# elementwise unary ops


def _unary(fn, vjp, name, doc):
    def op(x):
        a = _array(x)
        if a.dtype.kind in "iub" and name not in ("negative", "abs", "square"):
            a = a.astype(np.float32)  # Keras: sqrt/exp/log... of ints are float32
        out = Tensor(fn(a))
        if _TAPES:
            _record(out, (x,), vjp, (a, out._value))
        return out
    op.__name__ = name
    op.__doc__ = doc
    return op


negative = _unary(np.negative, lambda c, g: (-g,), "negative", "``-x``.")
square = _unary(np.square, lambda c, g: (2 * g * c[0],), "square", "``x * x``.")
sqrt = _unary(np.sqrt, lambda c, g: (g / (2 * c[1]),), "sqrt", "Elementwise square root.")
abs = _unary(np.abs, lambda c, g: (g * np.sign(c[0]),), "abs",  # noqa: A001
             "Elementwise absolute value (gradient 0 at 0).")
absolute = abs
exp = _unary(np.exp, lambda c, g: (g * c[1],), "exp", "Elementwise ``e**x``.")
expm1 = _unary(np.expm1, lambda c, g: (g * (c[1] + 1),), "expm1", "``exp(x) - 1``.")
log = _unary(np.log, lambda c, g: (g / c[0],), "log", "Natural logarithm.")
log1p = _unary(np.log1p, lambda c, g: (g / (1 + c[0]),), "log1p", "``log(1 + x)``.")
log2 = _unary(np.log2, lambda c, g: (g / (c[0] * np.log(2.0)),), "log2", "Base-2 logarithm.")
log10 = _unary(np.log10, lambda c, g: (g / (c[0] * np.log(10.0)),), "log10", "Base-10 log.")
sin = _unary(np.sin, lambda c, g: (g * np.cos(c[0]),), "sin", "Sine.")
cos = _unary(np.cos, lambda c, g: (-g * np.sin(c[0]),), "cos", "Cosine.")
tan = _unary(np.tan, lambda c, g: (g * (1 + c[1] * c[1]),), "tan", "Tangent.")
tanh = _unary(np.tanh, lambda c, g: (g * (1 - c[1] * c[1]),), "tanh", "Hyperbolic tangent.")
reciprocal = _unary(np.reciprocal, lambda c, g: (-g * c[1] * c[1],), "reciprocal", "``1 / x``.")


def rsqrt(x):
    """``1 / sqrt(x)``."""
    return reciprocal(sqrt(x))


def clip(x, x_min, x_max):
    """``x`` limited to ``[x_min, x_max]`` (gradient 1 inside, inclusive; 0 outside)."""
    a = _array(x)
    lo, hi = _operand(x_min), _operand(x_max)
    out = Tensor(np.clip(a, lo, hi).astype(a.dtype, copy=False))
    if _TAPES:
        _record(out, (x,), _clip_vjp, (a, lo, hi))
    return out


def _clip_vjp(c, g):
    a, lo, hi = c
    return (np.where((a >= lo) & (a <= hi), g, 0),)


def where(condition, x1=None, x2=None):
    """``x1`` where ``condition`` else ``x2``; with one argument, the indices of true elements."""
    cond = _array(condition)
    if x1 is None and x2 is None:
        return tuple(Tensor(i.astype(np.int32)) for i in np.nonzero(cond))
    if x1 is None or x2 is None:
        raise ValueError("where: x1 and x2 must both be given or both be None, received "
                         f"x1={type(x1).__name__}, x2={type(x2).__name__}")
    a, b = _binary_values(x1, x2)
    out = Tensor(np.where(cond, a, b))
    if _TAPES:
        _record(out, (x1, x2), _where_vjp, (cond, np.shape(a), np.shape(b)))
    return out


def _where_vjp(c, g):
    cond, sa, sb = c
    return _unbroadcast(np.where(cond, g, 0), sa), _unbroadcast(np.where(cond, 0, g), sb)


def stop_gradient(variable):
    """The same value, with no gradient flowing back through it."""
    return Tensor(_array(variable))


def cast(x, dtype):
    """``x`` converted to ``dtype`` (gradient flows between float dtypes)."""
    a = _array(x)
    dt = _standard_dtype(dtype)
    out = Tensor(a.astype(dt))
    if _TAPES and dt.kind == "f":
        _record(out, (x,), _cast_vjp, a.dtype)
    return out


def _cast_vjp(dtype, g):
    return (g.astype(dtype) if dtype.kind == "f" else None,)


# ----------------------------------------------------------------------------------------------
# matrix products


def matmul(x1, x2):
    """Matrix product with NumPy's rules (1-D operands, broadcast batch dims).

    Two 2-D float32/float64 operands of one dtype run fastdl's C++ GEMM.
    """
    a, b = _array(x1), _array(x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, received shapes {a.shape} "
                         f"and {b.shape}")
    if a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f" \
            and a.dtype.itemsize >= 4:
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul: inner dimensions differ, received shapes {a.shape} and "
                             f"{b.shape}")
        out = Tensor(core.matmul(a, b))
        if _TAPES:
            _record(out, (x1, x2), _matmul2d_vjp, (a, b, _tracked(x1), _tracked(x2)))
        return out
    out = Tensor(np.matmul(a, b))
    if _TAPES:
        _record(out, (x1, x2), _matmul_vjp, (a, b))
    return out


def _matmul2d_vjp(c, g):
    a, b, need_a, need_b = c
    g = np.asarray(g, a.dtype)
    return (core.matmul(g, b, transpose_b=True) if need_a else None,
            core.matmul(a, g, transpose_a=True) if need_b else None)


def _matmul_vjp(c, g):
    a, b = c
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
    gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
    ga = _unbroadcast(ga, a2.shape).reshape(a.shape)
    gb = _unbroadcast(gb, b2.shape).reshape(b.shape)
    return ga, gb


def dot(x1, x2):
    """NumPy's ``dot``: a product for scalars, matmul up to 2-D, else a sum over the last axis
    of ``x1`` and the second-to-last of ``x2``."""
    a, b = _array(x1), _array(x2)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(x1, x2)
    if b.ndim <= 2:
        return matmul(x1, x2)
    return tensordot(x1, x2, axes=([a.ndim - 1], [b.ndim - 2]))


def tensordot(x1, x2, axes=2):
    """Sum of products over ``axes`` (NumPy's ``tensordot``)."""
    a, b = _array(x1), _array(x2)
    if isinstance(axes, (int, np.integer)):
        ax_a = list(range(a.ndim - axes, a.ndim))
        ax_b = list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
        ax_a = [i % a.ndim for i in ax_a]
        ax_b = [i % b.ndim for i in ax_b]
    out = Tensor(np.tensordot(a, b, axes=(ax_a, ax_b)))
    if _TAPES:
        _record(out, (x1, x2), _tensordot_vjp, (a, b, ax_a, ax_b))
    return out


def _tensordot_vjp(c, g):
    a, b, ax_a, ax_b = c
    free_a = [i for i in range(a.ndim) if i not in ax_a]
    free_b = [i for i in range(b.ndim) if i not in ax_b]
    na = len(free_a)
    # g has axes free_a + free_b
    ga = np.tensordot(g, b, axes=(list(range(na, g.ndim)), free_b))  # free_a + ax_b order
    perm_a = free_a + [ax_a[ax_b.index(j)] for j in sorted(ax_b)]
    ga = np.transpose(ga, np.argsort(perm_a))
    gb = np.tensordot(a, g, axes=(free_a, list(range(na))))  # ax_a (ordered) + free_b
    # gb axes: a's contracted axes in increasing order of a, mapped to ax_b
    order = [ax_b[ax_a.index(i)] for i in sorted(ax_a)] + free_b
    gb = np.transpose(gb, np.argsort(order))
    return ga, gb


def einsum(subscripts, *operands, **kwargs):
    """Einstein summation (explicit or implicit output; no ``...``)."""
    vals = [_array(x) for x in operands]
    if "..." in subscripts:
        raise ValueError(f"einsum: ellipsis subscripts are not supported, received "
                         f"{subscripts!r}")
    spec = subscripts.replace(" ", "")
    ins, _, outs = spec.partition("->")
    in_specs = ins.split(",")
    if len(in_specs) != len(vals):
        raise ValueError(f"einsum: {subscripts!r} names {len(in_specs)} operands, received "
                         f"{len(vals)}")
    if "->" not in spec:
        letters = "".join(in_specs)
        outs = "".join(sorted(ch for ch in set(letters) if letters.count(ch) == 1))
    out = Tensor(np.einsum(f"{ins}->{outs}", *vals, **kwargs))
    if _TAPES:
        _record(out, operands, _einsum_vjp, (in_specs, outs, vals))
    return out


def _einsum_vjp(c, g):
    in_specs, outs, vals = c
    grads = []
    for i, (spec, v) in enumerate(zip(in_specs, vals)):
        if len(set(spec)) != len(spec):
            raise NotImplementedError(f"einsum gradient: repeated index in operand {spec!r}")
        others = [s for j, s in enumerate(in_specs) if j != i]
        avail = set(outs).union(*others) if others else set(outs)
        target = "".join(ch for ch in spec if ch in avail)
        sub = ",".join([outs] + others) + "->" + target
        gi = np.einsum(sub, g, *[vals[j] for j in range(len(vals)) if j != i])
        # indices only in this operand were summed away: broadcast back over them
        shape = [v.shape[k] if ch in avail else 1 for k, ch in enumerate(spec)]
        gi = np.broadcast_to(gi.reshape(shape), v.shape)
        grads.append(gi)
    return grads


# ----------------------------------------------------------------------------------------------
# reductions


def _axis_tuple(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    out = []
    for ax in axis:
        if not -ndim <= ax < builtins.max(ndim, 1):
            raise ValueError(f"axis {ax} is out of bounds for a tensor of rank {ndim}")
        out.append(int(ax) % builtins.max(ndim, 1))
    return tuple(out)


def _expand_reduced(g, shape, axes, keepdims):
    if not keepdims:
        g = np.expand_dims(g, axes) if axes else g
    return np.broadcast_to(g, shape)


def _reduce_float(a):
    return a.astype(np.float32) if a.dtype.kind in "iub" else a


def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Sum over ``axis`` (all axes when None)."""
    a = _array(x)
    axes = _axis_tuple(axis, a.ndim)
    out = Tensor(np.sum(a, axis=axes, keepdims=keepdims))
    if _TAPES:
        _record(out, (x,), _sum_vjp, (a.shape, axes, keepdims))
    return out


def _sum_vjp(c, g):
    shape, axes, keepdims = c
    return (_expand_reduced(g, shape, axes, keepdims),)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (integers give float32, as Keras)."""
    a = _reduce_float(_array(x))
    axes = _axis_tuple(axis, a.ndim)
    out = Tensor(np.mean(a, axis=axes, keepdims=keepdims))
    if _TAPES:
        n = int(np.prod([a.shape[i] for i in axes])) if axes else 1
        _record(out, (x,), _mean_vjp, (a.shape, axes, keepdims, n))
    return out


def _mean_vjp(c, g):
    shape, axes, keepdims, n = c
    return (_expand_reduced(g / n, shape, axes, keepdims),)


def _extremum(fn, name):
    def op(x, axis=None, keepdims=False, initial=None):
        a = _array(x)
        axes = _axis_tuple(axis, a.ndim)
        kw = {} if initial is None else {"initial": initial}
        y = fn(a, axis=axes, keepdims=True, **kw)
        out = Tensor(y if keepdims else np.squeeze(y, axes) if axes else y)
        if _TAPES:
            _record(out, (x,), _extremum_vjp, (a, y, axes, keepdims))
        return out
    op.__name__ = name
    op.__doc__ = (f"{name.capitalize()} over ``axis``; the gradient is shared equally among "
                  "tied elements.")
    return op


def _extremum_vjp(c, g):
    a, y, axes, keepdims = c
    mask = (a == y)
    count = np.sum(mask, axis=axes, keepdims=True)
    if not keepdims and axes:
        g = np.expand_dims(g, axes)
    return (np.where(mask, g / count, 0),)


max = _extremum(np.max, "max")  # noqa: A001
min = _extremum(np.min, "min")  # noqa: A001
amax, amin = max, min


def prod(x, axis=None, keepdims=False, dtype=None):
    """Product over ``axis``."""
    a = _array(x, dtype)
    axes = _axis_tuple(axis, a.ndim)
    y = np.prod(a, axis=axes, keepdims=True)
    out = Tensor(y if keepdims else np.squeeze(y, axes) if axes else y)
    if _TAPES:
        _record(out, (x,), _prod_vjp, (a, axes, keepdims))
    return out


def _prod_vjp(c, g):
    a, axes, keepdims = c
    if not keepdims and axes:
        g = np.expand_dims(g, axes)
    # product of the other elements, exact also where a has zeros: move the reduced axes last,
    # flatten them, and take exclusive cumulative products from both sides
    keep = [i for i in range(a.ndim) if i not in axes]
    t = np.transpose(a, keep + list(axes))
    flat = t.reshape(t.shape[:len(keep)] + (-1,))
    ones = np.ones(flat.shape[:-1] + (1,), a.dtype)
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], -1), -1)
    right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], -1), -1)[..., ::-1]
    others = (left * right).reshape(t.shape)
    others = np.transpose(others, np.argsort(keep + list(axes)))
    return (g * others,)


def var(x, axis=None, keepdims=False):
    """Population variance over ``axis``."""
    a = _array(x)
    m = mean(x, axis=axis, keepdims=True)
    return mean(square(subtract(x if a.dtype.kind == "f" else cast(x, "float32"), m)),
                axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    """Population standard deviation over ``axis``."""
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis``, computed stably."""
    a = _reduce_float(_array(x))
    axes = _axis_tuple(axis, a.ndim)
    m = np.max(a, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(a - m)
    s = np.sum(e, axis=axes, keepdims=True)
    y = np.log(s) + m
    out = Tensor(y if keepdims else np.squeeze(y, axes) if axes else y)
    if _TAPES:
        _record(out, (x,), _logsumexp_vjp, (e / s, axes, keepdims))
    return out


def _logsumexp_vjp(c, g):
    p, axes, keepdims = c
    if not keepdims and axes:
        g = np.expand_dims(g, axes)
    return (g * p,)


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002
    """Vector or matrix norm (NumPy's ``linalg.norm`` orders: None/'fro'/2-norm, 1, inf, ...).

    Differentiable for the entrywise norms: ``None``/``'fro'``, vector ``ord`` 1, 2, inf, -inf
    and other p-norms over one axis; other matrix orders raise ``ValueError``.
    """
    a = _reduce_float(_array(x))
    two_axes = (axis is None and a.ndim == 2) or (
        not isinstance(axis, (int, np.integer)) and axis is not None and len(axis) == 2)
    if ord is None or ord == "fro" or (ord == 2 and not two_axes):
        return sqrt(sum(square(x if a is _array(x) else cast(x, a.dtype)), axis=axis,
                        keepdims=keepdims))
    if two_axes:
        raise ValueError(f"norm: matrix norm ord={ord!r} is not supported (use ord=None or "
                         "'fro', or a vector norm over one axis)")
    if ord == np.inf:
        return max(abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return min(abs(x), axis=axis, keepdims=keepdims)
    if ord == 1:
        return sum(abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:
        return sum(cast(not_equal(x, 0), a.dtype), axis=axis, keepdims=keepdims)
    return power(sum(power(abs(x), ord), axis=axis, keepdims=keepdims), 1.0 / ord)


def cumsum(x, axis=None, dtype=None):
    """Cumulative sum along ``axis`` (flattened when None)."""
    a = _array(x, dtype)
    out = Tensor(np.cumsum(a, axis=axis))
    if _TAPES:
        _record(out, (x,), _cumsum_vjp, (a.shape, axis))
    return out


def _cumsum_vjp(c, g):
    shape, axis = c
    if axis is None:
        return (np.flip(np.cumsum(np.flip(g.reshape(-1)))).reshape(shape),)
    return (np.flip(np.cumsum(np.flip(g, axis), axis), axis),)


def cumprod(x, axis=None, dtype=None):
    """Cumulative product along ``axis`` (gradient assumes nonzero entries)."""
    a = _array(x, dtype)
    y = np.cumprod(a, axis=axis)
    out = Tensor(y)
    if _TAPES:
        _record(out, (x,), _cumprod_vjp, (a, y, axis))
    return out


def _cumprod_vjp(c, g):
    a, y, axis = c
    if axis is None:
        s = np.flip(np.cumsum(np.flip((g.reshape(-1) * y))))
        return ((s / a.reshape(-1)).reshape(a.shape),)
    s = np.flip(np.cumsum(np.flip(g * y, axis), axis), axis)
    return (s / a,)


def argmax(x, axis=None, keepdims=False):
    """Index of the maximum along ``axis`` (int32)."""
    return Tensor(np.argmax(_array(x), axis=axis, keepdims=keepdims).astype(np.int32))


def argmin(x, axis=None, keepdims=False):
    """Index of the minimum along ``axis`` (int32)."""
    return Tensor(np.argmin(_array(x), axis=axis, keepdims=keepdims).astype(np.int32))


def argsort(x, axis=-1):
    """Indices that sort ``x`` along ``axis`` (int32)."""
    return Tensor(np.argsort(_array(x), axis=axis, kind="stable").astype(np.int32))


def all(x, axis=None, keepdims=False):  # noqa: A001
    """Logical and over ``axis``."""
    return Tensor(np.all(_array(x), axis=axis, keepdims=keepdims))


def any(x, axis=None, keepdims=False):  # noqa: A001
    """Logical or over ``axis``."""
    return Tensor(np.any(_array(x), axis=axis, keepdims=keepdims))


def count_nonzero(x, axis=None):
    """Number of nonzero entries along ``axis`` (int32)."""
    return Tensor(np.asarray(np.count_nonzero(_array(x), axis=axis), np.int32))


# ----------------------------------------------------------------------------------------------
# shapes and indexing


def _shape_op(fn, inverse, name, doc):
    """An op that only moves elements: its VJP is ``inverse(g, cache)``."""
    def op(x, *args, **kwargs):
        a = _array(x)
        y, cache = fn(a, *args, **kwargs)
        out = Tensor(y)
        if _TAPES:
            _record(out, (x,), inverse, cache)
        return out
    op.__name__, op.__doc__ = name, doc
    return op


def _reshape(a, newshape):
    if isinstance(newshape, Tensor):
        newshape = tuple(int(n) for n in newshape._value)
    return np.reshape(a, newshape), a.shape


reshape = _shape_op(_reshape, lambda shape, g: (np.reshape(g, shape),), "reshape",
                    "``x`` with shape ``newshape`` (one entry may be -1).")


def _transpose(a, axes=None):
    axes = tuple(range(a.ndim))[::-1] if axes is None else tuple(int(i) % a.ndim for i in axes)
    return np.transpose(a, axes), np.argsort(axes)


transpose = _shape_op(_transpose, lambda inv, g: (np.transpose(g, inv),), "transpose",
                      "``x`` with its axes permuted (reversed when ``axes`` is None).")


def _expand_dims(a, axis):
    return np.expand_dims(a, axis), a.shape


expand_dims = _shape_op(_expand_dims, lambda shape, g: (np.reshape(g, shape),), "expand_dims",
                        "``x`` with a new axis of length 1 at ``axis``.")


def _squeeze(a, axis=None):
    return np.squeeze(a, axis), a.shape


squeeze = _shape_op(_squeeze, lambda shape, g: (np.reshape(g, shape),), "squeeze",
                    "``x`` without the length-1 axes (or only ``axis``).")


def _swapaxes(a, axis1, axis2):
    return np.swapaxes(a, axis1, axis2), (axis1, axis2)


swapaxes = _shape_op(_swapaxes, lambda c, g: (np.swapaxes(g, *c),), "swapaxes",
                     "``x`` with two axes exchanged.")


def _moveaxis(a, source, destination):
    return np.moveaxis(a, source, destination), (source, destination)


moveaxis = _shape_op(_moveaxis, lambda c, g: (np.moveaxis(g, c[1], c[0]),), "moveaxis",
                     "``x`` with axes moved from ``source`` to ``destination``.")


def _flip(a, axis=None):
    return np.flip(a, axis), axis


flip = _shape_op(_flip, lambda axis, g: (np.flip(g, axis),), "flip",
                 "``x`` reversed along ``axis`` (all axes when None).")


def _broadcast_to(a, shape):
    return np.broadcast_to(a, shape), a.shape


broadcast_to = _shape_op(_broadcast_to, lambda shape, g: (_unbroadcast(g, shape),),
                         "broadcast_to", "``x`` broadcast to ``shape``.")


def _ravel(a):
    return np.ravel(a), a.shape


ravel = _shape_op(_ravel, lambda shape, g: (np.reshape(g, shape),), "ravel",
                  "``x`` flattened to 1-D.")


def _tile(a, repeats):
    reps = (repeats,) if isinstance(repeats, (int, np.integer)) else tuple(repeats)
    y = np.tile(a, reps)
    return y, (a.shape, y.shape)


def _tile_vjp(c, g):
    shape, yshape = c
    nd = len(yshape)
    full = (1,) * (nd - len(shape)) + tuple(shape)
    # split each axis into (repeat, original) and sum the repeats
    split = []
    for n_out, n_in in zip(yshape, full):
        split += [n_out // n_in, n_in]
    g = g.reshape(split).sum(axis=tuple(range(0, 2 * nd, 2)))
    return (g.reshape(shape),)


tile = _shape_op(_tile, _tile_vjp, "tile", "``x`` repeated ``repeats`` times along each axis.")


def _repeat(a, repeats, axis=None):
    src = a.reshape(-1) if axis is None else a
    ax = 0 if axis is None else int(axis) % a.ndim
    reps = np.broadcast_to(np.asarray(repeats), (src.shape[ax],))
    idx = np.repeat(np.arange(src.shape[ax]), reps)
    return np.take(src, idx, axis=ax), (a.shape, axis, ax, idx, src.shape)


def _repeat_vjp(c, g):
    shape, axis, ax, idx, src_shape = c
    out = np.zeros(src_shape, g.dtype)
    np.add.at(out, (slice(None),) * ax + (idx,), g)
    return (out.reshape(shape),)


repeat = _shape_op(_repeat, _repeat_vjp, "repeat", "Each element of ``x`` repeated.")


def _pad(a, pad_width, mode="constant", constant_values=None):
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is differentiable, received mode={mode!r}")
    pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (a.ndim, 2))
    y = np.pad(a, pw, mode="constant",
               constant_values=0 if constant_values is None else constant_values)
    return y, tuple(slice(lo, lo + n) for (lo, _), n in zip(pw, a.shape))


pad = _shape_op(_pad, lambda sl, g: (g[sl],), "pad",
                "``x`` padded with ``constant_values`` (``pad_width`` as in NumPy).")


def concatenate(xs, axis=0):
    """The tensors ``xs`` joined along ``axis``."""
    vals = [_array(x) for x in xs]
    out = Tensor(np.concatenate(vals, axis=axis))
    if _TAPES:
        ax = axis % out._value.ndim
        bounds = np.cumsum([v.shape[ax] for v in vals])[:-1]
        _record(out, tuple(xs), _concat_vjp, (ax, bounds))
    return out


def _concat_vjp(c, g):
    ax, bounds = c
    return np.split(g, bounds, axis=ax)


def stack(x, axis=0):
    """The tensors ``x`` stacked along a new axis."""
    vals = [_array(v) for v in x]
    out = Tensor(np.stack(vals, axis=axis))
    if _TAPES:
        _record(out, tuple(x), _stack_vjp, axis % out._value.ndim)
    return out


def _stack_vjp(ax, g):
    return [np.take(g, i, axis=ax) for i in range(g.shape[ax])]


def unstack(x, num=None, axis=0):
    """The slices of ``x`` along ``axis``, as a list."""
    a = _array(x)
    return [take(x, i, axis=axis) for i in range(a.shape[axis])]


def split(x, indices_or_sections, axis=0):
    """``x`` split along ``axis`` into equal sections or at ``indices_or_sections``."""
    a = _array(x)
    ax = axis % a.ndim
    n = a.shape[ax]
    if isinstance(indices_or_sections, (int, np.integer)):
        if n % indices_or_sections:
            raise ValueError(f"split: axis {axis} of length {n} does not divide into "
                             f"{indices_or_sections} equal sections")
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    pre = (slice(None),) * ax
    return [_getitem(x, pre + (slice(lo, hi),)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _index_value(key):
    """A ``[]`` key with Tensors replaced by their arrays."""
    if isinstance(key, Tensor):
        return key._value
    if isinstance(key, tuple):
        return tuple(k._value if isinstance(k, Tensor) else k for k in key)
    if isinstance(key, list):
        return np.asarray([k._value if isinstance(k, Tensor) else k for k in key])
    return key


def _getitem(x, key):
    a = _array(x)
    k = _index_value(key)
    y = a[k]
    out = Tensor(y if isinstance(y, np.ndarray) else np.asarray(y))
    if _TAPES:
        _record(out, (x,), _getitem_vjp, (a.shape, a.dtype, k))
    return out


def _basic_index(k):
    """True for keys made of ints, slices, None and Ellipsis (no element is picked twice)."""
    items = k if isinstance(k, tuple) else (k,)
    return builtins.all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis
               for i in items)


def _getitem_vjp(c, g):
    shape, dtype, k = c
    out = np.zeros(shape, g.dtype)
    if _basic_index(k):
        out[k] = g
    else:
        np.add.at(out, k, g)  # a gather may pick an element twice: accumulate
    return (out,)


def take(x, indices, axis=None):
    """Elements of ``x`` at ``indices`` along ``axis`` (flattened when None); a gather."""
    a = _array(x)
    idx = np.asarray(_array(indices))
    if axis is None:
        flat = reshape(x, (-1,))
        return _getitem(flat, idx)
    ax = axis % a.ndim
    return _getitem(x, (slice(None),) * ax + (idx,))


def take_along_axis(x, indices, axis=None):
    """``x`` indexed by ``indices`` along ``axis`` (NumPy's ``take_along_axis``)."""
    a = _array(x)
    idx = np.asarray(_array(indices)).astype(np.intp)
    if axis is None:
        return take(x, idx.reshape(-1))
    ax = axis % a.ndim
    idx = np.where(idx < 0, idx + a.shape[ax], idx)
    grids = list(np.ogrid[tuple(slice(n) for n in idx.shape)])
    grids = [np.broadcast_to(gr, idx.shape) if i != ax else idx for i, gr in enumerate(grids)]
    # broadcast non-index dims of x against idx as NumPy does
    return _getitem(x, tuple(grids))


def sort(x, axis=-1):
    """``x`` sorted along ``axis`` (gradient follows the permutation)."""
    a = _array(x)
    idx = np.argsort(a, axis=axis, kind="stable")
    return take_along_axis(x, idx, axis=axis)


def top_k(x, k, sorted=True):  # noqa: A002
    """``(values, indices)`` of the ``k`` largest entries along the last axis (indices int32)."""
    a = _array(x)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= a.shape[-1]:
        raise ValueError(f"top_k: k must be an int in [1, {a.shape[-1]}], received {k!r}")
    idx = np.argsort(-a, axis=-1, kind="stable")[..., :k]
    return take_along_axis(x, idx, axis=-1), Tensor(idx.astype(np.int32))


def flatten(x):
    """``x`` as 1-D."""
    return reshape(x, (-1,))


# ----------------------------------------------------------------------------------------------
# creation and inspection


def zeros(shape, dtype=None):
    """A tensor of zeros (float32 by default)."""
    return Tensor(np.zeros(shape, _standard_dtype(dtype) or _FLOAT32))


def ones(shape, dtype=None):
    """A tensor of ones (float32 by default)."""
    return Tensor(np.ones(shape, _standard_dtype(dtype) or _FLOAT32))


def full(shape, fill_value, dtype=None):
    """A tensor filled with ``fill_value`` (its Keras default dtype when ``dtype`` is None)."""
    v = _array(fill_value)
    return Tensor(np.full(shape, v, _standard_dtype(dtype) or v.dtype))


def zeros_like(x, dtype=None):
    """Zeros of ``x``'s shape and dtype."""
    a = _array(x)
    return Tensor(np.zeros(a.shape, _standard_dtype(dtype) or a.dtype))


def ones_like(x, dtype=None):
    """Ones of ``x``'s shape and dtype."""
    a = _array(x)
    return Tensor(np.ones(a.shape, _standard_dtype(dtype) or a.dtype))


def full_like(x, fill_value, dtype=None):
    """``fill_value`` in ``x``'s shape and dtype."""
    a = _array(x)
    return Tensor(np.full(a.shape, _array(fill_value), _standard_dtype(dtype) or a.dtype))


def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in ``[start, stop)`` (int32 for integers, float32 for floats)."""
    if step is None:
        step = 1
    if stop is None:
        start, stop = 0, start
    y = np.arange(start, stop, step)
    if dtype is None:
        dtype = np.float32 if y.dtype.kind == "f" else np.int32
    return Tensor(y.astype(_standard_dtype(dtype)))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``num`` evenly spaced values from ``start`` to ``stop`` (float32 by default)."""
    y = np.linspace(_array(start), _array(stop), num, endpoint=endpoint, retstep=retstep,
                    axis=axis)
    dt = _standard_dtype(dtype) or _FLOAT32
    if retstep:
        return Tensor(y[0].astype(dt)), Tensor(np.asarray(y[1], dt))
    return Tensor(y.astype(dt))


def eye(N, M=None, k=0, dtype=None):  # noqa: N803
    """A 2-D identity-like tensor (float32 by default)."""
    return Tensor(np.eye(N, M, k, dtype=_standard_dtype(dtype) or _FLOAT32))


identity = eye


def tri(N, M=None, k=0, dtype=None):  # noqa: N803
    """Ones at and below the k-th diagonal."""
    return Tensor(np.tri(N, M, k, dtype=_standard_dtype(dtype) or _FLOAT32))


def shape(x):
    """The shape of ``x`` as a tuple of ints."""
    return tuple(np.shape(x._value if isinstance(x, Tensor) else _array(x)))


def ndim(x):
    """The rank of ``x``."""
    return len(shape(x))


def size(x):
    """The number of elements of ``x``."""
    return int(np.prod(shape(x)))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """One-hot encoding of integer ``x`` (entries outside ``[0, num_classes)`` give zeros)."""
    if sparse:
        raise ValueError("one_hot: sparse=True is not supported, received sparse=True")
    ids = np.asarray(_array(x))
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot: x must hold integers, received dtype {ids.dtype}")
    y = (ids[..., None] == np.arange(num_classes)).astype(_standard_dtype(dtype) or _FLOAT32)
    if axis != -1:
        y = np.moveaxis(y, -1, axis)
    return Tensor(y)


def diag(x, k=0):
    """The k-th diagonal of a 2-D ``x``, or a 2-D tensor with 1-D ``x`` on that diagonal."""
    a = _array(x)
    if a.ndim == 1:
        n = a.shape[0] + builtins.abs(k)
        r = np.arange(a.shape[0])
        rows, cols = (r, r + k) if k >= 0 else (r - k, r)
        return scatter_nd_add(zeros((n, n), a.dtype), (rows, cols), x)
    n = builtins.min(a.shape[0], a.shape[1] - k) if k >= 0 else builtins.min(a.shape[0] + k,
                                                                          a.shape[1])
    r = np.arange(builtins.max(n, 0))
    return _getitem(x, (r, r + k) if k >= 0 else (r - k, r))


def scatter_nd_add(x, index, updates):
    """``x`` with ``updates`` added at the NumPy index ``index`` (repeats accumulate)."""
    a = np.array(_array(x))
    u = _array(updates)
    np.add.at(a, index, u)
    out = Tensor(a)
    if _TAPES:
        _record(out, (x, updates), lambda c, g: (g, np.asarray(g[c])), index)
    return out


def trace(x):
    """Sum of the main diagonal of a 2-D ``x``."""
    return sum(diag(x))


__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "builtins", "np", "core", "Tensor", "Variable")]
