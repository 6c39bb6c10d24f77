"""The Sequential model: compile / fit / evaluate / predict with Keras 3 semantics."""
import contextlib
import math
import signal
import threading
import warnings

import numpy as np

from fastdl.layers.base import InputLayer, Layer, shape_str, unique_name
from fastdl.utils.rng import get_rng


class Sequential:
    """A linear stack of layers, trained with Keras's ``compile``/``fit`` API."""

    def __init__(self, layers=None, name=None, trainable=True):
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
        self.name = name or unique_name("sequential")
        self._layers = []
        self._input_layer = None
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.built = False
        self._trainable = True
        self._warned_unbounded = False
        self._checked_batch_signature = None  # see train_on_batch
        if layers is not None:
            for layer in layers:
                self.add(layer)
        if not trainable:  # freezing the model freezes every layer; True leaves layers as they are
            self.trainable = False

    # ------------------------------------------------------------------ structure
    @property
    def layers(self):
        return list(self._layers)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"trainable must be a bool. Received: {value!r}")
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = value

    def add(self, layer):
        """Append a layer (or an ``Input`` as the very first element)."""
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("An Input can only be the first element of a Sequential model")
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a fastdl layer, received {type(layer).__name__}")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"All layers added to a Sequential model should have unique names. "
                             f"Name {layer.name!r} is already the name of a layer in this model.")
        self._layers.append(layer)
        self.built = False
        self._checked_batch_signature = None
        shape = self.input_shape
        if shape is not None:
            self.build(shape)

    def pop(self):
        """Remove the last layer."""
        if not self._layers:
            raise IndexError("There are no layers in the model to pop")
        layer = self._layers.pop()
        self._checked_batch_signature = None
        self.built = bool(self._layers) and all(l.built for l in self._layers)
        return layer

    @property
    def input_shape(self):
        """The batch shape of the input, ``(None, ...)``, when it is known."""
        if self._input_layer is not None:
            return self._input_layer._declared_batch_shape
        if self._layers and self._layers[0]._declared_batch_shape is not None:
            return self._layers[0]._declared_batch_shape
        if self._layers and self._layers[0]._build_input_shape is not None:
            return (None,) + tuple(self._layers[0]._build_input_shape[1:])
        return None

    @property
    def output_shape(self):
        if not self.built:
            raise ValueError(f"Model {self.name!r} has not been built yet")
        return self._output_shapes[-1]

    def build(self, input_shape=None):
        """Build every layer for ``input_shape`` (batch axis included, e.g. ``(None, 4)``)."""
        if input_shape is None:
            input_shape = self.input_shape
        if input_shape is None:
            raise ValueError(f"Model {self.name!r} cannot be built without an input shape: pass "
                             "input_shape= to the first layer, start with Input(shape), or call "
                             "build((None, features))")
        shape = (None,) + tuple(input_shape)[1:]
        shapes = []
        for layer in self._layers:
            layer._maybe_build(shape)
            layer.check_input_shape(tuple(1 if d is None else d for d in shape))
            out = layer.compute_output_shape(shape)
            if isinstance(out, list) or (out and isinstance(out[0], (tuple, list))):
                raise ValueError(
                    f"All layers in a Sequential model should have a single output, but layer "
                    f"{layer.name!r} returns {len(out)} (return_state=True). Use return_state "
                    "only when calling the layer directly.")
            shape = tuple(out)
            shapes.append(shape)
        self._output_shapes = shapes
        self.built = bool(self._layers)

    def _ensure_built(self, x_shape):
        if not self.built:
            self.build((None,) + tuple(x_shape[1:]))

    def get_layer(self, name=None, index=None):
        if index is not None:
            if name is not None:
                raise ValueError("Provide either a layer name or a layer index, not both")
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"index must be an int. Received: {index!r}")
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self._layers)} layers.")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: "
                         f"{[l.name for l in self._layers]}")

    # ------------------------------------------------------------------ weights
    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Set every weight; the count and every shape are checked before anything changes."""
        current = self.weights
        weights = list(weights)
        if len(weights) != len(current):
            raise ValueError(f"Model {self.name!r} has {len(current)} weights, but set_weights "
                             f"received {len(weights)}")
        for i, (cur, new) in enumerate(zip(current, weights)):
            if np.shape(new) != cur.shape:
                raise ValueError(f"Model {self.name!r} weight {i} has shape {cur.shape}, but "
                                 f"set_weights received shape {np.shape(new)}")
        start = 0
        for layer in self._layers:
            count = len(layer.weights)
            layer.set_weights(weights[start:start + count])
            start += count

    def count_params(self):
        return sum(layer.count_params() for layer in self._layers)

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Configure training. ``run_eagerly``, ``steps_per_execution``, ``jit_compile`` and
        ``auto_scale_loss`` are accepted for Keras compatibility and have no effect."""
        from fastdl import losses as losses_module
        from fastdl import metrics as metrics_module
        from fastdl import optimizers as optimizers_module

        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='mse' or "
                             "loss='sparse_categorical_crossentropy'")
        if loss_weights is not None:
            raise ValueError("loss_weights applies to multi-output models, which Sequential is not")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        # a function fn(y_true, y_pred) becomes a MeanMetricWrapper named after it, as in Keras
        metric_list = [metrics_module.get(m)
                       for m in _as_list(metrics) + _as_list(weighted_metrics)]
        names = [m.name for m in metric_list]
        if len(set(names)) != len(names):
            raise ValueError(f"Metric names must be unique. Received: {names}")
        self.compiled_metrics = metric_list
        self._compile_config = {"optimizer": optimizer, "loss": loss, "metrics": metrics}
        self.compiled = True
        self._warned_unbounded = False
        self._checked_batch_signature = None

    def _check_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}(): e.g. "
                               "model.compile(optimizer='adam', loss='mse')")

    def _warn_if_unbounded_output(self):
        """Keras trains silently when a probability loss follows a linear output; warn once."""
        if self._warned_unbounded or not getattr(self.loss, "expects_probabilities", False):
            return
        self._warned_unbounded = True
        for layer in reversed(self._layers):
            act = getattr(layer, "activation", None)
            if act is None:
                if type(layer).__name__ in ("Dropout", "Flatten", "Reshape"):
                    continue
                return
            if getattr(act, "name", None) in ("linear", None):
                fix = "softmax" if "categorical" in self.loss.name else "sigmoid"
                warnings.warn(
                    f"The loss {self.loss.name!r} expects probabilities, but the last layer "
                    f"{layer.name!r} has activation='linear', so its outputs are unbounded. "
                    f"Add activation='{fix}' to that layer, or compile with "
                    f"{type(self.loss).__name__}(from_logits=True).", UserWarning, stacklevel=3)
            return

    # ------------------------------------------------------------------ data
    def _convert_x(self, x, what="x"):
        if x is None:
            raise ValueError(f"{what} must not be None")
        first = self._layers[0] if self._layers else None
        if first is None:
            raise ValueError(f"Model {self.name!r} has no layers")
        x = first.convert_input(x)
        if x.ndim < 1:
            raise ValueError(f"{what} must have a batch axis. Received a scalar")
        self._ensure_built(x.shape)
        first.check_input_shape(x.shape)
        return x

    @staticmethod
    def _convert_y(y, n, what="y"):
        if y is None:
            raise ValueError(f"{what} must be given to train or evaluate")
        y = np.asarray(y)
        if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
            raise TypeError(f"{what} must be numeric, received dtype {y.dtype}")
        if y.ndim == 0 or len(y) != n:
            raise ValueError(f"x and {what} must have the same number of samples. Received: "
                             f"x has {n}, {what} has shape {y.shape}")
        if np.issubdtype(y.dtype, np.complexfloating):
            raise TypeError(f"{what} must be real, received dtype {y.dtype}")
        return y

    @staticmethod
    def _convert_sample_weight(sample_weight, n):
        if sample_weight is None:
            return None
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), received {sw.shape}")
        if not np.all(np.isfinite(sw)) or np.any(sw < 0):
            raise ValueError("sample_weight must be finite and non-negative")
        return sw

    @staticmethod
    def _class_weight_to_sample_weight(class_weight, y):
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight must be a dict {{class: weight}}. Received: "
                            f"{type(class_weight).__name__}")
        if y.ndim >= 2 and y.shape[-1] > 1:
            labels = np.argmax(y, axis=-1).reshape(len(y), -1)[:, 0]
        else:
            labels = np.rint(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
        sw = np.ones(len(y), dtype=np.float64)
        for cls, weight in class_weight.items():
            sw[labels == int(cls)] = float(weight)
        return sw

    @staticmethod
    def _check_batch_size(batch_size):
        if batch_size is None:
            return 32
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size}")
        return int(batch_size)

    @staticmethod
    def _check_verbose(verbose):
        if verbose == "auto":
            return 1
        if isinstance(verbose, bool) or verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto'. Received: verbose={verbose!r}")
        return int(verbose)

    # ------------------------------------------------------------------ forward / backward
    def _forward(self, x, training, fuse=False):
        """The layers' calls in order; fuse: adjacent layers may run as one kernel
        (Layer._fuse_next), as in fit/train_on_batch/predict/evaluate, while model(x) calls
        each layer itself."""
        mask = None
        layers = self._layers
        i = 0
        while i < len(layers):
            layer = layers[i]
            if (fuse and mask is None and i + 1 < len(layers)
                    and layer.activity_regularizer is None
                    and layers[i + 1].activity_regularizer is None):
                fused = layer._fuse_next(x, layers[i + 1])
                if fused is not None:  # two layers in one kernel (neither takes a mask)
                    x = fused
                    i += 2
                    continue
            next_mask = layer.compute_mask(x, mask)
            if layer._call_takes_mask:
                x = layer.call(x, training=training, mask=mask)
            else:
                x = layer.call(x, training=training)
            if isinstance(x, (list, tuple)):  # an RNN with return_state: the sequence goes on
                x = x[0]
            layer._record_activity(x)
            mask = next_mask
            i += 1
        return x

    def _inference_forward(self, x):
        """``_forward(x, False)`` with no backward to follow (predict, evaluate): layers may
        skip what only their backward needs (see Layer._inference_only), and adjacent layers
        may run as one fused kernel (Layer._fuse_next: Conv2D -> MaxPooling2D)."""
        for layer in self._layers:
            layer._inference_only = True
        try:
            return self._forward(x, False, fuse=True)
        finally:
            for layer in self._layers:
                layer.__dict__.pop("_inference_only", None)

    def _backward(self, dy, penalties=False):
        """The layers' backward passes; penalties: with the gradients of model.losses (as in
        training; input_gradients leaves them out)."""
        for layer in reversed(self._layers):
            dy = layer._penalized(dy) if penalties else layer.backward(dy)
        return dy

    @property
    def losses(self):
        """The regularization penalties of the last forward pass (Keras's ``model.losses``)."""
        return [penalty for layer in self._layers for penalty in layer.losses]

    def _regularization_loss(self):
        return float(sum(self.losses))

    def __call__(self, x, training=False):
        x = self._convert_x(x)
        return self._forward(x, training)

    def _train_step(self, x, y, sw, trainable, weights, nan_check=False):
        y_pred = self._forward(x, True, fuse=True)
        loss, dy = self.loss.forward_backward(y, y_pred, sw)
        loss += self._regularization_loss()
        self._backward(dy, penalties=True)
        if nan_check:
            _check_finite_gradients(loss, trainable, self.optimizer.iterations)
        grads = [g for layer in trainable for g in layer.grads]
        self.optimizer.apply(grads, weights)
        for layer in trainable:
            layer._apply_constraints()
        for m in self.compiled_metrics:
            m.update_state(y, y_pred, sw)
        return loss

    @contextlib.contextmanager
    def _first_layer_skips_dx(self):
        """Training never uses d loss / d input: let the first layer skip computing it (a
        convolution saves about half of its backward pass)."""
        first = self._layers[0] if self._layers else None
        if first is None or not hasattr(first, "input_gradient_needed"):
            yield
            return
        previous = first.input_gradient_needed
        first.input_gradient_needed = False
        try:
            yield
        finally:
            first.input_gradient_needed = previous

    def _trainable_state(self):
        trainable = [l for l in self._layers if l.trainable and l.trainable_weights]
        weights = [w for l in trainable for w in l.trainable_weights]
        return trainable, weights

    def _dry_run(self, x, y, sw):
        """Check y and the loss on one sample before anything changes state."""
        if len(x) == 0:
            return
        y_pred = self._forward(x[:1], False)
        self.loss.forward_backward(y[:1], y_pred, None if sw is None else sw[:1])
        for m in self.compiled_metrics:
            probe = type(m).from_config(m.get_config()) if hasattr(m, "get_config") else None
            if probe is not None:
                probe.update_state(y[:1], y_pred, None)

    # ------------------------------------------------------------------ fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, nan_check=False):
        """Train for ``epochs`` epochs; returns a ``History``.

        Keras's arguments and defaults. fastdl adds ``nan_check``: when True, the first
        non-finite loss or gradient raises ``FloatingPointError`` naming the layer, before that
        step changes any weight. Ctrl-C (``KeyboardInterrupt``) stops training at a step
        boundary: the weights are those after the last complete step.
        """
        from fastdl.callbacks import CallbackList, History

        self._check_compiled("fit")
        batch_size = self._check_batch_size(batch_size)
        verbose = self._check_verbose(verbose)
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative int. Received: {name}={value!r}")
        if steps_per_epoch is not None or validation_steps is not None:
            raise ValueError("steps_per_epoch/validation_steps apply to generators and datasets; "
                             "fastdl's fit takes arrays and always runs whole epochs")
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be a float in [0, 1). "
                             f"Received: validation_split={validation_split!r}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool. Received: shuffle={shuffle!r}")
        if isinstance(validation_freq, bool) or not isinstance(validation_freq, (int, np.integer)) \
                or validation_freq < 1:
            raise ValueError(f"validation_freq must be a positive int. "
                             f"Received: validation_freq={validation_freq!r}")

        x = self._convert_x(x)
        y = self._convert_y(y, len(x))
        sw = self._convert_sample_weight(sample_weight, len(x))
        if class_weight is not None:
            cw = self._class_weight_to_sample_weight(class_weight, y)
            sw = cw if sw is None else sw * cw

        val = None
        if validation_data is not None:
            val = self._unpack_validation(validation_data)
        elif validation_split:
            split_at = int(math.floor(len(x) * (1.0 - validation_split)))
            if split_at == 0 or split_at == len(x):
                raise ValueError(f"validation_split={validation_split} leaves an empty training or "
                                 f"validation set for {len(x)} samples")
            val = (x[split_at:], y[split_at:], None if sw is None else sw[split_at:])
            x, y = x[:split_at], y[:split_at]
            sw = None if sw is None else sw[:split_at]
        val_batch_size = self._check_batch_size(validation_batch_size or batch_size)

        self._dry_run(x, y, sw)
        self._warn_if_unbounded_output()
        n = len(x)
        steps = math.ceil(n / batch_size)
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        trainable, weights = self._trainable_state()
        batch_hooks = getattr(cbs, "has_train_batch_hooks", True)
        cbs.on_train_begin()
        with _DeferredInterrupt() as interrupt, self._first_layer_skips_dx():
            self._fit_epochs(x, y, sw, val, val_batch_size, validation_freq, epochs,
                             initial_epoch, shuffle, batch_size, steps, n, cbs, batch_hooks,
                             trainable, weights, nan_check, interrupt)
        self.history = next(cb for cb in cbs.callbacks if isinstance(cb, History))
        return self.history

    def _fit_epochs(self, x, y, sw, val, val_batch_size, validation_freq, epochs, initial_epoch,
                    shuffle, batch_size, steps, n, cbs, batch_hooks, trainable, weights,
                    nan_check, interrupt):
        rng = get_rng()
        metrics = self.compiled_metrics
        logs = {}
        for epoch in range(initial_epoch, epochs):
            for m in metrics:
                m.reset_state()
            cbs.on_epoch_begin(epoch)
            order = rng.permutation(n) if shuffle else None
            loss_sum, seen = 0.0, 0
            for step in range(steps):
                lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
                if order is None:
                    xb, yb = x[lo:hi], y[lo:hi]
                    swb = None if sw is None else sw[lo:hi]
                else:
                    idx = order[lo:hi]
                    xb, yb = x[idx], y[idx]
                    swb = None if sw is None else sw[idx]
                if batch_hooks:
                    cbs.on_train_batch_begin(step)
                loss = self._train_step(xb, yb, swb, trainable, weights, nan_check)
                if interrupt.pending:
                    raise KeyboardInterrupt(f"training interrupted after step {step + 1} of "
                                            f"epoch {epoch + 1}; the weights are those after it")
                loss_sum += loss * (hi - lo)
                seen += hi - lo
                if batch_hooks or step == steps - 1:
                    logs = {"loss": loss_sum / seen}
                    for m in metrics:
                        logs[m.name] = m.result()
                if batch_hooks:
                    cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_arrays(*val, batch_size=val_batch_size)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            epoch_logs = dict(sorted(epoch_logs.items()))
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs)

    def _unpack_validation(self, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, sample_weight_val)")
        xv = self._convert_x(validation_data[0], "validation x")
        yv = self._convert_y(validation_data[1], len(xv), "validation y")
        swv = self._convert_sample_weight(validation_data[2], len(xv)) \
            if len(validation_data) == 3 else None
        return xv, yv, swv

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_arrays(self, x, y, sw, batch_size, callbacks=None):
        for m in self.compiled_metrics:
            m.reset_state()
        loss_sum, seen = 0.0, 0
        for step, lo in enumerate(range(0, len(x), batch_size)):
            hi = min(len(x), lo + batch_size)
            if callbacks is not None:
                callbacks.on_test_batch_begin(step)
            y_pred = self._inference_forward(x[lo:hi])
            swb = None if sw is None else sw[lo:hi]
            loss_sum += (self.loss(y[lo:hi], y_pred, swb) + self._regularization_loss()) * (hi - lo)
            seen += hi - lo
            for m in self.compiled_metrics:
                m.update_state(y[lo:hi], y_pred, swb)
            if callbacks is not None:
                callbacks.on_test_batch_end(step, {"loss": loss_sum / seen})
        logs = {"loss": loss_sum / seen if seen else float("nan")}
        for m in self.compiled_metrics:
            logs[m.name] = m.result()
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss (and metrics) on ``x, y``: a scalar, a list ``[loss, *metrics]`` or a dict."""
        from fastdl.callbacks import CallbackList

        self._check_compiled("evaluate")
        batch_size = self._check_batch_size(batch_size)
        self._check_verbose(verbose)
        x = self._convert_x(x)
        y = self._convert_y(y, len(x))
        sw = self._convert_sample_weight(sample_weight, len(x))
        cbs = CallbackList(callbacks, model=self)
        cbs.on_test_begin()
        logs = self._evaluate_arrays(x, y, sw, batch_size, cbs)
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self.compiled_metrics]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for ``x`` as one NumPy array (inference mode)."""
        batch_size = self._check_batch_size(batch_size)
        self._check_verbose(verbose)
        x = self._convert_x(x)
        if len(x) == 0:
            return np.zeros((0,) + tuple(self.output_shape[1:]), dtype=self._layers[-1].dtype)
        outputs = [self._inference_forward(x[lo:lo + batch_size])
                   for lo in range(0, len(x), batch_size)]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=0)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns the loss (and metrics) of that batch."""
        self._check_compiled("train_on_batch")
        x = self._convert_x(x)
        y = self._convert_y(y, len(x))
        sw = self._convert_sample_weight(sample_weight, len(x))
        if class_weight is not None:
            cw = self._class_weight_to_sample_weight(class_weight, y)
            sw = cw if sw is None else sw * cw
        # The one-sample dry run checks shapes and dtypes against the layers, the loss and the
        # metrics; once a signature has passed, later batches of it need no second check
        # (compile, add and pop forget the checked signature).
        signature = (x.shape[1:], x.dtype.str, y.shape[1:], y.dtype.str, sw is None)
        if signature != self._checked_batch_signature:
            self._dry_run(x, y, sw)
            self._checked_batch_signature = signature
        for m in self.compiled_metrics:
            m.reset_state()
        trainable, weights = self._trainable_state()
        with self._first_layer_skips_dx():
            loss = self._train_step(x, y, sw, trainable, weights)
        return self._batch_result(loss, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._check_compiled("test_on_batch")
        x = self._convert_x(x)
        y = self._convert_y(y, len(x))
        sw = self._convert_sample_weight(sample_weight, len(x))
        logs = self._evaluate_arrays(x, y, sw, max(1, len(x)))
        return self._batch_result(logs["loss"], return_dict)

    def _batch_result(self, loss, return_dict):
        logs = {"loss": float(loss)}
        for m in self.compiled_metrics:
            logs[m.name] = m.result()
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def input_gradients(self, x, target=None, batch_size=None):
        """d output[target] / d x for each sample (see :func:`fastdl.explain.input_gradients`)."""
        from fastdl.explain import input_gradients
        return input_gradients(self, x, target=target, batch_size=batch_size)

    def predict_on_batch(self, x):
        x = self._convert_x(x)
        return self._inference_forward(x)

    # ------------------------------------------------------------------ files
    def save(self, filepath, overwrite=True, include_optimizer=True):
        """Save architecture, weights, compile settings and optimizer state.

        ``*.keras`` writes Keras 3's format; any other name (``.fdl`` recommended) fastdl's own
        checksummed format. Neither ever contains pickled objects or code.
        """
        from fastdl.saving import save_model
        save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights only (``*.weights.h5`` for Keras's layout, else fastdl's format)."""
        from fastdl.saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Load weights saved by ``save_weights``/``save``; on failure nothing changes."""
        from fastdl.saving import load_weights
        load_weights(self, filepath)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "layers": [_layer_entry(l) for l in ([self._input_layer] if self._input_layer
                                                     else []) + self._layers]}

    # ------------------------------------------------------------------ summary
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False):
        """Print the layers, their output shapes and parameter counts, and the totals."""
        print_fn = print_fn or print
        width = line_length or 80
        cols = (int(width * 0.45), int(width * 0.30))
        lines = [f'Model: "{self.name}"', "─" * width,
                 f"{'Layer (type)':<{cols[0]}}{'Output Shape':<{cols[1]}}{'Param #':>{width - sum(cols)}}",
                 "═" * width]
        shapes = self._output_shapes if self.built else [None] * len(self._layers)
        for layer, shape in zip(self._layers, shapes):
            label = f"{layer.name} ({type(layer).__name__})"
            shown = shape_str(shape) if shape is not None else "?"
            params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
            lines.append(f"{label:<{cols[0]}}{shown:<{cols[1]}}{params:>{width - sum(cols)}}")
        total = self.count_params()
        trainable = sum(w.size for w in self.trainable_weights)
        lines += ["═" * width,
                  f" Total params: {total:,} ({_human_bytes(total * 4)})",
                  f" Trainable params: {trainable:,} ({_human_bytes(trainable * 4)})",
                  f" Non-trainable params: {total - trainable:,} "
                  f"({_human_bytes((total - trainable) * 4)})"]
        for line in lines:
            print_fn(line)

    def __repr__(self):
        return f"<Sequential name={self.name}, layers={len(self._layers)}, built={self.built}>"


def load_model(filepath, custom_objects=None, compile=True):
    """Load a model saved with ``model.save`` (fastdl's format or a Keras 3 ``.keras`` file)."""
    from fastdl.saving import load_model as _load
    return _load(filepath, custom_objects=custom_objects, compile=compile)


def _layer_entry(layer):
    entry = {"module": "keras.layers", "class_name": type(layer).__name__,
             "config": layer.get_config(), "registered_name": None}
    if layer._build_input_shape is not None and not isinstance(layer, InputLayer):
        entry["build_config"] = {"input_shape": [None] + list(layer._build_input_shape[1:])}
    return entry


def _check_finite_gradients(loss, trainable, iteration):
    if not np.isfinite(loss):
        raise FloatingPointError(f"nan_check: the loss is {loss} at step {iteration}")
    for layer in trainable:
        for name, grad in zip([w.name for w in layer._weight_entries() if w.trainable],
                              layer.grads):
            if not np.all(np.isfinite(grad)):
                raise FloatingPointError(
                    f"nan_check: non-finite gradient of {name!r} in layer {layer.name!r} at step "
                    f"{iteration}; no weight was changed by this step")


class _DeferredInterrupt:
    """Holds back Ctrl-C during a training step and raises it at the next step boundary, so an
    interrupted fit never leaves half-updated weights. Active only in the main thread and when
    Python's default SIGINT handler is installed."""

    def __enter__(self):
        self.pending = False
        self._previous = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        self.pending = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        raise ValueError("metrics as a dict applies to multi-output models; pass a list")
    return [value]


def _human_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
