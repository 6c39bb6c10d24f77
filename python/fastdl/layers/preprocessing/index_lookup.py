"""``StringLookup`` and ``IntegerLookup``: tokens to vocabulary ids (and back, ``invert``).

The id layout is Keras's: ``[mask] [OOV x num_oov_indices] tokens...`` (the mask id 0 only
with a ``mask_token`` in ``"int"`` mode). ``adapt`` orders the learned tokens by frequency,
most frequent first, ties broken by the token itself in descending order (Keras's
``np.lexsort((tokens, counts))[::-1]``), and keeps ``max_tokens`` ids in all. With several OOV
ids an unknown value goes to one of them as in Keras: strings (and integers with
``oov_method="farmhash"``) by FarmHash Fingerprint64, or SipHash under ``salt`` (see
``hashing``), other integers by ``value mod num_oov_indices``.

The vocabulary (and tf-idf weights) are saved in the config under ``vocabulary`` and
``idf_weights``, which Keras reads back as a given vocabulary, so an adapted layer survives
both file formats. A ``.keras`` file written by Keras keeps an adapted vocabulary in its assets
(``assets/<layer>/vocabulary.txt``), which the loader reads; Keras's tf-idf weights live in its
weights file under a name fastdl does not read, so those files are refused with a message.
"""
import numpy as np

from fastdl.layers.base import check_choice, check_positive_int
from fastdl.layers.preprocessing.base import (PreprocessingLayer, as_integers, as_text,
                                              batches)
from fastdl.layers.preprocessing.category_encoding import encode, encoded_shape
from fastdl.layers.preprocessing.hashing import hash_bins, salt_pair

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


class IndexLookup(PreprocessingLayer):
    """What StringLookup and IntegerLookup share; subclasses define ``_tokens_of(x)`` (input
    to a NumPy array of tokens) and ``_text`` (whether tokens are strings)."""

    _input_kind = "any"
    _text = True

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=None,
                 vocabulary=None, idf_weights=None, invert=False, output_mode="int",
                 pad_to_max_tokens=False, sparse=False, vocabulary_size=None,
                 oov_method="floormod", salt=None, dtype=None, **kwargs):
        super().__init__(**kwargs)
        if max_tokens is not None:
            max_tokens = check_positive_int(max_tokens, "max_tokens")
        self.max_tokens = max_tokens
        self.num_oov_indices = check_positive_int(num_oov_indices, "num_oov_indices",
                                                  allow_zero=True)
        self.output_mode = check_choice(output_mode, OUTPUT_MODES, "output_mode")
        if invert and self.output_mode != "int":
            raise ValueError(f"`output_mode` must be 'int' when `invert` is true. Received: "
                             f"output_mode={output_mode!r}")
        for flag, value in (("invert", invert), ("pad_to_max_tokens", pad_to_max_tokens)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be a bool. Received: {flag}={value!r}")
        if sparse:
            raise ValueError("fastdl has no sparse tensors. Received: sparse=True")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError("pad_to_max_tokens=True needs max_tokens")
        if self.output_mode == "tf_idf" and vocabulary is not None and idf_weights is None:
            raise ValueError("When specifying the `vocabulary` argument, in TF-IDF output mode, "
                             "the `idf_weights` argument must also be provided.")
        self.oov_method = check_choice(oov_method, ("floormod", "farmhash"), "oov_method")
        if salt is not None and oov_method != "farmhash":
            raise ValueError(f"`salt` can only be used when `oov_method='farmhash'`. Received: "
                             f"oov_method={oov_method}")
        self.salt = None if salt is None else salt_pair(salt, "IndexLookup")
        self.invert, self.pad_to_max_tokens = invert, pad_to_max_tokens
        self.mask_token, self.oov_token = mask_token, oov_token
        # Keras's lookups ignore the layer dtype: ids and counts are int64, tf-idf float32
        del dtype
        self.output_dtype = "float32" if self.output_mode == "tf_idf" else "int64"
        self._tokens, self._ids = [], {}
        self.idf_weights = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        if vocabulary_size is not None and vocabulary is not None and \
                vocabulary_size != self.vocabulary_size():
            raise ValueError(f"vocabulary_size={vocabulary_size!r} does not match the "
                             f"vocabulary's size {self.vocabulary_size()}")

    # ------------------------------------------------------------------ vocabulary
    def _oov_start(self):
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start(self):
        return self._oov_start() + self.num_oov_indices

    def _special_tokens(self):
        return ([self.mask_token] if self._oov_start() else []) + \
            [self.oov_token] * self.num_oov_indices

    def vocabulary_size(self):
        """The number of ids, special tokens included."""
        return self._token_start() + len(self._tokens)

    def get_vocabulary(self, include_special_tokens=True):
        """The token of each id, in id order (special tokens first unless excluded)."""
        return (self._special_tokens() if include_special_tokens else []) + list(self._tokens)

    def _plain(self, token):
        return str(token) if self._text else int(token)

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Use ``vocabulary`` (a list of tokens; special tokens at its start, in id order, are
        recognised and skipped, as in Keras) and, in tf_idf mode, its ``idf_weights``."""
        if isinstance(vocabulary, str):
            raise TypeError("fastdl takes the vocabulary as a list of tokens, not a file path. "
                            f"Received: vocabulary={vocabulary!r:.100}")
        tokens = [self._plain(t) for t in self._tokens_of(np.asarray(list(vocabulary),
                                                                    dtype=object)).ravel()]
        specials = self._special_tokens()
        found = len(tokens) >= len(specials) and tokens[:len(specials)] == specials
        if found:
            tokens = tokens[len(specials):]
        for special, what in ((self.mask_token, "mask"), (self.oov_token if self.invert
                                                          else None, "OOV")):
            if special is not None and special in tokens:
                raise ValueError(f"Found reserved {what} token {special!r} at an unexpected "
                                 "location in `vocabulary`: special tokens may only come first, "
                                 f"in this order: {specials}")
        if len(set(tokens)) != len(tokens):
            seen, repeated = set(), []
            for t in tokens:
                (repeated if t in seen else seen.add(t) or []).append(t)
            raise ValueError(f"The passed vocabulary has at least one repeated term: {repeated[:10]}")
        size = self._token_start() + len(tokens)
        if self.max_tokens is not None and size > self.max_tokens:
            raise ValueError(f"Attempted to set a vocabulary larger than the maximum vocab size. "
                             f"Received vocabulary size is {size}; `max_tokens` is "
                             f"{self.max_tokens}.")
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError("tf_idf output needs idf_weights with the vocabulary")
            w = np.asarray(idf_weights, dtype=np.float64).ravel()
            if len(w) != len(tokens) + (len(specials) if found else 0):
                raise ValueError(f"`idf_weights` must be the same length as vocabulary. "
                                 f"len(idf_weights) is {len(w)}; len(vocabulary) is "
                                 f"{len(tokens) + (len(specials) if found else 0)}")
            if not found:   # Keras: the special ids get the mean idf
                w = np.concatenate([np.full(len(specials), w.mean() if len(w) else 0.0), w])
            self.idf_weights = w
        self._tokens = tokens
        self._ids = {t: i + self._token_start() for i, t in enumerate(tokens)}

    def _wants_vocabulary_asset(self):
        return not self._tokens

    def _vocabulary_from_asset(self, text):
        """A Keras file's ``vocabulary.txt`` (one token a line, special tokens first)."""
        lines = text.splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        self.set_vocabulary(lines if self._text else [int(v) for v in lines],
                            self.idf_weights)

    def adapt(self, data, batch_size=None, steps=None):
        """Learn the vocabulary from ``data`` (an array of tokens, or an iterable of batches):
        see the module docstring for the order."""
        counts, doc_counts, documents = {}, {}, 0
        for batch in batches(data, self):
            tokens = self._tokens_of(batch)
            for doc in (tokens.reshape(tokens.shape[0], -1) if tokens.ndim > 1
                        else [tokens.ravel()]):
                documents += 1
                for t in doc:
                    t = self._plain(t)
                    counts[t] = counts.get(t, 0) + 1
                if self.output_mode == "tf_idf":
                    for t in set(map(self._plain, doc)):
                        doc_counts[t] = doc_counts.get(t, 0) + 1
        self._learn(counts, doc_counts, documents)

    def _learn(self, counts, doc_counts, documents):
        for special in (self.mask_token, self.oov_token):
            counts.pop(special, None)
        # count descending, then token descending (Keras's lexsort reversed)
        tokens = sorted(counts, key=lambda t: (counts[t], _sort_key(t)), reverse=True)
        if self.max_tokens is not None:
            tokens = tokens[:max(self.max_tokens - self._token_start(), 0)]
        self._tokens = tokens
        self._ids = {t: i + self._token_start() for i, t in enumerate(tokens)}
        if self.output_mode == "tf_idf":
            idf = np.log(1 + documents / (1 + np.array([doc_counts[t] for t in tokens],
                                                       dtype=np.float64)))
            self.idf_weights = np.concatenate(
                [np.full(self._token_start(), idf.mean() if len(idf) else 0.0), idf])

    # ------------------------------------------------------------------ lookup
    def _depth(self):
        return self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()

    def _lookup(self, tokens):
        flat = tokens.ravel()
        ids = np.fromiter((self._ids.get(self._plain(t), -1) for t in flat), dtype=np.int64,
                          count=flat.size).reshape(tokens.shape)
        is_mask = None
        if self.mask_token is not None:
            is_mask = np.fromiter((self._plain(t) == self.mask_token for t in flat), dtype=bool,
                                  count=flat.size).reshape(tokens.shape)
            ids[is_mask] = 0
        oov = ids < 0
        if np.any(oov):
            if self.num_oov_indices == 0:
                raise ValueError(f"When `num_oov_indices=0` all inputs should be in vocabulary, "
                                 f"found OOV values {np.unique(tokens[oov])[:10].tolist()}, "
                                 "consider setting `num_oov_indices=1`.")
            if self.num_oov_indices == 1:
                ids[oov] = self._oov_start()
            elif self._text or self.oov_method == "farmhash":   # Keras hashes them
                ids[oov] = hash_bins(tokens[oov], self.num_oov_indices, self.salt, self) + \
                    self._oov_start()
            else:
                ids[oov] = np.mod(tokens[oov].astype(np.int64), self.num_oov_indices) + \
                    self._oov_start()
        return ids, is_mask

    def _invert(self, ids):
        ids = as_integers(ids, self)
        vocab = self.get_vocabulary()
        out = np.empty(ids.shape, dtype=object)
        flat, src = out.reshape(-1), ids.reshape(-1)
        for i, v in enumerate(src):
            flat[i] = vocab[v] if 0 <= v < len(vocab) else self.oov_token
        if self.mask_token is not None:
            out[ids == 0] = self.mask_token
        return out if self._text else out.astype(np.int64)

    def transform(self, x):
        if self.invert:
            return self._invert(x)
        if self.output_mode != "int" and not self.pad_to_max_tokens and not self._tokens \
                and self.vocabulary_size() == self._token_start():
            raise RuntimeError(f"When using `output_mode={self.output_mode}` and "
                               "`pad_to_max_tokens=False`, you must set the layer's vocabulary "
                               "before calling it. Either pass a `vocabulary` argument to the "
                               "layer, or call `adapt` with some sample data.")
        ids, is_mask = self._lookup(self._tokens_of(x))
        if self.output_mode == "int":
            return ids.astype(self.output_dtype)
        skip = is_mask if self.output_mode != "int" else None
        out = encode(ids, "count" if self.output_mode == "tf_idf" else self.output_mode,
                     self._depth(), "float64", skip=skip)
        if self.output_mode == "tf_idf":
            w = np.zeros(self._depth())
            w[:len(self.idf_weights)] = self.idf_weights[:self._depth()]
            out = out * w
        return out.astype(self.output_dtype)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if self.output_mode == "int":
            return shape
        return encoded_shape(shape, self.output_mode, self._depth())

    def get_config(self):
        config = super().get_config()
        config.update(
            invert=self.invert, max_tokens=self.max_tokens,
            num_oov_indices=self.num_oov_indices, oov_token=self.oov_token,
            mask_token=self.mask_token, output_mode=self.output_mode, sparse=False,
            pad_to_max_tokens=self.pad_to_max_tokens,
            vocabulary=list(self._tokens) if self._tokens else None,
            idf_weights=(None if self.idf_weights is None
                         else self.idf_weights[self._token_start():].tolist()),
            vocabulary_size=self.vocabulary_size(), oov_method=self.oov_method, salt=self.salt)
        return config


def _sort_key(token):
    # strings compare as their UTF-8 bytes, as TensorFlow's sort of tf.string does
    return token.encode("utf-8") if isinstance(token, str) else token


class StringLookup(IndexLookup):
    """Strings to ids (``invert=True``: ids to strings). Input: a NumPy array of str (or
    bytes, decoded as UTF-8)."""

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]",
                 vocabulary=None, idf_weights=None, invert=False, output_mode="int",
                 pad_to_max_tokens=False, sparse=False, encoding="utf-8",
                 vocabulary_dtype="string", **kwargs):
        if encoding not in ("utf-8", "utf8", "UTF-8"):
            raise ValueError(f"fastdl reads strings as UTF-8. Received: encoding={encoding!r}")
        if vocabulary_dtype != "string":
            raise ValueError(f"StringLookup's vocabulary_dtype is 'string'. Received: "
                             f"{vocabulary_dtype!r}")
        self.encoding = "utf-8"
        super().__init__(max_tokens, num_oov_indices, mask_token, oov_token, vocabulary,
                         idf_weights, invert, output_mode, pad_to_max_tokens, sparse, **kwargs)

    def _tokens_of(self, x):
        return as_text(x, self)

    def get_config(self):
        config = super().get_config()
        config.update(encoding=self.encoding, vocabulary_dtype="string")
        return config


class IntegerLookup(IndexLookup):
    """Integers to ids (``invert=True``: ids to integers). With several OOV ids an unknown
    value v gets ``v mod num_oov_indices`` among them, as Keras's default ``floormod``."""

    _text = False

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1,
                 vocabulary=None, vocabulary_dtype="int64", idf_weights=None, invert=False,
                 output_mode="int", sparse=False, pad_to_max_tokens=False, **kwargs):
        if vocabulary_dtype not in ("int64", "int32"):
            raise ValueError(f"vocabulary_dtype must be 'int64' or 'int32'. Received: "
                             f"vocabulary_dtype={vocabulary_dtype!r}")
        self.vocabulary_dtype = vocabulary_dtype
        if mask_token is not None and (isinstance(mask_token, bool) or
                                       not isinstance(mask_token, (int, np.integer))):
            raise TypeError(f"mask_token must be an int or None. Received: {mask_token!r}")
        super().__init__(max_tokens, num_oov_indices, mask_token, oov_token, vocabulary,
                         idf_weights, invert, output_mode, pad_to_max_tokens, sparse, **kwargs)

    def _tokens_of(self, x):
        a = np.asarray(x)
        if a.dtype == object:
            if any(isinstance(v, (str, bytes)) for v in a.ravel()):
                raise TypeError(f"IntegerLookup layer {self.name!r} expects integers, received "
                                "strings")
            a = np.asarray(a.tolist())
        return as_integers(a, self)

    def get_config(self):
        config = super().get_config()
        config["vocabulary_dtype"] = self.vocabulary_dtype
        return config

