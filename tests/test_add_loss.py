"""Layer.add_loss: losses a custom layer or model adds in call() join model.losses and the
loss fit, evaluate and compute_loss minimise, with Keras's lifetime (those of the last
outermost call). Real Keras is the oracle for the trained weights and the reported losses."""
import os

import numpy as np
import pytest

import fastdl
from fastdl import layers, ops

RATE = 0.05


def _data():
    rng = np.random.default_rng(3)
    return (rng.normal(size=(16, 4)).astype(np.float32),
            rng.normal(size=(16, 1)).astype(np.float32))


def _activity_layer(base, namespace):
    class ActivityPenalty(base):
        """Adds RATE * sum(x^2) / batch and returns x unchanged (Keras's guide example)."""

        def call(self, inputs):
            self.add_loss(RATE * namespace.sum(namespace.square(inputs)) / inputs.shape[0])
            return inputs
    return ActivityPenalty


def _functional(lib, namespace):
    inp = lib.Input((4,))
    h = lib.layers.Dense(3, activation="tanh")(inp)
    h = _activity_layer(lib.layers.Layer, namespace)()(h)
    return lib.Model(inp, lib.layers.Dense(1)(h))


def _with_keras_twin(seed):
    """(real Keras, the fastdl model, the same model in Keras with the same weights)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="real Keras is the oracle")
    fastdl.utils.set_random_seed(seed)
    ours = _functional(fastdl.keras, ops)
    theirs = _functional(keras, keras.ops)
    theirs.set_weights(ours.get_weights())
    return keras, ours, theirs


def test_added_losses_train_and_report_as_in_keras():
    keras, ours, theirs = _with_keras_twin(1)
    x, y = _data()
    for m, lib in ((ours, fastdl.keras), (theirs, keras)):
        m.compile(lib.optimizers.SGD(0.1), "mse")
    assert ours.losses == [] and len(theirs.losses) == 0
    for _ in range(3):
        got = ours.train_on_batch(x[:8], y[:8])
        want = theirs.train_on_batch(x[:8], y[:8])
        np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0),
                               theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    ours(x)
    theirs(x)
    assert len(ours.losses) == len(theirs.losses) == 1
    np.testing.assert_allclose(ours.losses[0].numpy(),
                               keras.ops.convert_to_numpy(theirs.losses[0]), rtol=1e-5)


def test_gradient_of_the_added_loss_is_its_formula():
    # With a zero compiled loss (y equal to what the model predicts would need it), check the
    # add_loss gradient alone: d/dW of RATE * sum(tanh(xW + b)^2) / n, in float64.
    x, _ = _data()
    x = x.astype(np.float64)
    inp = layers.Input((4,), dtype="float64")
    dense = layers.Dense(3, activation="tanh", dtype="float64")
    out = _activity_layer(layers.Layer, ops)(dtype="float64")(dense(inp))
    model = fastdl.Model(inp, out)
    w, b = dense.get_weights()
    with fastdl.GradientTape() as tape:
        model(x)
        total = ops.sum(model.losses[0])
    gw, gb = tape.gradient(total, dense.trainable_variables)
    h = np.tanh(x @ w + b)
    dz = RATE * 2 * h * (1 - h ** 2) / len(x)
    np.testing.assert_allclose(gw.numpy(), x.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(gb.numpy(), dz.sum(0), rtol=1e-12)


def test_losses_last_for_one_outermost_call_and_shared_layers_keep_every_call():
    class Twice(fastdl.Model):
        def __init__(self):
            super().__init__()
            self.penalty = _activity_layer(layers.Layer, ops)()

        def call(self, x):
            self.add_loss(ops.mean(x))
            return self.penalty(self.penalty(x) * 2.0)

    x, _ = _data()
    model = Twice()
    model(x)
    values = [float(t.numpy()) for t in model.losses]
    n = len(x)
    assert values == pytest.approx([x.mean(), RATE * (x ** 2).sum() / n,
                                    RATE * ((2 * x) ** 2).sum() / n], rel=1e-5)
    model(x[:2])                       # the next outermost call replaces them
    assert len(model.losses) == 3
    assert float(model.losses[0].numpy()) == pytest.approx(x[:2].mean(), rel=1e-5)
    assert len(model.penalty.losses) == 2


def test_compute_loss_in_a_custom_train_step_includes_added_losses():
    x, y = _data()

    class Custom(fastdl.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1)

        def call(self, x):
            out = self.dense(x)
            self.add_loss(RATE * ops.sum(ops.square(out)))
            return out

    model = Custom()
    model.compile("sgd", "mse")
    y_pred = model(x)
    expected = np.mean((y_pred.numpy() - y) ** 2) + RATE * np.sum(y_pred.numpy() ** 2)
    assert float(model.compute_loss(x, y, y_pred).numpy()) == pytest.approx(expected, rel=1e-5)


def test_add_loss_rejects_what_is_not_a_loss():
    layer = layers.Dense(2)
    with pytest.raises(TypeError, match="add_loss takes a loss Tensor"):
        layer.add_loss("l2")
    with pytest.raises(TypeError, match="add_loss takes a loss Tensor"):
        layer.add_loss(np.ones(3))


def test_sequential_trains_added_losses_like_the_functional_model():
    x, y = _data()
    fastdl.utils.set_random_seed(2)
    functional = _functional(fastdl.keras, ops)
    sequential = fastdl.Sequential([layers.Input((4,)), layers.Dense(3, activation="tanh"),
                                    _activity_layer(layers.Layer, ops)(), layers.Dense(1)])
    sequential.set_weights(functional.get_weights())
    for m in (functional, sequential):
        m.compile(fastdl.optimizers.SGD(0.1), "mse")
        m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(functional.get_weights(), sequential.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert sequential.evaluate(x, y, verbose=0) == pytest.approx(
        functional.evaluate(x, y, verbose=0), rel=1e-6)
    assert len(sequential.losses) == 1


def test_compiled_without_a_loss_the_added_losses_are_all_of_it_as_in_keras():
    # Keras's subclassing guide: compile(optimizer) alone, the loss from add_loss
    keras, ours, theirs = _with_keras_twin(4)
    x, y = _data()
    for m, lib in ((ours, fastdl.keras), (theirs, keras)):
        m.compile(lib.optimizers.SGD(0.5))
        m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0),
                               theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    # and, as in Keras, without targets at all: fit(x), evaluate(x), a Dataset of x alone
    for m in (ours, theirs):
        m.fit(x, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.evaluate(x, verbose=0), theirs.evaluate(x, verbose=0),
                               rtol=1e-5)
    np.testing.assert_allclose(ours.train_on_batch(x[:8]), theirs.train_on_batch(x[:8]),
                               rtol=1e-5)
    batches = fastdl.data.Dataset.from_tensor_slices(x).batch(8)
    np.testing.assert_allclose(ours.evaluate(batches, verbose=0),
                               theirs.evaluate(x, batch_size=8, verbose=0), rtol=1e-5)
    with pytest.raises(ValueError, match="class_weight weights the samples by their class in y"):
        ours.fit(x, class_weight={0: 1.0}, verbose=0)
    ours.compile(fastdl.optimizers.SGD(0.5), metrics=["mae"])   # metrics need targets
    with pytest.raises(ValueError, match="y must be given to train or evaluate"):
        ours.fit(x, verbose=0)
    # built-in layers alone can add no loss: compile still asks for one
    with pytest.raises(ValueError, match="compile needs a loss"):
        fastdl.Sequential([layers.Input((4,)), layers.Dense(1)]).compile("sgd")
