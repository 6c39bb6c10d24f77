"""fastdl.activations: values, float64 gradient checks, dtypes, stability, lookup."""
import math
import warnings
import zlib

import numpy as np
import pytest

from fastdl import activations as A
from gradcheck import numerical_gradient

# glu halves an axis and threshold needs its arguments: tests/test_keras_names_more.py has them
ALL_NAMES = sorted(set(A._REGISTRY) - {"glu", "threshold"})
# relu, relu6, hard_sigmoid, hard_silu, the shrinks, hard_tanh, sparse_* are not smooth here
KINKS = (-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0)


def _points(rng, shape, lo=-8.0, hi=8.0):
    x = rng.uniform(lo, hi, size=shape)
    for k in KINKS:                     # keep central differences off the kinks
        near = np.abs(x - k) < 0.02
        x[near] += 0.05
    return x


def _numeric_grad(f, x, dy):
    """Central differences of sum(f(x) * dy) with respect to x."""
    return numerical_gradient(lambda: float(np.sum(f(x) * dy)), x)


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
def test_backward_matches_central_differences(name, shape):
    rng = np.random.default_rng(zlib.crc32(repr((name, shape)).encode()))
    act = A.get(name)
    x = _points(rng, shape, -4.0, 4.0) if name == "exponential" else _points(rng, shape)
    dy = rng.normal(size=shape)
    y = act(x)
    analytic = act.backward(x, y, dy)
    numeric = _numeric_grad(act, x.copy(), dy)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_softmax_and_log_softmax_gradients_on_each_axis(axis):
    rng = np.random.default_rng(axis + 10)
    x = rng.normal(size=(2, 3, 4)) * 3
    dy = rng.normal(size=x.shape)
    for act in (A.softmax, A.log_softmax):
        f = lambda v: act(v, axis=axis)      # noqa: E731
        y = f(x)
        np.testing.assert_allclose(act.backward(x, y, dy, axis=axis),
                                   _numeric_grad(f, x.copy(), dy), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(A.softmax(x, axis=axis).sum(axis=axis), 1.0, rtol=1e-12)


@pytest.mark.parametrize("kwargs", [{"negative_slope": 0.05}, {"negative_slope": 1.5}])
def test_leaky_relu_slope_gradient(kwargs):
    rng = np.random.default_rng(1)
    x = _points(rng, (4, 4))
    dy = rng.normal(size=x.shape)
    f = lambda v: A.leaky_relu(v, **kwargs)     # noqa: E731
    np.testing.assert_allclose(A.leaky_relu.backward(x, f(x), dy, **kwargs),
                               _numeric_grad(f, x.copy(), dy), rtol=1e-4, atol=1e-6)


def test_elu_alpha_and_gelu_approximate_gradients():
    rng = np.random.default_rng(2)
    x = _points(rng, (3, 6))
    dy = rng.normal(size=x.shape)
    for act, kw in ((A.elu, {"alpha": 0.3}), (A.gelu, {"approximate": True})):
        f = lambda v: act(v, **kw)              # noqa: E731
        np.testing.assert_allclose(act.backward(x, f(x), dy, **kw),
                                   _numeric_grad(f, x.copy(), dy), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- values

def test_known_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0, 7.0])
    np.testing.assert_array_equal(A.relu(x), [0, 0, 0, 0.5, 2, 7])
    np.testing.assert_array_equal(A.relu6(x), [0, 0, 0, 0.5, 2, 6])
    np.testing.assert_allclose(A.leaky_relu(x), [-0.4, -0.1, 0, 0.5, 2, 7])      # slope 0.2
    np.testing.assert_allclose(A.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(A.tanh(x), np.tanh(x))
    np.testing.assert_allclose(A.elu(x), np.where(x > 0, x, np.expm1(x)), rtol=1e-15)
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    np.testing.assert_allclose(A.selu(x), scale * np.where(x > 0, x, alpha * np.expm1(x)),
                               rtol=1e-15)
    np.testing.assert_allclose(A.softplus(x), np.log1p(np.exp(x)), rtol=1e-15)
    np.testing.assert_allclose(A.softsign(x), x / (1 + np.abs(x)))
    np.testing.assert_allclose(A.silu(x), x / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(A.hard_sigmoid(x), np.clip(x + 3, 0, 6) / 6)      # Keras 3 form
    np.testing.assert_allclose(A.hard_silu(x), x * np.clip(x + 3, 0, 6) / 6)
    np.testing.assert_allclose(A.mish(x), x * np.tanh(np.log1p(np.exp(x))), rtol=1e-14)
    np.testing.assert_allclose(A.exponential(x), np.exp(x))
    np.testing.assert_array_equal(A.linear(x), x)
    np.testing.assert_allclose(A.softmax(np.array([[1.0, 2.0, 3.0]])),
                               [np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum()], rtol=1e-15)


def test_gelu_exact_erf_form_matches_math_erf():
    x = np.concatenate([np.linspace(-12, 12, 2401), [-1e-300, 1e-300, 0.0]])
    ref = np.array([0.5 * v * math.erfc(-v / math.sqrt(2.0)) for v in x])
    got = A.gelu(x)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-300)
    got32 = A.gelu(x.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, ref, rtol=2e-6, atol=1e-7)


def test_gelu_approximate_is_the_tanh_form():
    x = np.linspace(-6, 6, 101)
    ref = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(A.gelu(x, approximate=True), ref, rtol=1e-14, atol=1e-300)
    assert np.max(np.abs(A.gelu(x, approximate=True) - A.gelu(x))) > 1e-5   # really different


def test_sigmoid_and_softplus_keep_relative_accuracy_in_the_tails():
    x = np.array([-700.0, -40.0, -20.0, 20.0, 40.0])
    np.testing.assert_allclose(A.sigmoid(x), np.exp(x) / (1 + np.exp(x)), rtol=1e-13)
    np.testing.assert_allclose(A.softplus(x), np.log1p(np.exp(x)), rtol=1e-13)


# ----------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("name", ALL_NAMES)
def test_float32_matches_float64_and_keeps_dtype(name):
    rng = np.random.default_rng(3)
    x64 = _points(rng, (5, 6), -4.0, 4.0)
    x32 = x64.astype(np.float32)
    act = A.get(name)
    dy64 = rng.normal(size=x64.shape)
    dy32 = dy64.astype(np.float32)
    y32, y64 = act(x32), act(x32.astype(np.float64))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)
    g32 = act.backward(x32, y32, dy32)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, act.backward(x32.astype(np.float64), y64, dy64),
                               rtol=1e-5, atol=1e-5)


def test_non_float_inputs_are_converted_to_float32_and_bad_dtypes_rejected():
    assert A.relu([1, -2, 3]).dtype == np.float32
    assert A.sigmoid(np.arange(3)).dtype == np.float32
    assert A.tanh(np.ones(2, np.float16)).dtype == np.float32
    assert A.relu(np.array([True, False])).dtype == np.float32
    with pytest.raises(TypeError, match="complex"):
        A.relu(np.array([1 + 2j]))
    with pytest.raises(TypeError):
        A.relu(np.array(["a"]))


def test_empty_input_keeps_its_shape():
    for name in ALL_NAMES:
        x = np.zeros((0, 4), np.float32)
        y = A.get(name)(x)
        assert y.shape == (0, 4) and A.get(name).backward(x, y, y).shape == (0, 4)


# ----------------------------------------------------------------------------- stability

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_warnings_and_finite_results_for_huge_inputs(dtype):
    top = float(np.finfo(dtype).max) / 2
    x = np.array([-top, -1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4, top], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for name in ALL_NAMES:
            act = A.get(name)
            y = act(x)
            g = act.backward(x, y, np.ones_like(x))
            if name in ("exponential", "log_softmax"):
                continue                      # exp overflows to inf; log_softmax -> -inf
            assert np.all(np.isfinite(y)), (name, y)
            assert np.all(np.isfinite(g)), (name, g)
        assert A.exponential(np.array([1e4], dtype))[0] == np.inf


def test_stable_values_at_plus_minus_1e4():
    x = np.array([-1e4, 1e4])
    np.testing.assert_array_equal(A.sigmoid(x), [0.0, 1.0])
    np.testing.assert_array_equal(A.softplus(x), [0.0, 1e4])
    np.testing.assert_array_equal(A.elu(x), [-1.0, 1e4])
    np.testing.assert_array_equal(A.gelu(x), [0.0, 1e4])
    np.testing.assert_array_equal(A.softmax(np.array([[1e4, -1e4, 0.0]])), [[1.0, 0.0, 0.0]])


def test_nan_propagates_without_warnings():
    x = np.array([np.nan, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ALL_NAMES:
            y = A.get(name)(x)
            assert np.isnan(y[0]), name


# ----------------------------------------------------------------------------- lookup

def test_get_resolves_names_none_and_instances():
    assert A.get(None) is A.linear
    assert A.get("relu") is A.relu
    assert A.get(A.gelu) is A.gelu
    assert A.get("swish") is A.silu and A.swish is A.silu
    assert A.get("hard_swish") is A.hard_silu
    assert A.get({"module": "keras.activations", "class_name": "function",
                  "config": "tanh", "registered_name": "tanh"}) is A.tanh
    for name in ALL_NAMES:
        act = A.get(name)
        assert isinstance(act, A.ActivationFunction) and act.name == name


def test_serialize_returns_keras_names():
    assert A.serialize(A.relu) == "relu"
    assert A.serialize("swish") == "silu"
    assert A.serialize(None) == "linear"
    assert A.deserialize(A.serialize(A.leaky_relu)) is A.leaky_relu


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown activation 'rleu'.*relu.*sigmoid"):
        A.get("rleu")
    with pytest.raises(ValueError, match="Valid names"):
        A.get("RELU")                          # case-sensitive, as in Keras


def test_plain_callable_is_rejected_with_a_useful_message():
    with pytest.raises(TypeError, match=r"differentiate.*relu"):
        A.get(lambda x: x)
    with pytest.raises(TypeError, match="differentiate"):
        A.get(np.tanh)
    with pytest.raises(TypeError, match="Could not interpret"):
        A.get(3)


def test_custom_activation_function():
    cube = A.ActivationFunction("cube", lambda x: x ** 3, lambda x, y, dy: 3 * x * x * dy)
    assert A.get(cube) is cube
    x = np.array([1.0, -2.0])
    np.testing.assert_allclose(cube(x), [1, -8])
    np.testing.assert_allclose(cube.backward(x, cube(x), np.ones(2)), [3, 12])
    with pytest.raises(TypeError, match="unexpected keyword"):
        A.relu(x, alpha=1.0)
    with pytest.raises(TypeError):
        A.ActivationFunction("bad", None, None)


def test_softmax_axis_validation():
    with pytest.raises(ValueError, match="out of range"):
        A.softmax(np.ones((2, 3)), axis=2)
    with pytest.raises(TypeError):
        A.softmax(np.ones((2, 3)), axis=1.0)


def test_builtins_survive_deepcopy_by_identity():
    import copy
    import pickle
    assert copy.deepcopy(A.relu) is A.relu
    assert pickle.loads(pickle.dumps(A.gelu)) is A.gelu
