"""TensorFlow names over ``fastdl.ops`` (``import fastdl as tf``): ``tf.constant``,
``tf.reduce_mean``, ``tf.concat``, ``tf.math.*``, ``tf.nn.*``, dtypes ... Each is the fastdl op
of the same meaning with TensorFlow's argument names and defaults; the table in
``docs/engine.md`` lists them."""
import builtins
import contextlib
import functools
import inspect
import logging
import operator
import re
import sys

import numpy as np

from fastdl import __version__
from fastdl.ops import nn as _nn
from fastdl.ops import numpy as _np_ops
from fastdl.ops import random as _random
from fastdl.ops.numpy import (  # noqa: F401  (re-exported under the same names)
    abs, add, argmax, argmin, cast, convert_to_tensor, cos, cumsum, einsum, equal, exp,
    expand_dims, greater, greater_equal, less, less_equal, log, logical_and, logical_not,
    logical_or, maximum, minimum, multiply, negative, not_equal, ones, ones_like,
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


def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False,
           a_is_sparse=False, b_is_sparse=False, output_type=None, grad_a=False, grad_b=False,
           name=None):
    """``tf.matmul``: ``a @ b`` over the last two axes, either operand transposed first
    (``adjoint_*`` is the same for real tensors)."""
    if output_type is not None:
        raise ValueError(f"matmul: output_type must be None (the inputs' dtype), received "
                         f"{output_type!r}")
    if transpose_a or adjoint_a:
        a = _np_ops.swapaxes(a, -1, -2)
    if transpose_b or adjoint_b:
        b = _np_ops.swapaxes(b, -1, -2)
    return _np_ops.matmul(a, b)


def norm(tensor, ord="euclidean", axis=None, keepdims=None, name=None):  # noqa: A002
    """``tf.norm``: a vector norm over ``axis`` (the whole tensor when None) or a matrix norm
    over a pair of axes: ``'euclidean'``/``'fro'``, ``1``, ``np.inf``, or a vector p-norm."""
    matrix = axis is not None and not isinstance(axis, (int, np.integer))
    if matrix:
        axis = tuple(int(i) for i in axis)
        if len(axis) != 2:
            raise ValueError(f"norm: axis must be an int or a pair of ints, received {axis!r}")
    keep = builtins.bool(keepdims)
    if ord in ("euclidean", "fro") or (ord == 2 and not matrix):
        if ord == "fro" and not matrix:
            raise ValueError("norm: ord='fro' is a matrix norm: give axis=(row, column)")
        return _np_ops.sqrt(_np_ops.sum(_np_ops.square(tensor), axis=axis, keepdims=keep))
    if isinstance(ord, str) or not (ord == np.inf or (isinstance(ord, (int, float)) and ord > 0)):
        raise ValueError(f"norm: ord must be 'euclidean', 'fro', a positive number or np.inf, "
                         f"received {ord!r}")
    mag = _np_ops.abs(tensor)
    if matrix:
        if ord not in (1, np.inf):
            raise ValueError(f"norm: fastdl's matrix norms are 'euclidean'/'fro', 1 and np.inf, "
                             f"received ord={ord!r}")
        # 1: the largest column sum of |x|; inf: the largest row sum
        over, across = axis if ord == 1 else axis[::-1]
        y = _np_ops.max(_np_ops.sum(mag, axis=over, keepdims=True), axis=across, keepdims=True)
        return y if keep else _np_ops.squeeze(y, axis)
    if ord == np.inf:
        return _np_ops.max(mag, axis=axis, keepdims=keep)
    if ord == 1:
        return _np_ops.sum(mag, axis=axis, keepdims=keep)
    return _np_ops.power(_np_ops.sum(_np_ops.power(mag, ord), axis=axis, keepdims=keep),
                         1.0 / ord)


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
# tensor utilities

newaxis = None
round = _np_ops.round  # noqa: A001  (NumPy's and TensorFlow's: halves to even)
floor = _np_ops.floor
tensordot = _np_ops.tensordot


def is_tensor(x):
    """``tf.is_tensor``: True for fastdl Tensors and Variables (not NumPy arrays)."""
    return isinstance(x, Tensor)


class TensorShape:
    """``tf.TensorShape``: dimensions that are ints or None (unknown); ``TensorShape(None)`` has
    an unknown rank. Equal to the tuple or list of the same dimensions."""

    def __init__(self, dims):
        if isinstance(dims, TensorShape):
            dims = dims._dims
        if dims is None:
            self._dims = None
            return
        if isinstance(dims, (int, np.integer)):
            dims = (dims,)
        try:
            dims = tuple(dims)
        except TypeError:
            raise TypeError(f"TensorShape: dims must be a list, tuple, int or None, received "
                            f"{type(dims).__name__} {dims!r}") from None
        self._dims = tuple(None if d is None else _dim(d) for d in dims)

    @property
    def rank(self):
        return None if self._dims is None else len(self._dims)

    ndims = rank

    @property
    def dims(self):
        return None if self._dims is None else list(self._dims)

    def as_list(self):
        if self._dims is None:
            raise ValueError("as_list() is not defined on an unknown TensorShape.")
        return list(self._dims)

    def is_fully_defined(self):
        return self._dims is not None and None not in self._dims

    def num_elements(self):
        """The number of elements, None when a dimension is unknown."""
        return int(np.prod(self._dims)) if self.is_fully_defined() else None

    def is_compatible_with(self, other):
        other = TensorShape(other)
        if self._dims is None or other._dims is None:
            return True
        return len(self._dims) == len(other._dims) and builtins.all(
            a is None or b is None or a == b for a, b in zip(self._dims, other._dims))

    def concatenate(self, other):
        other = TensorShape(other)
        if self._dims is None or other._dims is None:
            return TensorShape(None)
        return TensorShape(self._dims + other._dims)

    def __add__(self, other):
        return self.concatenate(other)

    def __radd__(self, other):
        return TensorShape(other).concatenate(self)

    def __bool__(self):  # TensorFlow: True unless the rank is unknown, even for ()
        return self._dims is not None

    def __len__(self):
        if self._dims is None:
            raise ValueError("Cannot take the length of shape with unknown rank.")
        return len(self._dims)

    def __iter__(self):
        if self._dims is None:
            raise ValueError("Cannot iterate over a shape with unknown rank.")
        return iter(self._dims)

    def __getitem__(self, key):
        if self._dims is None:
            return TensorShape(None) if isinstance(key, slice) else None
        if isinstance(key, slice):
            return TensorShape(self._dims[key])
        return self._dims[key]

    def __eq__(self, other):
        try:
            other = TensorShape(other)
        except TypeError:
            return NotImplemented
        return self._dims == other._dims

    def __hash__(self):  # the hash of the equal tuple
        return hash(self._dims)

    def __repr__(self):
        return "TensorShape(None)" if self._dims is None else f"TensorShape({list(self._dims)})"

    def __str__(self):
        if self._dims is None:
            return "<unknown>"
        return "(" + ", ".join(str(d) for d in self._dims) + ("," if len(self._dims) == 1
                                                                 else "") + ")"


def _dim(d):
    """One dimension: an int, or anything with ``__index__`` (an int Tensor's entries)."""
    if not isinstance(d, (builtins.bool, np.bool_)):
        try:
            n = operator.index(d)
        except TypeError:
            n = -1
        if n >= 0:
            return n
    raise TypeError(f"TensorShape: each dimension must be a non-negative int or None, "
                    f"received {d!r}")


def _ints(value, what):
    """A Python int or tuple of ints from a number, list or int Tensor (shapes, axes)."""
    v = np.asarray(value._value if isinstance(value, Tensor) else value)
    if v.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers, received {value!r}")
    return int(v) if v.ndim == 0 else tuple(int(i) for i in v)


def eye(num_rows, num_columns=None, batch_shape=None, dtype=float32, name=None):
    """``tf.eye``: ones on the diagonal, repeated over ``batch_shape`` when given."""
    y = _np_ops.eye(num_rows, num_columns, dtype=dtype)
    if batch_shape is None:
        return y
    batch = tuple(_ints(batch_shape, "eye: batch_shape"))
    return Tensor(np.broadcast_to(y._value, batch + y.shape).copy())


def linspace(start, stop, num, name=None, axis=0):
    """``tf.linspace``: ``num`` evenly spaced values from ``start`` to ``stop`` inclusive, in
    ``start``'s float dtype: float32 for Python floats, float64 for integers (as TensorFlow);
    tensors give a new ``axis``."""
    a = _np_ops._array(start)
    dt = a.dtype if a.dtype.kind == "f" else float64
    return _np_ops.linspace(start, stop, _ints(num, "linspace: num"), axis=axis, dtype=dt)


def broadcast_to(input, shape, name=None):  # noqa: A002
    """``tf.broadcast_to`` (gradient summed back over the broadcast axes)."""
    return _np_ops.broadcast_to(input, _ints(shape, "broadcast_to: shape"))


def meshgrid(*args, **kwargs):
    """``tf.meshgrid(*args, indexing='xy')``: one N-D grid per 1-D input (``'xy'`` swaps the
    first two axes, as NumPy's meshgrid)."""
    indexing = kwargs.pop("indexing", "xy")
    kwargs.pop("name", None)
    if kwargs:
        raise TypeError(f"meshgrid: unexpected keyword argument {sorted(kwargs)[0]!r}")
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', received {indexing!r}")
    sizes = [_np_ops.size(x) for x in args]
    axes = list(builtins.range(len(args)))
    if indexing == "xy" and len(args) > 1:
        axes[0], axes[1] = 1, 0
    shape_out = [0] * len(args)
    for ax, n in zip(axes, sizes):
        shape_out[ax] = n
    grids = []
    for x, ax in zip(args, axes):
        view = [1] * len(args)
        view[ax] = -1
        grids.append(_np_ops.broadcast_to(_np_ops.reshape(x, view), tuple(shape_out)))
    return grids


def reverse(tensor, axis, name=None):
    """``tf.reverse``: ``tensor`` reversed along each axis in the list ``axis``."""
    axes = _ints(axis, "reverse: axis")
    return _np_ops.flip(tensor, axes if isinstance(axes, tuple) else (axes,))


def _roll(a, shift, axis):
    return np.roll(a, shift, axis), (shift, axis)


_roll_op = _np_ops._shape_op(
    _roll, lambda c, g: (np.roll(g, np.negative(c[0]), c[1]),), "roll",
    "``x`` shifted cyclically by ``shift`` along ``axis``.")


def roll(input, shift, axis, name=None):  # noqa: A002
    """``tf.roll``: elements shifted cyclically by ``shift`` along ``axis`` (ints or lists)."""
    return _roll_op(input, _ints(shift, "roll: shift"), _ints(axis, "roll: axis"))


def argsort(values, axis=-1, direction="ASCENDING", stable=False, name=None):
    """``tf.argsort``: int32 indices that sort ``values``; ties keep their order."""
    a = np.asarray(_np_ops._array(values))
    if direction == "DESCENDING":
        a = -a.astype(np.int64 if a.dtype.kind in "ub" else a.dtype)
    elif direction != "ASCENDING":
        raise ValueError(f"argsort: direction must be 'ASCENDING' or 'DESCENDING', received "
                         f"{direction!r}")
    return Tensor(np.argsort(a, axis=axis, kind="stable").astype(np.int32))


def unique(x, out_idx=int32, name=None):
    """``tf.unique``: ``(y, idx)``, the distinct values of 1-D ``x`` in order of first
    appearance and, for each element of ``x``, its index in ``y`` (``x == y[idx]``)."""
    a = np.asarray(_np_ops._array(x))
    if a.ndim != 1:
        raise ValueError(f"unique: x must be 1-D, received shape {a.shape}")
    _, first, inverse = np.unique(a, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")     # sorted-unique position -> appearance rank
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return (Tensor(a[np.sort(first)]),
            Tensor(rank[inverse.reshape(-1)].astype(np.dtype(as_dtype(out_idx).name))))


def searchsorted(sorted_sequence, values, side="left", out_type=int32, name=None):
    """``tf.searchsorted``: for each of ``values``, the insertion index into the last axis of
    ``sorted_sequence`` (leading axes are batches and must match ``values``'s)."""
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', received {side!r}")
    seq = np.asarray(_np_ops._array(sorted_sequence))
    vals = np.asarray(_np_ops._array(values))
    if seq.ndim == 0 or seq.shape[:-1] != vals.shape[:-1]:
        raise ValueError(f"searchsorted: sorted_sequence {seq.shape} and values {vals.shape} "
                         f"must agree on all axes but the last")
    flat_seq = seq.reshape(-1, seq.shape[-1])
    flat_vals = vals.reshape(-1, vals.shape[-1] if vals.ndim else 1)
    out = np.stack([np.searchsorted(s, v, side=side) for s, v in zip(flat_seq, flat_vals)])
    return Tensor(out.reshape(vals.shape).astype(np.dtype(as_dtype(out_type).name)))


def boolean_mask(tensor, mask, axis=None, name=None):
    """``tf.boolean_mask``: the entries of ``tensor`` where ``mask`` (whose shape matches
    ``tensor``'s from ``axis`` on) is True, those mask axes flattened into one."""
    shape_t = _np_ops.shape(tensor)
    m = np.asarray(_np_ops._array(mask)).astype(np.bool_)
    ax = 0 if axis is None else int(axis) % max(len(shape_t), 1)
    if m.ndim == 0 or shape_t[ax:ax + m.ndim] != m.shape:
        raise ValueError(f"boolean_mask: mask of shape {m.shape} does not match tensor of "
                         f"shape {shape_t} at axis {ax}")
    flat = _np_ops.reshape(tensor, shape_t[:ax] + (-1,) + shape_t[ax + m.ndim:])
    return _np_ops.take(flat, np.flatnonzero(m), axis=ax)


def sequence_mask(lengths, maxlen=None, dtype=bool, name=None):
    """``tf.sequence_mask``: ``mask[..., j] = j < lengths[...]``, ``maxlen`` (default the
    largest length) columns."""
    n = np.asarray(_np_ops._array(lengths))
    if maxlen is None:
        maxlen = int(n.max()) if n.size else 0
    m = np.arange(int(maxlen)) < n[..., None]
    return Tensor(m.astype(np.dtype(as_dtype(dtype).name)))


def _nd_key(indices, batch_dims, what):
    """The NumPy index of ``indices`` (last axis: coordinates) into a tensor, with the first
    ``batch_dims`` axes of both walked together."""
    idx = np.asarray(_np_ops._array(indices))
    if idx.dtype.kind not in "iu" or idx.ndim < 1:
        raise TypeError(f"{what}: indices must be an integer tensor of rank >= 1, received "
                        f"{idx.dtype} of shape {idx.shape}")
    grid_shape = idx.shape[:-1]
    batch = [np.arange(n).reshape((-1,) + (1,) * (len(grid_shape) - b - 1))
             for b, n in enumerate(grid_shape[:batch_dims])]
    return tuple(np.broadcast_to(b, grid_shape) for b in batch) + tuple(
        idx[..., i] for i in builtins.range(idx.shape[-1]))


def gather_nd(params, indices, batch_dims=0, name=None):
    """``tf.gather_nd``: slices of ``params`` at the coordinates in ``indices``'s last axis."""
    return _np_ops._getitem(params, _nd_key(indices, batch_dims, "gather_nd"))


def scatter_nd(indices, updates, shape, name=None):
    """``tf.scatter_nd``: zeros of ``shape`` with ``updates`` added at ``indices`` (repeated
    indices sum)."""
    u = _np_ops._array(updates)
    base = _np_ops.zeros(_ints(shape, "scatter_nd: shape"), dtype=u.dtype)
    return _np_ops.scatter_nd_add(base, _nd_key(indices, 0, "scatter_nd"), updates)


def tensor_scatter_nd_update(tensor, indices, updates, name=None):
    """``tf.tensor_scatter_nd_update``: a copy of ``tensor`` with ``updates`` written at
    ``indices`` (gradient: ``tensor``'s where not overwritten, ``updates``' at the indices)."""
    key = _nd_key(indices, 0, "tensor_scatter_nd_update")
    a = np.array(_np_ops._array(tensor))
    a[key] = _np_ops._array(updates)
    out = Tensor(a)
    if _np_ops._TAPES:
        _np_ops._record(out, (tensor, updates), _scatter_update_vjp, key)
    return out


def _scatter_update_vjp(key, g):
    kept = g.copy()
    kept[key] = 0
    return kept, np.asarray(g[key])


def clip_by_norm(t, clip_norm, axes=None, name=None):
    """``tf.clip_by_norm``: ``t * clip_norm / max(l2norm(t), clip_norm)``, the norm over
    ``axes`` (all when None)."""
    l2sum = _np_ops.sum(_np_ops.square(t), axis=axes, keepdims=True)
    positive = _np_ops._array(l2sum) > 0
    # sqrt at 0 has no gradient: take it only where the sum is positive, as TensorFlow does
    l2norm = _np_ops.where(positive, _np_ops.sqrt(_np_ops.where(positive, l2sum, 1.0)), l2sum)
    return _np_ops.divide(_np_ops.multiply(t, clip_norm), _np_ops.maximum(l2norm, clip_norm))


def global_norm(t_list, name=None):
    """``tf.linalg.global_norm``: ``sqrt`` of the summed squares of every tensor (None skipped)."""
    if isinstance(t_list, (Tensor, np.ndarray)) or not isinstance(t_list, (list, tuple)):
        raise TypeError(f"global_norm: t_list must be a list or tuple of tensors, received "
                        f"{type(t_list).__name__}")
    sums = [_np_ops.sum(_np_ops.square(t)) for t in t_list if t is not None]
    if not sums:
        raise ValueError("global_norm: t_list holds no tensor (only None entries)")
    return _np_ops.sqrt(_np_ops.sum(_np_ops.stack(sums)))


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    """``tf.clip_by_global_norm``: ``(clipped, global_norm)``, each tensor scaled by
    ``clip_norm / max(global_norm, clip_norm)``; None entries stay None, an infinite norm
    gives NaN everywhere (as TensorFlow signals it)."""
    norm = global_norm(t_list) if use_norm is None else _np_ops.convert_to_tensor(use_norm)
    with np.errstate(divide="ignore"):  # clip_norm 0: 1/0 = inf, and every tensor becomes 0
        inverse_clip = float(np.divide(1.0, float(clip_norm)))
    scale = _np_ops.multiply(clip_norm, _np_ops.minimum(_np_ops.reciprocal(norm), inverse_clip))
    with np.errstate(invalid="ignore"):  # inf - inf: NaN when the norm is infinite
        scale = _np_ops.add(scale, _np_ops.subtract(norm, norm))
    clipped = [None if t is None else
               _np_ops.cast(_np_ops.multiply(t, scale), _np_ops._array(t).dtype)
               for t in t_list]
    return clipped, norm


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


# ----------------------------------------------------------------------------------------------
# tf.function, tf.print: fastdl runs eagerly


def executing_eagerly():
    """``tf.executing_eagerly``: True (fastdl always runs eagerly, inside ``tf.function`` too)."""
    return True


class Function:
    """What ``tf.function`` returns: calls the Python function eagerly, every time.

    fastdl has no graphs: each op already runs a compiled kernel, so there is nothing to trace.
    The results are those of the undecorated function; unlike TensorFlow, Python side effects
    (``print``, appending to a list) run on every call, not only while tracing.
    """

    def __init__(self, python_function, input_signature, jit_compile, reduce_retracing,
                 autograph, options):
        self.python_function = python_function
        self.input_signature = input_signature
        self.jit_compile = jit_compile
        self.reduce_retracing = reduce_retracing
        self.autograph = autograph
        self._options = options
        functools.update_wrapper(self, python_function)

    def __call__(self, *args, **kwargs):
        if self.input_signature is not None:
            args, kwargs = _bind_signature(self.python_function, self.input_signature, args,
                                           kwargs)
        return self.python_function(*args, **kwargs)

    def __get__(self, instance, owner):
        # ``@tf.function`` on a method: bind like a plain function would
        if instance is None:
            return self
        return Function(self.python_function.__get__(instance, owner),
                        self.input_signature,
                        self.jit_compile, self.reduce_retracing, self.autograph, self._options)

    def __repr__(self):
        return f"<fastdl.Function {self.__name__} (runs eagerly)>"


def _bind_signature(fn, signature, args, kwargs):
    """The arguments as tensors of ``input_signature``'s dtypes (NumPy arrays and numbers are
    converted, as TensorFlow converts them); a tensor of another dtype or an incompatible shape
    is a TypeError, as in TensorFlow."""
    name = getattr(fn, "__name__", "function")
    try:  # arguments given by name count in the order of fn's parameters
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{name}: {e}") from None
    if len(bound.arguments) != len(signature):
        raise TypeError(f"{name}: input_signature has {len(signature)} TensorSpec(s), received "
                        f"{len(bound.arguments)} argument(s)")
    for i, (spec, (key, arg)) in enumerate(zip(signature, list(bound.arguments.items()))):
        value = arg._value if isinstance(arg, Tensor) else np.asarray(arg)
        if not spec.is_compatible_with(value) or (
                isinstance(arg, Tensor) and value.dtype != spec.dtype):
            raise TypeError(f"{name}: argument {i} of shape {value.shape} and dtype {value.dtype} "
                            f"does not match input_signature[{i}] {spec!r}")
        bound.arguments[key] = _np_ops.convert_to_tensor(arg, dtype=spec.dtype)
    return bound.args, bound.kwargs


_FUNCTION_OPTIONS = ("experimental_implements", "experimental_autograph_options",
                     "experimental_attributes", "experimental_relax_shapes",
                     "experimental_compile", "experimental_follow_type_hints")


def function(func=None, input_signature=None, autograph=True, jit_compile=None,
             reduce_retracing=False, **options):
    """``tf.function``: ``func`` run eagerly, with the same results (see :class:`Function`).

    fastdl does not trace: Python side effects in ``func`` run on every call. ``jit_compile``,
    ``reduce_retracing``, ``autograph`` and TensorFlow's ``experimental_*`` options are
    accepted and change nothing (fastdl's ops are compiled already); ``input_signature``, a
    sequence of ``tf.TensorSpec``, is checked against each call's arguments as TensorFlow does.
    Usable as ``@tf.function``, ``@tf.function(jit_compile=True)`` or ``tf.function(f)``.
    """
    from fastdl.data import TensorSpec
    unknown = sorted(set(options) - set(_FUNCTION_OPTIONS))
    if unknown:
        raise TypeError(f"function() got an unexpected keyword argument {unknown[0]!r}")
    if input_signature is not None:
        if isinstance(input_signature, TensorSpec) or not isinstance(input_signature,
                                                                     (list, tuple)):
            raise TypeError(f"function: input_signature must be a list or tuple of TensorSpec, "
                            f"received {input_signature!r}")
        bad = [s for s in input_signature if not isinstance(s, TensorSpec)]
        if bad:
            raise TypeError(f"function: input_signature must hold TensorSpec objects (nested "
                            f"structures are not supported), received {bad[0]!r}")
        input_signature = tuple(input_signature)
    for flag, value in (("autograph", autograph), ("reduce_retracing", reduce_retracing)):
        if not isinstance(value, (builtins.bool, np.bool_)):
            raise TypeError(f"function: {flag} must be a bool, received {value!r}")
    if jit_compile is not None and not isinstance(jit_compile, (builtins.bool, np.bool_)):
        raise TypeError(f"function: jit_compile must be a bool or None, received {jit_compile!r}")

    def decorate(f):
        if not callable(f):
            raise TypeError(f"function: func must be callable, received {type(f).__name__} "
                            f"{f!r:.80}")
        return Function(f, input_signature, jit_compile, reduce_retracing, autograph, options)

    return decorate if func is None else decorate(func)


def _print_float(v):
    """A float as TensorFlow prints it: %g with the dtype's decimal digits (6 for float32, 15
    for float64), or 9/17 digits when those would not read back as the same number."""
    short, full = (15, 17) if v.dtype == np.float64 else (6, 9)
    text = f"{v:.{short}g}"
    return text if v.dtype.type(text) == v or v != v else f"{v:.{full}g}"


def _print_value(x, summarize, nested=False):
    if isinstance(x, Tensor):
        x = x._value
    if isinstance(x, (np.ndarray, np.generic)):
        # threshold 0: each axis longer than 2 * summarize shows its first and last summarize;
        # a formatter per kind leaves the numbers unpadded, as TensorFlow writes them
        everything = summarize is not None and summarize < 0
        return np.array2string(
            np.asarray(x), threshold=sys.maxsize if everything else 0, separator=" ",
            max_line_width=sys.maxsize,  # TensorFlow never wraps a row
            edgeitems=3 if summarize is None or everything else summarize,
            formatter={"int_kind": str, "float_kind": _print_float,
                       "bool": lambda v: "1" if v else "0"})
    if isinstance(x, dict):
        return "{" + ", ".join(f"{_print_value(k, summarize, True)}: "
                               f"{_print_value(v, summarize, True)}" for k, v in x.items()) + "}"
    if isinstance(x, (list, tuple)):
        inner = ", ".join(_print_value(v, summarize, True) for v in x)
        return f"({inner})" if isinstance(x, tuple) else f"[{inner}]"
    return repr(x) if nested else str(x)  # strings inside a structure print quoted


def print(*inputs, output_stream=None, summarize=None, sep=" ", end="\n",  # noqa: A001
          name=None):
    """``tf.print``: write ``inputs`` to ``output_stream`` (standard error by default).

    Tensors print their values, each axis longer than ``2 * summarize`` shortened to its first
    and last ``summarize`` entries (3 when None; -1 prints all); strings print as they
    are; lists, tuples and dicts print their items the same way (strings inside them quoted).
    fastdl formats the values with NumPy's ``array2string`` in TensorFlow's style: ``[1 2.5]``,
    floats in ``%g`` form with the digits that read back as the same number, booleans as 1/0. ``output_stream`` is a file
    object (``sys.stdout``, ``sys.stderr``) or a ``"file://path"`` to append to.
    """
    text = sep.join(_print_value(x, summarize) for x in inputs) + end
    stream = sys.stderr if output_stream is None else output_stream
    if isinstance(stream, str) and stream.startswith("file://"):
        with open(stream[len("file://"):], "a") as f:
            f.write(text)
    elif hasattr(stream, "write"):
        stream.write(text)
    else:
        raise ValueError(f"print: output_stream must be a file object or 'file://path', "
                         f"received {stream!r}")


# ----------------------------------------------------------------------------------------------
# control flow, run as Python


def _check_callable(what, fn):
    if not callable(fn):
        raise TypeError(f"{what} must be callable, received {type(fn).__name__} {fn!r:.80}")


def cond(pred, true_fn=None, false_fn=None, name=None):
    """``tf.cond``: ``true_fn()`` if ``pred`` (a bool or scalar tensor) else ``false_fn()``."""
    _check_callable("cond: true_fn", true_fn)
    _check_callable("cond: false_fn", false_fn)
    return true_fn() if _scalar_bool("cond", pred) else false_fn()


def _scalar_bool(what, pred):
    v = np.asarray(pred._value if isinstance(pred, Tensor) else pred)
    if v.size != 1:
        raise ValueError(f"{what}: pred must be a scalar, received shape {v.shape}")
    return builtins.bool(v.reshape(()))


def case(pred_fn_pairs, default=None, exclusive=False, strict=False, name=None):
    """``tf.case``: the function of the first true predicate, else ``default()``; with
    ``exclusive``, more than one true predicate is an error."""
    pairs = list(pred_fn_pairs.items() if isinstance(pred_fn_pairs, dict) else pred_fn_pairs)
    for p, fn in pairs:
        _check_callable("case: each function", fn)
    hits = [fn for p, fn in pairs if _scalar_bool("case", p)]
    if exclusive and len(hits) > 1:
        raise ValueError(f"case: exclusive=True but {len(hits)} predicates are true")
    if hits:
        return hits[0]()
    if default is None:
        raise ValueError("case: no predicate is true and there is no default")
    _check_callable("case: default", default)
    return default()


def _loop_value(x):
    """Numbers and arrays become tensors, as TensorFlow converts loop variables."""
    return Tensor(_np_ops._array(x)) if isinstance(x, (int, float, np.ndarray, np.generic)) \
        and not isinstance(x, Tensor) else x


def while_loop(cond, body, loop_vars, shape_invariants=None, parallel_iterations=10,  # noqa: A002
               back_prop=True, swap_memory=False, maximum_iterations=None, name=None):
    """``tf.while_loop``: ``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)`` (at most
    ``maximum_iterations`` times), returning loop variables of the structure given.

    A Python loop: a GradientTape records every iteration's ops, so gradients flow through."""
    _check_callable("while_loop: cond", cond)
    _check_callable("while_loop: body", body)
    packed = isinstance(loop_vars, (list, tuple))
    values = [_loop_value(v) for v in (loop_vars if packed else (loop_vars,))]
    limit = None if maximum_iterations is None else int(maximum_iterations)
    steps = 0
    while (limit is None or steps < limit) and _scalar_bool("while_loop: cond", cond(*values)):
        out = body(*values)
        if packed and not isinstance(out, (list, tuple)):
            raise ValueError(f"while_loop: body must return the list or tuple structure of "
                             f"loop_vars, received {type(out).__name__}")
        out = list(out) if packed else [out]
        if len(out) != len(values):
            raise ValueError(f"while_loop: body returned {len(out)} value(s) for "
                             f"{len(values)} loop variable(s)")
        values = [_loop_value(v) for v in out]
        steps += 1
    if not packed:
        return values[0]
    if hasattr(loop_vars, "_fields"):  # a namedtuple
        return type(loop_vars)(*values)
    return type(loop_vars)(values)


def _slices(elems):
    """The structure ``elems`` (a tensor, or a nested tuple/list/dict of them) as one structure
    per index of axis 0."""
    from fastdl.data.dataset import flatten
    leaves = [_np_ops.convert_to_tensor(x) for x in flatten(elems)]
    sizes = {x.shape[0] if x.shape else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"map_fn: elems must share the length of their first axis, received "
                         f"shapes {[x.shape for x in leaves]}")
    n = sizes.pop()
    return n, [_rebuild(elems, iter([x[i] for x in leaves])) for i in builtins.range(n)]


def _rebuild(structure, leaves):
    if isinstance(structure, dict):
        return {k: _rebuild(v, leaves) for k, v in structure.items()}
    if isinstance(structure, (tuple, list)):
        return type(structure)(_rebuild(v, leaves) for v in structure)
    return next(leaves)


def _stack_results(results):
    first = results[0]
    if isinstance(first, dict):
        return {k: _stack_results([r[k] for r in results]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(_stack_results([r[i] for r in results])
                           for i in builtins.range(len(first)))
    return _np_ops.stack(results)


def map_fn(fn, elems, dtype=None, parallel_iterations=None, back_prop=True, swap_memory=False,
           infer_shape=True, name=None, fn_output_signature=None):
    """``tf.map_fn``: ``fn`` on each slice of ``elems`` along axis 0, the results stacked (a
    nested ``elems`` gives ``fn`` the same structure of slices). A Python loop, differentiable."""
    _check_callable("map_fn: fn", fn)
    n, slices = _slices(elems)
    if n == 0:
        raise ValueError("map_fn: elems has length 0; fastdl infers the result's shape from "
                         "fn's outputs, so it needs at least one element")
    results = _stack_results([fn(x) for x in slices])
    expected = fn_output_signature if fn_output_signature is not None else dtype
    if expected is not None and isinstance(results, Tensor):
        expected = as_dtype(getattr(expected, "dtype", expected))
        if results.dtype != expected:  # TensorFlow refuses to write it, and so does fastdl
            raise TypeError(f"map_fn: fn returned {results.dtype.name} values where "
                            f"fn_output_signature is {expected.name}")
    return results


def vectorized_map(fn, elems, fallback_to_while_loop=True, warn=True):
    """``tf.vectorized_map``: :func:`map_fn` (fastdl loops in Python; results are the same)."""
    return map_fn(fn, elems)


def py_function(func, inp=None, Tout=None, name=None):  # noqa: N803
    """``tf.py_function``: ``func(*inp)`` called eagerly with the tensors (a GradientTape sees
    its fastdl ops), outputs converted to ``Tout`` (a dtype, or a list of dtypes)."""
    _check_callable("py_function: func", func)
    return _convert_outputs("py_function", func(*(inp or ())), Tout)


def numpy_function(func, inp, Tout, stateful=True, name=None):  # noqa: N803
    """``tf.numpy_function``: ``func`` called with NumPy arrays, outputs converted to ``Tout``
    (not differentiable, as in TensorFlow)."""
    _check_callable("numpy_function: func", func)
    args = [x.numpy() if isinstance(x, Tensor) else x for x in inp]
    out = func(*args)
    return _convert_outputs("numpy_function", out, Tout)


def _convert_outputs(what, out, tout):
    if tout is None:
        return None
    if isinstance(tout, (list, tuple)):
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        if len(outs) != len(tout):
            raise ValueError(f"{what}: func returned {len(outs)} value(s) for Tout of "
                             f"{len(tout)} dtype(s)")
        return [_convert_output(what, o, t) for o, t in zip(outs, tout)]
    return _convert_output(what, out, tout)


def _convert_output(what, value, dtype):
    dtype = as_dtype(dtype)
    if isinstance(value, Tensor) and value.dtype != dtype:
        raise TypeError(f"{what}: func returned a {value.dtype.name} tensor where Tout is "
                        f"{dtype.name}")
    return _np_ops.convert_to_tensor(value, dtype=dtype.name)


class TensorArray:
    """``tf.TensorArray`` as eager TensorFlow has it: a list of tensors of one dtype and element
    shape. ``write``, ``unstack`` and ``scatter`` change the array and return it (write
    ``ta = ta.write(i, x)`` as TensorFlow programs do); ``stack`` is differentiable. Elements
    never written read as zeros once the element shape is known. ``clear_after_read`` is
    accepted; reading an element twice is allowed."""

    def __init__(self, dtype, size=None, dynamic_size=None, clear_after_read=None,
                 tensor_array_name=None, handle=None, flow=None, infer_shape=True,
                 element_shape=None, colocate_with_first_write_call=True, name=None):
        self._dtype = as_dtype(dtype)
        if size is None and not dynamic_size:
            raise ValueError("TensorArray: give a size, or dynamic_size=True")
        n = 0 if size is None else int(size)
        if n < 0:
            raise ValueError(f"TensorArray: size must be non-negative, received {size!r}")
        self._items = [None] * n
        self._dynamic = builtins.bool(dynamic_size)
        self._infer_shape = infer_shape
        self._element_shape = TensorShape(element_shape)

    @property
    def dtype(self):
        return self._dtype

    @property
    def dynamic_size(self):
        return self._dynamic

    @property
    def element_shape(self):
        return self._element_shape

    def size(self, name=None):
        return Tensor(np.asarray(len(self._items), np.int32))

    def _index(self, index, reading):
        i = int(_np_ops._array(index))
        if i < 0 or (i >= len(self._items) and (reading or not self._dynamic)):
            raise IndexError(f"TensorArray: index {i} is outside the array of size "
                             f"{len(self._items)}" + ("" if reading or self._dynamic else
                                                      " (dynamic_size=False)"))
        return i

    def write(self, index, value, name=None):
        i = self._index(index, reading=False)
        if isinstance(value, Tensor) and value.dtype != self._dtype:
            raise TypeError(f"TensorArray: cannot write a {value.dtype.name} tensor to a "
                            f"TensorArray of {self._dtype.name}")
        value = _np_ops.convert_to_tensor(value, dtype=self._dtype.name)
        if not self._element_shape.is_compatible_with(value.shape):
            raise ValueError(f"TensorArray: element of shape {value.shape} does not match the "
                             f"element shape {self._element_shape}")
        if self._infer_shape and self._element_shape.rank is None:
            self._element_shape = TensorShape(value.shape)
        if i >= len(self._items):
            self._items.extend([None] * (i + 1 - len(self._items)))
        self._items[i] = value
        return self

    def read(self, index, name=None):
        return self._element(self._index(index, reading=True))

    def _element(self, i):
        value = self._items[i]
        if value is not None:
            return value
        if not self._element_shape.is_fully_defined():
            raise ValueError(f"TensorArray: element {i} was never written and the element "
                             f"shape is not known")
        return _np_ops.zeros(self._element_shape.as_list(), dtype=self._dtype.name)

    def stack(self, name=None):
        if not self._items:
            if not self._element_shape.is_fully_defined():
                raise ValueError("TensorArray: stack of an empty array needs a known "
                                 "element_shape")
            return _np_ops.zeros([0] + self._element_shape.as_list(), dtype=self._dtype.name)
        return _np_ops.stack([self._element(i) for i in builtins.range(len(self._items))])

    def gather(self, indices, name=None):
        return _np_ops.stack([self.read(i) for i in np.asarray(_np_ops._array(indices))])

    def concat(self, name=None):
        return _np_ops.concatenate([self._element(i) for i in builtins.range(len(self._items))],
                                   axis=0)

    def unstack(self, value, name=None):
        for i, row in enumerate(_np_ops.unstack(_np_ops.convert_to_tensor(value))):
            self.write(i, row)
        return self

    def scatter(self, indices, value, name=None):
        value = _np_ops.convert_to_tensor(value)
        for row, i in enumerate(np.asarray(_np_ops._array(indices))):
            self.write(int(i), value[row])
        return self

    def close(self, name=None):
        self._items = []

    def __repr__(self):
        return (f"<fastdl.TensorArray dtype={self._dtype.name} size={len(self._items)} "
                f"element_shape={self._element_shape}>")


class Module:
    """``tf.Module``: a container whose ``variables``, ``trainable_variables`` and
    ``submodules`` are found by walking its attributes (lists, tuples and dicts included) depth
    first, as TensorFlow does: its own values in attribute-name order, then each submodule's.
    fastdl Keras layers and models count as submodules and give their ``variables``."""

    def __init__(self, name=None):
        if name is None:
            name = _CAMEL_TO_SNAKE.sub(r"_\1", type(self).__name__).lower()
        elif not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{name!r} is not a valid module name: module names must be valid "
                             f"Python identifiers")
        self._name = name

    @property
    def name(self):
        return self._name

    @property
    def name_scope(self):
        return name_scope(self._name)

    @property
    def variables(self):
        return self._found(lambda x: isinstance(x, Variable))

    @property
    def trainable_variables(self):
        return self._found(lambda x: isinstance(x, Variable) and x.trainable)

    @property
    def non_trainable_variables(self):
        return self._found(lambda x: isinstance(x, Variable) and not x.trainable)

    @property
    def submodules(self):
        return self._found(_is_module)

    def _found(self, keep):
        seen, out = set(), []
        for x in _flatten_module(self, {id(self)}):
            if id(x) not in seen and keep(x):
                seen.add(id(x))
                out.append(x)
        return tuple(out)

    @classmethod
    def with_name_scope(cls, method):
        """Returns ``method`` unchanged: fastdl has no op names to scope."""
        return method


_CAMEL_TO_SNAKE = re.compile(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))")


def _flatten_module(module, visited):
    """Depth first, as TensorFlow walks a module: its own attribute values, then each
    submodule's (a Keras layer's are its variables)."""
    leaves = _leaves(vars(module))
    yield from leaves
    for child in leaves:
        if _is_module(child) and id(child) not in visited:
            visited.add(id(child))
            yield from (_flatten_module(child, visited) if isinstance(child, Module)
                        else child.variables)


def _is_module(x):
    from fastdl.layers.base import Layer
    return isinstance(x, (Module, Layer))


def _leaves(attributes):
    """The values of an attribute dict, lists, tuples and dicts walked into, in key order."""
    out = []
    for key in sorted(attributes, key=str):
        _collect(attributes[key], out)
    return out


def _collect(value, out):
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            _collect(value[key], out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, out)
    else:
        out.append(value)


class name_scope:  # noqa: N801  (TensorFlow's name)
    """``tf.name_scope``: names no graph op in fastdl; as a context it yields ``name + '/'``."""

    def __init__(self, name):
        if not isinstance(name, str):
            raise ValueError(f"name_scope: name must be a string, received {name!r}")
        self.name = name

    def __enter__(self):
        return self.name + "/" if self.name else ""

    def __exit__(self, *exc):
        return False


def control_dependencies(control_inputs):
    """``tf.control_dependencies``: a context that does nothing, as in eager TensorFlow (ops run
    in program order)."""
    if control_inputs is not None and not isinstance(control_inputs, (list, tuple)):
        raise TypeError(f"control_dependencies: control_inputs must be a list, received "
                        f"{type(control_inputs).__name__}")
    return contextlib.nullcontext()


def get_logger():
    """``tf.get_logger``: the ``logging`` logger named ``"tensorflow"``."""
    return logging.getLogger("tensorflow")


class _Version:
    """``tf.version``: ``VERSION`` is fastdl's version."""

    def __init__(self, version):
        self.VERSION = version

    def __repr__(self):
        return f"fastdl.version(VERSION={self.VERSION!r})"


version = _Version(__version__)
