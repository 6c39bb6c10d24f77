"""fastdl: a fast CPU deep-learning library with the Keras API.

Hot kernels are C++ (Eigen + OpenMP) in ``fastdl._core``; layers, losses, optimizers, metrics,
callbacks and ``Sequential`` are Python on top. Submodules load on first use, so
``import fastdl`` stays cheap.
"""
import importlib as _importlib
import os as _os

__version__ = "0.1.0"

# OpenMP threads that wait at a barrier sleep instead of spinning, unless the user chose
# otherwise. On a machine where other processes also want the cores, spinning threads steal
# time from the one thread still working: measured here, tutorial-CNN training on 2 threads
# beside one busy process ran at ~450 img/s with libgomp's spinning default, ~1850 with PASSIVE.
# libgomp reads this once, when fastdl._core first loads it.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_SUBMODULES = {
    "activations", "callbacks", "datasets", "explain", "initializers", "keras", "layers",
    "constraints", "losses", "metrics", "models", "ops", "optimizers", "plot", "regularizers",
    "saving", "utils",
}
_ATTRIBUTES = {  # public name -> module that defines it
    "Sequential": "fastdl.models",
    "Input": "fastdl.layers",
}


def set_num_threads(n):
    """Set the number of threads fastdl's kernels use (default: ``OMP_NUM_THREADS`` or all cores)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, received {type(n).__name__} {n!r}")
    if not 1 <= n <= 1024:
        raise ValueError(f"set_num_threads: n must be between 1 and 1024, received {n}")
    from fastdl import _core
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads fastdl's kernels use."""
    from fastdl import _core
    return _core.get_num_threads()


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"fastdl.{name}")
    if name in _ATTRIBUTES:
        return getattr(_importlib.import_module(_ATTRIBUTES[name]), name)
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | set(_ATTRIBUTES))
