"""Callbacks and the progress bar, driven by hand with a small fake model."""
import csv
import io
import os
import re
import select
import sys
import termios

import numpy as np
import pytest

from fastdl import callbacks as C
from fastdl.optimizers import SGD, schedules
from fastdl.utils import progbar as P


class FakeModel:
    """What callbacks may use of a model."""

    def __init__(self, lr=0.1):
        self.stop_training = False
        self.optimizer = SGD(learning_rate=lr)
        self.weights = [np.zeros((2, 2), np.float32), np.zeros(3, np.float32)]
        self.saved = []
        self.metrics_names = ["loss", "val_loss"]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        for w, v in zip(self.weights, weights):
            w[...] = v

    def _write(self, kind, path, overwrite):
        assert overwrite is True
        with open(path, "w") as f:
            f.write(kind)
        self.saved.append((kind, os.path.basename(path)))

    def save(self, path, overwrite=True):
        self._write("model", path, overwrite)

    def save_weights(self, path, overwrite=True):
        self._write("weights", path, overwrite)


def run_epochs(cbs, epoch_logs, model=None, steps=3, batch_logs=None, verbose=0):
    """Drive `cbs` like fit does; epoch_logs[i] are the logs of epoch i. Stops on
    model.stop_training. Returns (model, CallbackList, epochs run)."""
    model = model or FakeModel()
    cbl = C.CallbackList(cbs, add_history=True, model=model, verbose=verbose,
                         epochs=len(epoch_logs), steps=steps)
    cbl.on_train_begin()
    ran = 0
    for epoch, logs in enumerate(epoch_logs):
        cbl.on_epoch_begin(epoch)
        for b in range(steps):
            cbl.on_train_batch_begin(b)
            cbl.on_train_batch_end(b, dict(batch_logs or {"loss": 1.0}))
        model.weights[0][...] = epoch       # "training" changes the weights
        cbl.on_epoch_end(epoch, dict(logs))
        ran += 1
        if model.stop_training:
            break
    cbl.on_train_end()
    return model, cbl, ran


# -------------------------------------------------------------------------------------------
# Callback, CallbackList, History

class Recorder(C.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_") and name in C._HOOKS:
            calls = object.__getattribute__(self, "calls")
            return lambda *a, **k: calls.append((name, a[0] if a and name.endswith(
                ("batch_begin", "batch_end", "epoch_begin", "epoch_end")) else None))
        return object.__getattribute__(self, name)


def test_callbacklist_dispatches_every_hook_in_order():
    rec = Recorder()
    model = FakeModel()
    cbl = C.CallbackList([rec], model=model, verbose=0, epochs=1, steps=1)
    assert rec.model is model and rec.params == {"verbose": 0, "epochs": 1, "steps": 1}
    for name in C._HOOKS:
        args = (7,) if name.endswith(("batch_begin", "batch_end", "epoch_begin",
                                      "epoch_end")) else ()
        getattr(cbl, name)(*args, {})
    assert [c[0] for c in rec.calls] == list(C._HOOKS)
    assert all(c[1] == 7 for c in rec.calls if c[1] is not None)


def test_fast_path_skips_hooks_nobody_overrides():
    class EpochOnly(C.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(epoch)

    cb = EpochOnly()
    cbl = C.CallbackList([cb, C.History()])
    assert not cbl.has_train_batch_hooks
    assert not cbl.has_test_batch_hooks and not cbl.has_predict_batch_hooks
    assert cbl._dispatch["on_train_batch_end"] == []
    assert len(cbl._dispatch["on_epoch_end"]) == 2
    cbl.on_train_batch_end(0, {"loss": 1.0})
    cbl.on_epoch_end(3, {"loss": 1.0})
    assert cb.epochs == [3]
    cbl2 = C.CallbackList([cb], add_progbar=True, verbose=1, epochs=1, steps=1)
    assert cbl2.has_train_batch_hooks


def test_legacy_on_batch_end_and_lambda_instance_hooks_are_called():
    seen = []

    class Legacy(C.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(("legacy", batch, logs["loss"]))

    lam = C.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(("lam", batch)),
                           on_epoch_end=lambda epoch, logs: seen.append(("epoch", epoch)),
                           on_test_end=lambda logs: seen.append(("test_end", logs["loss"])))
    cbl = C.CallbackList([Legacy(), lam])
    assert cbl.has_train_batch_hooks and not cbl.has_test_batch_hooks
    cbl.on_train_batch_end(2, {"loss": 0.5})
    cbl.on_epoch_end(1, {"loss": 0.25})
    cbl.on_test_end({"loss": 0.125})
    cbl.on_train_begin()          # nobody overrides: nothing happens, no error
    assert seen == [("legacy", 2, 0.5), ("lam", 2), ("epoch", 1), ("test_end", 0.125)]
    with pytest.raises(ValueError, match="unknown hook"):
        C.LambdaCallback(on_epoch_middle=print)
    with pytest.raises(ValueError, match="callable"):
        C.LambdaCallback(on_epoch_end=3)


def test_lambda_callback_all_named_hooks():
    log = []
    lam = C.LambdaCallback(
        on_epoch_begin=lambda e, logs: log.append(("eb", e)),
        on_epoch_end=lambda e, logs: log.append(("ee", e)),
        on_train_begin=lambda logs: log.append(("tb",)),
        on_train_end=lambda logs: log.append(("te",)),
        on_train_batch_begin=lambda b, logs: log.append(("bb", b)),
        on_train_batch_end=lambda b, logs: log.append(("be", b)))
    run_epochs([lam], [{"loss": 1.0}], steps=2)
    assert log == [("tb",), ("eb", 0), ("bb", 0), ("be", 0), ("bb", 1), ("be", 1), ("ee", 0),
                   ("te",)]


def test_history_and_default_callbacks():
    model, cbl, ran = run_epochs([], [{"loss": 1.0, "val_loss": 2.0},
                                      {"loss": np.float32(0.5), "val_loss": 1.5}])
    hist = cbl._history
    assert isinstance(hist, C.History) and model.history is hist
    assert hist.epoch == [0, 1]
    assert hist.history == {"loss": [1.0, 0.5], "val_loss": [2.0, 1.5]}
    assert all(type(v) is float for vs in hist.history.values() for v in vs)
    assert hist.params["epochs"] == 2
    # a History passed in is used, not duplicated; add_progbar appends one ProgbarLogger
    h = C.History()
    cbl = C.CallbackList([h], add_history=True, add_progbar=True, verbose=0)
    assert cbl.callbacks[0] is h and len(cbl.callbacks) == 2
    assert isinstance(cbl.callbacks[1], C.ProgbarLogger)


# -------------------------------------------------------------------------------------------
# progress bar

class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """A fake clock advancing 0.1 s per reading."""
    t = [1000.0]

    def now():
        t[0] += 0.1
        return t[0]

    monkeypatch.setattr(P, "_clock", now)
    return t


def drive_progbar(monkeypatch, out, verbose, epochs=2, steps=5, batch_logs=None):
    monkeypatch.setattr(sys, "stdout", out)
    cbl = C.CallbackList([], add_progbar=True, verbose=verbose, epochs=epochs, steps=steps)
    cbl.on_train_begin()
    for e in range(epochs):
        cbl.on_epoch_begin(e)
        for b in range(steps):
            cbl.on_train_batch_begin(b)
            cbl.on_train_batch_end(b, batch_logs or {"loss": 2.0 - 0.1 * b,
                                                     "accuracy": 0.1 * b})
        cbl.on_epoch_end(e, {"loss": 1.23456, "accuracy": 0.5, "val_loss": 1e-5,
                             "val_accuracy": 0.25})
    cbl.on_train_end()
    return out.getvalue() if hasattr(out, "getvalue") else None


BAR = "\u2501"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_progbar_tty_format(monkeypatch, clock):
    text = drive_progbar(monkeypatch, FakeTTY(), verbose=1)
    assert text.startswith("Epoch 1/2\n\r")
    assert text.count("Epoch ") == 2 and "Epoch 2/2\n" in text
    frames = [f for f in re.split(r"[\r\n]", text) if f and not f.startswith("Epoch")]
    plain = [ANSI.sub("", f).rstrip() for f in frames]
    # redrawn in place: one frame per step (fake clock: 0.1 s > interval) plus the final one
    assert len(frames) == 2 * (5 + 1)
    assert plain[0] == f"1/5 {BAR * 20} 0s 100ms/step - accuracy: 0.0000e+00 - loss: 2.0000"
    assert re.fullmatch(rf"3/5 {BAR * 20} \d+s 100ms/step - accuracy: 0.2000 - loss: 1.8000",
                        plain[2])
    final = (f"5/5 {BAR * 20} 1s 125ms/step - accuracy: 0.5000 - loss: 1.2346 - "
             "val_accuracy: 0.2500 - val_loss: 1.0000e-05")
    assert plain[5] == final and plain[11] == final
    # Keras's colours: bold count and time, green done part, grey rest
    assert "\x1b[1m1/5\x1b[0m \x1b[32m" + BAR * 4 + "\x1b[0m\x1b[37m" + BAR * 16 in frames[0]
    assert "\x1b[1m1s\x1b[0m 125ms/step" in frames[5]
    # each epoch's last frame ends the line
    assert text.count("\n") == 4 and text.endswith("val_loss: 1.0000e-05\n")
    # a shorter frame is padded over the previous longer one
    assert frames[1].endswith(" " * 4)


def test_progbar_pipe_one_line_per_epoch(monkeypatch, clock):
    text = drive_progbar(monkeypatch, io.StringIO(), verbose=1)
    assert "\r" not in text and "\x1b" not in text and "\b" not in text
    assert text.splitlines() == [
        "Epoch 1/2",
        f"5/5 {BAR * 20} 1s 125ms/step - accuracy: 0.5000 - loss: 1.2346 - val_accuracy: "
        "0.2500 - val_loss: 1.0000e-05",
        "Epoch 2/2",
        f"5/5 {BAR * 20} 1s 125ms/step - accuracy: 0.5000 - loss: 1.2346 - val_accuracy: "
        "0.2500 - val_loss: 1.0000e-05",
    ]


@pytest.mark.parametrize("tty", [False, True])
def test_progbar_verbose_2_and_0(monkeypatch, clock, tty):
    text = drive_progbar(monkeypatch, FakeTTY() if tty else io.StringIO(), verbose=2)
    lines = text.splitlines()
    assert "\r" not in text and "\x1b" not in text
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert re.fullmatch(r"5/5 - \d+s - \d+ms/step - accuracy: 0\.5000 - loss: 1\.2346 - "
                        r"val_accuracy: 0\.2500 - val_loss: 1\.0000e-05", lines[1])
    assert drive_progbar(monkeypatch, FakeTTY() if tty else io.StringIO(), verbose=0) == ""


def test_progbar_verbose_auto_is_1(monkeypatch, clock):
    auto = drive_progbar(monkeypatch, io.StringIO(), verbose="auto")
    assert auto == drive_progbar(monkeypatch, io.StringIO(), verbose=1)
    assert BAR * 20 in auto


def test_progbar_metrics_sorted_when_keys_arrive_late(monkeypatch, clock):
    out = FakeTTY()
    monkeypatch.setattr(sys, "stdout", out)
    cbl = C.CallbackList([], add_progbar=True, verbose=1, epochs=1, steps=2)
    cbl.on_train_begin()
    cbl.on_epoch_begin(0)
    for b in range(2):
        cbl.on_train_batch_end(b, {"loss": 1.0, "mae": 0.5})
    cbl.on_epoch_end(0, {"loss": 1.0, "mae": 0.5, "learning_rate": 0.01, "val_loss": 2.0})
    final = ANSI.sub("", out.getvalue().split("\r")[-1])
    assert final.index("learning_rate") < final.index("loss:") < final.index("mae") < \
        final.index("val_loss")


def test_progbar_single_epoch_has_no_epoch_line(monkeypatch, clock):
    text = drive_progbar(monkeypatch, io.StringIO(), verbose=1, epochs=1)
    assert "Epoch" not in text and len(text.splitlines()) == 1


def test_progbar_on_a_real_pseudo_terminal(monkeypatch):
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST          # no "\n" -> "\r\n" translation
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        out = os.fdopen(slave, "w", encoding="utf-8", closefd=False)
        assert out.isatty()
        monkeypatch.setattr(P, "_clock", iter(np.arange(0, 100, 0.1)).__next__)
        drive_progbar(monkeypatch, out, verbose=1, epochs=2, steps=3)
        out.flush()
        data = b""
        while select.select([master], [], [], 0.2)[0]:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(master)
        os.close(slave)
    text = data.decode("utf-8")
    assert text.count("Epoch ") == 2
    assert "\r" in text and "\x1b[32m" in text
    finals = [ANSI.sub("", f).rstrip() for f in re.split(r"[\r\n]", text)
              if f.startswith("\x1b[1m3/3")]
    assert finals and all(f.startswith(f"3/3 {BAR * 20} ") for f in finals)


def test_progbar_unknown_target_and_evaluate(monkeypatch, clock):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    cbl = C.CallbackList([], add_progbar=True, verbose=1, epochs=1, steps=None)
    cbl.on_test_begin()
    for b in range(4):
        cbl.on_test_batch_end(b, {"loss": 0.5})
    cbl.on_test_end({"loss": 0.5, "accuracy": 0.75})
    assert out.getvalue().splitlines() == [
        f"4/4 {BAR * 20} 1s 133ms/step - accuracy: 0.7500 - loss: 0.5000"]


def test_progbar_helpers_and_keras_averaging(monkeypatch, clock):
    assert P.format_time_per_unit(2.4) == " 2s/step"
    assert P.format_time_per_unit(0.0072) == " 7ms/step"
    assert P.format_time_per_unit(5e-6, "sample") == " 5us/sample"
    assert P.format_time_per_unit(0) == " 0s/step"
    assert P.format_eta(3700) == "1:01:40" and P.format_eta(125) == "2:05"
    assert P.format_eta(12.7) == "12s"
    assert P.format_value(0.5) == " 0.5000" and P.format_value(-2e-4) == " -2.0000e-04"
    # the Progbar class itself averages non-stateful metrics over steps, like Keras
    out = FakeTTY()
    monkeypatch.setattr(sys, "stdout", out)
    bar = P.Progbar(10, interval=0.0, stateful_metrics=["acc"])
    bar.update(1, [("loss", 1.0), ("acc", 0.1)])
    bar.update(3, [("loss", 4.0), ("acc", 0.3)])     # loss: (1*1 + 4*2) / 3 = 3
    last = ANSI.sub("", out.getvalue().split("\r")[-1])
    assert "loss: 3.0000" in last and "acc: 0.3000" in last
    assert last.index("loss") < last.index("acc")    # insertion order for lists
    with pytest.raises(ValueError):
        P.Progbar(10, stateful_metrics=["a"], stateless_metrics=["b"])
    with pytest.raises(ValueError):
        P.Progbar(-1)


def test_progbar_non_utf8_stdout_falls_back(monkeypatch, clock):
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    drive_progbar(monkeypatch, out, verbose=1, epochs=1)
    out.flush()
    text = raw.getvalue().decode("ascii")
    assert text.startswith("5/5 " + "=" * 20 + " ")


# -------------------------------------------------------------------------------------------
# EarlyStopping

def losses(*vals, key="val_loss"):
    return [{key: v, "loss": 1.0} for v in vals]


def test_early_stopping_patience():
    es = C.EarlyStopping(monitor="val_loss", patience=2)
    model, _, ran = run_epochs([es], losses(1.0, 0.9, 0.95, 0.96, 0.97, 0.5))
    assert ran == 4 and es.stopped_epoch == 3 and model.stop_training
    es = C.EarlyStopping(monitor="val_loss", patience=0)
    model, _, ran = run_epochs([es], losses(1.0, 0.9, 0.8, 0.85, 0.7))
    assert ran == 4 and es.stopped_epoch == 3


def test_early_stopping_min_delta():
    es = C.EarlyStopping(monitor="val_loss", patience=1, min_delta=0.1)
    _, _, ran = run_epochs([es], losses(1.0, 0.95, 0.92, 0.5))
    assert ran == 2                               # 0.95 is not 0.1 better than 1.0
    es = C.EarlyStopping(monitor="val_loss", patience=1, min_delta=0.01)
    _, _, ran = run_epochs([es], losses(1.0, 0.95, 0.92, 0.5))
    assert ran == 4
    assert C.EarlyStopping(min_delta=-0.1).min_delta == 0.1     # abs(), like Keras


@pytest.mark.parametrize("monitor", ["val_accuracy", "accuracy", "val_auc", "acc"])
def test_early_stopping_mode_auto_maximizes_accuracy(monitor):
    es = C.EarlyStopping(monitor=monitor, patience=0)
    _, _, ran = run_epochs([es], losses(0.5, 0.6, 0.7, 0.8, key=monitor))
    assert ran == 4                                # increasing accuracy never stops
    es = C.EarlyStopping(monitor=monitor, patience=0)
    _, _, ran = run_epochs([es], losses(0.5, 0.4, 0.7, key=monitor))
    assert ran == 2
    es = C.EarlyStopping(monitor=monitor, patience=0, mode="min")
    _, _, ran = run_epochs([es], losses(0.5, 0.6, 0.7, key=monitor))
    assert ran == 2


def test_early_stopping_restore_best_weights(capsys):
    es = C.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True, verbose=1)
    model, _, ran = run_epochs([es], losses(1.0, 0.5, 0.7, 0.8, 0.9))
    assert ran == 4 and es.best_epoch == 1
    np.testing.assert_array_equal(model.weights[0], 1.0)     # weights of the end of epoch 1
    out = capsys.readouterr().out
    assert "Epoch 4: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 2." in out
    # without restore the last weights stay
    es = C.EarlyStopping(monitor="val_loss", patience=2)
    model, _, _ = run_epochs([es], losses(1.0, 0.5, 0.7, 0.8, 0.9))
    np.testing.assert_array_equal(model.weights[0], 3.0)


def test_early_stopping_baseline_and_start_from_epoch():
    # never beating the baseline: the wait is never reset
    es = C.EarlyStopping(monitor="val_loss", patience=2, baseline=0.5)
    _, _, ran = run_epochs([es], losses(0.8, 0.8, 0.8, 0.8))
    assert ran == 2
    es = C.EarlyStopping(monitor="val_loss", patience=2)
    _, _, ran = run_epochs([es], losses(0.8, 0.8, 0.8, 0.8))
    assert ran == 3
    es = C.EarlyStopping(monitor="val_loss", patience=0, start_from_epoch=3)
    _, _, ran = run_epochs([es], losses(0.8, 0.9, 1.0, 0.7, 0.6, 0.9))
    assert ran == 6 and es.stopped_epoch == 5


def test_early_stopping_missing_monitor_warns():
    es = C.EarlyStopping(monitor="val_accuracy", patience=0)
    with pytest.warns(UserWarning, match="val_accuracy.*not available. Available metrics are: val_loss,loss"):
        _, _, ran = run_epochs([es], losses(1.0, 2.0, 3.0))
    assert ran == 3


def test_early_stopping_reusable_and_bad_args():
    es = C.EarlyStopping(monitor="val_loss", patience=0)
    run_epochs([es], losses(0.1, 0.2))
    _, _, ran = run_epochs([es], losses(1.0, 0.9, 0.8))      # best is reset between fits
    assert ran == 3
    with pytest.raises(ValueError, match="patience"):
        C.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="patience"):
        C.EarlyStopping(patience=True)
    with pytest.warns(UserWarning, match="unknown"):
        assert C.EarlyStopping(mode="largest").mode == "auto"


# -------------------------------------------------------------------------------------------
# ReduceLROnPlateau, LearningRateScheduler

def test_reduce_lr_on_plateau():
    rl = C.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=2)
    model, cbl, _ = run_epochs([rl], losses(1.0, 1.0, 1.0, 1.0, 1.0), FakeModel(lr=0.1))
    hist = cbl._history.history
    # seen by History: the rate at each epoch end (reduced at the end of epochs 2 and 4)
    assert hist["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01], rel=1e-6)
    assert model.optimizer.learning_rate == pytest.approx(0.001, rel=1e-6)


def test_reduce_lr_cooldown_min_lr_and_improvement():
    rl = C.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=2)
    model, cbl, _ = run_epochs([rl], losses(*[1.0] * 7), FakeModel(lr=0.8))
    # reductions at epochs 2 and 5 (cooldown delays the second by one epoch)
    assert cbl._history.history["learning_rate"] == pytest.approx(
        [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2])
    rl = C.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=1, min_lr=0.05)
    model, _, _ = run_epochs([rl], losses(*[1.0] * 6), FakeModel(lr=0.1))
    assert model.optimizer.learning_rate == pytest.approx(0.05)
    rl = C.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=1, min_delta=0.01)
    model, _, _ = run_epochs([rl], losses(1.0, 0.9, 0.8, 0.7), FakeModel(lr=0.1))
    assert model.optimizer.learning_rate == pytest.approx(0.1)      # always improving
    rl = C.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=1, min_delta=0.2)
    model, _, _ = run_epochs([rl], losses(1.0, 0.9, 0.8, 0.7), FakeModel(lr=0.1))
    # 0.9 and 0.8 are not 0.2 below the best 1.0 (two reductions); 0.7 is
    assert model.optimizer.learning_rate == pytest.approx(0.1 * 0.1 ** 2)
    rl = C.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1)
    model, _, _ = run_epochs([rl], losses(0.5, 0.6, 0.7, key="val_accuracy"), FakeModel(0.1))
    assert model.optimizer.learning_rate == pytest.approx(0.1)      # max mode for accuracy
    with pytest.raises(ValueError, match="factor >= 1.0"):
        C.ReduceLROnPlateau(factor=1.0)
    with pytest.warns(UserWarning, match="not available"):
        run_epochs([C.ReduceLROnPlateau(monitor="val_mae")], losses(1.0))


def test_reduce_lr_with_a_schedule_is_a_type_error():
    model = FakeModel()
    model.optimizer = SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="not settable"):
        run_epochs([C.ReduceLROnPlateau(patience=0)], losses(1.0, 1.0), model)


def test_learning_rate_scheduler(capsys):
    seen = []

    def one_arg(epoch):
        return 0.1 / (epoch + 1)

    def two_args(epoch, lr):
        seen.append(lr)
        return lr * 0.5

    model, cbl, _ = run_epochs([C.LearningRateScheduler(one_arg)], losses(1, 1, 1))
    assert cbl._history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    model, cbl, _ = run_epochs([C.LearningRateScheduler(two_args, verbose=1)], losses(1, 1, 1),
                               FakeModel(lr=0.8))
    assert seen == pytest.approx([0.8, 0.4, 0.2])
    assert model.optimizer.learning_rate == pytest.approx(0.1)
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.2" in \
        capsys.readouterr().out
    with pytest.raises(ValueError, match="should be a float"):
        run_epochs([C.LearningRateScheduler(lambda e: "fast")], losses(1))
    with pytest.raises(ValueError, match="callable"):
        C.LearningRateScheduler(0.1)


# -------------------------------------------------------------------------------------------
# CSVLogger, ModelCheckpoint, TerminateOnNaN

def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    logger = C.CSVLogger(str(path))
    model = FakeModel()
    cbl = C.CallbackList([logger], model=model)
    cbl.on_train_begin()
    cbl.on_epoch_end(0, {"loss": 0.5, "accuracy": 0.25, "val_loss": 0.75})
    # flushed at every epoch end: readable before training ends
    assert path.read_text().splitlines() == ["epoch,accuracy,loss,val_loss",
                                             "0,0.25,0.5,0.75"]
    cbl.on_epoch_end(1, {"loss": 0.25, "accuracy": 0.5, "val_loss": float("nan")})
    cbl.on_train_end()
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["epoch", "accuracy", "loss", "val_loss"], ["0", "0.25", "0.5", "0.75"],
                    ["1", "0.5", "0.25", "nan"]]
    # append: no second header; missing key -> NA
    logger = C.CSVLogger(path, separator=";", append=True)
    cbl = C.CallbackList([logger], model=model)
    cbl.on_train_begin()
    cbl.on_epoch_end(0, {"loss": 0.125, "val_loss": 1.0})
    cbl.on_train_end()
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[3] == "0;0.125;1.0"
    # overwrite
    logger = C.CSVLogger(path)
    cbl = C.CallbackList([logger], model=model)
    cbl.on_train_begin()
    cbl.on_epoch_end(0, {"loss": 2.0})
    cbl.on_train_end()
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,2.0,NA"]


def test_model_checkpoint_names(tmp_path):
    pattern = str(tmp_path / "sub" / "w-{epoch:02d}-{val_loss:.2f}.weights")
    ck = C.ModelCheckpoint(pattern, save_weights_only=True)
    model, _, _ = run_epochs([ck], losses(0.5, 0.25, 0.125))
    assert model.saved == [("weights", "w-01-0.50.weights"), ("weights", "w-02-0.25.weights"),
                           ("weights", "w-03-0.12.weights")]
    assert (tmp_path / "sub" / "w-03-0.12.weights").read_text() == "weights"
    ck = C.ModelCheckpoint(str(tmp_path / "m-{epoch}.model"))
    model, _, _ = run_epochs([ck], losses(1.0))
    assert model.saved == [("model", "m-1.model")]
    ck = C.ModelCheckpoint(str(tmp_path / "m-{val_mae}.model"))
    with pytest.raises(KeyError, match="Failed to format"):
        run_epochs([ck], losses(1.0))


def test_model_checkpoint_save_best_only(tmp_path, capsys):
    path = str(tmp_path / "best.model")
    ck = C.ModelCheckpoint(path, monitor="val_loss", save_best_only=True, verbose=1)
    model, _, _ = run_epochs([ck], losses(0.5, 0.6, 0.4, 0.45))
    assert len(model.saved) == 2 and ck.best == 0.4
    out = capsys.readouterr().out
    assert "Epoch 1: val_loss improved from inf to 0.50000, saving model to" in out
    assert "Epoch 2: val_loss did not improve from 0.50000" in out
    ck = C.ModelCheckpoint(str(tmp_path / "b-{epoch}.model"), monitor="val_accuracy",
                           save_best_only=True)
    model, _, _ = run_epochs([ck], losses(0.5, 0.4, 0.7, key="val_accuracy"))
    assert [n for _, n in model.saved] == ["b-1.model", "b-3.model"]
    ck = C.ModelCheckpoint(path, save_best_only=True, initial_value_threshold=0.45)
    model, _, _ = run_epochs([ck], losses(0.5, 0.6, 0.4))
    assert len(model.saved) == 1
    ck = C.ModelCheckpoint(path, monitor="val_mae", save_best_only=True)
    with pytest.warns(UserWarning, match="val_mae"):
        model, _, _ = run_epochs([ck], losses(0.5))
    assert len(model.saved) == 1


def test_model_checkpoint_save_freq_batches(tmp_path):
    ck = C.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.model"), save_freq=2)
    model, _, _ = run_epochs([ck], losses(1.0, 1.0), steps=3)
    # every 2 batches across the epoch boundary: epoch 1 batch 2, epoch 2 batches 1 and 3
    assert [n for _, n in model.saved] == ["e1-b2.model", "e2-b1.model", "e2-b3.model"]
    for bad in (0, "batch", 1.5, True):
        with pytest.raises(ValueError, match="save_freq"):
            C.ModelCheckpoint("x.model", save_freq=bad)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_terminate_on_nan(bad, capsys):
    model = FakeModel()
    cbl = C.CallbackList([C.TerminateOnNaN()], model=model)
    assert cbl.has_train_batch_hooks
    cbl.on_train_batch_end(0, {"loss": 1.0})
    assert model.stop_training is False
    cbl.on_train_batch_end(1, {"loss": bad})
    assert model.stop_training is True
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss"):
        C.CallbackList([C.TerminateOnNaN(raise_error=True)], model=FakeModel()) \
            .on_train_batch_end(3, {"loss": bad})


def test_callbacks_together_in_one_list(tmp_path):
    rl = C.ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5)
    es = C.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    csv_path = tmp_path / "h.csv"
    model, cbl, ran = run_epochs([rl, es, C.CSVLogger(str(csv_path))],
                                 losses(1.0, 0.8, 0.9, 0.95, 0.99, 0.5), FakeModel(lr=0.4))
    assert ran == 5 and es.best_epoch == 1
    np.testing.assert_array_equal(model.weights[0], 1.0)
    header = csv_path.read_text().splitlines()[0]
    assert header == "epoch,learning_rate,loss,val_loss"      # rl added learning_rate first
    assert cbl._history.history["learning_rate"] == pytest.approx([0.4, 0.4, 0.4, 0.2, 0.1])
