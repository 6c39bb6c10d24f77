"""IMDB movie-review sentiment: 25,000 train and 25,000 test reviews, labels 0 (neg) / 1 (pos).

Reviews are sequences of word ids ranked by frequency (raw id 1 = the most frequent word), read from
Keras's ``imdb.npz`` or built from the raw Stanford corpus (Maas et al., 2011), ``aclImdb_v1.tar.gz``
from https://ai.stanford.edu/~amaas/data/sentiment/ or its extracted ``aclImdb/`` folder, given as
``path=``.
"""
import re
from collections import Counter
from pathlib import Path

import numpy as np

from fastdl.datasets import _files, _sequences

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
    args = _sequences.check_args("imdb.load_data", num_words=num_words, skip_top=skip_top,
                                 maxlen=maxlen, seed=seed, start_char=start_char, oov_char=oov_char,
                                 index_from=index_from)
    source = _files.find("The IMDB data set (imdb.npz)", path, ["imdb.npz"],
                         remote={"url": URL, "sha256": SHA256})
    (x_train, y_train), (x_test, y_test) = _read_raw(Path(source))
    return _process(x_train, y_train, x_test, y_test, **args)


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
    return _sequences.parse_word_index(_files.read_file(source, limit=MAX_WORD_INDEX_BYTES), source)


# ----------------------------------------------------------------------------- processing

def _process(x_train, labels_train, x_test, labels_test, *, seed, maxlen, **kwargs):
    """Keras's imdb.load_data steps: shuffle train, then test, with one RandomState(seed), then
    ``_sequences.process`` on both together (so ``num_words`` defaults to the largest id of both)."""
    rng = np.random.RandomState(seed)
    order_train = np.arange(len(x_train))
    rng.shuffle(order_train)
    order_test = np.arange(len(x_test))
    rng.shuffle(order_test)
    rows = [x_train[i] for i in order_train] + [x_test[i] for i in order_test]
    seqs, keep = _sequences.process(rows, maxlen=maxlen, **kwargs)
    n_train = len(order_train)
    labels_train = labels_train[order_train][keep[:n_train]]
    labels_test = labels_test[order_test][keep[n_train:]]
    if maxlen is not None and (len(labels_train) == 0 or len(labels_test) == 0):
        raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no "
                         f"sequence was kept ({len(labels_train)} train, {len(labels_test)} test). "
                         "Increase maxlen.")
    n_train = len(labels_train)
    return ((_sequences.object_array(seqs[:n_train]), labels_train),
            (_sequences.object_array(seqs[n_train:]), labels_test))


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
        seqs = _sequences.raw_sequences(x, f"{source}[x_{split}]")
        out.append((seqs, _sequences.labels(y, len(seqs), f"{source}[y_{split}]")))
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
