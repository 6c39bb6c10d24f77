"""Differentiable ops with Keras 3's ``keras.ops`` names (also ``fastdl.keras.ops``).

``fastdl.ops.numpy`` (array math), ``fastdl.ops.nn`` (activations, conv, pooling, losses,
normalization) and ``fastdl.ops.random`` are re-exported here; ``fastdl.ops.core`` holds the raw
C++ kernel wrappers (``core.matmul``, ``core.conv``, ``core.pool``, ``core.rnn``) that the layers
use. Loading this package binds the Tensor operators to these ops. See ``docs/engine.md``.
"""
import functools as _functools

import numpy as _np

from fastdl.ops import core  # noqa: F401
from fastdl.ops import numpy as _numpy_ops
from fastdl.ops import nn as _nn_ops
from fastdl.ops.numpy import *  # noqa: F401,F403
from fastdl.ops.numpy import __all__ as _numpy_all
from fastdl.ops.nn import (  # noqa: F401
    average_pool, batch_normalization, binary_crossentropy, categorical_crossentropy, conv,
    dot_product_attention,
    elu, gelu, hard_sigmoid, leaky_relu, log_sigmoid, log_softmax, max_pool, moments, relu,
    relu6, selu, sigmoid, silu, softmax, softplus, softsign, sparse_categorical_crossentropy,
    swish, celu, glu, hard_shrink, hard_tanh, soft_shrink, sparse_plus, sparse_sigmoid,
    squareplus, tanh_shrink, threshold, sparsemax)
from fastdl.tensor import tensor as _tensor
from fastdl.tensor.tensor import Tensor, Variable  # noqa: F401
from fastdl.tensor.tape import GradientTape  # noqa: F401

_g = _numpy_ops


def _reflected(op):
    return lambda self, other: op(other, self)


_tensor.OPERATORS.update({
    "__add__": _g.add, "__radd__": _reflected(_g.add),
    "__sub__": _g.subtract, "__rsub__": _reflected(_g.subtract),
    "__mul__": _g.multiply, "__rmul__": _reflected(_g.multiply),
    "__truediv__": _g.divide, "__rtruediv__": _reflected(_g.divide),
    "__floordiv__": _g.floor_divide, "__rfloordiv__": _reflected(_g.floor_divide),
    "__mod__": _g.mod, "__rmod__": _reflected(_g.mod),
    "__pow__": _g.power, "__rpow__": _reflected(_g.power),
    "__matmul__": _g.matmul, "__rmatmul__": _reflected(_g.matmul),
    "__neg__": _g.negative, "__pos__": lambda self: self, "__abs__": _g.abs,
    "__invert__": lambda self: (_g.logical_not(self) if self._value.dtype == bool
                                else _g.bitwise_invert(self)),
    "__and__": _g.bitwise_and, "__rand__": _reflected(_g.bitwise_and),
    "__or__": _g.bitwise_or, "__ror__": _reflected(_g.bitwise_or),
    "__xor__": _g.bitwise_xor, "__rxor__": _reflected(_g.bitwise_xor),
    "__eq__": _g.equal, "__ne__": _g.not_equal, "__lt__": _g.less, "__le__": _g.less_equal,
    "__gt__": _g.greater, "__ge__": _g.greater_equal,
    "__getitem__": _g._getitem, "transpose": _g.transpose,
})
# NumPy calls on Tensors run the differentiable op (ndarray + Tensor, np.exp(t), np.sum(t)...)
_tensor.UFUNCS.update({
    _np.add: _g.add, _np.subtract: _g.subtract, _np.multiply: _g.multiply,
    _np.true_divide: _g.divide, _np.power: _g.power, _np.maximum: _g.maximum,
    _np.minimum: _g.minimum, _np.matmul: _g.matmul, _np.negative: _g.negative,
    _np.square: _g.square, _np.sqrt: _g.sqrt, _np.absolute: _g.abs, _np.exp: _g.exp,
    _np.expm1: _g.expm1, _np.log: _g.log, _np.log1p: _g.log1p, _np.sin: _g.sin,
    _np.cos: _g.cos, _np.tan: _g.tan, _np.tanh: _g.tanh, _np.floor_divide: _g.floor_divide,
    _np.equal: _g.equal, _np.not_equal: _g.not_equal, _np.less: _g.less,
    _np.less_equal: _g.less_equal, _np.greater: _g.greater, _np.greater_equal: _g.greater_equal,
    _np.logical_and: _g.logical_and, _np.logical_or: _g.logical_or,
    _np.logical_not: _g.logical_not, _np.isnan: _g.isnan, _np.isfinite: _g.isfinite,
})
_tensor.ARRAY_FUNCTIONS.update({
    _np.sum: _g.sum, _np.mean: _g.mean, _np.max: _g.max, _np.min: _g.min, _np.amax: _g.max,
    _np.amin: _g.min, _np.prod: _g.prod, _np.std: _g.std, _np.var: _g.var,
    _np.reshape: _g.reshape, _np.transpose: _g.transpose, _np.expand_dims: _g.expand_dims,
    _np.squeeze: _g.squeeze, _np.concatenate: _g.concatenate, _np.stack: _g.stack,
    _np.where: _g.where, _np.clip: _g.clip, _np.dot: _g.dot, _np.tile: _g.tile,
    _np.cumsum: _g.cumsum, _np.take: _g.take, _np.take_along_axis: _g.take_along_axis,
    _np.split: _g.split, _np.einsum: _g.einsum, _np.tensordot: _g.tensordot,
    _np.argmax: _g.argmax, _np.argmin: _g.argmin, _np.sort: _g.sort,
})

__all__ = sorted(set(_numpy_all) | {
    "average_pool", "batch_normalization", "binary_crossentropy", "categorical_crossentropy",
    "conv", "dot_product_attention", "elu", "gelu", "hard_sigmoid", "leaky_relu", "log_sigmoid", "log_softmax",
    "max_pool", "moments", "relu", "relu6", "selu", "sigmoid", "silu", "softmax", "softplus",
    "softsign", "sparse_categorical_crossentropy", "swish", "celu", "glu", "hard_shrink",
    "hard_tanh", "soft_shrink", "sparse_plus", "sparse_sigmoid", "squareplus", "tanh_shrink",
    "threshold", "sparsemax"})


def _symbolic_aware(fn):
    """``fn`` that also takes keras.Input tensors: when it fails and its arguments hold
    KerasTensors, it becomes an op node of the functional graph (fastdl.functional). The
    normal path pays one try block."""
    def op(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:
            from fastdl.functional import is_symbolic, symbolic_op
            if not is_symbolic([args, kwargs]):
                raise
        return symbolic_op(fn, args, fn.__name__, kwargs)
    _functools.update_wrapper(op, fn)
    return op


for _name in __all__:
    _f = globals()[_name]
    if callable(_f) and not isinstance(_f, type):
        globals()[_name] = _symbolic_aware(_f)
del _name, _f


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
