"""LossScaleOptimizer against Keras 3's: skipped non-finite steps halve the scale, finite runs
of dynamic_growth_steps double it, in GradientTape loops, fit and train_on_batch; config and
.keras files in both directions."""
import warnings

import numpy as np
import pytest

from fastdl import layers as L, optimizers as O
from fastdl.models import Sequential


def _keras():
    keras = pytest.importorskip("keras", reason="keras (the oracle) is not installed")
    pytest.importorskip("torch", reason="the keras oracle runs on the torch backend")
    return keras


def _data(nan_row=None):
    r = np.random.default_rng(1)
    x = r.standard_normal((12, 3)).astype(np.float32)
    y = r.standard_normal((12, 2)).astype(np.float32)
    if nan_row is not None:
        x[nan_row, 1] = np.nan    # that batch's loss and gradients are NaN: the step is skipped
    return x, y


def _pair(keras, inner, growth, initial=8.0, **kwargs):
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    theirs.compile(optimizer=keras.optimizers.LossScaleOptimizer(
        getattr(keras.optimizers, inner)(0.1, **kwargs), initial_scale=initial,
        dynamic_growth_steps=growth), loss="mse")
    ours = Sequential([L.Input((3,)), L.Dense(2)])
    ours.set_weights(theirs.get_weights())
    ours.compile(optimizer=O.LossScaleOptimizer(getattr(O, inner)(0.1, **kwargs),
                                                initial_scale=initial,
                                                dynamic_growth_steps=growth), loss="mse")
    return theirs, ours


def _same(theirs, ours):
    keras = _keras()
    assert float(ours.optimizer.dynamic_scale) == float(
        keras.ops.convert_to_numpy(theirs.optimizer.dynamic_scale))
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations)
    for k, f in zip(theirs.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(f, k, rtol=1e-5, atol=1e-6)


def test_gradient_tape_loop_matches_keras_skip_halve_and_growth():
    keras = _keras()
    from fastdl import GradientTape, Variable, ops
    w0 = np.array([0.5, -1.0, 2.0], np.float32)
    coefs = [np.array(c, np.float32) for c in
             ([1.0, 2.0, -1.0], [np.inf, 1.0, 0.0], [0.5, 0.5, 0.5], [1.0, -3.0, 2.0],
              [np.nan, 0.0, 0.0], [2.0, 1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 0.0, 4.0])]
    kopt = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1, momentum=0.5),
                                               initial_scale=4.0, dynamic_growth_steps=2)
    kw = keras.Variable(w0)
    opt = O.LossScaleOptimizer(O.SGD(0.1, momentum=0.5), initial_scale=4.0,
                               dynamic_growth_steps=2)
    w = Variable(w0.copy())
    scales = []
    for c in coefs:
        # Keras: the gradient of scale_loss(sum(w * c)) is scale * c
        kscale = float(keras.ops.convert_to_numpy(kopt.scale_loss(1.0)))
        kopt.apply_gradients([(keras.ops.convert_to_tensor(kscale * c), kw)])
        with GradientTape() as tape:
            loss = opt.scale_loss(ops.sum(w * c))
        grads = tape.gradient(loss, [w])
        opt.apply_gradients(zip(grads, [w]))
        scales.append(float(opt.dynamic_scale))
        assert scales[-1] == float(keras.ops.convert_to_numpy(kopt.dynamic_scale))
        np.testing.assert_allclose(w.numpy(), keras.ops.convert_to_numpy(kw), rtol=1e-6)
    # by the rule: 4 -> finite(1) -> inf: 2 -> finite(1) -> finite(2): 4 -> nan: 2 -> ...
    assert scales == [4.0, 2.0, 2.0, 4.0, 2.0, 2.0, 4.0, 4.0]
    assert opt.iterations == int(kopt.iterations) == 6     # the two skipped steps not counted


# SGD in the fit tests: its updates are linear in the gradient, so float32 rounding stays at
# rtol 1e-5 over 9 steps (Adam divides by sqrt(v) and amplifies it, loss scaling or not)
@pytest.mark.parametrize("inner,growth", [("SGD", 2), ("SGD", 3)])
def test_fit_matches_keras_with_a_nan_batch(inner, growth):
    keras = _keras()
    x, y = _data(nan_row=5)
    theirs, ours = _pair(keras, inner, growth)
    for model in (theirs, ours):
        model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    _same(theirs, ours)
    assert ours.optimizer.iterations == 6       # 9 steps, the 3 with the NaN row skipped
    # the NaN steps halved the scale: 8 -> ... never the growth alone
    assert float(ours.optimizer.dynamic_scale) < 8.0 * 2 ** (6 // growth)


def test_train_on_batch_matches_keras_and_the_scale_grows():
    keras = _keras()
    x, y = _data()
    theirs, ours = _pair(keras, "SGD", growth=2, initial=1.0, momentum=0.9)
    for step in range(5):
        for model in (theirs, ours):
            model.train_on_batch(x[:6], y[:6])
        _same(theirs, ours)
    assert float(ours.optimizer.dynamic_scale) == 4.0      # doubled after steps 2 and 4


def test_fit_with_loss_scale_factor_applies_the_loss_gradients():
    # regression: fit handed apply the loss's gradients, which apply divided by the factor
    keras = _keras()
    x, y = _data()
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    theirs.compile(optimizer=keras.optimizers.SGD(0.1, loss_scale_factor=4.0), loss="mse")
    ours = Sequential([L.Input((3,)), L.Dense(2)])
    ours.set_weights(theirs.get_weights())
    ours.compile(optimizer=O.SGD(0.1, loss_scale_factor=4.0), loss="mse")
    for model in (theirs, ours):
        model.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0)
    for k, f in zip(theirs.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(f, k, rtol=1e-5, atol=1e-6)
    assert O.SGD(loss_scale_factor=4.0).scale_loss(1.5) == 6.0
    assert O.SGD().scale_loss(1.5) == 1.5


def test_forwarded_attributes_config_and_serialization():
    inner = O.Adam(0.01)
    opt = O.LossScaleOptimizer(inner, dynamic_growth_steps=7)
    assert opt.inner_optimizer is inner and opt.name == "loss_scale_optimizer"
    assert float(opt.dynamic_scale) == 32768.0 and opt.scale_loss(2.0) == 65536.0
    opt.learning_rate = 0.5
    assert inner.learning_rate == opt.learning_rate == 0.5
    config = opt.get_config()
    assert config["inner_optimizer"]["class_name"] == "Adam"
    assert (config["initial_scale"], config["dynamic_growth_steps"]) == (32768.0, 7)
    again = O.deserialize(O.serialize(opt))
    assert isinstance(again, O.LossScaleOptimizer) and isinstance(again.inner_optimizer, O.Adam)
    assert again.inner_optimizer.learning_rate == 0.5 and again.dynamic_growth_steps == 7
    # the state lists Keras's variables: own counters, then (built) step counter and scale
    assert len(opt.variables) == 2 + 2
    w = np.zeros(3, np.float32)
    opt.build([w])
    assert len(opt.variables) == 4 + 2 + 2
    state = opt.get_state()
    state[3] = np.float32(16.0)
    opt.set_state(state)
    assert float(opt.dynamic_scale) == 16.0


def test_config_matches_keras_both_ways():
    keras = _keras()
    ours = O.LossScaleOptimizer(O.SGD(0.2, momentum=0.9), initial_scale=64.0,
                                dynamic_growth_steps=5)
    theirs = keras.optimizers.deserialize(O.serialize(ours))
    assert isinstance(theirs, keras.optimizers.LossScaleOptimizer)
    assert (theirs.initial_scale, theirs.dynamic_growth_steps) == (64.0, 5)
    assert theirs.inner_optimizer.momentum == pytest.approx(0.9)
    back = O.deserialize(keras.optimizers.serialize(theirs))
    assert back.get_config() == ours.get_config()


def test_keras_file_round_trips_with_keras(tmp_path):
    keras = _keras()
    pytest.importorskip("h5py", reason=".keras files hold their weights in HDF5")
    from fastdl.saving import load_model, save_model
    x, y = _data(nan_row=1)
    theirs, ours = _pair(keras, "SGD", growth=2, momentum=0.9)
    ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)   # scale 8 -> 4 -> ...
    path = str(tmp_path / "ours.keras")
    save_model(ours, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(path)
    assert not [w for w in caught if "Skipping" in str(w.message)]  # inner_optimizer/vars too
    assert isinstance(loaded.optimizer, keras.optimizers.LossScaleOptimizer)
    kstate = [keras.ops.convert_to_numpy(v) for v in loaded.optimizer.variables]
    state = ours.optimizer.get_state()
    assert len(kstate) == len(state) == 4 + 2 + 2     # momentum of kernel and bias
    for i, (k, f) in enumerate(zip(kstate, state)):
        np.testing.assert_array_equal(k, f, err_msg=f"optimizer variable {i}")
    x2, y2 = _data()
    for model in (loaded, ours):
        model.fit(x2, y2, batch_size=4, epochs=1, shuffle=False, verbose=0)
    _same(loaded, ours)

    path = str(tmp_path / "theirs.keras")
    loaded.save(path)
    back = load_model(path)
    assert isinstance(back.optimizer, O.LossScaleOptimizer)
    assert float(back.optimizer.dynamic_scale) == float(ours.optimizer.dynamic_scale)
    for model in (back, loaded):
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    _same(loaded, back)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(inner_optimizer="adam"), TypeError, "inner_optimizer must be a fastdl Optimizer"),
    (dict(dynamic=False), ValueError, "no longer supports `dynamic=False`"),
    (dict(clipnorm=1.0), ValueError, "does not support `clipnorm`"),
    (dict(foo=1), ValueError, "does not support arguments: `foo`"),
    (dict(dynamic_growth_steps=0), ValueError, "dynamic_growth_steps must be an int >= 1"),
    (dict(initial_scale=0.0), ValueError, "initial_scale"),
    (dict(initial_scale=float("inf")), ValueError, "`initial_scale` must be finite"),
])
def test_bad_arguments(kwargs, error, match):
    kwargs.setdefault("inner_optimizer", O.SGD())
    with pytest.raises(error, match=match):
        O.LossScaleOptimizer(**kwargs)


def test_native_file_keeps_the_state_and_an_unbuilt_one_saves_for_keras(tmp_path):
    from fastdl.saving import load_model, save_model
    x, y = _data()
    model = Sequential([L.Input((3,)), L.Dense(2)])
    model.compile(optimizer=O.LossScaleOptimizer(O.Adam(0.1), initial_scale=8.0,
                                                 dynamic_growth_steps=1), loss="mse")
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    save_model(model, str(tmp_path / "m.fdl"))
    back = load_model(str(tmp_path / "m.fdl"))
    assert isinstance(back.optimizer, O.LossScaleOptimizer)
    assert float(back.optimizer.dynamic_scale) == 32.0 and back.optimizer.iterations == 2
    for a, b in zip(model.optimizer.get_state(), back.optimizer.get_state()):
        np.testing.assert_array_equal(a, b)

    keras = _keras()
    pytest.importorskip("h5py", reason=".keras files hold their weights in HDF5")
    fresh = Sequential([L.Input((3,)), L.Dense(2)])
    fresh.compile(optimizer=O.LossScaleOptimizer(O.SGD(0.1, momentum=0.5)), loss="mse")
    save_model(fresh, str(tmp_path / "fresh.keras"))   # described as freshly built
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theirs = keras.models.load_model(str(tmp_path / "fresh.keras"))
    assert not [w for w in caught if "Skipping" in str(w.message)]
    assert float(keras.ops.convert_to_numpy(theirs.optimizer.dynamic_scale)) == 32768.0
