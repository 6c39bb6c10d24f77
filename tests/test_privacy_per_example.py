"""Per-example gradients and norms (fastdl.privacy.per_example) against a loop of ordinary
batch-of-one gradients, in float64, for every supported layer kind."""
import numpy as np
import pytest

from fastdl import layers
from fastdl.models import Sequential
from fastdl.privacy.per_example import (PrivacyError, per_example_gradients, per_example_norms,
                                        validate)
from fastdl.utils import set_random_seed

F64 = {"dtype": "float64"}


def batch_of_one_gradients(model, x, y):
    """The model's own training gradients (forward, loss, backward) on each example alone."""
    trainable, _ = model._trainable_state()
    out = []
    for i in range(len(x)):
        y_pred, state = model._train_forward(x[i:i + 1])
        _, dy = model.loss.forward_backward(y[i:i + 1], y_pred)
        out.append(model._train_backward(state, dy, trainable))
    return [np.stack(g) for g in zip(*out)]


def check(model, x, y, loss="mse"):
    model.compile(optimizer="sgd", loss=loss)
    expected = batch_of_one_gradients(model, x, y)
    got = per_example_gradients(model, x, y)
    assert [g.shape for g in got] == [g.shape for g in expected] == \
        [(len(x),) + w.shape for w in model.trainable_weights]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)
    norms = np.sqrt(sum((e.reshape(len(x), -1) ** 2).sum(axis=1) for e in expected))
    np.testing.assert_allclose(per_example_norms(model, x, y), norms, rtol=1e-10, atol=1e-12)


rng = np.random.default_rng(0)


def normal(*shape):
    return rng.normal(size=shape)


def test_dense_on_2d_input():
    model = Sequential([layers.Input((5,)), layers.Dense(4, activation="tanh", **F64),
                        layers.Dense(3, **F64)])
    check(model, normal(6, 5), normal(6, 3))


@pytest.mark.parametrize("steps, features, units", [(2, 6, 8), (6, 2, 2)])   # Gram / direct
def test_dense_on_sequences(steps, features, units):
    model = Sequential([layers.Input((steps, features)),
                        layers.Dense(units, activation="relu", **F64),
                        layers.Dense(2, use_bias=False, **F64), layers.Flatten(**F64),
                        layers.Dense(1, **F64)])
    check(model, normal(5, steps, features), normal(5, 1))


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": (3, 2), "strides": (2, 1), "padding": "same"},   # odd padding on the width
    {"kernel_size": (2, 3), "strides": 1, "padding": "same"},        # and on the height
    {"kernel_size": (3, 2), "strides": 1, "padding": "valid", "dilation_rate": 2},
    {"kernel_size": (3, 2), "strides": 2, "padding": "same", "groups": 2},
    {"kernel_size": (3, 2), "strides": (1, 2), "padding": "same", "activation": "relu"},
])
def test_conv2d(kwargs):
    model = Sequential([layers.Input((7, 6, 2)), layers.Conv2D(4, **kwargs, **F64),
                        layers.Flatten(**F64), layers.Dense(2, **F64)])
    check(model, normal(4, 7, 6, 2), normal(4, 2))


def test_conv2d_fused_with_max_pooling_and_softmax_loss():
    model = Sequential([layers.Input((8, 8, 1)),
                        layers.Conv2D(3, 3, activation="relu", padding="same", **F64),
                        layers.MaxPooling2D(2, **F64), layers.Conv2D(2, 3, **F64),
                        layers.Flatten(**F64), layers.Dense(3, activation="softmax", **F64)])
    y = np.eye(3)[[0, 1, 2, 1, 0]]
    check(model, normal(5, 8, 8, 1), y, loss="categorical_crossentropy")


def test_conv2d_norms_through_gram_matrices():
    # 2x2 output positions, 2*2*8 patch entries, 16 filters: the Gram path is the cheaper one
    model = Sequential([layers.Input((3, 3, 8)), layers.Conv2D(16, 2, activation="tanh", **F64),
                        layers.Conv2D(32, 2, padding="same", groups=2, **F64),
                        layers.Flatten(**F64), layers.Dense(2, **F64)])
    from fastdl.privacy.per_example import rule_for
    assert all(rule_for(layer)._gram_cheaper(4) for layer in model.layers[:2])
    check(model, normal(4, 3, 3, 8), normal(4, 2))


@pytest.mark.parametrize("padding", ["causal", "same"])
def test_conv1d(padding):
    model = Sequential([layers.Input((9, 3)),
                        layers.Conv1D(4, 3, strides=2, padding=padding, activation="tanh", **F64),
                        layers.Flatten(**F64), layers.Dense(1, **F64)])
    check(model, normal(4, 9, 3), normal(4, 1))


def test_embedding_with_repeated_ids():
    model = Sequential([layers.Input((6,), dtype="int32"), layers.Embedding(5, 3, **F64),
                        layers.Flatten(**F64), layers.Dense(2, **F64)])
    ids = np.array([[1, 1, 1, 2, 0, 1], [4, 4, 4, 4, 4, 4], [0, 1, 2, 3, 4, 0]])
    check(model, ids, normal(3, 2))


@pytest.mark.parametrize("rnn", [layers.SimpleRNN, layers.LSTM, layers.GRU])
def test_masked_recurrent_layers(rnn):
    model = Sequential([layers.Input((5,), dtype="int32"),
                        layers.Embedding(6, 3, mask_zero=True, **F64),
                        rnn(4, return_sequences=True, **F64), rnn(3, **F64),
                        layers.Dense(2, **F64)])
    ids = np.array([[1, 2, 3, 0, 0], [5, 5, 5, 5, 5], [2, 0, 0, 0, 0], [3, 1, 3, 1, 0]])
    check(model, ids, normal(4, 2))


@pytest.mark.parametrize("rnn, kwargs", [
    (layers.LSTM, {"go_backwards": True, "dropout": 0.2, "recurrent_dropout": 0.3}),
    (layers.GRU, {"reset_after": False, "dropout": 0.2, "recurrent_dropout": 0.3}),
    (layers.GRU, {"reset_after": False, "go_backwards": True}),
    (layers.GRU, {"recurrent_dropout": 0.3, "use_bias": False}),
    (layers.SimpleRNN, {"go_backwards": True, "recurrent_dropout": 0.3, "dropout": 0.2}),
])
def test_recurrent_variants_with_dropout(rnn, kwargs):
    # dropout draws its masks once for the batch: the oracle is the layers' own backward of the
    # same forward pass with the loss gradient of one example at a time
    model = Sequential([layers.Input((5, 3)), rnn(4, return_sequences=True, **kwargs, **F64),
                        layers.Flatten(**F64), layers.Dense(2, **F64)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = normal(4, 5, 3), normal(4, 2)
    set_random_seed(1)
    got = per_example_gradients(model, x, y)
    set_random_seed(1)
    trainable, _ = model._trainable_state()
    y_pred, _ = model._train_forward(x)
    _, dy = model.loss.forward_backward(y, y_pred)
    for i in range(len(x)):
        model._backward(np.where(np.arange(len(x))[:, None] == i, dy * len(x), 0.0))
        for g, e in zip(got, [g for layer in trainable for g in layer.grads]):
            np.testing.assert_allclose(g[i], e, rtol=1e-10, atol=1e-12)
    assert len(got) == len(model.trainable_weights)
    set_random_seed(1)
    norms = np.sqrt(sum((g.reshape(len(x), -1) ** 2).sum(axis=1) for g in got))
    np.testing.assert_allclose(per_example_norms(model, x, y), norms, rtol=1e-10, atol=1e-12)


def test_layer_normalization_and_frozen_layers():
    frozen = layers.Dense(4, trainable=False, **F64)
    model = Sequential([layers.Input((3, 5)), layers.Dense(4, **F64), frozen,
                        layers.LayerNormalization(**F64), layers.Flatten(**F64),
                        layers.BatchNormalization(trainable=False, **F64), layers.Dense(2, **F64)])
    check(model, normal(5, 3, 5), normal(5, 2))
    assert len(model.trainable_weights) == 6   # frozen Dense and BatchNormalization: nothing


def test_sum_reduction_and_sample_weights():
    from fastdl import losses
    model = Sequential([layers.Input((4,)), layers.Dense(2, **F64)])
    model.compile(optimizer="sgd", loss=losses.MeanSquaredError(reduction="sum"))
    x, y = normal(3, 4), normal(3, 2)
    sw = np.array([0.5, 2.0, 1.0])
    mean_model_grads = per_example_gradients(model, x, y, sample_weight=sw)
    trainable, _ = model._trainable_state()
    for i in range(3):
        y_pred, state = model._train_forward(x[i:i + 1])
        _, dy = model.loss.forward_backward(y[i:i + 1], y_pred, sw[i:i + 1])
        for g, e in zip(mean_model_grads, model._train_backward(state, dy, trainable)):
            np.testing.assert_allclose(g[i], e, rtol=1e-10, atol=1e-12)


def test_refusals():
    bn = Sequential([layers.Input((3,)), layers.Dense(2), layers.BatchNormalization()])
    bn.compile(optimizer="sgd", loss="mse")
    assert [name for name, _ in validate(bn)] == [bn.layers[-1].name]
    assert "batch statistics" in validate(bn)[0][1]
    with pytest.raises(PrivacyError, match="batch statistics"):
        per_example_gradients(bn, np.zeros((2, 3)), np.zeros((2, 2)))
    prelu = Sequential([layers.Input((3,)), layers.Dense(2), layers.PReLU()])
    prelu.compile(optimizer="sgd", loss="mse")
    assert "no per-example gradient rule" in validate(prelu)[0][1]
    plain = Sequential([layers.Input((3,)), layers.Dense(2)])
    with pytest.raises(PrivacyError, match="must be compiled"):
        per_example_gradients(plain, np.zeros((2, 3)), np.zeros((2, 2)))


def test_empty_batch():
    model = Sequential([layers.Input((4,), dtype="int32"), layers.Embedding(5, 3, **F64),
                        layers.Conv1D(2, 2, **F64), layers.Flatten(**F64),
                        layers.Dense(2, **F64)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((0, 4), dtype="int32"), np.zeros((0, 2))
    assert [g.shape for g in per_example_gradients(model, x, y)] == \
        [(0,) + w.shape for w in model.trainable_weights]
    assert per_example_norms(model, x, y).shape == (0,)


def test_depthwise_and_separable_convolutions_are_refused():
    # subclasses of the convolution base class with other weights and caches: no rule yet
    model = Sequential([layers.Input((6, 6, 2)), layers.DepthwiseConv2D(3),
                        layers.SeparableConv2D(2, 3), layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    assert [name for name, _ in validate(model)] == [model.layers[0].name, model.layers[1].name]
    with pytest.raises(PrivacyError, match="depthwise_conv2d.*no per-example gradient rule"):
        per_example_norms(model, np.zeros((2, 6, 6, 2)), np.zeros((2, 1)))


def test_gate_gradients_output_is_checked():
    from fastdl.ops.core import rnn as rnn_ops
    x = normal(2, 3, 4)
    kernel, recurrent = normal(4, 8), normal(2, 8)
    _, _, tape = rnn_ops.rnn_forward("lstm", x, kernel, recurrent, normal(8), training=True)
    dy = normal(2, 2)
    gates = np.full((3, 2, 8), np.nan)
    dx, dk, dr, db, _ = rnn_ops.rnn_backward(tape, dy, gate_grads=gates)
    assert not np.isnan(gates).any()
    # the weight gradients are the per-step products of the gate gradients
    h_prev = tape.cache[..., -2:]
    np.testing.assert_allclose(np.einsum("ntf,tng->fg", x, gates), dk, rtol=1e-12)
    np.testing.assert_allclose(np.einsum("tnu,tng->ug", h_prev, gates), dr, rtol=1e-12)
    np.testing.assert_allclose(gates.sum(axis=(0, 1)), db, rtol=1e-12)
    with pytest.raises(ValueError, match="gate_grads"):
        rnn_ops.rnn_backward(tape, dy, gate_grads=np.zeros((3, 2, 4)))
    with pytest.raises(TypeError, match="gate_grads"):
        rnn_ops.rnn_backward(tape, dy, gate_grads=np.zeros((3, 2, 8), np.float32))
    gates.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        rnn_ops.rnn_backward(tape, dy, gate_grads=gates)
