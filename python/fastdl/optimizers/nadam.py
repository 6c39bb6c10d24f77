"""Nadam (Adam with Nesterov momentum), Keras 3's update rule."""
import numpy as np

from fastdl.optimizers.base import Optimizer, check_number


class Nadam(Optimizer):
    """Nadam, in Keras 3's form.

    With ``t = iterations + 1`` and the momentum schedule ``u_s = beta_1 * (1 - 0.5 * 0.96**s)``:
    ``u_product *= u_t`` (an optimizer-wide scalar, saved after the slots like Keras's);
    ``m += (g - m) * (1 - beta_1)``; ``v += (g*g - v) * (1 - beta_2)``;
    ``m_hat = u_{t+1} * m / (1 - u_product * u_{t+1}) + (1 - u_t) * g / (1 - u_product)``;
    ``v_hat = v / (1 - beta_2**t)``; ``w -= lr * m_hat / (sqrt(v_hat) + epsilon)``.
    """

    _default_name = "nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="nadam", **kwargs):
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
        self._n_tmp = 2
        self._u_product = None

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        # Keras keeps the product in a variable of the first variable's dtype
        dtype = self._vars[0].dtype if self._vars else np.dtype(np.float32)
        self._u_product = np.array(1.0, dtype=dtype)

    def _tail_arrays(self):
        return [self._u_product]

    def _set_tail(self, arrays):
        self._u_product = np.array(arrays[0], dtype=self._u_product.dtype)

    def _u(self, step):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** step)

    def _coefficients(self, lr, step):
        # Keras advances u_product once per step, before the rule runs on any variable
        dt = self._u_product.dtype.type
        self._u_product = np.array(self._u_product * dt(self._u(step)))
        u_t, u_next = self._u(step), self._u(step + 1)
        prod = float(self._u_product)
        return (lr * u_next / (1.0 - prod * u_next), lr * (1.0 - u_t) / (1.0 - prod),
                1.0 - self.beta_1, 1.0 - self.beta_2, 1.0 - self.beta_2 ** step, self.epsilon)

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        a_m, a_g, c1, c2, bias2, eps = coeffs
        m, v = slots
        np.subtract(g, m, out=tmp)
        tmp *= c1
        m += tmp                              # m += (g - m) * (1 - beta_1)
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= c2
        v += tmp                              # v += (g*g - v) * (1 - beta_2)
        np.multiply(m, a_m, out=tmp2)
        g *= a_g
        g += tmp2                             # lr * m_hat
        np.divide(v, bias2, out=tmp)
        np.sqrt(tmp, out=tmp)
        tmp += eps
        g /= tmp                              # w -= lr * m_hat / (sqrt(v_hat) + eps)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
