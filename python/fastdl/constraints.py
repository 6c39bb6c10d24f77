"""Weight constraints (Keras 3's ``keras.constraints``): projections applied to a weight after
each optimizer step of ``fit``/``train_on_batch``, as Keras's optimizer does.

Layers take them as ``kernel_constraint``, ``bias_constraint``, ``recurrent_constraint``,
``embeddings_constraint`` and ``alpha_constraint`` (PReLU). The norms are taken along ``axis``
(0 by default: the input axis of a Dense kernel), with Keras's epsilon 1e-7 in the division.
"""
import math

import numpy as np

from fastdl._serialized import Family

_EPSILON = 1e-7  # keras.backend.epsilon()


def _check_number(value, name, minimum=0.0):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)) \
            or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}. Received: {name}={value!r}")
    return value


def _check_axis(axis):
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    if not axes or any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer))
                       for a in axes):
        raise ValueError(f"axis must be an int or a list of ints. Received: axis={axis!r}")
    return list(axis) if isinstance(axis, (tuple, list)) else int(axis)


class Constraint:
    """Base class: ``__call__(w)`` returns the projected weight (unchanged by default)."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w), axis=tuple(axis) if isinstance(axis, list) else axis,
                          keepdims=True))


class MinMaxNorm(Constraint):
    """Rescales each slice along ``axis`` towards a norm in ``[min_value, max_value]``:
    ``w * (rate * clip(norm, min, max) + (1 - rate) * norm) / (eps + norm)``."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _check_number(min_value, "min_value")
        self.max_value = _check_number(max_value, "max_value")
        self.rate = _check_number(rate, "rate")
        self.axis = _check_axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + \
            (1 - self.rate) * norms
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


class MaxNorm(Constraint):
    """Rescales each slice along ``axis`` whose norm exceeds ``max_value`` down to it."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _check_number(max_value, "max_value")
        self.axis = _check_axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        return w * (np.clip(norms, 0, self.max_value) / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Negative entries become 0."""

    def __call__(self, w):
        return np.maximum(w, 0)


class UnitNorm(Constraint):
    """Each slice along ``axis`` divided by its norm."""

    def __init__(self, axis=0):
        self.axis = _check_axis(axis)

    def __call__(self, w):
        return w / (_EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


max_norm, min_max_norm, non_neg, unit_norm = MaxNorm, MinMaxNorm, NonNeg, UnitNorm
_BY_NAME = {"Constraint": Constraint, "MaxNorm": MaxNorm, "MinMaxNorm": MinMaxNorm,
            "NonNeg": NonNeg, "UnitNorm": UnitNorm, "max_norm": MaxNorm,
            "min_max_norm": MinMaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm}
_FAMILY = Family("constraint", "keras.constraints", Constraint, _BY_NAME,
                 "fastdl needs a Constraint (MaxNorm, MinMaxNorm, NonNeg, UnitNorm or a "
                 "subclass with __call__ and get_config), which it can save and load")
serialize, deserialize, get = _FAMILY.serialize, _FAMILY.deserialize, _FAMILY.get


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
