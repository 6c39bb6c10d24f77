"""Adamax (Adam with the infinity norm), Keras 3's update rule."""
import numpy as np

from fastdl.optimizers.base import Optimizer, check_number


class Adamax(Optimizer):
    """Adamax: with ``t = iterations + 1``, ``m += (g - m) * (1 - beta_1)``;
    ``u = max(beta_2 * u, |g|)``; ``w -= lr * m / ((1 - beta_1**t) * (u + epsilon))``."""

    _default_name = "adamax"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="adamax", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.beta_1 = check_number("beta_1", beta_1, 0.0, 1.0, high_open=True)
        self.beta_2 = check_number("beta_2", beta_2, 0.0, 1.0)
        self.epsilon = check_number("epsilon", epsilon, low=0.0)
        self._slot_blocks = (("momentum", "norm"),)
        self._n_tmp = 1

    def _coefficients(self, lr, step):
        return lr / (1.0 - self.beta_1 ** step), 1.0 - self.beta_1, self.beta_2, self.epsilon

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        alpha, c1, b2, eps = coeffs
        m, u = slots
        np.subtract(g, m, out=tmp)
        tmp *= c1
        m += tmp                              # m += (g - m) * (1 - beta_1)
        u *= b2
        np.abs(g, out=g)
        np.maximum(u, g, out=u)               # u = max(beta_2 * u, |g|)
        np.add(u, eps, out=tmp)
        np.multiply(m, alpha, out=g)
        g /= tmp                              # w -= lr * m / ((1 - beta_1**t) * (u + eps))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
