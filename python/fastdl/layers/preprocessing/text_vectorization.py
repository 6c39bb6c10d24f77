"""``TextVectorization``: raw strings to token ids (or multi-hot, count, tf-idf vectors).

Each string is standardized, split into tokens, optionally extended with n-grams, then looked
up in a vocabulary held by an inner :class:`StringLookup` with ``mask_token=""``: in ``"int"``
mode id 0 is padding and id 1 the OOV token ``"[UNK]"``, as in Keras. Standardization follows
TensorFlow's ops that Keras uses: ``lower`` lowercases ASCII letters only
(``tf.strings.lower``), ``strip_punctuation`` removes ASCII punctuation
``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``; ``"whitespace"`` splits on runs of whitespace and
``"character"`` into characters; n-grams of width n join n consecutive tokens with a space and
follow the (n-1)-grams.

A callable ``standardize`` receives and returns a NumPy array of str (as Keras gives it on its
non-TensorFlow backends); a callable ``split`` receives a NumPy array of str and returns one
list of tokens per string. Callables are not data: the config holds them as they are, and
saving a model with one raises ValueError.
"""
import numpy as np

from fastdl.layers.base import check_positive_int
from fastdl.layers.preprocessing.base import PreprocessingLayer, as_text, batches
from fastdl.layers.preprocessing.index_lookup import StringLookup

_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")
_PUNCTUATION = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'"
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_STRIP = str.maketrans("", "", _PUNCTUATION)


def _check_option(value, choices, name):
    if value is None or callable(value) or value in choices:
        return value
    raise ValueError(f"{name} must be one of {[None, *choices]} or a callable. "
                     f"Received: {name}={value!r}")


class TextVectorization(PreprocessingLayer):
    """Keras's TextVectorization on NumPy string arrays: input (batch,) or (batch, 1) strings;
    ``"int"`` output (batch, output_sequence_length) int64 ids (padded with 0 or truncated;
    without a length, padded to the longest string of the batch); ``"multi_hot"``/``"count"``/
    ``"tf_idf"`` output (batch, vocabulary size) float32. ``adapt(texts)`` learns the
    vocabulary (most frequent tokens first; see StringLookup)."""

    _input_kind = "any"

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation",
                 split="whitespace", ngrams=None, output_mode="int",
                 output_sequence_length=None, pad_to_max_tokens=False, vocabulary=None,
                 idf_weights=None, sparse=False, ragged=False, encoding="utf-8",
                 vocabulary_size=None, **kwargs):
        super().__init__(**kwargs)
        self.standardize = _check_option(standardize, _STANDARDIZE, "standardize")
        self.split = _check_option(split, _SPLIT, "split")
        if ngrams is not None:
            if isinstance(ngrams, (tuple, list)):
                widths = tuple(check_positive_int(n, "ngrams") for n in ngrams)
            else:
                widths = tuple(range(1, check_positive_int(ngrams, "ngrams") + 1))
            if self.split is None:
                raise ValueError("`ngrams` requires `split` to be set. Received: split=None")
        else:
            widths = None
        self.ngrams, self._widths = ngrams, widths
        if output_sequence_length is not None:
            output_sequence_length = check_positive_int(output_sequence_length,
                                                        "output_sequence_length")
            if output_mode != "int":
                raise ValueError("`output_sequence_length` must be None unless output_mode is "
                                 f"'int'. Received: output_mode={output_mode!r}")
        self.output_sequence_length = output_sequence_length
        if ragged:
            raise ValueError("fastdl has no ragged tensors. Received: ragged=True")
        self.encoding = encoding
        self._lookup = StringLookup(max_tokens=max_tokens, mask_token="", output_mode=output_mode,
                                    pad_to_max_tokens=pad_to_max_tokens, vocabulary=vocabulary,
                                    idf_weights=idf_weights, sparse=sparse, encoding=encoding,
                                    vocabulary_size=vocabulary_size,
                                    name=f"{self.name}_lookup")
        self.output_mode = self._lookup.output_mode

    # ------------------------------------------------------------------ text to tokens
    def _standardize(self, texts):
        mode = self.standardize
        if callable(mode):
            out = np.asarray(mode(np.asarray(texts, dtype=object)), dtype=object)
            if out.shape != texts.shape:
                raise ValueError(f"the standardize callable returned shape {out.shape} for "
                                 f"input shape {texts.shape}")
            return out
        if mode is None:
            return texts
        table = {"lower": _LOWER, "strip_punctuation": _STRIP}
        tables = [table[m] for m in ("lower", "strip_punctuation")
                  if mode in (m, "lower_and_strip_punctuation")]
        out = texts.copy()
        flat = out.reshape(-1)
        for i, s in enumerate(flat):
            for t in tables:
                s = s.translate(t)
            flat[i] = s
        return out

    def _documents(self, x):
        """Input to (list of token lists, one per string) or, with split=None, the array of
        whole strings."""
        texts = self._standardize(as_text(x, self))
        if self.split is None:
            return None, texts
        if texts.ndim > 1:
            if texts.shape[-1] != 1:
                raise ValueError("When using `TextVectorization` to tokenize strings, the input "
                                 "rank must be 1 or the last shape dimension must be 1. "
                                 f"Received: inputs.shape={texts.shape}")
            texts = texts[..., 0]
        if texts.ndim != 1:
            raise ValueError(f"TextVectorization expects a batch of strings (batch,) or "
                             f"(batch, 1). Received: inputs.shape={texts.shape}")
        if callable(self.split):
            docs = [list(map(str, d)) for d in self.split(texts)]
            if len(docs) != len(texts):
                raise ValueError(f"the split callable returned {len(docs)} token lists for "
                                 f"{len(texts)} strings")
        elif self.split == "whitespace":
            docs = [s.split() for s in texts]
        else:
            docs = [list(s) for s in texts]
        if self._widths is not None:
            docs = [[" ".join(d[i:i + n]) for n in self._widths for i in range(len(d) - n + 1)]
                    for d in docs]
        return docs, None

    # ------------------------------------------------------------------ vocabulary
    def adapt(self, data, batch_size=None, steps=None):
        """Learn the vocabulary from ``data``: an array of strings or an iterable of batches."""
        counts, doc_counts, documents = {}, {}, 0
        for batch in batches(data, self):
            docs, whole = self._documents(batch)
            if docs is None:
                docs = [list(whole.reshape(-1))]
            for doc in docs:
                documents += 1
                for t in doc:
                    counts[t] = counts.get(t, 0) + 1
                for t in set(doc):
                    doc_counts[t] = doc_counts.get(t, 0) + 1
        self._lookup._learn(counts, doc_counts, documents)

    def get_vocabulary(self, include_special_tokens=True):
        return self._lookup.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        return self._lookup.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None):
        self._lookup.set_vocabulary(vocabulary, idf_weights)

    def _wants_vocabulary_asset(self):
        return self._lookup._wants_vocabulary_asset()

    def _vocabulary_from_asset(self, text):
        self._lookup._vocabulary_from_asset(text)

    # ------------------------------------------------------------------ call
    def transform(self, x):
        docs, whole = self._documents(x)
        if docs is None:
            out = self._lookup.transform(whole)
            if self.output_mode == "int" and self.output_sequence_length is not None:
                out = _fit_length(out, self.output_sequence_length)
            return out
        width = self.output_sequence_length or max([len(d) for d in docs] + [0])
        if self.output_mode != "int":
            width = max([len(d) for d in docs] + [1])
        tokens = np.full((len(docs), width), "", dtype=object)
        for i, d in enumerate(docs):
            d = d[:width]
            tokens[i, :len(d)] = d
        return self._lookup.transform(tokens)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        if self.output_mode == "int":
            if self.split is None:
                shape = tuple(input_shape)
                return shape[:-1] + (self.output_sequence_length,) if \
                    self.output_sequence_length else shape
            return (batch, self.output_sequence_length)
        return (batch, self._lookup._depth())

    def get_config(self):
        config = super().get_config()
        lookup = self._lookup.get_config()
        config.update(max_tokens=lookup["max_tokens"], standardize=self.standardize,
                      split=self.split, ngrams=self.ngrams, output_mode=self.output_mode,
                      output_sequence_length=self.output_sequence_length,
                      pad_to_max_tokens=lookup["pad_to_max_tokens"], sparse=False,
                      ragged=False, vocabulary=lookup["vocabulary"],
                      idf_weights=lookup["idf_weights"], encoding=self.encoding,
                      vocabulary_size=self.vocabulary_size())
        return config


def _fit_length(ids, length):
    ids = ids[..., :length]
    if ids.shape[-1] < length:
        pad = [(0, 0)] * (ids.ndim - 1) + [(0, length - ids.shape[-1])]
        ids = np.pad(ids, pad)
    return ids
