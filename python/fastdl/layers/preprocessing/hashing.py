"""``Hashing``: strings or integers to hash bins, the same bins as Keras.

Keras hashes with TensorFlow's ``to_hash_bucket_fast`` (FarmHash Fingerprint64 of the value's
bytes, modulo the bins) or, given a ``salt``, ``to_hash_bucket_strong`` (SipHash-2-4 keyed by
the salt pair, int64 values whose bits are read as unsigned). fastdl's C++ kernel computes both hashes (``fastdl._core.hash_buckets``).
Strings hash as their UTF-8 bytes; integers as their decimal strings; floats are first cast to
int64 (truncated toward zero) and booleans spelled ``true``/``false``, as TensorFlow's
``as_string`` writes them. With ``mask_value`` (and ``num_bins > 1``), values equal to it go
to bin 0 and the others to ``1 + hash % (num_bins - 1)``.
"""
import numbers

import numpy as np

from fastdl import _core
from fastdl.layers.base import check_choice, check_positive_int
from fastdl.layers.preprocessing.base import (PreprocessingLayer, array_input,
                                              check_output_dtype, is_text)
from fastdl.layers.preprocessing.category_encoding import ENCODINGS, encode, encoded_shape

_INT64 = 2 ** 63


def salt_pair(salt, owner="Hashing"):
    """Keras's salt: one integer (used twice) or a pair, each an int64 (TensorFlow takes the
    key as int64 values and reads their bits as unsigned)."""
    if isinstance(salt, (tuple, list)) and len(salt) == 2:
        pair = list(salt)
    elif isinstance(salt, numbers.Integral) and not isinstance(salt, (bool, np.bool_)):
        pair = [salt, salt]
    else:
        raise ValueError(f"The `salt` argument for `{owner}` can only be a tuple of size 2 "
                         f"integers, or a single integer. Received: salt={salt!r}.")
    for v in pair:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or \
                not -_INT64 <= v < _INT64:
            raise ValueError(f"The `salt` values for `{owner}` must be int64 integers, in "
                             f"[-2**63, 2**63). Received: salt={salt!r}.")
    return [int(v) for v in pair]


def value_bytes(a, layer):
    """The bytes TensorFlow hashes for each element of ``a`` (flattened), as a list."""
    if is_text(a):
        out = []
        for v in a.ravel():
            if isinstance(v, str):
                out.append(v.encode("utf-8"))
            elif isinstance(v, bytes):
                out.append(v)
            else:
                raise TypeError(f"{type(layer).__name__} layer {layer.name!r} expects strings or "
                                f"integers, received an element of type {type(v).__name__}: "
                                f"{v!r:.50}")
        return out
    if a.dtype.kind == "b":
        return [b"true" if v else b"false" for v in a.ravel()]
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{type(layer).__name__} layer {layer.name!r} received NaN or "
                             "infinite values")
        a = a.astype(np.int64)   # Keras casts floats to int64 before hashing
    if a.dtype.kind not in "iu":
        raise TypeError(f"{type(layer).__name__} layer {layer.name!r} expects strings or "
                        f"integers, received an array of dtype {a.dtype}")
    return [str(v).encode("ascii") for v in a.ravel().tolist()]


def hash_bins(a, num_bins, salt, layer):
    """TensorFlow's to_hash_bucket_fast (salt None) or _strong (salt: a pair from salt_pair) of
    the values of array ``a``: int64 bins of ``a``'s shape."""
    key = None if salt is None else tuple(v % (2 * _INT64) for v in salt)
    return _core.hash_buckets(value_bytes(a, layer), num_bins, key).reshape(a.shape)


class Hashing(PreprocessingLayer):
    """Hashes strings or integers into ``num_bins`` bins (see the module docstring).
    ``output_mode``: ``"int"`` (int64 bin ids, the input's shape), ``"one_hot"``,
    ``"multi_hot"``, ``"count"`` (float32 vectors of ``num_bins``)."""

    _input_kind = "any"

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False,
                 dtype=None, **kwargs):
        super().__init__(**kwargs)
        if num_bins is None or isinstance(num_bins, numbers.Integral) and num_bins <= 0:
            raise ValueError("The `num_bins` for `Hashing` cannot be `None` or non-positive "
                             f"values. Received: num_bins={num_bins}.")
        self.num_bins = check_positive_int(num_bins, "num_bins")
        self.output_mode = check_choice(output_mode, ("int",) + ENCODINGS, "output_mode")
        if sparse:
            raise ValueError("fastdl has no sparse tensors. Received: sparse=True")
        self.output_dtype = check_output_dtype(
            dtype, "int64" if self.output_mode == "int" else "float32",
            ("int32", "int64") if self.output_mode == "int"
            else ("int32", "int64", "float32", "float64"))
        if isinstance(mask_value, (bool, np.bool_)) or not (
                mask_value is None or isinstance(mask_value, (str, bytes, numbers.Integral))):
            raise TypeError(f"mask_value must be None, a string or an integer. Received: "
                            f"mask_value={mask_value!r}")
        self.mask_value = mask_value
        self.salt = None if salt is None else salt_pair(salt)

    def _masked(self, a):
        """Where ``a`` equals ``mask_value`` (the comparison Keras makes on the raw values; a
        string mask against numbers, or the reverse, is an error there too)."""
        m = self.mask_value
        if is_text(a) != isinstance(m, (str, bytes)):
            raise TypeError(f"Hashing layer {self.name!r} has mask_value={m!r}, which cannot be "
                            f"compared with {'strings' if is_text(a) else 'numbers'}")
        if is_text(a):
            text = m.decode("utf-8") if isinstance(m, bytes) else m
            return np.array([(v.decode("utf-8") if isinstance(v, bytes) else v) == text
                             for v in a.ravel()], dtype=bool).reshape(a.shape)
        return a == m

    def transform(self, x):
        a = np.asarray(x)
        bins = self.num_bins
        mask = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            mask = self._masked(a)
        ids = hash_bins(a, bins, self.salt, self)
        if mask is not None:
            ids = np.where(mask, 0, ids + 1)
        if self.output_mode == "int":
            return ids.astype(self.output_dtype)
        return encode(ids, self.output_mode, self.num_bins, self.output_dtype)

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        return encoded_shape(input_shape, self.output_mode, self.num_bins)

    def get_config(self):
        config = super().get_config()
        config.update(num_bins=self.num_bins, salt=self.salt, mask_value=self.mask_value,
                      output_mode=self.output_mode, sparse=False, dtype=self.output_dtype)
        return config
