"""Conv1D's backward for a mostly-zero dy (after GlobalMaxPooling1D): the sparse C++ path
(``_core.conv1d_sparse_backward``) gives the dense kernels' gradients, and a Conv1D ->
GlobalMaxPooling1D model's gradients are the central differences of its loss."""
import numpy as np
import pytest

from fastdl import _core, layers
from fastdl.models import Sequential
from gradcheck import numerical_gradient


def sparse_dy(rng, shape, density=1 / 64):
    dy = rng.standard_normal(shape)
    dy[rng.random(shape) >= density] = 0.0
    return dy


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3),
    dict(kernel_size=3, activation="relu"),
    dict(kernel_size=2, strides=2, activation="tanh"),
    dict(kernel_size=3, dilation_rate=2, padding="causal", activation="relu"),
    dict(kernel_size=4, padding="causal", use_bias=False),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparse_path_equals_the_dense_kernels(kwargs, dtype):
    rng = np.random.default_rng(0)
    layer = layers.Conv1D(6, dtype=dtype, **kwargs)
    x = rng.standard_normal((3, 40, 5)).astype(dtype)
    y = layer(x)
    dy = sparse_dy(rng, y.shape).astype(dtype)
    assert layer._sparse_entries(dy) is not None
    dx = layer.backward(dy)
    grads = [g.copy() for g in layer.grads]
    layer._SPARSE_DENSITY = -1.0     # the dense kernels, on the same cache
    assert layer._sparse_entries(dy) is None
    dense_dx = layer.backward(dy)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dense_dx, **tol)
    assert len(grads) == len(layer.grads) == (2 if layer.use_bias else 1)
    for g, dense in zip(grads, layer.grads):
        np.testing.assert_allclose(g, dense, **tol)


def test_conv1d_global_max_pooling_gradients_central_differences(monkeypatch):
    rng = np.random.default_rng(1)
    model = Sequential([layers.Input((70, 4)),
                        layers.Conv1D(5, 3, activation="relu", dtype="float64"),
                        layers.GlobalMaxPooling1D(dtype="float64"),
                        layers.Dense(2, dtype="float64")])
    model.compile("sgd", "mse")
    conv = model.layers[0]
    x, y = rng.standard_normal((4, 70, 4)), rng.standard_normal((4, 2))
    calls = []
    sparse = type(conv)._sparse_backward
    monkeypatch.setattr(type(conv), "_sparse_backward",
                        lambda self, *a: calls.append(1) or sparse(self, *a))

    def loss():
        return model.loss(y, model._forward(x, True))

    y_pred = model._forward(x, True)
    _, dy = model.loss.forward_backward(y, y_pred)
    model._backward(dy)
    assert calls == [1]      # 68 steps: one nonzero in 68 per sample and filter
    for w, g in zip(conv.trainable_weights, conv.grads):
        np.testing.assert_allclose(g, numerical_gradient(loss, w), rtol=1e-6, atol=1e-9)


def test_dense_dy_keeps_the_dense_path():
    layer = layers.Conv1D(4, 3)
    y = layer(np.ones((2, 10, 3), np.float32))
    assert layer._sparse_entries(np.ones_like(y)) is None
    same = layers.Conv1D(4, 3, padding="same")
    y = same(np.ones((2, 10, 3), np.float32))
    assert same._sparse_entries(np.zeros_like(y)) is None   # 'same' padding: the dense kernels


def test_entries_outside_x_are_refused():
    x = np.zeros((2, 10, 3), np.float32)
    kernel_t = np.zeros((4, 3, 3), np.float32)
    idx = np.array([0], np.int64)
    with pytest.raises(ValueError, match="outside"):
        _core.conv1d_sparse_backward(x, kernel_t, idx, np.array([8], np.int64), idx,
                                     np.ones(1, np.float32), 1, 1, True)
    with pytest.raises(ValueError, match="outside"):
        _core.conv1d_sparse_backward(x, kernel_t, np.array([2], np.int64), idx, idx,
                                     np.ones(1, np.float32), 1, 1, True)
