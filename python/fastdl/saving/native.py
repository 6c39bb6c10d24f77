"""fastdl's native model file (recommended extension ``.fdl``): one checksummed file, plain data.

Layout (all integers little-endian)::

    offset 0   8 bytes   magic b"\\x89FDL\\r\\n\\x1a\\n"
    offset 8   uint32    format version (1)
    offset 12  uint64    header length H in bytes (2 <= H <= MAX_CONFIG_BYTES, 16 MiB)
    offset 20  32 bytes  SHA-256 of every byte of the file except these 32
    offset 52  H bytes   header: UTF-8 JSON object
    52 + H     ...       tensor data: raw little-endian C-order arrays, contiguous, ending
                         exactly at the end of the file

The header is ``{"format": "fastdl", "kind": "model"|"weights", "fastdl_version": ...,
"model_config": {...}, "compile_config": {...}|null, "tensors": [...]}``:

- ``model_config``: the model in Keras's schema (``{"module": "keras", "class_name":
  "Sequential", "config": {"name", "trainable", "layers": [{"module": "keras.layers",
  "class_name": "Dense", "config": {...}, "registered_name": null, "build_config":
  {"input_shape": [null, 4]}}, ...], "build_input_shape": [null, 4]}}``);
- ``compile_config`` (full models): optimizer, loss and metrics as in Keras's ``compile_config``;
- ``privacy`` (only for a model made private with ``fastdl.privacy.make_private``): its DP-SGD
  settings and the steps taken (``DPSGD.get_config()``), so that ``load_model`` gives a private
  model whose accounting continues;
- ``tensors``: ``{"name", "dtype", "shape", "offset", "nbytes"}`` per array, ``offset`` counted
  from the start of the data. Names: ``layers/<snake class>[_k]/<weight name>`` (the layer's
  position among layers of its class, as Keras's weight files do, so weights load into a model
  whose layers were named differently) and ``optimizer/<i>`` (``optimizer.get_state()``:
  iterations, learning rate, then the slots in Keras's order).

dtypes are limited to float32, float64, int64, int32, uint8 and bool. There are no timestamps:
saving the same model twice gives the same bytes. Nothing in the file is ever executed: no
pickle, marshal, YAML or code, and class names resolve only through fastdl's layer registry
plus the caller's ``custom_objects``.

Loading checks, in this order, and raises :class:`ModelFileError` with the reason: that the path
is a regular file (not a FIFO or a device), file size,
magic, version, header length bounds, the checksum, UTF-8, JSON (duplicate keys and NaN
refused), the header's keys and types, the tensor table (dtype allowlist, non-negative shapes
whose size NumPy can represent, byte counts, offsets contiguous from 0 and ending exactly at the
end of the file), then the model description (at most ``MAX_LAYERS`` layers, every layer through
``cls.from_config``, i.e. its constructor's validation),
then exactly the expected weight names and shapes.
"""
import hashlib
import os
import struct

import numpy as np

from fastdl.saving import common
from fastdl.saving.common import ModelFileError

MAGIC = b"\x89FDL\r\n\x1a\n"
FORMAT_VERSION = 1
PREFIX = struct.Struct("<8sIQ32s")          # magic, version, header length, sha256
PREFIX_SIZE = PREFIX.size                   # 52
MAX_TENSORS = 1_000_000
MAX_RANK = 32
DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8"), "int64": np.dtype("<i8"),
          "int32": np.dtype("<i4"), "uint8": np.dtype("u1"), "bool": np.dtype("?")}
_HEADER_KEYS = {"format", "kind", "fastdl_version", "model_config", "compile_config", "tensors",
                common.PRIVACY_KEY}
_TENSOR_KEYS = {"name", "dtype", "shape", "offset", "nbytes"}


# ---------------------------------------------------------------------------------------------
# writing

def _dtype_name(dtype):
    for name, dt in DTYPES.items():
        if np.dtype(dtype) == dt or np.dtype(dtype) == dt.newbyteorder("="):
            return name
    raise ValueError(f"cannot save an array of dtype {dtype}: allowed dtypes are "
                     f"{', '.join(DTYPES)}")


def _write_array(f, array):
    """Write one tensor's bytes (its own function so tests can make a write fail midway)."""
    f.write(memoryview(array.reshape(-1)).cast("B"))


def _prepare(header, named_arrays):
    """The header bytes, the arrays (little-endian, contiguous) and the prefix with checksum."""
    header = dict(header)
    table, arrays, offset = [], [], 0
    for name, array in named_arrays:
        array = np.asarray(array)
        dt = _dtype_name(array.dtype)
        array = np.asarray(array, dtype=DTYPES[dt], order="C")  # keeps 0-d arrays 0-d
        table.append({"name": name, "dtype": dt, "shape": list(array.shape),
                      "offset": offset, "nbytes": int(array.nbytes)})
        arrays.append(array)
        offset += int(array.nbytes)
    header["tensors"] = table
    header_bytes = common.dumps(header).encode("utf-8")
    if len(header_bytes) > common.MAX_CONFIG_BYTES:
        raise ValueError(f"the model description is too large ({len(header_bytes)} bytes; "
                         f"MAX_CONFIG_BYTES = {common.MAX_CONFIG_BYTES})")
    digest = hashlib.sha256()
    digest.update(PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes), b"\0" * 32)[:20])
    digest.update(header_bytes)
    for array in arrays:
        digest.update(memoryview(array.reshape(-1)).cast("B"))
    prefix = PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes), digest.digest())
    return prefix, header_bytes, arrays


def write_file(filepath, header, named_arrays, overwrite=True):
    prefix, header_bytes, arrays = _prepare(header, named_arrays)

    def write(f):
        f.write(prefix)
        f.write(header_bytes)
        for array in arrays:
            _write_array(f, array)

    common.atomic_write(filepath, write, overwrite=overwrite)


def _header(kind, model, compile_config):
    from fastdl import __version__
    return {"format": "fastdl", "kind": kind, "fastdl_version": __version__,
            "model_config": common.model_config(model), "compile_config": compile_config}


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    compile_config = common.compile_config(model)
    arrays = common.model_weight_table(model)
    if compile_config is not None and include_optimizer:
        arrays += [(f"optimizer/{i}", a) for i, a in enumerate(model.optimizer.get_state())]
    header = _header("model", model, compile_config)
    privacy = common.privacy_config(model)
    if privacy is not None:   # only then: older readers refuse the key rather than drop it
        header[common.PRIVACY_KEY] = privacy
    write_file(filepath, header, arrays, overwrite)


def save_weights(model, filepath, overwrite=True):
    write_file(filepath, _header("weights", model, None), common.model_weight_table(model),
               overwrite)


# ---------------------------------------------------------------------------------------------
# reading

def _describe_foreign(head):
    if head.startswith(b"\x80") or head[:1] in (b"(", b"]", b"}") and b"." in head:
        return "it looks like a Python pickle, which fastdl never loads"
    if head.startswith(b"PK\x03\x04"):
        return "it looks like a zip archive (a Keras .keras file must have the .keras extension)"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return ("it looks like an HDF5 file (Keras weights must have the .weights.h5 extension; "
                "legacy Keras .h5 model files are not supported, use .keras)")
    if head.startswith(b"\x93NUMPY"):
        return "it looks like a NumPy .npy file"
    return "the magic bytes do not match"


def _check_int(value, what, low=0):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ModelFileError(f"{what} must be an integer >= {low}, received {value!r:.100}")
    return value


def _check_tensor_table(table, data_size):
    if not isinstance(table, list):
        raise ModelFileError("header 'tensors' must be a list")
    if len(table) > MAX_TENSORS:
        raise ModelFileError(f"too many tensors ({len(table)})")
    names, out, expected_offset = set(), [], 0
    for i, entry in enumerate(table):
        where = f"tensor {i}"
        if not isinstance(entry, dict):
            raise ModelFileError(f"{where} must be a JSON object")
        keys = set(entry)
        if keys != _TENSOR_KEYS:
            raise ModelFileError(f"{where}: expected the keys {sorted(_TENSOR_KEYS)}, found "
                                 f"{sorted(keys)}")
        name = entry["name"]
        if not isinstance(name, str) or not name or len(name) > 4096:
            raise ModelFileError(f"{where}: invalid name {name!r:.100}")
        where = f"tensor {name!r}"
        if name in names:
            raise ModelFileError(f"{where} appears twice")
        names.add(name)
        dtype = entry["dtype"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ModelFileError(f"{where}: dtype {dtype!r:.100} is not allowed (allowed: "
                                 f"{', '.join(DTYPES)})")
        shape = entry["shape"]
        if not isinstance(shape, list) or len(shape) > MAX_RANK:
            raise ModelFileError(f"{where}: shape must be a list of at most {MAX_RANK} "
                                 f"dimensions, received {shape!r:.100}")
        count, extent = 1, 1
        for d in shape:
            _check_int(d, f"{where}: every dimension of the shape {shape!r:.100}")
            count *= d                  # exact (Python ints); bounded by the check below
            extent *= max(d, 1)         # NumPy needs this in range even when a dimension is 0
            if count * DTYPES[dtype].itemsize > data_size:
                raise ModelFileError(f"{where}: shape {shape!r:.100} needs more bytes than "
                                     f"the file's data holds ({data_size})")
            if extent >= 1 << 62:
                raise ModelFileError(f"{where}: shape {shape!r:.100} is too large for an array")
        nbytes = _check_int(entry["nbytes"], f"{where}: nbytes")
        if nbytes != count * DTYPES[dtype].itemsize:
            raise ModelFileError(f"{where}: nbytes {nbytes} does not match shape {shape} of "
                                 f"{dtype} ({count * DTYPES[dtype].itemsize} bytes)")
        offset = _check_int(entry["offset"], f"{where}: offset")
        if offset != expected_offset:
            kind = "overlaps the previous tensor" if offset < expected_offset else \
                "leaves a gap after the previous tensor"
            raise ModelFileError(f"{where}: offset {offset} {kind} (expected {expected_offset}: "
                                 "tensors must be contiguous)")
        expected_offset = offset + nbytes
        if expected_offset > data_size:
            raise ModelFileError(f"{where} ends at {expected_offset}, beyond the data "
                                 f"({data_size} bytes): the file is truncated")
        out.append((name, dtype, tuple(shape), offset, nbytes))
    if expected_offset != data_size:
        raise ModelFileError(f"the tensors end at byte {expected_offset} of the data, but the "
                             f"data has {data_size} bytes: trailing bytes after the last tensor")
    return out


def read_file(filepath):
    """``(header, [(name, array)])`` of a native file, every check done (arrays read-only)."""
    path = os.fspath(filepath)
    with common.open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ModelFileError(f"{path!r} is empty (0 bytes): not a fastdl model file")
        if size < PREFIX_SIZE:
            raise ModelFileError(f"{path!r} is too short ({size} bytes) to be a fastdl model "
                                 f"file (at least {PREFIX_SIZE + 2})")
        prefix = f.read(PREFIX_SIZE)
        magic, version, header_len, stored = PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise ModelFileError(f"{path!r} is not a fastdl model file: "
                                 f"{_describe_foreign(prefix)}")
        if version != FORMAT_VERSION:
            raise ModelFileError(f"{path!r}: unknown format version {version} (this fastdl "
                                 f"reads version {FORMAT_VERSION})")
        if header_len < 2 or header_len > common.MAX_CONFIG_BYTES:
            raise ModelFileError(f"{path!r}: header length {header_len} is outside the allowed "
                                 f"range [2, {common.MAX_CONFIG_BYTES}]")
        if header_len > size - PREFIX_SIZE:
            raise ModelFileError(f"{path!r}: the header ({header_len} bytes) extends beyond the "
                                 f"end of the file ({size} bytes): the file is truncated")
        body = f.read()
    if len(body) != size - PREFIX_SIZE:
        raise ModelFileError(f"{path!r} changed while it was being read")
    digest = hashlib.sha256()
    digest.update(prefix[:20])
    digest.update(body)
    if digest.digest() != stored:
        raise ModelFileError(f"{path!r}: checksum mismatch: the file is corrupted or was "
                             "modified")
    header = common.loads_strict(body[:header_len], f"{path!r}: the header")
    if not isinstance(header, dict):
        raise ModelFileError(f"{path!r}: the header must be a JSON object")
    unknown = set(header) - _HEADER_KEYS
    if unknown:
        raise ModelFileError(f"{path!r}: unknown header keys {sorted(unknown)}")
    for key in ("format", "kind", "tensors"):
        if key not in header:
            raise ModelFileError(f"{path!r}: the header has no {key!r}")
    if header["format"] != "fastdl":
        raise ModelFileError(f"{path!r}: header format {header['format']!r:.100} is not 'fastdl'")
    if header["kind"] not in ("model", "weights"):
        raise ModelFileError(f"{path!r}: unknown kind {header['kind']!r:.100}")
    for key in ("model_config", "compile_config"):
        if header.get(key) is not None and not isinstance(header[key], dict):
            raise ModelFileError(f"{path!r}: header {key!r} must be a JSON object or null")
    with common.naming_file(path):
        table = _check_tensor_table(header["tensors"], len(body) - header_len)
    tensors = []
    for name, dtype, shape, offset, nbytes in table:
        dt = DTYPES[dtype]
        array = np.frombuffer(body, dtype=dt, count=nbytes // dt.itemsize,
                              offset=header_len + offset).reshape(shape)
        tensors.append((name, array))
    return header, tensors


def _split(tensors, path):
    layer_tensors, optimizer_tensors = [], []
    for name, array in tensors:
        if name.startswith("layers/"):
            layer_tensors.append((name, array))
        elif name.startswith("optimizer/"):
            optimizer_tensors.append((name, array))
        else:
            raise ModelFileError(f"{path!r}: unexpected tensor name {name!r:.100}")
    for i, (name, _) in enumerate(optimizer_tensors):
        if name != f"optimizer/{i}":
            raise ModelFileError(f"{path!r}: optimizer tensors must be named optimizer/0, "
                                 f"optimizer/1, ... in order; found {name!r:.100} at {i}")
    return layer_tensors, optimizer_tensors


def match_weights(model, layer_tensors, where):
    """Pair every model weight with the file's tensor of the same name: exactly the expected
    names, shapes and dtypes, or ModelFileError. Returns ``[(layer, [arrays])]``."""
    plan = [(layer, [f"{path}/{n}" for n in common.layer_weight_names(layer)])
            for path, layer in common.layer_paths(model)]
    given = dict(layer_tensors)
    names = [n for _, layer_names in plan for n in layer_names]
    name_set = set(names)
    missing = [n for n in names if n not in given]
    extra = [n for n in given if n not in name_set]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing[:10]}")
        if extra:
            parts.append(f"unexpected {extra[:10]}")
        raise ModelFileError(f"{where}: the weights do not match model {model.name!r}: "
                             + "; ".join(parts))
    for layer, layer_names in plan:
        for name, current in zip(layer_names, layer.weights):
            new = given[name]
            if new.shape != current.shape:
                raise ModelFileError(f"{where}: weight {name!r} has shape {current.shape} in "
                                     f"the model, {new.shape} in the file")
            if new.dtype != current.dtype:
                raise ModelFileError(f"{where}: weight {name!r} has dtype {current.dtype} in "
                                     f"the model, {new.dtype} in the file")
    return [(layer, [given[n] for n in layer_names]) for layer, layer_names in plan]


def assign(pairs):
    """Copy validated weights into the layers (cannot fail after ``match_weights``)."""
    for layer, arrays in pairs:
        if arrays:
            layer.set_weights(arrays)


def _layer_budget(layer_tensors):
    return sum(int(a.size) for _, a in layer_tensors)


def load_model(filepath, custom_objects=None, compile=True):
    path = os.fspath(filepath)
    header, tensors = read_file(path)
    if header["kind"] != "model":
        raise ModelFileError(f"{path!r} holds weights only (written by save_weights): build the "
                             "model in code and call model.load_weights")
    description = header.get("model_config")
    if description is None:
        raise ModelFileError(f"{path!r}: the header has no model_config")
    layer_tensors, optimizer_tensors = _split(tensors, path)
    compile_cfg = header.get("compile_config")
    if optimizer_tensors and compile_cfg is None:
        raise ModelFileError(f"{path!r}: optimizer state without a compile config")
    with common.preserved_random_state():
        with common.naming_file(path):
            model = common.build_model(description, custom_objects,
                                       budget=_layer_budget(layer_tensors))
        pairs = match_weights(model, layer_tensors, repr(path))
        assign(pairs)
        if compile and compile_cfg is not None:
            with common.naming_file(path):
                common.compile_from_config(model, compile_cfg, custom_objects)
            if optimizer_tensors:
                arrays = common.check_optimizer_state(model, [a for _, a in optimizer_tensors],
                                                      repr(path))
                common.set_optimizer_state(model, arrays, repr(path))
        common.restore_privacy(model, header.get(common.PRIVACY_KEY),
                               compile and compile_cfg is not None, repr(path))
    return model


def load_weights(model, filepath):
    path = os.fspath(filepath)
    header, tensors = read_file(path)
    layer_tensors, _ = _split(tensors, path)
    if not model.built and not model.weights:
        shape = common.model_input_shape(model)
        if shape is None:
            description = header.get("model_config") or {}
            config = description.get("config") if isinstance(description, dict) else None
            raw = config.get("build_input_shape") if isinstance(config, dict) else None
            build = description.get("build_config") if isinstance(description, dict) else None
            if raw is None and isinstance(build, dict):     # a subclassed model's
                raw = build.get("input_shape")
            if raw is not None:
                shape = common._shape_from(raw, f"{path!r}: build_input_shape")
        if shape is None:
            raise ModelFileError(f"model {model.name!r} is not built and neither it nor the file "
                                 "gives an input shape; call model.build(input_shape) first")
        common.build_unbuilt(model, tuple(shape))
    pairs = match_weights(model, layer_tensors, repr(path))
    assign(pairs)
