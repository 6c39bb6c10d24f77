"""``keras.utils.model_to_dot`` and ``plot_model``: a model's layer graph in Graphviz's language.

The dot text is built here, so ``model_to_dot`` and ``plot_model(to_file="model.dot")`` need
nothing installed; an image (``.png``, ``.svg``, ``.pdf``, ...) is rendered by Graphviz's ``dot``
program, which must be on ``PATH`` (pydot is not needed). Each layer is one box, labelled as
Keras labels it (name and class, optionally the activation, input/output shapes, dtype and
trainability); an arrow goes from each layer to each layer that reads its output. With
``expand_nested`` a nested model is drawn as a dashed cluster of its own layers.
"""
import os
import shutil
import subprocess

__all__ = ["DotGraph", "model_to_dot", "plot_model"]


class DotGraph:
    """Graphviz source text, with pydot's method names: ``to_string``, ``create``, ``write``."""

    def __init__(self, text):
        self.text = text

    def to_string(self):
        return self.text

    __str__ = to_string

    def create(self, prog="dot", format="png"):
        """The rendered bytes in ``format`` (``"dot"``/``"raw"``: the source itself)."""
        if format in ("dot", "raw", "gv"):
            return self.text.encode()
        exe = shutil.which(prog)
        if exe is None:
            raise ImportError(f"You must install graphviz (its `{prog}` program must be on PATH) "
                              f"to render a {format!r} image; the dot text needs nothing: save "
                              "it as a .dot file or use model_to_dot(model).to_string()")
        done = subprocess.run([exe, f"-T{format}"], input=self.text.encode(),
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"graphviz `{prog} -T{format}` failed: "
                               f"{done.stderr.decode(errors='replace').strip()}")
        return done.stdout

    def write(self, path, format="raw"):
        data = self.create(format=format)
        with open(path, "wb") as f:
            f.write(data)


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")


def _shape_text(shape):
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return str(tuple(shape))


def _edges_and_shapes(model):
    """(edges as (source layer, target layer) pairs, {id(layer): (input shapes, output shape)})."""
    from fastdl.layers.base import InputLayer
    nodes = getattr(model, "_nodes", None)
    layers = list(model._layers)
    outputs = dict(zip((id(l) for l in layers), model._summary_shapes()))
    edges, inputs = [], {}
    if nodes:   # a functional graph: follow every call's input tensors to their producers
        op_layers = {}
        for node in nodes:
            target = node.layer if node.layer is not None else op_layers.setdefault(
                id(node), _OpNode(node))
            shapes = []
            for t in node.inputs():
                source = t._input_layer if t._node is None else (
                    t._node.layer if t._node.layer is not None else op_layers.setdefault(
                        id(t._node), _OpNode(t._node)))
                if source is not None and (source, target) not in edges:
                    edges.append((source, target))
                shapes.append(t.shape)
            inputs.setdefault(id(target), shapes[0] if len(shapes) == 1 else shapes)
            if node.layer is None:
                outputs[id(target)] = node.outputs[0].shape if len(node.outputs) == 1 else None
        layers += [op for op in op_layers.values()]
    else:       # Sequential: a chain
        chain = [l for l in layers]
        for a, b in zip(chain, chain[1:]):
            edges.append((a, b))
            inputs[id(b)] = outputs.get(id(a))
        first = next((l for l in chain if not isinstance(l, InputLayer)), None)
        if first is not None and first.built and first._build_input_shape is not None:
            inputs.setdefault(id(first), (None,) + tuple(first._build_input_shape[1:]))
    return layers, edges, {key: (inputs.get(key), outputs.get(key)) for key in
                           {id(l) for l in layers}}


class _OpNode:
    """An operator node of a functional graph (``x + y``, ``ops.mean(x)``) drawn as a box."""

    def __init__(self, node):
        name = getattr(node.fn, "__name__", None) or type(node.fn).__name__
        self.name = name
        self.op_name = name
        self.trainable = False
        self.weights = []


def _label(layer, shapes, options):
    from fastdl.layers.base import InputLayer
    cls = "Operation" if isinstance(layer, _OpNode) else type(layer).__name__
    lines = [f"{layer.name} ({cls})" if options["show_layer_names"] else cls]
    activation = getattr(layer, "activation", None)
    if options["show_layer_activations"] and activation is not None:
        name = getattr(activation, "name", None) or getattr(activation, "__name__", activation)
        lines.append(f"Activation: {name}")
    if options["show_shapes"]:
        input_shape, output_shape = shapes
        if not isinstance(layer, InputLayer):
            lines.append(f"Input shape: {_shape_text(input_shape)}")
        lines.append(f"Output shape: {_shape_text(output_shape)}")
    if options["show_dtype"]:
        lines.append(f"Output dtype: {getattr(layer, 'dtype', None) or '?'}")
    if options["show_trainable"]:
        lines.append(f"Trainable: {'Y' if layer.trainable else 'N'}" if layer.weights
                     else "Trainable: -")
    return "\n".join(lines)


def _graph_lines(model, options, prefix, indent):
    """The dot statements for ``model``'s layers; returns (lines, entry ids, exit ids) where
    the entries are the ids an arrow into this model should reach and the exits where arrows
    out of it start."""
    layers, edges, shapes = _edges_and_shapes(model)
    lines, entry, exit_ = [], {}, {}
    for i, layer in enumerate(layers):
        node_id = f"{prefix}{i}"
        inner = getattr(layer, "_layers", None)
        if options["expand_nested"] and inner and hasattr(layer, "_summary_shapes"):
            sub, sub_entry, sub_exit = _graph_lines(layer, options, node_id + "_", indent + "  ")
            lines.append(f"{indent}subgraph {_quote('cluster_' + node_id)} {{")
            lines.append(f"{indent}  style=dashed; label={_quote(layer.name)}; labeljust=l;")
            lines += sub
            lines.append(f"{indent}}}")
            entry[id(layer)], exit_[id(layer)] = sub_entry, sub_exit
        else:
            lines.append(f"{indent}{_quote(node_id)} "
                         f"[label={_quote(_label(layer, shapes[id(layer)], options))}];")
            entry[id(layer)] = exit_[id(layer)] = [node_id]
    targets = {id(b) for _, b in edges}
    sources = {id(a) for a, _ in edges}
    for a, b in edges:
        for s in exit_[id(a)]:
            for t in entry[id(b)]:
                lines.append(f"{indent}{_quote(s)} -> {_quote(t)};")
    firsts = [n for l in layers if id(l) not in targets for n in entry[id(l)]]
    lasts = [n for l in layers if id(l) not in sources for n in exit_[id(l)]]
    return lines, firsts, lasts


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True,
                 rankdir="TB", expand_nested=False, dpi=200, subgraph=False,
                 show_layer_activations=False, show_trainable=False, splines="ortho",
                 **kwargs):
    """The model's layer graph as a :class:`DotGraph` (Keras returns a ``pydot.Dot``; this
    one has the same ``to_string``/``create``/``write`` methods)."""
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    if not hasattr(model, "_layers") or not hasattr(model, "_summary_shapes"):
        raise TypeError(f"model_to_dot expects a fastdl model. Received: {type(model).__name__}")
    if not model.built:
        raise ValueError("This model has not yet been built. Build the model first by calling "
                         "`build()` or by calling the model on a batch of data.")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"rankdir must be 'TB', 'LR', 'BT' or 'RL'. Received: {rankdir!r}")
    options = dict(show_shapes=show_shapes, show_dtype=show_dtype,
                   show_layer_names=show_layer_names, expand_nested=expand_nested,
                   show_layer_activations=show_layer_activations,
                   show_trainable=show_trainable)
    for name, value in options.items():
        _check_bool(name, value)
    _check_bool("subgraph", subgraph)
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or dpi <= 0:
        raise ValueError(f"dpi must be a positive number. Received: dpi={dpi!r}")
    body, _, _ = _graph_lines(model, options, "n", "  ")
    if subgraph:
        head = [f"subgraph {_quote('cluster_' + model.name)} {{",
                f"  style=dashed; label={_quote(model.name)}; labeljust=l;"]
    else:
        head = [f"digraph {_quote(model.name)} {{",
                f"  graph [rankdir={rankdir}, concentrate=true, dpi={dpi}, "
                f"splines={_quote(splines)}];"]
    head.append('  node [shape=box, fontname="Helvetica"];')
    return DotGraph("\n".join(head + body + ["}"]) + "\n")


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=False, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False, splines="ortho", **kwargs):
    """Draws the model's layer graph to ``to_file``: ``.dot``/``.gv`` writes the Graphviz source
    (nothing needed), any other extension (default ``png``) is rendered by Graphviz's ``dot``.
    Returns an ``IPython.display.Image`` of it when IPython is installed (not for pdf)."""
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                       show_layer_names=show_layer_names, rankdir=rankdir,
                       expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations,
                       show_trainable=show_trainable, splines=splines, **kwargs)
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:] or "png"
    data = dot.create(format="raw" if extension in ("dot", "gv") else extension)
    with open(to_file, "wb") as f:
        f.write(data)
    if extension not in ("pdf", "dot", "gv"):
        try:
            from IPython import display
        except ImportError:
            return None
        return display.Image(filename=to_file)
    return None
