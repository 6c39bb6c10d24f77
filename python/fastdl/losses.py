"""Losses with the Keras 3 names, formulas, defaults and reductions, plus their gradients.

Each :class:`Loss` has

- ``loss(y_true, y_pred, sample_weight=None) -> float``: Keras's ``__call__``. The default
  reduction ``"sum_over_batch_size"`` sums the (weighted) per-sample losses and divides by their
  count, so sample weights scale the terms but do not renormalise the mean (as in Keras).
- ``loss.forward_backward(y_true, y_pred, sample_weight=None) -> (value, dy_pred)``: the same
  value and its gradient w.r.t. ``y_pred`` (same shape and dtype), the training hot path.
- ``name``, ``reduction``, ``get_config()`` / ``from_config()`` with Keras's keys, and
  ``expects_probabilities`` (True for the cross-entropies with ``from_logits=False``).

The functions (``mean_squared_error``/``mse``, ``binary_crossentropy``/``bce``, ...) return the
per-sample losses like Keras's: the mean (``kl_divergence``: the sum; the cross-entropies: the
sum over the class axis) over the last axis.

Keras semantics kept: ``y_true`` and ``y_pred`` whose ranks differ by one with a trailing 1 are
squeezed/expanded first (``y_true`` (N,) against ``y_pred`` (N, 1) is fine); probabilities are
clipped to ``[1e-7, 1 - 1e-7]`` (the clipped region has zero gradient); categorical
cross-entropy on probabilities first renormalises each row to sum 1; with ``from_logits=True``
the fused stable forms are used (``max(x,0) - x*z + log1p(exp(-|x|))``, log-softmax via
log-sum-exp), so logits of +-1e4 stay finite. Shapes that fit the loss in no Keras way raise
``ValueError`` naming both shapes (Keras would broadcast some of them silently); sparse labels
must be integers (or integral floats) in ``[0, num_classes)``, else ``ValueError``.

Extensions: ``sample_weight`` of shape (N,) against per-sample losses of shape (N, T) weights
each sample's T terms (Keras would fail to broadcast it); the cross-entropies offer
``forward_backward_logits(y_true, logits)``, the fused path for a model whose last activation is
``fused_activation`` ("sigmoid"/"softmax"): the loss computed from the logits (as Keras's
TensorFlow backend does when a softmax/sigmoid output feeds the loss) and the gradient w.r.t.
the logits in one step.
"""
import numpy as np

from fastdl.tensor.tensor import Tensor as _Tensor

__all__ = [
    "Loss", "LossFunctionWrapper", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "Huber", "LogCosh", "Hinge", "SquaredHinge", "Poisson",
    "KLDivergence", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "mean_squared_error", "mse", "MSE", "mean_absolute_error", "mae", "MAE",
    "mean_absolute_percentage_error", "mape", "MAPE", "mean_squared_logarithmic_error", "msle",
    "MSLE", "huber", "log_cosh", "hinge", "squared_hinge", "poisson", "kl_divergence", "kld",
    "KLD", "binary_crossentropy", "bce", "BCE", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "CategoricalHinge", "CosineSimilarity", "Tversky",
    "Dice", "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy", "categorical_hinge",
    "cosine_similarity", "tversky", "dice", "binary_focal_crossentropy",
    "categorical_focal_crossentropy", "get", "serialize", "deserialize",
]

EPSILON = 1e-7                      # keras.backend.epsilon()
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
_LOG2 = float(np.log(2.0))


# ----------------------------------------------------------------------------- input helpers

def _loss_dtype(dtype):
    try:
        found = np.dtype(dtype)
    except TypeError:
        found = None
    if found is None or found not in _FLOATS:   # (np.dtype("float64") == None is True)
        raise ValueError(f"A loss's dtype must be 'float32', 'float64' or None. Received: "
                         f"dtype={dtype!r}")
    return found


def _as_pred(y_pred, dtype=None):
    """y_pred as a float32/float64 array (``dtype`` when given); other real inputs become
    float32 (Keras floatx)."""
    if dtype is not None:
        return np.asarray(_as_pred(y_pred), dtype=dtype)
    if type(y_pred) is np.ndarray and y_pred.dtype in _FLOATS:
        return y_pred
    a = np.asarray(y_pred)
    if a.dtype in _FLOATS:
        return a
    if a.dtype.kind in "biuf":
        return a.astype(np.float32)
    raise TypeError(f"y_pred must be a real numeric array, received dtype {a.dtype}")


def _as_true(y_true, dtype):
    a = np.asarray(y_true)
    if a.dtype != dtype:
        if a.dtype.kind not in "biuf":
            raise TypeError(f"y_true must be a real numeric array, received dtype {a.dtype}")
        a = a.astype(dtype)
    return a


def _same_rank(x1, x2):
    """Keras's squeeze_or_expand_to_same_rank: fix a rank difference of one trailing 1."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1:
            x2 = x2[:, None]
        else:
            x1 = x1[..., 0]
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1:
            x1 = x1[:, None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def _align_weights(sample_weight, values_shape, dtype):
    """sample_weight aligned to the per-sample losses: Keras's squeeze/expand, then broadcast.

    Returns ``(w, broadcast_shape)``; ``w`` may keep size-1 axes.
    """
    w = np.asarray(sample_weight)
    if w.dtype != dtype:
        if w.dtype.kind not in "biuf":
            raise TypeError(f"sample_weight must be numeric, received dtype {w.dtype}")
        w = w.astype(dtype)
    orig = w.shape
    nv = len(values_shape)
    if w.ndim == nv + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    elif nv == w.ndim + 1 and values_shape[-1] == 1 and w.ndim == 1:
        w = w[:, None]
    if 0 < w.ndim < nv and w.shape == tuple(values_shape[:w.ndim]):
        w = w.reshape(w.shape + (1,) * (nv - w.ndim))     # (N,) weights per-sample over (N, T)
    try:
        shape = np.broadcast_shapes(w.shape, tuple(values_shape))
    except ValueError:
        raise ValueError(f"sample_weight of shape {orig} does not fit the per-sample losses of "
                         f"shape {tuple(values_shape)}") from None
    return w, shape


def _sum_to_shape(a, shape):
    """Sum a broadcast array back down to ``shape`` (the adjoint of broadcasting)."""
    if a.shape == shape:
        return a
    extra = a.ndim - len(shape)
    if extra:
        a = a.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and a.shape[i] != 1)
    if axes:
        a = a.sum(axis=axes, keepdims=True)
    return a


_ONES = {}


def _rowsum(a):
    """Sum over the last axis. A BLAS matrix-vector product with ones: on the short rows of a
    loss (a few classes) it is several times faster than ``np.sum(axis=-1)``."""
    k = a.shape[-1]
    if k == 1:
        return a[..., 0]
    key = (k, a.dtype)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = np.ones(k, a.dtype)
    return a @ ones


def _rowmax(x2):
    """Row maxima of a 2-D array (argmax + gather beats np.max on short float32 rows)."""
    return x2[np.arange(x2.shape[0]), np.argmax(x2, axis=1)]


def _shape_error(name, y_true, y_pred, hint=""):
    return ValueError(f"{name}: y_true shape {tuple(np.shape(y_true))} does not fit y_pred shape "
                      f"{tuple(np.shape(y_pred))}{hint}")


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, received {type(value).__name__} {value!r}")
    return bool(value)


def _check_fraction(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name} must be a float in [0, 1], received {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], received {value!r}")
    return value


def _check_axis(axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis!r}")
    return int(axis)


def _standardize_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Invalid value for argument `reduction`. Expected one of "
                         f"{list(_REDUCTIONS)}. Received: reduction={reduction!r}")
    return reduction


def _sparse_labels(y_true, num_classes, ignore_class, name):
    """Integer labels (an intp array) checked to lie in [0, num_classes), and the valid mask."""
    y = np.asarray(y_true)
    kind = y.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"{name}: labels must be integers, received dtype {y.dtype}")
    valid = None
    if ignore_class is not None:
        valid = y != ignore_class
    if kind == "f" and y.size:
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(y) | (y != np.floor(y))
        if valid is not None:
            bad &= valid
        if bad.any():
            raise ValueError(f"{name}: labels must be integers (or integral floats); received "
                             f"{y[bad].ravel()[:5].tolist()}")
    checked = y if valid is None else y[valid]
    if checked.size:
        lo, hi = checked.min(), checked.max()
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name}: labels must be in [0, {num_classes}) for y_pred with "
                             f"{num_classes} classes; received labels from {lo} to {hi}")
    labels = y.astype(np.intp) if kind != "i" or y.dtype.itemsize != np.dtype(np.intp).itemsize \
        else y
    if valid is not None:
        labels = np.where(valid, labels, 0)
    return labels, valid


# ----------------------------------------------------------------------------- base class

def _scaled_grad_vjp(grad, g):
    """A reduced loss's vector-Jacobian product: the upstream scalar times d loss / d y_pred."""
    return (np.asarray(g, dtype=grad.dtype) * grad,)


def _per_sample_vjp(cache, g):
    """Per-sample losses' vector-Jacobian product: each value depends on its own slice of
    y_pred (along ``axis``, or elementwise when ``axis`` is None)."""
    grad, axis, mask, shape, dtype = cache
    g = np.asarray(g, dtype=grad.dtype)
    if mask is not None:
        g = np.where(mask, g, 0)
    if axis is not None:
        g = np.expand_dims(g, axis)
    return ((grad * g).reshape(shape).astype(dtype, copy=False),)


class Loss:
    """Base class (Keras's ``keras.losses.Loss``).

    Subclasses implement ``_align`` (shape checks), ``_compute(y_true, y_pred, need_grad)``
    returning ``(values, grad, axis, mask)``: per-sample losses, ``d values / d y_pred`` (same
    shape as the aligned ``y_pred``; ``None`` unless ``need_grad``), the axis of ``y_pred`` that
    ``values`` reduced (``None`` when ``values`` has ``y_pred``'s shape) and an optional validity
    mask (ignored entries, Keras's loss mask). A custom subclass may instead implement only
    Keras's ``call(y_true, y_pred)`` with ``fastdl.ops``; ``forward_backward`` then
    differentiates it with a GradientTape.
    """

    expects_probabilities = False
    fused_activation = None

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, received {name!r}")
        self.name = name or _snake_case(type(self).__name__)
        self.reduction = _standardize_reduction(reduction)
        # Keras computes the loss in ``dtype``; None (fastdl): in y_pred's dtype
        self.dtype = None if dtype is None else _loss_dtype(dtype)

    # -- subclass hooks
    def _align(self, y_true, y_pred):
        return y_true, y_pred

    def _compute(self, y_true, y_pred, need_grad):
        raise NotImplementedError

    def _is_builtin(self):
        return type(self)._compute is not Loss._compute

    # -- Keras API
    def call(self, y_true, y_pred):
        """Per-sample losses (before sample weights and reduction), like Keras's ``call``."""
        if not self._is_builtin():
            raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")
        return self._values(y_true, y_pred)

    def _values(self, y_true, y_pred):
        if isinstance(y_pred, _Tensor):
            return self._tensor_values(y_true, y_pred)
        yp = _as_pred(y_pred, self.dtype)
        yt, yp2 = self._align(y_true, yp)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values, _, _, mask = self._compute(yt, yp2, False)
            if mask is not None:
                values = np.where(mask, values, 0.0).astype(values.dtype, copy=False)
        return values

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The reduced loss: a Python float (an array for ``reduction=None``/``"none"``); on
        fastdl Tensors (a GradientTape loop) a scalar Tensor, one recorded primitive whose
        gradient is ``forward_backward``'s."""
        if isinstance(y_pred, _Tensor) and self.reduction not in (None, "none"):
            return self._tensor_call(y_true, y_pred, sample_weight)
        yp = _as_pred(y_pred, self.dtype)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self._is_builtin():
                yt, yp2 = self._align(y_true, yp)
                values, _, _, mask = self._compute(yt, yp2, False)
            else:
                values = np.asarray(self.call(y_true, yp))
                mask = None
            if mask is not None:
                values = np.where(mask, values, 0.0).astype(values.dtype, copy=False)
            total, _ = self._reduce(values, sample_weight, mask, yp.dtype, need_factor=False)
        return total

    def _tensor_values(self, y_true, y_pred):
        """Per-sample losses of a Tensor ``y_pred`` (the function forms, ``keras.losses.mse``
        ...), one recorded primitive whose gradient comes from ``_compute``."""
        from fastdl.tensor.tape import _TAPES, record
        yp = _as_pred(y_pred._value, self.dtype)
        yt = y_true._value if isinstance(y_true, _Tensor) else y_true
        yt, yp2 = self._align(yt, yp)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values, grad, axis, mask = self._compute(yt, yp2, True)
        if mask is not None:
            values = np.where(mask, values, 0.0).astype(values.dtype, copy=False)
        out = _Tensor(values)
        if _TAPES:
            record(out, (y_pred,), _per_sample_vjp,
                   (grad, axis, mask, y_pred._value.shape, y_pred._value.dtype))
        return out

    def _tensor_call(self, y_true, y_pred, sample_weight):
        from fastdl.tensor.tape import _TAPES, record
        values = (lambda v: v._value if isinstance(v, _Tensor) else v)
        total, grad = self.forward_backward(values(y_true), y_pred._value, values(sample_weight))
        out = _Tensor(np.asarray(total, dtype=grad.dtype))
        if _TAPES:
            record(out, (y_pred,), _scaled_grad_vjp, grad)
        return out

    def forward_backward(self, y_true, y_pred, sample_weight=None):
        """``(loss_value, d loss_value / d y_pred)``; the gradient has y_pred's shape and dtype."""
        if self.reduction in (None, "none"):
            raise ValueError("forward_backward needs a scalar loss; this loss has reduction="
                             f"{self.reduction!r}")
        if not self._is_builtin():
            return self._tape_forward_backward(y_true, y_pred, sample_weight)
        if self.reduction in (None, "none"):
            raise ValueError("forward_backward needs a scalar loss; this loss has reduction="
                             f"{self.reduction!r}")
        yp = _as_pred(y_pred)
        grad_dtype = yp.dtype                           # the model's, whatever self.dtype is
        if self.dtype is not None:
            yp = yp.astype(self.dtype, copy=False)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            yt, yp2 = self._align(y_true, yp)
            values, grad, axis, mask = self._compute(yt, yp2, True)
            if mask is not None:
                values = np.where(mask, values, 0.0).astype(values.dtype, copy=False)
            total, factor = self._reduce(values, sample_weight, mask, yp.dtype, need_factor=True)
            if isinstance(factor, np.ndarray):
                if factor.shape != values.shape:
                    factor = np.broadcast_to(factor, values.shape)
                if axis is not None:
                    factor = np.expand_dims(factor, axis)
                grad *= factor
            elif factor != 1.0:
                grad *= factor
        if not isinstance(grad, np.ndarray) or grad.dtype != grad_dtype:   # 0-d: NumPy scalars
            grad = np.asarray(grad, dtype=grad_dtype)
        if grad.shape != yp.shape:
            grad = grad.reshape(yp.shape)
        return total, grad

    def _tape_forward_backward(self, y_true, y_pred, sample_weight):
        """A custom loss (``call`` written with fastdl.ops): its per-sample values and their
        gradient by a GradientTape, reduced as the built-in losses are."""
        from fastdl.ops import GradientTape, Tensor   # (loading fastdl.ops binds the operators)
        yp = _as_pred(y_pred)
        grad_dtype = yp.dtype
        if self.dtype is not None:
            yp = yp.astype(self.dtype, copy=False)
        yt = _as_true(y_true, yp.dtype)
        with GradientTape() as tape:
            t = Tensor(yp)
            tape.watch(t)
            values = self.call(Tensor(yt), t)
        if not isinstance(values, Tensor):
            raise TypeError(f"Loss {self.name!r}: call(y_true, y_pred) must compute with "
                            "fastdl.ops (keras.ops) and return a Tensor so that it can be "
                            f"differentiated; received {type(values).__name__}")
        v = np.asarray(values._value)
        if v.dtype.kind != "f":
            raise TypeError(f"Loss {self.name!r}: call(y_true, y_pred) returned dtype {v.dtype}, "
                            "a loss must be a float")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            total, factor = self._reduce(v, sample_weight, None, v.dtype, need_factor=True)
        seed = np.broadcast_to(np.asarray(factor, dtype=v.dtype), v.shape)
        grad = tape.gradient(values, t, output_gradients=seed)
        if grad is None:
            raise ValueError(f"Loss {self.name!r}: its value does not depend on y_pred "
                             "(through fastdl ops), so it cannot train a model")
        return total, np.asarray(grad._value, dtype=grad_dtype).reshape(yp.shape)

    def _reduce(self, values, sample_weight, mask, dtype, need_factor):
        """Keras's reduce_weighted_values; also d total / d values when ``need_factor``."""
        reduction = self.reduction
        if sample_weight is None and mask is None and reduction in ("sum_over_batch_size",
                                                                    "mean"):
            n = values.size                                  # the common case, kept short
            if not n:
                return 0.0, 0.0
            return float(values.sum()) / n, 1.0 / n
        w = None
        bshape = values.shape
        if sample_weight is not None:
            w, bshape = _align_weights(sample_weight, values.shape, dtype)
        if mask is not None:
            m = mask.astype(dtype)
            if reduction in ("sum_over_batch_size", "mean"):
                valid = float(m.sum())      # Keras: valid entries weigh total / valid
                m *= (m.size / valid) if valid else 0.0
            w = m if w is None else w * m
            bshape = np.broadcast_shapes(bshape, m.shape)
        if reduction is None or reduction == "none":
            return (values if w is None else values * w), None
        if w is None:
            total = float(np.sum(values))
            count = values.size
        else:
            weighted = values * w
            total = float(np.sum(weighted))
            count = weighted.size
        if reduction == "sum":
            div = 1.0
        elif reduction == "mean_with_sample_weight" and w is not None:
            div = float(np.sum(w))
        else:
            div = float(count)
        total = total / div if div else 0.0
        if not need_factor:
            return total, None
        if w is None:
            return total, (1.0 / div if div else 0.0)
        factor = w * (1.0 / div) if div else np.zeros_like(w)
        if bshape != values.shape:
            factor = _sum_to_shape(np.broadcast_to(factor, bshape), values.shape)
        return total, factor

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _snake_case(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper()
                                   or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


# ----------------------------------------------------------------------------- elementwise family

class _ElementwiseLoss(Loss):
    """Losses that are a mean (KLD: a sum) over the last axis of an elementwise term."""

    _sum_last_axis = False

    def _align(self, y_true, y_pred):
        yt = _as_true(y_true, y_pred.dtype)
        yt2, yp2 = _same_rank(yt, y_pred)
        if yt2.shape != yp2.shape:
            raise _shape_error(self.name, yt, y_pred)
        if yp2.ndim and yp2.shape[-1] == 0:
            raise ValueError(f"{self.name}: y_pred has an empty last axis, shape {y_pred.shape}")
        return yt2, yp2

    def _elementwise(self, y_true, y_pred, need_grad):
        raise NotImplementedError

    def _compute(self, y_true, y_pred, need_grad):
        e, g = self._elementwise(y_true, y_pred, need_grad)
        if y_pred.ndim == 0:
            return e, g, None, None
        values = _rowsum(e)
        if not self._sum_last_axis:
            k = y_pred.shape[-1]
            if k != 1:
                values *= 1.0 / k
                if g is not None:
                    g *= 1.0 / k
        return values, g, y_pred.ndim - 1, None


class MeanSquaredError(_ElementwiseLoss):
    """mean((y_true - y_pred)^2, axis=-1)."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _elementwise(self, y_true, y_pred, need_grad):
        d = y_pred - y_true
        e = d * d
        if need_grad:
            d *= 2.0
            return e, d
        return e, None


class MeanAbsoluteError(_ElementwiseLoss):
    """mean(|y_true - y_pred|, axis=-1); the gradient at a zero error is 0."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _elementwise(self, y_true, y_pred, need_grad):
        d = y_pred - y_true
        return np.abs(d), (np.sign(d) if need_grad else None)


class MeanAbsolutePercentageError(_ElementwiseLoss):
    """100 * mean(|y_true - y_pred| / max(|y_true|, eps), axis=-1)."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _elementwise(self, y_true, y_pred, need_grad):
        scale = np.maximum(np.abs(y_true), EPSILON)
        np.divide(100.0, scale, out=scale)
        d = y_pred - y_true
        e = np.abs(d)
        e *= scale
        if need_grad:
            g = np.sign(d)
            g *= scale
            return e, g
        return e, None


class MeanSquaredLogarithmicError(_ElementwiseLoss):
    """mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2, axis=-1)."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _elementwise(self, y_true, y_pred, need_grad):
        p = np.maximum(y_pred, EPSILON)
        d = np.log1p(p) - np.log1p(np.maximum(y_true, EPSILON))
        e = d * d
        if need_grad:
            d *= 2.0
            d /= p + 1.0
            d *= (y_pred >= EPSILON)
            return e, d
        return e, None


class Huber(_ElementwiseLoss):
    """mean(0.5 x^2 if |x| <= delta else delta |x| - 0.5 delta^2, axis=-1), x = y_pred - y_true."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        if isinstance(delta, (bool, np.bool_)) or not isinstance(
                delta, (int, float, np.integer, np.floating)):
            raise TypeError(f"Huber delta must be a positive float, received {delta!r}")
        if not (np.isfinite(delta) and delta > 0):
            raise ValueError(f"Huber delta must be a positive finite float, received {delta!r}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = float(delta)

    def _elementwise(self, y_true, y_pred, need_grad):
        delta = self.delta
        d = y_pred - y_true
        c = np.clip(d, -delta, delta)        # the quadratic part's argument
        # 0.5 c^2 + delta (|d| - |c|) equals both branches of Keras's where()
        e = np.abs(d)
        e -= np.abs(c)
        e *= delta
        e += 0.5 * c * c
        return e, (c if need_grad else None)

    def get_config(self):
        config = super().get_config()
        config["delta"] = self.delta
        return config


class LogCosh(_ElementwiseLoss):
    """mean(log(cosh(y_pred - y_true)), axis=-1), computed as x + softplus(-2x) - log 2."""

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _elementwise(self, y_true, y_pred, need_grad):
        d = y_pred - y_true
        a = np.abs(d)                         # log cosh x = |x| + log1p(exp(-2|x|)) - log 2
        e = np.exp(-2.0 * a)
        np.log1p(e, out=e)
        e += a
        e -= _LOG2
        return e, (np.tanh(d) if need_grad else None)


def _hinge_labels(y_true):
    """Keras converts {0, 1} labels to {-1, 1} when every label is 0 or 1."""
    if y_true.size and np.all((y_true == 0) | (y_true == 1)):
        return 2.0 * y_true - 1.0
    return y_true


class Hinge(_ElementwiseLoss):
    """mean(max(1 - y_true * y_pred, 0), axis=-1); labels in {-1, 1} (or {0, 1}, converted)."""

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _elementwise(self, y_true, y_pred, need_grad):
        t = _hinge_labels(y_true)
        m = 1.0 - t * y_pred
        e = np.maximum(m, 0)
        if need_grad:
            return e, -t * (m > 0)
        return e, None


class SquaredHinge(_ElementwiseLoss):
    """mean(max(1 - y_true * y_pred, 0)^2, axis=-1)."""

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _elementwise(self, y_true, y_pred, need_grad):
        t = _hinge_labels(y_true)
        h = np.maximum(1.0 - t * y_pred, 0)
        e = h * h
        if need_grad:
            h *= -2.0
            h *= t
            return e, h
        return e, None


class Poisson(_ElementwiseLoss):
    """mean(y_pred - y_true * log(y_pred + eps), axis=-1)."""

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _elementwise(self, y_true, y_pred, need_grad):
        p = y_pred + EPSILON
        e = y_pred - y_true * np.log(p)
        if need_grad:
            return e, 1.0 - y_true / p
        return e, None


class KLDivergence(_ElementwiseLoss):
    """sum(t * log(t / p), axis=-1) with t, p clipped to [eps, 1]."""

    _sum_last_axis = True

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _elementwise(self, y_true, y_pred, need_grad):
        t = np.clip(y_true, EPSILON, 1.0)
        p = np.clip(y_pred, EPSILON, 1.0)
        e = t * np.log(t / p)
        if need_grad:
            g = -t / p
            g *= (p == y_pred)
            return e, g
        return e, None


# ----------------------------------------------------------------------------- cross-entropies

class _CrossentropyMixin:
    """from_logits handling shared by the three cross-entropies."""

    @property
    def expects_probabilities(self):
        return not self.from_logits

    def forward_backward_logits(self, y_true, logits, sample_weight=None):
        """The fused path: the loss of ``fused_activation(logits)`` computed from the logits,
        and its gradient w.r.t. the logits (e.g. softmax + cross-entropy: ``(p - y) / N``)."""
        key = (self.reduction, getattr(self, "label_smoothing", None),
               getattr(self, "axis", None), getattr(self, "ignore_class", None))
        cached = self.__dict__.get("_logits_twin")
        if cached is None or cached[0] != key:        # rebuilt if the loss was reconfigured
            config = self.get_config()
            config["from_logits"] = True
            cached = (key, type(self).from_config(config))
            self.__dict__["_logits_twin"] = cached
        return cached[1].forward_backward(y_true, logits, sample_weight)


class BinaryCrossentropy(_CrossentropyMixin, _ElementwiseLoss):
    """mean(-(z log p + (1 - z) log(1 - p)), axis=-1), z the (smoothed) labels.

    ``label_smoothing`` moves the labels towards 0.5: ``z * (1 - ls) + 0.5 * ls``.
    """

    fused_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = _check_bool(from_logits, "from_logits")
        self.label_smoothing = _check_fraction(label_smoothing, "label_smoothing")
        self.axis = _check_axis(axis)
        if self.axis != -1:
            raise ValueError(f"binary_crossentropy supports axis=-1 only, received {axis!r}")

    def _elementwise(self, y_true, y_pred, need_grad):
        ls = self.label_smoothing
        t = y_true * (1.0 - ls) + 0.5 * ls if ls else y_true
        if self.from_logits:
            x = y_pred
            a = np.abs(x)                           # max(x, 0) - x t + log1p(exp(-|x|))
            np.negative(a, out=a)
            np.exp(a, out=a)                        # a = exp(-|x|) in (0, 1]
            e = np.log1p(a)
            e += np.maximum(x, 0)
            e -= x * t
            if need_grad:
                g = 1.0 - a                         # sigmoid(x) = (x >= 0 ? 1 : a) / (1 + a)
                g *= (x >= 0)
                g += a
                a += 1.0
                g /= a
                g -= t
                return e, g
            return e, None
        p = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
        q = 1.0 - p
        e = np.log(p)
        e *= t
        e += (1.0 - t) * np.log(q)
        np.negative(e, out=e)
        if need_grad:
            g = p - t                               # (p - t) / (p (1 - p)), 0 where clipped
            q *= p
            g /= q
            g *= (p == y_pred)
            return e, g
        return e, None

    def get_config(self):
        config = super().get_config()
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing,
                      axis=self.axis)
        return config


class CategoricalCrossentropy(_CrossentropyMixin, Loss):
    """-sum(y_true * log(y_pred), axis) on one-hot (or soft) labels.

    Probabilities are renormalised along ``axis`` and clipped, as in Keras; with
    ``from_logits=True`` the log-softmax is computed with log-sum-exp. ``label_smoothing``:
    ``y * (1 - ls) + ls / num_classes``, ``num_classes = y_pred.shape[axis]``.
    """

    fused_activation = "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = _check_bool(from_logits, "from_logits")
        self.label_smoothing = _check_fraction(label_smoothing, "label_smoothing")
        self.axis = _check_axis(axis)

    def _align(self, y_true, y_pred):
        yt = _as_true(y_true, y_pred.dtype)
        yt2, yp2 = _same_rank(yt, y_pred)
        if yt2.shape != yp2.shape:
            hint = ""
            if yt.ndim < y_pred.ndim or (yt.ndim == y_pred.ndim and yt.shape[-1] == 1):
                hint = " (integer labels need sparse_categorical_crossentropy)"
            raise _shape_error(self.name, yt, y_pred, hint)
        if yp2.ndim == 0:
            raise ValueError(f"{self.name}: y_pred must have a class axis, received a scalar")
        if not -yp2.ndim <= self.axis < yp2.ndim:
            raise ValueError(f"{self.name}: axis {self.axis} is out of range for y_pred of shape "
                             f"{yp2.shape}")
        if yp2.shape[self.axis] == 0:
            raise ValueError(f"{self.name}: y_pred has no classes, shape {yp2.shape}")
        return yt2, yp2

    def _compute(self, y_true, y_pred, need_grad):
        axis = self.axis % y_pred.ndim
        last = axis == y_pred.ndim - 1
        if not last:
            y_true = np.moveaxis(y_true, axis, -1)
            y_pred = np.moveaxis(y_pred, axis, -1)
        moved_shape = y_pred.shape
        c = moved_shape[-1]
        x = y_pred.reshape(-1, c)                    # (M, C): a view unless axis moved
        t = y_true.reshape(-1, c)
        ls = self.label_smoothing
        if ls:
            t = t * (1.0 - ls) + ls / c
        grad = None
        if self.from_logits:
            z = x - _rowmax(x)[:, None]
            e = np.exp(z)
            s = _rowsum(e)
            tsum = _rowsum(t)
            # -sum(t * (z - lse)) = lse * sum(t) - sum(t * z)
            values = np.log(s)
            values *= tsum
            z *= t
            values -= _rowsum(z)
            if need_grad:
                tsum = tsum / s                      # grad = softmax * sum(t) - t
                e *= tsum[:, None]
                e -= t
                grad = e
        else:
            ssum = _rowsum(x)[:, None]
            q = x / ssum
            qc = np.clip(q, EPSILON, 1.0 - EPSILON)
            logq = np.log(qc)
            logq *= t
            values = -_rowsum(logq)
            if need_grad:
                g = t / qc                           # dL/dq = -t / q where q is not clipped
                g *= (qc == q)
                np.negative(g, out=g)
                q *= g
                g -= _rowsum(q)[:, None]             # dL/dp = (g - sum(g q)) / sum(p)
                g /= ssum
                grad = g
        values = values.reshape(moved_shape[:-1])
        if grad is not None:
            grad = grad.reshape(moved_shape)
        if not last and grad is not None:
            grad = np.ascontiguousarray(np.moveaxis(grad, -1, axis))
        return values, grad, axis, None

    def get_config(self):
        config = super().get_config()
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing,
                      axis=self.axis)
        return config


class SparseCategoricalCrossentropy(_CrossentropyMixin, Loss):
    """Categorical cross-entropy with integer labels: y_true (N,) or (N, 1) for y_pred (N, C)
    (more generally ``y_pred.shape[:-1]``, optionally with a trailing 1).

    ``ignore_class``: entries with that label contribute 0, and the mean is taken over the
    others (Keras's loss mask).
    """

    fused_activation = "softmax"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = _check_bool(from_logits, "from_logits")
        if ignore_class is not None and (isinstance(ignore_class, (bool, np.bool_))
                                         or not isinstance(ignore_class, (int, np.integer))):
            raise TypeError(f"ignore_class must be None or an int, received {ignore_class!r}")
        self.ignore_class = None if ignore_class is None else int(ignore_class)

    def _align(self, y_true, y_pred):
        yt = np.asarray(y_true)
        if y_pred.ndim == 0:
            raise ValueError(f"{self.name}: y_pred must have a class axis, received a scalar")
        yt2 = yt
        if yt2.ndim == y_pred.ndim and yt2.shape[-1] == 1:
            yt2 = yt2[..., 0]
        if yt2.shape != y_pred.shape[:-1]:
            hint = ""
            if yt.shape == y_pred.shape:
                hint = " (one-hot labels need categorical_crossentropy)"
            raise _shape_error(self.name, yt, y_pred, hint)
        num_classes = y_pred.shape[-1]
        if num_classes == 0:
            raise ValueError(f"{self.name}: y_pred has no classes, shape {y_pred.shape}")
        return _sparse_labels(yt2, num_classes, self.ignore_class, self.name), y_pred

    def _compute(self, y_true, y_pred, need_grad):
        labels, valid = y_true
        num_classes = y_pred.shape[-1]
        batch_shape = y_pred.shape[:-1]
        x = y_pred.reshape(-1, num_classes)
        lab = labels.reshape(-1)
        flat = np.arange(0, lab.shape[0] * num_classes, num_classes)
        flat += lab                                  # flat index of each label's entry
        grad = None
        if self.from_logits:
            z = x - _rowmax(x)[:, None]
            e = np.exp(z)
            s = _rowsum(e)
            values = np.log(s)
            values -= z.reshape(-1).take(flat)
            if need_grad:
                e /= s[:, None]                      # softmax - onehot
                e.reshape(-1)[flat] -= 1.0
                grad = e
        else:
            ssum = _rowsum(x)
            q = x.reshape(-1).take(flat)
            q /= ssum
            qc = np.clip(q, EPSILON, 1.0 - EPSILON)
            values = -np.log(qc)
            if need_grad:
                a = (qc == q) / qc                   # dL/dq_label = -1 / q (0 where clipped)
                a /= ssum                            # dL/dp_k = a * (q - [k == label])
                grad = np.empty_like(x)
                grad[...] = (a * q)[:, None]
                grad.reshape(-1)[flat] -= a
        if valid is not None:
            v = valid.reshape(-1)
            if grad is not None and not v.all():
                grad[~v] = 0.0
            mask = valid
        else:
            mask = None
        values = values.reshape(batch_shape)
        if grad is not None:
            grad = grad.reshape(y_pred.shape)
        return values, grad, y_pred.ndim - 1, mask

    def get_config(self):
        config = super().get_config()
        config.update(from_logits=self.from_logits, ignore_class=self.ignore_class)
        return config


# ----------------------------------------------------------------------------- more Keras losses

class CategoricalHinge(Loss):
    """max(neg - pos + 1, 0) with pos = sum(y_true * y_pred, -1), neg = max((1 - y_true) *
    y_pred, -1)."""

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _align(self, y_true, y_pred):
        return _ElementwiseLoss._align(self, y_true, y_pred)

    def _compute(self, y_true, y_pred, need_grad):
        if y_pred.ndim == 0:
            raise ValueError(f"{self.name}: y_pred must have a class axis, received a scalar")
        other = (1.0 - y_true) * y_pred
        k = np.argmax(other, axis=-1)[..., None]
        neg = np.take_along_axis(other, k, axis=-1)[..., 0]
        values = np.maximum(neg - _rowsum(y_true * y_pred) + 1.0, 0.0)
        grad = None
        if need_grad:                        # d/dp: (1 - t) at the arg max, minus t; 0 if flat
            grad = -y_true
            np.put_along_axis(grad, k, np.take_along_axis(grad, k, axis=-1) + 1.0
                              - np.take_along_axis(y_true, k, axis=-1), axis=-1)
            grad *= (values > 0)[..., None]
        return values, grad, y_pred.ndim - 1, None


def _reduce_axes(axis, ndim, name):
    """Keras's ``axis`` (None: all axes, an int or a sequence of ints) as a tuple of axes;
    ``ndim=None`` checks the types only."""
    if axis is None:
        return None if ndim is None else tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise ValueError(f"{name}: `axis` must be None, an int or a tuple of ints. "
                             f"Received: axis={axis!r}")
        if ndim is not None and not -ndim <= a < ndim:
            raise ValueError(f"{name}: axis {a} is out of range for y_pred of rank {ndim}")
        out.append(int(a) if ndim is None else int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in axis={axis!r}")
    return tuple(sorted(out))


def _axis_config(axis):
    return list(axis) if isinstance(axis, tuple) else axis


class CosineSimilarity(Loss):
    """-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis): -1 when the vectors point the
    same way. Keras's l2_normalize: ``x * min(1 / ||x||, 1 / eps)``."""

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.axis = _check_axis(axis)

    def _align(self, y_true, y_pred):
        yt, yp = _ElementwiseLoss._align(self, y_true, y_pred)
        if yp.ndim == 0:
            raise ValueError(f"{self.name}: y_pred must have an axis to normalise, received a "
                             "scalar")
        _reduce_axes(self.axis, yp.ndim, self.name)
        return yt, yp

    def _compute(self, y_true, y_pred, need_grad):
        axis = self.axis % y_pred.ndim

        def normalized(x):
            inv = np.minimum(1.0 / np.sqrt(np.sum(x * x, axis=axis, keepdims=True)),
                             1.0 / EPSILON)
            return x * inv, inv

        tn, _ = normalized(y_true)
        pn, inv = normalized(y_pred)
        dot = np.sum(tn * pn, axis=axis, keepdims=True)
        grad = None
        if need_grad:       # d(-tn.pn)/dp = -inv * (tn - pn (tn.pn)); the clamp at 1/eps: -tn/eps
            grad = np.where(inv < 1.0 / EPSILON, -inv * (tn - pn * dot), -tn / EPSILON)
        return -np.squeeze(dot, axis), grad, axis, None

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


class Tversky(Loss):
    """1 - TP / (TP + alpha * FP + beta * FN + eps) over ``axis`` (None: the whole batch gives
    one value), with TP = sum(t p), FP = sum((1 - p) t), FN = sum(p (1 - t))."""

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky",
                 axis=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = _check_real(alpha, "alpha")
        self.beta = _check_real(beta, "beta")
        _reduce_axes(axis, None, name)              # the types; ranges once y_pred is known
        self.axis = tuple(axis) if isinstance(axis, list) else axis

    def _align(self, y_true, y_pred):
        yt = _as_true(y_true, y_pred.dtype)
        if yt.shape != y_pred.shape:
            raise _shape_error(self.name, yt, y_pred)
        return yt, y_pred

    def _compute(self, y_true, y_pred, need_grad):
        axes = _reduce_axes(self.axis, y_pred.ndim, self.name)
        t, p, a, b = y_true, y_pred, self.alpha, self.beta
        tp = np.sum(t * p, axis=axes, keepdims=True)
        fp = np.sum((1.0 - p) * t, axis=axes, keepdims=True)
        fn = np.sum(p * (1.0 - t), axis=axes, keepdims=True)
        den = tp + fp * a + fn * b + EPSILON
        values = 1.0 - tp / den
        grad = None
        if need_grad:                             # -(t den - tp d den/dp) / den^2
            grad = -(t * den - tp * (t * (1.0 - a) + b * (1.0 - t))) / (den * den)
        return np.squeeze(values, axes), grad, axes, None

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, beta=self.beta, axis=_axis_config(self.axis))
        return config


class Dice(Tversky):
    """1 - 2 sum(t p) / (sum(t) + sum(p) + eps) over ``axis`` (None: one value for the batch);
    Tversky with alpha = beta = 0.5 up to where eps enters."""

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(alpha=0.5, beta=0.5, reduction=reduction, name=name, axis=axis,
                         dtype=dtype)

    def _compute(self, y_true, y_pred, need_grad):
        axes = _reduce_axes(self.axis, y_pred.ndim, self.name)
        t, p = y_true, y_pred
        inter = np.sum(t * p, axis=axes, keepdims=True)
        den = np.sum(t, axis=axes, keepdims=True) + np.sum(p, axis=axes, keepdims=True) \
            + EPSILON
        values = 1.0 - 2.0 * inter / den
        grad = -2.0 * (t * den - inter) / (den * den) if need_grad else None
        return np.squeeze(values, axes), grad, axes, None

    def get_config(self):
        config = Loss.get_config(self)
        config["axis"] = _axis_config(self.axis)
        return config


def _check_real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name} must be a float, received {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, received {value!r}")
    return float(value)


def _check_gamma(gamma):
    gamma = _check_real(gamma, "gamma")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, received {gamma!r}")
    return gamma


def _focal_power(base, gamma):
    """(base**gamma, d base**gamma / d base)."""
    f = np.power(base, gamma)
    if gamma == 0.0:
        return f, np.zeros_like(base)
    return f, gamma * np.power(base, gamma - 1.0)


class _FocalMixin:
    @property
    def expects_probabilities(self):
        return not self.from_logits

    def _focal_init(self, from_logits, label_smoothing, axis, alpha, gamma):
        self.from_logits = _check_bool(from_logits, "from_logits")
        self.label_smoothing = _check_fraction(label_smoothing, "label_smoothing")
        self.axis = _check_axis(axis)
        if self.axis != -1:
            raise ValueError(f"{self.name} supports axis=-1 only, received {axis!r}")
        self.alpha = _check_real(alpha, "alpha")
        self.gamma = _check_gamma(gamma)

    def get_config(self):
        config = Loss.get_config(self)
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing,
                      axis=self.axis, alpha=self.alpha, gamma=self.gamma)
        return config


class BinaryFocalCrossentropy(_FocalMixin, _ElementwiseLoss):
    """mean(w (1 - p_t)**gamma * bce, axis=-1): binary cross-entropy down-weighted where the
    prediction is already good, p_t = t p + (1 - t)(1 - p); with ``apply_class_balancing``
    w = alpha for the positives and 1 - alpha for the negatives, else 1. From logits, p is
    sigmoid(y_pred) (then clipped to [eps, 1 - eps] for the logarithms, as in Keras)."""

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_focal_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._focal_init(from_logits, label_smoothing, axis, alpha, gamma)
        self.apply_class_balancing = _check_bool(apply_class_balancing, "apply_class_balancing")

    def _elementwise(self, y_true, y_pred, need_grad):
        ls = self.label_smoothing
        t = y_true * (1.0 - ls) + 0.5 * ls if ls else y_true
        p = 1.0 / (1.0 + np.exp(-y_pred)) if self.from_logits else y_pred
        pc = np.clip(p, EPSILON, 1.0 - EPSILON)
        bce = -(t * np.log(pc) + (1.0 - t) * np.log(1.0 - pc))
        p_t = t * p + (1.0 - t) * (1.0 - p)
        f, df = _focal_power(1.0 - p_t, self.gamma)
        e = f * bce
        if self.apply_class_balancing:
            w = t * self.alpha + (1.0 - t) * (1.0 - self.alpha)
            e *= w
        if not need_grad:
            return e, None
        dbce = (pc - t) / (pc * (1.0 - pc)) * (pc == p)
        g = f * dbce - df * (2.0 * t - 1.0) * bce      # d p_t / dp = 2t - 1
        if self.apply_class_balancing:
            g *= w
        if self.from_logits:
            g *= p * (1.0 - p)
        return e, g

    def get_config(self):
        config = super().get_config()
        config["apply_class_balancing"] = self.apply_class_balancing
        return config


class CategoricalFocalCrossentropy(_FocalMixin, Loss):
    """sum(alpha (1 - q)**gamma * -t log q, axis=-1), q = y_pred renormalised to sum 1 and
    clipped to [eps, 1 - eps] (from logits: the softmax); ``label_smoothing`` as in
    CategoricalCrossentropy."""

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._focal_init(from_logits, label_smoothing, axis, alpha, gamma)

    def _align(self, y_true, y_pred):
        return CategoricalCrossentropy._align(self, y_true, y_pred)

    def _compute(self, y_true, y_pred, need_grad):
        ls = self.label_smoothing
        t = y_true * (1.0 - ls) + ls / y_pred.shape[-1] if ls else y_true
        if self.from_logits:
            p = np.exp(y_pred - np.max(y_pred, axis=-1, keepdims=True))
            p /= np.sum(p, axis=-1, keepdims=True)
        else:
            p = y_pred
        s = np.sum(p, axis=-1, keepdims=True)
        q = p / s
        qc = np.clip(q, EPSILON, 1.0 - EPSILON)
        cce = -t * np.log(qc)
        f, df = _focal_power(1.0 - qc, self.gamma)
        values = self.alpha * np.sum(f * cce, axis=-1)
        grad = None
        if need_grad:
            g = self.alpha * (f * (-t / qc) - df * cce) * (qc == q)    # d / dq
            g = (g - np.sum(g * q, axis=-1, keepdims=True)) / s        # through q = p / sum(p)
            if self.from_logits:                                       # through the softmax
                g = p * (g - np.sum(g * p, axis=-1, keepdims=True))
            grad = g
        return values, grad, y_pred.ndim - 1, None


# ----------------------------------------------------------------------------- functions

_FN_INSTANCES = {}


def _instance(cls, **kwargs):
    key = (cls, tuple(sorted(kwargs.items())))
    inst = _FN_INSTANCES.get(key)
    if inst is None:
        inst = cls(**kwargs)
        if len(_FN_INSTANCES) < 256:
            _FN_INSTANCES[key] = inst
    return inst


def mean_squared_error(y_true, y_pred):
    """Per-sample mean((y_true - y_pred)^2, axis=-1)."""
    return _instance(MeanSquaredError)._values(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean(|y_true - y_pred|, axis=-1)."""
    return _instance(MeanAbsoluteError)._values(y_true, y_pred)


def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample 100 * mean(|y_true - y_pred| / max(|y_true|, eps), axis=-1)."""
    return _instance(MeanAbsolutePercentageError)._values(y_true, y_pred)


def mean_squared_logarithmic_error(y_true, y_pred):
    """Per-sample mean((log1p(y_pred) - log1p(y_true))^2, axis=-1), inputs floored at eps."""
    return _instance(MeanSquaredLogarithmicError)._values(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss."""
    return _instance(Huber, delta=float(delta))._values(y_true, y_pred)


def log_cosh(y_true, y_pred):
    """Per-sample mean(log(cosh(y_pred - y_true)), axis=-1)."""
    return _instance(LogCosh)._values(y_true, y_pred)


def hinge(y_true, y_pred):
    """Per-sample mean(max(1 - y_true * y_pred, 0), axis=-1)."""
    return _instance(Hinge)._values(y_true, y_pred)


def squared_hinge(y_true, y_pred):
    """Per-sample mean(max(1 - y_true * y_pred, 0)^2, axis=-1)."""
    return _instance(SquaredHinge)._values(y_true, y_pred)


def poisson(y_true, y_pred):
    """Per-sample mean(y_pred - y_true * log(y_pred + eps), axis=-1)."""
    return _instance(Poisson)._values(y_true, y_pred)


def kl_divergence(y_true, y_pred):
    """Per-sample sum(t * log(t / p), axis=-1), t and p clipped to [eps, 1]."""
    return _instance(KLDivergence)._values(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary cross-entropy, the mean over the last axis."""
    return _instance(BinaryCrossentropy, from_logits=from_logits,
                     label_smoothing=label_smoothing, axis=axis)._values(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample categorical cross-entropy along ``axis``."""
    return _instance(CategoricalCrossentropy, from_logits=from_logits,
                     label_smoothing=label_smoothing, axis=axis)._values(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Per-sample sparse categorical cross-entropy (ignored entries give 0)."""
    ndim = len(y_pred.shape) if isinstance(y_pred, _Tensor) else np.ndim(y_pred)
    if _check_axis(axis) not in (-1, ndim - 1):
        raise ValueError(f"sparse_categorical_crossentropy supports the last axis only, "
                         f"received axis={axis!r}")
    return _instance(SparseCategoricalCrossentropy, from_logits=from_logits,
                     ignore_class=ignore_class)._values(y_true, y_pred)


def categorical_hinge(y_true, y_pred):
    """Per-sample max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)."""
    return _instance(CategoricalHinge)._values(y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample -sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)."""
    return _instance(CosineSimilarity, axis=axis)._values(y_true, y_pred)


def _hashable_axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """1 - TP / (TP + alpha FP + beta FN + eps) over ``axis`` (None: all axes)."""
    return _instance(Tversky, alpha=alpha, beta=beta,
                     axis=_hashable_axis(axis))._values(y_true, y_pred)


def dice(y_true, y_pred, axis=None):
    """1 - 2 sum(t p) / (sum(t) + sum(p) + eps) over ``axis`` (None: all axes)."""
    return _instance(Dice, axis=_hashable_axis(axis))._values(y_true, y_pred)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary focal cross-entropy, the mean over the last axis."""
    return _instance(BinaryFocalCrossentropy, apply_class_balancing=apply_class_balancing,
                     alpha=alpha, gamma=gamma, from_logits=from_logits,
                     label_smoothing=label_smoothing, axis=axis)._values(y_true, y_pred)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """Per-sample categorical focal cross-entropy along the last axis."""
    return _instance(CategoricalFocalCrossentropy, alpha=alpha, gamma=gamma,
                     from_logits=from_logits, label_smoothing=label_smoothing,
                     axis=axis)._values(y_true, y_pred)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence
bce = BCE = binary_crossentropy


# ----------------------------------------------------------------------------- lookup

_CLASSES = {cls.__name__: cls for cls in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, Huber, LogCosh, Hinge, SquaredHinge, Poisson, KLDivergence,
    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    CategoricalHinge, CosineSimilarity, Tversky, Dice, BinaryFocalCrossentropy,
    CategoricalFocalCrossentropy)}
_FUNCTION_CLASSES = {
    "mean_squared_error": MeanSquaredError, "mean_absolute_error": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError, "huber": Huber,
    "log_cosh": LogCosh, "hinge": Hinge, "squared_hinge": SquaredHinge, "poisson": Poisson,
    "kl_divergence": KLDivergence, "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_hinge": CategoricalHinge, "cosine_similarity": CosineSimilarity,
    "tversky": Tversky, "dice": Dice, "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": CategoricalFocalCrossentropy,
}
_ALIASES = {"mse": "mean_squared_error", "MSE": "mean_squared_error",
            "mae": "mean_absolute_error", "MAE": "mean_absolute_error",
            "mape": "mean_absolute_percentage_error", "MAPE": "mean_absolute_percentage_error",
            "msle": "mean_squared_logarithmic_error", "MSLE": "mean_squared_logarithmic_error",
            "kld": "kl_divergence", "KLD": "kl_divergence",
            "bce": "binary_crossentropy", "BCE": "binary_crossentropy"}
_LOOKUP = dict(_CLASSES)
_LOOKUP.update(_FUNCTION_CLASSES)
_LOOKUP.update({alias: _FUNCTION_CLASSES[name] for alias, name in _ALIASES.items()})


class LossFunctionWrapper(Loss):
    """``keras.losses.LossFunctionWrapper``: a function ``fn(y_true, y_pred, **kwargs)`` returning
    the per-sample losses (written with ``fastdl.ops``) as a Loss; trained through a
    GradientTape."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"LossFunctionWrapper: fn must be callable, received {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", None) or _snake_case(
            type(fn).__name__), reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        raise NotImplementedError(f"Loss {self.name!r} wraps a Python function, which fastdl "
                                  "model files never contain")


def _valid_names():
    return ", ".join(sorted(_LOOKUP))


def get(identifier):
    """Resolve a loss identifier to a :class:`Loss` instance.

    Accepts a Keras name (snake_case function name, alias such as ``"mse"``/``"bce"``, or class
    name; case-sensitive as in Keras), one of this module's functions (``mean_squared_error``
    gives ``MeanSquaredError()``), a ``Loss`` instance (returned as is), a ``Loss`` subclass
    (instantiated) or a Keras config dict (``{"class_name": ..., "config": {...}}``).
    Unknown names raise ``ValueError`` listing the valid ones; any other function
    ``fn(y_true, y_pred)`` (per-sample losses written with ``fastdl.ops``) becomes a
    :class:`LossFunctionWrapper`, differentiated by a GradientTape.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _LOOKUP.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown loss {identifier!r}. Valid names: {_valid_names()}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    name = getattr(identifier, "__name__", None)
    if name in _FUNCTION_CLASSES and globals()[name] is identifier:
        return _FUNCTION_CLASSES[name]()
    if callable(identifier):   # a custom loss fn(y_true, y_pred) written with fastdl.ops
        return LossFunctionWrapper(identifier)
    raise ValueError(f"Could not interpret loss identifier {identifier!r}. "
                     f"Valid names: {_valid_names()}")


def serialize(loss):
    """Keras's serialized form: ``{"module", "class_name", "config", "registered_name"}``."""
    loss = get(loss)
    return {"module": "keras.losses", "class_name": type(loss).__name__,
            "config": loss.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """Inverse of :func:`serialize`; also accepts ``{"class_name": "function", "config": name}``."""
    if isinstance(config, str):
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret loss config {config!r}")
    class_name = config["class_name"]
    inner = config.get("config")
    if class_name == "function" and isinstance(inner, str):
        return get(inner)
    cls = (custom_objects or {}).get(class_name) or _CLASSES.get(class_name)
    if cls is None:
        raise ValueError(f"Unknown loss class {class_name!r}. Valid names: {_valid_names()}")
    if inner is None:
        inner = {}
    if not isinstance(inner, dict):
        raise ValueError(f"Loss config for {class_name!r} must be a dict, received {inner!r}")
    return cls.from_config(dict(inner))


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
