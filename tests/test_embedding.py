"""Embedding: gather / scatter-add kernels, id validation (never an out-of-bounds read),
accepted id dtypes, the tutorial's (100, 10, 1) mistake, masks, gradients, layer API."""
import warnings

import numpy as np
import pytest

import fastdl
from fastdl import _core, layers
from fastdl.ops.core import rnn as rnn_ops
from fastdl.utils import set_random_seed
from gradcheck import numerical_gradient

import reference_rnn as ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("id_dtype", [np.int32, np.int64, np.uint8, np.int16, np.uint64])
def test_lookup_matches_reference(dtype, id_dtype):
    rng = np.random.default_rng(0)
    table = rng.standard_normal((50, 7)).astype(dtype)
    ids = rng.integers(0, 50, (4, 9)).astype(id_dtype)
    y = rnn_ops.embedding_lookup(table, ids)
    assert y.dtype == dtype and y.shape == (4, 9, 7)
    np.testing.assert_array_equal(y, ref.embedding(table, ids))


@pytest.mark.parametrize("shape", [(0,), (5,), (3, 4), (2, 3, 4)])
def test_lookup_any_id_shape_at_the_ops_level(shape):
    table = np.arange(30, dtype=np.float64).reshape(10, 3)
    ids = np.random.default_rng(1).integers(0, 10, shape)
    np.testing.assert_array_equal(rnn_ops.embedding_lookup(table, ids), table[ids])


@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
def test_backward_scatter_adds_duplicates(id_dtype):
    rng = np.random.default_rng(2)
    ids = np.array([[1, 3, 1], [0, 1, 9]], dtype=id_dtype)
    dy = rng.standard_normal((2, 3, 4))
    expected = np.zeros((10, 4))
    np.add.at(expected, ids.reshape(-1), dy.reshape(-1, 4))
    np.testing.assert_allclose(rnn_ops.embedding_backward(dy, ids, 10), expected, rtol=1e-15)


def test_backward_is_bitwise_independent_of_threads():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 300, (64, 200))
    dy = rng.standard_normal((64, 200, 32)).astype(np.float32)
    before = fastdl.get_num_threads()
    try:
        outs = []
        for nt in (1, 2, 3):
            fastdl.set_num_threads(nt)
            outs.append((rnn_ops.embedding_backward(dy, ids, 300),
                         rnn_ops.embedding_lookup(dy[:10].reshape(-1, 32)[:300], ids)))
    finally:
        fastdl.set_num_threads(before)
    for g, y in outs[1:]:
        np.testing.assert_array_equal(g, outs[0][0])
        np.testing.assert_array_equal(y, outs[0][1])


@pytest.mark.parametrize("bad,pos", [(-1, (1, 2)), (10, (0, 0)), (2**31 - 1, (1, 0)),
                                     (-2**63, (0, 3))])
def test_out_of_range_ids_are_refused_with_value_and_position(bad, pos):
    table = np.zeros((10, 3), np.float32)
    ids = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.int64)
    ids[pos] = bad
    pattern = rf"index {bad} at position \({pos[0]}, {pos[1]}\) is out of range.*\[0, 10\)"
    with pytest.raises(ValueError, match=pattern):
        _core.embedding_forward(table, ids)
    with pytest.raises(ValueError, match=pattern):
        _core.embedding_backward(np.zeros((2, 4, 3), np.float32), ids, 10)
    layer = layers.Embedding(10, 3)
    with pytest.raises(ValueError, match=r"Layer 'embedding.*input_dim=10.*" + pattern):
        layer(ids)


def test_first_bad_id_is_reported():
    ids = np.array([3, 11, -4, 12], dtype=np.int32)
    with pytest.raises(ValueError, match=r"index 11 at position \(1,\)"):
        _core.embedding_forward(np.zeros((10, 2)), ids)


def test_large_unsigned_ids_are_refused():
    ids = np.array([[1, 2**64 - 1]], dtype=np.uint64)
    with pytest.raises(ValueError, match="out of range"):
        rnn_ops.embedding_lookup(np.zeros((5, 2)), ids)


def test_float_ids_integral_accepted_fractional_refused():
    table = np.arange(20, dtype=np.float32).reshape(10, 2)
    layer = layers.Embedding(10, 2)
    layer(np.zeros((1, 1), np.int64))
    layer.set_weights([table])
    np.testing.assert_array_equal(layer(np.array([[1.0, 9.0, 0.0]])), table[[[1, 9, 0]]])
    for bad in (0.5, np.nan, np.inf, -0.25, 1e30):
        x = np.array([[1.0, bad]])
        with pytest.raises(ValueError, match=r"must be integers.*\(0, 1\)"):
            layer(x)
    with pytest.raises(TypeError, match="integer array"):
        layer(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="integer array"):
        layer(np.array([[1 + 2j]]))


def test_tutorial_3d_float_input_error_says_what_to_change():
    x = np.random.default_rng(4).random((100, 10, 1))
    layer = layers.Embedding(input_dim=1000, output_dim=64)
    with pytest.raises(ValueError) as info:
        layer(x)
    msg = str(info.value)
    assert "embedding" in msg and "Embedding" in msg
    assert "(batch, sequence_length)" in msg
    assert "(100, 10, 1)" in msg
    assert "reshape x to (100, 10)" in msg and "x[..., 0]" in msg
    with pytest.raises(ValueError, match=r"real-valued features.*input_shape=\(10, 3\)"):
        layers.Embedding(10, 4)(np.zeros((5, 10, 3)))
    # 1-D ids are Keras's position embeddings (pos_emb(ops.arange(n))): (n,) -> (n, output_dim)
    assert layers.Embedding(10, 4)(np.zeros(7, np.int64)).shape == (7, 4)


def test_mask_zero():
    layer = layers.Embedding(10, 3, mask_zero=True)
    ids = np.array([[0, 0, 4, 2], [5, 0, 1, 0]])
    y = layer(ids)
    np.testing.assert_array_equal(layer.compute_mask(ids), ids != 0)
    assert y.shape == (2, 4, 3)
    assert layers.Embedding(10, 3).compute_mask(ids) is None


def test_gradient_through_embedding_and_lstm():
    set_random_seed(5)
    emb = layers.Embedding(12, 3, mask_zero=True, dtype="float64")
    rnn = layers.LSTM(2, return_sequences=True, dtype="float64", bias_initializer="random_normal")
    ids = np.array([[0, 3, 3, 11, 0], [4, 0, 2, 1, 7]])
    r = np.random.default_rng(6).standard_normal((2, 5, 2))

    def loss():
        return float(np.sum(rnn(emb(ids), mask=emb.compute_mask(ids), training=True) * r))

    loss()
    dx = rnn.backward(r)
    assert emb.backward(dx) is None
    np.testing.assert_allclose(emb.grads[0], numerical_gradient(loss, emb.embeddings),
                               rtol=1e-4, atol=1e-6)
    assert not emb.grads[0][[5, 6, 8, 9, 10]].any()  # unused rows get no gradient


def test_layer_api():
    layer = layers.Embedding(1000, 64)
    y = layer(np.zeros((2, 5), np.int32))
    assert y.shape == (2, 5, 64) and y.dtype == np.float32
    assert layer.weight_names == ["embeddings"]
    assert layer.count_params() == 64000
    assert np.abs(layer.embeddings).max() <= 0.05  # Keras's "uniform": U(-0.05, 0.05)
    assert layer.compute_output_shape((None, 5)) == (None, 5, 64)
    clone = layers.Embedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.warns(UserWarning, match="input_length.*deprecated"):
        layers.Embedding(10, 2, input_length=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers.Embedding(10, 2)
    w = np.ones((10, 2), np.float32)
    np.testing.assert_array_equal(layers.Embedding(10, 2, weights=[w]).embeddings, w)


@pytest.mark.parametrize("kwargs,exc,pattern", [
    ({"input_dim": 0, "output_dim": 3}, ValueError, "input_dim"),
    ({"input_dim": 5, "output_dim": -1}, ValueError, "output_dim"),
    ({"input_dim": 2.5, "output_dim": 3}, TypeError, "input_dim"),
    ({"input_dim": True, "output_dim": 3}, TypeError, "input_dim"),
    ({"input_dim": 5, "output_dim": 3, "mask_zero": 1}, TypeError, "mask_zero"),
    ({"input_dim": 5, "output_dim": 3, "lora_rank": 2}, ValueError, "not supported"),
])
def test_hyperparameter_validation(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        layers.Embedding(**kwargs)


def test_empty_batch_and_frozen():
    layer = layers.Embedding(10, 4)
    y = layer(np.zeros((0, 6), np.int64), training=True)
    assert y.shape == (0, 6, 4)
    layer.backward(np.zeros_like(y))
    assert layer.grads[0].shape == (10, 4) and not layer.grads[0].any()
    layer.trainable = False
    layer(np.ones((2, 6), np.int64), training=True)
    layer.backward(np.ones((2, 6, 4), np.float32))
    assert layer.grads == []


def test_kernel_argument_checks():
    with pytest.raises(ValueError, match=r"embeddings must be 2-D, received shape \(3,\)"):
        _core.embedding_forward(np.zeros(3), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"dy must have shape ids.shape \+ \(output_dim,\)"):
        _core.embedding_backward(np.zeros((2, 3)), np.zeros((2, 2), np.int64), 5)
    with pytest.raises(ValueError, match="input_dim must be a positive integer"):
        _core.embedding_backward(np.zeros((2, 3)), np.zeros(2, np.int64), 0)
    with pytest.raises(TypeError):  # float ids are never cast silently by the kernel
        _core.embedding_forward(np.zeros((3, 2)), np.zeros(2))
