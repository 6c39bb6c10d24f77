"""Proof that the sanitizer job really runs under AddressSanitizer + UBSan (docs/testing.md,
"Sanitizers and fuzzing"), and that the production module carries no canary.

Which build is under test is stated from outside, never read off the module: ``.ci/sanitize``
sets ``FASTDL_EXPECT_SANITIZER=1``, and every other run (the README's test command, CI's plain
runs) leaves it unset. Each case asserts what its build must report, so neither can pass for
the other:

- sanitizer build: ``build_info()["sanitizer"] == "address,undefined"``, and
  ``_core._sanitizer_canary`` (a read one element past a heap buffer; a signed int overflow) kills
  a child process with the sanitizer's report. If the sanitizer were silently off (a normal module
  imported, the runtime not preloaded, halt_on_error lost), these tests fail.
- production build: ``build_info()["sanitizer"] is None`` and there is no ``_sanitizer_canary``.
"""
import os
import subprocess
import sys

import pytest

from fastdl import _core

EXPECT = os.environ.get("FASTDL_EXPECT_SANITIZER", "") not in ("", "0")
sanitizer_only = pytest.mark.skipif(not EXPECT, reason="sanitizer build only (.ci/sanitize "
                                                       "sets FASTDL_EXPECT_SANITIZER=1)")
REPORTS = {
    "address": ["ERROR: AddressSanitizer: heap-buffer-overflow", "READ of size 4"],
    "undefined": ["runtime error: signed integer overflow"],
}
_CHILD = """
import sys
from fastdl import _core
assert _core.__file__ == sys.argv[2], (_core.__file__, sys.argv[2])
print("canary-start", flush=True)
print("canary-returned", _core._sanitizer_canary(sys.argv[1]), flush=True)
"""


def run_canary(kind):
    """Run the canary in a child process (same interpreter, environment and module); its
    sanitizer reports go to its stderr even when the job sends them to files (log_path)."""
    env = os.environ.copy()
    for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env[name] = env.get(name, "") + ":log_path=stderr"
    return subprocess.run([sys.executable, "-c", _CHILD, kind, _core.__file__],
                          capture_output=True, text=True, timeout=120, env=env)


def test_build_info_reports_the_build_under_test():
    if EXPECT:
        assert _core.build_info()["sanitizer"] == "address,undefined", (
            "FASTDL_EXPECT_SANITIZER=1 but fastdl._core is not the sanitizer build: "
            f"{_core.__file__} {_core.build_info()}")
        assert callable(_core._sanitizer_canary)
    else:
        assert _core.build_info()["sanitizer"] is None, (
            f"a sanitizer build of fastdl._core outside .ci/sanitize: {_core.__file__}")
        assert not hasattr(_core, "_sanitizer_canary"), "the production module has the canary"


@sanitizer_only
@pytest.mark.parametrize("kind", ["address", "undefined"])
def test_canary_is_stopped_by_the_sanitizer(kind):
    result = run_canary(kind)
    assert "canary-start" in result.stdout, result.stderr  # the child got as far as the call
    # The sanitizer must stop the process with its report before the canary returns.
    assert result.returncode != 0, (
        f"the {kind} canary ran to completion: the sanitizer is not active\n{result.stdout}")
    assert "canary-returned" not in result.stdout
    for line in REPORTS[kind]:
        assert line in result.stderr, result.stderr[-3000:]
    assert "sanitizer_canary" in result.stderr


@sanitizer_only
def test_canary_rejects_unknown_kinds():
    with pytest.raises(ValueError, match=r"_sanitizer_canary: kind must be 'address' or "
                                         r"'undefined', received 'thread'"):
        _core._sanitizer_canary("thread")
