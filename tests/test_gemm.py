"""fastdl.ops.core.matmul against float64 NumPy: shapes, flags, layouts, bad input."""
import numpy as np
import pytest

from fastdl.ops import core as ops

SHAPES = [(0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 7, 1), (1, 1, 9), (9, 1, 1), (1, 5, 8),
          (8, 5, 1), (17, 33, 9), (64, 64, 64), (257, 129, 65), (300, 27, 32),
          (100, 800, 70)]  # few row panels but three k blocks: op(b) packed for them


def _operand(rng, rows, cols, dtype, transposed):
    m = rng.standard_normal((cols, rows) if transposed else (rows, cols)).astype(dtype)
    return m


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_matches_float64_numpy(m, k, n, ta, tb, dtype, tol):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = _operand(rng, m, k, dtype, ta)
    b = _operand(rng, k, n, dtype, tb)
    expected = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    got = ops.matmul(a, b, transpose_a=ta, transpose_b=tb)
    assert got.dtype == dtype and got.shape == (m, n)
    scale = max(1.0, np.sqrt(k))
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale)


def test_matmul_large():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((700, 513)).astype(np.float32)
    b = rng.standard_normal((513, 390)).astype(np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(ops.matmul(a, b), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("layout", ["strided", "transposed", "reversed", "fortran", "readonly",
                                    "broadcast", "unaligned"])
def test_matmul_any_layout_equals_contiguous(layout):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((12, 20)).astype(np.float32)
    if layout == "strided":
        a = base[:, ::2]
    elif layout == "transposed":
        a = base[:10, :12].T
    elif layout == "reversed":
        a = base[::-1, :10]
    elif layout == "fortran":
        a = np.asfortranarray(base[:, :10])
    elif layout == "readonly":
        a = base[:, :10].copy()
        a.setflags(write=False)
    elif layout == "broadcast":
        a = np.broadcast_to(base[0, :10], (12, 10))
    else:
        raw = np.zeros(12 * 10 * 4 + 1, dtype=np.uint8)[1:].view(np.float32).reshape(12, 10)
        raw[...] = base[:, :10]
        a = raw
    b = rng.standard_normal((10, 7)).astype(np.float32)
    np.testing.assert_array_equal(ops.matmul(a, b), ops.matmul(np.ascontiguousarray(a), b))


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_backward_matches_finite_differences(ta, tb):
    rng = np.random.default_rng(2)
    m, k, n = 4, 5, 3
    a = _operand(rng, m, k, np.float64, ta)
    b = _operand(rng, k, n, np.float64, tb)
    dc = rng.standard_normal((m, n))
    da, db = ops.matmul_backward(dc, a, b, transpose_a=ta, transpose_b=tb)

    def loss(a_, b_):
        return float(np.sum(ops.matmul(a_, b_, transpose_a=ta, transpose_b=tb) * dc))

    for arr, grad, other_first in ((a, da, True), (b, db, False)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += 1e-6
            minus[idx] -= 1e-6
            if other_first:
                num[idx] = (loss(plus, b) - loss(minus, b)) / 2e-6
            else:
                num[idx] = (loss(a, plus) - loss(a, minus)) / 2e-6
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_matmul_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"a must be 2-D, received shape \(3,\)"):
        ops.matmul(np.zeros(3, np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"b must be 2-D, received shape \(1, 3, 2\)"):
        ops.matmul(np.zeros((2, 3), np.float32), np.zeros((1, 3, 2), np.float32))


def test_matmul_rejects_inner_dimension_mismatch():
    with pytest.raises(ValueError, match=r"inner dimensions differ: a \(2, 3\) and b \(4, 2\)"):
        ops.matmul(np.zeros((2, 3), np.float32), np.zeros((4, 2), np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.bool_, np.complex64, object])
def test_matmul_rejects_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match="must be float32 or float64, received dtype"):
        ops.matmul(np.zeros((2, 2), dtype=dtype), np.zeros((2, 2), dtype=dtype))


def test_matmul_rejects_mixed_dtypes_and_lists():
    with pytest.raises(TypeError, match="b has dtype float64 but the other operand has float32"):
        ops.matmul(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float64))
    with pytest.raises(TypeError, match="must be a NumPy array, received list"):
        ops.matmul([[1.0]], np.zeros((1, 1), np.float32))
    with pytest.raises(TypeError, match="transpose_a must be a bool"):
        ops.matmul(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32), transpose_a=1)


def test_raw_core_rejects_silent_conversion():
    from fastdl import _core
    with pytest.raises(TypeError):
        _core.matmul(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError):  # non-contiguous input is not copied silently by the binding
        _core.matmul(np.zeros((2, 4), np.float32)[:, ::2], np.zeros((2, 2), np.float32))


def _uses_fastdl_float_gemm():
    """Whether float32 products run fastdl's own GEMM (AVX-512 or AVX2+FMA builds)."""
    from fastdl import _core
    return _core.build_info()["gemm"] != "eigen"


def test_build_info_names_the_float32_gemm():
    from fastdl import _core
    info = _core.build_info()
    if info["isa"] != "native":  # a dispatch level: v2 has no AVX2, so Eigen's GEMM
        assert info["gemm"] == {"v2": "eigen", "v3": "avx2", "v4": "avx512"}[info["isa"]], info
        return
    # A native build targets the machine it was built on (-march=native): the widest kernel
    # this CPU has. (Eigen's "simd" string cannot tell: it names no AVX2 or FMA.)
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split())
    expected = ("avx512" if "avx512f" in flags else "avx2" if {"avx2", "fma"} <= flags
                else "eigen")
    assert info["gemm"] == expected, (info, expected)


def _reference(a, b, ta, tb):
    return (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)


def _assert_close_f32(got, expected, k):
    scale = max(1.0, np.sqrt(k))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)


# Sizes around the float32 micro-tile (12 x 32 with AVX-512, 6 x 16 with AVX2) and its vector
# width: every remainder path of the packing routines and of the kernel's masked edges.
EDGE_SIZES = [1, 2, 5, 6, 7, 11, 12, 13, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 63, 64, 65, 70]


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_float32_edge_tiles(ta, tb):
    rng = np.random.default_rng(3 + 2 * ta + tb)
    for m in EDGE_SIZES:
        for n in EDGE_SIZES[::3] + [70]:
            for k in (1, 3, 16, 17, 70):
                a = _operand(rng, m, k, np.float32, ta)
                b = _operand(rng, k, n, np.float32, tb)
                got = ops.matmul(a, b, transpose_a=ta, transpose_b=tb)
                assert got.shape == (m, n)
                _assert_close_f32(got, _reference(a, b, ta, tb), k)


# Shapes that reach each path of the float32 driver: several k and n blocks, packed and in-place
# operands (tall op(a), wide row stride of b, narrow b), the skinny im2col products of a CNN and
# their transposed backward products, and long-k products that split k across threads.
PATH_SHAPES = [(500, 700, 600), (100, 1100, 40), (13, 400, 1030), (20, 1600, 40), (27, 5000, 32),
               (2000, 27, 32), (2000, 32, 27), (1500, 288, 64), (288, 1500, 64), (1024, 64, 288),
               (700, 513, 390), (64, 128, 10), (64, 64, 256), (130, 70, 129)]


@pytest.mark.parametrize("m,k,n", PATH_SHAPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_float32_driver_paths(m, k, n, ta, tb):
    rng = np.random.default_rng(m + 7 * k + 13 * n)
    a = _operand(rng, m, k, np.float32, ta)
    b = _operand(rng, k, n, np.float32, tb)
    _assert_close_f32(ops.matmul(a, b, transpose_a=ta, transpose_b=tb), _reference(a, b, ta, tb), k)


# Each shape has more than 8 MFLOP, so that it runs on several threads when they are allowed.
@pytest.mark.parametrize("m,k,n,ta,tb", [(300, 200, 150, False, False), (257, 400, 600, True, False),
                                         (600, 450, 257, False, True), (27, 6000, 32, True, False),
                                         (288, 4000, 64, True, False), (6000, 27, 32, False, False),
                                         (6000, 32, 27, False, True), (170, 170, 170, True, True)])
def test_matmul_float32_is_bitwise_independent_of_thread_count(m, k, n, ta, tb):
    # fastdl's float32 GEMM: blocking, k slices and summation order depend on the shape only.
    # Builds without AVX2+FMA (the x86-64-v2 level) run Eigen's GEMM, for which only allclose holds.
    import fastdl
    rng = np.random.default_rng(5)
    a = _operand(rng, m, k, np.float32, ta)
    b = _operand(rng, k, n, np.float32, tb)
    expected = _reference(a, b, ta, tb)
    original = fastdl.get_num_threads()
    try:
        results = {}
        for threads in (1, 2, 3):
            fastdl.set_num_threads(threads)
            results[threads] = ops.matmul(a, b, transpose_a=ta, transpose_b=tb)
            _assert_close_f32(results[threads], expected, k)
    finally:
        fastdl.set_num_threads(original)
    if not _uses_fastdl_float_gemm():
        pytest.skip("Eigen GEMM in this build: thread counts agree to rounding only")
    np.testing.assert_array_equal(results[2], results[1])
    np.testing.assert_array_equal(results[3], results[1])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k,n,ta", [(333, 444, 555, False), (27, 8000, 32, True)])
def test_matmul_float32_repeated_calls_are_deterministic(threads, m, k, n, ta):
    import fastdl
    rng = np.random.default_rng(6)
    a = _operand(rng, m, k, np.float32, ta)
    b = rng.standard_normal((k, n)).astype(np.float32)
    original = fastdl.get_num_threads()
    try:
        fastdl.set_num_threads(threads)
        first = ops.matmul(a, b, transpose_a=ta)
        for _ in range(5):
            np.testing.assert_array_equal(ops.matmul(a, b, transpose_a=ta), first)
    finally:
        fastdl.set_num_threads(original)


def test_matmul_float32_special_values_propagate():
    a = np.ones((40, 50), np.float32)
    b = np.ones((50, 70), np.float32)
    a[3, 7] = np.nan
    b[9, 65] = np.inf
    got = ops.matmul(a, b)
    assert np.isnan(got[3]).all()
    assert np.isinf(got[:3, 65]).all() and np.isinf(got[4:, 65]).all()
    assert np.isfinite(np.delete(np.delete(got, 3, axis=0), 65, axis=1)).all()


def test_matmul_backward_float32_matches_reference():
    rng = np.random.default_rng(8)
    for ta, tb in ((False, False), (True, False), (False, True), (True, True)):
        a = _operand(rng, 150, 90, np.float32, ta)
        b = _operand(rng, 90, 70, np.float32, tb)
        dc = rng.standard_normal((150, 70)).astype(np.float32)
        da, db = ops.matmul_backward(dc, a, b, transpose_a=ta, transpose_b=tb)
        da_ref = dc.astype(np.float64) @ (b.T if tb else b).astype(np.float64).T
        db_ref = (a.T if ta else a).astype(np.float64).T @ dc.astype(np.float64)
        _assert_close_f32(da, da_ref.T if ta else da_ref, 70)
        _assert_close_f32(db, db_ref.T if tb else db_ref, 150)


# AVX-512 builds pick 8 x 48 or 12 x 32 tiles by n (gemm.cpp's sgemm): widths around and between
# their panels, with ragged last panels of each, two k blocks and a row count of neither 8 nor 12.
@pytest.mark.parametrize("n", [31, 32, 33, 47, 48, 49, 64, 65, 96, 128, 129, 160, 200])
@pytest.mark.parametrize("ta", [False, True])
def test_matmul_every_tile_width(n, ta):
    rng = np.random.default_rng(n)
    a = _operand(rng, 37, 401, np.float32, ta)
    b = _operand(rng, 401, n, np.float32, False)
    bias = rng.standard_normal(n).astype(np.float32)
    expected = _reference(a, b, ta, False)
    np.testing.assert_allclose(ops.matmul(a, b, transpose_a=ta), expected, rtol=1e-5,
                               atol=1e-5 * np.sqrt(401))
    np.testing.assert_allclose(ops.matmul(a, b, transpose_a=ta, bias=bias), expected + bias,
                               rtol=1e-5, atol=1e-5 * np.sqrt(401))


# The bias epilogue: ragged right edges (the padded bias copy), several k blocks (the bias added
# once, with the last one), split-k products (added in the reduction) and an empty k.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(7, 3, 5), (13, 70, 17), (250, 400, 33), (20, 1600, 40),
                                   (27, 5000, 32), (64, 128, 384), (5, 0, 9)])
@pytest.mark.parametrize("ta", [False, True])
def test_matmul_bias_is_added_to_every_row(m, k, n, ta, dtype):
    rng = np.random.default_rng(m + 3 * k + 5 * n)
    a = _operand(rng, m, k, dtype, ta)
    b = _operand(rng, k, n, dtype, False)
    bias = rng.standard_normal(n).astype(dtype)
    got = ops.matmul(a, b, transpose_a=ta, bias=bias)
    expected = _reference(a, b, ta, False) + bias
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * max(1.0, np.sqrt(k)))


def test_matmul_bias_must_match_the_product():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"matmul: bias must have shape \(5,\), received \(4,\)"):
        ops.matmul(a, b, bias=np.ones(4, np.float32))
    with pytest.raises(TypeError, match="bias has dtype float64 but the other operand has float32"):
        ops.matmul(a, b, bias=np.ones(5))


# matmul_b_sums: the product beside op(b)'s column sums, taken where the GEMM packs op(b) (several
# k blocks, a team or a k split: the weight gradients x^T @ dy), else read in place or by Eigen.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", SHAPES + [(128, 6400, 384), (128, 6400, 128), (20, 1600, 40),
                                            (500, 700, 600), (300, 27, 32), (64, 128, 10)])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_b_sums_are_the_product_and_column_sums(m, k, n, ta, tb, dtype):
    rng = np.random.default_rng(m + 3 * k + 5 * n + 7 * ta + 11 * tb)
    a = _operand(rng, m, k, dtype, ta)
    b = _operand(rng, k, n, dtype, tb)
    c, sums = ops.matmul_b_sums(a, b, transpose_a=ta, transpose_b=tb)
    assert c.shape == (m, n) and sums.shape == (n,) and sums.dtype == dtype
    np.testing.assert_array_equal(c, ops.matmul(a, b, transpose_a=ta, transpose_b=tb))
    expected = (b.T if tb else b).astype(np.float64).sum(axis=0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(sums, expected, rtol=tol, atol=tol * max(1.0, np.sqrt(k)))


@pytest.mark.parametrize("m,k,n", [(128, 6400, 384), (500, 1200, 600), (20, 1600, 40)])
def test_matmul_b_sums_are_bitwise_independent_of_thread_count(m, k, n):
    import fastdl
    rng = np.random.default_rng(8)
    x, dy = rng.standard_normal((k, m)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    original = fastdl.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            fastdl.set_num_threads(threads)
            results.append(ops.matmul_b_sums(x, dy, transpose_a=True))
    finally:
        fastdl.set_num_threads(original)
    if not _uses_fastdl_float_gemm():
        pytest.skip("Eigen GEMM in this build: thread counts agree to rounding only")
    for c, sums in results[1:]:
        np.testing.assert_array_equal(c, results[0][0])
        np.testing.assert_array_equal(sums, results[0][1])


def test_matmul_b_sums_rejects_bad_input():
    a, b = np.ones((3, 4), np.float32), np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match="matmul_b_sums: inner dimensions differ"):
        ops.matmul_b_sums(a, b)
    with pytest.raises(TypeError, match="other operand has float32"):
        ops.matmul_b_sums(a, np.ones((4, 2)))
    with pytest.raises(TypeError, match="transpose_a must be a bool"):
        ops.matmul_b_sums(a, np.ones((4, 2), np.float32), transpose_a=1)
