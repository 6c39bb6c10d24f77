"""The Layer contract: Keras's lifecycle with the backward pass on the same class.

- ``__init__`` validates hyperparameters only (``ValueError`` naming the argument, ``Received: ...``).
- ``build(input_shape)`` creates weights with :meth:`Layer.add_weight` (NumPy arrays in Keras
  layouts). Weights are updated in place and never rebound, so references stay valid.
- ``call(x, training=False)`` returns the output and caches what ``backward`` needs; layers that
  take a mask (``supports_masking``/``call(..., mask=None)``) receive it from the model.
- ``backward(dy)`` returns dL/dx and sets ``self.grads``, one array per trainable weight in the
  order of :attr:`Layer.trainable_weights` (left ``[]`` when the layer is frozen).
- In a model, a layer receives its input (and dy) cast to its float dtype, as Keras autocasts:
  layers of different dtypes may follow each other (:meth:`Layer._autocast_input`).
- Penalties (``fastdl.regularizers``): a weight made with ``add_weight(..., regularizer=...)``
  and the ``activity_regularizer`` every layer takes add to :attr:`Layer.losses`; the model
  adds their gradients to ``dy`` and ``grads`` around ``backward`` (:meth:`Layer._penalized`).
- Constraints (``fastdl.constraints``, ``add_weight(..., constraint=...)``) project a weight in
  place after each optimizer step (:meth:`Layer._apply_constraints`).
"""
import collections
import functools
import inspect
import re
import sys
import threading
import weakref
from collections import defaultdict

import numpy as np

from fastdl import constraints, initializers, regularizers
from fastdl.tensor.tape import recording as _recording
from fastdl.tensor.tensor import Tensor as _Tensor

_name_counts = defaultdict(int)
# add_loss: the layers that ever added a loss (so a model without any pays one truth test per
# call), and the depth of nested model / custom-layer calls in this thread: the outermost call
# clears the added losses of its layer tree, as Keras's call context does.
_LOSS_ADDERS = weakref.WeakSet()
_CALLS = threading.local()
_FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}


def as_c_array(x, dtype=None):
    """C-contiguous and aligned to its dtype (the kernels' input contract), copying only if needed."""
    return np.require(x, dtype=dtype, requirements="CA")


def to_snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    """Keras naming: the first ``dense``, then ``dense_1``, ``dense_2``, ..."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def shape_str(shape):
    shape = tuple(shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def check_positive_int(value, name, allow_zero=False):
    """An int >= 1 (>= 0 with allow_zero); bools, floats and strings are rejected."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer. Received: {name}={value!r}")
    if value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else "a positive integer"
        raise ValueError(f"{name} must be {bound}. Received: {name}={value!r}")
    return int(value)


def check_int_tuple(value, n, name, allow_zero=False):
    """An int or a sequence of n ints, each validated; returns a tuple of n ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value,) * n
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise TypeError(f"{name} must be an integer or a tuple of {n} integers. "
                        f"Received: {name}={value!r}")
    return tuple(check_positive_int(v, name, allow_zero) for v in value)


def check_choice(value, choices, name):
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}. Received: {name}={value!r}")
    return value.lower()


def check_rate(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float in [0, 1). Received: {name}={value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1). Received: {name}={value!r}")
    return float(value)


class InputSpec:
    """Expected rank and fixed axis sizes of a layer's input (the batch axis excluded)."""

    def __init__(self, ndim=None, min_ndim=None, axes=None):
        self.ndim, self.min_ndim, self.axes = ndim, min_ndim, dict(axes or {})


class _Weight:
    # variable: the Variable add_weight returned to a layer written with ops (None otherwise)
    __slots__ = ("name", "value", "trainable", "regularizer", "constraint", "variable")

    def __init__(self, name, value, trainable, regularizer=None, constraint=None, variable=None):
        self.name, self.value, self.trainable = name, value, trainable
        self.regularizer, self.constraint, self.variable = regularizer, constraint, variable


class Layer:
    """Base class of every fastdl layer (see the module docstring for the contract)."""

    supports_masking = False
    _call_takes_mask = False
    # Set by Sequential during predict/evaluate, when no backward() follows a call(): a layer
    # may then skip what only its backward needs (MaxPooling2D: the argmax).
    _inference_only = False

    def _fuse_next(self, x, next_layer):
        """For Sequential (fit, train_on_batch, predict, evaluate): the output of ``next_layer``
        applied to this layer's output, computed by one fused kernel, or None when the pair
        does not fuse. The result must be bitwise that of the two calls, and unless
        ``_inference_only`` both layers must keep what their backward() needs."""
        return None

    _call_takes_training = True
    # A layer overriding __call__ sets this when a Tensor input still makes it one GradientTape
    # primitive (the recurrent layers); others (Bidirectional) cannot train inside a
    # functional or subclassed model yet.
    _primitive_call = False
    # A layer with no backward of its own (a custom layer written with fastdl.ops, a merge
    # layer, a model) is differentiated through its call() by the GradientTape.
    _tape_only = False
    _takes_input_list = False   # called on a list, with a backward of its own (HashedCrossing)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        params = inspect.signature(cls.call).parameters
        cls._call_takes_mask = "mask" in params
        cls._call_takes_training = "training" in params or any(
            p.kind is p.VAR_KEYWORD for p in params.values())
        cls._tape_only = cls.backward is Layer.backward
        if "build" in cls.__dict__:
            cls.build = _marks_built(cls.__dict__["build"])
        if (not cls.__module__.startswith("fastdl.") and cls._tracks_attribute_layers
                and "__setattr__" not in cls.__dict__):
            cls.__setattr__ = Layer._setattr_tracking_layers

    def __init__(self, trainable=True, name=None, dtype=None, input_shape=None,
                 batch_input_shape=None, input_dim=None, batch_size=None,
                 activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unrecognized keyword arguments "
                            f"{sorted(kwargs)}")
        if not isinstance(trainable, (bool, np.bool_)):
            raise TypeError(f"trainable must be a bool. Received: trainable={trainable!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.dtype = self._check_dtype(dtype)
        self._trainable = bool(trainable)
        self.built = False
        self._params = []
        self._sublayers = []
        self.grads = []
        self.input_spec = None
        self._build_input_shape = None
        self._declared_batch_shape = self._declared_shape(input_shape, batch_input_shape,
                                                         input_dim, batch_size)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._activity = None  # (output, penalty) of the last call, with an activity_regularizer

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _check_dtype(dtype):
        if dtype is None:
            return "float32"
        if isinstance(dtype, dict):  # a Keras DTypePolicy config
            dtype = dtype.get("config", {}).get("name", dtype)
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = None
        if name not in _FLOAT_DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64'. Received: dtype={dtype!r}")
        return name

    @staticmethod
    def _declared_shape(input_shape, batch_input_shape, input_dim, batch_size):
        if input_dim is not None:
            input_shape = (check_positive_int(input_dim, "input_dim"),)
        if batch_input_shape is not None:
            shape = tuple(batch_input_shape)
            return (shape[0],) + _check_shape_dims(shape[1:], "batch_input_shape")
        if input_shape is not None:
            if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
                input_shape = (input_shape,)
            if not isinstance(input_shape, (tuple, list)):
                raise TypeError(f"input_shape must be a tuple. Received: input_shape={input_shape!r}")
            return (batch_size,) + _check_shape_dims(input_shape, "input_shape")
        return None

    _ADD_WEIGHT_ARGS = ("shape", "initializer", "dtype", "trainable", "autocast", "regularizer",
                        "constraint", "aggregation", "overwrite_with_gradient", "name")

    def add_weight(self, *args, **kwargs):
        """Create a weight, register it and return it: Keras's signature
        ``add_weight(shape=None, initializer=None, dtype=None, trainable=True, ..., name=None)``
        (initializer None: ``glorot_uniform`` for floats, ``zeros`` otherwise), or fastdl's
        own ``add_weight(name, shape, initializer="zeros", trainable=True)``.

        A built-in layer (it has a backward) gets the NumPy array; a layer written with
        ``fastdl.ops`` (no backward) gets a ``fastdl.Variable`` over the same memory, which
        its ``call`` uses and a GradientTape differentiates."""
        if args and isinstance(args[0], str):   # fastdl's layers: (name, shape, init, trainable)
            params = dict(zip(("name", "shape", "initializer", "trainable"), args))
            params.setdefault("initializer", "zeros")
        else:
            if len(args) > len(self._ADD_WEIGHT_ARGS):
                raise TypeError(f"add_weight takes at most {len(self._ADD_WEIGHT_ARGS)} "
                                f"positional arguments, received {len(args)}")
            params = dict(zip(self._ADD_WEIGHT_ARGS, args))
        twice = sorted(set(params) & set(kwargs))
        unknown = sorted(set(kwargs) - set(self._ADD_WEIGHT_ARGS))
        if twice or unknown:
            raise TypeError(f"Layer {self.name!r}: add_weight received "
                            + (f"{twice} twice" if twice else f"unknown arguments {unknown}"))
        params.update(kwargs)
        shape = params.get("shape")
        shape = () if shape is None else (
            (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape))
        dtype = params.get("dtype")
        dtype = self.dtype if dtype is None else np.dtype(dtype).name
        initializer = params.get("initializer")
        if initializer is None:
            initializer = "glorot_uniform" if np.dtype(dtype).kind == "f" else "zeros"
        trainable = params.get("trainable", True)
        if not isinstance(trainable, (bool, np.bool_)):
            raise TypeError(f"Layer {self.name!r}: add_weight(trainable=...) must be a bool. "
                            f"Received: {trainable!r}")
        name = params.get("name") or f"variable_{len(self._params)}"
        value = initializers.get(initializer)(shape, dtype=dtype)
        value = np.require(value, dtype=dtype, requirements="C")  # keeps a 0-d shape ()
        variable = None
        if self._tape_only:
            from fastdl.tensor.tensor import Variable
            variable = Variable._wrap(value, f"{self.name}/{name}", trainable=bool(trainable))
        self._params.append(_Weight(name, value, bool(trainable),
                                    regularizers.get(params.get("regularizer")),
                                    constraints.get(params.get("constraint")), variable))
        return value if variable is None else variable

    def _apply_constraints(self):
        """Project each constrained trainable weight in place (after an optimizer step)."""
        if self._trainable:
            for w in self._weight_entries():
                if w.trainable and w.constraint is not None:
                    w.value[...] = w.constraint(w.value)

    def _track_layer(self, layer):
        if not any(layer is s for s in self._sublayers):
            self._sublayers.append(layer)
        return layer

    # ------------------------------------------------------------------ weights
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"trainable must be a bool. Received: {value!r}")
        self._trainable = bool(value)
        for layer in self._sublayers:
            layer.trainable = value

    def _weight_entries(self):
        own = [w for w in self._params if w.trainable] + [w for w in self._params if not w.trainable]
        for layer in self._sublayers:
            own.extend(layer._weight_entries())
        return own

    @property
    def weights(self):
        """All weights: trainable ones first, then non-trainable (Keras order)."""
        return [w.value for w in self._weight_entries()]

    @property
    def weight_names(self):
        return [w.name for w in self._weight_entries()]

    @property
    def trainable_weights(self):
        if not self._trainable:
            return []
        return [w.value for w in self._weight_entries() if w.trainable]

    @property
    def non_trainable_weights(self):
        entries = self._weight_entries()
        if not self._trainable:
            return [w.value for w in entries]
        return [w.value for w in entries if not w.trainable]

    @property
    def path(self):
        """Keras's ``path``: the layer's name (variables' paths are ``<name>/<weight>``)."""
        return self.name

    @property
    def compute_dtype(self):
        return self.dtype

    @property
    def variable_dtype(self):
        return self.dtype

    def add_variable(self, shape, initializer, dtype=None, trainable=True, autocast=True,
                     regularizer=None, constraint=None, name=None):
        """Keras's ``add_variable``: ``add_weight`` with ``shape`` and ``initializer`` first."""
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype,
                               trainable=trainable, regularizer=regularizer,
                               constraint=constraint, name=name)

    # A model tracks the layers its attributes hold in its own way (models._tracked_layers)
    _tracks_attribute_layers = True

    def _setattr_tracking_layers(self, name, value):
        # As in Keras, the layers a custom layer's attributes hold (``self.dense = Dense(4)``,
        # or a list of them) are its sublayers: their weights are this layer's and train with it.
        # Installed as __setattr__ on user subclasses only (__init_subclass__): fastdl's own
        # layers register their sublayers themselves and keep the plain, faster attribute set
        # (their caches are set every step).
        if self._tracks_attribute_layers and isinstance(value, (Layer, list, tuple)):
            subs = self.__dict__.get("_sublayers")
            if subs is not None:
                for layer in value if isinstance(value, (list, tuple)) else (value,):
                    if (isinstance(layer, Layer) and layer is not self
                            and not any(layer is s for s in subs)):
                        subs.append(layer)
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only reached when normal lookup fails. A property that raised AttributeError itself
        # re-raises its own error; private names keep Python's plain error (copy, pickle and
        # hasattr probe them).
        if name.startswith("_"):
            raise AttributeError(name)
        if hasattr(type(self), name):
            return object.__getattribute__(self, name)
        from fastdl._missing import MissingAttribute
        raise MissingAttribute(self, name)

    @property
    def trainable_variables(self):
        """Keras's ``trainable_variables``: the trainable weights as fastdl Variables over the
        same memory (``assign`` changes the layer; GradientTape and the optimizers take them)."""
        return self._as_variables(self.trainable_weights, True)

    @property
    def non_trainable_variables(self):
        return self._as_variables(self.non_trainable_weights, False)

    @property
    def variables(self):
        """All weights as Variables: trainable ones first, as ``weights``."""
        return self.trainable_variables + self.non_trainable_variables

    def _as_variables(self, arrays, trainable):
        from fastdl.tensor.tensor import Variable
        own, stack = {}, [self]
        while stack:   # every weight's entry and owning layer (Keras's path: "dense/kernel")
            layer = stack.pop()
            for w in layer._params:
                own.setdefault(id(w.value), (w, layer))
            stack += list(layer._sublayers) + list(getattr(layer, "_layers", None) or ())
        views = self.__dict__.setdefault("_variable_views", {})   # stable identities per array
        recorded = {}   # the Variables a tape records for each trainable weight: one per array
        out = []
        for a in arrays:
            entry, owner = own.get(id(a), (None, self))
            v = getattr(entry, "variable", None)
            if v is None and trainable:
                if id(owner) not in recorded:
                    from fastdl.ops.layers import layer_variables
                    recorded[id(owner)] = {id(w._value): w for w in layer_variables(owner)}
                v = recorded[id(owner)].get(id(a))
            if v is None:
                v = views.get(id(a))
                if v is None or v._value is not a or v.trainable != trainable:
                    v = Variable._wrap(a, f"{owner.name}/{entry.name if entry else 'weight'}",
                                       trainable)
                    views[id(a)] = v
            out.append(v)
        return out

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Copy ``weights`` into this layer's arrays; count and shapes are checked first."""
        current = self.weights
        weights = list(weights)
        if len(weights) != len(current):
            raise ValueError(f"Layer {self.name!r} expects {len(current)} weights, "
                             f"but set_weights received {len(weights)}")
        converted = []
        for i, (cur, new) in enumerate(zip(current, weights)):
            new = np.asarray(new)
            if new.shape != cur.shape:
                raise ValueError(f"Layer {self.name!r} weight {i} has shape {cur.shape}, "
                                 f"but set_weights received shape {new.shape}")
            if np.issubdtype(new.dtype, np.complexfloating) or not (
                    np.issubdtype(new.dtype, np.number) or new.dtype == np.bool_):
                raise TypeError(f"Layer {self.name!r} weight {i} must be real numbers, "
                                f"received dtype {new.dtype}")
            converted.append(new)
        for cur, new in zip(current, converted):  # all checked: now the in-place copy
            cur[...] = new

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    # ------------------------------------------------------------------ add_loss
    def add_loss(self, loss):
        """Add a scalar loss (a Tensor, or a list of them) from inside ``call``: it is in
        ``layer.losses`` and ``model.losses`` until the next outermost call, and fit,
        evaluate and ``compute_loss`` add it (summed) to the compiled loss, as in Keras."""
        items = list(loss) if isinstance(loss, (list, tuple)) else [loss]
        for item in items:
            if not isinstance(item, _Tensor) and not (
                    np.ndim(item) == 0 and np.asarray(item).dtype.kind in "biuf"):
                raise TypeError(f"Layer {self.name!r}: add_loss takes a loss Tensor (or a list "
                                f"of them) computed in call(). Received: {item!r}")
        if getattr(_CALLS, "shape_only", False):   # a call on zeros to infer output shapes
            return
        added = self.__dict__.setdefault("_added_losses", [])
        added.extend(t if isinstance(t, _Tensor) else _Tensor(np.asarray(t, self.dtype))
                     for t in items)
        _LOSS_ADDERS.add(self)

    def _added_losses_in_tree(self):
        """The losses ``add_loss`` added to this layer and the layers it contains."""
        if not _LOSS_ADDERS:
            return []
        return [t for layer in _layer_tree(self) for t in layer.__dict__.get("_added_losses", ())]

    # ------------------------------------------------------------------ penalties
    def _has_penalties(self):
        """Whether this layer adds to model.losses (an activity or weight regularizer)."""
        return self.activity_regularizer is not None or any(
            w.regularizer is not None for w in self._weight_entries())

    @property
    def losses(self):
        """The losses of the last call, as in Keras: those ``add_loss`` added (Tensors; this
        layer's, then its sublayers'), each regularized trainable weight's penalty, then the
        activity penalty (``activity_regularizer(output) / batch size``)."""
        return self._added_losses_in_tree() + self._penalties()

    def _penalties(self):
        entries = self._weight_entries() if self._trainable else []
        out = [w.regularizer(w.value) for w in entries if w.trainable and w.regularizer]
        if self._activity is not None:
            out.append(self._activity[1])
        return out

    def _record_activity(self, y):
        """Keep the output and its activity penalty (the model calls this after call())."""
        if self.activity_regularizer is not None and not isinstance(y, (list, tuple)):
            batch = y.shape[0] if y.ndim else 1
            penalty = self.activity_regularizer(y) / batch if batch else 0.0
            self._activity = (y, penalty)

    def _penalized(self, dy):
        """``backward(dy)`` with the penalties' gradients: the activity penalty's added to dy,
        each regularized weight's added to its gradient."""
        if self._activity is not None and dy is not None:
            y = self._activity[0]
            dy = dy + self.activity_regularizer.gradient(y) / max(y.shape[0] if y.ndim else 1, 1)
        dx = self.backward(dy)
        if self.grads:
            entries = [w for w in self._weight_entries() if w.trainable]
            if any(w.regularizer for w in entries):
                self.grads = [g + w.regularizer.gradient(w.value).astype(g.dtype, copy=False)
                              if w.regularizer else g for w, g in zip(entries, self.grads)]
        return dx

    # ------------------------------------------------------------------ forward / backward
    def build(self, input_shape):
        self._build_input_shape = tuple(input_shape)
        self.built = True

    def _maybe_build(self, input_shape):
        if not self.built:
            self._check_rank(input_shape)
            self.build(tuple(input_shape))
            self._build_input_shape = tuple(input_shape)
            self.built = True

    def convert_input(self, x):
        """Explicit conversion of user input to this layer's float dtype (any layout, numeric)."""
        if isinstance(x, np.ndarray) and x.dtype == self.dtype:
            return x if x.flags.aligned else np.require(x, requirements="A")
        x = as_input_array(x, self)
        if x.dtype == object or not (np.issubdtype(x.dtype, np.integer)
                                     or np.issubdtype(x.dtype, np.floating)
                                     or x.dtype == np.bool_):
            raise TypeError(f"Layer {self.name!r} expects numeric input, received dtype {x.dtype}")
        return x.astype(self.dtype)

    def _autocast_input(self, x):
        """``x`` from the previous layer (or dy from the next one) in this layer's dtype when it
        is of the other float dtype: Keras casts float inputs to a layer's dtype, so a float64
        layer after a float32 one computes in float64 (and its dx goes back as float32)."""
        if x.dtype.kind == "f" and x.dtype != self.dtype:  # integer ids (Embedding) stay
            return x.astype(self.dtype)
        return x

    def _check_rank(self, shape):
        spec = self.input_spec
        if spec is None:
            return
        ndim = len(shape)
        if spec.ndim is not None and ndim != spec.ndim:
            raise ValueError(f"Input 0 of layer {self.name!r} is incompatible with the layer: "
                             f"expected ndim={spec.ndim}, found ndim={ndim}. "
                             f"Full shape received: {shape_str(shape)}")
        if spec.min_ndim is not None and ndim < spec.min_ndim:
            raise ValueError(f"Input 0 of layer {self.name!r} is incompatible with the layer: "
                             f"expected min_ndim={spec.min_ndim}, found ndim={ndim}. "
                             f"Full shape received: {shape_str(shape)}")

    def check_input_shape(self, shape):
        """Raise ValueError when ``shape`` (batch axis included) does not fit this layer."""
        self._check_rank(shape)
        spec = self.input_spec
        if spec is None:
            return
        for axis, size in spec.axes.items():
            if size is not None and shape[axis] != size:
                raise ValueError(f"Input 0 of layer {self.name!r} is incompatible with the layer: "
                                 f"expected axis {axis} of input shape to have value {size}, "
                                 f"but received input with shape {shape_str(shape)}")
        for axis, dim in enumerate(shape[1:], start=1):
            if dim == 0:
                raise ValueError(f"Layer {self.name!r} received an input with a zero-sized "
                                 f"dimension: {shape_str(shape)}")

    def __call__(self, x, training=False, mask=None, **kwargs):
        if _is_symbolic(x):  # the functional API: record a node, return KerasTensors
            from fastdl.functional import symbolic_call
            return symbolic_call(self, x, dict(kwargs, training=training))
        if self._tape_only:
            return self._call_with_ops(x, training, mask, kwargs)
        if kwargs:
            raise TypeError(f"Layer {self.name!r} ({type(self).__name__}): unexpected call "
                            f"arguments {sorted(kwargs)}")
        if isinstance(x, _Tensor):  # differentiable: one GradientTape primitive (fastdl.ops)
            from fastdl.ops.layers import call_layer
            return call_layer(self, x, training=training, mask=mask)
        if _recording():  # arrays inside a recording GradientTape: Tensors, as in TensorFlow
            from fastdl.ops.layers import call_layer
            return call_layer(self, _Tensor(self.convert_input(x)), training=training, mask=mask)
        return _eager_outputs(self._call_arrays(x, training, mask))

    def _call_arrays(self, x, training=False, mask=None):
        """The call on arrays: checked, built, ``call``ed (what a tape primitive runs)."""
        x = self.convert_input(x)
        self._maybe_build(x.shape)
        self.check_input_shape(x.shape)
        if self._call_takes_mask:
            y = self.call(x, training=training, mask=mask)
        else:
            y = self.call(x, training=training)
        self._record_activity(y)
        return y

    def _call_with_ops(self, x, training, mask, kwargs):
        """A layer with no backward (written with fastdl.ops): ``call`` runs on Tensors, so a
        recording GradientTape differentiates it. Arrays in give constant Tensors out."""
        from fastdl.models import _as_tensors, _has_tensor, _values
        tensors_in = _has_tensor(x)
        if not tensors_in:
            x = _map_arrays(x, self)
            tensors_in = _recording()   # inside a GradientTape, arrays in give Tensors out
        xt = _as_tensors(x)
        if not self.built:
            shape = (list(map(_shape_of, xt)) if isinstance(xt, (list, tuple))
                     else _shape_of(xt))
            self._maybe_build(shape)
        if self._call_takes_training:
            kwargs = dict(kwargs, training=training)
        if self._call_takes_mask and mask is not None:
            kwargs = dict(kwargs, mask=mask)
        depth = begin_call(self)
        try:
            out = self.call(xt, **kwargs)
        finally:
            end_call(depth)
        return out if tensors_in else _eager_outputs(_values(out))

    @property
    def input(self):
        """The symbolic input of this layer's single call in a functional graph."""
        args = self._only_node().args
        return args[0]

    @property
    def output(self):
        """The symbolic output of this layer's single call in a functional graph."""
        outs = self._only_node().outputs
        return outs[0] if len(outs) == 1 else list(outs)

    def _only_node(self):
        nodes = self.__dict__.get("_inbound_nodes")
        if not nodes:
            raise AttributeError(f"Layer {self.name!r} has never been called on a symbolic "
                                 "input (keras.Input), so it has no input or output")
        if len(nodes) > 1:
            raise AttributeError(f"Layer {self.name!r} has been called {len(nodes)} times (a "
                                 "shared layer): its input/output is ambiguous")
        return nodes[0]

    def call(self, x, training=False):
        raise NotImplementedError(f"{type(self).__name__}.call")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def compute_mask(self, x, mask=None):
        return mask if self.supports_masking else None

    def compute_output_shape(self, input_shape):
        if self._tape_only:   # a layer written with ops: run it on zeros to see
            from fastdl.functional import infer_output_shape
            return infer_output_shape(self, input_shape)
        return tuple(input_shape)

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        if self._declared_batch_shape is not None:
            config["batch_input_shape"] = list(self._declared_batch_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _check_shape_dims(dims, name):
    out = []
    for d in dims:
        if d is None:
            out.append(None)
        else:
            out.append(check_positive_int(d, name))
    return tuple(out)


class InputLayer(Layer):
    """Declares the model's input shape: ``Input(shape=(28, 28, 1))`` as the first layer."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 sparse=None, input_shape=None, batch_input_shape=None, **kwargs):
        shape = shape if shape is not None else input_shape
        batch_shape = batch_shape if batch_shape is not None else batch_input_shape
        if shape is None and batch_shape is None:
            raise ValueError("Input needs shape=... (the shape of one sample, without the batch "
                             "axis). Received: shape=None")
        if sparse:
            raise ValueError("fastdl does not support sparse inputs. Received: sparse=True")
        self.input_dtype = (None if dtype is None else "string" if dtype == "string"
                            else np.dtype(dtype).name)   # "string": Keras's text inputs
        float_dtype = dtype if self.input_dtype in _FLOAT_DTYPES else None
        super().__init__(name=name, dtype=float_dtype, input_shape=shape,
                         batch_input_shape=batch_shape, batch_size=batch_size, **kwargs)
        self.built = True

    def convert_input(self, x):
        return x

    def call(self, x, training=False):
        return x

    def backward(self, dy):
        return dy

    def get_config(self):
        return {"batch_shape": list(self._declared_batch_shape), "dtype": self.input_dtype or self.dtype,
                "name": self.name, "sparse": False}


def _eager_outputs(y):
    """An eager call's output arrays as Tensors (Keras 3 returns backend tensors, so
    ``model(x).numpy()`` works); wrapping shares the arrays. The models' own loops call the
    layers' array paths and never pay for this."""
    if isinstance(y, np.ndarray):
        if "fastdl.ops" not in sys.modules:   # it binds the Tensor operators (y * 2)
            import fastdl.ops  # noqa: F401
        return _Tensor(y)
    if isinstance(y, (list, tuple)):
        return type(y)(_eager_outputs(v) for v in y)
    if isinstance(y, dict):
        return {k: _eager_outputs(v) for k, v in y.items()}
    return y


def _is_symbolic(x):
    if isinstance(x, (list, tuple)):
        return any(getattr(v, "_keras_tensor", False) for v in x)
    if isinstance(x, dict):
        return any(getattr(v, "_keras_tensor", False) for v in x.values())
    return getattr(x, "_keras_tensor", False)


def _shape_of(t):
    return tuple(t.shape if hasattr(t, "shape") else np.shape(t))


def _map_arrays(x, layer):
    """User arrays for a layer written with ops: numeric, floats in the layer's dtype."""
    if isinstance(x, (list, tuple)):
        return type(x)(_map_arrays(v, layer) for v in x)
    if isinstance(x, dict):
        return {k: _map_arrays(v, layer) for k, v in x.items()}
    a = as_input_array(x, layer)
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"Layer {layer.name!r} expects numeric input, received dtype {a.dtype}")
    return a.astype(layer.dtype) if a.dtype.kind in "fb" and a.dtype != layer.dtype else a


def as_input_array(x, layer):
    """``np.asarray(x)``, or a TypeError/ValueError saying why ``x`` cannot be ``layer``'s input:
    fastdl layers compute on one array, not on symbolic tensors or several inputs."""
    who = f"{type(layer).__name__} layer {layer.name!r} was called on"
    items = x if isinstance(x, (list, tuple)) else (x,)
    symbolic = [v for v in items if isinstance(v, Layer)]
    if symbolic:
        what = ("a symbolic Input" if isinstance(symbolic[0], InputLayer)
                else f"a {type(symbolic[0]).__name__} layer")
        raise TypeError(f"{who} {what}; call layers on keras.Input tensors (the functional API) "
                        "or on NumPy arrays")
    if x is None:
        raise TypeError(f"{who} None; pass a NumPy array")
    if isinstance(x, dict):
        raise TypeError(f"{who} a dict; a layer takes one array (named inputs belong to a "
                        "functional model: keras.Model({name: keras.Input(...)}, outputs))")
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{who} a {type(x).__name__}; layers take numeric arrays (text must "
                        "first become integer ids, e.g. for an Embedding layer)")
    try:
        return np.asarray(x)
    except ValueError:  # NumPy refuses ragged nesting
        raise ValueError(f"{who} a {type(x).__name__} whose elements have different shapes; a "
                         "layer takes one rectangular array (merge layers such as Concatenate take a "
                         "list of arrays)") from None


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, sparse=None,
          tensor=None):
    """``keras.Input``: a symbolic tensor (``KerasTensor``) for the functional API; also the
    first element of a ``Sequential``, where it declares the input shape."""
    from fastdl.functional import Input as _input
    return _input(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                  name=name, sparse=sparse, tensor=tensor)


def begin_call(layer):
    """Enter a model's or custom layer's call: the outermost one clears the losses its layer
    tree added before (Keras keeps those of the last call). Returns the depth to restore."""
    depth = getattr(_CALLS, "depth", 0)
    if depth == 0 and _LOSS_ADDERS:
        for adder in _layer_tree(layer):
            adder.__dict__.pop("_added_losses", None)
    _CALLS.depth = depth + 1
    return depth


def end_call(depth):
    _CALLS.depth = depth


def _layer_tree(layer):
    """``layer`` and every layer it contains (sublayers, a model's layers), each once."""
    out, seen, queue = [], set(), collections.deque([layer])
    while queue:       # breadth first, as Keras orders layer.losses
        current = queue.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        queue += list(current.__dict__.get("_sublayers", ())) + list(
            getattr(current, "_layers", None) or ())
    return out


def _marks_built(build):
    """``build`` that leaves the layer built, as Keras's does: ``layer.build(shape)`` called
    directly must not let the first call build (and create the weights) again."""
    @functools.wraps(build)
    def wrapper(self, *args, **kwargs):
        out = build(self, *args, **kwargs)
        self.built = True
        if args and self._build_input_shape is None and isinstance(args[0], (tuple, list)) \
                and all(d is None or isinstance(d, (int, np.integer)) for d in args[0]):
            self._build_input_shape = tuple(args[0])
        return out
    return wrapper
