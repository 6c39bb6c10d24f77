"""CIFAR-10: 60,000 32x32 colour images in 10 classes (Krizhevsky, 2009).

Labels: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse, 8 ship, 9 truck.
"""
from pathlib import Path

import numpy as np

from fastdl.datasets import _files

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
ARCHIVE = "cifar-10-python.tar.gz"  # 170,498,071 bytes

RECORDS_PER_BATCH = 10000  # every official batch file holds exactly this many images
NUM_CLASSES = 10
_PIXELS = 3 * 32 * 32
_RECORD_BYTES = 1 + _PIXELS  # binary format: one label byte, then the R, G, B planes

# Bounds from the official files, past which reading stops with DatasetFormatError (so a hostile
# archive can neither run long nor fill memory): both official archives decompress to about 185 MB
# in 9 members (6 batches of about 31 MB, a meta file, a readme); a python batch unpickles to about
# 30.7 million items (3072 pixels and a label and a file name for each of its 10,000 images).
MAX_ARCHIVE_BYTES = 256 << 20
MAX_ARCHIVE_MEMBERS = 64
MAX_BATCH_ITEMS = 1 << 26

_PY_DIR, _BIN_DIR = "cifar-10-batches-py", "cifar-10-batches-bin"
_PY_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
_BIN_FILES = [f + ".bin" for f in _PY_FILES]
# Looked up in each cache folder, in order: extracted folders (fastest), then archives. The Keras
# names are where Keras 2 / 3 put the same data (3.6+ extracts into "cifar-10-batches-py-target/").
_ARCHIVES = [ARCHIVE, "cifar-10-binary.tar.gz", "cifar-10-batches-py.tar.gz",
             "cifar-10-batches-py_archive", "cifar-10-batches-py-target_archive"]
_CACHE_NAMES = [_PY_DIR, _BIN_DIR, "cifar-10-batches-py-target"] + _ARCHIVES


def load_data(path=None):
    """Load CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``.

    ``x_train`` uint8 ``(50000, 32, 32, 3)`` (NHWC, C-contiguous), ``y_train`` uint8 ``(50000, 1)``,
    ``x_test`` uint8 ``(10000, 32, 32, 3)``, ``y_test`` uint8 ``(10000, 1)``, as in Keras.

    ``path``: the python archive ``cifar-10-python.tar.gz``, the binary archive
    ``cifar-10-binary.tar.gz``, one of their extracted folders (``cifar-10-batches-py/``,
    ``cifar-10-batches-bin/``), or a folder that holds one of these. Default: search the fastdl and
    Keras caches, then download the python archive (sha256-checked) into the fastdl cache.
    Archives are read in place; malformed data, or more than the official files hold (see
    ``MAX_ARCHIVE_BYTES`` and the other bounds), raises ``DatasetFormatError`` (a ``ValueError``).
    """
    source = _files.find("CIFAR-10", path, _CACHE_NAMES, remote={"url": URL, "sha256": SHA256},
                         download_name=ARCHIVE)
    batches = _read_batches(source)
    x_train = np.concatenate([batches[f][0] for f in _PY_FILES[:5]])
    y_train = np.concatenate([batches[f][1] for f in _PY_FILES[:5]])
    x_test, y_test = batches["test_batch"]
    return ((_to_nhwc(x_train), y_train.reshape(-1, 1)),
            (_to_nhwc(x_test), y_test.reshape(-1, 1)))


def _to_nhwc(planes):
    """(N, 3072) rows of R, G, B 32x32 planes -> contiguous (N, 32, 32, 3)."""
    return np.ascontiguousarray(planes.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _read_batches(source):
    """{python batch name: (pixels (n, 3072) uint8, labels (n,) uint8)} from any supported source."""
    source = Path(source)
    if source.is_dir():
        for folder in (source, source / _PY_DIR, source / _BIN_DIR):
            for names, parse in ((_PY_FILES, _parse_py_batch), (_BIN_FILES, _parse_bin_batch)):
                if all((folder / f).is_file() for f in names):
                    raw = _files.read_files([folder / f for f in names], MAX_ARCHIVE_BYTES)
                    return {f: parse(data, path) for f, (path, data) in zip(_PY_FILES, raw.items())}
        for name in _ARCHIVES:
            if (source / name).is_file():
                return _read_batches(source / name)
        raise _files.DatasetNotFoundError(
            f"{source} holds no CIFAR-10 data: expected the files {', '.join(_PY_FILES)} (python "
            f"version) or {', '.join(_BIN_FILES)} (binary version), directly or in {_PY_DIR}/ or "
            f"{_BIN_DIR}/, or one of the archives {', '.join(_ARCHIVES)}")
    py_names = {f"{_PY_DIR}/{f}": f for f in _PY_FILES}
    bin_names = {f"{_BIN_DIR}/{f}.bin": f for f in _PY_FILES}
    members = _files.read_tar_members(source, {**py_names, **bin_names},
                                      max_members=MAX_ARCHIVE_MEMBERS, max_bytes=MAX_ARCHIVE_BYTES)
    if all(m in members for m in py_names):
        return {f: _parse_py_batch(members[m], f"{source}:{m}") for m, f in py_names.items()}
    if all(m in members for m in bin_names):
        return {f: _parse_bin_batch(members[m], f"{source}:{m}") for m, f in bin_names.items()}
    raise _files.DatasetFormatError(
        f"{source} is not a complete CIFAR-10 archive: expected the members {sorted(py_names)} or "
        f"{sorted(bin_names)}; found {sorted(members) or 'none of them'}")


def _check_labels(labels, where, num_classes=NUM_CLASSES):
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise _files.DatasetFormatError(f"{where}: labels must be in [0, {num_classes}), "
                                        f"found {bad[:5].tolist()}")
    return labels


def _parse_bin_batch(raw, where):
    n = RECORDS_PER_BATCH
    if len(raw) != n * _RECORD_BYTES:
        raise _files.DatasetFormatError(f"{where}: {len(raw)} bytes, expected exactly {n * _RECORD_BYTES} "
                                        f"({n} records of {_RECORD_BYTES} bytes)")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(n, _RECORD_BYTES)
    return records[:, 1:], _check_labels(records[:, 0], where).astype(np.uint8)


def _parse_py_batch(raw, where):
    data, (labels,) = parse_pickled_batch(raw, where, RECORDS_PER_BATCH, {"labels": NUM_CLASSES},
                                          MAX_BATCH_ITEMS)
    return data, labels.astype(np.uint8)


def parse_pickled_batch(raw, where, n, label_keys, max_items):
    """(pixels uint8 (n, 3072), [int64 labels (n,) for each key]) of a python-version CIFAR batch:
    a pickled dict with ``b"data"`` and, for each ``label_keys`` entry ``{key: number of classes}``,
    a list of ``n`` ints. Read with the restricted unpickler, at most ``max_items`` items."""
    batch = _files.restricted_loads(raw, encoding="bytes", source=str(where), max_items=max_items)
    if not isinstance(batch, dict):
        raise _files.DatasetFormatError(f"{where}: expected a pickled dict, found {type(batch).__name__}")
    keys = {k.decode("utf-8", "replace") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in keys or any(k not in keys for k in label_keys):
        wanted = " and ".join(repr(k.encode()) for k in ["data", *label_keys])
        raise _files.DatasetFormatError(f"{where}: the batch dict needs keys {wanted}, "
                                        f"found {sorted(map(repr, batch))}")
    data = keys["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape != (n, _PIXELS):
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _files.DatasetFormatError(f"{where}: b'data' must be uint8 ({n}, {_PIXELS}), found {desc}")
    out = []
    for key, num_classes in label_keys.items():
        labels = keys[key]
        if not isinstance(labels, (list, np.ndarray)) or len(labels) != n:
            desc = f"{len(labels)} labels" if hasattr(labels, "__len__") else type(labels).__name__
            raise _files.DatasetFormatError(f"{where}: b'{key}' must be a list of {n} ints, found {desc}")
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in labels):
            raise _files.DatasetFormatError(f"{where}: b'{key}' must hold ints only")
        try:
            labels = np.asarray(labels, dtype=np.int64)
        except OverflowError as e:
            raise _files.DatasetFormatError(f"{where}: a label does not fit in int64: {e}") from e
        out.append(_check_labels(labels, where, num_classes))
    return data, out
