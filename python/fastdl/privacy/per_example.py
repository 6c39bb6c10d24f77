"""Per-example gradients and their norms for Sequential and functional models, from one
ordinary forward pass and one backward pass that keeps the gradient each trainable layer
receives (``Pass``: a Sequential chain's own backward passes, or the reverse walk over a
GradientTape's entries, where each layer call is one primitive with its saved attributes).

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
- SimpleRNN/LSTM/GRU: the C++ backward of the batch also returns each step's gradient of the
  pre-activation gates; the weight gradients are per-step products of those with the step's
  input and previous state, so each example's are ``a_i^T g_i`` as for Dense on sequences.

Per-example gradients are those of each example's loss: the model's loss is reduced with
``"sum_over_batch_size"`` (or ``"sum"``), so the batch gradient is ``sum_i g_i / B`` (or
``sum_i g_i``).

BatchNormalization with trainable weights mixes the examples of a batch (batch statistics) and
has no per-example gradient: it is refused; frozen layers cost nothing.
"""
import contextlib

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

    def call_grads(self, calls, n):
        """The per-example gradients over the layer's calls in a pass (``Pass.calls``): a
        layer called several times (shared weights) has their sum as its gradient."""
        total = None
        for state, dy in calls:
            with _restored(self.layer, state):
                grads = self.grads(dy)
            total = grads if total is None else [t + g for t, g in zip(total, grads)]
        if total is None:   # the loss does not reach the layer
            total = [np.zeros((n,) + w.shape, w.dtype) for w in self.layer.trainable_weights]
        return total

    def call_sq_norms(self, calls, n):
        """``sq_norms`` over the layer's calls in a pass; for several calls the norm of the
        summed per-example gradients (kept)."""
        if not calls:   # the loss does not reach the layer: zero (its sum comes out zero too)
            return np.zeros(n)
        if len(calls) == 1:
            with _restored(self.layer, calls[0][0]):
                return self.sq_norms(calls[0][1])
        self.kept = self.call_grads(calls, n)
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
    out = np.empty(b, dtype=dtype)
    gram = length * (k + f) < k * f
    for i in range(b):   # views (an RNN's steps) become contiguous one example at a time
        ai, gi = np.ascontiguousarray(a[i], dtype=dtype), np.ascontiguousarray(g[i], dtype=dtype)
        if gram:
            out[i] = np.vdot(_core.matmul(ai, ai, False, True), _core.matmul(gi, gi, False, True))
        else:
            prod = _core.matmul(ai, gi, True, False)
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
    """One batch backward of the layer that also returns each step's gradient of the
    pre-activation gates (``rnn_backward(..., gate_grads=)``); the weight gradients are sums
    over the steps of products of those with the step's input and cached previous state,
    ``a_i^T g_i`` per example as for Dense on sequences (``_gram_sq_norms`` for the norms)."""

    @staticmethod
    def gate_buffer(layer, state):
        """An array for the gate gradients of the layer's backward after the call whose
        attributes are ``state`` (``rnn_backward(gate_grads=)``; None without a tape)."""
        tape = state.get("_tape")
        if tape is None:
            return None
        gu = layer._gates * layer.units
        width = 2 * gu if tape.cell == "gru" and tape.reset_after else gu
        return np.empty(tape.cache.shape[:2] + (width,), dtype=tape.x.dtype)

    def _blocks(self, dy):
        """([(a, g)] whose per-example products are the kernel's column blocks, the same for
        the recurrent kernel, [g] per bias row): arrays (batch, steps, ...) in processing
        order (views; masked steps have zero g). The gate gradients come from the pass's own
        backward through the layer when it ran one (``_captured_gates``), else from one here."""
        from fastdl.ops.core import rnn as rnn_ops
        layer = self.layer
        tape = layer._tape
        if tape is None:   # a forward without its tape (Layer._inference_only): replay it
            x, initial_state, mask, recurrent_mask = layer._replay
            tape = layer._forward(x, initial_state, mask, True, recurrent_mask)[2]
        u, gates = layer.units, layer._gates
        gu = gates * u
        gru_after = tape.cell == "gru" and tape.reset_after
        gg = layer.__dict__.get("_captured_gates")
        if gg is None:
            gg = self.gate_buffer(layer, {"_tape": tape})
            rnn_ops.rnn_backward(tape, np.ascontiguousarray(dy, dtype=tape.x.dtype), None,
                                 gate_grads=gg)
        gg = gg.transpose(1, 0, 2)
        g_r, g_x = (gg[..., :gu], gg[..., gu:]) if gru_after else (gg, gg)
        x = tape.x[:, ::-1] if tape.go_backwards else tape.x
        h_prev = tape.cache.transpose(1, 0, 2)[..., -u:]   # the cache rows end with h_prev

        def per_gate(a, g, width):   # gate k's columns of g, from its own block of a
            return [(a[..., k * width:(k + 1) * width], g[..., k * u:(k + 1) * u])
                    for k in range(gates)]

        kernel = per_gate(x, g_x, layer.kernel.shape[0]) if layer._per_gate_inputs \
            else [(x, g_x)]
        rmask = tape.recurrent_mask   # (batch, gates, units): gate k's product uses h_prev * m_k
        if tape.cell == "gru" and not tape.reset_after:
            # [dz, dr] with h_prev, dh~ with the cached r * h_prev (its mask applied)
            zr = [(h_prev, g_r[..., :2 * u])] if rmask is None else [
                (h_prev * rmask[:, None, k], g_r[..., k * u:(k + 1) * u]) for k in range(2)]
            recurrent = zr + [(tape.cache.transpose(1, 0, 2)[..., 3 * u:4 * u], g_r[..., 2 * u:])]
        elif rmask is None:
            recurrent = [(h_prev, g_r)]
        else:
            recurrent = [(h_prev * rmask[:, None, k], g_r[..., k * u:(k + 1) * u])
                         for k in range(gates)]
        bias = ([g_x, g_r] if gru_after else [g_x]) if tape.use_bias else []
        return kernel, recurrent, bias

    def grads(self, dy):
        kernel, recurrent, bias = self._blocks(dy)
        out = [np.concatenate([_bmm(a, g, True) for a, g in blocks], axis=2)
               for blocks in (kernel, recurrent)]
        if bias:
            sums = [g.sum(axis=1) for g in bias]
            out.append(np.stack(sums, axis=1) if len(sums) > 1 else sums[0])
        return out[:len(self.layer.trainable_weights)]

    def sq_norms(self, dy):
        kernel, recurrent, bias = self._blocks(dy)
        sq = sum(_gram_sq_norms(a, g) for a, g in kernel + recurrent)
        for g in bias:
            sq = sq + (g.sum(axis=1) ** 2).sum(axis=1)
        return sq


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
    """PrivacyError unless ``model`` is a compiled Sequential or functional model whose
    trainable layers all have per-example rules; returns (trainable layers, their rules)."""
    kind = _model_kind_problem(model)
    if kind:
        raise PrivacyError(f"differentially private training supports Sequential and "
                           f"functional models; received {kind}")
    if getattr(model, "loss", None) is None or getattr(model, "optimizer", None) is None:
        raise PrivacyError(f"model {model.name!r} must be compiled (loss and optimizer) first")
    problems = validate(model)
    if problems:
        raise PrivacyError("cannot train privately: " + "; ".join(
            f"layer {name!r}: {why}" for name, why in problems))
    trainable, _ = model._trainable_state()
    return trainable, [rule_for(layer) for layer in trainable]


# what a subclass of Sequential or Model(inputs, outputs) must not override: the forward pass
# (a subclassed model's call may do anything with the batch) or the training step (fit would
# run it instead of DP-SGD)
_FIXED = ("call", "_call_tensors", "train_step", "_train_step", "_train_forward",
          "_train_backward")


def _model_kind_problem(model):
    """None for a Sequential or functional model (nested models included); else what it is."""
    from fastdl.functional import Functional
    from fastdl.models import Model, Sequential
    stack = [model]
    while stack:
        m = stack.pop()
        base = next((b for b in (Sequential, Functional) if isinstance(m, b)), None)
        changed = [] if base is None else [
            name for name in _FIXED if getattr(type(m), name) is not getattr(base, name)]
        if base is None or changed:
            what = (f"overrides {', '.join(changed)}" if changed else
                    "a subclassed model" if isinstance(m, Model) else "not a model")
            inner = "" if m is model else f" (nested in model {model.name!r})"
            return f"{getattr(m, 'name', m)!r} ({type(m).__name__}: {what}){inner}"
        stack.extend(l for l in m._layers if isinstance(l, Model))
    return None


def _reduction(loss):
    """The loss's reduction; a multi-output loss's common one (None when they differ)."""
    parts = getattr(loss, "losses", None)   # functional.MultiOutputLoss
    if parts is None:
        return getattr(loss, "reduction", None)
    kinds = {getattr(l, "reduction", None) for l in parts if l is not None}
    return kinds.pop() if len(kinds) == 1 else None


def validate(model):
    """[(layer name, reason)] for each layer that cannot be trained with DP-SGD (empty: ok)."""
    from fastdl.models import Sequential, _leaf_layers
    kind = _model_kind_problem(model)
    if kind:
        return [(model.name, f"the model is {kind}: fastdl.privacy trains Sequential and "
                             "functional models")]
    problems = []
    chain = isinstance(model, Sequential) and not model._chain_needs_tape()
    for layer in (model._layers if chain else _leaf_layers(model)):
        if getattr(layer, "activity_regularizer", None) is not None:
            # also on a frozen layer: its penalty's gradient reaches the layers below unclipped
            problems.append((layer.name, "has an activity_regularizer, a penalty on the whole "
                                         "batch's output"))
            continue
        reason = unsupported_reason(layer)
        if reason:
            problems.append((layer.name, reason))
    loss = getattr(model, "loss", None)
    if loss is not None and _reduction(loss) not in ("sum_over_batch_size", "mean", "sum"):
        problems.append(("loss", f"reduction={_reduction(loss)!r}: per-example gradients need "
                                 "'sum_over_batch_size' or 'sum' (the same for every output)"))
    return problems


def example_scale(model, n):
    """Per-example gradients are the batch gradient's terms times this (the loss's reduction)."""
    return 1.0 if _reduction(model.loss) == "sum" else float(n)


@contextlib.contextmanager
def _restored(layer, state):
    """The layer's attributes as they were after one of its calls (``state``, saved by the
    tape) for the duration of the block; ``None``: as they are."""
    if state is None:
        yield
        return
    current = layer.__dict__.copy()
    layer.__dict__.update(state)
    try:
        yield
    finally:
        layer.__dict__.clear()
        layer.__dict__.update(current)


class Pass:
    """One training forward pass of a batch and the output gradients the trainable layers
    received in the backward pass that follows (``capture``).

    ``calls``: layer id -> [(the layer's attributes after that call, or None when they are the
    layer's own; the gradient of that call's output)]. A Sequential chain (``tape is None``)
    runs the layers' backward passes itself; other models ran their forward on Tensors under a
    GradientTape, whose entries hold each layer call (``fastdl.ops.layers.call_layer``, one
    primitive with a copy of the layer's attributes): a layer called several times has one
    entry per call."""

    def __init__(self, model, x, y, sw, trainable):
        self.model, self.trainable = model, trainable
        y_pred, state = model._train_forward(x)
        self.y_pred = y_pred
        self.loss, self.dy = model.loss.forward_backward(y, y_pred, sw)
        self.tape, self.outputs = (None, None) if state is None else state[:2]
        self.calls = {}
        if self.tape is not None:
            self.entries = self._layer_entries()

    def _layer_entries(self):
        """{tape entry index: layer} of the trainable layers' calls."""
        from fastdl.layers.recurrent import _recorded_vjp
        from fastdl.ops.layers import _layer_vjp
        wanted = {id(layer) for layer in self.trainable}
        found = {}
        for i, (_, _, vjp, cache) in enumerate(self.tape._entries):
            if vjp is _layer_vjp and id(cache[0]) in wanted:
                found[i] = cache[0]
            elif vjp is _recorded_vjp and id(cache[0]) in wanted:
                raise PrivacyError(
                    f"layer {cache[0].name!r} ({type(cache[0]).__name__}) was called with "
                    "initial_state or return_state: fastdl.privacy has no per-example rule for "
                    "such calls yet")
        return found

    def _seeds(self, factor):
        """{output id: its loss gradient}, each example's row times ``factor`` (or not)."""
        outs = self.outputs if isinstance(self.outputs, (list, tuple)) else [self.outputs]
        dys = self.dy if isinstance(self.dy, (list, tuple)) else [self.dy]
        seeds = {}
        for out, dy in zip(outs, dys):
            if id(out) not in self.tape._watched:
                continue
            g = dy if factor is None else _scaled(dy, factor)
            seeds[id(out)] = g if id(out) not in seeds else seeds[id(out)] + g
        return seeds

    def _walk(self, seeds, stop, visit):
        """The tape's reverse pass from ``seeds``, with ``visit(layer, state, g, last)``
        running the backward of each trainable layer call (it returns what the entry's VJP
        returns: dx first); ends after entry ``stop``, whose input gradient is not needed."""
        entries, watched = self.tape._entries, self.tape._watched
        grads = seeds
        for i in range(len(entries) - 1, stop - 1, -1):
            out, inputs, vjp, cache = entries[i]
            g = grads.pop(id(out), None)
            if g is None:
                continue
            layer = self.entries.get(i)
            results = vjp(cache, g) if layer is None else visit(layer, cache[1], g, i == stop)
            if i == stop:
                break
            for x, gx in zip(inputs, results):
                if gx is not None and id(x) in watched:
                    prev = grads.get(id(x))
                    grads[id(x)] = gx if prev is None else prev + gx

    def capture(self):
        """The gradient each trainable layer call receives (weight gradients skipped, down to
        the lowest trainable layer), into ``self.calls``."""
        self.calls = {id(layer): [] for layer in self.trainable}
        if self.tape is None:
            self._capture_chain()
            return self

        def visit(layer, state, g, last):
            from fastdl.ops.layers import _layer_vjp
            dy = np.array(g, dtype=layer.dtype)   # a copy: backward may work in place
            if last:
                self.calls[id(layer)].append((state, dy))
                return ()
            run = dict(state, _trainable=False)
            gates = _RNNRule.gate_buffer(layer, state) if isinstance(layer, _RNN) else None
            if gates is not None:   # this backward gives the rule its gate gradients
                run["_gate_grads_out"] = gates
                state = dict(state, _captured_gates=gates)
            self.calls[id(layer)].append((state, dy))
            return _layer_vjp((layer, run), g)

        self._walk(self._seeds(None), min(self.entries, default=len(self.tape._entries)), visit)
        return self

    def _capture_chain(self):
        model = self.model
        wanted = set(map(id, self.trainable))
        left = len(wanted)
        g = self.dy
        saved = {id(layer): layer._trainable for layer in self.trainable}
        try:
            for layer in self.trainable:
                layer._trainable = False        # weight gradients are not needed in this pass
            for layer in reversed(model._layers):
                g = layer._autocast_input(g)
                if id(layer) in wanted:
                    left -= 1
                    if not left:   # the last: no backward follows
                        self.calls[id(layer)].append((None, g))
                        break
                    gates = _RNNRule.gate_buffer(layer, layer.__dict__) \
                        if isinstance(layer, _RNN) else None
                    if gates is not None:   # this backward gives the rule its gate gradients
                        layer._gate_grads_out = gates
                    self.calls[id(layer)].append(
                        (None if gates is None else {"_captured_gates": gates},
                         np.array(g)))  # a copy: backward may reuse g
                g = layer.backward(g)
        finally:
            for layer in self.trainable:
                layer._trainable = saved[id(layer)]

    def weighted_backward(self, factor, skip):
        """The weight gradients of the loss with example i's gradient times ``factor[i]``, for
        the trainable layers except those in ``skip`` ({layer id}), in ``trainable`` order:
        one backward pass that stops at the lowest layer it needs, without its dx."""
        needed = [layer for layer in self.trainable if id(layer) not in skip]
        if not needed:
            return []
        if self.tape is None:
            return self._chain_backward(_scaled(self.dy, factor), needed, skip)
        from fastdl.ops.layers import _layer_vjp
        sums = {}
        stop = min((i for i, layer in self.entries.items() if id(layer) not in skip),
                   default=len(self.tape._entries))

        def visit(layer, state, g, last):
            if id(layer) in skip:   # their sums come from their kept per-example gradients
                return _layer_vjp((layer, dict(state, _trainable=False)), g)
            if last and "input_gradient_needed" in state:
                state = dict(state, input_gradient_needed=False)
            results = _layer_vjp((layer, state), g)
            if id(layer) in sums:
                sums[id(layer)] = [a + b for a, b in zip(sums[id(layer)], results[1:])]
            else:
                sums[id(layer)] = list(results[1:])
            return results

        self._walk(self._seeds(factor), stop, visit)
        return [g for layer in needed for g in sums.get(id(layer)) or
                [np.zeros_like(w) for w in layer.trainable_weights]]

    def _chain_backward(self, g, needed, skip):
        model = self.model
        lowest = needed[0]
        dx_saved = getattr(lowest, "input_gradient_needed", None)
        saved = {id(layer): layer._trainable for layer in self.trainable}
        try:
            for layer in self.trainable:
                if id(layer) in skip:
                    layer._trainable = False
            if dx_saved is not None:
                lowest.input_gradient_needed = False   # this pass stops there
            for layer in reversed(model._layers):
                g = layer.backward(layer._autocast_input(g))
                if layer is lowest:
                    break
        finally:
            for layer in self.trainable:
                layer._trainable = saved[id(layer)]
            if dx_saved is not None:
                lowest.input_gradient_needed = dx_saved
        return [g for layer in needed for g in layer.grads]


def _scaled(dy, factor):
    """``dy`` (an array, or one per output) with example i's row times ``factor[i]``."""
    if isinstance(dy, (list, tuple)):
        return [_scaled(d, factor) for d in dy]
    return dy * factor.reshape((-1,) + (1,) * (dy.ndim - 1)).astype(dy.dtype)


def _prepare(model, x, y, sample_weight):
    trainable, rules = check_model(model)
    x = model._convert_x(x)
    y = model._convert_y(y, len(x))
    sw = model._convert_sample_weight(sample_weight, len(x))
    return trainable, rules, x, y, sw


def per_example_gradients(model, x, y, sample_weight=None):
    """The gradient of each example's loss for every trainable weight of ``model`` (a compiled
    Sequential or functional model), in ``model.trainable_weights`` order: arrays of shape
    ``(batch,) + weight.shape``. Dropout draws its masks once for the whole batch."""
    trainable, rules, x, y, sw = _prepare(model, x, y, sample_weight)
    with model._in_use("per_example_gradients", training=True), model._first_layer_skips_dx():
        passed = Pass(model, x, y, sw, trainable).capture()
        scale = example_scale(model, len(x))
        return [g * scale for rule in rules
                for g in rule.call_grads(passed.calls[id(rule.layer)], len(x))]


def squared_norms(rules, passed, scale, n):
    """Squared L2 norms of the per-example gradients over all trainable weights. The pass's
    captured gradients are released on the way (the clipped sum's backward does not read them:
    a smaller peak of memory)."""
    sq = np.zeros(n)
    for rule in rules:
        sq += rule.call_sq_norms(passed.calls.pop(id(rule.layer)), n)
    return sq * (scale * scale)


def clipped_sum(rules, passed, factor):
    """``sum_i factor_i g_i`` for every trainable weight, in ``_trainable_state`` order, after
    ``squared_norms`` ran on this batch: the layers whose rule kept its per-example gradients
    sum them; the others get it from the ordinary backward pass of the loss gradient with
    example i's row scaled by ``factor_i`` (``Pass.weighted_backward``)."""
    kept = {id(rule.layer) for rule in rules if rule.kept is not None}
    backward = iter(passed.weighted_backward(factor, kept))
    out = []
    for rule in rules:
        if rule.kept is None:
            out.extend(next(backward) for _ in rule.layer.trainable_weights)
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
        passed = Pass(model, x, y, sw, trainable).capture()
        norms = np.sqrt(squared_norms(rules, passed, example_scale(model, len(x)), len(x)))
        for rule in rules:
            rule.kept = None
        return norms
