"""No leaks (docs/testing.md, "Determinism, threads, leaks"): repeated predict, train_on_batch, save/load and every raw
kernel (success and error paths) leave no growth in Python objects, in memory traced by
tracemalloc (NumPy reports its array buffers there), in the reference counts of the arguments, or
in resident memory (/proc/self/statm), after a warm-up.
"""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import fastdl
from fastdl import _core
from fastdl import layers as L
from fastdl.utils import set_random_seed

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class Growth:
    """Runs fn warmup times, then repeat times, and measures what stayed behind."""

    def __init__(self, fn, repeat, warmup=5):
        tracemalloc.start()
        try:
            for _ in range(warmup):
                fn()
            gc.collect()
            objects0, traced0, rss0 = len(gc.get_objects()), tracemalloc.get_traced_memory()[0], rss_bytes()
            for _ in range(repeat):
                fn()
            gc.collect()
            self.objects = len(gc.get_objects()) - objects0
            self.traced = tracemalloc.get_traced_memory()[0] - traced0
            self.rss = rss_bytes() - rss0
        finally:
            tracemalloc.stop()

    def check(self, objects=20, traced=256 << 10, rss=32 << 20):
        assert self.objects <= objects, f"{self.objects} more Python objects"
        assert self.traced <= traced, f"{self.traced} more bytes traced by tracemalloc"
        assert self.rss <= rss, f"resident memory grew by {self.rss >> 20} MiB"


def test_growth_check_detects_a_leak():
    """The checker is sharp: a function keeping one 1 MiB array per call is caught."""
    kept = []
    growth = Growth(lambda: kept.append(np.ones(1 << 18, np.float32)), repeat=40)
    with pytest.raises(AssertionError):
        growth.check()
    kept.clear()


# ------------------------------------------------------------------ models
def _model(kind):
    set_random_seed(1)
    rng = np.random.default_rng(1)
    if kind == "dense":
        model = fastdl.Sequential([L.Dense(256, activation="relu", input_shape=(128,)),
                                   L.Dropout(0.3), L.Dense(10, activation="softmax")])
        x = rng.standard_normal((256, 128)).astype(np.float32)
    elif kind == "cnn":
        model = fastdl.Sequential([L.Conv2D(8, 3, padding="same", activation="relu",
                                            input_shape=(16, 16, 3)),
                                   L.BatchNormalization(), L.MaxPooling2D(), L.ZeroPadding2D(1),
                                   L.AveragePooling2D(), L.Flatten(), L.Dense(10, activation="softmax")])
        x = rng.standard_normal((64, 16, 16, 3)).astype(np.float32)
    else:
        model = fastdl.Sequential([L.Embedding(100, 16, input_shape=(20,), mask_zero=True),
                                   L.Bidirectional(L.LSTM(16, return_sequences=True)),
                                   L.GRU(8), L.Dense(10, activation="softmax")])
        x = rng.integers(0, 100, (64, 20))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, x, rng.integers(0, 10, len(x))


@pytest.mark.parametrize("kind", ["dense", "cnn", "rnn"])
def test_repeated_predict(kind):
    model, x, _ = _model(kind)
    Growth(lambda: model.predict(x, batch_size=32, verbose=0), repeat=30).check()


@pytest.mark.parametrize("kind", ["dense", "cnn", "rnn"])
def test_repeated_train_on_batch(kind):
    model, x, y = _model(kind)
    Growth(lambda: model.train_on_batch(x, y), repeat=30).check()


@pytest.mark.parametrize("kind", ["dense", "cnn", "rnn"])
def test_repeated_save_and_load(tmp_path, kind):
    from fastdl.saving import load_model
    model, x, y = _model(kind)
    model.train_on_batch(x, y)
    path = tmp_path / "m.fdl"

    def roundtrip():
        model.save(path)
        loaded = load_model(path)
        loaded.predict(x[:4], verbose=0)
        model.load_weights(path)

    # loaded models are dropped each time; unique layer names only bump counters
    Growth(roundtrip, repeat=15, warmup=3).check(objects=40)


def test_repeated_fit_epochs():
    model, x, y = _model("cnn")
    Growth(lambda: model.fit(x, y, batch_size=32, epochs=1, verbose=0), repeat=6,
           warmup=2).check(objects=40)


# ------------------------------------------------------------------ raw kernels
def _raw_calls():
    rng = np.random.default_rng(2)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    a, b = f32(256, 300), f32(300, 200)
    x, k, bias = f32(4, 12, 12, 8), f32(3, 3, 8, 16), f32(16)
    y = _core.conv2d_forward(x, k, bias, 1, 1, "same", 1, 1, 1, True)
    xw, kw = f32(4, 12, 12, 16), f32(3, 3, 16, 16)  # wide enough for Winograd under "auto"
    yw = _core.conv2d_forward(xw, kw, bias, 1, 1, "same", 1, 1, 1, True)
    xp = f32(8, 20, 20, 8)
    yp, am = _core.max_pool2d_forward(xp, 2, 2, 2, 2, "valid")
    calls = {
        "matmul": (lambda: _core.matmul(a, b, False, False), (a, b)),
        "conv2d_forward": (lambda: _core.conv2d_forward(x, k, bias, 1, 1, "same", 1, 1, 1, True), (x, k, bias)),
        "conv2d_backward": (lambda: _core.conv2d_backward(y, x, k, 1, 1, "same", 1, 1, 1, True, True, True, y), (y, x, k)),
        "conv2d_forward[winograd]": (lambda: _core.conv2d_forward(xw, kw, bias, 1, 1, "same", 1, 1, 1, True), (xw, kw, bias)),
        "conv2d_max_pool_forward": (lambda: _core.conv2d_max_pool_forward(x, k, bias, 1, 1, "same", 1, 1, 1, True, 2, 2, True), (x, k, bias)),
        "conv2d_max_pool_forward[winograd]": (lambda: _core.conv2d_max_pool_forward(xw, kw, bias, 1, 1, "same", 1, 1, 1, True, 2, 2, False), (xw, kw, bias)),
        "conv2d_backward[winograd]": (lambda: _core.conv2d_backward(yw, xw, kw, 1, 1, "same", 1, 1, 1, True, True, True, yw), (yw, xw, kw)),
        "max_pool2d_forward": (lambda: _core.max_pool2d_forward(xp, 2, 2, 2, 2, "valid"), (xp,)),
        "max_pool2d_backward": (lambda: _core.max_pool2d_backward(yp, am, 20, 20, 2, 2, 2, 2, "valid"), (yp, am)),
        "avg_pool2d_forward": (lambda: _core.avg_pool2d_forward(xp, 3, 3, 1, 1, "same"), (xp,)),
        "avg_pool2d_backward": (lambda: _core.avg_pool2d_backward(xp, 20, 20, 3, 3, 1, 1, "same"), (xp,)),
    }
    dc = f32(256, 200)
    calls["matmul_backward"] = (lambda: _core.matmul_backward(dc, a, b, False, False), (dc, a, b))
    calls["matmul_b_sums"] = (lambda: _core.matmul_b_sums(a, b, False, False), (a, b))
    xr, mask = f32(16, 10, 8), rng.random((16, 10)) < 0.8
    for cell, g in (("simple_rnn", 1), ("lstm", 4), ("gru", 3)):
        kr, rr = f32(8, 16 * g), f32(16, 16 * g)
        br = f32(2, 16 * g) if cell == "gru" else f32(16 * g)
        h0 = f32(16, 16)
        if cell == "simple_rnn":
            fwd = lambda kr=kr, rr=rr, br=br, h0=h0: _core.simple_rnn_forward(
                xr, kr, rr, br, h0, mask, "tanh", True, True, False, True)
        elif cell == "lstm":
            fwd = lambda kr=kr, rr=rr, br=br, h0=h0: _core.lstm_forward(
                xr, kr, rr, br, h0, h0, mask, True, True, False, True)
        else:
            fwd = lambda kr=kr, rr=rr, br=br, h0=h0: _core.gru_forward(
                xr, kr, rr, br, h0, mask, True, True, True, False, True)
        out = fwd()
        cache, dy = out[3], np.ones_like(out[0])
        if cell == "simple_rnn":
            bwd = lambda kr=kr, rr=rr, cache=cache, dy=dy, h0=h0: _core.simple_rnn_backward(
                dy, h0, xr, kr, rr, mask, cache, "tanh", True, True, True, False)
        elif cell == "lstm":
            bwd = lambda kr=kr, rr=rr, cache=cache, dy=dy, h0=h0: _core.lstm_backward(
                dy, h0, h0, xr, kr, rr, mask, cache, True, True, True, False)
        else:
            bwd = lambda kr=kr, rr=rr, cache=cache, dy=dy, h0=h0: _core.gru_backward(
                dy, h0, xr, kr, rr, mask, cache, True, True, True, True, False)
        calls[f"{cell}_forward"] = (fwd, (xr, kr, rr, br, h0, mask))
        calls[f"{cell}_backward"] = (bwd, (xr, kr, rr, cache, dy, h0, mask))
    table, ids = f32(500, 32), rng.integers(0, 500, (64, 30))
    dye = f32(64, 30, 32)
    calls["embedding_forward"] = (lambda: _core.embedding_forward(table, ids), (table, ids))
    calls["embedding_backward"] = (lambda: _core.embedding_backward(dye, ids, 500), (dye, ids))
    aq, ak, av = f32(8, 20, 4), f32(8, 30, 4), f32(8, 30, 6)
    amask, adrop = rng.random((2, 20, 30)) < 0.8, f32(8, 20, 30)
    calls["attention_forward"] = (lambda: _core.attention_forward(aq, ak, av, amask, adrop, 0.5,
                                                                  True), (aq, ak, av, amask, adrop))
    aout, aprobs = _core.attention_forward(aq, ak, av, amask, adrop, 0.5, True)
    calls["attention_backward"] = (lambda: _core.attention_backward(aout, aq, ak, av, aprobs, adrop,
                                                                    0.5), (aout, aq, ak, av, aprobs))
    hq, hk, hv = f32(2, 20, 4, 4), f32(2, 30, 4, 4), f32(2, 30, 4, 6)   # with a heads axis
    calls["attention_forward_heads"] = (lambda: _core.attention_forward(hq, hk, hv, amask, adrop,
                                                                        0.5), (hq, hk, hv))
    hout, hprobs = _core.attention_forward(hq, hk, hv, amask, adrop, 0.5)
    calls["attention_backward_heads"] = (lambda: _core.attention_backward(
        hout, hq, hk, hv, hprobs, adrop, 0.5), (hout, hq, hk, hv, hprobs))
    imgs, mats = f32(4, 12, 10, 3), np.tile([0.9, 0.1, 0.5, -0.1, 0.9, 0.3], (4, 1))
    calls["affine_transform"] = (lambda: _core.affine_transform(imgs, mats, "bilinear",
                                                                "reflect", 0.0), (imgs, mats))
    calls["affine_transform_backward"] = (lambda: _core.affine_transform_backward(
        imgs, mats, "bilinear", "reflect"), (imgs, mats))
    sx, sk = f32(16, 40, 8), f32(5, 3, 8)
    sn, st, sf = (rng.integers(0, hi, 30).astype(np.int64) for hi in (16, 38, 5))
    sg = f32(30)
    calls["conv1d_sparse_backward"] = (lambda: _core.conv1d_sparse_backward(
        sx, sk, sn, st, sf, sg, 1, 1, True), (sx, sk, sn, st, sf, sg))
    g, m, v, vh = f32(70_000), f32(70_000), f32(70_000), f32(70_000)  # above the thread threshold
    calls["adam_update"] = (lambda: _core.adam_update(g, m, v, vh, 1e-3, 0.1, 1e-3, 1e-7),
                            (g, m, v, vh))
    calls["rmsprop_update"] = (lambda: _core.rmsprop_update(g, v, m, vh, 1e-3, 0.9, 0.1, 0.9, 1e-7),
                               (g, v, m, vh))
    words = [b"w%d" % i for i in range(1000)] + [b"x" * 200]
    calls["hash_buckets"] = (lambda: _core.hash_buckets(words, 97), (words,))
    calls["hash_buckets_keyed"] = (lambda: _core.hash_buckets(words, 97, (5, 2 ** 64 - 1)),
                                   (words,))
    calls["fingerprint64"] = (lambda: _core.fingerprint64(words), (words,))
    calls["conv2d_chunk_bytes"] = (lambda: _core.conv2d_set_chunk_bytes(_core.conv2d_chunk_bytes()), ())
    calls["conv2d_algorithm"] = (lambda: _core.conv2d_set_algorithm(_core.conv2d_algorithm()), ())
    calls["set_num_threads"] = (lambda: _core.set_num_threads(_core.get_num_threads()), ())
    calls["max_threads"] = (lambda: _core.max_threads(), ())
    calls["build_info"] = (lambda: _core.build_info(), ())
    if hasattr(_core, "_sanitizer_canary"):  # the sanitizer build only
        calls["_sanitizer_canary"] = (lambda: _raises(lambda: _core._sanitizer_canary("thread")),
                                      ())
    return calls


def _raises(fn):
    try:
        fn()
    except (ValueError, TypeError, MemoryError):
        return
    raise AssertionError("expected an exception")


_RAW = _raw_calls()


def test_every_core_entry_point_is_exercised():
    public = {n for n in dir(_core) if not n.startswith("__")}
    covered = set(_RAW) | {"conv2d_set_chunk_bytes", "conv2d_set_algorithm", "get_num_threads"}
    assert public <= covered, public - covered


@pytest.mark.parametrize("name", sorted(_RAW))
def test_repeated_raw_kernel_calls(name):
    fn, args = _RAW[name]
    refs = [sys.getrefcount(a) for a in args]
    Growth(fn, repeat=60).check(objects=10, traced=64 << 10, rss=16 << 20)
    assert [sys.getrefcount(a) for a in args] == refs, "argument reference counts changed"


def test_repeated_rejected_raw_calls_leak_nothing():
    """The error paths too: every row of the bad-input catalogue, raising again and again."""
    import test_bad_input as catalogue
    rows = [(name, fn, exc) for name, fn, exc, *_ in catalogue.RAW_ROWS
            if "beyond-memory" not in name]

    def all_rows():
        for _, fn, exc in rows:
            try:
                fn()
            except exc:
                pass

    Growth(all_rows, repeat=4, warmup=2).check(objects=40, traced=256 << 10)


def test_kernel_outputs_are_aligned_writeable_and_traced():
    """_core's outputs live in blocks of its own (not NumPy's allocator): 64-byte aligned,
    writeable, reported to tracemalloc while alive and released with the array."""
    a, b = np.ones((300, 400), np.float32), np.ones((400, 500), np.float32)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        c = _core.matmul(a, b)
        held = tracemalloc.get_traced_memory()[0] - before
        assert c.ctypes.data % 64 == 0 and c.flags.writeable and c.flags.c_contiguous
        c += 1.0
        assert held >= c.nbytes
        del c
        assert tracemalloc.get_traced_memory()[0] - before < 4096
    finally:
        tracemalloc.stop()
    y, argmax = _core.max_pool2d_forward(np.ones((2, 4, 4, 3), np.float32), 2, 2, 2, 2, "valid")
    assert argmax.dtype == np.int64 and argmax.ctypes.data % 64 == 0 and y.ctypes.data % 64 == 0


def test_recycling_survives_a_full_cache_of_other_sizes():
    """Blocks of sizes the process no longer uses (a changed batch size) make room for the
    newest freed block, which the next output of its size gets back."""
    rng = np.random.default_rng(1)
    b = rng.standard_normal((300, 512), np.float32)
    stale = [_core.matmul(rng.standard_normal((256 + 8 * i, 300), np.float32), b)
             for i in range(40)]  # 40 sizes of 512-592 KiB: more than the cache holds
    del stale
    gc.collect()
    first = _core.matmul(rng.standard_normal((200, 300), np.float32), b)  # a size not seen yet
    address = first.ctypes.data
    del first
    gc.collect()
    blocker = np.ones(200 * 512 + 16, np.float32)  # what glibc would hand the freed block to
    second = _core.matmul(rng.standard_normal((200, 300), np.float32), b)
    assert second.ctypes.data == address
    del blocker


def test_large_output_blocks_are_recycled_for_the_same_size():
    """A training step allocates the shapes of the step before: the block of a freed output of
    256 KiB or more serves the next output of exactly its size (no fresh pages), and the new
    array's values are entirely its own."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((256, 300), np.float32), rng.standard_normal((300, 512), np.float32)
    first = _core.matmul(a, b)                      # 512 KiB
    address = first.ctypes.data
    del first
    gc.collect()
    # NumPy asks for memory of that size first: glibc would give it the freed block; the
    # recycling cache keeps it for fastdl's next output of the size
    blocker = np.ones(256 * 512 + 16, np.float32)
    a2 = rng.standard_normal((256, 300), np.float32)
    second = _core.matmul(a2, b)
    assert second.ctypes.data == address            # the recycled block
    assert not (blocker.ctypes.data <= address < blocker.ctypes.data + blocker.nbytes)
    np.testing.assert_allclose(second, a2 @ b, rtol=1e-4, atol=1e-4)
    other = _core.matmul(a2[:128], b)               # another size: not that block
    assert other.ctypes.data != address
    still = second.copy()
    del other
    np.testing.assert_array_equal(second, still)    # freeing another array left it alone
