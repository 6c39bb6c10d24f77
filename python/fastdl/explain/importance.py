"""Permutation feature importance (Breiman 2001; scikit-learn's ``permutation_importance``)."""
from typing import NamedTuple

import numpy as np

from fastdl.explain import _common as C

__all__ = ["permutation_importance", "PermutationImportance"]

# metrics where a larger value is better; every other metric and every loss is an error
_HIGHER_IS_BETTER = {"Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
                     "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
                     "SparseTopKCategoricalAccuracy", "AutoAccuracy", "Precision", "Recall",
                     "AUC"}


class PermutationImportance(NamedTuple):
    """``importances_mean``/``importances_std`` ``(features,)``, ``importances``
    ``(features, n_repeats)``, the unpermuted ``baseline_score`` and the ``metric`` name."""
    importances_mean: np.ndarray
    importances_std: np.ndarray
    importances: np.ndarray
    baseline_score: float
    metric: str


def _fresh_metric(metric):
    """A new instance of a fastdl Metric, so the caller's (or the model's) state is untouched."""
    try:
        return type(metric).from_config(metric.get_config())
    except Exception:  # a custom metric without a round-tripping config
        return metric


def _scorer(model, metric, greater_is_better):
    """``(score(y_true, y_pred) -> float, greater_is_better, name)``."""
    from fastdl import losses, metrics
    if metric is None:
        if not model.compiled:
            raise ValueError("permutation_importance: the model is not compiled, so pass "
                             "metric= (a callable metric(y_true, y_pred) -> float, or the name "
                             "of a fastdl metric or loss such as 'accuracy' or 'mse')")
        metric = model.compiled_metrics[0] if model.compiled_metrics else model.loss
    if isinstance(metric, str):
        found = None
        if model.compiled:
            if metric == "loss" or metric == model.loss.name:
                found = model.loss
            for m in model.compiled_metrics:
                if m.name == metric:
                    found = m
        if found is None:
            try:
                found = metrics.get(metric)
            except ValueError:
                try:
                    found = losses.get(metric)
                except ValueError:
                    raise ValueError(
                        f"permutation_importance: unknown metric {metric!r}: not a compiled "
                        f"metric or loss of the model, nor a fastdl metric or loss name (e.g. "
                        f"'accuracy', 'auc', 'mse', 'binary_crossentropy'), nor 'loss'") from None
        metric = found
    if isinstance(metric, losses.Loss):
        name = metric.name
        loss = metric
        hib = False if greater_is_better is None else greater_is_better
        return (lambda yt, yp: float(loss(yt, yp))), hib, name
    if isinstance(metric, metrics.Metric):
        name = metric.name
        m = _fresh_metric(metric)
        hib = (type(m).__name__ in _HIGHER_IS_BETTER) if greater_is_better is None \
            else greater_is_better

        def score(yt, yp):
            m.reset_state()
            m.update_state(yt, yp)
            return float(np.mean(m.result()))
        return score, hib, name
    if callable(metric):
        hib = True if greater_is_better is None else greater_is_better
        return (lambda yt, yp: float(metric(yt, yp))), hib, getattr(metric, "__name__", "metric")
    raise TypeError("permutation_importance: metric must be a callable metric(y_true, y_pred), "
                    "a fastdl Metric or Loss, or the name of one. Received: "
                    f"{type(metric).__name__}")


def permutation_importance(model, x, y, metric=None, n_repeats=5, seed=None,
                           greater_is_better=None, batch_size=None):
    """How much the score drops when one feature's values are shuffled across samples.

    Each feature (an index of the last axis of ``x``) is permuted ``n_repeats`` times; the
    importance of a repeat is ``baseline_score - permuted_score`` when larger scores are better,
    ``permuted_score - baseline_score`` for errors and losses, so a larger importance always
    means a more important feature (and around 0 an unused one).

    Args:
        model: a fastdl ``Sequential``; gradients are not needed, so any model works.
        x, y: evaluation data (a held-out set is best), ``y`` as for ``model.evaluate``.
        metric: a callable ``metric(y_true, y_pred) -> float``, a fastdl ``Metric``/``Loss``,
            the name of a compiled metric (``"accuracy"``), ``"loss"`` (the compiled loss) or
            any fastdl metric/loss name. None: the first compiled metric, else the compiled loss.
        greater_is_better: None infers it (accuracy, AUC, precision, recall: True; other metrics
            and losses: False; a plain callable: True, so pass False for an error function).
        seed: an int or numpy Generator for the permutations.

    Returns:
        :class:`PermutationImportance` (a named tuple).
    """
    what = "permutation_importance"
    C.check_model(model, what)
    n_repeats = C.check_int(n_repeats, "n_repeats")
    batch_size = C.check_batch_size(batch_size)
    if greater_is_better is not None and not isinstance(greater_is_better, (bool, np.bool_)):
        raise TypeError(f"{what}: greater_is_better must be a bool or None. "
                        f"Received: {greater_is_better!r}")
    rng = C.make_rng(seed)
    x = C.convert_x(model, x, what, float_only=False)
    y = model._convert_y(y, len(x))
    if len(x) < 2:
        raise ValueError(f"{what}: needs at least 2 samples to permute. Received x of shape "
                         f"{x.shape}")
    score, hib, name = _scorer(model, metric, greater_is_better)
    sign = 1.0 if hib else -1.0
    baseline = score(y, C.predict_raw(model, x, batch_size))
    n, n_features = len(x), x.shape[-1]
    importances = np.zeros((n_features, n_repeats))
    for f in range(n_features):
        perms = [rng.permutation(n) for _ in range(n_repeats)]
        xs = np.repeat(x[None], n_repeats, axis=0)
        for r, p in enumerate(perms):
            xs[r, ..., f] = x[p][..., f]
        preds = C.predict_raw(model, xs.reshape((-1,) + x.shape[1:]), batch_size)
        preds = preds.reshape((n_repeats, n) + preds.shape[1:])
        for r in range(n_repeats):
            importances[f, r] = sign * (baseline - score(y, preds[r]))
    return PermutationImportance(importances.mean(axis=1), importances.std(axis=1), importances,
                                 float(baseline), name)
