"""SimpleRNN / LSTM / GRU / Bidirectional: kernels vs float64 cell loops, Keras golden values,
gradients by central differences, float32 vs float64, masks, bad input, layer API."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastdl
from fastdl import _core, layers
from fastdl.ops.core import rnn as rnn_ops
from fastdl.utils import set_random_seed
from gradcheck import check_layer_gradients, numerical_gradient

import reference_rnn as ref

CELLS = [("simple_rnn", {}), ("lstm", {}), ("gru", {"reset_after": True}),
         ("gru", {"reset_after": False})]
CELL_IDS = ["simple_rnn", "lstm", "gru", "gru_reset_before"]
LAYERS = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _weights(rng, cell, features, units, reset_after=True, scale=0.6):
    g = GATES[cell] * units
    kernel = rng.standard_normal((features, g)) * scale
    recurrent = rng.standard_normal((units, g)) * scale
    bias = rng.standard_normal((2, g) if cell == "gru" and reset_after else (g,)) * scale
    return kernel, recurrent, bias


def _reference(cell, x, k, r, b, states, mask, extra, rs, gb, zero_output=False):
    if cell == "simple_rnn":
        return ref.simple_rnn(x, k, r, b, states[0], mask, extra.get("activation", "tanh"),
                              rs, gb, zero_output)
    if cell == "lstm":
        return ref.lstm(x, k, r, b, states[0], states[1], mask, rs, gb, zero_output)
    return ref.gru(x, k, r, b, states[0], mask, extra["reset_after"], rs, gb, zero_output)


def _mask(rng, n, t):
    mask = rng.random((n, t)) > 0.35
    mask[0, 0] = False   # masked first step: output zeros, state carried from h0
    mask[-1, -1] = False  # masked last step
    return mask


# ---------------------------------------------------------------------------- forward
@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_forward_matches_float64_cell_loop(cell, extra, return_sequences, go_backwards, masked,
                                           with_state):
    rng = np.random.default_rng(0)
    n, t, f, u = 3, 5, 4, 6
    x = rng.standard_normal((n, t, f))
    k, r, b = _weights(rng, cell, f, u, **extra)
    mask = _mask(rng, n, t) if masked else None
    states = [rng.standard_normal((n, u)) for _ in range(rnn_ops.num_states(cell))] \
        if with_state else [None] * rnn_ops.num_states(cell)
    y, final, _ = rnn_ops.rnn_forward(cell, x, k, r, b, states if with_state else None, mask,
                                      return_sequences=return_sequences,
                                      go_backwards=go_backwards, **extra)
    y_ref, final_ref = _reference(cell, x, k, r, b, states, mask, extra, return_sequences,
                                  go_backwards)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    for s, s_ref in zip(final, final_ref):
        np.testing.assert_allclose(s, s_ref, rtol=1e-12, atol=1e-12)
    # float32 kernels against the same float64 reference
    args32 = [a.astype(np.float32) for a in (x, k, r, b)]
    st32 = [s.astype(np.float32) for s in states] if with_state else None
    y32, final32, _ = rnn_ops.rnn_forward(cell, *args32, st32, mask,
                                          return_sequences=return_sequences,
                                          go_backwards=go_backwards, **extra)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y_ref, rtol=1e-5, atol=1e-5)
    for s, s_ref in zip(final32, final_ref):
        np.testing.assert_allclose(s, s_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_simple_rnn_activations(activation):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 3))
    k, r, b = _weights(rng, "simple_rnn", 3, 4, scale=0.4)
    y, final, _ = rnn_ops.rnn_forward("simple_rnn", x, k, r, b, activation=activation,
                                      return_sequences=True)
    y_ref, _ = ref.simple_rnn(x, k, r, b, activation=activation, return_sequences=True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
def test_zero_output_for_mask(cell, extra):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 2))
    k, r, b = _weights(rng, cell, 2, 3, **extra)
    mask = _mask(rng, 3, 5)
    y, _, _ = rnn_ops.rnn_forward(cell, x, k, r, b, mask=mask, return_sequences=True,
                                  zero_output_for_mask=True, **extra)
    y_ref, _ = _reference(cell, x, k, r, b, [None, None], mask, extra, True, False, True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    assert np.all(y[~mask] == 0)


@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
def test_masked_steps_carry_state_and_output(cell, extra):
    """Keras semantics, checked directly: a masked step repeats the previous output (zeros
    before the first processed step) and keeps the state; an all-masked row returns h0."""
    rng = np.random.default_rng(3)
    n, t, u = 3, 6, 4
    x = rng.standard_normal((n, t, 2))
    k, r, b = _weights(rng, cell, 2, u, **extra)
    mask = np.ones((n, t), bool)
    mask[0, :2] = False
    mask[1, 3:] = False
    mask[2, :] = False
    h0 = [rng.standard_normal((n, u)) for _ in range(rnn_ops.num_states(cell))]
    y, final, _ = rnn_ops.rnn_forward(cell, x, k, r, b, h0, mask, return_sequences=True, **extra)
    assert np.all(y[0, :2] == 0)
    np.testing.assert_array_equal(y[1, 3:], np.repeat(y[1, 2:3], 3, axis=0))
    np.testing.assert_array_equal(final[0][1], y[1, 2])
    assert np.all(y[2] == 0)
    for s, s0 in zip(final, h0):
        np.testing.assert_array_equal(s[2], s0[2])
    # the unmasked prefix of row 1 equals a run on that prefix alone
    y_prefix, _, _ = rnn_ops.rnn_forward(cell, x[1:2, :3], k, r, b, [s[1:2] for s in h0],
                                         return_sequences=True, **extra)
    np.testing.assert_allclose(y[1:2, :3], y_prefix, rtol=1e-13, atol=1e-13)


GOLDEN = os.path.join(os.path.dirname(__file__), "data", "rnn_keras_golden.npz")


def _golden_cases():
    with np.load(GOLDEN, allow_pickle=False) as d:
        return [str(c) for c in d["cases"]]


@pytest.mark.parametrize("case", _golden_cases())
def test_matches_keras_golden_values(case):
    """Outputs of real Keras 3 for masked sequences with initial states, saved in
    tests/data/rnn_keras_golden.npz by tests/data/make_rnn_keras_golden.py (x (3, 6, 4), mask
    with masked first and last steps, random biases; each layer with return_sequences=True,
    return_state=True)."""
    with np.load(GOLDEN, allow_pickle=False) as d:
        g = {key: d[key] for key in d.files}
    x, mask, h0, c0 = g["x"], g["mask"], g["h0"], g["c0"]
    weights = [g[f"{case}/w{i}"] for i in range(6) if f"{case}/w{i}" in g]
    if case.startswith("bidirectional"):
        merge = case.split("_", 1)[1]
        layer = layers.Bidirectional(layers.GRU(5, return_sequences=True), merge_mode=merge)
        layer._maybe_build(x.shape)
        layer.set_weights(weights)
        outs = [layer(x, mask=mask)]
    else:
        name, gb = case.rsplit("_gb", 1)
        kwargs = {"activation": "relu"} if name == "simple_rnn_relu" else {}
        if name == "gru_reset_before":
            kwargs = {"reset_after": False}
        cls = LAYERS[name.replace("_relu", "").replace("_reset_before", "")]
        layer = cls(5, return_sequences=True, return_state=True, go_backwards=gb == "1", **kwargs)
        layer._maybe_build(x.shape)
        layer.set_weights(weights)
        outs = layer(x, mask=mask, initial_state=[h0, c0] if name == "lstm" else [h0])
    for i, out in enumerate(outs):
        np.testing.assert_allclose(out, g[f"{case}/y{i}"], rtol=1e-5, atol=2e-6,
                                   err_msg=f"{case} output {i}")


@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("keras", "torch")),
                    reason="needs keras and torch (optional peers; CI installs them)")
def test_keras_golden_file_is_what_keras_computes():
    """Provenance of the golden file: the installed Keras, given the file's inputs and weights,
    gives the file's outputs (the script's --check; Keras in a child process, as it is slow to
    import and stays out of this one)."""
    script = os.path.join(os.path.dirname(GOLDEN), "make_rnn_keras_golden.py")
    env = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "matches Keras" in result.stdout


# ---------------------------------------------------------------------------- gradients
def _layer(cell, extra, units=3, dtype="float64", **kwargs):
    set_random_seed(7)
    kwargs = dict(kwargs)
    if cell == "gru":
        kwargs["reset_after"] = extra["reset_after"]
    layer = LAYERS[cell](units, dtype=dtype, bias_initializer="random_normal", **kwargs)
    return layer


@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("options", [
    {},
    {"return_sequences": True},
    {"go_backwards": True},
    {"return_sequences": True, "go_backwards": True},
], ids=["last", "sequences", "backwards", "sequences_backwards"])
def test_gradients_central_differences(cell, extra, options):
    layer = _layer(cell, extra, **options)
    x = np.random.default_rng(4).standard_normal((2, 4, 3))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_gradients_with_mask(cell, extra, return_sequences):
    layer = _layer(cell, extra, return_sequences=return_sequences)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 2))
    mask = _mask(rng, 3, 5)
    check_layer_gradients(layer, x, mask=mask)


def test_gradients_with_mask_relu_and_zero_output():
    layer = layers.SimpleRNN(3, activation="sigmoid", dtype="float64", return_sequences=True,
                             zero_output_for_mask=True, go_backwards=True)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5, 2))
    check_layer_gradients(layer, x, mask=_mask(rng, 3, 5))


def _check_state_gradients(layer, x, states, mask=None, seed=0):
    """Central differences for the initial states and the final states' gradients."""
    out = layer(x, training=True, mask=mask, initial_state=states)
    rng = np.random.default_rng(seed)
    rs = [rng.standard_normal(o.shape) for o in out]

    def loss():
        res = layer(x, training=True, mask=mask, initial_state=states)
        return float(sum(np.sum(o * r) for o, r in zip(res, rs)))

    layer(x, training=True, mask=mask, initial_state=states)
    dx = layer.backward([r.copy() for r in rs])
    d0 = [d.copy() for d in layer.d_initial_state]
    grads = [g.copy() for g in layer.grads]
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-4, atol=1e-6)
    for s, d in zip(states, d0):
        np.testing.assert_allclose(d, numerical_gradient(loss, s), rtol=1e-4, atol=1e-6)
    for w, g in zip(layer.trainable_weights, grads):
        np.testing.assert_allclose(g, numerical_gradient(loss, w), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_initial_and_final_states(cell, extra, masked):
    layer = _layer(cell, extra, return_state=True, return_sequences=True)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 2))
    states = [rng.standard_normal((2, 3)) for _ in range(rnn_ops.num_states(cell))]
    _check_state_gradients(layer, x, states, _mask(rng, 2, 4) if masked else None)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_gradients(merge_mode, return_sequences):
    set_random_seed(9)
    inner = layers.GRU(3, return_sequences=return_sequences, dtype="float64",
                       bias_initializer="random_normal")
    layer = layers.Bidirectional(inner, merge_mode=merge_mode, dtype="float64")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 4, 3))
    check_layer_gradients(layer, x)
    check_layer_gradients(layer, x, mask=_mask(rng, 2, 4))


def test_bidirectional_lstm_states_gradients():
    set_random_seed(11)
    layer = layers.Bidirectional(layers.LSTM(2, return_sequences=True, return_state=True,
                                             dtype="float64", bias_initializer="random_normal"),
                                 dtype="float64")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 2))
    states = [rng.standard_normal((2, 2)) for _ in range(4)]
    _check_state_gradients(layer, x, states)


@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("masked", [False, True])
def test_float32_gradients_match_float64(cell, extra, masked):
    l64 = _layer(cell, extra, units=8, return_sequences=True)
    l32 = _layer(cell, extra, units=8, dtype="float32", return_sequences=True)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((5, 12, 6)) * 0.5
    mask = _mask(rng, 5, 12) if masked else None
    l64(x), l32(x.astype(np.float32))
    l32.set_weights(l64.get_weights())
    y64 = l64(x, training=True, mask=mask)
    y32 = l32(x.astype(np.float32), training=True, mask=mask)
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y64.shape)
    dx64, dx32 = l64.backward(dy), l32.backward(dy.astype(np.float32))
    assert dx32.dtype == np.float32
    np.testing.assert_allclose(dx32, dx64, rtol=1e-4, atol=2e-5)
    for g32, g64 in zip(l32.grads, l64.grads):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=5e-5)


# ---------------------------------------------------------------------------- threads, layout
@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
def test_thread_count_does_not_change_outputs(cell, extra):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((37, 9, 5)).astype(np.float32)
    k, r, b = (a.astype(np.float32) for a in _weights(rng, cell, 5, 7, **extra))
    mask = _mask(rng, 37, 9)
    before = fastdl.get_num_threads()
    try:
        results = []
        for nt in (1, 2, 3):
            fastdl.set_num_threads(nt)
            y, st, tape = rnn_ops.rnn_forward(cell, x, k, r, b, None, mask,
                                              return_sequences=True, training=True, **extra)
            grads = rnn_ops.rnn_backward(tape, np.ones_like(y))
            results.append((y, st, grads))
    finally:
        fastdl.set_num_threads(before)
    y1, st1, g1 = results[0]
    for y, st, g in results[1:]:
        np.testing.assert_array_equal(y, y1)  # batch rows never depend on the thread split
        np.testing.assert_array_equal(g[0], g1[0])  # dx likewise
        for a, b_ in zip(g[1:4], g1[1:4]):  # weight gradients: summed per thread
            np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-5)


def test_float_kernels_leave_the_callers_floating_point_mode_alone():
    """The float32 kernels flush subnormals in their own threads only while they run."""
    tiny = np.float32(1e-38)
    assert tiny / np.float32(100) != 0  # subnormal arithmetic works before ...
    rng = np.random.default_rng(24)
    x = rng.standard_normal((8, 30, 3)).astype(np.float32)
    k, r, b = (a.astype(np.float32) for a in _weights(rng, "gru", 3, 4))
    y, _, tape = rnn_ops.rnn_forward("gru", x, k, r, b, training=True)
    rnn_ops.rnn_backward(tape, y)
    rnn_ops.embedding_lookup(k, np.zeros((2, 2), np.int64))
    assert tiny / np.float32(100) != 0  # ... and after
    assert np.float32(1e-38) * np.float32(0.01) > 0


def test_any_memory_layout_gives_the_same_result():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((4, 12, 6))
    k, r, b = _weights(rng, "lstm", 3, 5)
    expected, _, _ = rnn_ops.rnn_forward("lstm", np.ascontiguousarray(x[:, ::2, ::2]), k, r, b)
    for xv in (x[:, ::2, ::2], np.asfortranarray(x[:, ::2, ::2])):
        y, _, _ = rnn_ops.rnn_forward("lstm", xv, np.asfortranarray(k), r.T.copy().T, b)
        np.testing.assert_array_equal(y, expected)
    xr = np.ascontiguousarray(x[:, ::2, ::2])
    xr.setflags(write=False)
    y, _, _ = rnn_ops.rnn_forward("lstm", xr, k, r, b)
    np.testing.assert_array_equal(y, expected)


def test_long_sequence_gradients_stay_finite_float32():
    """Vanishing gradients through 300 steps reach subnormal numbers; the float32 kernels
    flush them (no slowdown) and the results stay finite and close to float64."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((4, 300, 3))
    k, r, b = _weights(rng, "lstm", 3, 4, scale=0.2)
    y64, _, t64 = rnn_ops.rnn_forward("lstm", x, k, r, b, training=True)
    y32, _, t32 = rnn_ops.rnn_forward("lstm", *(a.astype(np.float32) for a in (x, k, r, b)),
                                      training=True)
    g64 = rnn_ops.rnn_backward(t64, np.ones_like(y64))
    g32 = rnn_ops.rnn_backward(t32, np.ones_like(y32))
    assert np.all(np.isfinite(g32[0]))
    np.testing.assert_allclose(g32[0], g64[0], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- empty batch
@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_empty_batch(cell, extra, return_sequences):
    layer = _layer(cell, extra, units=4, dtype="float32", return_sequences=return_sequences,
                   return_state=True)
    x = np.zeros((0, 5, 3), np.float32)
    out = layer(x, training=True)
    assert out[0].shape == ((0, 5, 4) if return_sequences else (0, 4))
    assert all(s.shape == (0, 4) for s in out[1:])
    dx = layer.backward([np.zeros_like(o) for o in out])
    assert dx.shape == (0, 5, 3)
    assert len(layer.grads) == 3
    for g, w in zip(layer.grads, layer.trainable_weights):
        assert g.shape == w.shape and not g.any()


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4, 5), (7,)])
def test_layer_rejects_input_that_is_not_3d(shape):
    layer = layers.LSTM(3)
    with pytest.raises(ValueError, match=r"expected ndim=3.*\(batch, timesteps, features\).*"
                                         + "Full shape received: " + re.escape(str(shape)[:-1])):
        layer(np.zeros(shape, np.float32))


def test_layer_rejects_zero_timesteps_and_feature_change():
    layer = layers.GRU(3)
    with pytest.raises(ValueError, match="zero-sized"):
        layer(np.zeros((2, 0, 4), np.float32))
    layer(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match=r"axis -1.*value 4.*\(2, 5, 3\)"):
        layer(np.zeros((2, 5, 3), np.float32))


def test_layer_rejects_bad_mask_and_initial_state():
    layer = layers.LSTM(3)
    x = np.zeros((2, 5, 4), np.float32)
    with pytest.raises(ValueError, match=r"mask must have shape.*\(2, 5\).*\(2, 4\)"):
        layer(x, mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"initial state.*\(2, 3\).*\(2, 4\)"):
        layer(x, initial_state=[np.zeros((2, 4)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match="takes 2 initial state"):
        layer(x, initial_state=[np.zeros((2, 3))])



@pytest.mark.parametrize("fn", ["simple_rnn_forward", "lstm_forward", "gru_forward"])
def test_kernel_checks_shapes_before_anything(fn):
    f = getattr(_core, fn)
    g = {"simple_rnn_forward": 1, "lstm_forward": 4, "gru_forward": 3}[fn]
    x = np.zeros((2, 3, 4))
    k = np.zeros((4, g * 5))
    r = np.zeros((5, g * 5))
    with pytest.raises(ValueError, match=rf"{fn}: x must be 3-D, received shape \(2, 3\)"):
        f(np.zeros((2, 3)), k, r)
    with pytest.raises(ValueError, match=rf"{fn}: x must be .*timesteps >= 1.*\(2, 0, 4\)"):
        f(np.zeros((2, 0, 4)), k, r)
    with pytest.raises(ValueError, match=rf"{fn}: x must be .*features >= 1.*\(2, 3, 0\)"):
        f(np.zeros((2, 3, 0)), np.zeros((0, g * 5)), r)
    with pytest.raises(ValueError, match=rf"{fn}: kernel must be \(features, {g} \* units\) = "
                                         rf"\(4, {g * 5}\).*received shape \(3, {g * 5}\)"):
        f(x, np.zeros((3, g * 5)), r)
    with pytest.raises(ValueError, match=rf"{fn}: recurrent_kernel must be \(units, {g} \* units\)"):
        f(x, k, np.zeros((5, g * 5 + 1)))
    with pytest.raises(ValueError, match=rf"{fn}: recurrent_kernel must be .*units >= 1"):
        f(x, np.zeros((4, 0)), np.zeros((0, 0)))
    with pytest.raises(ValueError, match=rf"{fn}: bias must have shape"):
        f(x, k, r, np.zeros(g * 5 + 1))
    with pytest.raises(ValueError, match=rf"{fn}: initial state h0 must have shape \(2, 5\)"):
        f(x, k, r, None, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=rf"{fn}: mask must have shape \(2, 3\)"):
        f(x, k, r, mask=np.ones((2, 4), bool))
    with pytest.raises(TypeError, match="mask must be None or a C-contiguous bool"):
        f(x, k, r, mask=np.ones((2, 3), np.int64))
    with pytest.raises(TypeError, match="bias must be None or a C-contiguous float64"):
        f(x, k, r, np.zeros(g * 5, np.float32))
    with pytest.raises(TypeError):  # mixed dtypes are never cast silently
        f(x.astype(np.float32), k, r)
    with pytest.raises(TypeError):  # non-contiguous arrays are never copied silently
        f(np.zeros((2, 6, 4))[:, ::2], k, r)


def test_gru_bias_shape_depends_on_reset_after():
    x, k, r = np.zeros((1, 2, 3)), np.zeros((3, 12)), np.zeros((4, 12))
    _core.gru_forward(x, k, r, np.zeros((2, 12)), reset_after=True)
    _core.gru_forward(x, k, r, np.zeros(12), reset_after=False)
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 12\), received \(12,\)"):
        _core.gru_forward(x, k, r, np.zeros(12), reset_after=True)
    with pytest.raises(ValueError, match=r"bias must have shape \(12,\), received \(2, 12\)"):
        _core.gru_forward(x, k, r, np.zeros((2, 12)), reset_after=False)


def test_backward_checks_its_arguments():
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 3, 4))
    k, r, b = _weights(rng, "lstm", 4, 5)
    y, h, c, cache = _core.lstm_forward(x, k, r, b, training=True)
    ok = dict(dy=y, dh=None, dc=None, x=x, kernel=k, recurrent_kernel=r, mask=None, cache=cache)
    _core.lstm_backward(**ok)
    with pytest.raises(ValueError, match=r"lstm_backward: dy must have shape \(2, 5\)"):
        _core.lstm_backward(**{**ok, "dy": np.zeros((2, 3, 5))})
    with pytest.raises(ValueError, match=r"lstm_backward: cache must have shape \(3, 2, 30\)"):
        _core.lstm_backward(**{**ok, "cache": cache[:, :1].copy()})
    with pytest.raises(ValueError, match=r"lstm_backward: dc \(gradient of the final state c\) "
                                         r"must have shape \(2, 5\)"):
        _core.lstm_backward(**{**ok, "dc": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="activation must be one of"):
        _core.simple_rnn_forward(x, k[:, :5].copy(), r[:, :5].copy(), activation="elu")


# ---------------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.LSTM, layers.GRU])
def test_hyperparameter_validation(cls):
    for bad in (0, -1):
        with pytest.raises(ValueError, match=rf"units.*Received: units={bad}"):
            cls(bad)
    for bad in (2.5, "3", None, True):
        with pytest.raises(TypeError, match="units"):
            cls(bad)
    with pytest.raises(ValueError, match=r"dropout.*Received: dropout=1.0"):
        cls(3, dropout=1.0)
    with pytest.raises(ValueError, match=r"recurrent_dropout.*Received: recurrent_dropout=1.0"):
        cls(3, recurrent_dropout=1.0)
    with pytest.raises(TypeError, match="stateful must be a bool. Received: stateful='yes'"):
        cls(3, stateful="yes")
    with pytest.raises(ValueError, match="activation"):
        cls(3, activation="elu")
    with pytest.raises(ValueError, match="non_negative"):
        cls(3, kernel_constraint="non_negative")
    with pytest.raises(TypeError, match="return_sequences must be a bool"):
        cls(3, return_sequences=1)
    cls(3, unroll=True)  # accepted: a speed hint that does not change the results


def test_lstm_gru_activation_limits():
    with pytest.raises(ValueError, match="recurrent_activation='sigmoid'"):
        layers.LSTM(3, recurrent_activation="hard_sigmoid")
    with pytest.raises(ValueError, match="activation='tanh'"):
        layers.GRU(3, activation="relu")
    layers.SimpleRNN(3, activation=None)


def test_bidirectional_validation():
    with pytest.raises(ValueError, match="merge_mode"):
        layers.Bidirectional(layers.LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match="SimpleRNN, LSTM or GRU"):
        layers.Bidirectional(layers.Dense(3))
    with pytest.raises(ValueError, match="different `go_backwards`"):
        layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(3))
    with pytest.raises(ValueError, match="return_sequences"):
        layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(
            3, go_backwards=True, return_sequences=True))


# ---------------------------------------------------------------------------- layer API
def test_weights_layout_names_and_param_counts():
    x = np.zeros((1, 2, 32), np.float32)
    lstm, gru, gru0, srnn = (layers.LSTM(64), layers.GRU(64), layers.GRU(64, reset_after=False),
                             layers.SimpleRNN(64))
    for layer in (lstm, gru, gru0, srnn):
        layer(x)
        assert layer.weight_names == ["kernel", "recurrent_kernel", "bias"]
    assert [w.shape for w in lstm.weights] == [(32, 256), (64, 256), (256,)]
    assert [w.shape for w in gru.weights] == [(32, 192), (64, 192), (2, 192)]
    assert [w.shape for w in gru0.weights] == [(32, 192), (64, 192), (192,)]
    # Keras: 4*(in*u + u*u + u), 3*(in*u + u*u + 2u), 3*(in*u + u*u + u), in*u + u*u + u
    assert lstm.count_params() == 24832
    assert gru.count_params() == 18816
    assert gru0.count_params() == 18624
    assert srnn.count_params() == 6208
    # unit_forget_bias: the forget gate's bias starts at 1, the rest at bias_initializer (zeros)
    np.testing.assert_array_equal(lstm.bias[64:128], 1)
    assert not lstm.bias[:64].any() and not lstm.bias[128:].any()
    no_bias = layers.LSTM(5, use_bias=False, unit_forget_bias=False)
    no_bias(x)
    assert no_bias.weight_names == ["kernel", "recurrent_kernel"]
    # orthogonal recurrent initializer
    np.testing.assert_allclose(srnn.recurrent_kernel @ srnn.recurrent_kernel.T, np.eye(64),
                               atol=1e-5)


def test_bidirectional_weights_order_names_and_shapes():
    layer = layers.Bidirectional(layers.LSTM(4, return_sequences=True, name="enc"))
    y = layer(np.zeros((2, 5, 3), np.float32))
    assert y.shape == (2, 5, 8)
    assert layer.forward_layer.name == "forward_enc" and layer.backward_layer.name == "backward_enc"
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    assert layer.weights[:3] == layer.forward_layer.weights[:3]
    assert all(a is b for a, b in zip(layer.weights, layer.forward_layer.weights +
                                      layer.backward_layer.weights))
    assert layer.count_params() == 2 * 4 * (3 * 4 + 4 * 4 + 4)
    assert layer.compute_output_shape((None, 5, 3)) == (None, 5, 8)
    s = layers.Bidirectional(layers.GRU(4), merge_mode="sum")
    assert s.compute_output_shape((None, 5, 3)) == (None, 4)


@pytest.mark.parametrize("cls,kwargs", [
    (layers.SimpleRNN, {"activation": "relu", "return_sequences": True}),
    (layers.LSTM, {"go_backwards": True, "unit_forget_bias": False, "dropout": 0.25}),
    (layers.GRU, {"reset_after": False, "return_state": True, "use_bias": False}),
])
def test_config_round_trip(cls, kwargs):
    layer = cls(7, **kwargs)
    config = layer.get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    clone = cls.from_config(config)
    assert clone.get_config() == config
    x = np.random.default_rng(18).standard_normal((2, 4, 3)).astype(np.float32)
    layer(x), clone(x)
    clone.set_weights(layer.get_weights())
    a, b = layer(x), clone(x)
    for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        np.testing.assert_array_equal(u, v)


def test_bidirectional_config_round_trip():
    layer = layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode="ave")
    x = np.random.default_rng(19).standard_normal((2, 4, 3)).astype(np.float32)
    y = layer(x)
    clone = layers.Bidirectional.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x), y)
    assert clone.backward_layer.go_backwards


def test_compute_output_shape_and_mask():
    lstm = layers.LSTM(4, return_sequences=True, return_state=True)
    assert lstm.compute_output_shape((None, 7, 3)) == [(None, 7, 4), (None, 4), (None, 4)]
    mask = np.ones((2, 7), bool)
    assert lstm.compute_mask(None, mask) is mask
    assert layers.GRU(4).compute_mask(None, mask) is None
    assert layers.GRU(4).compute_output_shape((None, 7, 3)) == (None, 4)


def test_return_state_and_sequential_style_backward():
    layer = layers.LSTM(3, return_state=True, dtype="float64")
    x = np.random.default_rng(20).standard_normal((2, 4, 2))
    y, h, c = layer(x, training=True)
    np.testing.assert_array_equal(y, h)
    dx_full = layer.backward([np.ones_like(y), None, None])
    layer(x, training=True)
    dx_out_only = layer.backward(np.ones_like(y))  # what a Sequential model passes
    np.testing.assert_array_equal(dx_full, dx_out_only)


def test_dropout_drops_features_for_all_timesteps():
    x = np.random.default_rng(22).standard_normal((4, 5, 6)) + 3

    def identity_rnn(return_sequences):  # h_t = x_t: shows the dropped features directly
        layer = layers.SimpleRNN(6, activation="linear", dropout=0.5, seed=3, use_bias=False,
                                 return_sequences=return_sequences, dtype="float64")
        layer(x)
        layer.set_weights([np.eye(6), np.zeros((6, 6))])
        return layer

    layer = identity_rnn(False)
    np.testing.assert_array_equal(layer(x, training=False), x[:, -1])  # inference: no dropout
    y = layer(x, training=True).numpy()
    kept = y != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(y[kept], 2 * x[:, -1][kept])
    seq = identity_rnn(True)
    ys = seq(x, training=True)
    for t in range(5):  # one mask per sample and feature, the same at every step
        np.testing.assert_array_equal(ys[:, t] != 0, ys[:, 0] != 0)
    dx = seq.backward(np.ones_like(ys))
    np.testing.assert_array_equal(dx != 0, ys != 0)
    np.testing.assert_allclose(dx[dx != 0], 2.0)


# ---------------------------------------------------------------------------- recurrent dropout
def _recurrent_mask(rng, n, gates, u, rate=0.4):
    return (rng.random((n, gates, u)) >= rate) / (1 - rate)


def _masked_reference(cell, x, k, r, b, states, mask, extra, rs, gb, rmask):
    if cell == "simple_rnn":
        return ref.simple_rnn(x, k, r, b, states[0], mask, "tanh", rs, gb,
                              recurrent_mask=rmask)
    if cell == "lstm":
        return ref.lstm(x, k, r, b, states[0], states[1], mask, rs, gb, recurrent_mask=rmask)
    return ref.gru(x, k, r, b, states[0], mask, extra["reset_after"], rs, gb,
                   recurrent_mask=rmask)


@pytest.mark.parametrize("cell,extra", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_recurrent_dropout_kernels_match_the_masked_cell_loop(cell, extra, masked, dtype):
    """The C++ kernels with a recurrent mask against the float64 cells of Keras's
    implementation=1 (one mask per sample and gate on h_prev), forward and BPTT (the BPTT by
    central differences of the same reference with the mask fixed)."""
    rng = np.random.default_rng(40)
    n, t, f, u, g = 5, 4, 3, 9, GATES[cell]   # u = 9: per-gate blocks off the tile edges
    x = rng.standard_normal((n, t, f))
    k, r, b = _weights(rng, cell, f, u, **extra)
    states = [rng.standard_normal((n, u)) for _ in range(rnn_ops.num_states(cell))]
    mask = _mask(rng, n, t) if masked else None
    rmask = _recurrent_mask(rng, n, g, u)
    kw = {"reset_after": extra["reset_after"]} if cell == "gru" else {}
    c = lambda a: a.astype(dtype)  # noqa: E731
    y, final, tape = rnn_ops.rnn_forward(cell, c(x), c(k), c(r), c(b), [c(s) for s in states],
                                         mask, return_sequences=True, training=True,
                                         recurrent_mask=c(rmask), **kw)
    y_ref, final_ref = _masked_reference(cell, x, k, r, b, states, mask, extra, True, False,
                                         rmask)
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    for a, e in zip(final, final_ref):
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol)
    if dtype == "float32":
        return
    dy = rng.standard_normal(y.shape)
    dx, dk, dr, db, d0 = rnn_ops.rnn_backward(tape, dy)

    def loss():
        return float(np.sum(_masked_reference(cell, x, k, r, b, states, mask, extra, True,
                                              False, rmask)[0] * dy))

    for got, arr, name in [(dx, x, "x"), (dk, k, "kernel"), (dr, r, "recurrent"),
                           (db, b, "bias")] + [(d, s, "state") for d, s in zip(d0, states)]:
        np.testing.assert_allclose(got, numerical_gradient(loss, arr), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.LSTM, layers.GRU])
def test_recurrent_dropout_layer_is_training_only_and_seeded(cls):
    x = np.random.default_rng(41).standard_normal((6, 5, 3))
    make = lambda: cls(4, recurrent_dropout=0.5, seed=7, return_sequences=True,  # noqa: E731
                       dtype="float64")
    a, b, plain = make(), make(), cls(4, return_sequences=True, dtype="float64")
    for layer in (a, b, plain):
        layer(x)
    b.set_weights(a.get_weights())
    plain.set_weights(a.get_weights())
    np.testing.assert_array_equal(a(x), plain(x))                       # inference: no mask
    ya = a(x, training=True)
    rmask = a._tape.recurrent_mask      # one mask per sample and gate, kept 1 / (1 - 0.5)
    assert rmask.shape == (6, a._gates, 4) and set(np.unique(rmask)) == {0.0, 2.0}
    k, r, bias = a.get_weights()
    states = [np.zeros((6, 4))] * rnn_ops.num_states(a._cell)
    extra = {"reset_after": True} if a._cell == "gru" else {}
    y_ref = _masked_reference(a._cell, x, k, r, bias, states, None, extra, True, False, rmask)[0]
    np.testing.assert_allclose(ya, y_ref, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(42).standard_normal(ya.shape)
    dx = a.backward(dy)
    a._tape = None   # a backward without the cache replays the call, with the same masks
    np.testing.assert_allclose(a.backward(dy), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(ya, b(x, training=True))              # same seed, same mask
    assert not np.allclose(ya, plain(x))
    assert not np.array_equal(ya, a(x, training=True))                  # a new mask per call


@pytest.mark.parametrize("cls, reset_after", [(layers.LSTM, None), (layers.GRU, True),
                                               (layers.GRU, False)])
def test_input_and_recurrent_dropout_use_per_gate_input_masks(cls, reset_after):
    """With both dropouts Keras draws one input mask per gate (implementation=1): the layer's
    output and gradients against the reference cells given the masks it drew (central
    differences of the reference for dx and the kernel)."""
    rng = np.random.default_rng(43)
    x = rng.standard_normal((4, 3, 2))
    kw = {} if reset_after is None else {"reset_after": reset_after}
    layer = cls(3, dropout=0.3, recurrent_dropout=0.4, seed=1, return_sequences=True,
                dtype="float64", **kw)
    layer(x)
    layer.set_weights([rng.standard_normal(w.shape) * 0.6 for w in layer.get_weights()])
    y = layer(x, training=True)
    in_mask, rec_mask = layer._dropout_mask, layer._tape.recurrent_mask
    assert in_mask.shape == (4, layer._gates, 2)
    k, r, b = layer.get_weights()

    def reference():
        if cls is layers.LSTM:
            return ref.lstm(x, k, r, b, return_sequences=True, recurrent_mask=rec_mask,
                            input_mask=in_mask)[0]
        return ref.gru(x, k, r, b, reset_after=reset_after, return_sequences=True,
                       recurrent_mask=rec_mask, input_mask=in_mask)[0]

    np.testing.assert_allclose(y, reference(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)

    def loss():
        return float(np.sum(reference() * dy))

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.grads[0], numerical_gradient(loss, k), rtol=1e-6, atol=1e-8)


def test_recurrent_dropout_kernel_checks_the_mask_first():
    x, k, r = np.zeros((2, 3, 4)), np.zeros((4, 20)), np.zeros((5, 20))
    with pytest.raises(ValueError, match=r"lstm_forward: recurrent_mask must have shape "
                                         r"\(2, 4, 5\)"):
        _core.lstm_forward(x, k, r, recurrent_mask=np.ones((2, 1, 5)))
    with pytest.raises(TypeError, match="recurrent_mask must be None or a C-contiguous float64"):
        _core.lstm_forward(x, k, r, recurrent_mask=np.ones((2, 4, 5), np.float32))
    y, h, c, cache = _core.lstm_forward(x, k, r, training=True)
    with pytest.raises(ValueError, match=r"lstm_backward: recurrent_mask must have shape"):
        _core.lstm_backward(np.zeros((2, 5)), None, None, x, k, r, None, cache,
                            recurrent_mask=np.ones((2, 5)))


def test_backward_after_an_inference_call():
    """Inference skips the backward's cache; a backward after it still gets the gradients."""
    layer = _layer("lstm", {}, return_sequences=True)
    x = np.random.default_rng(25).standard_normal((2, 4, 3))
    dy = np.random.default_rng(26).standard_normal((2, 4, 3))
    layer(x, training=True)
    dx_train = layer.backward(dy)
    grads_train = [g.copy() for g in layer.grads]
    layer(x)  # training=False
    np.testing.assert_array_equal(layer.backward(dy), dx_train)
    for g, g_train in zip(layer.grads, grads_train):
        np.testing.assert_array_equal(g, g_train)


def test_frozen_layer_has_no_grads():
    layer = layers.GRU(3)
    x = np.zeros((2, 4, 3), np.float32)
    layer(x, training=True)
    layer.trainable = False
    layer(x, training=True)
    dx = layer.backward(np.ones((2, 3), np.float32))
    assert dx.shape == x.shape and layer.grads == []


def test_sequential_embedding_rnn_trains():
    from fastdl.models import Sequential
    set_random_seed(23)
    rng = np.random.default_rng(23)
    x = rng.integers(1, 50, (128, 12))
    y = (x[:, -3:].mean(axis=1) > 25).astype(np.float32)
    x[:, :4] = 0  # padding, masked out
    model = Sequential([layers.Embedding(50, 8, mask_zero=True),
                        layers.Bidirectional(layers.GRU(8, return_sequences=True)),
                        layers.LSTM(8), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=fastdl.optimizers.Adam(0.01), loss="binary_crossentropy")
    history = model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0]
    assert np.all(np.isfinite(model.predict(x, verbose=0)))
