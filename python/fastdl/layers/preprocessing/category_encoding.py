"""``CategoryEncoding``: integer ids to one-hot, multi-hot or count vectors; its encoder is
shared with the lookup layers' non-int output modes."""
import numpy as np

from fastdl.layers.base import check_choice, check_positive_int
from fastdl.layers.preprocessing.base import PreprocessingLayer, as_integers, check_output_dtype

ENCODINGS = ("one_hot", "multi_hot", "count")


def encode(ids, output_mode, depth, dtype="float32", weights=None, skip=None):
    """Keras's ``encode_categorical_inputs``. ``one_hot``: a vector per id (a trailing axis of
    size 1 is replaced); ``multi_hot``/``count``: one vector per row of the last axis (a rank-1
    input is one sample). ``skip``: a mask of ids left out (mask tokens)."""
    ids = np.asarray(ids)
    if ids.ndim == 0:
        ids = ids[None]
    keep = np.ones(ids.shape, dtype=bool) if skip is None else ~skip
    if np.any(keep & ((ids < 0) | (ids >= depth))):
        bad = ids[keep & ((ids < 0) | (ids >= depth))]
        raise ValueError(f"Input values must be in the range 0 <= values < num_tokens with "
                         f"num_tokens={depth}. Received: values {bad[:5].tolist()}")
    if output_mode == "one_hot":
        if ids.ndim > 1 and ids.shape[-1] == 1:
            ids, keep = ids[..., 0], keep[..., 0]
        out = np.zeros(ids.shape + (depth,), dtype=dtype)
        np.put_along_axis(out, np.where(keep, ids, 0)[..., None], keep[..., None].astype(dtype),
                          axis=-1)
        return out
    rows = ids.reshape(-1, ids.shape[-1])
    keep = keep.reshape(rows.shape)
    flat = (np.arange(rows.shape[0])[:, None] * depth + rows)[keep]
    w = None if weights is None else np.broadcast_to(weights, ids.shape).reshape(rows.shape)[keep]
    counts = np.bincount(flat, weights=w, minlength=rows.shape[0] * depth)
    out = counts.reshape(ids.shape[:-1] + (depth,))
    if output_mode == "multi_hot":
        out = out > 0
    return out.astype(dtype)


def encoded_shape(shape, output_mode, depth):
    """The shape :func:`encode` gives for ids of ``shape``."""
    shape = tuple(shape) or (1,)
    if output_mode == "one_hot" and not (len(shape) > 1 and shape[-1] == 1):
        return shape + (depth,)
    return shape[:-1] + (depth,)


class CategoryEncoding(PreprocessingLayer):
    """Encodes integer ids in [0, num_tokens) as ``one_hot``, ``multi_hot`` (default) or
    ``count`` vectors of length ``num_tokens``; ``count_weights`` (call argument in Keras) is
    not supported."""

    _input_kind = "any"

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, dtype=None,
                 **kwargs):
        super().__init__(**kwargs)
        if num_tokens is None:
            raise ValueError("num_tokens must be set to use this layer. Received: num_tokens=None")
        self.num_tokens = check_positive_int(num_tokens, "num_tokens")
        self.output_mode = check_choice(output_mode, ENCODINGS, "output_mode")
        if sparse:
            raise ValueError("fastdl has no sparse tensors. Received: sparse=True")
        self.output_dtype = check_output_dtype(dtype, "float32", ("float32", "float64", "int32",
                                                                  "int64"))

    def convert_input(self, x):
        return as_integers(x, self)

    def transform(self, x):
        return encode(x, self.output_mode, self.num_tokens, self.output_dtype)

    def compute_output_shape(self, input_shape):
        return encoded_shape(input_shape, self.output_mode, self.num_tokens)

    def get_config(self):
        config = super().get_config()
        config.update(num_tokens=self.num_tokens, output_mode=self.output_mode, sparse=False,
                      dtype=self.output_dtype)
        return config
