"""keras.utils.get_file (cache layout, hashes, safe extraction, offline message), normalize and
split_dataset. Downloads come from file:// URLs; the offline case uses a closed local port."""
import hashlib
import io
import random
import socket
import tarfile
import urllib.error
import zipfile

import numpy as np
import pytest

from fastdl.datasets import _files
from fastdl.utils import file_utils
from fastdl.keras.utils import get_file, normalize, split_dataset


@pytest.fixture(autouse=True)
def homes(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTDL_HOME", str(tmp_path / "fastdl_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    return d


def no_network(monkeypatch):
    def refuse(url, timeout):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(_files, "_urlopen", refuse)


def closed_port():
    with socket.socket() as s:  # bound, never listening: connecting is refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tar(path, members, kind="file"):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "device": tarfile.CHRTYPE}[kind]
                info.linkname = data.decode()
                tar.addfile(info)
    return path


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, b"target")
            else:
                zf.writestr(name, data)
    return path


# ----------------------------------------------------------------------------- get_file: cache layout

def test_download_into_the_fastdl_cache_then_reuse(tmp_path, src, monkeypatch):
    (src / "data.bin").write_bytes(b"payload")
    path = get_file("data.bin", origin=(src / "data.bin").as_uri())
    assert path == str(tmp_path / "fastdl_home" / "datasets" / "data.bin")
    assert open(path, "rb").read() == b"payload"
    no_network(monkeypatch)
    assert get_file("data.bin", origin="https://example.invalid/data.bin") == path
    assert get_file(origin="https://example.invalid/data.bin") == path  # fname from the URL


def test_keras_cache_is_read_not_written(tmp_path, monkeypatch):
    no_network(monkeypatch)
    keras = tmp_path / "keras_home" / "sub"  # <cache_dir>/<cache_subdir>, as Keras
    keras.mkdir(parents=True)
    (keras / "f.txt").write_bytes(b"k")
    assert get_file("f.txt", origin="https://example.invalid/f.txt", cache_subdir="sub") == str(keras / "f.txt")
    assert not (tmp_path / "fastdl_home").exists()


def test_cache_dir_and_subdir(tmp_path, src, monkeypatch):
    (src / "f.txt").write_bytes(b"x")
    (tmp_path / "keras_home" / "datasets").mkdir(parents=True)
    (tmp_path / "keras_home" / "datasets" / "f.txt").write_bytes(b"keras copy")
    path = get_file("f.txt", origin=(src / "f.txt").as_uri(), cache_dir=tmp_path / "mine",
                    cache_subdir="models")
    assert path == str(tmp_path / "mine" / "models" / "f.txt") and open(path, "rb").read() == b"x"


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"fname": "a.txt"}, ValueError, 'specify the "origin" argument'),
    ({"fname": "sub/a.txt", "origin": "https://example.invalid/a"}, ValueError, "must be a file name, not a path"),
    ({"origin": "https://example.invalid/"}, ValueError, "cannot parse a file name from origin"),
    ({"fname": "a", "origin": "https://example.invalid/a", "hash_algorithm": "sha1"}, ValueError,
     "hash_algorithm must be one of"),
    ({"fname": "a", "origin": "https://example.invalid/a", "extract": True, "archive_format": "rar"},
     ValueError, "archive_format must be"),
])
def test_bad_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        get_file(**kwargs)


# ----------------------------------------------------------------------------- get_file: hashes

def test_hash_checked_on_download(tmp_path, src):
    (src / "f.bin").write_bytes(b"content")
    sha, md5 = hashlib.sha256(b"content").hexdigest(), hashlib.md5(b"content").hexdigest()
    uri = (src / "f.bin").as_uri()
    assert get_file("f.bin", origin=uri, file_hash=sha.upper())
    assert get_file("g.bin", origin=uri, md5_hash=md5)
    assert get_file("h.bin", origin=uri, file_hash=md5, hash_algorithm="auto")
    with pytest.raises(_files.DatasetNotFoundError, match=f"sha256 of the downloaded file is {sha}, "
                                                          f"expected {'0' * 64}") as info:
        get_file("bad.bin", origin=uri, file_hash="0" * 64)
    assert "put it at" in str(info.value)
    assert not (tmp_path / "fastdl_home" / "datasets" / "bad.bin").exists()
    assert sorted(p.name for p in (tmp_path / "fastdl_home" / "datasets").iterdir()) == \
        ["f.bin", "g.bin", "h.bin"]  # no partial file left


def test_cached_file_with_a_wrong_hash_is_downloaded_again(tmp_path, src, capsys):
    cache = tmp_path / "fastdl_home" / "datasets"
    cache.mkdir(parents=True)
    (cache / "f.bin").write_bytes(b"stale")
    (src / "f.bin").write_bytes(b"fresh")
    path = get_file("f.bin", origin=(src / "f.bin").as_uri(),
                    file_hash=hashlib.sha256(b"fresh").hexdigest())
    assert open(path, "rb").read() == b"fresh"
    assert "hash does not match" in capsys.readouterr().err
    (src / "f.bin").write_bytes(b"newer")
    assert open(get_file("f.bin", origin=(src / "f.bin").as_uri()), "rb").read() == b"fresh"
    assert open(get_file("f.bin", origin=(src / "f.bin").as_uri(), force_download=True), "rb").read() \
        == b"newer"


def test_offline_message_names_the_file_and_where_to_put_it(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/data/weights.h5"
    with pytest.raises(_files.DatasetNotFoundError) as info:
        get_file(origin=url)
    msg = str(info.value)
    fastdl_path = tmp_path / "fastdl_home" / "datasets" / "weights.h5"
    assert f"  - {fastdl_path}\n" in msg
    assert f"  - {tmp_path / 'keras_home' / 'datasets' / 'weights.h5'}\n" in msg
    assert f"Downloading {url} failed: URLError:" in msg and "refused" in msg
    assert msg.endswith(f"Fix: download {url} yourself and put it at {fastdl_path}, or pass "
                        "cache_dir= to get_file.")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert isinstance(info.value, FileNotFoundError)


# ----------------------------------------------------------------------------- get_file: extraction

def test_extract_tar_and_zip_in_keras_layout(tmp_path, src, monkeypatch):
    write_tar(src / "data.tar.gz", {"data/a.txt": b"A", "data/sub/b.txt": b"B"})
    write_zip(src / "pack.zip", {"x/c.txt": b"C", "x/": b""})
    cache = tmp_path / "fastdl_home" / "datasets"
    out = get_file("data.tar.gz", origin=(src / "data.tar.gz").as_uri(), extract=True)
    assert out == str(cache / "data_extracted")
    assert (cache / "data_extracted" / "data" / "sub" / "b.txt").read_bytes() == b"B"
    assert (cache / "data.tar.gz").is_file()
    out = get_file("pack", origin=(src / "pack.zip").as_uri(), extract=True)  # no dot: name/, name_archive
    assert out == str(cache / "pack") and (cache / "pack_archive").is_file()
    assert (cache / "pack" / "x" / "c.txt").read_bytes() == b"C"
    out = get_file("t", origin=(src / "data.tar.gz").as_uri(), untar=True, archive_format="zip")
    assert (cache / "t" / "data" / "a.txt").read_bytes() == b"A"  # untar means tar whatever the format
    # a complete extraction is reused, not extracted again (and not downloaded again)
    (cache / "pack" / "x" / "c.txt").write_bytes(b"kept")
    no_network(monkeypatch)
    assert get_file("pack", origin="https://example.invalid/pack.zip", extract=True) == str(cache / "pack")
    assert (cache / "pack" / "x" / "c.txt").read_bytes() == b"kept"
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_force_download_extracts_again(tmp_path, src):
    write_tar(src / "d.tar.gz", {"one.txt": b"1"})
    out = get_file("d.tar.gz", origin=(src / "d.tar.gz").as_uri(), extract=True)
    write_tar(src / "d.tar.gz", {"two.txt": b"2"})
    assert get_file("d.tar.gz", origin=(src / "d.tar.gz").as_uri(), extract=True, force_download=True) == out
    assert sorted(p.name for p in (tmp_path / "fastdl_home" / "datasets" / "d_extracted").iterdir()) == \
        ["two.txt"]


@pytest.mark.parametrize("kind,members,msg", [
    ("file", {"../evil.txt": b"x"}, r"unsafe member '../evil.txt': path outside the archive"),
    ("file", {"ok/../../evil.txt": b"x"}, r"path outside the archive"),
    ("file", {"/abs.txt": b"x"}, r"unsafe member '/abs.txt': absolute path"),
    ("symlink", {"link": b"/etc/passwd"}, r"unsafe member 'link': link to an absolute path"),
    ("symlink", {"link": b"inside.txt"}, r"unsafe member 'link': a link \(links are not extracted\)"),
    ("hardlink", {"hard": b"inside.txt"}, r"unsafe member 'hard': a link"),
    ("device", {"dev": b""}, r"unsafe member 'dev': device or FIFO"),
])
def test_unsafe_tar_members_are_refused(tmp_path, src, kind, members, msg):
    write_tar(src / "bad.tar.gz", members, kind)
    with pytest.raises(_files.DatasetFormatError, match=msg):
        get_file("bad.tar.gz", origin=(src / "bad.tar.gz").as_uri(), extract=True)
    cache = tmp_path / "fastdl_home" / "datasets"
    assert sorted(p.name for p in cache.iterdir()) == ["bad.tar.gz"]  # no folder, no temporary left
    assert not (tmp_path / "fastdl_home" / "evil.txt").exists() and not (cache / "evil.txt").exists()


def test_unsafe_zip_members_are_refused(tmp_path, src):
    link = zipfile.ZipInfo("link")
    link.external_attr = (0o120777 << 16)
    for members, msg in [({"../evil.txt": b"x"}, "path outside the archive"),
                         ({"/abs.txt": b"x"}, "absolute path"),
                         ({"link": link}, r"a link \(links are not extracted\)")]:
        write_zip(src / "bad.zip", members)
        with pytest.raises(_files.DatasetFormatError, match=msg):
            get_file("bad.zip", origin=(src / "bad.zip").as_uri(), extract=True, force_download=True)
    assert sorted(p.name for p in (tmp_path / "fastdl_home" / "datasets").iterdir()) == ["bad.zip"]


def test_extraction_bounds(src, monkeypatch):
    write_tar(src / "big.tar.gz", {"zeros": bytes(1 << 20)})
    write_zip(src / "big.zip", {"zeros": bytes(1 << 20)})
    write_tar(src / "many.tar.gz", {f"f{i}": b"" for i in range(5)})
    monkeypatch.setattr(file_utils, "MAX_EXTRACT_BYTES", 100_000)
    monkeypatch.setattr(file_utils, "MAX_EXTRACT_MEMBERS", 4)
    with pytest.raises(_files.DatasetFormatError, match="member 'zeros' declares 1048576 bytes, more "
                                                        "than the 100000-byte total"):
        get_file("big.tar.gz", origin=(src / "big.tar.gz").as_uri(), extract=True)
    with pytest.raises(_files.DatasetFormatError, match="declare 1048576 bytes, more than the 100000"):
        get_file("big.zip", origin=(src / "big.zip").as_uri(), extract=True)
    with pytest.raises(_files.DatasetFormatError, match="more than 4 members"):
        get_file("many.tar.gz", origin=(src / "many.tar.gz").as_uri(), extract=True)


def test_zip_member_larger_than_declared_is_stopped(tmp_path, src):
    write_zip(src / "lie.zip", {"f": b"0123456789"})
    raw = bytearray((src / "lie.zip").read_bytes())
    # the central directory's uncompressed size (offset 24 in its entry) says 4 bytes, not 10
    at = raw.rindex(b"PK\x01\x02") + 24
    raw[at:at + 4] = (4).to_bytes(4, "little")
    (src / "lie.zip").write_bytes(bytes(raw))
    with pytest.raises(_files.DatasetFormatError, match="lie.zip"):
        get_file("lie.zip", origin=(src / "lie.zip").as_uri(), extract=True)
    assert not (tmp_path / "fastdl_home" / "datasets" / "lie_extracted").exists()


def test_not_an_archive(src):
    (src / "plain.txt").write_bytes(b"just text")
    with pytest.raises(_files.DatasetFormatError, match=r"plain.txt is not a tar or zip archive"):
        get_file("plain.txt", origin=(src / "plain.txt").as_uri(), extract=True)


# ----------------------------------------------------------------------------- normalize

def test_normalize_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    x[2] = 0
    got = normalize(x)
    norms = np.sqrt((x.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
    want = x / np.where(norms == 0, 1, norms)
    assert got.dtype == np.float32 and got.shape == (4, 5)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert not got[2].any()
    y = rng.standard_normal((3, 4, 2))
    np.testing.assert_allclose(normalize(y, axis=1, order=1), y / np.abs(y).sum(axis=1, keepdims=True),
                               rtol=1e-12)
    np.testing.assert_allclose(normalize([3, 4]), [0.6, 0.8])
    assert normalize(np.array([[1, 0]])).dtype == np.float64


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"x": np.array(["a"])}, TypeError, "x must be a numeric array, received dtype <U1"),
    ({"x": np.ones(2), "order": 0}, ValueError, "order must be an int >= 1, received 0"),
    ({"x": np.ones(2), "order": 2.0}, ValueError, "order must be an int >= 1"),
    ({"x": np.ones((2, 2)), "axis": 2}, ValueError, r"axis 2 is out of range for an array of shape \(2, 2\)"),
    ({"x": np.ones((2, 2)), "axis": None}, TypeError, "axis must be an int, received NoneType"),
])
def test_normalize_bad_input(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        normalize(**kwargs)


# ----------------------------------------------------------------------------- split_dataset

def test_split_dataset_sizes_and_structure():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    left, right = split_dataset(x, left_size=0.8)
    np.testing.assert_array_equal(left, x[:8])
    np.testing.assert_array_equal(right, x[8:])
    (lx, ly), (rx, ry) = split_dataset((x, y), right_size=3)
    np.testing.assert_array_equal(ly, y[:7])
    np.testing.assert_array_equal(ry, y[7:])
    (lx,), (rx,) = split_dataset([x], left_size=2, right_size=0.3)  # the middle 5 samples are left out
    np.testing.assert_array_equal(lx, x[:2])
    np.testing.assert_array_equal(rx, x[7:])
    left, right = split_dataset(np.arange(5), left_size=0.5)  # round(2.5) == 2, as Keras rounds
    assert left.tolist() == [0, 1] and right.tolist() == [2, 3, 4]


def test_split_dataset_shuffle_is_keras_permutation():
    x, y = np.arange(30) * 10, np.arange(30)
    (lx, ly), (rx, ry) = split_dataset((x, y), left_size=0.6, shuffle=True, seed=42)
    state = random.getstate()
    try:  # what Keras does: seed the global generator, shuffle the list of samples
        samples = list(zip(x.tolist(), y.tolist()))
        random.seed(42)
        random.shuffle(samples)
    finally:
        random.setstate(state)
    assert list(zip(lx.tolist(), ly.tolist())) == samples[:18]
    assert list(zip(rx.tolist(), ry.tolist())) == samples[18:]
    again = split_dataset((x, y), left_size=0.6, shuffle=True, seed=42)
    np.testing.assert_array_equal(again[0][0], lx)


@pytest.mark.parametrize("args,kwargs,exc,msg", [
    ((np.arange(4),), {}, ValueError, "at least one of left_size and right_size"),
    ((np.arange(4),), {"left_size": 4}, ValueError, "left_size must be a positive int smaller than the 4"),
    ((np.arange(4),), {"right_size": 1.0}, ValueError, r"right_size must be a float in \(0, 1\)"),
    ((np.arange(4),), {"left_size": "half"}, TypeError, "left_size must be an int, a float or None"),
    ((np.arange(4),), {"left_size": 0.7, "right_size": 0.6}, ValueError, "is more than 1"),
    ((np.arange(4),), {"left_size": 3, "right_size": 2}, ValueError, "5 samples is more than the 4"),
    ((np.arange(4),), {"left_size": 0.1}, ValueError, "leave the left part empty"),
    (((np.arange(4), np.arange(3)),), {"left_size": 1}, ValueError, r"one length .* \[\(4,\), \(3,\)\]"),
    (({"x": np.arange(4)},), {"left_size": 1}, TypeError, "received dict"),
])
def test_split_dataset_bad_input(args, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        split_dataset(*args, **kwargs)


def test_utils_namespace():
    import fastdl.utils as u
    assert {"get_file", "normalize", "split_dataset"} <= set(dir(u))
    assert u.get_file is file_utils.get_file
