"""Optimizers with Keras 3's API and update rules, on plain NumPy arrays updated in place.

``opt.apply(grads, variables)`` (grads first, like Keras 3) builds the slots on first use,
clips, applies decoupled weight decay and the update rule, and increments ``opt.iterations``.
``opt.variables`` / ``get_state`` / ``set_state`` expose the state in Keras's order.
"""
from fastdl.optimizers import schedules
from fastdl.optimizers.adadelta import Adadelta
from fastdl.optimizers.adagrad import Adagrad
from fastdl.optimizers.adam import Adam, AdamW
from fastdl.optimizers.adamax import Adamax
from fastdl.optimizers.base import Optimizer
from fastdl.optimizers.ftrl import Ftrl
from fastdl.optimizers.lamb import Lamb
from fastdl.optimizers.lion import Lion
from fastdl.optimizers.loss_scale import LossScaleOptimizer
from fastdl.optimizers.nadam import Nadam
from fastdl.optimizers.rmsprop import RMSprop
from fastdl.optimizers.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Nadam", "Adamax",
           "Adadelta", "Ftrl", "Lion", "Lamb", "LossScaleOptimizer", "schedules", "get", "serialize", "deserialize"]

ALL_OBJECTS_DICT = {cls.__name__.lower(): cls for cls in (
    SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Adadelta, Ftrl, Lion, Lamb)}
# built-in optimizers that wrap another: serialized and deserialized, never made from a name
_WRAPPERS = {"lossscaleoptimizer": LossScaleOptimizer}


def _valid_names():
    return ", ".join(repr(n) for n in sorted(ALL_OBJECTS_DICT))


def serialize(optimizer):
    """The optimizer's config in Keras's serialized form
    (``{"module", "class_name", "config", "registered_name"}``)."""
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"serialize expects an Optimizer. Received: {optimizer!r}")
    cls = type(optimizer)
    name = cls.__name__.lower()
    builtin = (ALL_OBJECTS_DICT.get(name) or _WRAPPERS.get(name)) is cls
    return {"module": "keras.optimizers" if builtin else cls.__module__,
            "class_name": cls.__name__,
            "config": optimizer.get_config(),
            "registered_name": None if builtin else cls.__name__}


def deserialize(config, custom_objects=None):
    """An optimizer from `serialize`'s dict (class names case-insensitive for built-ins)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("deserialize expects a dict with 'class_name' and 'config'. "
                         f"Received: {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name)
    if cls is None:
        cls = ALL_OBJECTS_DICT.get(str(name).lower()) or _WRAPPERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer: {name!r}. Valid names: {_valid_names()}")
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"The 'config' of an optimizer must be a dict. Received: {inner!r}")
    return cls.from_config(dict(inner), custom_objects=custom_objects)


def get(identifier):
    """An optimizer from a name (case-insensitive), a config dict, or an instance."""
    if identifier is None:
        return None
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = ALL_OBJECTS_DICT.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer: {identifier!r}. Valid names: "
                             f"{_valid_names()}")
        return cls()
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}. Pass a name "
                     f"({_valid_names()}), a config dict or an Optimizer instance.")


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
