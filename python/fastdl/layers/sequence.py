"""Sequence helpers with Keras 3's API: ``TimeDistributed`` and ``Masking``.

``TimeDistributed(layer)`` applies ``layer`` to every time step of a ``(batch, time, ...)``
input. Keras calls the layer once per step; fastdl folds the time axis into the batch
(``(B, T, ...) -> (B*T, ...)``), calls the layer once and unfolds its output, which gives the
same values for every layer that treats samples independently (all but BatchNormalization in
training, whose statistics are then taken over the B*T samples together, and RNG-driven layers
such as Dropout, whose masks are drawn for B*T samples at once). The mask ``(B, T)`` is folded
alike for a layer that takes one. The wrapper keeps the inner layer's cache with its own
attributes, so it is one GradientTape primitive, also when called several times under a tape.

``Masking(mask_value=0.0)``: a time step whose features all equal ``mask_value`` is masked
(``compute_mask``: any feature differs) and its features are set to zero, as Keras does; the
layers after it (SimpleRNN, LSTM, GRU, Bidirectional, TimeDistributed) receive the mask.
"""
import numbers

import numpy as np

from fastdl.layers.base import InputSpec, Layer, shape_str
from fastdl.tensor.tensor import Tensor


def layer_from(value, owner):
    """A layer given to the wrapper ``owner`` as an instance or as a serialized entry
    ``{"class_name", "config"}``; None for anything else (the caller says what it takes)."""
    if isinstance(value, Layer):
        return value
    if isinstance(value, dict) and "class_name" in value:
        from fastdl.layers import get_layer_class
        cls = get_layer_class(value["class_name"])
        if cls is None:
            raise ValueError(f"{owner}: unknown layer class {value['class_name']!r}")
        return cls.from_config(dict(value.get("config") or {}))
    return None


def _layer_from(value):
    layer = layer_from(value, "TimeDistributed")
    if layer is None:
        raise ValueError("Please initialize `TimeDistributed` layer with a `keras.layers.Layer` "
                         f"instance. Received: {value!r}")
    return layer


class TimeDistributed(Layer):
    """Applies ``layer`` to every temporal slice (axis 1) of an input of rank 3 or more."""

    supports_masking = True

    def __init__(self, layer, **kwargs):
        layer = _layer_from(layer)
        super().__init__(**kwargs)
        self.layer = self._track_layer(layer)
        # a layer written with ops has no backward: the wrapper then runs on Tensors too
        self._tape_only = layer._tape_only
        self.input_spec = InputSpec(min_ndim=3)
        self._inner_state = None

    def _child_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 3:
            raise ValueError("`TimeDistributed` Layer should be passed an `input_shape` with at "
                             f"least 3 dimensions, received: {shape_str(input_shape)}")
        return (None,) + input_shape[2:]

    def _check_rank(self, shape):
        self._child_shape(shape)

    def build(self, input_shape):
        child = self._child_shape(input_shape)
        if not self.layer.built:
            self.layer._maybe_build(child)

    def check_input_shape(self, shape):
        super().check_input_shape(shape)
        self.layer.check_input_shape((shape[0] * shape[1],) + tuple(shape[2:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape(self._child_shape(input_shape))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def _fold_mask(self, x, mask):
        if mask is None or not self.layer._call_takes_mask:
            return None
        mask = np.asarray(mask)
        if mask.ndim < 2 or mask.shape[:2] != tuple(x.shape[:2]):
            raise ValueError(f"The `mask` passed to the `TimeDistributed` layer has a shape "
                             f"{shape_str(mask.shape)} that is incompatible with the input shape "
                             f"{shape_str(x.shape)}: its first two dimensions must be (batch, "
                             "timesteps)")
        return mask.reshape((-1,) + mask.shape[2:])

    def call(self, x, training=False, mask=None):
        b, t = x.shape[0], x.shape[1]
        inner_mask = self._fold_mask(x, mask)
        if isinstance(x, Tensor):   # the inner layer is written with ops
            from fastdl import ops
            folded = ops.reshape(x, (b * t,) + tuple(x.shape[2:]))
            y = self.layer(folded, training=training, mask=inner_mask)
            return ops.reshape(y, (b, t) + tuple(y.shape[1:]))
        folded = x.reshape((b * t,) + x.shape[2:])
        if self.layer._call_takes_mask:
            y = self.layer.call(folded, training=training, mask=inner_mask)
        else:
            y = self.layer.call(folded, training=training)
        # the inner layer's cache travels with this layer's attributes (tape primitives copy
        # them per call), so a shared wrapper differentiates each call
        self._inner_state = self.layer.__dict__.copy()
        return y.reshape((b, t) + y.shape[1:])

    def backward(self, dy):
        if self._inner_state is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        b, t = dy.shape[0], dy.shape[1]
        self.layer.__dict__.update(self._inner_state)
        dx = self.layer.backward(np.ascontiguousarray(dy.reshape((b * t,) + dy.shape[2:])))
        self.grads = list(self.layer.grads) if self._trainable else []
        return None if dx is None else dx.reshape((b, t) + dx.shape[1:])

    def get_config(self):
        from fastdl.saving.common import layer_entry
        config = super().get_config()
        config["layer"] = layer_entry(self.layer)
        return config


class Masking(Layer):
    """Masks the time steps whose features all equal ``mask_value`` and zeroes them."""

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        if isinstance(mask_value, bool) or not isinstance(mask_value, numbers.Real):
            raise TypeError(f"Masking: mask_value must be a number. "
                            f"Received: mask_value={mask_value!r}")
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)
        self._keep = None

    def compute_mask(self, x, mask=None):
        return np.any(np.asarray(x) != self.mask_value, axis=-1)

    def call(self, x, training=False):
        self._keep = np.any(x != self.mask_value, axis=-1, keepdims=True)
        return np.where(self._keep, x, x.dtype.type(0))

    def backward(self, dy):
        if self._keep is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        return np.where(self._keep, dy, dy.dtype.type(0))

    def get_config(self):
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config
