"""``HashedCrossing``: the cross of two or more categorical features, hashed into bins, the
same bins as Keras.

Keras crosses with TensorFlow's ``sparse.cross_hashed``: each feature becomes a 64-bit value
(a string: its FarmHash Fingerprint64, from fastdl's C++ kernel; an integer: its int64 bits),
the values are folded left to right into ``0xDECAFCAFFE`` with TensorFlow's
``FingerprintCat64``, and the result modulo ``num_bins`` is the bin. Inputs are scalars or
batches of scalars, shapes ``()``, ``(batch,)`` or ``(batch, 1)``, all alike.
"""
import numpy as np

from fastdl import _core
from fastdl.layers.base import (_eager_outputs, _is_symbolic, as_input_array, check_choice,
                                check_positive_int)
from fastdl.layers.preprocessing.base import PreprocessingLayer, check_output_dtype, is_text
from fastdl.layers.preprocessing.category_encoding import encode, encoded_shape
from fastdl.layers.preprocessing.hashing import value_bytes

_HASH_KEY = np.uint64(0xDECAFCAFFE)     # TensorFlow's default hash_key for cross_hashed
_MUL = np.uint64(0xC6A4A7935BD1E995)


def _shift_mix(v):
    return v ^ (v >> np.uint64(47))


def fingerprint_cat64(fp1, fp2):
    """TensorFlow's ``FingerprintCat64`` of two uint64 arrays (wrapping arithmetic)."""
    h = fp1 ^ _MUL
    h = h ^ (_shift_mix(fp2 * _MUL) * _MUL)
    h = h * _MUL
    return _shift_mix(_shift_mix(h) * _MUL)


class HashedCrossing(PreprocessingLayer):
    """Crosses categorical features (strings or integers) with the hashing trick:
    ``hash(features) % num_bins`` (see the module docstring). Called on a list or tuple of at
    least two inputs. ``output_mode``: ``"int"`` (int64 bin ids) or ``"one_hot"`` (float32
    vectors of ``num_bins``)."""

    _input_kind = "any"
    _takes_input_list = True

    def __init__(self, num_bins, output_mode="int", sparse=False, dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.num_bins = check_positive_int(num_bins, "num_bins")
        self.output_mode = check_choice(output_mode, ("int", "one_hot"), "output_mode")
        if sparse:
            raise ValueError("fastdl has no sparse tensors. Received: sparse=True")
        self.output_dtype = check_output_dtype(
            dtype, "int64" if output_mode == "int" else "float32",
            ("int32", "int64") if output_mode == "int"
            else ("int32", "int64", "float32", "float64"))

    def __call__(self, inputs, training=False, mask=None, **kwargs):
        if _is_symbolic(inputs):   # a node of a functional model
            return super().__call__(inputs, training=training, **kwargs)
        if kwargs:
            raise TypeError(f"Layer {self.name!r} (HashedCrossing): unexpected call arguments "
                            f"{sorted(kwargs)}")
        return _eager_outputs(self._call_arrays(inputs))

    def _call_arrays(self, inputs, training=False, mask=None):
        # several inputs and no gradient (bins of strings or integers): the call works on the
        # arrays, never builds a tape primitive
        return self.transform(self._features(inputs))

    def _features(self, inputs):
        """The inputs as arrays, checked as Keras checks them."""
        if not isinstance(inputs, (list, tuple)):
            raise ValueError("`HashedCrossing` should be called on a list or tuple of inputs. "
                             f"Received: inputs of type {type(inputs).__name__}")
        if len(inputs) < 2:
            raise ValueError("`HashedCrossing` should be called on at least two inputs. "
                             f"Received: {len(inputs)} input(s)")
        # a lone string is a scalar feature here (shape ()), as in Keras
        arrays = [np.asarray(x, dtype=object) if isinstance(x, (str, bytes))
                  else as_input_array(x, self) for x in inputs]
        shape = arrays[0].shape
        if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
            raise ValueError("All `HashedCrossing` inputs should have shape `()`, "
                             f"`(batch_size)` or `(batch_size, 1)`. Received: shape {shape}")
        if any(a.shape != shape for a in arrays[1:]):
            raise ValueError("All `HashedCrossing` inputs should have equal shape. Received: "
                             f"shapes {[a.shape for a in arrays]}")
        for a in arrays:
            if not (is_text(a) or a.dtype.kind in "iu"):
                raise ValueError("All `HashedCrossing` inputs should have an integer or string "
                                 f"dtype. Received: dtypes {[str(a.dtype) for a in arrays]}")
            if a.dtype.kind == "u" and a.size and a.max() >= 2 ** 63:
                raise ValueError("HashedCrossing crosses int64 values; received an unsigned "
                                 f"value {int(a.max())} >= 2**63")
        return arrays

    def _feature_values(self, a):
        """Each element's 64-bit value: Fingerprint64 of a string, the bits of an int64."""
        if is_text(a):
            return _core.fingerprint64(value_bytes(a, self))
        return a.astype(np.int64).ravel().view(np.uint64)

    def transform(self, arrays):
        shape = arrays[0].shape
        h = np.full(int(np.prod(shape, dtype=np.int64)), _HASH_KEY, dtype=np.uint64)
        for a in arrays:
            h = fingerprint_cat64(h, self._feature_values(a))
        ids = (h % np.uint64(self.num_bins)).astype(np.int64).reshape(shape)
        if self.output_mode == "int":
            return ids.astype(self.output_dtype)
        return encode(ids, "one_hot", self.num_bins, self.output_dtype)

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError("Expected as input a list/tuple of at least 2 shapes. "
                             f"Received input_shape={input_shape!r}")
        shape = tuple(input_shape[0])
        if self.output_mode == "int":
            return shape
        return encoded_shape(shape, "one_hot", self.num_bins)

    def get_config(self):
        config = super().get_config()
        config.update(num_bins=self.num_bins, output_mode=self.output_mode, sparse=False,
                      dtype=self.output_dtype)
        return config
