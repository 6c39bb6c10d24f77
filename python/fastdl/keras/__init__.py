"""Keras compatibility namespace: ``fastdl.keras.layers`` is ``fastdl.layers``, and so on.

``import fastdl as tf`` then ``tf.keras.Sequential(...)``, or ``from fastdl.keras.layers import
Dense``: each submodule here is the fastdl module of the same name. A Keras name fastdl lacks
raises an AttributeError that says so (and names the alternative, if any).
"""
import importlib

_SUBMODULES = ("activations", "backend", "callbacks", "config", "constraints", "datasets",
               "initializers", "layers", "losses", "metrics", "models", "ops", "optimizers",
               "random", "regularizers", "utils",
               "preprocessing", "saving")
_ATTRIBUTES = {"Sequential": "fastdl.models", "Model": "fastdl.models",
               "KerasTensor": "fastdl.functional", "Input": "fastdl.layers", "Layer": "fastdl.layers",
               "InputSpec": "fastdl.layers", "Loss": "fastdl.losses", "Metric": "fastdl.metrics",
               "Optimizer": "fastdl.optimizers", "Initializer": "fastdl.initializers",
               "Variable": "fastdl.ops", "__version__": "fastdl"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"fastdl.keras.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


def __dir__():
    return sorted(set(_SUBMODULES) | set(_ATTRIBUTES))
