"""What fastdl's native format and the Keras interchange share.

- ``ModelFileError``: the one exception every refused file raises (a ``ValueError``).
- the limits every loader enforces (``MAX_CONFIG_BYTES``, ``MAX_LAYERS``, ``MAX_HDF5_OBJECTS``)
  and ``open_regular``, which refuses FIFOs, devices and sockets.
- ``atomic_write``: temporary file in the target's folder, flush, fsync, ``os.replace``.
- strict JSON (duplicate keys and NaN/Infinity refused) and a JSON encoder that refuses code.
- the model description in Keras's schema (``model_config``), the weight names of a model and
  the rebuild of a ``Sequential`` from a description: classes only from fastdl's registry plus
  the caller's ``custom_objects``, every value through the layers' own constructors, weights
  created with a size budget and without touching the global random state.
- compile settings (optimizer, loss, metrics) to and from their Keras-style descriptions.

Nothing here imports a module or evaluates anything named by a file.
"""
import contextlib
import errno
import functools
import inspect
import json
import math
import os
import random
import stat
import tempfile

import numpy as np

from fastdl.layers.base import InputLayer, Layer, to_snake_case


class ModelFileError(ValueError):
    """A model or weights file that fastdl refuses to load (the message says why)."""


# ---------------------------------------------------------------------------------------------
# limits

MAX_CONFIG_BYTES = 16 << 20
"""The largest model description read from a file: a ``.keras`` file's ``config.json`` and a
native file's JSON header (16 MiB). A Keras description takes about 0.55 KB per ``Dense`` and
2.3 KB per ``Bidirectional(LSTM)`` layer, so ``MAX_LAYERS`` layers fit; parsing JSON takes up
to ~50 times its size in memory, which this bounds (under 1 GiB)."""

MAX_LAYERS = 10_000
"""The most layers a loaded model may have. Sequential models in practice have hundreds; each
layer is built once, so 10,000 ``Dense`` layers load from a ``.fdl`` file in a few seconds (from
a ``.keras`` file, with its 40,000 HDF5 objects, in about half a minute)."""

MAX_HDF5_OBJECTS = 64 * MAX_LAYERS
"""The most groups and datasets read from a Keras HDF5 weights file. Keras writes a few per
layer and per weight (a ``Bidirectional(LSTM)`` layer: 20), so this admits ``MAX_LAYERS`` layers
with their optimizer state. Each object must have exactly one link (no shared objects)."""


# ---------------------------------------------------------------------------------------------
# files

def open_regular(path):
    """Open ``path`` for reading in binary mode. A FIFO, a device or a socket is refused with
    ModelFileError (reading one could block forever or never end); opening does not wait for a
    FIFO's writer. A directory raises IsADirectoryError, a missing file FileNotFoundError."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(mode):
            raise ModelFileError(f"{path!r} is not a regular file (a FIFO, a device or a "
                                 "socket): fastdl loads models from regular files only")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def naming_file(path):
    """Prefix the file's name to a ModelFileError raised inside the block (the checks of a
    model description do not know the file)."""
    try:
        yield
    except ModelFileError as e:
        raise ModelFileError(f"{os.fspath(path)!r}: {e}") from e.__cause__


_TMP_SUFFIX = ".fdl-tmp"


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):   # another user's process, or not a pid
        return True
    return True


def remove_stale_temporaries(folder, name):
    """Remove the temporary files ``.<name>.<pid>.<random>.fdl-tmp`` that saves of ``name`` in
    ``folder`` left behind when their process was killed (its pid no longer runs). POSIX only:
    elsewhere a pid cannot be probed safely."""
    if os.name != "posix":
        return
    prefix = "." + name + "."
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(_TMP_SUFFIX)):
            continue
        parts = entry[len(prefix):-len(_TMP_SUFFIX)].split(".")
        if len(parts) != 2 or not parts[0].isdigit() or _pid_alive(int(parts[0])):
            continue                        # another target's temporary, or a live save
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, entry))


def _umask():
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(filepath, write_fn, overwrite=True):
    """Write ``filepath`` through ``write_fn(fileobj)`` so that readers see the old file or the
    complete new one, never a partial file: a temporary file in the same folder is written,
    flushed and fsynced, then renamed over the target (``os.replace``). With
    ``overwrite=False`` an existing target raises ``FileExistsError`` (checked atomically with a
    hard link where the file system has them). On any failure the temporary file is removed.

    A symbolic link is followed, as ``open(path, "w")`` does: the file it points to is replaced
    and the link kept. The temporary file is named ``.<name>.<pid>.<random>.fdl-tmp``; a save
    removes those of the same target whose process no longer runs (left by a killed save)."""
    path = os.fspath(filepath)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{path!r} already exists and overwrite=False")
    user_path = path
    if os.path.islink(path):            # write the file the link points to, keep the link
        path = os.path.realpath(path)
    folder, name = os.path.split(os.path.abspath(path))
    remove_stale_temporaries(folder, name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path) and not os.path.isdir(path):
            mode = os.stat(path).st_mode & 0o7777
        else:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)          # fails if the target appeared meanwhile
            except FileExistsError:
                raise FileExistsError(f"{user_path!r} already exists and overwrite=False") \
                    from None
            except OSError:                 # no hard links on this file system
                if os.path.lexists(path):
                    raise FileExistsError(f"{user_path!r} already exists and overwrite=False") \
                        from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):      # make the rename durable too
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# ---------------------------------------------------------------------------------------------
# JSON

def _pairs_no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ModelFileError(f"duplicate key {key!r} in the JSON")
        out[key] = value
    return out


def _refuse_constant(name):
    raise ModelFileError(f"non-finite number {name} in the JSON")


def loads_strict(data, what):
    """Parse UTF-8 JSON bytes; duplicate keys, NaN/Infinity, bad UTF-8 raise ModelFileError."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{what} is not valid UTF-8: {e}") from None
    try:
        return json.loads(text, object_pairs_hook=_pairs_no_duplicates,
                          parse_constant=_refuse_constant)
    except ModelFileError as e:
        raise ModelFileError(f"{what}: {e}") from None
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{what} is not valid JSON: {e}") from None


def _json_default(value):
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= 1 << 16:
        return value.tolist()
    raise ValueError(f"cannot save a value of type {type(value).__name__} ({value!r:.80}): model "
                     "files hold only plain data, never code or Python objects")


def dumps(obj):
    """Deterministic compact JSON (insertion order, no NaN, non-data values refused)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                      default=_json_default)


def plain(obj):
    """``obj`` as it will read back from JSON (tuples become lists, NumPy scalars numbers)."""
    return json.loads(dumps(obj))


# ---------------------------------------------------------------------------------------------
# the global random state

@contextlib.contextmanager
def preserved_random_state():
    """Run a block without changing fastdl's, NumPy's or Python's global random state."""
    from fastdl.utils import rng as rng_module
    gen = rng_module.get_rng()
    state = gen.bit_generator.state
    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        yield
    finally:
        gen.bit_generator.state = state
        random.setstate(py_state)
        np.random.set_state(np_state)


# ---------------------------------------------------------------------------------------------
# names of a model's weights

def unique_name(base, used):
    """Keras's container naming: ``dense``, ``dense_1``, ... within one container."""
    if base in used:
        used[base] += 1
        return f"{base}_{used[base]}"
    used[base] = 0
    return base


def saving_layers(model):
    """The layers whose weights a file holds, in Keras's order: a Sequential's layers, a
    functional model's in the order of its operations (InputLayers included)."""
    from fastdl.functional import Functional
    if isinstance(model, Functional):
        from fastdl.saving import graph
        return graph.keras_layers(model)
    return model.layers


def layer_paths(model):
    """``[(path, layer)]``: Keras's h5 path of each layer, ``layers/<snake class>[_k]``."""
    used = {}
    return [("layers/" + unique_name(to_snake_case(type(l).__name__), used), l)
            for l in saving_layers(model)]


def layer_weight_names(layer):
    """Names of ``layer.weights`` in their order: the weight names, prefixed by the
    sub-layer's path for nested layers (``forward_layer``... as ``lstm/kernel``)."""
    weights = layer.weights
    out = []

    def visit(l, prefix):
        params = getattr(l, "_params", [])
        for w in [w for w in params if w.trainable] + [w for w in params if not w.trainable]:
            out.append((prefix + str(w.name), w.value))
        used = {}
        for sub in getattr(l, "_sublayers", []):
            visit(sub, prefix + unique_name(to_snake_case(type(sub).__name__), used) + "/")

    try:
        visit(layer, "")
    except Exception:  # a layer that does not follow the contract: fall back to indices
        out = []
    names = [n for n, _ in out]
    if (len(out) != len(weights) or any(v is not w for (_, v), w in zip(out, weights))
            or len(set(names)) != len(names) or any(not n for n in names)):
        names = [str(i) for i in range(len(weights))]
    return names


def model_weight_table(model):
    """``[(name, array)]`` of every layer weight: ``layers/<path>/<weight name>``."""
    table = []
    for path, layer in layer_paths(model):
        for name, w in zip(layer_weight_names(layer), layer.weights):
            table.append((f"{path}/{name}", w))
    return table


def trainable_variables(model):
    """The variables ``fit`` hands to the optimizer, in the same order."""
    from fastdl.models import Sequential
    if isinstance(model, Sequential) and not model._chain_needs_tape():
        return [w for l in model.layers if l.trainable and l.trainable_weights
                for w in l.trainable_weights]
    return model._trainable_state()[1]


# ---------------------------------------------------------------------------------------------
# model description (Keras's schema)

def _registered(layer_cls):
    from fastdl.layers import get_layer_class
    if layer_cls is InputLayer:
        return True
    return get_layer_class(layer_cls.__name__) is layer_cls


def layer_entry(layer):
    cls = type(layer)
    builtin = _registered(cls)
    if builtin:
        module, registered = "keras.layers", None
    else:
        from fastdl.saving import registry
        module, registered = cls.__module__, registry.get_registered_name(cls)
    entry = {"module": module, "class_name": cls.__name__, "config": plain(layer.get_config()),
             "registered_name": registered}
    shape = getattr(layer, "_build_input_shape", None)
    if layer.built and shape is not None and not isinstance(layer, InputLayer):
        several = len(shape) > 0 and isinstance(shape[0], (list, tuple))   # merge layers
        batch = shape[0] if getattr(layer, "stateful", False) else None   # Keras needs it
        entry["build_config"] = {"input_shape": plain(
            [[None] + list(s[1:]) for s in shape] if several else [batch] + list(shape[1:]))}
    return entry


def subclassed_entry(model):
    """A subclassed model: its class (by registered name), ``get_config()`` and the input shape
    it was first called with (``build_config``), which a load calls it on to create its
    weights, as Keras's ``build_from_config`` does."""
    from fastdl.saving import registry
    cls = type(model)
    try:
        config = plain(model.get_config())
    except (TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"cannot save model {model.name!r} ({cls.__name__}): its get_config() "
                         f"fails or returns values that are not plain data: {e}") from e
    entry = {"module": cls.__module__, "class_name": cls.__name__, "config": config,
             "registered_name": registry.get_registered_name(cls)}
    shape = model._build_input_shape
    if shape is not None:
        entry["build_config"] = {"input_shape": plain([None] + list(shape[1:]))}
    elif model.weights:
        raise ValueError(f"cannot save model {model.name!r} ({cls.__name__}): its input shape "
                         "is unknown; call the model on a batch (or fit it) before saving")
    return entry


def model_input_shape(model):
    try:
        shape = model.input_shape
    except Exception:
        return None
    return None if shape is None else [None] + list(shape[1:])


def model_config(model):
    """The model in Keras's schema (``{"module", "class_name": "Sequential", "config", ...}``;
    a functional model's: :func:`fastdl.saving.graph.functional_config`). Nested models are
    described in place of a layer entry."""
    from fastdl.functional import Functional
    from fastdl.models import Sequential

    def entry(layer):
        return model_config(layer) if isinstance(layer, (Sequential, Functional)) \
            else layer_entry(layer)

    if isinstance(model, Functional):
        from fastdl.saving import graph
        return graph.functional_config(model, entry)
    if not isinstance(model, Sequential):
        return subclassed_entry(model)
    input_layer = getattr(model, "_input_layer", None)
    entries = ([layer_entry(input_layer)] if input_layer is not None else []) + \
        [entry(l) for l in model.layers]
    config = {"name": model.name, "trainable": bool(model.trainable), "layers": entries}
    out = {"module": "keras", "class_name": "Sequential", "config": config,
           "registered_name": None}
    shape = model_input_shape(model) if model.built else None
    if shape is not None:
        config["build_input_shape"] = plain(shape)
        out["build_config"] = {"input_shape": plain(shape)}
    return out


# ---------------------------------------------------------------------------------------------
# rebuilding a model

_SAFE_MODULE_PREFIXES = ("keras", "fastdl")


def _check_custom_objects(custom_objects):
    """The objects a load may instantiate besides fastdl's: the registered classes, those of
    the active ``custom_object_scope`` and ``custom_objects`` (``{name: class}``)."""
    from fastdl.saving import registry
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict {{name: class}}. Received: "
                        f"{type(custom_objects).__name__}")
    return registry.visible_objects(custom_objects)


def _module_ok(module):
    return module is None or (isinstance(module, str) and any(
        module == p or module.startswith(p + ".") for p in _SAFE_MODULE_PREFIXES))


def resolve_layer_class(entry, custom_objects, where):
    """The class an entry names: the caller's ``custom_objects`` first, then fastdl's registry.
    Anything else (``Lambda``, ``os.system``, unknown modules) is refused, naming it."""
    from fastdl.layers import get_layer_class
    if not isinstance(entry, dict):
        raise ModelFileError(f"{where}: a layer must be a JSON object, received "
                             f"{type(entry).__name__}")
    class_name = entry.get("class_name")
    if not isinstance(class_name, str) or not class_name:
        raise ModelFileError(f"{where}: missing or invalid 'class_name': {class_name!r:.100}")
    registered = entry.get("registered_name")
    module = entry.get("module")
    for key in (registered, class_name):
        if isinstance(key, str) and key in custom_objects:
            cls = custom_objects[key]
            if not (isinstance(cls, type) and issubclass(cls, Layer)):
                raise ModelFileError(f"{where}: custom_objects[{key!r}] is not a fastdl Layer "
                                     f"subclass")
            return cls
    if class_name == "Lambda":
        raise ModelFileError(f"{where}: refusing layer class 'Lambda' (module {module!r}): "
                             "Lambda layers carry Python code, and fastdl never loads code from "
                             "a file. Rebuild that layer in code or write a Layer subclass and "
                             "pass it in custom_objects")
    if registered is not None and registered != class_name:
        raise ModelFileError(f"{where}: refusing custom class {registered!r} (class_name "
                             f"{class_name!r}, module {module!r:.100}): it is not a fastdl layer; "
                             "pass the class in custom_objects or register it with "
                             "@fastdl.saving.register_keras_serializable() to load it")
    if not _module_ok(module):
        raise ModelFileError(f"{where}: refusing class {class_name!r:.100} from module "
                             f"{module!r:.100}: fastdl loads only its own layers and the "
                             "classes passed in custom_objects or registered with "
                             "@fastdl.saving.register_keras_serializable(), and never imports "
                             "modules")
    cls = InputLayer if class_name == "InputLayer" else get_layer_class(class_name)
    if cls is None:
        raise ModelFileError(f"{where}: unknown layer class {class_name!r:.100} (module "
                             f"{module!r:.100}): fastdl loads only its own layers and the "
                             "classes passed in custom_objects or registered with "
                             "@fastdl.saving.register_keras_serializable()")
    return cls


@functools.lru_cache(maxsize=256)
def accepted_arguments(cls):
    """Constructor keywords a layer class accepts (its own and its bases' ``__init__``);
    cached, as a model repeats its classes."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        names.update(p.name for p in params
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self")
        if klass is Layer:
            break
    return frozenset(names)


class _BuildGuard:
    """While active, layers create their weights as zeros (no random draws: a load must not
    change the global random state, and every weight is overwritten anyway) and the total
    number of elements is limited to what the file holds, so a description asking for huge
    weights is refused before the memory is allocated."""

    def __init__(self, budget, active=True):
        self.budget = budget
        self.active = active
        self.used = 0
        self._patched = []

    def wrap(self, layer):
        if not self.active or not isinstance(layer, Layer):
            return
        if type(layer).add_weight is Layer.add_weight and "add_weight" not in vars(layer):
            original = layer.add_weight
            guard = self

            def add_weight(name, shape, initializer="zeros", trainable=True, **options):
                shape = tuple(shape)
                n = 1
                for d in shape:
                    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
                        raise ModelFileError(f"layer {layer.name!r}: invalid weight shape "
                                             f"{shape!r:.100}")
                    n *= int(d)
                guard.used += n
                if guard.budget is not None and guard.used > guard.budget:
                    raise ModelFileError(
                        f"layer {layer.name!r} asks for weight {name!r} of shape {shape!r:.100}, "
                        f"more weights than the file holds ({guard.budget} elements in all)")
                return original(name, shape, "zeros", trainable, **options)

            layer.add_weight = add_weight
            self._patched.append(layer)
        for sub in getattr(layer, "_sublayers", []):
            self.wrap(sub)

    def release(self):
        for layer in self._patched:
            vars(layer).pop("add_weight", None)
        self._patched = []


_CONSTRUCTION_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError,
                        NotImplementedError, OverflowError, MemoryError, RecursionError)


def _shape_from(value, where):
    if not isinstance(value, list) or not value or len(value) > 32:
        raise ModelFileError(f"{where}: invalid input shape {value!r:.100}")
    out = []
    for i, d in enumerate(value):
        if d is None:
            out.append(None)
        elif isinstance(d, bool) or not isinstance(d, int) or d < 1 or d > 1 << 40:
            raise ModelFileError(f"{where}: invalid input shape {value!r:.100}")
        else:
            out.append(d)
    return tuple(out)


def _refuse_embedded_weights(config, where, depth=0):
    """Weights come from the file's tensors, never from a config (``Embedding(weights=...)``
    would allocate and assign before any check)."""
    if depth > 8:
        raise ModelFileError(f"{where}: layer configs nest too deeply")
    if config.get("weights") is not None:
        raise ModelFileError(f"{where}: a layer config may not carry 'weights'")
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(value.get("config"), dict) and \
                "class_name" in value:
            _refuse_embedded_weights(value["config"], f"{where}.{key}", depth + 1)


def _reserve_name(name, cls_name):
    """Make later auto-named layers skip a loaded layer's name (``dense`` -> next is
    ``dense_1``), so ``pop``/``add`` on a loaded model does not collide with its names."""
    from fastdl.layers import base as layers_base
    if not isinstance(name, str):
        return
    prefix = to_snake_case(cls_name)
    if name == prefix:
        index = 0
    elif name.startswith(prefix + "_") and name[len(prefix) + 1:].isdigit() \
            and len(name) - len(prefix) < 12:
        index = int(name[len(prefix) + 1:])
    else:
        return
    counts = getattr(layers_base, "_name_counts", None)
    if counts is not None and counts.get(prefix, 0) <= index:
        counts[prefix] = index + 1


def build_model(description, custom_objects=None, translate=None, budget=None, fresh=False):
    """A ``Sequential``, functional or subclassed model from its description in Keras's schema
    (nested models included).

    ``translate(entry, where)`` (the Keras interchange) turns a Keras layer config into fastdl's
    before construction. Every layer is made with ``cls.from_config(config)``, so every value
    passes the constructor's validation; failures raise ModelFileError with the reason. The
    global random state is unchanged afterwards; weights are zeros (the caller loads them), or
    with ``fresh`` initialized as the layers' initializers say (``model_from_json``).
    """
    guard = _BuildGuard(None, active=False) if fresh else _BuildGuard(budget)
    builder = _Builder(_check_custom_objects(custom_objects), translate, guard)
    with contextlib.nullcontext() if fresh else preserved_random_state():
        try:
            return builder.model(description)
        finally:
            builder.guard.release()


class _Builder:
    """One model rebuild: the shared weight budget and the count of layers (nested ones
    included) against ``MAX_LAYERS``."""

    def __init__(self, custom_objects, translate, guard):
        self.custom_objects, self.translate, self.guard = custom_objects, translate, guard
        self.layers = 0
        self.depth = 0

    def count(self, n):
        self.layers += n
        if self.layers > MAX_LAYERS:
            raise ModelFileError(f"the model has {self.layers} layers, more than fastdl loads "
                                 f"(MAX_LAYERS = {MAX_LAYERS})")

    def model(self, description, where="the model"):
        from fastdl.saving import graph
        if not isinstance(description, dict):
            raise ModelFileError("the model description must be a JSON object")
        class_name = description.get("class_name")
        if not graph.is_model_entry(description):
            layer = self.layer(description, where)      # a subclassed model (custom_objects)
            from fastdl.models import Model
            if not isinstance(layer, Model):
                raise ModelFileError(f"{where}: {class_name!r:.100} is a layer, not a model")
            return layer
        if not _module_ok(description.get("module")):
            raise ModelFileError(f"refusing model from module {description.get('module')!r:.100}")
        self.depth += 1
        if self.depth > 32:
            raise ModelFileError("models nest too deeply (more than 32 levels)")
        try:
            if class_name == "Functional":
                model = graph.build_functional(description, self.layer, self.count)
                _reserve_name(model.name, "Functional")
                return model
            return self.sequential(description)
        finally:
            self.depth -= 1

    def layer(self, entry, where):
        """One layer entry (a nested model included), built from its config."""
        from fastdl.saving import graph
        if graph.is_model_entry(entry):
            try:
                layer = self.model(entry, where)
            except ModelFileError as e:     # say which nested model
                raise ModelFileError(f"{where} (nested {entry['class_name']}): {e}") from \
                    e.__cause__
        else:
            cls = resolve_layer_class(entry, self.custom_objects, where)
            if self.translate is not None:
                entry = self.translate(entry, cls, self.custom_objects, where)
            layer_config = entry.get("config", {})
            if not isinstance(layer_config, dict):
                raise ModelFileError(f"{where} ({entry['class_name']}): 'config' must be a "
                                     "JSON object")
            where = f"{where} ({entry['class_name']} {layer_config.get('name')!r:.100})"
            _refuse_embedded_weights(layer_config, where)
            try:
                layer = cls.from_config(dict(layer_config))
            except ModelFileError:
                raise
            except _CONSTRUCTION_ERRORS as e:
                raise ModelFileError(f"{where}: invalid config: {e}") from e
            if not isinstance(layer, Layer):
                raise ModelFileError(f"{where}: from_config did not return a fastdl layer")
            _reserve_name(layer.name, type(layer).__name__)
            from fastdl.models import Model
            if isinstance(layer, Model):
                self.build_subclassed(layer, entry, where)
        self.guard.wrap(layer)
        return layer

    def build_subclassed(self, model, entry, where):
        """Create a subclassed model's weights by calling it on zeros of its saved input shape
        (Keras's ``build_from_config``); weights stay zeros under the guard's budget."""
        from fastdl.models import _leaf_layers
        build = entry.get("build_config")
        raw = build.get("input_shape") if isinstance(build, dict) else None
        if raw is None:
            return
        shape = _shape_from(raw, f"{where}: build_config")
        self.guard.wrap(model)
        for layer in _leaf_layers(model):
            self.guard.wrap(layer)
        try:
            model(np.zeros(tuple(1 if d is None else d for d in shape), model.dtype))
        except ModelFileError:
            raise
        except _CONSTRUCTION_ERRORS as e:
            raise ModelFileError(f"{where}: cannot build model {model.name!r} for input shape "
                                 f"{shape}: {e}") from e

    def sequential(self, description):
        from fastdl.models import Sequential
        config = description.get("config")
        if not isinstance(config, dict):
            raise ModelFileError("the Sequential description has no 'config' object")
        entries = config.get("layers")
        if not isinstance(entries, list):
            raise ModelFileError("the Sequential config has no 'layers' list")
        self.count(len(entries))
        name = config.get("name")
        trainable = config.get("trainable", True)
        if not isinstance(trainable, bool):
            raise ModelFileError(f"model 'trainable' must be true or false, received "
                                 f"{trainable!r:.100}")
        try:
            model = Sequential(name=name)
        except _CONSTRUCTION_ERRORS as e:
            raise ModelFileError(f"invalid model config: {e}") from e
        _reserve_name(model.name, "Sequential")
        names = set()                   # Sequential's name check, linear in the layers
        for i, entry in enumerate(entries):
            where = f"layer {i}"
            layer = self.layer(entry, where)
            where = f"layer {i} ({type(layer).__name__} {layer.name!r:.100})"
            if isinstance(layer, InputLayer) and i != 0:
                raise ModelFileError(f"{where}: an InputLayer can only come first")
            try:
                model._add(layer, names)
            except ModelFileError as e:
                raise ModelFileError(f"{where}: {e}") from None
            except _CONSTRUCTION_ERRORS as e:
                raise ModelFileError(f"{where}: {e}") from e
        if not model.built and model.layers:
            shape = None
            if model.input_shape is not None:
                shape = tuple(model.input_shape)
            else:
                raw = config.get("build_input_shape")
                if raw is None:
                    raw = (description.get("build_config") or {}).get("input_shape") \
                        if isinstance(description.get("build_config"), dict) else None
                if raw is None:
                    first = entries[0] if entries else {}
                    bc = first.get("build_config") if isinstance(first, dict) else None
                    raw = bc.get("input_shape") if isinstance(bc, dict) else None
                if raw is not None:
                    shape = _shape_from(raw, "build_input_shape")
            if shape is not None:
                try:
                    model.build(shape)
                except ModelFileError:
                    raise
                except _CONSTRUCTION_ERRORS as e:
                    raise ModelFileError(f"cannot build the model for input shape "
                                         f"{shape}: {e}") from e
        if not trainable:
            model.trainable = False
        return model


def build_layer(entry, custom_objects=None):
    """One layer (or model) from its entry, outside any model (``deserialize_keras_object``,
    ``Layer`` configs from Keras): the checks and translation a file's layers get."""
    from fastdl.saving import keras_format
    builder = _Builder(_check_custom_objects(custom_objects), keras_format.from_keras_entry,
                       _BuildGuard(None))
    try:
        return builder.layer(entry, "the layer")
    finally:
        builder.guard.release()


def build_unbuilt(model, shape):
    """Build a user's model for loading weights into it (zeros, random state untouched); a
    subclassed model by a call on zeros of that shape."""
    from fastdl.functional import Functional
    from fastdl.models import Sequential, _leaf_layers
    guard = _BuildGuard(None)
    with preserved_random_state():
        try:
            for layer in _leaf_layers(model):
                guard.wrap(layer)
            if isinstance(model, (Sequential, Functional)):
                model.build(shape)
            else:
                model(np.zeros(tuple(1 if d is None else d for d in shape), model.dtype))
        except _CONSTRUCTION_ERRORS as e:
            raise ModelFileError(f"cannot build model {model.name!r} for input shape {shape}: "
                                 f"{e}") from e
        finally:
            guard.release()


# ---------------------------------------------------------------------------------------------
# compile settings

def _metric_identifier(metric):
    from fastdl import metrics as metrics_module
    name = getattr(metric, "name", None)
    if isinstance(metric, metrics_module.AutoAccuracy):
        return name if isinstance(name, str) and name.lower() in ("accuracy", "acc") \
            else "accuracy"
    if isinstance(name, str):
        try:
            fresh = metrics_module.get(name)
        except (ValueError, TypeError):
            fresh = None
        if fresh is not None and type(fresh) is type(metric):
            try:
                if plain(fresh.get_config()) == plain(metric.get_config()):
                    return name
            except (TypeError, ValueError):
                pass
    if type(metric) is metrics_module.MeanMetricWrapper:
        fn = getattr(metric, "_fn", None)
        fn_name = getattr(fn, "__name__", None)
        if not isinstance(fn_name, str):
            raise ValueError(f"cannot save metric {name!r}: its function has no name")
        return {"module": None, "class_name": "function", "config": fn_name,
                "registered_name": fn_name}
    cls = type(metric)
    builtin = getattr(metrics_module, cls.__name__, None) is cls
    return {"module": "keras.metrics" if builtin else cls.__module__,
            "class_name": cls.__name__, "config": plain(metric.get_config()),
            "registered_name": None if builtin else cls.__name__}


def compile_config(model):
    """The compile settings in Keras's ``compile_config`` schema, or None if not compiled."""
    from fastdl import losses as losses_module
    from fastdl import optimizers as optimizers_module
    if not getattr(model, "compiled", False) or model.optimizer is None:
        return None
    optimizer = plain(optimizers_module.serialize(model.optimizer))
    given = (getattr(model, "_compile_config", None) or {}).get("loss")
    loss = given if isinstance(given, str) else plain(losses_module.serialize(model.loss))
    lists = {False: [], True: []}   # Keras's metrics (unweighted) and weighted_metrics
    for m, weighted in zip(model.compiled_metrics, model._metric_weighted):
        lists[weighted].append(_metric_identifier(m))
    metrics, weighted = lists[False], lists[True]
    return {"optimizer": optimizer, "loss": loss, "loss_weights": None,
            "metrics": plain(metrics) if metrics else None,
            "weighted_metrics": plain(weighted) if weighted else None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def _metric_from(identifier, custom_objects, where):
    from fastdl import metrics as metrics_module
    if isinstance(identifier, str):
        return identifier
    if isinstance(identifier, dict):
        cls_name = identifier.get("class_name")
        if cls_name == "function":
            fn_name = identifier.get("config")
            if isinstance(fn_name, str) and fn_name in custom_objects:
                return custom_objects[fn_name]
            if isinstance(fn_name, str):
                return fn_name
        reg = identifier.get("registered_name")
        if isinstance(reg, str) and reg in custom_objects:
            identifier = dict(identifier, class_name=reg)
        elif isinstance(cls_name, str) and cls_name in custom_objects:
            pass
        elif reg not in (None, cls_name) or not _module_ok(identifier.get("module")):
            raise ModelFileError(f"{where}: refusing metric class {cls_name!r:.100} "
                                 f"(registered as {reg!r:.100}); pass it in custom_objects")
        return metrics_module.deserialize(identifier, custom_objects=custom_objects)
    raise ModelFileError(f"{where}: cannot interpret metric {identifier!r:.100}")


def compile_from_config(model, config, custom_objects=None):
    """Compile ``model`` from a ``compile_config``; any problem raises ModelFileError."""
    from fastdl import losses as losses_module
    from fastdl import optimizers as optimizers_module
    custom_objects = _check_custom_objects(custom_objects)
    where = "compile config (load with compile=False to skip it)"
    if not isinstance(config, dict):
        raise ModelFileError(f"{where} must be a JSON object")
    try:
        opt_cfg = config.get("optimizer", "rmsprop")
        if isinstance(opt_cfg, str):
            optimizer = optimizers_module.get(opt_cfg)
        elif isinstance(opt_cfg, dict):
            reg = opt_cfg.get("registered_name")
            if reg not in (None, opt_cfg.get("class_name")) and reg not in custom_objects:
                raise ModelFileError(f"{where}: refusing optimizer {reg!r:.100}; pass it in "
                                     "custom_objects")
            optimizer = optimizers_module.deserialize(opt_cfg, custom_objects=custom_objects)
        else:
            raise ModelFileError(f"{where}: cannot interpret optimizer {opt_cfg!r:.100}")
        loss_cfg = config.get("loss")
        if isinstance(loss_cfg, dict):
            reg = loss_cfg.get("registered_name")
            if loss_cfg.get("class_name") != "function" and \
                    reg not in (None, loss_cfg.get("class_name")) and reg not in custom_objects:
                raise ModelFileError(f"{where}: refusing loss {reg!r:.100}; pass it in "
                                     "custom_objects")
            if not _module_ok(loss_cfg.get("module")) and \
                    loss_cfg.get("class_name") not in custom_objects:
                raise ModelFileError(f"{where}: refusing loss from module "
                                     f"{loss_cfg.get('module')!r:.100}")
            loss = losses_module.deserialize(loss_cfg, custom_objects=custom_objects)
        elif isinstance(loss_cfg, str):
            loss = custom_objects.get(loss_cfg) or loss_cfg
        else:
            raise ModelFileError(f"{where}: cannot interpret loss {loss_cfg!r:.100}")
        if config.get("loss_weights") is not None:
            raise ModelFileError(f"{where}: loss_weights applies to multi-output models")
        metric_lists = {}
        for key in ("metrics", "weighted_metrics"):
            value = config.get(key)
            if value is None:
                continue
            if not isinstance(value, list):
                raise ModelFileError(f"{where}: {key} must be a list, received {value!r:.100}")
            metric_lists[key] = [_metric_from(m, custom_objects, where) for m in value] or None
        model.compile(optimizer=optimizer, loss=loss, **metric_lists)
    except ModelFileError:
        raise
    except _CONSTRUCTION_ERRORS as e:
        raise ModelFileError(f"{where}: {e}") from e


PRIVACY_KEY = "privacy"   # the DP-SGD state: a native header key, fastdl_privacy.json in .keras


def privacy_config(model):
    """The DP-SGD settings and accounting of a model made private (``fastdl.privacy``), or
    None: saved with the model so that a loaded one continues private, its accounting kept."""
    strategy = getattr(model, "_train_strategy", None)
    return None if strategy is None else strategy.get_config()


def restore_privacy(model, config, compiled, where):
    """Make a loaded model private again from ``privacy_config`` data. A model loaded without
    its compile settings (``compile=False``) stays non-private, with a warning, since it cannot
    train before it is compiled again (and ``make_private`` would start a new accounting)."""
    import warnings
    if config is None:
        return
    if not compiled:
        warnings.warn(f"{where} holds a model trained with differential privacy (DP-SGD); loaded "
                      "with compile=False it is not private and its privacy accounting does "
                      "not continue. Load it with compile=True to continue it.", stacklevel=4)
        return
    from fastdl.privacy.training import restore_private
    try:
        restore_private(model, config)
    except (ValueError, TypeError) as e:   # PrivacyError is a ValueError
        raise ModelFileError(f"{where}: the DP-SGD state: {e}") from None


def optimizer_head(optimizer):
    """Number of counters before the slots: iterations (+ learning rate unless a schedule)."""
    return len(optimizer.variables) - (len(optimizer._slot_list()) if optimizer.built else 0)


def check_optimizer_state(model, arrays, where):
    """Build the model's optimizer if the state holds slots, then check ``arrays`` against its
    variables (count, shapes, kinds). Returns the arrays to pass to ``set_state``."""
    optimizer = model.optimizer
    head = optimizer_head(optimizer)
    if len(arrays) > head and not optimizer.built:
        try:
            optimizer.build(trainable_variables(model))
        except _CONSTRUCTION_ERRORS as e:
            raise ModelFileError(f"{where}: cannot build the optimizer: {e}") from e
    current = optimizer.variables
    if len(arrays) != len(current):
        raise ModelFileError(f"{where}: the optimizer {type(optimizer).__name__} has "
                             f"{len(current)} variables, the file holds {len(arrays)}")
    for i, (cur, new) in enumerate(zip(current, arrays)):
        if tuple(new.shape) != tuple(np.shape(cur)):
            raise ModelFileError(f"{where}: optimizer variable {i} has shape {np.shape(cur)}, "
                                 f"the file holds shape {tuple(new.shape)}")
        if new.dtype.kind not in "iuf":
            raise ModelFileError(f"{where}: optimizer variable {i} has dtype {new.dtype}")
        if i == 0 and (new.dtype.kind == "f" and not float(new) == math.floor(float(new))):
            raise ModelFileError(f"{where}: the iteration count is not an integer")
    return arrays


def set_optimizer_state(model, arrays, where):
    try:
        model.optimizer.set_state(arrays)
    except _CONSTRUCTION_ERRORS as e:
        raise ModelFileError(f"{where}: {e}") from e
