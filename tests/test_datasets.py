"""Dataset loaders on small files written in the official formats; never touches the network."""
import builtins
import csv
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from fastdl.datasets import _files, cifar10, digits, imdb
from offline_caches import offline  # noqa: F401  (autouse: no network, caches in tmp_path)

N = 3  # records per CIFAR batch in these tests (the real files have 10000)
PY_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.fixture
def small_cifar(monkeypatch):
    monkeypatch.setattr(cifar10, "RECORDS_PER_BATCH", N)


# ----------------------------------------------------------------------------- file writers

def _py2_str(b):
    """A Python 2 ``str`` pickle opcode (SHORT_BINSTRING / BINSTRING), as in the official batches."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _py2_int(v):
    if -2**31 <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def py2_batch_pickle(data, labels, module=b"numpy.core.multiarray"):
    """Hand-assembled protocol-2 pickle of {'batch_label', 'labels', 'data', 'filenames'} as Python 2
    cPickle wrote the CIFAR-10 batches: str keys, a list of ints, a uint8 ndarray via _reconstruct."""
    n, width = data.shape
    out = bytearray(b"\x80\x02}(")  # PROTO 2, EMPTY_DICT, MARK
    out += _py2_str(b"batch_label") + _py2_str(b"training batch 1 of 5")
    out += _py2_str(b"labels") + b"](" + b"".join(_py2_int(int(v)) for v in labels) + b"e"
    out += _py2_str(b"data")
    out += b"c" + module + b"\n_reconstruct\ncnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_str(b"b")
    out += b"\x87R("  # TUPLE3, REDUCE, MARK (state tuple)
    out += _py2_int(1) + _py2_int(n) + _py2_int(width) + b"\x86"  # version, shape
    out += b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R("
    out += _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb"
    out += b"\x89" + _py2_str(data.tobytes()) + b"tb"  # fortran=False, raw bytes, TUPLE, BUILD
    out += _py2_str(b"filenames") + b"](" + b"".join(_py2_str(b"img_%d.png" % i) for i in range(n)) + b"e"
    out += b"u."  # SETITEMS, STOP
    return bytes(out)


def make_cifar(seed=0, n=N):
    """{batch name: (planes (n, 3072) uint8, labels (n,))} with random content."""
    rng = np.random.default_rng(seed)
    return {f: (rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), rng.integers(0, 10, size=n))
            for f in PY_FILES}


def bin_bytes(planes, labels):
    return b"".join(bytes([int(l)]) + p.tobytes() for p, l in zip(planes, labels))


def cifar_files(batches, kind):
    """{relative member name: bytes} of an extracted python or binary CIFAR-10 folder."""
    if kind == "py":
        return {f"cifar-10-batches-py/{f}": py2_batch_pickle(*batches[f]) for f in PY_FILES}
    return {f"cifar-10-batches-bin/{f}.bin": bin_bytes(*batches[f]) for f in PY_FILES}


def write_folder(root, files):
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def write_tar(path, files, extra=(), compression="gz"):
    """A .tar.gz of {name: bytes}; ``extra``: TarInfo objects (links, odd names) added first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:" + compression) as tar:
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def expected_cifar(batches):
    """The NHWC arrays derived directly from the format: pixel (h, w) of channel c sits at
    c*1024 + h*32 + w in a record."""
    def nhwc(names):
        planes = np.concatenate([batches[f][0] for f in names])
        out = np.zeros((len(planes), 32, 32, 3), np.uint8)
        for c in range(3):
            for h in range(32):
                out[:, h, :, c] = planes[:, c * 1024 + h * 32: c * 1024 + h * 32 + 32]
        return out
    y_train = np.concatenate([batches[f][1] for f in PY_FILES[:5]]).reshape(-1, 1)
    return (nhwc(PY_FILES[:5]), y_train), (nhwc(["test_batch"]), batches["test_batch"][1].reshape(-1, 1))


def assert_cifar_equal(got, want):
    (x, y), (xt, yt) = got
    (wx, wy), (wxt, wyt) = want
    assert x.shape == (5 * N, 32, 32, 3) and xt.shape == (N, 32, 32, 3)
    assert y.shape == (5 * N, 1) and yt.shape == (N, 1)
    for a in (x, y, xt, yt):
        assert a.dtype == np.uint8 and a.flags.c_contiguous
    np.testing.assert_array_equal(x, wx)
    np.testing.assert_array_equal(y, wy)
    np.testing.assert_array_equal(xt, wxt)
    np.testing.assert_array_equal(yt, wyt)


class Evil:
    """Unpickling this runs ``os.system`` / ``builtins.open`` and leaves a marker file."""

    def __init__(self, marker, how):
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "system":
            return os.system, (f"touch '{self.marker}'",)
        return builtins.open, (self.marker, "w")


# ----------------------------------------------------------------------------- CIFAR-10: good files

def test_py2_pickle_writer_matches_the_official_structure():
    batches = make_cifar()
    planes, labels = batches["data_batch_1"]
    d = pickle.loads(py2_batch_pickle(planes, labels), encoding="bytes")
    assert sorted(d) == [b"batch_label", b"data", b"filenames", b"labels"]
    np.testing.assert_array_equal(d[b"data"], planes)
    assert d[b"labels"] == labels.tolist()


def test_real_batches_must_hold_10000_records():
    assert cifar10.RECORDS_PER_BATCH == 10000
    assert cifar10._RECORD_BYTES == 3073


@pytest.mark.parametrize("kind", ["py", "bin"])
def test_cifar_extracted_folder(tmp_path, small_cifar, kind):
    batches = make_cifar()
    root = write_folder(tmp_path / "d", cifar_files(batches, kind))
    folder = root / f"cifar-10-batches-{kind}"
    want = expected_cifar(batches)
    assert_cifar_equal(cifar10.load_data(path=folder), want)
    assert_cifar_equal(cifar10.load_data(path=root), want)  # a folder holding the folder
    assert_cifar_equal(cifar10.load_data(path=str(folder)), want)


@pytest.mark.parametrize("kind,name", [("py", "cifar-10-python.tar.gz"), ("bin", "cifar-10-binary.tar.gz")])
def test_cifar_archive(tmp_path, small_cifar, kind, name):
    batches = make_cifar(seed=1)
    files = cifar_files(batches, kind)
    files[f"cifar-10-batches-{kind}/readme.html"] = b"<html></html>"
    archive = write_tar(tmp_path / name, files)
    want = expected_cifar(batches)
    assert_cifar_equal(cifar10.load_data(path=archive), want)
    assert_cifar_equal(cifar10.load_data(path=tmp_path), want)  # a folder holding the archive


@pytest.mark.parametrize("compression", ["", "bz2", "xz"])
def test_cifar_archive_other_compressions(tmp_path, small_cifar, compression):
    batches = make_cifar(seed=12)
    archive = write_tar(tmp_path / "cifar.tar", cifar_files(batches, "py"), compression=compression)
    assert_cifar_equal(cifar10.load_data(path=archive), expected_cifar(batches))


def test_cifar_python_and_binary_versions_agree(tmp_path, small_cifar):
    batches = make_cifar(seed=2)
    a = cifar10.load_data(path=write_folder(tmp_path / "a", cifar_files(batches, "py")))
    b = cifar10.load_data(path=write_tar(tmp_path / "b.tar.gz", cifar_files(batches, "bin")))
    assert_cifar_equal(a, expected_cifar(batches))
    assert_cifar_equal(b, expected_cifar(batches))


def test_cifar_numpy2_pickles_load_too(tmp_path, small_cifar):
    batches = make_cifar(seed=3)
    files = {f"cifar-10-batches-py/{f}": py2_batch_pickle(*batches[f], module=b"numpy._core.multiarray")
             for f in PY_FILES}
    assert_cifar_equal(cifar10.load_data(path=write_folder(tmp_path, files)), expected_cifar(batches))


def test_cifar_protocol3_pickles_with_numpy_label_arrays(tmp_path, small_cifar):
    batches = make_cifar(seed=4)
    files = {f"cifar-10-batches-py/{f}": pickle.dumps({b"data": p, b"labels": l.astype(np.int64)}, protocol=3)
             for f, (p, l) in batches.items()}
    assert_cifar_equal(cifar10.load_data(path=write_folder(tmp_path, files)), expected_cifar(batches))


def test_cifar_found_in_fastdl_cache(tmp_path, small_cifar):
    batches = make_cifar(seed=5)
    write_tar(_files.fastdl_cache_dir() / "cifar-10-python.tar.gz", cifar_files(batches, "py"))
    assert_cifar_equal(cifar10.load_data(), expected_cifar(batches))


@pytest.mark.parametrize("layout", ["cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py"])
def test_cifar_reuses_keras_cache_read_only(tmp_path, small_cifar, layout):
    batches = make_cifar(seed=6)
    files = {f"{layout}/{f}": py2_batch_pickle(*batches[f]) for f in PY_FILES}
    keras_dir = write_folder(_files.keras_cache_dir(), files)
    before = sorted(p.relative_to(keras_dir) for p in keras_dir.rglob("*"))
    assert_cifar_equal(cifar10.load_data(), expected_cifar(batches))
    assert sorted(p.relative_to(keras_dir) for p in keras_dir.rglob("*")) == before
    assert not _files.fastdl_cache_dir().exists()


def test_cifar_fastdl_cache_wins_over_keras_cache(small_cifar):
    mine, theirs = make_cifar(seed=7), make_cifar(seed=8)
    write_folder(_files.fastdl_cache_dir(), cifar_files(mine, "bin"))
    write_folder(_files.keras_cache_dir(), cifar_files(theirs, "py"))
    assert_cifar_equal(cifar10.load_data(), expected_cifar(mine))


def test_cifar_default_home_folders(monkeypatch, tmp_path, small_cifar):
    monkeypatch.delenv("FASTDL_HOME")
    monkeypatch.delenv("KERAS_HOME")
    assert _files.fastdl_cache_dir() == tmp_path / "home" / ".fastdl" / "datasets"
    assert _files.keras_cache_dir() == tmp_path / "home" / ".keras" / "datasets"
    batches = make_cifar(seed=9)
    write_folder(tmp_path / "home" / ".keras" / "datasets", cifar_files(batches, "py"))
    assert_cifar_equal(cifar10.load_data(), expected_cifar(batches))


# ----------------------------------------------------------------------------- CIFAR-10: bad files

def test_cifar_real_record_count_is_enforced(tmp_path):
    folder = write_folder(tmp_path, cifar_files(make_cifar(), "bin"))
    with pytest.raises(_files.DatasetFormatError, match=r"expected exactly 30730000 .*10000 records"):
        cifar10.load_data(path=folder)
    folder = write_folder(tmp_path / "py", cifar_files(make_cifar(), "py"))
    with pytest.raises(_files.DatasetFormatError, match=r"uint8 \(10000, 3072\)"):
        cifar10.load_data(path=folder)


@pytest.mark.parametrize("delta", [-1, 1, -3073])
def test_cifar_binary_wrong_size(tmp_path, small_cifar, delta):
    files = cifar_files(make_cifar(), "bin")
    name = "cifar-10-batches-bin/data_batch_3.bin"
    files[name] = (files[name] + b"\0" * 3073)[:len(files[name]) + delta]
    with pytest.raises(_files.DatasetFormatError, match=rf"data_batch_3.bin: {3 * 3073 + delta} bytes, "
                                                        rf"expected exactly {3 * 3073}"):
        cifar10.load_data(path=write_tar(tmp_path / "c.tar.gz", files))


@pytest.mark.parametrize("kind", ["py", "bin"])
def test_cifar_label_out_of_range(tmp_path, small_cifar, kind):
    batches = make_cifar()
    batches["test_batch"][1][1] = 10
    with pytest.raises(_files.DatasetFormatError,
                       match=r"test_batch.*labels must be in \[0, 10\), found \[10\]"):
        cifar10.load_data(path=write_folder(tmp_path, cifar_files(batches, kind)))


@pytest.mark.parametrize("mutate,msg", [
    (lambda d: d.pop(b"labels"), "needs keys"),
    (lambda d: d.update({b"data": d[b"data"][:, :100]}), r"uint8 \(3, 3072\), found uint8 \(3, 100\)"),
    (lambda d: d.update({b"data": d[b"data"].astype(np.int16)}), "found int16"),
    (lambda d: d.update({b"data": [1, 2, 3]}), "found list"),
    (lambda d: d.update({b"labels": [1, 2]}), "found 2 labels"),
    (lambda d: d.update({b"labels": [1, 2.0, 3]}), "ints only"),
    (lambda d: d.update({b"labels": [1, -1, 3]}), r"found \[-1\]"),
])
def test_cifar_python_batch_contents_checked(tmp_path, small_cifar, mutate, msg):
    files = {}
    for f, (p, l) in make_cifar().items():
        d = {b"data": p, b"labels": l.tolist()}
        if f == "data_batch_2":
            mutate(d)
        files[f"cifar-10-batches-py/{f}"] = pickle.dumps(d, protocol=3)
    with pytest.raises(_files.DatasetFormatError, match=msg):
        cifar10.load_data(path=write_folder(tmp_path, files))


def test_cifar_python_batch_not_a_dict(tmp_path, small_cifar):
    files = cifar_files(make_cifar(), "py")
    files["cifar-10-batches-py/data_batch_1"] = pickle.dumps([1, 2, 3], protocol=2)
    with pytest.raises(_files.DatasetFormatError, match="expected a pickled dict, found list"):
        cifar10.load_data(path=write_folder(tmp_path, files))


@pytest.mark.parametrize("cut", [10, 1000, 30000])
def test_cifar_truncated_archive(tmp_path, small_cifar, cut):
    archive = write_tar(tmp_path / "c.tar.gz", cifar_files(make_cifar(), "py"))
    data = archive.read_bytes()
    archive.write_bytes(data[:len(data) - cut] if cut < len(data) else data[:5])
    with pytest.raises(_files.DatasetFormatError, match="truncated|not a readable|not a complete"):
        cifar10.load_data(path=archive)


def test_cifar_truncation_after_the_last_member_is_caught(tmp_path, small_cifar):
    plain = tmp_path / "c.tar"
    with tarfile.open(plain, "w") as tar:
        for name, data in cifar_files(make_cifar(), "bin").items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    packed = gzip.compress(plain.read_bytes() + b"\0" * 40960)  # extra zero records after the end
    archive = tmp_path / "c.tar.gz"
    archive.write_bytes(packed)
    assert cifar10.load_data(path=archive)[1][1].shape == (N, 1)
    archive.write_bytes(packed[:-6])  # gzip CRC/length trailer cut: only draining the stream sees it
    with pytest.raises(_files.DatasetFormatError, match="truncated"):
        cifar10.load_data(path=archive)


def test_cifar_truncated_python_batch(tmp_path, small_cifar):
    files = cifar_files(make_cifar(), "py")
    files["cifar-10-batches-py/test_batch"] = files["cifar-10-batches-py/test_batch"][:-50]
    with pytest.raises(_files.DatasetFormatError, match="test_batch: corrupt pickle"):
        cifar10.load_data(path=write_folder(tmp_path, files))


def test_cifar_archive_missing_member(tmp_path, small_cifar):
    files = cifar_files(make_cifar(), "py")
    del files["cifar-10-batches-py/data_batch_4"]
    with pytest.raises(_files.DatasetFormatError, match="not a complete CIFAR-10 archive"):
        cifar10.load_data(path=write_tar(tmp_path / "c.tar.gz", files))


def test_cifar_folder_without_data(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(_files.DatasetNotFoundError, match="holds no CIFAR-10 data"):
        cifar10.load_data(path=tmp_path / "empty")


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _regular(name, size=4):
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.fixture(params=["data_filter", "fallback"])
def tar_checks(request, monkeypatch):
    """Run archive-safety tests with tarfile.data_filter and with the explicit fallback checks."""
    if request.param == "fallback":
        monkeypatch.setattr(_files, "_tar_data_filter", None)
    return request.param


@pytest.mark.parametrize("bad,msg", [
    (_regular("../evil.txt"), "unsafe member '../evil.txt'"),
    (_regular("cifar-10-batches-py/../../evil.txt"), "unsafe member"),
    (_regular("/etc/evil.txt"), "unsafe member '/etc/evil.txt'"),
    (_link("cifar-10-batches-py/escape", "../../../etc/passwd"),
     "unsafe member 'cifar-10-batches-py/escape'"),
    (_link("cifar-10-batches-py/abs", "/etc/passwd"), "unsafe member"),
    (_link("cifar-10-batches-py/hard", "../outside", tarfile.LNKTYPE), "unsafe member"),
    (_link("dev", "", tarfile.CHRTYPE), "unsafe member 'dev'"),
])
def test_cifar_unsafe_archive_members_are_refused(tmp_path, small_cifar, tar_checks, bad, msg):
    archive = write_tar(tmp_path / "c.tar.gz", cifar_files(make_cifar(), "py"), extra=[bad])
    with pytest.raises(_files.DatasetFormatError, match=msg):
        cifar10.load_data(path=archive)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_cifar_wanted_member_that_is_a_symlink_is_refused(tmp_path, small_cifar, tar_checks):
    files = cifar_files(make_cifar(), "py")
    files["cifar-10-batches-py/real_batch"] = files.pop("cifar-10-batches-py/data_batch_1")
    link = _link("cifar-10-batches-py/data_batch_1", "real_batch")
    with pytest.raises(_files.DatasetFormatError, match="data_batch_1' is not a regular file"):
        cifar10.load_data(path=write_tar(tmp_path / "c.tar.gz", files, extra=[link]))


def test_cifar_duplicate_member_is_refused(tmp_path, small_cifar):
    files = cifar_files(make_cifar(), "bin")
    dup = _regular("cifar-10-batches-bin/test_batch.bin", size=3 * 3073)
    with pytest.raises(_files.DatasetFormatError, match="appears twice"):
        cifar10.load_data(path=write_tar(tmp_path / "c.tar.gz", files, extra=[dup]))


def test_decompression_bomb_guard(tmp_path, small_cifar, monkeypatch):
    files = cifar_files(make_cifar(), "bin")
    archive = write_tar(tmp_path / "c.tar.gz", files)
    assert cifar10.load_data(path=archive)[1][0].shape == (N, 32, 32, 3)
    monkeypatch.setattr(_files, "MAX_MEMBER_BYTES", 3 * 3073 - 1)
    with pytest.raises(_files.DatasetFormatError, match="more than the 9218-byte limit"):
        cifar10.load_data(path=archive)
    with pytest.raises(_files.DatasetFormatError, match="more than the 9218-byte limit"):
        cifar10.load_data(path=write_folder(tmp_path / "f", files))


# ----------------------------------------------------------------------------- pickle canaries

@pytest.mark.parametrize("how", ["system", "open"])
def test_evil_pickle_canary_cifar(tmp_path, small_cifar, how):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({b"data": Evil(marker, how), b"labels": [0, 1, 2]}, protocol=2)
    pickle.loads(payload, encoding="bytes")  # the canary is live: a plain unpickler runs it
    assert marker.exists()
    marker.unlink()
    files = cifar_files(make_cifar(), "py")
    files["cifar-10-batches-py/data_batch_3"] = payload
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle the global"):
        cifar10.load_data(path=write_folder(tmp_path / "f", files))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        cifar10.load_data(path=write_tar(tmp_path / "c.tar.gz", files))
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "open"),
    ("subprocess", "Popen"), ("copyreg", "_reconstructor"), ("numpy", "load"),
    ("numpy.core.multiarray", "_frombuffer"), ("numpy.lib.npyio", "load"), ("_codecs", "encode"),
])
def test_restricted_unpickler_refuses_other_globals(module, name):
    payload = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n)R."
    with pytest.raises(_files.UnsafePickleError, match=f"{module}.{name}"):
        _files.restricted_loads(payload)


def test_restricted_unpickler_rebuilds_numpy_objects():
    obj = {b"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": [1, 2, (3, b"x")],
           "c": np.float64(2.5), "d": np.dtype("<f4")}
    for protocol in (2, 3, 4):
        got = _files.restricted_loads(pickle.dumps(obj, protocol=3 if protocol == 2 else protocol))
        np.testing.assert_array_equal(got[b"a"], obj[b"a"])
        assert got["b"] == obj["b"] and got["c"] == 2.5 and got["d"] == np.dtype("<f4")


def _array_pickle(shape, dtype=b"u1", data=b"", dtype_state=None, recon_shape=(0,), build=True):
    """Protocol-2 opcodes of  _reconstruct(ndarray, recon_shape, 'b')  + BUILD((1, shape, dtype,
    False, data)); ``data`` is bytes, or a list of ints for an object array."""
    tup = lambda items: b"(" + b"".join(items) + b"t"  # noqa: E731
    out = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    out += tup([_py2_int(d) for d in recon_shape]) + _py2_str(b"b") + b"\x87R"
    if build:
        state = dtype_state or (_py2_int(3) + _py2_str(b"|") + b"NNN"
                                + _py2_int(-1) + _py2_int(-1) + _py2_int(0))
        dt = b"cnumpy\ndtype\n" + _py2_str(dtype) + _py2_int(0) + _py2_int(1) + b"\x87R(" + state + b"tb"
        if isinstance(data, list):
            raw = b"](" + b"".join(_py2_int(v) for v in data) + b"e"
        else:
            raw = _py2_str(data)
        out += b"(" + _py2_int(1) + tup([_py2_int(d) for d in shape]) + dt + b"\x89" + raw + b"tb"
    return out + b"."


def test_array_pickle_helper_builds_real_arrays():
    np.testing.assert_array_equal(_files.restricted_loads(_array_pickle((2, 2), data=b"\1\2\3\4")),
                                  [[1, 2], [3, 4]])
    got = _files.restricted_loads(_array_pickle((3,), dtype=b"O8", data=[5, 6, 7]))
    assert got.dtype == object and got.tolist() == [5, 6, 7]


@pytest.mark.parametrize("payload,exc,msg", [
    # an object array whose list is shorter than its shape: NumPy's own __setstate__ crashes on it
    (_array_pickle((10,), dtype=b"O8", data=[1, 2]), _files.DatasetFormatError, "needs a list of 10 items"),
    (_array_pickle((10,), data=b"ab"), _files.DatasetFormatError, "needs 10 data bytes, found 2"),
    (_array_pickle((2**62, 2**62), data=b"ab"), _files.DatasetFormatError, "bad array shape"),
    (_array_pickle((2,), dtype=b"V8", data=b"x" * 16), _files.UnsafePickleError, "refusing dtype"),
    (_array_pickle((2,), dtype=b"S8", data=b"x" * 16), _files.UnsafePickleError, "refusing dtype"),
    (_array_pickle((1,), dtype=b"u1", data=b"x", dtype_state=_py2_int(3) + _py2_str(b"|") + b"N"
                   + b"(" + _py2_str(b"a") + b"t" + b"}" + _py2_int(8) + _py2_int(1) + _py2_int(0)),
     _files.UnsafePickleError, "structured"),
    (_array_pickle((1,), recon_shape=(10**9,)), _files.UnsafePickleError, "refusing _reconstruct"),
    (_array_pickle((1,), build=False), _files.DatasetFormatError, "has no state"),
    (b"\x80\x02cnumpy\nndarray\n(" + _py2_int(10**9) + b"tR.", _files.DatasetFormatError, "not callable"),
])
def test_restricted_unpickler_validates_array_states(payload, exc, msg):
    with pytest.raises(exc, match=msg):
        _files.restricted_loads(payload)


@pytest.mark.parametrize("payload,msg", [
    (b"\x80\x02]r\xff\xff\xff\x7f.", "memo index 2147483647 out of sequence"),  # C pickle: 32 GB memo
    (b"\x80\x02]p99999999999\n.", "memo index 99999999999 out of sequence"),
    (b"\x80\x03B\xff\xff\xff\xff" + b"x" * 10 + b".", "corrupt pickle"),  # 4 GiB length, 10 bytes
    (b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b".", "corrupt pickle"),
])
def test_pickle_opcode_check_refuses_allocation_bombs(payload, msg):
    with pytest.raises(_files.DatasetFormatError, match=msg):
        _files.restricted_loads(payload)


def test_imdb_npz_opcode_check_skipped_only_for_the_official_file(small_npz, monkeypatch):
    def refuse(data, source):
        raise _files.DatasetFormatError(f"{source}: checked")

    monkeypatch.setattr(_files, "check_pickle_opcodes", refuse)
    with pytest.raises(_files.DatasetFormatError, match=r"x_train\]: checked"):
        imdb.load_data(path=small_npz)
    monkeypatch.setattr(imdb, "SHA256", _files.sha256_of(small_npz))
    assert imdb.load_data(path=small_npz)[0][1].tolist() == [1, 0, 0, 1]


def test_imdb_npz_memo_bomb_is_refused(tmp_path):
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=_obj([[1]]), y_train=np.array([0]), x_test=_obj([[1]]), y_test=np.array([0]))
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    member.write(b"\x80\x02]r\xff\xff\xff\x7f.")
    import zipfile
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x_train.npy", member.getvalue())
        for key, arr in (("y_train", [0]), ("x_test", None), ("y_test", [0])):
            buf = io.BytesIO()
            np.save(buf, np.array(arr) if arr is not None else _obj([[1]]), allow_pickle=True)
            zf.writestr(key + ".npy", buf.getvalue())
    with pytest.raises(_files.DatasetFormatError, match=r"x_train\]: memo index 2147483647"):
        imdb.load_data(path=path)


def test_restricted_unpickler_byte_order_fortran_and_cycles():
    for a in (np.arange(5, dtype=">i4"), np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.zeros((0, 3))):
        got = _files.restricted_loads(pickle.dumps(a, protocol=3))
        assert got.dtype == a.dtype and got.shape == a.shape
        np.testing.assert_array_equal(got, a)
    cyclic = [np.arange(2)]
    cyclic.append(cyclic)
    got = _files.restricted_loads(pickle.dumps(cyclic, protocol=3))
    assert got[1] is got and isinstance(got[0], np.ndarray)


@pytest.mark.parametrize("how", ["system", "open"])
def test_evil_pickle_canary_imdb_npz(tmp_path, how):
    marker = tmp_path / "PWNED"
    x = np.empty(2, dtype=object)
    x[0], x[1] = [1, 2], Evil(marker, how)
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=x, y_train=np.array([0, 1]), x_test=x, y_test=np.array([0, 1]))
    with np.load(path, allow_pickle=True) as f:  # the canary is live
        f["x_train"]
    assert marker.exists()
    marker.unlink()
    with pytest.raises(pickle.UnpicklingError, match=r"imdb.npz\[x_train\].*refusing to unpickle"):
        imdb.load_data(path=path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- not found / download

def test_not_found_lists_every_place_and_the_fix(tmp_path, offline):
    with pytest.raises(_files.DatasetNotFoundError) as info:
        cifar10.load_data()
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, OSError)
    msg = str(info.value)
    fastdl_dir, keras_dir = tmp_path / "fastdl_home" / "datasets", tmp_path / "keras_home" / "datasets"
    for d in (fastdl_dir, keras_dir):
        for name in ("cifar-10-batches-py", "cifar-10-batches-bin", "cifar-10-python.tar.gz",
                     "cifar-10-binary.tar.gz"):
            assert f"  - {d / name}\n" in msg
    assert msg.index(str(fastdl_dir)) < msg.index(str(keras_dir))
    assert cifar10.URL in msg and "network disabled in tests" in msg
    assert f"put it at {fastdl_dir / 'cifar-10-python.tar.gz'}" in msg and "path=" in msg
    assert offline == [cifar10.URL]
    assert not fastdl_dir.exists() or not any(fastdl_dir.iterdir())  # no partial file left


def test_not_found_default_homes(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTDL_HOME")
    monkeypatch.delenv("KERAS_HOME")
    with pytest.raises(_files.DatasetNotFoundError) as info:
        imdb.load_data()
    msg = str(info.value)
    assert str(tmp_path / "home" / ".fastdl" / "datasets" / "imdb.npz") in msg
    assert str(tmp_path / "home" / ".keras" / "datasets" / "imdb.npz") in msg
    assert imdb.URL in msg


def test_explicit_missing_path_does_not_search_or_download(tmp_path, monkeypatch, offline):
    missing = tmp_path / "nowhere" / "cifar-10-python.tar.gz"
    with pytest.raises(_files.DatasetNotFoundError, match=f"path='{missing}' does not exist"):
        cifar10.load_data(path=missing)
    with pytest.raises(_files.DatasetNotFoundError, match="nowhere"):
        imdb.load_data(path=str(tmp_path / "nowhere" / "imdb.npz"))
    assert offline == []


class FakeResponse(io.BytesIO):
    def __init__(self, data, length=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}


def test_download_into_fastdl_cache_then_reuse(tmp_path, monkeypatch, small_cifar, capsys):
    batches = make_cifar(seed=11)
    archive = write_tar(tmp_path / "src.tar.gz", cifar_files(batches, "py")).read_bytes()
    monkeypatch.setattr(cifar10, "SHA256", hashlib.sha256(archive).hexdigest())
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        return FakeResponse(archive)

    monkeypatch.setattr(_files, "_urlopen", fake_urlopen)
    assert_cifar_equal(cifar10.load_data(), expected_cifar(batches))
    assert calls == [cifar10.URL]
    target = _files.fastdl_cache_dir() / "cifar-10-python.tar.gz"
    assert target.read_bytes() == archive
    assert sorted(p.name for p in target.parent.iterdir()) == ["cifar-10-python.tar.gz"]
    err = capsys.readouterr().err
    assert f"Downloading {cifar10.URL}" in err and "100%" in err
    assert_cifar_equal(cifar10.load_data(), expected_cifar(batches))
    assert calls == [cifar10.URL]  # second load from the cache
    assert not _files.keras_cache_dir().exists()


@pytest.mark.parametrize("problem", ["hash", "short"])
def test_download_checks_hash_and_length(tmp_path, monkeypatch, small_cifar, problem):
    data = b"not the archive"
    length = len(data) + 5 if problem == "short" else None
    monkeypatch.setattr(_files, "_urlopen", lambda url, timeout: FakeResponse(data, length))
    with pytest.raises(_files.DatasetNotFoundError) as info:
        cifar10.load_data()
    msg = str(info.value)
    assert ("sha256 of the downloaded file is " + hashlib.sha256(data).hexdigest() in msg
            if problem == "hash" else f"received {len(data)} bytes, the server announced {length}" in msg)
    cache = _files.fastdl_cache_dir()
    assert list(cache.iterdir()) == []  # temp file removed, nothing renamed into place


def test_download_md5_for_word_index(monkeypatch):
    data = b'{"the": 1, "and": 2}'
    monkeypatch.setattr(_files, "_urlopen", lambda url, timeout: FakeResponse(data))
    monkeypatch.setattr(imdb, "WORD_INDEX_MD5", hashlib.md5(data).hexdigest())
    assert imdb.get_word_index() == {"the": 1, "and": 2}
    assert (_files.fastdl_cache_dir() / "imdb_word_index.json").read_bytes() == data
    monkeypatch.setattr(imdb, "WORD_INDEX_MD5", "0" * 32)
    (_files.fastdl_cache_dir() / "imdb_word_index.json").unlink()
    with pytest.raises(_files.DatasetNotFoundError, match="md5 of the downloaded file"):
        imdb.get_word_index()


def test_download_error_when_cache_not_writable(tmp_path, monkeypatch):
    blocker = tmp_path / "file_not_dir"
    blocker.write_text("x")
    monkeypatch.setenv("FASTDL_HOME", str(blocker))
    with pytest.raises(_files.DatasetNotFoundError, match="cannot write to"):
        imdb.load_data()


# ----------------------------------------------------------------------------- IMDB: imdb.npz

def _obj(seqs):
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = list(s)
    return out


X_TRAIN = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]
Y_TRAIN = [0, 1, 0, 1]
X_TEST = [[2, 11], [3], [12, 1, 1]]
Y_TEST = [1, 0, 1]


@pytest.fixture
def small_npz(tmp_path):
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=_obj(X_TRAIN), y_train=np.array(Y_TRAIN), x_test=_obj(X_TEST),
             y_test=np.array(Y_TEST))
    return path


def _check(result, x_train, y_train, x_test, y_test):
    (xa, ya), (xb, yb) = result
    for x, want in ((xa, x_train), (xb, x_test)):
        assert x.dtype == object and x.ndim == 1
        assert [list(s) for s in x] == want
        assert all(type(w) is int for s in x for w in s)
    assert ya.dtype.kind == "i" and ya.tolist() == y_train
    assert yb.dtype.kind == "i" and yb.tolist() == y_test


# Hand-computed: RandomState(113) shuffles arange(4) to [3, 2, 0, 1], then arange(3) to [1, 0, 2].
def test_imdb_defaults_hand_computed(small_npz):
    # start_char 1, +3 to every id; num_words defaults to the max id (15), which becomes oov (2)
    _check(imdb.load_data(path=small_npz),
           [[1, 10, 11, 12, 13], [1, 9], [1, 4, 5, 6], [1, 7, 8]], [1, 0, 0, 1],
           [[1, 6], [1, 5, 14], [1, 2, 4, 4]], [0, 1, 1])


def test_imdb_num_words_skip_top_maxlen_hand_computed(small_npz):
    # maxlen=4 keeps lengths < 4 (start_char counted); then ids outside [5, 10) -> 2
    _check(imdb.load_data(path=small_npz, num_words=10, skip_top=5, maxlen=4),
           [[2, 9], [2, 7, 8]], [0, 1], [[2, 6], [2, 5, 2]], [0, 1])


def test_imdb_no_start_no_offset_drop_oov_hand_computed(small_npz):
    _check(imdb.load_data(path=small_npz, start_char=None, index_from=0, oov_char=None, num_words=5),
           [[], [], [1, 2, 3], [4]], [1, 0, 0, 1], [[3], [2], [1, 1]], [0, 1, 1])


def test_imdb_seed_hand_computed(small_npz):
    # RandomState(7): arange(4) -> [2, 1, 0, 3], arange(3) -> [0, 1, 2]
    _check(imdb.load_data(path=small_npz, seed=7, start_char=5, oov_char=0),
           [[5, 9], [5, 7, 8], [5, 4, 5, 6], [5, 10, 11, 12, 13]], [0, 1, 0, 1],
           [[5, 5, 14], [5, 6], [5, 0, 4, 4]], [1, 0, 1])


def test_imdb_maxlen_dropping_everything_raises(small_npz):
    with pytest.raises(ValueError, match="maxlen=2, no sequence was kept"):
        imdb.load_data(path=small_npz, maxlen=2)


def _keras_steps(x_train, y_train, x_test, y_test, num_words=None, skip_top=0, maxlen=None, seed=113,
                 start_char=1, oov_char=2, index_from=3):
    """The documented Keras steps, written out one by one on NumPy object arrays."""
    x_train, y_train, x_test, y_test = _obj(x_train), np.array(y_train), _obj(x_test), np.array(y_test)
    rng = np.random.RandomState(seed)
    p = np.arange(len(x_train))
    rng.shuffle(p)
    x_train, y_train = x_train[p], y_train[p]
    p = np.arange(len(x_test))
    rng.shuffle(p)
    x_test, y_test = x_test[p], y_test[p]
    pre = [] if start_char is None else [start_char]
    tr = [pre + [w + index_from for w in s] for s in x_train]
    te = [pre + [w + index_from for w in s] for s in x_test]
    if maxlen:
        y_train = [y for s, y in zip(tr, y_train) if len(s) < maxlen]
        tr = [s for s in tr if len(s) < maxlen]
        y_test = [y for s, y in zip(te, y_test) if len(s) < maxlen]
        te = [s for s in te if len(s) < maxlen]
    top = num_words or max(max(s) for s in tr + te)
    fix = (lambda s: [w if skip_top <= w < top else oov_char for w in s]) if oov_char is not None else \
        (lambda s: [w for w in s if skip_top <= w < top])
    return [fix(s) for s in tr], list(y_train), [fix(s) for s in te], list(y_test)


@pytest.mark.parametrize("kwargs", [
    {}, {"num_words": 50}, {"skip_top": 10, "num_words": 80}, {"maxlen": 20, "seed": 1},
    {"maxlen": 30, "num_words": 40, "skip_top": 3, "oov_char": None, "index_from": 0, "start_char": 7},
])
def test_imdb_matches_keras_steps_on_random_data(tmp_path, kwargs):
    rng = np.random.default_rng(0)
    seqs = lambda n: [rng.integers(1, 100, size=rng.integers(1, 40)).tolist() for _ in range(n)]  # noqa: E731
    xtr, xte = seqs(60), seqs(45)
    ytr, yte = rng.integers(0, 2, 60).tolist(), rng.integers(0, 2, 45).tolist()
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=_obj(xtr), y_train=np.array(ytr), x_test=_obj(xte), y_test=np.array(yte))
    _check(imdb.load_data(path=path, **kwargs), *_keras_steps(xtr, ytr, xte, yte, **kwargs))


def test_imdb_found_in_keras_cache_and_by_bare_name(small_npz):
    keras_dir = _files.keras_cache_dir()
    keras_dir.mkdir(parents=True)
    (keras_dir / "imdb.npz").write_bytes(small_npz.read_bytes())
    assert imdb.load_data()[0][1].tolist() == [1, 0, 0, 1]
    (keras_dir / "my_copy.npz").write_bytes(small_npz.read_bytes())
    assert imdb.load_data(path="my_copy.npz")[0][1].tolist() == [1, 0, 0, 1]
    assert imdb.load_data(path=small_npz.parent)[0][1].tolist() == [1, 0, 0, 1]  # a folder holding it


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"num_words": 0}, ValueError, r"num_words must be in \[1, "),
    ({"num_words": 2.5}, TypeError, "num_words must be an int or None, received float"),
    ({"skip_top": -1}, ValueError, r"skip_top must be in \[0, "),
    ({"maxlen": True}, TypeError, "maxlen must be an int or None, received bool"),
    ({"seed": "1"}, TypeError, "seed must be an int, received str"),
    ({"index_from": -3}, ValueError, r"index_from must be in \[0, "),
])
def test_imdb_argument_checks(small_npz, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        imdb.load_data(path=small_npz, **kwargs)


@pytest.mark.parametrize("arrays,msg", [
    ({"x_train": _obj([[1]]), "y_train": np.array([0]), "x_test": _obj([[1]])},
     r"missing arrays \['y_test'\]"),
    ({"x_train": _obj([[1], [2]]), "y_train": np.array([0]), "x_test": _obj([[1]]), "y_test": np.array([1])},
     r"y_train\]: expected 2 integer labels"),
    ({"x_train": _obj([[1, -4]]), "y_train": np.array([0]), "x_test": _obj([[1]]), "y_test": np.array([1])},
     r"sequence 0 holds the id -4, outside \[0, "),
    ({"x_train": _obj([[1], [2**45]]), "y_train": np.array([0, 1]), "x_test": _obj([[1]]),
      "y_test": np.array([1])}, r"sequence 1 holds the id 35184372088832"),
    ({"x_train": _obj([[1, True]]), "y_train": np.array([0]), "x_test": _obj([[1]]), "y_test": np.array([1])},
     "non-integer id"),
    ({"x_train": _obj([[1, "a"]]), "y_train": np.array([0]), "x_test": _obj([[1]]), "y_test": np.array([1])},
     "non-integer id"),
    ({"x_train": np.array([1.5, 2.5]), "y_train": np.array([0, 1]), "x_test": _obj([[1]]),
      "y_test": np.array([1])}, "expected a 1-D object array"),
    ({"x_train": _obj([[1]]), "y_train": np.array([0.0]), "x_test": _obj([[1]]), "y_test": np.array([1])},
     "integer labels"),
])
def test_imdb_npz_contents_checked(tmp_path, arrays, msg):
    path = tmp_path / "imdb.npz"
    np.savez(path, **arrays)
    with pytest.raises(_files.DatasetFormatError, match=msg):
        imdb.load_data(path=path)


def test_imdb_npz_numpy_int_elements_accepted(tmp_path):
    x = np.empty(2, dtype=object)
    x[0], x[1] = np.array([4, 5], dtype=np.int32), [np.int64(6), 7]
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=x, y_train=np.array([0, 1]), x_test=_obj([(8,)]), y_test=np.array([True]))
    (x, y), (xt, yt) = imdb.load_data(path=path, seed=0, start_char=None, index_from=0, num_words=100)
    assert sorted(map(list, x)) == [[4, 5], [6, 7]] and list(xt[0]) == [8] and yt.tolist() == [1]
    assert all(type(w) is int for s in x for w in s)


def test_imdb_npz_2d_integer_arrays_accepted(tmp_path):
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=np.array([[1, 2], [3, 4]]), y_train=np.array([0, 1]),
             x_test=np.array([[5, 6]]), y_test=np.array([1]))
    (x, _), (xt, _) = imdb.load_data(path=path, seed=0, start_char=None, index_from=0, num_words=100)
    assert sorted(map(list, x)) == [[1, 2], [3, 4]] and list(xt[0]) == [5, 6]


def test_imdb_truncated_npz(small_npz):
    data = small_npz.read_bytes()
    small_npz.write_bytes(data[: len(data) // 2])
    with pytest.raises(_files.DatasetFormatError):
        imdb.load_data(path=small_npz)


def test_imdb_npz_bomb_guard(small_npz, monkeypatch):
    monkeypatch.setattr(_files, "MAX_MEMBER_BYTES", 64)
    with pytest.raises(_files.DatasetFormatError, match="more than the 64-byte limit"):
        imdb.load_data(path=small_npz)


# ----------------------------------------------------------------------------- IMDB: raw aclImdb

ACL = {
    "train/neg/0_3.txt": "The movie was bad.<br /><br />Bad, BAD acting.",
    "train/neg/10_2.txt": "Don't watch it.",
    "train/neg/2_1.txt": "bad",
    "train/pos/0_10.txt": "A good movie! The best.",
    "train/pos/1_8.txt": "good good fun",
    "test/neg/0_2.txt": "bad plot, unseen words",
    "test/pos/0_9.txt": "good movie",
}
# counts in train: bad 4, good 3, movie 2, the 2, then 1 each (alphabetical)
ACL_VOCAB = {"bad": 1, "good": 2, "movie": 3, "the": 4, "a": 5, "acting": 6, "best": 7, "don't": 8,
             "fun": 9, "it": 10, "was": 11, "watch": 12}


def _acl_files(prefix="aclImdb/"):
    files = {prefix + k: v.encode() for k, v in ACL.items()}
    files[prefix + "train/unsup/0_0.txt"] = b"unlabelled words never counted zzz"
    files[prefix + "README"] = b"readme"
    return files


def test_tokenize():
    assert imdb.tokenize("It's GREAT!<br />Really<br/>great_stuff 10/10") == \
        ["it's", "great", "really", "great", "stuff", "10", "10"]


@pytest.mark.parametrize("form", ["folder", "parent", "archive"])
def test_aclimdb_vocabulary_and_sequences(tmp_path, form):
    if form == "archive":
        path = write_tar(tmp_path / "aclImdb_v1.tar.gz", _acl_files())
    else:
        write_folder(tmp_path, _acl_files())
        path = tmp_path / "aclImdb" if form == "folder" else tmp_path
    assert imdb.get_word_index(path=path) == ACL_VOCAB
    # raw train, neg then pos in natural order (0_3, 2_1, 10_2; 0_10, 1_8):
    # [4,3,11,1,1,1,6], [1], [8,12,10], [5,2,3,4,7], [2,2,9]; test [1] (unseen words skipped), [2,3]
    # RandomState(113): arange(5) -> [1, 0, 3, 2, 4], arange(2) -> [1, 0]; +3, start 1; 15 -> oov 2
    _check(imdb.load_data(path=path),
           [[1, 4], [1, 7, 6, 14, 4, 4, 4, 9], [1, 8, 5, 6, 7, 10], [1, 11, 2, 13], [1, 5, 5, 12]],
           [0, 0, 1, 0, 1], [[1, 5, 6], [1, 4]], [1, 0])


def test_aclimdb_archive_with_unsafe_member(tmp_path, tar_checks):
    archive = write_tar(tmp_path / "aclImdb_v1.tar.gz", _acl_files(), extra=[_regular("aclImdb/../../x.txt")])
    with pytest.raises(_files.DatasetFormatError, match="unsafe member 'aclImdb/../../x.txt'"):
        imdb.load_data(path=archive)


def test_aclimdb_missing_split(tmp_path):
    files = {k: v for k, v in _acl_files().items() if "/test/" not in k}
    with pytest.raises(_files.DatasetFormatError, match="no test reviews"):
        imdb.load_data(path=write_tar(tmp_path / "a.tar.gz", files))
    write_folder(tmp_path / "f", files)
    with pytest.raises(_files.DatasetFormatError, match="missing the folder test/neg"):
        imdb.load_data(path=tmp_path / "f" / "aclImdb")


# ----------------------------------------------------------------------------- IMDB: word index

def test_get_word_index_from_keras_cache():
    keras_dir = _files.keras_cache_dir()
    keras_dir.mkdir(parents=True)
    (keras_dir / "imdb_word_index.json").write_text('{"fawn": 34701, "the": 1}')
    assert imdb.get_word_index() == {"fawn": 34701, "the": 1}


@pytest.mark.parametrize("text,msg", [
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ('["a", "b"]', "found list"),
    ('{"a": "1"}', "must be an int >= 1, found '1'"),
    ('{"a": true}', "found True"),
    ('{"a": 0}', "found 0"),
    ('{"a": 1', "not valid UTF-8 JSON"),
])
def test_get_word_index_validates(tmp_path, text, msg):
    path = tmp_path / "imdb_word_index.json"
    path.write_text(text)
    with pytest.raises(_files.DatasetFormatError, match=msg):
        imdb.get_word_index(path=path)


def test_get_word_index_not_found():
    with pytest.raises(_files.DatasetNotFoundError) as info:
        imdb.get_word_index()
    msg = str(info.value)
    assert str(_files.fastdl_cache_dir() / "imdb_word_index.json") in msg
    assert str(_files.keras_cache_dir() / "imdb_word_index.json") in msg
    assert imdb.WORD_INDEX_URL in msg


def test_wrong_file_kind_is_named(small_npz, tmp_path):
    with pytest.raises(_files.DatasetFormatError, match="looks like imdb.npz; expected imdb_word_index.json"):
        imdb.get_word_index(path=small_npz)
    j = tmp_path / "w.json"
    j.write_text("{}")
    with pytest.raises(_files.DatasetFormatError, match="looks like imdb_word_index.json; expected imdb.npz"):
        imdb.load_data(path=j)


# ----------------------------------------------------------------------------- digits

def _digits_csv():
    path = os.path.join(os.path.dirname(digits.__file__), "data", "digits.csv.gz")
    with gzip.open(path, "rt") as f:
        return np.array([[int(v) for v in row] for row in csv.reader(f)])


def test_digits_shapes_values_and_split():
    (x, y), (xt, yt) = digits.load_data()
    assert x.shape == (1437, 8, 8, 1) and xt.shape == (360, 8, 8, 1)
    assert x.dtype == np.float32 and xt.dtype == np.float32
    assert y.shape == (1437,) and yt.shape == (360,) and y.dtype == np.uint8 and yt.dtype == np.uint8
    assert x.min() == 0.0 and x.max() == 1.0 and xt.min() >= 0.0 and xt.max() <= 1.0
    assert np.array_equal(x * 16, np.round(x * 16))
    assert set(np.unique(y)) == set(range(10)) and set(np.unique(yt)) == set(range(10))
    table = _digits_csv()
    assert table.shape == (1797, 65)
    order = np.random.RandomState(0).permutation(1797)
    rows = np.concatenate([np.concatenate([x.reshape(-1, 64) * 16, y[:, None]], 1),
                           np.concatenate([xt.reshape(-1, 64) * 16, yt[:, None]], 1)]).astype(np.int64)
    np.testing.assert_array_equal(rows, table[order])  # the documented fixed split, rows row-major


def test_digits_is_deterministic_and_fresh():
    (a, b), (c, d) = digits.load_data()
    (a2, b2), (c2, d2) = digits.load_data()
    for u, v in ((a, a2), (b, b2), (c, c2), (d, d2)):
        np.testing.assert_array_equal(u, v)
    a[:] = -1
    assert digits.load_data()[0][0].min() == 0.0


def test_attribution_ships_beside_the_data():
    readme = os.path.join(os.path.dirname(digits.__file__), "data", "README.md")
    with open(readme) as f:
        text = f.read()
    assert "Alpaydin" in text and "CC BY 4.0" in text and "digits.csv.gz" in text


def test_datasets_package_is_lazy_and_exposes_submodules():
    import fastdl.datasets as ds
    assert ds.cifar10 is cifar10 and ds.imdb is imdb and ds.digits is digits
    assert {"cifar10", "imdb", "digits"} <= set(dir(ds))
    with pytest.raises(AttributeError, match="no attribute 'svhn'"):
        ds.svhn
