"""Datasets with the Keras API: ``cifar10``, ``imdb`` and the bundled, offline ``digits``.

Files are looked for at ``path=``, in ``$FASTDL_HOME/datasets`` (default ``~/.fastdl/datasets``), in
an existing Keras cache (read only), then downloaded from the official URL into the fastdl cache.
Submodules load on first use.
"""
import importlib as _importlib

_SUBMODULES = ("cifar10", "digits", "imdb")


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"fastdl.datasets.{name}")
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
