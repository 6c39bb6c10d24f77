"""mnist, fashion_mnist, cifar100, reuters, boston_housing and california_housing on small files
written in the official formats, in temporary Keras/fastdl caches; never touches the network."""
import gzip
import importlib.util
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import textwrap

import numpy as np
import pytest

from fastdl.datasets import (_files, boston_housing, california_housing, cifar100, fashion_mnist,
                             imdb, mnist, reuters)
from offline_caches import offline  # noqa: F401  (autouse: no network, caches in tmp_path)


@pytest.fixture
def keras_dir(tmp_path):
    d = tmp_path / "keras_home" / "datasets"
    d.mkdir(parents=True)
    return d


class Evil:
    """Unpickling this runs ``os.mkdir`` on the marker path."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


# ----------------------------------------------------------------------------- file writers

def write_mnist(folder, n_train=6, n_test=4, seed=0, name="mnist.npz", **override):
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}
    arrays.update(override)
    np.savez_compressed(folder / name, **arrays)
    return arrays


def idx_bytes(arr, magic=None, dims=None, extra=b""):
    """An IDX file: big-endian magic (0x801 labels, 0x803 images), big-endian dims, the bytes."""
    magic = (0x800 + arr.ndim) if magic is None else magic
    dims = arr.shape if dims is None else dims
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + arr.tobytes() + extra


FASHION = [name for name, _ in fashion_mnist.FILES]


def write_fashion(folder, n_train=5, n_test=3, seed=0, **override):
    rng = np.random.default_rng(seed)
    arrays = {FASHION[0]: rng.integers(0, 10, n_train, dtype=np.uint8),
              FASHION[1]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              FASHION[2]: rng.integers(0, 10, n_test, dtype=np.uint8),
              FASHION[3]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)}
    (folder / "fashion-mnist").mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        raw = override.get(name, idx_bytes(arr))
        (folder / "fashion-mnist" / name).write_bytes(gzip.compress(raw))
    return arrays


def _py2_str(b):
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _py2(obj):
    """Protocol-2 opcodes for ``obj`` as Python 2's cPickle wrote the CIFAR files: ``bytes`` are
    Python 2 ``str``s, a uint8 matrix goes through ``numpy.core.multiarray._reconstruct``."""
    if isinstance(obj, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, list):
        return b"](" + b"".join(map(_py2, obj)) + b"e"
    if isinstance(obj, bytes):
        return _py2_str(obj)
    if isinstance(obj, int):
        return b"J" + struct.pack("<i", obj)
    assert isinstance(obj, np.ndarray) and obj.dtype == np.uint8 and obj.ndim == 2
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _py2(0) + b"\x85" + _py2_str(b"b")
            + b"\x87R(" + _py2(1) + _py2(obj.shape[0]) + _py2(obj.shape[1]) + b"\x86"
            + b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2(0) + _py2(1) + b"\x87R("
            + _py2(3) + _py2_str(b"|") + b"NNN" + _py2(-1) + _py2(-1) + _py2(0) + b"tb"
            + b"\x89" + _py2_str(obj.tobytes()) + b"tb")


def cifar100_batch(n, seed, fine=None):
    rng = np.random.default_rng(seed)
    batch = {b"filenames": [b"img_%d.png" % i for i in range(n)], b"batch_label": b"training batch 1 of 1",
             b"fine_labels": fine if fine is not None else rng.integers(0, 100, n).tolist(),
             b"coarse_labels": rng.integers(0, 20, n).tolist(),
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
    return batch, b"\x80\x02" + _py2(batch) + b"."


def write_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def small_cifar100(monkeypatch):
    monkeypatch.setattr(cifar100, "NUM_TRAIN", 5)
    monkeypatch.setattr(cifar100, "NUM_TEST", 3)


def write_cifar100(folder, layout="archive"):
    """The official archive (members cifar-100-python/train, test, meta) or Keras's extracted folders."""
    train, train_raw = cifar100_batch(5, 1)
    test, test_raw = cifar100_batch(3, 2)
    members = {"cifar-100-python/train": train_raw, "cifar-100-python/test": test_raw,
               "cifar-100-python/meta": b"\x80\x02}."}
    if layout == "archive":
        write_tar(folder / "cifar-100-python.tar.gz", members)
    else:  # Keras 2 extracted into cifar-100-python/, Keras 3.6+ into cifar-100-python-target/
        root = folder / ("cifar-100-python-target" if layout == "keras3" else "")
        for name, data in members.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    return train, test


def write_reuters(folder, n=12, seed=0, name="reuters.npz"):
    rng = np.random.default_rng(seed)
    x = np.empty(n, dtype=object)
    for i in range(n):
        x[i] = rng.integers(1, 40, rng.integers(1, 9)).tolist()
    y = rng.integers(0, 46, n)
    np.savez(folder / name, x=x, y=y)
    return x, y


def write_housing(folder, name, n, features, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, features)).astype(dtype), rng.random(n).astype(dtype)
    np.savez(folder / name, x=x, y=y)
    return x, y


# ----------------------------------------------------------------------------- namespaces

def test_keras_datasets_namespace_imports_every_loader():
    from fastdl.keras.datasets import (boston_housing as b, california_housing as c, cifar100 as c100,
                                       fashion_mnist as f, mnist as m, reuters as r)
    assert (m, f, c100, r, b, c) == (mnist, fashion_mnist, cifar100, reuters, boston_housing,
                                     california_housing)
    import fastdl
    assert fastdl.keras.datasets.mnist is mnist


# ----------------------------------------------------------------------------- mnist

def test_mnist_from_keras_cache(keras_dir):
    want = write_mnist(keras_dir)
    (x, y), (xt, yt) = mnist.load_data()
    for got, key in ((x, "x_train"), (y, "y_train"), (xt, "x_test"), (yt, "y_test")):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want[key])
    assert x.shape == (6, 28, 28) and y.shape == (6,) and xt.shape == (4, 28, 28)


def test_mnist_path_forms(tmp_path):
    fastdl_dir = tmp_path / "fastdl_home" / "datasets"
    fastdl_dir.mkdir(parents=True)
    want = write_mnist(fastdl_dir, name="other.npz", seed=3)
    np.testing.assert_array_equal(mnist.load_data("other.npz")[0][0], want["x_train"])  # bare: cache
    own = tmp_path / "own"
    own.mkdir()
    want = write_mnist(own, seed=4)
    np.testing.assert_array_equal(mnist.load_data(own / "mnist.npz")[1][1], want["y_test"])
    np.testing.assert_array_equal(mnist.load_data(own)[1][1], want["y_test"])  # a folder holding it


@pytest.mark.parametrize("override,msg", [
    ({"x_train": np.zeros((6, 28, 28), np.float32)}, r"\[x_train\]: expected uint8 images of shape "
                                                       r"\(N, 28, 28\), found float32"),
    ({"x_test": np.zeros((4, 28, 27), np.uint8)}, r"\[x_test\]: expected uint8 .* \(4, 28, 27\)"),
    ({"y_train": np.zeros(5, np.uint8)}, r"\[y_train\]: expected 6 uint8 labels"),
    ({"y_test": np.array([1, 2, 10, 3], np.uint8)}, r"\[y_test\]: labels must be in \[0, 10\), "
                                                      r"found \[10\]"),
    ({"y_train": np.array([[1]] * 6, dtype=object)}, r"\[y_train\]: expected 6 uint8 labels"),
])
def test_mnist_format_violations_name_the_file(keras_dir, override, msg):
    write_mnist(keras_dir, **override)
    with pytest.raises(_files.DatasetFormatError, match=str(keras_dir / "mnist.npz").replace(".", r"\.") + msg):
        mnist.load_data()


def test_mnist_missing_array_and_not_a_zip(keras_dir):
    np.savez(keras_dir / "mnist.npz", x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(_files.DatasetFormatError, match=r"missing arrays \['y_train', 'x_test', 'y_test'\]"):
        mnist.load_data()
    (keras_dir / "mnist.npz").write_bytes(b"not a zip")
    with pytest.raises(_files.DatasetFormatError, match="mnist.npz: not a readable .npz"):
        mnist.load_data()


def test_mnist_bounds_are_checked_before_reading(keras_dir, monkeypatch):
    write_mnist(keras_dir)
    monkeypatch.setattr(mnist, "MAX_NPZ_ITEMS", 6 * 28 * 28 - 1)
    with pytest.raises(_files.DatasetFormatError, match=r"x_train\]: shape \(6, 28, 28\) holds 4704 items"):
        mnist.load_data()
    monkeypatch.setattr(mnist, "MAX_NPZ_BYTES", 1000)
    with pytest.raises(_files.DatasetFormatError, match="more than the 1000-byte total"):
        mnist.load_data()


def test_official_bounds_fit_the_official_files():
    assert mnist.MAX_NPZ_ITEMS > 60000 * 28 * 28 and mnist.MAX_NPZ_BYTES > 56_000_000
    assert fashion_mnist.MAX_ITEMS >= 60000
    assert cifar100.MAX_BATCH_ITEMS > 50000 * (3072 + 3) and cifar100.MAX_ARCHIVE_BYTES > 185_000_000
    assert reuters.MAX_NPZ_ITEMS > 11228 + 2_000_000
    assert boston_housing.MAX_NPZ_ITEMS > 506 * 13 and california_housing.MAX_NPZ_ITEMS > 20640 * 8


def test_offline_message_says_which_file_to_put_where(tmp_path, offline):
    fastdl_dir, keras_dir = tmp_path / "fastdl_home" / "datasets", tmp_path / "keras_home" / "datasets"
    cases = [(mnist.load_data, mnist.URL, "mnist.npz"),
             (fashion_mnist.load_data, fashion_mnist.BASE_URL + FASHION[0], f"fashion-mnist/{FASHION[0]}"),
             (cifar100.load_data, cifar100.URL, "cifar-100-python.tar.gz"),
             (reuters.load_data, reuters.URL, "reuters.npz"),
             (reuters.get_word_index, reuters.WORD_INDEX_URL, "reuters_word_index.json"),
             (boston_housing.load_data, boston_housing.URL, "boston_housing.npz"),
             (california_housing.load_data, california_housing.URL, "california_housing.npz")]
    for load, url, name in cases:
        with pytest.raises(_files.DatasetNotFoundError) as info:
            load()
        msg = str(info.value)
        assert f"  - {fastdl_dir / name}\n" in msg and f"  - {keras_dir / name}\n" in msg
        assert f"Downloading {url} failed: URLError: <urlopen error network disabled in tests>" in msg
        assert f"Fix: download {url} yourself and put it at {fastdl_dir / name}" in msg
        assert info.value.__cause__ is None and info.value.__suppress_context__
        assert offline[-1] == url
    assert not fastdl_dir.exists() or not any(p.is_file() for p in fastdl_dir.rglob("*"))


def test_download_lands_in_the_fastdl_cache_checked(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    want = write_mnist(src)
    data = (src / "mnist.npz").read_bytes()
    import hashlib
    monkeypatch.setattr(mnist, "SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(_files, "_urlopen", lambda url, timeout: FakeResponse(data))
    np.testing.assert_array_equal(mnist.load_data()[0][0], want["x_train"])
    assert (tmp_path / "fastdl_home" / "datasets" / "mnist.npz").read_bytes() == data
    monkeypatch.setattr(mnist, "SHA256", "0" * 64)
    (tmp_path / "fastdl_home" / "datasets" / "mnist.npz").unlink()
    with pytest.raises(_files.DatasetNotFoundError, match="sha256 of the downloaded file is"):
        mnist.load_data()


class FakeResponse(io.BytesIO):
    headers = {}


# ----------------------------------------------------------------------------- fashion_mnist

def test_fashion_mnist_from_keras_cache_layout(keras_dir):
    want = write_fashion(keras_dir)
    (x, y), (xt, yt) = fashion_mnist.load_data()
    np.testing.assert_array_equal(y, want[FASHION[0]])
    np.testing.assert_array_equal(x, want[FASHION[1]])
    np.testing.assert_array_equal(yt, want[FASHION[2]])
    np.testing.assert_array_equal(xt, want[FASHION[3]])
    assert x.dtype == y.dtype == np.uint8 and x.shape == (5, 28, 28) and yt.shape == (3,)


def _labels(values):
    return np.array(values, dtype=np.uint8)


@pytest.mark.parametrize("name,raw,msg", [
    (FASHION[0], idx_bytes(_labels([1, 2, 3, 4, 5]), magic=0x803), "IDX magic number 0x00000803, "
                                                                   "expected 0x00000801"),
    (FASHION[1], idx_bytes(np.zeros((5, 28, 27), np.uint8)), r"IDX dimensions \(5, 28, 27\), expected "
                                                              r"\(N, 28, 28\)"),
    (FASHION[0], idx_bytes(_labels([1]), dims=(10**9,)), r"IDX dimensions \(1000000000,\), expected "
                                                         r"\(N,\) with N <= 100000"),
    (FASHION[1], idx_bytes(np.zeros((5, 28, 28), np.uint8))[:-1], "declares 3920 bytes of data, the "
                                                                   "file holds 3919"),
    (FASHION[2], idx_bytes(_labels([1, 2, 3]), extra=b"\0"), "declares 3 bytes of data, the file holds more"),
    (FASHION[2], b"\0\0\x08", r"truncated IDX header \(3 bytes\)"),
    (FASHION[0], idx_bytes(_labels([1, 2, 3, 4])), r"expected 5 uint8 labels \(1-D, one per image of "
                                                   r".*train-images-idx3-ubyte.gz\), found uint8 \(4,\)"),
    (FASHION[0], idx_bytes(_labels([1, 2, 3, 4, 12])), r"labels must be in \[0, 10\), found \[12\]"),
])
def test_fashion_mnist_idx_header_and_payload_are_checked(keras_dir, name, raw, msg):
    write_fashion(keras_dir, **{name: raw})
    with pytest.raises(_files.DatasetFormatError, match=msg) as info:
        fashion_mnist.load_data()
    assert str(info.value).startswith(str(keras_dir / "fashion-mnist" / name))


def test_fashion_mnist_not_gzip(keras_dir):
    write_fashion(keras_dir)
    (keras_dir / "fashion-mnist" / FASHION[3]).write_bytes(b"plain bytes")
    with pytest.raises(_files.DatasetFormatError, match=f"{FASHION[3]}: not a readable gzip file"):
        fashion_mnist.load_data()


def test_fashion_mnist_bomb_stops_at_the_declared_size(keras_dir):
    # a header declaring 2 labels followed by 50 MB of zeros: read stops after 3 bytes of payload
    write_fashion(keras_dir, **{FASHION[2]: idx_bytes(_labels([1, 2]), extra=bytes(50 << 20))})
    with pytest.raises(_files.DatasetFormatError, match="declares 2 bytes of data, the file holds more"):
        fashion_mnist.load_data()


# ----------------------------------------------------------------------------- cifar100

def test_py2_writer_matches_pickle():
    batch, raw = cifar100_batch(3, 0)
    loaded = pickle.loads(raw, encoding="bytes")
    assert loaded.keys() == batch.keys() and loaded[b"fine_labels"] == batch[b"fine_labels"]
    np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])


@pytest.mark.parametrize("layout", ["archive", "keras2", "keras3"])
@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
def test_cifar100_layouts_and_label_modes(keras_dir, small_cifar100, layout, label_mode):
    train, test = write_cifar100(keras_dir, layout)
    (x, y), (xt, yt) = cifar100.load_data(label_mode)
    assert x.shape == (5, 32, 32, 3) and xt.shape == (3, 32, 32, 3) and x.dtype == np.uint8
    assert x.flags.c_contiguous and y.shape == (5, 1) and yt.shape == (3, 1)
    assert y.dtype == yt.dtype == np.int64
    for got_x, got_y, batch in ((x, y, train), (xt, yt, test)):
        planes = batch[b"data"].reshape(-1, 3, 32, 32)
        np.testing.assert_array_equal(got_x, planes.transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(got_y[:, 0], batch[f"{label_mode}_labels".encode()])


def test_cifar100_label_mode_is_checked():
    with pytest.raises(ValueError, match="label_mode must be 'fine' or 'coarse', received 'medium'"):
        cifar100.load_data("medium")


def test_cifar100_format_violations(keras_dir, small_cifar100):
    _, bad = cifar100_batch(5, 1, fine=[0, 1, 2, 3, 100])
    archive = write_tar(keras_dir / "cifar-100-python.tar.gz",
                        {"cifar-100-python/train": bad, "cifar-100-python/test": cifar100_batch(3, 2)[1]})
    with pytest.raises(_files.DatasetFormatError, match=r"cifar-100-python/train: labels must be in "
                                                        r"\[0, 100\), found \[100\]"):
        cifar100.load_data()
    write_tar(archive, {"cifar-100-python/train": cifar100_batch(4, 1)[1]})
    with pytest.raises(_files.DatasetFormatError, match=r"lacks the members \['cifar-100-python/test'\]"):
        cifar100.load_data()
    write_tar(archive, {"cifar-100-python/train": cifar100_batch(4, 1)[1],
                        "cifar-100-python/test": cifar100_batch(3, 2)[1]})
    with pytest.raises(_files.DatasetFormatError, match=r"b'data' must be uint8 \(5, 3072\), found "
                                                        r"uint8 \(4, 3072\)"):
        cifar100.load_data()
    write_tar(archive, {"../cifar-100-python/train": b""})
    with pytest.raises(_files.DatasetFormatError, match=r"unsafe member '../cifar-100-python/train'"):
        cifar100.load_data()


def test_cifar100_evil_pickle_is_refused(keras_dir, small_cifar100, tmp_path):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({b"data": Evil(marker), b"fine_labels": [0]}, protocol=2)
    write_tar(keras_dir / "cifar-100-python.tar.gz",
              {"cifar-100-python/train": payload, "cifar-100-python/test": payload})
    with pytest.raises(_files.UnsafePickleError, match="refusing to unpickle the global"):
        cifar100.load_data()
    assert not marker.exists()


# ----------------------------------------------------------------------------- reuters

def _keras_reuters(x, y, num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113,
                   start_char=1, oov_char=2, index_from=3):
    """Keras's documented reuters steps, written out one sequence at a time."""
    order = np.arange(len(x))
    np.random.RandomState(seed).shuffle(order)
    xs, labels = [list(x[i]) for i in order], list(y[order])
    if start_char is not None:
        xs = [[start_char] + [w + index_from for w in s] for s in xs]
    else:
        xs = [[w + index_from for w in s] for s in xs]
    if maxlen:
        kept = [(s, label) for s, label in zip(xs, labels) if len(s) < maxlen]
        xs, labels = [s for s, _ in kept], [label for _, label in kept]
    num_words = num_words or max(max(s) for s in xs)
    if oov_char is not None:
        xs = [[w if skip_top <= w < num_words else oov_char for w in s] for s in xs]
    else:
        xs = [[w for w in s if skip_top <= w < num_words] for s in xs]
    n = int(len(xs) * (1 - test_split))
    return (xs[:n], labels[:n]), (xs[n:], labels[n:])


@pytest.mark.parametrize("kwargs", [
    {}, {"num_words": 20, "skip_top": 5}, {"maxlen": 6, "test_split": 0.5, "seed": 7},
    {"start_char": None, "oov_char": None, "index_from": 0, "num_words": 30},
])
def test_reuters_matches_keras_steps(keras_dir, kwargs):
    x, y = write_reuters(keras_dir)
    (xt, yt), (xs, ys) = reuters.load_data(**kwargs)
    (wxt, wyt), (wxs, wys) = _keras_reuters(x, y, **kwargs)
    assert xt.dtype == object and xt.ndim == 1 and xs.ndim == 1
    assert [list(s) for s in xt] == wxt and [list(s) for s in xs] == wxs
    assert yt.tolist() == wyt and ys.tolist() == wys and yt.dtype == np.int64


def test_reuters_word_index_and_labels(keras_dir):
    (keras_dir / "reuters_word_index.json").write_text('{"the": 1, "of": 2, "to": 3}')
    assert reuters.get_word_index() == {"the": 1, "of": 2, "to": 3}
    (keras_dir / "reuters_word_index.json").write_text('{"the": 1, "the": 2}')
    with pytest.raises(_files.DatasetFormatError, match="reuters_word_index.json: duplicate key 'the'"):
        reuters.get_word_index()
    names = reuters.get_label_names()
    assert len(names) == 46 and names[:3] == ("cocoa", "grain", "veg-oil") and names[-1] == "lead"


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"num_words": 2.5}, TypeError, "reuters.load_data: num_words must be an int or None, received float"),
    ({"test_split": 1.0}, ValueError, r"reuters.load_data: test_split must be in \[0, 1\), received 1.0"),
    ({"test_split": "0.2"}, TypeError, "test_split must be a float in"),
    ({"seed": -1}, ValueError, r"seed must be in \[0, 4294967296\)"),
])
def test_reuters_arguments_are_checked(keras_dir, kwargs, exc, msg):
    write_reuters(keras_dir)
    with pytest.raises(exc, match=msg):
        reuters.load_data(**kwargs)


def test_reuters_maxlen_keeping_nothing_says_so(keras_dir):
    write_reuters(keras_dir)
    with pytest.raises(ValueError, match="maxlen=2, no sequence was kept. Increase maxlen."):
        reuters.load_data(maxlen=2)  # every sequence has start_char and at least one id


def test_reuters_format_violations(keras_dir):
    x = np.empty(2, dtype=object)
    x[0], x[1] = [1, 2], "text"
    np.savez(keras_dir / "reuters.npz", x=x, y=np.array([0, 1]))
    with pytest.raises(_files.DatasetFormatError, match=r"reuters.npz\[x\]: sequence 1 is a str"):
        reuters.load_data()
    x[1] = [3]
    np.savez(keras_dir / "reuters.npz", x=x, y=np.array([0, 1, 2]))
    with pytest.raises(_files.DatasetFormatError, match=r"reuters.npz\[y\]: expected 2 integer labels"):
        reuters.load_data()


def test_reuters_reads_pickles_only_through_the_restricted_unpickler(keras_dir, tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    x = np.empty(2, dtype=object)
    x[0], x[1] = [1, 2], Evil(marker)
    np.savez(keras_dir / "reuters.npz", x=x, y=np.array([0, 1]))
    with np.load(keras_dir / "reuters.npz", allow_pickle=True) as f:  # the canary is live
        f["x"]
    assert marker.is_dir()
    marker.rmdir()

    def forbidden(*args, **kwargs):
        raise AssertionError("a general unpickler was used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    with pytest.raises(_files.UnsafePickleError, match=r"reuters.npz\[x\].*refusing to unpickle the "
                                                       r"global posix.mkdir"):
        reuters.load_data()
    assert not marker.exists()
    write_reuters(keras_dir)  # and a good file loads with the general unpicklers still forbidden
    assert len(reuters.load_data()[0][0]) == 9


def test_imdb_still_matches_after_sharing_the_sequence_steps(tmp_path):
    x = np.empty(4, dtype=object)
    x[:] = [[5, 1], [2, 9, 9], [7], [4, 4, 4, 4]]
    np.savez(tmp_path / "imdb.npz", x_train=x, y_train=np.array([0, 1, 0, 1]), x_test=x[:2],
             y_test=np.array([1, 0]))
    (xt, yt), (xs, ys) = imdb.load_data(tmp_path / "imdb.npz", maxlen=4, num_words=10)
    order = np.arange(4)
    rng = np.random.RandomState(113)
    rng.shuffle(order)
    test_order = np.arange(2)
    rng.shuffle(test_order)
    want = [[1] + [w + 3 for w in x[i]] for i in order]
    want = [[w if w < 10 else 2 for w in s] for s in want if len(s) < 4]
    assert [list(s) for s in xt] == want
    assert yt.tolist() == [[0, 1, 0, 1][i] for i in order if len(x[i]) + 1 < 4]


# ----------------------------------------------------------------------------- housing

@pytest.mark.parametrize("test_split,seed", [(0.2, 113), (0.5, 1), (0.0, 3)])
def test_boston_housing_split(keras_dir, test_split, seed):
    x, y = write_housing(keras_dir, "boston_housing.npz", 23, 13)
    (xt, yt), (xs, ys) = boston_housing.load_data(test_split=test_split, seed=seed)
    order = np.random.RandomState(seed).permutation(23)  # same as Keras's seeded shuffle of arange
    n = int(23 * (1 - test_split))
    np.testing.assert_array_equal(xt, x[order[:n]])
    np.testing.assert_array_equal(yt, y[order[:n]])
    np.testing.assert_array_equal(xs, x[order[n:]])
    np.testing.assert_array_equal(ys, y[order[n:]])
    assert xt.dtype == np.float64 and xs.shape == (23 - n, 13)


@pytest.mark.parametrize("version,n", [("large", 650), ("small", 600)])
def test_california_housing_versions(keras_dir, version, n):
    x, y = write_housing(keras_dir, "california_housing.npz", 650, 8, dtype=np.float32)
    (xt, yt), (xs, ys) = california_housing.load_data(version=version)
    order = np.random.RandomState(113).permutation(n)
    cut = int(n * 0.8)
    np.testing.assert_array_equal(xt, x[:n][order[:cut]])
    np.testing.assert_array_equal(ys, y[:n][order[cut:]])
    assert xt.dtype == np.float32 and len(xt) + len(xs) == n


def test_housing_arguments_and_format(keras_dir):
    with pytest.raises(ValueError, match="version must be 'small' or 'large', received 'big'"):
        california_housing.load_data(version="big")
    with pytest.raises(ValueError, match=r"boston_housing.load_data: test_split must be in \[0, 1\)"):
        boston_housing.load_data(test_split=-0.1)
    write_housing(keras_dir, "boston_housing.npz", 10, 12)
    with pytest.raises(_files.DatasetFormatError, match=r"boston_housing.npz\[x\]: expected numbers of "
                                                        r"shape \(N, 13\), found float64 \(10, 12\)"):
        boston_housing.load_data()
    np.savez(keras_dir / "california_housing.npz", x=np.zeros((4, 8)), y=np.zeros(3))
    with pytest.raises(_files.DatasetFormatError, match=r"california_housing.npz\[y\]: expected 4 numbers"):
        california_housing.load_data()


# ----------------------------------------------------------------------------- real Keras as oracle

_ORACLE = textwrap.dedent("""
    import os, pickle, sys
    import numpy as np
    from keras.src.datasets import (boston_housing, california_housing, cifar100, fashion_mnist,
                                    mnist, reuters)
    home = os.environ["KERAS_HOME"]
    def local(fname=None, origin=None, cache_subdir="datasets", extract=False, **kwargs):
        # Keras's cache layout, without the download (and the hash check of the real files)
        return os.path.join(home, cache_subdir, fname)
    for module in (boston_housing, california_housing, cifar100, fashion_mnist, mnist, reuters):
        module.get_file = local
    out = {"mnist": mnist.load_data(), "fashion_mnist": fashion_mnist.load_data(),
           "cifar100-fine": cifar100.load_data(), "cifar100-coarse": cifar100.load_data("coarse"),
           "boston": boston_housing.load_data(), "boston-3": boston_housing.load_data(test_split=0.3, seed=3),
           "california": california_housing.load_data(),
           "california-small": california_housing.load_data(version="small", test_split=0.1, seed=5)}
    for name, kwargs in {"reuters": {}, "reuters-args": dict(num_words=25, skip_top=4, maxlen=7,
                         test_split=0.4, seed=9, start_char=2, oov_char=3, index_from=1)}.items():
        (a, b), (c, d) = reuters.load_data(**kwargs)
        out[name] = (([list(s) for s in a], b), ([list(s) for s in c], d))
    with open(sys.argv[1], "wb") as f:
        pickle.dump(out, f)
""")


def test_every_loader_matches_real_keras(keras_dir, tmp_path, small_cifar100):
    for module in ("keras", "torch"):  # found, not imported: Keras runs in the subprocess (torch backend)
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"real Keras on its torch backend is the oracle; {module} is not installed")
    write_mnist(keras_dir)
    write_fashion(keras_dir)
    write_cifar100(keras_dir, "keras3")
    write_housing(keras_dir, "boston_housing.npz", 31, 13)
    write_housing(keras_dir, "california_housing.npz", 640, 8, dtype=np.float32)
    write_reuters(keras_dir, n=40)
    result = tmp_path / "keras.pkl"
    env = dict(os.environ, KERAS_BACKEND="torch")
    run = subprocess.run([sys.executable, "-c", _ORACLE, str(result)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(result, "rb") as f:
        keras_out = pickle.load(f)  # written by the trusted oracle above
    ours = {"mnist": mnist.load_data(), "fashion_mnist": fashion_mnist.load_data(),
            "cifar100-fine": cifar100.load_data(), "cifar100-coarse": cifar100.load_data("coarse"),
            "boston": boston_housing.load_data(),
            "boston-3": boston_housing.load_data(test_split=0.3, seed=3),
            "california": california_housing.load_data(),
            "california-small": california_housing.load_data(version="small", test_split=0.1, seed=5)}
    for name, kwargs in {"reuters": {}, "reuters-args": dict(num_words=25, skip_top=4, maxlen=7,
                         test_split=0.4, seed=9, start_char=2, oov_char=3, index_from=1)}.items():
        (a, b), (c, d) = reuters.load_data(**kwargs)
        ours[name] = (([list(s) for s in a], b), ([list(s) for s in c], d))
    assert ours.keys() == keras_out.keys()
    for name in ours:
        for mine, theirs in zip(ours[name], keras_out[name]):
            for got, want in zip(mine, theirs):
                if isinstance(want, list):
                    assert got == want, name
                else:
                    assert got.dtype == want.dtype and got.shape == want.shape, name
                    np.testing.assert_array_equal(got, want, err_msg=name)
