"""ConvLSTM1D/2D: forward against Keras 3 with the same weights, central-difference gradients
in float64, masks, stateful and dropout semantics, config and .keras files both ways."""
import numpy as np
import pytest

import fastdl
from fastdl import layers as L
from fastdl.models import Sequential
from gradcheck import numerical_gradient


def _keras():
    keras = pytest.importorskip("keras", reason="keras (the oracle) is not installed")
    pytest.importorskip("torch", reason="the keras oracle runs on the torch backend")
    return keras


def _x(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _flat(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


CASES = [
    (2, dict(filters=3, kernel_size=3)),
    (2, dict(filters=3, kernel_size=(2, 3), padding="same", return_sequences=True)),
    (2, dict(filters=2, kernel_size=3, strides=2, return_state=True, go_backwards=True)),
    (2, dict(filters=2, kernel_size=2, dilation_rate=2, return_sequences=True,
             return_state=True, use_bias=False)),
    (2, dict(filters=2, kernel_size=3, unit_forget_bias=False, activation="relu",
             recurrent_activation="tanh", padding="same")),
    (1, dict(filters=3, kernel_size=3, return_sequences=True, go_backwards=True)),
    (1, dict(filters=2, kernel_size=2, strides=2, return_state=True)),
]


def _keras_input(rank):
    return (2, 4, 6, 7, 2) if rank == 2 else (2, 4, 7, 3)


@pytest.mark.parametrize("rank,kwargs", CASES)
def test_forward_matches_keras(rank, kwargs):
    keras = _keras()
    x = _x(_keras_input(rank))
    theirs = getattr(keras.layers, f"ConvLSTM{rank}D")(**kwargs)
    expected = [keras.ops.convert_to_numpy(y) for y in _flat(theirs(x))]
    ours = getattr(L, f"ConvLSTM{rank}D")(**kwargs)
    ours.build(x.shape)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.weights])
    got = _flat(ours(x))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-5)
    shapes = ours.compute_output_shape(x.shape)
    assert [tuple(s) for s in (shapes if ours.return_state else [shapes])] == \
        [e.shape for e in expected]


def test_weight_layout_and_unit_forget_bias():
    layer = L.ConvLSTM2D(4, (3, 2), bias_initializer="zeros")
    layer.build((None, 5, 6, 6, 3))
    kernel, recurrent, bias = layer.weights
    assert kernel.shape == (3, 2, 3, 16) and recurrent.shape == (3, 2, 4, 16)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])


def test_mask_matches_keras():
    keras = _keras()
    x = _x((3, 5, 4, 4, 2), seed=1)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 1, 1, 0]], bool)
    kwargs = dict(filters=2, kernel_size=3, padding="same", return_sequences=True)
    theirs = keras.layers.ConvLSTM2D(**kwargs)
    expected = keras.ops.convert_to_numpy(theirs(x, mask=mask))
    ours = L.ConvLSTM2D(**kwargs)
    ours.build(x.shape)
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.weights])
    np.testing.assert_allclose(ours(x, mask=mask).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ours.compute_mask(x, mask), mask)   # return_sequences


@pytest.mark.parametrize("kwargs", [dict(return_sequences=True, strides=(1, 2)),
                                    dict(return_state=True, go_backwards=True)])
def test_gradients_against_central_differences(kwargs):
    layer = L.ConvLSTM2D(2, (2, 3), dtype="float64", bias_initializer="random_normal",
                         **kwargs)
    x = _x((2, 2, 3, 4, 1), seed=2, dtype=np.float64)
    outs = _flat(layer(x))
    rs = [np.random.default_rng(3 + i).standard_normal(o.shape) for i, o in enumerate(outs)]

    def loss():
        return float(sum(np.sum(o.numpy() * r) for o, r in zip(_flat(layer(x)), rs)))

    xt = fastdl.ops.convert_to_tensor(x)
    with fastdl.GradientTape() as tape:
        tape.watch(xt)
        total = sum(fastdl.ops.sum(o * r) for o, r in zip(_flat(layer(xt)), rs))
    variables = layer.trainable_variables
    grads = tape.gradient(total, [xt] + variables)
    np.testing.assert_allclose(grads[0].numpy(), numerical_gradient(loss, x), rtol=1e-6,
                               atol=1e-8, err_msg="input")
    for i, (w, g) in enumerate(zip(layer.trainable_weights, grads[1:])):
        np.testing.assert_allclose(g.numpy(), numerical_gradient(loss, w), rtol=1e-6,
                                   atol=1e-8, err_msg=f"weight {i}")


def test_stateful_continues_the_sequence():
    x = _x((2, 6, 4, 4, 1), seed=4)
    whole = L.ConvLSTM2D(2, 3, padding="same", return_sequences=True)
    parts = L.ConvLSTM2D(2, 3, padding="same", return_sequences=True, stateful=True)
    whole.build(x.shape)
    parts.build(x.shape)
    parts.set_weights(whole.get_weights())
    expected = whole(x).numpy()
    got = np.concatenate([parts(x[:, :3]).numpy(), parts(x[:, 3:]).numpy()], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    parts.reset_states()
    np.testing.assert_allclose(parts(x[:, :3]).numpy(), expected[:, :3], rtol=1e-6, atol=1e-6)


def test_dropout_one_mask_per_sequence_in_training_only():
    from fastdl.layers.recurrent import _dropout_mask
    from fastdl.utils.rng import seed_generator
    x = _x((2, 4, 5, 5, 3), seed=5)
    layer = L.ConvLSTM2D(2, 3, dropout=0.4, recurrent_dropout=0.3, seed=7,
                         return_sequences=True)
    plain = L.ConvLSTM2D(2, 3, return_sequences=True)
    layer.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x).numpy(), plain(x).numpy())   # inference: none
    got = layer(x, training=True).numpy()
    # the same draws by hand: an input mask and a state mask, each fixed over the time steps
    rng = seed_generator(7)
    x_mask = _dropout_mask(rng, (2, 5, 5, 3), 0.4, np.dtype(np.float32))
    h_mask = _dropout_mask(rng, (2, 3, 3, 2), 0.3, np.dtype(np.float32))
    cell = plain.cell
    h = c = fastdl.ops.zeros((2, 3, 3, 2))
    for t in range(4):
        # the cell reads h in its recurrent convolution only: masking it there is masking h
        y, (h, c) = cell.call(fastdl.ops.convert_to_tensor(x[:, t] * x_mask), [h * h_mask, c])
        np.testing.assert_allclose(got[:, t], y.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, plain(x).numpy())


def test_config_round_trip_and_keras_keys():
    layer = L.ConvLSTM2D(3, (2, 3), strides=(1, 2), padding="same", dilation_rate=1,
                         recurrent_activation="tanh", unit_forget_bias=False,
                         kernel_regularizer="l2", recurrent_constraint="non_neg",
                         dropout=0.1, seed=3, return_sequences=True, go_backwards=True)
    config = layer.get_config()
    again = L.ConvLSTM2D.from_config(config)
    assert again.get_config() == config
    assert (again.filters, again.kernel_size, again.strides, again.padding) == (
        3, (2, 3), (1, 2), "same")
    keras = _keras()
    theirs = keras.layers.ConvLSTM2D(3, (2, 3)).get_config()
    assert set(config) - {"batch_input_shape"} == set(theirs)


def test_keras_files_both_ways(tmp_path):
    keras = _keras()
    pytest.importorskip("h5py", reason=".keras files hold their weights in HDF5")
    from fastdl.saving import load_model, save_model
    x = _x((3, 3, 5, 5, 2), seed=6)
    x1 = _x((3, 3, 6, 2), seed=7)
    model = Sequential([L.Input((3, 5, 5, 2)),
                        L.ConvLSTM2D(3, 3, padding="same", return_sequences=True),
                        L.ConvLSTM2D(2, 2, strides=2), L.Flatten(), L.Dense(1)])
    model1 = Sequential([L.Input((3, 6, 2)), L.ConvLSTM1D(2, 3, go_backwards=True),
                         L.Flatten(), L.Dense(1)])
    for m, xx, name in ((model, x, "2d"), (model1, x1, "1d")):
        save_model(m, str(tmp_path / f"{name}.keras"))
        theirs = keras.models.load_model(str(tmp_path / f"{name}.keras"))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(xx)),
                                   m.predict(xx, verbose=0), rtol=1e-5, atol=1e-6)
        theirs.save(str(tmp_path / f"{name}_k.keras"))
        back = load_model(str(tmp_path / f"{name}_k.keras"))
        assert [type(a) for a in back.layers] == [type(a) for a in m.layers]
        np.testing.assert_array_equal(back.predict(xx, verbose=0), m.predict(xx, verbose=0))


def test_training_lowers_the_loss():
    x = _x((8, 3, 4, 4, 1), seed=8)
    y = x.mean(axis=(1, 2, 3))     # a function of the whole sequence
    model = Sequential([L.Input((3, 4, 4, 1)), L.ConvLSTM2D(2, 3, padding="same"),
                        L.Flatten(), L.Dense(1)])
    model.compile(optimizer=fastdl.optimizers.Adam(0.02), loss="mse")
    history = model.fit(x, y, epochs=12, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


@pytest.mark.parametrize("make,call_shape,error,match", [
    (lambda: L.ConvLSTM2D(2, 3, data_format="channels_first"), None, ValueError,
     "channels_last"),
    (lambda: L.ConvLSTM2D(2, 3, strides=2, dilation_rate=2), None, ValueError,
     "not compatible with `dilation_rate > 1`"),
    (lambda: L.ConvLSTM2D(0, 3), None, ValueError, "filters"),
    (lambda: L.ConvLSTM2D(2, 3, activation="softmax"), None, ValueError,
     "activation in"),
    (lambda: L.ConvLSTM2D(2, 3, padding="causal"), None, ValueError, "padding"),
    (lambda: L.ConvLSTM2D(2, 3), (2, 3, 4, 4), ValueError, "expected ndim=5, found ndim=4"),
    (lambda: L.ConvLSTM2D(2, 5), (2, 3, 4, 4, 1), ValueError, "less than 1"),
    (lambda: L.ConvLSTM1D(2, 3), (2, 3, 4, 4, 1), ValueError, "expected ndim=4, found ndim=5"),
    (lambda: L.ConvLSTM1D(2, 3).build((2, 3, 4, 4, 1)), None, ValueError,
     r"expects 4-D input \(batch, time, steps, channels\)"),
])
def test_bad_input(make, call_shape, error, match):
    with pytest.raises(error, match=match):
        layer = make()
        if call_shape is not None:
            layer(np.zeros(call_shape, np.float32))
