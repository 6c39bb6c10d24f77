"""Arguments Sequential accepts do what Keras's do, or are refused: evaluate/predict ``steps``,
``callbacks`` and ``verbose``; compile's ``metrics`` vs ``weighted_metrics`` and its execution
hints."""
import numpy as np
import pytest

from fastdl import callbacks, layers
from fastdl.models import Sequential
from fastdl.saving import load_model


def model_and_data(n=10, metrics=None, weighted_metrics=None):
    model = Sequential([layers.Input(shape=(2,)), layers.Dense(1)])
    model.set_weights([np.array([[1.0], [-2.0]], np.float32), np.array([0.5], np.float32)])
    model.compile(optimizer="sgd", loss="mse", metrics=metrics, weighted_metrics=weighted_metrics)
    x = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    y = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    return model, x, y


def forward(x):
    return x @ np.array([[1.0], [-2.0]]) + 0.5


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_predict_begin(self, logs=None):
        self.calls.append(("begin", logs))

    def on_predict_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_predict_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, logs["outputs"].shape))

    def on_predict_end(self, logs=None):
        self.calls.append(("end", logs))

    def on_test_batch_end(self, batch, logs=None):
        self.calls.append(("test_batch_end", batch, sorted(logs)))


def test_predict_steps_runs_only_that_many_batches():
    model, x, _ = model_and_data()
    out = model.predict(x, batch_size=4, steps=2, verbose=0)
    np.testing.assert_allclose(out, forward(x[:8]), rtol=1e-6)
    # with no batch_size, Keras sizes the batches to cover x in `steps` batches
    rec = Recorder()
    out = model.predict(x, steps=3, verbose=0, callbacks=[rec])
    assert out.shape == (10, 1)
    assert [c for c in rec.calls if c[0] == "batch_end"] == [
        ("batch_end", 0, (4, 1)), ("batch_end", 1, (4, 1)), ("batch_end", 2, (2, 1))]


def test_predict_steps_beyond_the_data_warn_and_stop():
    model, x, _ = model_and_data()
    with pytest.warns(UserWarning, match="ran out of data"):
        out = model.predict(x, batch_size=4, steps=5, verbose=0)
    np.testing.assert_allclose(out, forward(x), rtol=1e-6)


def test_predict_callbacks_get_keras_hooks_in_order():
    model, x, _ = model_and_data()
    rec = Recorder()
    model.predict(x, batch_size=4, verbose=0, callbacks=[rec])
    assert rec.calls == [("begin", {}), ("batch_begin", 0), ("batch_end", 0, (4, 1)),
                         ("batch_begin", 1), ("batch_end", 1, (4, 1)),
                         ("batch_begin", 2), ("batch_end", 2, (2, 1)), ("end", {})]
    assert rec.model is model


def test_evaluate_steps_uses_the_first_batches():
    model, x, y = model_and_data(metrics=["mae"])
    loss, mae = model.evaluate(x, y, batch_size=4, steps=2, verbose=0)
    err = forward(x[:8]) - y[:8]
    np.testing.assert_allclose(loss, np.mean(err ** 2), rtol=1e-6)
    np.testing.assert_allclose(mae, np.mean(np.abs(err)), rtol=1e-6)
    rec = Recorder()
    model.evaluate(x, y, steps=2, verbose=0, callbacks=[rec])      # batch size ceil(10 / 2)
    assert rec.calls == [("test_batch_end", 0, ["loss", "mae"]),
                         ("test_batch_end", 1, ["loss", "mae"])]


@pytest.mark.parametrize("steps", [0, -1, 2.5, True, "2"])
def test_bad_steps_raise(steps):
    model, x, y = model_and_data()
    with pytest.raises(ValueError, match="steps"):
        model.predict(x, steps=steps, verbose=0)
    with pytest.raises(ValueError, match="steps"):
        model.evaluate(x, y, steps=steps, verbose=0)


def test_verbose_shows_the_progress_bar(capsys):
    model, x, y = model_and_data()
    model.predict(x, batch_size=4, verbose=0)
    model.evaluate(x, y, batch_size=4, verbose=0)
    assert capsys.readouterr().out == ""
    model.predict(x, batch_size=4)                       # "auto": a bar, as in Keras
    assert capsys.readouterr().out.startswith("3/3 ")
    model.evaluate(x, y, batch_size=4, verbose=2)        # one line with the loss
    out = capsys.readouterr().out
    assert out.startswith("3/3 - ") and "loss: " in out and out.count("\n") == 1


def test_metrics_ignore_sample_weights_and_weighted_metrics_use_them():
    model, x, y = model_and_data(metrics=["mae"], weighted_metrics=["mae"])
    sw = np.arange(10, dtype=np.float64)
    logs = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    err = np.abs(forward(x) - y)[:, 0]
    assert sorted(logs) == ["loss", "mae", "weighted_mae"]
    np.testing.assert_allclose(logs["mae"], err.mean(), rtol=1e-6)
    np.testing.assert_allclose(logs["weighted_mae"], (err * sw).sum() / sw.sum(), rtol=1e-6)
    # the same in fit's logs
    hist = model.fit(x, y, sample_weight=sw, batch_size=10, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(hist.history["mae"][0], err.mean(), rtol=1e-6)
    np.testing.assert_allclose(hist.history["weighted_mae"][0], (err * sw).sum() / sw.sum(),
                               rtol=1e-6)


def test_weighted_metrics_survive_save_and_load(tmp_path):
    model, x, y = model_and_data(metrics=["mae"], weighted_metrics=["mse"])
    model.save(tmp_path / "m.fdl")
    loaded = load_model(tmp_path / "m.fdl")
    sw = np.arange(10, dtype=np.float64)
    assert loaded.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True) == \
        model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)


def test_one_metric_object_in_both_lists_is_refused():
    from fastdl.metrics import MeanAbsoluteError
    m = MeanAbsoluteError()
    with pytest.raises(ValueError, match="same metric object"):
        model_and_data(metrics=[m], weighted_metrics=[m])


@pytest.mark.parametrize("kwargs", [{"run_eagerly": "yes"}, {"jit_compile": 1},
                                    {"auto_scale_loss": None}, {"steps_per_execution": 0},
                                    {"steps_per_execution": 1.5}])
def test_compile_hints_are_checked(kwargs):
    model = Sequential([layers.Input(shape=(2,)), layers.Dense(1)])
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        model.compile(optimizer="sgd", loss="mse", **kwargs)



def test_loss_dtype_sets_the_precision_of_the_loss_and_keeps_the_gradient_dtype():
    from fastdl import losses
    y_true = np.array([[0.1], [0.7], [1.0]], np.float32)
    y_pred = np.array([[0.3], [0.2], [0.9999]], np.float32)
    in64 = losses.BinaryCrossentropy()(y_true.astype(np.float64), y_pred.astype(np.float64))
    in32 = losses.BinaryCrossentropy()(y_true, y_pred)
    loss = losses.BinaryCrossentropy(dtype="float64")
    assert in32 != in64                                  # the dtype is observable here
    assert loss(y_true, y_pred) == in64
    value, grad = loss.forward_backward(y_true, y_pred)
    _, grad64 = losses.BinaryCrossentropy().forward_backward(y_true.astype(np.float64),
                                                             y_pred.astype(np.float64))
    assert value == in64 and grad.dtype == np.float32
    np.testing.assert_array_equal(grad, grad64.astype(np.float32))
    assert losses.MeanSquaredError(dtype="float32").dtype == np.float32


@pytest.mark.parametrize("dtype", ["int32", "banana", 3])
def test_bad_loss_and_metric_dtypes_are_refused(dtype):
    from fastdl import losses, metrics
    with pytest.raises(ValueError, match="dtype"):
        losses.MeanSquaredError(dtype=dtype)
    with pytest.raises(ValueError, match="dtype"):
        metrics.MeanAbsoluteError(dtype=dtype)


def test_fit_validation_calls_the_test_hooks_as_keras_does():
    class Hooks(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_test_begin(self, logs=None):
            self.calls.append("test_begin")

        def on_test_batch_end(self, batch, logs=None):
            self.calls.append(("test_batch_end", batch))

        def on_test_end(self, logs=None):
            self.calls.append(("test_end", sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            self.calls.append("epoch_end")

    model, x, y = model_and_data(metrics=["mae"])
    hooks = Hooks()
    model.fit(x, y, batch_size=5, epochs=2, validation_data=(x[:6], y[:6]),
              validation_batch_size=4, validation_freq=2, callbacks=[hooks], verbose=0)
    assert hooks.calls == ["epoch_end", "test_begin", ("test_batch_end", 0),
                           ("test_batch_end", 1), ("test_end", ["loss", "mae"]), "epoch_end"]
