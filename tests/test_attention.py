"""Attention: the C++ kernel, ops.dot_product_attention and the attention layers.

Gradients against float64 central differences; forward values against the formula, PyTorch's
scaled_dot_product_attention and real Keras (same weights); training in functional and
subclassed models; bad input."""
import re

import numpy as np
import pytest

import fastdl
import fastdl.ops as ops
from fastdl import layers
from fastdl.ops.core import attention as kernel
from fastdl.ops.layers import layer_variables
from gradcheck import numerical_gradient


def _rng(seed=0):
    return np.random.default_rng(seed)


def _normals(r, *shapes):
    return [r.standard_normal(s) for s in shapes]


def _reference(q, k, v, mask, scale, causal):
    """Keras's masked softmax: where(mask, s, -1e9), softmax, where(mask, p, 0)."""
    s = np.einsum("btd,bsd->bts", q, k) * scale
    vis = np.ones(s.shape, bool) if mask is None else np.repeat(mask, len(q) // len(mask), 0)
    if causal:
        vis = vis & np.tril(np.ones(s.shape[1:], bool))
    s = np.where(vis, s, -1e9)
    p = np.exp(s - s.max(-1, keepdims=True))
    p = np.where(vis, p / p.sum(-1, keepdims=True), 0)
    return p @ v, p


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_forward_matches_formula(causal, dtype):
    r = _rng()
    q, k = r.standard_normal((6, 4, 3)), r.standard_normal((6, 5, 3))
    v, mask = r.standard_normal((6, 5, 2)), r.random((2, 4, 5)) > 0.3
    mask[0, 1] = False   # a query that sees no key: zeros
    out, probs = kernel.attention(*(a.astype(dtype) for a in (q, k, v)), mask, None, 0.7, causal)
    want, wp = _reference(q, k, v, mask, 0.7, causal)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(probs, wp, atol=tol)
    np.testing.assert_allclose(out, want, atol=tol)
    assert not probs[:3, 1].any()


@pytest.mark.parametrize("with_drop", [False, True])
def test_kernel_backward_central_differences(with_drop):
    r = _rng(1)
    q, k, v = _normals(r, (4, 3, 2), (4, 5, 2), (4, 5, 3))
    mask = r.random((4, 3, 5)) > 0.3
    drop = (r.random((4, 3, 5)) > 0.4) / 0.6 if with_drop else None
    g = r.standard_normal((4, 3, 3))

    def loss():
        return float((kernel.attention(q, k, v, mask, drop, 0.8, True)[0] * g).sum())
    _, probs = kernel.attention(q, k, v, mask, drop, 0.8, True)
    grads = kernel.attention_backward(g, q, k, v, probs, drop, 0.8)
    for got, x in zip(grads, (q, k, v)):
        np.testing.assert_allclose(got, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tq, tk, dk, dv", [(4, 6, 5, 2), (37, 45, 40, 19)])
def test_kernel_reads_and_writes_the_heads_layout_in_place(dtype, tq, tk, dk, dv):
    """(B, T, H, d) operands (a projection's output, no transposes) give the (B*H, T, d)
    results, heads side by side: forward, probabilities and gradients (tiny problems, and
    ones spanning several GEMM tiles)."""
    r = _rng(4)
    q, k, v, g = (a.astype(dtype) for a in _normals(r, (2, tq, 3, dk), (2, tk, 3, dk),
                                                     (2, tk, 3, dv), (2, tq, 3, dv)))
    mask = r.random((2, tq, tk)) > 0.3
    drop = ((r.random((6, tq, tk)) > 0.4) / 0.6).astype(dtype)
    heads = lambda x: np.ascontiguousarray(x.transpose(0, 2, 1, 3).reshape(6, x.shape[1], -1))  # noqa: E731
    back = lambda x: x.reshape(2, 3, x.shape[1], -1).transpose(0, 2, 1, 3)  # noqa: E731
    out, probs = kernel.attention(q, k, v, mask, drop, 0.7, True)
    out3, probs3 = kernel.attention(heads(q), heads(k), heads(v), mask, drop, 0.7, True)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert out.shape == (2, tq, 3, dv) and probs.shape == (6, tq, tk)
    np.testing.assert_allclose(out, back(out3), atol=tol)
    np.testing.assert_allclose(probs, probs3, atol=tol)
    grads = kernel.attention_backward(g, q, k, v, probs, drop, 0.7)
    grads3 = kernel.attention_backward(heads(g), heads(q), heads(k), heads(v), probs3, drop, 0.7)
    for got, want, x in zip(grads, grads3, (q, k, v)):
        assert got.shape == x.shape
        np.testing.assert_allclose(got, back(want), atol=tol)


@pytest.mark.parametrize("tq, tk, dk, dv", [(1, 1, 1, 1), (7, 5, 3, 9), (13, 200, 32, 32),
                                           (37, 45, 40, 19), (12, 17, 0, 4)])
@pytest.mark.parametrize("causal, with_mask, with_drop", [(False, False, False),
                                                           (True, True, True)])
def test_kernel_float32_equals_float64(tq, tk, dk, dv, causal, with_mask, with_drop):
    """float32 runs its own path (on AVX2 and AVX-512 builds: register tiles over blocks of
    query rows, a tile's edge rows and columns included); it agrees with the float64 kernel,
    whose gradients the central-difference tests check."""
    r = _rng(12)
    q, k, v, g = _normals(r, (6, tq, dk), (6, tk, dk), (6, tk, dv), (6, tq, dv))
    mask = r.random((2, tq, tk)) > 0.3 if with_mask else None
    drop = (r.random((6, tq, tk)) > 0.4) / 0.6 if with_drop else None
    f32 = lambda a: None if a is None else a.astype(np.float32)  # noqa: E731
    out, probs = kernel.attention(q, k, v, mask, drop, 0.4, causal)
    out32, probs32 = kernel.attention(f32(q), f32(k), f32(v), mask, f32(drop), 0.4, causal)
    np.testing.assert_allclose(probs32, probs, atol=2e-6)
    np.testing.assert_allclose(out32, out, atol=2e-5 * np.sqrt(tk + 1))
    grads = kernel.attention_backward(g, q, k, v, probs, drop, 0.4)
    grads32 = kernel.attention_backward(f32(g), f32(q), f32(k), f32(v), probs32, f32(drop), 0.4)
    for got, want in zip(grads32, grads):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=5e-5 * np.sqrt(tk + tq + dk + dv))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tq, tk", [(3, 0), (0, 4), (0, 0)])
def test_kernel_empty_sequences(dtype, tq, tk):
    """No keys: every output row is zero (a softmax over nothing weighs nothing); no queries:
    empty outputs and zero key/value gradients. NumPy gives empty arrays arbitrary strides,
    which must not be refused."""
    q, k, v = np.ones((2, tq, 3, 4), dtype), np.ones((2, tk, 3, 4), dtype), np.ones((2, tk, 3, 5),
                                                                                     dtype)
    out, probs = kernel.attention(q, k, v, None, None, 0.5, True)
    assert out.shape == (2, tq, 3, 5) and probs.shape == (6, tq, tk)
    assert not out.any()
    grads = tuple(np.full_like(a, np.nan) for a in (q, k, v))
    kernel.attention_backward(np.ones_like(out), q, k, v, probs, None, 0.5, out=grads)
    for got in grads:
        assert not np.isnan(got).any() and not got.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_reads_and_writes_slices_of_a_packed_projection(dtype):
    """q, k and v as three column slices of one (B, T, H * (2 dk + dv)) array (the fused
    self-attention projection) are read in place, and the gradients written into three slices
    of one packed array, with the results of C-contiguous copies."""
    r = _rng(11)
    b, t, h, dk, dv = 3, 9, 2, 4, 5
    qkv = r.standard_normal((b, t, h * (2 * dk + dv))).astype(dtype)

    def views(a):
        return (a[:, :, :h * dk].reshape(b, t, h, dk), a[:, :, h * dk:2 * h * dk].reshape(
            b, t, h, dk), a[:, :, 2 * h * dk:].reshape(b, t, h, dv))
    q, k, v = views(qkv)
    assert not q.flags.c_contiguous and np.shares_memory(q, qkv)
    copies = [np.ascontiguousarray(a) for a in (q, k, v)]
    mask = r.random((b, t, t)) > 0.3
    out, probs = kernel.attention(q, k, v, mask, None, 0.6, True)
    want, want_probs = kernel.attention(*copies, mask, None, 0.6, True)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, want, atol=tol)
    np.testing.assert_allclose(probs, want_probs, atol=tol)
    g = r.standard_normal(out.shape).astype(dtype)
    packed = np.full_like(qkv, np.nan)
    grads = kernel.attention_backward(g, q, k, v, probs, None, 0.6, out=views(packed))
    assert all(np.shares_memory(got, packed) for got in grads)
    assert not np.isnan(packed).any()   # every element written
    for got, want in zip(grads, kernel.attention_backward(g, *copies, probs, None, 0.6)):
        np.testing.assert_allclose(got, want, atol=tol)


def test_kernel_rejects_operands_it_cannot_read_in_place():
    """The raw binding (no copying wrapper) names the operand and its strides; a gradient
    output must be a writeable array of the operand's shape."""
    from fastdl import _core
    q = np.zeros((2, 5, 3, 4), np.float32)
    probs = np.zeros((6, 5, 5), np.float32)
    for bad in (q[..., ::2], q.transpose(0, 2, 1, 3), np.broadcast_to(q[:1], q.shape)):
        with pytest.raises(ValueError, match=r"q must have contiguous rows of each head.*"
                                             r"received shape .* with strides"):
            _core.attention_forward(bad, bad, bad)
    with pytest.raises(ValueError, match="dout must have contiguous rows"):
        _core.attention_backward(q[..., ::-1], q, q, q, probs)
    frozen = np.zeros_like(q)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="dq must be a writeable array"):
        _core.attention_backward(q, q, q, q, probs, None, 1.0, frozen)
    with pytest.raises(ValueError, match=r"dk must have shape \(2, 5, 3, 4\)"):
        _core.attention_backward(q, q, q, q, probs, None, 1.0, None, np.zeros((2, 5, 3, 3),
                                                                               np.float32))
    with pytest.raises(TypeError, match="dv must be None or a float32 array, received"):
        _core.attention_backward(q, q, q, q, probs, None, 1.0, None, None, [0.0])
    # the Python wrapper copies what the kernel cannot read in place
    out, _ = kernel.attention(q.transpose(0, 2, 1, 3).copy().transpose(0, 2, 1, 3), q, q)
    assert out.shape == (2, 5, 3, 4)


@pytest.mark.parametrize("scale", [1.0, 0.5, 3.0, -0.7, 0.0])
def test_kernel_softmax_is_accurate_over_a_wide_range_of_scores(scale):
    """float32 probabilities of scores spread over [-100, 0] (one-hot keys make the scores the
    query's entries) against a float64 softmax of the same scaled scores. Each exponent's
    argument x is rounded once (relative error up to |x| 2^-24 in exp(x)); the exponential and
    the normalisation add a few ulps: 16 ulps in all where the AVX2 softmax runs. Builds without
    AVX2 (x86-64-v2) run Eigen's exp, measured within 4.7x that: 8x is allowed there."""
    from fastdl import _core
    tk = 203   # 25 vectors of 8 and a scalar tail of 3 (AVX-512: 12 of 16, one of 8, the tail)
    q = (-_rng(14).random((1, 64, tk)) * 100).astype(np.float32)
    _, probs = kernel.attention(q, np.eye(tk, dtype=np.float32)[None],
                                np.zeros((1, tk, 1), np.float32), scale=scale)
    s = q[0].astype(np.float64) * float(np.float32(scale))
    x = s - s.max(-1, keepdims=True)
    want = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
    seen = want > 1e-30   # below, float32 flushes towards its smallest normal numbers
    bound = (np.abs(x) + 16) * 2.0 ** -24 * (1 if _core.build_info()["gemm"] != "eigen" else 8)
    assert (np.abs(probs[0] - want)[seen] <= bound[seen] * want[seen]).all()
    assert np.isfinite(probs).all() and (probs[0][~seen] < 1e-30).all()


def test_kernel_rejects_bad_arguments():
    q, k, v = np.zeros((2, 3, 4)), np.zeros((2, 5, 4)), np.zeros((2, 5, 6))
    with pytest.raises(ValueError, match=r"k must have shape \(2, -1, 4\).*received \(2, 5, 3\)"):
        kernel.attention(q, np.zeros((2, 5, 3)), v)
    with pytest.raises(ValueError, match="v must have shape"):
        kernel.attention(q, k, np.zeros((2, 4, 6)))
    with pytest.raises(ValueError, match="mask must have shape"):
        kernel.attention(q, k, v, np.ones((2, 3, 4), bool))
    with pytest.raises(ValueError, match="must divide the batch 2"):
        kernel.attention(q, k, v, np.ones((3, 3, 5), bool))
    with pytest.raises(TypeError, match="bool"):
        kernel.attention(q, k, v, np.ones((2, 3, 5)))
    with pytest.raises(ValueError, match="dout must have shape"):
        kernel.attention_backward(np.zeros((2, 3, 5)), q, k, v, np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="scale must be finite"):
        kernel.attention(q, k, v, scale=float("nan"))
    with pytest.raises(ValueError, match=r"q must be 3-D \(problems, Tq, dk\) or 4-D"):
        kernel.attention(np.zeros((2, 3)), k, v)
    q4 = np.zeros((2, 3, 4, 5))   # with a heads axis: k and v must have it too
    with pytest.raises(ValueError, match=r"k must have shape \(2, -1, 4, 5\).*received \(2, 5, 4\)"):
        kernel.attention(q4, k, v)
    with pytest.raises(ValueError, match=r"v must have shape \(2, 6, 4, -1\).*received \(2, 6, 3, 5\)"):
        kernel.attention(q4, np.zeros((2, 6, 4, 5)), np.zeros((2, 6, 3, 5)))
    with pytest.raises(ValueError, match=r"drop must have shape \(8, 3, 6\)"):
        kernel.attention(q4, np.zeros((2, 6, 4, 5)), np.zeros((2, 6, 4, 5)), None,
                         np.zeros((2, 3, 6)))


def test_dot_product_attention_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    r = _rng(2)
    q, k, v = _normals(r, (2, 4, 3, 5), (2, 6, 3, 5), (2, 6, 3, 2))
    mask = r.random((2, 3, 4, 6)) > 0.3
    mask[..., 0] = True
    tq, tk, tv = (torch.tensor(a).transpose(1, 2) for a in (q, k, v))
    for kwargs, tkw in (({}, {}), ({"mask": mask}, {"attn_mask": torch.tensor(mask)}),
                        ({"is_causal": True}, {"is_causal": True}),
                        ({"scale": 0.3, "bias": mask * 0.5},
                         {"scale": 0.3, "attn_mask": torch.tensor(mask * 0.5)})):
        want = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **tkw)
        got = ops.dot_product_attention(q, k, v, **kwargs).numpy()
        np.testing.assert_allclose(got, want.transpose(1, 2).numpy(), atol=1e-12)


def test_dot_product_attention_gradients():
    r = _rng(3)
    q, k, v = _normals(r, (2, 3, 2, 2), (2, 4, 2, 2), (2, 4, 2, 3))
    mask = r.random((2, 1, 3, 4)) > 0.3
    g = r.standard_normal((2, 3, 2, 3))

    def loss():
        y = ops.dot_product_attention(q, k, v, mask=mask, is_causal=True)
        return float((y.numpy() * g).sum())
    ts = [ops.convert_to_tensor(a) for a in (q, k, v)]
    with fastdl.GradientTape() as tape:
        for t in ts:
            tape.watch(t)
        y = ops.dot_product_attention(*ts, mask=mask, is_causal=True)
    grads = tape.gradient(y, ts, output_gradients=ops.convert_to_tensor(g))
    for got, x in zip(grads, (q, k, v)):
        np.testing.assert_allclose(got.numpy(), numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)


def _layer_gradcheck(layer, inputs, call):
    """tape gradients of sum(call(*inputs) * r) w.r.t. inputs and weights vs central differences."""
    out = np.asarray(call(*inputs))
    r = _rng(9).standard_normal(out.shape)
    ts = [ops.convert_to_tensor(a) for a in inputs]
    with fastdl.GradientTape() as tape:
        for t in ts:
            tape.watch(t)
        y = call(*ts)
        loss = ops.sum(y * r)
    weights = layer.trainable_weights
    grads = tape.gradient(loss, ts + layer_variables(layer))
    for got, x in zip(grads, list(inputs) + weights):
        want = numerical_gradient(lambda: float((np.asarray(call(*inputs)) * r).sum()), x)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7)


def test_multi_head_attention_gradients():
    r = _rng(4)
    q, v, key = _normals(r, (2, 3, 4), (2, 5, 3), (2, 5, 2))
    layer = layers.MultiHeadAttention(2, 3, value_dim=2, output_shape=3, dtype="float64")
    vmask = r.random((2, 5)) > 0.3
    vmask[:, 0] = True
    _layer_gradcheck(layer, [q, v, key], lambda a, b, c: layer(
        a, b, c, value_mask=vmask, use_causal_mask=True))


@pytest.mark.parametrize("use_bias", [True, False])
def test_self_attention_gradients(use_bias):
    """layer(x, x): the fused query/key/value projection and the packed attention primitive,
    against central differences (x, every weight), with a query mask and the causal mask."""
    r = _rng(12)
    x = r.standard_normal((2, 4, 5))
    layer = layers.MultiHeadAttention(2, 3, value_dim=2, use_bias=use_bias, dtype="float64")
    layer(x, x)
    layer.set_weights([w + 0.2 * r.standard_normal(w.shape) for w in layer.get_weights()])
    qmask = r.random((2, 4)) > 0.3
    _layer_gradcheck(layer, [x], lambda a: layer(a, a, query_mask=qmask, use_causal_mask=True))


def test_self_attention_equals_separate_projections():
    """The fused path (query, value and key one tensor) gives the outputs and gradients of the
    separate projections (the same values passed as distinct tensors)."""
    r = _rng(13)
    x = r.standard_normal((3, 6, 8)).astype(np.float32)
    layer = layers.MultiHeadAttention(4, 3, value_dim=5, output_shape=7)
    layer(x, x)
    results = []
    for inputs in (lambda t: (t, t), lambda t: (t, ops.convert_to_tensor(x.copy()),
                                                  ops.convert_to_tensor(x.copy()))):
        t = ops.convert_to_tensor(x)
        with fastdl.GradientTape() as tape:
            tape.watch(t)
            y = layer(*inputs(t), use_causal_mask=True)
            loss = ops.sum(y * y)
        results.append([y.numpy()] + [g.numpy() for g in tape.gradient(
            loss, layer_variables(layer))])
    for fused, separate in zip(*results):
        np.testing.assert_allclose(fused, separate, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", [
    (layers.Attention, {}), (layers.Attention, {"use_scale": True}),
    (layers.Attention, {"score_mode": "concat", "use_scale": True}),
    (layers.AdditiveAttention, {})])
def test_attention_layers_gradients(cls, kwargs):
    r = _rng(5)
    q, v, key = _normals(r, (2, 3, 4), (2, 5, 2), (2, 5, 4))
    layer = cls(dtype="float64", **kwargs)
    masks = [r.random((2, 3)) > 0.3, np.r_[[[1, 1, 0, 1, 0]] * 2].astype(bool)]
    layer([q, v, key])
    if layer.trainable_weights:   # away from the initial ones, so the check sees them
        layer.set_weights([w + 0.3 for w in layer.get_weights()])
    _layer_gradcheck(layer, [q, v, key], lambda a, b, c: layer([a, b, c], mask=masks,
                                                               use_causal_mask=True))


def _keras():
    pytest.importorskip("torch", reason="Keras runs on its torch backend here")
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="real Keras is the oracle of this test")


def _np(x):
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def test_multi_head_attention_matches_keras():
    keras = _keras()
    r = _rng(6)
    q = r.standard_normal((2, 4, 6)).astype(np.float32)
    v = r.standard_normal((2, 5, 3)).astype(np.float32)
    key = r.standard_normal((2, 5, 4)).astype(np.float32)
    vmask = r.random((2, 5)) > 0.3
    vmask[:, 0] = True
    amask = r.random((2, 4, 5)) > 0.2
    amask[..., 0] = True
    theirs = keras.layers.MultiHeadAttention(3, 2, value_dim=4, output_shape=(7,))
    ours = layers.MultiHeadAttention(3, 2, value_dim=4, output_shape=(7,))
    theirs(q, v, key)
    ours(q, v, key)
    assert [tuple(w.shape) for w in theirs.weights] == [w.shape for w in ours.weights]
    weights = [w + r.standard_normal(w.shape).astype(np.float32) * 0.1
               for w in map(_np, theirs.get_weights())]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    for kw in ({}, {"value_mask": vmask, "key_mask": vmask[:, ::-1] | vmask},
               {"attention_mask": amask}, {"use_causal_mask": True},
               {"attention_mask": amask, "use_causal_mask": True, "value_mask": vmask}):
        want, wscores = theirs(q, v, key, return_attention_scores=True, **kw)
        got, scores = ours(q, v, key, return_attention_scores=True, **kw)
        np.testing.assert_allclose(got, _np(want), atol=2e-5)
        np.testing.assert_allclose(scores, _np(wscores), atol=2e-6)
    config = ours.get_config()
    again = keras.layers.MultiHeadAttention.from_config(
        {k: v for k, v in config.items() if k != "dtype"})
    assert again.get_config()["output_shape"] == (7,) and again.value_dim == 4
    from fastdl.saving.keras_format import from_keras_entry   # how a .keras config loads
    entry = {"class_name": "MultiHeadAttention", "config": theirs.get_config()}
    back = layers.MultiHeadAttention.from_config(
        from_keras_entry(entry, layers.MultiHeadAttention, {}, "test")["config"])
    back(q, v, key)
    back.set_weights(weights)
    np.testing.assert_allclose(back(q, v, key), ours(q, v, key), atol=1e-6)


def test_multi_head_attention_matches_torch():
    """The layer equals PyTorch's multi-head attention with Keras's weights mapped to PyTorch's
    layout: in-projection rows (H*kd, D) = kernel (D, H, kd) reshaped and transposed, the
    output projection likewise; PyTorch masks True where a key is hidden."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    r = _rng(10)
    b, t, d, n, kd = 3, 7, 12, 3, 4    # PyTorch needs num_heads * head_dim == embed_dim
    x = r.standard_normal((b, t, d)).astype(np.float32)
    layer = layers.MultiHeadAttention(n, kd)
    layer(x, x)
    layer.set_weights([w + r.standard_normal(w.shape).astype(np.float32) * 0.3
                       for w in layer.get_weights()])
    wq, bq, wk, bk, wv, bv, wo, bo = (torch.tensor(w) for w in layer.get_weights())
    keep = r.random((b, t)) > 0.3
    keep[:, 0] = True   # PyTorch gives NaN for a query that sees no key
    causal = np.triu(np.ones((t, t), bool), 1)
    xt = torch.tensor(x).transpose(0, 1)   # PyTorch's (T, B, D)
    for kw, tkw in (({}, {}), ({"value_mask": keep}, {"key_padding_mask": torch.tensor(~keep)}),
                    ({"use_causal_mask": True}, {"attn_mask": torch.tensor(causal)}),
                    ({"use_causal_mask": True, "value_mask": keep},
                     {"attn_mask": torch.tensor(causal), "key_padding_mask": torch.tensor(~keep)})):
        want, _ = torch.nn.functional.multi_head_attention_forward(
            xt, xt, xt, d, n, torch.cat([w.reshape(d, -1).T for w in (wq, wk, wv)]),
            torch.cat([bias.reshape(-1) for bias in (bq, bk, bv)]), None, None, False, 0.0,
            wo.reshape(-1, d).T, bo, training=False, need_weights=False, **tkw)
        got = layer(x, x, **kw).numpy()
        # float32 on both sides: each output sums ~d + t products of O(1) terms, each rounded
        # at 2**-24 relative; 2e-5 is a few hundred ulps of such values, far below any layout
        # or masking mistake (which changes outputs by O(0.1)).
        np.testing.assert_allclose(got, want.transpose(0, 1).numpy(), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("cls,kwargs", [("Attention", {"use_scale": True}),
                                        ("Attention", {"score_mode": "concat"}),
                                        ("AdditiveAttention", {})])
def test_attention_layers_match_keras(cls, kwargs):
    keras = _keras()
    r = _rng(7)
    q = r.standard_normal((2, 4, 3)).astype(np.float32)
    v = r.standard_normal((2, 5, 2)).astype(np.float32)
    key = r.standard_normal((2, 5, 3)).astype(np.float32)
    masks = [r.random((2, 4)) > 0.3, np.r_[[[1, 0, 1, 1, 0]] * 2].astype(bool)]
    theirs, ours = getattr(keras.layers, cls)(**kwargs), getattr(layers, cls)(**kwargs)
    theirs([q, v, key])
    ours([q, v, key])
    weights = [w + 0.5 for w in map(_np, theirs.get_weights())]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    for kw in ({}, {"mask": masks}, {"mask": masks, "use_causal_mask": True}):
        want, wscores = theirs([q, v, key], return_attention_scores=True, **kw)
        got, scores = ours([q, v, key], return_attention_scores=True, **kw)
        np.testing.assert_allclose(got, _np(want), atol=2e-5)
        np.testing.assert_allclose(scores, _np(wscores), atol=2e-6)
    assert getattr(keras.layers, cls).from_config(ours.get_config()).get_config()[
        "use_scale"] == ours.use_scale


def test_multi_head_attention_trains_in_functional_model_with_masks():
    r = _rng(8)
    ids = r.integers(1, 20, (32, 6))
    ids[:, 4:] = 0
    y = (ids[:, 0] > 10).astype(np.float32)
    inp = fastdl.keras.Input((6,), dtype="int32")
    e = layers.Embedding(20, 8, mask_zero=True)(inp)
    a = layers.MultiHeadAttention(2, 4)(e, e)
    out = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling1D()(a))
    model = fastdl.keras.Model(inp, out)
    model.compile("adam", "binary_crossentropy")
    before = model.evaluate(ids, y, verbose=0)
    model.fit(ids, y, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(ids, y, verbose=0) < before
    # the padding (id 0) is invisible: changing the padded embeddings changes nothing
    mha = model.layers[2]
    x = layers.Embedding(20, 8)(ids).numpy()
    m = ids != 0
    base = mha(x, x, query_mask=m, value_mask=m)
    x2 = x.copy()
    x2[:, 4:] += 1.0
    np.testing.assert_allclose(mha(x2, x2, query_mask=m, value_mask=m)[:, :4], base[:, :4],
                               atol=1e-6)


def test_multi_head_attention_trains_with_gradient_tape_in_subclassed_model():
    fastdl.utils.set_random_seed(0)   # the initial weights: a fixed start for the 30 steps
    class Model(fastdl.keras.Model):
        def __init__(self):
            super().__init__()
            self.mha = layers.MultiHeadAttention(2, 4, dropout=0.1, seed=1)
            self.out = layers.Dense(1)

        def call(self, x, training=False):
            return self.out(ops.mean(self.mha(x, x, training=training), axis=1))

    r = _rng(10)
    x = r.standard_normal((16, 5, 4)).astype(np.float32)
    y = x[:, 0, :1] * 2
    model = Model()
    opt = fastdl.keras.optimizers.Adam(0.01)
    losses = []
    for _ in range(30):
        with fastdl.GradientTape() as tape:
            loss = ops.mean((model(x, training=True) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_weights)
        assert all(g is not None for g in grads)
        opt.apply_gradients(zip(grads, model.trainable_weights))
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_bad_input_is_a_clear_error():
    layer = layers.MultiHeadAttention(2, 3)
    q, v = np.zeros((2, 4, 5), np.float32), np.zeros((2, 6, 5), np.float32)
    layer(q, v)
    with pytest.raises(ValueError, match="built for last dimensions"):
        layer(q, np.zeros((2, 6, 4), np.float32))
    with pytest.raises(ValueError, match="value and key every dimension but the last"):
        layer(q, v, np.zeros((2, 7, 5), np.float32))
    with pytest.raises(ValueError, match=r"value_mask must have shape \(2, 6\)"):
        layer(q, v, value_mask=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(2, 4, 6\)"):
        layer(q, v, attention_mask=np.ones((2, 6, 4), bool))
    with pytest.raises(TypeError, match="needs call\\(query, value"):
        layer(q)
    with pytest.raises(ValueError, match="num_heads"):
        layers.MultiHeadAttention(0, 3)
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Attention()(q)
    with pytest.raises(ValueError, match=r"mask\[1\] \(value mask\) must have shape"):
        layers.Attention()([q, v], mask=[None, np.ones((2, 5), bool)])
    with pytest.raises(ValueError, match="score_mode"):
        layers.Attention(score_mode="cosine")
    with pytest.raises(ValueError, match="dot_product_attention expects"):
        ops.dot_product_attention(q, v, v)


def test_transformer_example_model_learns():
    """examples/transformer_imdb.py's model (small sizes): the label is whether token 5 occurs."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "transformer_imdb.py")
    spec = importlib.util.spec_from_file_location("transformer_imdb", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    r = _rng(11)
    x = r.integers(6, 30, (64, 8))
    y = (r.random(64) < 0.5).astype(np.float32)
    x[y == 1, r.integers(0, 8, int(y.sum()))] = 5
    model = example.build_model(8, 30, 8, 2, 8)
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0)[0] < 0.8 * before


def test_weights_follow_the_keras_file_layout(tmp_path):
    """A .keras file Keras writes: every attention weight sits where keras_groups says, with
    the layer's shape, and loaded from there the fastdl layers give Keras's outputs."""
    keras = _keras()
    h5py = pytest.importorskip("h5py", reason="reads the .keras file's weights")
    import io
    import zipfile
    from fastdl.saving.keras_format import _layer_groups as keras_groups
    x = _rng(12).standard_normal((2, 4, 6)).astype(np.float32)
    inp = keras.Input((4, 6))
    theirs = [keras.layers.MultiHeadAttention(2, 3), keras.layers.Attention(use_scale=True),
              keras.layers.AdditiveAttention()]
    outs = [theirs[0](inp, inp)] + [layer([inp, inp]) for layer in theirs[1:]]
    keras.Model(inp, outs).save(tmp_path / "m.keras")
    ours = [layers.MultiHeadAttention(2, 3), layers.Attention(use_scale=True),
            layers.AdditiveAttention()]
    ours[0](x, x)
    for layer in ours[1:]:
        layer([x, x])
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        h5 = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
        for mine, path in zip(ours, ("multi_head_attention", "attention", "additive_attention")):
            arrays = []
            for group, ws, name in keras_groups(mine, "layers/" + path):
                if name != mine.name:   # auto names carry the session's counters (dropout_1)
                    assert re.sub(r"_\d+$", "", h5[group].attrs["name"]) == name
                assert len(h5[group]) == len(ws)
                arrays += [h5[group][str(i)][()] for i in range(len(ws))]
            mine.set_weights(arrays)
    want = [_np(o) for o in (theirs[0](x, x), theirs[1]([x, x]), theirs[2]([x, x]))]
    got = [ours[0](x, x), ours[1]([x, x]), ours[2]([x, x])]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=2e-5)


def test_functional_graph_with_scores_flags_and_summary():
    """Two outputs (return_attention_scores), flag arguments in the node, summary's
    "Connected to" column, and predict."""
    i = fastdl.keras.Input((5, 8))
    o, s = layers.MultiHeadAttention(2, 4)(i, i, return_attention_scores=True,
                                          use_causal_mask=True)
    a = layers.Attention()([i, i])
    model = fastdl.keras.Model(i, [o, s, a])
    lines = []
    model.summary(print_fn=lines.append)
    assert any("multi_head_att" in line and "288" in line for line in lines)
    x = _rng(13).standard_normal((3, 5, 8)).astype(np.float32)
    out, scores, att = model.predict(x, verbose=0)
    assert out.shape == (3, 5, 8) and scores.shape == (3, 2, 5, 5) and att.shape == (3, 5, 8)
    assert not np.triu(scores, 1).any()
    np.testing.assert_allclose(att, layers.Attention()([x, x]), atol=1e-6)


def test_kernel_gives_the_same_bits_on_every_call():
    # The softmax's vectorised exp and sums depend on the rows' alignment: the probabilities
    # are the extension's 64-byte aligned output, so repeated calls agree bit for bit (they
    # did not when NumPy allocated them)
    rng = np.random.default_rng(5)
    q = rng.standard_normal((4, 9, 8)).astype(np.float32)
    k, v = (rng.standard_normal((4, 37, 8)).astype(np.float32) for _ in range(2))
    first = kernel.attention(q, k, v, None, None, 0.3, False)
    grads = kernel.attention_backward(first[0] * 0 + 1, q, k, v, first[1], None, 0.3)
    heap = []
    for size in range(1, 40, 3):
        heap.append(np.empty(size * 97, np.uint8))    # other allocations between the calls
        out, probs = kernel.attention(q, k, v, None, None, 0.3, False)
        assert np.array_equal(out, first[0]) and np.array_equal(probs, first[1])
        again = kernel.attention_backward(out * 0 + 1, q, k, v, probs, None, 0.3)
        assert all(np.array_equal(a, b) for a, b in zip(again, grads))
