"""Adadelta, Keras 3's update rule."""
import numpy as np

from fastdl.optimizers.base import Optimizer, check_number


class Adadelta(Optimizer):
    """Adadelta: ``acc_g = rho * acc_g + (1 - rho) * g*g``;
    ``delta = sqrt(acc_dx + epsilon) * g / sqrt(acc_g + epsilon)``;
    ``acc_dx = rho * acc_dx + (1 - rho) * delta*delta``; ``w -= lr * delta``."""

    _default_name = "adadelta"

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="adadelta", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.rho = check_number("rho", rho, 0.0, 1.0)
        self.epsilon = check_number("epsilon", epsilon, low=0.0)
        self._slot_blocks = (("accumulated_grad", "accumulated_delta_var"),)
        self._n_tmp = 1

    def _coefficients(self, lr, step):
        return lr, self.rho, 1.0 - self.rho, self.epsilon

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        lr, rho, c, eps = coeffs
        acc_g, acc_dx = slots
        acc_g *= rho
        np.multiply(g, g, out=tmp)
        tmp *= c
        acc_g += tmp                          # acc_g = rho * acc_g + (1 - rho) * g*g
        np.add(acc_dx, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        g *= tmp
        np.add(acc_g, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        g /= tmp                              # delta = rms(acc_dx) * g / rms(acc_g)
        acc_dx *= rho
        np.multiply(g, g, out=tmp)
        tmp *= c
        acc_dx += tmp                         # acc_dx = rho * acc_dx + (1 - rho) * delta**2
        g *= lr                               # w -= lr * delta

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
