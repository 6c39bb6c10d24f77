"""Package-level behaviour: version, threads, lazy import, coexistence with other OpenMP users."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastdl


def test_version_is_a_string():
    assert isinstance(fastdl.__version__, str) and fastdl.__version__.count(".") == 2


def test_thread_settings_round_trip():
    original = fastdl.get_num_threads()
    try:
        for n in (1, 2, 3):
            fastdl.set_num_threads(n)
            assert fastdl.get_num_threads() == n
    finally:
        fastdl.set_num_threads(original)


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                     (True, TypeError), ("2", TypeError)])
def test_set_num_threads_rejects_bad_values(bad, exc):
    with pytest.raises(exc, match="set_num_threads"):
        fastdl.set_num_threads(bad)


def _run(code, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=120, check=True).stdout.strip()


def test_omp_num_threads_is_honoured_at_import():
    assert _run("import fastdl; print(fastdl.get_num_threads())", OMP_NUM_THREADS="1") == "1"
    assert _run("import fastdl; print(fastdl.get_num_threads())", OMP_NUM_THREADS="3") == "3"


def test_import_is_lazy():
    out = _run("import sys, fastdl; print(sorted(m for m in sys.modules if m.startswith('fastdl')))"
               "; print('numpy' in sys.modules)")
    modules, numpy_loaded = out.splitlines()
    assert modules == "['fastdl']"
    assert numpy_loaded == "False"


def test_gemm_agrees_to_rounding_across_thread_counts():
    # Every build, Eigen's GEMM included; the bitwise promise of fastdl's own float32 GEMM is
    # tests/test_gemm.py::test_matmul_float32_is_bitwise_independent_of_thread_count.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 200)).astype(np.float32)
    b = rng.standard_normal((200, 100)).astype(np.float32)
    original = fastdl.get_num_threads()
    try:
        fastdl.set_num_threads(1)
        one = fastdl.ops.core.matmul(a, b)
        fastdl.set_num_threads(2)
        two = fastdl.ops.core.matmul(a, b)
    finally:
        fastdl.set_num_threads(original)
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-5)


_COEXIST = """
import numpy as np
import fastdl, fastdl.ops.core
a = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
print(np.allclose(fastdl.ops.core.matmul(a, a), a.astype(np.float64) @ a, rtol=1e-4, atol=1e-4))
"""
_WITH_SKLEARN = """
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
X, y = make_classification(n_samples=300, n_features=8, random_state=0)
print(LogisticRegression(max_iter=500).fit(X, y).score(X, y) > 0.8)
"""
# run in a subprocess only after pytest.importorskip("torch") (torch is an optional peer)
_WITH_TORCH = ("\nimport torch\n"
               "t = torch.from_numpy(a)\n"
               "print(np.allclose((t @ t).numpy(), fastdl.ops.core.matmul(a, a), rtol=1e-4, "
               "atol=1e-4))\n")


def test_coexists_with_scikit_learn_in_one_process():
    pytest.importorskip("sklearn", reason="needs scikit-learn (the test extra)")
    assert _run(_COEXIST + _WITH_SKLEARN).split() == ["True", "True"]


def test_coexists_with_scikit_learn_and_torch_in_one_process():
    # Three OpenMP users (fastdl's libgomp, scikit-learn's and torch's bundled ones) in one process.
    pytest.importorskip("sklearn", reason="needs scikit-learn (the test extra)")
    pytest.importorskip("torch", reason="needs torch (an optional peer; CI installs it)")
    assert _run(_COEXIST + _WITH_SKLEARN + _WITH_TORCH).split() == ["True", "True", "True"]
