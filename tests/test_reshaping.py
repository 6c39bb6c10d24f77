"""ZeroPadding2D and Reshape: forward, gradients, config, bad input."""
import numpy as np
import pytest

from fastdl import layers
from gradcheck import check_layer_gradients


@pytest.fixture
def rng():
    return np.random.default_rng(5)


@pytest.mark.parametrize("padding,expect", [
    (1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))), (((1, 2), (3, 0)), ((1, 2), (3, 0))),
    ([[0, 1], [2, 2]], ((0, 1), (2, 2))), (0, ((0, 0), (0, 0)))])
def test_zero_padding_forms_and_forward(rng, padding, expect):
    layer = layers.ZeroPadding2D(padding, dtype="float64")
    assert layer.padding == expect
    x = rng.standard_normal((2, 3, 4, 2))
    y = layer(x)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), *expect, (0, 0))))
    assert y.shape == layer.compute_output_shape(x.shape)
    check_layer_gradients(layer, x)


def test_zero_padding_default_config_and_empty_batch():
    layer = layers.ZeroPadding2D()
    assert layer.padding == ((1, 1), (1, 1))
    assert layer.compute_output_shape((None, 3, None, 2)) == (None, 5, None, 2)
    config = layer.get_config()
    assert layers.ZeroPadding2D.from_config(config).get_config() == config
    y = layer(np.zeros((0, 3, 3, 2), np.float32))
    assert y.shape == (0, 5, 5, 2) and layer.backward(y).shape == (0, 3, 3, 2)


@pytest.mark.parametrize("padding,exc", [(-1, ValueError), ((1, -2), ValueError), (1.5, ValueError),
                                         ("1", ValueError), ((1, 2, 3), ValueError),
                                         (((1, 2, 3), (1, 1)), TypeError), ((True, 1), TypeError)])
def test_zero_padding_bad(padding, exc):
    with pytest.raises(exc, match="padding"):
        layers.ZeroPadding2D(padding)


def test_zero_padding_bad_input():
    layer = layers.ZeroPadding2D()
    with pytest.raises(ValueError, match=r"ndim=4.*\(2, 3, 3\)"):
        layer(np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="channels_last"):
        layers.ZeroPadding2D(data_format="channels_first")


@pytest.mark.parametrize("target,expect", [((6, 2), (6, 2)), ((-1,), (12,)), ((3, -1), (3, 4)),
                                           ([2, 2, -1], (2, 2, 3))])
def test_reshape(rng, target, expect):
    layer = layers.Reshape(target, dtype="float64")
    x = rng.standard_normal((4, 3, 4))
    y = layer(x).numpy()
    assert y.shape == (4,) + expect == layer.compute_output_shape(x.shape)
    np.testing.assert_array_equal(y.reshape(x.shape), x)
    check_layer_gradients(layer, x)
    assert layer.compute_output_shape((None, 3, 4)) == (None,) + expect
    assert layer.compute_output_shape((None, None, 4)) == (None,) + tuple(None if d == -1 else d for d in target)
    config = layer.get_config()
    assert layers.Reshape.from_config(config).get_config() == config
    assert layer(np.zeros((0, 3, 4))).shape == (0,) + expect


@pytest.mark.parametrize("target,exc,match", [
    ((-1, -1), ValueError, "at most one"), ((0, 3), ValueError, "positive"), ((-2,), ValueError, "positive"),
    ((2.0, 3), TypeError, "integers"), (6, TypeError, "tuple"), (None, TypeError, "tuple"),
    ((True, 6), TypeError, "integers")])
def test_reshape_bad_target(target, exc, match):
    with pytest.raises(exc, match=match):
        layers.Reshape(target)


def test_reshape_size_mismatch():
    with pytest.raises(ValueError, match=r"input_shape=\(3, 4\), target_shape=\(5, 2\)"):
        layers.Reshape((5, 2))(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"cannot by divided.*target_shape=\(5, -1\)"):
        layers.Reshape((5, -1))(np.zeros((2, 3, 4), np.float32))
