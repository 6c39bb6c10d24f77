"""Activation layers with their own hyperparameters: ReLU, LeakyReLU, PReLU, ELU, Softmax
(Keras 3)."""
import numpy as np

from fastdl import activations, constraints, initializers, regularizers
from fastdl.layers.base import InputSpec, Layer, shape_str


def _check_float(value, name, layer, allow_none=False):
    """A finite, non-negative number (or None where allowed), as Keras's layers require."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise ValueError(f"{name} of a {layer} layer must be a non-negative float. "
                         f"Received: {name}={value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} of a {layer} layer cannot be a negative value. "
                         f"Received: {name}={value!r}")
    return float(value)


class _Elementwise(Layer):
    """y = f(x) elementwise; the subclasses give _forward(x) and _backward(x, y, dy)."""

    supports_masking = True

    def call(self, x, training=False):
        y = self._forward(x)
        self._cache = (x, y)
        return y

    def backward(self, dy):
        if getattr(self, "_cache", None) is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        x, y = self._cache
        self.grads = []
        return np.asarray(self._backward(x, y, np.asarray(dy, dtype=self.dtype)), dtype=self.dtype)


class ReLU(_Elementwise):
    """``min(x, max_value)`` for ``x > threshold``, else ``negative_slope * (x - threshold)``
    (Keras's ``activations.relu``: below the threshold, 0 when negative_slope is 0)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _check_float(max_value, "max_value", "ReLU", allow_none=True)
        self.negative_slope = _check_float(negative_slope, "negative_slope", "ReLU")
        self.threshold = _check_float(threshold, "threshold", "ReLU")

    def _forward(self, x):
        y = np.where(x > self.threshold, x, x.dtype.type(0))
        if self.max_value is not None:
            np.minimum(y, self.max_value, out=y)
        if self.negative_slope:
            y -= x.dtype.type(self.negative_slope) * np.maximum(self.threshold - x, 0)
        return y

    def _backward(self, x, y, dy):
        slope = (x > self.threshold).astype(dy.dtype)
        if self.max_value is not None:
            slope *= x < self.max_value
        if self.negative_slope:
            slope += self.negative_slope * (x < self.threshold)
        return dy * slope

    def get_config(self):
        config = super().get_config()
        config.update(max_value=self.max_value, negative_slope=self.negative_slope,
                      threshold=self.threshold)
        return config


class LeakyReLU(_Elementwise):
    """``x`` for ``x > 0``, else ``negative_slope * x``."""

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = _check_float(negative_slope, "negative_slope", "LeakyReLU")

    def _forward(self, x):
        return activations.leaky_relu(x, negative_slope=self.negative_slope)

    def _backward(self, x, y, dy):
        return activations.leaky_relu.backward(x, y, dy, negative_slope=self.negative_slope)

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


class ELU(_Elementwise):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(alpha, (bool, np.bool_)) or not isinstance(
                alpha, (int, float, np.integer, np.floating)) or not np.isfinite(alpha):
            raise ValueError(f"alpha of an ELU layer must be a finite float. Received: "
                             f"alpha={alpha!r}")
        self.alpha = float(alpha)

    def _forward(self, x):
        return activations.elu(x, alpha=self.alpha)

    def _backward(self, x, y, dy):
        return activations.elu.backward(x, y, dy, alpha=self.alpha)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


class Softmax(_Elementwise):
    """Softmax over ``axis`` (an int or a tuple of ints; -1 by default)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        if not axes or any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer))
                           for a in axes):
            raise ValueError(f"axis must be an int or a tuple of ints. Received: axis={axis!r}")
        self.axis = tuple(int(a) for a in axes) if isinstance(axis, (tuple, list)) else int(axis)

    def _axes(self, x):
        axes = self.axis if isinstance(self.axis, tuple) else (self.axis,)
        for a in axes:
            if not -x.ndim <= a < x.ndim:
                raise ValueError(f"Layer {self.name!r}: axis={self.axis} is out of range for an "
                                 f"input of shape {x.shape}")
        return tuple(a % x.ndim for a in axes)

    def call(self, x, training=False, mask=None):
        """With a mask (broadcastable to x, as in Keras), masked positions enter the softmax
        as -1e9 and come out as 0."""
        if mask is not None:
            mask = np.asarray(mask)
            if mask.ndim > x.ndim or any(m != 1 and m != d for m, d in
                                         zip(mask.shape[::-1], x.shape[::-1])):
                raise ValueError(f"Layer {self.name!r}: the mask must be broadcastable to the "
                                 f"input. Received: inputs.shape={x.shape}, "
                                 f"mask.shape={mask.shape}")
            mask = mask if mask.dtype == np.bool_ else mask > 0.5
            x = np.where(mask, x, x.dtype.type(-1e9))
        axes = self._axes(x)
        e = np.exp(x - np.max(x, axis=axes, keepdims=True))
        soft = e / np.sum(e, axis=axes, keepdims=True)
        self._cache = (x, soft, mask)
        return soft if mask is None else np.where(mask, soft, x.dtype.type(0))

    def backward(self, dy):
        if getattr(self, "_cache", None) is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        x, soft, mask = self._cache
        dy = np.asarray(dy, dtype=self.dtype)
        if mask is not None:
            dy = np.where(mask, dy, 0)
        g = dy * soft
        dx = g - soft * np.sum(g, axis=self._axes(x), keepdims=True)
        self.grads = []
        return dx if mask is None else np.where(mask, dx, 0).astype(self.dtype, copy=False)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


class PReLU(Layer):
    """``x`` for ``x > 0``, else ``alpha * x`` with a learned ``alpha`` of shape
    ``input_shape[1:]`` (size 1 along ``shared_axes``)."""

    supports_masking = True

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is not None:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer))
                   or a < 1 for a in axes):
                raise ValueError("shared_axes must be positive ints (axis 0 is the batch). "
                                 f"Received: shared_axes={shared_axes!r}")
            shared_axes = [int(a) for a in axes]
        self.shared_axes = shared_axes
        self._cache = None

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            if axis >= len(input_shape):
                raise ValueError(f"Layer {self.name!r}: shared_axes={self.shared_axes} is out "
                                 f"of range for input shape {shape_str(input_shape)}")
            shape[axis - 1] = 1
        if any(d is None for d in shape):
            raise ValueError(f"Layer {self.name!r} needs known sizes on the axes it does not "
                             f"share. Received input shape {shape_str(input_shape)}")
        self.alpha = self.add_weight("alpha", shape, self.alpha_initializer,
                                     regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={
            i: input_shape[i] for i in range(1, len(input_shape))
            if i not in (self.shared_axes or ())})

    def call(self, x, training=False):
        neg = np.minimum(x, 0)
        self._cache = (x, neg)
        return np.maximum(x, 0) + self.alpha * neg

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        x, neg = self._cache
        dy = np.asarray(dy, dtype=self.dtype)
        if self._trainable:
            g = dy * neg  # summed over the batch and the shared axes
            axes = (0,) + tuple(self.shared_axes or ())
            self.grads = [g.sum(axis=axes, keepdims=True).reshape(self.alpha.shape)]
        else:
            self.grads = []
        return dy * np.where(x > 0, x.dtype.type(1), self.alpha)

    def get_config(self):
        config = super().get_config()
        config.update(alpha_initializer=initializers.serialize(self.alpha_initializer),
                      alpha_regularizer=regularizers.serialize(self.alpha_regularizer),
                      alpha_constraint=constraints.serialize(self.alpha_constraint),
                      shared_axes=self.shared_axes)
        return config
