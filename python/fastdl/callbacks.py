"""Callbacks with Keras 3's API: hooks called by `fit`, `evaluate` and `predict`.

The model interface callbacks use: ``model.stop_training`` (bool attribute), ``model.optimizer``
(``learning_rate`` property, settable), ``model.get_weights()``, ``model.set_weights(list)``,
``model.save(path, overwrite=True)``, ``model.save_weights(path, overwrite=True)``.

`CallbackList` dispatches each hook only to the callbacks that override it; the fit loop may
also read ``CallbackList.has_train_batch_hooks`` / ``has_test_batch_hooks`` /
``has_predict_batch_hooks`` and skip the per-batch calls entirely when they are False.
"""
import math
import os
import sys
import time
import warnings

import numpy as np

__all__ = [
    "Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
    "ReduceLROnPlateau", "CSVLogger", "TerminateOnNaN", "LearningRateScheduler",
    "LambdaCallback", "TensorBoard", "BackupAndRestore", "SwapEMAWeights", "RemoteMonitor",
]


def _rank():
    from fastdl.distributed import rank
    return rank()


def _print(message):
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


class Callback:
    """Base class of callbacks (Keras 3 hooks; every hook is a no-op here)."""

    def __init__(self):
        self.params = {}
        self.model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self.model = model

    def on_batch_begin(self, batch, logs=None):
        """Backwards-compatible alias of `on_train_batch_begin`."""

    def on_batch_end(self, batch, logs=None):
        """Backwards-compatible alias of `on_train_batch_end`."""

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass


_HOOKS = (
    "on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end", "on_test_begin",
    "on_test_end", "on_predict_begin", "on_predict_end", "on_train_batch_begin",
    "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
    "on_predict_batch_end",
)
# hooks whose default implementation forwards to a legacy alias
_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def _overridden(cb, name):
    """The bound method to call for hook `name` of `cb`, or None when it is Callback's no-op."""
    f = getattr(cb, name, None)
    if f is None:
        return None
    func = getattr(f, "__func__", None)
    if func is None or func is not getattr(Callback, name):
        return f
    alias = _ALIASES.get(name)
    if alias is not None:   # the default forwards to the alias: call the alias directly
        g = getattr(cb, alias, None)
        gfunc = getattr(g, "__func__", None)
        if g is not None and (gfunc is None or gfunc is not getattr(Callback, alias)):
            return lambda batch, logs=None, _g=g: _g(batch, logs=logs)
    return None


def _to_float_logs(logs):
    """Convert the values of `logs` to Python floats in place (scalars only)."""
    for k, v in logs.items():
        if type(v) is not float:
            try:
                logs[k] = float(v)
            except (TypeError, ValueError):
                pass
    return logs


class CallbackList(Callback):
    """Container dispatching every hook to a list of callbacks (Keras 3's CallbackList)."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        super().__init__()
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback) and not isinstance(callbacks, CallbackList):
            callbacks = [callbacks]
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not hasattr(cb, "set_model") or not hasattr(cb, "set_params"):
                raise ValueError("Callbacks must be Callback instances (with set_model and "
                                 f"set_params). Received: {cb!r}")
        self._history = None
        self._progbar = None
        for cb in self.callbacks:
            if isinstance(cb, ProgbarLogger):
                self._progbar = cb
            elif isinstance(cb, History):
                self._history = cb
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar and _rank() == 0:   # one bar per job
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self._refresh()
        self.set_model(model)
        self.set_params(params)

    def _refresh(self):
        self._dispatch = {name: [f for f in (_overridden(cb, name) for cb in self.callbacks)
                                 if f is not None] for name in _HOOKS}
        d = self._dispatch
        self.has_train_batch_hooks = bool(d["on_train_batch_begin"] or d["on_train_batch_end"])
        self.has_test_batch_hooks = bool(d["on_test_batch_begin"] or d["on_test_batch_end"])
        self.has_predict_batch_hooks = bool(d["on_predict_batch_begin"]
                                            or d["on_predict_batch_end"])
        self._train_batch_begin = d["on_train_batch_begin"]
        self._train_batch_end = d["on_train_batch_end"]

    def append(self, callback):
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)
        if self.params:
            callback.set_params(self.params)
        self._refresh()

    def set_params(self, params):
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)

    def set_model(self, model):
        if model is None:
            return
        self.model = model
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    # -------------------------------------------------------------- dispatch
    def _call(self, name, *args):
        for f in self._dispatch[name]:
            f(*args)

    def on_batch_begin(self, batch, logs=None):
        self.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs=None):
        self.on_train_batch_end(batch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        fs = self._train_batch_begin
        if fs:
            if logs is None:
                logs = {}
            for f in fs:
                f(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        fs = self._train_batch_end
        if fs:
            if logs is None:
                logs = {}
            for f in fs:
                f(batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, {} if logs is None else logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, {} if logs is None else logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, {} if logs is None else logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, {} if logs is None else logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, {} if logs is None else logs)

    def on_epoch_end(self, epoch, logs=None):
        # One dict for every callback (like Keras): what one adds (ReduceLROnPlateau's
        # learning_rate) the later ones (History, ProgbarLogger) see.
        self._call("on_epoch_end", epoch, {} if logs is None else _to_float_logs(logs))

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", {} if logs is None else logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", {} if logs is None else logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", {} if logs is None else logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", {} if logs is None else _to_float_logs(logs))

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", {} if logs is None else logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", {} if logs is None else logs)


class History(Callback):
    """Records the epoch logs: ``history.history`` (name -> list) and ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            try:
                self.model.history = self
            except AttributeError:
                pass


class ProgbarLogger(Callback):
    """Prints the progress bar and metrics to stdout (Keras 3 format; see
    `fastdl.utils.progbar`). Verbosity comes from ``params["verbose"]`` ("auto" -> 1)."""

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        if verbose == "auto":
            verbose = 1
        self.verbose = verbose
        self.epochs = params.get("epochs", 1) or 1
        self.target = params.get("steps")

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_train_end(self, logs=None):
        self._called_in_fit = False

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)   # never the predictions

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            from fastdl.utils.progbar import Progbar
            # The logs are running means over the epoch already: show them as given.
            self.progbar = Progbar(target=self.target, verbose=self.verbose or 0,
                                   stateless_metrics=(), unit_name="step")
            self.progbar._sort_names = True

    def _update_progbar(self, batch, logs=None):
        if self.progbar is None:
            self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, logs, finalize=False)

    def _finalize_progbar(self, logs):
        if self.progbar is None:
            self._maybe_init_progbar()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, dict(logs) if logs else None, finalize=True)


# ---------------------------------------------------------------------------------------------
# monitoring callbacks

_MAX_HINTS = ("acc", "auc", "precision", "recall", "f1", "fbeta")


def _monitor_direction(monitor, mode, model, owner):
    """'min' or 'max' for `monitor` (mode auto: the metric's direction when the model
    reports one, "acc"/"accuracy"/"auc"/... in the name -> max, otherwise min)."""
    if mode in ("min", "max"):
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss" or name.endswith("_loss"):
        return "min"
    for m in getattr(model, "metrics", None) or ():
        if getattr(m, "name", None) == name and getattr(m, "_direction", None) in ("up", "down"):
            return "max" if m._direction == "up" else "min"
    lowered = name.lower()
    if any(h in lowered for h in _MAX_HINTS):
        return "max"
    return "min"


def _check_mode(mode, owner):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{owner} mode {mode} is unknown, fallback to auto mode.", stacklevel=3)
        return "auto"
    return mode


def _scalar(value):
    """The monitored value as a float (None when it is not a scalar)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim != 0:
        return None
    return float(arr)


class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving (Keras semantics)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if not isinstance(monitor, str):
            raise ValueError(f"EarlyStopping: `monitor` must be a string. Received: "
                             f"monitor={monitor!r}")
        _check_int("EarlyStopping", "patience", patience)
        _check_int("EarlyStopping", "start_from_epoch", start_from_epoch)
        _check_real("EarlyStopping", "min_delta", min_delta)
        if baseline is not None:
            _check_real("EarlyStopping", "baseline", baseline)
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self.mode = _check_mode(mode, "EarlyStopping")
        self.direction = None
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        # reset, so an instance can be reused for another fit
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference):
        # Keras: monitor_op(value - min_delta, reference), min_delta negated in min mode
        if self.direction == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_epoch_end(self, epoch, logs=None):
        if self.direction is None:
            self.direction = _monitor_direction(self.monitor, self.mode, self.model,
                                                "EarlyStopping")
        if self.best is None:
            self.best = math.inf if self.direction == "min" else -math.inf
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # the current weights are the best so far
            self.best_weights = _copy_weights(self.model.get_weights())
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = _copy_weights(self.model.get_weights())
            # restart the wait only when both the baseline and the previous best are beaten
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print("Restoring model weights from the end of the best epoch: "
                       f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}",
                          stacklevel=2)
            return None
        return _scalar(value)


def _copy_weights(weights):
    return [np.array(w, copy=True) for w in weights]


def _check_int(owner, name, value, low=0):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < low:
        raise ValueError(f"{owner}: `{name}` must be an int >= {low}. Received: "
                         f"{name}={value!r}")


def _check_real(owner, name, value, low=None, high=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or not math.isfinite(float(value)):
        raise ValueError(f"{owner}: `{name}` must be a finite number. Received: "
                         f"{name}={value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{owner}: `{name}` must be in [{low}, {high}]. Received: "
                         f"{name}={value!r}")


class ModelCheckpoint(Callback):
    """Save the model or its weights every epoch (or every `save_freq` batches).

    `filepath` may hold ``str.format`` fields filled with ``epoch`` (1-based), ``batch`` (with
    an integer `save_freq`) and the logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.2f}.weights"``.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        if not isinstance(self.filepath, str):
            self.filepath = os.fsdecode(self.filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        from fastdl.saving import check_target  # a name save would refuse fails here, not later
        check_target(self.filepath, weights_only=self.save_weights_only)
        self.mode = _check_mode(mode, "ModelCheckpoint")
        if save_freq != "epoch":
            if isinstance(save_freq, (bool, np.bool_)) or not isinstance(save_freq, int) \
                    or save_freq < 1:
                raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected save_freq "
                                 "are 'epoch' or integer values >= 1")
        self.save_freq = save_freq
        if initial_value_threshold is not None:
            _check_real("ModelCheckpoint", "initial_value_threshold", initial_value_threshold)
        self.best = initial_value_threshold
        self.direction = None
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        if batch <= self._last_batch_seen:   # a new epoch
            add = batch + 1
        else:
            add = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        if self.direction is None:
            self.direction = _monitor_direction(self.monitor, self.mode, self.model,
                                                "ModelCheckpoint")
        raw = (logs or {}).get(self.monitor)
        if raw is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.",
                          stacklevel=3)
            return True
        current = _scalar(raw)
        if current is None:
            warnings.warn("Can save best model only when `monitor` is a scalar value. "
                          f"Received: {raw}. Falling back to `save_best_only=False`.",
                          stacklevel=3)
            return True
        if self.best is None:
            self.best = math.inf if self.direction == "min" else -math.inf
        best_str = f"{self.best:.5f}"
        better = current < self.best if self.direction == "min" else current > self.best
        if better:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to "
                       f"{current:.5f}, saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _get_file_path(self, epoch, batch, logs):
        logs = dict(logs or {})
        logs.pop("epoch", None)
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e}") from None

    def _save_model(self, epoch, batch, logs):
        if _rank() != 0:    # data-parallel training: rank 0 writes the checkpoints
            return
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. "
                          f"Filepath used is an existing directory: {filepath}")
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` after `patience` epochs without improvement."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise ValueError(f"ReduceLROnPlateau: argument(s) not recognized: {kwargs}")
        _check_real("ReduceLROnPlateau", "factor", factor, low=0.0)
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        _check_int("ReduceLROnPlateau", "patience", patience)
        _check_int("ReduceLROnPlateau", "cooldown", cooldown)
        _check_real("ReduceLROnPlateau", "min_delta", min_delta)
        _check_real("ReduceLROnPlateau", "min_lr", min_lr, low=0.0)
        self.monitor = monitor
        self.factor = float(factor)
        self.min_lr = float(min_lr)
        self.min_delta = float(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.mode = _check_mode(mode, "Learning rate reduction")
        self.direction = None
        self._reset()

    def _reset(self):
        self.cooldown_counter = 0
        self.wait = 0
        self.best = None

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _better(self, a, b):
        if self.direction == "min":
            return a < b - self.min_delta
        return a > b + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        if self.direction is None:
            self.direction = _monitor_direction(self.monitor, self.mode, self.model,
                                                "ReduceLROnPlateau")
        if self.best is None:
            self.best = math.inf if self.direction == "min" else -math.inf
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        raw = logs.get(self.monitor)
        if raw is None:
            warnings.warn("Learning rate reduction is conditioned on metric "
                          f"`{self.monitor}` which is not available. Available metrics are: "
                          f"{','.join(list(logs.keys()))}.", stacklevel=2)
            return
        current = _scalar(raw)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                               f"to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Stream the epoch logs to a CSV file: a header ``epoch,<sorted keys>`` (the first epoch's
    keys, plus ``val_<key>`` for each when it has no validation results) then one row per epoch
    (0-based epoch index, like Keras; ``NA`` for a missing value), flushed every epoch."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError("CSVLogger: `separator` must be a one-character string. "
                             f"Received: separator={separator!r}")
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = bool(append)
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if _rank() != 0:    # data-parallel training: rank 0 writes the log
            return
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, "r", newline="") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            self.append_header = True
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        import csv
        if _rank() != 0:
            return
        logs = logs or {}

        def handle_value(v):
            if isinstance(v, str):
                return v
            if isinstance(v, np.ndarray) and v.ndim > 0 or isinstance(v, (list, tuple)):
                return f'"[{", ".join(map(str, np.asarray(v).ravel().tolist()))}]"'
            return v

        if self.csv_file is None:   # used without on_train_begin
            self.on_train_begin()
        if self.keys is None:
            # Keras's rule: the columns are fixed at the first epoch; when it has no val_ keys
            # (validation_freq > 1 skips it), a val_ column is added for each key, so later
            # epochs' validation results have a column (written "NA" where absent).
            self.keys = sorted(logs.keys())
            if not any(k.startswith("val_") for k in self.keys):
                self.keys += ["val_" + k for k in self.keys]
        if self.writer is None:
            sep = self.sep

            class _Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         dialect=_Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, handle_value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite (`model.stop_training = True`,
    or a RuntimeError with ``raise_error=True``)."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_train_batch_end(self, batch, logs=None):
        loss = logs.get("loss") if logs else None
        if loss is None:
            return
        try:
            finite = math.isfinite(loss)
        except TypeError:
            finite = bool(np.all(np.isfinite(np.asarray(loss, dtype=np.float64))))
        if not finite:
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: "
                                   f"{loss}. Terminating training immediately.")
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True

    on_batch_end = on_train_batch_end


class RemoteMonitor(Callback):
    """POST ``{"epoch": epoch, **logs}`` to ``root + path`` at the end of every epoch.

    As in Keras, the body is a form with one field, ``field=json.dumps(data)``, or with
    ``send_as_json=True`` the JSON itself (``Content-Type: application/json``); NumPy values
    become Python numbers (``.item()``). Sent with the standard library's urllib, so it needs
    no ``requests``. A server that cannot be reached gives a warning and training goes on.
    """

    def __init__(self, root="http://localhost:9000", path="/publish/epoch/end/", field="data",
                 headers=None, send_as_json=False):
        super().__init__()
        if headers is not None and not isinstance(headers, dict):
            raise TypeError(f"RemoteMonitor: headers must be a dict or None, received "
                            f"{type(headers).__name__}")
        self.root = root
        self.path = path
        self.field = field
        self.headers = headers
        self.send_as_json = send_as_json

    def on_epoch_end(self, epoch, logs=None):
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        send = {"epoch": epoch}
        for k, v in (logs or {}).items():
            send[k] = v.item() if isinstance(v, (np.ndarray, np.generic)) else v
        if self.send_as_json:
            body, kind = json.dumps(send).encode("utf-8"), "application/json"
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode("ascii")
            kind = "application/x-www-form-urlencoded"
        # the user's headers override ours, as requests merges them
        try:
            request = urllib.request.Request(  # a URL without a scheme is a ValueError here
                self.root + self.path, data=body, method="POST",
                headers={"Content-Type": kind, **(self.headers or {})})
            with urllib.request.urlopen(request) as response:
                response.read()
        except urllib.error.HTTPError as e:
            # reached, but refused: requests (Keras) would return the response silently
            warnings.warn(f"RemoteMonitor: the server at {self.root} answered {e.code} "
                          f"{e.reason} to the POST to {self.root + self.path}", stacklevel=2)
        except (urllib.error.URLError, OSError, ValueError):
            warnings.warn(f"Could not reach RemoteMonitor root server at {self.root}",
                          stacklevel=2)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``); adds ``learning_rate`` to the epoch logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"LearningRateScheduler: `schedule` must be callable. Received: "
                             f"{schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = _accepts_two_args(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        if self._two_args:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            lr = self.schedule(epoch)
        if isinstance(lr, (bool, np.bool_)) or not isinstance(
                lr, (int, float, np.integer, np.floating)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: "
                             f"{lr!r}")
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                   f"{float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _accepts_two_args(fn):
    import inspect
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n >= 2


class LambdaCallback(Callback):
    """A callback from plain functions: ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``,
    ``on_train_batch_begin(batch, logs)``, ``on_train_batch_end(batch, logs)``; any other hook
    by keyword (``on_test_end=...``)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(kwargs)
        hooks.update(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        valid = set(_HOOKS) | {"on_batch_begin", "on_batch_end"}
        for name, fn in hooks.items():
            if fn is None:
                continue
            if name not in valid:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}. Valid hooks: "
                                 f"{sorted(valid)}")
            if not callable(fn):
                raise ValueError(f"LambdaCallback: {name} must be callable. Received: {fn!r}")
            setattr(self, name, fn)


class TensorBoard(Callback):
    """Writes TensorBoard event files, as Keras 3's ``TensorBoard`` callback does.

    ``<log_dir>/train`` gets ``epoch_<name>`` scalars for every training log entry (and
    ``epoch_learning_rate``), ``<log_dir>/validation`` the ``val_`` entries under the same
    ``epoch_<name>`` tags, and ``evaluation_<name>_vs_iterations`` after each evaluation. With
    ``update_freq`` an integer N (or ``"batch"``, N = 1) the training batch logs are also written
    as ``batch_<name>`` every N batches. ``histogram_freq=N`` writes a histogram of every weight
    (``<layer>/<weight>/histogram``) every N epochs; ``write_graph`` writes the model's JSON
    config for TensorBoard's graph plugin when the model has ``to_json``. The files are written
    by ``fastdl._event_file`` (no TensorFlow needed). Profiling, embeddings projection and
    weight images are TensorFlow features fastdl does not have: asking for them is an error.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        for name, value in (("histogram_freq", histogram_freq),
                            ("embeddings_freq", embeddings_freq)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"TensorBoard: `{name}` must be a non-negative int. "
                                 f"Received: {name}={value!r}")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(
                update_freq, (int, np.integer)) or update_freq < 1):
            raise ValueError(f"TensorBoard: `update_freq` must be 'epoch', 'batch' or a "
                             f"positive int. Received: update_freq={update_freq!r}")
        unsupported = {"profile_batch": profile_batch, "embeddings_freq": embeddings_freq,
                       "write_images": write_images, "embeddings_metadata": embeddings_metadata}
        asked = [f"{k}={v!r}" for k, v in unsupported.items() if v]
        if asked:
            raise NotImplementedError(
                f"TensorBoard: fastdl does not provide {', '.join(asked)} (TensorFlow's "
                "profiler, embeddings projector and weight images); scalars, histograms and the "
                "model graph are written")
        self.log_dir = str(log_dir)
        self.histogram_freq = int(histogram_freq)
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self.embeddings_freq = embeddings_freq
        self.embeddings_metadata = embeddings_metadata
        self._writers = {}
        self._global_train_batch = 0

    def _writer(self, which):
        from fastdl._event_file import EventFileWriter
        if which not in self._writers:
            self._writers[which] = EventFileWriter(os.path.join(self.log_dir, which))
        return self._writers[which]

    def set_model(self, model):
        super().set_model(model)
        self._close_writers()
        if self.write_graph and hasattr(model, "to_json") and _rank() == 0:
            from fastdl._event_file import text_tensor_value
            try:
                config = model.to_json()
            except Exception as exc:  # as Keras: a model that cannot serialise still trains
                warnings.warn(f"TensorBoard: the model failed to serialise as JSON, so no "
                              f"graph is written: {exc}")
            else:
                self._writer("train").write(0, [text_tensor_value("keras", config,
                                                                  "graph_keras_model")])

    def _scalars(self, which, step, logs, prefix):
        from fastdl._event_file import scalar_value
        values = []
        for name, value in logs.items():
            try:
                values.append(scalar_value(prefix + name, float(value)))
            except (TypeError, ValueError):
                continue  # Keras logs only scalars too
        if values and _rank() == 0:
            self._writer(which).write(step, values)

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        if self.write_steps_per_second:
            self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        logs = dict(logs or {})
        if self.write_steps_per_second:
            logs["steps_per_second"] = 1.0 / max(time.perf_counter() - self._batch_start, 1e-9)
        self._scalars("train", self._global_train_batch, logs, "batch_")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_first_batch = self._global_train_batch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "learning_rate"):
            train["learning_rate"] = float(optimizer.learning_rate)
        if self.write_steps_per_second:
            steps = self._global_train_batch - self._epoch_first_batch
            train["steps_per_second"] = steps / max(time.perf_counter() - self._epoch_start,
                                                    1e-9)
        self._scalars("train", epoch, train, "epoch_")
        self._scalars("validation", epoch,
                      {k[4:]: v for k, v in logs.items() if k.startswith("val_")}, "epoch_")
        if self.histogram_freq and epoch % self.histogram_freq == 0 and _rank() == 0:
            from fastdl._event_file import histogram_value
            values = [histogram_value(f"{layer.name}/{name}/histogram", weight)
                      for layer in self.model.layers
                      for name, weight in zip(layer.weight_names, layer.weights)]
            if values:
                self._writer("train").write(epoch, values)

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if logs and optimizer is not None and hasattr(optimizer, "iterations"):
            self._scalars("validation", int(optimizer.iterations),
                          {f"evaluation_{k}_vs_iterations": v for k, v in logs.items()}, "")

    def on_train_end(self, logs=None):
        self._close_writers()

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class BackupAndRestore(Callback):
    """Backs up the training state so an interrupted ``fit`` resumes where it stopped.

    Keras 3's signature and behaviour: at the end of every epoch (or every ``save_freq``
    batches) the state is written to ``backup_dir``; a later ``fit`` with the same callback
    restores it and starts from the first unfinished epoch; a ``fit`` that completes deletes
    the backup (``delete_checkpoint``). The state is the model's weights, its optimizer's
    state and fastdl's shared random generator (so the resumed epochs shuffle and drop out as
    the uninterrupted run would) and, for a private model (``fastdl.privacy``), its DP-SGD
    accounting, written to one ``backup.npz`` file atomically (a crash
    while writing leaves the previous backup intact), read back without pickle.
    ``double_checkpoint=True`` also keeps the previous backup as ``backup.npz.bkp`` and falls
    back to it when the latest one cannot be read.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(
                save_freq, (int, np.integer)) or save_freq < 1):
            raise ValueError(f"Invalid value for argument `save_freq`. Received: "
                             f"save_freq={save_freq!r}. Expected either 'epoch' or a positive "
                             "integer value.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._path = os.path.join(self.backup_dir, "backup.npz")
        self._current_epoch = 0
        self._batches_since_save = 0

    def on_train_begin(self, logs=None):
        self._batches_since_save = 0
        paths = [self._path] + ([self._path + ".bkp"] if self.double_checkpoint else [])
        errors = []
        for path in paths:
            if not os.path.exists(path):
                continue
            try:
                self._restore(path)
                return
            except (OSError, ValueError, KeyError) as e:
                errors.append(f"{path}: {e}")
        if errors:
            raise ValueError("BackupAndRestore: cannot restore the backup: " + "; ".join(errors))

    def _restore(self, path):
        import json

        from fastdl.saving import common
        from fastdl.utils import rng
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(bytes(f["metadata"]).decode())
            weights = [f[f"weight_{i}"] for i in range(int(meta["weights"]))]
            state = [f[f"optimizer_{i}"] for i in range(int(meta["optimizer"]))]
        epoch = meta["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"the epoch in the backup must be an int >= 0, found {epoch!r}")
        current = self.model.weights
        if len(weights) != len(current) or any(a.shape != b.shape
                                                for a, b in zip(weights, current)):
            raise ValueError(f"the backup holds {len(weights)} weights of shapes "
                             f"{[a.shape for a in weights]}, the model "
                             f"{[b.shape for b in current]}")
        if state and getattr(self.model, "optimizer", None) is not None:
            state = common.check_optimizer_state(self.model, state, path)
        generator = np.random.default_rng()
        generator.bit_generator.state = meta["rng"]   # validates the state before anything is set
        privacy, strategy = meta.get("privacy"), getattr(self.model, "_train_strategy", None)
        if strategy is not None:   # fastdl.privacy: the backup's steps count (checked first)
            if privacy is None:
                raise ValueError("the backup was written by a fit without differential privacy: "
                                 "resuming a private fit from its weights would void the "
                                 "privacy guarantee")
            strategy.resume(privacy)
        self.model.set_weights(weights)
        if state and getattr(self.model, "optimizer", None) is not None:
            common.set_optimizer_state(self.model, state, path)
        rng.get_rng().bit_generator.state = meta["rng"]
        self.model._initial_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if self.save_freq == "epoch":
            self._save()

    def _save(self):
        import io
        import json

        from fastdl.utils import rng
        if _rank() != 0:
            return
        optimizer = getattr(self.model, "optimizer", None)
        state = optimizer.get_state() if optimizer is not None else []
        weights = self.model.get_weights()
        meta = {"epoch": self._current_epoch, "weights": len(weights), "optimizer": len(state),
                "rng": rng.get_rng().bit_generator.state}
        strategy = getattr(self.model, "_train_strategy", None)
        if strategy is not None:   # fastdl.privacy: the DP-SGD settings and steps taken
            meta["privacy"] = strategy.get_config()
        arrays = {f"weight_{i}": w for i, w in enumerate(weights)}
        arrays.update({f"optimizer_{i}": a for i, a in enumerate(state)})
        arrays["metadata"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp = self._path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        if self.double_checkpoint and os.path.exists(self._path):
            os.replace(self._path, self._path + ".bkp")
        os.replace(tmp, self._path)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and _rank() == 0:
            for path in (self._path, self._path + ".bkp"):
                if os.path.exists(path):
                    os.remove(path)
            try:
                os.rmdir(self.backup_dir)
            except OSError:
                pass  # not empty: other files of the user's stay


class SwapEMAWeights(Callback):
    """Evaluates (and predicts) with the optimizer's moving averages of the weights.

    For an optimizer with ``use_ema=True``: the model's weights and their averages swap places
    for ``evaluate``/validation and ``predict``, and back afterwards. With
    ``swap_on_epoch=True`` they also swap at the end of every epoch (so callbacks such as
    ``ModelCheckpoint`` after this one see the averages) and back at the start of the next; after
    the last epoch the averages stay in the model. (Keras 3 swaps back after ``predict`` only
    when the averages are not in the model, which leaves them in after a ``predict``; fastdl
    swaps back.)
    """

    def __init__(self, swap_on_epoch=False):
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def _swap(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not getattr(optimizer, "use_ema", False):
            raise ValueError("SwapEMAWeights must be used when `use_ema=True` is set on the "
                             f"optimizer. Received: use_ema="
                             f"{getattr(optimizer, 'use_ema', None)}")
        if not optimizer.built:
            return   # no step taken yet: there are no averages, the weights are their own
        for w, average in zip(optimizer._vars, optimizer._averages):
            held = w.copy()
            np.copyto(w, average)
            np.copyto(average, held)
        self._ema_weights_in_model = not self._ema_weights_in_model

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch and self._ema_weights_in_model:
            self._swap()

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap()
            if epoch == self.params.get("epochs", 0) - 1:   # the averages stay in the model
                optimizer = self.model.optimizer
                for w, average in zip(optimizer._vars, optimizer._averages):
                    np.copyto(average, w)

    def on_test_begin(self, logs=None):
        if not self._ema_weights_in_model:
            self._swap()
            self._swapped_for_test = True
        else:
            self._swapped_for_test = False

    def on_test_end(self, logs=None):
        if getattr(self, "_swapped_for_test", False) and self._ema_weights_in_model:
            self._swap()

    on_predict_begin = on_test_begin
    on_predict_end = on_test_end


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
