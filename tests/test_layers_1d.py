"""Conv1D, the 1-D poolings and the small shape/activation layers: forward values against real
Keras (same weights, same inputs), gradients against float64 central differences."""
import os

import numpy as np
import pytest

from fastdl import layers
from fastdl.models import Sequential
from gradcheck import check_layer_gradients


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="real Keras is the oracle for forward values")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def same_as_keras(keras, fastdl_layer, keras_layer, x, rtol=1e-5, atol=1e-6, **call_kwargs):
    y = fastdl_layer(x, **call_kwargs)
    keras_layer.build(x.shape)
    if fastdl_layer.weights:
        keras_layer.set_weights(fastdl_layer.get_weights())
    expect = keras.ops.convert_to_numpy(keras_layer(x, **call_kwargs))
    assert y.shape == expect.shape
    np.testing.assert_allclose(y, expect, rtol=rtol, atol=atol)


CONV1D_CASES = [
    dict(filters=4, kernel_size=3),
    dict(filters=4, kernel_size=3, padding="same"),
    dict(filters=4, kernel_size=4, padding="same", strides=3),
    dict(filters=3, kernel_size=3, padding="causal"),
    dict(filters=3, kernel_size=3, padding="causal", dilation_rate=2),
    dict(filters=3, kernel_size=2, padding="causal", strides=2),
    dict(filters=2, kernel_size=3, dilation_rate=2, use_bias=False),
    dict(filters=4, kernel_size=2, groups=2, activation="relu"),
    dict(filters=4, kernel_size=3, padding="same", activation="tanh"),
]


@pytest.mark.parametrize("kwargs", CONV1D_CASES)
def test_conv1d_forward_matches_keras(keras, rng, kwargs):
    x = rng.standard_normal((2, 11, 4)).astype(np.float32)
    conv = layers.Conv1D(**kwargs, bias_initializer="random_normal")
    assert conv(x).shape == conv.compute_output_shape(x.shape)
    assert conv.kernel.shape == (conv.kernel_size[0], 4 // conv.groups, conv.filters)
    same_as_keras(keras, conv, keras.layers.Conv1D(**kwargs), x)


@pytest.mark.parametrize("kwargs", CONV1D_CASES)
def test_conv1d_gradients(rng, kwargs):
    conv = layers.Conv1D(**kwargs, dtype="float64", bias_initializer="random_normal")
    check_layer_gradients(conv, rng.standard_normal((2, 9, 4)))


def test_conv1d_causal_output_sees_only_the_past(rng):
    conv = layers.Conv1D(2, 3, padding="causal", dilation_rate=2, dtype="float64")
    x = rng.standard_normal((1, 10, 3))
    y = conv(x)
    x2 = x.copy()
    x2[:, 6:] += 1.0  # change the future of step 5
    np.testing.assert_array_equal(conv(x2)[:, :6], y[:, :6])
    assert not np.allclose(conv(x2)[:, 6:], y[:, 6:])


def test_conv1d_then_max_pooling1d_in_a_model_fuses_bitwise(rng):
    """fit/predict fuse Conv1D -> MaxPooling1D into one kernel: bitwise the two layers' calls,
    forward and backward."""
    model = Sequential([layers.Input((12, 3)), layers.Conv1D(4, 3, activation="relu"),
                        layers.MaxPooling1D(2), layers.Flatten(), layers.Dense(1)])
    conv, pool = model.layers[:2]
    x = rng.standard_normal((5, 12, 3)).astype(np.float32)
    assert conv._fuse_next(x, pool) is not None
    assert conv._fuse_next(x, layers.MaxPooling1D(2, strides=1)) is None
    np.testing.assert_array_equal(model.predict(x, verbose=0), model(x))
    dy = rng.standard_normal((5, 1)).astype(np.float32)
    grads = []
    for fuse in (True, False):
        y = model._forward(x, True, fuse=fuse)
        dx = model._backward(dy)
        grads.append((y, dx, [g.copy() for layer in model.layers for g in layer.grads]))
    (y1, dx1, g1), (y2, dx2, g2) = grads
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(dx1, dx2)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)


def test_conv1d_config_round_trip(rng):
    conv = layers.Conv1D(3, 5, strides=2, padding="causal", name="c")
    config = conv.get_config()
    assert config["kernel_size"] == (5,) and config["strides"] == (2,)
    assert config["padding"] == "causal" and config["dilation_rate"] == (1,)
    again = layers.Conv1D.from_config(config)
    assert again.get_config() == config


@pytest.mark.parametrize("kwargs, match", [
    (dict(filters=0, kernel_size=3), "filters"),
    (dict(filters=2, kernel_size=0), "kernel_size"),
    (dict(filters=2, kernel_size=3, padding="full"), "padding"),
    (dict(filters=2, kernel_size=3, strides=2, dilation_rate=2), "dilation_rate"),
    (dict(filters=3, kernel_size=3, groups=2), "groups"),
    (dict(filters=2, kernel_size=3, data_format="channels_first"), "data_format"),
])
def test_conv1d_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.Conv1D(**kwargs)


def test_causal_padding_is_refused_by_conv2d():
    with pytest.raises(ValueError, match="padding"):
        layers.Conv2D(2, 3, padding="causal")


def test_conv1d_bad_input_shapes(rng):
    with pytest.raises(ValueError, match="expected ndim=3"):
        layers.Conv1D(2, 3)(rng.standard_normal((2, 5, 5, 1)))
    with pytest.raises(ValueError, match="less than 1"):
        layers.Conv1D(2, 6)(rng.standard_normal((2, 5, 1)))


POOL_CASES = [dict(pool_size=2), dict(pool_size=3), dict(pool_size=3, strides=2),
              dict(pool_size=2, strides=1, padding="same"),
              dict(pool_size=4, strides=3, padding="same")]


# Keras's torch backend pads an asymmetric 'same' average pool unlike TensorFlow: that case is
# checked against the formula in test_average_pooling1d_same_padding_like_tensorflow.
@pytest.mark.parametrize("name, kwargs", [
    (name, kwargs) for name in ("MaxPooling1D", "AveragePooling1D") for kwargs in POOL_CASES
    if not (name == "AveragePooling1D" and kwargs.get("padding") == "same"
            and kwargs["pool_size"] > 2)])
def test_pooling1d_forward_matches_keras(keras, rng, name, kwargs):
    x = rng.standard_normal((2, 10, 3)).astype(np.float32)
    same_as_keras(keras, getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs), x)


@pytest.mark.parametrize("name", ["MaxPooling1D", "AveragePooling1D"])
@pytest.mark.parametrize("kwargs", POOL_CASES)
def test_pooling1d_gradients(rng, name, kwargs):
    check_layer_gradients(getattr(layers, name)(**kwargs, dtype="float64"),
                          rng.standard_normal((2, 10, 3)))


@pytest.mark.parametrize("name", ["GlobalMaxPooling1D", "GlobalAveragePooling1D"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling1d(keras, rng, name, keepdims):
    x = rng.standard_normal((3, 7, 4)).astype(np.float32)
    layer = getattr(layers, name)(keepdims=keepdims)
    same_as_keras(keras, layer, getattr(keras.layers, name)(keepdims=keepdims), x)
    check_layer_gradients(getattr(layers, name)(keepdims=keepdims, dtype="float64"),
                          rng.standard_normal((3, 7, 4)))


def test_global_average_pooling1d_honours_the_mask(keras, rng):
    x = rng.standard_normal((3, 6, 2)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 1], [1] * 6], dtype=bool)
    same_as_keras(keras, layers.GlobalAveragePooling1D(), keras.layers.GlobalAveragePooling1D(),
                  x, mask=mask)
    expect0 = x[0, :3].mean(axis=0)
    np.testing.assert_allclose(layers.GlobalAveragePooling1D()(x, mask=mask)[0], expect0,
                               rtol=1e-6)
    check_layer_gradients(layers.GlobalAveragePooling1D(dtype="float64"),
                          rng.standard_normal((3, 6, 2)), mask=mask)


def test_embedding_mask_reaches_global_average_pooling1d(rng):
    """Embedding(mask_zero=True) -> GlobalAveragePooling1D averages only the non-padding ids."""
    model = Sequential([layers.Input((5,)), layers.Embedding(10, 3, mask_zero=True),
                        layers.GlobalAveragePooling1D()])
    ids = np.array([[4, 2, 0, 0, 0], [1, 2, 3, 4, 5]])
    table = model.layers[0].embeddings
    np.testing.assert_allclose(model.predict(ids, verbose=0),
                               [table[[4, 2]].mean(axis=0), table[[1, 2, 3, 4, 5]].mean(axis=0)],
                               rtol=1e-6)


def test_global_average_pooling1d_bad_mask(rng):
    with pytest.raises(ValueError, match="mask"):
        layers.GlobalAveragePooling1D()(rng.standard_normal((2, 4, 3)),
                                        mask=np.ones((2, 5), dtype=bool))


def test_average_pooling1d_same_padding_like_tensorflow(rng):
    """TensorFlow's 'same': total padding (OT-1)*s + k - T, the smaller half in front, and the
    padded cells not counted in the mean."""
    x = rng.standard_normal((1, 10, 1))
    y = layers.AveragePooling1D(4, strides=3, padding="same", dtype="float64")(x)[0, :, 0]
    pad_front = ((4 - 1) * 3 + 4 - 10) // 2
    xs = x[0, :, 0]
    expect = [xs[max(0, i * 3 - pad_front):i * 3 - pad_front + 4].mean() for i in range(4)]
    np.testing.assert_allclose(y, expect, rtol=1e-12)


def test_max_pooling1d_default_window_is_2(rng):
    x = rng.standard_normal((1, 6, 1))
    np.testing.assert_array_equal(layers.MaxPooling1D(dtype="float64")(x)[0, :, 0],
                                  x[0, :, 0].reshape(3, 2).max(axis=1))


@pytest.mark.parametrize("kwargs, match", [(dict(pool_size=0), "pool_size"),
                                           (dict(strides=0), "strides"),
                                           (dict(padding="causal"), "padding")])
def test_pooling1d_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.MaxPooling1D(**kwargs)


# ------------------------------------------------------------------ shape and activation layers

SMALL_LAYERS = [  # (name, kwargs, input shape)
    ("RepeatVector", dict(n=3), (2, 4)),
    ("Softmax", dict(), (2, 3, 5)),
    ("Softmax", dict(axis=1), (2, 3, 5)),
    ("Softmax", dict(axis=(1, 2)), (2, 3, 5)),
    ("ReLU", dict(), (3, 7)),
    ("ReLU", dict(max_value=0.8, negative_slope=0.1, threshold=0.2), (3, 7)),
    ("ReLU", dict(negative_slope=0.5), (3, 7)),
    ("LeakyReLU", dict(), (3, 7)),
    ("LeakyReLU", dict(negative_slope=0.05), (3, 7)),
    ("ELU", dict(), (3, 7)),
    ("ELU", dict(alpha=0.5), (3, 7)),
    ("UpSampling1D", dict(), (2, 4, 3)),
    ("UpSampling1D", dict(size=3), (2, 4, 3)),
    ("UpSampling2D", dict(), (2, 3, 4, 2)),
    ("UpSampling2D", dict(size=(1, 3)), (2, 3, 4, 2)),
    ("ZeroPadding1D", dict(), (2, 4, 3)),
    ("ZeroPadding1D", dict(padding=(0, 2)), (2, 4, 3)),
    ("Cropping1D", dict(), (2, 5, 3)),
    ("Cropping1D", dict(cropping=(0, 2)), (2, 5, 3)),
    ("Cropping2D", dict(cropping=1), (2, 5, 6, 2)),
    ("Cropping2D", dict(cropping=((1, 0), (2, 1))), (2, 5, 6, 2)),
    ("Cropping2D", dict(cropping=(1, 2)), (2, 5, 6, 2)),
]


@pytest.mark.parametrize("name, kwargs, shape", SMALL_LAYERS)
def test_small_layers_match_keras(keras, rng, name, kwargs, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    layer = getattr(layers, name)(**kwargs)
    same_as_keras(keras, layer, getattr(keras.layers, name)(**kwargs), x)
    assert layer.compute_output_shape(x.shape) == layer(x).shape
    again = type(layer).from_config(layer.get_config())
    np.testing.assert_array_equal(again(x), layer(x))


@pytest.mark.parametrize("name, kwargs, shape", SMALL_LAYERS)
def test_small_layers_gradients(rng, name, kwargs, shape):
    x = rng.standard_normal(shape)
    if name in ("ReLU", "LeakyReLU", "ELU"):  # keep central differences away from the kinks
        x = np.where(np.abs(x - 0.2) < 0.05, x + 0.1, x)
        x = np.where(np.abs(x) < 0.05, x + 0.1, x)
        x = np.where(np.abs(x - 0.8) < 0.05, x + 0.1, x)
    check_layer_gradients(getattr(layers, name)(**kwargs, dtype="float64"), x)


@pytest.mark.parametrize("kwargs, shape", [(dict(), (3, 4)), (dict(shared_axes=[1]), (2, 5, 3)),
                                           (dict(shared_axes=(1, 2)), (2, 3, 4, 2))])
def test_prelu_matches_keras_and_its_gradients(keras, rng, kwargs, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    layer = layers.PReLU(alpha_initializer="random_normal", **kwargs)
    same_as_keras(keras, layer, keras.layers.PReLU(**kwargs), x)
    check_layer_gradients(layers.PReLU(alpha_initializer="random_normal", dtype="float64",
                                       alpha_regularizer="l2", **kwargs),
                          rng.standard_normal(shape))


@pytest.mark.parametrize("make, match", [
    (lambda: layers.PReLU(shared_axes=0), "shared_axes"),
    (lambda: layers.PReLU(alpha_constraint="nonneg"), "nonneg"),
    (lambda: layers.RepeatVector(0), "n"),
    (lambda: layers.ReLU(max_value=-1.0), "max_value"),
    (lambda: layers.ReLU(negative_slope=-0.1), "negative_slope"),
    (lambda: layers.ReLU(threshold=-1.0), "threshold"),
    (lambda: layers.LeakyReLU(negative_slope=-0.3), "negative_slope"),
    (lambda: layers.ELU(alpha="big"), "alpha"),
    (lambda: layers.Softmax(axis="last"), "axis"),
    (lambda: layers.UpSampling1D(size=0), "size"),
    (lambda: layers.UpSampling2D(interpolation="bilinear"), "interpolation"),
    (lambda: layers.ZeroPadding1D(padding=-1), "padding"),
    (lambda: layers.Cropping1D(cropping=(1, 2, 3)), "cropping"),
    (lambda: layers.Cropping2D(cropping=((1, 2),)), "cropping"),
])
def test_small_layers_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_softmax_with_a_mask_matches_keras(keras, rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    mask = np.array([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 1, 1]], dtype=bool)  # a row fully masked
    same_as_keras(keras, layers.Softmax(), keras.layers.Softmax(), x, mask=mask)
    check_layer_gradients(layers.Softmax(dtype="float64"), rng.standard_normal((2, 3, 4)),
                          mask=mask)
    with pytest.raises(ValueError, match="broadcastable"):
        layers.Softmax()(x, mask=np.ones((2, 3), dtype=bool))


def test_cropping_everything_is_refused(rng):
    with pytest.raises(ValueError, match="size < 1"):
        layers.Cropping1D((2, 3))(rng.standard_normal((1, 5, 2)))
    with pytest.raises(ValueError, match="out of range"):
        layers.Softmax(axis=3)(rng.standard_normal((1, 5, 2)))
