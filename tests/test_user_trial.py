"""Regressions found by running typical published Keras/TensorFlow programs as a user would
(functional dict outputs, custom metrics, nested layers in custom layers, 1-D embedding ids)."""
import numpy as np
import pytest

import fastdl as keras


def test_metric_add_variable_keras3_name():
    class Count(keras.metrics.Metric):
        def __init__(self):
            super().__init__(name="count")
            self.total = self.add_variable(shape=(), initializer="zeros", name="total")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(float(len(y_true)))

        def result(self):
            return self.total

    m = Count()
    m.update_state(np.zeros(3), np.zeros(3))
    assert float(np.asarray(m.result())) == 3.0
    m.reset_state()
    assert float(np.asarray(m.result())) == 0.0
    assert m.variables == [m.total]


def test_keras_only_submodules_at_top_level():
    # ``import fastdl as keras``: keras.preprocessing / keras.backend, which TF's top level lacks
    assert keras.preprocessing.sequence.pad_sequences is keras.utils.pad_sequences
    assert keras.backend is keras.keras.backend
    assert {"backend", "preprocessing"} <= set(dir(keras))


class _Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_sequential_from_config_round_trip():
    # Sequential.from_config used to pass the layer dicts to Sequential.add (TypeError)
    seq = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                            _Scale(3.0), keras.layers.Dense(2)], name="seq")
    with pytest.raises(ValueError, match="_Scale"):   # a custom class needs custom_objects
        keras.Sequential.from_config(seq.get_config())
    copy = keras.Sequential.from_config(seq.get_config(), custom_objects={"_Scale": _Scale})
    assert copy.name == "seq" and copy.built
    assert [type(l) for l in copy.layers] == [type(l) for l in seq.layers]
    assert copy.layers[1].factor == 3.0 and copy.layers[0].units == 4
    assert copy.get_config() == seq.get_config()
    copy.set_weights(seq.get_weights())
    x = np.random.default_rng(0).random((5, 3)).astype("float32")
    np.testing.assert_array_equal(copy.predict(x, verbose=0), seq.predict(x, verbose=0))
    with pytest.raises(TypeError, match="'layers' list"):
        keras.Sequential.from_config({"name": "x"})


def test_sequential_from_config_unbuilt_and_frozen():
    seq = keras.Sequential([keras.layers.Dense(2)], trainable=False)
    copy = keras.Sequential.from_config(seq.get_config())
    assert not copy.built and not copy.trainable and copy.layers[0].units == 2


def test_functional_dict_outputs_fit_evaluate_predict():
    # outputs={...}: fit used to iterate the dict's keys as predictions (TypeError on dtype <U8)
    # and predict failed to concatenate the batches' dicts
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    x = keras.layers.concatenate([a, b])
    model = keras.Model({"a": a, "b": b}, {"score": keras.layers.Dense(1)(x),   # keys, not
                                           "probs": keras.layers.Dense(2)(x)})  # layer names
    model.compile("sgd", {"score": "mse", "probs": "mae"}, loss_weights={"score": 2.0, "probs": 1.0})
    rng = np.random.default_rng(0)
    xs = {"a": rng.random((6, 4), dtype="float32"), "b": rng.random((6, 3), dtype="float32")}
    ys = {"score": rng.random((6, 1), dtype="float32"), "probs": rng.random((6, 2), dtype="float32")}
    model.fit(xs, ys, batch_size=3, epochs=1, verbose=0)
    pred = model.predict(xs, batch_size=4, verbose=0)
    assert isinstance(pred, dict) and list(pred) == ["score", "probs"]
    assert pred["score"].shape == (6, 1) and pred["probs"].shape == (6, 2)
    called = model(xs)
    assert isinstance(called, dict)
    np.testing.assert_allclose(np.asarray(called["probs"]), pred["probs"], rtol=1e-6)
    expected = 2.0 * np.mean((ys["score"] - pred["score"]) ** 2) \
        + np.mean(np.abs(ys["probs"] - pred["probs"]))
    np.testing.assert_allclose(model.evaluate(xs, ys, verbose=0), expected, rtol=1e-5)
    assert set(model.predict_on_batch(xs)) == {"score", "probs"}
    # a dict-output model inside another keeps its outputs by name
    outer = keras.Model({"a": a, "b": b}, model({"a": a, "b": b})["probs"])
    np.testing.assert_allclose(outer.predict(xs, verbose=0), pred["probs"], rtol=1e-6)


def test_embedding_of_1d_positions():
    # keras.io's position embedding: pos_emb(ops.arange(seq_len)) on 1-D ids (was a ValueError)
    emb = keras.layers.Embedding(5, 2)
    positions = keras.ops.arange(0, 3, 1)
    out = emb(positions)
    table = emb.get_weights()[0]
    assert tuple(out.shape) == (3, 2)
    np.testing.assert_array_equal(np.asarray(out), table[:3])
    weight = emb.trainable_weights[0]
    with keras.GradientTape() as tape:
        loss = keras.ops.sum(emb(positions) * np.array([[1.0], [2.0], [3.0]], "float32"))
    grad = np.asarray(tape.gradient(loss, weight))
    np.testing.assert_array_equal(grad, [[1, 1], [2, 2], [3, 3], [0, 0], [0, 0]])
    with pytest.raises(ValueError, match=r"received input of shape \(2, 3, 4\)"):
        emb(np.zeros((2, 3, 4), np.int64))   # still 1-D or 2-D only

    class TokenAndPosition(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.token, self.pos = keras.layers.Embedding(20, 4), keras.layers.Embedding(6, 4)

        def call(self, x):
            return self.token(x) + self.pos(keras.ops.arange(0, keras.ops.shape(x)[-1], 1))

    inp = keras.Input((6,), dtype="int32")
    layer = TokenAndPosition()
    x = keras.layers.GlobalAveragePooling1D()(layer(inp))
    model = keras.Model(inp, keras.layers.Dense(1)(x))
    model.compile("sgd", "mse")
    before = np.array(layer.pos.get_weights()[0])
    model.fit(np.random.default_rng(0).integers(20, size=(8, 6)), np.ones((8, 1)), verbose=0)
    assert not np.array_equal(before, layer.pos.get_weights()[0])   # the positions trained


class _Block(keras.layers.Layer):
    """A custom layer holding layers as attributes (keras.io's TransformerBlock pattern)."""

    def __init__(self):
        super().__init__()
        self.first = keras.layers.Dense(3, activation="relu")
        self.rest = [keras.layers.Dense(2)]

    def call(self, x):
        return self.rest[0](self.first(x))


def test_custom_layer_sublayers_are_tracked_and_trained():
    # a custom layer's attribute layers had no weights in it: fit silently left them untrained
    inp = keras.Input((4,))
    block = _Block()
    model = keras.Model(inp, keras.layers.Dense(1)(block(inp)))
    assert len(block.weights) == 4 and len(model.trainable_weights) == 6
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2), keras.layers.Dense(1)])
    plain.set_weights(model.get_weights())
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 4), dtype="float32"), rng.random((8, 1), dtype="float32")
    for m in (model, plain):
        m.compile(keras.optimizers.SGD(0.1), "mse")
        m.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(model.get_weights(), plain.get_weights()):   # the same steps as the plain model
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    block.trainable = False
    assert not block.first.trainable and len(model.trainable_weights) == 2
