"""Word-id sequence data sets (``imdb``, ``reuters``): Keras's argument checks, the validation of
the raw sequences read from a file, and Keras's post-processing (``start_char``, ``index_from``,
``maxlen``, ``num_words``, ``skip_top``, ``oov_char``), shared by both loaders."""
import json
from itertools import chain

import numpy as np

from fastdl.datasets import _files

MAX_ID = 2**40  # ids and id arguments stay below this: far above any vocabulary, sums fit int64


def check_int(loader, name, value, minimum, allow_none=False, maximum=MAX_ID):
    """``value`` as an int in ``[minimum, maximum)`` (or None where allowed), else TypeError/ValueError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        kind = "an int or None" if allow_none else "an int"
        raise TypeError(f"{loader}: {name} must be {kind}, received {type(value).__name__} {value!r}")
    if not minimum <= value < maximum:
        raise ValueError(f"{loader}: {name} must be in [{minimum}, {maximum}), received {value}")
    return int(value)


def check_args(loader, *, num_words, skip_top, maxlen, seed, start_char, oov_char, index_from):
    """The keyword arguments of ``process`` (and ``seed``), checked."""
    return dict(num_words=check_int(loader, "num_words", num_words, 1, allow_none=True),
                skip_top=check_int(loader, "skip_top", skip_top, 0),
                maxlen=check_int(loader, "maxlen", maxlen, 1, allow_none=True),
                seed=check_int(loader, "seed", seed, 0, maximum=2**32),
                start_char=check_int(loader, "start_char", start_char, 0, allow_none=True),
                oov_char=check_int(loader, "oov_char", oov_char, 0, allow_none=True),
                index_from=check_int(loader, "index_from", index_from, 0))


def process(rows, *, num_words, skip_top, maxlen, start_char, oov_char, index_from):
    """Keras's steps on already shuffled raw id lists, vectorised over all ids at once.

    Prepend ``start_char`` (unless None) and add ``index_from`` to every raw id; with ``maxlen``, keep
    only sequences SHORTER than ``maxlen`` (start_char included); ``num_words`` defaults to the largest
    id (which, as in Keras, then counts as out of range); ids outside ``[skip_top, num_words)`` become
    ``oov_char`` (dropped when it is None). Returns (the kept sequences as lists, the bool mask of
    kept rows).
    """
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    ids = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum())) + index_from
    if start_char is not None:
        ids = np.insert(ids, np.cumsum(lengths) - lengths, start_char)
        lengths = lengths + 1

    keep = np.ones(len(rows), dtype=bool)
    if maxlen is not None:  # Keras keeps len < maxlen, counting start_char
        keep = lengths < maxlen
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
    return [values[a:b] for a, b in zip([0] + ends[:-1], ends)], keep


def object_array(seqs):
    """A 1-D object array of the lists ``seqs`` (1-D even when all lengths agree)."""
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = s
    return out


def raw_sequences(x, where):
    """Validate raw id sequences read from a file: a 1-D object array of int lists (or a 2-D int
    array); returns them as lists of Python ints. Anything else raises ``DatasetFormatError``."""
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
    if low < 0 or high >= MAX_ID:
        i = next(i for i, r in enumerate(rows) if r and (min(r) < 0 or max(r) >= MAX_ID))
        raise _files.DatasetFormatError(f"{where}: sequence {i} holds the id "
                                        f"{low if low < 0 else high}, outside [0, {MAX_ID})")
    return rows


def labels(y, count, where):
    """Validate 1-D integer labels, one per sequence; bools become int64."""
    if y.ndim != 1 or y.dtype.kind not in "biu" or len(y) != count:
        raise _files.DatasetFormatError(f"{where}: expected {count} integer labels (1-D), found "
                                        f"{y.dtype} {y.shape}")
    return y.astype(np.int64) if y.dtype.kind == "b" else y


def parse_word_index(raw, where):
    """The ``{word: id}`` dict of a word-index JSON file (ids ints >= 1, no duplicate words)."""
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
