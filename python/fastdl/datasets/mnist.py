"""MNIST: 70,000 28x28 grey-scale images of the handwritten digits 0-9 (LeCun, Cortes and Burges).

Read from Keras's ``mnist.npz`` (``x_train`` uint8 (60000, 28, 28), ``y_train`` uint8 (60000,),
``x_test`` (10000, 28, 28), ``y_test`` (10000,)).
"""
import numpy as np

from fastdl.datasets import _files

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
NUM_CLASSES = 10
# Bounds from the official file, past which reading stops with DatasetFormatError: its four arrays
# decompress to about 55 MB (x_train alone 47,040,000 pixels).
MAX_NPZ_BYTES = 96 << 20
MAX_NPZ_ITEMS = 1 << 26  # items in one array
_KEYS = ["x_train", "y_train", "x_test", "y_test"]


def load_data(path="mnist.npz"):
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``, uint8 arrays as in Keras.

    ``x``: ``(N, 28, 28)`` pixels 0-255; ``y``: ``(N,)`` labels 0-9. ``path``: a bare file name is
    looked up in the fastdl then Keras cache (``$KERAS_HOME/datasets``, ``~/.keras/datasets``) and
    downloaded there (sha256-checked), never read from the working folder; any other path is read
    as is. Arrays of another shape or dtype, labels outside 0-9, or more than the official file
    holds (``MAX_NPZ_BYTES``, ``MAX_NPZ_ITEMS``) raise ``DatasetFormatError`` naming the file.
    """
    source = _files.find("MNIST (mnist.npz)", path, ["mnist.npz"],
                         remote={"url": URL, "sha256": SHA256})
    source = _files.file_in(source, "mnist.npz")
    arrays = _files.load_npz(source, _KEYS, max_bytes=MAX_NPZ_BYTES, max_items=MAX_NPZ_ITEMS)
    return tuple(check_images(arrays["x_" + s], arrays["y_" + s], f"{source}[x_{s}]", f"{source}[y_{s}]")
                 for s in ("train", "test"))


def check_images(x, y, x_where, y_where):
    """(x, y) if ``x`` is uint8 ``(N, 28, 28)`` and ``y`` uint8 ``(N,)`` in 0..9, else DatasetFormatError."""
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise _files.DatasetFormatError(f"{x_where}: expected uint8 images of shape (N, 28, 28), "
                                        f"found {x.dtype} {x.shape}")
    if y.dtype != np.uint8 or y.shape != (len(x),):
        raise _files.DatasetFormatError(f"{y_where}: expected {len(x)} uint8 labels (1-D, one per "
                                        f"image of {x_where}), found {y.dtype} {y.shape}")
    if y.size and y.max() >= NUM_CLASSES:
        raise _files.DatasetFormatError(f"{y_where}: labels must be in [0, {NUM_CLASSES}), "
                                        f"found {y[y >= NUM_CLASSES][:5].tolist()}")
    return x, y
