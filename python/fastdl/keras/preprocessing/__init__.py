"""Keras's ``keras.preprocessing`` names that tutorials still import: ``sequence.pad_sequences``,
the ``image`` helpers and the dataset builders."""
import importlib as _importlib

_SUBMODULES = {"sequence", "image"}
_BUILDERS = {"image_dataset_from_directory", "text_dataset_from_directory",
             "timeseries_dataset_from_array"}


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"fastdl.keras.preprocessing.{name}")
    if name in _BUILDERS:
        return getattr(_importlib.import_module("fastdl.utils.dataset_utils"), name)
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | _BUILDERS)
