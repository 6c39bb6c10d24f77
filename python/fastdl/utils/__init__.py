"""Utilities: random seeding, label, sequence and split helpers, file downloads, the progress bar."""
from fastdl.utils.rng import set_random_seed

_LAZY = {
    "to_categorical": "fastdl.utils.data_utils",
    "normalize": "fastdl.utils.data_utils",
    "pad_sequences": "fastdl.utils.data_utils",
    "split_dataset": "fastdl.utils.data_utils",
    "get_file": "fastdl.utils.file_utils",
    "Progbar": "fastdl.utils.progbar",
    **{name: "fastdl.saving.registry" for name in (
        "CustomObjectScope", "custom_object_scope", "deserialize_keras_object",
        "get_custom_objects", "get_registered_name", "get_registered_object",
        "register_keras_serializable", "serialize_keras_object")},
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
