"""Boston housing prices (Harrison and Rubinfeld, 1978): 506 samples of 13 features; the target is
the median home value in thousands of dollars. Read from Keras's ``boston_housing.npz``."""
from fastdl.datasets import _files, _split

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/boston_housing.npz"
SHA256 = "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"
NUM_FEATURES = 13
# Bounds from the official file (506 x 13 float64, about 57 KB), with a wide margin.
MAX_NPZ_BYTES = 4 << 20
MAX_NPZ_ITEMS = 1 << 18


def load_data(path="boston_housing.npz", test_split=0.2, seed=113):
    """Load the data as ``(x_train, y_train), (x_test, y_test)`` with Keras's split.

    ``x``: ``(N, 13)``, ``y``: ``(N,)``, in the file's dtype (float64). The 506 samples are shuffled
    with ``np.random.RandomState(seed)``; the first ``int(506 * (1 - test_split))`` are training
    (404 by default). ``test_split`` must be in [0, 1). ``path``: a bare name is looked up in the
    fastdl then Keras cache and downloaded there (sha256-checked); any other path is read as is.
    A malformed file raises ``DatasetFormatError`` naming it.
    """
    test_split = _split.check_test_split("boston_housing.load_data", test_split)
    source = _files.find("Boston housing (boston_housing.npz)", path, ["boston_housing.npz"],
                         remote={"url": URL, "sha256": SHA256})
    source = _files.file_in(source, "boston_housing.npz")
    x, y = _split.read_xy(source, NUM_FEATURES, max_bytes=MAX_NPZ_BYTES, max_items=MAX_NPZ_ITEMS)
    return _split.split_xy("boston_housing.load_data", x, y, test_split, seed)
