"""Keras's seeded shuffle and ``test_split`` rule, shared by ``reuters`` and the housing data sets."""
import numpy as np

from fastdl.datasets import _files
from fastdl.datasets._sequences import check_int


def check_test_split(loader, test_split):
    """``test_split`` as a float in ``[0, 1)`` (Keras's rule), else TypeError/ValueError."""
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float, np.integer, np.floating)):
        raise TypeError(f"{loader}: test_split must be a float in [0, 1), received "
                        f"{type(test_split).__name__} {test_split!r}")
    if not 0 <= test_split < 1:
        raise ValueError(f"{loader}: test_split must be in [0, 1), received {test_split}")
    return float(test_split)


def shuffled_order(loader, n, seed):
    """``np.arange(n)`` shuffled in place by ``np.random.RandomState(seed)``, as Keras does."""
    order = np.arange(n)
    np.random.RandomState(check_int(loader, "seed", seed, 0, maximum=2**32)).shuffle(order)
    return order


def train_count(n, test_split):
    """How many of ``n`` shuffled samples go to training: ``int(n * (1 - test_split))``, as Keras."""
    return int(n * (1 - test_split))


def read_xy(source, features, *, max_bytes, max_items):
    """The arrays ``x`` (N, features) and ``y`` (N,) of a housing ``.npz`` (numbers, no pickle)."""
    arrays = _files.load_npz(source, ["x", "y"], max_bytes=max_bytes, max_items=max_items)
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 2 or x.shape[1] != features or x.dtype.kind not in "iuf":
        raise _files.DatasetFormatError(f"{source}[x]: expected numbers of shape (N, {features}), "
                                        f"found {x.dtype} {x.shape}")
    if y.shape != (len(x),) or y.dtype.kind not in "iuf":
        raise _files.DatasetFormatError(f"{source}[y]: expected {len(x)} numbers (1-D), "
                                        f"found {y.dtype} {y.shape}")
    return x, y


def split_xy(loader, x, y, test_split, seed):
    """Keras's housing split: shuffle with ``RandomState(seed)``, the first
    ``int(N * (1 - test_split))`` samples are training, the rest test."""
    order = shuffled_order(loader, len(x), seed)
    x, y = x[order], y[order]
    n = train_count(len(x), test_split)
    return (x[:n], y[:n]), (x[n:], y[n:])
