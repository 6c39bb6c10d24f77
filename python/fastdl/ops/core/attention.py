"""Softmax attention on fastdl's C++ kernel (``cpp/attention.cpp``), raw arrays in and out.

Layout: ``q`` (P, Tq, dk), ``k`` (P, Tk, dk), ``v`` (P, Tk, dv), one attention problem per
leading index; or with a heads axis ``q`` (B, Tq, H, dk), ``k`` (B, Tk, H, dk), ``v``
(B, Tk, H, dv) (the layout of a projection's output, read in place), P = B * H problems
numbered b * H + h. The output is laid out like ``q`` (depth dv), the gradients like their
inputs. ``mask`` (M, Tq, Tk) bool with M dividing P (problem p reads mask p // (P // M)), True
where a key is visible; ``drop`` (P, Tq, Tk) the dropout multipliers; the probabilities are
(P, Tq, Tk).
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


def attention(q, k, v, mask=None, drop=None, scale=1.0, causal=False):
    """``(out, probs)``: probs = softmax over the visible keys of ``q @ k^T * scale`` (zeros for
    a query that sees no key, as Keras's masked softmax), out = ``(probs * drop) @ v``.
    ``causal``: key j is visible to query i only when j <= i."""
    q = as_float_array(q, "q")
    k = as_float_array(k, "k", dtype=q.dtype)
    v = as_float_array(v, "v", dtype=q.dtype)
    if drop is not None:
        drop = as_float_array(drop, "drop", dtype=q.dtype)
    return _core.attention_forward(q, k, v, _mask_array(mask), drop, float(scale), bool(causal))


def attention_backward(dout, q, k, v, probs, drop=None, scale=1.0):
    """``(dq, dk, dv)`` of :func:`attention` given ``dout`` and the forward's ``probs``."""
    q = as_float_array(q, "q")
    args = [as_float_array(a, name, dtype=q.dtype)
            for a, name in ((dout, "dout"), (k, "k"), (v, "v"), (probs, "probs"))]
    if drop is not None:
        drop = as_float_array(drop, "drop", dtype=q.dtype)
    dout, k, v, probs = args
    return _core.attention_backward(dout, q, k, v, probs, drop, float(scale))
