"""FTRL-proximal, Keras 3's update rule."""
import numpy as np

from fastdl.optimizers.base import Optimizer, check_number


class Ftrl(Optimizer):
    """Follow The Regularized Leader, in Keras 3's form (``p = learning_rate_power``):

    ``n' = n + g*g``; ``linear += g + 2 * l2_shrinkage * w - (n'**-p - n**-p) / lr * w``;
    ``w = (clip(linear, -l1, l1) - linear) / (n'**-p / lr + 2 * (l2 + beta / (2 * lr)))``;
    ``n = n'``. The accumulator ``n`` starts at ``initial_accumulator_value``.
    """

    _default_name = "ftrl"
    _d_assign = True
    _needs_variables = True

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="ftrl", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.learning_rate_power = check_number("learning_rate_power", learning_rate_power,
                                                high=0.0)
        self.initial_accumulator_value = check_number(
            "initial_accumulator_value", initial_accumulator_value, low=0.0)
        self.l1_regularization_strength = check_number(
            "l1_regularization_strength", l1_regularization_strength, low=0.0)
        self.l2_regularization_strength = check_number(
            "l2_regularization_strength", l2_regularization_strength, low=0.0)
        self.l2_shrinkage_regularization_strength = check_number(
            "l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength,
            low=0.0)
        self.beta = check_number("beta", beta)
        self._slot_blocks = (("accumulator", "linear"),)
        self._slot_inits = {"accumulator": self.initial_accumulator_value}
        self._n_tmp = 2

    def _coefficients(self, lr, step):
        if lr <= 0.0:
            raise ValueError("Ftrl divides by the learning rate, which must be > 0. "
                             f"Received: learning_rate={lr!r}")
        l2 = self.l2_regularization_strength + self.beta / (2.0 * lr)
        return (lr, -self.learning_rate_power, self.l1_regularization_strength, 2.0 * l2,
                2.0 * self.l2_shrinkage_regularization_strength)

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        lr, q, l1, two_l2, two_shrink = coeffs
        n, linear = slots
        w = tmp2                              # the variables' values (`_needs_variables`)
        linear += g
        if two_shrink:
            linear += two_shrink * w          # the gradient with L2 shrinkage
        np.power(n, q, out=tmp)
        g *= g
        n += g                                # n' = n + g*g
        np.power(n, q, out=g)
        tmp -= g
        tmp /= lr
        tmp *= w
        linear += tmp                         # linear -= (n'**-p - n**-p) / lr * w
        g /= lr
        g += two_l2                           # quadratic
        np.clip(linear, -l1, l1, out=tmp)
        tmp -= linear
        np.divide(tmp, g, out=g)              # w = (clip(linear) - linear) / quadratic

    def get_config(self):
        config = super().get_config()
        config.update({
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1_regularization_strength,
            "l2_regularization_strength": self.l2_regularization_strength,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
            "beta": self.beta,
        })
        return config
