"""Weight and activity penalties (Keras 3's ``keras.regularizers``), with their gradients.

A regularizer is called on an array and returns a float penalty; fastdl's ``gradient(x)`` gives
d penalty / d x for the backward pass. Layers take them as ``kernel_regularizer``,
``bias_regularizer``, ``recurrent_regularizer``, ``embeddings_regularizer``,
``gamma_regularizer``/``beta_regularizer`` and ``alpha_regularizer`` (weights: the penalty of
each trainable weight is added to the training loss) and, on every layer,
``activity_regularizer`` (the layer's output: the penalty divided by the batch size, as in
Keras). ``fit``,
``train_on_batch``, ``evaluate`` and ``test_on_batch`` report and differentiate
``data loss + sum(model.losses)``.

As in Keras 3: ``"l1"`` is ``L1(0.01)``, ``"l2"`` is ``L2(0.01)``, and ``"l1_l2"`` is
``L1L2()``, whose factors default to 0.
"""
import math

import numpy as np

from fastdl._serialized import Family


def _check_factor(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value!r}")
    return float(value)


class Regularizer:
    """Base class: ``__call__(x)`` is the penalty (a float), ``gradient(x)`` its gradient."""

    def __call__(self, x):
        return 0.0

    def gradient(self, x):
        return np.zeros_like(x)

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check_factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _check_factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        x = np.asarray(x)
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.sum(np.abs(x)))
        if self.l2:
            penalty += self.l2 * float(np.sum(np.square(x)))
        return penalty

    def gradient(self, x):
        x = np.asarray(x)
        grad = np.zeros_like(x)
        if self.l1:
            grad += x.dtype.type(self.l1) * np.sign(x)
        if self.l2:
            grad += x.dtype.type(2.0 * self.l2) * x
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|x|)``."""

    def __init__(self, l1=0.01):
        super().__init__(l1=0.01 if l1 is None else l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(x**2)``."""

    def __init__(self, l2=0.01):
        super().__init__(l2=0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2
_BY_NAME = {"Regularizer": Regularizer, "L1": L1, "L2": L2, "L1L2": L1L2,
            "l1": L1, "l2": L2, "l1_l2": L1L2, "regularizer": Regularizer}
_FAMILY = Family("regularizer", "keras.regularizers", Regularizer, _BY_NAME,
                 "fastdl needs a Regularizer (L1, L2, L1L2 or a subclass with __call__, "
                 "gradient and get_config): a plain function has no gradient for the "
                 "backward pass")
serialize, deserialize, get = _FAMILY.serialize, _FAMILY.deserialize, _FAMILY.get


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
