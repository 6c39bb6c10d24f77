"""Dense, Activation, Flatten and Dropout."""
import numpy as np

from fastdl import _core, activations, constraints, initializers, regularizers
from fastdl.layers.base import as_c_array, InputSpec, Layer, check_positive_int, check_rate, shape_str
from fastdl.utils.rng import seed_generator


class Dense(Layer):
    """``activation(x @ kernel + bias)`` on the last axis; kernel ``(in, units)``."""

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 lora_rank=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = check_positive_int(units, "units")
        self.activation = activations.get(activation)
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"use_bias must be a bool. Received: use_bias={use_bias!r}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        _reject_unsupported(self, lora_rank=lora_rank)
        self.input_spec = InputSpec(min_ndim=2)
        self._cache = None

    def build(self, input_shape):
        in_features = input_shape[-1]
        if in_features is None or in_features < 1:
            raise ValueError(f"Layer {self.name!r} needs a known, positive last input dimension. "
                             f"Received input shape {shape_str(input_shape)}")
        self.kernel = self.add_weight("kernel", (in_features, self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer,
                                     regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
                     if self.use_bias else None)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: in_features})

    def call(self, x, training=False):
        x2 = as_c_array(x.reshape(-1, x.shape[-1]))
        z = _core.matmul(x2, self.kernel, False, False, self.bias)
        y = self.activation(z)
        self._cache = (x.shape, x2, z, y)
        return y.reshape(x.shape[:-1] + (self.units,))

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        x_shape, x2, z, y = self._cache
        dz = as_c_array(dy.reshape(-1, self.units), dtype=self.dtype)
        if self.activation is not activations.linear:
            dz = self.activation.backward(z, y, dz)
        if self._trainable:
            if self.bias is not None:  # dz's column sums taken as the product reads dz
                self.grads = list(_core.matmul_b_sums(x2, dz, True, False))
            else:
                self.grads = [_core.matmul(x2, dz, True, False)]
        else:
            self.grads = []
        dx = _core.matmul(dz, self.kernel, False, True)
        return dx.reshape(x_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=activations.serialize(self.activation),
                      use_bias=self.use_bias,
                      kernel_initializer=initializers.serialize(self.kernel_initializer),
                      bias_initializer=initializers.serialize(self.bias_initializer),
                      kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                      bias_regularizer=regularizers.serialize(self.bias_regularizer),
                      kernel_constraint=constraints.serialize(self.kernel_constraint),
                      bias_constraint=constraints.serialize(self.bias_constraint))
        return config


class Activation(Layer):
    """Applies an activation function: ``Activation("relu")``."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x, training=False):
        y = self.activation(x)
        self._cache = (x, y)
        return y

    def backward(self, dy):
        x, y = self._cache
        self.grads = []
        return self.activation.backward(x, y, dy)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config


class Flatten(Layer):
    """Flattens every axis but the batch axis, in NHWC (row-major) order."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError("fastdl layers are channels_last only. "
                             f"Received: data_format={data_format!r}")
        self.input_spec = InputSpec(min_ndim=1)

    def call(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))  # (-1: not for 0 rows)

    def backward(self, dy):
        self.grads = []
        return dy.reshape(self._shape)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], size)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = "channels_last"
        return config


class Dropout(Layer):
    """Inverted dropout: in training, zeroes a fraction ``rate`` and scales the rest by 1/(1-rate)."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate(rate, "rate")
        if noise_shape is not None:
            noise_shape = tuple(noise_shape)
        self.noise_shape = noise_shape
        seed_generator(seed)  # validates
        self.seed = seed
        self._rng = None
        self._called = False

    def _noise_shape(self, shape):
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"Layer {self.name!r}: noise_shape {self.noise_shape} does not match "
                             f"the input rank of {shape_str(shape)}")
        return tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))

    def call(self, x, training=False):
        self._called = True
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        if self._rng is None:
            self._rng = seed_generator(self.seed) if self.seed is not None else None
        rng = self._rng if self._rng is not None else seed_generator(None)
        keep = rng.random(self._noise_shape(x.shape), dtype=np.float32) >= self.rate
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, dy):
        if not self._called:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        self.grads = []
        return dy if self._mask is None else dy * self._mask

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)
        return config


def _reject_unsupported(layer, **options):
    """Keras options fastdl does not implement yet: refuse loudly rather than ignore them."""
    for name, value in options.items():
        if value is not None:
            raise ValueError(f"{type(layer).__name__}: {name} is not supported by fastdl yet. "
                             f"Received: {name}={value!r}")
