"""Adam (optionally AMSGrad) and AdamW, Keras 3's update rule."""
import math

import numpy as np

from fastdl import _core
from fastdl.optimizers.base import _FUSED_DTYPES, Optimizer, check_bool, check_number


class Adam(Optimizer):
    """Adam, in Keras 3's form.

    With ``t = iterations + 1``: ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``;
    ``m += (g - m) * (1 - beta_1)``; ``v += (g*g - v) * (1 - beta_2)``;
    ``w -= alpha * m / (sqrt(v) + epsilon)``. ``amsgrad=True`` divides by
    ``sqrt(v_hat)`` with ``v_hat = max(v_hat, v)``.
    """

    _default_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.beta_1 = check_number("beta_1", beta_1, 0.0, 1.0, high_open=True)
        self.beta_2 = check_number("beta_2", beta_2, 0.0, 1.0, high_open=True)
        self.epsilon = check_number("epsilon", epsilon, low=0.0)
        self.amsgrad = check_bool("amsgrad", amsgrad)
        # Keras's variable order: momentum and velocity interleaved per variable, then the
        # velocity_hat of every variable.
        self._slot_blocks = ((("momentum", "velocity"), ("velocity_hat",)) if self.amsgrad
                             else (("momentum", "velocity"),))
        self._n_tmp = 1

    def _coefficients(self, lr, step):
        b1, b2 = self.beta_1, self.beta_2
        alpha = lr * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
        return alpha, 1.0 - b1, 1.0 - b2, self.epsilon

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        alpha, c1, c2, eps = coeffs
        m, v = slots[0], slots[1]
        np.subtract(g, m, out=tmp)
        tmp *= c1
        m += tmp                              # m += (g - m) * (1 - beta_1)
        np.multiply(g, g, out=g)
        g -= v
        g *= c2
        v += g                                # v += (g*g - v) * (1 - beta_2)
        if self.amsgrad:
            v = slots[2]
            np.maximum(v, slots[1], out=v)    # v_hat = max(v_hat, v)
        np.sqrt(v, out=g)
        g += eps
        np.multiply(m, alpha, out=tmp)
        np.divide(tmp, g, out=g)              # w -= m * alpha / (sqrt(v) + eps)

    def _fused(self, g, slots, coeffs):
        if g.dtype not in _FUSED_DTYPES:
            return False
        alpha, c1, c2, eps = coeffs
        _core.adam_update(g, slots[0], slots[1], slots[2] if self.amsgrad else None,
                          alpha, c1, c2, eps)
        return True

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "amsgrad": self.amsgrad})
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay (``w -= w * weight_decay * lr`` before each step)."""

    _default_name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
