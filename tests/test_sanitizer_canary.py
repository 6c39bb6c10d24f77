"""Proof that the sanitizer job really runs under AddressSanitizer + UBSan (TESTING.md section 6).

``.ci/sanitize`` sets ``FASTDL_EXPECT_SANITIZER=1``: then ``_core`` must be the sanitizer build,
and ``_core._sanitizer_canary`` (a read one element past a heap buffer; a signed int overflow)
must kill a child process with the sanitizer's report. If the sanitizer were silently off (a
normal module imported, the runtime not preloaded, halt_on_error lost) these tests fail.
Without the variable, the normal build's canary must be harmless: it returns False.
"""
import os
import subprocess
import sys

import pytest

from fastdl import _core

EXPECT = os.environ.get("FASTDL_EXPECT_SANITIZER", "") not in ("", "0")
SANITIZED = bool(_core.build_info()["sanitizer"])
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


def test_build_info_reports_the_sanitizer_when_expected():
    if EXPECT:
        assert SANITIZED, ("FASTDL_EXPECT_SANITIZER=1 but fastdl._core is not the sanitizer "
                           f"build: {_core.__file__} {_core.build_info()}")
        assert "address" in _core.build_info()["sanitizer"]
    else:
        assert _core.build_info()["sanitizer"] in (None, "address,undefined")


@pytest.mark.parametrize("kind", ["address", "undefined"])
def test_canary(kind):
    result = run_canary(kind)
    assert "canary-start" in result.stdout, result.stderr  # the child got as far as the call
    if EXPECT or SANITIZED:
        # The sanitizer must stop the process with its report before the canary returns.
        assert result.returncode != 0, (
            f"the {kind} canary ran to completion: the sanitizer is not active\n{result.stdout}")
        assert "canary-returned" not in result.stdout
        for line in REPORTS[kind]:
            assert line in result.stderr, result.stderr[-3000:]
        assert "_sanitizer_canary" in result.stderr or "sanitizer_canary" in result.stderr
    else:
        # A normal build never performs the bad read: the call returns False, nothing reported.
        assert result.returncode == 0, result.stderr[-3000:]
        assert "canary-returned False" in result.stdout
        assert "Sanitizer" not in result.stderr and "runtime error" not in result.stderr


@pytest.mark.skipif(SANITIZED, reason="in-process call would abort a sanitizer build")
def test_normal_build_canary_is_harmless_in_process():
    assert _core._sanitizer_canary() is False
    assert _core._sanitizer_canary("undefined") is False


def test_canary_rejects_unknown_kinds():
    with pytest.raises(ValueError, match=r"_sanitizer_canary: kind must be 'address' or "
                                         r"'undefined', received 'thread'"):
        _core._sanitizer_canary("thread")
