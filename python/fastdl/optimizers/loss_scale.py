"""Keras 3's ``LossScaleOptimizer``: dynamic loss scaling around another optimizer.

fastdl computes in float32 or float64, where gradients do not underflow as in float16, so the
scaling changes no finite result (a power-of-two scale is exact); what it keeps from Keras is
the behaviour: a step whose gradients are not all finite is skipped and halves the scale, and
``dynamic_growth_steps`` finite steps in a row double it. ``fit`` and ``train_on_batch`` give
it the gradients of ``scale_loss(loss)``; a GradientTape loop differentiates
``optimizer.scale_loss(loss)`` itself, as with Keras. ``apply`` divides by the scale.
"""
import math

import numpy as np

from fastdl.optimizers.base import Optimizer, check_number
from fastdl.tensor.tensor import Tensor as _Tensor

# The base-optimizer arguments Keras lets through only at their defaults (set them on the inner
# optimizer instead).
_BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None,
                  "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
                  "ema_overwrite_frequency": None, "loss_scale_factor": None,
                  "gradient_accumulation_steps": None}


class LossScaleOptimizer(Optimizer):
    """Scale the loss by ``dynamic_scale`` (``initial_scale`` at first) and unscale the
    gradients before ``inner_optimizer`` applies them; a step with a non-finite gradient is
    skipped and halves the scale, ``dynamic_growth_steps`` finite steps double it.

    ``learning_rate`` and ``iterations`` are the inner optimizer's. ``variables`` follows
    Keras: this optimizer's iterations and learning rate (unused, 0), once built its step
    counter and ``dynamic_scale``, then the inner optimizer's variables.
    """

    _default_name = "loss_scale_optimizer"

    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps=2000,
                 name=None, **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError("LossScaleOptimizer no longer supports `dynamic=False`. Instead, "
                             "simply set `loss_scale_factor` directly on the `inner_optimizer`.")
        for arg, default in _BASE_DEFAULTS.items():
            if arg in kwargs and kwargs.pop(arg) != default:
                raise ValueError(f"LossScaleOptimizer does not support `{arg}`. Instead, set "
                                 f"`{arg}` on the `inner_optimizer`.")
        if kwargs:
            raise ValueError("LossScaleOptimizer does not support arguments: "
                             f"`{'`, `'.join(kwargs)}`.")
        if not isinstance(inner_optimizer, Optimizer):
            raise TypeError("LossScaleOptimizer: inner_optimizer must be a fastdl Optimizer "
                            f"instance. Received: {inner_optimizer!r}")
        initial_scale = check_number("initial_scale", initial_scale, low=0.0, low_open=True)
        if (isinstance(dynamic_growth_steps, (bool, np.bool_))
                or not isinstance(dynamic_growth_steps, (int, np.integer))
                or dynamic_growth_steps < 1):
            raise ValueError("LossScaleOptimizer: dynamic_growth_steps must be an int >= 1. "
                             f"Received: dynamic_growth_steps={dynamic_growth_steps!r}")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.initial_scale = initial_scale
        self.dynamic_growth_steps = int(dynamic_growth_steps)
        inner_optimizer.loss_scale_factor = None
        # Keras's variables (created by build there; here at once, so scale_loss reads one)
        self._step_counter = np.array(0, np.int64)
        self._dynamic_scale = np.array(initial_scale, np.float32)

    @property
    def dynamic_scale(self):
        """The current loss scale (a float32 0-d array, updated in place)."""
        return self._dynamic_scale

    @property
    def step_counter(self):
        """Finite steps since the scale last changed (an int64 0-d array)."""
        return self._step_counter

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @iterations.setter
    def iterations(self, value):
        self.inner_optimizer.iterations = value

    def build(self, variables):
        if self.built:
            return
        self.inner_optimizer.build(variables)
        self._vars = self.inner_optimizer._vars
        self.built = True

    def scale_loss(self, loss):
        return loss * float(self._dynamic_scale)

    def _loss_scale(self):
        return float(self._dynamic_scale)

    def apply(self, grads, variables=None):
        """Skip the step and halve the scale if a gradient is not finite; else unscale the
        gradients, let the inner optimizer apply them, and count the step towards doubling."""
        grads = [g._value if isinstance(g, _Tensor) else g for g in grads]
        if not grads:
            return
        if variables is not None:
            variables = list(variables)
            if not self.built:
                self.build(variables)
        elif not self.built:
            raise ValueError("When passing `grads` without `variables`, the optimizer must "
                             "already be built on a list of variables. Call "
                             "`optimizer.build(trainable_variables)` first.")
        if not all(np.all(np.isfinite(g)) for g in grads if g is not None):
            self._step_counter[...] = 0
            self._dynamic_scale *= np.float32(0.5)
            return
        scale = self._dynamic_scale[()]
        self.inner_optimizer.apply([None if g is None else np.asarray(g) / scale
                                    for g in grads], variables)
        if self._step_counter == self.dynamic_growth_steps - 1:
            self._step_counter[...] = 0
            self._dynamic_scale *= np.float32(2.0)
        else:
            self._step_counter += 1

    def apply_gradients(self, grads_and_vars):
        super().apply_gradients(grads_and_vars)
        return self.iterations

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    # ------------------------------------------------------------------ state (Keras's order)
    def _own_arrays(self):
        own = super()._state_arrays()     # iterations (never counted here) and lr 0, as Keras
        return own + [self._step_counter, self._dynamic_scale] if self.built else own

    def _slot_list(self):
        return self.inner_optimizer._slot_list()

    def _inner_part(self, state):
        """The inner optimizer's variables within ``state``: this optimizer's `get_state()`,
        or that of a built copy of it (saving describes an unbuilt one so)."""
        built = self.built or len(state) != len(self.variables)
        return state[4 if built else 2:]

    @property
    def variables(self):
        return self._own_arrays() + self.inner_optimizer.variables

    def set_state(self, state):
        """Restore what `get_state` returned; validates everything before writing."""
        state = [np.asarray(a) for a in state]
        n_own = len(self._own_arrays())
        if len(state) < n_own:
            raise ValueError(f"LossScaleOptimizer.set_state: expected at least {n_own} arrays "
                             f"(its own counters), received {len(state)}")
        own = state[:n_own]
        for k, a in enumerate(own):
            if a.shape != () or not np.issubdtype(a.dtype, np.number) \
                    or not math.isfinite(float(a)) or float(a) < 0:
                raise ValueError(f"LossScaleOptimizer.set_state: its variable {k} must be a "
                                 f"finite scalar >= 0. Received: {a!r}")
        if self.built and float(own[3]) == 0:
            raise ValueError("LossScaleOptimizer.set_state: the dynamic scale must be > 0")
        self.inner_optimizer.set_state(state[n_own:])   # validates its part before writing
        self._iterations = int(own[0])
        self._lr_value = float(np.float32(own[1]))
        if self.built:
            self._step_counter[...] = int(own[2])
            self._dynamic_scale[...] = own[3]

    # ------------------------------------------------------------------ config
    def get_config(self):
        from fastdl.optimizers import serialize
        return {"name": self.name, "inner_optimizer": serialize(self.inner_optimizer),
                "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from fastdl.optimizers import deserialize
        if not isinstance(config, dict):
            raise ValueError(f"{cls.__name__}.from_config expects a dict. Received: "
                             f"{type(config).__name__}")
        config = dict(config)
        inner = config.pop("inner_optimizer", None)
        if isinstance(inner, dict):
            inner = deserialize(inner, custom_objects=custom_objects)
        return cls(inner, **config)

    def __repr__(self):
        return (f"<LossScaleOptimizer name={self.name!r} inner={self.inner_optimizer!r} "
                f"dynamic_scale={float(self._dynamic_scale):g}>")
