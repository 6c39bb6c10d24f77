"""The UCI 8x8 handwritten digits (Alpaydin & Kaynak, 1998), bundled: works offline.

1797 grey-scale 8x8 images of the digits 0-9 (the copy scikit-learn ships; attribution in
``data/README.md``).
"""
import gzip
import io
from importlib import resources

import numpy as np

NUM_TRAIN, NUM_TEST = 1437, 360
SPLIT_SEED = 0
_FILE = "digits.csv.gz"


def load_data():
    """Load the digits as ``(x_train, y_train), (x_test, y_test)``.

    ``x``: float32 ``(N, 8, 8, 1)`` (NHWC, one channel), the raw 0..16 pixel counts divided by 16, so
    in [0, 1]. ``y``: uint8 ``(N,)`` in 0..9. The split is fixed: the rows are permuted with
    ``np.random.RandomState(0).permutation(1797)``; the first 1437 are training, the last 360 test.
    """
    raw = gzip.decompress((resources.files(__package__) / "data" / _FILE).read_bytes())
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64, ndmin=2)
    n = NUM_TRAIN + NUM_TEST
    if table.shape != (n, 65):
        raise ValueError(f"the bundled {_FILE} is damaged: {table.shape}, expected ({n}, 65)")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"the bundled {_FILE} is damaged: values out of range")
    order = np.random.RandomState(SPLIT_SEED).permutation(n)
    x = (pixels.astype(np.float32) / np.float32(16)).reshape(n, 8, 8, 1)[order]
    y = labels.astype(np.uint8)[order]
    return (x[:NUM_TRAIN], y[:NUM_TRAIN]), (x[NUM_TRAIN:], y[NUM_TRAIN:])
