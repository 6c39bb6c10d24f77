"""Keras's serialization registry: ``register_keras_serializable``, ``custom_object_scope`` and
``serialize_keras_object``/``deserialize_keras_object``.

A class registered with ``@register_keras_serializable(package="Custom", name=None)`` is
written to files as ``registered_name: "<package>><name>"`` (Keras's key) and found again by
that name when a file is loaded; so is a class passed in ``custom_objects=`` (keyed by its class
name or registered name) or made visible with ``custom_object_scope({...})``. Nothing else
outside fastdl's own classes is ever instantiated from a file, and nothing is imported.
"""
import inspect

__all__ = ["register_keras_serializable", "get_registered_name", "get_registered_object",
           "get_custom_objects", "CustomObjectScope", "custom_object_scope",
           "serialize_keras_object", "deserialize_keras_object"]

_GLOBAL_CUSTOM_OBJECTS = {}     # "package>name" -> class or function
_GLOBAL_CUSTOM_NAMES = {}       # class or function -> "package>name"
_scope = {}                     # the objects of the active custom_object_scope blocks


def register_keras_serializable(package="Custom", name=None):
    """Decorator registering a class (with ``get_config``) or function under
    ``"<package>><name>"`` (``name`` defaults to its ``__name__``), so files that name it load
    without ``custom_objects``."""
    if not isinstance(package, str) or not package:
        raise TypeError(f"package must be a non-empty string. Received: package={package!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty string or None. Received: name={name!r}")

    def decorator(arg):
        if not callable(arg):
            raise TypeError(f"register_keras_serializable registers classes and functions, "
                            f"received {type(arg).__name__}")
        if inspect.isclass(arg) and not hasattr(arg, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        key = f"{package}>{name if name is not None else arg.__name__}"
        _GLOBAL_CUSTOM_OBJECTS[key] = arg
        _GLOBAL_CUSTOM_NAMES[arg] = key
        return arg

    return decorator


def get_registered_name(obj):
    """The name ``obj`` is registered under, or its ``__name__`` if it is not registered."""
    return _GLOBAL_CUSTOM_NAMES.get(obj, obj.__name__)


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The class or function known as ``name``: the active ``custom_object_scope`` first, then
    the registry, ``custom_objects``, ``module_objects``; None if none has it."""
    for table in (_scope, _GLOBAL_CUSTOM_OBJECTS, custom_objects or {}, module_objects or {}):
        if name in table:
            return table[name]
    return None


def get_custom_objects():
    """The registry itself (a dict ``{"package>name": class}``; adding to it registers)."""
    return _GLOBAL_CUSTOM_OBJECTS


class CustomObjectScope:
    """``with custom_object_scope({"MyLayer": MyLayer}):`` makes those objects visible to
    loading inside the block (blocks nest; leaving one restores the previous set)."""

    def __init__(self, custom_objects):
        if not isinstance(custom_objects, dict):
            raise TypeError(f"custom_object_scope takes a dict {{name: class}}. Received: "
                            f"{type(custom_objects).__name__}")
        self.custom_objects = custom_objects
        self._previous = None

    def __enter__(self):
        self._previous = dict(_scope)
        _scope.update(self.custom_objects)
        return self

    def __exit__(self, *exc):
        _scope.clear()
        _scope.update(self._previous)


custom_object_scope = CustomObjectScope


def visible_objects(custom_objects):
    """Every object a load may instantiate by name besides fastdl's own: the registry, the
    active scope, then ``custom_objects`` (later ones win)."""
    return {**_GLOBAL_CUSTOM_OBJECTS, **_scope, **(custom_objects or {})}


# ---------------------------------------------------------------------------------------------
# objects <-> configs

_PLAIN = (str, int, float, bool)


def serialize_keras_object(obj):
    """``obj`` as Keras's config dict ``{"module", "class_name", "config",
    "registered_name"}`` (a model: its whole description; plain values, lists and dicts stay
    as they are)."""
    from fastdl.layers.base import Layer
    from fastdl.models import Model
    from fastdl.saving import common
    if obj is None or isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(v) for v in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, Model):
        return common.model_config(obj)
    if isinstance(obj, Layer):
        return common.layer_entry(obj)
    if inspect.isfunction(obj):
        name = get_registered_name(obj)
        return {"module": obj.__module__, "class_name": "function", "config": name,
                "registered_name": name}
    get_config = getattr(obj, "get_config", None)
    if not callable(get_config):
        raise TypeError(f"cannot serialize {obj!r:.100} (type {type(obj).__name__}): it has no "
                        "get_config()")
    cls = type(obj)
    module = cls.__module__
    public = module.replace("fastdl.", "keras.", 1).split(".")
    return {"module": ".".join(public[:2]) if module.startswith("fastdl.") else module,
            "class_name": cls.__name__, "config": common.plain(get_config()),
            "registered_name": None if module.startswith("fastdl.")
            else get_registered_name(cls)}


_MODULES = {"keras.optimizers": "fastdl.optimizers", "keras.losses": "fastdl.losses",
            "keras.metrics": "fastdl.metrics", "keras.initializers": "fastdl.initializers",
            "keras.regularizers": "fastdl.regularizers", "keras.constraints": "fastdl.constraints",
            "keras.activations": "fastdl.activations"}


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object a config from :func:`serialize_keras_object` (or Keras) describes: layers and
    models through fastdl's registry plus the registered and ``custom_objects`` classes;
    optimizers, losses, metrics, initializers, regularizers, constraints and activations
    through their modules' ``deserialize``. Nothing is imported and no code from the config
    runs: ``__lambda__`` and ``Lambda`` are refused whatever ``safe_mode`` says."""
    import importlib
    from fastdl.layers.base import Layer
    from fastdl.saving import common, graph
    if kwargs:
        raise TypeError(f"deserialize_keras_object: unexpected arguments {sorted(kwargs)}")
    if not isinstance(safe_mode, bool):
        raise TypeError(f"safe_mode must be a bool. Received: {safe_mode!r}")
    if config is None or isinstance(config, _PLAIN):
        if isinstance(config, str):
            found = get_registered_object(config, custom_objects)
            if found is not None:
                return found
        return config
    if isinstance(config, list):
        return [deserialize_keras_object(v, custom_objects) for v in config]
    if not isinstance(config, dict):
        raise TypeError(f"deserialize_keras_object expects a config dict, received "
                        f"{type(config).__name__}")
    class_name = config.get("class_name")
    if class_name is None:
        return {k: deserialize_keras_object(v, custom_objects) for k, v in config.items()}
    if class_name == "__lambda__" or class_name == "Lambda":
        raise ValueError(f"refusing to deserialize {class_name!r}: it carries Python code, and "
                         "fastdl never runs code from a config")
    objects = visible_objects(custom_objects)
    module = config.get("module")
    registered = config.get("registered_name")
    if class_name == "function":
        fn = objects.get(registered) or objects.get(config.get("config"))
        if fn is None:
            raise ValueError(f"unknown function {config.get('config')!r:.100}: pass it in "
                             "custom_objects or register it with register_keras_serializable")
        return fn
    if graph.is_model_entry(config):
        return common.build_model(config, custom_objects)
    cls = next((objects[k] for k in (registered, class_name)
                if isinstance(k, str) and k in objects), None)
    if cls is not None and not (isinstance(cls, type) and issubclass(cls, Layer)):
        inner = config.get("config")
        if not hasattr(cls, "from_config"):
            raise TypeError(f"custom object {class_name!r} has no from_config")
        return cls.from_config(dict(inner) if isinstance(inner, dict) else inner)
    if cls is not None or (isinstance(module, str) and module.startswith("keras.layers")):
        return common.build_layer(config, custom_objects)
    target = _MODULES.get(".".join(module.split(".")[:2])) if isinstance(module, str) else None
    if target is None:
        raise ValueError(f"cannot deserialize {class_name!r:.100} from module {module!r:.100}: "
                         "fastdl deserializes its layers, models, optimizers, losses, metrics, "
                         "initializers, regularizers, constraints and activations, and the "
                         "classes registered or passed in custom_objects")
    mod = importlib.import_module(target)
    try:
        return mod.deserialize(config, custom_objects=objects)
    except TypeError:
        return mod.deserialize(config)
