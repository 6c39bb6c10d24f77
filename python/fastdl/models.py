"""Model (the base class: compile / fit / evaluate / predict with Keras 3 semantics) and
Sequential (a linear stack of layers). ``Model(inputs, outputs)`` builds a functional model
(fastdl.functional); a subclass of Model defines ``call`` (see docs/engine.md)."""
import contextlib
import math
import operator
import shutil
import signal
import threading
import warnings
import weakref

import numpy as np

from fastdl.data.adapters import (RAN_OUT, ArrayBatches, SourceBatches, is_batch_source,
                                  pack_x_y_sample_weight, source_name,
                                  unpack_x_y_sample_weight)
from fastdl.layers.base import (InputLayer, Layer, _eager_outputs, begin_call, end_call, shape_str,
                               unique_name)
from fastdl.tensor.tape import recording
from fastdl.tensor.tensor import Tensor

_name_of = operator.attrgetter("name")


class Model(Layer):
    """A model: a Layer with Keras's training loop (``compile``, ``fit``, ``evaluate``, ``predict``,
    ``train_on_batch``, ...), saving and summary.

    ``Model(inputs, outputs, name=None)`` builds a functional model from symbolic tensors
    (``keras.Input``); a subclass defines ``call(self, inputs, training=None)`` with layers set as
    attributes and ``fastdl.ops``. The training loop calls a few hooks that each kind of model
    implements: ``_convert_x`` (user input to arrays), ``_forward`` (inference values),
    ``_inference_forward``, ``_train_forward`` (y_pred and what the backward needs),
    ``_train_backward`` (the weights' gradients) and ``_trainable_state``. This base class
    implements them with a GradientTape over ``_call_tensors`` (the model run on Tensors);
    Sequential overrides them with its chain of layer forward/backward calls.
    """
    _tracks_attribute_layers = False   # a model's layers: _layers (models._tracked_layers)

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from fastdl.functional import Functional
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args, name=None, trainable=True, dtype=None, **kwargs):
        if args or "inputs" in kwargs or "outputs" in kwargs:
            raise TypeError("Model(inputs, outputs) builds a functional model; a subclass of "
                            "Model takes only name=, trainable= and dtype= in "
                            f"super().__init__(). Received: args={args!r}, "
                            f"kwargs={sorted(kwargs)}")
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unrecognized keyword arguments "
                            f"{sorted(kwargs)}")
        self._init_model(name, trainable, dtype)

    def _init_model(self, name, trainable=True, dtype=None):
        Layer.__init__(self, name=name, dtype=dtype)
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self._metric_weighted = []  # per compiled metric: from weighted_metrics (see compile)
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._warned_unbounded = False
        self._checked_batch_signature = None  # see train_on_batch
        if not isinstance(trainable, (bool, np.bool_)):
            raise TypeError(f"trainable must be a bool. Received: trainable={trainable!r}")
        self._trainable = bool(trainable)

    # ------------------------------------------------------------------ structure
    @property
    def _layers(self):
        """The model's layers: a list Sequential and functional models keep; for a subclass,
        the layers held by its attributes (directly or in lists, tuples and dicts)."""
        layers = self.__dict__.get("_layer_list")
        return layers if layers is not None else _tracked_layers(self)

    @_layers.setter
    def _layers(self, value):
        self.__dict__["_layer_list"] = value

    @property
    def layers(self):
        return list(self._layers)

    def call(self, inputs, training=None):
        raise NotImplementedError(
            f"Model {self.name!r} ({type(self).__name__}) has no call(): a subclass of Model "
            "must define call(self, inputs, training=None), or build a functional model with "
            "Model(inputs, outputs)")

    def _call_tensors(self, x, training):
        """The model run on Tensors (recorded by a recording GradientTape)."""
        return _call_with_flags(self, self.call, x, training, None)

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
        """Configure training, with Keras's arguments.

        ``metrics`` are computed without the sample weights, ``weighted_metrics`` with them (a
        weighted metric whose name is also in ``metrics`` is named ``weighted_<name>``, as in
        Keras). ``run_eagerly``, ``steps_per_execution``, ``jit_compile`` and
        ``auto_scale_loss`` are execution hints for Keras's graph compilers and float16 loss
        scaling: fastdl always runs eagerly, one step at a time, in float32/float64, so they are
        checked and have no effect on any result (batch callbacks still run every step)."""
        from fastdl import losses as losses_module
        from fastdl import metrics as metrics_module
        from fastdl import optimizers as optimizers_module

        if loss is None and not self._overrides("train_step") and not self._may_add_losses():
            raise ValueError("compile needs a loss, e.g. loss='mse' or "
                             "loss='sparse_categorical_crossentropy'")
        n_outputs = self._output_count()
        if loss_weights is not None and n_outputs == 1:
            raise ValueError(f"loss_weights applies to multi-output models; model {self.name!r} "
                             "has one output")
        for name, value, allowed in (("run_eagerly", run_eagerly, "a bool"),
                                     ("jit_compile", jit_compile, "a bool or 'auto'"),
                                     ("auto_scale_loss", auto_scale_loss, "a bool")):
            if not (isinstance(value, (bool, np.bool_))
                    or (name == "jit_compile" and isinstance(value, str) and value == "auto")):
                raise ValueError(f"{name} must be {allowed}. Received: {name}={value!r}")
        spe = steps_per_execution
        if not (isinstance(spe, str) and spe == "auto") and (
                isinstance(spe, bool) or not isinstance(spe, (int, np.integer)) or spe < 1):
            raise ValueError(f"steps_per_execution must be a positive int or 'auto'. Received: "
                             f"steps_per_execution={steps_per_execution!r}")
        self.optimizer = optimizers_module.get(optimizer)
        if loss is None:            # a model with its own train_step computes its loss there
            self.loss = None
        elif n_outputs == 1:
            self.loss = losses_module.get(loss)
        else:
            from fastdl.functional import MultiOutputLoss
            self.loss = MultiOutputLoss(self, loss, loss_weights)

        def resolve(given):
            # a function fn(y_true, y_pred) becomes a MeanMetricWrapper named after it, as in Keras
            if n_outputs > 1:
                from fastdl.functional import output_metrics
                return output_metrics(self, given)
            return [metrics_module.get(m) for m in _as_list(given)]

        plain, weighted = resolve(metrics), resolve(weighted_metrics)
        if len({id(m) for m in plain + weighted}) != len(plain + weighted):
            raise ValueError("The same metric object is passed twice to compile; pass separate "
                             "instances (or names) to metrics and weighted_metrics")
        for m in weighted:
            if any(p.name == m.name for p in plain):
                m.name = "weighted_" + m.name
        names = [m.name for m in plain + weighted]
        if len(set(names)) != len(names):
            raise ValueError(f"Metric names must be unique. Received: {names}")
        self.compiled_metrics = plain + weighted
        self._metric_weighted = [False] * len(plain) + [True] * len(weighted)
        self._compile_config = {"optimizer": optimizer, "loss": loss, "metrics": metrics,
                                "weighted_metrics": weighted_metrics}
        self.compiled = True
        self._warned_unbounded = False
        self._checked_batch_signature = None

    def _output_count(self):
        """How many outputs the model has (the functional API may have several)."""
        return 1

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

    def _targets(self, y, n, what="y"):
        """``y`` converted (``_convert_y``); or, when no ``y`` is given to a model compiled
        without a loss (its whole loss from ``add_loss``) and without metrics, an empty (n, 0)
        target that nothing reads: Keras's ``fit(x)`` for such models."""
        if y is None and getattr(self, "loss", ()) is None and not self.compiled_metrics:
            return np.zeros((n, 0), np.float32)
        return self._convert_y(y, n, what)

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
            real = isinstance(weight, (int, float, np.integer, np.floating)) \
                and not isinstance(weight, (bool, np.bool_))
            if not (real and math.isfinite(weight) and weight >= 0):
                raise ValueError(f"class_weight must map each class to a finite non-negative "
                                 f"number (as sample_weight must be). Received: class {cls!r}: "
                                 f"{weight!r}")
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
    # fastdl.privacy.make_private installs a train-step strategy: fit then takes each epoch's
    # batches from strategy.plan(model, n, batch_size) and runs strategy.train_step (DP-SGD).
    _train_strategy = None

    def _train_step(self, x, y, sw, trainable, weights, nan_check=False):
        if self._train_strategy is not None:
            return self._train_strategy.train_step(self, x, y, sw, trainable, weights, nan_check)
        sync = getattr(self.optimizer, "local_batch", None)   # fastdl.distributed
        if sync is not None and sync(self.loss, y, sw, weights):
            return 0.0      # no sample on this rank this step: it joined the allreduce with zeros
        y_pred, backward_state = self._train_forward(x)
        if self.loss is None:   # compiled without a loss: add_loss gives all of it
            self._require_loss("fit")
            loss, dy = 0.0, _zeros_like(y_pred)
        else:
            loss, dy = self.loss.forward_backward(y, y_pred, sw)
        loss += self._regularization_loss(self.__dict__.get("_penalty_layers"))
        grads = self.optimizer._scale_gradients(
            self._train_backward(backward_state, dy, trainable))
        if nan_check:
            _check_finite_gradients(loss, trainable, grads, self.optimizer.iterations)
        self.optimizer.apply(grads, weights)
        for layer in trainable:
            layer._apply_constraints()
        self._update_metrics(y, y_pred, sw)
        return loss

    @property
    def losses(self):
        """Keras's ``model.losses``: the losses ``add_loss`` added in the last call (Tensors),
        then the regularization penalties of the last forward pass."""
        return self._added_losses_in_tree() + [
            penalty for layer in _leaf_layers(self) for penalty in layer._penalties()]

    def _regularization_loss(self, layers=None):
        """sum(model.losses) as a float (each added loss summed over its entries); ``layers``:
        those with penalties, when known (a training step)."""
        if layers is None:
            layers = _leaf_layers(self)
        total = float(sum(p for layer in layers for p in layer._penalties()))
        return total + sum(float(np.sum(t._value)) for t in self._added_losses_in_tree())

    def _training_state(self):
        """``_trainable_state()`` for the steps to come, noting which layers carry penalties so
        that a step without regularizers pays nothing for them."""
        self._penalty_layers = [l for l in _leaf_layers(self) if l._has_penalties()]
        self._gradient_start = None   # Sequential: found again on the first step
        return self._trainable_state()

    # The hooks of a model kind (Sequential overrides them with its layer chain). Here: the
    # model run on Tensors, differentiated by a GradientTape; built-in layers are one primitive
    # each with a per-call cache, so a layer called several times is differentiated correctly.
    def _convert_x(self, x, what="x"):
        x = _as_model_input(x, self, what)
        if self._build_input_shape is None:  # saving rebuilds the model with it (build_config)
            self._build_input_shape = (None,) + x.shape[1:]
        return x

    def _forward(self, x, training, fuse=False):
        depth = begin_call(self)
        try:
            return _values(self._call_tensors(_as_tensors(x), training))
        finally:
            end_call(depth)

    def _inference_forward(self, x):
        """``_forward(x, False)`` with no backward to follow: layers may skip what only their
        backward needs (Layer._inference_only)."""
        with self._in_use("predict", training=False):
            leaves = _leaf_layers(self)
            for layer in leaves:
                layer._inference_only = True
            try:
                return self._forward(x, False, fuse=True)
            finally:
                for layer in leaves:
                    layer.__dict__.pop("_inference_only", None)

    def _train_forward(self, x):
        """(y_pred as arrays, the state ``_train_backward`` needs)."""
        from fastdl.ops import GradientTape   # (loading fastdl.ops binds the operators)
        from fastdl.ops.layers import collect_activity
        tape = GradientTape()
        depth = begin_call(self)
        try:
            with tape, collect_activity() as activity:
                y = self._call_tensors(_as_tensors(x), True)
        finally:
            end_call(depth)
        flat = y if isinstance(y, (list, tuple)) else [y]
        for t in flat:
            if not isinstance(t, Tensor):
                raise TypeError(f"Model {self.name!r}: call() must return fastdl Tensors to be "
                                f"trained with fit, received {type(t).__name__}")
        return _values(y), (tape, y, activity)

    def _train_backward(self, state, dy, trainable):
        """The gradients of the trainable layers' weights, in ``_trainable_state`` order; the
        activity penalties' gradients enter at the outputs of their layers."""
        from fastdl.ops.layers import layer_variables
        tape, y, activity = state
        targets, seeds = [y], [dy]
        for added in self._added_losses_in_tree():   # add_loss: d(sum of its entries) = 1
            targets.append(added)
            seeds.append(np.ones_like(added._value))
        for layer, out in activity.items():
            v = out._value
            targets.append(out)
            seeds.append(layer.activity_regularizer.gradient(v) / max(v.shape[0] if v.ndim
                                                                      else 1, 1))
        sources = [v for layer in trainable for v in layer_variables(layer)]
        grads = tape.gradient(targets, sources, output_gradients=seeds,
                              unconnected_gradients="zero")
        grads = [g._value for g in grads]
        entries = [w for layer in trainable for w in layer._weight_entries() if w.trainable]
        return [g + w.regularizer.gradient(w.value).astype(g.dtype, copy=False)
                if w.regularizer else g for w, g in zip(entries, grads)]

    def _trainable_state(self):
        """(the layers whose weights train, their trainable weights in order)."""
        for layer in _leaf_layers(self):
            if layer.activity_regularizer is not None and layer._tape_only:
                raise NotImplementedError(
                    f"layer {layer.name!r} ({type(layer).__name__}) has an "
                    "activity_regularizer, which fastdl applies to built-in layers only so far "
                    f"in a {type(self).__name__} model")
        trainable = [l for l in _leaf_layers(self) if l.trainable and l.trainable_weights]
        for layer in trainable:
            if type(layer).__call__ is not Layer.__call__ and not (layer._primitive_call
                                                                   or layer._tape_only):
                raise NotImplementedError(
                    f"layer {layer.name!r} ({type(layer).__name__}) cannot be trained inside a "
                    f"{type(self).__name__} model yet: it is not a GradientTape primitive. "
                    "Use it in a Sequential model.")
        return trainable, [w for l in trainable for w in l.trainable_weights]

    def _first_layer_skips_dx(self):
        return contextlib.nullcontext()

    def __call__(self, x, training=False, mask=None):
        """``model(x)``: Tensors (recorded by a recording GradientTape); arrays give constant
        Tensors over the output arrays, as Keras gives backend tensors (``model(x).numpy()``);
        symbolic tensors give symbolic tensors (functional API). ``predict`` gives arrays."""
        from fastdl import functional
        if functional.is_symbolic(x):
            return functional.symbolic_call(self, x, {"training": training})
        if _has_tensor(x) or recording():  # in a GradientTape, as in TensorFlow: Tensors out
            depth = begin_call(self)
            try:
                return self._call_tensors(x if _has_tensor(x) else
                                          _as_tensors(self._convert_x(x)), training)
            finally:
                end_call(depth)
        x = self._convert_x(x)
        with self._in_use("__call__", training=False):
            return _eager_outputs(self._forward(x, training))   # Keras: tensors, not arrays

    def compute_output_shape(self, input_shape):
        from fastdl import functional
        return functional.infer_output_shape(self, input_shape)

    def _update_metrics(self, y, y_pred, sw):
        """As in Keras: ``metrics`` see no sample weights, ``weighted_metrics`` do."""
        for m, weighted in zip(self.compiled_metrics, self._metric_weighted):
            m.update_state(y, y_pred, sw if weighted else None)

    def _in_use(self, what, training):
        """Between a training step's forward and backward the layers' caches hold that step, so
        while one thread trains (fit, train_on_batch) no other thread may run the model: its
        calls get a RuntimeError, and training first waits for the calls already running.
        Inference (predict, evaluate, model(x)) may run in several threads at once, and the
        training thread's own callbacks may run it (validation)."""
        return _InUse(self, what, training)

    def _dry_run(self, x, y, sw):
        """Check y and the loss on one sample before anything changes state."""
        if len(x) == 0:
            return
        # one sample must not touch the states (nor the batch size) of stateful RNNs
        stateful = [l for l in _leaf_layers(self) if getattr(l, "stateful", False)]
        for layer in stateful:
            layer.stateful = False
        try:
            y_pred = self._forward(x[:1], False)
        finally:
            for layer in stateful:
                layer.stateful = True
        if self.loss is not None:
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

        Keras's arguments and defaults. ``x`` may also be a batched ``fastdl.data.Dataset``, a
        ``keras.utils.PyDataset`` or a Python generator/iterator yielding ``(x, y)`` or
        ``(x, y, sample_weight)`` batches (then ``y``, ``sample_weight``, ``batch_size`` and
        ``validation_split`` are not given; ``shuffle`` shuffles a PyDataset's batch order;
        without ``steps_per_epoch`` an epoch is one pass over it; a generator that runs out
        ends training with Keras's warning); ``validation_data`` may be any of these too.
        fastdl adds ``nan_check``: when True, the first
        non-finite loss or gradient raises ``FloatingPointError`` naming the layer, before that
        step changes any weight. Ctrl-C stops training at the next step or epoch boundary and
        raises ``KeyboardInterrupt`` there: the weights are those after the last complete step.
        A layer's ``trainable`` changed by a callback takes effect from the next step (as in
        Keras's eager train step); the optimizer must already know a layer unfrozen this way.
        """
        self._check_compiled("fit")
        if self._overrides("train_step"):
            return self._fit_custom(x, y, batch_size, epochs, verbose, callbacks,
                                    validation_split, validation_data, shuffle, sample_weight,
                                    initial_epoch, steps_per_epoch, validation_steps,
                                    validation_batch_size, validation_freq)
        source = is_batch_source(x)
        if source:
            self._check_source_arguments(x, y=y, sample_weight=sample_weight,
                                         batch_size=batch_size,
                                         validation_split=validation_split or None)
        batch_size = self._check_batch_size(batch_size)
        verbose = self._check_verbose(verbose)
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative int. Received: {name}={value!r}")
        if steps_per_epoch is not None and not source:
            raise ValueError("steps_per_epoch applies to a Dataset, PyDataset or generator; "
                             "fit on arrays runs whole epochs (slice the arrays for fewer)")
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

        val_batch_size = self._check_batch_size(validation_batch_size or batch_size)
        val = None
        if validation_data is not None:
            val = self._unpack_validation(validation_data, val_batch_size, validation_steps)
        elif validation_steps is not None:
            raise ValueError("validation_steps applies to validation_data given as a Dataset, "
                             "PyDataset or generator")
        if source:
            if self._train_strategy is not None:
                raise ValueError("fastdl.privacy samples each batch from NumPy arrays (Poisson "
                                 f"sampling): fit the arrays, not a {source_name(x)}")
            data = SourceBatches(x, steps_per_epoch, shuffle,
                                 self._batch_converter(class_weight, dry_run=True), "x")
            # fastdl.distributed: each rank reads its own input; the ranks step in lockstep
            dist = getattr(self.optimizer, "distributed_source", None)
            if dist is not None:
                data = dist(self, data)
            return self._fit_data(data, val, validation_freq, epochs, initial_epoch, verbose,
                                  callbacks, nan_check)
        x = self._convert_x(x)
        if y is None and class_weight is not None:
            raise ValueError("class_weight weights the samples by their class in y: pass y")
        y = self._targets(y, len(x))
        sw = self._convert_sample_weight(sample_weight, len(x))
        if class_weight is not None:
            cw = self._class_weight_to_sample_weight(class_weight, y)
            sw = cw if sw is None else sw * cw

        if validation_split and validation_data is None:
            split_at = int(math.floor(len(x) * (1.0 - validation_split)))
            if split_at == 0 or split_at == len(x):
                raise ValueError(f"validation_split={validation_split} leaves an empty training or "
                                 f"validation set for {len(x)} samples")
            val = ArrayBatches(x[split_at:], y[split_at:], None if sw is None else sw[split_at:],
                               val_batch_size)
            x, y = x[:split_at], y[:split_at]
            sw = None if sw is None else sw[:split_at]

        self._dry_run(x, y, sw)
        # fastdl.distributed: broadcast the weights from rank 0; shard the epochs by rank
        dist = getattr(self.optimizer, "distributed_fit", None)
        shard = dist(self, len(x), batch_size) if dist is not None else None
        if self._train_strategy is not None:   # fastdl.privacy: Poisson-sampled batches
            shard = self._train_strategy.plan(self, len(x), batch_size)
        return self._fit_data(ArrayBatches(x, y, sw, batch_size, shuffle, shard), val,
                              validation_freq, epochs, initial_epoch, verbose, callbacks,
                              nan_check)

    def _fit_data(self, data, val, validation_freq, epochs, initial_epoch, verbose, callbacks,
                  nan_check):
        """fit's loop over ``data`` (ArrayBatches or SourceBatches), validating on ``val``."""
        from fastdl.callbacks import CallbackList, History
        if hasattr(data, "prime"):
            data.prime()    # the first batch builds the model and gets the dry run
        self._warn_if_unbounded_output()
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=data.steps)
        self.stop_training = False
        trainable, weights = self._training_state()
        batch_hooks = getattr(cbs, "has_train_batch_hooks", True)
        self._initial_epoch = None
        cbs.on_train_begin()
        if self._initial_epoch is not None:   # BackupAndRestore resumes an interrupted fit
            initial_epoch = max(initial_epoch, self._initial_epoch)
            self._initial_epoch = None
        with self._in_use("fit", training=True), _DeferredInterrupt() as interrupt, \
                self._first_layer_skips_dx():
            self._fit_epochs(data, val, validation_freq, epochs, initial_epoch, cbs,
                             batch_hooks, trainable, weights, nan_check, interrupt)
        self.history = next(cb for cb in cbs.callbacks if isinstance(cb, History))
        interrupt.raise_if_pending("training interrupted after its last epoch ended; the weights "
                                   "are those after it")
        return self.history

    def _fit_epochs(self, data, val, validation_freq, epochs, initial_epoch, cbs, batch_hooks,
                    trainable, weights, nan_check, interrupt):
        metrics = self.compiled_metrics
        logs = {}
        flags = [layer.trainable for layer in self._layers]
        for epoch in range(initial_epoch, epochs):
            for m in metrics:
                m.reset_state()
            cbs.on_epoch_begin(epoch)
            loss_sum, seen, step = 0.0, 0, -1
            for step, (xb, yb, swb) in enumerate(data.epoch()):
                if batch_hooks:
                    cbs.on_train_batch_begin(step)
                if [layer.trainable for layer in self._layers] != flags:
                    # A callback (un)froze a layer: it takes effect from this step, as in
                    # Keras's eager (torch) train step, which reads trainable_weights each step.
                    flags = [layer.trainable for layer in self._layers]
                    trainable, weights = self._training_state()
                loss = self._train_step(xb, yb, swb, trainable, weights, nan_check)
                interrupt.raise_if_pending(f"training interrupted after step {step + 1} of "
                                           f"epoch {epoch + 1}; the weights are those after it")
                loss_sum += loss * len(yb)
                seen += len(yb)
                if batch_hooks:
                    logs = self._train_logs(loss_sum, seen)
                    cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            if step < 0 and getattr(data, "exhausted", False):    # a generator ran out
                warnings.warn(RAN_OUT, UserWarning, stacklevel=4)
                break
            if not batch_hooks and step >= 0:
                logs = self._train_logs(loss_sum, seen)
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                cbs.on_test_begin()     # Keras runs validation as evaluate(callbacks=...)
                val_logs = self._evaluate_data(val, callbacks=cbs)
                cbs.on_test_end(val_logs)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            epoch_logs = dict(sorted(epoch_logs.items()))
            cbs.on_epoch_end(epoch, epoch_logs)
            interrupt.raise_if_pending(f"training interrupted at the end of epoch {epoch + 1}; "
                                       "the weights are those after it")
            if self.stop_training:
                break
        if epochs > initial_epoch:  # as Keras: with use_ema the weights become their averages
            self.optimizer.finalize_variable_values(self.trainable_weights)
        cbs.on_train_end(logs)

    # ------------------------------------------------------------------ custom steps
    # Keras's "customizing fit": a subclass may override train_step / test_step / predict_step
    # (written with a GradientTape, self.compute_loss, self.optimizer.apply and self.metrics).
    # fit, evaluate and predict then call them once per batch with the batch as Keras packs it
    # (x, (x, y) or (x, y, sample_weight)) and report the dicts they return.
    def _overrides(self, step):
        return getattr(type(self), step) is not getattr(Model, step)

    def train_step(self, data):
        """One training step on ``data`` (``x``, ``(x, y)`` or ``(x, y, sample_weight)``):
        fastdl's fused step; returns the logs (loss and metrics so far). Override it to
        customize ``fit``."""
        x, y, sw = unpack_x_y_sample_weight(data)
        self._require_loss("train_step")
        x = self._convert_x(x)
        y = self._targets(y, len(x))
        sw = self._convert_sample_weight(sw, len(x))
        trainable, weights = self._training_state()
        loss = self._train_step(x, y, sw, trainable, weights)
        return self._step_logs(loss, len(x))

    def test_step(self, data):
        """Loss and metrics of one batch (running over the evaluation); override it to
        customize ``evaluate`` and validation."""
        x, y, sw = unpack_x_y_sample_weight(data)
        self._require_loss("test_step")
        x = self._convert_x(x)
        y = self._targets(y, len(x))
        sw = self._convert_sample_weight(sw, len(x))
        y_pred = self._inference_forward(x)
        loss = self._data_loss(y, y_pred, sw) + self._regularization_loss()
        self._update_metrics(y, y_pred, sw)
        return self._step_logs(loss, len(x))

    def predict_step(self, data):
        """The model's output for one batch; override it to customize ``predict``."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of ``y_pred`` against ``y`` plus the weight penalties
        (``model.losses``), as a Tensor a GradientTape differentiates."""
        from fastdl import ops
        self._require_loss("compute_loss")
        loss = None if self.loss is None else self.loss(y, y_pred, sample_weight)
        for added in self._added_losses_in_tree():
            loss = ops.sum(added) if loss is None else ops.add(loss, ops.sum(added))
        for layer in _leaf_layers(self):
            if layer.activity_regularizer is not None:
                raise NotImplementedError(
                    f"compute_loss: layer {layer.name!r} has an activity_regularizer, whose "
                    "penalty fastdl does not record on a GradientTape yet; use a kernel "
                    "regularizer or fit's own step")
            variables = {id(v._value): v for v in layer.trainable_variables}
            for entry in layer._params:
                if entry.trainable and entry.regularizer is not None and layer.trainable:
                    loss = ops.add(loss, _penalty(entry.regularizer,
                                                  variables[id(entry.value)]))
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with this batch; returns ``get_metrics_result()``."""
        y_pred = _values(y_pred)
        self._update_metrics(np.asarray(y), y_pred,
                             None if sample_weight is None else np.asarray(sample_weight))
        return self.get_metrics_result()

    def get_metrics_result(self):
        """``{name: result}`` of ``self.metrics``, as floats."""
        return {m.name: _metric_result(m) for m in self.metrics}

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def _require_loss(self, what):
        if self.loss is None and not self._added_losses_in_tree():
            raise ValueError(f"{what}: model {self.name!r} was compiled without a loss and no "
                             "layer called add_loss; pass compile(loss=...) or override "
                             "train_step/test_step to compute the loss yourself")

    def _data_loss(self, y, y_pred, sw):
        """The compiled loss's value (0 for a model compiled without one: add_loss's only)."""
        return 0.0 if self.loss is None else self.loss(y, y_pred, sw)

    def _may_add_losses(self):
        """Whether a call can add losses: the model or one of its layers is a user's class
        (built-in layers never call add_loss), so compile may go without a loss, as Keras."""
        from fastdl.layers.base import _layer_tree
        return any(not type(l).__module__.startswith("fastdl.") for l in _layer_tree(self))

    def _step_logs(self, loss, n):
        """The default steps' logs: the loss tracker (the running mean of the batch losses)
        updated with ``loss``, and every metric's result."""
        tracker = self._loss_tracker()
        tracker.update_state(float(loss), sample_weight=n)
        return self.get_metrics_result()

    def _loss_tracker(self):
        """The "loss" Mean of ``metrics``. fit's and evaluate's own steps only note their loss
        (``_fit_loss``, one tuple per epoch); the Mean takes it when it is read."""
        tracker = self.__dict__.get("_loss_mean")
        if tracker is None:
            from fastdl.metrics import Mean
            tracker = self._loss_mean = Mean(name="loss")
        pending = self.__dict__.pop("_fit_loss", None)
        if pending is not None:
            _set_mean(tracker, *pending)
        return tracker

    def _fit_custom(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                    validation_data, shuffle, sample_weight, initial_epoch, steps_per_epoch,
                    validation_steps, validation_batch_size, validation_freq):
        """fit with the model's own train_step: the batches as Keras packs them, the logs the
        step returns, the metrics reset at each epoch."""
        from fastdl.callbacks import CallbackList, History
        batch_size = self._check_batch_size(batch_size)
        verbose = self._check_verbose(verbose)
        if is_batch_source(x):
            self._check_source_arguments(x, y=y, sample_weight=sample_weight,
                                         batch_size=None, validation_split=validation_split
                                         or None)
            data = SourceBatches(x, steps_per_epoch, shuffle, _as_given, "x")
        else:
            x = self._convert_x(x)
            y = None if y is None else self._convert_y(y, len(x))
            sw = None if sample_weight is None else self._convert_sample_weight(sample_weight,
                                                                                len(x))
            val_at = len(x)
            if validation_split and validation_data is None:
                val_at = int(math.floor(len(x) * (1.0 - validation_split)))
                if val_at in (0, len(x)):
                    raise ValueError(f"validation_split={validation_split} leaves an empty "
                                     f"training or validation set for {len(x)} samples")
                validation_data = (x[val_at:], None if y is None else y[val_at:],
                                   None if sw is None else sw[val_at:])
            data = ArrayBatches(x[:val_at], None if y is None else y[:val_at],
                                None if sw is None else sw[:val_at], batch_size, shuffle)
        val = None
        if validation_data is not None:
            val_batch = self._check_batch_size(validation_batch_size or batch_size)
            val = (SourceBatches(validation_data, validation_steps, False, _as_given,
                                 "validation_data") if is_batch_source(validation_data) else
                   ArrayBatches(*_xy_sw(self, validation_data), val_batch))
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=data.steps)
        self.stop_training = False
        self._initial_epoch = None
        cbs.on_train_begin()
        if self._initial_epoch is not None:
            initial_epoch, self._initial_epoch = max(initial_epoch, self._initial_epoch), None
        logs = {}
        with _DeferredInterrupt() as interrupt:
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                cbs.on_epoch_begin(epoch)
                for step, (xb, yb, swb) in enumerate(data.epoch()):
                    cbs.on_train_batch_begin(step)
                    logs = _float_logs(self.train_step(pack_x_y_sample_weight(xb, yb, swb)),
                                       "train_step")
                    interrupt.raise_if_pending(f"training interrupted after step {step + 1} "
                                               f"of epoch {epoch + 1}")
                    cbs.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
                epoch_logs = dict(logs)
                if val is not None and (epoch + 1) % validation_freq == 0:
                    cbs.on_test_begin()
                    val_logs = self._evaluate_custom(val, cbs)
                    cbs.on_test_end(val_logs)
                    epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, epoch_logs)
                if self.stop_training:
                    break
        if epochs > initial_epoch:  # as Keras's fit: with use_ema the weights become averages
            self.optimizer.finalize_variable_values(self.trainable_weights)
        cbs.on_train_end(logs)
        self.history = next(cb for cb in cbs.callbacks if isinstance(cb, History))
        return self.history

    def _evaluate_custom(self, data, callbacks=None):
        """One pass of test_step over ``data`` (metrics reset first); the last logs."""
        self.reset_metrics()
        logs = {}
        hooks = callbacks is not None and callbacks.has_test_batch_hooks
        for step, (xb, yb, swb) in enumerate(data.epoch()):
            if hooks:
                callbacks.on_test_batch_begin(step)
            logs = _float_logs(self.test_step(pack_x_y_sample_weight(xb, yb, swb)),
                               "test_step")
            if hooks:
                callbacks.on_test_batch_end(step, logs)
        return logs

    def _train_logs(self, loss_sum, seen):
        logs = {"loss": loss_sum / max(seen, 1)}   # (a privacy-sampled batch may be empty)
        self._fit_loss = (logs["loss"], seen)     # the loss tracker's state, set when read
        for m in self.compiled_metrics:
            logs[m.name] = _metric_result(m)
        return logs

    def _unpack_validation(self, validation_data, batch_size, steps):
        """validation_data as ArrayBatches, or SourceBatches for a batch source."""
        if is_batch_source(validation_data):
            return SourceBatches(validation_data, steps, False, self._batch_converter(),
                                 "validation_data")
        if steps is not None:
            raise ValueError("validation_steps applies to validation_data given as a Dataset, "
                             "PyDataset or generator, not to arrays")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, sample_weight_val), a Dataset, a PyDataset or a "
                             f"generator. Received: {type(validation_data).__name__}")
        xv = self._convert_x(validation_data[0], "validation x")
        yv = self._targets(validation_data[1], len(xv), "validation y")
        swv = self._convert_sample_weight(validation_data[2], len(xv)) \
            if len(validation_data) == 3 else None
        return ArrayBatches(xv, yv, swv, batch_size)

    @staticmethod
    def _check_source_arguments(x, **arrays_only):
        """Keras's refusals of arguments a batch source carries itself."""
        for name, value in arrays_only.items():
            if value is not None:
                raise ValueError(f"When x is a {source_name(x)}, {name} must not be given: the "
                                 f"{source_name(x)} yields whole batches ((x, y) or (x, y, "
                                 f"sample_weight)). Received: {name}={value!r}")

    def _batch_converter(self, class_weight=None, targets=True, dry_run=False):
        """How SourceBatches turns a batch's (x, y, sample_weight) into the model's arrays;
        with ``dry_run`` (fit's training data) the first batch gets fit's one-sample check."""
        checked = [not dry_run]

        def convert(x, y, sw):
            x = self._convert_x(x)
            if not targets:
                return x, None, None
            if y is None and (class_weight is not None or self.loss is not None
                              or self.compiled_metrics):
                raise ValueError("The batches carry no targets: fit and evaluate need batches "
                                 "(x, y) or (x, y, sample_weight)")
            y = self._targets(y, len(x))
            sw = self._convert_sample_weight(sw, len(x))
            if class_weight is not None:
                cw = self._class_weight_to_sample_weight(class_weight, y)
                sw = cw if sw is None else sw * cw
            if not checked[0]:
                self._dry_run(x, y, sw)
                checked[0] = True
            return x, y, sw
        return convert

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_data(self, data, callbacks=None):
        """Loss and metrics over one epoch of ``data`` (ArrayBatches or SourceBatches)."""
        if self._overrides("test_step"):
            return self._evaluate_custom(data, callbacks)
        with self._in_use("evaluate", training=False):
            return self._evaluate_batches(data, callbacks)

    def _evaluate_batches(self, data, callbacks):
        for m in self.compiled_metrics:
            m.reset_state()
        loss_sum, seen = 0.0, 0
        if callbacks is not None and not callbacks.has_test_batch_hooks:
            callbacks = None
        for step, (xb, yb, swb) in enumerate(data.epoch()):
            if callbacks is not None:
                callbacks.on_test_batch_begin(step)
            y_pred = self._inference_forward(xb)
            loss_sum += (self._data_loss(yb, y_pred, swb) + self._regularization_loss()) * len(yb)
            seen += len(yb)
            self._update_metrics(yb, y_pred, swb)
            if callbacks is not None:   # Keras's running loss and metrics
                callbacks.on_test_batch_end(step, {"loss": loss_sum / seen, **{
                    m.name: _metric_result(m) for m in self.compiled_metrics}})
        if not seen and getattr(data, "exhausted", False):
            raise ValueError(f"The {data.kind} given as {data.what} has no batches left: a "
                             "generator is read once (pass validation_steps/steps and a "
                             "generator long enough for every pass, or a Dataset or PyDataset)")
        logs = {"loss": loss_sum / seen if seen else float("nan")}
        self._fit_loss = (logs["loss"], seen)
        for m in self.compiled_metrics:
            logs[m.name] = _metric_result(m)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss (and metrics) on ``x, y``: a scalar, a list ``[loss, *metrics]`` or a dict.

        As in Keras: ``steps`` evaluates only the first ``steps`` batches (with no
        ``batch_size``, the batch size becomes ``ceil(len(x) / steps)``); ``verbose`` 1 or
        "auto" shows a progress bar, 2 one line; ``callbacks`` get the ``on_test_*`` hooks.
        ``x`` may be a batch source, as in ``fit`` (``steps`` then limits the batches read)."""
        self._check_compiled("evaluate")
        verbose = self._check_verbose(verbose)
        if is_batch_source(x):
            self._check_source_arguments(x, y=y, sample_weight=sample_weight,
                                         batch_size=batch_size)
            data = SourceBatches(x, steps, False, _as_given if self._overrides("test_step")
                                 else self._batch_converter(), "x")
        else:
            custom = self._overrides("test_step")
            x = self._convert_x(x)
            y = None if custom and y is None else self._targets(y, len(x))
            sw = self._convert_sample_weight(sample_weight, len(x))
            batch_size, used, n_batches = self._plan_batches(len(x), batch_size, steps)
            data = ArrayBatches(x[:used], None if y is None else y[:used],
                                None if sw is None else sw[:used], batch_size)
        cbs = self._loop_callbacks(callbacks, verbose, data.steps)
        if cbs is not None:
            cbs.on_test_begin()
        logs = self._evaluate_data(data, cbs)
        if cbs is not None:
            cbs.on_test_end(logs)
        if return_dict:
            return logs
        values = list(logs.values()) if self._overrides("test_step") else (
            [logs["loss"]] + [logs[m.name] for m in self.compiled_metrics])
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for ``x`` as one NumPy array (inference mode).

        As in Keras: ``steps`` predicts only the first ``steps`` batches (with no
        ``batch_size``, the batch size becomes ``ceil(len(x) / steps)``); ``verbose`` 1 or
        "auto" shows a progress bar, 2 one line; ``callbacks`` get ``on_predict_begin``,
        ``on_predict_batch_begin``, ``on_predict_batch_end`` (logs ``{"outputs": batch}``) and
        ``on_predict_end``. ``x`` may be a batch source, as in ``fit``, yielding ``x`` or
        ``(x, ...)`` batches (only x is used)."""
        verbose = self._check_verbose(verbose)
        if is_batch_source(x):
            self._check_source_arguments(x, batch_size=batch_size)
            data = SourceBatches(x, steps, False, self._batch_converter(targets=False), "x")
            used = True
        else:
            x = self._convert_x(x)
            batch_size, used, n_batches = self._plan_batches(len(x), batch_size, steps)
            data = ArrayBatches(x if used == len(x) else x[:used], None, None, batch_size)
        cbs = self._loop_callbacks(callbacks, verbose if used else 0, data.steps)
        if cbs is not None:
            cbs.on_predict_begin()
        outputs = []
        custom = self._overrides("predict_step")
        for step, (xb, _, _) in enumerate(data.epoch()):
            if cbs is not None:
                cbs.on_predict_batch_begin(step)
            outputs.append(_values(self.predict_step(xb)) if custom else
                           self._inference_forward(xb))
            if cbs is not None:
                cbs.on_predict_batch_end(step, {"outputs": outputs[-1]})
        if cbs is not None:
            cbs.on_predict_end()
        if not outputs:
            return np.zeros((0,) + tuple(self.output_shape[1:]), dtype=self._layers[-1].dtype)
        if isinstance(outputs[0], (list, tuple)):   # several outputs: each concatenated
            return [np.concatenate(parts, axis=0) for parts in zip(*outputs)]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=0)

    def _loop_callbacks(self, callbacks, verbose, n_batches):
        """evaluate/predict's CallbackList (with the progress bar unless verbose=0), or None
        when there is nothing to call, so a quiet call pays nothing for it."""
        if callbacks is None and verbose == 0:
            return None
        from fastdl.callbacks import CallbackList
        return CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                            epochs=1, steps=n_batches)

    def _plan_batches(self, n, batch_size, steps):
        """(batch size, samples used, batches) for evaluate/predict on ``n`` samples, with
        Keras's ``steps``: only the first ``steps`` batches run; with no batch_size it is
        ``ceil(n / steps)``; more steps than the data holds warn and stop at its end."""
        if steps is None:
            batch_size = self._check_batch_size(batch_size)
            return batch_size, n, math.ceil(n / batch_size)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive int or None. Received: steps={steps!r}")
        if batch_size is None and n:
            batch_size = math.ceil(n / steps)
        batch_size = self._check_batch_size(batch_size)
        available = math.ceil(n / batch_size)
        if steps > available:
            warnings.warn(f"steps={steps}, but the {n} samples make only {available} batches of "
                          f"{batch_size}: the input ran out of data after {available} steps.",
                          UserWarning, stacklevel=3)
        used = min(n, int(steps) * batch_size)
        return batch_size, used, min(int(steps), available)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns the loss (and metrics) of that batch."""
        self._check_compiled("train_on_batch")
        if self._train_strategy is not None:
            raise RuntimeError(f"model {self.name!r} was made private (fastdl.privacy): it trains "
                               "through fit, which samples the batches and counts the steps")
        x = self._convert_x(x)
        if y is None and class_weight is not None:
            raise ValueError("class_weight weights the samples by their class in y: pass y")
        y = self._targets(y, len(x))
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
        trainable, weights = self._training_state()
        with self._in_use("train_on_batch", training=True), self._first_layer_skips_dx():
            for m in self.compiled_metrics:
                m.reset_state()
            loss = self._train_step(x, y, sw, trainable, weights)
        return self._batch_result(loss, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._check_compiled("test_on_batch")
        x = self._convert_x(x)
        y = self._targets(y, len(x))
        sw = self._convert_sample_weight(sample_weight, len(x))
        logs = self._evaluate_data(ArrayBatches(x, y, sw, max(1, len(x))))
        return self._batch_result(logs["loss"], return_dict)

    @property
    def metrics(self):
        """The compiled metric objects (``compile(metrics=..., weighted_metrics=...)``), in the
        order ``evaluate`` reports them after the loss. fastdl keeps the loss as a number, not
        as a metric object (Keras 3 lists a "loss" ``Mean`` and one "compile_metrics")."""
        if not self.compiled:
            return []
        return [self._loss_tracker()] + list(self.compiled_metrics)

    @property
    def metrics_names(self):
        """The names of ``evaluate``'s results in order: ``["loss", <metric names>]`` once
        compiled (what tf.keras gave; Keras 3 gives ``["loss", "compile_metrics"]``, which
        does not line up with ``evaluate``'s list)."""
        return [m.name for m in self.metrics]

    def _batch_result(self, loss, return_dict):
        logs = {"loss": float(loss)}
        for m in self.compiled_metrics:
            logs[m.name] = _metric_result(m)
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

    # ------------------------------------------------------------------ summary
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False):
        """Print the layers, their output shapes and parameter counts, and the totals, as Keras
        3 does: a table ``line_length`` characters wide (default 88, 100 with
        ``show_trainable``, at most the terminal's width - 4) whose columns end at
        ``positions`` (fractions of the line, default ``[0.45, 0.80, 1.0]``, or absolute
        character positions). A text too long for its column wraps at spaces, and a word too
        long is cut with "…". ``show_trainable`` adds a "Trainable" column (Y/N, "-" for a
        layer without weights); ``expand_nested`` also lists the layers of any layer that has
        ``layers`` (none of fastdl's do, as in Keras, where a Bidirectional is not expanded
        either). Bytes count each weight at its own dtype's size; once the optimizer is built,
        its variables are listed and counted in the total as Keras does.
        ``print_fn`` receives each line (default ``print``)."""
        for name, value in (("expand_nested", expand_nested), ("show_trainable", show_trainable)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")
        if print_fn is not None and not callable(print_fn):
            raise TypeError(f"print_fn must be callable. Received: print_fn={print_fn!r}")
        connections = self._summary_connections()
        connected = connections is not None
        width, bounds = _summary_columns(line_length, positions, show_trainable, connected)
        header = (["Layer (type)", "Output Shape", "Param #"] + ["Connected to"] * connected
                  + ["Trainable"] * show_trainable)
        align = "<<>" + "<" * connected + "^" * show_trainable
        shapes = self._summary_shapes()

        def rows(layer, shape, level):
            prefix = "   " * level + "└ " if level else ""
            params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
            row = [f"{prefix}{layer.name} ({type(layer).__name__})",
                   shape_str(shape) if shape is not None else "?", params]
            if connected:
                row.append(connections.get(id(layer), "-") if not level else "-")
            if show_trainable:
                row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
            yield row
            nested = getattr(layer, "layers", None) if expand_nested else None
            for inner in nested or ():
                built_for = inner._build_input_shape if inner.built else None
                yield from rows(inner, None if built_for is None else inner.compute_output_shape(
                    (None,) + tuple(built_for[1:])), level + 1)

        body = [row for layer, shape in zip(self._layers, shapes) for row in rows(layer, shape, 0)]
        lines = [f'Model: "{self.name}"'] + _render_table(header, body, bounds, align)
        trainable, non_trainable = self.trainable_weights, self.non_trainable_weights
        counts = [("Trainable", trainable), ("Non-trainable", non_trainable)]
        if self.compiled and self.optimizer is not None and self.optimizer.built:
            counts.append(("Optimizer", self.optimizer.variables))
        totals = [(label, sum(int(np.size(w)) for w in ws), sum(np.asarray(w).nbytes for w in ws))
                  for label, ws in counts]
        lines.append(f" Total params: {sum(c for _, c, _ in totals):,} "
                     f"({_human_bytes(sum(b for _, _, b in totals))})")
        lines += [f" {label} params: {count:,} ({_human_bytes(nbytes)})"
                  for label, count, nbytes in totals]
        for line in lines:
            (print_fn or print)(line)

    def _summary_connections(self):
        """layer id -> its "Connected to" text (``dense[0][0], ...``), or None when the model
        is a chain (one input, each node fed by the one before), shown as Keras shows a
        Sequential."""
        nodes = getattr(self, "_nodes", None)
        if not nodes:
            return None
        previous = self._inputs_flat[0] if len(self._inputs_flat) == 1 else None
        chain = previous is not None
        for node in nodes:
            ins = node.inputs()
            if chain and (node.layer is None or len(ins) != 1 or ins[0] is not previous
                          or len(node.outputs) != 1):
                chain = False
            previous = node.outputs[0] if node.outputs else None
        if chain:
            return None
        texts = {}
        for node in nodes:
            if node.layer is None:
                continue
            parts = []
            for t in node.inputs():
                if t._node is None:
                    parts.append(f"{t.name}[0][0]")
                    continue
                source = t._node.layer
                calls = source.__dict__.get("_inbound_nodes", []) if source is not None else []
                index = calls.index(t._node) if t._node in calls else 0
                parts.append(f"{source.name if source is not None else t.name}[{index}]"
                             f"[{t._node.outputs.index(t)}]")
            key = id(node.layer)
            texts[key] = (texts[key] + ", " if key in texts else "") + ", ".join(parts)
        return texts

    def _summary_shapes(self):
        """Each layer's output shape for ``summary`` (None when unknown: "?")."""
        shapes = []
        for layer in self._layers:
            shape = None
            nodes = [n for n in getattr(self, "_nodes", ()) if n.layer is layer]
            if isinstance(layer, InputLayer):
                shape = layer._declared_batch_shape
            elif nodes:
                outs = nodes[0].outputs
                shape = outs[0].shape if len(outs) == 1 else None
            elif layer.built and layer._build_input_shape is not None:
                try:
                    shape = layer.compute_output_shape(
                        (None,) + tuple(layer._build_input_shape[1:]))
                except (ValueError, TypeError, NotImplementedError):
                    shape = None
            shapes.append(shape)
        return shapes

    # ------------------------------------------------------------------ files
    def save(self, filepath, overwrite=True, include_optimizer=True):
        """Save architecture, weights, compile settings and optimizer state.

        ``*.keras`` writes Keras 3's format; any other name (``.fdl`` recommended) fastdl's own
        checksummed format. Neither ever contains pickled objects or code. Legacy HDF5 names
        (``*.h5``) and directories (SavedModel) are refused with a ValueError.
        """
        from fastdl.distributed import rank
        if rank() != 0:     # data-parallel training: rank 0 writes, the others hold the same
            return
        from fastdl.saving import save_model
        save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights only (``*.weights.h5`` for Keras's layout, else fastdl's format)."""
        from fastdl.distributed import rank
        if rank() != 0:     # data-parallel training: rank 0 writes, the others hold the same
            return
        from fastdl.saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Load weights saved by ``save_weights``/``save``; on failure nothing changes."""
        from fastdl.saving import load_weights
        load_weights(self, filepath)

    def to_json(self, **kwargs):
        """The model's description as Keras's JSON (``keras.models.model_from_json`` and
        :func:`model_from_json` read it); ``kwargs`` go to ``json.dumps``."""
        from fastdl.saving.cloning import to_json
        return to_json(self, **kwargs)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A model from ``get_config()``: a Sequential's or functional model's config (new
        weights), or for a subclass ``cls(**config)``."""
        from fastdl.functional import Functional
        if cls is Sequential or (cls in (Model, Functional) and isinstance(config, dict)
                                 and "input_layers" in config):
            from fastdl.saving.cloning import model_from_config
            kind = "Sequential" if cls is Sequential else "Functional"
            return model_from_config({"class_name": kind, "config": config}, custom_objects)
        return cls(**config)



class Sequential(Model):
    """A linear stack of layers, trained with Keras's ``compile``/``fit`` API."""

    def __init__(self, layers=None, name=None, trainable=True):
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
        self._init_model(name)
        self._layers = []
        self._input_layer = None
        self.built = False
        if layers is not None:
            names = set()
            for layer in layers:
                self._append(layer, names)
            if self._layers and self.input_shape is not None:
                self.build(self.input_shape)     # once: per-layer builds would be quadratic
        if not trainable:  # freezing the model freezes every layer; True leaves layers as they are
            self.trainable = False

    # ------------------------------------------------------------------ structure
    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Append a layer (or an ``Input`` as the very first element) and build it when the
        input shape is known; earlier layers that are already built are not built again."""
        self._add(layer)

    def _add(self, layer, names=None):
        extend = self.built and len(self._output_shapes) == len(self._layers)
        if not self._append(layer, names):
            return
        shape = self.input_shape
        if shape is None:
            return
        if extend:
            out = self._build_layer(layer, self._output_shapes[-1])
            self._output_shapes.append(out)
            self.built = True
        else:
            self.build(shape)

    def _append(self, layer, names=None):
        """Check and append ``layer`` without building; False for an ``Input``. ``names``: the
        set of the names of the layers appended so far (a scan of the layers otherwise)."""
        self.__dict__.pop("_graph", None)   # the symbolic input/output, made again on demand
        if getattr(layer, "_input_layer", None) is not None and getattr(layer, "_keras_tensor",
                                                                          False):
            if self._layers or self._input_layer is not None:
                raise ValueError("An Input can only be the first element of a Sequential model")
            self._input_tensor = layer
            layer = layer._input_layer    # keras.Input(shape) as the first element
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("An Input can only be the first element of a Sequential model")
            self._input_layer = layer
            return False
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a fastdl layer, received {type(layer).__name__}")
        if layer.name in (map(_name_of, self._layers) if names is None else names):
            raise ValueError(f"All layers added to a Sequential model should have unique names. "
                             f"Name {layer.name!r} is already the name of a layer in this model.")
        self._layers.append(layer)
        if names is not None:
            names.add(layer.name)
        self.built = False
        self._checked_batch_signature = None
        return True

    def pop(self):
        """Remove the last layer."""
        if not self._layers:
            raise IndexError("There are no layers in the model to pop")
        layer = self._layers.pop()
        self.__dict__.pop("_graph", None)
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
        # a declared batch size (Input(batch_shape=...)) reaches the layers, as in Keras: a
        # stateful RNN needs it
        shape = tuple(input_shape)
        shapes = []
        for layer in self._layers:
            shape = self._build_layer(layer, shape)
            shapes.append(shape)
        self._output_shapes = shapes
        self.built = bool(self._layers)

    @staticmethod
    def _build_layer(layer, shape):
        """Build one layer for input ``shape``; its output shape."""
        layer._maybe_build(shape)
        layer.check_input_shape(tuple(1 if d is None else d for d in shape))
        out = layer.compute_output_shape(shape)
        if isinstance(out, list) or (out and isinstance(out[0], (tuple, list))):
            raise ValueError(
                f"All layers in a Sequential model should have a single output, but layer "
                f"{layer.name!r} returns {len(out)} (return_state=True). Use return_state "
                "only when calling the layer directly.")
        return tuple(out)

    def _ensure_built(self, x_shape):
        if not self.built:
            self.build((None,) + tuple(x_shape[1:]))

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

    def _forward(self, x, training, fuse=False):
        """The layers' calls in order, each on its input cast to its dtype (Keras's autocast);
        fuse: adjacent layers may run as one kernel (Layer._fuse_next), as in
        fit/train_on_batch/predict/evaluate, while model(x) calls each layer itself."""
        mask = None
        layers = self._layers
        i = 0
        while i < len(layers):
            layer = layers[i]
            x = layer._autocast_input(x)
            if (fuse and mask is None and i + 1 < len(layers)
                    and layer.activity_regularizer is None
                    and layers[i + 1].activity_regularizer is None):
                fused = layer._fuse_next(x, layers[i + 1])
                if fused is not None:  # two layers in one kernel (neither takes a mask)
                    x = fused
                    i += 2
                    continue
            next_mask = layer.compute_mask(x, mask)
            if layer._tape_only:   # a nested model or a layer written with ops
                x = _values(layer(x, training=training))
            elif layer._call_takes_mask:
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
        with self._in_use("predict", training=False):
            for layer in self._layers:
                layer._inference_only = True
            try:
                return self._forward(x, False, fuse=True)
            finally:
                for layer in self._layers:
                    layer.__dict__.pop("_inference_only", None)

    def _backward(self, dy, penalties=(), start=0):
        """The layers' backward passes down to layer ``start``; the layers in ``penalties`` add
        the gradients of their model.losses (as in training; input_gradients leaves them out)."""
        for layer in reversed(self._layers[start:]):
            dy = layer._autocast_input(dy)  # dy of the dtype the layer output
            dy = layer._penalized(dy) if layer in penalties else layer.backward(dy)
        return dy

    def _call_tensors(self, x, training):
        for layer in self._layers:
            x = layer(x, training=training)
        return x

    def _chain_needs_tape(self):
        """True when a layer has no backward of its own (a nested model, a custom layer written
        with ops): training then runs the chain under a GradientTape."""
        return any(layer._tape_only for layer in self._layers)

    def _train_forward(self, x):
        if self._chain_needs_tape():
            return Model._train_forward(self, x)
        return self._forward(x, True, fuse=True), None

    def _train_backward(self, state, dy, trainable):
        if state is not None:
            return Model._train_backward(self, state, dy, trainable)
        penalties = self.__dict__.get("_penalty_layers")
        start = self.__dict__.get("_gradient_start")
        if start is None:   # once per fit/train_on_batch (_training_state resets it)
            start = self._gradient_start = self._first_with_gradients()
        self._backward(dy, penalties=self._layers if penalties is None else penalties,
                       start=start)
        return [g for layer in trainable for g in layer.grads]

    def _first_with_gradients(self):
        """The index of the first layer whose backward training needs: the layers before it
        train nothing and have no penalties (preprocessing, augmentation, frozen layers), so
        their backward passes and that layer's dx would go unused."""
        for i, layer in enumerate(self._layers):
            if layer.trainable_weights or layer._has_penalties() or layer._tape_only:
                return i
        return max(len(self._layers) - 1, 0)

    @contextlib.contextmanager
    def _first_layer_skips_dx(self):
        """Training never uses d loss / d input: let the first layer skip computing it (a
        convolution saves about half of its backward pass)."""
        first = self._layers[self._first_with_gradients()] if self._layers else None
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
        if self._chain_needs_tape():
            return Model._trainable_state(self)
        trainable = [l for l in self._layers if l.trainable and l.trainable_weights]
        weights = [w for l in trainable for w in l.trainable_weights]
        return trainable, weights

    def _summary_shapes(self):
        return self._output_shapes if self.built else [None] * len(self._layers)

    @property
    def input(self):
        """The symbolic input (a KerasTensor), for functional models built on this one:
        ``Model(seq.input, seq.get_layer("x").output)``."""
        return self._symbolic_graph()[0]

    @property
    def output(self):
        return self._symbolic_graph()[1]

    @property
    def inputs(self):
        return [self.input]

    @property
    def outputs(self):
        return [self.output]

    def _symbolic_graph(self):
        """(input, output) KerasTensors: the layers called once on ``keras.Input``."""
        graph = self.__dict__.get("_graph")
        if graph is None:
            shape = self.input_shape
            if shape is None or not self._layers:
                raise AttributeError(f"Sequential model {self.name!r} has no defined input yet: "
                                     "start it with keras.Input(shape) or pass input_shape= to "
                                     "its first layer")
            from fastdl.functional import Input
            inp = self.__dict__.get("_input_tensor")
            if inp is None:
                inp = Input(batch_shape=shape)
            x = inp
            for layer in self._layers:
                x = layer(x)
            graph = self._graph = (inp, x)
        return graph

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "layers": [_layer_entry(l) for l in ([self._input_layer] if self._input_layer
                                                     else []) + self._layers]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new Sequential, freshly initialised, from ``get_config()``'s dict (Keras's
        ``Sequential.from_config``); ``custom_objects`` maps class names to Layer subclasses."""
        from fastdl.saving.common import _check_custom_objects, resolve_layer_class
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise TypeError(f"Sequential.from_config expects the dict of get_config(), with a "
                            f"'layers' list. Received: {type(config).__name__}")
        custom_objects = _check_custom_objects(custom_objects)
        model = cls(name=config.get("name"))
        for i, entry in enumerate(config["layers"]):
            layer_cls = resolve_layer_class(entry, custom_objects, f"layer {i}")
            model.add(layer_cls.from_config(dict(entry.get("config", {}))))
        first = config["layers"][0] if config["layers"] else {}
        shape = (first.get("build_config") or {}).get("input_shape")
        if not model.built and shape is not None:
            model.build(tuple(shape))
        if not config.get("trainable", True):
            model.trainable = False
        return model

    def __repr__(self):
        return f"<Sequential name={self.name}, layers={len(self._layers)}, built={self.built}>"



def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with ``model``'s architecture and new weights (fastdl.saving.cloning)."""
    from fastdl.saving.cloning import clone_model as _clone
    return _clone(model, input_tensors=input_tensors, clone_function=clone_function)


def model_from_json(json_string, custom_objects=None):
    """A model (new weights) from ``model.to_json()`` or Keras's JSON."""
    from fastdl.saving.cloning import model_from_json as _from_json
    return _from_json(json_string, custom_objects=custom_objects)


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    """``keras.models.save_model``: :func:`fastdl.saving.save_model` under Keras's other name."""
    from fastdl.saving import save_model as _save
    return _save(model, filepath, overwrite=overwrite, include_optimizer=include_optimizer)


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


def _check_finite_gradients(loss, trainable, grads, iteration):
    if not np.isfinite(loss):
        raise FloatingPointError(f"nan_check: the loss is {loss} at step {iteration}")
    names = [(layer.name, w.name) for layer in trainable
             for w in layer._weight_entries() if w.trainable]
    for (layer_name, name), grad in zip(names, grads):
        if not np.all(np.isfinite(grad)):
            raise FloatingPointError(
                f"nan_check: non-finite gradient of {name!r} in layer {layer_name!r} at step "
                f"{iteration}; no weight was changed by this step")


def _metric_result(metric):
    """``metric.result()`` as a Python float (a custom metric may return a Tensor)."""
    r = metric.result()
    if isinstance(r, Tensor):
        r = np.asarray(r._value)
    return float(r) if isinstance(r, np.ndarray) and r.ndim == 0 else r


def _tracked_layers(model):
    """The layers a subclassed model's attributes hold (directly, or in lists, tuples and
    dicts), in attribute order, each once."""
    found, seen = [], set()

    def visit(value, depth=0):
        if isinstance(value, Layer):
            if id(value) not in seen and value is not model:
                seen.add(id(value))
                found.append(value)
        elif isinstance(value, (list, tuple)) and depth < 4:
            for v in value:
                visit(v, depth + 1)
        elif isinstance(value, dict) and depth < 4:
            for v in value.values():
                visit(v, depth + 1)

    for key, value in model.__dict__.items():
        if key not in ("_layer_list", "optimizer", "loss", "compiled_metrics"):
            visit(value)
    return found


def _leaf_layers(model):
    """The layers of ``model`` with nested models replaced by their own layers, each once."""
    out, seen = [], set()
    stack = list(reversed(model._layers))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, Model):
            stack.extend(reversed(layer._layers))
        else:
            out.append(layer)
    return out


def _call_with_flags(layer, call, x, training, mask):
    """``call(x)`` passing ``training``/``mask`` only when ``call`` declares them (Keras lets a
    custom call omit them)."""
    kwargs = {}
    if layer._call_takes_training:
        kwargs["training"] = training
    if layer._call_takes_mask and mask is not None:
        kwargs["mask"] = mask
    return call(x, **kwargs)


def _has_tensor(x):
    if isinstance(x, Tensor):
        return True
    if isinstance(x, (list, tuple)):
        return any(_has_tensor(v) for v in x)
    if isinstance(x, dict):
        return any(_has_tensor(v) for v in x.values())
    return False


def _as_tensors(x):
    """Arrays (in lists, tuples, dicts) as Tensors."""
    import fastdl.ops  # noqa: F401  (binds the Tensor operators a call() may use)
    if isinstance(x, np.ndarray):
        return Tensor(x)
    if isinstance(x, _Arrays):
        return [Tensor(a) for a in x.arrays]
    if isinstance(x, (list, tuple)):
        return type(x)(_as_tensors(v) for v in x)
    if isinstance(x, dict):
        return {k: _as_tensors(v) for k, v in x.items()}
    return x


def _values(y):
    """Tensors (in lists, tuples, dicts) as arrays."""
    if isinstance(y, Tensor):
        return np.asarray(y._value)
    if isinstance(y, (list, tuple)):
        return type(y)(_values(v) for v in y)
    if isinstance(y, dict):
        return {k: _values(v) for k, v in y.items()}
    return y


def _as_model_input(x, model, what):
    """One input array for a subclassed model: numeric, with a batch axis; floats in the
    model's dtype, integers (ids) kept."""
    if x is None:
        raise ValueError(f"{what} must not be None")
    if isinstance(x, (list, tuple, dict)) and not isinstance(x, np.ndarray):
        try:
            arr = np.asarray(x)
        except ValueError:
            arr = None
        if arr is None or arr.dtype == object:
            raise TypeError(f"Model {model.name!r}: {what} must be one numeric array; several "
                            f"inputs (a {type(x).__name__} of arrays) need a functional model "
                            "built with Model(inputs, outputs)")
        x = arr
    x = np.asarray(x)
    if x.dtype == object or x.dtype.kind not in "biuf":
        raise TypeError(f"Model {model.name!r}: {what} must be numeric, received dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError(f"{what} must have a batch axis. Received a scalar")
    if x.dtype.kind == "f" and x.dtype != model.dtype or x.dtype.kind == "b":
        x = x.astype(model.dtype)
    return x


_MODEL_USE_CHANGED = threading.Condition()
_MODEL_USE = weakref.WeakKeyDictionary()  # model -> _ModelUse, outside it so copies start free


class _Arrays:
    """Several arrays of one batch axis sliced together: the inputs (or targets) of a functional
    model with several, in fit, evaluate and predict."""
    __slots__ = ("arrays",)

    def __init__(self, arrays):
        self.arrays = list(arrays)
        n = {len(a) for a in self.arrays}
        if len(n) > 1:
            raise ValueError(f"All inputs (and all targets) must have the same number of "
                             f"samples. Received: {[len(a) for a in self.arrays]}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return _Arrays([a[index] for a in self.arrays])

    @property
    def shape(self):
        return (len(self),) + tuple(a.shape for a in self.arrays)

    @property
    def dtype(self):
        return np.dtype([(f"f{i}", a.dtype) for i, a in enumerate(self.arrays)])


class _InUse:
    """The context of ``Model._in_use`` (a class rather than a generator: predict enters it
    once per batch)."""
    __slots__ = ("model", "what", "training", "use", "owner", "me")

    def __init__(self, model, what, training):
        self.model, self.what, self.training = model, what, training

    def __enter__(self):
        me = self.me = threading.get_ident()
        with _MODEL_USE_CHANGED:
            use = self.use = _MODEL_USE.setdefault(self.model, _ModelUse())
            if use.trainer not in (None, me):
                raise RuntimeError(
                    f"{self.what}() on model {self.model.name!r} while another thread is "
                    "training it: one model's layers hold the state of one training step at a "
                    "time. Call it after that fit/train_on_batch returns, or on a copy of the "
                    "model.")
            self.owner = self.training and use.trainer is None
            if self.owner:
                use.trainer = me  # from now on other threads' calls are refused
                try:
                    _MODEL_USE_CHANGED.wait_for(lambda: all(t == me for t in use.calls))
                except BaseException:  # Ctrl-C while waiting: the model stays free
                    use.trainer = None
                    raise
            use.calls[me] = use.calls.get(me, 0) + 1
        return self

    def __exit__(self, *exc):
        use, me = self.use, self.me
        with _MODEL_USE_CHANGED:
            if self.owner:
                use.trainer = None
            count = use.calls.pop(me) - 1
            if count:
                use.calls[me] = count
            _MODEL_USE_CHANGED.notify_all()
        return False


class _ModelUse:
    """Which thread trains a model (its ident, or None) and how many calls each thread runs."""
    __slots__ = ("trainer", "calls")

    def __init__(self):
        self.trainer, self.calls = None, {}


class _DeferredInterrupt:
    """Holds back Ctrl-C during a training step and raises it at the next step boundary, so an
    interrupted fit never leaves half-updated weights. fit checks after every step, after each
    epoch's validation and callbacks, and once more when it ends, so an interrupt is never lost.
    Active only in the main thread and when Python's default SIGINT handler is installed."""

    def __enter__(self):
        self.pending = False
        self._previous = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        self.pending = True

    def raise_if_pending(self, message):
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt(message)

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
    """Keras's readable_memory_size: two decimals, 1024 per unit."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.2f} {unit}"
        n /= 1024


def _summary_columns(line_length, positions, show_trainable, connected=False):
    """The line width and each column's end (characters) for ``summary``, Keras's defaults
    (``connected``: a graph's table, with the "Connected to" column)."""
    n = 4 if connected else 3
    if line_length is not None and (isinstance(line_length, bool)
                                    or not isinstance(line_length, (int, np.integer))
                                    or line_length < 1):
        raise ValueError(f"line_length must be a positive int. Received: "
                         f"line_length={line_length!r}")
    if positions is None:
        positions = [0.3, 0.56, 0.74, 1.0] if connected else [0.45, 0.80, 1.0]
    elif (not isinstance(positions, (list, tuple)) or len(positions) != n
          or not all(isinstance(p, (int, float, np.integer, np.floating))
                     and not isinstance(p, bool) and p > 0 for p in positions)
          or not all(a < b for a, b in zip(positions, positions[1:]))):
        columns, example = (("Layer, Output Shape, Param # and Connected to",
                             "[0.3, 0.56, 0.74, 1.0]") if connected
                            else ("Layer, Output Shape and Param #", "[0.45, 0.8, 1.0]"))
        raise ValueError(f"positions must be {n} increasing positive numbers, the ends of the "
                         f"columns {columns} as fractions of line_length "
                         f"(e.g. {example}) or in characters. Received: "
                         f"positions={positions!r}")
    if line_length is not None:
        width = int(line_length)
    elif positions[-1] > 1:
        width = int(positions[-1]) + 12 * show_trainable
    else:
        width = min((108 if connected else 88) + 12 * show_trainable,
                    shutil.get_terminal_size().columns - 4)
    if positions[-1] <= 1:
        fractions = [p * 0.9 for p in positions] + [1.0] if show_trainable else list(positions)
        bounds = [int(p * width) for p in fractions]
    else:  # absolute; the Trainable column takes what is left up to line_length
        bounds = [int(p) for p in positions] + ([width] if show_trainable else [])
    # a column is its border, a space, at least one character and a space (the last one also
    # the closing border)
    if (any(b - a < 4 for a, b in zip([0] + bounds, bounds)) or bounds[-1] - bounds[-2] < 5
            or bounds[-1] > width):
        raise ValueError(f"Insufficient width to print the summary: columns ending at {bounds} "
                         f"on a line of {width} characters (each column needs 4, the last 5). "
                         f"Pass a larger line_length or other positions.")
    return width, bounds


def _wrap_cell(text, width):
    """``text`` as lines of at most ``width`` characters: wrapped at spaces, and a word longer
    than the column cut with "…" (as Keras's summary table does)."""
    lines = []
    for word in text.split(" "):
        if len(word) > width:
            word = word[:width - 1] + "…"
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _render_table(header, rows, bounds, align):
    """Keras 3's summary table: columns ending at ``bounds``, each cell padded by a space on
    both sides inside its borders, a rule between rows."""
    widths = [b - a - 3 for a, b in zip([0] + bounds, bounds)]
    widths[-1] -= 1   # the closing border

    def rule(left, fill, mid, right):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def cells(row, bar, bottom=False):
        wrapped = [_wrap_cell(str(text), w) for text, w in zip(row, widths)]
        height = max(len(c) for c in wrapped)
        # Keras bottom-aligns the header cells and top-aligns the body cells
        pads = [[""] * (height - len(c)) for c in wrapped]
        wrapped = [p + c if bottom else c + p for c, p in zip(wrapped, pads)]
        return [bar + bar.join(f" {c[i]:{a}{w}} " for c, w, a in zip(wrapped, widths, align))
                + bar for i in range(height)]

    lines = ([rule("┏", "━", "┳", "┓")] + cells(header, "┃", bottom=True)
             + [rule("┡", "━", "╇", "┩")])
    for i, row in enumerate(rows):
        if i:
            lines.append(rule("├", "─", "┼", "┤"))
        lines += cells(row, "│")
    return lines + [rule("└", "─", "┴", "┘")]


def _as_given(x, y, sw):
    """A custom train_step/test_step gets a source's batches as the source gives them."""
    return x, y, sw


def _xy_sw(model, data):
    """validation_data (x, y[, sample_weight]) or x alone as arrays for a custom test_step."""
    x, y, sw = unpack_x_y_sample_weight(data)
    x = model._convert_x(x, "validation x")
    y = None if y is None else np.asarray(y)
    sw = None if sw is None else np.asarray(sw)
    return x, y, sw


def _float_logs(logs, step):
    """The dict a custom step returned, with its values as floats (Tensors, NumPy scalars)."""
    if not isinstance(logs, dict):
        raise TypeError(f"{step} must return a dict of metric names to values, as Keras's "
                        f"does. Received: {type(logs).__name__}")
    out = {}
    for name, value in logs.items():
        value = value.numpy() if isinstance(value, Tensor) else value
        try:
            out[name] = float(np.asarray(value))
        except (TypeError, ValueError):
            raise TypeError(f"{step} returned {name}={value!r}: each value must be a scalar "
                            "(a number, a 0-d array or Tensor, a metric's result())") from None
    return out



def _penalty(regularizer, variable):
    """``regularizer(variable)`` as a Tensor a GradientTape differentiates, through the
    regularizer's own ``gradient`` (one primitive)."""
    from fastdl.tensor.tape import record, recording
    w = variable._value
    out = Tensor(np.asarray(regularizer(w), dtype=w.dtype))
    if recording():
        record(out, (variable,), lambda cache, g: (regularizer.gradient(cache) * g,), w)
    return out

def _set_mean(tracker, value, count):
    """A Mean metric holding ``count`` values averaging ``value`` (fit's own loss tracking)."""
    tracker.reset_state()
    if count:
        tracker.update_state(value, sample_weight=count)

def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


def _zeros_like(y_pred):
    """Zero output gradients shaped as ``y_pred`` (an array or a list of them)."""
    if isinstance(y_pred, (list, tuple)):
        return type(y_pred)(np.zeros_like(v) for v in y_pred)
    return np.zeros_like(y_pred)
