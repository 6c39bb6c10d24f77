"""Threaded GEMM stays exact under repetition and concurrent callers (races show up here)."""
import threading

import numpy as np
import pytest

import fastdl
from fastdl.ops import core as ops

# k > 384 crosses k blocks; (64, 20000, 32) takes the split-k path of weight gradients
SHAPES = [(700, 513, 390), (300, 1200, 200), (64, 20000, 32), (1024, 576, 128)]


@pytest.fixture
def two_threads():
    original = fastdl.get_num_threads()
    fastdl.set_num_threads(2)
    yield
    fastdl.set_num_threads(original)


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_repeated_threaded_products_are_all_correct(m, k, n, two_threads):
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    first = ops.matmul(a, b)
    np.testing.assert_allclose(first, expected, rtol=1e-4, atol=2e-5 * np.sqrt(k))
    for _ in range(15):
        np.testing.assert_array_equal(ops.matmul(a, b), first)


def test_concurrent_callers_get_their_own_results(two_threads):
    rng = np.random.default_rng(7)
    pairs = [(rng.standard_normal((400, 450)).astype(np.float32),
              rng.standard_normal((450, 300)).astype(np.float32)) for _ in range(4)]
    expected = [ops.matmul(a, b) for a, b in pairs]
    errors = []

    def work(i):
        a, b = pairs[i]
        for _ in range(10):
            if not np.array_equal(ops.matmul(a, b), expected[i]):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
