"""BatchNormalization (Keras 3 semantics) in vectorised NumPy.

Training (``training=True`` and ``trainable``): normalise with the batch mean and the biased batch
variance over every axis but ``axis``, update
``moving = moving * momentum + batch * (1 - momentum)`` in place, and backpropagate through the
batch statistics. Otherwise (inference, or a frozen layer):
normalise with the moving statistics. Weights: gamma (scale), beta (center), moving_mean,
moving_variance (the last two non-trainable), in Keras's order.
"""
import numpy as np

from fastdl import constraints, initializers, regularizers
from fastdl.layers.base import InputSpec, Layer, shape_str
from fastdl.layers.convolutional import check_bool
from fastdl.layers.core import _reject_unsupported


def _check_number(value, name, low, high, low_open=False):
    if isinstance(value, (bool, np.bool_)) or \
            not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number. Received: {name}={value!r}")
    value = float(value)
    ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        lo = "(" if low_open else "["
        raise ValueError(f"{name} must be in {lo}{low}, {high}]. Received: {name}={value!r}")
    return value


class BatchNormalization(Layer):
    """``gamma * (x - mean) / sqrt(var + epsilon) + beta`` over the feature axis ``axis``."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, renorm=False, renorm_clipping=None, renorm_momentum=0.99,
                 synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an integer. Received: axis={axis!r}")
        self.axis = int(axis)
        self.momentum = _check_number(momentum, "momentum", 0.0, 1.0)
        self.epsilon = _check_number(epsilon, "epsilon", 0.0, float("inf"), low_open=True)
        self.center = check_bool(center, "center")
        self.scale = check_bool(scale, "scale")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        _reject_unsupported(self, renorm_clipping=renorm_clipping)
        for name, flag in (("renorm", renorm), ("synchronized", synchronized)):
            if check_bool(flag, name):
                raise ValueError(f"BatchNormalization: {name}=True is not supported by fastdl. "
                                 f"Received: {name}={flag!r}")
        self.renorm_momentum = renorm_momentum
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self._cache = None

    def _axis_of(self, shape):
        ndim = len(shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"Axis {self.axis} is out of bounds for input shape "
                             f"{shape_str(shape)}. Received: axis={self.axis}")
        return self.axis % ndim

    def build(self, input_shape):
        axis = self._axis_of(input_shape)
        dim = input_shape[axis]
        if dim is None or dim < 1:
            raise ValueError(f"Layer {self.name!r} needs a known, positive size on axis "
                             f"{self.axis}. Received input shape {shape_str(input_shape)}")
        shape = (dim,)
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer,
                                         regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight("beta", shape, self.beta_initializer,
                                        regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape,
                                               self.moving_variance_initializer, trainable=False)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={axis: dim})
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        self._axis_of(input_shape)
        return tuple(input_shape)

    def _view(self, x):
        """x as (rows, dim, inner) with the normalised axis in the middle (a view when possible)."""
        axis = self._axis_of(x.shape)
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
        return x.reshape(outer, x.shape[axis], inner)

    def call(self, x, training=False):
        dt = x.dtype.type
        x3 = self._view(x)
        gamma = self.gamma if self.scale else np.ones_like(self.moving_mean)
        beta = self.beta if self.center else None
        count = x3.shape[0] * x3.shape[2]
        batch_stats = bool(training) and self._trainable
        if batch_stats and count > 0:  # sums accumulate in float64 (long reductions)
            mean = x3.mean(axis=(0, 2), dtype=np.float64).astype(dt)
            xc = x3 - mean[:, None]
            var = np.square(xc).mean(axis=(0, 2), dtype=np.float64).astype(dt)
            m = dt(self.momentum)
            self.moving_mean *= m
            self.moving_mean += mean * (dt(1) - m)
            self.moving_variance *= m
            self.moving_variance += var * (dt(1) - m)
        else:
            mean, var = self.moving_mean, self.moving_variance
            xc = x3 - mean[:, None]
        inv = (dt(1) / np.sqrt(var + dt(self.epsilon))).astype(x.dtype)
        xhat = xc * inv[:, None]
        y = xhat * gamma[:, None]
        if beta is not None:
            y += beta[:, None]
        self._cache = (x.shape, xhat, inv, gamma, batch_stats and count > 0)
        return y.reshape(x.shape)

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        shape, xhat, inv, gamma, batch_stats = self._cache
        dy = np.asarray(dy, dtype=self.dtype)
        if dy.shape != tuple(shape):
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(shape)}")
        dy3 = self._view(dy)
        dt = dy3.dtype.type
        dbeta = dy3.sum(axis=(0, 2), dtype=np.float64).astype(dt)
        dgamma = (dy3 * xhat).sum(axis=(0, 2), dtype=np.float64).astype(dt)
        scale = (gamma * inv)[:, None]
        if batch_stats:  # through the batch mean and variance
            count = dt(dy3.shape[0] * dy3.shape[2])
            dx = scale * (dy3 - (dbeta / count)[:, None] - xhat * (dgamma / count)[:, None])
        else:
            dx = dy3 * scale
        grads = []
        if self._trainable:
            if self.scale:
                grads.append(dgamma)
            if self.center:
                grads.append(dbeta)
        self.grads = grads
        return dx.reshape(shape)

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
                      center=self.center, scale=self.scale,
                      beta_initializer=initializers.serialize(self.beta_initializer),
                      gamma_initializer=initializers.serialize(self.gamma_initializer),
                      moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
                      moving_variance_initializer=initializers.serialize(
                          self.moving_variance_initializer),
                      beta_regularizer=regularizers.serialize(self.beta_regularizer),
                      gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
                      beta_constraint=constraints.serialize(self.beta_constraint),
                      gamma_constraint=constraints.serialize(self.gamma_constraint),
                      synchronized=False, renorm=False,
                      renorm_clipping=None, renorm_momentum=self.renorm_momentum)
        return config
