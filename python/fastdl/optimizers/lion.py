"""Lion (evolved sign momentum), Keras 3's update rule."""
import numpy as np

from fastdl.optimizers.base import Optimizer, check_number


class Lion(Optimizer):
    """Lion: ``w -= lr * sign(beta_1 * m + (1 - beta_1) * g)``, then
    ``m = beta_2 * m + (1 - beta_2) * g``."""

    _default_name = "lion"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99,
                 weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="lion", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        # beta_1 = 0 would make Lion plain SignSGD, which Keras refuses
        self.beta_1 = check_number("beta_1", beta_1, 0.0, 1.0, low_open=True)
        self.beta_2 = check_number("beta_2", beta_2, 0.0, 1.0)
        self._slot_blocks = (("momentum",),)
        self._n_tmp = 1

    def _coefficients(self, lr, step):
        return lr, self.beta_1, self.beta_2

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        lr, b1, b2 = coeffs
        m = slots[0]
        np.multiply(m, b1, out=tmp)
        tmp += (1.0 - b1) * g
        np.sign(tmp, out=tmp)                 # the step's direction, from the old momentum
        m *= b2
        g *= 1.0 - b2
        m += g                                # m = beta_2 * m + (1 - beta_2) * g
        np.multiply(tmp, lr, out=g)           # w -= lr * sign(...)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config
