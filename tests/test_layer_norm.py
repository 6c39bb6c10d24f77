"""LayerNormalization, GroupNormalization and UnitNormalization: forward against real Keras 3 (torch backend) with
the same weights, gradients (input and weights) against float64 central differences, configs,
weight names and bad arguments."""
import os

import numpy as np
import pytest

from fastdl import layers
from gradcheck import check_layer_gradients

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="keras (the oracle) is not installed")
pytest.importorskip("torch", reason="the keras oracle runs on the torch backend")
if keras.backend.backend() != "torch":
    pytest.skip("the oracle needs KERAS_BACKEND=torch", allow_module_level=True)

rng = np.random.default_rng(0)

LN_CASES = [
    ((4, 6), {}),
    ((3, 5, 4), {}),
    ((3, 5, 4), {"axis": 1}),
    ((2, 3, 4, 5), {"axis": [1, 3], "epsilon": 1e-5}),
    ((2, 3, 4), {"axis": (-2, -1), "center": False}),
    ((4, 6), {"scale": False}),
    ((4, 6), {"center": False, "scale": False}),
]
LN_IDS = [f"{shape}-{kwargs}" for shape, kwargs in LN_CASES]


def _randomized(layer, shape):
    layer.build(shape)
    layer.set_weights([rng.standard_normal(w.shape).astype(w.dtype) for w in layer.get_weights()])
    return layer


def _reference(x, gamma, beta, axes, epsilon):
    """The formula in float64; gamma and beta laid out on ``axes``."""
    x = x.astype(np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + epsilon)
    pshape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    if gamma is not None:
        y = y * gamma.reshape(pshape)
    if beta is not None:
        y = y + beta.reshape(pshape)
    return y


@pytest.mark.parametrize("shape,kwargs", LN_CASES, ids=LN_IDS)
def test_layer_normalization_forward_matches_keras(shape, kwargs):
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    mine = _randomized(layers.LayerNormalization(**kwargs), shape)
    weights = mine.get_weights()
    axis = kwargs.get("axis", -1)
    axes = tuple(sorted(a % len(shape) for a in (axis if isinstance(axis, (list, tuple))
                                                  else [axis])))
    gamma = weights.pop(0) if kwargs.get("scale", True) else None
    beta = weights.pop(0) if kwargs.get("center", True) else None
    np.testing.assert_allclose(mine(x), _reference(x, gamma, beta, axes,
                                                   kwargs.get("epsilon", 1e-3)),
                               rtol=1e-5, atol=1e-5)
    theirs = keras.layers.LayerNormalization(**kwargs)
    theirs.build(shape)
    assert [w.name for w in theirs.weights] == [name for name, _ in _names(mine)]
    theirs.set_weights(mine.get_weights())
    # Keras's torch backend computes only normalisations over trailing axes
    if axes == tuple(range(len(shape) - len(axes), len(shape))):
        np.testing.assert_allclose(mine(x), keras.ops.convert_to_numpy(theirs(x)),
                                   rtol=1e-5, atol=1e-5)


def _names(layer):
    return [(p.name, p.value) for p in layer._params]


@pytest.mark.parametrize("shape,kwargs", LN_CASES, ids=LN_IDS)
def test_layer_normalization_gradients(shape, kwargs):
    layer = _randomized(layers.LayerNormalization(dtype="float64", **kwargs), shape)
    check_layer_gradients(layer, rng.standard_normal(shape) * 2, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kwargs", [{}, {"axis": [1, 2], "epsilon": 0.1, "center": False}])
def test_layer_normalization_config_matches_keras(kwargs):
    mine = layers.LayerNormalization(name="ln", **kwargs).get_config()
    theirs = keras.layers.LayerNormalization(name="ln", **kwargs).get_config()
    for key, value in theirs.items():
        if key != "dtype":
            assert mine[key] == value, key
    again = layers.LayerNormalization.from_config(mine)
    assert again.get_config() == mine


@pytest.mark.parametrize("shape,axis", [((4, 6), -1), ((3, 4, 5), 1), ((3, 4, 5), [1, 2])])
def test_unit_normalization_forward_matches_keras_and_gradients(shape, axis):
    x = rng.standard_normal(shape).astype(np.float32)
    mine = layers.UnitNormalization(axis=axis)
    theirs = keras.layers.UnitNormalization(axis=axis)
    np.testing.assert_allclose(mine(x), keras.ops.convert_to_numpy(theirs(x)),
                               rtol=1e-5, atol=1e-6)
    assert mine.get_config()["axis"] == theirs.get_config()["axis"]
    check_layer_gradients(layers.UnitNormalization(axis=axis, dtype="float64"),
                          rng.standard_normal(shape), rtol=1e-5, atol=1e-7)


def test_unit_normalization_of_a_zero_vector_is_zero_with_the_clamped_gradient():
    layer = layers.UnitNormalization(dtype="float64")
    x = np.zeros((2, 3))
    x[1] = [3.0, 4.0, 0.0]
    y = layer(x)
    np.testing.assert_array_equal(y[0], 0.0)
    np.testing.assert_allclose(y[1], [0.6, 0.8, 0.0])
    dx = layer.backward(np.ones((2, 3)))
    np.testing.assert_allclose(dx[0], 1e12)       # x / max(||x||, 1e-12): slope 1e12 at 0


@pytest.mark.parametrize("make,error,match", [
    (lambda: layers.LayerNormalization(axis="x"), TypeError, "axis"),
    (lambda: layers.LayerNormalization(epsilon=-1.0), ValueError, "epsilon"),
    (lambda: layers.LayerNormalization(center="yes"), (TypeError, ValueError), "center"),
    (lambda: layers.LayerNormalization(rms_scaling=True), ValueError, "rms_scaling"),
    (lambda: layers.LayerNormalization(gamma_regularizer="l2"), ValueError, "gamma_regularizer"),
    (lambda: layers.LayerNormalization(axis=3)(np.zeros((2, 3), np.float32)), ValueError,
     "out of bounds"),
    (lambda: layers.LayerNormalization(axis=[1, -1])(np.zeros((2, 3), np.float32)), ValueError,
     "Repeated"),
    (lambda: layers.UnitNormalization(axis=2.0), TypeError, "axis"),
])
def test_bad_arguments_are_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_keras_loads_a_fastdl_file_with_the_normalization_layers(tmp_path):
    pytest.importorskip("h5py", reason=".keras files hold their weights in HDF5")
    from fastdl.models import Sequential
    from fastdl.saving import load_model, save_model

    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    model = Sequential([layers.Input((3, 4)), layers.LayerNormalization(axis=[1, 2]),
                        layers.UnitNormalization(), layers.GroupNormalization(groups=2),
                        layers.Dense(2)])
    model.layers[0].set_weights([rng.standard_normal((3, 4)).astype(np.float32)
                                 for _ in range(2)])
    path = str(tmp_path / "ln.keras")
    save_model(model, path)
    theirs = keras.models.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    again = load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


GN_CASES = [
    ((3, 8), {"groups": 4}),
    ((2, 5, 6), {"groups": 3}),
    ((2, 4, 3, 6), {"groups": 2, "epsilon": 1e-5}),
    ((2, 6, 5), {"groups": -1, "axis": 1}),
    ((2, 4, 4), {"groups": 1, "center": False}),
    ((2, 3, 4), {"groups": 2, "scale": False}),
]
GN_IDS = [f"{shape}-{kwargs}" for shape, kwargs in GN_CASES]


@pytest.mark.parametrize("shape,kwargs", GN_CASES, ids=GN_IDS)
def test_group_normalization_forward_matches_keras(shape, kwargs):
    x = (rng.standard_normal(shape) * 2 - 1).astype(np.float32)
    mine = _randomized(layers.GroupNormalization(**kwargs), shape)
    theirs = keras.layers.GroupNormalization(**kwargs)
    theirs.build(shape)
    assert [w.name for w in theirs.weights] == [name for name, _ in _names(mine)]
    theirs.set_weights(mine.get_weights())
    np.testing.assert_allclose(mine(x), keras.ops.convert_to_numpy(theirs(x)),
                               rtol=1e-5, atol=1e-5)
    assert mine.get_config()["groups"] == theirs.get_config()["groups"]   # -1 resolved


@pytest.mark.parametrize("shape,kwargs", GN_CASES, ids=GN_IDS)
def test_group_normalization_gradients(shape, kwargs):
    layer = _randomized(layers.GroupNormalization(dtype="float64", **kwargs), shape)
    check_layer_gradients(layer, rng.standard_normal(shape) * 2, rtol=1e-5, atol=1e-7)


def test_group_normalization_config_and_bad_groups():
    mine = layers.GroupNormalization(groups=2, name="gn").get_config()
    theirs = keras.layers.GroupNormalization(groups=2, name="gn").get_config()
    for key, value in theirs.items():
        if key != "dtype":
            assert mine[key] == value, key
    with pytest.raises(ValueError, match="groups"):
        layers.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match="groups"):
        layers.GroupNormalization(groups=4)(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="batch axis"):
        layers.GroupNormalization(groups=1, axis=0)(np.zeros((2, 6), np.float32))
