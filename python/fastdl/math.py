"""``tf.math`` names (``import fastdl as tf; tf.math.reduce_mean(...)``) over ``fastdl.ops``."""
from fastdl.ops.numpy import (  # noqa: F401
    abs, add, argmax, argmin, ceil, cos, cumprod, cumsum, equal, exp, expm1, floor, greater,
    greater_equal, less, less_equal, log, log1p, logical_and, logical_not, logical_or,
    logical_xor, maximum, minimum, multiply, negative, not_equal, reciprocal, round, rsqrt, sign,
    sin, sqrt, square, subtract, tan, tanh)
from fastdl.ops.numpy import isfinite as is_finite, isinf as is_inf, isnan as is_nan  # noqa: F401
from fastdl.ops.tf_compat import (  # noqa: F401
    divide, pow, reduce_all, reduce_any, reduce_logsumexp, reduce_max, reduce_mean, reduce_min,
    reduce_prod, reduce_std, reduce_sum, reduce_variance, sigmoid, softplus, top_k)
from fastdl.ops.tf_compat import log_softmax, softmax  # noqa: F401


def squared_difference(x, y, name=None):
    """``(x - y) ** 2``."""
    return square(subtract(x, y))


def truediv(x, y, name=None):
    """``x / y``."""
    return divide(x, y)


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
