"""Keras's functional API: symbolic tensors (``keras.Input``), nodes, and ``Model(inputs, outputs)``.

``Input(shape)`` returns a :class:`KerasTensor` (a shape with a None batch axis, a dtype, a
name). Calling a layer (or a model) on KerasTensors, or applying an operator to them
(``x + y``, ``x[:, 0]``), records a :class:`Node` and returns new KerasTensors whose shapes come
from the layer's ``compute_output_shape`` (layers with a backward of their own) or from running
the call on small zero arrays (layers written with ops, operators). ``Model(inputs, outputs)``
collects the nodes between them in topological order; :class:`Functional` runs them on Tensors,
so a GradientTape differentiates the graph (each built-in layer call is one primitive with its
own saved cache: a layer shared by several nodes is differentiated per call).
"""
import inspect

import numpy as np

from fastdl.layers.base import InputLayer, Layer, shape_str
from fastdl.models import Model, _Arrays, _as_tensors, _values
from fastdl.tensor.tensor import Tensor, as_dtype


class Node:
    """One call in a graph: ``fn(*args, **kwargs)`` with KerasTensors inside ``args``. An op
    node (no layer) keeps the op's ``name`` and whether it is a KerasTensor ``operator``
    (``x + y`` is ``"add"``, ``2 - x`` is ``"rsub"``), which saving maps to Keras's op classes."""
    __slots__ = ("layer", "fn", "args", "kwargs", "outputs", "name", "operator")

    def __init__(self, layer, fn, args, kwargs, name=None, operator=False):
        self.layer, self.fn, self.args, self.kwargs = layer, fn, args, kwargs
        self.name, self.operator = name, operator
        self.outputs = []

    def inputs(self):
        """The KerasTensors among the arguments (not flags such as ``use_causal_mask=True``)."""
        return [t for t in _flatten([self.args, self.kwargs]) if isinstance(t, KerasTensor)]


class KerasTensor:
    """A symbolic tensor: ``shape`` (batch axis None), ``dtype`` and ``name``; the output of
    ``Input`` or of a layer or operator applied to other KerasTensors."""
    __slots__ = ("shape", "dtype", "name", "_node", "_input_layer", "__weakref__")
    _keras_tensor = True

    def __init__(self, shape, dtype="float32", name=None, node=None, input_layer=None):
        self.shape = tuple(shape)
        self.dtype = as_dtype(dtype)
        self.name = name
        self._node = node
        self._input_layer = input_layer

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return (f"<KerasTensor shape={shape_str(self.shape)}, dtype={self.dtype}, "
                f"name={self.name}>")

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"{self!r} is symbolic (keras.Input or a layer's output in a functional "
                        "graph): it has no value. Build Model(inputs, outputs) and call the "
                        "model on NumPy arrays")

    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic: it has no truth value")

    def __len__(self):
        raise TypeError(f"{self!r} is symbolic: it has no length")

    def __hash__(self):
        return id(self)


def _symbolic_operator(name):
    def method(self, *args):
        from fastdl.tensor.tensor import OPERATORS
        import fastdl.ops  # noqa: F401  (binds OPERATORS)
        op = OPERATORS[name]
        return symbolic_op(lambda *a: op(*a), (self, *args), name.strip("_"), operator=True)
    method.__name__ = name
    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
              "__truediv__", "__rtruediv__", "__pow__", "__rpow__", "__matmul__",
              "__rmatmul__", "__neg__", "__abs__", "__getitem__", "__lt__", "__le__", "__gt__",
              "__ge__"):
    setattr(KerasTensor, _name, _symbolic_operator(_name))
KerasTensor.__eq__ = object.__eq__   # identity: KerasTensors are dict keys and list members
KerasTensor.__hash__ = lambda self: id(self)


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, sparse=None,
          tensor=None):
    """``keras.Input``: a symbolic tensor for the functional API (also the first element of a
    ``Sequential``, where it declares the input shape)."""
    if tensor is not None:
        raise ValueError("Input(tensor=...) is not supported: fastdl's inputs are symbolic. "
                         f"Received: tensor={tensor!r}")
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                       name=name, sparse=sparse)
    return KerasTensor(layer._declared_batch_shape, layer.input_dtype or layer.dtype,
                       name=layer.name, input_layer=layer)


# ---------------------------------------------------------------------------- structures

def _flatten(structure, out=None):
    out = [] if out is None else out
    if isinstance(structure, (list, tuple)):
        for s in structure:
            _flatten(s, out)
    elif isinstance(structure, dict):
        for s in structure.values():
            _flatten(s, out)
    else:
        out.append(structure)
    return out


def _map(fn, structure):
    if isinstance(structure, (list, tuple)):
        return type(structure)(_map(fn, s) for s in structure)
    if isinstance(structure, dict):
        return {k: _map(fn, v) for k, v in structure.items()}
    return fn(structure)


def is_symbolic(x):
    return any(isinstance(v, KerasTensor) for v in _flatten(x))


def is_keras_tensor(x):
    """Whether ``x`` is a symbolic tensor (``keras.Input`` or a layer's output on one)."""
    return isinstance(x, KerasTensor)


def get_source_inputs(tensor):
    """The ``keras.Input`` tensors that ``tensor`` is computed from, as a list in the order
    the graph reaches them (each once); anything that is not a KerasTensor comes back as is,
    as in Keras."""
    if not isinstance(tensor, KerasTensor):
        return tensor
    sources, seen, stack = [], set(), [tensor]
    visited = set()
    while stack:                       # depth first, a node's inputs in their order
        t = stack.pop()
        if t._node is None:
            if id(t) not in seen:
                seen.add(id(t))
                sources.append(t)
            continue
        if id(t._node) not in visited:
            visited.add(id(t._node))
            stack.extend(reversed(t._node.inputs()))
    return sources


# ---------------------------------------------------------------------------- recording

def _shapes(x):
    return _map(lambda t: t.shape if isinstance(t, KerasTensor) else None, x)


def _dummy(x, fill):
    """Zero arrays standing for KerasTensors, unknown dims set to ``fill``."""
    def make(t):
        if not isinstance(t, KerasTensor):
            return t
        shape = tuple(fill if d is None else d for d in t.shape)
        return Tensor(np.zeros(shape, dtype=np.dtype(str(t.dtype))))
    return _map(make, x)


def _run_on_dummies(fn, args, kwargs):
    """The output specs (shape with None where it follows an unknown input dim, dtype) of
    ``fn`` run on zero arrays with the unknown dims set to 1, then 2."""
    outs = []
    from fastdl.layers.base import _CALLS
    shape_only, _CALLS.shape_only = getattr(_CALLS, "shape_only", False), True  # no add_loss
    try:
        for fill in (1, 2):
            outs.append(_flatten(fn(*_dummy(args, fill), **_dummy(kwargs, fill))))
    finally:
        _CALLS.shape_only = shape_only
    specs = []
    for a, b in zip(*outs):
        a, b = np.asarray(a), np.asarray(b)
        specs.append((tuple(None if p != q else p for p, q in zip(a.shape, b.shape)),
                      a.dtype.name))
    return specs


def symbolic_call(layer, x, kwargs):
    """``layer(x)`` on KerasTensors: build the layer, record a node, return its outputs."""
    kwargs = {k: v for k, v in kwargs.items() if k != "training"}
    if not layer._tape_only:
        listed = isinstance(x, (list, tuple))
        if listed and not layer._takes_input_list:
            raise TypeError(f"Layer {layer.name!r} ({type(layer).__name__}) takes one input, "
                            f"received a {type(x).__name__} of {len(x)}")
        shape = [tuple(t.shape) for t in x] if listed else x.shape
        try:
            layer._maybe_build(shape)
            if not listed:
                layer.check_input_shape(tuple(1 if d is None else d for d in shape))
            out_shape = layer.compute_output_shape(shape)
        except (ValueError, TypeError) as e:
            raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) cannot be called "
                             f"on a symbolic input of shape {shape_str(shape)}: {e}") from e
        if isinstance(out_shape, list) or (out_shape and isinstance(out_shape[0], (tuple, list))):
            specs = [(tuple(s), layer.dtype) for s in out_shape]
        else:
            specs = [(tuple(out_shape), layer.dtype)]
        single = len(specs) == 1
    else:
        try:
            specs = _run_on_dummies(lambda a, **kw: layer(a, training=False, **kw), (x,), kwargs)
        except (ValueError, TypeError) as e:
            raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) cannot be called "
                             f"on symbolic inputs of shape {_shapes(x)}: {e}") from e
        single = True if len(specs) == 1 else False
    node = Node(layer, None, (x,), kwargs)
    outs = [KerasTensor((None,) + tuple(s[1:]) if s else s, d, name=layer.name, node=node)
            for s, d in specs]
    node.outputs = outs
    layer.__dict__.setdefault("_inbound_nodes", []).append(node)
    return outs[0] if single else outs


def symbolic_op(fn, args, name, kwargs=None, operator=False):
    """An op on KerasTensors (``x + y``, ``x[:, 0]``, ``ops.mean(x, axis=1)``): a node that
    runs ``fn`` on Tensors."""
    kwargs = kwargs or {}
    try:
        specs = _run_on_dummies(fn, args, kwargs)
    except (ValueError, TypeError, IndexError) as e:
        raise ValueError(f"{name} cannot be applied to symbolic inputs of shapes "
                         f"{_shapes(list(args))}: {e}") from e
    node = Node(None, fn, args, kwargs, name, operator)
    outs = [KerasTensor(s, d, name=name, node=node) for s, d in specs]
    node.outputs = outs
    return outs[0] if len(outs) == 1 else outs


def infer_output_shape(model, input_shape):
    """A model's output shape for ``input_shape`` (a model nested in a Sequential)."""
    if isinstance(model, Functional):
        outs = model._outputs_flat
        return outs[0].shape if len(outs) == 1 else [o.shape for o in outs]
    specs = _run_on_dummies(lambda a: model(a, training=False),
                            (KerasTensor(input_shape),), {})
    return specs[0][0] if len(specs) == 1 else [s for s, _ in specs]


# ---------------------------------------------------------------------------- the model

class Functional(Model):
    """``Model(inputs, outputs, name=None)``: the graph of layer and op calls between
    ``inputs`` and ``outputs`` (single KerasTensors, lists or dicts of them)."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if kwargs:
            raise TypeError(f"Model: unrecognized keyword arguments {sorted(kwargs)}")
        self._init_model(name or None, trainable)
        for what, value in (("inputs", inputs), ("outputs", outputs)):
            bad = [v for v in _flatten(value) if not isinstance(v, KerasTensor)]
            if value is None or bad:
                raise TypeError(
                    f"Model({what}=...) takes symbolic tensors (keras.Input and the outputs of "
                    f"layers called on them); received {type(bad[0] if bad else value).__name__}"
                    + (" (a concrete array: call the model on arrays after building it)"
                       if bad and isinstance(bad[0], (np.ndarray, Tensor)) else ""))
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._inputs_flat = _flatten(inputs)
        self._outputs_flat = _flatten(outputs)
        for t in self._inputs_flat:
            if t._node is not None:
                raise ValueError(f"Model inputs must be keras.Input tensors; {t!r} is the output "
                                 f"of layer {t._node.layer.name if t._node.layer else t.name!r}")
        self._nodes = self._collect_nodes()
        # Keras lists the InputLayers first
        layers = [t._input_layer for t in self._inputs_flat if t._input_layer is not None]
        seen = {id(l) for l in layers}
        for node in self._nodes:
            if node.layer is not None and id(node.layer) not in seen:
                seen.add(id(node.layer))
                layers.append(node.layer)
        names = [l.name for l in layers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"The layer names of a model must be unique; repeated: {dup}")
        self._layers = layers
        self.built = True
        if not trainable:
            self.trainable = False

    def _collect_nodes(self):
        """The nodes from the inputs to the outputs, each after the nodes it reads from."""
        inputs = {id(t) for t in self._inputs_flat}
        order, state = [], {}
        for out in self._outputs_flat:   # depth first, each node's inputs in their order
            stack = [(out, False)]
            while stack:
                t, done = stack.pop()
                if id(t) in inputs:
                    continue
                node = t._node
                if node is None:
                    raise ValueError(
                        f"Output {out!r} is not connected to the model's inputs: it depends on "
                        f"{t!r}, which is not among inputs={[i.name for i in self._inputs_flat]}")
                if done:
                    if state.get(id(node)) != "done":
                        state[id(node)] = "done"
                        order.append(node)
                    continue
                if state.get(id(node)) is not None:
                    continue
                state[id(node)] = "open"
                stack.append((t, True))
                for parent in reversed(node.inputs()):
                    if isinstance(parent, KerasTensor):
                        stack.append((parent, False))
        return order

    # ------------------------------------------------------------------ structure
    @property
    def inputs(self):
        return list(self._inputs_flat)

    @property
    def outputs(self):
        return list(self._outputs_flat)

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._inputs_flat]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self._outputs_flat]
        return shapes[0] if len(shapes) == 1 else shapes

    # ------------------------------------------------------------------ running
    def call(self, inputs, training=None, mask=None):
        """The graph on ``inputs`` (Tensors give Tensors, arrays give arrays)."""
        from fastdl.models import _has_tensor
        if _has_tensor(inputs):
            return self._pack(self._call_tensors(inputs, training))
        return self._pack(_values(self._call_tensors(_as_tensors(inputs), training)))

    def _feed(self, x):
        """The inputs' values keyed by KerasTensor id, from ``x`` in the inputs' structure."""
        flat = self._inputs_flat
        if isinstance(x, dict):
            names = [t.name for t in flat]
            missing = [n for n in names if n not in x]
            extra = [k for k in x if k not in names]
            if missing or extra:
                raise ValueError(f"Model {self.name!r} expects inputs {names}; missing "
                                 f"{missing}, unexpected {extra}")
            return {id(t): x[t.name] for t in flat}
        values = list(x) if isinstance(x, (list, tuple)) and len(flat) > 1 else [x]
        if len(values) != len(flat):
            raise ValueError(f"Model {self.name!r} expects {len(flat)} inputs "
                             f"{[t.name for t in flat]}, received {len(values)}")
        return {id(t): v for t, v in zip(flat, values)}

    def _fusable(self):
        """node index -> the next node's index, where a built-in layer's only consumer is the
        next node, a built-in layer that may run with it as one kernel (Layer._fuse_next)."""
        pairs = self.__dict__.get("_fuse_pairs")
        if pairs is None:
            readers = {}
            for node in self._nodes:
                for t in node.inputs():
                    readers[id(t)] = readers.get(id(t), 0) + 1
            outputs = {id(t) for t in self._outputs_flat}
            pairs = {}
            for i, (node, nxt) in enumerate(zip(self._nodes, self._nodes[1:])):
                if (node.layer is not None and nxt.layer is not None and len(node.outputs) == 1
                        and not node.layer._tape_only and not nxt.layer._tape_only
                        and not node.kwargs and not nxt.kwargs
                        and len(node.args) == 1 and isinstance(node.args[0], KerasTensor)
                        and readers.get(id(node.outputs[0])) == 1
                        and id(node.outputs[0]) not in outputs
                        and len(nxt.args) == 1 and nxt.args[0] is node.outputs[0]):
                    pairs[i] = i + 1
            self._fuse_pairs = pairs
        return pairs

    def _call_tensors(self, x, training, fuse=False):
        values = self._feed(x)
        masks = {}   # KerasTensor id -> the mask its value carries (Embedding(mask_zero=True))
        pairs = self._fusable() if fuse else {}
        skip = -1

        def value(t):
            return values[id(t)] if isinstance(t, KerasTensor) else t

        for i, node in enumerate(self._nodes):
            if i == skip:
                continue
            layer = node.layer
            arg = node.args[0] if len(node.args) == 1 and isinstance(node.args[0],
                                                                     KerasTensor) else None
            mask = masks.get(id(arg)) if arg is not None else None
            if layer is not None and arg is not None and (
                    mask is not None or type(layer).compute_mask is not Layer.compute_mask):
                v = values[id(arg)]
                out_mask = layer.compute_mask(np.asarray(v._value if isinstance(v, Tensor)
                                                         else v), mask)
                if out_mask is not None and len(node.outputs) == 1:
                    masks[id(node.outputs[0])] = out_mask
            elif (layer is not None and len(node.args) == 1
                  and isinstance(node.args[0], (list, tuple))
                  and any(id(t) in masks for t in node.args[0] if isinstance(t, KerasTensor))):
                # a layer called on a list (the merge layers): one mask (or None) per input
                mask = [masks.get(id(t)) if isinstance(t, KerasTensor) else None
                        for t in node.args[0]]
                out_mask = layer.compute_mask(
                    [np.asarray(v._value if isinstance(v, Tensor) else v)
                     for v in map(value, node.args[0])], mask)
                if out_mask is not None and len(node.outputs) == 1:
                    masks[id(node.outputs[0])] = out_mask
            if i in pairs and mask is None:   # inference: two layers in one kernel
                v = values[id(arg)]
                v = layer._autocast_input(layer.convert_input(v._value if isinstance(v, Tensor)
                                                              else v))
                fused = layer._fuse_next(v, self._nodes[i + 1].layer)
                if fused is not None:
                    values[id(self._nodes[i + 1].outputs[0])] = Tensor(fused)
                    skip = i + 1
                    continue
            args, kwargs = _map(value, node.args), _map(value, node.kwargs)
            if layer is not None:
                if mask is not None:
                    kwargs["mask"] = mask
                for k, t in node.kwargs.items():   # MultiHeadAttention(q, value=v): value_mask
                    if isinstance(t, KerasTensor) and masks.get(id(t)) is not None and \
                            kwargs.get(f"{k}_mask") is None and f"{k}_mask" in \
                            inspect.signature(type(layer).call).parameters:
                        kwargs[f"{k}_mask"] = masks[id(t)]
                out = layer(*args, training=training, **kwargs)
            else:
                out = node.fn(*args, **kwargs)
            for t, v in zip(node.outputs, _flatten(out)):
                values[id(t)] = v
        if self._dict_outputs():   # the engine works on the flat list; _pack gives users the dict
            return [values[id(t)] for t in self._outputs_flat]
        return _map(lambda t: values[id(t)], self._outputs_struct)

    def _dict_outputs(self):
        """Whether ``outputs`` was a dict of single outputs ``{name: tensor}`` (Keras names the
        outputs by its keys)."""
        return isinstance(self._outputs_struct, dict) and all(
            isinstance(t, KerasTensor) for t in self._outputs_struct.values())

    def _pack(self, out):
        """The outputs as the user gave them: a dict again when ``outputs`` was one."""
        if self._dict_outputs() and isinstance(out, list):
            return dict(zip(self._outputs_struct, out))
        return out

    def __call__(self, x, training=False, mask=None):
        return self._pack(Model.__call__(self, x, training=training, mask=mask))

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """``Model.predict``; a dict keyed as ``outputs`` when that was a dict."""
        return self._pack(Model.predict(self, x, batch_size=batch_size, verbose=verbose,
                                        steps=steps, callbacks=callbacks))

    def predict_on_batch(self, x):
        return self._pack(Model.predict_on_batch(self, x))

    def _convert_x(self, x, what="x"):
        if x is None:
            raise ValueError(f"{what} must not be None")
        values = self._feed(x)
        converted = {}
        for t in self._inputs_flat:
            v = values[id(t)]
            if isinstance(v, KerasTensor):
                raise TypeError(f"Model {self.name!r} was given the symbolic tensor {v!r} as "
                                f"input {t.name!r}: pass NumPy arrays")
            v = np.asarray(v)
            if t.dtype.name == "string":   # Input(dtype="string") feeds text layers
                if v.dtype.kind not in "US":
                    raise TypeError(f"Model {self.name!r}: input {t.name!r} is a string input, "
                                    f"received dtype {v.dtype}")
            elif v.dtype == object or v.dtype.kind not in "biuf":
                raise TypeError(f"Model {self.name!r}: input {t.name!r} must be numeric, "
                                f"received dtype {v.dtype}")
            # as Keras's functional models: a missing or extra last axis of size 1 is adjusted
            if v.ndim == len(t.shape) - 1 and t.shape[-1] == 1:
                v = v[..., None]
            elif v.ndim == len(t.shape) + 1 and v.ndim > 1 and v.shape[-1] == 1:
                v = v[..., 0]
            if v.ndim != len(t.shape) or any(d is not None and d != s
                                             for d, s in zip(t.shape[1:], v.shape[1:])):
                raise ValueError(f"Model {self.name!r}: input {t.name!r} expects shape "
                                 f"{shape_str(t.shape)}, received {shape_str(v.shape)}")
            if t.dtype.is_floating or v.dtype.kind == "b":
                v = v.astype(str(t.dtype), copy=False)
            converted[id(t)] = v
        arrays = [converted[id(t)] for t in self._inputs_flat]
        return arrays[0] if len(arrays) == 1 else _Arrays(arrays)

    def _output_count(self):
        return len(self._outputs_flat)

    def _output_names(self):
        if self._dict_outputs():
            return list(self._outputs_struct)
        return [t._node.layer.name if t._node is not None and t._node.layer is not None
                else t.name for t in self._outputs_flat]

    def _per_output(self, value, what, allow_single=False):
        """``value`` given per output (a list in output order or a dict keyed by output name)
        as a list in output order; unknown or missing names are a ValueError naming them."""
        names = self._output_names()
        if isinstance(value, dict):
            missing = [n for n in names if n not in value]
            extra = [k for k in value if k not in names]
            if extra or (missing and what == "y"):
                raise ValueError(f"Model {self.name!r}: {what} keys must be the output names "
                                 f"{names}; missing {missing}, unexpected {extra}")
            return [value.get(n) for n in names]
        if isinstance(value, (list, tuple)) and not (allow_single and len(value) == 0):
            if len(value) != len(names):
                raise ValueError(f"Model {self.name!r} has {len(names)} outputs {names}; {what} "
                                 f"has {len(value)} entries")
            return list(value)
        if allow_single:
            return [value] * len(names)
        raise ValueError(f"Model {self.name!r} has {len(names)} outputs {names}: {what} must be "
                         f"a list or a dict keyed by output name. Received: "
                         f"{type(value).__name__}")

    def _convert_y(self, y, n, what="y"):
        if len(self._outputs_flat) == 1:
            return Model._convert_y(y, n, what)
        if y is None:
            raise ValueError(f"{what} must be given to train or evaluate")
        return _Arrays([Model._convert_y(v, n, f"{what}[{name!r}]") for v, name in
                        zip(self._per_output(y, what), self._output_names())])

    def _class_weight_to_sample_weight(self, class_weight, y):
        if len(self._outputs_flat) > 1:
            raise ValueError(f"class_weight applies to single-output models; model "
                             f"{self.name!r} has {len(self._outputs_flat)} outputs")
        return Model._class_weight_to_sample_weight(class_weight, y)

    def _forward(self, x, training, fuse=False):
        return _values(self._call_tensors(_as_tensors(x), training, fuse))

    def get_config(self):
        """Keras's Functional config: ``name``, ``trainable``, ``layers`` (each with its
        ``inbound_nodes``), ``input_layers``, ``output_layers`` (fastdl.saving.graph)."""
        from fastdl.saving import common
        return common.model_config(self)["config"]

    def __repr__(self):
        return f"<Functional name={self.name}, layers={len(self._layers)}>"



class MultiOutputLoss:
    """The loss of a multi-output model: ``sum_i loss_weights[i] * loss_i(y[i], y_pred[i])``,
    with Keras's ``compile(loss=list|dict, loss_weights=list|dict)``."""
    expects_probabilities = False
    name = "loss"

    def __init__(self, model, loss, loss_weights):
        from fastdl import losses
        per = model._per_output(loss, "loss", allow_single=not isinstance(loss, (list, dict)))
        self.names = model._output_names()
        self.losses = [None if l is None else losses.get(l) for l in per]
        if all(l is None for l in self.losses):
            raise ValueError(f"compile: no loss for any output of model {model.name!r}")
        weights = [1.0] * len(per) if loss_weights is None else model._per_output(
            loss_weights, "loss_weights")
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(w):
                raise ValueError(f"loss_weights must be finite numbers. Received: "
                                 f"{loss_weights!r}")
        self.weights = [1.0 if w is None else float(w) for w in weights]

    def forward_backward(self, y, y_pred, sample_weight=None):
        total, grads = 0.0, []
        for loss, w, yt, yp in zip(self.losses, self.weights, y.arrays, y_pred):
            if loss is None:
                grads.append(np.zeros_like(yp))
                continue
            value, g = loss.forward_backward(yt, yp, sample_weight)
            total += w * value
            grads.append(g * np.asarray(w, dtype=g.dtype) if w != 1.0 else g)
        return total, grads

    def __call__(self, y, y_pred, sample_weight=None):
        return sum(w * loss(yt, yp, sample_weight) for loss, w, yt, yp in
                   zip(self.losses, self.weights, y.arrays, y_pred) if loss is not None)


class _OutputMetric:
    """A metric of one output of a multi-output model, named ``<output>_<metric>``."""

    def __init__(self, metric, index, output):
        self.metric, self.index = metric, index
        self.name = f"{output}_{metric.name}"

    def update_state(self, y, y_pred, sample_weight=None):
        self.metric.update_state(y.arrays[self.index], y_pred[self.index], sample_weight)

    def result(self):
        return self.metric.result()

    def reset_state(self):
        self.metric.reset_state()


def output_metrics(model, given):
    """compile's ``metrics`` for a multi-output model: a list with one entry (a metric or a
    list of metrics) per output, or a dict keyed by output name."""
    from fastdl import metrics
    if given is None:
        return []
    per = model._per_output(given, "metrics")
    out = []
    for i, (entry, name) in enumerate(zip(per, model._output_names())):
        for m in ([] if entry is None else entry if isinstance(entry, (list, tuple))
                  else [entry]):
            out.append(_OutputMetric(metrics.get(m), i, name))
    return out
