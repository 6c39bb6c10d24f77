"""F1Score, FBetaScore, R2Score, MeanIoU, PrecisionAtRecall, RecallAtPrecision,
SensitivityAtSpecificity, SpecificityAtSensitivity, CosineSimilarity, CategoricalHinge (and the
LogCoshError, Poisson, KLDivergence, Hinge, SquaredHinge metrics) against real Keras 3 (torch
backend): the same batches through several update_state calls, with sample weights; configs."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="keras (the oracle) is not installed")
pytest.importorskip("torch", reason="the keras oracle runs on the torch backend")
if keras.backend.backend() != "torch":
    pytest.skip("the oracle needs KERAS_BACKEND=torch", allow_module_level=True)

import fastdl  # noqa: E402
from fastdl import metrics  # noqa: E402

rng = np.random.default_rng(0)
B, C = 16, 3


def _probs():
    return rng.dirichlet(np.ones(C), B).astype(np.float32)


def _onehot():
    return np.eye(C, dtype=np.float32)[rng.integers(0, C, B)]


def _scores():                      # in (0, 1), away from the exact thresholds
    return (rng.integers(1, 199, (B, C)) / 199.0 + 1e-3).astype(np.float32)


def _binary():
    return (rng.uniform(size=(B, C)) > 0.5).astype(np.float32)


def _batches(make_true, make_pred, n=3):
    return [(make_true(), make_pred(), rng.uniform(0.2, 2.0, B).astype(np.float32))
            for _ in range(n)]


CLASSIFY = _batches(_onehot, _probs)
SCORES = _batches(_binary, _scores)
REGRESS = _batches(lambda: rng.standard_normal((B, C)).astype(np.float32),
                   lambda: rng.standard_normal((B, C)).astype(np.float32))
POSITIVE = _batches(lambda: rng.uniform(0, 3, (B, C)).astype(np.float32),
                    lambda: rng.uniform(0.1, 3, (B, C)).astype(np.float32))
SIGNED = _batches(lambda: np.sign(rng.standard_normal((B, C))).astype(np.float32),
                  lambda: rng.standard_normal((B, C)).astype(np.float32))
SEGMENT = [(rng.integers(0, C, (4, 5)), rng.integers(0, C, (4, 5)),
            rng.integers(0, 3, (4, 5)).astype(np.float32)) for _ in range(3)]

CASES = [
    ("F1Score", {}, CLASSIFY),
    ("F1Score", {"average": "macro", "threshold": 0.3}, CLASSIFY),
    ("F1Score", {"average": "micro"}, CLASSIFY),
    ("FBetaScore", {"beta": 2.0, "average": "weighted"}, CLASSIFY),
    ("FBetaScore", {"beta": 0.5, "threshold": 0.4}, SCORES),
    ("R2Score", {}, REGRESS),
    ("R2Score", {"class_aggregation": None}, REGRESS),
    ("R2Score", {"class_aggregation": "variance_weighted_average", "num_regressors": 2},
     REGRESS),
    ("MeanIoU", {"num_classes": C}, SEGMENT),
    ("MeanIoU", {"num_classes": C, "ignore_class": 0}, SEGMENT),
    ("MeanIoU", {"num_classes": C, "sparse_y_true": False, "sparse_y_pred": False,
                 "dtype": "float32"}, CLASSIFY),
    ("PrecisionAtRecall", {"recall": 0.6}, SCORES),
    ("PrecisionAtRecall", {"recall": 0.8, "num_thresholds": 50, "class_id": 1}, SCORES),
    ("RecallAtPrecision", {"precision": 0.55}, SCORES),
    ("SensitivityAtSpecificity", {"specificity": 0.5}, SCORES),
    ("SensitivityAtSpecificity", {"specificity": 0.7, "num_thresholds": 1}, SCORES),
    ("SpecificityAtSensitivity", {"sensitivity": 0.6, "num_thresholds": 20}, SCORES),
    ("CosineSimilarity", {}, REGRESS),
    ("CosineSimilarity", {"axis": 0}, REGRESS),
    ("CategoricalHinge", {}, CLASSIFY),
    ("LogCoshError", {}, REGRESS),
    ("Poisson", {}, POSITIVE),
    ("KLDivergence", {}, CLASSIFY),
    ("Hinge", {}, SIGNED),
    ("SquaredHinge", {}, SIGNED),
]
IDS = [f"{name}-{i}" for i, (name, *_) in enumerate(CASES)]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name,kwargs,batches", CASES, ids=IDS)
def test_matches_keras_over_several_batches(name, kwargs, batches, weighted):
    theirs = getattr(keras.metrics, name)(**kwargs)
    mine = getattr(metrics, name)(**kwargs)
    for yt, yp, w in batches:
        sw = w if weighted else None
        if sw is not None and kwargs.get("axis") == 0:
            sw = sw[:C]                     # one value per column: one weight per column
        theirs.update_state(yt, yp, sample_weight=sw)
        mine.update_state(yt, yp, sample_weight=sw)
        np.testing.assert_allclose(mine.result(),
                                   keras.ops.convert_to_numpy(theirs.result()),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    mine.reset_state()
    theirs.reset_state()
    yt, yp, _ = batches[0]
    mine.update_state(yt, yp)
    theirs.update_state(yt, yp)
    np.testing.assert_allclose(mine.result(), keras.ops.convert_to_numpy(theirs.result()),
                               rtol=1e-5, atol=1e-6, err_msg=f"{name} after reset_state")


@pytest.mark.parametrize("name,kwargs,batches", CASES, ids=IDS)
def test_config_matches_keras(name, kwargs, batches):
    # both number repeated default names (mean_io_u, mean_io_u_1, ...) from their sessions
    keras.utils.clear_session(free_memory=False)
    fastdl.keras.utils.clear_session(free_memory=False)
    theirs = getattr(keras.metrics, name)(**kwargs).get_config()
    mine = getattr(metrics, name)(**kwargs).get_config()
    if name == "CosineSimilarity":
        assert mine.pop("axis") == kwargs.get("axis", -1)   # Keras forgets it in its config
    assert mine == theirs
    original = getattr(metrics, name)(**kwargs)
    again = metrics.deserialize(metrics.serialize(original))
    assert again.get_config() == original.get_config()


def test_names_resolve_like_keras():
    for name in ("f1_score", "F1Score", "r2_score", "FBetaScore", "cosine_similarity",
                 "categorical_hinge"):
        assert metrics.get(name).name == name
    assert type(metrics.get("f1_score")) is metrics.F1Score


@pytest.mark.parametrize("make,match", [
    (lambda: metrics.FBetaScore(beta=1), "beta"),
    (lambda: metrics.F1Score(average="mean"), "average"),
    (lambda: metrics.F1Score(threshold=1.5), "threshold"),
    (lambda: metrics.R2Score(class_aggregation="max"), "class_aggregation"),
    (lambda: metrics.R2Score(num_regressors=-1), "num_regressors"),
    (lambda: metrics.PrecisionAtRecall(1.5), "recall"),
    (lambda: metrics.SpecificityAtSensitivity(0.5, num_thresholds=0), "num_thresholds"),
    (lambda: metrics.MeanIoU(0), "num_classes"),
    (lambda: metrics.F1Score()(np.zeros(3), np.zeros(3)), "2D"),
    (lambda: metrics.R2Score()(np.zeros((2, 2)), np.zeros((2, 3))), "2D"),
    (lambda: metrics.MeanIoU(2)([0, 1], [0, 1, 1]), "shape"),
])
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_adjusted_r2_with_too_few_samples_warns_and_falls_back():
    m = metrics.R2Score(num_regressors=5)
    y = np.array([[1.0], [2.0], [4.0]])
    m.update_state(y, y * 0.9)
    with pytest.warns(UserWarning, match="falling back"):
        value = m.result()
    assert value == pytest.approx(metrics.R2Score()(y, y * 0.9))
