"""``get_file``: Keras's download-and-cache helper, with fastdl's safe, bounded archive extraction."""
import os
import shutil
import sys
import tempfile
import urllib.parse
from pathlib import Path

from fastdl.datasets import _files

# Bounds on what extract=True writes (an archive past them raises DatasetFormatError): generous for
# data sets, small enough that a decompression bomb cannot fill the disk.
MAX_EXTRACT_BYTES = 16 << 30
MAX_EXTRACT_MEMBERS = 1 << 20
_ALGORITHMS = ("auto", "sha256", "md5")


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False, archive_format="auto",
             cache_dir=None, force_download=False):
    """Download ``origin`` into a cache unless it is there already, and return its path (Keras's API).

    The file is ``<cache_dir>/<cache_subdir>/<fname>``; ``fname`` defaults to the last part of the
    URL's path. ``cache_dir=None`` means fastdl's home (``$FASTDL_HOME``, default ``~/.fastdl``),
    after first looking in Keras's (``$KERAS_HOME``, default ``~/.keras``), which is read, never
    written. ``file_hash`` (sha256, or md5 with ``hash_algorithm="md5"`` or a 32-digit hash;
    ``md5_hash`` is the old spelling) is checked on a cached file (a mismatch means downloading it
    again) and on a download (a mismatch deletes it and raises). ``force_download`` always downloads.

    ``extract=True`` (or ``untar=True``, tar only) extracts the archive (``archive_format``: "auto"
    for tar then zip, "tar", "zip", or a list of them) and returns the folder: for ``fname`` with a
    dot, ``"data.tar.gz"`` -> ``data_extracted/``; otherwise ``fname/`` beside ``fname_archive``, as
    Keras lays it out. Unlike Keras, extraction refuses (``DatasetFormatError``) instead of skipping
    unsafe members: absolute names, names leaving the folder, links, devices, more than
    ``MAX_EXTRACT_MEMBERS`` members or ``MAX_EXTRACT_BYTES`` bytes; it goes through a temporary
    folder, so the folder returned is complete, and a complete folder is reused rather than
    extracted again on every call. A file that is not an archive of the formats asked for raises
    ``DatasetFormatError`` (Keras warns and returns a folder that does not exist).

    Without the network, raises ``DatasetNotFoundError`` (a ``FileNotFoundError``) naming the places
    searched, the download error in one line, and where to put the file by hand.
    """
    if origin is None:
        raise ValueError('get_file: please specify the "origin" argument (URL of the file to download)')
    if hash_algorithm not in _ALGORITHMS:
        raise ValueError(f"get_file: hash_algorithm must be one of {_ALGORITHMS}, received {hash_algorithm!r}")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    algorithm = None
    if file_hash is not None:
        file_hash = str(file_hash).lower()
        algorithm = ("sha256" if hash_algorithm == "sha256"
                     or (hash_algorithm == "auto" and len(file_hash) == 64) else "md5")
    formats = _archive_formats("tar" if untar else archive_format) if extract or untar else None

    provided = fname is not None and os.fspath(fname) != ""
    fname = os.fspath(fname) if provided else os.path.basename(urllib.parse.urlsplit(origin).path)
    if not fname:
        raise ValueError(f"get_file: cannot parse a file name from origin={origin!r}; pass fname")
    if "/" in fname or os.sep in fname:
        raise ValueError(f"get_file: fname must be a file name, not a path (use cache_dir and "
                         f"cache_subdir for the folder), received {fname!r}")
    if formats is None:
        download_name, extract_name = fname, None
    elif provided and "." in fname:
        download_name, extract_name = fname, fname[:fname.find(".")] + "_extracted"
    else:
        download_name, extract_name = fname + "_archive", fname

    if cache_dir is None:
        homes = [_files.fastdl_cache_dir().parent, _files.keras_cache_dir().parent]
    else:
        homes = [Path(os.fspath(cache_dir)).expanduser()]
    folders = [home / cache_subdir for home in homes]
    own = folders[0]  # the one written

    found = None
    if not force_download:
        for folder in folders:
            candidate = folder / download_name
            if candidate.is_file():
                if algorithm is None or _files.digest_of(candidate, algorithm) == file_hash:
                    found = candidate
                    break
                print(f"A local file was found at {candidate}, but its {algorithm} hash does not match "
                      f"{file_hash}: downloading it again.", file=sys.stderr)
    if found is None:
        found = own / download_name
        try:
            _files.download(origin, found, **({algorithm: file_hash} if algorithm else {}))
        except OSError as e:  # DownloadError, or the cache folder is not writable
            searched = [folder / download_name for folder in folders]
            message = _files._not_found_message(fname, searched, origin, found, e,
                                                alternative="pass cache_dir= to get_file")
            raise _files.DatasetNotFoundError(message) from None
        fresh = True
    else:
        fresh = False
    if formats is None:
        return str(found)

    if not fresh:  # extracted before, beside the archive (perhaps by Keras) or into fastdl's cache
        for done in (found.parent / extract_name, own / extract_name):
            if done.is_dir():
                return str(done)
    return str(_extract(found, own / extract_name, formats))


def _archive_formats(archive_format):
    if archive_format is None:
        return []
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    bad = [f for f in formats if f not in ("tar", "zip")]
    if bad:
        raise ValueError(f"get_file: archive_format must be 'auto', 'tar', 'zip', a list of these or None, "
                         f"received {archive_format!r}")
    return formats


def _extract(archive, dest, formats):
    """Extract ``archive`` into ``dest`` through a temporary sibling folder; return ``dest``."""
    import tarfile
    import zipfile
    kind = next((f for f in formats if (tarfile.is_tarfile if f == "tar" else zipfile.is_zipfile)(archive)),
                None)
    if kind is None:
        raise _files.DatasetFormatError(f"{archive} is not a {' or '.join(formats) or 'known'} archive, "
                                        "so it cannot be extracted")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part"))
    try:
        extract = _files.extract_tar if kind == "tar" else _files.extract_zip
        extract(archive, tmp, max_members=MAX_EXTRACT_MEMBERS, max_bytes=MAX_EXTRACT_BYTES)
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
