"""CategoricalHinge, CosineSimilarity, Tversky, Dice, BinaryFocalCrossentropy and
CategoricalFocalCrossentropy: values against real Keras 3 (torch backend) with and without
sample weights, function forms and string names, gradients against float64 central
differences, configs."""
import os

import numpy as np
import pytest

from gradcheck import numerical_gradient

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="keras (the oracle) is not installed")
pytest.importorskip("torch", reason="the keras oracle runs on the torch backend")
if keras.backend.backend() != "torch":
    pytest.skip("the oracle needs KERAS_BACKEND=torch", allow_module_level=True)

from fastdl import losses  # noqa: E402

rng = np.random.default_rng(0)
N, C = 5, 4
ONEHOT = np.eye(C)[rng.integers(0, C, N)]
PROBS = rng.dirichlet(np.ones(C), N)
LOGITS = rng.standard_normal((N, C)) * 2
BINARY = (rng.uniform(size=(N, C)) > 0.5).astype(np.float64)
SIGNED = rng.standard_normal((N, C))
UNIT = rng.uniform(0.05, 0.95, (N, C))
SEG_T = (rng.uniform(size=(N, 3, 3)) > 0.5).astype(np.float64)
SEG_P = rng.uniform(0.05, 0.95, (N, 3, 3))
WEIGHTS = rng.uniform(0.2, 2.0, N)

# (class name, kwargs, y_true, y_pred)
CASES = [
    ("CategoricalHinge", {}, ONEHOT, SIGNED),
    ("CategoricalHinge", {}, ONEHOT, 0.2 * SIGNED),
    ("CosineSimilarity", {}, SIGNED, rng.standard_normal((N, C))),
    ("CosineSimilarity", {"axis": 0}, SIGNED, rng.standard_normal((N, C))),
    ("Tversky", {}, SEG_T, SEG_P),
    ("Tversky", {"alpha": 0.3, "beta": 0.7, "axis": (1, 2)}, SEG_T, SEG_P),
    ("Dice", {}, SEG_T, SEG_P),
    ("Dice", {"axis": (1, 2)}, SEG_T, SEG_P),
    ("Dice", {"axis": -1}, BINARY, UNIT),
    ("BinaryFocalCrossentropy", {}, BINARY, UNIT),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5,
                                 "label_smoothing": 0.1}, BINARY, UNIT),
    ("BinaryFocalCrossentropy", {"from_logits": True, "gamma": 3.0}, BINARY, SIGNED),
    ("BinaryFocalCrossentropy", {"gamma": 0.0}, BINARY, UNIT),
    ("CategoricalFocalCrossentropy", {}, ONEHOT, PROBS),
    ("CategoricalFocalCrossentropy", {"alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.2},
     ONEHOT, PROBS * 1.7),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, ONEHOT, LOGITS),
]
IDS = [f"{c}-{i}" for i, (c, *_) in enumerate(CASES)]


def _keras_value(name, kwargs, yt, yp, **call):
    out = getattr(keras.losses, name)(**kwargs)(yt, yp, **call)
    return float(keras.ops.convert_to_numpy(out))


@pytest.mark.parametrize("name,kwargs,yt,yp", CASES, ids=IDS)
def test_value_matches_keras(name, kwargs, yt, yp):
    mine = getattr(losses, name)(**kwargs)
    yt32, yp32 = yt.astype(np.float32), yp.astype(np.float32)
    assert mine(yt32, yp32) == pytest.approx(_keras_value(name, kwargs, yt32, yp32),
                                             rel=1e-5, abs=1e-6)
    if np.ndim(mine.call(yt, yp)) >= 1 and np.shape(mine.call(yt, yp))[0] == N:
        w = WEIGHTS.astype(np.float32)
        assert mine(yt32, yp32, sample_weight=w) == pytest.approx(
            _keras_value(name, kwargs, yt32, yp32, sample_weight=w), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name,kwargs,yt,yp", CASES, ids=IDS)
def test_gradient_matches_central_differences(name, kwargs, yt, yp):
    mine = getattr(losses, name)(**kwargs)
    x = yp.astype(np.float64).copy()
    value, grad = mine.forward_backward(yt, x)
    assert value == pytest.approx(mine(yt, x))
    assert grad.shape == x.shape and grad.dtype == np.float64
    num = numerical_gradient(lambda: mine(yt, x), x)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)
    if np.ndim(mine.call(yt, yp)) >= 1 and np.shape(mine.call(yt, yp))[0] == N:
        _, gw = mine.forward_backward(yt, x, sample_weight=WEIGHTS)
        numw = numerical_gradient(lambda: mine(yt, x, sample_weight=WEIGHTS), x)
        np.testing.assert_allclose(gw, numw, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name,kwargs,yt,yp", CASES, ids=IDS)
def test_config_matches_keras_and_round_trips(name, kwargs, yt, yp):
    theirs = getattr(keras.losses, name)(**kwargs).get_config()
    mine = getattr(losses, name)(**kwargs).get_config()
    if name == "CosineSimilarity":
        assert mine.pop("axis") == kwargs.get("axis", -1)   # Keras forgets it in its config
    theirs = {k: list(v) if isinstance(v, tuple) else v for k, v in theirs.items()}
    assert mine == theirs
    again = losses.deserialize(losses.serialize(getattr(losses, name)(**kwargs)))
    assert again.get_config() == getattr(losses, name)(**kwargs).get_config()


FUNCTIONS = [
    ("categorical_hinge", {}, ONEHOT, SIGNED),
    ("cosine_similarity", {"axis": -1}, SIGNED, LOGITS),
    ("tversky", {"alpha": 0.2, "beta": 0.8, "axis": (1, 2)}, SEG_T, SEG_P),
    ("dice", {}, SEG_T, SEG_P),
    ("binary_focal_crossentropy", {"gamma": 2.5}, BINARY, UNIT),
    ("categorical_focal_crossentropy", {"from_logits": True}, ONEHOT, LOGITS),
]


@pytest.mark.parametrize("fn,kwargs,yt,yp", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_function_forms_and_names_match_keras(fn, kwargs, yt, yp):
    yt32, yp32 = yt.astype(np.float32), yp.astype(np.float32)
    mine = getattr(losses, fn)(yt32, yp32, **kwargs)
    theirs = keras.ops.convert_to_numpy(getattr(keras.losses, fn)(yt32, yp32, **kwargs))
    np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert type(losses.get(fn)) is type(losses.get(type(losses.get(fn)).__name__))
    assert losses.get(getattr(losses, fn)).name == fn


@pytest.mark.parametrize("make,match", [
    (lambda: losses.BinaryFocalCrossentropy(gamma=-1.0), "gamma"),
    (lambda: losses.CategoricalFocalCrossentropy(alpha="a"), "alpha"),
    (lambda: losses.BinaryFocalCrossentropy(axis=0), "axis"),
    (lambda: losses.Dice(axis="x"), "axis"),
    (lambda: losses.Tversky(axis=(0, 0))(SEG_T, SEG_P), "repeated"),
    (lambda: losses.Dice(axis=3)(SEG_T, SEG_P), "out of range"),
    (lambda: losses.CosineSimilarity(axis=1.5), "axis"),
    (lambda: losses.CategoricalHinge()(ONEHOT, SIGNED[:, :2]), "shape"),
])
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
