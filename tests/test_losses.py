"""fastdl.losses: Keras values, float64 gradient checks of forward_backward, float32 vs float64,
shapes, labels, reductions, sample weights, non-finite inputs and lookup."""
import warnings
import zlib

import numpy as np
import pytest

from fastdl import losses as L
from gradcheck import numerical_gradient

EPS = 1e-7


# ----------------------------------------------------------------------------- data makers

def _regression(shape=(4, 3)):
    def make(rng):
        t = rng.normal(size=shape)
        d = rng.uniform(0.1, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        return t, t + d                      # |error| >= 0.1: away from MAE/Huber kinks
    return make


def _huber_data(delta):
    def make(rng):
        t = rng.normal(size=(5, 3))
        mag = rng.uniform(0.05, 2.5 * delta, size=t.shape)
        mag[np.abs(mag - delta) < 0.02 * delta] += 0.05 * delta   # off the |x| = delta kink
        return t, t + mag * rng.choice([-1.0, 1.0], size=t.shape)
    return make


def _positive(shape=(4, 3)):
    def make(rng):
        return rng.uniform(0.0, 3.0, size=shape), rng.uniform(0.2, 2.0, size=shape)
    return make


def _hinge_data(rng):
    t = rng.choice([-1.0, 1.0], size=(4, 3))
    m = rng.uniform(0.1, 1.5, size=t.shape) * rng.choice([-1.0, 1.0], size=t.shape)
    return t, (1.0 - m) * t                   # margin 1 - t*p = m, away from 0


def _hinge01_data(rng):
    t, p = _hinge_data(rng)
    return (t + 1) / 2, p                     # {0, 1} labels are converted to {-1, 1}


def _kld_data(rng):
    t = rng.uniform(0.05, 1.0, size=(4, 5))
    return t / t.sum(-1, keepdims=True), rng.uniform(0.05, 0.95, size=(4, 5))


def _binary_probs(shape=(6, 2), soft=False):
    def make(rng):
        t = rng.uniform(0, 1, size=shape) if soft else rng.integers(0, 2, size=shape) * 1.0
        return t, rng.uniform(0.05, 0.95, size=shape)
    return make


def _binary_logits(shape=(6, 2)):
    def make(rng):
        return rng.integers(0, 2, size=shape) * 1.0, rng.normal(scale=3.0, size=shape)
    return make


def _onehot(shape=(5, 4), axis=-1, logits=False, soft=False, normalized=True):
    def make(rng):
        c = shape[axis]
        if soft:
            t = rng.uniform(0, 1, size=shape)
            if normalized:
                t /= t.sum(axis=axis, keepdims=True)
        else:
            lab = rng.integers(0, c, size=shape[:axis % len(shape)] + shape[axis % len(shape) + 1:])
            t = np.moveaxis(np.eye(c)[lab], -1, axis)
        p = rng.normal(scale=2.0, size=shape) if logits else rng.uniform(0.1, 1.0, size=shape)
        return t, p                           # probabilities unnormalised on purpose
    return make


def _sparse(shape=(6, 4), logits=False, keepdim=False, ignore=None):
    def make(rng):
        c = shape[-1]
        lab = rng.integers(0, c, size=shape[:-1])
        if ignore is not None:
            lab[..., 0] = ignore
        if keepdim:
            lab = lab[..., None]
        p = rng.normal(scale=2.0, size=shape) if logits else rng.uniform(0.1, 1.0, size=shape)
        return lab, p
    return make


CASES = [
    ("mse", lambda: L.MeanSquaredError(), _regression()),
    ("mse_rank3", lambda: L.MeanSquaredError(), _regression((2, 3, 4))),
    ("mse_rank1", lambda: L.MeanSquaredError(), _regression((5,))),
    ("mae", lambda: L.MeanAbsoluteError(), _regression()),
    ("mape", lambda: L.MeanAbsolutePercentageError(), _regression()),
    ("msle", lambda: L.MeanSquaredLogarithmicError(), _positive()),
    ("huber_1", lambda: L.Huber(), _huber_data(1.0)),
    ("huber_0.3", lambda: L.Huber(delta=0.3), _huber_data(0.3)),
    ("log_cosh", lambda: L.LogCosh(), _regression()),
    ("hinge", lambda: L.Hinge(), _hinge_data),
    ("hinge01", lambda: L.Hinge(), _hinge01_data),
    ("squared_hinge", lambda: L.SquaredHinge(), _hinge_data),
    ("poisson", lambda: L.Poisson(), _positive()),
    ("kld", lambda: L.KLDivergence(), _kld_data),
    ("bce", lambda: L.BinaryCrossentropy(), _binary_probs()),
    ("bce_soft", lambda: L.BinaryCrossentropy(), _binary_probs(soft=True)),
    ("bce_ls", lambda: L.BinaryCrossentropy(label_smoothing=0.2), _binary_probs()),
    ("bce_logits", lambda: L.BinaryCrossentropy(from_logits=True), _binary_logits()),
    ("bce_logits_ls", lambda: L.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
     _binary_logits((5, 1))),
    ("cce", lambda: L.CategoricalCrossentropy(), _onehot()),
    ("cce_soft", lambda: L.CategoricalCrossentropy(), _onehot(soft=True)),
    ("cce_ls", lambda: L.CategoricalCrossentropy(label_smoothing=0.1), _onehot()),
    ("cce_logits", lambda: L.CategoricalCrossentropy(from_logits=True), _onehot(logits=True)),
    ("cce_logits_ls", lambda: L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.3),
     _onehot(logits=True)),
    ("cce_logits_soft", lambda: L.CategoricalCrossentropy(from_logits=True),
     _onehot(logits=True, soft=True)),
    ("cce_logits_multilabel", lambda: L.CategoricalCrossentropy(from_logits=True),
     _onehot(logits=True, soft=True, normalized=False)),       # targets not summing to 1
    ("cce_multilabel", lambda: L.CategoricalCrossentropy(),
     _onehot(soft=True, normalized=False)),
    ("cce_rank3", lambda: L.CategoricalCrossentropy(), _onehot((2, 3, 4))),
    ("cce_axis0", lambda: L.CategoricalCrossentropy(axis=0), _onehot((3, 4), axis=0)),
    ("cce_axis1_rank3_logits", lambda: L.CategoricalCrossentropy(axis=1, from_logits=True),
     _onehot((2, 3, 4), axis=1, logits=True)),
    ("cce_axis1_rank3_ls", lambda: L.CategoricalCrossentropy(axis=1, label_smoothing=0.2),
     _onehot((2, 3, 4), axis=1)),
    ("scce", lambda: L.SparseCategoricalCrossentropy(), _sparse()),
    ("scce_keepdim", lambda: L.SparseCategoricalCrossentropy(), _sparse(keepdim=True)),
    ("scce_logits", lambda: L.SparseCategoricalCrossentropy(from_logits=True),
     _sparse(logits=True)),
    ("scce_rank3_logits", lambda: L.SparseCategoricalCrossentropy(from_logits=True),
     _sparse((2, 3, 5), logits=True)),
    ("scce_ignore", lambda: L.SparseCategoricalCrossentropy(ignore_class=-1),
     _sparse((3, 4, 3), ignore=-1)),
    ("scce_ignore_logits", lambda: L.SparseCategoricalCrossentropy(ignore_class=2,
                                                                    from_logits=True),
     _sparse((3, 4, 3), logits=True, ignore=2)),
]
IDS = [c[0] for c in CASES]


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _weights(rng, loss, y_true, y_pred):
    """A sample_weight shaped like the per-sample losses' leading (batch) axis."""
    n = np.shape(y_pred)[0] if np.ndim(y_pred) > 1 or isinstance(loss, L._ElementwiseLoss) \
        else 1
    if isinstance(loss, L.CategoricalCrossentropy) and loss.axis == 0:
        n = np.shape(y_pred)[1]
    return rng.uniform(0.1, 2.0, size=(n,))


def _numeric_grad(loss, y_true, y_pred, sample_weight):
    """Central differences of the reduced loss with respect to y_pred."""
    return numerical_gradient(lambda: loss(y_true, y_pred, sample_weight=sample_weight), y_pred)


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_backward_matches_central_differences(case, weighted):
    name, factory, make = case
    rng = _rng(name, weighted)
    loss = factory()
    y_true, y_pred = make(rng)
    sw = _weights(rng, loss, y_true, y_pred) if weighted else None
    value, grad = loss.forward_backward(y_true, y_pred, sample_weight=sw)
    assert isinstance(value, float)
    assert grad.shape == y_pred.shape and grad.dtype == y_pred.dtype
    assert value == pytest.approx(loss(y_true, y_pred, sample_weight=sw), rel=1e-12, abs=1e-15)
    numeric = _numeric_grad(loss, y_true, y_pred.copy(), sw)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)
    assert np.any(np.abs(grad) > 1e-4)        # a zero gradient would pass trivially


@pytest.mark.parametrize("reduction", ["sum", "mean_with_sample_weight"])
@pytest.mark.parametrize("case", [c for c in CASES if c[0] in
                                  ("mse", "bce_logits", "cce", "scce_logits", "scce_ignore")],
                         ids=lambda c: c[0])
def test_other_reductions_gradients(case, reduction):
    name, factory, make = case
    rng = _rng(name, reduction)
    loss = factory()
    loss.reduction = reduction
    y_true, y_pred = make(rng)
    sw = _weights(rng, loss, y_true, y_pred)
    value, grad = loss.forward_backward(y_true, y_pred, sample_weight=sw)
    assert value == pytest.approx(loss(y_true, y_pred, sample_weight=sw), rel=1e-12)
    np.testing.assert_allclose(grad, _numeric_grad(loss, y_true, y_pred.copy(), sw),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_forward_backward_matches_float64(case):
    name, factory, make = case
    rng = _rng(name, "f32")
    loss = factory()
    y_true, y_pred = make(rng)
    sw = _weights(rng, loss, y_true, y_pred)
    v64, g64 = loss.forward_backward(y_true, y_pred, sample_weight=sw)
    v32, g32 = loss.forward_backward(y_true, y_pred.astype(np.float32), sample_weight=sw)
    assert g32.dtype == np.float32
    assert v32 == pytest.approx(v64, rel=1e-5, abs=1e-6)
    scale = np.max(np.abs(g64))
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-6 * scale)


# ----------------------------------------------------------------------------- Keras numbers

def test_binary_crossentropy_known_values():
    y_true = np.array([[1.0], [0.0]])
    y_pred = np.array([[0.6], [0.4]])
    assert L.BinaryCrossentropy()(y_true, y_pred) == pytest.approx(-np.log(0.6), rel=1e-6)
    np.testing.assert_allclose(L.binary_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]),
                               [0.916, 0.714], atol=1e-3)                 # Keras docstring
    y_true = np.array([[0, 1], [0, 0]])
    logits = np.array([[-18.6, 0.51], [2.94, -12.8]])
    bce = L.BinaryCrossentropy(from_logits=True)
    assert bce(y_true, logits) == pytest.approx(0.8654, abs=1e-4)
    assert bce(y_true, logits, sample_weight=[0.8, 0.2]) == pytest.approx(0.243, abs=1e-3)
    assert L.BinaryCrossentropy(from_logits=True, reduction="sum")(y_true, logits) == \
        pytest.approx(1.730, abs=1e-3)
    np.testing.assert_allclose(L.BinaryCrossentropy(from_logits=True, reduction=None)(
        y_true, logits), [0.235, 1.496], atol=1e-3)
    assert bce(np.array([0, 1, 0, 0]), np.array([-18.6, 0.51, 2.94, -12.8])) == \
        pytest.approx(0.8654, abs=1e-4)


def test_categorical_and_sparse_known_values():
    y_true = np.array([[0, 1, 0], [0, 0, 1]])
    y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    for loss, labels in ((L.CategoricalCrossentropy, y_true),
                         (L.SparseCategoricalCrossentropy, np.array([1, 2]))):
        assert loss()(labels, y_pred) == pytest.approx(1.177, abs=1e-3)
        assert loss()(labels, y_pred, sample_weight=np.array([0.3, 0.7])) == \
            pytest.approx(0.814, abs=1e-3)
        assert loss(reduction="sum")(labels, y_pred) == pytest.approx(2.354, abs=1e-3)
        np.testing.assert_allclose(loss(reduction=None)(labels, y_pred), [0.0513, 2.303],
                                   atol=1e-3)


def test_label_smoothing_known_values():
    # binary: labels move towards 0.5 -> 1 becomes 0.9 with label_smoothing=0.2
    expected = -(0.9 * np.log(0.6) + 0.1 * np.log(0.4))
    assert L.BinaryCrossentropy(label_smoothing=0.2)([[1.0]], [[0.6]]) == pytest.approx(expected)
    x = np.log(0.6 / 0.4)                              # the logit of 0.6
    assert L.BinaryCrossentropy(from_logits=True, label_smoothing=0.2)([[1.0]], [[x]]) == \
        pytest.approx(expected)
    # categorical: y * (1 - ls) + ls / C with C = 4
    p = np.array([[0.1, 0.6, 0.2, 0.1]])
    t = np.array([[0.0, 1.0, 0.0, 0.0]]) * 0.8 + 0.2 / 4
    expected = -np.sum(t * np.log(p))
    assert L.CategoricalCrossentropy(label_smoothing=0.2)(np.eye(4)[[1]], p) == \
        pytest.approx(expected)
    assert L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)(
        np.eye(4)[[1]], np.log(p)) == pytest.approx(expected)
    # along axis 0 the class count is y_pred.shape[0]
    assert L.CategoricalCrossentropy(label_smoothing=0.2, axis=0)(np.eye(4)[[1]].T, p.T) == \
        pytest.approx(expected)


def test_clipped_probabilities_have_zero_gradient():
    t = np.array([[0.5, 0.5]])
    value, grad = L.KLDivergence().forward_backward(t, np.array([[0.0, 1.5]]))
    np.testing.assert_array_equal(grad, 0.0)
    assert value == pytest.approx(0.5 * np.log(0.5 / EPS) + 0.5 * np.log(0.5))
    _, grad = L.MeanSquaredLogarithmicError().forward_backward(np.ones((1, 2)),
                                                               np.array([[-1.0, 0.0]]))
    np.testing.assert_array_equal(grad, 0.0)


def test_regression_known_values():
    y_true = np.array([[0.0, 1.0], [0.0, 0.0]])
    y_pred = np.array([[1.0, 1.0], [1.0, 0.0]])
    assert L.MeanSquaredError()(y_true, y_pred) == pytest.approx(0.5)
    assert L.MeanAbsoluteError()(y_true, y_pred) == pytest.approx(0.5)
    np.testing.assert_allclose(L.mse(y_true, y_pred), [0.5, 0.5])
    assert L.Huber()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]) == pytest.approx(0.155)
    assert L.Huber(delta=0.5)([[0.0]], [[2.0]]) == pytest.approx(0.5 * 2 - 0.125)
    assert L.LogCosh()([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]]) == pytest.approx(0.108,
                                                                                     abs=1e-3)
    assert L.KLDivergence()([[0.5, 0.5]], [[0.25, 0.75]]) == pytest.approx(
        0.5 * np.log(2) + 0.5 * np.log(0.5 / 0.75))
    assert L.Hinge()([[1.0, 0.0]], [[0.3, 0.2]]) == pytest.approx((0.7 + 1.2) / 2)


def test_sum_over_batch_size_divides_by_count_not_weight_sum():
    y_true = np.array([[1.0], [2.0], [3.0], [4.0]])
    y_pred = np.zeros((4, 1))
    w = np.array([1.0, 0.0, 2.0, 0.5])
    per_sample = y_true[:, 0] ** 2
    assert L.MeanSquaredError()(y_true, y_pred, sample_weight=w) == \
        pytest.approx(np.sum(per_sample * w) / 4)
    assert L.MeanSquaredError(reduction="mean_with_sample_weight")(y_true, y_pred, w) == \
        pytest.approx(np.sum(per_sample * w) / w.sum())
    assert L.MeanSquaredError()(y_true, y_pred, sample_weight=w[:, None]) == \
        pytest.approx(np.sum(per_sample * w) / 4)


def test_per_sample_weights_over_sequence_losses():
    rng = _rng("seq")
    labels = rng.integers(0, 3, size=(2, 4))
    logits = rng.normal(size=(2, 4, 3))
    loss = L.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    per = loss(labels, logits)
    assert per.shape == (2, 4)
    w = np.array([2.0, 0.5])
    got = L.SparseCategoricalCrossentropy(from_logits=True)(labels, logits, sample_weight=w)
    assert got == pytest.approx(np.sum(per * w[:, None]) / per.size)


def test_ignore_class_averages_over_valid_entries():
    rng = _rng("ignore")
    labels = np.array([0, 2, -1, 1, -1])
    logits = rng.normal(size=(5, 3))
    loss = L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    valid = labels != -1
    full = L.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(labels[valid],
                                                                            logits[valid])
    value, grad = loss.forward_backward(labels, logits)
    assert value == pytest.approx(full.mean())
    np.testing.assert_array_equal(grad[~valid], 0.0)
    per = L.sparse_categorical_crossentropy(labels, logits, from_logits=True, ignore_class=-1)
    np.testing.assert_array_equal(per[~valid], 0.0)
    all_ignored = np.full(5, -1)
    assert loss(all_ignored, logits) == 0.0
    # ignored rows may hold anything, even all-zero "probabilities" (0/0 inside)
    probs = np.abs(logits)
    probs[~valid] = 0.0
    value, grad = L.SparseCategoricalCrossentropy(ignore_class=-1).forward_backward(labels, probs)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[~valid], 0.0)


def test_fused_logits_path():
    rng = _rng("fused")
    labels = rng.integers(0, 4, size=6)
    logits = rng.normal(size=(6, 4))
    loss = L.SparseCategoricalCrossentropy()           # expects probabilities
    assert loss.expects_probabilities and loss.fused_activation == "softmax"
    value, grad = loss.forward_backward_logits(labels, logits)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert value == pytest.approx(-np.mean(np.log(p[np.arange(6), labels])))
    np.testing.assert_allclose(grad, (p - np.eye(4)[labels]) / 6, rtol=1e-12, atol=1e-15)
    bce = L.BinaryCrossentropy(label_smoothing=0.1)
    t = rng.integers(0, 2, size=(6, 1)) * 1.0
    x = rng.normal(size=(6, 1))
    v, g = bce.forward_backward_logits(t, x)
    ref = L.BinaryCrossentropy(from_logits=True, label_smoothing=0.1).forward_backward(t, x)
    assert v == ref[0]
    np.testing.assert_array_equal(g, ref[1])


# ----------------------------------------------------------------------------- clipping, non-finite

def test_crossentropy_with_probabilities_zero_and_one_stays_finite():
    y_pred = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y_true = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    value, grad = L.CategoricalCrossentropy().forward_backward(y_true, y_pred)
    assert value == pytest.approx((-np.log(EPS) - np.log1p(-EPS)) / 2, rel=1e-6)
    assert np.all(np.isfinite(grad))
    value, grad = L.SparseCategoricalCrossentropy().forward_backward(np.array([1, 1]), y_pred)
    assert value == pytest.approx((-np.log(EPS) - np.log1p(-EPS)) / 2, rel=1e-6)
    assert np.all(np.isfinite(grad))
    value, grad = L.BinaryCrossentropy().forward_backward(np.array([[1.0], [0.0], [1.0]]),
                                                          np.array([[0.0], [1.0], [1.0]]))
    assert value == pytest.approx((-2 * np.log(EPS) - np.log1p(-EPS)) / 3, rel=1e-6)
    np.testing.assert_array_equal(grad, 0.0)          # clipped region: zero gradient


def test_logits_of_plus_minus_1e4_stay_finite_and_exact():
    x = np.array([[1e4], [-1e4], [1e4]])
    t = np.array([[0.0], [1.0], [1.0]])
    for dtype in (np.float32, np.float64):
        value, grad = L.BinaryCrossentropy(from_logits=True).forward_backward(t, x.astype(dtype))
        assert value == pytest.approx(2e4 / 3, rel=1e-6)
        np.testing.assert_allclose(grad, [[1 / 3], [-1 / 3], [0.0]], atol=1e-7)
        logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype)
        value, grad = L.CategoricalCrossentropy(from_logits=True).forward_backward(
            np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]), logits)
        assert value == pytest.approx(1e4, rel=1e-6) and np.all(np.isfinite(grad))
        value, grad = L.SparseCategoricalCrossentropy(from_logits=True).forward_backward(
            np.array([1, 1]), logits)
        assert value == pytest.approx(1e4, rel=1e-6) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_nan_and_inf_inputs_do_not_crash_or_warn(case):
    name, factory, make = case
    loss = factory()
    y_true, y_pred = make(_rng(name, "nan"))
    y_pred = y_pred.copy()
    y_pred.reshape(-1)[0] = np.nan
    y_pred.reshape(-1)[-1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = loss.forward_backward(y_true, y_pred)
        loss(y_true, y_pred)
    assert isinstance(value, float) and grad.shape == y_pred.shape


def test_empty_batch_gives_zero_loss_and_gradient():
    for loss, y_true, y_pred in (
            (L.MeanSquaredError(), np.zeros((0, 2)), np.zeros((0, 2))),
            (L.CategoricalCrossentropy(from_logits=True), np.zeros((0, 3)), np.zeros((0, 3))),
            (L.SparseCategoricalCrossentropy(), np.zeros((0,), int), np.zeros((0, 3))),
            (L.BinaryCrossentropy(), np.zeros((0,)), np.zeros((0, 1)))):
        value, grad = loss.forward_backward(y_true, y_pred, sample_weight=None)
        assert value == 0.0 and grad.shape == y_pred.shape
        assert loss(y_true, y_pred) == 0.0


# ----------------------------------------------------------------------------- shapes and labels

@pytest.mark.parametrize("loss", [L.MeanSquaredError(), L.BinaryCrossentropy(), L.Huber(),
                                  L.MeanAbsoluteError()], ids=lambda l: l.name)
def test_rank_one_labels_against_column_predictions(loss):
    rng = _rng("rank", loss.name)
    y = rng.integers(0, 2, size=32) * 1.0
    p = rng.uniform(0.1, 0.9, size=(32, 1))
    v1, g1 = loss.forward_backward(y, p)
    v2, g2 = loss.forward_backward(y[:, None], p)
    assert g1.shape == (32, 1) and v1 == v2
    np.testing.assert_array_equal(g1, g2)
    v3, g3 = loss.forward_backward(y[:, None], p[:, 0])       # the other way round
    assert g3.shape == (32,) and v3 == pytest.approx(v1)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)"):
        L.MeanSquaredError()(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(1, 3\)"):
        L.BinaryCrossentropy()(np.zeros((3, 1)), np.full((1, 3), 0.5))
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(4, 3\)"):
        L.CategoricalCrossentropy().forward_backward(np.zeros((4, 5)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        L.CategoricalCrossentropy()(np.array([0, 1, 2]), np.ones((3, 3)))
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        L.SparseCategoricalCrossentropy()(np.eye(3), np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"\(5,\).*\(4, 3\)"):
        L.SparseCategoricalCrossentropy()(np.zeros(5, int), np.ones((4, 3)))
    with pytest.raises(ValueError, match="sample_weight"):
        L.MeanSquaredError()(np.zeros((4, 1)), np.zeros((4, 1)), sample_weight=np.ones(3))


def test_sparse_labels_int_float_and_column_agree():
    rng = _rng("labels")
    p = rng.uniform(0.1, 1.0, size=(6, 4))
    lab = rng.integers(0, 4, size=6)
    ref = L.SparseCategoricalCrossentropy().forward_backward(lab, p)
    for variant in (lab[:, None], lab.astype(np.float32), lab.astype(np.float64)[:, None],
                    lab.astype(np.uint8), lab.tolist()):
        v, g = L.SparseCategoricalCrossentropy().forward_backward(variant, p)
        assert v == ref[0]
        np.testing.assert_array_equal(g, ref[1])


@pytest.mark.parametrize("labels", [[0, 1, 4], [0, -1, 2], [0, 1.5, 2], [0, np.nan, 1],
                                    [0, np.inf, 1], [0, 1e30, 1]])
def test_sparse_labels_out_of_range_or_not_integral_raise(labels):
    p = np.full((3, 4), 0.25)
    for loss in (L.SparseCategoricalCrossentropy(), L.SparseCategoricalCrossentropy(True)):
        with pytest.raises(ValueError, match="labels"):
            loss.forward_backward(np.array(labels), p)
    with pytest.raises(ValueError, match="labels"):
        L.sparse_categorical_crossentropy(np.array(labels), p)


def test_functions_return_keras_per_sample_shapes():
    rng = _rng("functions")
    t, p = rng.uniform(size=(4, 3)), rng.uniform(0.1, 0.9, size=(4, 3))
    for fn in (L.mse, L.MSE, L.mae, L.MAE, L.mape, L.msle, L.huber, L.log_cosh, L.hinge,
               L.squared_hinge, L.poisson, L.kld, L.bce, L.BCE, L.binary_crossentropy,
               L.categorical_crossentropy, L.mean_squared_error, L.mean_absolute_error):
        assert fn(t, p).shape == (4,), fn.__name__
    assert L.sparse_categorical_crossentropy(np.array([0, 1, 2, 0]), p).shape == (4,)
    assert np.ndim(L.mse(np.ones(5), np.zeros(5))) == 0          # Keras: a 1-D pair is one sample
    np.testing.assert_allclose(L.mse(t, p), np.mean((t - p) ** 2, axis=-1))


def test_integer_and_list_inputs():
    v, g = L.MeanSquaredError().forward_backward([[1], [2]], [[0], [0]])
    assert v == 2.5 and g.dtype == np.float32


# ----------------------------------------------------------------------------- API

def test_get_resolves_names_aliases_classes_and_configs():
    for name, cls in (("mse", L.MeanSquaredError), ("MSE", L.MeanSquaredError),
                      ("mean_squared_error", L.MeanSquaredError),
                      ("MeanSquaredError", L.MeanSquaredError), ("mae", L.MeanAbsoluteError),
                      ("bce", L.BinaryCrossentropy), ("BCE", L.BinaryCrossentropy),
                      ("binary_crossentropy", L.BinaryCrossentropy),
                      ("categorical_crossentropy", L.CategoricalCrossentropy),
                      ("sparse_categorical_crossentropy", L.SparseCategoricalCrossentropy),
                      ("huber", L.Huber), ("Huber", L.Huber), ("kld", L.KLDivergence)):
        assert type(L.get(name)) is cls, name
    inst = L.CategoricalCrossentropy(from_logits=True)
    assert L.get(inst) is inst
    assert type(L.get(L.Huber)) is L.Huber
    got = L.get({"class_name": "CategoricalCrossentropy",
                 "config": {"from_logits": True, "label_smoothing": 0.1}})
    assert got.from_logits and got.label_smoothing == 0.1
    assert type(L.get({"class_name": "function", "config": "mse"})) is L.MeanSquaredError


def test_unknown_names_are_rejected_and_plain_functions_wrapped():
    with pytest.raises(ValueError, match=r"Unknown loss 'mse2'.*binary_crossentropy.*mse"):
        L.get("mse2")
    wrapped = L.get(lambda y_true, y_pred: 0.0)     # differentiated through the tape
    assert isinstance(wrapped, L.LossFunctionWrapper) and wrapped.name == "<lambda>"
    with pytest.raises(TypeError, match=r"must compute with fastdl.ops .* received float"):
        wrapped.forward_backward(np.zeros((2, 1)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="Unknown loss class"):
        L.get({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError):
        L.get(3)


def test_configs_use_keras_keys_and_round_trip():
    bce = L.BinaryCrossentropy(from_logits=True, label_smoothing=0.2, name="b")
    assert bce.get_config() == {"name": "b", "reduction": "sum_over_batch_size",
                                "from_logits": True, "label_smoothing": 0.2, "axis": -1}
    assert L.MeanSquaredError().get_config() == {"name": "mean_squared_error",
                                                 "reduction": "sum_over_batch_size"}
    assert L.SparseCategoricalCrossentropy(ignore_class=3).get_config()["ignore_class"] == 3
    for loss in (bce, L.CategoricalCrossentropy(label_smoothing=0.1, axis=1), L.Huber(0.5),
                 L.SparseCategoricalCrossentropy(True, ignore_class=0), L.MeanAbsoluteError()):
        clone = type(loss).from_config(loss.get_config())
        assert clone.get_config() == loss.get_config()
        clone2 = L.deserialize(L.serialize(loss))
        assert type(clone2) is type(loss) and clone2.get_config() == loss.get_config()
    assert L.Huber.from_config({"name": "h", "reduction": "sum", "delta": 2.0,
                                "dtype": "float32"}).delta == 2.0


def test_expects_probabilities_flag():
    assert L.BinaryCrossentropy().expects_probabilities
    assert not L.BinaryCrossentropy(from_logits=True).expects_probabilities
    assert L.CategoricalCrossentropy().expects_probabilities
    assert L.SparseCategoricalCrossentropy().expects_probabilities
    assert not L.SparseCategoricalCrossentropy(from_logits=True).expects_probabilities
    assert not L.MeanSquaredError().expects_probabilities


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="label_smoothing"):
        L.BinaryCrossentropy(label_smoothing=1.5)
    with pytest.raises(TypeError, match="from_logits"):
        L.CategoricalCrossentropy(from_logits="yes")
    with pytest.raises(ValueError, match="reduction"):
        L.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError, match="delta"):
        L.Huber(delta=0)
    with pytest.raises(TypeError, match="ignore_class"):
        L.SparseCategoricalCrossentropy(ignore_class=1.5)
    with pytest.raises(ValueError, match="axis"):
        L.CategoricalCrossentropy(axis=True)
    with pytest.raises(ValueError, match="scalar"):
        L.MeanSquaredError(reduction=None).forward_backward(np.ones((2, 1)), np.ones((2, 1)))


def test_reduction_none_returns_weighted_per_sample_values():
    y_true, y_pred = np.array([[1.0], [2.0]]), np.zeros((2, 1))
    np.testing.assert_allclose(L.MeanSquaredError(reduction="none")(y_true, y_pred, [2.0, 1.0]),
                               [2.0, 4.0])


def test_custom_loss_with_call_only_is_differentiated_by_the_tape():
    class Cube(L.Loss):
        def call(self, y_true, y_pred):
            return np.mean((y_pred - y_true) ** 3, axis=-1)

    loss = Cube()
    assert loss.name == "cube"
    assert loss(np.zeros((2, 1)), np.array([[1.0], [2.0]])) == pytest.approx(4.5)
    # d/dp mean_batch((p - t)^3) = 3 (p - t)^2 / 2, sample weights scale each term
    value, grad = loss.forward_backward(np.zeros((2, 1)), np.array([[1.0], [2.0]]), [1.0, 0.5])
    assert value == pytest.approx((1.0 + 0.5 * 8.0) / 2)
    np.testing.assert_allclose(grad, [[3.0 / 2], [0.5 * 3.0 * 4.0 / 2]])
