"""Nadam, Adamax, Adadelta, Ftrl, Lion and Lamb step by step against real Keras 3 (torch backend):
same initial weights, same gradient sequence, weights and optimizer variables (Keras's order,
Nadam's ``u_product`` included) to float32 tolerance; configs; exact state round trips."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="keras (the oracle) is not installed")
pytest.importorskip("torch", reason="the keras oracle runs on the torch backend")
if keras.backend.backend() != "torch":
    pytest.skip("the oracle needs KERAS_BACKEND=torch", allow_module_level=True)

from fastdl import optimizers  # noqa: E402

SHAPES = [(3, 4), (5,)]
STEPS = 6

CASES = [
    ("Nadam", {}),
    ("Nadam", dict(learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=1e-4)),
    ("Adamax", {}),
    ("Adamax", dict(learning_rate=0.05, beta_1=0.5, beta_2=0.8, epsilon=1e-3)),
    ("Adadelta", {}),
    ("Adadelta", dict(learning_rate=1.0, rho=0.5, epsilon=1e-5)),
    ("Ftrl", {}),
    ("Ftrl", dict(learning_rate=0.1, learning_rate_power=-0.7, initial_accumulator_value=0.3,
                  l1_regularization_strength=0.01, l2_regularization_strength=0.2,
                  l2_shrinkage_regularization_strength=0.05, beta=0.3)),
    ("Lion", {}),
    ("Lion", dict(learning_rate=0.01, beta_1=0.5, beta_2=0.7)),
    ("Nadam", dict(learning_rate=0.01, weight_decay=0.1, clipnorm=0.5)),
    ("Adamax", dict(learning_rate=0.01, global_clipnorm=0.3)),
    ("Lion", dict(learning_rate=0.01, clipvalue=0.2, weight_decay=0.05)),
    ("Lamb", {}),
    ("Lamb", dict(learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=1e-4)),
    ("Lamb", dict(learning_rate=0.01, weight_decay=0.1, global_clipnorm=0.3)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def _sequence(seed):
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(STEPS)]
    return w0, grads


def _close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=what)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_steps_match_keras(name, kwargs):
    w0, grads = _sequence(len(name) + len(kwargs))
    theirs = getattr(keras.optimizers, name)(**kwargs)
    kvars = [keras.Variable(w.copy()) for w in w0]
    mine = getattr(optimizers, name)(**kwargs)
    fvars = [w.copy() for w in w0]
    for step, g in enumerate(grads):
        theirs.apply([keras.ops.convert_to_tensor(x) for x in g], kvars)
        mine.apply([x.copy() for x in g], fvars)
        for i, (k, f) in enumerate(zip(kvars, fvars)):
            _close(f, keras.ops.convert_to_numpy(k), f"{name} step {step + 1} variable {i}")
    kstate = [keras.ops.convert_to_numpy(v) for v in theirs.variables]
    fstate = mine.variables
    assert len(fstate) == len(kstate)
    for i, (f, k) in enumerate(zip(fstate, kstate)):
        assert np.shape(f) == np.shape(k), f"optimizer variable {i}"
        _close(np.asarray(f, np.float64), k.astype(np.float64), f"optimizer variable {i}")


@pytest.mark.parametrize("name,kwargs", CASES[:10] + CASES[13:15],
                         ids=IDS[:10] + IDS[13:15])
def test_config_matches_keras(name, kwargs):
    theirs = getattr(keras.optimizers, name)(**kwargs).get_config()
    mine = getattr(optimizers, name)(**kwargs).get_config()
    assert sorted(mine) == sorted(theirs)
    assert mine["name"] == name.lower()     # Keras numbers repeated names (nadam_3)
    for key, value in theirs.items():
        if key == "name":
            continue
        assert mine[key] == pytest.approx(value), key
    again = getattr(optimizers, name).from_config(mine)
    assert again.get_config() == mine
    assert optimizers.get(name.lower()).name == name.lower()


@pytest.mark.parametrize("name", ["Nadam", "Adamax", "Adadelta", "Ftrl", "Lion", "Lamb"])
def test_state_round_trip_continues_bitwise(name):
    w0, grads = _sequence(1)
    a, b = getattr(optimizers, name)(), getattr(optimizers, name)()
    wa = [w.copy() for w in w0]
    for g in grads[:3]:
        a.apply([x.copy() for x in g], wa)
    wb = [w.copy() for w in wa]
    b.build(wb)
    b.set_state(a.get_state())
    for g in grads[3:]:
        a.apply([x.copy() for x in g], wa)
        b.apply([x.copy() for x in g], wb)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.variables, b.variables):
        np.testing.assert_array_equal(x, y)


def test_nadam_state_has_u_product_last_and_checks_it():
    opt = optimizers.Nadam()
    assert len(opt.variables) == 2                      # unbuilt: iterations, learning rate
    w = [np.zeros((2, 2), np.float32)]
    opt.apply([np.ones((2, 2), np.float32)], w)
    state = opt.get_state()
    assert len(state) == 2 + 2 + 1
    assert float(state[-1]) == pytest.approx(0.9 * (1 - 0.5 * 0.96))
    bad = state[:-1] + [np.array(np.nan, np.float32)]
    with pytest.raises(ValueError, match="scalar"):
        opt.set_state(bad)
    with pytest.raises(ValueError, match="expected 5 arrays"):
        opt.set_state(state[:-1])


@pytest.mark.parametrize("name,kwargs,match", [
    ("Lion", dict(beta_1=0.0), "beta_1"),
    ("Lion", dict(beta_1=1.5), "beta_1"),
    ("Ftrl", dict(learning_rate_power=0.5), "learning_rate_power"),
    ("Ftrl", dict(l1_regularization_strength=-1.0), "l1_regularization_strength"),
    ("Ftrl", dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    ("Adadelta", dict(rho=1.5), "rho"),
    ("Nadam", dict(beta_1="0.9"), "beta_1"),
    ("Adamax", dict(epsilon=-1.0), "epsilon"),
])
def test_bad_arguments_name_what_was_received(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(optimizers, name)(**kwargs)


def test_ftrl_with_zero_learning_rate_is_refused_before_any_change():
    opt = optimizers.Ftrl(learning_rate=0.0)
    w = [np.ones(3, np.float32)]
    with pytest.raises(ValueError, match="learning_rate"):
        opt.apply([np.ones(3, np.float32)], w)
    np.testing.assert_array_equal(w[0], 1.0)
    assert opt.iterations == 0


# ------------------------------------------------------------------ .keras files with real Keras

def _batch():
    r = np.random.default_rng(3)
    x = r.standard_normal((8, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[r.integers(0, 3, 8)]
    return x, y


def test_keras_loads_a_fastdl_file_with_nadam_ema_and_focal_loss_and_continues_alike(tmp_path):
    pytest.importorskip("h5py", reason=".keras files hold their weights in HDF5")
    from fastdl import layers, losses
    from fastdl.models import Sequential
    from fastdl.saving import save_model

    x, y = _batch()
    model = Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Nadam(0.05, beta_2=0.99, use_ema=True),
                  loss=losses.CategoricalFocalCrossentropy(gamma=1.5))
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    path = str(tmp_path / "nadam.keras")
    save_model(model, path)

    theirs = keras.models.load_model(path)
    assert type(theirs.optimizer).__name__ == "Nadam"
    assert theirs.optimizer.beta_2 == pytest.approx(0.99)
    assert type(theirs.loss).__name__ == "CategoricalFocalCrossentropy"
    assert theirs.loss.gamma == 1.5
    state = model.optimizer.get_state()
    kstate = [keras.ops.convert_to_numpy(v) for v in theirs.optimizer.variables]
    assert theirs.optimizer.use_ema
    assert len(kstate) == len(state) == 2 + 2 + 2 * 2 + 1      # averages first, u_product last
    for i, (k, f) in enumerate(zip(kstate, state)):
        np.testing.assert_array_equal(k, f, err_msg=f"optimizer variable {i}")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    # one more step on each side: the restored state makes them continue alike
    model.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for k, f in zip(theirs.get_weights(), model.get_weights()):
        np.testing.assert_allclose(k, f, rtol=1e-5, atol=1e-6)


def test_fastdl_loads_a_keras_file_with_ftrl_and_dice(tmp_path):
    pytest.importorskip("h5py", reason=".keras files hold their weights in HDF5")
    from fastdl.saving import load_model

    x, y = _batch()
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    theirs.compile(optimizer=keras.optimizers.Ftrl(0.1, l1_regularization_strength=0.01,
                                                   beta=0.2),
                   loss=keras.losses.Dice(axis=-1))
    theirs.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    path = str(tmp_path / "ftrl.keras")
    theirs.save(path)

    model = load_model(path)
    assert type(model.optimizer).__name__ == "Ftrl"
    assert model.optimizer.get_config()["l1_regularization_strength"] == pytest.approx(0.01)
    assert type(model.loss).__name__ == "Dice" and model.loss.axis == -1
    state = model.optimizer.get_state()
    kstate = [keras.ops.convert_to_numpy(v) for v in theirs.optimizer.variables]
    assert len(state) == len(kstate) == 2 + 2 * 2
    for i, (k, f) in enumerate(zip(kstate, state)):
        np.testing.assert_array_equal(f, k, err_msg=f"optimizer variable {i}")
    model.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for k, f in zip(theirs.get_weights(), model.get_weights()):
        np.testing.assert_allclose(f, k, rtol=1e-5, atol=1e-6)


# ------------------------------------------------- EMA and gradient accumulation (every optimizer)

EXTRA_CASES = [
    ("Adam", dict(learning_rate=0.05, use_ema=True)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, use_ema=True, ema_momentum=0.8,
                 ema_overwrite_frequency=2)),
    ("Nadam", dict(learning_rate=0.05, gradient_accumulation_steps=2)),
    ("RMSprop", dict(learning_rate=0.01, gradient_accumulation_steps=3, clipnorm=0.5,
                     weight_decay=0.1)),
    ("Ftrl", dict(learning_rate=0.1, use_ema=True, gradient_accumulation_steps=2,
                  ema_overwrite_frequency=2)),
    ("Adam", dict(learning_rate=optimizers.schedules.ExponentialDecay(0.1, 2, 0.5),
                  amsgrad=True, gradient_accumulation_steps=2, use_ema=True)),
]


@pytest.mark.parametrize("name,kwargs", EXTRA_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(EXTRA_CASES)])
def test_ema_and_gradient_accumulation_match_keras(name, kwargs):
    w0, grads = _sequence(7)
    kkwargs = dict(kwargs)
    if "learning_rate" in kwargs and not isinstance(kwargs["learning_rate"], float):
        kkwargs["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5)
    theirs = getattr(keras.optimizers, name)(**kkwargs)
    kvars = [keras.Variable(w.copy()) for w in w0]
    mine = getattr(optimizers, name)(**kwargs)
    fvars = [w.copy() for w in w0]
    for step, g in enumerate(grads):
        theirs.apply([keras.ops.convert_to_tensor(x) for x in g], kvars)
        mine.apply([x.copy() for x in g], fvars)
        assert mine.iterations == int(keras.ops.convert_to_numpy(theirs.iterations))
        for i, (k, f) in enumerate(zip(kvars, fvars)):
            _close(f, keras.ops.convert_to_numpy(k), f"{name} step {step + 1} variable {i}")
    kstate = [keras.ops.convert_to_numpy(v) for v in theirs.variables]
    assert len(mine.variables) == len(kstate)
    for i, (f, k) in enumerate(zip(mine.variables, kstate)):
        _close(np.asarray(f, np.float64), k.astype(np.float64), f"optimizer variable {i}")
    theirs.finalize_variable_values(kvars)
    mine.finalize_variable_values(fvars)
    for k, f in zip(kvars, fvars):
        _close(f, keras.ops.convert_to_numpy(k), "after finalize_variable_values")
    config = mine.get_config()
    for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency",
                "gradient_accumulation_steps"):
        assert config[key] == theirs.get_config()[key], key


def test_accumulating_optimizer_state_round_trips_bitwise():
    w0, grads = _sequence(2)
    a = optimizers.Adam(use_ema=True, gradient_accumulation_steps=2)
    b = optimizers.Adam(use_ema=True, gradient_accumulation_steps=2)
    wa = [w.copy() for w in w0]
    for g in grads[:3]:                       # stops between two accumulated gradients
        a.apply([x.copy() for x in g], wa)
    wb = [w.copy() for w in wa]
    b.build(wb)
    b.set_state(a.get_state())
    assert b.iterations == a.iterations == 1
    for g in grads[3:]:
        a.apply([x.copy() for x in g], wa)
        b.apply([x.copy() for x in g], wb)
    for x, y in zip(wa + a.variables, wb + b.variables):
        np.testing.assert_array_equal(x, y)


def test_fit_ends_with_the_moving_averages_as_weights_when_use_ema():
    # Keras's fit calls optimizer.finalize_variable_values(trainable_weights) after the last epoch:
    # the weights are then the EMA the optimizer kept, not the last step's values.
    import fastdl
    from fastdl.utils import set_random_seed
    set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    model = fastdl.Sequential([fastdl.layers.Input((3,)), fastdl.layers.Dense(1)])
    opt = fastdl.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5)
    model.compile(opt, "mse")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    averages = [a.copy() for a in opt._averages]
    assert len(averages) == 2
    for w, a in zip(model.get_weights(), averages):
        np.testing.assert_array_equal(w, a)
    # and without use_ema the weights are the last step's (nothing is overwritten)
    plain = fastdl.Sequential([fastdl.layers.Input((3,)), fastdl.layers.Dense(1)])
    plain.set_weights(model.get_weights())
    plain.compile(fastdl.optimizers.SGD(0.1), "mse")
    before = plain.get_weights()
    plain.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert not np.array_equal(plain.get_weights()[0], before[0])
