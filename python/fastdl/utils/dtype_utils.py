"""``keras.utils.standardize_dtype``: a dtype-like as Keras's dtype name."""
import numpy as np

# Keras 3's ALLOWED_DTYPES
ALLOWED_DTYPES = frozenset((
    "float16", "float32", "float64", "uint8", "uint16", "uint32", "uint64", "int8", "int16",
    "int32", "int64", "bfloat16", "bool", "string", "float8_e4m3fn", "float8_e5m2", "complex64",
    "complex128"))
# Python's types as Keras maps them off the TensorFlow backend
_PYTHON_DTYPES = {bool: "bool", int: "int32", float: "float32", str: "string", "int": "int32",
                  complex: "complex64"}


def standardize_dtype(dtype):
    """The Keras name of ``dtype``: ``None`` is ``"float32"`` (floatx), Python's ``int`` and
    ``float`` are ``"int32"`` and ``"float32"``, NumPy dtypes and scalar types, fastdl's dtypes
    and ``torch.float32``-style objects give their names. Anything else is ``ValueError``."""
    if dtype is None:
        return "float32"
    try:
        dtype = _PYTHON_DTYPES.get(dtype, dtype)
    except TypeError:                  # unhashable
        pass
    if isinstance(getattr(dtype, "name", None), str):
        dtype = dtype.name
    elif isinstance(getattr(dtype, "__name__", None), str):
        dtype = dtype.__name__
    elif type(dtype).__module__.split(".")[0] in ("torch", "jax") or str(dtype).startswith(
            ("torch.", "jax.numpy.")):
        dtype = str(dtype).split(".")[-1]
    if not isinstance(dtype, (str, np.str_)) or dtype not in ALLOWED_DTYPES:
        raise ValueError(f"Invalid dtype: {dtype!r}")
    return str(dtype)
