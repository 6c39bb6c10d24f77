"""California housing prices (Pace and Barry, 1997): 20,640 census block groups of 8 features; the
target is the median house value in dollars. Read from Keras's ``california_housing.npz``."""
from fastdl.datasets import _files, _split

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/california_housing.npz"
SHA256 = "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f"
NUM_FEATURES = 8
SMALL_SIZE = 600  # version="small": the first 600 samples, as in Keras
# Bounds from the official file (20,640 x 8 values and 20,640 targets, under 1.5 MB), with a margin.
MAX_NPZ_BYTES = 16 << 20
MAX_NPZ_ITEMS = 1 << 20


def load_data(version="large", path="california_housing.npz", test_split=0.2, seed=113):
    """Load the data as ``(x_train, y_train), (x_test, y_test)`` with Keras's split.

    ``x``: ``(N, 8)``, ``y``: ``(N,)``, in the file's dtype. ``version="large"`` uses all 20,640
    samples, ``"small"`` the first 600. The samples are then shuffled with
    ``np.random.RandomState(seed)``; the first ``int(N * (1 - test_split))`` are training.
    ``test_split`` must be in [0, 1). ``path``: a bare name is looked up in the fastdl then Keras
    cache and downloaded there (sha256-checked); any other path is read as is. A malformed file
    raises ``DatasetFormatError`` naming it.
    """
    loader = "california_housing.load_data"
    if version not in ("small", "large"):
        raise ValueError(f"{loader}: version must be 'small' or 'large', received {version!r}")
    test_split = _split.check_test_split(loader, test_split)
    source = _files.find("California housing (california_housing.npz)", path, ["california_housing.npz"],
                         remote={"url": URL, "sha256": SHA256})
    source = _files.file_in(source, "california_housing.npz")
    x, y = _split.read_xy(source, NUM_FEATURES, max_bytes=MAX_NPZ_BYTES, max_items=MAX_NPZ_ITEMS)
    if version == "small":
        x, y = x[:SMALL_SIZE], y[:SMALL_SIZE]
    return _split.split_xy(loader, x, y, test_split, seed)
