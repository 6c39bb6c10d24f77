"""Adagrad, Keras 3's update rule."""
import numpy as np

from fastdl.optimizers.base import Optimizer, check_number


class Adagrad(Optimizer):
    """Adagrad: ``acc += g*g; w -= lr * g / sqrt(acc + epsilon)``; ``acc`` starts at
    ``initial_accumulator_value``."""

    _default_name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name="adagrad",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.initial_accumulator_value = check_number(
            "initial_accumulator_value", initial_accumulator_value, low=0.0)
        self.epsilon = check_number("epsilon", epsilon, low=0.0)
        self._slot_blocks = (("accumulator",),)
        self._slot_inits = {"accumulator": self.initial_accumulator_value}
        self._n_tmp = 1

    def _coefficients(self, lr, step):
        return lr, self.epsilon

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        lr, eps = coeffs
        acc = slots[0]
        np.multiply(g, g, out=tmp)
        acc += tmp                            # acc += g*g
        np.add(acc, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        g *= lr
        np.divide(g, tmp, out=g)              # w -= lr * g / sqrt(acc + eps)

    def get_config(self):
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value,
                       "epsilon": self.epsilon})
        return config
