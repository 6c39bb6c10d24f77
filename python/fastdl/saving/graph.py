"""Functional models in Keras 3's schema: their config, their rebuild, and Keras's layer order.

A functional model's description (``keras/src/models/functional.py``)::

    {"module": "keras.src.models.functional", "class_name": "Functional",
     "registered_name": "Functional",
     "config": {"name", "trainable",
                "layers": [{...layer entry..., "name": "dense",
                            "inbound_nodes": [{"args": [...], "kwargs": {...}}, ...]}, ...],
                "input_layers": ["a", 0, 0] (or a list/dict of them),
                "output_layers": [["dense", 0, 0], ...]}}

Each inbound node is one call of the layer; its arguments hold the KerasTensors it reads as
``{"class_name": "__keras_tensor__", "config": {"shape", "dtype",
"keras_history": [layer name, node index, tensor index]}}``, slices as ``__slice__``, ``...`` as
``__ellipsis__``, arrays as ``__numpy__``. A node index counts the layer's calls inside this
model, from 0; in ``input_layers``/``output_layers`` (only there) Keras counts a nested
functional model's calls from 1 (``Functional.get_config``'s ``kept_nodes``). Operators
and ``keras.ops`` calls on KerasTensors (``x + y``, ``x[:, 0]``, ``ops.mean(x, axis=1)``) are
operations of their own, written as ``{"module": "keras.src.ops.numpy", "class_name": "Add",
"config": {"name": "add"}, "registered_name": "Add", ...}``: :data:`OPS` lists those fastdl
writes and reads; any other op node is refused on save, naming it.

Keras orders a model's operations (its ``layers`` list, and so the ``layers/<snake class>[_k]``
paths of its weights file) by depth from the outputs, ties broken by first visit in a
depth-first walk from the outputs (``keras/src/ops/function.py``, ``map_graph``);
:func:`keras_operations` computes the same order from fastdl's graph.

Loading follows Keras's rebuild: every layer is made first (classes only from fastdl's registry
and ``custom_objects``; op classes only from :data:`OPS`), then the nodes are called in layer
order as soon as their inputs exist. A node naming a layer the config does not have, and a
graph with a cycle (no node can run), raise ModelFileError naming them; nothing from the file
is ever executed or imported.
"""
import numpy as np

from fastdl.layers.base import InputLayer, Layer, to_snake_case
from fastdl.saving.common import ModelFileError

FUNCTIONAL_MODULE = "keras.src.models.functional"
_NUMPY = "keras.src.ops.numpy"
_NN = "keras.src.ops.nn"

# fastdl op name -> (Keras op class, module, number of leading tensor arguments, the op's
# config arguments in fastdl's positional order)
OPS = {
    "add": ("Add", _NUMPY, 2, ()), "subtract": ("Subtract", _NUMPY, 2, ()),
    "multiply": ("Multiply", _NUMPY, 2, ()), "divide": ("Divide", _NUMPY, 2, ()),
    "true_divide": ("TrueDivide", _NUMPY, 2, ()), "matmul": ("Matmul", _NUMPY, 2, ()),
    "power": ("Power", _NUMPY, 2, ()), "maximum": ("Maximum", _NUMPY, 2, ()),
    "minimum": ("Minimum", _NUMPY, 2, ()), "less": ("Less", _NUMPY, 2, ()),
    "less_equal": ("LessEqual", _NUMPY, 2, ()), "greater": ("Greater", _NUMPY, 2, ()),
    "greater_equal": ("GreaterEqual", _NUMPY, 2, ()), "negative": ("Negative", _NUMPY, 1, ()),
    "abs": ("Absolute", _NUMPY, 1, ()), "exp": ("Exp", _NUMPY, 1, ()),
    "log": ("Log", _NUMPY, 1, ()), "sqrt": ("Sqrt", _NUMPY, 1, ()),
    "square": ("Square", _NUMPY, 1, ()), "tanh": ("Tanh", _NUMPY, 1, ()),
    "relu": ("Relu", _NN, 1, ()), "sigmoid": ("Sigmoid", _NN, 1, ()),
    "softmax": ("Softmax", _NN, 1, ("axis",)),
    "mean": ("Mean", _NUMPY, 1, ("axis", "keepdims")),
    "sum": ("Sum", _NUMPY, 1, ("axis", "keepdims")),
    "max": ("Max", _NUMPY, 1, ("axis", "keepdims", "initial")),
    "min": ("Min", _NUMPY, 1, ("axis", "keepdims", "initial")),
    "concatenate": ("Concatenate", _NUMPY, 1, ("axis",)),
    "stack": ("Stack", _NUMPY, 1, ("axis",)),
    "reshape": ("Reshape", _NUMPY, 1, ("newshape",)),
    "transpose": ("Transpose", _NUMPY, 1, ("axes",)),
    "expand_dims": ("ExpandDims", _NUMPY, 1, ("axis",)),
    "squeeze": ("Squeeze", _NUMPY, 1, ("axis",)),
    "getitem": ("GetItem", _NUMPY, 2, ()),
}
# KerasTensor operators (their node's name) -> (fastdl op name, arguments reversed)
_OPERATORS = {"add": ("add", False), "radd": ("add", True), "sub": ("subtract", False),
              "rsub": ("subtract", True), "mul": ("multiply", False),
              "rmul": ("multiply", True), "truediv": ("true_divide", False),
              "rtruediv": ("true_divide", True), "pow": ("power", False),
              "rpow": ("power", True), "matmul": ("matmul", False),
              "rmatmul": ("matmul", True), "neg": ("negative", False), "abs": ("abs", False),
              "lt": ("less", False), "le": ("less_equal", False), "gt": ("greater", False),
              "ge": ("greater_equal", False), "getitem": ("getitem", False)}
_BY_KERAS_CLASS = {keras_cls: name for name, (keras_cls, _, _, _) in OPS.items()}
_BY_KERAS_CLASS["Abs"] = "abs"
_MODEL_CLASSES = ("Sequential", "Functional")


def is_model_entry(entry):
    return isinstance(entry, dict) and entry.get("class_name") in _MODEL_CLASSES and \
        entry.get("registered_name") in (None, entry.get("class_name"))


def is_op_entry(entry):
    module = entry.get("module") if isinstance(entry, dict) else None
    return isinstance(module, str) and module.startswith("keras.src.ops.")


# ---------------------------------------------------------------------------------------------
# Keras's order

def _producer(t):
    """(node, operation) of a KerasTensor: an Input's node is the tensor itself and its
    operation the InputLayer; an op node is its own operation."""
    node = t._node
    if node is None:
        return t, t._input_layer
    return node, (node.layer if node.layer is not None else node)


def _parents(node):
    from fastdl.functional import KerasTensor, Node
    if not isinstance(node, Node):
        return []
    return [t for t in node.inputs() if isinstance(t, KerasTensor)]


def keras_operations(model):
    """The model's operations (Layers, and fastdl Nodes for op calls) in Keras's order."""
    order, index, finished, open_ = [], {}, set(), set()
    ops_by_id = {}

    def enter(t):
        node, op = _producer(t)
        if id(node) in finished:
            return None
        if id(node) in open_:
            raise ValueError(f"the graph of model {model.name!r} has a cycle at {t!r}")
        index.setdefault(id(op), len(index))
        ops_by_id[id(op)] = op
        open_.add(id(node))
        return node, op, iter(_parents(node))

    for out in model._outputs_flat:     # Keras's recursive walk, iteratively (deep graphs)
        frame = enter(out)
        stack = [frame] if frame else []
        while stack:
            node, op, parents = stack[-1]
            for t in parents:
                frame = enter(t)
                if frame is not None:
                    stack.append(frame)
                    break
            else:
                stack.pop()
                open_.discard(id(node))
                finished.add(id(node))
                order.append((node, op))
    node_depth, op_depth = {}, {}
    for node, op in reversed(order):
        depth = max(node_depth.setdefault(id(node), 0), op_depth.get(id(op), 0))
        op_depth[id(op)] = depth
        node_depth[id(node)] = depth
        for t in _parents(node):
            parent = _producer(t)[0]
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in model._inputs_flat:        # inputs no output depends on
        op = t._input_layer
        if id(op) not in op_depth:
            op_depth[id(op)], index[id(op)], ops_by_id[id(op)] = 0, -1, op
    return [ops_by_id[k] for k in sorted(op_depth, key=lambda k: (-op_depth[k], index[k]))]


def keras_layers(model):
    """The model's layers in Keras's order (its InputLayers included, as Keras lists them)."""
    return [op for op in keras_operations(model) if isinstance(op, Layer)]


def _own_nodes(layer, model_nodes):
    """The nodes of ``layer`` inside this model, in call order."""
    return [n for n in layer.__dict__.get("_inbound_nodes", []) if id(n) in model_nodes]


def _node_offset(layer):
    from fastdl.functional import Functional
    return 1 if isinstance(layer, Functional) else 0


# ---------------------------------------------------------------------------------------------
# the description

def _op_call(node):
    """(fastdl op name, tensor args, config) of an op node, or ValueError naming it."""
    from fastdl.functional import _flatten
    name = getattr(node, "name", None)
    args = list(node.args)
    if node.fn is not None and getattr(node, "operator", False):
        op_name, reverse = _OPERATORS.get(name, (None, False))
        if reverse:
            args = args[::-1]
    else:
        op_name = name
    spec = OPS.get(op_name)
    if spec is None:
        raise ValueError(
            f"cannot save the op node {name!r} (inputs {[t for t in _flatten(node.args)]!r:.200}): "
            f"Keras's functional config has no mapping for it in fastdl. Ops that save: "
            f"{sorted(OPS)} and the operators + - * / ** @ unary -, abs, comparisons and [...]; "
            "or wrap the computation in a Layer subclass with get_config")
    keras_cls, module, n_tensors, params = spec
    kwargs = dict(node.kwargs)
    config = {}
    for pname, value in zip(params, args[n_tensors:]):
        config[pname] = value
    if len(args) > n_tensors + len(params):
        raise ValueError(f"cannot save the op node {name!r}: too many positional arguments")
    for key, value in kwargs.items():
        if key not in params:
            raise ValueError(f"cannot save the op node {name!r}: argument {key!r} has no "
                             f"place in Keras's {keras_cls} op")
        config[key] = value
    return keras_cls, module, args[:n_tensors], config


def _serialize(value, history, where):
    from fastdl.functional import KerasTensor
    if isinstance(value, KerasTensor):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(value.shape), "dtype": str(value.dtype),
                           "keras_history": list(history[id(value)])}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_serialize(v, history, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _serialize(v, history, where) for k, v in value.items()}
    if isinstance(value, slice):
        return {"class_name": "__slice__",
                "config": {k: _serialize(getattr(value, k), history, where)
                           for k in ("start", "stop", "step")}}
    if value is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"class_name": "__numpy__", "config": {"value": value.tolist(),
                                                      "dtype": value.dtype.name}}
    raise ValueError(f"{where}: cannot save the call argument {value!r:.100} (type "
                     f"{type(value).__name__}): functional configs hold tensors and plain data")


def _unique(base, taken):
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def functional_config(model, entry_of):
    """The model's description in Keras's schema; ``entry_of(layer)`` describes one layer
    (a nested model included)."""
    from fastdl.functional import _map
    operations = keras_operations(model)
    model_nodes = {id(n) for n in model._nodes}
    taken = {op.name for op in operations if isinstance(op, Layer)}
    names, history, node_index = {}, {}, {}
    for op in operations:
        if isinstance(op, Layer):
            names[id(op)] = op.name
            for k, node in enumerate(_own_nodes(op, model_nodes)):
                node_index[id(node)] = k
        else:
            names[id(op)] = _unique(to_snake_case(_op_call(op)[0]), taken)
            node_index[id(op)] = 0
    for t in model._inputs_flat:
        history[id(t)] = (t._input_layer.name, 0, 0)
    for node in model._nodes:
        op = node.layer if node.layer is not None else node
        for i, t in enumerate(node.outputs):
            history[id(t)] = (names[id(op)], node_index[id(node)], i)

    def node_data(args, kwargs, where):
        return {"args": _serialize(list(args), history, where),
                "kwargs": _serialize(kwargs, history, where)}

    layers = []
    for op in operations:
        if isinstance(op, Layer):
            entry = dict(entry_of(op))
            nodes = [] if isinstance(op, InputLayer) else _own_nodes(op, model_nodes)
            entry["name"] = op.name
            entry["inbound_nodes"] = [node_data(n.args, n.kwargs, f"layer {op.name!r}")
                                      for n in nodes]
        else:
            keras_cls, module, args, config = _op_call(op)
            name = names[id(op)]
            entry = {"module": module, "class_name": keras_cls,
                     "config": dict(_serialize(config, history, name), name=name),
                     "registered_name": keras_cls, "name": name,
                     "inbound_nodes": [node_data(args, {}, f"op {name!r}")]}
        layers.append(entry)
    def reference(t):
        name, node, index = history[id(t)]
        layer = t._node.layer if t._node is not None else None
        return [name, node + (_node_offset(layer) if layer is not None else 0), index]

    config = {"name": model.name, "trainable": bool(model.trainable), "layers": layers,
              "input_layers": _map(reference, model._inputs_struct),
              "output_layers": _map(reference, model._outputs_struct)}
    return {"module": FUNCTIONAL_MODULE, "class_name": "Functional", "config": config,
            "registered_name": "Functional"}


# ---------------------------------------------------------------------------------------------
# the rebuild

class _NotReady(Exception):
    """A node reads a tensor whose node has not run yet (Keras's IndexError)."""


_ARRAY_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "float16", "float32",
                 "float64")


def _history(value, where):
    """``[layer name, node index, tensor index]`` of a serialized KerasTensor, checked."""
    inner = value.get("config")
    history = inner.get("keras_history") if isinstance(inner, dict) else None
    if not (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                    for i in history[1:])):
        raise ModelFileError(f"{where}: invalid keras_history {history!r:.200}")
    return tuple(history)


def _deserialize(value, outputs, layer_names, where, depth=0):
    if depth > 32:
        raise ModelFileError(f"{where}: node arguments nest too deeply")
    if isinstance(value, list):
        return [_deserialize(v, outputs, layer_names, where, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    cls = value.get("class_name")
    inner = value.get("config")
    if cls == "__keras_tensor__":
        name, node, index = _history(value, where)
        if name not in layer_names:
            raise ModelFileError(f"{where}: the node reads layer {name!r:.100}, which is not a "
                                 "layer of the model")
        tensors = outputs.get((name, node))
        if tensors is None:
            raise _NotReady(name)
        if index >= len(tensors):
            raise ModelFileError(f"{where}: layer {name!r} node {node} has {len(tensors)} "
                                 f"outputs, the config reads output {index}")
        return tensors[index]
    if cls == "__slice__" and isinstance(inner, dict):
        parts = [_deserialize(inner.get(k), outputs, layer_names, where, depth + 1)
                 for k in ("start", "stop", "step")]
        if any(p is not None and (isinstance(p, bool) or not isinstance(p, int)) for p in parts):
            raise ModelFileError(f"{where}: invalid slice {inner!r:.100}")
        return slice(*parts)
    if cls == "__ellipsis__":
        return Ellipsis
    if cls == "__numpy__" and isinstance(inner, dict):
        dtype = inner.get("dtype")
        if dtype not in _ARRAY_DTYPES:
            raise ModelFileError(f"{where}: array dtype {dtype!r:.100} is not allowed")
        try:
            return np.array(inner.get("value"), dtype=dtype)
        except (TypeError, ValueError, OverflowError) as e:
            raise ModelFileError(f"{where}: invalid array: {e}") from None
    if isinstance(cls, str) and cls.startswith("__"):
        raise ModelFileError(f"{where}: refusing the serialized object {cls!r:.100} in a node's "
                             "arguments (fastdl never runs code from a file)")
    return {k: _deserialize(v, outputs, layer_names, where, depth + 1) for k, v in value.items()}


def _op_function(entry, where):
    """The fastdl callable of an op entry and its config arguments."""
    from fastdl import ops
    cls = entry.get("class_name")
    op_name = _BY_KERAS_CLASS.get(cls)
    module = OPS[op_name][1] if op_name else None
    if op_name is None or entry.get("module") != module or \
            entry.get("registered_name") not in (None, cls):
        raise ModelFileError(f"{where}: unknown op class {cls!r:.100} (module "
                             f"{entry.get('module')!r:.100}); fastdl reads the ops {sorted(OPS)}")
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: 'config' must be a JSON object")
    params = OPS[op_name][3]
    kwargs = {k: v for k, v in config.items() if k != "name"}
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ModelFileError(f"{where}: op {cls} has no argument(s) {unknown}")
    if op_name == "getitem":
        def fn(x, key):
            return x[tuple(key) if isinstance(key, list) else key]
        return fn, kwargs
    return getattr(ops, op_name), kwargs


def _references(value, where, depth=0):
    """The (layer name, node index) pairs a node's arguments read."""
    if depth > 32:
        raise ModelFileError(f"{where}: node arguments nest too deeply")
    if isinstance(value, list):
        return {r for v in value for r in _references(v, where, depth + 1)}
    if not isinstance(value, dict):
        return set()
    if value.get("class_name") == "__keras_tensor__":
        return {_history(value, where)[:2]}
    return {r for v in value.values() for r in _references(v, where, depth + 1)}


def _map_history(structure, outputs, layer_names, offsets, where):
    """The tensors ``input_layers``/``output_layers`` name (nested functional models' node
    indices there count from 1)."""
    if isinstance(structure, list) and len(structure) == 3 and isinstance(structure[0], str):
        name, node, index = structure
        if isinstance(node, int) and not isinstance(node, bool):
            node -= offsets.get(name, 0)
        value = {"class_name": "__keras_tensor__",
                 "config": {"keras_history": [name, node, index]}}
        try:
            return _deserialize(value, outputs, layer_names, where)
        except _NotReady:
            raise ModelFileError(f"{where}: {structure!r:.100} is never computed") from None
    if isinstance(structure, dict):
        return {k: _map_history(v, outputs, layer_names, offsets, where)
                for k, v in structure.items()}
    if isinstance(structure, list) and structure:
        return [_map_history(v, outputs, layer_names, offsets, where) for v in structure]
    raise ModelFileError(f"{where}: invalid tensor reference {structure!r:.100}")


_CALL_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError,
                NotImplementedError, OverflowError)


def build_functional(description, make_layer, count):
    """A Functional model from its description. ``make_layer(entry, where)`` builds one layer
    entry (nested models included); ``count(n)`` charges ``n`` layers against MAX_LAYERS."""
    from fastdl.functional import Functional, KerasTensor, _flatten
    config = description.get("config")
    if not isinstance(config, dict):
        raise ModelFileError("the Functional description has no 'config' object")
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ModelFileError("the Functional config has no 'layers' list")
    count(len(entries))
    built, pending, outputs, order = {}, {}, {}, []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ModelFileError(f"layer {i}: a layer must be a JSON object")
        name = entry.get("name")
        where = f"layer {i} ({entry.get('class_name')!r:.100} {name!r:.100})"
        if not isinstance(name, str) or not name:
            raise ModelFileError(f"{where}: missing or invalid 'name'")
        if name in built:
            raise ModelFileError(f"{where}: the name {name!r} is used twice")
        nodes = entry.get("inbound_nodes", [])
        if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
            raise ModelFileError(f"{where}: 'inbound_nodes' must be a list of objects "
                                 "{\"args\": [...], \"kwargs\": {...}}")
        if is_op_entry(entry):
            obj = _op_function(entry, where)
            if len(nodes) != 1:
                raise ModelFileError(f"{where}: an op has exactly one node, found {len(nodes)}")
        else:
            obj = make_layer(entry, where)
            if isinstance(obj, InputLayer):
                if nodes:
                    raise ModelFileError(f"{where}: an InputLayer has no inbound nodes")
                outputs[(name, 0)] = [KerasTensor(obj._declared_batch_shape,
                                                  obj.input_dtype or obj.dtype, name=obj.name,
                                                  input_layer=obj)]
        built[name] = obj
        pending[name] = list(nodes)
        order.append((name, where, _node_offset(obj) if isinstance(obj, Layer) else 0))
    names = set(built)
    # Kahn's algorithm over the nodes (layer, k): each waits for the tensors it reads and for
    # the layer's call k-1 (a layer's calls keep their order); linear in the nodes, where
    # Keras's repeated sweeps are quadratic on a config listed outputs first.
    waiting, readers, ready = {}, {}, []
    for name, where, _ in order:
        for k, data in enumerate(pending[name]):
            needs = set()
            for ref in _references(data, f"{where} node {k}"):
                if ref[0] not in names:
                    raise ModelFileError(f"{where} node {k}: the node reads layer "
                                         f"{ref[0]!r:.100}, which is not a layer of the model")
                if ref not in outputs:
                    needs.add(ref)
            if k:
                needs.add((name, k - 1))
            waiting[(name, k)] = len(needs)
            for ref in needs:
                readers.setdefault(ref, []).append((name, k))
            if not needs:
                ready.append((name, k))
    ready.reverse()
    done = 0
    while ready:
        name, k = ready.pop()
        node_where = f"layer {name!r} node {k}"
        data = pending[name][k]
        args = _deserialize(data.get("args", []), outputs, names, node_where)
        kwargs = _deserialize(data.get("kwargs", {}), outputs, names, node_where)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ModelFileError(f"{node_where}: 'args' must be a list and 'kwargs' an object")
        obj = built[name]
        if not any(isinstance(t, KerasTensor) for t in _flatten([args, kwargs])):
            raise ModelFileError(f"{node_where}: the node reads no tensor")
        try:
            if isinstance(obj, Layer):
                kwargs = {key: v for key, v in kwargs.items()
                          if not (key in ("mask", "training") and v is None)}
                out = obj(*args, **kwargs)
            else:
                fn, params = obj
                out = fn(*args, **params)
        except ModelFileError:
            raise
        except _CALL_ERRORS as e:
            raise ModelFileError(f"{node_where}: the call fails: {e}") from e
        outputs[(name, k)] = _flatten(out)
        done += 1
        for reader in readers.pop((name, k), ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    if done != len(waiting):
        stuck = sorted({name for (name, k), n in waiting.items() if n > 0})
        raise ModelFileError(f"the graph cannot be rebuilt: the nodes of layers "
                             f"{stuck[:10]} read tensors that are never computed (a cycle, "
                             "or a node index the config does not have)")
    offsets = {name: offset for name, _, offset in order}
    inputs = _map_history(config.get("input_layers"), outputs, names, offsets, "input_layers")
    outs = _map_history(config.get("output_layers"), outputs, names, offsets, "output_layers")
    trainable = config.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ModelFileError(f"model 'trainable' must be true or false, received "
                             f"{trainable!r:.100}")
    try:
        return Functional(inputs, outs, name=config.get("name"), trainable=trainable)
    except _CALL_ERRORS as e:
        raise ModelFileError(f"invalid Functional config: {e}") from e
