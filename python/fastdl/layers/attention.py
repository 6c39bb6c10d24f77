"""MultiHeadAttention, Attention and AdditiveAttention (Keras 3's names, arguments and weights).

The layers are written with ``fastdl.ops``: each projection is one GEMM primitive (bias added by
the GEMM) and the softmax attention one C++ primitive (``fastdl.ops.nn.attention``, reading the
projections' (batch, T, heads, depth) layout in place), so a GradientTape (and ``fit`` in
functional and subclassed models) differentiates them. In self-attention (``layer(x, x)``) the
query, key and value projections are one product with the three kernels side by side, and the
attention kernel reads its three column slices in place (one weight-gradient product, one
input-gradient product with no sum of three, instead of three each).

Masks combine as in Keras: MultiHeadAttention ANDs the query mask (B, T, 1), the value and key
masks (B, 1, S), the causal mask (T, S) and ``attention_mask`` (B, T, S); the query mask is the
implicit mask of ``query`` (``Embedding(mask_zero=True)`` upstream) or ``query_mask`` (Keras
3.15 reads only the implicit one and drops an explicit ``query_mask``; fastdl applies it). A
query that sees no key gets zero attention probabilities, as in MultiHeadAttention (Keras's
Attention layers subtract 1e9 instead, which differs only for such fully masked queries).
"""
import math

import numpy as np

from fastdl import constraints, initializers, regularizers
from fastdl.layers.base import Layer, check_choice, check_positive_int, check_rate
from fastdl.ops.core import attention as _attention_kernels
from fastdl.ops.core import matmul, matmul_b_sums
from fastdl.tensor.tape import _TAPES, record, tracked
from fastdl.tensor.tensor import Tensor
from fastdl.utils.rng import seed_generator


def _ops():
    import fastdl.ops as ops   # the layers load before the ops bind the Tensor operators
    return ops


def _shape(x):
    return tuple(np.shape(x._value if hasattr(x, "_value") else x))


def _bool_mask(mask, shape, what, layer):
    """``mask`` as a bool array of exactly ``shape`` (None stays None), else ValueError."""
    if mask is None:
        return None
    m = np.asarray(mask._value if hasattr(mask, "_value") else mask)
    if m.shape != tuple(shape):
        raise ValueError(f"Layer {layer.name!r}: {what} must have shape {tuple(shape)}, "
                         f"received shape {m.shape}")
    return m.astype(bool, copy=False)


def _as_float_tensor(x, layer):
    """An input as a Tensor in the layer's dtype (a float Tensor of that dtype is kept)."""
    ops = _ops()
    if isinstance(x, ops.Tensor) and x.dtype == layer.dtype:
        return x
    a = np.asarray(x._value if isinstance(x, ops.Tensor) else x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"Layer {layer.name!r} expects numeric inputs, received dtype {a.dtype}")
    return ops.cast(x, layer.dtype) if isinstance(x, ops.Tensor) else ops.convert_to_tensor(
        a.astype(layer.dtype))


def _dense_vjp(c, g):
    x, w, pairs, need_x, need_kernels = c
    g = np.asarray(g, x.dtype)
    grads = [matmul(g, w, transpose_b=True) if need_x else None]
    dw = dbias = None
    has_bias = any(b is not None for _, b in pairs)
    if any(need_kernels) and has_bias:  # the bias gradient taken as the product reads g
        dw, dbias = matmul_b_sums(x, g, transpose_a=True)
    elif any(need_kernels):
        dw = matmul(x, g, transpose_a=True)
    elif has_bias:
        dbias = g.sum(axis=0)
    start = 0
    for (kernel_shape, bias_shape), need in zip(pairs, need_kernels):
        width = int(np.prod(kernel_shape)) // x.shape[1]
        cols = slice(start, start + width)
        grads.append(np.ascontiguousarray(dw[:, cols]).reshape(kernel_shape) if need else None)
        if bias_shape is not None:
            grads.append(dbias[cols].reshape(bias_shape))
        start += width
    return grads


def _dense(x, *pairs):
    """``x (n, d) @ kernel.reshape(d, -1) + bias.reshape(-1)`` as ONE primitive (the
    projections of MultiHeadAttention), for one or more ``(kernel, bias)`` pairs side by side
    (bias may be None): several pairs are one product with their kernels concatenated (the
    fused query/key/value projection of self-attention), their outputs side by side in the
    columns. The bias is added as the product is written; the backward gives each kernel's and
    bias's gradient in its own shape."""
    a = x._value
    ws = [kernel._value.reshape(a.shape[1], -1) for kernel, _ in pairs]
    w = ws[0] if len(ws) == 1 else np.concatenate(ws, axis=1)
    bias = None
    if pairs[0][1] is not None:
        biases = [b._value.reshape(-1) for _, b in pairs]
        bias = biases[0] if len(biases) == 1 else np.concatenate(biases)
    out = Tensor(matmul(a, w, bias=bias))
    if _TAPES:
        inputs = (x,) + tuple(t for pair in pairs for t in pair if t is not None)
        shapes = tuple((kernel.shape, None if bias is None else bias.shape)
                       for kernel, bias in pairs)
        record(out, inputs, _dense_vjp,
               (a, w, shapes, tracked(x), tuple(tracked(kernel) for kernel, _ in pairs)))
    return out


def _packed_attention_vjp(c, g):
    qkv, views, probs, drop, scale = c
    dqkv = np.empty_like(qkv)
    _attention_kernels.attention_backward(np.asarray(g, qkv.dtype), *views(qkv), probs, drop,
                                          scale, out=views(dqkv))
    return [dqkv]


def _packed_attention(qkv, batch, heads, key_dim, value_dim, mask, scale, causal, drop):
    """Softmax attention as ONE primitive on the fused projection ``qkv`` (batch * T,
    heads * (2 * key_dim + value_dim)): query, key and value are three column slices of it,
    read in place by the kernel, and their gradients are written into one packed gradient.
    Returns ``(output (batch, T, heads, value_dim), probabilities)`` like ``ops.nn.attention``."""
    q_cols, v_cols = heads * key_dim, heads * value_dim

    def views(a):
        rows = a.reshape(batch, -1, a.shape[-1])
        t = rows.shape[1]
        return (rows[:, :, :q_cols].reshape(batch, t, heads, key_dim),
                rows[:, :, q_cols:2 * q_cols].reshape(batch, t, heads, key_dim),
                rows[:, :, 2 * q_cols:2 * q_cols + v_cols].reshape(batch, t, heads, value_dim))
    value = qkv._value
    out, probs = _attention_kernels.attention(*views(value), mask, drop, scale, causal)
    t = Tensor(out)
    if _TAPES:
        record(t, (qkv,), _packed_attention_vjp, (value, views, probs, drop, float(scale)))
    return t, probs


def _same_input(a, b):
    """Whether ``a`` and ``b`` are one input for self-attention: the same object, or two views
    of the same memory with the same shape, dtype and strides that no tape tracks (a layer call
    converts its first argument only, so ``layer(x, x)`` on a NumPy array arrives as a Tensor
    and the array; untracked, the weights' gradients are the same either way)."""
    if a is b:
        return True
    if tracked(a) or tracked(b):
        return False
    a, b = (np.asarray(t._value if isinstance(t, Tensor) else t) for t in (a, b))
    return (a.shape == b.shape and a.dtype == b.dtype and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _dropout_multipliers(layer, shape, dtype):
    if layer._rng is None:
        layer._rng = seed_generator(layer.seed)
    keep = layer._rng.random(shape, dtype=np.float32) >= layer.dropout
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - layer.dropout))


class MultiHeadAttention(Layer):
    """``MultiHeadAttention(num_heads, key_dim, value_dim=None, dropout=0.0, ...)``:
    ``layer(query, value, key=None, ...)`` with query (B, T, dim) and value/key (B, S, dim).

    Weights in Keras's order and shapes: query, key and value kernels (dim, num_heads,
    key_dim|value_dim) with biases (num_heads, key_dim|value_dim), then the output kernel
    (num_heads, value_dim, out) and bias (out,), out = ``output_shape`` or query's last dim.
    Inputs of rank > 3 attend over all middle axes (``attention_axes=None``)."""

    supports_masking = True

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 seed=None, flash_attention=None, sliding_window=None, use_gate=False,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.key_dim = check_positive_int(key_dim, "key_dim")
        self.value_dim = self.key_dim if value_dim is None else check_positive_int(
            value_dim, "value_dim")
        self.dropout = check_rate(dropout, "dropout")
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"use_bias must be a bool. Received: use_bias={use_bias!r}")
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, (int, np.integer)):
            output_shape = (output_shape,)
        if output_shape is not None:
            if not isinstance(output_shape, (tuple, list)) or not output_shape:
                raise ValueError("output_shape must be an int or a non-empty tuple of ints. "
                                 f"Received: output_shape={output_shape!r}")
            output_shape = tuple(check_positive_int(d, "output_shape") for d in output_shape)
        self._output_shape = output_shape
        if isinstance(attention_axes, (int, np.integer)):
            attention_axes = (int(attention_axes),)
        if attention_axes is not None and not isinstance(attention_axes, (tuple, list)):
            raise ValueError("attention_axes must be an int, list, or tuple. "
                             f"Received: attention_axes={attention_axes!r}")
        self.attention_axes = None if attention_axes is None else tuple(attention_axes)
        for name, value, neutral in (("flash_attention", flash_attention, (None, False)),
                                     ("sliding_window", sliding_window, (None,)),
                                     ("use_gate", use_gate, (False,))):
            if value not in neutral:
                raise ValueError(f"MultiHeadAttention: {name} is not supported by fastdl. "
                                 f"Received: {name}={value!r}")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        seed_generator(seed)  # validates
        self.seed = seed
        self._rng = None

    # Layer's one-input build does not apply: the weights need the query's and value's shapes
    def _maybe_build(self, input_shape):
        pass

    def build(self, query_shape, value_shape=None, key_shape=None):
        """Create the weights for these input shapes (Keras's ``build(query_shape, value_shape,
        key_shape=None)``)."""
        value_shape = tuple(query_shape if value_shape is None else value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        query_shape = tuple(query_shape)
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError("All dimensions of `value` and `key`, except the last one, must be "
                             f"equal. Received: value_shape={value_shape} and "
                             f"key_shape={key_shape}")
        if len(query_shape) < 3 or len(value_shape) != len(query_shape):
            raise ValueError(f"Layer {self.name!r}: query and value must have the same rank "
                             f">= 3. Received: query_shape={query_shape}, "
                             f"value_shape={value_shape}")
        rank = len(query_shape)
        if self.attention_axes is not None:
            axes = tuple(sorted(a % (rank - 1) if a < 0 else a for a in self.attention_axes))
            if axes != tuple(range(1, rank - 1)):
                raise ValueError(f"Layer {self.name!r}: fastdl attends over all middle axes "
                                 f"{tuple(range(1, rank - 1))} (attention_axes=None); "
                                 f"received attention_axes={self.attention_axes}")
        n, kd, vd = self.num_heads, self.key_dim, self.value_dim
        out = self._output_shape or (query_shape[-1],)

        def dense(name, kernel_shape, bias_shape):
            self.add_weight(shape=kernel_shape, initializer=self.kernel_initializer,
                            regularizer=self.kernel_regularizer,
                            constraint=self.kernel_constraint, name=f"{name}/kernel")
            if self.use_bias:
                self.add_weight(shape=bias_shape, initializer=self.bias_initializer,
                                regularizer=self.bias_regularizer,
                                constraint=self.bias_constraint, name=f"{name}/bias")
        dense("query", (query_shape[-1], n, kd), (n, kd))
        dense("key", (key_shape[-1], n, kd), (n, kd))
        dense("value", (value_shape[-1], n, vd), (n, vd))
        dense("attention_output", (n, vd) + tuple(out), tuple(out))
        self._dims = (query_shape[-1], value_shape[-1], key_shape[-1])
        self._build_input_shape = query_shape
        self.built = True

    def _projections(self):
        ws = [w.variable for w in self._params]
        if not self.use_bias:
            return [(w, None) for w in ws]
        return list(zip(ws[0::2], ws[1::2]))

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
             attention_mask=None, return_attention_scores=False, training=None,
             use_causal_mask=False, mask=None):
        ops = _ops()
        if value is None:
            raise ValueError(f"Layer {self.name!r}: call(query, value, key=None) needs a value")
        key_given = key is not None
        # self-attention (query, value and key one tensor): the fused projection
        self_attention = _same_input(query, value) and (key is None or _same_input(key, query))
        key = value if key is None else key
        if self_attention:
            query = value = key = _as_float_tensor(query, self)
        else:
            query, value, key = (_as_float_tensor(t, self) for t in (query, value, key))
        qs, vs, ks = _shape(query), _shape(value), _shape(key)
        if not self.built:
            self.build(qs, vs, ks if key_given else None)
        if len(qs) != len(self._build_input_shape) or len(vs) != len(qs) or len(ks) != len(qs):
            raise ValueError(f"Layer {self.name!r}: query, value and key must have rank "
                             f"{len(self._build_input_shape)}. Received shapes query={qs}, "
                             f"value={vs}, key={ks}")
        if (qs[-1], vs[-1], ks[-1]) != self._dims:
            raise ValueError(f"Layer {self.name!r} was built for last dimensions "
                             f"(query, value, key) = {self._dims}, received shapes query={qs}, "
                             f"value={vs}, key={ks}")
        if vs[:-1] != ks[:-1] or qs[0] != vs[0]:
            raise ValueError(f"Layer {self.name!r}: query, value and key must share the batch "
                             "size, and value and key every dimension but the last. Received "
                             f"shapes query={qs}, value={vs}, key={ks}")
        b = qs[0]
        t, s = int(np.prod(qs[1:-1])), int(np.prod(vs[1:-1]))
        n, kd, vd = self.num_heads, self.key_dim, self.value_dim
        if query_mask is None:
            query_mask = mask
        # Keras: query (B, T, 1) & value, key (B, 1, S) & causal (1, T, S) & attention_mask
        parts = []
        if query_mask is not None:
            parts.append(_bool_mask(query_mask, qs[:-1], "query_mask", self).reshape(b, t, 1))
        for m, what in ((value_mask, "value_mask"), (key_mask if key_given else None,
                                                     "key_mask")):
            if m is not None:
                parts.append(_bool_mask(m, vs[:-1], what, self).reshape(b, 1, s))
        if attention_mask is not None:
            parts.append(_bool_mask(attention_mask, (b, t, s) if len(qs) == 3 else
                                    qs[:-1] + vs[1:-1], "attention_mask", self).reshape(b, t, s))
        combined = None
        for m in parts:
            combined = m if combined is None else combined & m
        if combined is not None:
            combined = ops.nn.attention_mask(combined[:, None], b, 1, t, s)

        (wq, bq), (wk, bk), (wv, bv), (wo, bo) = self._projections()
        drop = None
        if training and self.dropout > 0:
            drop = _dropout_multipliers(self, (b * n, t, s), np.dtype(self.dtype))
        scale, causal = 1.0 / math.sqrt(kd), bool(use_causal_mask)
        if self_attention:   # one product for the three projections, read in place
            qkv = _dense(ops.reshape(query, (-1, qs[-1])), (wq, bq), (wk, bk), (wv, bv))
            out, probs = _packed_attention(qkv, b, n, kd, vd, combined, scale, causal, drop)
        else:
            def project(x, w, bias, depth):
                y = _dense(ops.reshape(x, (-1, x.shape[-1])), (w, bias))
                return ops.reshape(y, (b, -1, n, depth))   # the kernel reads the heads in place
            out, probs = ops.nn.attention(project(query, wq, bq, kd), project(key, wk, bk, kd),
                                          project(value, wv, bv, vd), combined, scale, causal,
                                          drop)
        out = ops.reshape(out, (b * t, n * vd))
        y = ops.reshape(_dense(out, (wo, bo)), qs[:-1] + tuple(wo.shape[2:]))
        if return_attention_scores:
            return y, ops.convert_to_tensor(probs.reshape((b, n) + qs[1:-1] + vs[1:-1]))
        return y

    def __call__(self, query, value=None, key=None, query_mask=None, value_mask=None,
                 key_mask=None, attention_mask=None, return_attention_scores=False,
                 training=None, use_causal_mask=False, mask=None):
        if value is None:
            raise TypeError(f"Layer {self.name!r} ({type(self).__name__}) needs "
                            "call(query, value, key=None, ...); received no value")
        kwargs = dict(value=value, key=key, query_mask=query_mask, value_mask=value_mask,
                      key_mask=key_mask, attention_mask=attention_mask,
                      use_causal_mask=use_causal_mask)
        if return_attention_scores:
            kwargs["return_attention_scores"] = True
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return super().__call__(query, training=bool(training), mask=mask, **kwargs)

    def compute_mask(self, query, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, key_dim=self.key_dim, value_dim=self.value_dim,
            dropout=self.dropout, use_bias=self.use_bias,
            output_shape=None if self._output_shape is None else list(self._output_shape),
            attention_axes=None if self.attention_axes is None else list(self.attention_axes),
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            kernel_constraint=constraints.serialize(self.kernel_constraint),
            bias_constraint=constraints.serialize(self.bias_constraint), seed=self.seed)
        return config


class Attention(Layer):
    """Luong-style attention: ``Attention(use_scale=False, score_mode="dot", dropout=0.0)``,
    called on ``[query, value]`` or ``[query, value, key]`` with ``mask=[query_mask,
    value_mask]``. ``score_mode="dot"`` runs the C++ attention primitive; ``"concat"`` (and
    :class:`AdditiveAttention`) compute ``sum(tanh(q + k))`` scores with ops."""

    supports_masking = True

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(use_scale, (bool, np.bool_)):
            raise TypeError(f"use_scale must be a bool. Received: use_scale={use_scale!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = check_choice(score_mode, {"dot", "concat"}, "score_mode")
        self.dropout = check_rate(dropout, "dropout")
        seed_generator(seed)
        self.seed = seed
        self._rng = None

    def _validate(self, inputs, mask):
        what = type(self).__name__
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            raise ValueError(f"{what} layer must be called on a list of inputs, namely "
                             f"[query, value] or [query, value, key]. Received: "
                             f"{type(inputs).__name__}"
                             + (f" of length {len(inputs)}" if isinstance(inputs, (list, tuple))
                                else ""))
        if mask is not None and (not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3):
            raise ValueError(f"{what} layer mask must be a list, namely [query_mask, "
                             f"value_mask]. Received: {type(mask).__name__}")

    def build(self, input_shape):
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(name="concat_score_weight", shape=(),
                                                       initializer="ones")

    def _scores(self, q, k):
        ops = _ops()
        qk = ops.expand_dims(q, -2) + ops.expand_dims(k, -3)
        if self.use_scale:
            qk = self.scale * qk
        return self.concat_score_weight * ops.sum(ops.tanh(qk), axis=-1)

    def call(self, inputs, mask=None, training=False, return_attention_scores=False,
             use_causal_mask=False):
        ops = _ops()
        self._validate(inputs, mask)
        q, v = (_as_float_tensor(t, self) for t in inputs[:2])
        k = _as_float_tensor(inputs[2], self) if len(inputs) > 2 else v
        qs, vs, ks = _shape(q), _shape(v), _shape(k)
        if len(qs) != 3 or len(vs) != 3 or len(ks) != 3 or qs[0] != vs[0] or \
                vs[:2] != ks[:2] or (qs[-1] != ks[-1]):
            raise ValueError(f"Layer {self.name!r}: expects query (B, Tq, dim), value (B, Tv, "
                             "dv) and key (B, Tv, dim). Received shapes "
                             f"query={qs}, value={vs}, key={ks}")
        b, tq, tv = qs[0], qs[1], vs[1]
        q_mask = _bool_mask(mask[0], (b, tq), "mask[0] (query mask)", self) if mask else None
        v_mask = _bool_mask(mask[1], (b, tv), "mask[1] (value mask)", self) if mask else None
        visible = None if v_mask is None else v_mask[:, None, :]
        drop = None
        if training and self.dropout > 0:
            drop = _dropout_multipliers(self, (b, tq, tv), np.dtype(self.dtype))
        if self.score_mode == "dot" and type(self)._scores is Attention._scores:
            if self.use_scale:
                q = q * self.scale
            m = None if visible is None else np.ascontiguousarray(visible.repeat(tq, axis=1))
            out, probs = ops.nn.attention(q, k, v, m, 1.0, bool(use_causal_mask), drop)
            weights = ops.convert_to_tensor(probs)
        else:
            scores = self._scores(q, k)
            if use_causal_mask:
                causal = np.tril(np.ones((1, tq, tv), bool))
                visible = causal if visible is None else visible & causal
            if visible is not None:   # Keras: masked scores minus 1e9
                scores = ops.where(visible, scores, scores - 1e9)
            weights = ops.softmax(scores, axis=-1)
            used = weights if drop is None else weights * drop
            out = ops.matmul(used, v)
        if q_mask is not None:
            out = ops.where(q_mask[:, :, None], out, 0.0)
        return (out, weights) if return_attention_scores else out

    def compute_mask(self, inputs, mask=None):
        return None if mask is None or mask[0] is None else mask[0]

    def get_config(self):
        config = super().get_config()
        config.update(use_scale=self.use_scale, score_mode=self.score_mode,
                      dropout=self.dropout, seed=self.seed)
        return config


class AdditiveAttention(Attention):
    """Bahdanau-style attention: scores ``sum(scale * tanh(q + k), -1)`` with a trainable
    ``scale`` of shape (dim,) when ``use_scale=True`` (the default)."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape):
        dim = input_shape[0][-1]
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(dim,),
                                         initializer="glorot_uniform")

    def _scores(self, q, k):
        ops = _ops()
        t = ops.tanh(ops.expand_dims(q, -2) + ops.expand_dims(k, -3))
        return ops.sum(self.scale * t if self.use_scale else t, axis=-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
