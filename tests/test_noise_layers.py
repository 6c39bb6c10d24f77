"""GaussianNoise, GaussianDropout, AlphaDropout, SpatialDropout1D/2D, ActivityRegularization,
Permute and Identity: the identity in inference, seeded determinism, statistics against
Keras's formulas (seeded draws, 5-sigma tolerances from each formula's own variance),
gradients, and ``.keras`` files both ways with real Keras."""
import math
import os

import numpy as np
import pytest

from fastdl import layers
from fastdl.models import Sequential
from gradcheck import numerical_gradient

ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
N = 200_000
SIGMAS = 5


def noise_layers(seed=None, dtype="float64"):
    return [layers.GaussianNoise(0.3, seed=seed, dtype=dtype),
            layers.GaussianDropout(0.4, seed=seed, dtype=dtype),
            layers.AlphaDropout(0.2, seed=seed, dtype=dtype),
            layers.SpatialDropout1D(0.5, seed=seed, dtype=dtype),
            layers.SpatialDropout2D(0.5, seed=seed, dtype=dtype)]


def input_for(layer, rng):
    shape = {"SpatialDropout2D": (4, 3, 3, 5)}.get(type(layer).__name__, (4, 6, 5))
    return rng.standard_normal(shape)


@pytest.mark.parametrize("index", range(5))
def test_identity_in_inference_and_seeded_in_training(index):
    rng = np.random.default_rng(0)
    layer, twin = noise_layers(seed=7)[index], noise_layers(seed=7)[index]
    x = input_for(layer, rng)
    assert layer(x).numpy() is x and layer(x, training=False).numpy() is x
    first = layer(x, training=True)
    assert not np.array_equal(first, x)
    np.testing.assert_array_equal(twin(x, training=True), first)   # same seed, same draws
    assert not np.array_equal(layer(x, training=True), first)      # a new draw per call
    single = noise_layers(seed=7, dtype="float32")[index]
    assert single(x.astype(np.float32), training=True).dtype == np.float32


@pytest.mark.parametrize("index", range(5))
def test_gradients_follow_the_drawn_noise(index):
    """backward is d/dx of the call that drew the noise: a fresh layer with the same seed
    draws the same noise on its first call, so central differences hold the draw fixed."""
    rng = np.random.default_rng(1)
    layer = noise_layers(seed=3)[index]
    x = np.ascontiguousarray(input_for(layer, rng)[:2])
    y = layer(x, training=True)
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r)

    def loss():
        return float(np.sum(noise_layers(seed=3)[index](x, training=True) * r))
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    assert layer.grads == []


def test_gaussian_noise_statistics():
    x = np.full(N, 2.0)
    noise = layers.GaussianNoise(0.3, seed=0, dtype="float64")(x, training=True).numpy() - x
    assert abs(noise.mean()) < SIGMAS * 0.3 / math.sqrt(N)
    # the sample variance of a normal has variance 2 sigma^4 / (N - 1)
    assert abs(noise.var() - 0.09) < SIGMAS * math.sqrt(2 / N) * 0.09


def test_gaussian_dropout_statistics():
    rate = 0.4
    var = rate / (1 - rate)
    factor = layers.GaussianDropout(rate, seed=0, dtype="float64")(np.full(N, 3.0), training=True).numpy() / 3.0
    assert abs(factor.mean() - 1) < SIGMAS * math.sqrt(var / N)
    assert abs(factor.var() - var) < SIGMAS * math.sqrt(2 / N) * var


def test_alpha_dropout_keeps_zero_mean_unit_variance():
    """For x ~ N(0, 1) the output has mean 0 and variance 1 (Keras's a and b are chosen so);
    the dropped fraction is the rate, and dropped elements sit at a * alpha_p + b."""
    rate = 0.2
    a = ((1 - rate) * (1 + rate * ALPHA_P ** 2)) ** -0.5
    b = -a * ALPHA_P * rate
    x = np.random.default_rng(5).standard_normal(N)
    y = layers.AlphaDropout(rate, seed=0, dtype="float64")(x, training=True).numpy()
    dropped = np.isclose(y, a * ALPHA_P + b, rtol=0, atol=1e-12)
    assert abs(dropped.mean() - rate) < SIGMAS * math.sqrt(rate * (1 - rate) / N)
    np.testing.assert_allclose(y[~dropped], a * x[~dropped] + b)
    # Var(y) = 1; its estimate's variance is at most E[y^4] / N, E[y^4] bounded by the sample's
    assert abs(y.mean()) < SIGMAS / math.sqrt(N)
    assert abs(y.var() - 1) < SIGMAS * math.sqrt(np.mean(y ** 4) / N)


def test_alpha_dropout_noise_shape_shares_the_draw():
    x = np.random.default_rng(2).standard_normal((50, 8, 3))
    y = layers.AlphaDropout(0.5, noise_shape=(None, 1, 3), seed=1, dtype="float64")(x, training=True)
    rate = 0.5
    a = ((1 - rate) * (1 + rate * ALPHA_P ** 2)) ** -0.5
    dropped = np.isclose(y, a * ALPHA_P - a * ALPHA_P * rate)
    assert (dropped == dropped[:, :1, :]).all() and 0 < dropped.mean() < 1


@pytest.mark.parametrize("cls, shape", [(layers.SpatialDropout1D, (2000, 6, 8)),
                                        (layers.SpatialDropout2D, (1000, 3, 4, 8))])
def test_spatial_dropout_drops_whole_channels(cls, shape):
    rate = 0.3
    x = np.random.default_rng(3).random(shape) + 1.0   # never 0 by itself
    y = cls(rate, seed=0, dtype="float64")(x, training=True).numpy()
    spatial = tuple(range(1, len(shape) - 1))
    dropped = (y == 0)
    assert (dropped.all(axis=spatial) == dropped.any(axis=spatial)).all()  # whole channels
    fraction = dropped.all(axis=spatial).mean()
    n = shape[0] * shape[-1]
    assert abs(fraction - rate) < SIGMAS * math.sqrt(rate * (1 - rate) / n)
    kept = ~dropped
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate))


def test_permute_and_identity():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    perm = layers.Permute((3, 1, 2), dtype="float64")
    y = perm(x)
    np.testing.assert_array_equal(y, x.transpose(0, 3, 1, 2))
    assert perm.compute_output_shape((None, 3, 4, 5)) == (None, 5, 3, 4)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_array_equal(perm.backward(dy), dy.transpose(0, 2, 3, 1))
    ident = layers.Identity(dtype="float64")
    assert ident(x).numpy() is x and ident.backward(dy) is dy


def test_activity_regularization_adds_its_penalty():
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    model = Sequential([layers.Input((3,)), layers.ActivityRegularization(l1=0.1, l2=0.2)])
    model(x)
    expect = (0.1 * np.abs(x).sum() + 0.2 * np.square(x).sum()) / 4
    np.testing.assert_allclose(model.losses, [expect], rtol=1e-6)
    cfg = model.layers[-1].get_config()
    assert cfg["l1"] == 0.1 and cfg["l2"] == 0.2 and "activity_regularizer" not in cfg


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.GaussianNoise(1.5), ValueError, "stddev"),
    (lambda: layers.GaussianNoise("0.1"), TypeError, "stddev"),
    (lambda: layers.GaussianDropout(1.0), ValueError, "rate"),
    (lambda: layers.AlphaDropout(-0.1), ValueError, "rate"),
    (lambda: layers.SpatialDropout1D(1.0), ValueError, "rate"),
    (lambda: layers.GaussianNoise(0.1, seed="x"), TypeError, "seed"),
    (lambda: layers.Permute((1, 3)), ValueError, "consecutive"),
    (lambda: layers.Permute("12"), TypeError, "dims"),
    (lambda: layers.ActivityRegularization(l1=-1), ValueError, "l1"),
    (lambda: layers.SpatialDropout2D(0.1, data_format="channels_first"), ValueError,
     "channels_last"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_spatial_dropout_bad_rank():
    with pytest.raises(ValueError, match="expected ndim=3"):
        layers.SpatialDropout1D(0.2)(np.zeros((2, 3, 4, 5), np.float32), training=True)


def test_keras_files_both_ways(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="real Keras is the oracle")
    pytest.importorskip("torch", reason="the keras oracle runs on the torch backend")
    pytest.importorskip("h5py", reason="the .keras weights are HDF5")
    from fastdl.saving import load_model, save_model
    model = Sequential([
        layers.Input((4, 6, 3)), layers.GaussianNoise(0.1, seed=1),
        layers.SpatialDropout2D(0.2, seed=2), layers.Permute((2, 1, 3)),
        layers.Reshape((24, 3)), layers.SpatialDropout1D(0.3), layers.GaussianDropout(0.2),
        layers.AlphaDropout(0.1, noise_shape=(None, 1, 3)), layers.Identity(),
        layers.ActivityRegularization(l1=0.01), layers.Dense(2)])
    x = np.random.default_rng(0).standard_normal((3, 4, 6, 3)).astype(np.float32)
    expect = model.predict(x, verbose=0)
    path = str(tmp_path / "fastdl.keras")
    save_model(model, path)
    theirs = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)), expect, rtol=1e-5,
                               atol=1e-6)
    assert [type(l).__name__ for l in theirs.layers] == [type(l).__name__ for l in model.layers]
    back = str(tmp_path / "keras.keras")
    theirs.save(back)
    ours = load_model(back, compile=False)
    for a, b in zip(ours.layers, model.layers):
        assert a.get_config() == dict(b.get_config(), name=a.name)
    np.testing.assert_allclose(ours.predict(x, verbose=0), expect, rtol=1e-5, atol=1e-6)
