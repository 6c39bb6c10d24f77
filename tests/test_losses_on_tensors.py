"""Built-in losses on fastdl Tensors (GradientTape loops): the Loss objects and the function
forms are differentiable, with the gradient of their own forward_backward."""
import numpy as np
import pytest

import fastdl
from fastdl import keras, losses, ops
from gradcheck import numerical_gradient

RNG = np.random.default_rng(0)
CASES = [
    (losses.SparseCategoricalCrossentropy(from_logits=True),
     lambda: RNG.integers(0, 4, 6), (6, 4)),
    (losses.CategoricalCrossentropy(), lambda: np.eye(4)[RNG.integers(0, 4, 6)],
     (6, 4)),
    (losses.MeanSquaredError(), lambda: RNG.standard_normal((6, 3)), (6, 3)),
    (losses.BinaryCrossentropy(from_logits=True), lambda: RNG.integers(0, 2, (6, 1)), (6, 1)),
    (losses.Huber(), lambda: RNG.standard_normal((6, 3)), (6, 3)),
]


@pytest.mark.parametrize("loss,make_y,shape", CASES, ids=lambda c: getattr(c, "name", ""))
def test_loss_object_on_tensors_is_differentiable(loss, make_y, shape):
    y = make_y()
    p = RNG.random(shape) * 0.8 + 0.1
    t = ops.convert_to_tensor(p.astype(np.float64))
    with fastdl.GradientTape() as tape:
        tape.watch(t)
        value = loss(y, t)
    assert isinstance(value, fastdl.Tensor) and value.shape == ()
    np.testing.assert_allclose(float(value), loss(y, p), rtol=1e-12)
    expected = numerical_gradient(lambda: loss(y, p), p)
    np.testing.assert_allclose(tape.gradient(value, t).numpy(), expected, rtol=1e-5, atol=1e-8)


def test_function_forms_on_tensors_are_differentiable():
    # tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    y = RNG.integers(0, 5, 7)
    logits = RNG.standard_normal((7, 5))
    t = ops.convert_to_tensor(logits)
    with fastdl.GradientTape() as tape:
        tape.watch(t)
        per_sample = keras.losses.sparse_categorical_crossentropy(y, t, from_logits=True)
        value = fastdl.reduce_mean(per_sample)
    assert per_sample.shape == (7,)
    expected = numerical_gradient(
        lambda: float(np.mean(losses.sparse_categorical_crossentropy(y, logits,
                                                                      from_logits=True))), logits)
    np.testing.assert_allclose(tape.gradient(value, t).numpy(), expected, rtol=1e-5, atol=1e-8)


def test_keras_style_tape_loop_on_arrays_equals_fit():
    # The TensorFlow tutorial loop: model(x) on NumPy arrays inside the tape, a Loss object,
    # apply_gradients over model.trainable_weights; equal to fit on the same batches.
    from fastdl.utils import set_random_seed
    fastdl.set_num_threads(1)
    x = RNG.random((16, 5)).astype(np.float32)
    y = RNG.integers(0, 3, 16)
    set_random_seed(1)
    a = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(3)])
    b = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(3)])
    b.set_weights(a.get_weights())
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = keras.optimizers.SGD(0.1)
    for step in range(4):
        xb, yb = x[step * 4:(step + 1) * 4], y[step * 4:(step + 1) * 4]
        with fastdl.GradientTape() as tape:
            logits = a(xb, training=True)
            loss = loss_fn(yb, logits)
        grads = tape.gradient(loss, a.trainable_weights)
        opt.apply_gradients(zip(grads, a.trainable_weights))
    b.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    b.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


def test_a_layer_called_on_arrays_inside_a_tape_is_recorded():
    # TensorFlow records a layer called on NumPy input inside a GradientTape: d sum(x @ k + b)
    # / dk = column sums of x repeated, / db = batch size.
    layer = keras.layers.Dense(2)
    x = RNG.random((5, 3)).astype(np.float32)
    with fastdl.GradientTape() as tape:
        y = layer(x)
        total = fastdl.reduce_sum(y)
    assert isinstance(y, fastdl.Tensor)
    dk, db = tape.gradient(total, layer.trainable_weights)
    np.testing.assert_allclose(dk.numpy(), np.repeat(x.sum(0)[:, None], 2, axis=1), rtol=1e-6)
    np.testing.assert_allclose(db.numpy(), [5.0, 5.0])
    assert isinstance(layer(x), fastdl.Tensor)  # outside a tape too (Keras: backend tensors)
