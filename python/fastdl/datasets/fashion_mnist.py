"""Fashion-MNIST: 70,000 28x28 grey-scale images of 10 kinds of clothing (Xiao, Rasul and
Vollgraf, 2017), a drop-in replacement for MNIST.

Labels: 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker,
8 bag, 9 ankle boot. Read from the four gzipped IDX files in the ``fashion-mnist`` cache folder.
"""
import gzip
import zlib

import numpy as np

from fastdl.datasets import _files
from fastdl.datasets.mnist import check_images

BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FOLDER = "fashion-mnist"  # in each cache, as Keras lays it out
# (file, md5 published by Zalando; Keras checks none)
FILES = [("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
         ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
         ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
         ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79")]
LABELS_MAGIC, IMAGES_MAGIC = 0x00000801, 0x00000803  # IDX: unsigned bytes, 1 or 3 dimensions
# Bound from the official files (60,000 train and 10,000 test images), past which reading stops with
# DatasetFormatError before anything is allocated or decompressed beyond it.
MAX_ITEMS = 100_000  # images (or labels) in one file


def load_data():
    """Load Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``, uint8 arrays as in Keras.

    ``x``: ``(N, 28, 28)``; ``y``: ``(N,)`` labels 0-9. Each file is looked up as
    ``fashion-mnist/<file>`` in the fastdl then Keras cache and otherwise downloaded into the fastdl
    cache (md5-checked). Each IDX header is checked (magic number, dimensions, a payload of exactly
    the declared size, at most ``MAX_ITEMS`` items); a bad file raises ``DatasetFormatError`` naming it.
    """
    arrays, sources = [], []
    for name, md5 in FILES:
        source = _files.find(f"Fashion-MNIST ({FOLDER}/{name})", None, [f"{FOLDER}/{name}"],
                             remote={"url": BASE_URL + name, "md5": md5})
        arrays.append(read_idx(source, images="images" in name))
        sources.append(source)
    return (check_images(arrays[1], arrays[0], sources[1], sources[0]),
            check_images(arrays[3], arrays[2], sources[3], sources[2]))


def read_idx(path, images):
    """The uint8 array of a gzipped IDX file: labels ``(N,)``, or images ``(N, 28, 28)``."""
    magic, dims, want = (IMAGES_MAGIC, 3, "(N, 28, 28)") if images else (LABELS_MAGIC, 1, "(N,)")
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as gz:
            header = gz.read(4 + 4 * dims)
            if len(header) != 4 + 4 * dims:
                raise _files.DatasetFormatError(f"{path}: truncated IDX header ({len(header)} bytes)")
            values = np.frombuffer(header, dtype=">u4")
            if values[0] != magic:
                raise _files.DatasetFormatError(f"{path}: IDX magic number 0x{int(values[0]):08x}, "
                                                f"expected 0x{magic:08x}")
            shape = tuple(int(v) for v in values[1:])
            if shape[0] > MAX_ITEMS or shape[1:] != (28, 28)[:dims - 1]:
                raise _files.DatasetFormatError(f"{path}: IDX dimensions {shape}, expected {want} "
                                                f"with N <= {MAX_ITEMS}")
            count = int(np.prod(shape))
            data = gz.read(count + 1)  # one byte more than declared: finds trailing data, checks the CRC
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise _files.DatasetFormatError(f"{path}: not a readable gzip file or truncated: "
                                        f"{type(e).__name__}: {e}") from e
    if len(data) != count:
        raise _files.DatasetFormatError(f"{path}: the IDX header declares {count} bytes of data, the "
                                        f"file holds {'more' if len(data) > count else len(data)}")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)
