"""Dense, Activation, Flatten, Dropout, Input: forward, gradients, config, bad input."""
import numpy as np
import pytest

from fastdl import layers
from fastdl.utils import set_random_seed
from gradcheck import check_layer_gradients


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax", "elu",
                                        "selu", "swish", "softplus", "gelu", "leaky_relu"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients_float64(activation, use_bias):
    set_random_seed(0)
    layer = layers.Dense(3, activation=activation, use_bias=use_bias, dtype="float64")
    x = np.random.default_rng(1).standard_normal((4, 5))
    if activation == "relu":  # keep away from the kink
        x += np.sign(x) * 0.1
    check_layer_gradients(layer, x)


def test_dense_on_rank3_input_acts_on_last_axis():
    set_random_seed(0)
    layer = layers.Dense(4, dtype="float64")
    x = np.random.default_rng(2).standard_normal((2, 3, 5))
    y = layer(x)
    assert y.shape == (2, 3, 4)
    np.testing.assert_allclose(y, x @ layer.kernel + layer.bias)
    check_layer_gradients(layer, x)


def test_dense_float32_gradients_match_float64():
    set_random_seed(0)
    l64 = layers.Dense(6, activation="tanh", dtype="float64")
    l32 = layers.Dense(6, activation="tanh")
    x = np.random.default_rng(3).standard_normal((8, 7))
    l64(x), l32(x.astype(np.float32))
    l32.set_weights(l64.get_weights())
    dy = np.random.default_rng(4).standard_normal((8, 6))
    y64, y32 = l64(x, training=True), l32(x.astype(np.float32), training=True)
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)
    dx64, dx32 = l64.backward(dy), l32.backward(dy.astype(np.float32))
    assert dx32.dtype == np.float32
    np.testing.assert_allclose(dx32, dx64, rtol=1e-5, atol=1e-5)
    for g32, g64 in zip(l32.grads, l64.grads):
        np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-5)


def test_dense_weight_layout_and_names():
    layer = layers.Dense(3)
    layer(np.zeros((1, 5), np.float32))
    assert layer.kernel.shape == (5, 3) and layer.bias.shape == (3,)
    assert layer.weight_names == ["kernel", "bias"]
    assert layer.count_params() == 18


def test_dense_empty_batch():
    layer = layers.Dense(3, activation="relu")
    y = layer(np.zeros((0, 4), np.float32), training=True)
    assert y.shape == (0, 3)
    dx = layer.backward(np.zeros((0, 3), np.float32))
    assert dx.shape == (0, 4)
    assert all(np.all(g == 0) for g in layer.grads)
    assert [g.shape for g in layer.grads] == [(4, 3), (3,)]


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"units": 0}, ValueError, r"units must be a positive integer. Received: units=0"),
    ({"units": -1}, ValueError, "units must be a positive integer"),
    ({"units": 2.5}, TypeError, "units must be an integer"),
    ({"units": "3"}, TypeError, "units must be an integer"),
    ({"units": True}, TypeError, "units must be an integer"),
    ({"units": None}, TypeError, "units must be an integer"),
    ({"units": 2, "activation": "nope"}, ValueError, "nope"),
    ({"units": 2, "use_bias": 1}, TypeError, "use_bias must be a bool"),
    ({"units": 2, "bogus": 1}, TypeError, "unrecognized keyword arguments"),
    ({"units": 2, "lora_rank": 2}, ValueError, "not supported"),
])
def test_dense_rejects_bad_hyperparameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        layers.Dense(**kwargs)


def test_dense_rejects_feature_count_change():
    layer = layers.Dense(2)
    layer(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected axis -1 of input shape to have value 4.*\(3, 5\)"):
        layer(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="expected min_ndim=2, found ndim=1"):
        layer(np.zeros((4,), np.float32))
    with pytest.raises(TypeError, match="expects numeric input"):
        layer(np.array([["a"] * 4], dtype=object))


def test_dense_layout_independence():
    set_random_seed(0)
    layer = layers.Dense(3)
    base = np.random.default_rng(5).standard_normal((8, 8)).astype(np.float32)
    for x in (base[:, ::2], np.asfortranarray(base[:, :4]), base[::-1, :4], base[:4, :8].T[:, :4]):
        np.testing.assert_array_equal(layer(x), layer(np.ascontiguousarray(x)))


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax", "elu"])
def test_activation_layer_gradients(activation):
    layer = layers.Activation(activation, dtype="float64")
    x = np.random.default_rng(6).standard_normal((3, 4)) + 0.05
    check_layer_gradients(layer, x)


def test_flatten_is_nhwc_row_major_and_invertible():
    layer = layers.Flatten()
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    y = layer(x).numpy()
    np.testing.assert_array_equal(y, x.reshape(2, -1))
    assert layer.compute_output_shape((None, 3, 4, 5)) == (None, 60)
    np.testing.assert_array_equal(layer.backward(y), x)


def test_dropout_is_inverted_and_training_only():
    layer = layers.Dropout(0.25, seed=1)
    x = np.ones((2000, 50), np.float32)
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = layer(x, training=True).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.01
    dy = np.full_like(x, 2.0)
    np.testing.assert_array_equal(layer.backward(dy), dy * (y / x))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="rate must be in"):
        layers.Dropout(rate)
    with pytest.raises(TypeError, match="rate must be a float"):
        layers.Dropout("0.5")


def test_layer_names_follow_keras():
    a, b = layers.Dense(1), layers.Dense(1)
    assert a.name.startswith("dense") and b.name != a.name
    assert layers.Dense(1, name="head").name == "head"


def test_get_config_round_trip():
    layer = layers.Dense(3, activation="relu", use_bias=False, name="d_cfg")
    clone = layers.Dense.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_set_weights_checks_before_changing_anything():
    layer = layers.Dense(2)
    layer(np.zeros((1, 3), np.float32))
    before = layer.get_weights()
    with pytest.raises(ValueError, match=r"weight 1 has shape \(2,\), but set_weights received shape \(3,\)"):
        layer.set_weights([np.ones((3, 2)), np.ones(3)])
    for w, b in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    with pytest.raises(ValueError, match="expects 2 weights"):
        layer.set_weights([np.ones((3, 2))])


def test_input_requires_a_shape():
    with pytest.raises(ValueError, match="Input needs shape"):
        layers.Input()
    inp = layers.Input(shape=(4,))
    assert inp.shape == (None, 4)
