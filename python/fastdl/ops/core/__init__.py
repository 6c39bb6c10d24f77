"""Raw array operations on fastdl's C++ kernels.

One submodule per kernel family (``fastdl.ops.core.conv``, ``fastdl.ops.core.pool``, ``fastdl.ops.core.rnn``);
the matrix product lives here.

Inputs of any memory layout are accepted: each function converts explicitly with
``np.require(x, requirements="CA")`` (a copy only when the array is not C-contiguous or not
aligned to its dtype). Supported dtypes are
float32 and float64; other dtypes raise ``TypeError`` rather than being cast silently.
"""
import numpy as np

from fastdl import _core

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(x, name, dtype=None):
    """Return ``x`` as a C-contiguous float32/float64 array, or raise TypeError.

    With ``dtype`` given, ``x`` must already have that dtype (mixed dtypes are an error).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, received {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, received dtype {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the other operand has {dtype}; "
                        "convert one of them explicitly")
    # C-contiguous and aligned to the dtype (a view at an odd byte offset is copied)
    return np.require(x, requirements=["C", "A"])


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, received {type(value).__name__} {value!r}")
    return bool(value)


def matmul(a, b, transpose_a=False, transpose_b=False, bias=None):
    """``op(a) @ op(b)`` (``+ bias``) for 2-D float32 or float64 arrays of the same dtype.

    ``op`` transposes when the matching flag is set; ``bias`` (n,) is added to every row as the
    product is written (no second pass). Returns a new C-contiguous array. Raises
    ``ValueError`` for wrong ranks or shapes, ``TypeError`` for other dtypes or mixed dtypes.
    """
    a = as_float_array(a, "a")
    b = as_float_array(b, "b", dtype=a.dtype)
    if bias is not None:
        bias = as_float_array(bias, "bias", dtype=a.dtype)
    return _core.matmul(a, b, _check_flag(transpose_a, "transpose_a"),
                        _check_flag(transpose_b, "transpose_b"), bias)


def matmul_b_sums(a, b, transpose_a=False, transpose_b=False):
    """``(op(a) @ op(b), op(b).sum(axis=0))``: the column sums of ``op(b)`` taken as the product
    reads it, so a dense layer's weight and bias gradients ``x^T @ dy`` and ``dy.sum(axis=0)``
    cost one read of ``dy``. Same arguments and errors as :func:`matmul`."""
    a = as_float_array(a, "a")
    b = as_float_array(b, "b", dtype=a.dtype)
    return _core.matmul_b_sums(a, b, _check_flag(transpose_a, "transpose_a"),
                               _check_flag(transpose_b, "transpose_b"))


def matmul_backward(dc, a, b, transpose_a=False, transpose_b=False):
    """Gradients ``(da, db)`` of ``c = op(a) @ op(b)`` given ``dc``, laid out like ``a`` and ``b``."""
    a = as_float_array(a, "a")
    b = as_float_array(b, "b", dtype=a.dtype)
    dc = as_float_array(dc, "dc", dtype=a.dtype)
    return _core.matmul_backward(dc, a, b, _check_flag(transpose_a, "transpose_a"),
                                 _check_flag(transpose_b, "transpose_b"))
