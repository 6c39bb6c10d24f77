"""Stateful metrics with the Keras 3 names, formulas and accumulation rules.

A metric accumulates over batches with ``update_state(y_true, y_pred, sample_weight=None)``,
reports with ``result()`` (a Python float; a NumPy array for Precision/Recall and the
confusion counts TruePositives/FalsePositives/TrueNegatives/FalseNegatives given several
thresholds, for FBetaScore/F1Score with ``average=None`` and R2Score with
``class_aggregation=None``) and starts over with ``reset_state()``. ``metric(y_true, y_pred)`` updates and
returns the result, as in Keras.

Accumulation follows Keras's ``Mean``: per-sample values (the metric function's output, averaged
over any axes past the sample weight's rank) are summed, and the count grows by the number of
samples, or by the sum of the sample weights when they are given. So a batch of 32 weighs 32/40
against a batch of 8, exactly as in Keras. Totals are kept in float64.

``get("accuracy")`` (or ``"acc"``) returns an :class:`AutoAccuracy` that picks binary, sparse
categorical or categorical accuracy from the shapes of its first batch, as Keras's ``compile``
does; every metric built from a string carries that string as its ``name`` (Keras's history keys:
``metrics=["mse"]`` logs ``"mse"``). A metric whose class has no default name (the confusion
counts, the IoU family) is named as Keras names it: ``true_positives``, then
``true_positives_1``, ... on one counter with the layers' names (``keras.utils.clear_session``
restarts it). ``keras.metrics``' per-sample functions (``mean_squared_error``,
``binary_crossentropy``, ...) are those of :mod:`fastdl.losses`.

AUC matches Keras's default: ``num_thresholds=200`` thresholds evenly spaced in [0, 1] (with the
end points moved out by 1e-7), a prediction is positive when strictly above a threshold, and the
ROC curve is integrated with the trapezoidal rule (``summation_method="interpolation"``); PR
uses Keras's interpolation formula (Davis & Goadrich). Labels weigh in as floats (``y`` positive,
``1 - y`` negative) as in Keras's evenly-spaced fast path; Precision and Recall count any non-zero
label as positive, as Keras does.

Deviation: sparse metrics (sparse categorical / top-k accuracy, and ``"accuracy"`` resolved to
sparse) raise ``ValueError`` for labels outside ``[0, num_classes)`` or not integral, like the
sparse loss, where Keras would silently count a miss (or read out of bounds for top-k).
"""
import math
import warnings

import numpy as np

from fastdl import losses as _losses
from fastdl.losses import _same_rank, _snake_case, _sparse_labels

__all__ = [
    "Metric", "Mean", "Sum", "MeanMetricWrapper", "AutoAccuracy", "Accuracy", "BinaryAccuracy",
    "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError",
    "RootMeanSquaredError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
    "LogCoshError", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy", "KLDivergence", "Poisson", "Hinge", "SquaredHinge",
    "Precision", "Recall", "AUC", "CategoricalHinge", "CosineSimilarity", "F1Score",
    "FBetaScore", "R2Score", "MeanIoU", "PrecisionAtRecall", "RecallAtPrecision",
    "SensitivityAtSpecificity", "SpecificityAtSensitivity", "TruePositives", "FalsePositives",
    "TrueNegatives", "FalseNegatives", "IoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU",
    "PearsonCorrelation", "ConcordanceCorrelation",
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "binary_focal_crossentropy",
    "categorical_focal_crossentropy", "hinge", "squared_hinge", "categorical_hinge",
    "kl_divergence", "poisson", "log_cosh", "huber", "pearson_correlation",
    "concordance_correlation",
    "get", "serialize", "deserialize",
]


def _shape_error(name, y_true, y_pred, hint=""):
    return ValueError(f"{name}: y_true shape {tuple(np.shape(y_true))} does not fit y_pred shape "
                      f"{tuple(np.shape(y_pred))}{hint}")


def _real(x, what):
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a real numeric array, received dtype {a.dtype}")
    return a


# ----------------------------------------------------------------------------- metric functions

def accuracy(y_true, y_pred):
    """1.0 where y_true == y_pred exactly (Keras's ``Accuracy``), per element."""
    yt, yp = _same_rank(_real(y_true, "y_true"), _real(y_pred, "y_pred"))
    if yt.shape != yp.shape:
        raise _shape_error("accuracy", y_true, y_pred)
    return (yt == yp).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where ``(y_pred > threshold)`` equals y_true, per element."""
    yt, yp = _same_rank(_real(y_true, "y_true"), _real(y_pred, "y_pred"))
    if yt.shape != yp.shape:
        raise _shape_error("binary_accuracy", y_true, y_pred)
    return (yt == (yp > threshold)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_true) == argmax(y_pred) over the last axis (one-hot labels)."""
    yt, yp = _real(y_true, "y_true"), _real(y_pred, "y_pred")
    if yt.shape != yp.shape or yp.ndim == 0:
        hint = (" (integer labels need sparse_categorical_accuracy)"
                if yt.ndim < yp.ndim or (yt.ndim == yp.ndim and yt.shape[-1:] == (1,)) else "")
        raise _shape_error("categorical_accuracy", y_true, y_pred, hint)
    if yp.shape[-1] == 0:
        raise ValueError(f"categorical_accuracy: y_pred has no classes, shape {yp.shape}")
    return (np.argmax(yt, axis=-1) == np.argmax(yp, axis=-1)).astype(np.float32)


def _sparse_prepare(y_true, y_pred, name):
    yt, yp = _real(y_true, "y_true"), _real(y_pred, "y_pred")
    if yp.ndim == 0:
        raise ValueError(f"{name}: y_pred must have a class axis, received a scalar")
    lab = yt
    if lab.ndim == yp.ndim and lab.shape[-1:] == (1,):
        lab = lab[..., 0]
    if lab.shape != yp.shape[:-1]:
        hint = " (one-hot labels need the categorical metric)" if yt.shape == yp.shape else ""
        raise _shape_error(name, y_true, y_pred, hint)
    if yp.shape[-1] == 0:
        raise ValueError(f"{name}: y_pred has no classes, shape {yp.shape}")
    labels, _ = _sparse_labels(lab, yp.shape[-1], None, name)
    return labels, yp


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the integer label equals argmax(y_pred) over the last axis."""
    labels, yp = _sparse_prepare(y_true, y_pred, "sparse_categorical_accuracy")
    return (labels == np.argmax(yp, axis=-1)).astype(np.float32)


def _in_top_k(labels, y_pred, k):
    """TF's in_top_k: the label's score has fewer than k scores strictly above it (ties count
    in); a non-finite label score is never in the top k."""
    c = y_pred.shape[-1]
    x = y_pred.reshape(-1, c)
    lab = labels.reshape(-1)
    target = x[np.arange(lab.shape[0]), lab]
    above = np.count_nonzero(x > target[:, None], axis=1)
    out = (above < k) & np.isfinite(target)
    return out.reshape(labels.shape).astype(np.float32)


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, received {k!r}")
    return int(k)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where argmax(y_true) is among the k highest scores of y_pred."""
    yt, yp = _real(y_true, "y_true"), _real(y_pred, "y_pred")
    if yt.shape != yp.shape or yp.ndim == 0 or yp.shape[-1] == 0:
        raise _shape_error("top_k_categorical_accuracy", y_true, y_pred)
    return _in_top_k(np.argmax(yt, axis=-1), yp, _check_k(k))


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the integer label is among the k highest scores of y_pred."""
    labels, yp = _sparse_prepare(y_true, y_pred, "sparse_top_k_categorical_accuracy")
    return _in_top_k(labels, yp, _check_k(k))


def _squared_error(y_true, y_pred):
    yt, yp = _same_rank(_real(y_true, "y_true"), _real(y_pred, "y_pred"))
    if yt.shape != yp.shape:
        raise _shape_error("root_mean_squared_error", y_true, y_pred)
    d = yp.astype(np.float64) - yt
    return d * d


# ----------------------------------------------------------------------------- base classes

class Metric:
    """Base class: ``update_state``, ``result``, ``reset_state``, ``name``, ``get_config``."""

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"metric name must be a str, received {name!r}")
        if not name:                 # Keras's auto_name: one counter with the layers' names
            from fastdl.layers.base import unique_name
            name = unique_name(_snake_case(type(self).__name__))
        self.name = name
        # fastdl accumulates in float64 and returns Python floats whatever the dtype
        if dtype is not None and not (isinstance(dtype, str) and dtype in ("float16", "bfloat16",
                                                                          "float32", "float64")):
            raise ValueError(f"A metric's dtype must be a float dtype name such as 'float32'. "
                             f"Received: dtype={dtype!r}")
        self.dtype = dtype or "float32"

    def add_weight(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                   name=None):
        """A state variable (a ``fastdl.Variable``, non-trainable) that ``reset_state``
        returns to its initial value; a custom metric updates it with ``assign``/``assign_add``
        in ``update_state``."""
        from fastdl import initializers
        from fastdl.tensor.tensor import Variable
        shape = () if shape is None else tuple(shape)
        init = initializers.get(initializer)
        dtype = np.dtype(dtype or self.dtype).name
        value = np.asarray(init(shape, dtype=dtype), dtype=dtype)
        variable = Variable(value, trainable=False, name=name or "variable", dtype=dtype)
        self.__dict__.setdefault("_state_variables", []).append((variable, value.copy()))
        return variable

    def add_variable(self, shape, initializer, dtype=None, aggregation="sum", name=None):
        """Keras 3's name for ``add_weight`` (custom metrics written for Keras 3 call this)."""
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype,
                               aggregation=aggregation, name=name)

    @property
    def variables(self):
        return [v for v, _ in self.__dict__.get("_state_variables", [])]

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        """Put every variable made by ``add_weight`` back to its initial value."""
        states = self.__dict__.get("_state_variables")
        if states is None:
            raise NotImplementedError(f"{type(self).__name__}.reset_state")
        for variable, initial in states:
            variable.assign(initial)

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _reduce_to_samplewise(values, sample_weight):
    """Keras's reduce_to_samplewise_values with mean as the reduction."""
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is not None:
        sw = _real(sample_weight, "sample_weight").astype(np.float64)
        orig = sw.shape
        values, sw = _same_rank(values, sw)
        wnd, vnd = sw.ndim, values.ndim
        if vnd > wnd:
            values = values.mean(axis=tuple(range(wnd, vnd)))
        try:
            sw = np.broadcast_to(sw, values.shape)
        except ValueError:
            raise ValueError(f"sample_weight of shape {orig} does not fit the metric values of "
                             f"shape {values.shape}") from None
        values = values * sw
        if wnd > 1:
            sw = sw.mean(axis=tuple(range(1, wnd)))
        sample_weight = sw
    if values.ndim > 1:
        values = values.mean(axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Mean(Metric):
    """The (weighted) mean of the values passed to ``update_state(values, sample_weight)``."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        values, sample_weight = _reduce_to_samplewise(values, sample_weight)
        self.total += float(np.sum(values))
        if sample_weight is not None:
            self.count += float(np.sum(sample_weight))
        elif values.ndim >= 1:
            self.count += values.shape[0]
        else:
            self.count += 1

    def result(self):
        return self.total / self.count if self.count else 0.0


class Sum(Metric):
    """The (weighted) sum of the values passed to ``update_state``."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        values, _ = _reduce_to_samplewise(values, sample_weight)
        self.total += float(np.sum(values))

    def result(self):
        return self.total


class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred, **kwargs)`` over all samples seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper needs a callable, received {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"),
                         dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        if type(self) is MeanMetricWrapper:
            config["fn"] = self._fn
        config.update(self._fn_kwargs)
        return config


class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels exactly."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches the binary labels."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
            raise TypeError(f"threshold must be a float, received {threshold!r}")
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=float(threshold))
        self.threshold = float(threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) matches argmax of the one-hot labels."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) matches the integer labels."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot label is among the top ``k`` predictions."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=_check_k(k))
        self.k = int(k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the top ``k`` predictions."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype,
                         k=_check_k(k))
        self.k = int(k)


class AutoAccuracy(Mean):
    """Keras's ``metrics=["accuracy"]``: binary, sparse categorical or categorical accuracy,
    chosen from the shapes of the first batch (or of :meth:`resolve`):

    - ``y_pred.shape[-1] == 1`` -> binary accuracy (threshold 0.5);
    - ``rank(y_true) < rank(y_pred)`` or (``y_true.shape[-1] == 1`` and ``y_pred.shape[-1] > 1``)
      -> sparse categorical accuracy;
    - otherwise categorical accuracy.

    The choice (``kind``) is kept by ``reset_state``; the name stays what it was built with.
    """

    _FUNCTIONS = {"binary_accuracy": binary_accuracy,
                  "sparse_categorical_accuracy": sparse_categorical_accuracy,
                  "categorical_accuracy": categorical_accuracy}

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.kind = None

    def resolve(self, y_true_shape, y_pred_shape):
        """Fix the accuracy kind from the label and prediction shapes; returns the kind."""
        yt, yp = tuple(y_true_shape), tuple(y_pred_shape)
        if not yt or not yp:
            raise ValueError(f"{self.name}: cannot choose an accuracy for y_true shape {yt} and "
                             f"y_pred shape {yp} (both need at least one axis)")
        if yp[-1] == 1:
            self.kind = "binary_accuracy"
        elif len(yt) < len(yp) or (yt[-1] == 1 and yp[-1] > 1):
            self.kind = "sparse_categorical_accuracy"
        else:
            self.kind = "categorical_accuracy"
        return self.kind

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.kind is None:
            self.resolve(np.shape(y_true), np.shape(y_pred))
        values = self._FUNCTIONS[self.kind](y_true, y_pred)
        super().update_state(values, sample_weight=sample_weight)


class MeanSquaredError(MeanMetricWrapper):
    """Mean of the squared errors."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(_losses.mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """Mean of the absolute errors."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(_losses.mean_absolute_error, name=name, dtype=dtype)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """Mean absolute percentage error."""

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(_losses.mean_absolute_percentage_error, name=name, dtype=dtype)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    """Mean squared logarithmic error."""

    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(_losses.mean_squared_logarithmic_error, name=name, dtype=dtype)


class LogCoshError(MeanMetricWrapper):
    """Mean of log(cosh(error))."""

    def __init__(self, name="logcosh", dtype=None):
        super().__init__(_losses.log_cosh, name=name, dtype=dtype)


class KLDivergence(MeanMetricWrapper):
    """Mean Kullback-Leibler divergence."""

    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(_losses.kl_divergence, name=name, dtype=dtype)


class Poisson(MeanMetricWrapper):
    """Mean Poisson loss."""

    def __init__(self, name="poisson", dtype=None):
        super().__init__(_losses.poisson, name=name, dtype=dtype)


class Hinge(MeanMetricWrapper):
    """Mean hinge loss."""

    def __init__(self, name="hinge", dtype=None):
        super().__init__(_losses.hinge, name=name, dtype=dtype)


class SquaredHinge(MeanMetricWrapper):
    """Mean squared hinge loss."""

    def __init__(self, name="squared_hinge", dtype=None):
        super().__init__(_losses.squared_hinge, name=name, dtype=dtype)


class CategoricalHinge(MeanMetricWrapper):
    """Mean categorical hinge loss."""

    def __init__(self, name="categorical_hinge", dtype=None):
        super().__init__(_losses.categorical_hinge, name=name, dtype=dtype)


def _cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample sum(l2_normalize(y_true) * l2_normalize(y_pred), axis): 1 for the same
    direction (the loss of the same name is its negative)."""
    return -_losses.cosine_similarity(y_true, y_pred, axis=axis)


class CosineSimilarity(MeanMetricWrapper):
    """Mean cosine similarity between labels and predictions along ``axis``."""

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(_cosine_similarity, name=name, dtype=dtype, axis=axis)
        self.axis = axis


def _correlation_inputs(y_true, y_pred, axis, name):
    yp = _losses._as_pred(np.asarray(y_pred))
    yt = _real(y_true, "y_true").astype(yp.dtype)
    yt, yp = _same_rank(yt, yp)
    if yt.shape != yp.shape:
        raise _shape_error(name, y_true, y_pred)
    return yt, yp, _losses._reduce_axes(axis, yp.ndim, name)


def pearson_correlation(y_true, y_pred, axis=-1):
    """Per-sample Pearson correlation coefficient of ``y_true`` and ``y_pred`` along ``axis``
    (an int or a tuple): the mean product of the standardised values (population std)."""
    yt, yp, axes = _correlation_inputs(y_true, y_pred, axis, "pearson_correlation")
    zt = yt - yt.mean(axis=axes, keepdims=True)
    zp = yp - yp.mean(axis=axes, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):   # a constant slice gives NaN, as in Keras
        zt = zt / zt.std(axis=axes, keepdims=True)
        zp = zp / zp.std(axis=axes, keepdims=True)
    return (zt * zp).mean(axis=axes)


def concordance_correlation(y_true, y_pred, axis=-1):
    """Per-sample concordance correlation coefficient along ``axis``, Keras's formula:
    ``mean(2 (y_true - mean(y_pred)) (y_pred - mean(y_pred)) / (var(y_true) + var(y_pred) +
    (mean(y_true) - mean(y_pred))^2 + eps))``. Keras centres ``y_true`` on the mean of
    ``y_pred`` in the covariance term; fastdl keeps that so the values agree."""
    yt, yp, axes = _correlation_inputs(y_true, y_pred, axis, "concordance_correlation")
    mt, mp = yt.mean(axis=axes, keepdims=True), yp.mean(axis=axes, keepdims=True)
    norm = yt.var(axis=axes, keepdims=True) + yp.var(axis=axes, keepdims=True) + (mt - mp) ** 2
    covar = (yt - mp) * (yp - mp)
    return (2 * covar / (norm + yp.dtype.type(_losses.EPSILON))).mean(axis=axes)


class PearsonCorrelation(MeanMetricWrapper):
    """Mean Pearson correlation coefficient along ``axis`` (see :func:`pearson_correlation`)."""

    def __init__(self, name="pearson_correlation", dtype=None, axis=-1):
        _losses._reduce_axes(axis, None, name)
        super().__init__(pearson_correlation, name=name, dtype=dtype, axis=axis)
        self.axis = axis


class ConcordanceCorrelation(MeanMetricWrapper):
    """Mean concordance correlation coefficient along ``axis`` (see
    :func:`concordance_correlation`)."""

    def __init__(self, name="concordance_correlation", dtype=None, axis=-1):
        _losses._reduce_axes(axis, None, name)
        super().__init__(concordance_correlation, name=name, dtype=dtype, axis=axis)
        self.axis = axis


class _Huber(MeanMetricWrapper):
    """Mean Huber loss (fastdl extension: Keras has no Huber metric class)."""

    def __init__(self, name="huber", dtype=None, delta=1.0):
        super().__init__(_losses.huber, name=name, dtype=dtype, delta=float(delta))


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary cross-entropy."""

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0.0):
        super().__init__(_losses.binary_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical cross-entropy."""

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0.0, axis=-1):
        super().__init__(_losses.categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean sparse categorical cross-entropy."""

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False,
                 axis=-1):
        super().__init__(_losses.sparse_categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, axis=axis)
        self.from_logits = from_logits
        self.axis = axis


class RootMeanSquaredError(Mean):
    """sqrt of the mean squared error."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(_squared_error(y_true, y_pred), sample_weight=sample_weight)

    def result(self):
        return math.sqrt(super().result())


# ----------------------------------------------------------------------------- confusion metrics

_NEG_INF = -1e10                    # Keras's metrics_utils.NEG_INF


def _confusion_inputs(y_true, y_pred, sample_weight, name):
    """Aligned float64 y_true, y_pred and broadcast weights (or None), as Keras aligns them."""
    yt = _real(y_true, "y_true")
    yp = _real(y_pred, "y_pred").astype(np.float64, copy=False)
    yp, yt = _same_rank(yp, yt)
    if yt.shape != yp.shape:
        raise _shape_error(name, y_true, y_pred)
    w = None
    if sample_weight is not None:
        w = _real(sample_weight, "sample_weight").astype(np.float64)
        orig = w.shape
        _, w = _same_rank(yp, w)
        if 0 < w.ndim < yp.ndim and w.shape == yp.shape[:w.ndim]:
            w = w.reshape(w.shape + (1,) * (yp.ndim - w.ndim))
        try:
            w = np.broadcast_to(w, yp.shape)
        except ValueError:
            raise ValueError(f"{name}: sample_weight of shape {orig} does not fit y_pred shape "
                             f"{yp.shape}") from None
    return yt, yp, w


def _threshold_counts(pred, pos_w, neg_w, thresholds):
    """tp, fp, tn, fn at each sorted threshold, a prediction being positive when > threshold.

    ``pred``, ``pos_w``, ``neg_w`` are 1-D; one pass: bin each prediction by the number of
    thresholds it exceeds, then a reversed cumulative sum.
    """
    t = len(thresholds)
    k = np.searchsorted(thresholds, pred, side="left")      # thresholds strictly below pred
    nan = np.isnan(pred)
    if nan.any():
        k[nan] = 0                                             # NaN > t is False
    hp = np.bincount(k, weights=pos_w, minlength=t + 1)
    hn = np.bincount(k, weights=neg_w, minlength=t + 1)
    tp = np.cumsum(hp[::-1])[::-1][1:]
    fp = np.cumsum(hn[::-1])[::-1][1:]
    return tp, fp, hn.sum() - fp, hp.sum() - tp


def _label_counts(yt, yp, w, sorted_thresholds, order):
    """tp, fp, tn, fn per threshold (in the order ``order`` sorted them), any non-zero label
    counting as positive, as Keras casts labels to bool."""
    pos = (yt != 0).ravel().astype(np.float64)
    neg = 1.0 - pos
    if w is not None:
        wf = w.ravel()
        pos *= wf
        neg *= wf
    counts = _threshold_counts(yp.ravel(), pos, neg, sorted_thresholds)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return tuple(c[inv] for c in counts)


def _parse_thresholds(thresholds, default, name):
    if thresholds is None:
        return [default], False
    single = isinstance(thresholds, (int, float, np.number)) and not isinstance(thresholds, bool)
    values = [thresholds] if single else list(thresholds)
    if not values:
        raise ValueError(f"{name}: thresholds must not be empty")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not 0 <= v <= 1:
            raise ValueError(f"{name}: threshold values must be in [0, 1], received {thresholds!r}")
        out.append(float(v))
    return out, True


def _filter_top_k(x, k):
    """Keep the k largest values along the last axis, set the others to NEG_INF."""
    c = x.shape[-1]
    if k >= c:
        return x
    idx = np.argpartition(-x, k - 1, axis=-1)[..., :k]
    out = np.full_like(x, _NEG_INF)
    np.put_along_axis(out, idx, np.take_along_axis(x, idx, axis=-1), axis=-1)
    return out


class _PrecisionRecall(Metric):
    _kind = None

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if top_k is not None:
            top_k = _check_k(top_k)
        if class_id is not None and (isinstance(class_id, bool)
                                     or not isinstance(class_id, (int, np.integer))
                                     or class_id < 0):
            raise ValueError(f"class_id must be a non-negative int, received {class_id!r}")
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = None if class_id is None else int(class_id)
        default = 0.5 if top_k is None else _NEG_INF
        self.thresholds, _ = _parse_thresholds(thresholds, default, self.name)
        self._order = np.argsort(self.thresholds, kind="stable")
        self._sorted = np.asarray(self.thresholds)[self._order]
        self.reset_state()

    def reset_state(self):
        n = len(self.thresholds)
        self.true_positives = np.zeros(n)
        self.false_positives = np.zeros(n)
        self.false_negatives = np.zeros(n)

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp, w = _confusion_inputs(y_true, y_pred, sample_weight, self.name)
        if self.top_k is not None:
            yp = _filter_top_k(yp, self.top_k)
        if self.class_id is not None:
            if yp.ndim == 0 or self.class_id >= yp.shape[-1]:
                raise ValueError(f"{self.name}: class_id {self.class_id} is out of range for "
                                 f"y_pred shape {yp.shape}")
            yt, yp = yt[..., self.class_id], yp[..., self.class_id]
            if w is not None:
                w = w[..., self.class_id]
        tp, fp, _, fn = _label_counts(yt, yp, w, self._sorted, self._order)
        self.true_positives += tp
        self.false_positives += fp
        self.false_negatives += fn

    def _ratio(self, num, other):
        den = num + other
        res = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
        return float(res[0]) if len(self.thresholds) == 1 else res

    def get_config(self):
        config = super().get_config()
        config.update(thresholds=self.init_thresholds, top_k=self.top_k, class_id=self.class_id)
        return config


class Precision(_PrecisionRecall):
    """tp / (tp + fp) with predictions above ``thresholds`` (default 0.5) counted positive."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision",
                 dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._ratio(self.true_positives, self.false_positives)


class Recall(_PrecisionRecall):
    """tp / (tp + fn) with predictions above ``thresholds`` (default 0.5) counted positive."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._ratio(self.true_positives, self.false_negatives)


class _ConfusionMatrixConditionCount(Metric):
    """The (weighted) count of one confusion-matrix cell at each of ``thresholds`` (default
    0.5): a prediction above a threshold is positive, any non-zero label is positive. The
    result is a float for one threshold, else an array with one count per threshold."""
    _cell = None                     # index into (tp, fp, tn, fn)

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds, _ = _parse_thresholds(thresholds, 0.5, self.name)
        self._order = np.argsort(self.thresholds, kind="stable")
        self._sorted = np.asarray(self.thresholds)[self._order]
        self.reset_state()

    def reset_state(self):
        self.accumulator = np.zeros(len(self.thresholds))

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp, w = _confusion_inputs(y_true, y_pred, sample_weight, self.name)
        self.accumulator += _label_counts(yt, yp, w, self._sorted, self._order)[self._cell]

    def result(self):
        return float(self.accumulator[0]) if len(self.thresholds) == 1 else self.accumulator.copy()

    def get_config(self):
        config = super().get_config()
        config["thresholds"] = self.init_thresholds
        return config


class TruePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of positive labels predicted positive."""
    _cell = 0


class FalsePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of negative labels predicted positive."""
    _cell = 1


class TrueNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of negative labels predicted negative."""
    _cell = 2


class FalseNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of positive labels predicted negative."""
    _cell = 3


class AUC(Metric):
    """Area under the ROC (or PR) curve from counts at ``num_thresholds`` thresholds (Keras)."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name="auc", dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name=name, dtype=dtype)
        curve_u = str(curve).upper()
        if curve_u not in ("ROC", "PR"):
            raise ValueError(f"Invalid AUC curve {curve!r}; expected 'ROC' or 'PR'")
        method = str(summation_method).lower()
        if method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"Invalid AUC summation_method {summation_method!r}; expected "
                             "'interpolation', 'minoring' or 'majoring'")
        self.curve = curve_u
        self.summation_method = method
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner, _ = _parse_thresholds(thresholds, None, name)
            inner = sorted(inner)
            self.num_thresholds = len(inner) + 2
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds,
                                                                   (int, np.integer)) \
                    or num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds!r}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (self.num_thresholds - 1)
                     for i in range(self.num_thresholds - 2)]
        eps = 1e-7
        self._thresholds = np.array([0.0 - eps] + inner + [1.0 + eps])
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        if label_weights is not None:
            label_weights = np.asarray(label_weights, dtype=np.float64)
            if np.any(label_weights < 0):
                raise ValueError("All values of `label_weights` must be non-negative.")
        self.label_weights = label_weights
        self.from_logits = bool(from_logits)
        self.reset_state()

    @property
    def thresholds(self):
        return self._thresholds.tolist()

    def reset_state(self):
        shape = (self.num_thresholds,)
        if self.multi_label and self.num_labels:
            shape = (self.num_thresholds, int(self.num_labels))
        self.true_positives = np.zeros(shape)
        self.false_positives = np.zeros(shape)
        self.true_negatives = np.zeros(shape)
        self.false_negatives = np.zeros(shape)

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp, w = _confusion_inputs(y_true, y_pred, sample_weight, self.name)
        if self.from_logits:
            from fastdl.activations import _sigmoid
            yp = _sigmoid(yp)
        yt = yt.astype(np.float64, copy=False)
        th = self._thresholds
        if self.multi_label:
            if yp.ndim != 2:
                raise ValueError(f"{self.name}: multi_label AUC needs 2-D y_pred (samples, labels),"
                                 f" received shape {yp.shape}")
            n_labels = yp.shape[1]
            if self.true_positives.ndim == 1:
                self.num_labels = n_labels
                self.reset_state()
            elif self.true_positives.shape[1] != n_labels:
                raise ValueError(f"{self.name}: expected {self.true_positives.shape[1]} labels, "
                                 f"received y_pred shape {yp.shape}")
            ww = np.ones_like(yp) if w is None else w
            for j in range(n_labels):      # a handful of labels: one pass each
                tp, fp, tn, fn = _threshold_counts(yp[:, j], yt[:, j] * ww[:, j],
                                                   (1.0 - yt[:, j]) * ww[:, j], th)
                self.true_positives[:, j] += tp
                self.false_positives[:, j] += fp
                self.true_negatives[:, j] += tn
                self.false_negatives[:, j] += fn
            return
        ww = np.ones(yp.shape) if w is None else np.array(w)
        if self.label_weights is not None:
            ww = ww * self.label_weights
        pos = (yt * ww).ravel()
        neg = ((1.0 - yt) * ww).ravel()
        tp, fp, tn, fn = _threshold_counts(yp.ravel(), pos, neg, th)
        self.true_positives += tp
        self.false_positives += fp
        self.true_negatives += tn
        self.false_negatives += fn

    @staticmethod
    def _div(a, b):
        return np.divide(a, b, out=np.zeros(np.broadcast_shapes(np.shape(a), np.shape(b))),
                         where=b != 0)

    def _interpolate_pr_auc(self):
        n = self.num_thresholds
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:n - 1] - tp[1:]
        p = tp + fp
        dp = p[:n - 1] - p[1:]
        prec_slope = self._div(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        both = (p[:n - 1] > 0) & (p[1:] > 0)
        safe_p_ratio = np.where(both, self._div(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(safe_p_ratio)
        inc = self._div(prec_slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))
        return self._combine(inc)

    def _combine(self, terms):
        if self.multi_label:
            by_label = terms.sum(axis=0)
            if self.label_weights is None:
                return float(np.mean(by_label))
            return float(self._div(np.sum(by_label * self.label_weights),
                                   np.sum(self.label_weights)))
        return float(np.sum(terms))

    def result(self):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        tp, fp, tn, fn = (self.true_positives, self.false_positives, self.true_negatives,
                          self.false_negatives)
        recall = self._div(tp, tp + fn)
        if self.curve == "ROC":
            x, y = self._div(fp, fp + tn), recall
        else:
            x, y = recall, self._div(tp, tp + fp)
        n = self.num_thresholds
        if self.summation_method == "interpolation":
            heights = (y[:n - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:n - 1], y[1:])
        else:
            heights = np.maximum(y[:n - 1], y[1:])
        return self._combine((x[:n - 1] - x[1:]) * heights)

    def get_config(self):
        lw = self.label_weights
        config = {
            "num_thresholds": self.num_thresholds, "curve": self.curve,
            "summation_method": self.summation_method, "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if lw is None else lw.tolist(),
            "from_logits": self.from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        config.update(super().get_config())
        return config


class SensitivitySpecificityBase(Metric):
    """Counts at ``num_thresholds`` evenly spaced thresholds in [0, 1] (one threshold, 0.5,
    when ``num_thresholds == 1``), a prediction being positive when above the threshold; the
    subclasses report the best of one rate among the thresholds where another reaches
    ``value``."""

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds,
                                                               (int, np.integer)) \
                or num_thresholds <= 0:
            raise ValueError("Argument `num_thresholds` must be an integer > 0. Received: "
                             f"num_thresholds={num_thresholds!r}")
        if class_id is not None and (isinstance(class_id, bool)
                                     or not isinstance(class_id, (int, np.integer))
                                     or class_id < 0):
            raise ValueError(f"class_id must be a non-negative int, received {class_id!r}")
        self.value = value
        self.num_thresholds = int(num_thresholds)
        self.class_id = None if class_id is None else int(class_id)
        if num_thresholds == 1:
            self.thresholds = [0.5]
        else:
            self.thresholds = [0.0] + [(i + 1) / (num_thresholds - 1)
                                       for i in range(num_thresholds - 2)] + [1.0]
        self._sorted = np.asarray(self.thresholds)
        self.reset_state()

    @staticmethod
    def _check_rate(value, what):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                or not 0.0 <= value <= 1.0:
            raise ValueError(f"Argument `{what}` must be in the range [0, 1]. Received: "
                             f"{what}={value!r}")
        return value

    def reset_state(self):
        n = len(self.thresholds)
        self.true_positives = np.zeros(n)
        self.false_positives = np.zeros(n)
        self.true_negatives = np.zeros(n)
        self.false_negatives = np.zeros(n)

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp, w = _confusion_inputs(y_true, y_pred, sample_weight, self.name)
        if self.class_id is not None:
            if yp.ndim == 0 or self.class_id >= yp.shape[-1]:
                raise ValueError(f"{self.name}: class_id {self.class_id} is out of range for "
                                 f"y_pred shape {yp.shape}")
            yt, yp = yt[..., self.class_id], yp[..., self.class_id]
            if w is not None:
                w = w[..., self.class_id]
        pos = (yt != 0).ravel().astype(np.float64)
        neg = 1.0 - pos
        if w is not None:
            pos *= w.ravel()
            neg *= w.ravel()
        tp, fp, tn, fn = _threshold_counts(yp.ravel(), pos, neg, self._sorted)
        self.true_positives += tp
        self.false_positives += fp
        self.true_negatives += tn
        self.false_negatives += fn

    @staticmethod
    def _rate(a, b):
        return np.divide(a, a + b, out=np.zeros_like(a), where=(a + b) != 0)

    def _best(self, constrained, dependent):
        """The largest ``dependent`` where ``constrained >= value`` (0 where none)."""
        feasible = constrained >= self.value
        return float(np.max(np.where(feasible, dependent, 0.0), initial=0.0))

    def _sensitivity(self):
        return self._rate(self.true_positives, self.false_negatives)

    def _specificity(self):
        return self._rate(self.true_negatives, self.false_positives)

    def _precision(self):
        return self._rate(self.true_positives, self.false_positives)

    def get_config(self):
        config = super().get_config()
        config["class_id"] = self.class_id
        return config


class SensitivityAtSpecificity(SensitivitySpecificityBase):
    """The best sensitivity (recall) among thresholds whose specificity is >= ``specificity``."""

    def __init__(self, specificity, num_thresholds=200, class_id=None,
                 name="sensitivity_at_specificity", dtype=None):
        self.specificity = self._check_rate(specificity, "specificity")
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best(self._specificity(), self._sensitivity())

    def get_config(self):
        config = super().get_config()
        config.update(num_thresholds=self.num_thresholds, specificity=self.specificity)
        return config


class SpecificityAtSensitivity(SensitivitySpecificityBase):
    """The best specificity among thresholds whose sensitivity is >= ``sensitivity``."""

    def __init__(self, sensitivity, num_thresholds=200, class_id=None,
                 name="specificity_at_sensitivity", dtype=None):
        self.sensitivity = self._check_rate(sensitivity, "sensitivity")
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best(self._sensitivity(), self._specificity())

    def get_config(self):
        config = super().get_config()
        config.update(num_thresholds=self.num_thresholds, sensitivity=self.sensitivity)
        return config


class PrecisionAtRecall(SensitivitySpecificityBase):
    """The best precision among thresholds whose recall is >= ``recall``."""

    def __init__(self, recall, num_thresholds=200, class_id=None, name="precision_at_recall",
                 dtype=None):
        self.recall = self._check_rate(recall, "recall")
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best(self._sensitivity(), self._precision())

    def get_config(self):
        config = super().get_config()
        config.update(num_thresholds=self.num_thresholds, recall=self.recall)
        return config


class RecallAtPrecision(SensitivitySpecificityBase):
    """The best recall among thresholds whose precision is >= ``precision``."""

    def __init__(self, precision, num_thresholds=200, class_id=None, name="recall_at_precision",
                 dtype=None):
        self.precision = self._check_rate(precision, "precision")
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best(self._precision(), self._sensitivity())

    def get_config(self):
        config = super().get_config()
        config.update(num_thresholds=self.num_thresholds, precision=self.precision)
        return config


# ----------------------------------------------------------------------------- F-scores, R2, IoU

def _two_d(metric, y_true, y_pred):
    yt = _real(y_true, "y_true").astype(np.float64)
    yp = _real(y_pred, "y_pred").astype(np.float64)
    if yt.ndim != 2 or yp.ndim != 2 or yt.shape != yp.shape:
        raise ValueError(f"{type(metric).__name__} expects 2D inputs with shape (batch_size, "
                         f"output_dim). Received input shapes: y_pred.shape={yp.shape} and "
                         f"y_true.shape={yt.shape}.")
    return yt, yp


def _column_weights(metric, sample_weight, n):
    w = _real(sample_weight, "sample_weight").astype(np.float64).reshape(-1)
    if w.shape != (n,):
        raise ValueError(f"{metric.name}: sample_weight must hold one weight per sample ({n}), "
                         f"received shape {np.shape(sample_weight)}")
    return w[:, None]


class FBetaScore(Metric):
    """F-beta score: ``(1 + beta**2) * P * R / (beta**2 * P + R)`` per class from counts
    accumulated over the batches. A prediction is positive above ``threshold``; with
    ``threshold=None``, the largest value of each row is. ``average``: None (per class),
    "micro" (counts pooled over the classes), "macro" (the mean over the classes) or
    "weighted" (weighted by each class's support)."""

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, "
                             f"'micro', 'macro', 'weighted'}}. Received: average={average!r}")
        if not isinstance(beta, float) or not beta > 0.0:
            raise ValueError("Invalid `beta` argument value. It should be a Python float > 0. "
                             f"Received: beta={beta!r}")
        if threshold is not None and (not isinstance(threshold, float)
                                      or not 0.0 < threshold <= 1.0):
            raise ValueError("Invalid `threshold` argument value. It should be a Python float "
                             f"with 0 < threshold <= 1. Received: threshold={threshold!r}")
        self.average = average
        self.beta = beta
        self.threshold = threshold
        self.reset_state()

    def reset_state(self):
        self.true_positives = self.false_positives = self.false_negatives = None
        self.intermediate_weights = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _two_d(self, y_true, y_pred)
        if self.true_positives is not None and self.true_positives.shape[-1:] \
                not in ((), (yp.shape[1],)):
            raise ValueError(f"{self.name}: expected {self.true_positives.shape[-1]} classes, "
                             f"received y_pred shape {yp.shape}")
        if self.threshold is None:
            pred = (yp >= yp.max(axis=-1, keepdims=True)) & (np.abs(yp) > 1e-9)
        else:
            pred = yp > self.threshold
        pred = pred.astype(np.float64)
        w = None if sample_weight is None else _column_weights(self, sample_weight, len(yp))
        axis = None if self.average == "micro" else 0

        def total(v):
            return np.sum(v if w is None else v * w, axis=axis)

        counts = (total(pred * yt), total(pred * (1 - yt)), total((1 - pred) * yt), total(yt))
        if self.true_positives is None:
            (self.true_positives, self.false_positives, self.false_negatives,
             self.intermediate_weights) = counts
        else:
            self.true_positives = self.true_positives + counts[0]
            self.false_positives = self.false_positives + counts[1]
            self.false_negatives = self.false_negatives + counts[2]
            self.intermediate_weights = self.intermediate_weights + counts[3]

    def result(self):
        if self.true_positives is None:
            return 0.0
        eps = _losses.EPSILON
        tp = self.true_positives
        precision = tp / (tp + self.false_positives + eps)
        recall = tp / (tp + self.false_negatives + eps)
        b2 = self.beta ** 2
        score = precision * recall / (b2 * precision + recall + eps) * (1 + b2)
        if self.average == "weighted":
            weights = self.intermediate_weights / (np.sum(self.intermediate_weights) + eps)
            return float(np.sum(score * weights))
        if self.average is not None:
            return float(np.mean(score))
        return score

    def get_config(self):
        config = super().get_config()
        config.update(average=self.average, beta=self.beta, threshold=self.threshold)
        return config


class F1Score(FBetaScore):
    """The F-beta score with beta = 1: the harmonic mean of precision and recall."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


class R2Score(Metric):
    """The coefficient of determination ``1 - SS_res / SS_tot`` per output column, from weighted
    sums accumulated over the batches. ``class_aggregation``: "uniform_average" (the mean over
    the columns), "variance_weighted_average" or None (per column); ``num_regressors > 0``
    gives the adjusted R2 ``1 - (1 - R2) (n - 1) / (n - p - 1)``, n the number of values seen.
    """

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        valid = (None, "uniform_average", "variance_weighted_average")
        if class_aggregation not in valid:
            raise ValueError("Invalid value for argument `class_aggregation`. Expected one of "
                             f"{valid}. Received: class_aggregation={class_aggregation!r}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors,
                                                               (int, np.integer)) \
                or num_regressors < 0:
            raise ValueError("Invalid value for argument `num_regressors`. Expected an int >= 0."
                             f" Received: num_regressors={num_regressors!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = int(num_regressors)
        self.reset_state()

    def reset_state(self):
        self.num_samples = 0
        self.sum = self.squared_sum = self.total_mse = self.count = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt = _real(y_true, "y_true").astype(np.float64)
        yp = _real(y_pred, "y_pred").astype(np.float64)
        yt, yp = _same_rank(yt, yp)
        yt, yp = _two_d(self, yt, yp)
        if self.sum is not None and self.sum.shape != (yp.shape[1],):
            raise ValueError(f"{self.name}: expected {self.sum.shape[0]} output columns, "
                             f"received y_pred shape {yp.shape}")
        w = np.ones_like(yt) if sample_weight is None else np.broadcast_to(
            _column_weights(self, sample_weight, len(yt)), yt.shape)
        parts = (np.sum(yt * w, axis=0), np.sum(yt * yt * w, axis=0),
                 np.sum((yt - yp) ** 2 * w, axis=0), np.sum(w, axis=0))
        if self.sum is None:
            self.sum, self.squared_sum, self.total_mse, self.count = parts
        else:
            self.sum = self.sum + parts[0]
            self.squared_sum = self.squared_sum + parts[1]
            self.total_mse = self.total_mse + parts[2]
            self.count = self.count + parts[3]
        self.num_samples += yt.size

    def result(self):
        if self.sum is None:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.sum / self.count
            total = self.squared_sum - self.sum * mean
            raw = 1.0 - self.total_mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = float(np.mean(raw))
        elif self.class_aggregation == "variance_weighted_average":
            score = float(np.sum(total * raw) / np.sum(total))
        else:
            score = raw
        p, n = self.num_regressors, self.num_samples
        if p:
            if p >= n - 1:
                warnings.warn("The adjusted R2 score needs more data points than independent "
                              "predictors plus one: falling back to the standard R2 score.",
                              stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        return score

    def get_config(self):
        config = super().get_config()
        config.update(class_aggregation=self.class_aggregation,
                      num_regressors=self.num_regressors)
        return config


class IoU(Metric):
    """Intersection-over-union of the classes ``target_class_ids`` of a semantic segmentation,
    from the confusion matrix accumulated over the batches: per class ``TP / (TP + FP + FN)``,
    averaged over the target classes that occur. Labels (and predictions) are class ids, or
    one-hot / probabilities with ``sparse_y_true=False`` / ``sparse_y_pred=False`` (the argmax
    along ``axis``). Entries outside ``[0, num_classes)`` or equal to ``ignore_class`` are
    skipped. The confusion matrix has ``dtype`` (Keras's default int32: labels and sample
    weights are truncated to integers, as in Keras)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        if dtype is not None and not isinstance(dtype, str):
            raise ValueError(f"A metric's dtype must be a dtype name. Received: dtype={dtype!r}")
        int_dtype = dtype is None or dtype.startswith(("int", "uint"))
        super().__init__(name=name, dtype=None if int_dtype else dtype)
        if int_dtype:
            try:
                np.dtype(dtype or "int32")
            except TypeError:
                raise ValueError(f"Unknown dtype {dtype!r}") from None
            self.dtype = dtype or "int32"
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
                or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, received {num_classes!r}")
        for arg, value in (("sparse_y_true", sparse_y_true), ("sparse_y_pred", sparse_y_pred)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{arg} must be a bool, received {value!r}")
        if ignore_class is not None and (isinstance(ignore_class, bool)
                                         or not isinstance(ignore_class, (int, np.integer))):
            raise ValueError(f"ignore_class must be None or an int, received {ignore_class!r}")
        try:
            ids = [int(i) for i in target_class_ids
                   if isinstance(i, (int, np.integer)) and not isinstance(i, bool)]
        except TypeError:
            ids = None
        if not ids or len(ids) != len(target_class_ids):
            raise ValueError("target_class_ids must be a non-empty list of class ids, received "
                             f"{target_class_ids!r}")
        if max(ids) >= num_classes or min(ids) < 0:
            bad = max(ids) if max(ids) >= num_classes else min(ids)
            raise ValueError(f"Target class id {bad} is out of range, which is "
                             f"[0, {num_classes}).")
        self.num_classes = int(num_classes)
        self.target_class_ids = ids
        self.ignore_class = ignore_class
        self.sparse_y_true = bool(sparse_y_true)
        self.sparse_y_pred = bool(sparse_y_pred)
        self.axis = axis
        self._int = int_dtype
        self.reset_state()

    def reset_state(self):
        self.total_cm = np.zeros((self.num_classes, self.num_classes))

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _real(y_true, "y_true"), _real(y_pred, "y_pred")
        if not self.sparse_y_true:
            yt = np.argmax(yt, axis=self.axis)
        if not self.sparse_y_pred:
            yp = np.argmax(yp, axis=self.axis)
        yt, yp = yt.reshape(-1), yp.reshape(-1)
        if yt.shape != yp.shape:
            raise _shape_error(self.name, y_true, y_pred)
        if self._int:                        # Keras casts the labels to the metric's dtype
            yt, yp = np.trunc(yt), np.trunc(yp)
        if sample_weight is None:
            w = np.ones(yt.shape)
        else:
            w = _real(sample_weight, "sample_weight").astype(np.float64).reshape(-1)
            if self._int:
                w = np.trunc(w)
            try:
                w = np.broadcast_to(w, yt.shape)
            except ValueError:
                raise ValueError(f"{self.name}: sample_weight of shape "
                                 f"{np.shape(sample_weight)} does not fit {yt.size} "
                                 "labels") from None
        n = self.num_classes
        keep = (yt >= 0) & (yt < n) & (yp >= 0) & (yp < n)
        if self.ignore_class is not None:
            keep &= yt != self.ignore_class
        index = yt[keep].astype(np.int64) * n + yp[keep].astype(np.int64)
        self.total_cm += np.bincount(index, weights=w[keep], minlength=n * n).reshape(n, n)

    def result(self):
        cm = self.total_cm
        tp = np.diag(cm)
        denominator = cm.sum(axis=0) + cm.sum(axis=1) - tp
        tp, denominator = tp[self.target_class_ids], denominator[self.target_class_ids]
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + _losses.EPSILON), 0.0)
        return float(np.sum(iou) / (np.sum(valid) + _losses.EPSILON))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_classes": self.num_classes,
                "target_class_ids": list(self.target_class_ids),
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class BinaryIoU(IoU):
    """IoU of classes 0 and/or 1 (``target_class_ids``) with predictions ``>= threshold``
    counted as class 1."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name,
                         dtype=dtype)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
            raise TypeError(f"threshold must be a number, received {threshold!r}")
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        # Keras compares in float32
        yp = _real(y_pred, "y_pred").astype(np.float32) >= np.float32(self.threshold)
        super().update_state(y_true, yp.astype(np.float64), sample_weight)

    def get_config(self):
        return {"target_class_ids": list(self.target_class_ids), "threshold": self.threshold,
                "name": self.name, "dtype": self.dtype}


class MeanIoU(IoU):
    """IoU averaged over all ``num_classes`` classes that occur (see :class:`IoU`)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, _class_range(num_classes), name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        config = super().get_config()
        del config["target_class_ids"]
        return config


class OneHotIoU(IoU):
    """:class:`IoU` of one-hot labels (the argmax along ``axis``)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config


class OneHotMeanIoU(MeanIoU):
    """:class:`MeanIoU` of one-hot labels (the argmax along ``axis``)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config


def _class_range(num_classes):
    # MeanIoU validates num_classes itself; a bad one must reach that check
    valid = isinstance(num_classes, (int, np.integer)) and not isinstance(num_classes, bool)
    return list(range(num_classes)) if valid and num_classes > 0 else [0]


# ----------------------------------------------------------------------------- lookup

# Keras's keras.metrics exposes the per-sample loss functions of keras.losses under their names
mean_squared_error = _losses.mean_squared_error
mean_absolute_error = _losses.mean_absolute_error
mean_absolute_percentage_error = _losses.mean_absolute_percentage_error
mean_squared_logarithmic_error = _losses.mean_squared_logarithmic_error
binary_crossentropy = _losses.binary_crossentropy
categorical_crossentropy = _losses.categorical_crossentropy
sparse_categorical_crossentropy = _losses.sparse_categorical_crossentropy
binary_focal_crossentropy = _losses.binary_focal_crossentropy
categorical_focal_crossentropy = _losses.categorical_focal_crossentropy
hinge = _losses.hinge
squared_hinge = _losses.squared_hinge
categorical_hinge = _losses.categorical_hinge
kl_divergence = _losses.kl_divergence
poisson = _losses.poisson
log_cosh = _losses.log_cosh
huber = _losses.huber

_CLASSES = {cls.__name__: cls for cls in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError,
    RootMeanSquaredError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, LogCoshError,
    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy, KLDivergence,
    Poisson, Hinge, SquaredHinge, Precision, Recall, AUC, AutoAccuracy, CategoricalHinge,
    CosineSimilarity, F1Score, FBetaScore, R2Score, MeanIoU, PrecisionAtRecall,
    RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity, TruePositives,
    FalsePositives, TrueNegatives, FalseNegatives, IoU, BinaryIoU, OneHotIoU, OneHotMeanIoU,
    PearsonCorrelation, ConcordanceCorrelation)}
_LOOKUP = dict(_CLASSES)
_LOOKUP.update({_snake_case(name): cls for name, cls in _CLASSES.items() if name != "AUC"})
_LOOKUP.update({
    "auc": AUC, "huber": _Huber,
    "mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError, "mape": MeanAbsolutePercentageError,
    "MAPE": MeanAbsolutePercentageError, "msle": MeanSquaredLogarithmicError,
    "MSLE": MeanSquaredLogarithmicError, "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
    "logcosh": LogCoshError, "log_cosh": LogCoshError,
})
for _key in ("auto_accuracy", "AutoAccuracy"):
    _LOOKUP.pop(_key, None)


def _valid_names():
    return ", ".join(sorted(set(_LOOKUP) | {"accuracy", "acc"}))


def get(identifier, y_true=None, y_pred=None):
    """Resolve a metric identifier to a :class:`Metric` (a fresh one for strings).

    - ``"accuracy"``/``"acc"`` (any case): an :class:`AutoAccuracy`; resolved at once when the
      ``y_true`` and ``y_pred`` shapes (or arrays) are given, else at its first update.
    - other strings: Keras metric names (snake_case or class names, ``"mse"``, ``"mae"``,
      ``"auc"``, ``"precision"``, ...). The metric's ``name`` is the string given, as in
      Keras's ``compile``.
    - a ``Metric`` instance (returned as is), a ``Metric`` subclass (instantiated), a Keras config
      dict, or a plain function ``fn(y_true, y_pred)`` (wrapped in :class:`MeanMetricWrapper`).

    ``None`` returns ``None``; unknown names raise ``ValueError`` listing the valid ones.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            metric = AutoAccuracy(name=identifier)
            if y_true is not None and y_pred is not None:
                metric.resolve(_shape_of(y_true), _shape_of(y_pred))
            return metric
        cls = _LOOKUP.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown metric {identifier!r}. Valid names: {_valid_names()}")
        metric = cls()
        metric.name = identifier
        return metric
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", None))
    raise ValueError(f"Could not interpret metric identifier {identifier!r}. "
                     f"Valid names: {_valid_names()}")


def _shape_of(x):
    if isinstance(x, tuple) and all(isinstance(d, (int, np.integer)) for d in x):
        return x
    return np.shape(x)


def serialize(metric):
    """Keras's serialized form of a metric instance."""
    if not isinstance(metric, Metric):
        raise TypeError(f"serialize expects a Metric, received {metric!r}")
    return {"module": "keras.metrics", "class_name": type(metric).__name__,
            "config": metric.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """Inverse of :func:`serialize` (also accepts a metric name)."""
    if isinstance(config, str):
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret metric config {config!r}")
    class_name = config["class_name"]
    cls = (custom_objects or {}).get(class_name) or _CLASSES.get(class_name)
    if cls is None:
        raise ValueError(f"Unknown metric class {class_name!r}. Valid names: {_valid_names()}")
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"Metric config for {class_name!r} must be a dict, received {inner!r}")
    return cls.from_config(dict(inner))


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
