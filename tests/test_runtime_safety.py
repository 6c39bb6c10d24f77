"""Runtime safety: thread counts, Ctrl-C, concurrent use, mixed dtypes, bad weights, CSV columns
and freezing a layer during fit must give a clear Python error or the right result, never a
crash or a silently wrong model."""
import csv
import importlib.util
import os
import re
import resource
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastdl
from fastdl import _core
from fastdl import layers as L
from fastdl.callbacks import Callback, CSVLogger
from fastdl.utils import set_random_seed

SANITIZED = bool(_core.build_info()["sanitizer"])
BOUND = max(64, 4 * len(os.sched_getaffinity(0)))


def _child(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **env))


# ---------------------------------------------------------------- thread count
# A conv large enough to use every thread (the smallest kernels run on one).
_CONV = """
import numpy as np, fastdl
from fastdl import layers as L
model = fastdl.Sequential([L.Conv2D(16, 3, input_shape=(16, 16, 8)), L.Flatten(), L.Dense(2)])
x = np.ones((256, 16, 16, 8), np.float32)
"""


def test_huge_omp_num_threads_is_clamped_with_a_warning():
    """Regression: OMP_NUM_THREADS=100000 was taken as is and the first conv segfaulted."""
    result = _child("import warnings; warnings.simplefilter('always')\n" + _CONV +
                    "print(fastdl.get_num_threads(), model.predict(x, verbose=0).shape)",
                    OMP_NUM_THREADS="100000")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(BOUND), "(256,", "2)"]
    assert re.search(rf"RuntimeWarning: fastdl: OMP_NUM_THREADS asks for 100000 threads; "
                     rf"using {BOUND}", result.stderr)


@pytest.mark.parametrize("value,expected", [
    ("abc", None), ("0", None), ("-3", None),  # invalid: libgomp says so and uses every core
    ("4,2", 4),                                # a nested list: the outer level counts
    ("99999999999", BOUND)])                   # beyond int: clamped too
def test_malformed_omp_num_threads_gives_a_sane_count(value, expected):
    expected = expected or min(BOUND, len(os.sched_getaffinity(0)))
    result = _child(_CONV + "model.predict(x, verbose=0); print(fastdl.get_num_threads())",
                    OMP_NUM_THREADS=value)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(expected)


def test_set_num_threads_bound_is_relative_to_the_machine():
    assert _core.max_threads() == BOUND
    with pytest.raises(ValueError, match=rf"between 1 and {BOUND} .*received {BOUND + 1}"):
        fastdl.set_num_threads(BOUND + 1)
    with pytest.raises(ValueError, match=rf"at most {BOUND} .*received {BOUND + 1}"):
        _core.set_num_threads(BOUND + 1)


@pytest.mark.skipif(SANITIZED,
                    reason="an address-space limit (RLIMIT_AS) stops AddressSanitizer itself")
def test_thread_creation_failure_is_a_python_error():
    """Regression: under an address-space limit, set_num_threads(n) was accepted and the next
    conv ended the process ('libgomp: Thread creation failed'). Only 100 MiB more address
    space is allowed: too little for 63 more thread stacks of 8 MiB."""
    code = _CONV + """
import re, resource
model.predict(x, verbose=0)
before = fastdl.get_num_threads()
vm = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) << 10
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (vm + (100 << 20), hard))
try:
    fastdl.set_num_threads(64)
except RuntimeError as e:
    print("refused:", e)
print(fastdl.get_num_threads() == before, model.predict(x, verbose=0).shape)
"""
    env = {k: v for k, v in os.environ.items() if k != "OMP_STACKSIZE"}  # default stacks

    def default_stack_size():  # glibc's thread stacks follow RLIMIT_STACK at process start
        hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
        size = 8 << 20 if hard == resource.RLIM_INFINITY else min(8 << 20, hard)
        resource.setrlimit(resource.RLIMIT_STACK, (size, hard))

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env, preexec_fn=default_stack_size)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"refused: set_num_threads: only \d+ of 64 threads could be created",
                     result.stdout), result.stdout
    assert "True (256, 2)" in result.stdout


# ---------------------------------------------------------------- concurrent fit / predict
def _trained(model_and_data, callbacks=(), epochs=2):
    model, x, y = model_and_data
    model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
              callbacks=list(callbacks))
    return model.get_weights()


def _cnn():
    set_random_seed(5)
    model = fastdl.Sequential([L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 2)),
                               L.MaxPooling2D(), L.Flatten(), L.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    return model, rng.standard_normal((96, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, 96)


class _FromAnotherThread(Callback):
    """At the first batch, runs ``use(model)`` in another thread and records what it raised."""

    def __init__(self, use):
        super().__init__()
        self.use, self.errors = use, []

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0 and not self.errors:
            def run():
                try:
                    self.use(self.model)
                except Exception as e:  # reported by the test
                    self.errors.append(e)
                else:
                    self.errors.append(None)
            t = threading.Thread(target=run)
            t.start()
            t.join()


@pytest.mark.parametrize("use", [
    lambda m: m.predict(np.zeros((4, 8, 8, 2), np.float32), verbose=0),
    lambda m: m.evaluate(np.zeros((4, 8, 8, 2), np.float32), np.zeros(4), verbose=0),
    lambda m: m(np.zeros((4, 8, 8, 2), np.float32)),
    lambda m: m.train_on_batch(np.zeros((4, 8, 8, 2), np.float32), np.zeros(4)),
    lambda m: m.fit(np.zeros((4, 8, 8, 2), np.float32), np.zeros(4), verbose=0)],
    ids=["predict", "evaluate", "call", "train_on_batch", "fit"])
def test_using_a_model_while_another_thread_trains_it_is_refused(use):
    """Regression: predict from another thread during fit shared the layers' caches with the
    training step (wrong weights or unrelated errors). Now a clear RuntimeError, and the
    training is bitwise that of a solo run."""
    solo = _trained(_cnn())
    probe = _FromAnotherThread(use)
    weights = _trained(_cnn(), [probe])
    assert len(probe.errors) == 1 and isinstance(probe.errors[0], RuntimeError), probe.errors
    assert re.search(r"on model '.*' while another thread is training it",
                     str(probe.errors[0]))
    for a, b in zip(solo, weights):
        assert a.tobytes() == b.tobytes()


def test_concurrent_predict_never_corrupts_fit():
    """A thread predicting in a loop while fit runs: every predict either returns or raises the
    clear error, and fit's weights are bitwise those of a solo run."""
    solo = _trained(_cnn(), epochs=3)
    model_and_data = _cnn()
    model, x, _ = model_and_data
    outcomes, running, done = [], threading.Event(), threading.Event()

    def predict_loop():
        while not done.is_set():
            try:
                model.predict(x[:32], verbose=0)
                outcomes.append("ok")
            except RuntimeError as e:
                outcomes.append(str(e))
            running.set()

    t = threading.Thread(target=predict_loop)
    t.start()
    running.wait(30)
    try:
        weights = _trained(model_and_data, epochs=3)
    finally:
        done.set()
        t.join()
    refused = [o for o in outcomes if o != "ok"]
    assert refused and all("while another thread is training it" in o for o in refused)
    for a, b in zip(solo, weights):
        assert a.tobytes() == b.tobytes()


def test_fit_waits_for_a_running_predict():
    """A predict already running when fit starts finishes on the weights it started with;
    fit trains after it (and refuses the predicts that come later)."""
    model, x, y = _cnn()
    expected = model.predict(x[:4], verbose=0)
    started, results = threading.Event(), []
    first = model._layers[-1]  # the Dense: not fused, so its call() runs
    original = first.call

    def slow_call(*args, **kwargs):  # keeps the predict inside the model for a while
        started.set()
        threading.Event().wait(0.3)
        return original(*args, **kwargs)

    first.call = slow_call
    t = threading.Thread(target=lambda: results.append(model.predict(x[:4], verbose=0)))
    t.start()
    started.wait(30)
    del first.call
    model.fit(x, y, verbose=0)
    t.join()
    assert results[0].tobytes() == expected.tobytes()
    assert model.predict(x[:4], verbose=0).tobytes() != expected.tobytes()  # fit did train


# ---------------------------------------------------------------- Ctrl-C at the end of fit
class _InterruptAt(Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach only the main thread")
@pytest.mark.parametrize("epoch,during", [(0, "on_epoch_end"), (2, "on_epoch_end"),
                                          (2, "validation")])
def test_ctrl_c_at_the_end_of_an_epoch_is_raised(epoch, during):
    """Regression: Ctrl-C during the last epoch's validation or on_epoch_end was swallowed (fit
    returned normally). It is raised at the epoch boundary, the weights those after the epoch."""
    expected = _trained(_cnn(), epochs=epoch + 1)
    model, x, y = _cnn()
    callbacks = [_InterruptAt(epoch)] if during == "on_epoch_end" else []
    if during == "validation":  # Ctrl-C as the validation of epoch `epoch` starts
        validate, validations = model._evaluate_batches, []

        def interrupted_validation(*args):
            if len(validations) == epoch:
                os.kill(os.getpid(), signal.SIGINT)
            validations.append(epoch)
            return validate(*args)

        model._evaluate_batches = interrupted_validation
    with pytest.raises(KeyboardInterrupt, match=f"end of epoch {epoch + 1}"):
        model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                  validation_data=(x[:8], y[:8]), callbacks=callbacks)
    for a, b in zip(expected, model.get_weights()):
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- mixed float dtypes
_KERAS_MIXED = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, keras
data = np.load(sys.argv[1])
model = keras.Sequential([keras.Input((3,)),
                          keras.layers.Dense(4, activation="tanh", dtype="float32"),
                          keras.layers.Dense(5, activation="relu", dtype="float64"),
                          keras.layers.Dense(2, dtype="float32")])
model.set_weights([data[f"w{i}"] for i in range(6)])
pred = np.asarray(model.predict(data["x"], verbose=0))
model.compile(keras.optimizers.SGD(0.1), "mse")
model.fit(data["x"], data["y"], batch_size=6, epochs=1, verbose=0)
np.savez(sys.argv[2], pred=pred, *model.get_weights())
"""


def test_float64_layer_after_float32_layer_matches_keras(tmp_path):
    """Regression: float32 then float64 layers failed with a TypeError dumping the weights.
    Keras casts each layer's float input to its dtype; predict and one SGD step match Keras."""
    if not all(importlib.util.find_spec(p) for p in ("keras", "torch")):
        pytest.skip("real Keras with the torch backend (the oracle) is not installed")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    y = rng.standard_normal((6, 2))
    ours = fastdl.Sequential([L.Dense(4, activation="tanh", input_shape=(3,), dtype="float32"),
                              L.Dense(5, activation="relu", dtype="float64"),
                              L.Dense(2, dtype="float32")])
    np.savez(tmp_path / "in.npz", x=x, y=y,
             **{f"w{i}": w for i, w in enumerate(ours.get_weights())})
    result = subprocess.run([sys.executable, "-c", _KERAS_MIXED, str(tmp_path / "in.npz"),
                             str(tmp_path / "out.npz")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = np.load(tmp_path / "out.npz")
    pred = ours.predict(x, verbose=0)
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred, theirs["pred"], rtol=1e-5, atol=1e-6)
    ours.compile(fastdl.optimizers.SGD(0.1), "mse")
    ours.fit(x, y, batch_size=6, epochs=1, verbose=0)
    for i, w in enumerate(ours.get_weights()):
        expected = theirs[f"arr_{i}"]
        assert w.dtype == expected.dtype
        np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- weights refused
@pytest.mark.parametrize("weight", [float("nan"), -1.0, float("inf"), "2", None])
def test_bad_class_weight_is_refused(weight):
    """Regression: NaN and negative class weights were accepted (sample_weight NaN is not)."""
    model = fastdl.Sequential([L.Dense(2, activation="softmax", input_shape=(3,))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"class_weight must map each class to a finite "
                                         r"non-negative number.*class 1: "):
        model.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), class_weight={0: 1.0, 1: weight},
                  verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_complex_weights_are_refused():
    """Regression: set_weights kept the real part of complex arrays with only a warning."""
    layer = L.Dense(2)
    layer.build((None, 3))
    before = layer.get_weights()
    with pytest.raises(TypeError, match=r"weight 0 must be real numbers, received dtype "
                                        r"complex64"):
        layer.set_weights([before[0] + 1j, before[1]])
    np.testing.assert_array_equal(layer.get_weights()[0], before[0])


# ---------------------------------------------------------------- CSVLogger columns
def test_csv_logger_keeps_val_columns_with_validation_freq(tmp_path):
    """Regression: with validation_freq=2 the first epoch has no val_ keys and the val_ columns
    were dropped for good. Keras's rule: a val_ column per key, NA where not validated."""
    model, x, y = _cnn()
    path = tmp_path / "log.csv"
    model.fit(x, y, epochs=3, verbose=0, validation_data=(x[:8], y[:8]), validation_freq=2,
              callbacks=[CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r["val_loss"] == "NA" for r in rows] == [True, False, True]
    assert float(rows[1]["val_loss"]) == pytest.approx(model.history.history["val_loss"][0])


# ---------------------------------------------------------------- freezing during fit
class _FreezeFirstAt(Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.model.layers[0].trainable = False


def test_freezing_a_layer_in_a_callback_takes_effect_at_the_next_step():
    """Regression: freezing a layer from a callback failed ('received 2 gradients for 4
    variables'). As in Keras's eager train step, the change applies from the next step: the
    same as fitting one epoch, freezing, then fitting the next."""
    model, x, y = _cnn()
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
              callbacks=[_FreezeFirstAt()])
    ref, _, _ = _cnn()
    ref.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    frozen = ref.layers[0].get_weights()
    ref.layers[0].trainable = False
    ref.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ref.get_weights(), model.get_weights()):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(frozen, model.layers[0].get_weights()):
        assert a.tobytes() == b.tobytes()
