"""Keras's "customizing what happens in fit": train_step / test_step / predict_step overrides,
compute_loss, compute_metrics, metrics and the loss tracker."""
import numpy as np
import pytest

import fastdl
from fastdl import layers, ops


def _built(model, x):
    """Weights drawn now, right after the seed (a subclassed model builds on its first call)."""
    model(x[:1])
    return model


def _data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x @ np.array([[1.0], [-1.0], [0.5], [2.0]], "float32")).astype("float32")


class GuideModel(fastdl.Model):
    """The guide's first version: compute_loss, optimizer.apply, self.metrics."""

    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(8, activation="tanh")
        self.out = layers.Dense(1)

    def call(self, x, training=None):
        return self.out(self.hidden(x))

    def train_step(self, data):
        x, y = data
        with fastdl.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


class Plain(fastdl.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(8, activation="tanh")
        self.out = layers.Dense(1)

    def call(self, x, training=None):
        return self.out(self.hidden(x))


def test_custom_train_step_trains_like_fit():
    x, y = _data()
    fastdl.utils.set_random_seed(1)
    custom = _built(GuideModel(), x)
    custom.compile(fastdl.optimizers.SGD(0.05), "mse", metrics=["mae"])
    fastdl.utils.set_random_seed(1)
    plain = _built(Plain(), x)
    plain.compile(fastdl.optimizers.SGD(0.05), "mse", metrics=["mae"])
    h1 = custom.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    h2 = plain.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(custom.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the running mean of the batch losses, reset each epoch, as fit's own loss
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(h1.history["mae"], h2.history["mae"], rtol=1e-5)
    assert custom.metrics_names == ["loss", "mae"]


def test_own_trackers_and_metrics_property_and_no_compiled_loss():
    class Tracked(Plain):
        def __init__(self):
            super().__init__()
            self.loss_tracker = fastdl.metrics.Mean(name="loss")
            self.mae = fastdl.metrics.MeanAbsoluteError(name="mae")

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae]

        def train_step(self, data):
            x, y = data
            with fastdl.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = ops.mean(ops.square(y - y_pred))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            self.loss_tracker.update_state(loss)
            self.mae.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "mae": self.mae.result()}

        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            self.loss_tracker.update_state(ops.mean(ops.square(y - y_pred)))
            self.mae.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    x, y = _data()
    model = Tracked()
    model.compile(optimizer=fastdl.optimizers.Adam(0.01))   # no loss: the step computes it
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0, validation_data=(x, y))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    pred = model.predict(x, verbose=0)
    expected = float(np.mean((y - pred) ** 2))
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(
        expected, rel=1e-5)
    assert history.history["val_loss"][-1] == pytest.approx(expected, rel=1e-5)


def test_unsupervised_train_step_gets_x_alone_and_predict_step():
    class AutoEncoder(fastdl.Model):
        def __init__(self):
            super().__init__()
            self.enc = layers.Dense(2)
            self.dec = layers.Dense(4)
            self.tracker = fastdl.metrics.Mean(name="reconstruction")

        @property
        def metrics(self):
            return [self.tracker]

        def call(self, x):
            return self.dec(self.enc(x))

        def train_step(self, data):
            assert not isinstance(data, tuple)      # fit(x): the batch is x itself, as Keras
            with fastdl.GradientTape() as tape:
                loss = ops.mean(ops.square(self(data) - data))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            self.tracker.update_state(loss)
            return {"reconstruction": self.tracker.result()}

        def predict_step(self, data):
            return self.enc(data)

    x, _ = _data()
    model = AutoEncoder()
    model.compile(optimizer="adam")
    history = model.fit(x, epochs=2, batch_size=16, verbose=0)
    assert list(history.history) == ["reconstruction"]
    codes = model.predict(x, batch_size=8, verbose=0)
    np.testing.assert_allclose(codes, np.asarray(model.enc(x)), rtol=1e-6)


def test_compute_loss_includes_weight_penalties_with_their_gradient():
    def regularized(cls):
        class Regularized(cls):
            def __init__(self):
                super().__init__()
                self.hidden = layers.Dense(8, activation="tanh",
                                           kernel_regularizer=fastdl.regularizers.L2(0.1))
        return Regularized

    x, y = _data(8)
    fastdl.utils.set_random_seed(2)
    custom = _built(regularized(GuideModel)(), x)
    custom.compile(fastdl.optimizers.SGD(0.1), "mse")
    fastdl.utils.set_random_seed(2)
    plain = _built(regularized(Plain)(), x)
    plain.compile(fastdl.optimizers.SGD(0.1), "mse")
    custom.fit(x, y, epochs=2, batch_size=8, verbose=0)
    plain.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(custom.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_super_train_step_and_bad_returns():
    class Calls(Plain):
        calls = 0

        def train_step(self, data):
            Calls.calls += 1
            return super().train_step(data)

    x, y = _data()
    fastdl.utils.set_random_seed(3)
    model = _built(Calls(), x)
    model.compile(fastdl.optimizers.SGD(0.05), "mse")
    fastdl.utils.set_random_seed(3)
    plain = _built(Plain(), x)
    plain.compile(fastdl.optimizers.SGD(0.05), "mse")
    h1 = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    h2 = plain.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert Calls.calls == 8
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-6)

    class Bad(Plain):
        def train_step(self, data):
            return 1.0

    bad = Bad()
    bad.compile("sgd", "mse")
    with pytest.raises(TypeError, match="train_step must return a dict"):
        bad.fit(x, y, verbose=0)


def test_compile_without_loss_needs_a_train_step_or_add_loss():
    plain = Plain()     # a user's class may add losses (add_loss): compile lets it go, fit asks
    plain.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="compiled without a loss and no layer called add_loss"):
        plain.fit(*_data(4), verbose=0)
    model = GuideModel()
    model.compile(optimizer="sgd")
    x, y = _data(4)
    with pytest.raises(ValueError, match="compiled without a loss"):
        model.fit(x, y, verbose=0)


def test_custom_fit_splits_validation_and_finalizes_ema():
    x, y = _data()
    model = _built(GuideModel(), x)
    model.compile(fastdl.optimizers.SGD(0.05, use_ema=True), "mse", metrics=["mae"])
    history = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    # as Keras's fit: with use_ema the weights end as their moving averages
    for w, avg in zip(model.optimizer._vars, model.optimizer._averages):
        np.testing.assert_array_equal(w, avg)
    with pytest.raises(ValueError, match="leaves an empty training or validation set"):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)
