"""The value augmentations: ``RandomContrast`` and ``RandomBrightness``, each clipped to
``value_range`` as in Keras."""
import numpy as np

from fastdl.layers.preprocessing.base import RandomLayer, check_number, check_pair
from fastdl.layers.preprocessing.resizing import check_data_format


def _value_range(value_range):
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise ValueError(f"value_range must be a pair (low, high). Received: "
                         f"value_range={value_range!r}")
    low, high = (check_number(v, "value_range") for v in value_range)
    if low > high:
        raise ValueError(f"value_range must be (low, high) with low <= high. Received: "
                         f"value_range={value_range!r}")
    return low, high


class _ClippedLayer(RandomLayer):
    def __init__(self, factor, value_range, seed, bounds, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.data_format = check_data_format(data_format)
        self.factor = check_pair(factor, "factor", *bounds)
        self.value_range = _value_range(value_range)

    def apply(self, x, params):
        y = self.unclipped(x, params)
        self._inside = (y >= self.value_range[0]) & (y <= self.value_range[1])
        return np.clip(y, self.value_range[0], self.value_range[1]).astype(x.dtype, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update(factor=list(self.factor), value_range=list(self.value_range),
                      data_format=self.data_format)
        return config


class RandomContrast(_ClippedLayer):
    """Per image, ``(x - mean) * c + mean`` with ``mean`` the image's mean over height and
    width (per channel) and c drawn uniformly from [1 - lower, 1 + upper], where ``factor`` is
    a number f in [0, 1] (Keras reads it as (0, f): c in [1, 1 + f]) or a pair (lower,
    upper); then clipped to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range, seed, (0, 1), **kwargs)

    def sample(self, x):
        return self._rng.uniform(1.0 - self.factor[0], 1.0 + self.factor[1],
                                 size=(x.shape[0], 1, 1, 1)).astype(x.dtype)

    def unclipped(self, x, c):
        mean = x.mean(axis=(1, 2), keepdims=True)
        return (x - mean) * c + mean

    def apply_backward(self, dy, c):
        g = dy * self._inside
        hw = g.shape[1] * g.shape[2]
        return (g * c + g.sum(axis=(1, 2), keepdims=True) * (1 - c) / hw).astype(dy.dtype)


class RandomBrightness(_ClippedLayer):
    """Per image, adds ``u * (high - low)`` with u drawn uniformly from ``factor`` (a number f
    in [0, 1]: [-f, f]; a pair: that range) and (low, high) = ``value_range``; then clips to
    ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range, seed, (-1, 1), **kwargs)

    def sample(self, x):
        low, high = self.value_range
        return (self._rng.uniform(self.factor[0], self.factor[1], size=(x.shape[0], 1, 1, 1))
                * (high - low)).astype(x.dtype)

    def unclipped(self, x, delta):
        return x + delta

    def apply_backward(self, dy, delta):
        return dy * self._inside
