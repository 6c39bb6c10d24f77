"""Every differentiable op of fastdl.ops: tape gradients against float64 central differences.

One table, one parametrised test. A coverage test fails when an op is added to fastdl.ops
without a row here (or a place in NOT_DIFFERENTIABLE).
"""
import numpy as np
import pytest

from fastdl import ops
from fastdl.ops import GradientTape, Tensor
from fastdl.ops import random as fr
from gradcheck import numerical_gradient


def pos(*shape):
    """Positive inputs (log, sqrt, division, power bases)."""
    return ("pos", shape)


def away(*shape):
    """Inputs at least 0.1 away from 0 and from each other (kinks and ties)."""
    return ("away", shape)


def probs(*shape):
    return ("probs", shape)


ONEHOT = np.eye(4)[[0, 3, 1]]
IDS = np.array([2, 0, 3])

# name -> (function of the inputs, input specs). A spec is a shape (standard normal), or one
# of the helpers above. Constant (non-differentiated) arguments are bound in the lambda.
TABLE = {
    "add": (ops.add, [(2, 3), (3,)]),
    "subtract": (ops.subtract, [(2, 1), (1, 3)]),
    "multiply": (ops.multiply, [(2, 3), (2, 3)]),
    "divide": (ops.divide, [(2, 3), pos(3)]),
    "true_divide": (ops.true_divide, [(2, 3), pos(2, 1)]),
    "power": (ops.power, [pos(2, 3), (2, 3)]),
    "maximum": (ops.maximum, [away(2, 3), away(2, 3)]),
    "minimum": (ops.minimum, [away(2, 3), away(3)]),
    "mod": (lambda a: ops.mod(a, 0.7), [away(5)]),
    "negative": (ops.negative, [(4,)]),
    "square": (ops.square, [(4,)]),
    "sqrt": (ops.sqrt, [pos(4)]),
    "rsqrt": (ops.rsqrt, [pos(4)]),
    "reciprocal": (ops.reciprocal, [pos(4)]),
    "abs": (ops.abs, [away(4)]),
    "absolute": (ops.absolute, [away(4)]),
    "exp": (ops.exp, [(4,)]),
    "expm1": (ops.expm1, [(4,)]),
    "log": (ops.log, [pos(4)]),
    "log1p": (ops.log1p, [pos(4)]),
    "log2": (ops.log2, [pos(4)]),
    "log10": (ops.log10, [pos(4)]),
    "sin": (ops.sin, [(4,)]),
    "cos": (ops.cos, [(4,)]),
    "tan": (ops.tan, [away(4)]),
    "tanh": (ops.tanh, [(4,)]),
    "clip": (lambda a: ops.clip(a, -0.5, 0.5), [away(6)]),
    "where": (lambda a, b: ops.where(np.array([True, False, True]), a, b), [(2, 3), (3,)]),
    "cast": (lambda a: ops.cast(a, "float64") * 2, [(3,)]),
    "matmul": (ops.matmul, [(3, 4), (4, 2)]),
    "matmul_batched": (ops.matmul, [(2, 3, 4), (4, 5)]),
    "matmul_vector": (ops.matmul, [(4,), (2, 4, 3)]),
    "dot": (ops.dot, [(2, 3, 4), (5, 4, 2)]),
    "tensordot": (lambda a, b: ops.tensordot(a, b, axes=([0, 2], [1, 0])), [(2, 3, 4), (4, 2, 5)]),
    "einsum": (lambda a, b: ops.einsum("ij,jk->ik", a, b), [(2, 3), (3, 4)]),
    "einsum_reduce": (lambda a, b: ops.einsum("ijk,j->i", a, b), [(2, 3, 4), (3,)]),
    "sum": (lambda a: ops.sum(a, axis=1), [(2, 3, 2)]),
    "mean": (lambda a: ops.mean(a, axis=(0, 2), keepdims=True), [(2, 3, 2)]),
    "max": (lambda a: ops.max(a, axis=-1), [away(3, 4)]),
    "min": (lambda a: ops.min(a), [away(3, 4)]),
    "amax": (lambda a: ops.amax(a, axis=0), [away(3, 4)]),
    "amin": (lambda a: ops.amin(a, axis=0, keepdims=True), [away(3, 4)]),
    "prod": (lambda a: ops.prod(a, axis=1), [away(2, 3)]),
    "std": (lambda a: ops.std(a, axis=0), [(4, 3)]),
    "var": (lambda a: ops.var(a), [(4, 3)]),
    "logsumexp": (lambda a: ops.logsumexp(a, axis=1), [(3, 4)]),
    "norm": (lambda a: ops.norm(a, axis=-1), [(3, 4)]),
    "norm_l1": (lambda a: ops.norm(a, ord=1, axis=0), [away(3, 4)]),
    "cumsum": (lambda a: ops.cumsum(a, axis=1), [(2, 4)]),
    "cumprod": (lambda a: ops.cumprod(a), [away(2, 3)]),
    "reshape": (lambda a: ops.reshape(a, (3, -1)), [(2, 3, 2)]),
    "transpose": (lambda a: ops.transpose(a, (2, 0, 1)), [(2, 3, 4)]),
    "expand_dims": (lambda a: ops.expand_dims(a, 1) * np.arange(1.0, 4.0)[:, None], [(2, 3)]),
    "squeeze": (lambda a: ops.squeeze(a, 1), [(2, 1, 3)]),
    "swapaxes": (lambda a: ops.swapaxes(a, 0, 2), [(2, 3, 4)]),
    "moveaxis": (lambda a: ops.moveaxis(a, 0, -1), [(2, 3, 4)]),
    "flip": (lambda a: ops.flip(a, 1), [(2, 3)]),
    "broadcast_to": (lambda a: ops.broadcast_to(a, (4, 2, 3)), [(2, 1)]),
    "ravel": (ops.ravel, [(2, 3)]),
    "flatten": (ops.flatten, [(2, 3)]),
    "tile": (lambda a: ops.tile(a, (2, 1, 3)), [(2, 3)]),
    "repeat": (lambda a: ops.repeat(a, [1, 3, 2], axis=1), [(2, 3)]),
    "repeat_flat": (lambda a: ops.repeat(a, 2), [(2, 3)]),
    "pad": (lambda a: ops.pad(a, ((1, 0), (2, 1)), constant_values=0.5), [(2, 3)]),
    "concatenate": (lambda a, b: ops.concatenate([a, b, a], axis=1), [(2, 3), (2, 1)]),
    "stack": (lambda a, b: ops.stack([a, b], axis=1), [(2, 3), (2, 3)]),
    "unstack": (lambda a: ops.unstack(a, axis=1)[2], [(2, 3)]),
    "split": (lambda a: ops.split(a, [1, 3], axis=1)[1] * 2, [(2, 4)]),
    "take": (lambda a: ops.take(a, np.array([2, 0, 2]), axis=1), [(2, 3)]),
    "take_flat": (lambda a: ops.take(a, np.array([[5, 0], [1, 1]])), [(2, 3)]),
    "take_along_axis": (lambda a: ops.take_along_axis(a, np.array([[0, 2], [1, 1]]), axis=1),
                        [(2, 3)]),
    "getitem": (lambda a: a[1:, ::2] * 3 + a[0, np.array([1, 1])], [(3, 4)]),
    "sort": (lambda a: ops.sort(a, axis=0), [away(3, 2)]),
    "top_k": (lambda a: ops.top_k(a, 2)[0], [away(2, 4)]),
    "diag": (lambda a: ops.diag(a, 1), [(3, 4)]),
    "diag_1d": (lambda a: ops.diag(a), [(3,)]),
    "scatter_nd_add": (lambda a, u: ops.scatter_nd_add(a, (np.array([0, 2, 0]),), u),
                       [(3, 2), (3, 2)]),
    "trace": (ops.trace, [(3, 3)]),
    "convert_to_tensor": (lambda a: ops.convert_to_tensor(a) * 2, [(3,)]),
    # nn
    "relu": (ops.relu, [away(2, 3)]),
    "relu6": (lambda a: ops.relu6(a * 4), [away(8)]),
    "sigmoid": (ops.sigmoid, [(6,)]),
    "softmax": (lambda a: ops.softmax(a, axis=0), [(3, 4)]),
    "log_softmax": (ops.log_softmax, [(3, 4)]),
    "gelu": (ops.gelu, [(5,)]),
    "gelu_exact": (lambda a: ops.gelu(a, approximate=False), [(5,)]),
    "silu": (ops.silu, [(5,)]),
    "swish": (ops.swish, [(5,)]),
    "elu": (lambda a: ops.elu(a, 0.7), [away(6)]),
    "selu": (ops.selu, [away(6)]),
    "softplus": (ops.softplus, [(6,)]),
    "log_sigmoid": (ops.log_sigmoid, [(6,)]),
    "leaky_relu": (ops.leaky_relu, [away(6)]),
    "hard_sigmoid": (ops.hard_sigmoid, [away(6)]),
    "softsign": (ops.softsign, [away(6)]),
    # kinks at +-0.3 and +-1 stay off the "away" grid ((k + 0.5) * 0.3 +- 0.05, scaled by 1.1)
    "celu": (lambda a: ops.celu(a, 0.6), [away(6)]),
    "glu": (lambda a: ops.glu(a, axis=0), [(4, 3)]),
    "hard_shrink": (lambda a: ops.hard_shrink(a, 0.3), [away(8)]),
    "soft_shrink": (lambda a: ops.soft_shrink(a, 0.3), [away(8)]),
    "hard_tanh": (lambda a: ops.hard_tanh(a * 1.1), [away(10)]),
    "sparse_plus": (lambda a: ops.sparse_plus(a * 1.1), [away(10)]),
    "sparse_sigmoid": (lambda a: ops.sparse_sigmoid(a * 1.1), [away(10)]),
    "squareplus": (lambda a: ops.squareplus(a, 2.0), [(6,)]),
    "tanh_shrink": (ops.tanh_shrink, [(6,)]),
    "threshold": (lambda a: ops.threshold(a, 0.3, -2.0), [away(8)]),
    "sparsemax": (lambda a: ops.sparsemax(a * 0.3), [away(3, 4)]),
    "conv_2d": (lambda x, k: ops.conv(x, k, strides=(1, 2), padding="same"), [(2, 5, 6, 3), (3, 2, 3, 4)]),
    "conv_2d_dilated": (lambda x, k: ops.conv(x, k, dilation_rate=2), [(1, 6, 6, 2), (2, 2, 2, 3)]),
    "conv_1d": (lambda x, k: ops.conv(x, k, padding="same"), [(2, 7, 3), (3, 3, 2)]),
    "dot_product_attention": (lambda q, k, v: ops.dot_product_attention(q, k, v, is_causal=True),
                              [(2, 3, 2, 2), (2, 4, 2, 2), (2, 4, 2, 3)]),
    "dot_product_attention_bias": (lambda q, k, v, b: ops.dot_product_attention(q, k, v, bias=b),
                                   [(1, 3, 2, 2), (1, 4, 2, 2), (1, 4, 2, 3), (2, 3, 4)]),
    "conv_channels_first": (lambda x, k: ops.conv(x, k, data_format="channels_first"),
                            [(1, 2, 5, 5), (3, 3, 2, 2)]),
    "max_pool": (lambda x: ops.max_pool(x, 2), [away(2, 4, 6, 3)]),
    "max_pool_1d": (lambda x: ops.max_pool(x, 3, strides=2, padding="same"), [away(2, 7, 2)]),
    "average_pool": (lambda x: ops.average_pool(x, (2, 3), strides=1, padding="same"), [(1, 4, 5, 2)]),
    "binary_crossentropy": (lambda t, p: ops.binary_crossentropy(t, p), [probs(2, 3), probs(2, 3)]),
    "binary_crossentropy_logits": (lambda t, p: ops.binary_crossentropy(t, p, from_logits=True),
                                   [probs(2, 3), away(2, 3)]),
    "categorical_crossentropy": (lambda p: ops.categorical_crossentropy(ONEHOT, p), [probs(3, 4)]),
    "categorical_crossentropy_logits": (
        lambda t, p: ops.categorical_crossentropy(t, p, from_logits=True), [probs(3, 4), (3, 4)]),
    "sparse_categorical_crossentropy": (lambda p: ops.sparse_categorical_crossentropy(IDS, p),
                                        [probs(3, 4)]),
    "sparse_categorical_crossentropy_logits": (
        lambda p: ops.sparse_categorical_crossentropy(IDS, p, from_logits=True), [(3, 4)]),
    "moments": (lambda a: ops.moments(a, axes=[0])[0] + 2 * ops.moments(a, axes=[0])[1],
                [(4, 3)]),
    "batch_normalization": (
        lambda x, m, v, o, s: ops.batch_normalization(x, m, v, axis=1, offset=o, scale=s),
        [(4, 3, 2), (3,), pos(3), (3,), (3,)]),
    "dropout": (lambda a: fr.dropout(a, 0.5, seed=3), [(4, 5)]),
}

# Ops that have no gradient (integer/bool results, constructors, shape inspection).
NOT_DIFFERENTIABLE = {
    "all", "any", "arange", "argmax", "argmin", "argsort", "bitwise_and", "bitwise_invert",
    "bitwise_or", "bitwise_xor", "ceil", "convert_to_numpy", "count_nonzero", "equal", "eye",
    "floor", "floor_divide", "full", "full_like", "greater", "greater_equal", "identity",
    "isfinite", "isinf", "isnan", "less", "less_equal", "linspace", "logical_and",
    "logical_not", "logical_or", "logical_xor", "ndim", "not_equal", "one_hot", "ones",
    "ones_like", "round", "shape", "sign", "size", "stop_gradient", "tri", "zeros",
    "zeros_like",
}


def make_input(spec, rng):
    if isinstance(spec, tuple) and spec and isinstance(spec[0], str):
        kind, shape = spec
        n = int(np.prod(shape))
        if kind == "pos":
            return rng.uniform(0.5, 2.0, shape)
        if kind == "probs":
            return rng.uniform(0.1, 0.9, shape)
        # distinct values spaced 0.1 apart, none near 0, in random order
        vals = (np.arange(n) - n // 2 + 0.5) * 0.3
        return rng.permutation(vals).reshape(shape) + rng.uniform(-0.05, 0.05, shape)
    return rng.standard_normal(spec)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_op_gradient_matches_central_differences(name):
    fn, specs = TABLE[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    xs = [make_input(s, rng) for s in specs]
    ts = [Tensor(x) for x in xs]
    with GradientTape() as tape:
        tape.watch(ts)
        y = fn(*ts)
    assert isinstance(y, Tensor) and y.dtype == "float64", name
    r = rng.standard_normal(y.shape)
    with GradientTape() as tape:
        tape.watch(ts)
        loss = ops.sum(fn(*ts) * r)
    grads = tape.gradient(loss, ts)
    for i, x in enumerate(xs):
        num = numerical_gradient(lambda: float(np.sum(np.asarray(fn(*xs)) * r)), x)
        assert grads[i] is not None, f"{name}: no gradient for input {i}"
        np.testing.assert_allclose(grads[i].numpy(), num, rtol=1e-5, atol=1e-7,
                                   err_msg=f"{name}: input {i}")


def test_every_op_has_a_gradient_row_or_is_not_differentiable():
    rows = [n for n in TABLE if n not in ops.__all__]  # variants such as "conv_1d"
    covered = set(TABLE) | {op for op in ops.__all__ for n in rows if n.startswith(op + "_")}
    missing = [op for op in ops.__all__ if op not in covered and op not in NOT_DIFFERENTIABLE
               and not op[0].isupper()]
    assert missing == []
