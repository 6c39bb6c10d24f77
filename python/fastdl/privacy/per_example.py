"""Per-example gradients and their norms for Sequential models, from one ordinary forward pass
and one backward pass that keeps the gradient each trainable layer receives.

A layer's weight gradient is a sum over the examples of the batch of a product of the layer's
input and its output gradient; with both at hand, each layer kind gives the per-example terms
(``_Rule.grads``) and, where cheaper, their squared norms without materialising them ("ghost"
norms, ``_Rule.sq_norms``):

- Dense on 2-D input: ``||a_i||^2 * ||g_i||^2``; on (batch, steps, features) input, the sum of
  the entries of ``(A_i A_i^T) * (G_i G_i^T)`` (steps x steps Gram matrices) when that is cheaper
  than the (features x units) gradient itself.
- Conv1D/Conv2D: the same Gram identity on the im2col patches of the input and the output
  gradient (positions x positions), or the per-example kernel gradient when that is smaller.
- Embedding: the squared norm of the rows of ``g`` summed per distinct (example, id) pair, which
  equals the sum over pairs of positions with equal ids of ``g_s . g_t``; nothing of size
  batch x vocabulary x dim is formed.
- LayerNormalization: per-example sums of ``dy * xhat`` and ``dy`` (as small as gamma/beta).
- SimpleRNN/LSTM/GRU: the slower path: the layer's C++ backward runs once per example, on that
  example's rows of the batch forward's tape, because it returns only the batch sums of the
  weight gradients.

Per-example gradients are those of each example's loss: the model's loss is reduced with
``"sum_over_batch_size"`` (or ``"sum"``), so the batch gradient is ``sum_i g_i / B`` (or
``sum_i g_i``).

BatchNormalization with trainable weights mixes the examples of a batch (batch statistics) and
has no per-example gradient: it is refused; frozen layers cost nothing.
"""
import numpy as np

from fastdl import _core, activations
from fastdl.layers.convolutional import Conv1D, Conv2D, to_2d
from fastdl.layers.core import Dense
from fastdl.layers.embedding import Embedding
from fastdl.layers.normalization import LayerNormalization
from fastdl.layers.recurrent import _RNN



class PrivacyError(ValueError):
    """A model, layer or setting that cannot be trained with differential privacy."""


# ---------------------------------------------------------------------------- layer rules
class _Rule:
    """How one trainable layer gives its per-example gradients, after a forward pass (the
    layer's cache) and the gradient ``dy`` of its output."""

    def __init__(self, layer):
        self.layer = layer
        self.kept = None

    def grads(self, dy):
        raise NotImplementedError

    def sq_norms(self, dy):
        """Squared L2 norms of the per-example gradients of all of this layer's weights. A rule
        that formed the per-example gradients on the way keeps them in ``self.kept`` (None
        otherwise): the clipped sum then needs no second backward pass through this layer."""
        self.kept = self.grads(dy)
        return _sum_of_squares(self.kept)


def _sum_of_squares(per_example):
    """sum over the arrays (batch, ...) of each example's sum of squares: shape (batch,)."""
    return sum(np.einsum("ij,ij->i", *(g.reshape(len(g), g[0].size if len(g) else 0),) * 2)
               for g in per_example)


def _bmm(a, b, transpose_a=False, transpose_b=False):
    """Batched matrix products with fastdl's GEMM, one example at a time (NumPy's stacked
    matmul does not reach BLAS for these shapes and is 20-50x slower)."""
    dtype = np.result_type(a, b)
    if not len(a):
        rows, cols = a.shape[2 if transpose_a else 1], b.shape[1 if transpose_b else 2]
        return np.zeros((0, rows, cols), dtype)
    a, b = np.ascontiguousarray(a, dtype=dtype), np.ascontiguousarray(b, dtype=dtype)
    return np.stack([_core.matmul(ai, bi, transpose_a, transpose_b) for ai, bi in zip(a, b)])


def _gram_sq_norms(a, g):
    """Squared Frobenius norms of ``a_i^T g_i`` for a (B, L, K) and g (B, L, F): through the
    L x L Gram matrices when that costs fewer operations (L (K + F) < K F), else from the
    products; one example at a time with fastdl's GEMM, so no per-example tensor is stacked."""
    b, length, k = a.shape
    f = g.shape[2]
    dtype = np.result_type(a, g)
    if length == 1:
        return (a[:, 0] ** 2).sum(axis=1) * (g[:, 0] ** 2).sum(axis=1)
    a, g = np.ascontiguousarray(a, dtype=dtype), np.ascontiguousarray(g, dtype=dtype)
    out = np.empty(b, dtype=dtype)
    if length * (k + f) < k * f:
        for i in range(b):
            out[i] = np.vdot(_core.matmul(a[i], a[i], False, True),
                             _core.matmul(g[i], g[i], False, True))
    else:
        for i in range(b):
            prod = _core.matmul(a[i], g[i], True, False)
            out[i] = np.vdot(prod, prod)
    return out


def _activation_grad(layer, z, y, dy):
    dz = np.array(dy, dtype=layer.dtype)   # a copy: activations may work in place
    if layer.activation is not activations.linear:
        dz = layer.activation.backward(z, y, dz)
    return dz


class _DenseRule(_Rule):
    def _parts(self, dy):
        layer = self.layer
        x_shape, x2, z, y = layer._cache
        b = x_shape[0]
        dz = _activation_grad(layer, z, y, dy.reshape(-1, layer.units))
        steps = int(np.prod(x_shape[1:-1], dtype=np.int64))
        return x2.reshape(b, steps, x2.shape[-1]), dz.reshape(b, steps, layer.units)

    def grads(self, dy):
        a, g = self._parts(dy)
        out = [_bmm(a, g, True)]
        if self.layer.bias is not None:
            out.append(g.sum(axis=1))
        return out

    def sq_norms(self, dy):
        a, g = self._parts(dy)
        sq = _gram_sq_norms(a, g)
        if self.layer.bias is not None:
            sq = sq + (g.sum(axis=1) ** 2).sum(axis=1)
        return sq


class _ConvRule(_Rule):
    def _output_grad(self, dy):
        """The gradient of the convolution's output before its activation, (B, OH, OW, F)."""
        layer = self.layer
        _, z, y = layer._cache
        dz = to_2d(np.asarray(dy))
        if layer._fused_relu:   # z is the ReLU's output
            return np.multiply(dz, z > 0, dtype=layer.dtype)
        return np.ascontiguousarray(_activation_grad(layer, z, y, dz))

    def _parts(self, dz):
        """(im2col patches (B, L, KH*KW, C), output gradient (B, L, F)) from the output
        gradient ``dz`` (B, OH, OW, F)."""
        layer = self.layer
        x = layer._cache[0]
        sh, sw, padding, dh, dw, _ = layer._args()
        kh, kw = layer._kernel_2d().shape[:2]
        b, h, w, c = x.shape
        oh, ow = dz.shape[1:3]
        if padding == "same":   # TensorFlow's: the odd pixel at the bottom/right
            ph = max((oh - 1) * sh + (kh - 1) * dh + 1 - h, 0)
            pw = max((ow - 1) * sw + (kw - 1) * dw + 1 - w, 0)
            x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        taps = [x[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
                for i in range(kh) for j in range(kw)]
        patches = np.stack(taps, axis=3)                        # (B, OH, OW, KH*KW, C)
        return patches.reshape(b, oh * ow, kh * kw, c), dz.reshape(b, oh * ow, dz.shape[3])

    def _gram_cheaper(self, length):
        layer = self.layer
        k = int(np.prod(layer._kernel_2d().shape[:3]))
        f = layer.filters // layer.groups
        return length * (k + f) < k * f

    def _groups(self, patches, g):
        layer = self.layer
        b, length, taps, c = patches.shape
        cg, fg = c // layer.groups, layer.filters // layer.groups
        for k in range(layer.groups):
            yield (patches[..., k * cg:(k + 1) * cg].reshape(b, length, taps * cg),
                   g[..., k * fg:(k + 1) * fg])

    def _kept_grads(self, dy):
        """Per-example (kernel, bias) gradients by the C++ convolution backward on each
        example, from the layer's output gradient ``dy``: a fused ReLU is applied by that
        backward (its mask, the forward's output), and it sums the bias gradient too."""
        layer = self.layer
        x, z, _ = layer._cache
        relu = z if layer._fused_relu else None
        g = to_2d(np.asarray(dy)) if layer._fused_relu else self._output_grad(dy)
        g = np.ascontiguousarray(g, dtype=layer.dtype)
        dk = np.empty((len(x),) + layer.kernel.shape, dtype=layer.dtype)
        db = np.empty((len(x), layer.filters), dtype=layer.dtype) if layer.use_bias else None
        kernel, args = layer._kernel_2d(), layer._args()
        for i in range(len(x)):
            _, dki, dbi = _core.conv2d_backward(g[i:i + 1], x[i:i + 1], kernel, *args, False,
                                                True, db is not None,
                                                None if relu is None else relu[i:i + 1])
            dk[i] = dki.reshape(dk.shape[1:])
            if db is not None:
                db[i] = dbi
        return [dk] if db is None else [dk, db]

    def grads(self, dy):
        return self._kept_grads(dy)

    def sq_norms(self, dy):
        layer = self.layer
        length = int(np.prod(layer._cache[1].shape[1:3]))
        if not self._gram_cheaper(length):
            self.kept = self._kept_grads(dy)
            return _sum_of_squares(self.kept)
        self.kept = None
        patches, g = self._parts(self._output_grad(dy))
        sq = sum(_gram_sq_norms(p, gk) for p, gk in self._groups(patches, g))
        if layer.use_bias:
            sq = sq + (g.sum(axis=1) ** 2).sum(axis=1)
        return sq


class _EmbeddingRule(_Rule):
    def grads(self, dy):
        layer = self.layer
        ids = layer._ids
        b = ids.shape[0]
        out = np.zeros((b, layer.input_dim, layer.output_dim), dtype=layer.embeddings.dtype)
        np.add.at(out, (np.arange(b)[:, None], ids), dy)
        return [out]

    def sq_norms(self, dy):
        layer = self.layer
        ids = layer._ids
        b = ids.shape[0]
        keys = (np.arange(b, dtype=np.int64)[:, None] * layer.input_dim + ids).ravel()
        if not keys.size:
            return np.zeros(b, dtype=layer.embeddings.dtype)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        rows = np.asarray(dy, dtype=layer.embeddings.dtype).reshape(-1, layer.output_dim)[order]
        sums = np.add.reduceat(rows, starts, axis=0)     # one row per (example, id)
        return np.bincount(keys[starts] // layer.input_dim, weights=(sums ** 2).sum(axis=1),
                           minlength=b)


class _LayerNormRule(_Rule):
    def grads(self, dy):
        layer = self.layer
        axes, xhat, inv, pshape = layer._cache
        dy = np.asarray(dy, dtype=layer.dtype)
        others = tuple(i for i in range(1, dy.ndim) if i not in axes)
        b = dy.shape[0]
        out = []
        if layer.scale:
            out.append((dy * xhat).sum(axis=others).reshape((b,) + layer.gamma.shape))
        if layer.center:
            out.append(dy.sum(axis=others).reshape((b,) + layer.beta.shape))
        return out


class _RNNRule(_Rule):
    """One backward of the layer's kernels per example, on that example's rows of the batch
    forward's tape (the C++ backward sums the weight gradients over the batch); the norms keep
    one example's gradients at a time."""

    def _each(self, dy):
        from fastdl.ops.core import rnn as rnn_ops
        layer = self.layer
        tape = layer._tape
        if tape is None:   # a forward without its tape (Layer._inference_only): replay it
            tape = layer._forward(*layer._replay, True)[2]
        fields = {name: getattr(tape, name) for name in rnn_ops.RnnTape.__slots__}
        for i in range(len(tape.x)):   # the tape's cache is (steps, batch, ...)
            fields.update(x=tape.x[i:i + 1], cache=np.ascontiguousarray(tape.cache[:, i:i + 1]),
                          mask=None if tape.mask is None else tape.mask[i:i + 1])
            _, dk, dr, db, _ = rnn_ops.rnn_backward(rnn_ops.RnnTape(**fields),
                                                    np.ascontiguousarray(dy[i:i + 1]), None)
            yield (dk, dr, db)[:len(layer.trainable_weights)]

    def grads(self, dy):
        return [np.stack(g) for g in zip(*self._each(dy))]

    def sq_norms(self, dy):
        return np.array([sum(float((g ** 2).sum()) for g in grads) for grads in self._each(dy)])
        # (not kept: the batch's per-example weight gradients would be large)


def rule_for(layer):
    """The per-example rule of a trainable layer; PrivacyError naming why there is none."""
    reason = unsupported_reason(layer)
    if reason:
        raise PrivacyError(f"layer {layer.name!r} ({type(layer).__name__}) {reason}")
    for kind, rule in ((Dense, _DenseRule), ((Conv1D, Conv2D), _ConvRule), (Embedding, _EmbeddingRule),
                       (LayerNormalization, _LayerNormRule), (_RNN, _RNNRule)):
        if isinstance(layer, kind):
            return rule(layer)
    raise AssertionError(layer)   # unsupported_reason covers every other kind


def unsupported_reason(layer):
    """Why a layer with trainable weights cannot train privately (None when it can)."""
    from fastdl.layers.normalization import BatchNormalization
    if not (layer.trainable and layer.trainable_weights):
        return None
    if isinstance(layer, BatchNormalization):
        return ("normalizes with batch statistics, which mix the examples of a batch: no "
                "per-example gradient exists. Freeze it (trainable=False), or use "
                "LayerNormalization or GroupNormalization")
    if getattr(layer, "activity_regularizer", None) is not None:
        return "has an activity_regularizer, a penalty on the whole batch's output"
    if isinstance(layer, LayerNormalization):
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        return "normalizes over the batch axis" if 0 in axes else None
    if isinstance(layer, (Dense, Conv1D, Conv2D, Embedding, _RNN)):   # not depthwise/separable
        return None
    return "has no per-example gradient rule in fastdl.privacy (supported: Dense, Conv1D, " \
           "Conv2D, Embedding, LayerNormalization, SimpleRNN, LSTM, GRU)"


# ---------------------------------------------------------------------------- model passes
def check_model(model):
    """PrivacyError unless ``model`` is a compiled Sequential model whose trainable layers
    all have per-example rules; returns (trainable layers, their rules)."""
    from fastdl.models import Sequential
    if not isinstance(model, Sequential):
        raise PrivacyError(f"differentially private training supports Sequential models; "
                           f"received {type(model).__name__}")
    if getattr(model, "loss", None) is None or getattr(model, "optimizer", None) is None:
        raise PrivacyError(f"model {model.name!r} must be compiled (loss and optimizer) first")
    problems = validate(model)
    if problems:
        raise PrivacyError("cannot train privately: " + "; ".join(
            f"layer {name!r}: {why}" for name, why in problems))
    trainable, _ = model._trainable_state()
    return trainable, [rule_for(layer) for layer in trainable]


def validate(model):
    """[(layer name, reason)] for each layer that cannot be trained with DP-SGD (empty: ok)."""
    from fastdl.models import Sequential
    if not isinstance(model, Sequential):
        return [(model.name, f"a {type(model).__name__} model: fastdl.privacy trains "
                             "Sequential models")]
    problems = []
    for layer in model.layers:
        if layer._tape_only:
            problems.append((layer.name, "has no backward of its own (a nested model or a layer "
                                         "written with ops): fastdl.privacy runs the layers' own "
                                         "backward passes"))
            continue
        reason = unsupported_reason(layer)
        if reason:
            problems.append((layer.name, reason))
    loss = getattr(model, "loss", None)
    if loss is not None and getattr(loss, "reduction", None) not in (
            "sum_over_batch_size", "mean", "sum"):
        problems.append(("loss", f"reduction={getattr(loss, 'reduction', None)!r}: per-example "
                                 "gradients need 'sum_over_batch_size' or 'sum'"))
    return problems


def example_scale(model, n):
    """Per-example gradients are the batch gradient's terms times this (the loss's reduction)."""
    return 1.0 if model.loss.reduction == "sum" else float(n)


def forward_and_capture(model, x, y, sw, trainable):
    """One training forward pass and a backward pass that only collects the gradient each
    trainable layer receives (weight gradients skipped, stopping at the lowest trainable
    layer). Returns (loss, the loss gradient dy, {layer: its output gradient})."""
    y_pred, _ = model._train_forward(x)
    loss, dy = model.loss.forward_backward(y, y_pred, sw)
    wanted = set(map(id, trainable))
    received = {}
    g = dy
    saved = {id(layer): layer._trainable for layer in trainable}
    try:
        for layer in trainable:
            layer._trainable = False        # weight gradients are not needed in this pass
        for layer in reversed(model._layers):
            g = layer._autocast_input(g)
            if id(layer) in wanted:
                if len(received) + 1 == len(wanted):   # the last: no backward follows
                    received[id(layer)] = g
                    break
                received[id(layer)] = np.array(g)   # a copy: backward may reuse its argument
            g = layer.backward(g)
    finally:
        for layer in trainable:
            layer._trainable = saved[id(layer)]
    return y_pred, loss, dy, received


def _prepare(model, x, y, sample_weight):
    trainable, rules = check_model(model)
    x = model._convert_x(x)
    y = model._convert_y(y, len(x))
    sw = model._convert_sample_weight(sample_weight, len(x))
    return trainable, rules, x, y, sw


def per_example_gradients(model, x, y, sample_weight=None):
    """The gradient of each example's loss for every trainable weight of ``model`` (a compiled
    Sequential model), in ``model.trainable_weights`` order: arrays of shape
    ``(batch,) + weight.shape``. Dropout draws its masks once for the whole batch."""
    trainable, rules, x, y, sw = _prepare(model, x, y, sample_weight)
    with model._in_use("per_example_gradients", training=True), model._first_layer_skips_dx():
        _, _, _, received = forward_and_capture(model, x, y, sw, trainable)
        scale = example_scale(model, len(x))
        return [g * scale for rule in rules for g in rule.grads(received[id(rule.layer)])]


def squared_norms(rules, received, scale, n):
    """Squared L2 norms of the per-example gradients over all trainable weights."""
    sq = np.zeros(n)
    for rule in rules:
        sq += rule.sq_norms(received[id(rule.layer)])
    return sq * (scale * scale)


def clipped_sum(model, trainable, rules, dy, factor):
    """``sum_i factor_i g_i`` for every trainable weight, in ``_trainable_state`` order, after
    ``squared_norms`` ran on this batch: the layers whose rule kept its per-example gradients
    sum them; the others get it from the ordinary backward pass of ``dy`` with example i's row
    scaled by ``factor_i``, which stops at the lowest layer that needs it."""
    needed = [rule.layer for rule in rules if rule.kept is None]
    if needed:
        skip = [rule.layer for rule in rules if rule.kept is not None]
        saved = {id(layer): layer._trainable for layer in skip}
        lowest = needed[0]
        dx_saved = getattr(lowest, "input_gradient_needed", None)
        g = dy * factor.reshape((-1,) + (1,) * (dy.ndim - 1)).astype(dy.dtype)
        try:
            for layer in skip:
                layer._trainable = False     # their sums come from the kept gradients
            if dx_saved is not None:
                lowest.input_gradient_needed = False   # this pass stops there
            for layer in reversed(model._layers):
                g = layer.backward(layer._autocast_input(g))
                if layer is lowest:
                    break
        finally:
            for layer in skip:
                layer._trainable = saved[id(layer)]
            if dx_saved is not None:
                lowest.input_gradient_needed = dx_saved
    out = []
    for rule in rules:
        if rule.kept is None:
            out.extend(rule.layer.grads)
        else:
            out.extend(_core.matmul(factor.astype(k.dtype)[None], k.reshape(len(k), -1))
                       .reshape(k.shape[1:]) for k in rule.kept)
            rule.kept = None
    return out


def per_example_norms(model, x, y, sample_weight=None):
    """L2 norms, over all trainable weights, of each example's gradient (shape (batch,)),
    computed without forming the per-example gradients where the layer allows."""
    trainable, rules, x, y, sw = _prepare(model, x, y, sample_weight)
    with model._in_use("per_example_norms", training=True), model._first_layer_skips_dx():
        _, _, _, received = forward_and_capture(model, x, y, sw, trainable)
        return np.sqrt(squared_norms(rules, received, example_scale(model, len(x)), len(x)))
