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

``OrthogonalRegularizer(factor, mode)`` penalizes the dot products of a 2-D weight's (or
activity's) normalized rows or columns.

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


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode="rows"``) or columns (``"columns"``) of a 2-D array towards
    orthogonality: with ``u_i`` the L2-normalized rows (Keras's normalization: ``x_i *
    min(1 / ||x_i||, 1 / epsilon)``, epsilon 1e-7) of n rows, the penalty is
    ``factor * sum_{i != j} |u_i . u_j| / (n * (n - 1))`` (Keras: half the sum of the absolute
    off-diagonal products over the n(n-1)/2 pairs). One row has no pairs: penalty 0 (Keras
    divides 0 by 0)."""

    _EPSILON = 1e-7

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _check_factor(factor, "factor")
        if mode not in ("rows", "columns"):
            raise ValueError('Invalid value for argument `mode`. Expected one of {"rows", '
                             f'"columns"}}. Received: mode={mode!r}')
        self.mode = mode

    def _rows(self, x):
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError("Inputs to OrthogonalRegularizer must have rank 2. Received: "
                             f"inputs.shape={x.shape}")
        return x if self.mode == "rows" else x.T

    def _parts(self, rows):
        """(unit rows u, per-row scale s, the off-diagonal Gram matrix u u^T, 1/(n(n-1)))."""
        norm = np.sqrt(np.sum(np.square(rows), axis=1, keepdims=True))
        with np.errstate(divide="ignore"):
            scale = np.minimum(1.0 / norm, 1.0 / self._EPSILON).astype(rows.dtype)
        u = rows * scale
        gram = u @ u.T
        np.fill_diagonal(gram, 0.0)
        n = rows.shape[0]
        return u, scale, gram, 1.0 / (n * (n - 1)) if n > 1 else 0.0

    def __call__(self, x):
        _, _, gram, weight = self._parts(self._rows(x))
        return self.factor * weight * float(np.sum(np.abs(gram)))

    def gradient(self, x):
        rows = self._rows(x)
        u, scale, gram, weight = self._parts(rows)
        du = (2.0 * self.factor * weight) * (np.sign(gram) @ u)   # sign(gram) is symmetric
        # through u = x * s: s = 1/||x|| projects out the row's own direction; the clamped
        # s = 1/epsilon is a constant
        free = scale < 1.0 / self._EPSILON
        drows = scale * (du - free * np.sum(du * u, axis=1, keepdims=True) * u)
        drows = drows.astype(rows.dtype, copy=False)
        return drows if self.mode == "rows" else drows.T

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer
_BY_NAME = {"Regularizer": Regularizer, "L1": L1, "L2": L2, "L1L2": L1L2,
            "OrthogonalRegularizer": OrthogonalRegularizer,
            "l1": L1, "l2": L2, "l1_l2": L1L2, "orthogonal_regularizer": OrthogonalRegularizer,
            "regularizer": Regularizer}
_FAMILY = Family("regularizer", "keras.regularizers", Regularizer, _BY_NAME,
                 "fastdl needs a Regularizer (L1, L2, L1L2, OrthogonalRegularizer or a subclass with __call__, "
                 "gradient and get_config): a plain function has no gradient for the "
                 "backward pass")
serialize, deserialize, get = _FAMILY.serialize, _FAMILY.deserialize, _FAMILY.get


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
