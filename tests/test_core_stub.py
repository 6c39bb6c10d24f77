"""python/fastdl/_core.pyi against the compiled module: the same functions, each with the same
parameter names in the same order and the same parameters with defaults (so the stubs cannot
drift from cpp/bindings/)."""
import ast
import os
import re

import pytest

from fastdl import _core

STUB = os.path.join(os.path.dirname(_core.__file__), "_core.pyi")
SANITIZER_ONLY = {"_sanitizer_canary"}  # compiled into the FASTDL_SANITIZE build only


def stub_functions():
    with open(STUB, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            args = node.args.args
            first_default = len(args) - len(node.args.defaults)
            out[node.name] = [(a.arg, i >= first_default) for i, a in enumerate(args)]
    return out


def split_top_level(text):
    """Split a pybind11 parameter list at the commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:])
    return parts


def module_signatures(name):
    """[(parameter, has_default), ...] of every overload in the function's pybind11 docstring."""
    doc = getattr(_core, name).__doc__ or ""
    sigs = []
    for line in doc.splitlines():
        m = re.match(rf"^(?:\d+\. )?{re.escape(name)}\((.*)\) -> ", line)
        if m:
            sigs.append([(p.split(":")[0].strip(), "=" in p) for p in split_top_level(m.group(1))])
    return sigs


def test_stub_names_are_the_module_functions():
    module = {n for n in dir(_core) if not n.startswith("__")}
    stub = set(stub_functions())
    if not _core.build_info()["sanitizer"]:
        stub -= SANITIZER_ONLY
    assert stub == module, (f"only in _core.pyi: {sorted(stub - module)}; "
                            f"only in the module: {sorted(module - stub)}")


# The sanitizer canary's parameters are compared in the sanitizer build (.ci/sanitize runs this
# file); the other builds do not have it.
@pytest.mark.parametrize("name", sorted(set(stub_functions()) & set(dir(_core))))
def test_stub_parameters_match_the_module(name):
    sigs = module_signatures(name)
    assert sigs, f"no signature found in the docstring of _core.{name}"
    for sig in sigs:
        assert sig == stub_functions()[name], f"_core.{name}: module {sig}, stub"
