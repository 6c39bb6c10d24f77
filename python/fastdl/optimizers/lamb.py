"""Lamb (layer-wise adaptive moments), Keras 3's update rule."""
import math

import numpy as np

from fastdl.optimizers.base import Optimizer, check_number


class Lamb(Optimizer):
    """Lamb: Adam's bias-corrected direction ``u = m_hat / (sqrt(v_hat) + epsilon)``, scaled per
    variable by the trust ratio ``||w|| / ||u||`` (1 when either norm is 0):
    ``w -= lr * ratio * u``, with ``m += (g - m) * (1 - beta_1)``,
    ``v += (g*g - v) * (1 - beta_2)``, ``m_hat = m / (1 - beta_1**t)``,
    ``v_hat = v / (1 - beta_2**t)``."""

    _default_name = "lamb"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name="lamb",
                 **kwargs):
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
        self._slot_blocks = (("momentum", "velocity"),)
        self._n_tmp = 1

    def _coefficients(self, lr, step):
        b1, b2 = self.beta_1, self.beta_2
        return 1.0 - b1, 1.0 - b2, 1.0 - b1 ** step, 1.0 - b2 ** step, self.epsilon

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        c1, c2, corr1, corr2, eps = coeffs
        m, v = slots[0], slots[1]
        np.subtract(g, m, out=tmp)
        tmp *= c1
        m += tmp                              # m += (g - m) * (1 - beta_1)
        np.multiply(g, g, out=g)
        g -= v
        g *= c2
        v += g                                # v += (g*g - v) * (1 - beta_2)
        np.divide(v, corr2, out=tmp)
        np.sqrt(tmp, out=tmp)
        tmp += eps
        np.divide(m, corr1, out=g)
        g /= tmp                              # u = m_hat / (sqrt(v_hat) + epsilon)

    def _scale_updates(self, updates, variables, lr):
        for u, w in zip(updates, variables):
            w_norm = math.sqrt(float(np.dot(w.reshape(-1), w.reshape(-1))))
            u_norm = math.sqrt(float(np.dot(u.reshape(-1), u.reshape(-1))))
            ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
            u *= u.dtype.type(ratio * lr)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
