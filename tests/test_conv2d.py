"""fastdl.ops.core.conv (C++ conv2d kernels) against the direct-loop float64 reference."""
import itertools

import numpy as np
import pytest

import fastdl
from fastdl import _core
from fastdl.ops.core import conv

import reference_conv as ref
from gradcheck import numerical_gradient

RTOL = ATOL = 1e-5


def rand(rng, *shape, dtype=np.float64):
    return rng.uniform(-1, 1, size=shape).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def small_chunks():
    """Force one output row per chunk, so chunk edges cut images and col2im sees partial images."""
    old = _core.conv2d_chunk_bytes()
    _core.conv2d_set_chunk_bytes(1)
    yield
    _core.conv2d_set_chunk_bytes(old)


@pytest.fixture(params=["im2col", "winograd"])
def algorithm(request):
    """Runs a test with each algorithm of 3x3 stride-1 convolutions forced ('winograd' leaves
    every other shape on im2col), so both are held to the same reference checks."""
    old = _core.conv2d_algorithm()
    _core.conv2d_set_algorithm(request.param)
    yield request.param
    _core.conv2d_set_algorithm(old)


# ------------------------------------------------------------------ forward sweep
SIZES = [(5, 5), (6, 8), (7, 4)]  # odd, even and non-square
SWEEP = list(itertools.product([0, 1, 3], [1, 3, 4], [(1, 1), (3, 3), (2, 3)],
                               [1, 2, (3, 2)], ["valid", "same"]))


@pytest.mark.parametrize("batch,channels,ksize,strides,padding", SWEEP)
def test_forward_sweep(rng, algorithm, batch, channels, ksize, strides, padding):
    for (h, w), filters in zip(SIZES, (2, 5, 3)):
        x = rand(rng, batch, h, w, channels, dtype=np.float32)
        k = rand(rng, *ksize, channels, filters, dtype=np.float32)
        b = rand(rng, filters, dtype=np.float32)
        y = conv.conv2d(x, k, b, strides=strides, padding=padding)
        expect = ref.conv2d(x, k, b, strides, padding)
        assert y.dtype == np.float32 and y.shape == expect.shape
        np.testing.assert_allclose(y, expect, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("dilation,strides,padding", [
    ((2, 2), 1, "valid"), ((2, 2), 1, "same"), ((3, 1), 1, "same"), ((1, 2), (2, 1), "valid"),
    ((2, 3), 2, "same")])
def test_forward_dilation(rng, dilation, strides, padding):
    x = rand(rng, 2, 9, 8, 3, dtype=np.float32)
    k = rand(rng, 3, 2, 3, 4, dtype=np.float32)
    y = conv.conv2d(x, k, strides=strides, padding=padding, dilation_rate=dilation)
    np.testing.assert_allclose(y, ref.conv2d(x, k, None, strides, padding, dilation),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("groups,channels,filters,ksize,strides,padding", [
    (2, 4, 6, (3, 3), 1, "same"), (3, 3, 3, (3, 3), 2, "valid"), (4, 4, 8, (1, 1), 1, "valid"),
    (2, 6, 4, (2, 3), (3, 2), "same"), (2, 4, 2, (1, 1), 2, "same")])
def test_forward_groups(rng, groups, channels, filters, ksize, strides, padding):
    x = rand(rng, 3, 7, 6, channels, dtype=np.float32)
    k = rand(rng, *ksize, channels // groups, filters, dtype=np.float32)
    b = rand(rng, filters, dtype=np.float32)
    y = conv.conv2d(x, k, b, strides=strides, padding=padding, groups=groups)
    np.testing.assert_allclose(y, ref.conv2d(x, k, b, strides, padding, 1, groups),
                               rtol=RTOL, atol=ATOL)


def test_forward_relu_fused(rng, algorithm):
    x = rand(rng, 2, 6, 6, 3, dtype=np.float32)
    k = rand(rng, 3, 3, 3, 4, dtype=np.float32)
    b = rand(rng, 4, dtype=np.float32)
    y = conv.conv2d(x, k, b, padding="same", activation="relu")
    expect = np.maximum(ref.conv2d(x, k, b, 1, "same"), 0)
    assert (y == 0).any() and (y > 0).any()
    np.testing.assert_allclose(y, expect, rtol=RTOL, atol=ATOL)
    y = conv.conv2d(x, k, None, activation="relu")
    np.testing.assert_allclose(y, np.maximum(ref.conv2d(x, k), 0), rtol=RTOL, atol=ATOL)


def test_same_padding_is_asymmetric_like_tensorflow():
    # H=4, k=2, s=2 ... total pad 0; H=5, k=4, s=1: total 3 -> top 1, bottom 2
    x = np.zeros((1, 5, 1, 1))
    x[0, 0, 0, 0] = 1.0
    k = np.zeros((4, 1, 1, 1))
    k[1, 0, 0, 0] = 1.0  # tap 1 reads row oh - 1 + 1 = oh with top pad 1
    y = conv.conv2d(x, k, padding="same")
    assert y.shape == (1, 5, 1, 1)
    np.testing.assert_array_equal(y[0, :, 0, 0], [1, 0, 0, 0, 0])


@pytest.mark.parametrize("case", [
    dict(ksize=(3, 3), strides=1, padding="same"), dict(ksize=(2, 3), strides=(3, 2), padding="valid"),
    dict(ksize=(3, 2), strides=2, padding="same", dilation=(2, 1)),
    dict(ksize=(3, 3), strides=1, padding="same", groups=2), dict(ksize=(1, 1), strides=1, padding="valid")])
def test_forward_small_chunks(rng, small_chunks, algorithm, case):
    groups = case.get("groups", 1)
    x = rand(rng, 3, 7, 6, 4, dtype=np.float32)
    k = rand(rng, *case["ksize"], 4 // groups, 6, dtype=np.float32)
    kw = dict(strides=case["strides"], padding=case["padding"],
              dilation_rate=case.get("dilation", 1), groups=groups)
    y = conv.conv2d(x, k, **kw)
    np.testing.assert_allclose(y, ref.conv2d(x, k, None, case["strides"], case["padding"],
                                             case.get("dilation", 1), groups), rtol=RTOL, atol=ATOL)


def test_larger_layer_matches_reference(rng, algorithm):
    # a tutorial-like layer: many chunks with the default budget only when the batch is large;
    # here checks the im2col run copies (C=32) and the 64-wide GEMM
    x = rand(rng, 4, 15, 15, 32, dtype=np.float32)
    k = rand(rng, 3, 3, 32, 64, dtype=np.float32)
    b = rand(rng, 64, dtype=np.float32)
    y = conv.conv2d(x, k, b, activation="relu")
    np.testing.assert_allclose(y, np.maximum(ref.conv2d(x, k, b), 0), rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ gradients (float64)
GRAD_CASES = [
    dict(ksize=(3, 3), strides=1, padding="valid"),
    dict(ksize=(3, 3), strides=1, padding="same"),
    dict(ksize=(2, 3), strides=(2, 1), padding="same"),
    dict(ksize=(3, 2), strides=(3, 2), padding="valid"),
    dict(ksize=(3, 3), strides=1, padding="same", dilation=(2, 1)),
    dict(ksize=(2, 2), strides=1, padding="valid", dilation=2),
    dict(ksize=(3, 3), strides=2, padding="same", groups=2),
    dict(ksize=(1, 1), strides=1, padding="valid"),
    dict(ksize=(1, 1), strides=1, padding="same", groups=2),
    dict(ksize=(1, 1), strides=2, padding="valid"),
]


def _grad_problem(rng, case, dtype=np.float64, n=2, h=6, w=5, c=4, f=4):
    groups = case.get("groups", 1)
    x = rand(rng, n, h, w, c, dtype=dtype)
    k = rand(rng, *case["ksize"], c // groups, f, dtype=dtype)
    b = rand(rng, f, dtype=dtype)
    kw = dict(strides=case["strides"], padding=case["padding"],
              dilation_rate=case.get("dilation", 1), groups=groups)
    return x, k, b, kw


@pytest.mark.parametrize("case", GRAD_CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_gradients_central_differences(rng, algorithm, case, relu):
    x, k, b, kw = _grad_problem(rng, case)
    act = "relu" if relu else None
    y = conv.conv2d(x, k, b, activation=act, **kw)
    r = rand(rng, *y.shape)  # loss = sum(y * r)
    dx, dk, db = conv.conv2d_backward(r, x, k, relu_output=y if relu else None, **kw)

    def loss():
        return float((conv.conv2d(x, k, b, activation=act, **kw) * r).sum())

    for analytic, param in ((dx, x), (dk, k), (db, b)):
        np.testing.assert_allclose(analytic, numerical_gradient(loss, param), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", GRAD_CASES[:7])
def test_gradients_small_chunks(rng, small_chunks, algorithm, case):
    x, k, b, kw = _grad_problem(rng, case, n=3)
    y = conv.conv2d(x, k, b, **kw)
    r = rand(rng, *y.shape)
    dx, dk, db = conv.conv2d_backward(r, x, k, **kw)
    loss = lambda: float((conv.conv2d(x, k, b, **kw) * r).sum())  # noqa: E731
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dk, numerical_gradient(loss, k), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", GRAD_CASES)
@pytest.mark.parametrize("channels", [8, 32])
def test_backward_matches_reference_wide_channels(rng, algorithm, case, channels):
    """Channel counts whose kernel rows fill whole micro-kernel blocks (the in-place im2col path
    of the dkernel product), float64 against the tap-loop reference."""
    x, k, b, kw = _grad_problem(rng, case, n=3, h=11, w=10, c=channels, f=16)
    y = conv.conv2d(x, k, b, activation="relu", **kw)
    dy = rand(rng, *y.shape)
    dx, dk, db = conv.conv2d_backward(dy, x, k, relu_output=y, **kw)
    ex, ek, eb = ref.conv2d_backward(dy * (y > 0), x, k, kw["strides"], kw["padding"],
                                     kw["dilation_rate"], kw["groups"])
    np.testing.assert_allclose(dx, ex, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dk, ek, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, eb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", GRAD_CASES)
@pytest.mark.parametrize("threads,n", [(1, 3), (2, 3), (2, 4)])
def test_chunked_backward_matches_one_chunk(rng, algorithm, case, threads, n):
    """Many small chunks == one chunk (float64), for both schedules: threads sharing each
    chunk's tiles and col2im rows (n < 2 * threads), and threads owning whole images."""
    x, k, b, kw = _grad_problem(rng, case, n=n, h=14, w=13, c=8, f=32)
    dy = rand(rng, *conv.conv2d(x, k, b, **kw).shape)
    old_threads, old_chunk = fastdl.get_num_threads(), _core.conv2d_chunk_bytes()
    try:
        fastdl.set_num_threads(threads)
        whole = conv.conv2d_backward(dy, x, k, **kw)
        _core.conv2d_set_chunk_bytes(3000)  # a few output rows per chunk
        chunked = conv.conv2d_backward(dy, x, k, **kw)
    finally:
        fastdl.set_num_threads(old_threads)
        _core.conv2d_set_chunk_bytes(old_chunk)
    for a, e in zip(chunked, whole):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
    reference = ref.conv2d_backward(dy, x, k, kw["strides"], kw["padding"], kw["dilation_rate"],
                                    kw["groups"])
    for a, e in zip(chunked, reference):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
    expect = conv.conv2d(x, k, b, **kw)
    np.testing.assert_allclose(expect, ref.conv2d(x, k, b, kw["strides"], kw["padding"],
                                                  kw["dilation_rate"], kw["groups"]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", GRAD_CASES)
def test_float32_gradients_match_float64(rng, algorithm, case):
    x, k, b, kw = _grad_problem(rng, case, n=3, h=9, w=8, c=4, f=6)
    dy = rand(rng, *conv.conv2d(x, k, b, **kw).shape)
    g64 = conv.conv2d_backward(dy, x, k, **kw)
    g32 = conv.conv2d_backward(dy.astype(np.float32), x.astype(np.float32),
                               k.astype(np.float32), **kw)
    for a, e in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5 * max(1, np.sqrt(x.shape[0] * 72)))


def test_backward_optional_outputs(rng, algorithm):
    x, k, b, kw = _grad_problem(rng, GRAD_CASES[1])
    dy = rand(rng, *conv.conv2d(x, k, b, **kw).shape)
    dx, dk, db = conv.conv2d_backward(dy, x, k, **kw)
    none_dx, dk2, none_db = conv.conv2d_backward(dy, x, k, need_dx=False, need_dbias=False, **kw)
    assert none_dx is None and none_db is None
    np.testing.assert_array_equal(dk, dk2)
    dx2, none_dk, db2 = conv.conv2d_backward(dy, x, k, need_dkernel=False, **kw)
    assert none_dk is None
    np.testing.assert_array_equal(dx, dx2)
    np.testing.assert_array_equal(db, db2)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), rtol=1e-12)


# ------------------------------------------------------------------ empty batch, layouts, threads
@pytest.mark.parametrize("ksize,padding", [((3, 3), "same"), ((1, 1), "valid"), ((2, 3), "valid")])
def test_empty_batch(rng, algorithm, ksize, padding):
    x = np.zeros((0, 6, 5, 3), np.float32)
    k = rand(rng, *ksize, 3, 4, dtype=np.float32)
    y = conv.conv2d(x, k, np.ones(4, np.float32), padding=padding)
    oh, ow = conv.conv2d_output_size(6, ksize[0], 1, 1, padding), conv.conv2d_output_size(5, ksize[1], 1, 1, padding)
    assert y.shape == (0, oh, ow, 4)
    dx, dk, db = conv.conv2d_backward(y, x, k, padding=padding)
    assert dx.shape == x.shape and dk.shape == k.shape and db.shape == (4,)
    assert not dk.any() and not db.any()


def test_memory_layouts_match_contiguous(rng, algorithm):
    base = rand(rng, 3, 8, 12, 4, dtype=np.float32)
    k = rand(rng, 3, 3, 4, 5, dtype=np.float32)
    strided = base[:, :, ::2]
    fortran = np.asfortranarray(base[:, :, :6])
    readonly = base[:, :, :6].copy()
    readonly.setflags(write=False)
    broadcast = np.broadcast_to(base[:1, :, :6], (3, 8, 6, 4))
    reversed_ = base[::-1, :, :6]
    for x in (strided, fortran, readonly, broadcast, reversed_):
        expect = conv.conv2d(np.ascontiguousarray(x), k, padding="same")
        np.testing.assert_array_equal(conv.conv2d(x, k, padding="same"), expect)
        dy = np.ones_like(expect)
        for a, e in zip(conv.conv2d_backward(dy, x, np.asfortranarray(k), padding="same"),
                        conv.conv2d_backward(dy, np.ascontiguousarray(x), k, padding="same")):
            np.testing.assert_array_equal(a, e)


def test_threads_deterministic_and_consistent(rng, algorithm):
    x = rand(rng, 4, 12, 12, 8, dtype=np.float32)
    k = rand(rng, 3, 3, 8, 16, dtype=np.float32)
    dy = rand(rng, 4, 12, 12, 16, dtype=np.float32)
    old = fastdl.get_num_threads()
    try:
        results = {}
        for t in (1, 2):
            fastdl.set_num_threads(t)
            a = [conv.conv2d(x, k, padding="same")] + list(conv.conv2d_backward(dy, x, k, padding="same"))
            b = [conv.conv2d(x, k, padding="same")] + list(conv.conv2d_backward(dy, x, k, padding="same"))
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)  # bitwise repeatable at a fixed thread count
            results[t] = a
        for u, v in zip(results[1], results[2]):
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-4)
    finally:
        fastdl.set_num_threads(old)


def test_concurrent_python_threads_match_serial(rng, algorithm):
    """The GIL is released and scratch is per calling thread: concurrent calls agree with serial."""
    import concurrent.futures
    x = rand(rng, 8, 12, 12, 8, dtype=np.float32)
    k = rand(rng, 3, 3, 8, 16, dtype=np.float32)
    y = conv.conv2d(x, k, padding="same", activation="relu")
    dy = rand(rng, *y.shape, dtype=np.float32)
    serial = [conv.conv2d(x, k, padding="same", activation="relu")] + \
        list(conv.conv2d_backward(dy, x, k, padding="same", relu_output=y))

    def work(_):
        out = [conv.conv2d(x, k, padding="same", activation="relu")]
        return out + list(conv.conv2d_backward(dy, x, k, padding="same", relu_output=y))

    with concurrent.futures.ThreadPoolExecutor(4) as pool_:
        for result in pool_.map(work, range(8)):
            for a, e in zip(result, serial):
                np.testing.assert_array_equal(a, e)


# ------------------------------------------------------------------ Winograd F(2x2, 3x3)
# (h, w, padding): odd and even edges, outputs of one row or column, one tile or many
WINOGRAD_SHAPES = [(h, w, padding) for h, w in [(1, 1), (3, 3), (4, 4), (5, 7), (8, 6), (2, 9)]
                   for padding in ("valid", "same") if padding == "same" or min(h, w) >= 3]


@pytest.mark.parametrize("h,w,padding", WINOGRAD_SHAPES)
@pytest.mark.parametrize("c,f", [(1, 1), (5, 16), (17, 33)])
def test_winograd_forward_matches_reference(rng, h, w, padding, c, f):
    _core.conv2d_set_algorithm("winograd")
    try:
        for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
            x = rand(rng, 3, h, w, c, dtype=dtype)
            k = rand(rng, 3, 3, c, f, dtype=dtype)
            b = rand(rng, f, dtype=dtype)
            expect = ref.conv2d(x.astype(np.float64), k.astype(np.float64), b.astype(np.float64),
                                1, padding)
            np.testing.assert_allclose(conv.conv2d(x, k, b, padding=padding), expect,
                                       rtol=tol, atol=tol * np.sqrt(9 * c))
            np.testing.assert_allclose(conv.conv2d(x, k, padding=padding, activation="relu"),
                                       np.maximum(expect - b, 0), rtol=tol,
                                       atol=tol * np.sqrt(9 * c))
    finally:
        _core.conv2d_set_algorithm("auto")


@pytest.mark.parametrize("h,w,padding", WINOGRAD_SHAPES)
@pytest.mark.parametrize("threads,n", [(1, 2), (2, 1), (2, 5), (3, 4)])
def test_winograd_backward_matches_reference(rng, h, w, padding, threads, n):
    """float64 against the tap loop: every thread team (fewer images than threads included) and
    blocks of tiles that span images (C = F = 64 gives 20 tiles a block)."""
    x = rand(rng, n, h, w, 64)
    k = rand(rng, 3, 3, 64, 64)
    y = ref.conv2d(x, k, None, 1, padding)
    y[y < 0.2] = 0  # a ReLU output with zeros to mask dy
    dy = rand(rng, *y.shape)
    old = fastdl.get_num_threads()
    _core.conv2d_set_algorithm("winograd")
    try:
        fastdl.set_num_threads(threads)
        dx, dk, db = conv.conv2d_backward(dy, x, k, padding=padding, relu_output=y)
    finally:
        fastdl.set_num_threads(old)
        _core.conv2d_set_algorithm("auto")
    ex, ek, eb = ref.conv2d_backward(dy * (y > 0), x, k, 1, padding)
    np.testing.assert_allclose(dx, ex, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dk, ek, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(db, eb, rtol=1e-12, atol=1e-12)


def test_auto_algorithm_uses_winograd_for_wide_3x3_layers(rng):
    """'auto' gives Winograd's exact float32 result where C and F are >= 16, im2col's elsewhere
    (the two round differently, so the bits tell which ran)."""
    def run(x, k, algorithm, **kw):
        _core.conv2d_set_algorithm(algorithm)
        y = conv.conv2d(x, k, **kw)
        return [y] + list(conv.conv2d_backward(np.ones_like(y), x, k, **kw))

    try:
        wide = rand(rng, 2, 9, 9, 16, dtype=np.float32), rand(rng, 3, 3, 16, 16, dtype=np.float32)
        narrow = rand(rng, 2, 9, 9, 3, dtype=np.float32), rand(rng, 3, 3, 3, 16, dtype=np.float32)
        strided = dict(strides=2)
        for (x, k), kw, expect in ((wide, {}, "winograd"), (narrow, {}, "im2col"),
                                   (wide, strided, "im2col")):
            auto = run(x, k, "auto", **kw)
            chosen, other = run(x, k, expect, **kw), run(x, k, ({"im2col", "winograd"} - {expect}).pop(), **kw)
            for a, e in zip(auto, chosen):
                np.testing.assert_array_equal(a, e)
            if expect == "winograd":  # the two algorithms really differ in the last bits
                assert any(not np.array_equal(a, o) for a, o in zip(auto, other))
    finally:
        _core.conv2d_set_algorithm("auto")
    assert _core.conv2d_algorithm() == "auto"


def test_set_algorithm_rejects_unknown_names():
    with pytest.raises(ValueError, match="received 'fft'"):
        conv.set_algorithm("fft")
    with pytest.raises(TypeError, match="received int 2"):
        conv.set_algorithm(2)
    assert conv.get_algorithm() == "auto"
    conv.set_algorithm("im2col")
    try:
        assert conv.get_algorithm() == _core.conv2d_algorithm() == "im2col"
    finally:
        conv.set_algorithm("auto")


def test_winograd_propagates_nan(rng, algorithm):
    x = rand(rng, 1, 6, 6, 16, dtype=np.float32)
    k = rand(rng, 3, 3, 16, 16, dtype=np.float32)
    x[0, 2, 3, 5] = np.nan
    y = conv.conv2d(x, k, activation="relu")
    bad = np.isnan(y[0, :, :, 0])
    # exactly the outputs whose 3x3 window holds the NaN, as with direct convolution
    expect = np.zeros((4, 4), bool)
    expect[0:3, 1:4] = True
    np.testing.assert_array_equal(bad, expect)


# ------------------------------------------------------------------ max pooling fused (inference)
from fastdl.ops.core import pool as pool_ops  # noqa: E402

FUSED_POOL_CASES = [  # conv kwargs, channels, filters, pool window
    (dict(), 3, 32, (2, 2)),                                  # the tutorial's first pair
    (dict(activation="relu"), 17, 16, (2, 2)),                # Winograd under "auto", 2x2 tiles
    (dict(activation="relu", padding="same"), 16, 20, (3, 2)),  # Winograd, other windows
    (dict(padding="same"), 5, 7, (2, 3)),
    (dict(strides=(2, 1), dilation_rate=(1, 2)), 4, 6, (2, 2)),
    (dict(groups=2, activation="relu", padding="same"), 4, 6, (2, 2)),
    (dict(kernel_size=(1, 1)), 16, 16, (3, 3)),               # direct 1x1
    (dict(activation="relu"), 8, 33, (1, 4)),                 # filters not whole packets
]


@pytest.mark.parametrize("kwargs,c,f,window", FUSED_POOL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_max_pool_is_bitwise_the_two_passes(rng, algorithm, kwargs, c, f, window, dtype):
    kwargs = dict(kwargs)
    ksize = kwargs.pop("kernel_size", (3, 3))
    groups = kwargs.get("groups", 1)
    for h, w in ((11, 9), (8, 8)):  # outputs that leave rows / columns out of every window
        x = rand(rng, 3, h, w, c, dtype=dtype)
        x[1, 4, 3, 0] = np.nan  # NaN follows the pooling kernel's rule in both
        k = rand(rng, *ksize, c // groups, f, dtype=dtype)
        b = rand(rng, f, dtype=dtype)
        y = conv.conv2d(x, k, b, **kwargs)
        expect, argmax = pool_ops.max_pool2d(y, window)
        fused = conv.conv2d(x, k, b, max_pool=window, **kwargs)
        assert fused.shape == expect.shape and fused.dtype == dtype
        assert fused.tobytes() == expect.tobytes()
        # training: the convolution's output and the argmax too, as the two layers keep them
        args = conv_args(kwargs, groups)
        pooled, y2, argmax2 = _core.conv2d_max_pool_forward(x, k, b, *args, *window, True)
        assert pooled.tobytes() == expect.tobytes() and y2.tobytes() == y.tobytes()
        np.testing.assert_array_equal(argmax2, argmax)


def conv_args(kwargs, groups):
    """conv.conv2d's keyword arguments as _core's positional ones (strides .. relu)."""
    sh, sw = conv.int_pair(kwargs.get("strides", 1), "strides")
    dh, dw = conv.int_pair(kwargs.get("dilation_rate", 1), "dilation_rate")
    return (sh, sw, kwargs.get("padding", "valid"), dh, dw, groups,
            kwargs.get("activation") == "relu")


def test_fused_max_pool_over_threads(rng, algorithm):
    x = rand(rng, 5, 16, 16, 16, dtype=np.float32)
    k = rand(rng, 3, 3, 16, 32, dtype=np.float32)
    results = []
    old = fastdl.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fastdl.set_num_threads(threads)
            results.append(conv.conv2d(x, k, activation="relu", max_pool=2).tobytes())
    finally:
        fastdl.set_num_threads(old)
    expect, _ = pool_ops.max_pool2d(conv.conv2d(x, k, activation="relu"), 2)
    assert results[0] == results[1] == results[2] == expect.tobytes()


@pytest.mark.parametrize("max_pool,exc,match", [
    ((5, 2), ValueError, r"pool size \(5, 2\) is larger than the convolution's output \(4, 4\)"),
    ((0, 2), ValueError, r"max_pool must hold positive integers, received \(0, 2\)"),
    ((2.0, 2), TypeError, "max_pool"),
])
def test_fused_max_pool_bad_windows(rng, max_pool, exc, match):
    x = rand(rng, 1, 6, 6, 3, dtype=np.float32)
    k = rand(rng, 3, 3, 3, 4, dtype=np.float32)
    with pytest.raises(exc, match=match):
        conv.conv2d(x, k, max_pool=max_pool)
    with pytest.raises(ValueError, match=r"pool_size must be positive integers, received \(2, 0\)"):
        _core.conv2d_max_pool_forward(x, k, None, 1, 1, "valid", 1, 1, 1, False, 2, 0, True)


# ------------------------------------------------------------------ bad input
def _xk(c=3, f=4, ksize=(3, 3), dtype=np.float32):
    return np.zeros((2, 6, 6, c), dtype), np.zeros((*ksize, c, f), dtype)


@pytest.mark.parametrize("kwargs,match", [
    (dict(strides=0), "strides"), (dict(strides=(1, 0)), "strides"), (dict(strides=-1), "strides"),
    (dict(dilation_rate=0), "dilation_rate"), (dict(groups=0), "groups"),
    (dict(padding="full"), "padding")])
def test_bad_hyperparameters_value_error(kwargs, match):
    x, k = _xk()
    with pytest.raises(ValueError, match=match):
        conv.conv2d(x, k, **kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(strides=True), dict(strides=1.0), dict(strides="2"), dict(strides=(1, 2, 3)),
    dict(strides=None), dict(dilation_rate=(1, False)), dict(groups=1.5), dict(groups=True),
    dict(padding=None), dict(padding=1)])
def test_bad_hyperparameter_types(kwargs):
    x, k = _xk()
    with pytest.raises(TypeError):
        conv.conv2d(x, k, **kwargs)


@pytest.mark.parametrize("args", [
    # (sh, sw, padding, dh, dw, groups)
    (0, 1, "valid", 1, 1, 1), (1, -2, "valid", 1, 1, 1), (1, 1, "valid", 0, 1, 1),
    (1, 1, "valid", 1, 1, 0), (1, 1, "valid", 1, 1, -3), (1, 1, "SAME", 1, 1, 1)])
def test_core_entry_points_reject_bad_values(args):
    x, k = _xk()
    with pytest.raises(ValueError, match="conv2d_forward"):
        _core.conv2d_forward(x, k, None, *args, False)
    dy = np.zeros((2, 4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="conv2d_backward"):
        _core.conv2d_backward(dy, x, k, *args, True, True, True, None)


def test_core_is_strict_about_layout_and_dtype():
    x, k = _xk()
    with pytest.raises(TypeError):
        _core.conv2d_forward(np.asfortranarray(x), k, None, 1, 1, "valid", 1, 1, 1, False)
    with pytest.raises(TypeError):
        _core.conv2d_forward(x, k.astype(np.float64), None, 1, 1, "valid", 1, 1, 1, False)
    with pytest.raises(TypeError, match="bias"):
        _core.conv2d_forward(x, k, np.zeros(4), 1, 1, "valid", 1, 1, 1, False)
    with pytest.raises(TypeError, match="bias"):
        _core.conv2d_forward(x, k, [0.0] * 4, 1, 1, "valid", 1, 1, 1, False)


@pytest.mark.parametrize("x_shape,k_shape,kwargs,match", [
    ((2, 3, 3, 3), (5, 5, 3, 4), {}, r"output size \(-?\d+, -?\d+\).*input size \(3, 3\).*kernel size \(5, 5\)"),
    ((2, 3, 8, 3), (1, 1, 3, 4), dict(strides=1, dilation_rate=1), None),  # fine: sanity
    ((2, 6, 6, 3), (3, 3, 3, 4), dict(dilation_rate=4), r"output size"),
    ((2, 6, 6, 3), (3, 3), {}, r"kernel must be 4-D"),
    ((6, 6, 3), (3, 3, 3, 4), {}, r"x must be 4-D, received shape \(6, 6, 3\)"),
    ((1, 2, 6, 6, 3), (3, 3, 3, 4), {}, r"x must be 4-D"),
    ((2, 6, 6, 3), (3, 3, 2, 4), {}, r"kernel must be \(KH, KW, C/groups=3, F\).*\(2, 6, 6, 3\).*\(3, 3, 2, 4\)"),
    ((2, 6, 6, 4), (3, 3, 2, 4), dict(groups=3), r"multiple of groups"),
    ((2, 6, 6, 4), (3, 3, 2, 3), dict(groups=2), r"filters.*multiple of groups"),
    ((2, 0, 6, 3), (3, 3, 3, 4), {}, r"positive H, W and C"),
    ((2, 6, 6, 0), (3, 3, 0, 4), {}, r"positive H, W and C"),
    ((2, 6, 6, 3), (0, 3, 3, 4), {}, r"positive sizes"),
    ((2, 6, 6, 3), (3, 3, 3, 0), {}, r"positive sizes"),
])
def test_bad_shapes(x_shape, k_shape, kwargs, match):
    x, k = np.zeros(x_shape, np.float32), np.zeros(k_shape, np.float32)
    if match is None:
        conv.conv2d(x, k, **kwargs)
        return
    with pytest.raises(ValueError, match=match):
        conv.conv2d(x, k, **kwargs)


def test_bad_backward_shapes():
    x, k = _xk()
    with pytest.raises(ValueError, match=r"dy must have the output shape \(2, 4, 4, 4\).*received \(2, 4, 4, 3\)"):
        conv.conv2d_backward(np.zeros((2, 4, 4, 3), np.float32), x, k)
    with pytest.raises(ValueError, match="relu_output must have shape"):
        conv.conv2d_backward(np.zeros((2, 4, 4, 4), np.float32), x, k,
                             relu_output=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="bias must have shape"):
        conv.conv2d(x, k, np.zeros(3, np.float32))


@pytest.mark.parametrize("bad", [np.zeros((2, 6, 6, 3), np.int32), np.zeros((2, 6, 6, 3), np.float16),
                                 np.zeros((2, 6, 6, 3), bool), np.zeros((2, 6, 6, 3), complex),
                                 np.zeros((2, 6, 6, 3), object), [[[[0.0] * 3] * 6] * 6] * 2])
def test_bad_dtypes(bad):
    _, k = _xk()
    with pytest.raises(TypeError):
        conv.conv2d(bad, k)


def test_mixed_dtypes_rejected():
    x, k = _xk()
    with pytest.raises(TypeError, match="dtype"):
        conv.conv2d(x, k.astype(np.float64))
    with pytest.raises(TypeError, match="dtype"):
        conv.conv2d(x, k, np.zeros(4, np.float64))


def test_huge_shapes_rejected_before_allocating():
    x = np.zeros((1, 6, 6, 1), np.float32)
    # the window span (k-1)*dilation overflows int64
    with pytest.raises(ValueError, match="overflow|too large"):
        conv.conv2d(x, np.zeros((3, 3, 1, 1), np.float32), dilation_rate=2**62, padding="same")
    with pytest.raises(ValueError, match="overflow|too large"):
        conv.conv2d(x, np.zeros((3, 3, 1, 1), np.float32), dilation_rate=(1, 2**63 - 1))
    with pytest.raises(ValueError):
        conv.conv2d(x, np.zeros((3, 3, 1, 1), np.float32), strides=2**64)
    # an output of ~1e12 elements: refused by the allocator, not written
    big_x = np.zeros((1, 1000, 1000, 1), np.float32)
    big_k = np.zeros((1, 1, 1, 2**20), np.float32)
    with pytest.raises(MemoryError):
        conv.conv2d(big_x, big_k)


def test_huge_dilation_on_a_unit_kernel_axis(rng):
    # KH = 1: the row dilation is never applied, whatever its size
    x = rand(rng, 2, 5, 6, 3)
    k = rand(rng, 1, 2, 3, 4)
    for padding in ("valid", "same"):
        y = conv.conv2d(x, k, padding=padding, dilation_rate=(2**62, 1))
        np.testing.assert_allclose(y, ref.conv2d(x, k, None, 1, padding, (1, 1)), rtol=1e-12)
        dy = rand(rng, *y.shape)
        for a, e in zip(conv.conv2d_backward(dy, x, k, padding=padding, dilation_rate=(2**62, 1)),
                        ref.conv2d_backward(dy, x, k, 1, padding, (1, 1))):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


def test_output_size_function_matches_kernel():
    for size, k, s, d, padding in itertools.product([1, 4, 7], [1, 2, 3], [1, 2, 3], [1, 2], ["valid", "same"]):
        oh = conv.conv2d_output_size(size, k, s, d, padding)
        assert oh == ref.pads(size, k, s, d, padding)[0]
        x = np.zeros((1, size, 1, 1))
        if oh < 1:
            with pytest.raises(ValueError, match="output size"):
                conv.conv2d(x, np.zeros((k, 1, 1, 1)), strides=s, dilation_rate=d, padding=padding)
        else:
            assert conv.conv2d(x, np.zeros((k, 1, 1, 1)), strides=s, dilation_rate=d,
                               padding=padding).shape == (1, oh, 1, 1)


# ------------------------------------------------------------------ Conv2D layer
from fastdl import layers  # noqa: E402
from fastdl.utils import set_random_seed  # noqa: E402
from gradcheck import check_layer_gradients  # noqa: E402


def test_layer_defaults_weights_and_forward(rng):
    set_random_seed(0)
    layer = layers.Conv2D(4, 3)
    assert (layer.strides, layer.padding, layer.dilation_rate, layer.groups, layer.use_bias) == \
        ((1, 1), "valid", (1, 1), 1, True)
    x = rand(rng, 2, 7, 6, 3)
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == (2, 5, 4, 4) == layer.compute_output_shape(x.shape)
    assert layer.kernel.shape == (3, 3, 3, 4) and layer.bias.shape == (4,) and layer.count_params() == 112
    assert layer.weight_names == ["kernel", "bias"]
    np.testing.assert_allclose(y, ref.conv2d(x.astype(np.float32), layer.kernel, layer.bias), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kwargs", [
    dict(activation="relu"), dict(activation="tanh", padding="same", strides=2),
    dict(activation=None, use_bias=False, kernel_size=(2, 3), strides=(3, 2)),
    dict(padding="same", dilation_rate=(2, 1), activation="sigmoid"),
    dict(groups=2, padding="same", activation="relu"), dict(kernel_size=1, groups=2)])
def test_layer_gradients_float64(rng, algorithm, kwargs):
    set_random_seed(1)
    kwargs.setdefault("kernel_size", 3)
    layer = layers.Conv2D(4, dtype="float64", **kwargs)
    x = rand(rng, 2, 6, 5, 4)
    if kwargs.get("activation") == "relu":  # keep the pre-activations away from the kink
        layer(x)
        layer.bias[...] = 0.05
    check_layer_gradients(layer, x)


def test_layer_fused_relu_matches_unfused(rng, algorithm):
    set_random_seed(2)
    fused = layers.Conv2D(5, 3, padding="same", activation="relu")
    plain = layers.Conv2D(5, 3, padding="same")
    x = rand(rng, 3, 8, 8, 3, dtype=np.float32)
    fused(x), plain(x)
    plain.set_weights(fused.get_weights())
    y = fused(x, training=True)
    z = plain(x, training=True)
    np.testing.assert_allclose(y, np.maximum(z, 0), rtol=1e-6, atol=1e-6)
    dy = rand(rng, *y.shape, dtype=np.float32)
    dx = fused.backward(dy)
    dx_ref = plain.backward(dy * (z > 0))
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(fused.grads, plain.grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_layer_float32_grads_match_float64(rng, algorithm):
    set_random_seed(3)
    l64 = layers.Conv2D(6, 3, padding="same", activation="relu", dtype="float64")
    l32 = layers.Conv2D(6, 3, padding="same", activation="relu")
    x = rand(rng, 3, 9, 8, 4)
    l64(x), l32(x.astype(np.float32))
    l32.set_weights(l64.get_weights())
    dy = rand(rng, 3, 9, 8, 6)
    l64(x, training=True), l32(x.astype(np.float32), training=True)
    dx64, dx32 = l64.backward(dy), l32.backward(dy.astype(np.float32))
    np.testing.assert_allclose(dx32, dx64, rtol=1e-5, atol=1e-5)
    for a, b in zip(l32.grads, l64.grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_layer_can_skip_the_input_gradient(rng):
    set_random_seed(6)
    layer = layers.Conv2D(4, 3, activation="relu")
    x = rand(rng, 2, 6, 6, 3, dtype=np.float32)
    y = layer(x, training=True)
    dy = rand(rng, *y.shape, dtype=np.float32)
    dx = layer.backward(dy)
    grads = [g.copy() for g in layer.grads]
    layer.input_gradient_needed = False
    layer(x, training=True)
    assert layer.backward(dy) is None and dx.shape == x.shape
    for a, b in zip(layer.grads, grads):
        np.testing.assert_array_equal(a, b)


def test_layer_frozen_and_empty_batch(rng):
    set_random_seed(4)
    layer = layers.Conv2D(3, 2)
    x = rand(rng, 2, 5, 5, 2, dtype=np.float32)
    layer(x)
    layer.trainable = False
    y = layer(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert layer.grads == [] and dx.shape == x.shape
    layer.trainable = True
    empty = np.zeros((0, 5, 5, 2), np.float32)
    y = layer(empty, training=True)
    assert y.shape == (0, 4, 4, 3)
    dx = layer.backward(y)
    assert dx.shape == empty.shape
    assert [g.shape for g in layer.grads] == [(2, 2, 2, 3), (3,)]
    assert not any(g.any() for g in layer.grads)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(filters=0, kernel_size=3), ValueError, "filters"),
    (dict(filters=-1, kernel_size=3), ValueError, "filters"),
    (dict(filters=4, kernel_size=0), ValueError, "kernel_size"),
    (dict(filters=4, kernel_size=(3, 0)), ValueError, "kernel_size"),
    (dict(filters=4, kernel_size=3, strides=0), ValueError, "strides"),
    (dict(filters=4, kernel_size=3, dilation_rate=0), ValueError, "dilation_rate"),
    (dict(filters=4, kernel_size=3, groups=0), ValueError, "groups"),
    (dict(filters=4, kernel_size=3, groups=3), ValueError, "groups"),
    (dict(filters=4, kernel_size=3, strides=2, dilation_rate=2), ValueError, "dilation_rate"),
    (dict(filters=4, kernel_size=3, padding="causal"), ValueError, "padding"),
    (dict(filters=4, kernel_size=3, data_format="channels_first"), ValueError, "channels_last"),
    (dict(filters=4, kernel_size=3, lora_rank=2), ValueError, "lora_rank"),
    (dict(filters=4, kernel_size=2.5), TypeError, "kernel_size"),
    (dict(filters=4, kernel_size="3"), TypeError, "kernel_size"),
    (dict(filters=4, kernel_size=None), TypeError, "kernel_size"),
    (dict(filters=4, kernel_size=True), TypeError, "kernel_size"),
    (dict(filters=4.0, kernel_size=3), TypeError, "filters"),
    (dict(filters=4, kernel_size=3, strides=(1, True)), TypeError, "strides"),
    (dict(filters=4, kernel_size=3, use_bias="yes"), TypeError, "use_bias"),
    (dict(filters=4, kernel_size=3, activation="nope"), ValueError, "activation"),
])
def test_layer_bad_hyperparameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        layers.Conv2D(**kwargs)


def test_layer_bad_inputs(rng):
    layer = layers.Conv2D(4, 3, groups=2)
    with pytest.raises(ValueError, match=r"ndim=4.*\(2, 6, 6\)"):
        layer(np.zeros((2, 6, 6), np.float32))
    with pytest.raises(ValueError, match=r"groups=2.*3 channels.*\(2, 6, 6, 3\)"):
        layer(np.zeros((2, 6, 6, 3), np.float32))
    layer = layers.Conv2D(4, 3)
    layer(np.zeros((2, 6, 6, 3), np.float32))
    with pytest.raises(ValueError, match=r"ndim=4.*\(1, 2, 6, 6, 3\)"):
        layer(np.zeros((1, 2, 6, 6, 3), np.float32))
    with pytest.raises(ValueError, match=r"axis -1.*value 3.*\(2, 6, 6, 5\)"):
        layer(np.zeros((2, 6, 6, 5), np.float32))
    with pytest.raises(ValueError, match=r"output size \(1, 0\).*\(2, 3, 2, 3\).*kernel_size=\(3, 3\)"):
        layer(np.zeros((2, 3, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"output size \(0, 0\).*kernel_size=\(5, 5\)"):
        layers.Conv2D(2, 5)(np.zeros((1, 3, 3, 1), np.float32))
    with pytest.raises(ValueError, match="zero-sized"):
        layer(np.zeros((2, 0, 6, 3), np.float32))
    with pytest.raises(TypeError):
        layer(np.zeros((2, 6, 6, 3), object))
    y = layer(np.zeros((2, 6, 6, 3), np.float32), training=True)
    with pytest.raises(ValueError, match="dy has shape"):
        layer.backward(np.zeros(y.shape[:-1] + (3,), np.float32))


def test_layer_accepts_any_layout_and_int_input(rng):
    set_random_seed(5)
    layer = layers.Conv2D(3, 3, padding="same")
    base = rand(rng, 2, 8, 12, 2, dtype=np.float32)
    expect = layer(np.ascontiguousarray(base[:, :, ::2]))
    np.testing.assert_array_equal(layer(base[:, :, ::2]), expect)
    np.testing.assert_array_equal(layer(np.asfortranarray(base[:, :, ::2])), expect)
    ints = rng.integers(0, 5, (2, 8, 6, 2))
    np.testing.assert_array_equal(layer(ints), layer(ints.astype(np.float32)))


def test_layer_config_round_trip():
    layer = layers.Conv2D(8, (3, 2), strides=2, padding="SAME", activation="relu", use_bias=False,
                          name="c", kernel_initializer="he_normal")
    config = layer.get_config()
    assert config["padding"] == "same" and config["kernel_size"] == (3, 2) and config["strides"] == (2, 2)
    clone = layers.Conv2D.from_config(config)
    assert clone.get_config() == config
    assert layers.Conv2D(2, 3).compute_output_shape((None, None, 9, 1)) == (None, None, 7, 2)
    assert layers.Convolution2D is layers.Conv2D


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_fuses_conv_and_max_pool_bitwise(rng, algorithm, dtype):
    """predict/evaluate run Conv2D -> MaxPooling2D pairs as one kernel: the same bits as the
    layer-by-layer forward (model(x)), for each fusable pair, and the other pairs untouched."""
    set_random_seed(4)
    model = fastdl.Sequential([
        layers.Conv2D(16, 3, activation="relu", input_shape=(13, 12, 3), dtype=dtype),
        layers.MaxPooling2D(dtype=dtype),                    # fused: 2x2
        layers.Conv2D(16, 3, padding="same", dtype=dtype),
        layers.MaxPooling2D((3, 2), dtype=dtype),            # fused: linear conv, 3x2 windows
        layers.Conv2D(8, 1, activation="tanh", dtype=dtype),
        layers.MaxPooling2D((1, 2), strides=1, dtype=dtype),  # not fused: tanh, strides
        layers.Flatten(dtype=dtype), layers.Dense(3, dtype=dtype)])
    model.compile(loss="mse")
    x = rand(rng, 7, 13, 12, 3, dtype=dtype)
    y = rand(rng, 7, 3, dtype=dtype)
    unfused = model(x).numpy()
    assert model.layers[0]._cache is not None
    fused = model.predict(x, verbose=0)
    assert model.layers[0]._cache is None and model.layers[2]._cache is None  # the fused path ran
    assert model.layers[4]._cache is not None
    assert fused.dtype == unfused.dtype and fused.tobytes() == unfused.tobytes()
    expect = float(np.mean((unfused - y) ** 2))
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), expect, rtol=1e-6)
    # training fuses too, and leaves both layers what their backward needs
    model.train_on_batch(x, y)
    assert all(layer._cache is not None for layer in model.layers[:4])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_with_fused_conv_and_max_pool_is_bitwise_the_layers(rng, algorithm, dtype,
                                                                     monkeypatch):
    """train_on_batch runs Conv2D -> MaxPooling2D as one kernel that also keeps the conv output
    and the argmax: weights after a few steps equal, bit for bit, those of the same model whose
    layers run one by one."""
    def build():
        set_random_seed(5)
        model = fastdl.Sequential([
            layers.Conv2D(16, 3, activation="relu", input_shape=(11, 10, 3), dtype=dtype),
            layers.MaxPooling2D(dtype=dtype),
            layers.Conv2D(16, 3, padding="same", activation="relu", dtype=dtype),
            layers.MaxPooling2D((2, 3), dtype=dtype),
            layers.Flatten(dtype=dtype), layers.Dense(4, dtype=dtype)])
        model.compile(optimizer="adam", loss="mse")
        return model

    fused, plain = build(), build()
    for layer in plain.layers:  # the reference: no pair fuses
        layer._fuse_next = lambda x, next_layer: None
    calls = []
    kernel = _core.conv2d_max_pool_forward
    monkeypatch.setattr(_core, "conv2d_max_pool_forward",
                        lambda *a: calls.append(a[-1]) or kernel(*a))
    x = rand(rng, 6, 11, 10, 3, dtype=dtype)
    y = rand(rng, 6, 4, dtype=dtype)
    losses = []
    for _ in range(3):
        a, b = fused.train_on_batch(x, y), plain.train_on_batch(x, y)
        assert a == b
        losses.append(a)
    assert losses[-1] < losses[0]  # it trained
    assert calls == [True, True] * 3  # both pairs fused, keeping what the backward needs
    for u, v in zip(fused.get_weights(), plain.get_weights()):
        assert u.tobytes() == v.tobytes()


def test_fused_pair_with_a_too_small_output_raises_the_layer_error(rng):
    model = fastdl.Sequential([layers.Conv2D(4, 3), layers.MaxPooling2D(3)])  # built on use
    model.predict(rand(rng, 2, 7, 7, 1, dtype=np.float32), verbose=0)
    with pytest.raises(ValueError, match=f"Layer '{model.layers[1].name}'.*less than 1"):
        model.predict(rand(rng, 2, 4, 4, 1, dtype=np.float32), verbose=0)
