"""DP-SGD training (fastdl.privacy.make_private): exactness without noise, the noise's spread,
Poisson sampling, accounting, the budget callback and bad input."""
import math
import warnings

import numpy as np
import pytest

from fastdl import layers, optimizers, regularizers
from fastdl.models import Sequential
from fastdl.privacy import (PrivacyBudget, PrivacyError, compute_epsilon, make_private,
                            per_example_gradients)
from fastdl.utils import set_random_seed

F64 = {"dtype": "float64"}
LR = float(np.float32(0.1))   # the optimizer keeps its learning rate as a float32 (as Keras)


def cnn(seed=0, dtype="float32"):
    set_random_seed(seed)
    model = Sequential([layers.Input((6, 6, 1)),
                        layers.Conv2D(3, 3, activation="relu", padding="same", dtype=dtype),
                        layers.MaxPooling2D(2, dtype=dtype), layers.Flatten(dtype=dtype),
                        layers.Dense(4, activation="relu", dtype=dtype,
                                     kernel_regularizer=regularizers.L2(0.01)),
                        layers.Dense(3, activation="softmax", dtype=dtype)])
    model.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return model


def data(n=12, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)).astype("float32"), rng.integers(0, 3, n)


def test_no_noise_and_no_clipping_is_plain_sgd_bit_for_bit():
    x, y = data()
    plain, private = cnn(), cnn()
    make_private(private, l2_norm_clip=math.inf, noise_multiplier=0.0, sampling="shuffle")
    plain.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0)
    private.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0)
    for a, b in zip(plain.get_weights(), private.get_weights()):
        assert np.array_equal(a, b)


def batch_of_one_gradients(model, x, y):
    trainable, _ = model._trainable_state()
    out = []
    for i in range(len(x)):
        y_pred, state = model._train_forward(x[i:i + 1])
        _, dy = model.loss.forward_backward(y[i:i + 1], y_pred)
        model._backward(dy)   # no penalties: the data part of the gradient
        out.append([g.copy() for layer in trainable for g in layer.grads])
    return out


@pytest.mark.parametrize("physical", [None, 5])
def test_small_clip_is_clip_then_average(physical):
    x, y = data(n=12)
    model = cnn(dtype="float64")
    before = [w.copy() for w in model.trainable_weights]
    per_example = batch_of_one_gradients(model, x.astype("float64"), y)
    clip = 0.05
    expected = [np.zeros_like(w) for w in before]
    for grads in per_example:
        norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
        assert norm > clip   # every example is clipped
        for e, g in zip(expected, grads):
            e += g * min(1.0, clip / norm)
    make_private(model, l2_norm_clip=clip, noise_multiplier=0.0, sampling="shuffle",
                 max_physical_batch_size=physical)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    layer = model.layers[3]   # Dense with an L2(0.01) kernel penalty: its gradient 0.02 w
    for w0, w1, e in zip(before, model.trainable_weights, expected):
        reg = 0.02 * w0 if w1 is layer.kernel else 0.0
        np.testing.assert_allclose(w1, w0 - LR * (e / len(x) + reg), rtol=1e-10, atol=1e-12)


def test_clipping_without_a_second_backward_pass():
    # Conv2D's per-example kernel gradients (formed for the norms) and LayerNormalization's are
    # summed directly: no layer needs the second backward pass
    set_random_seed(2)
    model = Sequential([layers.Input((5, 5, 2)), layers.Conv2D(2, 2, **F64),
                        layers.LayerNormalization(**F64), layers.Flatten(**F64)])
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(6, 5, 5, 2)), rng.normal(size=(6, 32))
    before = [w.copy() for w in model.trainable_weights]
    expected = [np.zeros_like(w) for w in before]
    clip = 0.3
    for grads in batch_of_one_gradients(model, x, y):
        norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
        for e, g in zip(expected, grads):
            e += g * min(1.0, clip / norm)
    make_private(model, l2_norm_clip=clip, noise_multiplier=0.0, sampling="shuffle")
    model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    assert all(rule.kept is None for rule in model._train_strategy._rule_list)   # released
    for w0, w1, e in zip(before, model.trainable_weights, expected):
        np.testing.assert_allclose(w1, w0 - LR * e / 6, rtol=1e-10, atol=1e-12)


def test_noise_spread_is_sigma_clip_over_batch_size():
    set_random_seed(3)
    model = Sequential([layers.Input((50,)),
                        layers.Dense(40, kernel_initializer="zeros", **F64)])
    model.compile(optimizer=optimizers.SGD(1.0), loss="mse")
    sigma, clip, batch = 1.3, 0.7, 8
    make_private(model, l2_norm_clip=clip, noise_multiplier=sigma, sampling="shuffle")
    x, y = np.zeros((batch, 50)), np.zeros((batch, 40))   # every gradient is exactly zero
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    update = np.concatenate([-w.ravel() for w in model.trainable_weights])
    m, std = update.size, sigma * clip / batch
    # sample mean and variance of m independent N(0, std^2): 5 standard errors
    assert abs(update.mean()) < 5 * std / math.sqrt(m)
    assert abs(update.var() / std ** 2 - 1) < 5 * math.sqrt(2 / (m - 1))


def test_poisson_batch_sizes_are_binomial_and_every_step_counts():
    set_random_seed(4)
    n, b, sigma = 1000, 100, 1.0
    model = Sequential([layers.Input((2,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    make_private(model, l2_norm_clip=1.0, noise_multiplier=sigma)
    plan = model._train_strategy.plan(model, n, b)
    sizes = np.array([hi - lo for _ in range(300) for lo, hi in plan.epoch(True)[1]])
    q, k = b / n, sizes.size
    mean, var = n * q, n * q * (1 - q)
    assert abs(sizes.mean() - mean) < 5 * math.sqrt(var / k)
    assert abs(sizes.var(ddof=1) / var - 1) < 5 * math.sqrt(2 / (k - 1))


def test_empty_batches_add_noise_and_count():
    set_random_seed(5)
    n, b, epochs, sigma = 40, 1, 2, 1.0   # q = 1/40: about 37% of the batches are empty
    model = Sequential([layers.Input((2,)), layers.Dense(1, kernel_initializer="zeros",
                                                         bias_initializer="zeros")])
    model.compile(optimizer="sgd", loss="mse")
    make_private(model, l2_norm_clip=1.0, noise_multiplier=sigma, target_delta=1e-3)
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(n, 2)), np.zeros(n), batch_size=b, epochs=epochs,
                        verbose=0)
    assert len(history.history["loss"]) == epochs
    assert model._train_strategy.segments == [[b / n, sigma, epochs * n // b]]
    assert model.privacy_spent() == (compute_epsilon(n, b, sigma, epochs, 1e-3), 1e-3)
    assert np.all(model.get_weights()[1] != 0)   # noise arrived


def test_target_epsilon_and_budget():
    set_random_seed(6)
    n, b = 200, 20
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, 3)), rng.normal(size=(n, 1))
    model = Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    make_private(model, l2_norm_clip=1.0, target_epsilon=3.0, target_delta=1e-3, epochs=4,
                 batch_size=b)
    model.fit(x, y, batch_size=b, epochs=4, verbose=0)
    eps, delta = model.privacy_spent()
    assert 2.9 < eps <= 3.0 and delta == 1e-3
    budget = PrivacyBudget(3.5)   # the budget runs out within the next epochs
    history = model.fit(x, y, batch_size=b, epochs=10, verbose=0, callbacks=[budget])
    assert model.privacy_spent()[0] <= 3.5 < model._train_strategy.epsilon(extra_steps=1)
    assert len(history.history["epsilon"]) < 10 and history.history["epsilon"] == budget.epsilons
    with pytest.raises(PrivacyError, match="budget"):
        model.fit(x, y, batch_size=b, epochs=1, verbose=0, callbacks=[PrivacyBudget(3.5)])


def small_model(**layer_kwargs):
    model = Sequential([layers.Input((3,)), layers.Dense(2, **layer_kwargs)])
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.mark.parametrize("kwargs, error, match", [
    ({"l2_norm_clip": 0.0, "noise_multiplier": 1.0}, ValueError, "l2_norm_clip must be > 0"),
    ({"l2_norm_clip": -1.0, "noise_multiplier": 1.0}, ValueError, "l2_norm_clip must be > 0"),
    ({"l2_norm_clip": 1.0, "noise_multiplier": -0.5}, ValueError, "noise_multiplier must be >= 0"),
    ({"l2_norm_clip": 1.0}, ValueError, "exactly one of noise_multiplier and target_epsilon"),
    ({"l2_norm_clip": 1.0, "target_epsilon": 1.0}, ValueError, "needs epochs and batch_size"),
    ({"l2_norm_clip": 1.0, "noise_multiplier": 1.0, "target_delta": 1.0}, ValueError,
     "target_delta must be in"),
    ({"l2_norm_clip": 1.0, "noise_multiplier": 1.0, "sampling": "uniform"}, ValueError,
     "sampling must be one of"),
    ({"l2_norm_clip": "1", "noise_multiplier": 1.0}, TypeError, "l2_norm_clip must be a number"),
    ({"l2_norm_clip": math.inf, "noise_multiplier": 1.0}, ValueError, "noise would have to be"),
])
def test_bad_settings_leave_the_model_unchanged(kwargs, error, match):
    model = small_model()
    with pytest.raises(error, match=match):
        make_private(model, **kwargs)
    assert model._train_strategy is None and "privacy_spent" not in model.__dict__


def test_refused_models_and_misuse():
    bn = Sequential([layers.Input((3,)), layers.Dense(2), layers.BatchNormalization()])
    bn.compile(optimizer="sgd", loss="mse")
    with pytest.raises(PrivacyError, match="batch statistics"):
        make_private(bn, l2_norm_clip=1.0, noise_multiplier=1.0)
    assert bn._train_strategy is None

    model = small_model()
    make_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, batch_size=4)
    with pytest.raises(PrivacyError, match="already private"):
        make_private(model, l2_norm_clip=1.0, noise_multiplier=2.0)
    x, y = np.ones((40, 3)), np.ones((40, 2))
    before = model.get_weights()
    with pytest.raises(ValueError, match="batch_size=4"):
        model.fit(x, y, batch_size=8, verbose=0)
    with pytest.raises(RuntimeError, match="made private"):
        model.train_on_batch(x[:4], y[:4])
    import fastdl.data
    with pytest.raises(ValueError, match="samples each batch from NumPy arrays"):
        model.fit(fastdl.data.Dataset.from_tensor_slices((x, y)).batch(4), verbose=0)
    for a, b in zip(before, model.get_weights()):
        assert np.array_equal(a, b)
    assert model.privacy_spent() == (0.0, 1e-5)
    with pytest.warns(UserWarning, match="delta=0.1 is not below 1/n"):
        other = small_model()
        make_private(other, l2_norm_clip=1.0, noise_multiplier=1.0, target_delta=0.1)
        other.fit(x, y, batch_size=4, epochs=1, verbose=0)


def test_unreachable_target_epsilon_raises_before_training():
    model = small_model()
    make_private(model, l2_norm_clip=1.0, target_epsilon=1e-6, epochs=50, batch_size=40)
    before = model.get_weights()
    with pytest.raises(ValueError, match="cannot be reached"):
        model.fit(np.ones((40, 3)), np.ones((40, 2)), batch_size=40, epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        assert np.array_equal(a, b)


def test_second_backward_stops_without_the_input_gradient_of_its_lowest_layer():
    # the lower convolution's per-example kernel gradients are kept (cheaper than Gram matrices
    # over its 36 positions); the upper one (4 positions: Gram norms) is the lowest layer of the
    # second backward pass, whose input gradient nothing uses: it is not computed there, and the
    # flag is restored afterwards
    set_random_seed(3)
    model = Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, padding="same"),
                        layers.MaxPooling2D(3), layers.Conv2D(16, 2, padding="same"),
                        layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    upper = model.layers[2]
    flags, backward = [], upper.backward
    upper.backward = lambda dy: (flags.append((upper._trainable, upper.input_gradient_needed)),
                                 backward(dy))[1]
    make_private(model, l2_norm_clip=0.5, noise_multiplier=0.0, sampling="shuffle")
    rng = np.random.default_rng(4)
    model.fit(rng.normal(size=(4, 6, 6, 1)), rng.normal(size=(4, 2)), batch_size=4, epochs=1,
              verbose=0)
    assert flags == [(False, True), (True, False)]   # the norm pass's dx, then the weights only
    assert upper.input_gradient_needed and upper._trainable
