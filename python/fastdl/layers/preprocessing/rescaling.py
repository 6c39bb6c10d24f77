"""``Rescaling``: ``x * scale + offset`` (e.g. ``Rescaling(1 / 255)`` for pixel values)."""
import numpy as np

from fastdl.layers.preprocessing.base import PreprocessingLayer, is_number


def _factor(value, name):
    """A number, or a list of numbers (one per channel of the last axis)."""
    if is_number(value):
        return float(value)
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) and all(
            is_number(v) for v in np.ravel(value)):
        return [float(v) for v in np.ravel(value)]
    raise TypeError(f"{name} must be a number or a list of numbers. Received: {name}={value!r}")


class Rescaling(PreprocessingLayer):
    """Multiplies the input by ``scale`` and adds ``offset`` (``Rescaling(1/127.5,
    offset=-1)`` maps [0, 255] to [-1, 1]). Differentiable: dx = dy * scale."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _factor(scale, "scale")
        self.offset = _factor(offset, "offset")

    def transform(self, x):
        scale = np.asarray(self.scale, dtype=x.dtype)
        return x * scale + np.asarray(self.offset, dtype=x.dtype)

    def backward(self, dy):
        self.grads = []
        dx = dy * np.asarray(self.scale, dtype=dy.dtype)
        return np.broadcast_to(dx, self._input_shape_seen).copy() if dx.shape != \
            self._input_shape_seen else dx

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, offset=self.offset)
        return config
