"""Activation functions with the Keras 3 names, each with its analytic backward.

Every public activation is an :class:`ActivationFunction`: call it on an array (``y = relu(x)``),
and ask it for the gradient with ``dx = relu.backward(x, y, dy)`` where ``x`` is the forward
input, ``y`` the forward output and ``dy`` the upstream gradient. Activations that take
arguments accept them as keywords in both places, like Keras: ``softmax(x, axis=1)``,
``leaky_relu(x, negative_slope=0.1)``, ``gelu(x, approximate=True)``. Called on a
``fastdl.Tensor`` (``keras.activations.celu(t)`` in a custom layer or GradientTape loop), an
activation returns a Tensor, recorded as one primitive whose VJP is its ``backward``.

Deviation: ``sparsemax`` is the projection onto the simplex as defined (Martins & Astudillo);
Keras 3.15 computes a wrong threshold when the support holds more than one element (fixed
upstream, keras-team/keras#23425).

dtypes: float32 and float64 arrays keep their dtype. Anything else (Python lists, integer,
bool and float16 arrays) is converted to float32, Keras's default float type; complex, object
and string inputs raise ``TypeError``.

Numerics: nothing here emits an overflow warning. ``sigmoid``, ``softplus``, ``elu``, ``selu``,
``silu``, ``mish``, ``softmax`` and ``gelu`` use forms that are finite and accurate for
``|x|`` up to the largest float; ``exponential`` returns ``inf`` past ``log(max float)``
(the true value), silently.

GELU: the default is Keras's exact form ``0.5 * x * (1 + erf(x / sqrt(2)))``. NumPy has no
``erf``, so ``_erfc_nonneg`` evaluates ``erfc(z) = t * exp(-z^2) * S(t)`` with
``t = 3 / (3 + z)`` and ``S`` a Chebyshev series computed at first use by interpolating the
standard library's ``math.erfc`` at 33 Chebyshev points. The float64 series (22 terms)
matches ``math.erfc`` to a relative 1e-13 (absolute < 1e-15), so forward and backward agree to
float64 rounding and the float64 gradient checks hold; float32 uses the first 12 terms (series
error 1e-8 relative, below float32 resolution). ``approximate=True`` gives Keras's tanh form.
GELU costs about 50 elementwise passes (vs 1 for relu): fine for a hidden layer now and then,
and a candidate for a C++ kernel if it becomes hot.
"""
import math

import numpy as np

from fastdl.tensor import tape as _tape
from fastdl.tensor.tensor import Tensor

__all__ = [
    "ActivationFunction", "get", "serialize", "deserialize",
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "hard_sigmoid", "tanh",
    "softmax", "log_softmax", "linear", "silu", "swish", "hard_silu", "hard_swish", "softplus",
    "softsign", "exponential", "mish", "celu", "glu", "hard_shrink", "hard_tanh", "log_sigmoid",
    "soft_shrink", "sparse_plus", "sparse_sigmoid", "squareplus", "tanh_shrink", "threshold",
    "sparsemax",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _as_float(x):
    """Return ``x`` as a float32/float64 ndarray (no copy when it already is one)."""
    if type(x) is np.ndarray and x.dtype in _FLOATS:
        return x
    x = np.asarray(x)
    if x.dtype in _FLOATS:
        return x
    if x.dtype.kind in "biuf":
        return x.astype(np.float32)
    raise TypeError(f"activations take real numeric arrays; received dtype {x.dtype}")


class ActivationFunction:
    """A differentiable activation: ``__call__`` is the forward, ``backward`` the gradient.

    Args:
        name: the Keras name (``serialize`` returns it, ``get`` finds built-ins by it).
        forward: ``forward(x, **kwargs) -> y`` on a float32/float64 array, same dtype out.
        backward: ``backward(x, y, dy, **kwargs) -> dx``; ``y`` is ``forward(x)``.
        defaults: the keyword arguments and their defaults (e.g. ``{"axis": -1}``); calls with
            other keywords raise ``TypeError``.

    Custom activations are made the same way, e.g.
    ``ActivationFunction("cube", lambda x: x ** 3, lambda x, y, dy: 3 * x * x * dy)``; layers
    accept them wherever they accept an activation name.
    """

    __slots__ = ("name", "_forward", "_backward", "_defaults", "doc")

    def __init__(self, name, forward, backward, defaults=None, doc=None):
        if not isinstance(name, str) or not name:
            raise TypeError(f"ActivationFunction name must be a non-empty str, received {name!r}")
        if not callable(forward) or not callable(backward):
            raise TypeError("ActivationFunction needs callable forward and backward functions")
        self.name = name
        self._forward = forward
        self._backward = backward
        self._defaults = dict(defaults or {})
        self.doc = doc

    def _check_kwargs(self, kwargs):
        for key in kwargs:
            if key not in self._defaults:
                allowed = ", ".join(self._defaults) or "none"
                raise TypeError(f"activation {self.name!r} got an unexpected keyword argument "
                                f"{key!r} (accepted: {allowed})")

    def __call__(self, x, **kwargs):
        if kwargs:
            self._check_kwargs(kwargs)
        if isinstance(x, Tensor):      # keras.activations.relu(t) in ops / GradientTape code
            return self._primitive(x, kwargs)
        return self._forward(_as_float(x), **kwargs)

    def _primitive(self, x, kwargs):
        """The activation of a Tensor as one tape primitive whose VJP is ``backward``."""
        a = _as_float(x._value)
        out = Tensor(self._forward(a, **kwargs))
        if _tape._TAPES:
            backward = self._backward
            _tape.record(out, (x,), lambda c, g: (backward(c[0], c[1], g, **kwargs),),
                         (a, out._value))
        return out

    def backward(self, x, y, dy, **kwargs):
        """Gradient w.r.t. ``x`` given the forward input ``x``, output ``y`` and upstream ``dy``."""
        if kwargs:
            self._check_kwargs(kwargs)
        return self._backward(x, y, dy, **kwargs)

    def get_config(self):
        return self.name

    def __repr__(self):
        return f"<ActivationFunction {self.name}>"

    def __reduce__(self):  # built-ins pickle/copy by name, so identity survives copy.deepcopy
        if _REGISTRY.get(self.name) is self:
            return (get, (self.name,))
        raise TypeError(f"custom activation {self.name!r} cannot be pickled")


# ----------------------------------------------------------------------------- helpers

def _sigmoid(x):
    """exp(min(x,0)) / (1 + exp(-|x|)): accurate to a relative ulp everywhere, never overflows."""
    d = np.abs(x)
    np.negative(d, out=d)
    np.exp(d, out=d)
    d += 1.0
    n = np.minimum(x, 0)
    np.exp(n, out=n)
    n /= d
    return n


def _softplus(x):
    """max(x, 0) + log1p(exp(-|x|))."""
    t = np.abs(x)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    t += np.maximum(x, 0)
    return t


def _mask(cond, dtype):
    """A boolean condition as a 0/1 array of ``dtype`` (arithmetic blends beat np.where)."""
    return cond.astype(dtype)


# ----------------------------------------------------------------------------- relu family

def _relu_f(x):
    return np.maximum(x, 0)


def _relu_b(x, y, dy):
    return dy * (x > 0)


def _relu6_f(x):
    y = np.maximum(x, 0)
    np.minimum(y, 6, out=y)
    return y


def _relu6_b(x, y, dy):
    return dy * ((x > 0) & (x < 6))


def _leaky_f(x, negative_slope=0.2):
    s = float(negative_slope)
    y = np.minimum(x, 0)
    y *= s
    y += np.maximum(x, 0)
    return y


def _leaky_b(x, y, dy, negative_slope=0.2):
    s = float(negative_slope)
    g = _mask(x > 0, dy.dtype)
    g *= 1.0 - s
    g += s
    g *= dy
    return g


def _elu_f(x, alpha=1.0):
    y = np.minimum(x, 0)
    np.expm1(y, out=y)
    y *= float(alpha)
    y += np.maximum(x, 0)
    return y


def _elu_b(x, y, dy, alpha=1.0):
    # x > 0: 1;  x <= 0: alpha * exp(x) = y + alpha
    pos = _mask(x > 0, dy.dtype)
    g = np.minimum(y, 0)
    g += float(alpha)
    g *= 1.0 - pos
    g += pos
    g *= dy
    return g


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _selu_f(x):
    y = _elu_f(x, _SELU_ALPHA)
    y *= _SELU_SCALE
    return y


def _selu_b(x, y, dy):
    # x > 0: scale;  x <= 0: scale * alpha * exp(x) = y + scale * alpha
    pos = _mask(x > 0, dy.dtype)
    g = np.minimum(y, 0)
    g += _SELU_SCALE * _SELU_ALPHA
    g *= 1.0 - pos
    g += _SELU_SCALE * pos
    g *= dy
    return g


# ----------------------------------------------------------------------------- sigmoid family

def _sigmoid_b(x, y, dy):
    g = 1.0 - y
    g *= y
    g *= dy
    return g


def _hard_sigmoid_f(x):
    y = x / 6.0
    y += 0.5
    np.maximum(y, 0, out=y)
    np.minimum(y, 1, out=y)
    return y


def _hard_sigmoid_b(x, y, dy):
    g = dy * ((x > -3.0) & (x < 3.0))
    g *= 1.0 / 6.0
    return g


def _silu_f(x):
    y = _sigmoid(x)
    y *= x
    return y


def _silu_b(x, y, dy):
    s = _sigmoid(x)                 # d/dx x*s = s * (1 + x * (1 - s))
    g = 1.0 - s
    g *= x
    g += 1.0
    g *= s
    g *= dy
    return g


def _hard_silu_f(x):
    y = _hard_sigmoid_f(x)
    y *= x
    return y


def _hard_silu_b(x, y, dy):
    # x * hs(x): hs(x) + x / 6 inside (-3, 3), 0 below -3, 1 at or above 3
    g = _hard_sigmoid_f(x)
    g += (x / 6.0) * ((x > -3.0) & (x < 3.0))
    g *= dy
    return g


def _tanh_f(x):
    return np.tanh(x)


def _tanh_b(x, y, dy):
    g = y * y
    np.subtract(1.0, g, out=g)
    g *= dy
    return g


def _softplus_b(x, y, dy):
    g = _sigmoid(x)
    g *= dy
    return g


def _softsign_f(x):
    d = np.abs(x)
    d += 1.0
    return x / d


def _softsign_b(x, y, dy):
    d = np.abs(x)
    d += 1.0
    g = dy / d
    g /= d                          # dy / (1 + |x|)^2 without squaring (no overflow)
    return g


def _exponential_f(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


def _exponential_b(x, y, dy):
    with np.errstate(invalid="ignore", over="ignore"):
        return dy * y


def _mish_f(x):
    y = _softplus(x)
    np.tanh(y, out=y)
    y *= x
    return y


def _mish_b(x, y, dy):
    # d/dx x * tanh(sp(x)) = tanh(sp) + x * (1 - tanh(sp)^2) * sigmoid(x)
    th = _softplus(x)
    np.tanh(th, out=th)
    g = th * th
    np.subtract(1.0, g, out=g)
    g *= x
    g *= _sigmoid(x)
    g += th
    g *= dy
    return g


def _linear_f(x):
    return x


def _linear_b(x, y, dy):
    return dy


# ----------------------------------------------------------------------------- softmax

def _check_axis(x, axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"softmax axis must be an int, received {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"softmax axis {axis} is out of range for an input of shape {x.shape}")


def _softmax_f(x, axis=-1):
    if axis != -1:
        _check_axis(x, axis)
    with np.errstate(invalid="ignore", over="ignore"):
        e = x - np.max(x, axis=axis, keepdims=True)
        np.exp(e, out=e)
        e /= np.sum(e, axis=axis, keepdims=True)
    return e


def _softmax_b(x, y, dy, axis=-1):
    # dx = y * (dy - sum(dy * y))
    g = dy * y
    s = np.sum(g, axis=axis, keepdims=True)
    g -= y * s
    return g


def _log_softmax_f(x, axis=-1):
    if axis != -1:
        _check_axis(x, axis)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        z = x - np.max(x, axis=axis, keepdims=True)
        z -= np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    return z


def _log_softmax_b(x, y, dy, axis=-1):
    # dx = dy - softmax * sum(dy)
    with np.errstate(under="ignore"):
        p = np.exp(y)
    p *= np.sum(dy, axis=axis, keepdims=True)
    return dy - p


# ----------------------------------------------------------------------------- gelu

_ERFC_K = 3.0             # t = K / (K + z) maps z in [0, inf) to t in (0, 1]
_ERFC_TERMS = {np.dtype(np.float64): 22, np.dtype(np.float32): 12}
_erfc_coef_cache = {}


def _erfc_scaled_reference(z):
    """exp(z^2) * erfc(z) for z >= 0 from the standard library (asymptotic series past 25)."""
    if z < 25.0:
        hi = float(np.float32(z))          # exp(z*z) with z*z split, so its rounding stays tiny
        lo = z - hi
        return math.erfc(z) * math.exp(hi * hi) * math.exp(2.0 * hi * lo + lo * lo)
    s, term = 1.0, 1.0
    for n in range(1, 14):
        term *= -(2 * n - 1) / (2.0 * z * z)
        s += term
    return s / (z * math.sqrt(math.pi))


def _erfc_series():
    """Chebyshev coefficients c_k of S(u), u = 2t - 1, where erfc(z) = t exp(-z^2) S(u).

    Interpolation at the 33 Chebyshev points of the first kind; the coefficients fall below
    1e-16 of c_0 by k = 22. Computed once, at the first GELU call.
    """
    full = _erfc_coef_cache.get("full")
    if full is None:
        n = 33
        theta = np.pi * (np.arange(n) + 0.5) / n
        values = []
        for uu in np.cos(theta):
            t = (uu + 1.0) / 2.0
            z = _ERFC_K / t - _ERFC_K
            values.append(_erfc_scaled_reference(z) / t)
        k = np.arange(n)[:, None]
        full = (2.0 / n) * (np.cos(k * theta[None, :]) @ np.array(values))
        full[0] /= 2.0
        _erfc_coef_cache["full"] = full
    return full


def _erfc_coefficients(dtype):
    coef = _erfc_coef_cache.get(dtype)
    if coef is None:
        coef = [float(c) for c in _erfc_series()[:_ERFC_TERMS[dtype]]]
        _erfc_coef_cache[dtype] = coef
    return coef


def _erfc_nonneg(z):
    """erfc(z) for z >= 0 (float32/float64 array, same dtype out)."""
    coef = _erfc_coefficients(z.dtype)
    t = z + _ERFC_K
    np.divide(_ERFC_K, t, out=t)                  # t in (0, 1]
    u2 = 4.0 * t
    u2 -= 2.0                                     # 2u, u = 2t - 1
    b1 = np.full_like(z, coef[-1])                # Clenshaw recurrence
    b2 = np.zeros_like(z)
    for c in coef[-2:0:-1]:
        b = u2 * b1
        b -= b2
        b += c
        b2, b1 = b1, b
    res = u2 * b1
    res *= 0.5                                    # u * b1
    res -= b2
    res += coef[0]
    with np.errstate(over="ignore"):
        e = z * z
    np.negative(e, out=e)
    np.exp(e, out=e)
    res *= e
    res *= t
    return res


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_C = math.sqrt(2.0 / math.pi)


def _normal_cdf(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2, accurate in the lower tail too."""
    e = np.abs(x)
    e *= _SQRT_HALF
    e = _erfc_nonneg(e)                           # erfc(|x|/sqrt2) in (0, 1]
    e *= 0.5                                      # = Phi(-|x|)
    pos = _mask(x >= 0, x.dtype)                  # Phi(x) = e + pos * (1 - 2e)
    d = 2.0 * e
    np.subtract(1.0, d, out=d)
    d *= pos
    e += d
    return e


def _gelu_f(x, approximate=False):
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate:
            inner = x * x
            inner *= 0.044715
            inner += 1.0
            inner *= x
            inner *= _GELU_C
            np.tanh(inner, out=inner)
            inner += 1.0
            inner *= 0.5
            inner *= x
            return inner
        y = _normal_cdf(x)
        y *= x
        return y


def _gelu_b(x, y, dy, approximate=False):
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate:
            # y = 0.5 x (1 + th), th = tanh(c (x + a x^3));
            # dy/dx = 0.5 (1 + th) + 0.5 x (1 - th^2) c (1 + 3a x^2)
            x2 = x * x
            inner = 0.044715 * x2
            inner += 1.0
            inner *= x
            inner *= _GELU_C
            th = np.tanh(inner, out=inner)
            g = th * th
            np.subtract(1.0, g, out=g)
            x2 *= 3.0 * 0.044715
            x2 += 1.0
            g *= x2
            g *= (0.5 * _GELU_C) * x
            th += 1.0
            th *= 0.5
            g += th
            g *= dy
            return g
        # dy/dx = Phi(x) + x * phi(x)
        g = x * x
        g *= -0.5
        np.exp(g, out=g)
        g *= _INV_SQRT_2PI
        g *= x
        g += _normal_cdf(x)
        g *= dy
        return g


# ----------------------------------------------------------------------------- Keras 3's newer ones

def _celu_f(x, alpha=1.0):
    a = float(alpha)
    y = np.minimum(x, 0)
    y /= a
    np.expm1(y, out=y)
    y *= a
    y += np.maximum(x, 0)
    return y


def _celu_b(x, y, dy, alpha=1.0):
    # x > 0: 1;  x <= 0: exp(x / alpha) = y / alpha + 1
    return dy * np.where(x > 0, 1.0, np.minimum(y, 0) / float(alpha) + 1.0)


def _glu_halves(x, axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"glu axis must be an int, received {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"glu axis {axis} is out of range for an input of shape {x.shape}")
    if x.shape[axis] % 2:
        raise ValueError(f"axis size must be divisible by 2. Received: x.shape={x.shape} with "
                         f"axis={axis}")
    return np.split(x, 2, axis)


def _glu_f(x, axis=-1):
    a, b = _glu_halves(x, axis)
    return a * _sigmoid(b)


def _glu_b(x, y, dy, axis=-1):
    a, b = _glu_halves(x, axis)
    s = _sigmoid(b)
    da = dy * s
    return np.concatenate([da, da * a * (1.0 - s)], axis=axis)


def _hard_shrink_f(x, threshold=0.5):
    return np.where(np.abs(x) <= x.dtype.type(threshold), 0, x).astype(x.dtype, copy=False)


def _shrink_b(x, y, dy, threshold=0.5):
    return dy * (np.abs(x) > x.dtype.type(threshold))


def _soft_shrink_f(x, threshold=0.5):
    t = x.dtype.type(threshold)       # (NaN falls through to x - t: it propagates)
    return np.where(np.abs(x) <= t, 0, x - np.copysign(t, x)).astype(x.dtype, copy=False)


def _hard_tanh_f(x):
    return np.clip(x, -1, 1)


def _unit_interval_b(x, y, dy):
    return dy * ((x > -1) & (x < 1))


def _log_sigmoid_f(x):
    y = _softplus(-x)
    np.negative(y, out=y)
    return y


def _log_sigmoid_b(x, y, dy):
    return dy * _sigmoid(-x)


def _sparse_plus_f(x):
    # 0 below -1, x above 1, (x + 1)^2 / 4 between (clipped so huge inputs cannot overflow)
    mid = np.clip(x, -1, 1)
    mid += 1
    mid *= mid
    mid *= 0.25
    return np.where(x >= 1, x, mid).astype(x.dtype, copy=False)


def _sparse_plus_b(x, y, dy):
    g = np.clip(x, -1, 1)
    g += 1
    g *= 0.5
    return dy * g


def _sparse_sigmoid_f(x):
    y = np.clip(x, -1, 1)
    y += 1
    y *= 0.5
    return y


def _sparse_sigmoid_b(x, y, dy):
    return 0.5 * _unit_interval_b(x, y, dy)


def _squareplus_f(x, b=4):
    # sqrt(x^2 + b) as hypot(x, sqrt(b)): no overflow for huge x
    y = np.hypot(x, x.dtype.type(math.sqrt(b)))
    y += x
    y *= 0.5
    return y


def _squareplus_b(x, y, dy, b=4):
    g = x / np.hypot(x, x.dtype.type(math.sqrt(b)))
    g += 1
    g *= 0.5
    return dy * g


def _tanh_shrink_f(x):
    return x - np.tanh(x)


def _tanh_shrink_b(x, y, dy):
    t = np.tanh(x)
    t *= t
    return dy * t


def _threshold_args(threshold, default_value):
    if threshold is None or default_value is None:
        raise TypeError("threshold() needs its arguments `threshold` and `default_value`, as "
                        "in keras.activations.threshold(x, threshold=0.0, default_value=0.0)")


def _threshold_f(x, threshold=None, default_value=None):
    _threshold_args(threshold, default_value)
    return np.where(x <= threshold, x.dtype.type(default_value), x).astype(x.dtype, copy=False)


def _threshold_b(x, y, dy, threshold=None, default_value=None):
    _threshold_args(threshold, default_value)
    return dy * (x > threshold)


def _sparsemax_f(x, axis=-1):
    if axis != -1:
        _check_axis(x, axis)
    # the projection of x onto the simplex (Martins & Astudillo 2016): max(x - tau, 0) with
    # tau = (sum of the k largest - 1) / k, k the support size. Keras 3.15 sums the cumulative
    # sums over the support instead (keras-team/keras#23425, fixed by #23469): its outputs
    # differ whenever the support has more than one element.
    z = -np.sort(-x, axis=axis)
    cumsum = np.cumsum(z, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    r = np.arange(1, x.shape[axis] + 1, dtype=x.dtype).reshape(shape)
    support = z - (cumsum - 1) / r > 0
    k = np.sum(support, axis=axis, keepdims=True)
    tau = (np.sum(np.where(support, z, 0), axis=axis, keepdims=True) - 1) / np.maximum(k, 1)
    return np.maximum(x - tau.astype(x.dtype, copy=False), 0)


def _sparsemax_b(x, y, dy, axis=-1):
    # on the support S (y > 0): dx = dy - mean over S of dy; zero elsewhere
    s = (y > 0).astype(dy.dtype)
    n = np.maximum(np.sum(s, axis=axis, keepdims=True), 1)
    return s * (dy - np.sum(dy * s, axis=axis, keepdims=True) / n)


# ----------------------------------------------------------------------------- registry

relu = ActivationFunction("relu", _relu_f, _relu_b, doc="max(x, 0).")
relu6 = ActivationFunction("relu6", _relu6_f, _relu6_b, doc="min(max(x, 0), 6).")
leaky_relu = ActivationFunction("leaky_relu", _leaky_f, _leaky_b, {"negative_slope": 0.2},
                                doc="x if x > 0 else negative_slope * x (Keras default 0.2).")
elu = ActivationFunction("elu", _elu_f, _elu_b, {"alpha": 1.0},
                         doc="x if x > 0 else alpha * (exp(x) - 1).")
selu = ActivationFunction("selu", _selu_f, _selu_b,
                          doc="scale * elu(x, alpha) with the self-normalising constants.")
gelu = ActivationFunction("gelu", _gelu_f, _gelu_b, {"approximate": False},
                          doc="x * Phi(x): exact erf form by default, approximate=True: tanh.")
sigmoid = ActivationFunction("sigmoid", _sigmoid, _sigmoid_b, doc="1 / (1 + exp(-x)).")
hard_sigmoid = ActivationFunction("hard_sigmoid", _hard_sigmoid_f, _hard_sigmoid_b,
                                  doc="relu6(x + 3) / 6 (Keras 3).")
tanh = ActivationFunction("tanh", _tanh_f, _tanh_b, doc="Hyperbolic tangent.")
softmax = ActivationFunction("softmax", _softmax_f, _softmax_b, {"axis": -1},
                             doc="exp(x) / sum(exp(x), axis), computed stably.")
log_softmax = ActivationFunction("log_softmax", _log_softmax_f, _log_softmax_b, {"axis": -1},
                                 doc="x - logsumexp(x, axis).")
linear = ActivationFunction("linear", _linear_f, _linear_b, doc="Identity.")
silu = ActivationFunction("silu", _silu_f, _silu_b, doc="x * sigmoid(x) (alias: swish).")
swish = silu
hard_silu = ActivationFunction("hard_silu", _hard_silu_f, _hard_silu_b,
                               doc="x * hard_sigmoid(x) (alias: hard_swish).")
hard_swish = hard_silu
softplus = ActivationFunction("softplus", _softplus, _softplus_b, doc="log(1 + exp(x)), stably.")
softsign = ActivationFunction("softsign", _softsign_f, _softsign_b, doc="x / (1 + |x|).")
exponential = ActivationFunction("exponential", _exponential_f, _exponential_b, doc="exp(x).")
mish = ActivationFunction("mish", _mish_f, _mish_b, doc="x * tanh(softplus(x)).")
celu = ActivationFunction("celu", _celu_f, _celu_b, {"alpha": 1.0},
                          doc="x if x > 0 else alpha * (exp(x / alpha) - 1).")
glu = ActivationFunction("glu", _glu_f, _glu_b, {"axis": -1},
                         doc="a * sigmoid(b), a and b the halves of x along axis.")
hard_shrink = ActivationFunction("hard_shrink", _hard_shrink_f, _shrink_b, {"threshold": 0.5},
                                 doc="x if |x| > threshold else 0.")
hard_tanh = ActivationFunction("hard_tanh", _hard_tanh_f, _unit_interval_b,
                               doc="clip(x, -1, 1).")
log_sigmoid = ActivationFunction("log_sigmoid", _log_sigmoid_f, _log_sigmoid_b,
                                 doc="log(sigmoid(x)) = -softplus(-x), stably.")
soft_shrink = ActivationFunction("soft_shrink", _soft_shrink_f, _shrink_b, {"threshold": 0.5},
                                 doc="x - threshold above threshold, x + threshold below "
                                     "-threshold, else 0.")
sparse_plus = ActivationFunction("sparse_plus", _sparse_plus_f, _sparse_plus_b,
                                 doc="0 for x <= -1, (x + 1)^2 / 4 for -1 < x < 1, x for x >= 1.")
sparse_sigmoid = ActivationFunction("sparse_sigmoid", _sparse_sigmoid_f, _sparse_sigmoid_b,
                                    doc="clip((x + 1) / 2, 0, 1).")
squareplus = ActivationFunction("squareplus", _squareplus_f, _squareplus_b, {"b": 4},
                                doc="(x + sqrt(x^2 + b)) / 2.")
tanh_shrink = ActivationFunction("tanh_shrink", _tanh_shrink_f, _tanh_shrink_b,
                                 doc="x - tanh(x).")
threshold = ActivationFunction("threshold", _threshold_f, _threshold_b,
                               {"threshold": None, "default_value": None},
                               doc="x if x > threshold else default_value (both required).")
sparsemax = ActivationFunction("sparsemax", _sparsemax_f, _sparsemax_b, {"axis": -1},
                               doc="The Euclidean projection of x onto the probability simplex "
                                   "along axis (sparse probabilities).")

_REGISTRY = {a.name: a for a in (
    relu, relu6, leaky_relu, elu, selu, gelu, sigmoid, hard_sigmoid, tanh, softmax,
    log_softmax, linear, silu, hard_silu, softplus, softsign, exponential, mish, celu, glu,
    hard_shrink, hard_tanh, log_sigmoid, soft_shrink, sparse_plus, sparse_sigmoid, squareplus,
    tanh_shrink, threshold, sparsemax)}
_ALIASES = {"swish": silu, "hard_swish": hard_silu}
_LOOKUP = dict(_REGISTRY, **_ALIASES)


def _valid_names():
    return ", ".join(sorted(_LOOKUP))


def get(identifier):
    """Resolve an activation identifier like ``keras.activations.get``.

    ``None`` -> ``linear``; a Keras name (``"relu"``, ``"swish"``, ...; case-sensitive as in
    Keras) -> that activation; an :class:`ActivationFunction` -> itself; a Keras serialized dict
    (``{"class_name": "function", "config": "relu", ...}``) -> the named activation.
    A plain Python callable is refused with ``TypeError``: fastdl trains without automatic
    differentiation, so it needs an activation that carries its own backward.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, ActivationFunction):
        return identifier
    if isinstance(identifier, str):
        act = _LOOKUP.get(identifier)
        if act is None:
            raise ValueError(f"Unknown activation {identifier!r}. Valid names: {_valid_names()}")
        return act
    if isinstance(identifier, dict):
        config = identifier.get("config")
        if isinstance(config, str):
            return get(config)
        if isinstance(config, dict) and isinstance(config.get("name"), str):
            return get(config["name"])
        raise ValueError(f"Could not interpret activation config {identifier!r}. "
                         f"Valid names: {_valid_names()}")
    if callable(identifier):
        name = getattr(identifier, "__name__", type(identifier).__name__)
        raise TypeError(
            f"Activation {name!r} is a plain callable: fastdl needs an activation it can "
            "differentiate (it has no automatic differentiation). Use one of the built-in names "
            f"({_valid_names()}) or wrap your function with its gradient in "
            "fastdl.activations.ActivationFunction(name, forward, backward).")
    raise TypeError(f"Could not interpret activation identifier {identifier!r} "
                    f"(type {type(identifier).__name__}). Valid names: {_valid_names()}")


def serialize(activation):
    """The activation's Keras name (what ``get`` and the model config use)."""
    act = get(activation)
    return act.name


def deserialize(config):
    """Inverse of :func:`serialize` (also accepts Keras's dict form)."""
    return get(config)


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
