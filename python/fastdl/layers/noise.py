"""Noise and pass-through layers: GaussianNoise, GaussianDropout, AlphaDropout,
SpatialDropout1D/2D, ActivityRegularization, Permute and Identity (Keras 3's formulas).

The noise layers act only in training (``training=True``: ``fit``, ``train_on_batch``, or a
call with ``training=True``) and are the identity otherwise. With ``seed=`` a layer draws from
its own generator (the same sequence of masks for the same seed); without one, from fastdl's
shared generator (``fastdl.utils.set_random_seed``).
"""
import math

import numpy as np

from fastdl import regularizers
from fastdl.layers.base import InputSpec, Layer, shape_str
from fastdl.layers.convolutional import check_data_format
from fastdl.layers.core import Dropout
from fastdl.utils.rng import seed_generator

# SELU's constants (AlphaDropout keeps SELU's zero mean and unit variance)
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _check_unit_interval(value, name, allow_one=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float between 0 and 1. Received: {name}={value!r}")
    if not (0 <= value <= 1 if allow_one else 0 <= value < 1):
        bounds = "[0, 1]" if allow_one else "[0, 1) (1 would divide by zero)"
        raise ValueError(f"Invalid value received for argument `{name}`: expected a float in "
                         f"{bounds}. Received: {name}={value!r}")
    return float(value)


class _Noise(Layer):
    """Shared by the noise layers: a seeded generator and an elementwise backward
    ``dy * self._scale`` (``_scale`` None: the identity)."""

    supports_masking = True

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        seed_generator(seed)  # validates
        self.seed = seed
        self._rng = None
        self._scale = None
        self._called = False

    def _generator(self):
        if self.seed is None:
            return seed_generator(None)
        if self._rng is None:
            self._rng = seed_generator(self.seed)
        return self._rng

    def call(self, x, training=False):
        self._called = True
        self._scale = None
        return self._noisy(x) if training and self._active() else x

    def backward(self, dy):
        if not self._called:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        self.grads = []
        return dy if self._scale is None else dy * self._scale

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class GaussianNoise(_Noise):
    """Training: ``x + N(0, stddev**2)`` noise, drawn anew for every call."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.stddev = _check_unit_interval(stddev, "stddev")

    def _active(self):
        return self.stddev > 0

    def _noisy(self, x):
        noise = self._generator().standard_normal(x.shape, dtype=x.dtype)
        noise *= x.dtype.type(self.stddev)
        return x + noise

    def get_config(self):
        config = super().get_config()
        config.update(stddev=self.stddev, seed=self.seed)
        return config


class GaussianDropout(_Noise):
    """Training: ``x * N(1, rate / (1 - rate))`` multiplicative noise."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_unit_interval(rate, "rate", allow_one=False)

    def _active(self):
        return self.rate > 0

    def _noisy(self, x):
        noise = self._generator().standard_normal(x.shape, dtype=x.dtype)
        noise *= x.dtype.type(math.sqrt(self.rate / (1.0 - self.rate)))
        noise += x.dtype.type(1.0)
        self._scale = noise
        return x * noise

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


class AlphaDropout(_Noise):
    """Training: each element (or each slice of ``noise_shape``) is dropped with probability
    ``rate`` to SELU's negative saturation ``-alpha * scale``, then ``a * x + b`` restores zero
    mean and unit variance: ``a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5``,
    ``b = -a * alpha_p * rate`` with ``alpha_p = -alpha * scale``."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_unit_interval(rate, "rate", allow_one=False)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    _noise_shape = Dropout._noise_shape

    def _active(self):
        return self.rate > 0

    def _noisy(self, x):
        rate = self.rate
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * rate
        keep = self._generator().random(self._noise_shape(x.shape), dtype=np.float32) >= rate
        keep = keep.astype(x.dtype)
        self._scale = keep * x.dtype.type(a)     # dy/dx, broadcast over noise_shape
        return x * self._scale + (1 - keep) * x.dtype.type(a * alpha_p) + x.dtype.type(b)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed, noise_shape=self.noise_shape)
        return config


class _SpatialDropout(Dropout):
    """Dropout of whole channels: one draw per (sample, channel), shared by every position."""

    rank = None

    def __init__(self, rate, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, seed=seed, name=name, dtype=dtype, **kwargs)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _noise_shape(self, shape):
        if len(shape) != self.rank + 2:
            raise ValueError(f"Layer {self.name!r} expects {self.rank + 2}-D input, received "
                             f"shape {shape_str(shape)}")
        return (shape[0],) + (1,) * self.rank + (shape[-1],)

    def get_config(self):
        # Keras's spatial dropouts take only these (no noise_shape, no trainable)
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype}


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of ``(batch, steps, channels)`` inputs (noise shape
    ``(batch, 1, channels)``)."""

    rank = 1


class SpatialDropout2D(_SpatialDropout):
    """Drops whole channels of NHWC inputs (noise shape ``(batch, 1, 1, channels)``)."""

    rank = 2

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None, **kwargs):
        self.data_format = check_data_format(data_format)
        super().__init__(rate, seed=seed, name=name, dtype=dtype, **kwargs)

    def get_config(self):
        return dict(super().get_config(), data_format=self.data_format)


class ActivityRegularization(Layer):
    """The identity, with the activity penalty ``l1 * sum(|y|) + l2 * sum(y**2)`` (divided by
    the batch size, as every activity regularizer) added to ``model.losses``."""

    supports_masking = True

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        if "activity_regularizer" in kwargs:
            raise TypeError("ActivityRegularization sets its activity_regularizer from l1 and "
                            "l2; do not pass one")
        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = self.activity_regularizer.l1, self.activity_regularizer.l2

    def call(self, x, training=False):
        return x

    def backward(self, dy):
        self.grads = []
        return dy

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        config.update(l1=self.l1, l2=self.l2)
        return config


class Permute(Layer):
    """Permutes the non-batch axes: ``dims`` is a permutation of ``1..rank`` (``(2, 1)`` swaps
    the two axes of a 3-D input)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(dims, (tuple, list)) or any(
                isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer))
                for d in dims):
            raise TypeError(f"dims must be a tuple of ints. Received: dims={dims!r}")
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError("Invalid permutation argument `dims` for Permute Layer. The set of "
                             "indices in `dims` must be consecutive and start from 1. "
                             f"Received dims={dims!r}")
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def call(self, x, training=False):
        return np.transpose(x, (0,) + self.dims)

    def backward(self, dy):
        self.grads = []
        return np.transpose(dy, np.argsort((0,) + self.dims))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        config = super().get_config()
        config["dims"] = self.dims
        return config


class Identity(Layer):
    """Returns its input unchanged."""

    supports_masking = True

    def call(self, x, training=False):
        return x

    def backward(self, dy):
        self.grads = []
        return dy

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)
