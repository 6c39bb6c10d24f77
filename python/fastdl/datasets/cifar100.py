"""CIFAR-100: 60,000 32x32 colour images in 100 classes ("fine" labels) grouped into 20
superclasses ("coarse" labels) (Krizhevsky, 2009)."""
from pathlib import Path

from fastdl.datasets import _files
from fastdl.datasets.cifar10 import _to_nhwc, parse_pickled_batch

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
ARCHIVE = "cifar-100-python.tar.gz"  # 169,001,437 bytes
NUM_TRAIN, NUM_TEST = 50000, 10000
NUM_CLASSES = {"fine": 100, "coarse": 20}
# Bounds from the official archive, past which reading stops with DatasetFormatError: it decompresses
# to about 185 MB in 5 members (train, test, meta, two small files); the train pickle unpickles to
# about 154 million items (3072 pixels, two labels and a file name for each of 50,000 images).
MAX_ARCHIVE_BYTES = 256 << 20
MAX_ARCHIVE_MEMBERS = 32
MAX_BATCH_ITEMS = 1 << 28

_DIR = "cifar-100-python"
# Looked up in each cache folder, in order: extracted folders, then archives. The Keras names are
# where Keras 2 / 3 put the same data (3.6+ extracts into "cifar-100-python-target/").
_ARCHIVES = [ARCHIVE, "cifar-100-python-target_archive", "cifar-100-python_archive"]
_CACHE_NAMES = [_DIR, "cifar-100-python-target"] + _ARCHIVES


def load_data(label_mode="fine"):
    """Load CIFAR-100 as ``(x_train, y_train), (x_test, y_test)``, as in Keras.

    ``x_train`` uint8 ``(50000, 32, 32, 3)`` (NHWC, C-contiguous), ``y_train`` int64 ``(50000, 1)``,
    ``x_test`` uint8 ``(10000, 32, 32, 3)``, ``y_test`` int64 ``(10000, 1)``. ``label_mode``:
    ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).

    Looks in the fastdl then Keras cache for ``cifar-100-python/`` (Keras's extracted folder, also
    inside ``cifar-100-python-target/``) or ``cifar-100-python.tar.gz``, else downloads the archive
    (sha256-checked) into the fastdl cache. Archives are read in place; the pickles only through the
    restricted unpickler. Malformed data, or more than the official files hold
    (``MAX_ARCHIVE_BYTES`` and the other bounds), raises ``DatasetFormatError`` naming the file.
    """
    if label_mode not in NUM_CLASSES:
        raise ValueError(f"cifar100.load_data: label_mode must be 'fine' or 'coarse', "
                         f"received {label_mode!r}")
    source = _files.find("CIFAR-100", None, _CACHE_NAMES, remote={"url": URL, "sha256": SHA256},
                         download_name=ARCHIVE)
    key = f"{label_mode}_labels"
    out = []
    for (raw, where), n in zip(_read(Path(source)), (NUM_TRAIN, NUM_TEST)):
        data, (labels,) = parse_pickled_batch(raw, where, n, {key: NUM_CLASSES[label_mode]},
                                              MAX_BATCH_ITEMS)
        out.append((_to_nhwc(data), labels.reshape(-1, 1)))
    return tuple(out)


def _read(source):
    """[(bytes, where they came from)] of the ``train`` and ``test`` pickles in a folder or archive."""
    if source.is_dir():
        for folder in (source, source / _DIR):
            paths = [folder / "train", folder / "test"]
            if all(p.is_file() for p in paths):
                return [(raw, p) for p, raw in _files.read_files(paths, MAX_ARCHIVE_BYTES).items()]
        raise _files.DatasetNotFoundError(f"{source} holds no CIFAR-100 data: expected the files "
                                          f"train and test, directly or in {_DIR}/")
    members = [f"{_DIR}/train", f"{_DIR}/test"]
    found = _files.read_tar_members(source, set(members), max_members=MAX_ARCHIVE_MEMBERS,
                                    max_bytes=MAX_ARCHIVE_BYTES)
    missing = [m for m in members if m not in found]
    if missing:
        raise _files.DatasetFormatError(f"{source} is not a complete CIFAR-100 archive: it lacks "
                                        f"the members {missing}")
    return [(found[m], f"{source}:{m}") for m in members]
