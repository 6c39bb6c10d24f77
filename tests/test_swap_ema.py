"""SwapEMAWeights: validation and predict use the optimizer's moving averages of the weights."""
import numpy as np
import pytest

import fastdl
from fastdl.callbacks import Callback, SwapEMAWeights


def _model():
    fastdl.utils.set_random_seed(7)
    model = fastdl.Sequential([fastdl.Input((3,)), fastdl.layers.Dense(5, activation="tanh"),
                               fastdl.layers.Dense(1)])
    model.compile(fastdl.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.9), "mse")
    return model


class _Snapshot(Callback):
    """Records the model's weights and the optimizer's averages at each epoch end."""

    def __init__(self):
        super().__init__()
        self.weights, self.averages = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        self.averages.append([a.copy() for a in self.model.optimizer._averages])


def _data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, np.tanh(x @ np.array([[1.0], [-2.0], [0.5]], "float32"))


def test_validation_uses_the_averages_and_training_continues_on_the_weights():
    x, y = _data()
    plain, snap_plain = _model(), _Snapshot()
    plain.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, callbacks=[snap_plain])

    model, snap = _model(), _Snapshot()
    history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
                        validation_data=(x, y), callbacks=[SwapEMAWeights(), snap])
    for epoch in range(2):   # training itself is unchanged by the swaps
        for a, b in zip(snap.weights[epoch], snap_plain.weights[epoch]):
            np.testing.assert_array_equal(a, b)
        probe = _model()
        trainable = probe.trainable_weights
        for w, avg in zip(trainable, snap.averages[epoch]):
            np.copyto(w, avg)
        expected = probe.evaluate(x, y, verbose=0)
        assert history.history["val_loss"][epoch] == pytest.approx(expected, rel=1e-6)


def test_predict_swaps_back():
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.optimizer._averages[0] += 1.0   # make the averages differ from the weights
    before = model.get_weights()
    averaged = model.predict(x, verbose=0, callbacks=[SwapEMAWeights()])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(averaged, model.predict(x, verbose=0))


def test_swap_on_epoch_puts_the_averages_in_the_model():
    x, y = _data()
    plain, snap_plain = _model(), _Snapshot()
    plain.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, callbacks=[snap_plain])
    model, snap = _model(), _Snapshot()
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
              callbacks=[SwapEMAWeights(swap_on_epoch=True), snap])
    # callbacks after the swap see the averages as the model's weights, and epoch 1 trains on
    # the weights again (swapped back at its start), so both epochs match the plain run's averages
    for epoch in range(2):
        for w, avg in zip(snap.weights[epoch], snap_plain.averages[epoch]):
            np.testing.assert_array_equal(w, avg)
    for w, avg in zip(model.get_weights(), snap_plain.averages[-1]):
        np.testing.assert_array_equal(w, avg)


def test_needs_use_ema():
    x, y = _data()
    model = fastdl.Sequential([fastdl.Input((3,)), fastdl.layers.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="use_ema=True"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y),
                  callbacks=[SwapEMAWeights()])
