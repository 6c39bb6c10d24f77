"""Which build of fastdl's C++ kernels this process runs.

The default build compiles the kernels (cpp/) three times, for the x86-64 levels v2 (SSE4.2),
v3 (AVX2 + FMA) and v4 (AVX-512 F/BW/CD/DQ/VL): the extension modules ``fastdl._core_v2``,
``_core_v3`` and ``_core_v4``. ``load`` picks the highest level that the CPU and its OS run
(``fastdl._cpu``, baseline x86-64 code, asks cpuid and XGETBV), or the lower one that the
environment variable ``FASTDL_ISA`` names, once per process: ``fastdl/_core.py`` then stands
for the chosen module. A ``-march=native`` source build (``FASTDL_NATIVE=1``) or a sanitizer
build has a single module, ``fastdl._core_native``, which is loaded as it is.
"""
import importlib
import importlib.util
import os

LEVELS = ("v2", "v3", "v4")
NATIVE = "native"


def _has(level):
    return importlib.util.find_spec(f"fastdl._core_{level}") is not None


def compiled_levels():
    """The levels this installation has modules for: a sublist of LEVELS, or ["native"]."""
    if _has(NATIVE):
        return [NATIVE]
    return [level for level in LEVELS if _has(level)]


def cpu_levels():
    """The levels of LEVELS that this CPU and its OS run (cpuid + XGETBV), lowest first."""
    from fastdl import _cpu
    return list(_cpu.levels())


def requested_level():
    """FASTDL_ISA's level, or None when it is unset or empty; ValueError for any other value."""
    value = os.environ.get("FASTDL_ISA", "")
    if value == "":
        return None
    if value not in LEVELS:
        raise ValueError(f"FASTDL_ISA={value!r} is not a level fastdl is built for: use one of "
                         f"{', '.join(LEVELS)} (x86-64-v2, -v3, -v4), or leave it unset to run "
                         "the highest level this CPU supports")
    return value


def choose():
    """The level to load: FASTDL_ISA's (checked against the CPU and the build) or the best."""
    requested = requested_level()
    compiled = compiled_levels()
    if compiled == [NATIVE]:
        if requested is not None:
            raise ValueError(f"FASTDL_ISA={requested!r}, but this fastdl is a single-level "
                             "build (-march=native or sanitizer: fastdl._core_native) that "
                             "cannot switch levels; unset FASTDL_ISA or install the default "
                             "(dispatching) build")
        return NATIVE
    if not compiled:
        raise ImportError("fastdl's compiled kernels (fastdl._core_v2/_v3/_v4 or _core_native) "
                          "are missing from " + os.path.dirname(__file__) + ": reinstall fastdl "
                          "(or run .ci/dev-build in a source checkout)")
    cpu = cpu_levels()
    best = cpu[-1] if cpu else "none (not even x86-64-v2)"
    if requested is not None:
        if requested not in cpu:
            raise ValueError(f"FASTDL_ISA={requested!r} asks for x86-64-{requested} code, but "
                             f"this CPU runs levels up to {best}: use one of "
                             f"{', '.join(cpu) or 'nothing'}, or leave FASTDL_ISA unset")
        if requested not in compiled:
            raise ValueError(f"FASTDL_ISA={requested!r}, but this build has modules for "
                             f"{', '.join(compiled)} only")
        return requested
    runnable = [level for level in compiled if level in cpu]
    if not runnable:
        raise ImportError(f"this CPU runs x86-64 level {best}, below the lowest level fastdl "
                          f"is built for ({compiled[0]}: SSE4.2 and POPCNT)")
    return runnable[-1]


def load():
    """Import and return the chosen kernel module."""
    return importlib.import_module(f"fastdl._core_{choose()}")
