"""Merge layers (Keras's ``keras.layers.Add`` ... ``Dot``) and their function forms (``add``, ...).

Each takes a list of inputs. They are written with ``fastdl.ops``, so they have no backward of
their own: a GradientTape differentiates them through the ops' VJP rules (in a functional
model, in a subclassed model, or called on Tensors under a tape).
"""
import numpy as np

from fastdl.layers.base import Layer, shape_str

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"]


def _ops():
    from fastdl import ops
    return ops


class _Merge(Layer):
    """Elementwise merge of two or more inputs of broadcastable shapes (batch axis included)."""

    _exactly = None   # Subtract: 2

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        for s in shapes[1:]:
            if len(s) != len(shapes[0]) or any(
                    a is not None and b is not None and a != b and 1 not in (a, b)
                    for a, b in zip(s[1:], shapes[0][1:])):
                raise ValueError(f"Layer {self.name!r} ({type(self).__name__}) needs inputs of "
                                 f"the same (or broadcastable) shapes. Received: "
                                 f"{[shape_str(s) for s in shapes]}")
        super().build(input_shape)

    def _shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}) must be called on a "
                             f"list of inputs. Received: input_shape={input_shape!r}")
        n = self._exactly
        if (n is not None and len(input_shape) != n) or len(input_shape) < 2:
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}) must be called on a "
                             f"list of {n or 'at least 2'} inputs. Received: "
                             f"{len(input_shape)} input(s)")
        return [tuple(s) for s in input_shape]

    def call(self, inputs, mask=None):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}) must be called on a "
                             f"list of inputs. Received: {type(inputs).__name__}")
        self._shapes([tuple(x.shape) for x in inputs])
        masks = self._check_masks(inputs, mask)
        if masks is not None and any(m is not None for m in masks) and hasattr(
                self, "_merge_masked"):
            return self._merge_masked(list(inputs), masks)
        return self._merge(list(inputs))

    def _check_masks(self, inputs, mask):
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}): `mask` must be a "
                             f"list with one mask (or None) per input. Received: mask={mask!r}")
        return [None if m is None else np.asarray(m, dtype=bool) for m in mask]

    def compute_mask(self, inputs, mask=None):
        """Keras's rule for the elementwise merges: the OR of the inputs' masks when every
        input has one, else no mask."""
        masks = self._check_masks(inputs, mask)
        if masks is None or any(m is None for m in masks):
            return None
        out = masks[0]
        for m in masks[1:]:
            out = np.logical_or(out, m)
        return out


def _feature_masks(xs, masks):
    """Each (batch, steps) mask broadcast over its input's feature axis (None stays None)."""
    return [None if m is None else np.broadcast_to(m[..., None], tuple(x.shape))
            for x, m in zip(xs, masks)]


def _masked_extremum(op, xs, masks):
    """Keras's Maximum/Minimum with masks: a masked step of one input takes the running
    result's value (and the result a masked step's the input's), so padding never wins."""
    ops = _ops()
    out, out_mask = None, None
    for x, m in zip(xs, _feature_masks(xs, masks)):
        if out is None:
            out, out_mask = x, m
            continue
        if m is not None:
            x = ops.where(m, x, out)
        if out_mask is not None:
            out = ops.where(out_mask, out, x)
        out_mask = None if m is None or out_mask is None else np.logical_or(out_mask, m)
        out = op(out, x)
    return out


class Add(_Merge):
    """Sum of the inputs."""

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = _ops().add(out, x)
        return out


class Subtract(_Merge):
    """``inputs[0] - inputs[1]`` (exactly two inputs)."""
    _exactly = 2

    def _merge(self, xs):
        return _ops().subtract(xs[0], xs[1])


class Multiply(_Merge):
    """Product of the inputs."""

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = _ops().multiply(out, x)
        return out

    def _merge_masked(self, xs, masks):
        # Keras: masked steps count as 1 in the product; with every input masked, the steps
        # no input keeps are 0
        ops = _ops()
        full = _feature_masks(xs, masks)
        out = self._merge([x if m is None else ops.where(m, x, ops.ones_like(x))
                           for x, m in zip(xs, full)])
        if all(m is not None for m in full):
            keep = full[0]
            for m in full[1:]:
                keep = np.logical_or(keep, m)
            out = ops.where(keep, out, ops.zeros_like(out))
        return out


class Average(_Merge):
    """Mean of the inputs."""

    def _merge(self, xs):
        return _ops().multiply(Add._merge(self, xs), 1.0 / len(xs))


class Maximum(_Merge):
    """Elementwise maximum of the inputs."""

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = _ops().maximum(out, x)
        return out

    def _merge_masked(self, xs, masks):
        return _masked_extremum(_ops().maximum, xs, masks)


class Minimum(_Merge):
    """Elementwise minimum of the inputs."""

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = _ops().minimum(out, x)
        return out

    def _merge_masked(self, xs, masks):
        return _masked_extremum(_ops().minimum, xs, masks)


class Concatenate(_Merge):
    """The inputs joined along ``axis`` (default -1); the other axes must match."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"axis must be an int. Received: axis={axis!r}")
        self.axis = axis

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        rank = len(shapes[0])
        if not -rank <= self.axis < rank or self.axis in (0, -rank):
            raise ValueError(f"Layer {self.name!r} (Concatenate): axis={self.axis} is not a "
                             f"non-batch axis of inputs of rank {rank}")
        axis = self.axis % rank
        for s in shapes:
            if len(s) != rank or any(a is not None and b is not None and a != b
                                     for i, (a, b) in enumerate(zip(s, shapes[0]))
                                     if i not in (0, axis)):
                raise ValueError(f"Layer {self.name!r} (Concatenate) needs inputs with matching "
                                 f"shapes except for the concatenation axis {self.axis}. "
                                 f"Received: {[shape_str(s) for s in shapes]}")
        Layer.build(self, input_shape)

    def _merge(self, xs):
        return _ops().concatenate(xs, axis=self.axis)

    def compute_mask(self, inputs, mask=None):
        """Keras's rule: the masks (all-True for an unmasked input, broadcast over the features
        when the mask is per step) joined along ``axis``, then any over the last axis."""
        masks = self._check_masks(inputs, mask)
        if masks is None or all(m is None for m in masks):
            return None
        full = [np.ones(np.shape(x), dtype=bool) if m is None
                else (np.broadcast_to(m[..., None], np.shape(x)) if m.ndim < np.ndim(x) else m)
                for x, m in zip(inputs, masks)]
        return np.any(np.concatenate(full, axis=self.axis), axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(_Merge):
    """Batched dot product of two inputs over ``axes`` (an int, or one axis per input);
    ``normalize=True`` L2-normalizes both along those axes first (cosine proximity). Inputs of
    rank 2 give ``(batch, 1)``; of rank 3, ``(batch, n, m)`` as Keras's ``batch_dot``."""
    _exactly = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = (axes, axes) if isinstance(axes, int) and not isinstance(axes, bool) else axes
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
                isinstance(a, int) and not isinstance(a, bool) for a in pair)):
            raise TypeError(f"axes must be an int or a pair of ints. Received: axes={axes!r}")
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool. Received: normalize={normalize!r}")
        self.axes = axes
        self._pair = tuple(pair)
        self.normalize = normalize

    def build(self, input_shape):
        a, b = self._shapes(input_shape)
        if len(a) != len(b) or len(a) not in (2, 3):
            raise ValueError(f"Layer {self.name!r} (Dot) takes two inputs of rank 2 or 3 (batch "
                             f"axis included). Received: {shape_str(a)} and {shape_str(b)}")
        ax, bx = (p % len(a) for p in self._pair)
        if 0 in (ax, bx) or (a[ax] is not None and b[bx] is not None and a[ax] != b[bx]):
            raise ValueError(f"Layer {self.name!r} (Dot): axes={self.axes} must select non-batch "
                             f"axes of equal size. Received: {shape_str(a)} and {shape_str(b)}")
        Layer.build(self, input_shape)

    def _merge(self, xs):
        ops = _ops()
        x, y = xs
        ax, bx = (p % len(x.shape) for p in self._pair)
        if self.normalize:
            x = x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=ax, keepdims=True), 1e-12))
            y = y / ops.sqrt(ops.maximum(ops.sum(y * y, axis=bx, keepdims=True), 1e-12))
        if len(x.shape) == 2:
            return ops.sum(x * y, axis=1, keepdims=True)
        if ax == 1:
            x = ops.transpose(x, (0, 2, 1))
        if bx == 2:
            y = ops.transpose(y, (0, 2, 1))
        return ops.matmul(x, y)

    def compute_mask(self, inputs, mask=None):
        self._check_masks(inputs, mask)
        return None   # as Keras: a dot product has no steps left to mask

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """``Dot(axes, normalize, **kwargs)(inputs)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
