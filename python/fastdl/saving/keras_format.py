"""Keras 3 interchange: ``.keras`` model files and ``.weights.h5`` weight files.

A ``.keras`` file is a zip of ``metadata.json`` (``{"keras_version", "date_saved"}``),
``config.json`` (the model in Keras's schema, with ``compile_config``) and ``model.weights.h5``;
fastdl adds ``fastdl_privacy.json`` for a model made private (``fastdl.privacy``: its DP-SGD
settings and steps taken, so that it loads private with its accounting; Keras ignores it).
The HDF5 layout is Keras 3.15's (``keras/src/saving/saving_lib.py``): each layer of a
Sequential or functional model (InputLayers included, in Keras's operation order:
``graph.keras_layers``) under ``layers/<snake_case(class)>[_k]`` (named by class and position,
not by the layer's name), its own variables in ``vars/0, vars/1, ...`` (trainable first, then
non-trainable); recurrent layers keep theirs in ``cell/vars`` and ``Bidirectional`` in
``forward_layer/cell/vars`` and ``backward_layer/cell/vars``, ``TimeDistributed`` its layer's in
``layer/...``; a nested Sequential or functional
model its layers under ``<path>/layers/``; a subclassed model its layers under their attribute
names (sorted, private ones last; lists and dicts as ``<attr>/<snake class>[_k]``; the layers
no attribute reached first under ``layers/``); the optimizer's in
``optimizer/vars/<i>`` (iterations, learning rate, then per variable its slots); the model's own
(empty) ``vars`` group at the root. A ``.weights.h5`` file is that HDF5 file alone.

Configs are translated both ways: Keras's dtype policies <-> fastdl's ``"float32"``, the input
shape <-> an ``InputLayer``, Keras options fastdl lacks are dropped when they are at their
neutral value (``quantization_config: null``, ``unroll``, ``stateful: false``, ...) and refused
with a message otherwise. Only fastdl's classes and those registered or passed in
``custom_objects`` load: ``Lambda`` layers, unknown classes and modules are refused by name, and
nothing a file names is ever imported.

Loading bounds memory by what the described model needs: ``config.json`` is at most
``MAX_CONFIG_BYTES`` and is read first; the model is built with at most as many weight
elements as the weights member could store uncompressed (2 bytes each, float16); the member
itself is decompressed only if its size is within ``weights_bytes_limit(model)``. In the HDF5
file, soft/external links, objects linked more than once, more than ``MAX_HDF5_OBJECTS``
objects, external and virtual datasets, and datasets whose storage was never (fully) written
are refused; every dataset's shape is checked against the model's weight before it is read, so
compressed data decompresses to exactly the model's size.

h5py is imported on first use; without it an ImportError says ``pip install "fastdl[keras]"``.
"""
import contextlib
import datetime
import io
import os
import struct
import warnings
import zipfile
import zlib

import numpy as np

from fastdl.layers.base import Layer, to_snake_case
from fastdl.saving import common
from fastdl.saving.common import ModelFileError

KERAS_VERSION = "3.15.1"        # the Keras release whose file layout this module writes
CONFIG_NAME = "config.json"
METADATA_NAME = "metadata.json"
PRIVACY_NAME = "fastdl_privacy.json"   # fastdl's own member: Keras reads only the ones it knows
WEIGHTS_NAME = "model.weights.h5"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_RNN_CELLS = {"SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell",
              "ConvLSTM1D": "conv_lstm_cell", "ConvLSTM2D": "conv_lstm_cell"}


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError('Reading and writing Keras files (.keras, .weights.h5) needs h5py: '
                          'pip install "fastdl[keras]"') from e
    return h5py


# ---------------------------------------------------------------------------------------------
# config translation

def _policy(name):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def _is_layer_entry(value):
    return (isinstance(value, dict) and isinstance(value.get("class_name"), str)
            and "config" in value and value.get("module") in ("keras.layers", "keras"))


def _to_keras_entry(entry):
    """A fastdl layer entry (``common.layer_entry``) in the form Keras writes; a nested model's
    description through :func:`_to_keras_model`."""
    from fastdl.saving import graph
    if graph.is_model_entry(entry):
        return _to_keras_model(entry)
    entry = dict(entry)
    config = dict(entry["config"])
    if entry["class_name"] != "InputLayer" and isinstance(config.get("dtype"), str):
        config["dtype"] = _policy(config["dtype"])
    config.pop("batch_input_shape", None)
    for key, value in list(config.items()):
        if _is_layer_entry(value):
            config[key] = _to_keras_entry(value)
        elif isinstance(value, list) and value and all(map(_is_layer_entry, value)):
            config[key] = [_to_keras_entry(v) for v in value]
    entry["config"] = config
    return entry


def _to_keras_model(description):
    """A model description (``common.model_config``) as Keras writes it: layer entries
    translated, a Sequential given its InputLayer and dtype policy."""
    description = dict(description)
    config = dict(description["config"])
    entries = [_to_keras_entry(e) for e in config["layers"]]
    if description["class_name"] == "Sequential":
        shape = config.get("build_input_shape")
        if shape is not None and not (entries and entries[0]["class_name"] == "InputLayer"):
            taken = {e["config"].get("name") for e in entries}
            name, k = "input_layer", 0
            while name in taken:
                k += 1
                name = f"input_layer_{k}"
            entries.insert(0, {"module": "keras.layers", "class_name": "InputLayer",
                               "config": {"batch_shape": common.plain(shape),
                                          "dtype": "float32", "sparse": False, "ragged": False,
                                          "name": name},
                               "registered_name": None})
        config = {"name": config["name"], "trainable": config["trainable"],
                  "dtype": _policy("float32"), **{k: v for k, v in config.items()
                                                 if k not in ("name", "trainable")}}
    config["layers"] = entries
    description["config"] = config
    return description


def keras_description(model):
    """The model's ``config.json`` content (without ``compile_config``)."""
    return _to_keras_entry(common.model_config(model))


def _neutral(key, value, config):
    """True when dropping a Keras option fastdl does not have changes nothing."""
    if key in ("unroll", "shared_object_id"):
        return True
    if key == "renorm_momentum":
        return not config.get("renorm")
    if key.endswith("_regularizer") or key.endswith("_constraint"):
        return value is None
    if key in ("quantization_config", "lora_rank", "lora_alpha", "renorm_clipping", "seed",
               "input_tensor"):
        return value is None
    if key in ("ragged", "sparse"):
        return value in (False, None)
    if key in ("optional", "stateful", "zero_output_for_mask", "synchronized", "renorm",
               "rms_scaling"):
        return value is False
    if key in ("dropout", "recurrent_dropout"):
        return value == 0 and not isinstance(value, bool)
    return False


def _clean_object(value):
    """Drop Keras's bookkeeping from nested serialized objects (initializers, ...)."""
    if isinstance(value, dict):
        value = {k: _clean_object(v) for k, v in value.items() if k != "shared_object_id"}
        module = value.get("module")
        inner = value.get("config")
        if isinstance(module, str) and module.startswith("keras.initializers") and \
                isinstance(inner, dict):
            value["config"] = {k: v for k, v in inner.items()
                               if not (k in ("input_axes", "output_axes") and v is None)}
        return value
    if isinstance(value, list):
        return [_clean_object(v) for v in value]
    return value


def from_keras_entry(entry, cls, custom_objects, where):
    """Translate one Keras layer entry into fastdl's (the class is already resolved)."""
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: 'config' must be a JSON object")
    name = config.get("name")
    where = f"{where} ({entry['class_name']} {name!r:.100})"
    accepted = common.accepted_arguments(cls)
    out = {}
    for key, value in config.items():
        if key == "dtype" and isinstance(value, dict):
            inner = value.get("config")
            policy = inner.get("name") if isinstance(inner, dict) else None
            if not isinstance(policy, str):
                raise ModelFileError(f"{where}: cannot read the dtype policy {value!r:.200}")
            value = policy
        if key not in accepted:
            if _neutral(key, value, config):
                continue
            raise ModelFileError(f"{where}: the Keras option {key}={value!r:.100} is not "
                                 "supported by fastdl")
        if _is_layer_entry(value):
            sub_cls = common.resolve_layer_class(value, custom_objects, f"{where}.{key}")
            value = from_keras_entry(value, sub_cls, custom_objects, f"{where}.{key}")
        elif isinstance(value, list) and value and all(map(_is_layer_entry, value)):
            value = [from_keras_entry(v, common.resolve_layer_class(
                v, custom_objects, f"{where}.{key}[{i}]"), custom_objects, f"{where}.{key}[{i}]")
                for i, v in enumerate(value)]     # StackedRNNCells(cells=[...])
        out[key] = _clean_object(value)
    entry = dict(entry)
    entry["config"] = out
    return entry


# ---------------------------------------------------------------------------------------------
# HDF5 layout

def _sub_layer(layer, attr, index):
    sub = getattr(layer, attr, None)
    if sub is None:
        subs = getattr(layer, "_sublayers", [])
        sub = subs[index] if len(subs) > index else None
    return sub


def _layer_groups(layer, path):
    """``[(group path, [weights], name)]`` of one layer (not a model): where Keras keeps its
    variables, in the order of ``layer.weights``."""
    cls = type(layer).__name__
    if cls in _RNN_CELLS:
        groups = [(path + "/vars", [], layer.name), (path + "/cell/vars", layer.weights,
                                                     _RNN_CELLS[cls])]
    elif cls == "Bidirectional":
        groups = [(path + "/vars", [], layer.name)]
        for index, attr in enumerate(("forward_layer", "backward_layer")):
            sub = _sub_layer(layer, attr, index)
            if sub is None:
                raise ValueError(f"Bidirectional layer {layer.name!r} has no {attr}")
            groups += _layer_groups(sub, f"{path}/{attr}")
    elif cls == "MultiHeadAttention":   # Keras's EinsumDense sublayers, then two empty ones
        ws, per = layer.weights, 2 if layer.use_bias else 1
        groups = [(path + "/vars", [], layer.name)]
        for i, (attr, name) in enumerate((("query_dense", "query"), ("key_dense", "key"),
                                          ("value_dense", "value"),
                                          ("output_dense", "attention_output"))):
            groups.append((f"{path}/{attr}/vars", ws[i * per:(i + 1) * per], name))
        groups += [(path + "/_dropout_layer/vars", [], "dropout"),
                   (path + "/_softmax/vars", [], "softmax")]
    elif cls == "TimeDistributed":
        groups = [(path + "/vars", [], layer.name)] + _layer_groups(layer.layer, path + "/layer")
    elif cls == "RNN":
        groups = [(path + "/vars", [], layer.name)] + _layer_groups(layer.cell, path + "/cell")
    elif cls == "Pipeline":          # its layers as a list attribute, named by class
        groups = [(path + "/vars", [], layer.name)]
        used = {}
        for sub in layer.layers:
            name = common.unique_name(to_snake_case(type(sub).__name__), used)
            groups += _layer_groups(sub, f"{path}/layers/{name}")
    elif cls == "StackedRNNCells":   # a list of layers: named by class, as the model's
        groups = [(path + "/vars", [], layer.name)]
        used = {}
        for cell in layer.cells:
            name = common.unique_name(to_snake_case(type(cell).__name__), used)
            groups += _layer_groups(cell, f"{path}/cells/{name}")
    else:
        groups = [(path + "/vars", layer.weights, layer.name)]
    flat = [w for _, ws, _ in groups for w in ws]
    weights = layer.weights
    if len(flat) != len(weights) or any(a is not b for a, b in zip(flat, weights)):
        raise ValueError(f"layer {layer.name!r} ({cls}): its weights do not follow Keras's "
                         "variable layout")
    return groups


def _join(path, name):
    return f"{path}/{name}" if path else name


# attributes of fastdl's Model that hold its own bookkeeping, never the user's layers
_INTERNAL = frozenset(("_layer_list", "_sublayers", "_inbound_nodes", "optimizer", "loss",
                       "compiled_metrics"))


def _name_key(name):
    return "~" + name if name.startswith("_") else name     # Keras visits private ones last


def _attribute_groups(model, path, visited):
    """A subclassed model's groups as Keras's saving walk finds them: its attributes in
    sorted order (private ones last), ``layers`` (its tracked layers) among them; a layer
    reached twice is written at its first path; list, tuple and dict attributes hold their
    layers as ``<snake class>[_k]`` (nested containers ``container[_k]``)."""
    attrs = {k: v for k, v in vars(model).items() if k not in _INTERNAL}
    attrs["layers"] = model.layers
    out = []

    def visit(value, where, depth=0):
        if isinstance(value, Layer):
            if id(value) not in visited:
                visited.add(id(value))
                out.extend(_groups(value, where, visited))
        elif isinstance(value, (list, tuple, dict)) and depth < 8 and id(value) not in visited:
            visited.add(id(value))
            used = {}
            for item in (value.values() if isinstance(value, dict) else value):
                if isinstance(item, Layer):
                    visit(item, _join(where, common.unique_name(
                        to_snake_case(type(item).__name__), used)), depth + 1)
                elif isinstance(item, (list, tuple, dict)):
                    visit(item, _join(where, common.unique_name("container", used)), depth + 1)

    for attr in sorted(attrs, key=_name_key):
        visit(attrs[attr], _join(path, attr))
    return out


def _groups(layer, path, visited):
    """``[(group path, [weights], name, owner)]``: every variable group of ``layer`` at
    ``path``; ``owner`` is the layer (never a model) whose ``weights`` the group's are."""
    from fastdl.functional import Functional
    from fastdl.models import Model, Sequential
    if not isinstance(layer, Model):
        return [(g, ws, name, layer) for g, ws, name in _layer_groups(layer, path)]
    out = [(_join(path, "vars"), [], layer.name, None)]
    visited.add(id(layer))
    if isinstance(layer, (Sequential, Functional)):
        for sub_path, sub in common.layer_paths(layer):
            out += _groups(sub, _join(path, sub_path), visited)
        return out
    return out + _attribute_groups(layer, path, visited)


def model_groups(model):
    """Every variable group of ``model`` in Keras's weights file (the root ``vars`` first)."""
    return _groups(model, "", set())


def _model_plan(model):
    """``[(layer, [(dataset path, weight)])]`` for every (leaf) layer of the model."""
    plan, index = [], {}
    for gpath, ws, _, owner in model_groups(model):
        if owner is None:
            continue
        if id(owner) not in index:
            index[id(owner)] = len(plan)
            plan.append((owner, []))
        plan[index[id(owner)]][1].extend((f"{gpath}/{i}", w) for i, w in enumerate(ws))
    return plan


def _keras_variable_order(model):
    """The trainable variables in the order Keras's optimizer keeps them: its layers' order
    (a subclassed model's: the order its attributes were set), nested models in place."""
    from fastdl.models import Model
    out = []
    for layer in common.saving_layers(model):
        if isinstance(layer, Model):
            out += _keras_variable_order(layer)
        elif layer.trainable:
            out += layer.trainable_weights
    return out


def _write_h5(fileobj, model, optimizer_state):
    h5py = _h5py()
    with h5py.File(fileobj, "w") as h5:
        h5.create_group("layers")
        for gpath, ws, name, _ in model_groups(model):
            group = h5.require_group(gpath)
            group.attrs["name"] = name
            for i, w in enumerate(ws):
                group.create_dataset(str(i), data=np.asarray(w, order="C"))
        if optimizer_state is not None:
            group = h5.require_group("optimizer/vars")
            group.attrs["name"] = model.optimizer.name
            for i, a in enumerate(optimizer_state):
                group.create_dataset(str(i), data=np.asarray(a))
            if hasattr(model.optimizer, "inner_optimizer"):
                # Keras's LossScaleOptimizer writes its inner optimizer's variables, the tail of
                # its own, once more (and warns on loading a file without them)
                group = h5.require_group("optimizer/inner_optimizer/vars")
                group.attrs["name"] = model.optimizer.inner_optimizer.name
                for i, a in enumerate(model.optimizer._inner_part(optimizer_state)):
                    group.create_dataset(str(i), data=np.asarray(a))


def _collect(h5py, group, prefix, out, seen):
    """Every dataset under ``group`` by path. Each object must have exactly one hard link, so
    the walk visits each once (a file of groups linked twice to the next would otherwise have
    2**depth paths), and there are at most ``MAX_HDF5_OBJECTS``."""
    if len(seen) + len(group) > common.MAX_HDF5_OBJECTS:
        raise ModelFileError(f"the HDF5 file holds more than MAX_HDF5_OBJECTS = "
                             f"{common.MAX_HDF5_OBJECTS} objects")
    for key in group.keys():
        path = prefix + key
        link = group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise ModelFileError(f"the HDF5 file contains a {type(link).__name__} at "
                                 f"{path!r:.200}; links are not allowed")
        obj = group[key]
        info = h5py.h5o.get_info(obj.id)
        address = getattr(info, "token", None) or info.addr
        if info.rc != 1 or address in seen:
            raise ModelFileError(f"the HDF5 object at {path!r:.200} is linked {info.rc} times; "
                                 "Keras weights files link each object once")
        seen.add(address)
        if isinstance(obj, h5py.Group):
            _collect(h5py, obj, path + "/", out, seen)
        elif isinstance(obj, h5py.Dataset):
            out[path] = obj
    return out


def _dataset_size(ds):
    shape = ds.shape
    if shape is None:
        return 0
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _read(ds, shape, kinds, path):
    if ds.shape is None or tuple(ds.shape) != tuple(shape):
        raise ModelFileError(f"dataset {path!r}: expected shape {tuple(shape)}, the file holds "
                             f"{ds.shape}")
    dt = ds.dtype
    if dt.kind not in kinds or dt.fields is not None or dt.subdtype is not None or \
            dt.itemsize > 8:
        raise ModelFileError(f"dataset {path!r}: dtype {dt} is not allowed")
    if ds.external:
        raise ModelFileError(f"dataset {path!r}: external storage is not allowed")
    if ds.is_virtual:
        raise ModelFileError(f"dataset {path!r}: virtual datasets are not allowed")
    _check_storage(ds, path)
    return np.asarray(ds[()])


def _check_storage(ds, path):
    """Refuse a dataset whose data was never (fully) written: reading it would give the fill
    value, so a tiny file could stand for any number of weights. Unfiltered data must occupy
    its declared bytes; filtered (compressed) data must have every chunk."""
    declared = _dataset_size(ds) * ds.dtype.itemsize
    if declared == 0:
        return
    if ds.id.get_create_plist().get_nfilters() == 0:
        stored = ds.id.get_storage_size()
        if stored < declared:
            raise ModelFileError(f"dataset {path!r}: only {stored} of its {declared} bytes are "
                                 "stored (the data was never written)")
        return
    chunks = ds.chunks
    expected = 1
    for d, c in zip(ds.shape, chunks or ()):
        expected *= -(-int(d) // int(c))
    if chunks is None or ds.id.get_num_chunks() != expected:
        raise ModelFileError(f"dataset {path!r}: compressed data with chunks missing (the data "
                             "was never written)")


_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, OverflowError,
              IndexError, AttributeError, MemoryError, SystemError)


def _h5_guarded(method):
    """Errors of h5py/libhdf5 on a damaged file become ModelFileError; every one names the
    file."""
    def wrapper(self, *args):
        try:
            return method(self, *args)
        except ModelFileError as e:
            where = getattr(self, "where", None)
            if where is None or str(e).startswith(where):
                raise
            raise ModelFileError(f"{where}: {e}") from e.__cause__
        except _H5_ERRORS as e:
            raise ModelFileError(f"{getattr(self, 'where', 'the file')}: damaged HDF5 weights: "
                                 f"{type(e).__name__}: "
                                 f"{e}") from None
    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class _H5Weights:
    """The datasets of an open Keras weights file, checked and read on demand."""

    @_h5_guarded
    def __init__(self, h5, where):
        h5py = _h5py()
        self.where = where
        root = h5py.h5o.get_info(h5.id)
        self.datasets = _collect(h5py, h5, "", {}, {getattr(root, "token", None) or root.addr})
        self.layer_paths = {p for p in self.datasets if not p.startswith("optimizer/")}
        # Keras's LossScaleOptimizer writes its inner optimizer's variables twice: within its
        # own under optimizer/vars, and again under optimizer/inner_optimizer/vars (ignored)
        self.optimizer_paths = {p for p in self.datasets if p.startswith("optimizer/")
                                and not p.startswith("optimizer/inner_optimizer/")}

    @_h5_guarded
    def match(self, model):
        """Read every weight of ``model`` (checked); nothing is assigned here."""
        try:
            plan = _model_plan(model)
        except ValueError as e:
            raise ModelFileError(f"{self.where}: {e}") from e
        expected = {p for _, items in plan for p, _ in items}
        missing = sorted(expected - self.layer_paths)
        extra = sorted(self.layer_paths - expected)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing[:10]}")
            if extra:
                parts.append(f"unexpected {extra[:10]}")
            raise ModelFileError(f"{self.where}: the weights do not match model "
                                 f"{model.name!r}: " + "; ".join(parts))
        out = []
        for layer, items in plan:
            # integer weights (Normalization's count) read integers, every other one floats
            arrays = [_read(self.datasets[p], w.shape, "f" if w.dtype.kind == "f" else "iu",
                            p).astype(w.dtype, copy=False) for p, w in items]
            out.append((layer, arrays))
        return out

    @_h5_guarded
    def optimizer_arrays(self, budget):
        names = sorted(self.optimizer_paths)
        n = len(names)
        expected = {f"optimizer/vars/{i}" for i in range(n)}
        if set(names) != expected:
            raise ModelFileError(f"{self.where}: unexpected optimizer datasets "
                                 f"{sorted(set(names) - expected)[:10]}")
        arrays, total = [], 0
        for i in range(n):
            path = f"optimizer/vars/{i}"
            ds = self.datasets[path]
            size = _dataset_size(ds)
            total += size
            if size > budget + 1 or total > 4 * budget + 16:
                raise ModelFileError(f"{self.where}: optimizer dataset {path!r} is larger than "
                                     "the model's weights")
            shape = ds.shape if ds.shape is not None else ()
            arrays.append(_read(ds, shape, "iuf", path))
        return arrays


def _assign(pairs):
    for layer, arrays in pairs:
        if arrays:
            layer.set_weights(arrays)


def _optimizer_order_matches(model):
    """True when fastdl's optimizer keeps the variables in Keras's order (always for a
    Sequential; for a functional model when its layers' orders agree), so the slots in the
    file mean the same variables to both."""
    try:
        ours = common.trainable_variables(model)
    except (NotImplementedError, ValueError):
        return False
    theirs = _keras_variable_order(model)
    return len(ours) == len(theirs) and all(a is b for a, b in zip(ours, theirs))


def _optimizer_state_for_file(model, full):
    """The optimizer's state; ``full``: an unbuilt optimizer is described as freshly built
    (Keras builds its optimizer when it loads a model and expects every variable). None (with
    a warning) when the variables' order differs from Keras's."""
    optimizer = model.optimizer
    if not _optimizer_order_matches(model):
        warnings.warn(f"The optimizer state of model {model.name!r} is not saved in the .keras "
                      "file: fastdl's optimizer orders its variables differently from Keras's "
                      "for this graph (save as .fdl to keep it)", stacklevel=4)
        return None
    if optimizer.built or not full:
        return optimizer.get_state()
    variables = common.trainable_variables(model)
    if not variables:
        return optimizer.get_state()
    try:
        shadow = type(optimizer).from_config(optimizer.get_config())
        shadow.build(variables)
        shadow.iterations = optimizer.iterations
        return shadow.get_state()
    except Exception:   # e.g. a callable learning rate: describe the unbuilt state
        return optimizer.get_state()


# ---------------------------------------------------------------------------------------------
# zip

def _zip_info(name):
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    from fastdl import __version__
    h5_buffer = io.BytesIO()
    description = keras_description(model)
    compile_config = common.compile_config(model)
    if compile_config is not None:
        description["compile_config"] = compile_config
    config_bytes = common.dumps(description).encode("utf-8")
    if len(config_bytes) > common.MAX_CONFIG_BYTES:     # the loader would refuse the file
        raise ValueError(f"the model description is too large ({len(config_bytes)} bytes; "
                         f"MAX_CONFIG_BYTES = {common.MAX_CONFIG_BYTES})")
    state = _optimizer_state_for_file(model, full=True) \
        if compile_config is not None and include_optimizer else None
    _write_h5(h5_buffer, model, state)
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "fastdl_version": __version__}
    zip_buffer = io.BytesIO()
    with zipfile.ZipFile(zip_buffer, "w") as zf:
        zf.writestr(_zip_info(METADATA_NAME), common.dumps(metadata).encode("utf-8"))
        zf.writestr(_zip_info(CONFIG_NAME), config_bytes)
        zf.writestr(_zip_info(WEIGHTS_NAME), h5_buffer.getvalue())
        privacy = common.privacy_config(model)
        if privacy is not None:
            zf.writestr(_zip_info(PRIVACY_NAME), common.dumps(privacy).encode("utf-8"))
    data = zip_buffer.getvalue()
    common.atomic_write(filepath, lambda f: f.write(data), overwrite=overwrite)


def save_weights(model, filepath, overwrite=True):
    buffer = io.BytesIO()
    state = _optimizer_state_for_file(model, full=False) \
        if getattr(model, "compiled", False) and model.optimizer is not None else None
    _write_h5(buffer, model, state)
    data = buffer.getvalue()
    common.atomic_write(filepath, lambda f: f.write(data), overwrite=overwrite)


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError,
               ValueError, OverflowError, struct.error, UnicodeDecodeError)


@contextlib.contextmanager
def _open_zip(path):
    with common.open_regular(path) as f:   # a missing file is FileNotFoundError, as for open()
        try:
            zf = zipfile.ZipFile(f, "r")
        except _ZIP_ERRORS as e:
            f.seek(0)
            head = f.read(16)
            from fastdl.saving.native import MAGIC, _describe_foreign
            if not head:
                hint = "it is empty"
            elif head.startswith(MAGIC):
                hint = "it is a fastdl native file (use another extension than .keras)"
            elif head.startswith(b"PK"):
                hint = "the zip archive is damaged or truncated"
            else:
                hint = _describe_foreign(head)
            raise ModelFileError(f"{path!r} is not a Keras .keras zip file: {hint} ({e})") \
                from None
        with zf:
            names = zf.namelist()
            if len(names) != len(set(names)):
                raise ModelFileError(f"{path!r}: the zip archive names a member twice")
            yield zf


def _member_info(zf, name, limit, path):
    """The zip entry of ``name`` (None if absent), refused before anything is decompressed if
    it is encrypted or declares more than ``limit`` bytes."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.flag_bits & 0x1:
        raise ModelFileError(f"{path!r}: {name} is encrypted")
    if info.file_size > limit:
        raise ModelFileError(f"{path!r}: {name} is {info.file_size} bytes uncompressed, more "
                             f"than the limit of {limit} bytes")
    return info


def _read_member(zf, info, path):
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except _ZIP_ERRORS + (OSError,) as e:
        raise ModelFileError(f"{path!r}: cannot read {info.filename}: {e}") from None
    if len(data) != info.file_size:
        raise ModelFileError(f"{path!r}: {info.filename} does not have its declared size")
    return data


def _read_config(zf, path):
    """``config.json`` (at most ``MAX_CONFIG_BYTES``), parsed; ``metadata.json`` checked."""
    infos = {}
    for name in (CONFIG_NAME, METADATA_NAME):
        infos[name] = _member_info(zf, name, common.MAX_CONFIG_BYTES, path)
    if infos[CONFIG_NAME] is None:
        raise ModelFileError(f"{path!r}: the archive has no {CONFIG_NAME}")
    if infos[METADATA_NAME] is not None:
        common.loads_strict(_read_member(zf, infos[METADATA_NAME], path),
                            f"{path!r}: {METADATA_NAME}")
    return common.loads_strict(_read_member(zf, infos[CONFIG_NAME], path),
                               f"{path!r}: {CONFIG_NAME}")


_SLOTS_PER_WEIGHT = 5           # optimizer slots per weight (Adam: amsgrad 3, EMA and accumulation)
_OBJECT_BYTES = 16 << 10        # HDF5 metadata per group or dataset (Keras's files: under 1 KiB)
_FILE_BYTES = 1 << 20           # HDF5 superblock, root groups, small attributes


def weights_bytes_limit(model):
    """The largest Keras weights file ``model`` can need: its weights and as many optimizer
    slots as any optimizer keeps, all as float64, plus HDF5's metadata for each layer's groups
    and each dataset. A larger file holds something else and is refused unread."""
    weights = model.weights
    elements = sum(int(w.size) for w in weights)
    objects = 8 * len(model.layers) + (1 + _SLOTS_PER_WEIGHT) * len(weights)
    return 8 * elements * (1 + _SLOTS_PER_WEIGHT) + _OBJECT_BYTES * objects + _FILE_BYTES


def _weights_info(zf, path):
    """The weights member's entry (None if absent); nothing is decompressed."""
    info = _member_info(zf, WEIGHTS_NAME, float("inf"), path)
    if info is None and "model.weights.npz" in zf.namelist():
        raise ModelFileError(f"{path!r}: weights stored as model.weights.npz are not "
                             "supported; save with the default HDF5 weights")
    return info


def _read_weights(zf, info, model, path):
    """The weights member's bytes, decompressed only if its declared size is within what
    ``model`` can need (a compressed member cannot inflate beyond the model's size)."""
    limit = weights_bytes_limit(model)
    if info.file_size > limit:
        raise ModelFileError(f"{path!r}: {WEIGHTS_NAME} is {info.file_size} bytes uncompressed, "
                             f"more than model {model.name!r} can need ({limit} bytes: its "
                             "weights and optimizer slots as float64, and HDF5 metadata)")
    return _read_member(zf, info, path)


def _open_h5(data, where):
    """The HDF5 file in ``data``; what the bytes are instead, before h5py is needed."""
    if not data.startswith(b"\x89HDF\r\n\x1a\n"):
        from fastdl.saving.native import _describe_foreign
        raise ModelFileError(f"{where} is not an HDF5 weights file: "
                             f"{_describe_foreign(data[:16]) if data else 'it is empty'}")
    h5py = _h5py()
    try:
        return h5py.File(io.BytesIO(data), "r")
    except _H5_ERRORS as e:
        raise ModelFileError(f"{where} is not a readable HDF5 file: {e}") from None


def _close(h5):
    try:
        h5.close()
    except _H5_ERRORS:
        pass


def _optimizer_arrays(model, store, budget, where):
    """The optimizer state in the file, read and checked, or None (with a warning when it
    cannot be used: Keras also skips an optimizer state that does not fit)."""
    if not store.optimizer_paths or not getattr(model, "compiled", False):
        return None
    if not _optimizer_order_matches(model):
        warnings.warn(f"Skipping the optimizer state of {where}: fastdl's optimizer orders the "
                      f"variables of model {model.name!r} differently from Keras's",
                      stacklevel=4)
        return None
    try:
        return store.optimizer_arrays(budget)
    except ModelFileError as e:
        warnings.warn(f"Skipping the optimizer state of {where}: {e}", stacklevel=4)
        return None


def _restore_optimizer(model, arrays, where):
    if arrays is None:
        return
    try:
        arrays = common.check_optimizer_state(model, arrays, where)
    except ModelFileError as e:
        warnings.warn(f"Skipping the optimizer state of {where}: {e}", stacklevel=4)
        return
    common.set_optimizer_state(model, arrays, where)


def load_model(filepath, custom_objects=None, compile=True):
    path = os.fspath(filepath)
    where = repr(path)
    with _open_zip(path) as zf:         # a file that is no .keras archive says what it is
        description = _read_config(zf, path)
        if not isinstance(description, dict):
            raise ModelFileError(f"{where}: {CONFIG_NAME} must hold a JSON object")
        description = _clean_object(description)
        compile_config = description.get("compile_config")
        info = _weights_info(zf, path)
        # at most the weights the member could hold uncompressed, 2 bytes each (float16)
        budget = info.file_size // 2 if info is not None else 0
        with common.preserved_random_state():
            with common.naming_file(path):
                model = common.build_model(description, custom_objects,
                                           translate=from_keras_entry, budget=budget)
            if info is None:
                if model.weights:
                    raise ModelFileError(f"{where}: the archive has no {WEIGHTS_NAME}")
                h5 = None
            else:
                h5 = _open_h5(_read_weights(zf, info, model, path), f"{where}: {WEIGHTS_NAME}")
            try:
                store = _H5Weights(h5, where) if h5 is not None else None
                if store is not None:
                    _assign(store.match(model))
                _load_vocabularies(zf, model, path)
                if compile and compile_config:      # Keras writes {} when not compiled
                    with common.naming_file(path):
                        common.compile_from_config(model, compile_config, custom_objects)
                    if store is not None:
                        arrays = _optimizer_arrays(model, store, model.count_params(), where)
                        _restore_optimizer(model, arrays, where)
                common.restore_privacy(model, _read_privacy(zf, path),
                                       compile and bool(compile_config), where)
            finally:
                if h5 is not None:
                    _close(h5)
    return model


def _read_privacy(zf, path):
    """``fastdl_privacy.json`` (a model saved private: fastdl.privacy's DP-SGD state), parsed;
    None if absent."""
    info = _member_info(zf, PRIVACY_NAME, common.MAX_CONFIG_BYTES, path)
    if info is None:
        return None
    return common.loads_strict(_read_member(zf, info, path), f"{path!r}: {PRIVACY_NAME}")


def _load_vocabularies(zf, model, path):
    """Keras keeps an adapted lookup's vocabulary (StringLookup, IntegerLookup,
    TextVectorization) in ``assets/<layer path>/vocabulary.txt``, one token a line, special
    tokens first; a layer whose config holds no vocabulary reads it from there."""
    for layer_path, layer in common.layer_paths(model):
        wants = getattr(layer, "_wants_vocabulary_asset", None)
        if wants is None or not wants():
            continue
        name = f"assets/{layer_path}/vocabulary.txt"
        info = _member_info(zf, name, common.MAX_CONFIG_BYTES, path)
        if info is None:
            continue
        try:
            text = _read_member(zf, info, path).decode("utf-8")
            layer._vocabulary_from_asset(text)
        except (UnicodeDecodeError, ValueError, TypeError) as e:
            raise ModelFileError(f"{path!r}: {name}: {e}") from e


def load_weights(model, filepath):
    path = os.fspath(filepath)
    where = repr(path)
    if not model.built and not model.weights:
        shape = common.model_input_shape(model)
        if shape is None:
            raise ModelFileError(f"model {model.name!r} is not built; call "
                                 "model.build(input_shape) before load_weights")
        common.build_unbuilt(model, tuple(shape))
    if path.endswith(".keras"):
        with _open_zip(path) as zf:
            info = _weights_info(zf, path)
            if info is None:
                raise ModelFileError(f"{where}: the archive has no {WEIGHTS_NAME}")
            data = _read_weights(zf, info, model, path)
    else:
        with common.open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            limit = weights_bytes_limit(model)
            if size > limit:
                raise ModelFileError(f"{where} is {size} bytes, more than the weights of model "
                                     f"{model.name!r} can need ({limit} bytes)")
            data = f.read(size + 1)
    h5 = _open_h5(data, where)
    try:
        store = _H5Weights(h5, where)
        pairs = store.match(model)          # everything checked and read ...
        arrays = _optimizer_arrays(model, store, model.count_params(), where)
        _assign(pairs)                      # ... before anything is assigned
        _restore_optimizer(model, arrays, where)
    finally:
        _close(h5)
