"""Runtime dispatch between the kernels' x86-64 levels (fastdl._dispatch, FASTDL_ISA).

The default build holds fastdl._core_v2, _core_v3 and _core_v4; the process loads the best level
the CPU runs, or the lower one FASTDL_ISA names. Checked here: FASTDL_ISA's validation, what
build_info reports, a CPU below the build machine (simulated), and that every kernel, forward
and backward, gives the same shapes and dtypes at every level this CPU runs, with values that
are bitwise equal (the ops in BITWISE) or agree to float rounding (the rest: see KERNELS).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastdl
from fastdl import _dispatch

COMPILED = _dispatch.compiled_levels()
DISPATCH = COMPILED != [_dispatch.NATIVE]
needs_dispatch = pytest.mark.skipif(
    not DISPATCH, reason="single-level build (FASTDL_NATIVE=1 or sanitizer): nothing to dispatch; "
                         "CI runs these tests against the default build (.ci/run, .ci/wheel)")
CPU = _dispatch.cpu_levels() if DISPATCH else []
RUNNABLE = [level for level in COMPILED if level in CPU]
GEMM = {"v2": "eigen", "v3": "avx2", "v4": "avx512"}


def _python(code, isa, *args):
    env = {k: v for k, v in os.environ.items() if k != "FASTDL_ISA"}
    if isa is not None:
        env["FASTDL_ISA"] = isa
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=300)


# ------------------------------------------------------------------ FASTDL_ISA and build_info
@pytest.mark.parametrize("value", ["v5", "V3", "avx2", "x86-64-v3", " v3", "native", "1"])
def test_unknown_fastdl_isa_names_the_valid_levels(monkeypatch, value):
    monkeypatch.setenv("FASTDL_ISA", value)
    with pytest.raises(ValueError, match=rf"FASTDL_ISA={value!r} is not a level .* v2, v3, v4"):
        _dispatch.choose()


def test_unknown_fastdl_isa_fails_the_import_of_the_kernels():
    out = _python("import fastdl.ops", "avx512")
    assert out.returncode != 0
    assert "ValueError: FASTDL_ISA='avx512' is not a level fastdl is built for" in out.stderr


def test_empty_fastdl_isa_means_unset(monkeypatch):
    monkeypatch.setenv("FASTDL_ISA", "")
    assert _dispatch.requested_level() is None


@needs_dispatch
def test_default_is_the_best_level_the_cpu_runs(monkeypatch):
    monkeypatch.delenv("FASTDL_ISA", raising=False)
    assert COMPILED == ["v2", "v3", "v4"]
    assert _dispatch.choose() == RUNNABLE[-1]


@needs_dispatch
def test_a_level_above_the_cpu_is_refused(monkeypatch):
    # A CPU that runs only x86-64-v2 (simulated): v3 and v4 are refused, v2 is the default.
    monkeypatch.setattr(_dispatch, "cpu_levels", lambda: ["v2"])
    monkeypatch.delenv("FASTDL_ISA", raising=False)
    assert _dispatch.choose() == "v2"
    for level in ("v3", "v4"):
        monkeypatch.setenv("FASTDL_ISA", level)
        with pytest.raises(ValueError, match=rf"FASTDL_ISA='{level}' asks for x86-64-{level} code, "
                                             r"but this CPU runs levels up to v2: use one of v2,"):
            _dispatch.choose()


@needs_dispatch
def test_a_level_above_this_cpu_is_refused_at_import():
    above = [level for level in _dispatch.LEVELS if level not in CPU]
    if not above:
        pytest.skip(f"this CPU runs every level ({CPU}); the simulated test above covers this")
    out = _python("import fastdl.ops", above[0])
    assert out.returncode != 0
    assert f"ValueError: FASTDL_ISA='{above[0]}' asks for x86-64-{above[0]} code" in out.stderr


def test_a_cpu_below_x86_64_v2_gets_a_clear_import_error(monkeypatch):
    monkeypatch.setattr(_dispatch, "compiled_levels", lambda: ["v2", "v3", "v4"])
    monkeypatch.setattr(_dispatch, "cpu_levels", lambda: [])
    monkeypatch.delenv("FASTDL_ISA", raising=False)
    with pytest.raises(ImportError, match="below the lowest level fastdl is built for"):
        _dispatch.choose()


def test_a_single_level_build_refuses_fastdl_isa(monkeypatch):
    monkeypatch.setattr(_dispatch, "compiled_levels", lambda: [_dispatch.NATIVE])
    monkeypatch.setenv("FASTDL_ISA", "v2")
    with pytest.raises(ValueError, match="single-level build"):
        _dispatch.choose()
    monkeypatch.delenv("FASTDL_ISA")
    assert _dispatch.choose() == _dispatch.NATIVE


def test_build_info_reports_the_levels():
    info = fastdl.build_info()
    assert info["isa_levels"] == COMPILED
    from fastdl import _core
    assert _core.__name__ == f"fastdl._core_{info['isa']}"
    if DISPATCH:
        assert info["cpu_isa_levels"] == CPU
        assert info["isa"] == _dispatch.choose()  # FASTDL_ISA's level when CI sets it, else the best
        assert info["gemm"] == GEMM[info["isa"]]
    else:
        assert info["isa"] == _dispatch.NATIVE and info["cpu_isa_levels"] is None


@needs_dispatch
@pytest.mark.parametrize("level", ["v2", "v3", "v4"])
def test_each_level_this_cpu_runs_loads_and_trains(level):
    # A CPU lower than the build machine, simulated by FASTDL_ISA: import, fit and predict.
    if level not in CPU:
        pytest.skip(f"this CPU runs {CPU} only")
    code = """
import numpy as np, fastdl
from fastdl import layers
fastdl.utils.set_random_seed(0)
model = fastdl.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu"),
                           layers.MaxPooling2D(), layers.Flatten(), layers.Dense(2)])
model.compile(optimizer="adam", loss="mse")
x = np.random.default_rng(0).standard_normal((16, 8, 8, 3)).astype(np.float32)
history = model.fit(x, np.zeros((16, 2), np.float32), epochs=2, verbose=0)
assert model.predict(x, verbose=0).shape == (16, 2)
from fastdl import _core
print(fastdl.build_info()["isa"], fastdl.build_info()["gemm"], _core.__name__)
"""
    out = _python(code, level)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [level, GEMM[level], f"fastdl._core_{level}"]


# ------------------------------------------------------------------ the kernels across levels
# Run in a subprocess per level: every kernel, forward and backward, on the same seeded inputs;
# the results go to an .npz file named on the command line.
KERNELS = r"""
import sys
import numpy as np
import fastdl
from fastdl import _core
from fastdl.ops import core as ops
from fastdl.ops.core import conv, pool, rnn

fastdl.set_num_threads(2)
rng = np.random.default_rng(7)
def r(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)
out = {}
for dt in (np.float32, np.float64):
    tag = np.dtype(dt).name
    a, b, dc = r(67, 300, dtype=dt), r(300, 45, dtype=dt), r(67, 45, dtype=dt)
    out[f"matmul/{tag}"] = ops.matmul(a, b)
    out[f"matmul_bt/{tag}"] = ops.matmul(a, b.T.copy(), transpose_b=True)
    da, db = ops.matmul_backward(dc, a, b)
    out[f"matmul_da/{tag}"], out[f"matmul_db/{tag}"] = da, db
    x, k, bias = r(2, 12, 11, 16, dtype=dt), r(3, 3, 16, 24, dtype=dt), r(24, dtype=dt)
    for algorithm in ("im2col", "winograd"):
        conv.set_algorithm(algorithm)
        y = conv.conv2d(x, k, bias, padding="same", activation="relu")
        out[f"conv_{algorithm}/{tag}"] = y
        dx, dk, dbias = conv.conv2d_backward(r(*y.shape, dtype=dt), x, k, padding="same",
                                             relu_output=y)
        out[f"conv_{algorithm}_dx/{tag}"], out[f"conv_{algorithm}_dk/{tag}"] = dx, dk
        out[f"conv_{algorithm}_dbias/{tag}"] = dbias
        out[f"conv_{algorithm}_maxpool/{tag}"] = conv.conv2d(x, k, bias, activation="relu",
                                                             max_pool=(2, 2))
    conv.set_algorithm("auto")
    x3 = r(3, 9, 10, 3, dtype=dt)
    y = conv.conv2d(x3, r(5, 3, 3, 8, dtype=dt), strides=2, padding="same")
    out[f"conv_strided/{tag}"] = y
    out[f"conv_strided_dx/{tag}"] = conv.conv2d_backward(
        r(*y.shape, dtype=dt), x3, r(5, 3, 3, 8, dtype=dt), strides=2, padding="same")[0]
    y, argmax = pool.max_pool2d(x, 2)
    out[f"maxpool/{tag}"] = y
    out[f"maxpool_dx/{tag}"] = pool.max_pool2d_backward(r(*y.shape, dtype=dt), argmax, x.shape, 2)
    y = pool.avg_pool2d(x, 3, 2, "same")
    out[f"avgpool/{tag}"] = y
    out[f"avgpool_dx/{tag}"] = pool.avg_pool2d_backward(r(*y.shape, dtype=dt), x.shape, 3, 2,
                                                        "same")
    xs = r(4, 9, 6, dtype=dt)
    for cell, g in (("simple_rnn", 1), ("lstm", 4), ("gru", 3)):
        kernel, rec, bias = r(6, g * 20, dtype=dt), r(20, g * 20, dtype=dt), r(g * 20, dtype=dt)
        if cell == "gru":
            bias = r(2, 60, dtype=dt)
        y, states, tape = rnn.rnn_forward(cell, xs, kernel, rec, bias, return_sequences=True,
                                          training=True)
        out[f"{cell}/{tag}"] = y
        dx, dk, dr, db, d0 = rnn.rnn_backward(tape, r(*y.shape, dtype=dt))
        out[f"{cell}_dx/{tag}"], out[f"{cell}_dkernel/{tag}"] = dx, dk
        out[f"{cell}_drecurrent/{tag}"], out[f"{cell}_dbias/{tag}"] = dr, db
    table, ids = r(50, 12, dtype=dt), rng.integers(0, 50, size=(8, 7))
    out[f"embedding/{tag}"] = rnn.embedding_lookup(table, ids)
    out[f"embedding_grad/{tag}"] = rnn.embedding_backward(r(8, 7, 12, dtype=dt), ids, 50)
    g, m, v = (np.abs(r(1000, dtype=dt)) for _ in range(3))
    _core.adam_update(g, m, v, None, 1e-3, 0.1, 0.001, 1e-7)
    out[f"adam_step/{tag}"], out[f"adam_m/{tag}"], out[f"adam_v/{tag}"] = g, m, v
np.savez(sys.argv[1], **{name.replace("/", "."): value for name, value in out.items()})
"""

# Bitwise at every level: no sum is reordered and no multiply-add fused between the levels (max
# pooling and embeddings move values; the optimizer updates are built without FMA contraction).
BITWISE = {"maxpool", "maxpool_dx", "embedding", "embedding_grad", "adam_step", "adam_m",
           "adam_v"}
# Everything else sums products, in an order and with FMA contraction that depend on the level
# (v2: Eigen's SSE GEMM without FMA; v3/v4: fastdl's AVX2/AVX-512 GEMM, Eigen's with FMA), so
# the levels agree to rounding: each element within 256 units of roundoff of the largest
# magnitude in its array (measured, v2 against v3: up to ~55 for the SimpleRNN's gradients, whose
# recurrence amplifies rounding; under 4 for the products and convolutions).
ULPS = 256


@pytest.fixture(scope="module")
def kernel_results(tmp_path_factory):
    results = {}
    for level in RUNNABLE:
        path = tmp_path_factory.mktemp(level) / "kernels.npz"
        out = _python(KERNELS, level, str(path))
        assert out.returncode == 0, out.stderr
        with np.load(path) as data:
            results[level] = {name.replace(".", "/"): data[name] for name in data.files}
    return results


@needs_dispatch
def test_every_kernel_agrees_across_levels(kernel_results):
    if len(RUNNABLE) < 2:
        pytest.skip(f"this CPU runs one level only ({RUNNABLE})")
    base_level, *others = RUNNABLE
    base = kernel_results[base_level]
    for level in others:
        got = kernel_results[level]
        assert got.keys() == base.keys()
        for name, expected in base.items():
            op = name.split("/")[0]
            value = got[name]
            assert value.shape == expected.shape and value.dtype == expected.dtype, name
            if op in BITWISE:
                np.testing.assert_array_equal(value, expected, err_msg=f"{name}: {level} vs "
                                                                       f"{base_level}")
            else:
                scale = np.max(np.abs(expected))
                atol = ULPS * np.finfo(expected.dtype).eps * scale
                np.testing.assert_allclose(value, expected, rtol=0, atol=atol,
                                           err_msg=f"{name}: {level} vs {base_level}")
