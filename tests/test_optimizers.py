"""Optimizers and learning-rate schedules: update rules against float64 references written from
Keras 3's formulas, clipping, weight decay, state round trips, configs, bad arguments."""
import math
import warnings

import numpy as np
import pytest

from fastdl import optimizers
from fastdl.optimizers import schedules
from fastdl.optimizers import base as opt_base
from fastdl.optimizers import Adagrad, Adam, AdamW, RMSprop, SGD

SHAPES = [(3, 4), (5,), (2, 1, 3)]


def f32(x):
    """The float32 value Keras keeps for a float hyperparameter (the learning rate)."""
    return float(np.float32(x))


# -------------------------------------------------------------------------------------------
# float64 references, one step at a time, straight from Keras 3's update rules

def ref_sgd(w, g, st, lr, t, momentum=0.0, nesterov=False):
    if momentum == 0:
        return w - lr * g
    m = st.setdefault("m", np.zeros_like(w))
    m[...] = momentum * m - lr * g
    if nesterov:
        return w + momentum * m - lr * g
    return w + m


def ref_adam(w, g, st, lr, t, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False):
    m = st.setdefault("m", np.zeros_like(w))
    v = st.setdefault("v", np.zeros_like(w))
    alpha = lr * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    m += (g - m) * (1 - beta_1)
    v += (g * g - v) * (1 - beta_2)
    if amsgrad:
        vh = st.setdefault("vh", np.zeros_like(w))
        vh[...] = np.maximum(vh, v)
        v = vh
    return w - alpha * m / (np.sqrt(v) + epsilon)


def ref_rmsprop(w, g, st, lr, t, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    v = st.setdefault("v", np.zeros_like(w))
    v[...] = rho * v + (1 - rho) * g * g
    if centered:
        a = st.setdefault("a", np.zeros_like(w))
        a[...] = rho * a + (1 - rho) * g
        denom = v - a * a + epsilon
    else:
        denom = v + epsilon
    inc = lr * g / np.sqrt(denom)
    if momentum > 0:
        mom = st.setdefault("mom", np.zeros_like(w))
        mom[...] = momentum * mom + inc
        return w - mom
    return w - inc


def ref_adagrad(w, g, st, lr, t, initial_accumulator_value=0.1, epsilon=1e-7):
    acc = st.setdefault("acc", np.full_like(w, initial_accumulator_value))
    acc += g * g
    return w - lr * g / np.sqrt(acc + epsilon)


CASES = [
    ("sgd", SGD, dict(learning_rate=0.1), ref_sgd, {}),
    ("sgd_momentum", SGD, dict(learning_rate=0.1, momentum=0.9), ref_sgd, dict(momentum=0.9)),
    ("sgd_nesterov", SGD, dict(learning_rate=0.1, momentum=0.9, nesterov=True), ref_sgd,
     dict(momentum=0.9, nesterov=True)),
    ("adam", Adam, dict(learning_rate=0.01), ref_adam, {}),
    ("adam_betas", Adam, dict(learning_rate=0.02, beta_1=0.5, beta_2=0.75, epsilon=1e-3),
     ref_adam, dict(beta_1=0.5, beta_2=0.75, epsilon=1e-3)),
    ("adam_amsgrad", Adam, dict(learning_rate=0.01, amsgrad=True), ref_adam,
     dict(amsgrad=True)),
    ("rmsprop", RMSprop, dict(learning_rate=0.01), ref_rmsprop, {}),
    ("rmsprop_momentum", RMSprop, dict(learning_rate=0.01, momentum=0.5), ref_rmsprop,
     dict(momentum=0.5)),
    ("rmsprop_centered", RMSprop, dict(learning_rate=0.01, rho=0.8, centered=True),
     ref_rmsprop, dict(rho=0.8, centered=True)),
    ("rmsprop_centered_momentum", RMSprop,
     dict(learning_rate=0.01, momentum=0.3, centered=True), ref_rmsprop,
     dict(momentum=0.3, centered=True)),
    ("adagrad", Adagrad, dict(learning_rate=0.1), ref_adagrad, {}),
    ("adagrad_init", Adagrad, dict(learning_rate=0.1, initial_accumulator_value=0.5,
                                   epsilon=1e-4), ref_adagrad,
     dict(initial_accumulator_value=0.5, epsilon=1e-4)),
]


def run_reference(ref, kw, lr_at, ws, grads_seq, weight_decay=None):
    ws = [w.astype(np.float64) for w in ws]
    states = [dict() for _ in ws]
    for t, grads in enumerate(grads_seq, start=1):
        lr = lr_at(t - 1)
        for i, g in enumerate(grads):
            if weight_decay:
                ws[i] = ws[i] - ws[i] * weight_decay * lr
            ws[i] = ref(ws[i], g.astype(np.float64), states[i], lr, t, **kw)
    return ws


def make_problem(dtype, steps=6, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads_seq = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return ws, grads_seq


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_update_rule_matches_float64_reference(case, dtype):
    _, cls, kwargs, ref, ref_kw = case
    ws, grads_seq = make_problem(dtype)
    start = [w.copy() for w in ws]
    opt = cls(**kwargs)
    for grads in grads_seq:
        opt.apply(grads, ws)
    lr = f32(kwargs["learning_rate"])
    expected = run_reference(ref, ref_kw, lambda step: lr, start, grads_seq)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for w, e in zip(ws, expected):
        assert w.dtype == dtype
        np.testing.assert_allclose(w, e, **tol)
    assert opt.iterations == len(grads_seq)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("sgd", "sgd_momentum", "adam",
                                                               "rmsprop", "adagrad")],
                         ids=lambda c: c[0])
def test_weight_decay_is_decoupled_and_uses_lr(case):
    _, cls, kwargs, ref, ref_kw = case
    ws, grads_seq = make_problem(np.float64, seed=1)
    start = [w.copy() for w in ws]
    opt = cls(weight_decay=0.05, **kwargs)
    for grads in grads_seq:
        opt.apply(grads, ws)
    lr = f32(kwargs["learning_rate"])
    expected = run_reference(ref, ref_kw, lambda s: lr, start, grads_seq, weight_decay=0.05)
    without = run_reference(ref, ref_kw, lambda s: lr, start, grads_seq)
    for w, e, n in zip(ws, expected, without):
        np.testing.assert_allclose(w, e, rtol=1e-12, atol=1e-13)
        assert not np.allclose(w, n, rtol=1e-6, atol=0)   # the decay really acted


def test_adamw_default_weight_decay_and_reference():
    opt = AdamW()
    assert opt.weight_decay == 0.004 and opt.get_config()["weight_decay"] == 0.004
    ws, grads_seq = make_problem(np.float64, seed=2)
    start = [w.copy() for w in ws]
    opt = AdamW(learning_rate=0.05, weight_decay=0.1, amsgrad=True)
    for grads in grads_seq:
        opt.apply(grads, ws)
    expected = run_reference(ref_adam, dict(amsgrad=True), lambda s: f32(0.05), start,
                             grads_seq, weight_decay=0.1)
    for w, e in zip(ws, expected):
        np.testing.assert_allclose(w, e, rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="weight_decay"):
        AdamW(weight_decay=None)


def test_exclude_from_weight_decay():
    a = np.ones(3)
    b = np.ones(3)
    opt = SGD(learning_rate=0.5, weight_decay=0.2)
    opt.exclude_from_weight_decay(var_list=[b])
    opt.apply([np.zeros(3), np.zeros(3)], [a, b])
    np.testing.assert_allclose(a, 1 - 0.2 * 0.5)
    np.testing.assert_array_equal(b, 1.0)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_list=[a])


def test_weight_decay_set_after_build_takes_effect():
    w = np.ones(2)
    opt = SGD(learning_rate=0.5)
    opt.apply([np.zeros(2)], [w])
    np.testing.assert_array_equal(w, 1.0)
    opt.weight_decay = 0.1
    opt.apply([np.zeros(2)], [w])
    np.testing.assert_allclose(w, 1 - 0.05)


# -------------------------------------------------------------------------------------------
# clipping (Keras's vectors)

def sgd_step(grads, shapes=None, **kwargs):
    """One SGD(lr=1) step from zeros: the variables become minus the processed gradients."""
    ws = [np.zeros(np.shape(g)) for g in grads]
    SGD(learning_rate=1.0, **kwargs).apply([np.array(g, float) for g in grads], ws)
    return [-w for w in ws]


def test_clipnorm():
    (g,) = sgd_step([[100.0, 100.0]], clipnorm=1.0)
    np.testing.assert_allclose(g, [0.7071067811865475] * 2, rtol=1e-12)
    # per variable: a small gradient is left alone, a large one is scaled to norm 1
    g1, g2 = sgd_step([[0.3, 0.4], [30.0, 40.0]], clipnorm=1.0)
    np.testing.assert_allclose(g1, [0.3, 0.4], rtol=1e-12)
    np.testing.assert_allclose(g2, [0.6, 0.8], rtol=1e-12)


def test_clipvalue():
    (g,) = sgd_step([[100.0, 100.0]], clipvalue=1.0)
    np.testing.assert_array_equal(g, [1.0, 1.0])
    (g,) = sgd_step([[-5.0, 0.25, 3.0]], clipvalue=0.5)
    np.testing.assert_array_equal(g, [-0.5, 0.25, 0.5])


def test_global_clipnorm():
    (g,) = sgd_step([[50.0, 100.0]], global_clipnorm=1.0)
    np.testing.assert_allclose(g, np.array([50.0, 100.0]) / math.hypot(50, 100), rtol=1e-12)
    # across variables: the global norm of ([3], [4]) is 5
    g1, g2 = sgd_step([[3.0], [4.0]], global_clipnorm=1.0)
    np.testing.assert_allclose([g1[0], g2[0]], [0.6, 0.8], rtol=1e-12)
    # below the threshold nothing changes
    g1, g2 = sgd_step([[0.3], [0.4]], global_clipnorm=1.0)
    np.testing.assert_allclose([g1[0], g2[0]], [0.3, 0.4], rtol=1e-12)


def test_clipping_on_the_subset_path_matches():
    a, b = np.zeros(2), np.zeros(2)
    opt = SGD(learning_rate=1.0, global_clipnorm=1.0)
    opt.build([a, b])
    opt.apply([np.array([50.0, 100.0])], [b])     # subset of the built variables
    np.testing.assert_allclose(-b, np.array([50.0, 100.0]) / math.hypot(50, 100), rtol=1e-12)
    np.testing.assert_array_equal(a, 0.0)


@pytest.mark.parametrize("kw", [dict(clipnorm=1.0, clipvalue=1.0),
                                dict(clipnorm=1.0, global_clipnorm=1.0),
                                dict(clipvalue=1.0, global_clipnorm=1.0)])
def test_two_clip_options_rejected(kw):
    with pytest.raises(ValueError, match="Only one of"):
        Adam(**kw)


def test_loss_scale_factor_divides_gradients():
    (g,) = sgd_step([[8.0, -4.0]], loss_scale_factor=4.0)
    np.testing.assert_allclose(g, [2.0, -1.0])


# -------------------------------------------------------------------------------------------
# schedules

def test_exponential_decay_values():
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    for step, want in [(0, 0.1), (5, 0.1 * 0.5 ** 0.5), (10, 0.05), (25, 0.1 * 0.5 ** 2.5)]:
        assert s(step) == pytest.approx(want, rel=1e-12)
    st = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert [st(k) for k in (0, 9, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_piecewise_constant_decay_values():
    s = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    got = [s(k) for k in (0, 10, 11, 20, 21, 1000)]
    assert got == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    assert schedules.PiecewiseConstantDecay([], [0.3])(7) == 0.3


def test_cosine_decay_values():
    s = schedules.CosineDecay(1.0, decay_steps=100)
    assert [s(k) for k in (0, 50, 100, 200)] == pytest.approx([1.0, 0.5, 0.0, 0.0], abs=1e-12)
    s = schedules.CosineDecay(2.0, 100, alpha=0.1)
    assert s(50) == pytest.approx(2.0 * (0.9 * 0.5 + 0.1))
    assert s(100) == pytest.approx(0.2)
    w = schedules.CosineDecay(0.0, 100, warmup_target=1.0, warmup_steps=10)
    assert [w(k) for k in (0, 5, 10, 60, 110, 1000)] == pytest.approx(
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.0], abs=1e-12)
    # warmup_target with no warmup steps decays from the target
    assert schedules.CosineDecay(0.1, 10, warmup_target=1.0)(0) == pytest.approx(1.0)


def test_inverse_time_decay_values():
    s = schedules.InverseTimeDecay(1.0, decay_steps=10, decay_rate=0.5)
    assert [s(k) for k in (0, 10, 20, 15)] == pytest.approx([1.0, 1 / 1.5, 0.5, 1 / 1.75])
    st = schedules.InverseTimeDecay(1.0, 10, 0.5, staircase=True)
    assert st(15) == pytest.approx(1 / 1.5)


def test_polynomial_decay_values():
    s = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, power=2.0)
    assert [s(k) for k in (0, 5, 10, 20)] == pytest.approx([1.0, 0.25, 0.0, 0.0])
    c = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, cycle=True)
    assert c(15) == pytest.approx(0.25)


SCHEDULES = [
    schedules.ExponentialDecay(0.1, 7, 0.9, staircase=True),
    schedules.PiecewiseConstantDecay([3, 8], [0.3, 0.2, 0.1]),
    schedules.CosineDecay(0.01, 50, alpha=0.2, warmup_target=0.1, warmup_steps=5),
    schedules.InverseTimeDecay(0.5, 4, 0.3),
    schedules.PolynomialDecay(0.5, 9, 0.01, power=0.5, cycle=True),
]


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: type(s).__name__)
def test_schedule_config_round_trip(s):
    again = type(s).from_config(s.get_config())
    d = schedules.serialize(s)
    assert d["class_name"] == type(s).__name__ and d["module"] == "keras.optimizers.schedules"
    again2 = schedules.deserialize(d)
    for k in (0, 1, 4, 9, 60):
        assert again(k) == s(k) == again2(k)


@pytest.mark.parametrize("make", [
    lambda: schedules.ExponentialDecay(0.1, 0, 0.5),
    lambda: schedules.ExponentialDecay(0.1, -3, 0.5),
    lambda: schedules.ExponentialDecay(-0.1, 3, 0.5),
    lambda: schedules.ExponentialDecay(0.1, 3, 0.0),
    lambda: schedules.ExponentialDecay(0.1, 3, 0.5, staircase="yes"),
    lambda: schedules.ExponentialDecay(True, 3, 0.5),
    lambda: schedules.InverseTimeDecay(0.1, 0, 0.5),
    lambda: schedules.CosineDecay(0.1, 0),
    lambda: schedules.CosineDecay(0.1, 10, alpha=1.5),
    lambda: schedules.CosineDecay(0.1, 10, warmup_steps=-1),
    lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2]),
    lambda: schedules.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3]),
    lambda: schedules.PiecewiseConstantDecay([1, float("nan")], [0.1, 0.2, 0.3]),
    lambda: schedules.PolynomialDecay(0.1, 0),
])
def test_schedule_bad_arguments(make):
    with pytest.raises(ValueError, match="Received"):
        make()


def test_schedule_unknown_name_rejected():
    with pytest.raises(ValueError, match="Unknown learning rate schedule"):
        schedules.deserialize({"class_name": "os.system", "config": {}})


def test_optimizer_evaluates_schedule_at_iterations():
    s = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = SGD(learning_rate=s)
    w = np.zeros(2)
    lrs = []
    for k in range(4):
        assert opt.learning_rate == pytest.approx(s(k))
        lrs.append(opt.learning_rate)
        opt.apply([np.ones(2)], [w])
    np.testing.assert_allclose(w, -sum(lrs) * np.ones(2), rtol=1e-12)
    assert sum(lrs) == pytest.approx(0.1 + 0.05 + 0.025 + 0.0125)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.3


def test_callable_learning_rates():
    w = np.zeros(1)
    opt = SGD(learning_rate=lambda: 0.25)
    opt.apply([np.ones(1)], [w])
    assert w[0] == -0.25 and opt.learning_rate == 0.25
    steps = []

    def by_step(step):
        steps.append(step)
        return 0.1 * (step + 1)

    w = np.zeros(1)
    opt = SGD(learning_rate=by_step)
    opt.apply([np.ones(1)], [w])
    opt.apply([np.ones(1)], [w])
    assert steps == [0, 1]
    assert w[0] == pytest.approx(-0.3)


def test_learning_rate_property_and_setter():
    opt = Adam(learning_rate=0.1)
    assert opt.learning_rate == f32(0.1)    # float32, like Keras's variable
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5
    assert float(opt.variables[1]) == 0.5
    for bad in (-0.1, float("nan"), True, "0.1", None):
        with pytest.raises(ValueError, match="learning_rate"):
            opt.learning_rate = bad
    assert opt.learning_rate == 0.5


# -------------------------------------------------------------------------------------------
# state: variables order, get_state / set_state

def test_variables_layout_keras_order():
    a, b = np.zeros((2, 3), np.float32), np.zeros(4, np.float32)
    opt = Adam(learning_rate=0.1, amsgrad=True)
    opt.apply([np.ones((2, 3), np.float32), 2 * np.ones(4, np.float32)], [a, b])
    vs = opt.variables
    assert [v.shape for v in vs] == [(), (), (2, 3), (2, 3), (4,), (4,), (2, 3), (4,)]
    assert vs[0].dtype == np.int64 and int(vs[0]) == 1
    assert vs[1].dtype == np.float32 and float(vs[1]) == f32(0.1)
    # m then v of a, m then v of b, then the velocity_hats
    np.testing.assert_allclose(vs[2], 0.1)           # m_a = (1 - 0.9) * 1
    np.testing.assert_allclose(vs[3], 0.001, rtol=1e-6)   # v_a = (1 - 0.999) * 1
    np.testing.assert_allclose(vs[4], 0.2, rtol=1e-6)
    np.testing.assert_allclose(vs[5], 0.004, rtol=1e-6)
    np.testing.assert_allclose(vs[6], 0.001, rtol=1e-6)
    np.testing.assert_allclose(vs[7], 0.004, rtol=1e-6)

    opt = RMSprop(momentum=0.5, centered=True)
    opt.build([a, b])
    assert [v.shape for v in opt.variables] == [(), (), (2, 3), (4,), (2, 3), (4,), (2, 3),
                                                (4,)]
    assert len(SGD().variables) == 2
    opt = SGD(momentum=0.5)
    opt.build([a, b])
    assert [v.shape for v in opt.variables] == [(), (), (2, 3), (4,)]
    opt = Adagrad(initial_accumulator_value=0.25)
    opt.build([a])
    np.testing.assert_array_equal(opt.variables[2], 0.25)
    # a schedule has no learning-rate variable (Keras tracks none)
    opt = SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9), momentum=0.5)
    opt.build([a])
    assert [v.shape for v in opt.variables] == [(), (2, 3)]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_resume_equals_uninterrupted_bitwise(case):
    _, cls, kwargs, _, _ = case
    ws, grads_seq = make_problem(np.float32, steps=8, seed=3)
    ws_a = [w.copy() for w in ws]
    opt_a = cls(weight_decay=0.01, **kwargs)
    for grads in grads_seq:
        opt_a.apply(grads, ws_a)

    ws_b = [w.copy() for w in ws]
    opt_b = cls(weight_decay=0.01, **kwargs)
    for grads in grads_seq[:3]:
        opt_b.apply(grads, ws_b)
    state = opt_b.get_state()
    saved_w = [w.copy() for w in ws_b]
    # continue in a fresh optimizer (as after save + load)
    opt_c = cls.from_config(opt_b.get_config())
    opt_c.build(saved_w)
    opt_c.set_state(state)
    for x, y in zip(opt_c.get_state(), state):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()
    for grads in grads_seq[3:]:
        opt_c.apply(grads, saved_w)
    for x, y in zip(saved_w, ws_a):
        assert x.tobytes() == y.tobytes()
    assert opt_c.iterations == opt_a.iterations == 8


def test_set_state_validates_before_writing():
    a = np.zeros(3)
    opt = Adam()
    opt.apply([np.ones(3)], [a])
    before = opt.get_state()
    good = opt.get_state()
    bad_cases = [good[:-1], good + [np.zeros(3)],
                 good[:2] + [np.zeros(4)] + good[3:],
                 [np.array(-1)] + good[1:],
                 [np.array(1.5)] + good[1:],
                 good[:1] + [np.array(np.nan, np.float32)] + good[2:],
                 good[:2] + [np.zeros(3, complex)] + good[3:]]
    for bad in bad_cases:
        with pytest.raises(ValueError):
            opt.set_state(bad)
        for x, y in zip(opt.get_state(), before):
            assert x.tobytes() == y.tobytes()
    with pytest.raises(ValueError, match="not built"):
        Adam().set_state(good)


def test_save_own_variables_round_trip():
    a = np.zeros((2, 2), np.float32)
    opt = RMSprop(momentum=0.2)
    opt.apply([np.ones((2, 2), np.float32)], [a])
    store = {}
    opt.save_own_variables(store)
    assert sorted(store, key=int) == ["0", "1", "2", "3"]
    other = RMSprop(momentum=0.2)
    other.build([np.zeros((2, 2), np.float32)])
    other.load_own_variables(store)
    for x, y in zip(other.get_state(), opt.get_state()):
        assert x.tobytes() == y.tobytes()


# -------------------------------------------------------------------------------------------
# apply: paths and validation

def test_failed_apply_changes_nothing():
    a, b = np.ones((2, 2)), np.ones(3)
    opt = Adam(learning_rate=0.1)
    opt.apply([np.ones((2, 2)), np.ones(3)], [a, b])
    state, wa, wb = opt.get_state(), a.copy(), b.copy()
    with pytest.raises(ValueError, match="shape"):
        opt.apply([np.ones((2, 2)), np.ones(4)], [a, b])
    with pytest.raises(ValueError, match="shape"):
        opt.apply([np.ones((1,)), np.ones(3)], [a, b])     # would broadcast: must not
    with pytest.raises(ValueError):
        opt.apply([np.ones((2, 2))], [a, b])
    with pytest.raises(ValueError, match="Unknown variable"):
        opt.apply([np.ones(3)], [np.ones(3)])
    with pytest.raises(ValueError, match="No gradients"):
        opt.apply([None, None], [a, b])
    assert a.tobytes() == wa.tobytes() and b.tobytes() == wb.tobytes()
    for x, y in zip(opt.get_state(), state):
        assert x.tobytes() == y.tobytes()
    assert opt.iterations == 1


def test_apply_without_variables_needs_build():
    with pytest.raises(ValueError, match="build"):
        SGD().apply([np.ones(2)])
    w = np.zeros(2)
    opt = SGD(learning_rate=1.0)
    opt.build([w])
    opt.apply([np.ones(2)])
    np.testing.assert_array_equal(w, -1.0)


def test_subset_and_none_gradients_match_full_updates():
    rng = np.random.default_rng(4)
    a0, b0 = rng.standard_normal(3), rng.standard_normal(4)
    ga, gb = rng.standard_normal(3), rng.standard_normal(4)
    a, b = a0.copy(), b0.copy()
    opt = Adam(learning_rate=0.1)
    opt.build([a, b])
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        opt.apply([None, gb], [a, b])
    opt.apply([ga], [a])                    # subset, other order of use
    assert opt.iterations == 2
    ref_b = ref_adam(b0.copy(), gb, {}, f32(0.1), 1)
    ref_a = ref_adam(a0.copy(), ga, {}, f32(0.1), 2)      # a's first update happens at t=2
    np.testing.assert_allclose(b, ref_b, rtol=1e-12)
    np.testing.assert_allclose(a, ref_a, rtol=1e-12)


def test_apply_gradients_and_list_gradients():
    w = np.zeros(3)
    opt = SGD(learning_rate=0.5)
    it = opt.apply_gradients([(np.array([1.0, 2.0, 3.0]), w)])
    assert it == 1
    np.testing.assert_allclose(w, [-0.5, -1.0, -1.5])
    opt.apply([[1.0, 1.0, 1.0]], [w])       # array-like gradient
    np.testing.assert_allclose(w, [-1.0, -1.5, -2.0])
    opt.apply([], [])                        # no-op like Keras
    assert opt.iterations == 2


def test_chunked_path_and_mixed_dtypes_and_odd_layouts():
    rng = np.random.default_rng(5)
    big = rng.standard_normal(opt_base._CHUNK * 2 + 123)          # > one chunk
    small32 = rng.standard_normal((4, 5)).astype(np.float32)
    empty = np.zeros((0, 3))
    base = rng.standard_normal((6, 8))
    strided = base.T[::2]                                         # non-contiguous view
    ws = [big, small32, empty, strided]
    start = [w.astype(np.float64) for w in ws]
    grads_seq = [[rng.standard_normal(w.shape).astype(w.dtype) for w in ws] for _ in range(3)]
    opt = Adam(learning_rate=0.01, clipvalue=1.5)
    for grads in grads_seq:
        opt.apply(grads, ws)
    clipped = [[np.clip(g.astype(np.float64), -1.5, 1.5) for g in grads] for grads in grads_seq]
    expected = run_reference(ref_adam, {}, lambda s: f32(0.01), start, clipped)
    np.testing.assert_allclose(big, expected[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(small32, expected[1], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(strided, expected[3], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(base.T[::2], expected[3], rtol=1e-12)   # written in place
    assert small32.dtype == np.float32


def test_build_rejects_bad_variables():
    with pytest.raises(ValueError, match="float"):
        SGD().build([np.zeros(3, np.int32)])
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        SGD().build([ro])
    w = np.zeros(3)
    with pytest.raises(ValueError, match="twice"):
        SGD().build([w, w])
    with pytest.raises(ValueError, match="NumPy array"):
        SGD().build([[0.0, 1.0]])


# -------------------------------------------------------------------------------------------
# configs, get / serialize / deserialize

CONFIG_CASES = [
    (SGD, dict(learning_rate=0.2, momentum=0.5, nesterov=True, clipnorm=2.0, name="s")),
    (Adam, dict(learning_rate=0.003, beta_1=0.8, beta_2=0.99, epsilon=1e-5, amsgrad=True,
                weight_decay=0.01, clipvalue=0.5)),
    (AdamW, dict(learning_rate=0.002, weight_decay=0.02, global_clipnorm=3.0)),
    (RMSprop, dict(learning_rate=0.01, rho=0.8, momentum=0.1, epsilon=1e-6, centered=True)),
    (Adagrad, dict(learning_rate=0.05, initial_accumulator_value=0.2, epsilon=1e-6)),
    (Adam, dict(learning_rate=schedules.CosineDecay(0.01, 100, alpha=0.1))),
]


@pytest.mark.parametrize("cls,kw", CONFIG_CASES, ids=lambda x: getattr(x, "__name__", ""))
def test_config_round_trip(cls, kw):
    opt = cls(**kw)
    cfg = opt.get_config()
    for key in ("name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm",
                "clipvalue", "use_ema", "ema_momentum", "ema_overwrite_frequency",
                "loss_scale_factor", "gradient_accumulation_steps"):
        assert key in cfg
    assert cfg["use_ema"] is False
    for k, v in kw.items():
        if k == "learning_rate" and isinstance(v, float):
            assert cfg[k] == f32(v)
        elif k == "learning_rate":
            assert cfg[k]["class_name"] == "CosineDecay"
        else:
            assert cfg[k] == v
    again = cls.from_config(cfg)
    assert again.get_config() == cfg
    ser = optimizers.serialize(opt)
    assert ser["class_name"] == cls.__name__ and ser["module"] == "keras.optimizers"
    assert optimizers.deserialize(ser).get_config() == cfg
    import json
    assert json.loads(json.dumps(ser)) == ser          # JSON-serializable


def test_get():
    for name, cls in [("sgd", SGD), ("SGD", SGD), ("Adam", Adam), ("ADAMW", AdamW),
                      ("rmsprop", RMSprop), ("RMSProp", RMSprop), ("adagrad", Adagrad)]:
        opt = optimizers.get(name)
        assert type(opt) is cls
    opt = Adam()
    assert optimizers.get(opt) is opt
    cfg = {"class_name": "Adam", "config": {"learning_rate": 0.5}}
    assert optimizers.get(cfg).learning_rate == 0.5
    assert optimizers.get(None) is None
    with pytest.raises(ValueError, match="'adagrad'.*'sgd'"):
        optimizers.get("adafactor")
    with pytest.raises(ValueError):
        optimizers.get(3)
    with pytest.raises(ValueError, match="Unknown optimizer"):
        optimizers.deserialize({"class_name": "Nope", "config": {}})


def test_default_hyperparameters_match_keras():
    assert SGD().get_config()["learning_rate"] == f32(0.01)
    c = Adam().get_config()
    assert (c["learning_rate"], c["beta_1"], c["beta_2"], c["epsilon"], c["amsgrad"],
            c["name"]) == (f32(0.001), 0.9, 0.999, 1e-7, False, "adam")
    c = RMSprop().get_config()
    assert (c["rho"], c["momentum"], c["epsilon"], c["centered"], c["name"]) == (
        0.9, 0.0, 1e-7, False, "rmsprop")
    c = Adagrad().get_config()
    assert (c["learning_rate"], c["initial_accumulator_value"], c["epsilon"]) == (
        f32(0.001), 0.1, 1e-7)
    assert SGD().name == "SGD" and AdamW().name == "adamw"


# -------------------------------------------------------------------------------------------
# bad hyperparameters

BAD = [
    (SGD, dict(learning_rate=-0.1)), (SGD, dict(learning_rate=True)),
    (SGD, dict(learning_rate="0.1")), (SGD, dict(learning_rate=float("nan"))),
    (SGD, dict(learning_rate=float("inf"))), (SGD, dict(learning_rate=None)),
    (SGD, dict(momentum=-0.1)), (SGD, dict(momentum=1.5)), (SGD, dict(momentum=True)),
    (SGD, dict(nesterov="yes")),
    (Adam, dict(beta_1=1.0)), (Adam, dict(beta_1=-0.1)), (Adam, dict(beta_2=1.0)),
    (Adam, dict(beta_2=True)), (Adam, dict(epsilon=-1e-7)), (Adam, dict(amsgrad=1)),
    (AdamW, dict(weight_decay=-0.1)),
    (RMSprop, dict(rho=1.0)), (RMSprop, dict(rho=-0.5)), (RMSprop, dict(momentum=-1.0)),
    (RMSprop, dict(centered="no")), (RMSprop, dict(epsilon=float("nan"))),
    (Adagrad, dict(initial_accumulator_value=-0.1)), (Adagrad, dict(epsilon=-1.0)),
    (Adam, dict(clipnorm=-1.0)), (Adam, dict(clipvalue=-1.0)),
    (Adam, dict(global_clipnorm=False)), (Adam, dict(weight_decay=-0.01)),
    (Adam, dict(weight_decay=True)), (Adam, dict(loss_scale_factor=0.0)),
    (Adam, dict(name=3)),
]


@pytest.mark.parametrize("cls,kw", BAD, ids=[f"{c.__name__}-{list(k.items())[0]}" for c, k in BAD])
def test_bad_hyperparameters(cls, kw):
    with pytest.raises(ValueError, match="Received"):
        cls(**kw)


def test_unknown_kwargs_and_bad_ema_or_accumulation_settings():
    with pytest.raises(ValueError, match="not recognized"):
        Adam(lr=0.1)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        Adam(decay=0.1)
    assert any("decay" in str(w.message) for w in rec)
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        Adam(gradient_accumulation_steps=1)
    with pytest.raises(ValueError, match="ema_overwrite_frequency"):
        Adam(use_ema=True, ema_overwrite_frequency=0)
    with pytest.raises(ValueError, match="use_ema"):
        Adam(use_ema=1)


def test_numpy_scalars_accepted():
    opt = SGD(learning_rate=np.float32(0.5), momentum=np.float64(0.25))
    assert opt.learning_rate == 0.5 and opt.momentum == 0.25
    assert SGD(learning_rate=1).learning_rate == 1.0


# -------------------------------------------------------------------------------------------
# the fused C++ updates (float32/float64) against the NumPy form of the same rule

FUSED_CASES = [
    (Adam, {}), (Adam, {"amsgrad": True}), (AdamW, {}),
    (RMSprop, {}), (RMSprop, {"momentum": 0.9}), (RMSprop, {"centered": True}),
    (RMSprop, {"momentum": 0.5, "centered": True}),
]


def _numpy_only(opt):
    """The same optimizer forced onto its chunked NumPy kernel."""
    opt._fused = lambda g, slots, coeffs: False
    return opt


@pytest.mark.parametrize("cls,kw", FUSED_CASES, ids=lambda c: getattr(c, "__name__", str(c)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [7, 70_001])  # one element; more than one thread's threshold
def test_fused_update_is_bitwise_the_numpy_rule(cls, kw, dtype, size):
    rng = np.random.default_rng(size)
    w0 = [rng.standard_normal(size).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)]
    fused, plain = cls(learning_rate=0.01, **kw), _numpy_only(cls(learning_rate=0.01, **kw))
    wf, wp = [w.copy() for w in w0], [w.copy() for w in w0]
    for step in range(4):
        grads = [rng.standard_normal(w.shape).astype(dtype) * 10.0 ** (step - 2) for w in w0]
        fused.apply([g.copy() for g in grads], wf)
        plain.apply([g.copy() for g in grads], wp)
    for a, b in zip(wf + fused.variables[2:], wp + plain.variables[2:]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(wf, w0))  # it did update


def test_fused_path_runs_for_float32_and_not_float16(monkeypatch):
    from fastdl import _core
    calls = []
    real = _core.adam_update
    monkeypatch.setattr(_core, "adam_update", lambda *a: calls.append(a[0].dtype) or real(*a))
    for dtype in (np.float32, np.float16):
        Adam().apply([np.ones(4, dtype)], [np.zeros(4, dtype)])
    assert calls == [np.float32]


@pytest.mark.parametrize("cls,kw", [(Adam, {"amsgrad": True}), (RMSprop, {"centered": True})])
def test_fused_update_propagates_nan_like_numpy(cls, kw):
    fused, plain = cls(**kw), _numpy_only(cls(**kw))
    g = np.array([np.nan, 1.0, -np.inf, 0.0], np.float32)
    wf, wp = [np.ones(4, np.float32)], [np.ones(4, np.float32)]
    fused.apply([g.copy()], wf)
    with np.errstate(invalid="ignore"):
        plain.apply([g.copy()], wp)
    for a, b in zip(wf + fused.variables[2:], wp + plain.variables[2:]):
        np.testing.assert_array_equal(a, b)

