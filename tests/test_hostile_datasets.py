"""Hostile data set files fail fast, in bounded memory, with DatasetFormatError naming the file.

Each hostile file is built here, small and fast: gzip members concatenate into one stream, so a
1 MiB run of zeros compressed once (about 1 KB) repeats into archives that decompress to gigabytes.
The memory-bound tests run the loader in a child Python under an address-space limit
(RLIMIT_AS) set a fixed margin above the child's own size after importing fastdl and NumPy (OpenMP
and OpenBLAS reserve address space at import). Never touches the network.
"""
import gzip
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import time
import zipfile

import numpy as np
import pytest

import fastdl
from fastdl.datasets import _files, cifar10, imdb

REAL_URLOPEN = _files._urlopen
ZEROS_MIB = gzip.compress(bytes(1 << 20), compresslevel=9)  # one gzip member: 1 MiB of zeros
MARGIN = 512 << 20  # address space a capped child may add to its size after the imports
PY_BATCHES = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + ["cifar-10-batches-py/test_batch"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, and fastdl/Keras caches and HOME inside tmp_path."""
    def no_network(url, timeout):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(_files, "_urlopen", no_network)
    monkeypatch.setenv("FASTDL_HOME", str(tmp_path / "fastdl_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


# ----------------------------------------------------------------------------- builders

def _header(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)


def zero_bomb_tar(path, members, trailing_mib=0):
    """A .tar.gz of regular ``members`` {name: MiB of zeros}, then ``trailing_mib`` MiB of zeros after
    the end marker; a few KB on disk per GiB it decompresses to."""
    parts = []
    for name, mib in members.items():
        parts += [gzip.compress(_header(name, mib << 20)), ZEROS_MIB * mib]
    parts += [gzip.compress(bytes(1024)), ZEROS_MIB * trailing_mib]  # end marker, padding
    path.write_bytes(b"".join(parts))
    return path


def many_members_tar(path, count):
    """A .tar.gz of ``count`` empty members, 10,000 headers compressed once and repeated."""
    chunk = gzip.compress(_header("x", 0) * 10000)
    path.write_bytes(chunk * (count // 10000) + gzip.compress(bytes(1024)))
    return path


def write_npz(path, **members):
    """An .npz whose members are np.save'd arrays (object arrays pickled, as in Keras's imdb.npz)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for key, arr in members.items():
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=True)
            zf.writestr(key + ".npy", buf.getvalue())
    return path


def shared_rows(n, row):
    """An object array whose ``n`` items are all the one list ``row``: pickled once, then referred to."""
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = row
    return out


def small_imdb(path, x_train):
    return write_npz(path, x_train=x_train, y_train=np.zeros(len(x_train), np.int64),
                     x_test=shared_rows(1, [1]), y_test=np.zeros(1, np.int64))


CHILD = """
import resource, time
import numpy as np
import fastdl
from fastdl.datasets import _files, cifar10, imdb

def vm_size():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))

base = vm_size()
resource.setrlimit(resource.RLIMIT_AS, (base + {margin}, base + {margin}))
start = time.monotonic()
try:
    {call}
except _files.DatasetFormatError as e:
    print("REFUSED", round(time.monotonic() - start, 3), e)
else:
    print("LOADED")
"""


def run_capped(call, margin=MARGIN, timeout=120):
    """Run ``call`` (a line of Python) in a child Python capped at its size after the imports plus
    ``margin``; return (exit status, seconds the call took or None, output)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the address-space cap test reads /proc/self/status (Linux)")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastdl.__file__)),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(margin=margin, call=call)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    took = float(out.split()[1]) if proc.stdout.startswith("REFUSED") else None
    return proc.returncode, took, out


def assert_refused_capped(call, path, match, seconds=5.0):
    rc, took, out = run_capped(call)
    assert rc == 0 and out.startswith("REFUSED"), out[-3000:]
    assert str(path) in out and match in out, out
    assert took < seconds, out


def test_the_cap_is_real(tmp_path):
    """The child's cap stops an allocation of twice the margin, so the capped tests below prove a
    bound (the loaders they run needed gigabytes before the fixes)."""
    rc, _, out = run_capped(f"bytearray({2 * MARGIN})")
    assert rc != 0 and "MemoryError" in out, out


# ----------------------------------------------------------------------------- archives (item 6)

def test_cifar_member_declaring_1gib_is_refused_before_reading(tmp_path):
    archive = zero_bomb_tar(tmp_path / "cifar-10-python.tar.gz", {PY_BATCHES[0]: 1024})
    assert archive.stat().st_size < 2 << 20  # ~1 MB that decompresses to 1 GiB
    assert_refused_capped(f"cifar10.load_data(path={str(archive)!r})", archive,
                          f"declares {1 << 30} bytes, more than the {cifar10.MAX_ARCHIVE_BYTES}-byte total")


def test_cifar_archive_total_is_bounded(tmp_path):
    """Wanted batches of 16 MiB then 250 MiB each pass the per-member limit; their total does not,
    and the second is refused before any of it is read."""
    sizes = {m: 250 for m in PY_BATCHES}
    sizes[PY_BATCHES[0]] = 16
    archive = zero_bomb_tar(tmp_path / "cifar-10-python.tar.gz", sizes)
    assert_refused_capped(f"cifar10.load_data(path={str(archive)!r})", archive,
                          f"{PY_BATCHES[1]!r} declares {250 << 20} bytes")


def test_cifar_unwanted_members_and_trailing_data_count_too(tmp_path, monkeypatch):
    archive = zero_bomb_tar(tmp_path / "a.tar.gz", {"cifar-10-batches-py/readme.html": 8,
                                                    "cifar-10-batches-py/extra": 250})
    with pytest.raises(_files.DatasetFormatError, match="'cifar-10-batches-py/extra' declares"):
        cifar10.load_data(path=archive)
    monkeypatch.setattr(cifar10, "MAX_ARCHIVE_BYTES", 8 << 20)
    archive = zero_bomb_tar(tmp_path / "b.tar.gz", {}, trailing_mib=16)  # zeros past the end marker
    with pytest.raises(_files.DatasetFormatError,
                       match=f"b.tar.gz: decompresses to more than the {8 << 20}-byte limit"):
        cifar10.load_data(path=archive)


def test_two_million_member_archive_stops_at_the_member_bound(tmp_path):
    archive = many_members_tar(tmp_path / "many.tar.gz", 2_000_000)
    assert archive.stat().st_size < 8 << 20
    assert_refused_capped(f"cifar10.load_data(path={str(archive)!r})", archive,
                          f"more than {cifar10.MAX_ARCHIVE_MEMBERS} members")


def test_aclimdb_archive_member_bound(tmp_path, monkeypatch):
    """The raw corpus's bound is wired too (its real value, 120,000, costs seconds of header parsing)."""
    archive = many_members_tar(tmp_path / "aclImdb_v1.tar.gz", 20000)
    monkeypatch.setattr(imdb, "MAX_ACL_MEMBERS", 1000)
    with pytest.raises(_files.DatasetFormatError, match=f"{archive}: more than 1000 members"):
        imdb.load_data(path=archive)


def test_tar_headers_are_streamed_not_kept(tmp_path):
    import tracemalloc
    archive = many_members_tar(tmp_path / "many.tar.gz", 10000)
    tracemalloc.start()
    try:
        assert _files.read_tar_members(archive, set(), max_members=10**6, max_bytes=1 << 30) == {}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # about 2 MB of buffers; keeping the 10,000 headers took 6 MB


def test_archive_bounds_match_the_official_archives():
    # python version: 6 batches of 31,035,xxx bytes; binary version: 6 x 10000 x 3073 bytes
    assert 2 * 185e6 > cifar10.MAX_ARCHIVE_BYTES > 6 * 10000 * 3073 + 9 * 512
    assert 9 < cifar10.MAX_ARCHIVE_MEMBERS <= 100
    assert 100_020 < imdb.MAX_ACL_MEMBERS < 200_000


def test_cifar_folder_total_is_checked_before_reading(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for f in cifar10._BIN_FILES:  # sparse files: no disk space, but 1 GiB each to a reader
        with open(folder / f, "wb") as out:
            out.truncate(1 << 30)
    monkeypatch.setattr(_files, "read_file", lambda *a, **k: pytest.fail("read before the size check"))
    with pytest.raises(_files.DatasetFormatError, match=f"{folder}: the data files hold {6 << 30} bytes"):
        cifar10.load_data(path=folder)


# ----------------------------------------------------------------------------- pickles (item 7)

def test_unpickler_is_linear_in_repeated_references():
    rows = shared_rows(20000, list(range(20000)))
    data = pickle.dumps(rows, protocol=3)
    assert len(data) < 200_000  # the row is pickled once, then referred to 19,999 times
    start = time.monotonic()
    got = _files.restricted_loads(data, max_items=10**9)
    assert time.monotonic() - start < 1.0  # was 20,000 walks of the row (seconds)
    assert got.shape == (20000,) and got[0] is got[-1] and got[7] == list(range(20000))


@pytest.mark.parametrize("max_items,ok", [(9, False), (10, True)])
def test_unpickler_counts_shared_objects_at_each_reference(max_items, ok):
    data = pickle.dumps(shared_rows(3, [1, 2]), protocol=3)  # 1 array + 3 x (1 list + 2 ints)
    if ok:
        assert _files.restricted_loads(data, max_items=max_items).tolist() == [[1, 2]] * 3
    else:
        with pytest.raises(_files.DatasetFormatError, match="expands to more than 9 items"):
            _files.restricted_loads(data, max_items=max_items, source="f.npz")


def test_unpickler_counts_numeric_arrays_by_elements():
    arr = np.zeros(1000, np.uint8)
    data = pickle.dumps([arr] * 100, protocol=3)
    with pytest.raises(_files.DatasetFormatError, match="expands to more than 50000 items"):
        _files.restricted_loads(data, max_items=50000)
    assert len(_files.restricted_loads(data, max_items=200000)) == 100


def test_unpickler_refuses_an_object_array_inside_itself():
    arr = np.empty(1, dtype=object)
    arr[0] = arr  # pickles as BUILD of the array with a state whose item list refers to the array
    with pytest.raises(_files.DatasetFormatError, match="contains itself"):
        _files.restricted_loads(pickle.dumps(arr, protocol=3))


def test_imdb_repeated_reference_bomb(tmp_path):
    """193 KB that expanded to 25,000 copies of a 40,000-id review (10^9 ids, 7.45 GiB)."""
    path = small_imdb(tmp_path / "imdb.npz", shared_rows(25000, [5] * 40000))
    assert path.stat().st_size < 300_000
    assert_refused_capped(f"imdb.load_data(path={str(path)!r})", path,
                          f"[x_train]: the pickle expands to more than {imdb.MAX_NPZ_ITEMS} items")


# ----------------------------------------------------------------------------- imdb.npz (item 8)

def test_imdb_2d_array_too_large_is_refused_before_converting(tmp_path):
    path = small_imdb(tmp_path / "imdb.npz", np.zeros((8192, 8192), np.uint8))  # 64 MiB, 67M ids
    assert path.stat().st_size < 2 << 20
    assert_refused_capped(f"imdb.load_data(path={str(path)!r})", path,
                          f"[x_train]: shape (8192, 8192) holds {8192 * 8192} items")


def test_imdb_npz_declared_total_is_bounded(tmp_path, monkeypatch):
    path = small_imdb(tmp_path / "imdb.npz", np.zeros((64, 1024), np.uint8))
    total = sum(i.file_size for i in zipfile.ZipFile(path).infolist())
    monkeypatch.setattr(imdb, "MAX_NPZ_BYTES", total - 1)
    with pytest.raises(_files.DatasetFormatError, match=f"declare {total} bytes, more than the {total - 1}"):
        imdb.load_data(path=path)
    monkeypatch.setattr(imdb, "MAX_NPZ_BYTES", total)
    assert len(imdb.load_data(path=path)[0][0]) == 64


# ----------------------------------------------------------------------------- item 16

def test_word_index_with_a_5001_digit_id_names_the_file(tmp_path):
    path = tmp_path / "imdb_word_index.json"
    path.write_text('{"the": 1, "fawn": ' + "9" * 5001 + "}")
    with pytest.raises(_files.DatasetFormatError, match=f"{path}: not valid UTF-8 JSON"):
        imdb.get_word_index(path=path)


def test_word_index_size_is_bounded(tmp_path, monkeypatch):
    path = tmp_path / "imdb_word_index.json"
    path.write_text(json.dumps({f"w{i}": i + 1 for i in range(100)}))
    monkeypatch.setattr(imdb, "MAX_WORD_INDEX_BYTES", path.stat().st_size - 1)
    with pytest.raises(_files.DatasetFormatError, match=f"{path} is {path.stat().st_size} bytes"):
        imdb.get_word_index(path=path)


def test_imdb_bare_name_means_the_caches_not_the_working_folder(tmp_path, monkeypatch):
    good = small_imdb(tmp_path / "good.npz", shared_rows(2, [4, 5]))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    small_imdb(cwd / "imdb.npz", shared_rows(3, [9]))  # a stray file in the working folder
    monkeypatch.chdir(cwd)
    with pytest.raises(_files.DatasetNotFoundError) as info:  # no cache: download, not the stray file
        imdb.load_data()
    assert str(cwd / "imdb.npz") not in str(info.value)
    keras_dir = _files.keras_cache_dir()
    keras_dir.mkdir(parents=True)
    (keras_dir / "imdb.npz").write_bytes(good.read_bytes())
    assert len(imdb.load_data()[0][0]) == 2  # the cached file
    assert len(imdb.load_data(path="./imdb.npz")[0][0]) == 3  # a path, not a bare name


# ----------------------------------------------------------------------------- issue 12 item 6

def _closed_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("loader", ["cifar10", "imdb"])
def test_offline_error_is_the_message_without_a_traceback_wall(monkeypatch, loader):
    monkeypatch.setattr(_files, "_urlopen", REAL_URLOPEN)  # the real opener, to a closed local port
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    module = {"cifar10": cifar10, "imdb": imdb}[loader]
    url = f"http://127.0.0.1:{_closed_port()}/data"
    monkeypatch.setattr(module, "URL", url)
    with pytest.raises(_files.DatasetNotFoundError) as info:
        module.load_data()
    e = info.value
    assert e.__cause__ is None and e.__suppress_context__  # no chained urllib/socket tracebacks
    lines = str(e).splitlines()
    cause = next(line for line in lines if line.startswith(f"Downloading {url} failed: "))
    assert "URLError" in cause and "refused" in cause.lower()
    assert lines[-1].startswith(f"Fix: download {url} yourself and put it at ")
