"""trainable_variables / non_trainable_variables / variables, metrics and metrics_names, as the
GradientTape loops of the Keras guides use them."""
import numpy as np
import pytest

import fastdl
from fastdl import layers


def _model():
    fastdl.utils.set_random_seed(3)
    return fastdl.Sequential([fastdl.Input((4,)), layers.Dense(5, activation="relu"),
                              layers.BatchNormalization(), layers.Dense(1)])


def test_variables_share_the_weights_memory_and_keep_their_identity():
    model = _model()
    tv, ntv = model.trainable_variables, model.non_trainable_variables
    assert [v.shape for v in tv] == [w.shape for w in model.trainable_weights]
    assert [v.shape for v in ntv] == [w.shape for w in model.non_trainable_weights]
    assert all(isinstance(v, fastdl.Variable) for v in tv + ntv)
    assert all(v.trainable for v in tv) and not any(v.trainable for v in ntv)
    assert [id(v) for v in model.trainable_variables] == [id(v) for v in tv]
    assert len(model.variables) == len(model.weights)
    tv[0].assign(np.full(tv[0].shape, 0.5, "float32"))
    np.testing.assert_array_equal(model.trainable_weights[0], 0.5)
    assert model.layers[0].trainable_variables[0] is not None
    assert tv[0].name.endswith("/kernel")


def test_gradient_tape_loop_on_trainable_variables_equals_train_on_batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    looped, fitted = _model(), _model()
    fitted.compile(fastdl.optimizers.SGD(0.1), "mse")
    opt = fastdl.optimizers.SGD(0.1)
    loss_fn = fastdl.losses.MeanSquaredError()
    for _ in range(3):
        with fastdl.GradientTape() as tape:
            loss = loss_fn(y, looped(x, training=True))
        grads = tape.gradient(loss, looped.trainable_variables)
        assert all(g is not None for g in grads)
        opt.apply_gradients(zip(grads, looped.trainable_variables))
        fitted.train_on_batch(x, y)
    for a, b in zip(looped.get_weights(), fitted.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_custom_layer_variables_are_its_add_weight_variables():
    class Scale(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

    layer = Scale()
    layer(np.ones((2, 3), "float32"))
    assert layer.trainable_variables[0] is layer.w


def test_metrics_and_metrics_names_line_up_with_evaluate():
    model = _model()
    assert model.metrics_names == []
    model.compile("sgd", "mse", metrics=["mae", fastdl.metrics.RootMeanSquaredError()])
    x = np.ones((4, 4), "float32")
    y = np.zeros((4, 1), "float32")
    result = model.evaluate(x, y, verbose=0)
    assert model.metrics_names == ["loss", "mae", "root_mean_squared_error"]
    assert [m.name for m in model.metrics] == model.metrics_names
    assert model.metrics[0].result() == pytest.approx(result[0])   # the loss tracker
    assert dict(zip(model.metrics_names, result)) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True))
