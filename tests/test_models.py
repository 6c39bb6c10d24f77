"""Sequential: building, compile/fit/evaluate/predict semantics, errors, real-data checks."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastdl
from fastdl import layers
from fastdl.models import Sequential
from fastdl.utils import set_random_seed


def linear_data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1)).astype(np.float32)
    return x, 3 * x + 2


def test_tutorial_linear_regression_learns_and_has_two_params():
    set_random_seed(0)
    x, y = linear_data()
    model = Sequential([layers.Dense(1, input_shape=(1,))])
    assert model.count_params() == 2
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1000, verbose=0)
    w, b = model.get_weights()
    assert abs(w[0, 0] - 3) < 0.1 and abs(b[0] - 2) < 0.1


def test_keras_namespace_import_forms():
    import fastdl as tf
    from fastdl.keras import callbacks, losses, optimizers, utils  # noqa: F401
    from fastdl.keras.layers import Dense
    from fastdl.keras.models import Sequential as KSequential
    assert tf.keras.layers is fastdl.layers and tf.keras.optimizers is fastdl.optimizers
    assert KSequential is Sequential and Dense is layers.Dense
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(1,))])
    assert model.count_params() == 2


def test_summary_lists_layers_shapes_and_totals():
    model = Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="relu", name="hidden"),
                        layers.Dense(1, name="out")])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "hidden (Dense)" in text and "(None, 8)" in text and "(None, 1)" in text
    assert "Total params: 49" in text and "Trainable params: 49" in text


def test_fit_returns_history_with_sorted_keys_and_validation_split_takes_the_tail():
    set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x.sum(axis=1, keepdims=True) > 0).astype(np.float32)
    model = Sequential([layers.Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, shuffle=False)
    assert list(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 3 for v in hist.history.values())
    val_loss, val_acc = model.evaluate(x[48:], y[48:], verbose=0)
    np.testing.assert_allclose(hist.history["val_loss"][-1], val_loss, rtol=1e-6)
    np.testing.assert_allclose(hist.history["val_accuracy"][-1], val_acc, rtol=1e-6)


def test_evaluate_returns_scalar_without_metrics_and_dict_on_request():
    x, y = linear_data(20)
    model = Sequential([layers.Dense(1, input_shape=(1,))])
    model.compile(loss="mse")
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, np.mean((model.predict(x, verbose=0) - y) ** 2), rtol=1e-5)
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss"}


def test_fit_before_compile_and_unknown_strings():
    model = Sequential([layers.Dense(1, input_shape=(1,))])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(np.zeros((2, 1)), np.zeros((2, 1)), verbose=0)
    with pytest.raises(ValueError, match="mean_squared_error"):
        model.compile(loss="mean_sqared_error")
    with pytest.raises(ValueError, match="adam"):
        model.compile(optimizer="adamm", loss="mse")
    with pytest.raises(ValueError, match="accuracy"):
        model.compile(loss="mse", metrics=["acuracy"])


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"epochs": -1}, ValueError, "epochs"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"validation_split": 1.0}, ValueError, "validation_split"),
    ({"verbose": 3}, ValueError, "verbose"),
    ({"shuffle": "yes"}, TypeError, "shuffle"),
])
def test_fit_rejects_bad_arguments(kwargs, exc, msg):
    x, y = linear_data(10)
    model = Sequential([layers.Dense(1, input_shape=(1,))])
    model.compile(loss="mse")
    with pytest.raises(exc, match=msg):
        model.fit(x, y, **dict({"verbose": 0}, **kwargs))


def test_length_mismatch_and_bad_label_shapes_leave_state_unchanged():
    x, y = linear_data(10)
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(1,))])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    before = model.get_weights()
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(x, np.zeros((9, 3)), verbose=0)
    with pytest.raises(ValueError):
        model.fit(x, np.zeros((10, 5)), verbose=0)  # one-hot width != units
    with pytest.raises(ValueError, match=r"incompatible.*\(10, 2\)"):
        model.fit(np.zeros((10, 2)), np.zeros((10, 3)), verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_nested_lists_and_integer_inputs_are_converted():
    model = Sequential([layers.Dense(1, input_shape=(2,))])
    model.compile(loss="mse")
    model.fit([[1, 2], [3, 4]], [1, 2], epochs=1, verbose=0)
    assert model.predict([[1, 2]], verbose=0).dtype == np.float32


def test_predict_batches_and_empty_input():
    set_random_seed(0)
    model = Sequential([layers.Dense(2, input_shape=(3,))])
    x = np.random.default_rng(0).standard_normal((70, 3)).astype(np.float32)
    full = model.predict(x, batch_size=70, verbose=0)
    np.testing.assert_allclose(model.predict(x, batch_size=8, verbose=0), full, rtol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch(x), full, rtol=1e-6)
    assert model.predict(np.zeros((0, 3)), verbose=0).shape == (0, 2)


def test_model_builds_from_first_data_and_without_layers_fails():
    model = Sequential([layers.Dense(2), layers.Dense(1)])
    assert not model.built
    assert model.predict(np.zeros((4, 5)), verbose=0).shape == (4, 1)
    assert model.built and model.count_params() == 5 * 2 + 2 + 3
    with pytest.raises(ValueError, match="no layers"):
        Sequential().predict(np.zeros((1, 2)))


def test_add_pop_get_layer():
    model = Sequential(name="m")
    model.add(layers.Input(shape=(3,)))
    model.add(layers.Dense(4, name="a"))
    model.add(layers.Dense(2, name="b"))
    assert model.get_layer("b").units == 2 and model.get_layer(index=0).name == "a"
    assert model.pop().name == "b"
    model.add(layers.Dense(5, name="c"))
    assert model.predict(np.zeros((1, 3)), verbose=0).shape == (1, 5)
    with pytest.raises(ValueError, match="unique names"):
        model.add(layers.Dense(1, name="a"))
    with pytest.raises(ValueError, match="No such layer"):
        model.get_layer("zzz")


def test_model_set_weights_checks_count_and_shapes():
    model = Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="has 2 weights"):
        model.set_weights([np.zeros((3, 2))])
    with pytest.raises(ValueError, match=r"weight 0 has shape \(3, 2\)"):
        model.set_weights([np.zeros((2, 3)), np.zeros(2)])


def test_frozen_layer_does_not_change():
    set_random_seed(0)
    x, y = linear_data(32)
    model = Sequential([layers.Dense(4, input_shape=(1,), name="base"), layers.Dense(1)])
    model.get_layer("base").trainable = False
    frozen = model.get_layer("base").get_weights()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(model.get_layer("base").get_weights(), frozen):
        np.testing.assert_array_equal(a, b)
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2


def test_train_and_test_on_batch():
    set_random_seed(0)
    x, y = linear_data(16)
    model = Sequential([layers.Dense(1, input_shape=(1,))])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    first = model.train_on_batch(x, y)
    assert isinstance(first, list) and len(first) == 2
    for _ in range(50):
        last = model.train_on_batch(x, y)
    assert last[0] < first[0]
    loss, mae = model.test_on_batch(x, y)
    np.testing.assert_allclose(mae, np.mean(np.abs(model.predict(x, verbose=0) - y)), rtol=1e-5)


def test_sample_weight_and_class_weight_change_the_loss():
    x = np.array([[0.0], [1.0]], np.float32)
    y = np.array([[0.0], [0.0]], np.float32)
    model = Sequential([layers.Dense(1, input_shape=(1,), kernel_initializer="ones")])
    model.compile(loss="mse")
    # per-sample losses are 0 and 1; Keras divides the weighted sum by the sample count
    assert model.evaluate(x, y, verbose=0) == pytest.approx(0.5)
    assert model.test_on_batch(x, y, sample_weight=np.array([1.0, 3.0])) == pytest.approx(1.5)
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    model.fit(x, y, class_weight={0: 0.0}, epochs=1, verbose=0)  # all weight zero: no change
    np.testing.assert_array_equal(model.get_weights()[0], before[0])


def test_warns_once_when_probability_loss_follows_linear_output():
    x = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    model = Sequential([layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=2, verbose=0)
        model.fit(x, y, epochs=1, verbose=0)
    messages = [str(w.message) for w in caught if "expects probabilities" in str(w.message)]
    assert len(messages) == 1 and "activation='sigmoid'" in messages[0]
    model2 = Sequential([layers.Dense(1, activation="sigmoid", input_shape=(2,))])
    model2.compile(optimizer="sgd", loss="binary_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model2.fit(x, y, epochs=1, verbose=0)
    assert not [w for w in caught if "expects probabilities" in str(w.message)]


def test_stop_training_from_a_callback():
    from fastdl.callbacks import Callback

    class StopAfterTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    x, y = linear_data(8)
    model = Sequential([layers.Dense(1, input_shape=(1,))])
    model.compile(loss="mse")
    hist = model.fit(x, y, epochs=10, verbose=0, callbacks=[StopAfterTwo()])
    assert len(hist.history["loss"]) == 2


_DETERMINISM_SCRIPT = """
import hashlib, numpy as np, fastdl
from fastdl import layers
from fastdl.models import Sequential
fastdl.set_num_threads(1)
fastdl.utils.set_random_seed(123)
rng = np.random.default_rng(0)
x = rng.standard_normal((200, 6)).astype(np.float32); y = rng.integers(0, 3, 200)
m = Sequential([layers.Dense(16, activation="relu", input_shape=(6,)), layers.Dropout(0.3),
                layers.Dense(3, activation="softmax")])
m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
m.fit(x, y, epochs=3, batch_size=16, verbose=0)
print(hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest())
"""


def test_fit_is_bitwise_reproducible_across_processes():
    runs = [subprocess.run([sys.executable, "-c", _DETERMINISM_SCRIPT], capture_output=True,
                           text=True, check=True, timeout=120, env=dict(os.environ)).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 64


def test_logistic_regression_matches_scikit_learn_on_breast_cancer():
    pytest.importorskip("sklearn", reason="the reference model is scikit-learn's")
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    reference = LogisticRegression(max_iter=1000).fit(x_tr, y_tr).score(x_te, y_te)
    set_random_seed(0)
    model = Sequential([layers.Dense(1, activation="sigmoid", input_shape=(30,))])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x_tr, y_tr, epochs=100, batch_size=32, verbose=0)
    accuracy = model.evaluate(x_te, y_te, verbose=0)[1]
    assert accuracy >= reference - 0.02


def test_linear_regression_matches_scikit_learn_on_diabetes():
    pytest.importorskip("sklearn", reason="the reference model is scikit-learn's")
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_diabetes(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    reference = r2_score(y_te, LinearRegression().fit(x_tr, y_tr).predict(x_te))
    set_random_seed(0)
    model = Sequential([layers.Dense(1, input_shape=(10,))])
    model.compile(optimizer=fastdl.optimizers.Adam(0.5), loss="mse")
    model.fit(x_tr, y_tr, epochs=300, batch_size=64, verbose=0)
    r2 = r2_score(y_te, model.predict(x_te, verbose=0)[:, 0])
    assert r2 >= reference - 0.02


def test_constructing_a_model_keeps_frozen_layers_frozen():
    frozen = layers.Dense(2, trainable=False, input_shape=(3,))
    model = Sequential([frozen, layers.Dense(1)])
    assert not frozen.trainable and len(model.trainable_weights) == 2
    assert Sequential([layers.Dense(1, input_shape=(2,))], trainable=False).layers[0].trainable is False


def test_tutorial_rnn_has_577_parameters_and_the_faulty_input_is_explained():
    model = Sequential([layers.Embedding(input_dim=20, output_dim=8), layers.SimpleRNN(16),
                        layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).integers(0, 20, size=(40, 10))
    model.fit(x, (x == 7).any(axis=1).astype("float32"), epochs=1, verbose=0)
    assert model.count_params() == 577
    with pytest.raises(ValueError, match=r"(?s)embedding.*\(100, 10, 1\).*\(100, 10\)"):
        model.fit(np.random.random((100, 10, 1)), np.zeros((100, 1)), epochs=1, verbose=0)


def test_tutorial_cnn_has_356810_parameters():
    model = Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(32, 32, 3)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10),
    ])
    assert model.count_params() == 356810
    assert model.output_shape == (None, 10)


def test_nan_check_names_the_layer_and_changes_nothing():
    x = np.ones((4, 2), np.float32)
    model = Sequential([layers.Dense(3, input_shape=(2,), name="first"), layers.Dense(1, name="last")])
    model.compile(optimizer="sgd", loss="mse")
    model.get_layer("last").kernel[0, 0] = np.inf
    before = model.get_weights()
    with pytest.raises(FloatingPointError, match="nan_check"):
        model.fit(x, np.zeros((4, 1)), epochs=1, verbose=0, nan_check=True)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    model2 = Sequential([layers.Dense(3, input_shape=(2,), name="hidden"), layers.Dense(1)])
    model2.compile(optimizer="sgd", loss="mse")
    model2.get_layer("hidden").kernel[...] = 1e30  # finite weights, overflowing gradients
    with pytest.raises(FloatingPointError, match="'hidden'|loss"):
        model2.fit(x * 1e10, np.zeros((4, 1)), epochs=1, verbose=0, nan_check=True)


def test_keyboard_interrupt_stops_at_a_step_boundary_and_the_model_still_saves(tmp_path, request):
    import signal

    from fastdl.callbacks import Callback
    from fastdl.models import load_model

    # A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored: give
    # this test the handler an interactive Python has, whatever started pytest.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))

    class InterruptAtStep(Callback):
        def __init__(self, at):
            super().__init__()
            self.at, self.count = at, 0

        def on_train_batch_begin(self, batch, logs=None):
            self.count += 1
            if self.count == self.at:  # Ctrl-C arrives in the middle of this step
                signal.raise_signal(signal.SIGINT)

    set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = rng.standard_normal((64, 1)).astype(np.float32)
    model = Sequential([layers.Dense(4, activation="tanh", input_shape=(3,)), layers.Dense(1)])
    initial = model.get_weights()
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(KeyboardInterrupt, match="step boundary|after step 3"):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                  callbacks=[InterruptAtStep(3)])
    assert model.optimizer.iterations == 3
    replay = Sequential([layers.Dense(4, activation="tanh", input_shape=(3,)), layers.Dense(1)])
    replay.set_weights(initial)
    replay.compile(optimizer="adam", loss="mse")
    for step in range(3):
        replay.train_on_batch(x[step * 8:(step + 1) * 8], y[step * 8:(step + 1) * 8])
    for a, b in zip(model.get_weights(), replay.get_weights()):
        np.testing.assert_array_equal(a, b)
    path = tmp_path / "interrupted.fdl"
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(x, verbose=0),
                                  model.predict(x, verbose=0))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_return_state_inside_a_sequential_is_refused_clearly():
    with pytest.raises(ValueError, match="single output.*return_state"):
        Sequential([layers.Input(shape=(4, 3)),
                    layers.LSTM(3, return_state=True, return_sequences=True), layers.GRU(2)])


def test_train_on_batch_checks_each_new_signature_before_changing_state():
    """The one-sample dry run is skipped for a batch signature already checked, never for a
    new one: a y of another shape, dtype or a new loss still fails before any update (a
    training forward pass would already move BatchNormalization's statistics)."""
    model = Sequential([layers.Input((3,)), layers.Dense(4, activation="relu"),
                        layers.BatchNormalization(), layers.Dense(2)])
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    model.train_on_batch(x, rng.integers(0, 2, 8))
    model.train_on_batch(x, rng.integers(0, 2, 8))
    before = [w.copy() for w in model.get_weights()]
    iterations = model.optimizer.iterations
    with pytest.raises(ValueError):
        model.train_on_batch(x, np.zeros((8, 5), np.float32))  # one-hot of the wrong width
    model.compile("adam", "mse")
    with pytest.raises(ValueError):
        model.train_on_batch(x, np.zeros((8, 3), np.float32))  # mse against 2 outputs
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations in (0, iterations)  # compile() made a new optimizer
    model.train_on_batch(x, np.zeros((8, 2), np.float32))
    assert model.optimizer.iterations == 1
