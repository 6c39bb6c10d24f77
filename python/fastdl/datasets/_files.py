"""Finding, downloading and safely reading dataset files.

Search order for every loader: the ``path=`` the caller gave (a bare file name such as
``"imdb.npz"`` means that name in the caches, as in Keras, never in the working folder), then the
fastdl cache ``$FASTDL_HOME/datasets`` (default ``~/.fastdl/datasets``), then an existing Keras cache
``$KERAS_HOME/datasets`` or ``~/.keras/datasets`` (read only, never written), then a download from the
official URL into the fastdl cache (temporary file, checksum, rename). Archives are read in place,
never extracted, one header at a time: tar members may not have absolute names or leave the archive,
the members read must also pass ``tarfile``'s ``"data"`` filter. Every read is bounded by what the
data set's official files hold (each loader names its bounds: total decompressed bytes, member
count, items), so a hostile file fails fast with ``DatasetFormatError`` instead of running for
minutes or exhausting memory. Pickles (CIFAR-10 python batches, object arrays in ``.npz`` files) go
through ``RestrictedUnpickler``, which can only rebuild NumPy arrays, never passes NumPy an
unchecked state, and visits each object once.
"""
import gzip
import hashlib
import io
import os
import pickle
import posixpath
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

MAX_MEMBER_BYTES = 1 << 30  # largest decompressed archive member or file read (1 GiB)
# Default bound on what one pickle may expand to, counting shared objects at every reference (see
# _Finalizer); loaders pass their own format's bound.
MAX_PICKLE_ITEMS = 1 << 26


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is in none of the searched places and could not be downloaded."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is malformed, truncated or unsafe."""


class DownloadError(OSError):
    """A download failed: no network, an HTTP error, or a size/hash mismatch."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something other than NumPy array reconstruction."""


# ----------------------------------------------------------------------------- cache folders

def fastdl_cache_dir():
    """``$FASTDL_HOME/datasets`` (default ``~/.fastdl/datasets``): where downloads go."""
    home = os.environ.get("FASTDL_HOME") or os.path.join(os.path.expanduser("~"), ".fastdl")
    return Path(home).expanduser() / "datasets"


def keras_cache_dir():
    """``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``): reused read-only."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home).expanduser() / "datasets"


def _is_bare_name(path):
    return os.path.basename(path) == path and path not in ("", ".", "..")


def find(what, path, names, remote=None, download_name=None):
    """Return the first existing place that holds ``what`` (a file or a folder).

    ``path``: the caller's ``path=`` (None, an existing file/folder, or a bare file name to look up in
    the caches and download under; a file of that name in the working folder is not used: pass
    ``"./name"`` for it). ``names``: relative names looked up in each cache, in order.
    ``remote``: ``{"url": ..., "sha256" or "md5": ...}`` to download into the fastdl cache as
    ``download_name`` (default ``names[0]``) when nothing is found. Raises ``DatasetNotFoundError``
    listing every place searched, with the download error in one line (not chained) and where to
    put the file by hand.
    """
    searched = []
    names = list(names)
    if path is not None:
        path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError(f"path must be a str or os.PathLike, received {type(path).__name__} {path!r}")
        if not _is_bare_name(path):
            p = Path(path).expanduser()
            if p.exists():
                return p
            raise DatasetNotFoundError(
                f"{what}: path={path!r} does not exist. Pass the data file or a folder that holds it, "
                f"or leave path unset to search {fastdl_cache_dir()} and {keras_cache_dir()} and "
                "download into the first.")
        # A bare name ("imdb.npz") means, as in Keras: that file in the caches, downloaded under that
        # name; never a file of that name in the working folder (pass "./imdb.npz" for that one).
        names = [path] + [n for n in names if n != path]
        download_name = path
    for folder in (fastdl_cache_dir(), keras_cache_dir()):
        for name in names:
            candidate = folder / name
            if candidate.exists():
                return candidate
            searched.append(candidate)
    if remote is None:
        raise DatasetNotFoundError(_not_found_message(what, searched, None, None, None))
    url = remote["url"]
    target = fastdl_cache_dir() / (download_name or names[0])
    try:
        download(url, target, sha256=remote.get("sha256"), md5=remote.get("md5"))
    except OSError as e:  # DownloadError, or the cache folder is not writable
        # The message names the cause in one line; the chained urllib/socket tracebacks would only
        # bury it (and the fix) under screens of library frames.
        raise DatasetNotFoundError(_not_found_message(what, searched, url, target, e)) from None
    return target


def file_in(source, name):
    """``source`` itself, or the file ``name`` inside it when ``find`` returned a folder."""
    source = Path(source)
    if not source.is_dir():
        return source
    if not (source / name).is_file():
        raise DatasetNotFoundError(f"{source} is a folder without {name} in it")
    return source / name


def _not_found_message(what, searched, url, target, error,
                       alternative="pass path= (the file, or a folder that holds it) to the loader"):
    lines = [f"{what} was not found. Searched, in order:"]
    lines += [f"  - {p}" for p in searched]
    if url is not None:
        lines.append(f"Downloading {url} failed: {_one_line(error)}")
        lines.append(f"Fix: download {url} yourself and put it at {target}, or {alternative}.")
    else:
        lines.append("Fix: put the file in one of the places above, or pass path= to the loader.")
    return "\n".join(lines)


def _one_line(error):
    """``error`` as one line: its message with newlines and runs of spaces collapsed."""
    return " ".join(str(error).split())


# ----------------------------------------------------------------------------- download

def _urlopen(url, timeout):
    import urllib.request  # imported here: it is slow to import and only needed for downloads
    return urllib.request.urlopen(url, timeout=timeout)


def download(url, target, sha256=None, md5=None, timeout=60):
    """Download ``url`` to ``target`` through a temporary file in the same folder, then rename.

    Shows a progress bar on stderr. A checksum mismatch (``sha256``, or ``md5`` where only that is
    published), an HTTP or network error, or a short read raises ``DownloadError`` and leaves nothing
    at ``target``.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    except OSError as e:
        raise DownloadError(f"cannot write to {target.parent}: {e}") from e
    try:
        algo, expected = ("sha256", sha256) if sha256 is not None or md5 is None else ("md5", md5)
        digest = hashlib.new(algo, usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            try:
                response = _urlopen(url, timeout)
            except Exception as e:  # URLError, HTTPError, socket errors, ValueError for bad URLs
                raise DownloadError(f"{type(e).__name__}: {e}") from e
            with response:
                length = response.headers.get("Content-Length") if response.headers else None
                total = int(length) if length and str(length).isdigit() else None
                bar = _Progress(url, total)
                received = 0
                while True:
                    try:
                        chunk = response.read(1 << 20)
                    except Exception as e:
                        raise DownloadError(f"reading {url} failed after {received} bytes: {e}") from e
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(received)
                bar.close(received)
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise DownloadError(f"{url}: received {received} bytes, the server announced {total}")
        if expected is not None and digest.hexdigest() != expected.lower():
            raise DownloadError(f"{url}: {algo} of the downloaded file is {digest.hexdigest()}, "
                                f"expected {expected.lower()} (corrupted or changed file)")
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    return target


class _Progress:
    """A byte-count progress line on stderr, redrawn at most every 0.1 s on a terminal."""

    def __init__(self, url, total):
        self.total = total
        self.tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        self.last = 0.0
        sys.stderr.write(f"Downloading {url}\n")
        sys.stderr.flush()

    def _line(self, n):
        mb = n / 1e6
        if not self.total:
            return f"{mb:.1f} MB"
        frac = min(n / self.total, 1.0)
        filled = int(round(20 * frac))
        return f"{mb:.1f}/{self.total / 1e6:.1f} MB [{'=' * filled}{'.' * (20 - filled)}] {100 * frac:3.0f}%"

    def update(self, n):
        now = time.monotonic()
        if self.tty and now - self.last >= 0.1:
            self.last = now
            sys.stderr.write("\r" + self._line(n))
            sys.stderr.flush()

    def close(self, n):
        sys.stderr.write(("\r" if self.tty else "") + self._line(n) + "\n")
        sys.stderr.flush()


# ----------------------------------------------------------------------------- bounded reads

def sha256_of(path):
    """The hex sha256 of a file."""
    return digest_of(path, "sha256")


def digest_of(path, algorithm):
    """The hex digest of a file by ``hashlib`` algorithm name (md5 where only that is published)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_file(path, limit=None):
    """The bytes of a regular file, refusing files larger than ``limit`` (default MAX_MEMBER_BYTES)."""
    limit = MAX_MEMBER_BYTES if limit is None else limit
    path = Path(path)
    size = path.stat().st_size
    if size > limit:
        raise DatasetFormatError(f"{path} is {size} bytes, more than the {limit}-byte limit")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise DatasetFormatError(f"{path} grew past the {limit}-byte limit while being read")
    return data


def read_files(paths, max_bytes):
    """``{path: bytes}`` of regular files whose sizes add up to at most ``max_bytes`` (checked
    before any is read) and each at most ``MAX_MEMBER_BYTES``."""
    paths = [Path(p) for p in paths]
    total = sum(p.stat().st_size for p in paths)
    if total > max_bytes:
        where = paths[0].parent if len(paths) > 1 else paths[0]
        raise DatasetFormatError(f"{where}: the data files hold {total} bytes, more than the "
                                 f"{max_bytes}-byte total the data set's official files stay within")
    return {p: read_file(p) for p in paths}


class _LimitedReader(io.RawIOBase):
    """A read-only stream that raises ``DatasetFormatError`` after ``limit`` bytes."""

    def __init__(self, raw, limit, name):
        self.raw, self.left, self.name, self.limit = raw, limit, name, limit

    def readable(self):
        return True

    def readinto(self, buf):
        data = self.raw.read(min(len(buf), self.left + 1))
        if len(data) > self.left:
            raise DatasetFormatError(f"{self.name} more than the {self.limit}-byte limit "
                                     "(decompression bomb?)")
        self.left -= len(data)
        buf[:len(data)] = data
        return len(data)


# ----------------------------------------------------------------------------- tar archives

_tar_data_filter = getattr(tarfile, "data_filter", None)  # Python >= 3.12, 3.11.4, 3.10.12, 3.9.17
_FILTER_ROOT = os.path.join(os.path.abspath(os.sep), "fastdl-archive-root")


def check_tar_member(member, archive):
    """Raise ``DatasetFormatError`` unless ``member`` is safe.

    Refused: an absolute name (which the ``"data"`` filter would merely strip), a name or link
    escaping the archive through ``..``, a link to an absolute path, a device or FIFO. The explicit
    checks always run; ``tarfile.data_filter`` runs as well where Python has it.
    """
    reason = _member_problem(member)
    if reason:
        raise DatasetFormatError(f"{archive}: unsafe member {member.name!r}: {reason}")
    _check_data_filter(member, archive)


def _check_data_filter(member, archive):
    if _tar_data_filter is not None:
        try:
            _tar_data_filter(member, _FILTER_ROOT)
        except tarfile.FilterError as e:
            raise DatasetFormatError(f"{archive}: unsafe member {member.name!r}: {e}") from e


def _escapes(name):
    """Whether a '/'-separated relative name leaves the archive root (after normalising)."""
    norm = posixpath.normpath(name)
    return norm == ".." or norm.startswith("../")


def _member_problem(member):
    name = member.name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if _escapes(name):
        return "path outside the archive ('..')"
    if member.ischr() or member.isblk() or member.isfifo():
        return "device or FIFO"
    if member.issym() or member.islnk():
        link = member.linkname.replace("\\", "/")
        if link.startswith("/") or (len(link) > 1 and link[1] == ":"):
            return f"link to an absolute path {member.linkname!r}"
        # symlinks resolve next to themselves, hard links from the archive root
        base = posixpath.dirname(name) if member.issym() else ""
        if _escapes(posixpath.join(base, link)):
            return f"link outside the archive to {member.linkname!r}"
    return None


_MAGIC = [(b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f, mode="rb"))]  # magic -> reader
_DECOMPRESS_ERRORS = [tarfile.TarError, EOFError, OSError, zlib.error]
try:  # bz2 and lzma are optional modules in some Python builds
    import bz2
    _MAGIC.append((b"BZh", bz2.BZ2File))
except ImportError:  # pragma: no cover
    pass
try:
    import lzma
    _MAGIC.append((b"\xfd7zXZ\x00", lzma.LZMAFile))
    _DECOMPRESS_ERRORS.append(lzma.LZMAError)
except ImportError:  # pragma: no cover
    pass
_DECOMPRESS_ERRORS = tuple(_DECOMPRESS_ERRORS)


def read_tar_members(archive, wanted, *, max_members, max_bytes):
    """Read the regular-file members named in ``wanted`` from a (gzip/bz2/xz) tar archive in place.

    The archive is streamed, one header at a time, and bounded by what the data set's official
    archive holds: at most ``max_members`` members, and at most ``max_bytes`` bytes once decompressed
    (headers, data, padding): a member whose declared size does not fit in what is left is refused
    before any of it is read, so neither a decompression bomb nor millions of empty members can run
    long or fill memory. Every member gets ``check_tar_member``'s explicit checks, the members read
    its ``tarfile.data_filter`` check as well; a wanted name that is a link or appears twice is
    refused; each wanted member may be at most ``MAX_MEMBER_BYTES``. The compressed stream is read
    to its end, so a truncated or corrupted archive is reported even past the last member.
    ``wanted`` is a set of names or a predicate on a name. Returns ``{name: bytes}`` for the wanted
    members present.
    """
    match = wanted.__contains__ if isinstance(wanted, (set, frozenset, dict)) else wanted
    found = {}
    try:
        with open(archive, "rb") as raw:
            stream = _open_tar_stream(raw, archive, max_bytes)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                count = 0
                while (member := tar.next()) is not None:
                    tar.members.clear()  # tarfile keeps every header it has read: hold one at a time
                    count += 1
                    if count > max_members:
                        raise DatasetFormatError(f"{archive}: more than {max_members} members, more "
                                                 "than the data set's official archive holds")
                    reason = _member_problem(member)
                    if reason:
                        raise DatasetFormatError(f"{archive}: unsafe member {member.name!r}: {reason}")
                    if member.size > stream.left:
                        raise DatasetFormatError(
                            f"{archive}: member {member.name!r} declares {member.size} bytes, more "
                            f"than the {max_bytes}-byte total the data set's official archive stays "
                            "within (decompression bomb?)")
                    name = member.name
                    if not match(name):
                        continue
                    _check_data_filter(member, archive)  # it resolves paths: slow, so only when read
                    if name in found:
                        raise DatasetFormatError(f"{archive}: member {name!r} appears twice")
                    if not member.isfile():
                        raise DatasetFormatError(f"{archive}: member {name!r} is not a regular file "
                                                 f"(type {member.type!r})")
                    if member.size > MAX_MEMBER_BYTES:
                        raise DatasetFormatError(f"{archive}: member {name!r} declares {member.size} "
                                                 f"bytes, more than the {MAX_MEMBER_BYTES}-byte limit")
                    data = tar.extractfile(member).read()
                    if len(data) != member.size:
                        raise DatasetFormatError(f"{archive}: member {name!r} is truncated "
                                                 f"({len(data)} of {member.size} bytes)")
                    found[name] = data
            while stream.read(1 << 20):  # drain the padding after the end marker: checks the CRC
                pass
    except _DECOMPRESS_ERRORS as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise DatasetFormatError(f"{archive}: not a readable tar archive or truncated: "
                                 f"{type(e).__name__}: {e}") from e
    return found


def _open_tar_stream(raw, archive, max_bytes):
    """``raw`` decompressed (gzip/bz2/xz by magic number) and limited to ``max_bytes``."""
    head = raw.read(6)
    raw.seek(0)
    opener = next((cls for magic, cls in _MAGIC if head.startswith(magic)), None)
    return _LimitedReader(opener(raw) if opener is not None else raw, max_bytes,
                          f"{archive}: decompresses to")


def extract_tar(archive, dest, *, max_members, max_bytes):
    """Extract a (gzip/bz2/xz) tar archive into the folder ``dest``, streamed and bounded.

    The same checks as ``read_tar_members`` run on every member (no absolute names, nothing leaving
    ``dest``, no devices, ``tarfile``'s ``"data"`` filter), and links are refused outright, so no
    later member can write through one. At most ``max_members`` members and ``max_bytes``
    decompressed bytes. Violations raise ``DatasetFormatError``; ``dest`` may then hold a part.
    """
    dest = Path(dest)
    try:
        with open(archive, "rb") as raw:
            stream = _open_tar_stream(raw, archive, max_bytes)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                count = 0
                while (member := tar.next()) is not None:
                    tar.members.clear()
                    count += 1
                    if count > max_members:
                        raise DatasetFormatError(f"{archive}: more than {max_members} members")
                    reason = _member_problem(member) or (
                        "a link (links are not extracted)" if member.issym() or member.islnk() else None)
                    if reason:
                        raise DatasetFormatError(f"{archive}: unsafe member {member.name!r}: {reason}")
                    if member.size > stream.left:
                        raise DatasetFormatError(f"{archive}: member {member.name!r} declares "
                                                 f"{member.size} bytes, more than the {max_bytes}-byte "
                                                 "total (decompression bomb?)")
                    _check_data_filter(member, archive)
                    target = dest / posixpath.normpath(member.name.replace("\\", "/"))
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                    elif member.isfile():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with tar.extractfile(member) as src, open(target, "wb") as out:
                            shutil.copyfileobj(src, out, 1 << 20)
                    else:
                        raise DatasetFormatError(f"{archive}: member {member.name!r} has the "
                                                 f"unsupported type {member.type!r}")
            while stream.read(1 << 20):  # drain the padding after the end marker: checks the CRC
                pass
    except _DECOMPRESS_ERRORS as e:
        if isinstance(e, FileNotFoundError) and str(archive) in str(e):
            raise
        raise DatasetFormatError(f"{archive}: cannot extract: {type(e).__name__}: {e}") from e


def extract_zip(archive, dest, *, max_members, max_bytes):
    """Extract a zip archive into the folder ``dest``: at most ``max_members`` entries and
    ``max_bytes`` bytes (declared sizes, checked before anything is written, and enforced while
    writing); absolute names, names leaving ``dest`` and symbolic links raise ``DatasetFormatError``."""
    dest = Path(dest)
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise DatasetFormatError(f"{archive}: {len(infos)} members, more than {max_members}")
            total = sum(info.file_size for info in infos)
            if total > max_bytes:
                raise DatasetFormatError(f"{archive}: the members declare {total} bytes, more than the "
                                         f"{max_bytes}-byte total (decompression bomb?)")
            for info in infos:
                name = info.filename.replace("\\", "/")
                if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
                    reason = "absolute path"
                elif _escapes(name):
                    reason = "path outside the archive ('..')"
                elif (info.external_attr >> 16) & 0o170000 == 0o120000:
                    reason = "a link (links are not extracted)"
                else:
                    reason = None
                if reason:
                    raise DatasetFormatError(f"{archive}: unsafe member {info.filename!r}: {reason}")
                target = dest / posixpath.normpath(name)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    limited = _LimitedReader(src, info.file_size, f"{archive}: member {info.filename!r} is")
                    shutil.copyfileobj(limited, out, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        raise DatasetFormatError(f"{archive}: cannot extract: {type(e).__name__}: {e}") from e


# ----------------------------------------------------------------------------- restricted pickle
#
# A NumPy array pickles as  _reconstruct(ndarray, (0,), b"b")  followed by BUILD with the state
# (version, shape, dtype, fortran, data), and a dtype as  dtype("u1", False, True)  + BUILD(state).
# NumPy's own __setstate__ methods trust that state: an object array whose list is shorter than its
# shape crashes the interpreter, and a dtype state can declare object fields over raw bytes. So the
# unpickler below never hands NumPy a state: it rebuilds each array and dtype itself from validated
# parts, through stand-in objects that are swapped for the real ones when loading ends.

_ALLOWED_KINDS = "biufcO"  # bool, integers, floats, complex, object; no strings, voids or records
_BYTE_ORDERS = ("<", ">", "|", "=", b"<", b">", b"|", b"=")


class _Stub:
    """Base of the stand-ins: ``value`` is the real object once BUILD has supplied a valid state."""

    value = None


class _DtypeStub(_Stub):
    def __init__(self, name):
        try:
            dtype = np.dtype(name.decode("ascii") if isinstance(name, bytes) else name)
        except (TypeError, ValueError, UnicodeDecodeError) as e:
            raise pickle.UnpicklingError(f"bad dtype {name!r} in pickle: {e}") from None
        if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise UnsafePickleError(f"refusing dtype {name!r}: dataset arrays may only be bool, integer, "
                                    "float, complex or object")
        self.value = dtype

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 5 or state[1] not in _BYTE_ORDERS:
            raise pickle.UnpicklingError(f"bad dtype state in pickle: {state!r:.200}")
        if any(part is not None for part in state[2:5]):  # subarray, field names, fields
            raise UnsafePickleError("refusing a structured or subarray dtype in a dataset pickle")
        order = state[1].decode("ascii") if isinstance(state[1], bytes) else state[1]
        if order in "<>" and self.value.itemsize > 1 and self.value.kind != "O":
            self.value = self.value.newbyteorder(order)


def _make_dtype(name, align=False, copy=True):
    return _DtypeStub(name)


def _real_dtype(d):
    if isinstance(d, _DtypeStub):
        return d.value
    raise pickle.UnpicklingError(f"expected a dtype in the pickle, found {type(d).__name__}")


class _ArrayStub(_Stub):
    items = None  # an object array's validated item list, made into the array by _Finalizer

    def __setstate__(self, state):
        if self.value is not None or self.items is not None:
            raise pickle.UnpicklingError("an array state was given twice")
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise pickle.UnpicklingError(f"bad array state in pickle: {type(state).__name__}")
        shape, dtype, fortran, data = state
        dtype = _real_dtype(dtype)
        if (not isinstance(shape, tuple)
                or not all(type(d) is int and 0 <= d <= MAX_MEMBER_BYTES for d in shape)):
            raise pickle.UnpicklingError(f"bad array shape in pickle: {shape!r:.200}")
        count = 1
        for d in shape:
            count *= d
        self.order = "F" if fortran else "C"
        if dtype.kind == "O":
            if not isinstance(data, list) or len(data) != count:
                raise pickle.UnpicklingError(f"object array of shape {shape} needs a list of {count} "
                                             f"items, found {type(data).__name__}")
            self.items, self.shape = data, shape  # its items may still hold stand-ins
            return
        if isinstance(data, str):  # Python 2 str read with encoding="latin1"
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.itemsize:
            found = len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__
            raise pickle.UnpicklingError(f"array of shape {shape} and dtype {dtype} needs "
                                         f"{count * dtype.itemsize} data bytes, found {found}")
        self.value = np.frombuffer(bytearray(data), dtype=dtype).reshape(shape, order=self.order)


_NDARRAY = object()  # what the pickle gets for numpy.ndarray: only _reconstruct accepts it


def _reconstruct(subtype, shape, typecode):
    if subtype is not _NDARRAY or shape != (0,):
        raise UnsafePickleError("refusing _reconstruct with anything but (numpy.ndarray, (0,), ...)")
    return _ArrayStub()


def _scalar(dtype, data=None):
    dtype = _real_dtype(dtype)
    if isinstance(data, str):
        data = data.encode("latin1")
    if dtype.kind == "O" or not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"bad NumPy scalar of dtype {dtype} in pickle")
    return np.frombuffer(data, dtype=dtype)[0]


_PLAIN = (int, float, bytes, str, bool, complex, type(None))


class _Finalizer:
    """Swaps every stand-in inside an unpickled object for its real object, and bounds its size.

    The size of an object is 1 plus the sizes of what it holds (a NumPy array: its element count),
    counting a shared object at every place that refers to it: that is what a consumer such as
    ``tolist`` or ``itertools.chain`` expands it into. Each object is visited once and its size
    memoised, so a pickle that refers to one long list 25,000 times costs 25,000 look-ups, not
    25,000 walks of the list, and a size above ``max_items`` is refused before anyone expands it.
    """

    def __init__(self, max_items, source):
        self.max_items, self.source = max_items, source
        self.done = {}  # id -> (object, its replacement, size or None while being visited)

    def __call__(self, obj):
        """(the real object for ``obj``, its size)."""
        if isinstance(obj, _PLAIN):
            return obj, 1
        hit = self.done.get(id(obj))
        if hit is not None:
            if hit[2] is not None:
                return hit[1], hit[2]
            if isinstance(obj, _Stub):  # a list may hold itself; an array cannot be built inside itself
                raise pickle.UnpicklingError("an object array in the pickle contains itself")
            return hit[1], 1  # a cycle back to a container being visited
        if isinstance(obj, _Stub):
            real, size = self._stub(obj)
        elif isinstance(obj, (list, dict, tuple, set, frozenset)):
            self.done[id(obj)] = (obj, obj, None)
            real, size = self._container(obj)
        else:  # a NumPy scalar
            return obj, 1
        if size > self.max_items:
            raise DatasetFormatError(f"{self.source}: the pickle expands to more than {self.max_items} "
                                     "items, more than the data set's format holds (corrupt or malicious)")
        self.done[id(obj)] = (obj, real, size)
        return real, size

    def _stub(self, stub):
        if isinstance(stub, _ArrayStub) and stub.items is not None:
            self.done[id(stub)] = (stub, None, None)
            flat = np.empty(len(stub.items), dtype=object)
            size = 1
            for i, item in enumerate(stub.items):
                flat[i], n = self(item)
                size += n
            return flat.reshape(stub.shape, order=stub.order), size
        if stub.value is None:
            raise pickle.UnpicklingError("a NumPy array in the pickle has no state")
        return stub.value, 1 + (stub.value.size if isinstance(stub.value, np.ndarray) else 0)

    def _container(self, obj):
        if not isinstance(obj, dict) and all(t in _PLAIN for t in set(map(type, obj))):
            return obj, 1 + len(obj)  # the common case, e.g. a review's list of ids: nothing to swap
        size = 1
        if isinstance(obj, dict):
            pairs = []
            for k, v in obj.items():
                (k, nk), (v, nv) = self(k), self(v)
                pairs.append((k, v))
                size += nk + nv
            obj.clear()
            obj.update(pairs)
            return obj, size
        parts = []
        for v in obj:
            v, n = self(v)
            parts.append(v)
            size += n
        if isinstance(obj, list):
            obj[:] = parts
            return obj, size
        return type(obj)(parts), size


_MULTIARRAY = {"_reconstruct": _reconstruct, "scalar": _scalar}
_ALLOWED_GLOBALS = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _make_dtype}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # NumPy < 2 and >= 2 spellings
    for _name, _fn in _MULTIARRAY.items():
        _ALLOWED_GLOBALS[(_module, _name)] = _fn


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild NumPy arrays, dtypes and scalars (plus plain containers).

    Allowed globals: ``numpy.ndarray``, ``numpy.dtype``, ``numpy[._]core.multiarray._reconstruct``
    and ``.scalar``, each replaced by a validating stand-in; only bool/int/float/complex/object
    dtypes. Any other global (``os.system``, ``builtins.eval``, ...) raises ``UnsafePickleError``, a
    ``pickle.UnpicklingError``, before anything is called; so do persistent ids. ``load`` refuses,
    with ``DatasetFormatError``, a result that expands to more than ``max_items`` items (see
    ``_Finalizer``).
    """

    def __init__(self, file, *, encoding="bytes", max_items=None, source="pickle"):
        super().__init__(file, encoding=encoding)
        self.max_items = MAX_PICKLE_ITEMS if max_items is None else max_items
        self.source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to unpickle the global {module}.{name}: dataset pickles "
                                    "may only rebuild NumPy arrays (file corrupted or malicious)") from None

    def load(self):
        return _Finalizer(self.max_items, self.source)(super().load())[0]


_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def check_pickle_opcodes(data, source="pickle"):
    """Walk the opcodes of ``data`` without executing them; raise ``DatasetFormatError`` if malformed.

    Guards against what CPython's C unpickler would do before failing: a memo index far beyond the
    pickle's size makes it allocate and clear a memo table of that length (gigabytes from a few
    bytes), and a length field larger than the data is refused here instead of being allocated. A
    pickler numbers memo entries 0, 1, 2, ..., so an index above the count so far is refused.
    """
    import pickletools
    puts = 0
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in _MEMO_PUTS:
                if arg > puts:
                    raise DatasetFormatError(f"{source}: memo index {arg} out of sequence "
                                             f"(after {puts} entries): corrupt or malicious pickle")
                puts += 1
            elif opcode.name == "MEMOIZE":
                puts += 1
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as e:
        if isinstance(e, DatasetFormatError):
            raise
        raise DatasetFormatError(f"{source}: corrupt pickle: {e}") from e


def restricted_loads(data, *, encoding="bytes", source="pickle", check=True, max_items=None):
    """Unpickle ``data`` with ``RestrictedUnpickler`` after ``check_pickle_opcodes`` (unless
    ``check=False``, for files whose checksum is the official one); malformed streams, and results
    larger than ``max_items`` (default ``MAX_PICKLE_ITEMS``), raise ``DatasetFormatError``, forbidden
    globals ``UnsafePickleError``."""
    if check:
        check_pickle_opcodes(data, source)
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding=encoding, max_items=max_items,
                                   source=source).load()
    except DatasetFormatError:
        raise
    except pickle.UnpicklingError as e:
        if isinstance(e, UnsafePickleError):
            raise UnsafePickleError(f"{source}: {e}") from None
        raise DatasetFormatError(f"{source}: corrupt pickle: {e}") from e
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError,
            RecursionError, MemoryError) as e:  # MemoryError: a corrupt length asked for too much
        raise DatasetFormatError(f"{source}: corrupt pickle: {type(e).__name__}: {e}") from e


# ----------------------------------------------------------------------------- .npz without pickle

def _read_npy_header(stream, source):
    fmt = np.lib.format
    version = fmt.read_magic(stream)
    if version == (1, 0):
        return fmt.read_array_header_1_0(stream)
    if version in ((2, 0), (3, 0)):  # 3.0 differs only in the header text's encoding
        return fmt.read_array_header_2_0(stream)
    raise DatasetFormatError(f"{source}: unsupported .npy format version {version}")


def _read_npy(stream, source, check, max_items):
    shape, fortran, dtype = _read_npy_header(stream, source)
    count = 1
    for d in shape:
        count *= d
    if count > max_items:
        raise DatasetFormatError(f"{source}: shape {shape} holds {count} items, more than the "
                                 f"{max_items} the data set's format allows")
    if dtype.hasobject:
        arr = restricted_loads(stream.read(), encoding="latin1", source=source, check=check,
                               max_items=max_items)
        if not isinstance(arr, np.ndarray) or arr.dtype != object or arr.shape != shape:
            raise DatasetFormatError(f"{source}: the pickle holds {type(arr).__name__} "
                                     f"{getattr(arr, 'shape', '')}, the header promised object {shape}")
        return arr
    if dtype.kind not in "biuf":
        raise DatasetFormatError(f"{source}: unsupported dtype {dtype}")
    nbytes = count * dtype.itemsize
    if nbytes > MAX_MEMBER_BYTES:
        raise DatasetFormatError(f"{source}: {nbytes} bytes of data, more than the "
                                 f"{MAX_MEMBER_BYTES}-byte limit")
    data = bytearray(nbytes)
    view, got = memoryview(data), 0
    while got < nbytes:
        n = stream.readinto(view[got:])
        if not n:
            raise DatasetFormatError(f"{source}: truncated, {got} of {nbytes} data bytes")
        got += n
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def load_npz(path, keys, official_sha256=None, *, max_bytes, max_items):
    """Read the arrays ``keys`` from an ``.npz`` without ever running a general unpickler.

    Numeric members are read directly; object members (ragged sequences) go through
    ``restricted_loads``, whose opcode check (slow on millions of opcodes) is skipped when the file's
    sha256 is ``official_sha256``. Bounds, checked before anything is decompressed: each member may
    declare at most ``MAX_MEMBER_BYTES``, the members ``keys`` together ``max_bytes``; an array
    (numeric elements, or an object array's pickle counted as in ``_Finalizer``) may hold at most
    ``max_items`` items.
    """
    out = {}
    check = official_sha256 is None or sha256_of(path) != official_sha256
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {}
            for info in zf.infolist():
                if info.filename in infos:
                    raise DatasetFormatError(f"{path}: member {info.filename!r} appears twice")
                infos[info.filename] = info
            missing = [k for k in keys if k + ".npy" not in infos]
            if missing:
                raise DatasetFormatError(f"{path}: missing arrays {missing}; it holds "
                                         f"{sorted(n[:-4] for n in infos if n.endswith('.npy'))}")
            declared = sum(infos[k + ".npy"].file_size for k in keys)
            if declared > max_bytes:
                raise DatasetFormatError(f"{path}: the arrays {list(keys)} declare {declared} bytes, "
                                         f"more than the {max_bytes}-byte total the data set's "
                                         "official file stays within")
            for key in keys:
                info = infos[key + ".npy"]
                source = f"{path}[{key}]"
                if info.file_size > MAX_MEMBER_BYTES:
                    raise DatasetFormatError(f"{source}: declares {info.file_size} bytes, more than "
                                             f"the {MAX_MEMBER_BYTES}-byte limit")
                with zf.open(info) as raw:
                    stream = io.BufferedReader(_LimitedReader(raw, info.file_size, source + ":"))
                    try:
                        out[key] = _read_npy(stream, source, check, max_items)
                    except (EOFError, TypeError, OverflowError, MemoryError) as e:  # header, data
                        raise DatasetFormatError(f"{source}: corrupt: {type(e).__name__}: {e}") from e
    except zipfile.BadZipFile as e:
        raise DatasetFormatError(f"{path}: not a readable .npz (zip) file: {e}") from e
    except DatasetFormatError:
        raise
    except ValueError as e:  # NumPy header parsing errors
        raise DatasetFormatError(f"{path}: corrupt .npy member: {e}") from e
    return out
