"""RMSprop (plain, with momentum, centered), Keras 3's update rule."""
import numpy as np

from fastdl import _core
from fastdl.optimizers.base import _FUSED_DTYPES, Optimizer, check_bool, check_number


class RMSprop(Optimizer):
    """RMSprop.

    ``v = rho * v + (1 - rho) * g*g``; centered: ``a = rho * a + (1 - rho) * g`` and the
    denominator is ``sqrt(v - a*a + epsilon)``, else ``sqrt(v + epsilon)``;
    ``inc = lr * g / denominator``; momentum: ``mom = momentum * mom + inc; w -= mom``,
    else ``w -= inc``.
    """

    _default_name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="rmsprop", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.rho = check_number("rho", rho, 0.0, 1.0, high_open=True)
        self.momentum = check_number("momentum", momentum, 0.0, 1.0)
        self.epsilon = check_number("epsilon", epsilon, low=0.0)
        self.centered = check_bool("centered", centered)
        # Keras's variable order: all velocities, then all momentums, then all average grads.
        blocks = [("velocity",)]
        if self.momentum > 0:
            blocks.append(("momentum",))
        if self.centered:
            blocks.append(("average_gradient",))
        self._slot_blocks = tuple(blocks)
        self._n_tmp = 1
        self._d_source = "momentum" if self.momentum > 0 else "g"
        self._d_add = False

    def _coefficients(self, lr, step):
        return lr, self.rho, 1.0 - self.rho, self.momentum, self.epsilon

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        lr, rho, c, mom, eps = coeffs
        v = slots[0]
        v *= rho
        np.multiply(g, g, out=tmp)
        tmp *= c
        v += tmp                              # v = rho * v + (1 - rho) * g*g
        if self.centered:
            a = slots[-1]
            a *= rho
            np.multiply(g, c, out=tmp)
            a += tmp                          # a = rho * a + (1 - rho) * g
            np.multiply(a, a, out=tmp)
            np.subtract(v, tmp, out=tmp)
            tmp += eps                        # v - a*a + eps
        else:
            np.add(v, eps, out=tmp)           # v + eps
        np.sqrt(tmp, out=tmp)
        g *= lr
        np.divide(g, tmp, out=g)              # inc = lr * g / sqrt(denominator)
        if mom > 0:
            m = slots[1]
            m *= mom
            m += g                            # w -= momentum * m + inc
        # else: w -= inc

    def _fused(self, g, slots, coeffs):
        if g.dtype not in _FUSED_DTYPES:
            return False
        lr, rho, c, mom, eps = coeffs
        _core.rmsprop_update(g, slots[0], slots[-1] if self.centered else None,
                             slots[1] if mom > 0 else None, lr, rho, c, mom, eps)
        return True

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                       "centered": self.centered})
        return config
