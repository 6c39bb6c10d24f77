"""Differentiable neural-network ops with ``keras.ops`` names (activations, conv, pooling,
cross-entropies, normalization). Convolution and pooling run fastdl's C++ kernels as single
primitives; the softmax cross-entropy from logits is one fused primitive."""
import inspect
import math

import numpy as np

from fastdl.ops.core import attention as _attention_kernels
from fastdl.ops.core import conv as _conv
from fastdl.ops.core import pool as _pool_kernels
from fastdl.ops.numpy import (
    _TAPES, _array, _record, _tracked, abs, add, cast, clip, divide, einsum, expand_dims, log,
    maximum, mean, multiply, negative, reshape, rsqrt, squeeze, subtract, sum, take_along_axis,
    transpose, var, where)
from fastdl.tensor.tensor import Tensor

EPSILON = 1e-7  # keras.config.epsilon()


def _float(x):
    a = _array(x)
    return a.astype(np.float32) if a.dtype.kind in "iub" else a


def _activation(forward, vjp, name, doc):
    """A fused elementwise primitive: ``forward(a) -> (y, cache)``, ``vjp(cache, g)``."""
    def op(x, *args, **kwargs):
        a = _float(x)
        y, cache = forward(a, *args, **kwargs)
        out = Tensor(y)
        if _TAPES:
            _record(out, (x,), vjp, cache)
        return out
    op.__name__, op.__doc__ = name, doc
    sig = inspect.signature(forward)
    params = list(sig.parameters.values())
    op.__signature__ = sig.replace(parameters=[params[0].replace(name="x")] + params[1:])
    return op


def _relu(a):
    return np.maximum(a, 0).astype(a.dtype, copy=False), a > 0


relu = _activation(_relu, lambda mask, g: (g * mask,), "relu", "``max(x, 0)``.")


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return clip(x, 0.0, 6.0) if _float(x).dtype.kind == "f" else clip(cast(x, "float32"), 0., 6.)


def _sigmoid(a):
    y = np.empty_like(a)
    pos = a >= 0
    np.divide(1, 1 + np.exp(-a, where=pos, out=np.zeros_like(a)), where=pos, out=y)
    e = np.exp(a, where=~pos, out=np.zeros_like(a))
    np.divide(e, 1 + e, where=~pos, out=y)
    return y, y


sigmoid = _activation(_sigmoid, lambda y, g: (g * y * (1 - y),), "sigmoid",
                      "``1 / (1 + exp(-x))``, computed without overflow.")


def _softmax(a, axis=-1):
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    y = e / np.sum(e, axis=axis, keepdims=True)
    return y, (y, axis)


def _softmax_vjp(c, g):
    y, axis = c
    return (y * (g - np.sum(g * y, axis=axis, keepdims=True)),)


softmax = _activation(_softmax, _softmax_vjp, "softmax", "``exp(x) / sum(exp(x))`` along ``axis``.")


def _log_softmax(a, axis=-1):
    s = a - np.max(a, axis=axis, keepdims=True)
    y = s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))
    return y, (y, axis)


def _log_softmax_vjp(c, g):
    y, axis = c
    return (g - np.exp(y) * np.sum(g, axis=axis, keepdims=True),)


log_softmax = _activation(_log_softmax, _log_softmax_vjp, "log_softmax",
                          "``x - logsumexp(x)`` along ``axis``.")


def _softplus(a):
    return np.logaddexp(a, 0).astype(a.dtype, copy=False), a


softplus = _activation(_softplus, lambda a, g: (g * _sigmoid(a)[0],), "softplus",
                       "``log(1 + exp(x))``, computed stably.")


def log_sigmoid(x):
    """``log(sigmoid(x)) = -softplus(-x)``."""
    return negative(softplus(negative(x)))


def _leaky_relu(a, negative_slope=0.2):
    return np.where(a > 0, a, a * negative_slope).astype(a.dtype, copy=False), (a, negative_slope)


leaky_relu = _activation(_leaky_relu, lambda c, g: (np.where(c[0] > 0, g, g * c[1]),),
                         "leaky_relu", "``x`` if positive else ``negative_slope * x``.")


def _elu(a, alpha=1.0):
    em1 = np.expm1(np.minimum(a, 0))
    return np.where(a > 0, a, alpha * em1).astype(a.dtype, copy=False), (a, alpha * (em1 + 1))


elu = _activation(_elu, lambda c, g: (np.where(c[0] > 0, g, g * c[1]),), "elu",
                  "``x`` if positive else ``alpha * (exp(x) - 1)``.")

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    """``scale * elu(x, alpha)`` with the self-normalizing constants."""
    return multiply(elu(x, _SELU_ALPHA), _SELU_SCALE)


def silu(x):
    """``x * sigmoid(x)`` (swish)."""
    return multiply(x, sigmoid(x))


swish = silu

_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(a, approximate=True):
    if approximate:
        k = math.sqrt(2 / math.pi)
        inner = k * (a + 0.044715 * a ** 3)
        t = np.tanh(inner)
        y = 0.5 * a * (1 + t)
        d = 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * k * (1 + 3 * 0.044715 * a * a)
    else:
        cdf = 0.5 * (1 + _erf(a / math.sqrt(2)).astype(a.dtype))
        y = a * cdf
        d = cdf + a * np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    return y.astype(a.dtype, copy=False), d


gelu = _activation(_gelu, lambda d, g: (g * d,), "gelu",
                   "Gaussian error linear unit (tanh approximation unless "
                   "``approximate=False``).")


def hard_sigmoid(x):
    """``clip(x / 6 + 0.5, 0, 1)``."""
    return clip(add(divide(x, 6.0), 0.5), 0.0, 1.0)


def softsign(x):
    """``x / (1 + |x|)``."""
    return divide(x, add(abs(x), 1.0))


def _activation_op(name, x, **kwargs):
    """keras.activations' ``name`` on ``x`` as a Tensor: one primitive whose VJP is the
    activation's own backward (fastdl.activations)."""
    from fastdl import activations
    return activations.get(name)(x if isinstance(x, Tensor) else Tensor(_float(x)), **kwargs)


def celu(x, alpha=1.0):
    """``x`` if positive else ``alpha * (exp(x / alpha) - 1)``."""
    return _activation_op("celu", x, alpha=alpha)


def glu(x, axis=-1):
    """``a * sigmoid(b)``, ``a`` and ``b`` the two halves of ``x`` along ``axis``."""
    return _activation_op("glu", x, axis=axis)


def hard_shrink(x, threshold=0.5):
    """``x`` if ``|x| > threshold`` else 0."""
    return _activation_op("hard_shrink", x, threshold=threshold)


def hard_tanh(x):
    """``clip(x, -1, 1)``."""
    return _activation_op("hard_tanh", x)


def soft_shrink(x, threshold=0.5):
    """``x`` moved ``threshold`` towards 0, and 0 within ``[-threshold, threshold]``."""
    return _activation_op("soft_shrink", x, threshold=threshold)


def sparse_plus(x):
    """0 below -1, ``(x + 1)^2 / 4`` on (-1, 1), ``x`` above 1."""
    return _activation_op("sparse_plus", x)


def sparse_sigmoid(x):
    """``clip((x + 1) / 2, 0, 1)``."""
    return _activation_op("sparse_sigmoid", x)


def squareplus(x, b=4):
    """``(x + sqrt(x^2 + b)) / 2``."""
    return _activation_op("squareplus", x, b=b)


def tanh_shrink(x):
    """``x - tanh(x)``."""
    return _activation_op("tanh_shrink", x)


def threshold(x, threshold, default_value):
    """``x`` where ``x > threshold``, else ``default_value``."""
    return _activation_op("threshold", x, threshold=threshold, default_value=default_value)


def sparsemax(x, axis=-1):
    """The projection of ``x`` onto the probability simplex along ``axis``."""
    return _activation_op("sparsemax", x, axis=axis)


# ----------------------------------------------------------------------------------------------
# convolution and pooling (C++ kernels)


def _channels_last(data_format):
    if data_format in (None, "channels_last"):
        return True
    if data_format == "channels_first":
        return False
    raise ValueError("data_format must be 'channels_last' or 'channels_first', received "
                     f"{data_format!r}")


def _conv2d(x, kernel, strides, padding, dilation_rate):
    a, k = _float(x), _float(kernel)
    if k.dtype != a.dtype:
        k = k.astype(a.dtype)
    out = Tensor(_conv.conv2d(a, k, strides=strides, padding=padding,
                              dilation_rate=dilation_rate))
    if _TAPES:
        _record(out, (x, kernel), _conv2d_vjp, (a, k, strides, padding, dilation_rate,
                                                _tracked(x), _tracked(kernel)))
    return out


def _conv2d_vjp(c, g):
    a, k, strides, padding, dilation, need_x, need_k = c
    dx, dk, _ = _conv.conv2d_backward(np.asarray(g, a.dtype), a, k, strides=strides,
                                      padding=padding, dilation_rate=dilation,
                                      need_dx=need_x, need_dkernel=need_k, need_dbias=False)
    return dx, dk


def _spatial(value, n, name):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    value = tuple(value)
    if len(value) != n:
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, received {value!r}")
    return value


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """1-D or 2-D convolution (``keras.ops.conv``): inputs ``(N, *spatial, C)``, kernel
    ``(*window, C, F)``; one C++ conv2d primitive (a 1-D conv runs as 2-D with height 1)."""
    a = _array(inputs)
    if a.ndim not in (3, 4):
        raise ValueError(f"conv: inputs must be 3-D (1-D conv) or 4-D (2-D conv), received "
                         f"shape {a.shape}")
    if not _channels_last(data_format):
        inputs = transpose(inputs, (0,) + tuple(range(2, a.ndim)) + (1,))
    if isinstance(padding, str):
        padding = padding.lower()
    n = a.ndim - 2
    strides = _spatial(strides, n, "strides")
    dilation_rate = _spatial(dilation_rate, n, "dilation_rate")
    if n == 1:
        y = _conv2d(expand_dims(inputs, 1), expand_dims(kernel, 0), (1,) + strides, padding,
                    (1,) + dilation_rate)
        y = squeeze(y, 1)
    else:
        y = _conv2d(inputs, kernel, strides, padding, dilation_rate)
    if not _channels_last(data_format):
        y = transpose(y, (0, a.ndim - 1) + tuple(range(1, a.ndim - 1)))
    return y


def _pool2d(x, kind, pool_size, strides, padding):
    a = _float(x)
    if kind == "max":
        y, argmax = _pool_kernels.max_pool2d(a, pool_size, strides, padding)
        cache = (argmax, a.shape, pool_size, strides, padding)
        vjp = _max_pool_vjp
    else:
        y = _pool_kernels.avg_pool2d(a, pool_size, strides, padding)
        cache = (a.shape, pool_size, strides, padding)
        vjp = _avg_pool_vjp
    out = Tensor(y)
    if _TAPES:
        _record(out, (x,), vjp, cache)
    return out


def _max_pool_vjp(c, g):
    argmax, shape, pool_size, strides, padding = c
    return (_pool_kernels.max_pool2d_backward(np.ascontiguousarray(g), argmax, shape, pool_size,
                                      strides, padding),)


def _avg_pool_vjp(c, g):
    shape, pool_size, strides, padding = c
    return (_pool_kernels.avg_pool2d_backward(np.ascontiguousarray(g), shape, pool_size, strides,
                                      padding),)


def _pool(kind, inputs, pool_size, strides, padding, data_format):
    a = _array(inputs)
    if a.ndim not in (3, 4):
        raise ValueError(f"{kind}_pool: inputs must be 3-D or 4-D, received shape {a.shape}")
    last = _channels_last(data_format)
    if not last:
        inputs = transpose(inputs, (0,) + tuple(range(2, a.ndim)) + (1,))
    n = a.ndim - 2
    pool_size = _spatial(pool_size, n, "pool_size")
    strides = pool_size if strides is None else _spatial(strides, n, "strides")
    padding = padding.lower() if isinstance(padding, str) else padding
    if n == 1:
        y = squeeze(_pool2d(expand_dims(inputs, 1), kind, (1,) + pool_size, (1,) + strides,
                            padding), 1)
    else:
        y = _pool2d(inputs, kind, pool_size, strides, padding)
    if not last:
        y = transpose(y, (0, a.ndim - 1) + tuple(range(1, a.ndim - 1)))
    return y


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """1-D or 2-D max pooling (C++ kernel; ``strides`` defaults to ``pool_size``)."""
    return _pool("max", inputs, pool_size, strides, padding, data_format)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """1-D or 2-D average pooling (padded positions are not counted)."""
    return _pool("average", inputs, pool_size, strides, padding, data_format)


# ----------------------------------------------------------------------------------------------
# losses and normalization


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise binary cross-entropy (``output`` clipped to ``[eps, 1 - eps]`` unless
    ``from_logits``)."""
    t = cast(target, _float(output).dtype)
    if from_logits:
        # max(x, 0) - x * t + log(1 + exp(-|x|))
        return add(subtract(maximum(output, 0.0), multiply(output, t)),
                   softplus(negative(abs(output))))
    p = clip(output, EPSILON, 1 - EPSILON)
    return negative(add(multiply(t, log(p)),
                        multiply(subtract(1.0, t), log(subtract(1.0, p)))))


def _softmax_xent(t, logits, axis):
    """Fused ``-sum(t * log_softmax(logits), axis)``: one primitive."""
    x = _float(logits)
    tv = _array(t).astype(x.dtype, copy=False)
    logp, _ = _log_softmax(x, axis)
    out = Tensor(-np.sum(tv * logp, axis=axis))
    if _TAPES:
        _record(out, (t, logits), _softmax_xent_vjp, (tv, logp, axis))
    return out


def _softmax_xent_vjp(c, g):
    tv, logp, axis = c
    g = np.expand_dims(g, axis)
    return -g * logp, g * (np.exp(logp) * np.sum(tv, axis=axis, keepdims=True) - tv)


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """``-sum(target * log(p), axis)``; ``p`` is ``softmax(output)`` with ``from_logits``,
    else ``output`` normalized to sum 1 and clipped to ``[eps, 1 - eps]``."""
    ta, oa = _array(target), _array(output)
    if ta.shape != oa.shape:
        raise ValueError(f"categorical_crossentropy: target and output must have the same "
                         f"shape, received {ta.shape} and {oa.shape}")
    if from_logits:
        return _softmax_xent(target, output, axis)
    p = clip(divide(output, sum(output, axis=axis, keepdims=True)), EPSILON, 1 - EPSILON)
    return negative(sum(multiply(cast(target, p.dtype), log(p)), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Cross-entropy for integer class ids ``target`` (shape of ``output`` without ``axis``)."""
    ids = np.asarray(_array(target))
    oa = _array(output)
    if ids.dtype.kind not in "iuf":
        raise TypeError(f"sparse_categorical_crossentropy: target must hold class ids, "
                        f"received dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    if ids.ndim == oa.ndim and ids.shape[axis] == 1:
        ids = np.squeeze(ids, axis)
    if ids.shape != oa.shape[:axis % oa.ndim] + oa.shape[axis % oa.ndim + 1:]:
        raise ValueError(f"sparse_categorical_crossentropy: target shape {ids.shape} does not "
                         f"match output shape {oa.shape} without axis {axis}")
    if from_logits:
        logp = log_softmax(output, axis=axis)
    else:
        logp = log(clip(divide(output, sum(output, axis=axis, keepdims=True)), EPSILON,
                        1 - EPSILON))
    picked = take_along_axis(logp, np.expand_dims(ids, axis), axis=axis)
    return negative(squeeze(picked, axis))


def moments(x, axes, keepdims=False, synchronized=False):
    """``(mean, variance)`` of ``x`` over ``axes``."""
    return mean(x, axis=axes, keepdims=keepdims), var(x, axis=axes, keepdims=keepdims)


def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset``; the 1-D statistics and
    parameters run along ``axis`` of ``x``."""
    nd = _array(x).ndim
    ax = axis % nd
    shape = [1] * nd
    shape[ax] = -1

    def b(v):
        return reshape(v, shape) if _array(v).ndim == 1 else v

    y = multiply(subtract(x, b(mean)), rsqrt(add(b(variance), epsilon)))
    if scale is not None:
        y = multiply(y, b(scale))
    if offset is not None:
        y = add(y, b(offset))
    return y


# ---------------------------------------------------------------------------- attention

def _attention_vjp(c, g):
    q, k, v, probs, drop, scale = c
    return _attention_kernels.attention_backward(g, q, k, v, probs, drop, scale)


def attention(query, key, value, mask=None, scale=1.0, is_causal=False, dropout=None):
    """Softmax attention as ONE primitive over the C++ kernel (the core of
    ``dot_product_attention`` and the attention layers).

    ``query`` (P, Tq, dk), ``key`` (P, Tk, dk), ``value`` (P, Tk, dv): P independent problems;
    or with a heads axis (the projections' layout, read in place) ``query`` (B, Tq, H, dk),
    ``key`` (B, Tk, H, dk), ``value`` (B, Tk, H, dv) and P = B * H problems numbered b * H + h.
    ``mask`` a bool array (M, Tq, Tk) with M dividing P, True where a key is visible;
    ``dropout`` the multipliers (P, Tq, Tk) applied to the probabilities, or None.
    Returns ``(output, probabilities)``: the output a Tensor (P, Tq, dv) or (B, Tq, H, dv)
    differentiable w.r.t. query, key and value; the probabilities (P, Tq, Tk) (before dropout)
    a NumPy array. A query that sees no key gets zero probabilities (Keras's masked softmax)."""
    q, k, v = _float(query), _float(key), _float(value)
    out, probs = _attention_kernels.attention(q, k, v, mask, dropout, scale, is_causal)
    t = Tensor(out)
    if _TAPES:
        _record(t, (query, key, value), _attention_vjp,
                (q, k, v, probs, dropout, float(scale)))
    return t, probs


def attention_mask(mask, batch, heads, tq, tk):
    """A mask broadcastable to (batch, heads, tq, tk) as the kernel's (M, tq, tk) bool array:
    M = 1 or batch when it does not vary over the heads, batch * heads otherwise."""
    m = np.asarray(_array(mask))
    target = (batch, heads, tq, tk)
    if m.ndim > 4 or any(d not in (1, t) for d, t in zip(m.shape[::-1], target[::-1])):
        raise ValueError(f"mask must broadcast to (batch, num_heads, Tq, Tk) = {target}, "
                         f"received shape {m.shape}")
    m = m.astype(bool, copy=False).reshape((1,) * (4 - m.ndim) + m.shape)
    if m.shape[1] == 1:
        return np.ascontiguousarray(np.broadcast_to(m[:, 0], (m.shape[0], tq, tk)))
    return np.ascontiguousarray(np.broadcast_to(m, target)).reshape(batch * heads, tq, tk)


def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None):
    """``keras.ops.dot_product_attention``: ``softmax(q k^T * scale + bias, masked) @ v`` for
    ``query`` (B, T, N, H), ``key`` (B, S, N, H), ``value`` (B, S, N, Hv); ``scale`` defaults to
    ``1/sqrt(H)``, ``mask`` (bool, broadcastable to (B, N, T, S)) is True where a key is
    visible, ``is_causal`` lets query i see keys j <= i. Returns (B, T, N, Hv). Without
    ``bias`` it is one C++ primitive; a query that sees no key gives zeros."""
    if attn_logits_soft_cap is not None:
        raise ValueError("dot_product_attention: attn_logits_soft_cap is not supported by "
                         f"fastdl. Received: attn_logits_soft_cap={attn_logits_soft_cap!r}")
    if flash_attention not in (None, False):
        raise ValueError("dot_product_attention: fastdl has no flash attention kernel. "
                         f"Received: flash_attention={flash_attention!r}")
    shapes = [np.shape(_array(t)) for t in (query, key, value)]
    qs, ks, vs = shapes
    if any(len(s) != 4 for s in shapes) or ks[:3] != vs[:3] or qs[0] != ks[0] or \
            qs[2] != ks[2] or qs[3] != ks[3]:
        raise ValueError("dot_product_attention expects query (B, T, N, H), key (B, S, N, H) "
                         "and value (B, S, N, Hv) with matching B, N, H and S. Received "
                         f"shapes query={qs}, key={ks}, value={vs}")
    b, t, n, h = qs
    s_len, hv = ks[1], vs[3]
    scale = 1.0 / math.sqrt(h) if scale is None else float(scale)
    if bias is not None:   # composed of ops: the kernel takes no additive bias
        scores = einsum("btnh,bsnh->bnts", query, key) * scale + bias
        visible = np.ones((1, 1, t, s_len), bool)
        if mask is not None:
            visible = visible & np.asarray(_array(mask), bool)
        if is_causal:
            visible = visible & np.tril(np.ones((t, s_len), bool))
        if mask is not None or is_causal:
            scores = where(visible, scores, -1e9)
        probs = softmax(scores, axis=-1)
        if mask is not None or is_causal:
            probs = where(visible, probs, 0.0)
        return einsum("bnts,bsnh->btnh", probs, value)
    m = None if mask is None else attention_mask(mask, b, n, t, s_len)
    return attention(query, key, value, m, scale, is_causal)[0]
