"""TimeDistributed, Masking, stateful recurrent layers and encoder-decoder states.

Expected values come from the inner layer called step by step, from the recurrent layers given
the mask explicitly, from one pass over the whole sequence (stateful chunks), from float64
central differences (tests/gradcheck.py) and from real Keras (a subprocess, skipped without
keras/torch/h5py).
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastdl
from fastdl import layers, models
from fastdl.saving import load_model, save_model
from gradcheck import check_layer_gradients, numerical_gradient

HAVE_KERAS = all(importlib.util.find_spec(m) is not None for m in ("keras", "torch", "h5py"))
needs_keras = pytest.mark.skipif(not HAVE_KERAS, reason="needs keras, torch and h5py (the "
                                 "optional peers) for the interchange with real Keras")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _randomize(model, seed):
    r = _rng(seed)
    model.set_weights([r.normal(0, 0.5, w.shape).astype(w.dtype) for w in model.get_weights()])


# ------------------------------------------------------------------------- TimeDistributed

@pytest.mark.parametrize("inner, shape", [
    (lambda: layers.Dense(3, activation="tanh"), (4, 5, 6)),
    (lambda: layers.Conv1D(2, 3, padding="same"), (3, 4, 7, 2)),
    (lambda: layers.Flatten(), (2, 3, 4, 5)),
])
def test_time_distributed_equals_the_layer_on_each_step(inner, shape):
    x = _rng(1).normal(size=shape).astype("float32")
    td = layers.TimeDistributed(inner())
    y = td(x)
    steps = np.stack([td.layer(x[:, t]) for t in range(shape[1])], axis=1)
    assert y.shape == steps.shape
    assert td.compute_output_shape((None,) + shape[1:]) == (None,) + steps.shape[1:]
    np.testing.assert_allclose(y, steps, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("inner, shape", [
    (lambda: layers.Dense(3, activation="tanh", dtype="float64"), (2, 3, 4)),
    (lambda: layers.Conv1D(2, 2, dtype="float64"), (2, 3, 4, 2)),
])
def test_time_distributed_gradients(inner, shape):
    td = layers.TimeDistributed(inner(), dtype="float64")
    check_layer_gradients(td, _rng(2).normal(size=shape))


def test_time_distributed_needs_rank_3_and_a_layer():
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        layers.TimeDistributed(layers.Dense(2))(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="keras.layers.Layer"):
        layers.TimeDistributed("dense")


def test_time_distributed_in_sequential_trains_like_the_flat_dense():
    """Dense on (B, T, F) already maps the last axis: the wrapped and the plain model must take
    the same training steps."""
    x = _rng(3).normal(size=(8, 5, 4)).astype("float32")
    y = _rng(4).normal(size=(8, 5, 2)).astype("float32")
    a = models.Sequential([layers.Input((5, 4)), layers.TimeDistributed(layers.Dense(2))])
    b = models.Sequential([layers.Input((5, 4)), layers.Dense(2)])
    _randomize(a, 0)
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer=fastdl.optimizers.SGD(0.1), loss="mse")
        m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


class _Scale(layers.Layer):
    """A layer written with ops (no backward of its own): y = x * w."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.w


def test_time_distributed_over_a_layer_written_with_ops_trains_through_the_tape():
    x = _rng(5).normal(size=(3, 4, 2))
    td = layers.TimeDistributed(_Scale(dtype="float64"), dtype="float64")
    model = models.Sequential([layers.Input((4, 2)), td])
    model.compile(optimizer=fastdl.optimizers.SGD(0.5), loss="mse")
    w = np.array([0.5, -2.0])
    td.layer.set_weights([w])
    target = np.zeros((3, 4, 2))
    model.train_on_batch(x, target)
    # d mse / d w_j = mean over (b, t, j) of 2 (x w - 0) x, counted for feature j
    grad = 2 * np.sum(x * x * w, axis=(0, 1)) / x.size
    np.testing.assert_allclose(td.layer.get_weights()[0], w - 0.5 * grad, rtol=1e-10)


def test_shared_time_distributed_in_a_functional_model_differentiates_both_calls():
    shared = layers.TimeDistributed(layers.Dense(2, activation="tanh", dtype="float64"),
                                    dtype="float64")
    a, b = layers.Input((3, 4), dtype="float64"), layers.Input((3, 4), dtype="float64")
    out = layers.Add()([shared(a), shared(b)])
    model = models.Model([a, b], out)
    xa, xb = _rng(6).normal(size=(2, 3, 4)), _rng(7).normal(size=(2, 3, 4))
    r = _rng(8).normal(size=(2, 3, 2))
    kernel = shared.layer.kernel

    def loss():
        return float(np.sum(model([xa, xb]) * r))

    with fastdl.GradientTape() as tape:
        y = model([fastdl.ops.convert_to_tensor(xa), fastdl.ops.convert_to_tensor(xb)])
        total = fastdl.ops.sum(y * r)
    grad = tape.gradient(total, shared.trainable_weights)[0]
    np.testing.assert_allclose(np.asarray(grad), numerical_gradient(loss, kernel),
                               rtol=1e-6, atol=1e-8)


def test_time_distributed_passes_the_mask_on():
    ids = np.array([[3, 1, 0, 0], [2, 2, 4, 0]])
    emb = layers.Embedding(5, 3, mask_zero=True)
    td = layers.TimeDistributed(layers.Dense(4))
    lstm = layers.LSTM(2)
    model = models.Sequential([layers.Input((4,)), emb, td, lstm])
    expected = lstm(td(emb(ids)), mask=ids != 0)
    np.testing.assert_allclose(model.predict(ids, verbose=0), expected, rtol=1e-6, atol=1e-6)
    assert np.array_equal(td.compute_mask(None, ids != 0), ids != 0)


# ------------------------------------------------------------------------- Masking

def _padded(seed=9):
    x = _rng(seed).normal(size=(3, 5, 2)).astype("float32")
    x[0, 3:] = 0.0
    x[1, :2] = 0.0
    x[2, 2] = 0.0
    x[2, 4, 0] = 0.0    # one feature at the mask value: the step is kept
    return x


def test_masking_computes_the_mask_and_zeroes_masked_steps():
    x = _padded()
    x[1, 0] = 7.0
    layer = layers.Masking(mask_value=7.0)
    mask = layer.compute_mask(x)
    assert np.array_equal(mask, np.any(x != 7.0, axis=-1))
    y = layer(x)
    np.testing.assert_array_equal(y, np.where(mask[..., None], x, 0.0))
    dy = _rng(1).normal(size=x.shape).astype("float32")
    np.testing.assert_array_equal(layer.backward(dy), np.where(mask[..., None], dy, 0.0))


@pytest.mark.parametrize("rnn", [layers.SimpleRNN, layers.LSTM, layers.GRU])
def test_masking_before_an_rnn_in_sequential_and_functional_models(rnn):
    x = _padded()
    mask = np.any(x != 0, axis=-1)
    layer = rnn(3, return_sequences=True)
    seq = models.Sequential([layers.Input((5, 2)), layers.Masking(), layer])
    inp = layers.Input((5, 2))
    fun = models.Model(inp, layer(layers.Masking()(inp)))
    expected = layer(x, mask=mask)
    np.testing.assert_allclose(seq.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fun.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(seq(x), expected, rtol=1e-6, atol=1e-6)


def test_masking_matches_embedding_mask_zero():
    """Masking over embedded ids masks the same steps as Embedding(mask_zero=True) when the
    padding id's vector is zero (its row set to 0 below)."""
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    emb = layers.Embedding(4, 3, mask_zero=True)
    lstm = layers.LSTM(2)
    a = models.Sequential([layers.Input((4,)), emb, lstm])
    emb.set_weights([np.vstack([np.zeros(3), _rng(2).normal(size=(3, 3))])])
    b_emb = layers.Embedding(4, 3)
    b = models.Sequential([layers.Input((4,)), b_emb, layers.Masking(), lstm])
    b_emb.set_weights(emb.get_weights())
    np.testing.assert_allclose(a.predict(ids, verbose=0), b.predict(ids, verbose=0),
                               rtol=1e-6, atol=1e-6)


def test_masking_then_lstm_trains_in_both_model_kinds_alike():
    x = _padded().astype("float64")
    y = _rng(3).normal(size=(3, 2))

    def build(functional):
        lstm = layers.LSTM(2, dtype="float64")
        if functional:
            inp = layers.Input((5, 2), dtype="float64")
            m = models.Model(inp, lstm(layers.Masking(dtype="float64")(inp)))
        else:
            m = models.Sequential([layers.Input((5, 2), dtype="float64"),
                                   layers.Masking(dtype="float64"), lstm])
        m.build((None, 5, 2)) if not functional else None
        return m, lstm

    (seq, l1), (fun, l2) = build(False), build(True)
    _randomize(seq, 1)
    fun.set_weights(seq.get_weights())
    for m in (seq, fun):
        m.compile(optimizer=fastdl.optimizers.SGD(0.1), loss="mse")
        m.train_on_batch(x, y)
    for wa, wb in zip(l1.get_weights(), l2.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-10, atol=1e-12)


def test_masking_refuses_a_non_number():
    with pytest.raises(TypeError, match="mask_value"):
        layers.Masking(mask_value="0")


# ------------------------------------------------------------------------- stateful

@pytest.mark.parametrize("rnn", [layers.SimpleRNN, layers.LSTM, layers.GRU])
def test_stateful_chunks_equal_one_pass(rnn):
    x = _rng(10).normal(size=(2, 9, 3))
    stateful = rnn(4, stateful=True, return_sequences=True, dtype="float64")
    whole = rnn(4, return_sequences=True, dtype="float64")
    chunks = [stateful(x[:, a:b]) for a, b in ((0, 4), (4, 5), (5, 9))]
    whole(x[:, :1])   # builds it
    whole.set_weights(stateful.get_weights())
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), whole(x), rtol=1e-12, atol=1e-12)
    stateful.reset_states()
    np.testing.assert_allclose(stateful(x[:, :4]), chunks[0], rtol=1e-12, atol=1e-12)
    stateful.reset_state()
    np.testing.assert_allclose(stateful(x[:, :4]), chunks[0], rtol=1e-12, atol=1e-12)


def test_stateful_batch_size_is_fixed():
    layer = layers.LSTM(2, stateful=True)
    layer(np.zeros((3, 2, 1), "float32"))
    with pytest.raises(ValueError, match="expected batch size 3, received 2"):
        layer(np.zeros((2, 2, 1), "float32"))
    declared = layers.GRU(2, stateful=True, batch_input_shape=(4, 2, 1))
    with pytest.raises(ValueError, match="expected batch size 4, received 3"):
        declared(np.zeros((3, 2, 1), "float32"))


def test_stateful_sequential_fit_and_predict_carry_the_state():
    x = _rng(11).normal(size=(2, 8, 3)).astype("float32")
    model = models.Sequential([layers.Input(batch_shape=(2, 4, 3)),
                               layers.GRU(3, stateful=True, return_sequences=True)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x[:, :4], np.zeros((2, 4, 3)), batch_size=2, epochs=1, verbose=0)
    gru = model.layers[0]
    gru.reset_states()
    first = model.predict(x[:, :4], batch_size=2, verbose=0)
    second = model.predict(x[:, 4:], batch_size=2, verbose=0)
    whole = layers.GRU(3, return_sequences=True)
    whole(x[:, :1])   # builds it
    whole.set_weights(gru.get_weights())
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole(x), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------- encoder-decoder

def _seq2seq(dtype="float64", cell=layers.LSTM):
    enc_in = layers.Input((5, 3), dtype=dtype, name="encoder_input")
    dec_in = layers.Input((4, 2), dtype=dtype, name="decoder_input")
    _, *states = cell(4, return_state=True, dtype=dtype)(enc_in)
    y = cell(4, return_sequences=True, dtype=dtype)(dec_in, initial_state=states)
    return models.Model([enc_in, dec_in], layers.Dense(2, dtype=dtype)(y))


def _seq2seq_data():
    r = _rng(13)
    return r.normal(size=(3, 5, 3)), r.normal(size=(3, 4, 2)), r.normal(size=(3, 4, 2))


@pytest.mark.parametrize("cell", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_seq2seq_gradients_reach_the_encoder(cell):
    """Encoder states as the decoder's initial_state: the tape's gradients of every weight,
    the encoder's included, against central differences."""
    model = _seq2seq(cell=cell)
    xe, xd, r = _seq2seq_data()

    def loss():
        return float(np.sum(model([xe, xd]) * r))

    with fastdl.GradientTape() as tape:
        y = model([fastdl.ops.convert_to_tensor(xe), fastdl.ops.convert_to_tensor(xd)])
        total = fastdl.ops.sum(y * r)
    weights = model.trainable_weights
    assert len(weights) == 8
    for w, g in zip(weights, tape.gradient(total, weights)):
        assert g is not None
        np.testing.assert_allclose(np.asarray(g), numerical_gradient(loss, w), rtol=1e-6,
                                   atol=1e-8)


def test_seq2seq_fit_lowers_the_loss():
    model = _seq2seq()
    xe, xd, y = _seq2seq_data()
    model.compile(optimizer=fastdl.optimizers.Adam(0.05), loss="mse")
    history = model.fit([xe, xd], y, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


def test_return_state_and_initial_state_on_tensors_differentiate_the_states():
    layer = layers.GRU(3, return_sequences=True, return_state=True, dtype="float64")
    x = _rng(14).normal(size=(2, 4, 2))
    h0 = _rng(15).normal(size=(2, 3))
    r_y, r_h = _rng(16).normal(size=(2, 4, 3)), _rng(17).normal(size=(2, 3))

    def loss():
        y, h = layer(x, initial_state=[h0])
        return float(np.sum(y * r_y) + np.sum(h * r_h))

    h0t = fastdl.ops.convert_to_tensor(h0)
    with fastdl.GradientTape() as tape:
        tape.watch(h0t)
        y, h = layer(x, initial_state=[h0t])   # arrays inside a recording tape: recorded
        total = fastdl.ops.sum(y * r_y) + fastdl.ops.sum(h * r_h)
    g_h0, *g_w = tape.gradient(total, [h0t] + layer.trainable_weights)
    np.testing.assert_allclose(np.asarray(g_h0), numerical_gradient(loss, h0), rtol=1e-6,
                               atol=1e-8)
    for w, g in zip(layer.trainable_weights, g_w):
        np.testing.assert_allclose(np.asarray(g), numerical_gradient(loss, w), rtol=1e-6,
                                   atol=1e-8)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
def test_bidirectional_trains_in_a_functional_model(merge_mode):
    """Bidirectional is a tape primitive: a shared one, called twice, gets the gradient of
    both calls (central differences), and fit trains it inside a functional model."""
    shared = layers.Bidirectional(layers.LSTM(2, dtype="float64"), merge_mode=merge_mode,
                                  dtype="float64")
    a, b = layers.Input((3, 2), dtype="float64"), layers.Input((3, 2), dtype="float64")
    ya, yb = shared(a), shared(b)
    if merge_mode is None:
        out = layers.Concatenate()([*ya, *yb])
    else:
        out = layers.Concatenate()([ya, yb])
    model = models.Model([a, b], out)
    xa, xb = _rng(18).normal(size=(2, 3, 2)), _rng(19).normal(size=(2, 3, 2))
    r = _rng(20).normal(size=model([xa, xb]).shape)

    def loss():
        return float(np.sum(model([xa, xb]) * r))

    with fastdl.GradientTape() as tape:
        y = model([fastdl.ops.convert_to_tensor(xa), fastdl.ops.convert_to_tensor(xb)])
        total = fastdl.ops.sum(y * r)
    weights = shared.trainable_weights
    for w, g in zip(weights, tape.gradient(total, weights)):
        np.testing.assert_allclose(np.asarray(g), numerical_gradient(loss, w), rtol=1e-6,
                                   atol=1e-8)
    model.compile(optimizer="sgd", loss="mse")
    before = [w.copy() for w in weights]
    model.fit([xa, xb], r, epochs=1, verbose=0)
    assert all(not np.array_equal(w0, w) for w0, w in zip(before, weights))


# ------------------------------------------------------------------------- cell API

_CELL_PAIRS = [(layers.SimpleRNNCell, layers.SimpleRNN, {}), (layers.LSTMCell, layers.LSTM, {}),
               (layers.GRUCell, layers.GRU, {}), (layers.GRUCell, layers.GRU,
                                                  {"reset_after": False})]
_CELL_IDS = ["simple_rnn", "lstm", "gru", "gru_reset_before"]


def _cell_and_layer(cell_cls, layer_cls, kw, **options):
    x = _rng(21).normal(size=(3, 5, 2))
    layer = layer_cls(4, dtype="float64", **kw, **options)
    rnn = layers.RNN(cell_cls(4, dtype="float64", **kw), dtype="float64", **options)
    layer(x)
    rnn(x)
    layer.set_weights([_rng(22).normal(0, 0.5, w.shape) for w in layer.get_weights()])
    rnn.set_weights(layer.get_weights())
    return x, layer, rnn


@pytest.mark.parametrize("cell_cls, layer_cls, kw", _CELL_PAIRS, ids=_CELL_IDS)
@pytest.mark.parametrize("options", [{}, {"return_sequences": True, "go_backwards": True},
                                     {"return_sequences": True, "return_state": True}])
def test_rnn_over_a_builtin_cell_equals_the_layer(cell_cls, layer_cls, kw, options):
    x, layer, rnn = _cell_and_layer(cell_cls, layer_cls, kw, **options)
    mask = np.ones((3, 5), bool)
    mask[0, 3:] = False
    mask[1, 0] = False
    for m in (None, mask):
        ours, theirs = rnn(x, mask=m), layer(x, mask=m)
        for a, b in zip(ours if isinstance(ours, list) else [ours],
                        theirs if isinstance(theirs, list) else [theirs]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell_cls, layer_cls, kw", _CELL_PAIRS, ids=_CELL_IDS)
def test_rnn_over_a_cell_differentiates_through_the_tape(cell_cls, layer_cls, kw):
    """The tape's gradients of RNN(cell) equal the C++ backward of the matching layer."""
    x, layer, rnn = _cell_and_layer(cell_cls, layer_cls, kw, return_sequences=True)
    r = _rng(23).normal(size=(3, 5, 4))
    xt = fastdl.ops.convert_to_tensor(x)
    with fastdl.GradientTape() as tape:
        tape.watch(xt)
        total = fastdl.ops.sum(rnn(xt) * r)
    grads = tape.gradient(total, [xt] + rnn.trainable_weights)
    layer(x, training=True)
    dx = layer.backward(r)
    for got, want in zip(grads, [dx] + layer.grads):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-12)


class _MinimalRNNCell(layers.Layer):
    """Keras's documentation example of a custom cell, written with ops."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                initializer="orthogonal",
                                                name="recurrent_kernel")

    def call(self, inputs, states):
        prev = states[0]
        output = fastdl.ops.matmul(inputs, self.kernel) + fastdl.ops.matmul(
            prev, self.recurrent_kernel)
        return output, [output]


def test_rnn_over_a_custom_cell_trains_and_matches_central_differences():
    cell = _MinimalRNNCell(3, dtype="float64")
    rnn = layers.RNN(cell, dtype="float64")
    x, y = _rng(24).normal(size=(4, 5, 2)), _rng(25).normal(size=(4, 3))
    rnn(x)
    r = _rng(26).normal(size=(4, 3))

    def loss():
        return float(np.sum(rnn(x) * r))

    with fastdl.GradientTape() as tape:
        total = fastdl.ops.sum(rnn(fastdl.ops.convert_to_tensor(x)) * r)
    for w, g in zip(rnn.trainable_weights, tape.gradient(total, rnn.trainable_weights)):
        np.testing.assert_allclose(np.asarray(g), numerical_gradient(loss, w), rtol=1e-6,
                                   atol=1e-8)
    model = models.Sequential([layers.Input((5, 2), dtype="float64"), rnn])
    model.compile(optimizer=fastdl.optimizers.Adam(0.05), loss="mse")
    history = model.fit(x, y, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


def test_stacked_cells_equal_stacked_layers_and_return_flat_states():
    x = _rng(27).normal(size=(2, 4, 3))
    first = layers.LSTM(5, return_sequences=True, return_state=True, dtype="float64")
    second = layers.GRU(2, return_state=True, dtype="float64")
    rnn = layers.RNN([layers.LSTMCell(5, dtype="float64"), layers.GRUCell(2, dtype="float64")],
                     return_state=True, dtype="float64")
    seq, h1, c1 = first(x)
    expected = [second(seq)[0], h1, c1, second(seq)[1]]
    rnn(x)
    rnn.set_weights(first.get_weights() + second.get_weights())
    for a, b in zip(rnn(x), expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_stateful_rnn_over_a_cell_carries_the_states():
    x = _rng(28).normal(size=(2, 6, 3))
    rnn = layers.RNN(layers.LSTMCell(3, dtype="float64"), stateful=True, return_sequences=True,
                     dtype="float64")
    chunks = np.concatenate([rnn(x[:, :2]), rnn(x[:, 2:])], axis=1)
    rnn.reset_states()
    np.testing.assert_allclose(chunks, rnn(x), rtol=1e-12, atol=1e-12)


def test_cell_api_refuses_what_it_lacks():
    with pytest.raises(ValueError, match="recurrent_dropout is not implemented"):
        layers.LSTMCell(2, recurrent_dropout=0.5)
    with pytest.raises(ValueError, match="state_size"):
        layers.RNN(layers.Dense(2))
    with pytest.raises(ValueError, match="non-empty list"):
        layers.StackedRNNCells([])


# ------------------------------------------------------------------------- real Keras

def _interop_model():
    return models.Sequential([
        layers.Input(batch_shape=(2, 6, 3)), layers.Masking(),
        layers.TimeDistributed(layers.Dense(4, activation="tanh")),
        layers.LSTM(3, stateful=True, return_sequences=True),
        layers.TimeDistributed(layers.Dense(2))])


_WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    job = json.load(open(sys.argv[1]))
    x = np.load(job["x"])
    def stateful_predict(m):
        lstm = [l for l in m.layers if isinstance(l, keras.layers.LSTM)][0]
        lstm.reset_states()
        a = m.predict(x[:, :6], batch_size=2, verbose=0)
        b = m.predict(x[:, 6:], batch_size=2, verbose=0)
        return np.concatenate([a, b], axis=1)
    m = keras.saving.load_model(job["fastdl_file"])
    np.save(job["fastdl_file"] + ".pred.npy", stateful_predict(m))
    L = keras.layers
    k = keras.Sequential([keras.Input(batch_shape=(2, 6, 3)), L.Masking(),
                          L.TimeDistributed(L.Dense(4, activation="tanh")),
                          L.LSTM(3, stateful=True, return_sequences=True),
                          L.TimeDistributed(L.Dense(2))])
    r = np.random.default_rng(3)
    k.set_weights([r.normal(0, 0.5, w.shape).astype("float32") for w in k.get_weights()])
    k.save(job["keras_file"])
    np.save(job["keras_file"] + ".pred.npy", stateful_predict(k))
    # the encoder-decoder with fastdl's weights
    s2s = np.load(job["seq2seq"])
    enc_in, dec_in = keras.Input((5, 3)), keras.Input((4, 2))
    enc, dec, dense = L.LSTM(4, return_state=True), L.LSTM(4, return_sequences=True), L.Dense(2)
    _, h, c = enc(enc_in)
    model = keras.Model([enc_in, dec_in], dense(dec(dec_in, initial_state=[h, c])))
    for i, layer in enumerate((enc, dec, dense)):
        layer.set_weights([s2s[f"w{i}_{j}"] for j in range(len(layer.weights))])
    np.save(job["seq2seq"] + ".pred.npy",
            np.asarray(model.predict([s2s["xe"], s2s["xd"]], verbose=0)))
    # the cell API both ways
    xc = np.load(job["cells_x"])
    m = keras.saving.load_model(job["cells_fastdl"])
    np.save(job["cells_fastdl"] + ".pred.npy", m.predict(xc, verbose=0))
    k = keras.Sequential([keras.Input((5, 3)), L.RNN(L.LSTMCell(4), return_sequences=True),
                          L.RNN([L.GRUCell(2), L.SimpleRNNCell(3)])])
    k.set_weights([r.normal(0, 0.5, w.shape).astype("float32") for w in k.get_weights()])
    k.save(job["cells_keras"])
    np.save(job["cells_keras"] + ".pred.npy", k.predict(xc, verbose=0))
    print("worker done")
""")


@needs_keras
def test_keras_round_trip_of_sequence_layers_cells_and_seq2seq(tmp_path):
    """fastdl's .keras files in Keras and Keras's in fastdl (same predictions): Masking,
    TimeDistributed and a stateful LSTM (chunks included), RNN over cells and stacked cells; and
    an encoder-decoder with fastdl's weights predicted by Keras."""
    x = _rng(12).normal(size=(2, 12, 3)).astype("float32")
    x[0, 4:7] = 0.0
    x[1, 10:] = 0.0
    model = _interop_model()
    model.build((2, 6, 3))
    _randomize(model, 5)
    lstm = model.layers[2]

    def stateful_predict(m, layer):
        layer.reset_states()
        return np.concatenate([m.predict(x[:, :6], batch_size=2, verbose=0),
                               m.predict(x[:, 6:], batch_size=2, verbose=0)], axis=1)

    ours = stateful_predict(model, lstm)
    s2s = _seq2seq("float32")
    _randomize(s2s, 6)
    xe, xd, _ = (a.astype("float32") for a in _seq2seq_data())
    trained = [l for l in s2s.layers if l.weights]
    cells = models.Sequential([layers.Input((5, 3)),
                               layers.RNN(layers.LSTMCell(4), return_sequences=True),
                               layers.RNN([layers.GRUCell(2), layers.SimpleRNNCell(3)])])
    _randomize(cells, 7)
    xc = _rng(29).normal(size=(2, 5, 3)).astype("float32")
    np.save(tmp_path / "xc.npy", xc)
    save_model(cells, tmp_path / "cells_fastdl.keras")
    np.savez(tmp_path / "s2s.npz", xe=xe, xd=xd, **{f"w{i}_{j}": w for i, l in enumerate(trained)
                                                   for j, w in enumerate(l.get_weights())})
    save_model(model, tmp_path / "fastdl.keras")
    np.save(tmp_path / "x.npy", x)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"x": str(tmp_path / "x.npy"),
                               "fastdl_file": str(tmp_path / "fastdl.keras"),
                               "keras_file": str(tmp_path / "keras.keras"),
                               "seq2seq": str(tmp_path / "s2s.npz"),
                               "cells_x": str(tmp_path / "xc.npy"),
                               "cells_fastdl": str(tmp_path / "cells_fastdl.keras"),
                               "cells_keras": str(tmp_path / "cells_keras.keras")}))
    (tmp_path / "worker.py").write_text(_WORKER)
    env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(tmp_path / "worker.py"), str(job)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "worker done" in proc.stdout, proc.stderr[-4000:]
    np.testing.assert_allclose(np.load(tmp_path / "fastdl.keras.pred.npy"), ours,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "s2s.npz.pred.npy"), s2s.predict([xe, xd], verbose=0),
                               rtol=1e-5, atol=1e-5)
    loaded = load_model(tmp_path / "keras.keras", compile=False)
    assert [type(l).__name__ for l in loaded.layers] == [
        "Masking", "TimeDistributed", "LSTM", "TimeDistributed"]
    assert loaded.layers[2].stateful
    theirs = np.load(tmp_path / "keras.keras.pred.npy")
    np.testing.assert_allclose(stateful_predict(loaded, loaded.layers[2]), theirs,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "cells_fastdl.keras.pred.npy"),
                               cells.predict(xc, verbose=0), rtol=1e-5, atol=1e-5)
    theirs_cells = load_model(tmp_path / "cells_keras.keras", compile=False)
    np.testing.assert_allclose(theirs_cells.predict(xc, verbose=0),
                               np.load(tmp_path / "cells_keras.keras.pred.npy"), rtol=1e-5,
                               atol=1e-5)
    # and fastdl's own round trip of the file it wrote
    again = load_model(tmp_path / "fastdl.keras")
    np.testing.assert_allclose(stateful_predict(again, again.layers[2]), ours, rtol=1e-6,
                               atol=1e-6)


def _keras():
    pytest.importorskip("torch", reason="Keras runs on its torch backend here")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="real Keras is the oracle of this test")


def _keras_io_seq2seq(k):
    """The keras.io character-level LSTM seq2seq training model, with library ``k``: the
    encoder's states (``return_state=True``) are the decoder's ``initial_state``."""
    encoder_inputs = k.Input(shape=(None, 5))
    _, state_h, state_c = k.layers.LSTM(8, return_state=True)(encoder_inputs)
    decoder_inputs = k.Input(shape=(None, 6))
    decoder_outputs, _, _ = k.layers.LSTM(8, return_sequences=True, return_state=True)(
        decoder_inputs, initial_state=[state_h, state_c])
    decoder_outputs = k.layers.Dense(6, activation="softmax")(decoder_outputs)
    return k.Model([encoder_inputs, decoder_inputs], decoder_outputs)


def test_keras_io_seq2seq_trains_with_fit_and_matches_keras(tmp_path):
    keras = _keras()
    r = _rng(21)
    xe = r.random((12, 7, 5)).astype(np.float32)
    xd = r.random((12, 4, 6)).astype(np.float32)
    y = np.eye(6, dtype=np.float32)[r.integers(0, 6, (12, 4))]
    model = _keras_io_seq2seq(fastdl)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    history = model.fit([xe, xd], y, batch_size=4, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    theirs = _keras_io_seq2seq(keras)
    theirs.set_weights(model.get_weights())
    ours = model.predict([xe, xd], verbose=0)
    expected = keras.ops.convert_to_numpy(theirs([xe, xd]))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "seq2seq.keras")
    model.save(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(path)(
        [xe, xd])), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(load_model(path).predict([xe, xd], verbose=0), ours)
