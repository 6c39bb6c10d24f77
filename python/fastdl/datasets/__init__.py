"""Datasets with the Keras API: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``, ``imdb``,
``reuters``, ``boston_housing``, ``california_housing``, and the bundled, offline ``digits``.

Files are looked for at ``path=``, in ``$FASTDL_HOME/datasets`` (default ``~/.fastdl/datasets``), in
an existing Keras cache (read only), then downloaded from the official URL into the fastdl cache.
Submodules load on first use.
"""
import importlib as _importlib

_SUBMODULES = ("boston_housing", "california_housing", "cifar10", "cifar100", "digits", "fashion_mnist",
               "imdb", "mnist", "reuters")


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"fastdl.datasets.{name}")
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
