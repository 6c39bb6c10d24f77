"""Learning-rate schedules (Keras 3 ``keras.optimizers.schedules``): ``schedule(step) -> float``.

A schedule given as an optimizer's ``learning_rate`` is evaluated at the optimizer's
``iterations`` (the number of updates already applied) before every update.
"""
import bisect
import math

import numpy as np

__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
    "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize",
]


def _number(owner, name, value, low=None, low_open=False, high=None, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{owner}: argument `{name}` must be a number. Received: "
                         f"{name}={value!r}")
    v = float(value)
    if not math.isfinite(v) or (low is not None and (v < low or (low_open and v == low))) \
            or (high is not None and v > high):
        cond = []
        if low is not None:
            cond.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            cond.append(f"<= {high}")
        raise ValueError(f"{owner}: argument `{name}` must be finite"
                         f"{' and ' + ' and '.join(cond) if cond else ''}. "
                         f"Received: {name}={value!r}")
    return value if isinstance(value, (int, float)) else v


def _flag(owner, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: argument `{name}` must be a bool. Received: {name}={value!r}")
    return bool(value)


def _step(step):
    if isinstance(step, (bool, np.bool_)):
        raise ValueError(f"A schedule's step must be a number. Received: step={step!r}")
    s = float(step)
    if not s >= 0:
        raise ValueError(f"A schedule's step must be >= 0. Received: step={step!r}")
    return s


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        try:
            cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            cfg = ""
        return f"{type(self).__name__}({cfg})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (integer division of the
    exponent when ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        o = "ExponentialDecay"
        self.initial_learning_rate = _number(o, "initial_learning_rate", initial_learning_rate,
                                             low=0)
        self.decay_steps = _number(o, "decay_steps", decay_steps, low=0, low_open=True)
        self.decay_rate = _number(o, "decay_rate", decay_rate, low=0, low_open=True)
        self.staircase = _flag(o, "staircase", staircase)
        self.name = name

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate * self.decay_rate ** p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        o = "PiecewiseConstantDecay"
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise ValueError(f"{o}: `boundaries` and `values` must be lists. Received: "
                             f"boundaries={boundaries!r}, values={values!r}")
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={list(boundaries)} of length {len(boundaries)}, and "
                f"values={list(values)} of length {len(values)}.")
        b = [_number(o, "boundaries", x) for x in boundaries]
        v = [_number(o, "values", x) for x in values]
        if any(b2 <= b1 for b1, b2 in zip(b, b[1:])):
            raise ValueError(f"{o}: `boundaries` must be strictly increasing. Received: "
                             f"boundaries={list(boundaries)}")
        self.boundaries = list(b)
        self.values = list(v)
        self.name = name

    def __call__(self, step):
        return float(self.values[bisect.bisect_left(self.boundaries, _step(step))])

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values),
                "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end``;
    with ``cycle`` the horizon grows to the first multiple of ``decay_steps`` >= step."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        o = "PolynomialDecay"
        self.initial_learning_rate = _number(o, "initial_learning_rate", initial_learning_rate,
                                             low=0)
        self.decay_steps = _number(o, "decay_steps", decay_steps, low=0, low_open=True)
        self.end_learning_rate = _number(o, "end_learning_rate", end_learning_rate, low=0)
        self.power = _number(o, "power", power, low=0)
        self.cycle = _flag(o, "cycle", cycle)
        self.name = name

    def __call__(self, step):
        s = _step(step)
        d = float(self.decay_steps)
        if self.cycle:
            d = d * (1.0 if s == 0 else math.ceil(s / d))
        else:
            s = min(s, d)
        p = s / d
        return float((self.initial_learning_rate - self.end_learning_rate)
                     * (1.0 - p) ** self.power + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floor of
    ``step / decay_steps`` when ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        o = "InverseTimeDecay"
        self.initial_learning_rate = _number(o, "initial_learning_rate", initial_learning_rate,
                                             low=0)
        self.decay_steps = _number(o, "decay_steps", decay_steps, low=0, low_open=True)
        self.decay_rate = _number(o, "decay_rate", decay_rate, low=0)
        self.staircase = _flag(o, "staircase", staircase)
        self.name = name

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate / (1.0 + self.decay_rate * p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (Keras 3).

    Without ``warmup_target``: ``lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) +
    alpha)`` with ``s = min(step, decay_steps)``. With it: a linear ramp from
    ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``, then the same decay
    from ``warmup_target``.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        o = "CosineDecay"
        self.initial_learning_rate = _number(o, "initial_learning_rate", initial_learning_rate,
                                             low=0)
        self.decay_steps = _number(o, "decay_steps", decay_steps, low=0, low_open=True)
        self.alpha = _number(o, "alpha", alpha, low=0, high=1)
        self.name = name
        self.warmup_target = _number(o, "warmup_target", warmup_target, low=0, allow_none=True)
        self.warmup_steps = _number(o, "warmup_steps", warmup_steps, low=0)

    def _decay(self, s, lr0):
        cosine = 0.5 * (1.0 + math.cos(math.pi * (s / self.decay_steps)))
        return lr0 * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        s = _step(step)
        if self.warmup_target is None:
            return float(self._decay(min(s, self.decay_steps), self.initial_learning_rate))
        s = min(s, self.decay_steps + self.warmup_steps)
        if s < self.warmup_steps:
            frac = s / self.warmup_steps
            return float((self.warmup_target - self.initial_learning_rate) * frac
                         + self.initial_learning_rate)
        return float(self._decay(s - self.warmup_steps, self.warmup_target))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter), Keras 3's formula.

    The first period lasts ``first_decay_steps``, each next one ``t_mul`` times longer, and the
    ``i``-th restart starts from ``m_mul ** i`` times ``initial_learning_rate``; within a period
    at fraction ``f`` the rate is ``lr0 * m_mul ** i * ((1 - alpha) * 0.5 * (1 + cos(pi * f)) +
    alpha)``.
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        o = "CosineDecayRestarts"
        self.initial_learning_rate = _number(o, "initial_learning_rate", initial_learning_rate,
                                             low=0)
        self.first_decay_steps = _number(o, "first_decay_steps", first_decay_steps, low=0,
                                         low_open=True)
        self._t_mul = _number(o, "t_mul", t_mul, low=0, low_open=True)
        self._m_mul = _number(o, "m_mul", m_mul, low=0)
        self.alpha = _number(o, "alpha", alpha)
        self.name = name

    def __call__(self, step):
        fraction = _step(step) / self.first_decay_steps
        t = float(self._t_mul)
        if t == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            # periods 1, t, t^2, ...: restart i begins at (1 - t^i) / (1 - t) periods
            def begins(i):
                return (1.0 - t ** i) / (1.0 - t)
            if t < 1.0 and fraction >= 1.0 / (1.0 - t):
                raise ValueError(
                    f"CosineDecayRestarts: with t_mul={self._t_mul} < 1 the periods end after "
                    f"{self.first_decay_steps / (1.0 - t):g} steps. Received: step={step!r}")
            restart = math.floor(math.log(1.0 - fraction * (1.0 - t)) / math.log(t))
            # the logarithm's rounding may land a step on a restart in the period before it
            if begins(restart + 1) <= fraction:
                restart += 1
            elif begins(restart) > fraction:
                restart -= 1
            fraction = (fraction - begins(restart)) / t ** restart
        cosine = 0.5 * self._m_mul ** restart * (1.0 + math.cos(math.pi * fraction))
        return float(self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_REGISTRY = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay,
                                           PolynomialDecay, InverseTimeDecay, CosineDecay,
                                           CosineDecayRestarts)}


def serialize(learning_rate_schedule):
    """Keras's serialized form: ``{"module", "class_name", "config", "registered_name"}``."""
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise ValueError("serialize expects a LearningRateSchedule. Received: "
                         f"{learning_rate_schedule!r}")
    cls = type(learning_rate_schedule)
    builtin = _REGISTRY.get(cls.__name__) is cls
    return {"module": "keras.optimizers.schedules" if builtin else cls.__module__,
            "class_name": cls.__name__,
            "config": learning_rate_schedule.get_config(),
            "registered_name": None if builtin else cls.__name__}


def deserialize(config, custom_objects=None):
    """Inverse of `serialize`; only built-in schedules and classes in `custom_objects`."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("deserialize expects a dict with 'class_name' and 'config'. Received: "
                         f"{config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"Unknown learning rate schedule: {name!r}. Valid names: "
                         f"{sorted(_REGISTRY)}")
    inner = config.get("config", {})
    if not isinstance(inner, dict):
        raise ValueError(f"The 'config' of a schedule must be a dict. Received: {inner!r}")
    return cls.from_config(dict(inner))


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
