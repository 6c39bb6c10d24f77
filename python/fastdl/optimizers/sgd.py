"""SGD with optional (Nesterov) momentum, Keras 3's update rule."""
import numpy as np

from fastdl.optimizers.base import Optimizer, check_bool, check_number


class SGD(Optimizer):
    """Gradient descent (with momentum).

    ``momentum == 0``: ``w -= lr * g``. Otherwise ``m = momentum * m - lr * g; w += m``;
    with ``nesterov=True``: ``w += momentum * m - lr * g`` (with the new ``m``).
    """

    _default_name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="SGD", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.momentum = check_number("momentum", momentum, 0.0, 1.0)
        self.nesterov = check_bool("nesterov", nesterov)
        if self.momentum != 0:
            self._slot_blocks = (("momentum",),)
            self._n_tmp = 1 if self.nesterov else 0
            self._d_source = "g" if self.nesterov else "momentum"
            self._d_add = True
        else:
            self._slot_blocks = ()
            self._n_tmp = 0
            self._d_source = "g"
            self._d_add = False

    def _coefficients(self, lr, step):
        return lr, self.momentum

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        lr, mom = coeffs
        g *= lr                               # lr * g
        if not slots:
            return                            # w -= lr * g
        m = slots[0]
        m *= mom
        m -= g                                # m = momentum * m - lr * g
        if self.nesterov:
            np.multiply(m, mom, out=tmp)
            np.subtract(tmp, g, out=g)        # w += momentum * m - lr * g
        # else: w += m

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
