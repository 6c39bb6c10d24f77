"""The functional API: keras.Input, layers and operators on KerasTensors, Model(inputs, outputs),
merge layers, shared layers, nested models, and the errors for misuse."""
import os

import numpy as np
import pytest

import fastdl
from fastdl import Model, Sequential, layers as L, ops
from gradcheck import numerical_gradient

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _one_thread():
    before = fastdl.get_num_threads()
    fastdl.set_num_threads(1)   # bitwise comparisons need one summation order
    yield
    fastdl.set_num_threads(before)


def _mlp_layers():
    return [L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")]


def _data(n=12):
    x = RNG.random((n, 4)).astype(np.float32)
    y = RNG.integers(0, 3, n)
    return x, y


# ------------------------------------------------------------------- symbolic tensors

def test_input_is_a_symbolic_tensor_and_layers_give_symbolic_outputs():
    x = fastdl.Input((4,), name="features")
    assert x.shape == (None, 4) and x.dtype == "float32" and x.name == "features"
    h = L.Dense(5)(x)
    assert h.shape == (None, 5)
    y = h[:, 0] + 2.0 * h[:, 1]
    assert y.shape == (None,)
    assert fastdl.keras.Input(shape=(2, 3), dtype="int32").dtype == "int32"


def test_sequential_still_takes_input_first():
    model = Sequential([fastdl.Input((4,)), L.Dense(2)])
    assert model.input_shape == (None, 4) and model.predict(np.ones((1, 4)), verbose=0).shape == (1, 2)


# ------------------------------------------------------------------- equal to Sequential

def test_functional_equals_sequential_bitwise_in_predict_and_fit():
    x, y = _data()
    inp = fastdl.Input((4,))
    a, b = _mlp_layers()
    func = Model(inp, b(a(inp)))
    seq = Sequential([fastdl.Input((4,))] + _mlp_layers())
    seq.set_weights(func.get_weights())
    np.testing.assert_array_equal(func.predict(x, verbose=0), seq.predict(x, verbose=0))
    np.testing.assert_array_equal(func(x), seq(x))
    for m in (func, seq):
        m.compile(optimizer=fastdl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hf = func.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0).history
    hs = seq.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0).history
    assert hf == hs
    for wf, ws in zip(func.get_weights(), seq.get_weights()):
        np.testing.assert_array_equal(wf, ws)
    assert func.evaluate(x, y, verbose=0) == seq.evaluate(x, y, verbose=0)


def test_gradient_tape_loop_equals_fit():
    x, y = _data(8)
    inp = fastdl.Input((4,))
    a, b = _mlp_layers()
    model = Model(inp, b(a(inp)))
    inp2 = fastdl.Input((4,))
    a2, b2 = _mlp_layers()
    twin = Model(inp2, b2(a2(inp2)))
    twin.set_weights(model.get_weights())
    model.compile(optimizer=fastdl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    opt = fastdl.optimizers.SGD(0.1)
    for _ in range(2):
        with fastdl.GradientTape() as tape:
            pred = twin(fastdl.constant(x), training=True)
            loss = ops.mean(ops.sparse_categorical_crossentropy(y, pred))
        grads = tape.gradient(loss, twin.trainable_weights)
        opt.apply_gradients(zip(grads, twin.trainable_weights))
    for w1, w2 in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------- graphs

def test_shared_layer_gradients_match_central_differences():
    inp = fastdl.Input((3,), dtype="float64")
    shared = L.Dense(3, activation="tanh", dtype="float64")
    out = L.Dense(1, dtype="float64")(L.Add(dtype="float64")([shared(inp), shared(shared(inp))]))
    model = Model(inp, out)
    x = RNG.random((5, 3))
    r = RNG.standard_normal((5, 1))

    def loss():
        return float(np.sum(model(x) * r))

    with fastdl.GradientTape() as tape:
        y = model(fastdl.constant(x))
    grads = tape.gradient(y, model.trainable_weights, output_gradients=r)
    for w, g in zip(model.trainable_weights, grads):
        np.testing.assert_allclose(g.numpy(), numerical_gradient(loss, w), rtol=1e-5, atol=1e-8)
    assert len(model.layers) == 4   # the InputLayer, then the shared Dense once


MERGES = [
    (lambda: L.Add(dtype="float64"), 3, lambda xs: xs[0] + xs[1] + xs[2]),
    (lambda: L.Subtract(dtype="float64"), 2, lambda xs: xs[0] - xs[1]),
    (lambda: L.Multiply(dtype="float64"), 2, lambda xs: xs[0] * xs[1]),
    (lambda: L.Average(dtype="float64"), 2, lambda xs: (xs[0] + xs[1]) / 2),
    (lambda: L.Maximum(dtype="float64"), 2, lambda xs: np.maximum(xs[0], xs[1])),
    (lambda: L.Minimum(dtype="float64"), 2, lambda xs: np.minimum(xs[0], xs[1])),
    (lambda: L.Concatenate(dtype="float64"), 2, lambda xs: np.concatenate(xs, axis=-1)),
    (lambda: L.Dot(axes=1, dtype="float64"), 2,
     lambda xs: np.sum(xs[0] * xs[1], axis=1, keepdims=True)),
    (lambda: L.Dot(axes=1, normalize=True, dtype="float64"), 2,
     lambda xs: np.sum(xs[0] * xs[1], axis=1, keepdims=True)
     / np.linalg.norm(xs[0], axis=1, keepdims=True) / np.linalg.norm(xs[1], axis=1,
                                                                     keepdims=True)),
]


@pytest.mark.parametrize("make,n,formula", MERGES)
def test_merge_layers_forward_and_gradients(make, n, formula):
    xs = [RNG.standard_normal((4, 3)) for _ in range(n)]
    layer = make()
    np.testing.assert_allclose(layer(xs), formula(xs), rtol=1e-12)
    r = RNG.standard_normal(np.shape(formula(xs)))
    ts = [fastdl.constant(x) for x in xs]
    with fastdl.GradientTape() as tape:
        for t in ts:
            tape.watch(t)
        y = layer(ts)
    grads = tape.gradient(y, ts, output_gradients=r)
    for x, g in zip(xs, grads):
        num = numerical_gradient(lambda: float(np.sum(formula(xs) * r)), x)
        np.testing.assert_allclose(g.numpy(), num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("make,n,_", MERGES)
def test_merge_layers_match_keras(make, n, _):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="real Keras is the oracle")
    layer = make()
    xs = [RNG.standard_normal((4, 3)).astype(np.float32) for _ in range(n)]
    config = {k: v for k, v in layer.get_config().items() if k in ("axis", "axes", "normalize")}
    theirs = getattr(keras.layers, type(layer).__name__)(**config)
    ours = type(layer)(**config)
    np.testing.assert_allclose(ours(xs), keras.ops.convert_to_numpy(theirs(xs)), rtol=1e-5,
                               atol=1e-6)


def test_dot_on_sequences_and_function_forms():
    a, b = fastdl.Input((5, 3)), fastdl.Input((4, 3))
    out = L.dot([a, b], axes=2)
    assert out.shape == (None, 5, 4)
    x, z = RNG.random((2, 5, 3)), RNG.random((2, 4, 3))
    model = Model([a, b], out)
    np.testing.assert_allclose(model([x, z]), np.einsum("bik,bjk->bij", x, z), rtol=1e-6)
    c = L.concatenate([L.Flatten()(a), L.Flatten()(b)])
    assert c.shape == (None, 27)
    assert L.add([c, c]).shape == (None, 27)


def test_multi_input_dict_inputs_and_multiple_outputs():
    a, b = fastdl.Input((3,), name="a"), fastdl.Input((2,), name="b")
    h = L.Concatenate()([a, b])
    out1, out2 = L.Dense(1, name="o1")(h), L.Dense(2, name="o2")(h)
    model = Model({"a": a, "b": b}, [out1, out2])
    xa, xb = np.ones((2, 3)), np.zeros((2, 2))
    y1, y2 = model({"a": xa, "b": xb})
    assert y1.shape == (2, 1) and y2.shape == (2, 2)
    with pytest.raises(ValueError, match=r"missing \['b'\], unexpected \['c'\]"):
        model({"a": xa, "c": xb})
    assert model.inputs == [a, b] and model.outputs == [out1, out2]


def test_feature_extraction_and_layer_input_output():
    inp = fastdl.Input((4,))
    hidden = L.Dense(6, name="hidden")
    out = L.Dense(2)(hidden(inp))
    base = Model(inp, out)
    assert hidden.input is inp and hidden.output.shape == (None, 6)
    features = Model(base.input, base.get_layer("hidden").output)
    x = RNG.random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(features.predict(x, verbose=0), hidden(x))


def test_nested_models_as_layers():
    inner_in = fastdl.Input((4,))
    inner = Model(inner_in, L.Dense(3, activation="tanh")(inner_in), name="inner")
    seq_inner = Sequential([L.Dense(3)], name="seq_inner")
    inp = fastdl.Input((4,))
    out = L.Dense(1)(L.Add()([inner(inp), seq_inner(inp)]))
    outer = Model(inp, out)
    assert len(outer.trainable_weights) == 6
    # inside a Sequential too, trained by fit
    seq = Sequential([fastdl.Input((4,)), inner, L.Dense(1)])
    x, y = RNG.random((8, 4)).astype(np.float32), RNG.random((8, 1)).astype(np.float32)
    for m in (outer, seq):
        m.compile(optimizer="sgd", loss="mse")
        before = [w.copy() for w in m.trainable_weights]
        first = m.evaluate(x, y, verbose=0)
        m.fit(x, y, epochs=5, verbose=0)
        assert m.evaluate(x, y, verbose=0) < first
        assert all(not np.array_equal(a, b) for a, b in zip(before, m.trainable_weights))


# ------------------------------------------------------------------- bad input

def test_symbolic_tensors_fed_as_data_are_refused():
    inp = fastdl.Input((4,))
    model = Model(inp, L.Dense(2)(inp))
    with pytest.raises(TypeError, match="symbolic"):
        model.predict(fastdl.Input((4,)), verbose=0)


def test_real_arrays_to_model_constructor_are_refused():
    with pytest.raises(TypeError, match=r"Model\(inputs=...\) takes symbolic tensors.*ndarray"):
        Model(np.ones((2, 4)), np.ones((2, 1)))
    inp = fastdl.Input((4,))
    with pytest.raises(TypeError, match=r"Model\(outputs=...\).*ndarray"):
        Model(inp, np.ones((2, 1)))


def test_outputs_not_connected_to_inputs_are_refused():
    a, b = fastdl.Input((4,), name="a"), fastdl.Input((4,), name="b")
    out = L.Dense(1)(b)
    with pytest.raises(ValueError, match=r"not connected to the model's inputs.*name=b"):
        Model(a, out)


def test_layer_reused_with_incompatible_shape_names_the_layer_and_keeps_weights():
    dense = L.Dense(2, name="reused")
    dense(fastdl.Input((4,)))
    before = dense.get_weights()
    with pytest.raises(ValueError, match=r"Layer 'reused' \(Dense\) cannot be called on a "
                                         r"symbolic input of shape \(None, 5\)"):
        dense(fastdl.Input((5,)))
    for w0, w1 in zip(before, dense.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_wrong_data_shape_names_the_input_and_weights_stay():
    inp = fastdl.Input((4,), name="pixels")
    model = Model(inp, L.Dense(1)(inp))
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"input 'pixels' expects shape \(None, 4\), received "
                                         r"\(3, 5\)"):
        model.fit(np.ones((3, 5)), np.ones((3, 1)), verbose=0)
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_merge_layer_misuse_names_the_layer():
    with pytest.raises(ValueError, match=r"Layer 'sub' \(Subtract\) must be called on a list of "
                                         r"2 inputs"):
        L.Subtract(name="sub")([fastdl.Input((2,))] * 3)
    with pytest.raises(ValueError, match=r"Layer 'cat' \(Concatenate\) needs inputs with matching"):
        L.Concatenate(name="cat")([fastdl.Input((2, 3)), fastdl.Input((4, 3))])


def test_saving_a_functional_model_round_trips(tmp_path):
    inp = fastdl.Input((2,))
    model = Model(inp, L.Dense(1)(inp))
    model.save(tmp_path / "m.fdl")
    x = np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(fastdl.models.load_model(tmp_path / "m.fdl").predict(
        x, verbose=0), model.predict(x, verbose=0))


def test_multi_input_multi_output_compile_fit_evaluate():
    a, b = fastdl.Input((3,), name="a"), fastdl.Input((2,), name="b")
    h = L.Dense(4, activation="tanh")(L.Concatenate()([a, b]))
    model = Model([a, b], [L.Dense(1, name="o1")(h), L.Dense(2, name="o2")(h)])
    model.compile(optimizer="sgd", loss={"o1": "mse", "o2": "mae"}, loss_weights=[1.0, 0.5],
                  metrics={"o1": ["mae"]})
    xa, xb = RNG.random((6, 3)), RNG.random((6, 2))
    y1, y2 = RNG.random((6, 1)), RNG.random((6, 2))
    p1, p2 = model.predict([xa, xb], verbose=0)
    expected = np.mean((p1 - y1) ** 2) + 0.5 * np.mean(np.abs(p2 - y2))
    logs = model.evaluate([xa, xb], {"o1": y1, "o2": y2}, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["o1_mae"] == pytest.approx(np.mean(np.abs(p1 - y1)), rel=1e-5)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"missing \['o2'\], unexpected \['o3'\]"):
        model.fit([xa, xb], {"o1": y1, "o3": y2}, verbose=0)
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    history = model.fit({"a": xa, "b": xb}, [y1, y2], epochs=3, batch_size=2, verbose=0)
    assert history.history["loss"][-1] < expected


def test_functional_cnn_equals_sequential_bitwise():
    # predict runs Conv2D -> MaxPooling2D as one fused kernel in both kinds of model
    def stack():
        return [L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dense(3)]

    x = RNG.random((6, 8, 8, 2)).astype(np.float32)
    y = RNG.integers(0, 3, 6)
    seq = Sequential([fastdl.Input((8, 8, 2))] + stack())
    h = inp = fastdl.Input((8, 8, 2))
    for layer in stack():
        h = layer(h)
    func = Model(inp, h)
    func.set_weights(seq.get_weights())
    np.testing.assert_array_equal(func.predict(x, verbose=0), seq.predict(x, verbose=0))
    for m in (seq, func):
        m.compile(optimizer="adam",
                  loss=fastdl.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(x, y, epochs=2, batch_size=3, shuffle=False, verbose=0)
    for a, b in zip(seq.get_weights(), func.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_summary_lists_the_input_layer_and_each_layer_once():
    inp = fastdl.Input((4,), name="x")
    shared = L.Dense(4, name="shared")
    model = Model(inp, L.Dense(1, name="head")(shared(shared(inp))))
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert [l.name for l in model.layers] == ["x", "shared", "head"]
    assert "x (InputLayer)" in text and "(None, 4)" in text and "head (Dense)" in text
    assert text.count("shared (Dense)") == 1 and "Total params: 25" in text


def test_ops_on_symbolic_tensors_are_graph_nodes():
    inp = fastdl.Input((5, 3))
    pooled = ops.concatenate([ops.mean(inp, axis=1), ops.max(inp, axis=1)], axis=-1)
    assert pooled.shape == (None, 6)
    model = Model(inp, L.Dense(2)(pooled))
    x = RNG.random((4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(Model(inp, pooled)(x),
                               np.concatenate([x.mean(1), x.max(1)], -1), rtol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((4, 2)), verbose=0)
    with pytest.raises(ValueError, match=r"add cannot be applied to symbolic inputs of shapes "
                                         r"\[\(None, 5, 3\), None\]"):
        ops.add(inp, np.ones((2, 7)))


def test_masked_recurrent_functional_model_equals_sequential_bitwise():
    # Embedding(mask_zero=True) -> LSTM: the mask travels through the graph; the LSTM is one
    # tape primitive, so the functional model trains like the Sequential one
    def stack():
        return [L.Embedding(12, 4, mask_zero=True), L.LSTM(3), L.Dense(1)]

    x = RNG.integers(1, 12, (6, 5))
    x[:, 3:] = 0                                   # padded steps
    y = RNG.random((6, 1)).astype(np.float32)
    seq = Sequential([fastdl.Input((5,), dtype="int32")] + stack())
    h = inp = fastdl.Input((5,), dtype="int32")
    for layer in stack():
        h = layer(h)
    func = Model(inp, h)
    func.set_weights(seq.get_weights())
    np.testing.assert_array_equal(func.predict(x, verbose=0), seq.predict(x, verbose=0))
    for m in (seq, func):
        m.compile(optimizer="adam", loss="mse")
        m.fit(x, y, epochs=2, batch_size=3, shuffle=False, verbose=0)
    for a, b in zip(seq.get_weights(), func.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bidirectional_in_a_functional_model_trains_as_in_sequential():
    inp = fastdl.Input((4, 2))
    model = Model(inp, L.Dense(1)(L.Bidirectional(L.LSTM(2), name="bi")(inp)))
    seq = Sequential([fastdl.Input((4, 2)), L.Bidirectional(L.LSTM(2)), L.Dense(1)])
    seq.set_weights(model.get_weights())
    before = model.get_weights()
    x = np.random.default_rng(0).normal(size=(2, 4, 2))
    for m in (model, seq):
        m.compile(optimizer="sgd", loss="mse")
        m.fit(x, np.ones((2, 1)), epochs=2, verbose=0)
    for w0, w1 in zip(seq.get_weights(), model.get_weights()):
        np.testing.assert_allclose(w0, w1, rtol=1e-5, atol=1e-7)
    assert all(not np.array_equal(w0, w1) for w0, w1 in zip(before, model.get_weights()))


def test_summary_of_a_graph_has_keras_connected_to_column():
    a, b = fastdl.Input((4,), name="a"), fastdl.Input((3,), name="b")
    h = L.concatenate([L.Dense(2, name="d")(a), L.Dense(2, name="e")(b)], name="cat")
    model = Model([a, b], L.Dense(1, name="out")(L.Add(name="add")([h, h])))
    lines = []
    model.summary(line_length=80, print_fn=lines.append)
    text = "\n".join(lines)
    assert "┃ Connected to " in text and len(lines[1]) == 80
    assert [l.name for l in model.layers] == ["a", "b", "d", "e", "cat", "add", "out"]
    rows = {line.split("│")[1].split()[0]: line.split("│")[4].strip()
            for line in lines if line.startswith("│") and line.split("│")[1].strip()}
    assert rows == {"a": "-", "b": "-", "d": "a[0][0]", "e": "b[0][0]",
                    "cat": "d[0][0], e[0][0]", "add": "cat[0][0],", "out": "add[0][0]"}
    with pytest.raises(ValueError, match="positions must be 4 increasing positive numbers"):
        model.summary(positions=[0.5, 0.8, 1.0])


def test_feature_extraction_from_a_sequential_model():
    seq = Sequential([fastdl.Input((4,)), L.Dense(6, activation="tanh", name="features"),
                      L.Dense(2, name="head")])
    assert seq.input.shape == (None, 4) and seq.output.shape == (None, 2)
    extractor = Model(seq.input, seq.get_layer("features").output)
    x = RNG.random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(extractor.predict(x, verbose=0),
                                  seq.get_layer("features")(x))
    assert extractor.get_layer("features") is seq.get_layer("features")   # shared weights
    with pytest.raises(AttributeError, match="has no defined input yet"):
        Sequential([L.Dense(2)]).input


MASKED_MERGES = [lambda: L.Add(), lambda: L.Subtract(), lambda: L.Average(), lambda: L.Maximum(),
                 lambda: L.Minimum(), lambda: L.Multiply(), lambda: L.Concatenate()]


@pytest.mark.parametrize("make", MASKED_MERGES)
@pytest.mark.parametrize("both_masked", [True, False])
def test_masks_travel_through_merge_layers_as_in_keras(make, both_masked):
    # Embedding(mask_zero) on one or both branches -> merge -> LSTM: Keras's merge masks (OR,
    # or joined for Concatenate) and its masked Maximum/Minimum/Multiply values
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="real Keras is the oracle")

    def build(lib):
        a = lib.Input((6,), dtype="int32")
        b = lib.Input((6,), dtype="int32")
        ea = lib.layers.Embedding(9, 3, mask_zero=True)(a)
        eb = lib.layers.Embedding(9, 3, mask_zero=both_masked)(b)
        merged = getattr(lib.layers, type(make()).__name__)()([ea, eb])
        return lib.Model([a, b], lib.layers.LSTM(2)(merged))

    ours, theirs = build(fastdl), build(keras)
    theirs.set_weights(ours.get_weights())
    xa = RNG.integers(1, 9, (4, 6))
    xb = RNG.integers(1, 9, (4, 6))
    xa[:, 4:] = 0
    xb[:, 2:] = 0
    xa[0, :] = 0                       # a fully padded sequence on one branch
    np.testing.assert_allclose(ours.predict([xa, xb], verbose=0),
                               keras.ops.convert_to_numpy(theirs([xa, xb])), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("make", [lambda: L.Maximum(dtype="float64"),
                                  lambda: L.Multiply(dtype="float64")])
def test_masked_merge_gradients(make):
    layer = make()
    xs = [RNG.standard_normal((2, 4, 3)) for _ in range(2)]
    masks = [RNG.random((2, 4)) > 0.4, RNG.random((2, 4)) > 0.4]
    r = RNG.standard_normal((2, 4, 3))
    ts = [fastdl.ops.convert_to_tensor(x) for x in xs]
    with fastdl.GradientTape() as tape:
        for t in ts:
            tape.watch(t)
        y = layer(ts, mask=masks)
    grads = tape.gradient(y, ts, output_gradients=r)
    for x, g in zip(xs, grads):
        num = numerical_gradient(lambda: float(np.sum(np.asarray(layer(xs, mask=masks)) * r)), x)
        np.testing.assert_allclose(g.numpy(), num, rtol=1e-5, atol=1e-8)
