"""Eager calls on NumPy input give Tensors, as Keras 3 gives backend tensors: the TF
quickstart's ``model(x_train[:1]).numpy()`` and ``for images, labels in ds: images.numpy()``.
``predict`` and ``Dataset.as_numpy_iterator`` stay NumPy."""
import numpy as np

import fastdl
from fastdl import layers, models
from fastdl.data import Dataset


def _x(shape=(3, 4), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _check_tensor(t, expected):
    assert isinstance(t, fastdl.Tensor)
    assert isinstance(t.numpy(), np.ndarray) and t.shape == expected.shape
    assert t.dtype == expected.dtype
    np.testing.assert_array_equal(np.asarray(t), expected)


def test_sequential_call_gives_a_tensor_and_predict_an_array():
    model = models.Sequential([layers.Input((4,)), layers.Dense(5, activation="relu"),
                               layers.Dense(2)])
    x = _x()
    expected = model.predict(x, verbose=0)
    assert type(expected) is np.ndarray
    y = model(x[:1])
    _check_tensor(y, expected[:1])
    predictions = model(x).numpy()          # the TF quickstart
    np.testing.assert_array_equal(predictions, expected)
    np.testing.assert_allclose((y * 2 + 1).numpy(), expected[:1] * 2 + 1)
    np.testing.assert_array_equal(y[0, 1:].numpy(), expected[0, 1:])
    np.testing.assert_allclose(np.exp(y).numpy(), np.exp(expected[:1]))


def test_functional_and_subclassed_calls_give_tensors():
    inp = layers.Input((4,))
    functional = models.Model(inp, {"a": layers.Dense(2)(inp), "b": layers.Dense(1)(inp)})
    out = functional(_x())
    assert set(out) == {"a", "b"}
    expected = functional.predict(_x(), verbose=0)
    for k in out:
        _check_tensor(out[k], expected[k])

    class Net(models.Model):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = layers.Dense(3), layers.Dense(1)

        def call(self, x):
            return self.out(self.hidden(x))
    net = Net()
    _check_tensor(net(_x()), net.predict(_x(), verbose=0))


def test_layer_calls_give_tensors():
    x = _x()
    dense = layers.Dense(2)
    y = dense(x)
    _check_tensor(y, x @ dense.get_weights()[0] + dense.get_weights()[1])
    seq = _x((2, 5, 3))
    out, h, c = layers.LSTM(4, return_state=True)(seq)
    assert all(isinstance(t, fastdl.Tensor) for t in (out, h, c))
    np.testing.assert_array_equal(out.numpy(), h.numpy())
    add = layers.Add()([x, x])                  # a layer written with ops
    _check_tensor(add, x + x)
    assert isinstance(layers.Lambda(lambda v: v * 3)(x), fastdl.Tensor)


def test_nested_models_and_ops_layers_inside_sequential_still_predict_arrays():
    inner = models.Sequential([layers.Input((4,)), layers.Dense(3)])
    model = models.Sequential([layers.Input((4,)), inner, layers.Lambda(lambda v: v + 1),
                               layers.Dense(2)])
    x = _x()
    predicted = model.predict(x, verbose=0)
    assert type(predicted) is np.ndarray
    np.testing.assert_allclose(model(x).numpy(), predicted, rtol=1e-6)
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((3, 2), np.float32), epochs=1, verbose=0)


def test_dataset_iteration_gives_tensors_and_as_numpy_iterator_arrays():
    images = np.arange(24, dtype=np.float32).reshape(6, 4)
    labels = np.arange(6)
    ds = Dataset.from_tensor_slices((images, labels)).batch(4)
    for x, y in ds.take(1):
        assert isinstance(x, fastdl.Tensor) and isinstance(y, fastdl.Tensor)
        np.testing.assert_array_equal(x.numpy(), images[:4])
        np.testing.assert_array_equal(y.numpy(), labels[:4])
    x, y = next(ds.as_numpy_iterator())
    assert type(x) is np.ndarray and type(y) is np.ndarray
    texts = next(iter(Dataset.from_tensor_slices(np.array(["a", "bc"])).batch(2)))
    assert type(texts) is np.ndarray and texts.tolist() == ["a", "bc"]   # strings stay NumPy
    model = models.Sequential([layers.Input((4,)), layers.Dense(6)])
    model.compile("sgd", fastdl.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ds, epochs=1, verbose=0)
    assert type(model.predict(ds, verbose=0)) is np.ndarray
