"""Keras's ``keras.preprocessing`` names that tutorials still import (``sequence.pad_sequences``)."""
import importlib as _importlib


def __getattr__(name):
    if name == "sequence":
        return _importlib.import_module("fastdl.keras.preprocessing.sequence")
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


def __dir__():
    return sorted(set(globals()) | {"sequence"})
