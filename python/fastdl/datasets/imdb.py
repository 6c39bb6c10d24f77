"""IMDB movie-review sentiment: 25,000 train and 25,000 test reviews, labels 0 (neg) / 1 (pos).

Reviews are sequences of word ids ranked by frequency (raw id 1 = the most frequent word), read from
Keras's ``imdb.npz`` or built from the raw Stanford corpus (Maas et al., 2011), ``aclImdb_v1.tar.gz``
from https://ai.stanford.edu/~amaas/data/sentiment/ or its extracted ``aclImdb/`` folder, given as
``path=``.
"""
import json
import re
from collections import Counter
from itertools import chain
from pathlib import Path

import numpy as np

from fastdl.datasets import _files

_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
URL = _ORIGIN + "imdb.npz"
SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_URL = _ORIGIN + "imdb_word_index.json"
WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"  # the only checksum published for it

_ACL_DIR, _ACL_ARCHIVE = "aclImdb", "aclImdb_v1.tar.gz"
_ACL_MEMBER = re.compile(r"aclImdb/(train|test)/(neg|pos)/[^/]+\.txt")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Bounds from the official files, past which reading stops with DatasetFormatError (so a hostile
# file can neither run long nor fill memory). imdb.npz: each x array holds 25,000 reviews of about
# 6 million word ids in all, and the four arrays decompress to a few tens of MB.
# imdb_word_index.json: 88,584 words in 1.6 MB. aclImdb_v1.tar.gz: about 100,000 members (50,000
# labelled and 50,000 unlabelled reviews, a few feature files), about 300 MB once decompressed.
MAX_NPZ_BYTES = 256 << 20  # the four arrays of imdb.npz together, decompressed
MAX_NPZ_ITEMS = 1 << 24  # items in one array, counting each review list and each word id
MAX_WORD_INDEX_BYTES = 16 << 20
MAX_ACL_BYTES = 1 << 30  # the raw corpus, decompressed (or the reviews read from its folder)
MAX_ACL_MEMBERS = 120_000
_MAX_ID = 2**40  # ids and id arguments stay below this: far above any vocabulary, sums fit int64
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # letters/digits, inner apostrophes kept ("don't")


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1,
              oov_char=2, index_from=3):
    """Load IMDB as ``(x_train, y_train), (x_test, y_test)`` with Keras's processing.

    ``x_*``: 1-D object arrays of lists of ints; ``y_*``: integer arrays of 0/1. In Keras's order:
    shuffle train, then test, with one ``np.random.RandomState(seed)``; prepend ``start_char`` (unless
    None) and add ``index_from`` to every raw id; with ``maxlen``, keep only sequences SHORTER than
    ``maxlen`` (start_char included; ``ValueError`` if none is left); ``num_words`` defaults to the
    largest id (which, as in Keras, then counts as out of range); ids outside
    ``[skip_top, num_words)`` become ``oov_char`` (dropped when ``oov_char`` is None).

    ``path``: ``imdb.npz`` (a bare name is looked up in the fastdl then Keras cache and downloaded
    there, never read from the working folder: pass ``"./imdb.npz"`` for that), an existing
    ``.npz``, or the raw corpus: an ``aclImdb/`` folder, ``aclImdb_v1.tar.gz``, or a folder holding
    either. Files larger than the official ones (see ``MAX_NPZ_BYTES`` and the other bounds) raise
    ``DatasetFormatError``. From the raw corpus the vocabulary is built from the training reviews
    (lower-cased, ``<br />`` removed, words of letters/digits with inner apostrophes), ranked by count
    with ties in alphabetical order; test words unseen in training are skipped, as in Keras's data.
    Reviews are taken neg then pos, each folder in natural file-name order, before shuffling.
    """
    num_words = _check_int("num_words", num_words, 1, allow_none=True)
    skip_top = _check_int("skip_top", skip_top, 0)
    maxlen = _check_int("maxlen", maxlen, 1, allow_none=True)
    seed = _check_int("seed", seed, 0, maximum=2**32)
    start_char = _check_int("start_char", start_char, 0, allow_none=True)
    oov_char = _check_int("oov_char", oov_char, 0, allow_none=True)
    index_from = _check_int("index_from", index_from, 0)
    source = _files.find("The IMDB data set (imdb.npz)", path, ["imdb.npz"],
                         remote={"url": URL, "sha256": SHA256})
    (x_train, y_train), (x_test, y_test) = _read_raw(Path(source))
    return _process(x_train, y_train, x_test, y_test, num_words=num_words, skip_top=skip_top,
                    maxlen=maxlen, seed=seed, start_char=start_char, oov_char=oov_char,
                    index_from=index_from)


def get_word_index(path="imdb_word_index.json"):
    """The ``{word: raw id}`` dict of ``imdb_word_index.json`` (ids before ``index_from`` is added).

    ``path`` as in ``load_data``: a bare name is looked up in the caches and downloaded there (md5
    checked). Given an ``aclImdb`` folder or archive, returns the vocabulary ``load_data`` builds
    from it.
    """
    source = _files.find("The IMDB word index (imdb_word_index.json)", path, ["imdb_word_index.json"],
                         remote={"url": WORD_INDEX_URL, "md5": WORD_INDEX_MD5})
    kind, source = _pick(Path(source), ("json", "acl"))
    if kind == "acl":
        return _vocabulary(_read_acl(source)[0][0])
    return _parse_word_index(_files.read_file(source, limit=MAX_WORD_INDEX_BYTES), source)


# ----------------------------------------------------------------------------- processing

def _process(x_train, labels_train, x_test, labels_test, *, num_words, skip_top, maxlen, seed,
             start_char, oov_char, index_from):
    """Keras's imdb.load_data steps (see load_data), vectorised over all ids at once."""
    rng = np.random.RandomState(seed)
    order_train = np.arange(len(x_train))
    rng.shuffle(order_train)
    order_test = np.arange(len(x_test))
    rng.shuffle(order_test)
    rows = [x_train[i] for i in order_train] + [x_test[i] for i in order_test]
    labels_train, labels_test = labels_train[order_train], labels_test[order_test]
    n_train = len(order_train)

    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    ids = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum())) + index_from
    if start_char is not None:
        ids = np.insert(ids, np.cumsum(lengths) - lengths, start_char)
        lengths = lengths + 1

    if maxlen is not None:  # Keras keeps len < maxlen, counting start_char
        keep = lengths < maxlen
        labels_train, labels_test = labels_train[keep[:n_train]], labels_test[keep[n_train:]]
        n_train = int(keep[:n_train].sum())
        if n_train == 0 or len(labels_test) == 0:
            raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no "
                             f"sequence was kept ({n_train} train, {len(labels_test)} test). "
                             "Increase maxlen.")
        ids, lengths = ids[np.repeat(keep, lengths)], lengths[keep]

    if num_words is None:  # as Keras: the largest id, which the test below then maps to oov
        num_words = int(ids.max()) if ids.size else 0
    outside = (ids < skip_top) | (ids >= num_words)
    if oov_char is not None:
        ids[outside] = oov_char
    else:
        row = np.repeat(np.arange(len(lengths)), lengths)
        lengths = np.bincount(row[~outside], minlength=len(lengths))
        ids = ids[~outside]

    values, ends = ids.tolist(), np.cumsum(lengths).tolist()
    seqs = [values[a:b] for a, b in zip([0] + ends[:-1], ends)]
    return (_object_array(seqs[:n_train]), labels_train), (_object_array(seqs[n_train:]), labels_test)


def _object_array(seqs):
    out = np.empty(len(seqs), dtype=object)  # always 1-D, even when all lengths agree
    for i, s in enumerate(seqs):
        out[i] = s
    return out


def _check_int(name, value, minimum, allow_none=False, maximum=_MAX_ID):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        kind = "an int or None" if allow_none else "an int"
        raise TypeError(f"imdb.load_data: {name} must be {kind}, received {type(value).__name__} {value!r}")
    if not minimum <= value < maximum:
        raise ValueError(f"imdb.load_data: {name} must be in [{minimum}, {maximum}), received {value}")
    return int(value)


# ----------------------------------------------------------------------------- imdb.npz

def _read_raw(source):
    """((x_train lists, y_train), (x_test lists, y_test)) of raw ids from any supported source."""
    kind, source = _pick(source, ("npz", "acl"))
    if kind == "acl":
        (train_docs, y_train), (test_docs, y_test) = _read_acl(source)
        vocab = _vocabulary(train_docs)
        return (([[vocab[w] for w in doc] for doc in train_docs], y_train),
                ([[vocab[w] for w in doc if w in vocab] for doc in test_docs], y_test))
    arrays = _files.load_npz(source, ["x_train", "y_train", "x_test", "y_test"], official_sha256=SHA256,
                             max_bytes=MAX_NPZ_BYTES, max_items=MAX_NPZ_ITEMS)
    out = []
    for split in ("train", "test"):
        x, y = arrays["x_" + split], arrays["y_" + split]
        seqs = _sequences(x, f"{source}[x_{split}]")
        if y.ndim != 1 or y.dtype.kind not in "biu" or len(y) != len(seqs):
            raise _files.DatasetFormatError(f"{source}[y_{split}]: expected {len(seqs)} integer labels "
                                            f"(1-D), found {y.dtype} {y.shape}")
        out.append((seqs, y.astype(np.int64) if y.dtype.kind == "b" else y))
    return tuple(out)


_KIND_NAMES = {"npz": "imdb.npz", "json": "imdb_word_index.json", "acl": "the aclImdb corpus"}


def _pick(source, kinds):
    """(kind, path) for the first of ``kinds`` that ``source`` is or (as a folder) holds."""
    if source.is_dir():
        inside = {"npz": [source / "imdb.npz"], "json": [source / "imdb_word_index.json"],
                  "acl": [source / _ACL_DIR, source / _ACL_ARCHIVE]}
        if (source / "train").is_dir():
            inside["acl"].insert(0, source)
        for kind in kinds:
            for candidate in inside[kind]:
                if candidate == source or candidate.exists():
                    return kind, candidate
        raise _files.DatasetNotFoundError(
            f"{source} holds none of: " + ", ".join(str(c) for k in kinds for c in inside[k]))
    kind = _file_kind(source)
    if kind not in kinds:
        raise _files.DatasetFormatError(f"{source} looks like {_KIND_NAMES[kind]}; expected "
                                        + " or ".join(_KIND_NAMES[k] for k in kinds))
    return kind, source


def _file_kind(path):
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK") or path.suffix == ".npz":
        return "npz"
    if head.lstrip()[:1] == b"{" or path.suffix == ".json":
        return "json"
    return "acl"  # read as a (compressed) tar archive of aclImdb/; tarfile reports anything else


def _sequences(x, where):
    """Validate raw id sequences: a 1-D object array of int lists (or a 2-D int array)."""
    if x.dtype.kind in "iu" and x.ndim == 2:
        rows = x.tolist()
    elif x.dtype == object and x.ndim == 1:
        rows = list(x)
        for i, seq in enumerate(rows):
            if type(seq) is list:
                continue
            if isinstance(seq, np.ndarray) and seq.ndim == 1 and seq.dtype.kind in "iu":
                rows[i] = seq.tolist()
            elif isinstance(seq, (list, tuple)):
                rows[i] = list(seq)
            else:
                raise _files.DatasetFormatError(f"{where}: sequence {i} is a {type(seq).__name__}, "
                                                "expected a list of ints")
    else:
        raise _files.DatasetFormatError(f"{where}: expected a 1-D object array of int lists, found "
                                        f"{x.dtype} {x.shape}")
    types = set(map(type, chain.from_iterable(rows)))
    if not types <= {int}:
        if any(t is bool or not issubclass(t, (int, np.integer)) for t in types):
            i = next(i for i, r in enumerate(rows)
                     if any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) for w in r))
            raise _files.DatasetFormatError(f"{where}: sequence {i} holds a non-integer id")
        rows = [[int(w) for w in r] for r in rows]
    nonempty = [r for r in rows if r]
    low = min(map(min, nonempty), default=0)
    high = max(map(max, nonempty), default=0)
    if low < 0 or high >= _MAX_ID:
        i = next(i for i, r in enumerate(rows) if r and (min(r) < 0 or max(r) >= _MAX_ID))
        raise _files.DatasetFormatError(f"{where}: sequence {i} holds the id "
                                        f"{low if low < 0 else high}, outside [0, {_MAX_ID})")
    return rows


# ----------------------------------------------------------------------------- word index json

def _parse_word_index(raw, where):
    def no_duplicates(pairs):
        seen = {}
        for k, v in pairs:
            if k in seen:
                raise _files.DatasetFormatError(f"{where}: duplicate key {k!r}")
            seen[k] = v
        return seen

    try:
        index = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except _files.DatasetFormatError:
        raise
    except (ValueError, RecursionError) as e:  # ValueError: bad UTF-8 or JSON, an over-long number
        raise _files.DatasetFormatError(f"{where}: not valid UTF-8 JSON: {e}") from e
    if not isinstance(index, dict):
        raise _files.DatasetFormatError(f"{where}: expected a JSON object of word -> id, found "
                                        f"{type(index).__name__}")
    for word, rank in index.items():
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise _files.DatasetFormatError(f"{where}: the id of {word!r} must be an int >= 1, "
                                            f"found {rank!r}")
    return index


# ----------------------------------------------------------------------------- raw aclImdb corpus

def tokenize(text):
    """Lower-case, drop ``<br />`` tags, and return the words (letters/digits, inner apostrophes)."""
    return _WORD.findall(_BR.sub(" ", text.lower()))


def _natural_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _read_acl(acl):
    """(train, test), each (list of token lists, int64 labels): neg then pos, natural name order."""
    texts = {}
    if acl.is_dir():
        for split in ("train", "test"):
            for sub in ("neg", "pos"):
                folder = acl / split / sub
                if not folder.is_dir():
                    raise _files.DatasetFormatError(f"{acl}: missing the folder {split}/{sub}/")
                for f in folder.glob("*.txt"):
                    texts[(split, sub, f.name)] = f
        texts = dict(zip(texts, _files.read_files(texts.values(), MAX_ACL_BYTES).values()))
    else:
        members = _files.read_tar_members(acl, lambda n: _ACL_MEMBER.fullmatch(n) is not None,
                                          max_members=MAX_ACL_MEMBERS, max_bytes=MAX_ACL_BYTES)
        for name, raw in members.items():
            _, split, sub, fname = name.split("/")
            texts[(split, sub, fname)] = raw
    out = []
    for split in ("train", "test"):
        docs, labels = [], []
        for label, sub in enumerate(("neg", "pos")):
            keys = sorted((k for k in texts if k[0] == split and k[1] == sub),
                          key=lambda k: _natural_key(k[2]))
            docs += [tokenize(texts[k].decode("utf-8", errors="replace")) for k in keys]
            labels += [label] * len(keys)
        if not docs:
            raise _files.DatasetFormatError(f"{acl}: no {split} reviews found "
                                            f"(expected {_ACL_DIR}/{split}/neg|pos/*.txt)")
        out.append((docs, np.asarray(labels, dtype=np.int64)))
    return tuple(out)


def _vocabulary(docs):
    """{word: rank}: rank 1 is the most frequent word; equal counts in alphabetical order."""
    counts = Counter(w for doc in docs for w in doc)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {word: rank for rank, (word, _) in enumerate(ranked, start=1)}
