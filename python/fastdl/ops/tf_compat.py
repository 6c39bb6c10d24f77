"""TensorFlow names over ``fastdl.ops`` (``import fastdl as tf``): ``tf.constant``,
``tf.reduce_mean``, ``tf.concat``, ``tf.math.*``, ``tf.nn.*``, dtypes ... Each is the fastdl op
of the same meaning with TensorFlow's argument names and defaults; the table in
``docs/engine.md`` lists them."""
import numpy as np

from fastdl import __version__
from fastdl.ops import nn as _nn
from fastdl.ops import numpy as _np_ops
from fastdl.ops import random as _random
from fastdl.ops.numpy import (  # noqa: F401  (re-exported under the same names)
    abs, add, argmax, argmin, cast, convert_to_tensor, cos, cumsum, einsum, equal, exp,
    expand_dims, greater, greater_equal, less, less_equal, log, logical_and, logical_not,
    logical_or, matmul, maximum, minimum, multiply, negative, norm, not_equal, ones, ones_like,
    reshape, sign, sin, sqrt, square, squeeze, stack, stop_gradient, subtract, tanh, tile,
    transpose, where, zeros, zeros_like)
from fastdl.tensor.tensor import DType, Tensor, Variable, as_dtype  # noqa: F401
from fastdl.tensor.tape import GradientTape  # noqa: F401

float16, float32, float64 = as_dtype("float16"), as_dtype("float32"), as_dtype("float64")
int8, int16, int32, int64 = (as_dtype("int8"), as_dtype("int16"), as_dtype("int32"),
                             as_dtype("int64"))
uint8 = as_dtype("uint8")
bool = as_dtype("bool")  # noqa: A001
DTYPE_NAMES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
               "bool")


def constant(value, dtype=None, shape=None, name=None):
    """``tf.constant``: a Tensor of ``value`` (broadcast to ``shape`` when given)."""
    t = convert_to_tensor(value, dtype=dtype)
    if shape is not None:
        v = t._value
        shape = tuple(shape)
        t = Tensor(np.broadcast_to(v, shape).copy() if v.size == 1 or v.ndim == 0
                   else np.reshape(v, shape))
    return t


def _reduce(op):
    def reduce(input_tensor, axis=None, keepdims=False, name=None):
        return op(input_tensor, axis=axis, keepdims=keepdims)
    reduce.__name__ = f"reduce_{op.__name__}"
    reduce.__doc__ = f"``tf.reduce_{op.__name__}``: :func:`fastdl.ops.{op.__name__}`."
    return reduce


reduce_sum = _reduce(_np_ops.sum)
reduce_mean = _reduce(_np_ops.mean)
reduce_max = _reduce(_np_ops.max)
reduce_min = _reduce(_np_ops.min)
reduce_prod = _reduce(_np_ops.prod)
reduce_std = _reduce(_np_ops.std)
reduce_variance = _reduce(_np_ops.var)
reduce_logsumexp = _reduce(_np_ops.logsumexp)
reduce_any = _reduce(_np_ops.any)
reduce_all = _reduce(_np_ops.all)


def concat(values, axis, name=None):
    """``tf.concat``: :func:`fastdl.ops.concatenate`."""
    return _np_ops.concatenate(values, axis=axis)


def gather(params, indices, axis=None, batch_dims=0, name=None):
    """``tf.gather``: rows of ``params`` at ``indices`` along ``axis`` (default 0)."""
    if batch_dims:
        raise ValueError(f"gather: batch_dims must be 0, received {batch_dims!r}")
    return _np_ops.take(params, indices, axis=0 if axis is None else axis)


def shape(input, out_type=None, name=None):  # noqa: A002
    """``tf.shape``: the shape as an int32 tensor."""
    return Tensor(np.asarray(_np_ops.shape(input), np.dtype(out_type or "int32")))


def size(input, out_type=None, name=None):  # noqa: A002
    """``tf.size``: the number of elements as an int32 tensor."""
    return Tensor(np.asarray(_np_ops.size(input), np.dtype(out_type or "int32")))


def rank(input, name=None):  # noqa: A002
    """``tf.rank``: the number of dimensions as an int32 tensor."""
    return Tensor(np.asarray(_np_ops.ndim(input), np.int32))


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    """``tf.one_hot``: ``on_value`` (1) at each index, ``off_value`` (0) elsewhere."""
    y = _np_ops.one_hot(indices, depth, axis=-1 if axis is None else axis,
                        dtype=dtype or "float32")
    if on_value is None and off_value is None:
        return y
    on = 1 if on_value is None else on_value
    off = 0 if off_value is None else off_value
    return Tensor(np.where(y._value == 1, on, off).astype(y._value.dtype))


def fill(dims, value, name=None):
    """``tf.fill``: a tensor of shape ``dims`` filled with ``value``."""
    return _np_ops.full(tuple(dims), value)


def range(start, limit=None, delta=1, dtype=None, name=None):  # noqa: A001
    """``tf.range``: :func:`fastdl.ops.arange`."""
    return _np_ops.arange(start, limit, delta, dtype=dtype)


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """``tf.clip_by_value``: :func:`fastdl.ops.clip`."""
    return _np_ops.clip(t, clip_value_min, clip_value_max)


def split(value, num_or_size_splits, axis=0, num=None, name=None):
    """``tf.split``: equal parts for an int, else parts of the given sizes."""
    if isinstance(num_or_size_splits, (int, np.integer)):
        return _np_ops.split(value, num_or_size_splits, axis=axis)
    bounds = np.cumsum(list(num_or_size_splits))[:-1]
    return _np_ops.split(value, [int(b) for b in bounds], axis=axis)


def unstack(value, num=None, axis=0, name=None):
    """``tf.unstack``: the slices along ``axis``."""
    return _np_ops.unstack(value, num=num, axis=axis)


def pow(x, y, name=None):  # noqa: A001
    """``tf.pow``: :func:`fastdl.ops.power`."""
    return _np_ops.power(x, y)


def divide(x, y, name=None):
    """``tf.divide``: :func:`fastdl.ops.divide`."""
    return _np_ops.divide(x, y)


def pad(tensor, paddings, mode="CONSTANT", constant_values=0, name=None):
    """``tf.pad`` (constant mode)."""
    if str(mode).upper() != "CONSTANT":
        raise ValueError(f"pad: only mode='CONSTANT' is supported, received {mode!r}")
    return _np_ops.pad(tensor, paddings, constant_values=constant_values)


def sort(values, axis=-1, direction="ASCENDING", name=None):
    """``tf.sort``."""
    y = _np_ops.sort(values, axis=axis)
    if direction == "DESCENDING":
        return _np_ops.flip(y, axis)
    if direction != "ASCENDING":
        raise ValueError(f"sort: direction must be 'ASCENDING' or 'DESCENDING', received "
                         f"{direction!r}")
    return y


def top_k(input, k=1, sorted=True, name=None):  # noqa: A002
    """``tf.math.top_k``: ``(values, indices)``."""
    return _np_ops.top_k(input, k, sorted=sorted)


def identity(input, name=None):  # noqa: A002
    """``tf.identity``: the same value (gradient passes through)."""
    return _np_ops.multiply(input, 1)


def sigmoid(x, name=None):
    """``tf.sigmoid`` / ``tf.math.sigmoid``."""
    return _nn.sigmoid(x)


def softplus(features, name=None):
    """``tf.math.softplus``."""
    return _nn.softplus(features)


# ----------------------------------------------------------------------------------------------
# tf.nn


def relu(features, name=None):
    return _nn.relu(features)


def relu6(features, name=None):
    return _nn.relu6(features)


def elu(features, name=None):
    return _nn.elu(features)


def selu(features, name=None):
    return _nn.selu(features)


def silu(features, beta=1.0, name=None):
    if beta != 1.0:
        return _np_ops.multiply(features, _nn.sigmoid(_np_ops.multiply(features, beta)))
    return _nn.silu(features)


def gelu(features, approximate=False, name=None):
    """``tf.nn.gelu`` (TF's default is the exact erf form)."""
    return _nn.gelu(features, approximate=approximate)


def leaky_relu(features, alpha=0.2, name=None):
    return _nn.leaky_relu(features, negative_slope=alpha)


def softmax(logits, axis=None, name=None):
    return _nn.softmax(logits, axis=-1 if axis is None else axis)


def log_softmax(logits, axis=None, name=None):
    return _nn.log_softmax(logits, axis=-1 if axis is None else axis)


def dropout(x, rate, noise_shape=None, seed=None, name=None):
    return _random.dropout(x, rate, noise_shape=noise_shape, seed=seed)


def moments(x, axes, shift=None, keepdims=False, name=None):
    return _nn.moments(x, axes, keepdims=keepdims)


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    """``tf.nn.batch_normalization``: statistics broadcast against ``x`` as given."""
    y = _np_ops.multiply(_np_ops.subtract(x, mean),
                         _np_ops.rsqrt(_np_ops.add(variance, variance_epsilon)))
    if scale is not None:
        y = _np_ops.multiply(y, scale)
    if offset is not None:
        y = _np_ops.add(y, offset)
    return y


def softmax_cross_entropy_with_logits(labels, logits, axis=-1, name=None):
    return _nn.categorical_crossentropy(labels, logits, from_logits=True, axis=axis)


def sparse_softmax_cross_entropy_with_logits(labels, logits, name=None):
    return _nn.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    return _nn.binary_crossentropy(labels, logits, from_logits=True)


def l2_loss(t, name=None):
    """``sum(t ** 2) / 2``."""
    return _np_ops.divide(_np_ops.sum(_np_ops.square(t)), 2.0)


def _tf_padding(padding):
    if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID', received {padding!r}")
    return padding.lower()


def _tf_window(value, n, name):
    """TF's strides/ksize: an int, n ints, or n + 2 ints with 1 for batch and channels."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = tuple(value)
    if len(value) == n + 2:
        if value[0] != 1 or value[-1] != 1:
            raise ValueError(f"{name}: batch and channel entries must be 1, received {value!r}")
        value = value[1:-1]
    return value


def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None,  # noqa: A002
           name=None):
    """``tf.nn.conv2d`` (NHWC)."""
    if data_format != "NHWC":
        raise ValueError(f"conv2d: data_format must be 'NHWC', received {data_format!r}")
    return _nn.conv(input, filters, strides=_tf_window(strides, 2, "strides"),
                    padding=_tf_padding(padding),
                    dilation_rate=1 if dilations is None else _tf_window(dilations, 2, "dilations"))


def conv1d(input, filters, stride, padding, data_format="NWC", dilations=None,  # noqa: A002
           name=None):
    """``tf.nn.conv1d`` (NWC)."""
    if data_format != "NWC":
        raise ValueError(f"conv1d: data_format must be 'NWC', received {data_format!r}")
    return _nn.conv(input, filters, strides=_tf_window(stride, 1, "stride"),
                    padding=_tf_padding(padding),
                    dilation_rate=1 if dilations is None else _tf_window(dilations, 1, "dilations"))


def max_pool2d(input, ksize, strides, padding, data_format="NHWC", name=None):  # noqa: A002
    """``tf.nn.max_pool2d`` (NHWC)."""
    return _nn.max_pool(input, _tf_window(ksize, 2, "ksize"), _tf_window(strides, 2, "strides"),
                        _tf_padding(padding))


def avg_pool2d(input, ksize, strides, padding, data_format="NHWC", name=None):  # noqa: A002
    """``tf.nn.avg_pool2d`` (NHWC)."""
    return _nn.average_pool(input, _tf_window(ksize, 2, "ksize"),
                            _tf_window(strides, 2, "strides"), _tf_padding(padding))


class _Version:
    """``tf.version``: ``VERSION`` is fastdl's version."""

    def __init__(self, version):
        self.VERSION = version

    def __repr__(self):
        return f"fastdl.version(VERSION={self.VERSION!r})"


version = _Version(__version__)
