"""Conv1D/2DTranspose, DepthwiseConv1D/2D and SeparableConv1D/2D: forward values against real
Keras and PyTorch (same weights, same input), gradients against float64 central differences,
``.keras`` files both ways with real Keras."""
import os

import numpy as np
import pytest

from fastdl import layers
from fastdl.models import Sequential
from gradcheck import check_layer_gradients


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="real Keras is the oracle for forward values")
    pytest.importorskip("torch", reason="the keras oracle runs on the torch backend")
    return keras


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="PyTorch is the second forward oracle")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def x_for(rank, rng, channels=3):
    return rng.standard_normal((2, 6, 5, channels) if rank == 2 else (2, 7, channels))


# (class name, kwargs): every hyperparameter path, rank 2 and rank 1
TRANSPOSE = [
    ("Conv2DTranspose", dict(filters=4, kernel_size=3)),
    ("Conv2DTranspose", dict(filters=4, kernel_size=(3, 2), strides=(2, 3), padding="same")),
    ("Conv2DTranspose", dict(filters=2, kernel_size=2, strides=2, padding="same")),
    ("Conv2DTranspose", dict(filters=2, kernel_size=1, strides=3)),     # kernel < stride
    ("Conv2DTranspose", dict(filters=3, kernel_size=3, strides=2, output_padding=1)),
    ("Conv2DTranspose", dict(filters=3, kernel_size=4, strides=3, padding="same",
                             output_padding=(2, 0))),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, dilation_rate=2, padding="same",
                             activation="tanh")),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, use_bias=False, activation="relu")),
    ("Conv1DTranspose", dict(filters=3, kernel_size=3, strides=2)),
    ("Conv1DTranspose", dict(filters=3, kernel_size=4, strides=2, padding="same",
                             output_padding=1)),
    ("Conv1DTranspose", dict(filters=2, kernel_size=2, dilation_rate=3)),
]
DEPTHWISE = [
    ("DepthwiseConv2D", dict(kernel_size=3)),
    ("DepthwiseConv2D", dict(kernel_size=(2, 3), strides=2, padding="same", depth_multiplier=2)),
    ("DepthwiseConv2D", dict(kernel_size=2, dilation_rate=2, activation="relu", use_bias=False)),
    ("DepthwiseConv1D", dict(kernel_size=3, depth_multiplier=3, padding="same")),
    ("SeparableConv2D", dict(filters=4, kernel_size=3)),
    ("SeparableConv2D", dict(filters=5, kernel_size=(3, 2), strides=(2, 1), padding="same",
                             depth_multiplier=2, activation="relu")),
    ("SeparableConv2D", dict(filters=2, kernel_size=2, dilation_rate=2, use_bias=False)),
    ("SeparableConv1D", dict(filters=4, kernel_size=3, strides=2, depth_multiplier=2,
                             activation="sigmoid")),
]
ALL = TRANSPOSE + DEPTHWISE


def make(name, kwargs, dtype="float64"):
    return getattr(layers, name)(dtype=dtype, **kwargs)


def rank_of(name):
    return 1 if "1D" in name else 2


@pytest.mark.parametrize("name, kwargs", ALL)
def test_forward_matches_keras(keras, rng, name, kwargs):
    x = x_for(rank_of(name), rng)
    layer = make(name, kwargs)
    layer.build(x.shape)
    # random (not zero) biases so that the bias path is compared too
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    expected_layer = getattr(keras.layers, name)(dtype="float64", **kwargs)
    expected_layer.build(x.shape)
    expected_layer.set_weights(layer.get_weights())
    expect = keras.ops.convert_to_numpy(expected_layer(x))
    y = layer(x)
    assert y.shape == expect.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, expect, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name, kwargs", ALL)
def test_gradients(rng, name, kwargs):
    x = x_for(rank_of(name), rng, channels=2)[:, :4]
    layer = make(name, kwargs)
    layer.build(x.shape)
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    check_layer_gradients(layer, x + 0.01)   # off the ReLU kink at 0


def test_conv2d_transpose_matches_torch(torch, rng):
    """torch's weight (in, out, kh, kw) is Keras's (kh, kw, out, in) transposed; torch's
    padding=p crops p steps on both sides of the full output, TensorFlow's "same" the smaller
    half first: with stride 2, kernel 4, same -> p = 1 on both sides."""
    x = rng.standard_normal((2, 5, 4, 3))
    layer = layers.Conv2DTranspose(6, 4, strides=2, padding="same", dtype="float64")
    layer.build(x.shape)
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    kernel, bias = layer.get_weights()
    expect = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2)),
        torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias),
        stride=2, padding=1).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(layer(x), expect, rtol=1e-10, atol=1e-10)


def test_depthwise_and_separable_match_torch_grouped_conv(torch, rng):
    """Depthwise = torch conv2d(groups=in_channels) with output channel c * m + j; separable
    = that, then a 1x1 conv."""
    x = rng.standard_normal((2, 6, 5, 3))
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2, dtype="float64")
    separable = layers.SeparableConv2D(4, 3, depth_multiplier=2, dtype="float64")
    for layer in (depthwise, separable):
        layer.build(x.shape)
        layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2))

    def grouped(kernel):   # (kh, kw, in, m) -> torch (in * m, 1, kh, kw)
        return torch.from_numpy(kernel.reshape(3, 3, 1, 6).transpose(3, 2, 0, 1).copy())

    dk, db = depthwise.get_weights()
    h = torch.nn.functional.conv2d(xt, grouped(dk), torch.from_numpy(db), groups=3)
    np.testing.assert_allclose(depthwise(x), h.numpy().transpose(0, 2, 3, 1), atol=1e-10)
    sk, pk, sb = separable.get_weights()
    h = torch.nn.functional.conv2d(xt, grouped(sk), groups=3)
    y = torch.nn.functional.conv2d(h, torch.from_numpy(pk.transpose(3, 2, 0, 1).copy()),
                                   torch.from_numpy(sb))
    np.testing.assert_allclose(separable(x), y.numpy().transpose(0, 2, 3, 1), atol=1e-10)


def test_weight_layouts_and_names_are_keras():
    t = layers.Conv2DTranspose(5, (3, 2))
    t.build((None, 4, 4, 3))
    assert t.kernel.shape == (3, 2, 5, 3) and t.bias.shape == (5,)
    d = layers.DepthwiseConv2D(3, depth_multiplier=2)
    d.build((None, 8, 8, 3))
    assert [w.shape for w in d.weights] == [(3, 3, 3, 2), (6,)]
    s = layers.SeparableConv1D(4, 3, depth_multiplier=2)
    s.build((None, 8, 3))
    assert [w.name for w in s._weight_entries()] == ["depthwise_kernel", "pointwise_kernel",
                                                     "bias"]
    assert [w.shape for w in s.weights] == [(3, 3, 2), (1, 6, 4), (4,)]
    assert layers.Convolution2DTranspose is layers.Conv2DTranspose
    assert layers.SeparableConvolution2D is layers.SeparableConv2D


@pytest.mark.parametrize("make_layer, match", [
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2), "less than its stride"),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.Conv2DTranspose(2, 3, padding="causal"), "padding"),
    (lambda: layers.Conv1DTranspose(0, 3), "filters"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
    (lambda: layers.DepthwiseConv1D(3, padding="causal"), "padding"),
    (lambda: layers.SeparableConv2D(-1, 3), "filters"),
])
def test_bad_hyperparameters(make_layer, match):
    with pytest.raises(ValueError, match=match):
        make_layer()


def test_bad_input_rank():
    with pytest.raises(ValueError, match="expected ndim=4"):
        layers.Conv2DTranspose(2, 3)(np.zeros((2, 5, 3), np.float32))


def test_trains_in_sequential_and_functional(rng):
    """A tiny decoder trains through both model kinds (the loss goes down)."""
    x = rng.standard_normal((16, 4, 4, 2)).astype(np.float32)
    y = rng.standard_normal((16, 8, 8, 1)).astype(np.float32)
    seq = Sequential([layers.Input((4, 4, 2)), layers.SeparableConv2D(4, 3, padding="same"),
                      layers.DepthwiseConv2D(3, padding="same", activation="relu"),
                      layers.Conv2DTranspose(1, 3, strides=2, padding="same")])
    inp = layers.Input((4, 4, 2))
    from fastdl.models import Model
    func = Model(inp, layers.Conv2DTranspose(1, 2, strides=2)(
        layers.DepthwiseConv2D(3, padding="same")(inp)))
    for model in (seq, func):
        model.compile("adam", "mse")
        losses = model.fit(x, y, epochs=8, batch_size=8, verbose=0).history["loss"]
        assert losses[-1] < losses[0]


def _model():
    return Sequential([
        layers.Input((6, 6, 3)),
        layers.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, activation="relu"),
        layers.DepthwiseConv2D(2, strides=2, depth_multiplier=2),
        layers.Conv2DTranspose(3, 3, strides=2, output_padding=1, activation="tanh"),
        layers.Reshape((-1, 3)),
        layers.Conv1DTranspose(2, 2, strides=2, padding="same"),
        layers.DepthwiseConv1D(3),
        layers.SeparableConv1D(2, 2),
    ])


def test_keras_files_both_ways(keras, rng, tmp_path):
    pytest.importorskip("h5py", reason="the .keras weights are HDF5")
    from fastdl.saving import load_model, save_model
    model = _model()
    for w in model.weights:
        w[...] = rng.standard_normal(w.shape) * 0.5
    x = rng.standard_normal((3, 6, 6, 3)).astype(np.float32)
    path = str(tmp_path / "fastdl.keras")
    save_model(model, path)
    theirs = keras.saving.load_model(path)
    expect = model.predict(x, verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)), expect, rtol=1e-4,
                               atol=1e-5)
    back = str(tmp_path / "keras.keras")
    theirs.save(back)
    ours = load_model(back, compile=False)
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in model.layers]
    np.testing.assert_allclose(ours.predict(x, verbose=0), expect, rtol=1e-4, atol=1e-5)
