"""BatchNormalization: forward vs the float64 reference, moving statistics, inference and frozen
modes, gradients through the batch statistics, config, bad input."""
import numpy as np
import pytest

from fastdl import layers
from gradcheck import check_layer_gradients

import reference_conv as ref


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def randomize(layer, rng):
    for w in layer.weights:
        w[...] = rng.uniform(0.5, 1.5, w.shape)


def test_defaults_and_weights():
    layer = layers.BatchNormalization()
    assert (layer.axis, layer.momentum, layer.epsilon, layer.center, layer.scale) == (-1, 0.99, 1e-3, True, True)
    layer(np.zeros((2, 3, 3, 4), np.float32))
    assert layer.weight_names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert len(layer.trainable_weights) == 2 and len(layer.non_trainable_weights) == 2
    np.testing.assert_array_equal(layer.moving_variance, np.ones(4))
    assert layer.count_params() == 16
    assert layers.BatchNormalization(center=False, scale=False).count_params() == 0


@pytest.mark.parametrize("shape,axis", [((4, 5, 6, 3), -1), ((6, 5), -1), ((3, 4, 5, 2), 1), ((3, 4, 5), -2)])
def test_training_forward_and_moving_statistics(rng, shape, axis):
    layer = layers.BatchNormalization(axis=axis, momentum=0.9, dtype="float64")
    x = rng.standard_normal(shape) * 3 + 1
    layer.build(x.shape)
    randomize(layer, rng)
    gamma, beta, mm, mv = [w.copy() for w in layer.weights]
    moved = np.moveaxis(x, axis, -1)
    y_ref, mean, var = ref.batch_norm_train(moved, gamma, beta, layer.epsilon)
    y = layer(x, training=True)
    np.testing.assert_allclose(np.moveaxis(y, axis, -1), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.moving_mean, mm * 0.9 + mean * 0.1, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, mv * 0.9 + var * 0.1, rtol=1e-12)  # biased var
    # a second step composes
    layer(x, training=True)
    np.testing.assert_allclose(layer.moving_mean, (mm * 0.9 + mean * 0.1) * 0.9 + mean * 0.1, rtol=1e-12)


def test_inference_mode_uses_moving_statistics(rng):
    layer = layers.BatchNormalization(dtype="float64")
    x = rng.standard_normal((5, 3, 3, 4))
    layer.build(x.shape)
    randomize(layer, rng)
    before = [w.copy() for w in layer.weights]
    y = layer(x)  # training=False
    np.testing.assert_allclose(y, ref.batch_norm(x, *before, layer.epsilon), rtol=1e-12)
    for a, b in zip(layer.weights, before):
        np.testing.assert_array_equal(a, b)  # nothing moved


def test_frozen_layer_runs_in_inference_mode(rng):
    layer = layers.BatchNormalization(dtype="float64")
    x = rng.standard_normal((5, 3, 3, 4))
    layer.build(x.shape)
    randomize(layer, rng)
    layer.trainable = False
    before = [w.copy() for w in layer.weights]
    y = layer(x, training=True)
    np.testing.assert_allclose(y, ref.batch_norm(x, *before, layer.epsilon), rtol=1e-12)
    for a, b in zip(layer.weights, before):
        np.testing.assert_array_equal(a, b)
    dx = layer.backward(np.ones_like(y))
    assert layer.grads == []
    np.testing.assert_allclose(dx, np.ones_like(x) * before[0] / np.sqrt(before[3] + layer.epsilon), rtol=1e-12)
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("kwargs", [{}, dict(center=False), dict(scale=False), dict(axis=1),
                                    dict(epsilon=0.5, momentum=0.0)])
@pytest.mark.parametrize("training", [True, False])
def test_gradients_float64(rng, kwargs, training):
    layer = layers.BatchNormalization(dtype="float64", **kwargs)
    x = rng.standard_normal((3, 4, 3, 2)) * 2 + 0.5
    layer.build(x.shape)
    randomize(layer, rng)
    check_layer_gradients(layer, x, training=training)


def test_gradients_2d_input(rng):
    layer = layers.BatchNormalization(dtype="float64")
    x = rng.standard_normal((7, 5))
    check_layer_gradients(layer, x, training=True)


def test_float32_gradients_match_float64(rng):
    x = rng.standard_normal((8, 5, 5, 6)) * 2 + 1
    dy = rng.standard_normal(x.shape)
    l64, l32 = layers.BatchNormalization(dtype="float64"), layers.BatchNormalization()
    l64.build(x.shape)
    l32.build(x.shape)
    randomize(l64, rng)
    l32.set_weights(l64.get_weights())
    y64, y32 = l64(x, training=True), l32(x.astype(np.float32), training=True)
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(l32.backward(dy.astype(np.float32)), l64.backward(dy), rtol=1e-4, atol=1e-5)
    for a, b in zip(l32.grads, l64.grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(l32.moving_variance, l64.moving_variance, rtol=1e-5)


def test_empty_batch(rng):
    layer = layers.BatchNormalization()
    x = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    layer(x, training=True)
    moving = [w.copy() for w in layer.weights]
    y = layer(np.zeros((0, 3, 3, 2), np.float32), training=True)
    assert y.shape == (0, 3, 3, 2)
    dx = layer.backward(y)
    assert dx.shape == (0, 3, 3, 2)
    assert [g.shape for g in layer.grads] == [(2,), (2,)] and not any(g.any() for g in layer.grads)
    for a, b in zip(layer.weights, moving):
        np.testing.assert_array_equal(a, b)  # no statistics from an empty batch


def test_config_round_trip():
    layer = layers.BatchNormalization(axis=1, momentum=0.5, epsilon=1e-5, center=False, name="bn")
    config = layer.get_config()
    assert (config["axis"], config["momentum"], config["epsilon"], config["center"]) == (1, 0.5, 1e-5, False)
    assert layers.BatchNormalization.from_config(config).get_config() == config


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(momentum=1.5), ValueError, "momentum"), (dict(momentum=-0.1), ValueError, "momentum"),
    (dict(momentum="0.9"), TypeError, "momentum"), (dict(epsilon=0), ValueError, "epsilon"),
    (dict(epsilon=-1e-3), ValueError, "epsilon"), (dict(axis="x"), TypeError, "axis"),
    (dict(axis=True), TypeError, "axis"), (dict(axis=1.0), TypeError, "axis"),
    (dict(center=1), TypeError, "center"), (dict(renorm=True), ValueError, "renorm"),
    (dict(synchronized=True), ValueError, "synchronized"),
    (dict(gamma_regularizer="l7"), ValueError, "l7"),
    (dict(renorm_clipping={"rmax": 3.0}), ValueError, "renorm_clipping")])
def test_bad_hyperparameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        layers.BatchNormalization(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"Axis 4 is out of bounds.*\(2, 3, 3, 2\)"):
        layers.BatchNormalization(axis=4)(np.zeros((2, 3, 3, 2), np.float32))
    layer = layers.BatchNormalization()
    layer(np.zeros((2, 3, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"axis 3.*value 2.*\(2, 3, 3, 5\)"):
        layer(np.zeros((2, 3, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"ndim=4.*\(2, 3, 2\)"):
        layer(np.zeros((2, 3, 2), np.float32))
    y = layer(np.ones((2, 3, 3, 2), np.float32), training=True).numpy()
    with pytest.raises(ValueError, match="dy has shape"):
        layer.backward(np.zeros((2, 3, 3, 1), np.float32))
    assert np.isfinite(y).all()  # zero variance: epsilon keeps it finite
