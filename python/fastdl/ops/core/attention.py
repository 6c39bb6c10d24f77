"""Softmax attention on fastdl's C++ kernel (``cpp/attention.cpp``), raw arrays in and out.

Layout: ``q`` (P, Tq, dk), ``k`` (P, Tk, dk), ``v`` (P, Tk, dv), one attention problem per
leading index; or with a heads axis ``q`` (B, Tq, H, dk), ``k`` (B, Tk, H, dk), ``v``
(B, Tk, H, dv) (the layout of a projection's output, read in place), P = B * H problems
numbered b * H + h. The output is laid out like ``q`` (depth dv), the gradients like their
inputs. ``mask`` (M, Tq, Tk) bool with M dividing P (problem p reads mask p // (P // M)), True
where a key is visible; ``drop`` (P, Tq, Tk) the dropout multipliers; the probabilities are
(P, Tq, Tk). q, k, v and dout are read in place when each head's rows are contiguous and do
not overlap (C-contiguous arrays, or slices of the last axis of one packed projection, as
MultiHeadAttention's fused query/key/value projection gives them); others are copied.
"""
import numpy as np

from fastdl import _core
from fastdl.ops.core import as_float_array


def _mask_array(mask):
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise TypeError(f"mask must be a bool NumPy array, received "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    return np.require(mask, requirements=["C", "A"])


def _rows_in_place(x):
    """Whether the kernel reads ``x`` (3-D or 4-D) in place: the rule of the binding's
    ``Layout::strides`` (each head's rows contiguous, heads side by side, no overlaps)."""
    if x.ndim not in (3, 4) or x.ctypes.data % x.itemsize:
        return False
    shape, strides, size = x.shape, x.strides, x.itemsize
    depth, heads = shape[-1], shape[2] if x.ndim == 4 else 1
    row = heads * depth * size
    return ((depth <= 1 or strides[-1] == size)
            and (x.ndim == 3 or heads <= 1 or strides[2] == depth * size)
            and (shape[1] <= 1 or strides[1] >= row)
            and (shape[0] <= 1 or strides[0] >= shape[1] * max(strides[1], row))
            and all(s % size == 0 for s in strides))


def _operand(x, name, dtype=None):
    """``x`` checked like :func:`as_float_array`, kept as it is when read in place."""
    if isinstance(x, np.ndarray) and x.dtype == (dtype or x.dtype) and _rows_in_place(x):
        return x
    return as_float_array(x, name, dtype=dtype)


def attention(q, k, v, mask=None, drop=None, scale=1.0, causal=False):
    """``(out, probs)``: probs = softmax over the visible keys of ``q @ k^T * scale`` (zeros for
    a query that sees no key, as Keras's masked softmax), out = ``(probs * drop) @ v``.
    ``causal``: key j is visible to query i only when j <= i."""
    q = _operand(q, "q")
    k = _operand(k, "k", dtype=q.dtype)
    v = _operand(v, "v", dtype=q.dtype)
    if drop is not None:
        drop = as_float_array(drop, "drop", dtype=q.dtype)
    return _core.attention_forward(q, k, v, _mask_array(mask), drop, float(scale), bool(causal))


def attention_backward(dout, q, k, v, probs, drop=None, scale=1.0, out=None):
    """``(dq, dk, dv)`` of :func:`attention` given ``dout`` and the forward's ``probs``: new
    arrays, or written into ``out = (dq, dk, dv)`` (arrays shaped like q, k, v whose rows the
    kernel writes in place, e.g. three slices of one packed gradient; they must not overlap
    each other or the inputs)."""
    q = _operand(q, "q")
    dout, k, v = (_operand(a, name, dtype=q.dtype) for a, name in
                  ((dout, "dout"), (k, "k"), (v, "v")))
    probs = as_float_array(probs, "probs", dtype=q.dtype)
    if drop is not None:
        drop = as_float_array(drop, "drop", dtype=q.dtype)
    dq, dk, dv = (None, None, None) if out is None else out
    return _core.attention_backward(dout, q, k, v, probs, drop, float(scale), dq, dk, dv)
