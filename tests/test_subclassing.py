"""Subclassing: Model subclasses with call(), custom layers written with ops (add_weight, build,
no backward), Lambda, custom losses and metrics, trained by fit and by a GradientTape."""
import numpy as np
import pytest

import fastdl
from fastdl import Model, Sequential, layers as L, ops
from gradcheck import numerical_gradient

RNG = np.random.default_rng(1)


@pytest.fixture(autouse=True)
def _one_thread():
    before = fastdl.get_num_threads()
    fastdl.set_num_threads(1)
    yield
    fastdl.set_num_threads(before)


class MLP(Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = L.Dense(8, activation="relu")
        self.out = L.Dense(3, activation="softmax")

    def call(self, inputs, training=None):
        return self.out(self.hidden(inputs))


class Linear(L.Layer):
    """Keras's custom-layer tutorial: weights from add_weight, call with ops, no backward."""

    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True,
                                 name="bias")

    def call(self, inputs):
        return ops.tanh(ops.matmul(inputs, self.w) + self.b)


def _data(n=12):
    return RNG.random((n, 4)).astype(np.float32), RNG.integers(0, 3, n)


def test_subclassed_model_equals_sequential_and_functional_bitwise():
    x, y = _data()
    sub = MLP()
    sub.predict(x[:1], verbose=0)          # builds the layers
    seq = Sequential([fastdl.Input((4,)), L.Dense(8, activation="relu"),
                      L.Dense(3, activation="softmax")])
    inp = fastdl.Input((4,))
    func = Model(inp, L.Dense(3, activation="softmax")(L.Dense(8, activation="relu")(inp)))
    seq.set_weights(sub.get_weights())
    func.set_weights(sub.get_weights())
    np.testing.assert_array_equal(sub.predict(x, verbose=0), seq.predict(x, verbose=0))
    for m in (sub, seq, func):
        m.compile(optimizer=fastdl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        m.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    for ws, wq, wf in zip(sub.get_weights(), seq.get_weights(), func.get_weights()):
        np.testing.assert_array_equal(ws, wq)
        np.testing.assert_array_equal(ws, wf)


def test_gradient_tape_loop_equals_fit():
    x, y = _data(8)
    fitted, looped = MLP(), MLP()
    fitted.predict(x[:1], verbose=0)
    looped.predict(x[:1], verbose=0)
    looped.set_weights(fitted.get_weights())
    fitted.compile(optimizer=fastdl.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    fitted.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    opt = fastdl.optimizers.Adam(0.01)
    for _ in range(3):
        with fastdl.GradientTape() as tape:
            loss = ops.mean(ops.sparse_categorical_crossentropy(y, looped(fastdl.constant(x),
                                                                          training=True)))
        grads = tape.gradient(loss, looped.trainable_weights)
        opt.apply_gradients(zip(grads, looped.trainable_weights))
    for a, b in zip(fitted.get_weights(), looped.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_weights_are_tracked_through_attributes_lists_and_dicts():
    class Deep(Model):
        def __init__(self):
            super().__init__(name="deep")
            # tanh, not relu: a dead unit would leave its weights unchanged by the step below
            self.blocks = [L.Dense(4, activation="tanh") for _ in range(2)]
            self.heads = {"a": L.Dense(1), "b": L.Dense(2)}
            self.shared = self.blocks[0]        # the same layer twice counts once

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return ops.concatenate([self.heads["a"](x), self.heads["b"](x)], axis=-1)

    model = Deep()
    assert model(np.ones((2, 4), np.float32)).shape == (2, 3)
    assert len(model.layers) == 4 and len(model.trainable_weights) == 8
    model.compile(optimizer="sgd", loss="mse")
    before = [w.copy() for w in model.trainable_weights]
    x = np.random.default_rng(0).normal(size=(4, 4))
    model.fit(x, np.zeros((4, 3)), verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.trainable_weights))


def test_custom_layer_with_add_weight_has_correct_gradients():
    layer = Linear(3, dtype="float64")
    x = RNG.standard_normal((5, 4))
    y = layer(x)
    assert isinstance(y, fastdl.Tensor) and y.shape == (5, 3)
    assert layer.weight_names == ["variable_0", "bias"]
    assert isinstance(layer.w, fastdl.Variable) and layer.weights[0] is layer.w._value
    r = RNG.standard_normal((5, 3))
    t = fastdl.constant(x)
    with fastdl.GradientTape() as tape:
        tape.watch(t)
        out = layer(t)
    gx, gw, gb = tape.gradient(out, [t, layer.w, layer.b], output_gradients=r)

    def loss():
        return float(np.sum(layer(x) * r))

    np.testing.assert_allclose(gx.numpy(), numerical_gradient(loss, x), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(gw.numpy(), numerical_gradient(loss, layer.weights[0]),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(gb.numpy(), numerical_gradient(loss, layer.weights[1]),
                               rtol=1e-5, atol=1e-8)


def test_custom_layer_trains_in_sequential_and_in_functional_models():
    x = RNG.random((16, 4)).astype(np.float32)
    y = np.tanh(x @ RNG.standard_normal((4, 1))).astype(np.float32)
    inp = fastdl.Input((4,))
    for model in (Sequential([fastdl.Input((4,)), Linear(4), L.Dense(1)]),
                  Model(inp, L.Dense(1)(Linear(4)(inp)))):
        model.compile(optimizer=fastdl.optimizers.Adam(0.05), loss="mse")
        first = model.evaluate(x, y, verbose=0)
        model.fit(x, y, epochs=20, batch_size=8, verbose=0)
        assert model.evaluate(x, y, verbose=0) < 0.5 * first


def test_custom_layer_call_with_training_and_lambda():
    class Noise(L.Layer):
        def call(self, x, training=False):
            return x + 1.0 if training else x

    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(Noise()(x, training=True), x + 1)
    np.testing.assert_array_equal(Noise()(x), x)
    inp = fastdl.Input((3,))
    out = L.Lambda(lambda t, k: t * k, arguments={"k": 3.0})(inp)
    assert out.shape == (None, 3)
    np.testing.assert_array_equal(Model(inp, out)(x), 3 * x)


def test_custom_loss_function_and_subclass_train_a_subclassed_model():
    def mse_fn(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    class HalfMSE(fastdl.losses.Loss):
        def call(self, y_true, y_pred):
            return 0.5 * ops.mean(ops.square(y_true - y_pred), axis=-1)

    x = RNG.random((8, 4)).astype(np.float32)
    y = RNG.random((8, 3)).astype(np.float32)
    results = []
    for loss, lr in ((mse_fn, 0.1), ("mse", 0.1), (HalfMSE(), 0.2)):
        model = MLP()
        model.predict(x[:1], verbose=0)
        model.set_weights([np.full(w.shape, 0.1, np.float32) for w in model.get_weights()])
        model.compile(optimizer=fastdl.optimizers.SGD(lr), loss=loss)
        model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        results.append(model.get_weights())
    for a, b, c in zip(*results):   # the function equals the built-in; half the loss at
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)   # twice the rate: the same
        np.testing.assert_allclose(c, b, rtol=1e-6, atol=1e-7)


def test_custom_metric_with_add_weight():
    class MeanAbs(fastdl.metrics.Metric):
        def __init__(self, name="mean_abs", **kwargs):
            super().__init__(name=name, **kwargs)
            self.total = self.add_weight(name="total")
            self.count = self.add_weight(name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(ops.sum(ops.abs(ops.convert_to_tensor(y_true, "float32")
                                                  - y_pred)))
            self.count.assign_add(float(np.size(y_pred)))

        def result(self):
            return self.total / self.count

    model = Sequential([fastdl.Input((2,)), L.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=[MeanAbs()])
    x, y = RNG.random((6, 2)), RNG.random((6, 1))
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = np.mean(np.abs(model.predict(x, verbose=0) - y))
    assert isinstance(logs["mean_abs"], float)
    assert logs["mean_abs"] == pytest.approx(expected, rel=1e-5)
    metric = model.compiled_metrics[0]
    metric.reset_state()
    assert float(metric.total) == 0.0 and float(metric.count) == 0.0


def test_add_weight_keras_signature_errors_name_the_layer():
    layer = L.Layer(name="custom")
    with pytest.raises(TypeError, match=r"Layer 'custom': add_weight received unknown arguments "
                                        r"\['shap'\]"):
        layer.add_weight(shap=(2,))
    with pytest.raises(ValueError, match=r"Could not interpret regularizer identifier: 'nope'"):
        layer.add_weight(shape=(2,), regularizer="nope")
    assert layer.add_weight(shape=(2, 3)).shape == (2, 3)   # glorot_uniform by default


def test_subclassed_model_misuse_is_a_clear_error(tmp_path):
    class NoCall(Model):
        pass

    with pytest.raises(NotImplementedError, match=r"has no call\(\)"):
        NoCall()(np.ones((1, 2)))

    class ReturnsArray(Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(1)

        def call(self, x):
            return np.asarray(self.d(x))

    model = ReturnsArray()
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match="must return fastdl Tensors to be trained with fit, "
                                        "received ndarray"):
        model.fit(np.ones((2, 3)), np.ones((2, 1)), verbose=0)
    MLP().save(tmp_path / "m.fdl")     # saves by get_config; loading needs the class
    with pytest.raises(ValueError, match=r"'MLP' from module .*custom_objects"):
        fastdl.models.load_model(tmp_path / "m.fdl")
    assert type(fastdl.models.load_model(tmp_path / "m.fdl", custom_objects={"MLP": MLP})) is MLP
    with pytest.raises(TypeError, match=r"Model\(inputs, outputs\) builds a functional model"):
        NoCall("x")


def test_custom_layer_that_changes_the_shape_in_sequential():
    class Pairs(L.Layer):
        def call(self, x):
            return ops.concatenate([x, x * x], axis=-1)

    model = Sequential([fastdl.Input((3,)), Pairs(), L.Dense(2)])
    assert model.output_shape == (None, 2) and model.layers[0].compute_output_shape(
        (None, 3)) == (None, 6)
    x = RNG.random((4, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               np.concatenate([x, x * x], -1) @ model.layers[1].weights[0],
                               rtol=1e-6)


class RegularizedLinear(L.Layer):
    """A custom layer whose kernel carries an L2 penalty through add_weight(regularizer=)."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 1), initializer="random_normal",
                                 regularizer=fastdl.regularizers.L2(0.1))

    def call(self, inputs):
        return ops.matmul(inputs, self.w)


def test_a_custom_layer_weight_regularizer_adds_to_the_loss_and_its_gradient():
    # train_on_batch reports mse + 0.1 * sum(w**2) (before the step), and the SGD step moves w
    # by lr * (d mse / dw + 0.2 * w): both from their formulas.
    x, _ = _data(8)
    y = RNG.random((8, 1)).astype(np.float32)
    layer = RegularizedLinear()
    inp = fastdl.Input((4,))
    model = Model(inp, layer(inp))
    model.compile(fastdl.optimizers.SGD(0.5), "mse")
    w = layer.get_weights()[0].astype(np.float64)
    err = x.astype(np.float64) @ w - y
    expected_loss = np.mean(err ** 2) + 0.1 * np.sum(w ** 2)
    loss = model.train_on_batch(x, y)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    grad = 2 * x.astype(np.float64).T @ err / len(x) + 0.2 * w
    np.testing.assert_allclose(layer.get_weights()[0], w - 0.5 * grad, rtol=1e-5, atol=1e-6)
    assert len(model.losses) == 1


def test_an_activity_regularizer_on_a_layer_written_with_ops_is_refused_not_ignored():
    """Built-in layers' activity penalties train in these models (tests/test_regularizers.py);
    a layer differentiated through its ops has no hook for them yet."""
    class Scale(L.Layer):
        def call(self, x):
            return x * 2.0

    x, y = _data(8)
    inp = fastdl.Input((4,))
    out = L.Dense(3, activation="softmax")(Scale(activity_regularizer="l2")(inp))
    model = Model(inp, out)
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = model.get_weights()
    with pytest.raises(NotImplementedError, match=r"activity_regularizer.*built-in layers"):
        model.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_explicit_build_leaves_the_layer_built_as_in_keras():
    # the first call must not build (and create the weights) again
    dense = fastdl.layers.Dense(3)
    dense.build((None, 2))
    assert dense.built
    dense(np.ones((1, 2), np.float32))
    assert len(dense.weights) == 2

    class Scale(fastdl.layers.Layer):
        def build(self, input_shape):
            self.s = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.s

    layer = Scale()
    layer.build((None, 4))
    layer(np.ones((2, 4), np.float32))
    assert len(layer.weights) == 1 and layer._build_input_shape == (None, 4)
