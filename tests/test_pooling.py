"""fastdl.ops.core.pool (C++ max/avg pooling) and the pooling layers against naive float64 references."""
import itertools

import numpy as np
import pytest

import fastdl
from fastdl import _core
from fastdl.ops.core import pool

import reference_conv as ref
from gradcheck import numerical_gradient


def tie_free(rng, shape, dtype=np.float64):
    """A random permutation of arange, scaled: no two elements equal, so max gradients are defined."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) / max(n, 1) - 0.5).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


SIZES = [(5, 5), (6, 8), (7, 4)]
SWEEP = list(itertools.product([0, 1, 3], [1, 3, 4], [(2, 2), (3, 3), (2, 3), (1, 1)],
                               [None, 1, 2, (3, 2)], ["valid", "same"]))


@pytest.mark.parametrize("batch,channels,psize,strides,padding", SWEEP)
def test_forward_sweep(rng, batch, channels, psize, strides, padding):
    for h, w in SIZES:
        x = tie_free(rng, (batch, h, w, channels), np.float32)
        y, am = pool.max_pool2d(x, psize, strides, padding)
        expect = ref.max_pool2d(x, psize, strides, padding)
        assert y.dtype == np.float32 and am.dtype == np.int64 and y.shape == expect.shape
        np.testing.assert_array_equal(y, expect)
        np.testing.assert_array_equal(x.ravel()[am], y)  # argmax points at the maximum
        y_only, none = _core.max_pool2d_forward(x, **pool._window(psize, strides, padding),
                                                need_argmax=False)
        assert none is None
        np.testing.assert_array_equal(y_only, y)  # the inference path: the same maxima
        a = pool.avg_pool2d(x, psize, strides, padding)
        np.testing.assert_allclose(a, ref.avg_pool2d(x, psize, strides, padding), rtol=1e-5, atol=1e-6)


def test_argmax_stays_in_its_image_and_channel(rng):
    x = tie_free(rng, (3, 7, 6, 4))
    _, am = pool.max_pool2d(x, 3, 2, "same")
    n, h, w, c = np.unravel_index(am, x.shape)
    np.testing.assert_array_equal(n, np.arange(3)[:, None, None, None] + 0 * am)
    np.testing.assert_array_equal(c, np.arange(4) + 0 * am)


def test_avg_same_padding_divides_by_real_elements():
    x = np.ones((1, 3, 3, 1), np.float32)
    np.testing.assert_array_equal(pool.avg_pool2d(x, 2, 1, "same"), np.ones((1, 3, 3, 1)))
    x = np.arange(9, dtype=np.float64).reshape(1, 3, 3, 1)
    # the bottom-right window (pad after) holds x[2,2] only
    assert pool.avg_pool2d(x, 2, 1, "same")[0, 2, 2, 0] == 8.0
    assert pool.avg_pool2d(x, 2, 1, "same")[0, 1, 2, 0] == (5 + 8) / 2


def test_max_ignores_padding_with_negative_inputs():
    x = -np.ones((1, 3, 3, 1)) - np.arange(9).reshape(1, 3, 3, 1)
    y, _ = pool.max_pool2d(x, 3, 1, "same")
    assert (y < 0).all()  # zero padding would have won


GRAD_CASES = [((2, 2), None, "valid"), ((3, 3), 1, "same"), ((3, 2), 2, "same"),
              ((2, 3), (3, 2), "valid"), ((3, 3), 2, "valid"), ((1, 1), 1, "valid")]


@pytest.mark.parametrize("psize,strides,padding", GRAD_CASES)
def test_max_gradient_central_differences(rng, psize, strides, padding):
    x = tie_free(rng, (2, 6, 7, 3))
    y, am = pool.max_pool2d(x, psize, strides, padding)
    r = rng.uniform(-1, 1, y.shape)
    dx = pool.max_pool2d_backward(r, am, x.shape, psize, strides, padding)

    def loss():
        return float((pool.max_pool2d(x, psize, strides, padding)[0] * r).sum())

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("psize,strides,padding", GRAD_CASES)
def test_avg_gradient_central_differences(rng, psize, strides, padding):
    x = rng.uniform(-1, 1, (2, 6, 7, 3))
    y = pool.avg_pool2d(x, psize, strides, padding)
    r = rng.uniform(-1, 1, y.shape)
    dx = pool.avg_pool2d_backward(r, x.shape, psize, strides, padding)
    loss = lambda: float((pool.avg_pool2d(x, psize, strides, padding) * r).sum())  # noqa: E731
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("psize,strides,padding", GRAD_CASES)
def test_float32_gradients_match_float64(rng, psize, strides, padding):
    x = tie_free(rng, (3, 9, 8, 5))
    y, am = pool.max_pool2d(x, psize, strides, padding)
    dy = rng.uniform(-1, 1, y.shape)
    y32, am32 = pool.max_pool2d(x.astype(np.float32), psize, strides, padding)
    np.testing.assert_array_equal(am32, am)
    np.testing.assert_allclose(pool.max_pool2d_backward(dy.astype(np.float32), am32, x.shape, psize, strides, padding),
                               pool.max_pool2d_backward(dy, am, x.shape, psize, strides, padding), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pool.avg_pool2d_backward(dy.astype(np.float32), x.shape, psize, strides, padding),
                               pool.avg_pool2d_backward(dy, x.shape, psize, strides, padding), rtol=1e-5, atol=1e-6)


def test_empty_batch():
    x = np.zeros((0, 6, 5, 3), np.float32)
    y, am = pool.max_pool2d(x, 2)
    assert y.shape == am.shape == (0, 3, 2, 3)
    dx = pool.max_pool2d_backward(y, am, x.shape, 2)
    assert dx.shape == x.shape
    assert pool.avg_pool2d(x, 2, padding="same").shape == (0, 3, 3, 3)
    assert pool.avg_pool2d_backward(np.zeros((0, 3, 3, 3), np.float32), x.shape, 2, padding="same").shape == x.shape


def test_memory_layouts(rng):
    base = tie_free(rng, (3, 8, 12, 4), np.float32)
    for x in (base[:, :, ::2], np.asfortranarray(base[:, :, :6]), base[::-1, :, :6],
              np.broadcast_to(base[:1, :, :6], (3, 8, 6, 4))):
        c = np.ascontiguousarray(x)
        for a, e in zip(pool.max_pool2d(x, 2), pool.max_pool2d(c, 2)):
            np.testing.assert_array_equal(a, e)
        np.testing.assert_array_equal(pool.avg_pool2d(x, 3, 1, "same"), pool.avg_pool2d(c, 3, 1, "same"))
        y, am = pool.max_pool2d(c, 2)
        dy = np.asfortranarray(np.ones_like(y))
        np.testing.assert_array_equal(pool.max_pool2d_backward(dy, np.asfortranarray(am), x.shape, 2),
                                      pool.max_pool2d_backward(np.ones_like(y), am, x.shape, 2))
    ro = base.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(pool.max_pool2d(ro, 2)[0], pool.max_pool2d(base.copy(), 2)[0])


def test_threads_consistent(rng):
    x = tie_free(rng, (8, 32, 32, 8), np.float32)  # above the one-thread threshold
    old = fastdl.get_num_threads()
    try:
        out = {}
        for t in (1, 2):
            fastdl.set_num_threads(t)
            y, am = pool.max_pool2d(x, 3, 2, "same")
            out[t] = [y, am, pool.max_pool2d_backward(y, am, x.shape, 3, 2, "same"),
                      pool.avg_pool2d(x, 3, 2, "same"), pool.avg_pool2d_backward(y, x.shape, 3, 2, "same")]
        for a, b in zip(out[1], out[2]):
            np.testing.assert_array_equal(a, b)
    finally:
        fastdl.set_num_threads(old)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(pool_size=0), ValueError, "pool_size"), (dict(pool_size=(2, 0)), ValueError, "pool_size"),
    (dict(pool_size=2, strides=0), ValueError, "strides"), (dict(pool_size=2, strides=(1, -1)), ValueError, "strides"),
    (dict(pool_size=2, padding="full"), ValueError, "padding"), (dict(pool_size=True), TypeError, "pool_size"),
    (dict(pool_size=2.0), TypeError, "pool_size"), (dict(pool_size="2"), TypeError, "pool_size"),
    (dict(pool_size=(2, 2, 2)), TypeError, "pool_size"), (dict(pool_size=2, strides=1.5), TypeError, "strides"),
    (dict(pool_size=2, padding=None), TypeError, "padding"),
    (dict(pool_size=5), ValueError, r"output size \(0, 0\).*input size \(3, 3\).*pool_size \(5, 5\)"),
])
def test_bad_hyperparameters(kwargs, exc, match):
    x = np.zeros((2, 3, 3, 1), np.float32)
    for fn in (pool.max_pool2d, pool.avg_pool2d):
        with pytest.raises(exc, match=match):
            fn(x, **kwargs)


@pytest.mark.parametrize("shape,match", [((3, 3, 1), r"x must be 4-D, received shape \(3, 3, 1\)"),
                                         ((1, 2, 3, 3, 1), "x must be 4-D"),
                                         ((2, 0, 3, 1), "positive H, W and C"),
                                         ((2, 3, 3, 0), "positive H, W and C")])
def test_bad_shapes(shape, match):
    for fn in (pool.max_pool2d, pool.avg_pool2d):
        with pytest.raises(ValueError, match=match):
            fn(np.zeros(shape, np.float32), 2, padding="same")


@pytest.mark.parametrize("bad", [np.zeros((1, 4, 4, 1), np.int64), np.zeros((1, 4, 4, 1), np.float16),
                                 np.zeros((1, 4, 4, 1), bool), [[[[0.0]] * 4] * 4]])
def test_bad_dtypes(bad):
    with pytest.raises(TypeError):
        pool.max_pool2d(bad, 2)
    with pytest.raises(TypeError):
        pool.avg_pool2d(bad, 2)


def test_backward_rejects_bad_argmax_and_shapes(rng):
    x = tie_free(rng, (2, 4, 4, 3), np.float32)
    y, am = pool.max_pool2d(x, 2)
    for bad in (am + x.size, am - 1 - am.max(), np.where(np.arange(am.size).reshape(am.shape) == 0, am + 48, am)):
        # out of range, negative, or pointing into another image
        with pytest.raises(ValueError, match="argmax"):
            pool.max_pool2d_backward(y, bad, x.shape, 2)
    other_window = am.copy()
    other_window[0, 0, 0, 0] = am[0, 1, 1, 0]  # in its image, but not in its window
    with pytest.raises(ValueError, match="argmax"):
        pool.max_pool2d_backward(y, other_window, x.shape, 2)
    # overlapping windows (scatter path): validated before the kernel runs
    y3, am3 = pool.max_pool2d(x, 3, 1)
    for bad in (am3 + x.size, -am3 - 1, np.where(np.arange(am3.size).reshape(am3.shape) == 0, am3 + 48, am3)):
        with pytest.raises(ValueError, match="argmax"):
            pool.max_pool2d_backward(y3, bad, x.shape, 3, 1)
    with pytest.raises(TypeError, match="argmax"):
        pool.max_pool2d_backward(y, am.astype(np.int32), x.shape, 2)
    with pytest.raises(ValueError, match=r"argmax must have the shape of dy"):
        pool.max_pool2d_backward(y, am[:, :1], x.shape, 2)
    with pytest.raises(ValueError, match=r"dy must have the output shape \(2, 2, 2, 3\).*received \(2, 1, 2, 3\)"):
        pool.max_pool2d_backward(y[:, :1], am[:, :1], x.shape, 2)
    with pytest.raises(ValueError, match=r"dy must have the output shape"):
        pool.avg_pool2d_backward(y, (2, 6, 6, 3), 2)
    with pytest.raises(TypeError, match="input_shape"):
        pool.avg_pool2d_backward(y, (4, 4), 2)
    with pytest.raises(ValueError, match="input_shape"):
        pool.avg_pool2d_backward(y, (2, 0, 4, 3), 2)


def test_core_entry_points_reject_bad_values():
    x = np.zeros((1, 4, 4, 2), np.float32)
    for args in [(0, 2, 2, 2, "valid"), (2, 2, 0, 2, "valid"), (2, -1, 2, 2, "valid"), (2, 2, 2, 2, "Same")]:
        with pytest.raises(ValueError, match="max_pool2d_forward"):
            _core.max_pool2d_forward(x, *args)
        with pytest.raises(ValueError, match="avg_pool2d_forward"):
            _core.avg_pool2d_forward(x, *args)
        with pytest.raises(ValueError, match="avg_pool2d_backward"):
            _core.avg_pool2d_backward(np.zeros((1, 2, 2, 2), np.float32), 4, 4, *args)
    with pytest.raises(TypeError):
        _core.max_pool2d_forward(np.asfortranarray(np.zeros((2, 4, 4, 2), np.float32)), 2, 2, 2, 2, "valid")
    with pytest.raises(ValueError, match="overflow|too large"):
        _core.avg_pool2d_backward(np.zeros((1, 1, 1, 1), np.float32), 2**62, 2**62, 2**62, 2**62, 2**62, 2**62, "valid")
    with pytest.raises(MemoryError):  # ~1e13 elements: refused by the allocator, nothing written
        _core.avg_pool2d_backward(np.zeros((1, 1, 1, 1), np.float32), 2**22, 2**22, 2**22, 2**22, 2**22, 2**22, "valid")


# ------------------------------------------------------------------ layers
from fastdl import layers  # noqa: E402
from gradcheck import check_layer_gradients  # noqa: E402


@pytest.mark.parametrize("cls,reference", [(layers.MaxPooling2D, ref.max_pool2d),
                                           (layers.AveragePooling2D, ref.avg_pool2d)])
@pytest.mark.parametrize("kwargs", [{}, dict(pool_size=3, strides=2, padding="same"),
                                    dict(pool_size=(2, 3), strides=(1, 2))])
def test_pool_layers_forward_and_gradients(rng, cls, reference, kwargs):
    layer = cls(dtype="float64", **kwargs)
    x = tie_free(rng, (2, 7, 6, 3))
    y = layer(x)
    ps = kwargs.get("pool_size", (2, 2))
    np.testing.assert_allclose(y, reference(x, ps, kwargs.get("strides"), kwargs.get("padding", "valid")), rtol=1e-12)
    assert y.shape == layer.compute_output_shape(x.shape)
    check_layer_gradients(layer, x)
    assert layer.grads == [] and layer.weights == []


@pytest.mark.parametrize("cls,fn", [(layers.GlobalAveragePooling2D, np.mean), (layers.GlobalMaxPooling2D, np.max)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pool_layers(rng, cls, fn, keepdims):
    layer = cls(keepdims=keepdims, dtype="float64")
    x = tie_free(rng, (3, 5, 4, 6))
    y = layer(x)
    np.testing.assert_allclose(y, fn(x, axis=(1, 2), keepdims=keepdims), rtol=1e-12)
    assert y.shape == layer.compute_output_shape(x.shape)
    check_layer_gradients(layer, x)
    assert layer(np.zeros((0, 5, 4, 6))).shape == ((0, 1, 1, 6) if keepdims else (0, 6))


def test_global_max_ties_share_the_gradient():
    layer = layers.GlobalMaxPooling2D()
    x = np.zeros((1, 2, 2, 1), np.float32)
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 1.0
    layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1), np.float32))[0, :, :, 0], [[0, 0.5], [0.5, 0]])


def test_pool_layer_defaults_and_config():
    layer = layers.MaxPooling2D()
    assert layer.pool_size == (2, 2) and layer.strides == (2, 2) and layer.padding == "valid"
    layer = layers.AveragePooling2D(3, padding="Same", name="p")
    config = layer.get_config()
    assert config["strides"] == (3, 3) and config["padding"] == "same"
    assert layers.AveragePooling2D.from_config(config).get_config() == config
    assert layers.MaxPool2D is layers.MaxPooling2D and layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    assert layers.MaxPooling2D(2).compute_output_shape((None, 5, None, 3)) == (None, 2, None, 3)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(pool_size=0), ValueError, "pool_size"), (dict(pool_size=(2, 0)), ValueError, "pool_size"),
    (dict(strides=0), ValueError, "strides"), (dict(padding="full"), ValueError, "padding"),
    (dict(pool_size=2.5), TypeError, "pool_size"), (dict(pool_size="2"), TypeError, "pool_size"),
    (dict(pool_size=True), TypeError, "pool_size"), (dict(data_format="channels_first"), ValueError, "channels_last")])
def test_pool_layer_bad_hyperparameters(kwargs, exc, match):
    for cls in (layers.MaxPooling2D, layers.AveragePooling2D):
        with pytest.raises(exc, match=match):
            cls(**kwargs)
    with pytest.raises(TypeError, match="keepdims"):
        layers.GlobalMaxPooling2D(keepdims=1)


def test_pool_layer_bad_inputs():
    for layer in (layers.MaxPooling2D(), layers.AveragePooling2D(), layers.GlobalAveragePooling2D(),
                  layers.GlobalMaxPooling2D()):
        with pytest.raises(ValueError, match=r"ndim=4.*\(2, 6, 6\)"):
            layer(np.zeros((2, 6, 6), np.float32))
    with pytest.raises(ValueError, match=r"output size \(0, 0\).*\(1, 3, 3, 1\).*pool_size=\(5, 5\)"):
        layers.MaxPooling2D(5)(np.zeros((1, 3, 3, 1), np.float32))
    layer = layers.MaxPooling2D()
    y = layer(np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="dy has shape"):
        layer.backward(np.zeros((1, 3, 2, 1), np.float32))


def test_max_pool_inference_path_keeps_nan_and_signed_zero_like_training():
    """Without argmax the maxima follow the same rule: strict >, the first element wins ties
    (-0.0 before 0.0), a NaN first element stays, a later NaN never wins."""
    x = np.array([-0.0, 0.0, np.nan, 1.0, 2.0, np.nan, np.nan, -1.0], np.float32)
    x = x.reshape(1, 1, 8, 1)  # windows (-0, 0), (nan, 1), (2, nan), (nan, -1)
    y, _ = _core.max_pool2d_forward(x, 1, 2, 1, 2, "valid")
    y_only, _ = _core.max_pool2d_forward(x, 1, 2, 1, 2, "valid", need_argmax=False)
    np.testing.assert_array_equal(np.signbit(y_only), np.signbit(y))
    np.testing.assert_array_equal(y_only, y)
    np.testing.assert_array_equal(y_only.ravel(), [-0.0, np.nan, 2.0, np.nan])
    assert np.signbit(y_only.ravel()[0])


def test_predict_skips_the_argmax_and_backward_then_asks_for_a_call():
    layer = fastdl.layers.MaxPooling2D()
    model = fastdl.Sequential([fastdl.layers.Input((4, 4, 2)), layer])
    x = np.random.default_rng(0).standard_normal((3, 4, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), layer(x))
    model.predict_on_batch(x)
    assert layer._cache is None and not layer._inference_only
    with pytest.raises(RuntimeError, match="predict and evaluate keep nothing"):
        layer.backward(np.ones((3, 2, 2, 2), np.float32))
    layer.call(x)  # an ordinary call records the argmax again
    assert layer.backward(np.ones((3, 2, 2, 2), np.float32)).shape == x.shape
