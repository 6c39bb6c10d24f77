"""Determinism and threads (docs/testing.md, "Determinism, threads, leaks").

- A seeded fit is bitwise reproducible at a fixed thread count; 1 vs 2 threads agree (allclose)
  for a small CNN and an LSTM.
- The ops that the documentation says are bitwise independent of the thread count are (float32
  forward passes, pooling/RNN/embedding input gradients; weight gradients and conv2d's dx are
  only allclose).
- Concurrent predict() from several Python threads on one model gives the single-threaded result.
- Kernels release the GIL: two Python threads running long kernels overlap in time.
"""
import sys
import threading
import time

import numpy as np
import pytest

import fastdl
from fastdl import layers as L
from fastdl.ops import core as ops
from fastdl.ops.core import conv, pool, rnn
from fastdl.utils import set_random_seed


@pytest.fixture
def restore_threads():
    original = fastdl.get_num_threads()
    yield
    fastdl.set_num_threads(original)


def _cnn():
    return fastdl.Sequential([
        L.Conv2D(4, 3, padding="same", activation="relu", input_shape=(10, 10, 2)),
        L.BatchNormalization(), L.MaxPooling2D(), L.Conv2D(6, 3, strides=2),
        L.GlobalAveragePooling2D(), L.Dropout(0.2), L.Dense(3, activation="softmax")])


def _lstm():
    return fastdl.Sequential([L.Embedding(30, 6, input_shape=(7,)), L.LSTM(8, return_sequences=True),
                              L.GRU(5), L.Dense(3, activation="softmax")])


def _data(kind):
    rng = np.random.default_rng(11)
    if kind == "cnn":
        return rng.standard_normal((96, 10, 10, 2)).astype(np.float32), rng.integers(0, 3, 96)
    return rng.integers(0, 30, (96, 7)), rng.integers(0, 3, 96)


def _fit(kind, threads, optimizer="adam"):
    fastdl.set_num_threads(threads)
    set_random_seed(123)
    model = _cnn() if kind == "cnn" else _lstm()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    x, y = _data(kind)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return model.get_weights(), history.history["loss"], model.predict(x, verbose=0)


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_seeded_fit_is_bitwise_reproducible_at_fixed_threads(kind, restore_threads):
    w1, l1, p1 = _fit(kind, 2)
    w2, l2, p2 = _fit(kind, 2)
    assert l1 == l2
    for a, b in zip(w1, w2):
        assert a.tobytes() == b.tobytes()
    assert p1.tobytes() == p2.tobytes()


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_one_vs_two_threads_allclose(kind, restore_threads):
    w1, l1, p1 = _fit(kind, 1)
    w2, l2, p2 = _fit(kind, 2)
    np.testing.assert_allclose(l1, l2, rtol=1e-4)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(p1, p2, rtol=1e-3, atol=1e-5)
    # and the two runs really trained (a check that could not pass on untouched weights)
    assert l1[-1] < l1[0]


# ------------------------------------------------------------------ bitwise thread independence
def _rng_arrays():
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    d = dict(a=f(300, 700), b=f(700, 200), dc=f(300, 200), x=f(8, 24, 24, 16), k=f(3, 3, 16, 24),
             kg=f(3, 3, 8, 24), xp=f(8, 24, 24, 16), dyp=f(8, 12, 12, 16), dya=f(8, 24, 24, 16),
             xr=f(48, 12, 16), ids=rng.integers(0, 500, (128, 40)), table=f(500, 32),
             dye=f(128, 40, 32))
    d["dy"] = f(8, 24, 24, 24)
    for cell, g in (("simple_rnn", 1), ("lstm", 4), ("gru", 3)):
        d["k_" + cell], d["r_" + cell] = f(16, 32 * g), f(32, 32 * g)
        d["b_" + cell] = f(2, 32 * g) if cell == "gru" else f(32 * g)
    return d


def _rnn_dx(d, cell):
    y, _, tape = rnn.rnn_forward(cell, d["xr"], d["k_" + cell], d["r_" + cell], d["b_" + cell],
                                 return_sequences=True, training=True)
    return rnn.rnn_backward(tape, np.ones_like(y))[0]


# What the documentation promises to be bitwise independent of the thread count (float32; the
# float64 GEMM is Eigen's, whose parallel blocking depends on the thread count).
BITWISE = {
    "matmul": lambda d: ops.matmul(d["a"], d["b"]),
    "matmul_backward": lambda d: ops.matmul_backward(d["dc"], d["a"], d["b"]),
    "conv2d": lambda d: conv.conv2d(d["x"], d["k"], padding="same", activation="relu"),
    "conv2d-strided-grouped": lambda d: conv.conv2d(d["x"], d["kg"], strides=2, groups=2),
    "max_pool2d": lambda d: pool.max_pool2d(d["xp"], 2),
    "max_pool2d_backward": lambda d: pool.max_pool2d_backward(
        d["dyp"], pool.max_pool2d(d["xp"], 2)[1], d["xp"].shape, 2),
    "avg_pool2d": lambda d: pool.avg_pool2d(d["xp"], 3, 1, "same"),
    "avg_pool2d_backward": lambda d: pool.avg_pool2d_backward(d["dya"], d["xp"].shape, 3, 1, "same"),
    "embedding": lambda d: rnn.embedding_lookup(d["table"], d["ids"]),
    "embedding_backward": lambda d: rnn.embedding_backward(d["dye"], d["ids"], 500),
    **{f"{c}_forward": (lambda d, c=c: rnn.rnn_forward(c, d["xr"], d["k_" + c], d["r_" + c],
                                                       d["b_" + c], return_sequences=True)[0])
       for c in ("simple_rnn", "lstm", "gru")},
    **{f"{c}_backward-dx": (lambda d, c=c: _rnn_dx(d, c)) for c in ("simple_rnn", "lstm", "gru")},
}


# At the x86-64-v2 level (FASTDL_ISA=v2) float32 products run Eigen's GEMM too (no AVX2/FMA
# kernel): there the matrix product agrees across thread counts to rounding only.
EIGEN_GEMM = fastdl.build_info()["gemm"] == "eigen"


@pytest.fixture(scope="module")
def arrays():
    return _rng_arrays()


@pytest.mark.parametrize("name", sorted(BITWISE))
def test_documented_ops_are_bitwise_thread_independent(name, arrays, restore_threads):
    results = []
    for threads in (1, 2, 3):
        fastdl.set_num_threads(threads)
        out = BITWISE[name](arrays)
        results.append([np.asarray(o).copy() for o in (out if isinstance(out, tuple) else (out,))])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            if EIGEN_GEMM and name.startswith("matmul"):
                # test_gemm.py's float32 product tolerance, for k = 700 (the longest sum here)
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.sqrt(700), err_msg=name)
            else:
                assert a.tobytes() == b.tobytes(), name


def test_weight_gradients_are_allclose_across_threads(arrays, restore_threads):
    """Weight gradients sum over threads' partial results, and conv2d's dx is computed per
    image or per shared tile depending on the thread count: only allclose is promised."""
    outs = []
    for threads in (1, 2):
        fastdl.set_num_threads(threads)
        dx, dk, db = conv.conv2d_backward(arrays["dy"], arrays["x"], arrays["k"], padding="same")
        y, _, tape = rnn.rnn_forward("lstm", arrays["xr"], arrays["k_lstm"], arrays["r_lstm"],
                                     arrays["b_lstm"], return_sequences=True, training=True)
        g = rnn.rnn_backward(tape, np.ones_like(y))
        split_k = ops.matmul(arrays["dya"].reshape(-1, 16)[:4000], arrays["dya"].reshape(-1, 16)[:4000],
                             True, False)
        outs.append([dx, dk, db, g[1], g[2], g[3], split_k])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-3 * np.abs(a).max())


@pytest.mark.parametrize("index", [0, 1, 2], ids=["dense", "cnn", "lstm"])
def test_float32_predict_is_bitwise_thread_independent(index, restore_threads):
    """The documentation's consequence of the above: predictions of a float32 model have the
    same bits at any thread count."""
    _, model, x = _models()[index]
    results = []
    for threads in (1, 2, 3):
        fastdl.set_num_threads(threads)
        results.append(model.predict(x, batch_size=64, verbose=0))
    for other in results[1:]:
        assert other.tobytes() == results[0].tobytes()


# ------------------------------------------------------------------ concurrent predict
def _models():
    set_random_seed(5)
    rng = np.random.default_rng(2)
    dense = fastdl.Sequential([L.Dense(64, activation="relu", input_shape=(40,)),
                               L.Dropout(0.5), L.Dense(10, activation="softmax")])
    cnn = _cnn()
    lstm = _lstm()
    return [("dense", dense, rng.standard_normal((257, 40)).astype(np.float32)),
            ("cnn", cnn, rng.standard_normal((130, 10, 10, 2)).astype(np.float32)),
            ("lstm", lstm, rng.integers(0, 30, (130, 7)))]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["dense", "cnn", "lstm"])
def test_concurrent_predict_matches_single_threaded(index, restore_threads):
    fastdl.set_num_threads(2)
    name, model, x = _models()[index]
    expected = model.predict(x, batch_size=32, verbose=0)
    results, errors = {}, []
    barrier = threading.Barrier(4)

    def work(i):
        try:
            barrier.wait()
            for r in range(3):
                results[(i, r)] = model.predict(x, batch_size=16 + 16 * (i % 2), verbose=0)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(results) == 12
    for key, got in results.items():
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7, err_msg=f"{name} {key}")
        if key[0] % 2 == 1:  # same batch size as the reference: bitwise
            assert got.tobytes() == expected.tobytes(), (name, key)


# ------------------------------------------------------------------ GIL release
def _gil_cases():
    """name -> factory(scale) -> a callable running one kernel call whose work grows with scale."""
    rng = np.random.default_rng(3)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731

    def matmul(s):
        a, b = f(300 * s, 600), f(600, 600)
        return lambda: ops.matmul(a, b)

    def conv_fwd(s):
        x, k = f(4 * s, 40, 40, 16), f(3, 3, 16, 32)
        return lambda: conv.conv2d(x, k, padding="same")

    def conv_bwd(s):
        x, k, dy = f(2 * s, 40, 40, 16), f(3, 3, 16, 32), f(2 * s, 40, 40, 32)
        return lambda: conv.conv2d_backward(dy, x, k, padding="same")

    def max_pool(s):
        x = f(8 * s, 64, 64, 16)
        return lambda: pool.max_pool2d(x, 3, 1, "same")

    def avg_pool_bwd(s):
        x = f(8 * s, 64, 64, 16)
        return lambda: pool.avg_pool2d_backward(x, x.shape, 3, 1, "same")

    def lstm(s):
        x, k, r = f(32 * s, 60, 32), f(32, 256), f(64, 256)
        return lambda: rnn.rnn_forward("lstm", x, k, r, return_sequences=True)

    def gru_bwd(s):
        x, k, r = f(8 * s, 60, 32), f(32, 192), f(64, 192)
        y, _, tape = rnn.rnn_forward("gru", x, k, r, return_sequences=True, training=True)
        dy = np.ones_like(y)
        return lambda: rnn.rnn_backward(tape, dy)

    def embedding_bwd(s):
        ids = (np.arange(512 * s * 200, dtype=np.int64) * 7919 % 20000).reshape(512 * s, 200)
        dy = np.ones((512 * s, 200, 64), np.float32)
        return lambda: rnn.embedding_backward(dy, ids, 20000)

    return {"matmul": matmul, "conv2d_forward": conv_fwd, "conv2d_backward": conv_bwd,
            "max_pool2d": max_pool, "avg_pool2d_backward": avg_pool_bwd, "lstm_forward": lstm,
            "gru_backward": gru_bwd, "embedding_backward": embedding_bwd}


def _calibrated(factory, minimum=0.05, max_scale=64):
    """(fn, seconds of one call) with the smallest scale whose single call takes >= minimum."""
    scale = 1
    while True:
        fn = factory(scale)
        fn()  # warm-up
        t0 = time.perf_counter()
        fn()
        single = time.perf_counter() - t0
        if single >= minimum or scale >= max_scale:
            return fn, single
        scale *= 2


def _python_runs_during_call(fn, single, attempts=3):
    """Thread A makes one call of fn; thread B meanwhile loops (record a timestamp, sleep 0.2 ms)
    until A is done. If the call holds the GIL, B cannot run a single bytecode while A is inside
    it, so no timestamp of B falls in the middle of A's call (its inner 80%). With the GIL
    released B keeps recording. B sleeps between timestamps, so it never holds the GIL long
    enough to delay A around the call. This needs only that the OS schedules B at some point
    during that window (a busy machine slows B, it does not stop it): best of `attempts`.
    Returns B's timestamps inside the window, per attempt."""
    counts = []
    for _ in range(attempts):
        window, stamps = [], []
        done = threading.Event()
        barrier = threading.Barrier(2)

        def caller():
            barrier.wait()
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            window[:] = [t0 + 0.1 * (t1 - t0), t1 - 0.1 * (t1 - t0)]
            done.set()

        def spinner():
            barrier.wait()
            while not done.is_set():
                stamps.append(time.perf_counter())
                time.sleep(0.0002)  # hold the GIL only briefly, so A never waits for it

        threads = [threading.Thread(target=caller), threading.Thread(target=spinner)]
        # A long switch interval stops the interpreter from taking the GIL from A by force
        # around the call (which would shift A's clock readings): B then runs during the call
        # only if the call itself lets the GIL go.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(5.0)
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            sys.setswitchinterval(interval)
        lo, hi = window
        counts.append(sum(lo < t < hi for t in stamps))
        if counts[-1] >= 3:
            break
    return counts


@pytest.mark.parametrize("name", sorted(_gil_cases()))
def test_kernels_release_the_gil(name, restore_threads):
    fastdl.set_num_threads(1)
    fn, single = _calibrated(_gil_cases()[name])
    counts = _python_runs_during_call(fn, single)
    assert max(counts) >= 3, (f"{name}: another Python thread ran {counts} loop iterations "
                              f"in the middle of a {single * 1e3:.0f} ms call: the kernel "
                              "seems to hold the GIL")


def test_gil_check_detects_a_call_that_holds_the_gil():
    """The criterion above can fail: sorted() on a big list holds the GIL for the whole call."""
    values = list(range(300_000))

    def holds(scale):
        data = values * scale
        return lambda: sorted(data, reverse=True)

    fn, single = _calibrated(holds, max_scale=16)
    counts = _python_runs_during_call(fn, single)
    assert counts == [0, 0, 0]
