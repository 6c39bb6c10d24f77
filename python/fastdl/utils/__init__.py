"""Utilities: random seeding, label, sequence and split helpers, file downloads, the progress bar,
``PyDataset``, the dataset builders and the image helpers (Keras's ``keras.utils``)."""
from fastdl.utils.rng import set_random_seed

_LAZY = {
    "to_categorical": "fastdl.utils.data_utils",
    "normalize": "fastdl.utils.data_utils",
    "pad_sequences": "fastdl.utils.data_utils",
    "split_dataset": "fastdl.utils.data_utils",
    "get_file": "fastdl.utils.file_utils",
    "Progbar": "fastdl.utils.progbar",
    "model_to_dot": "fastdl.utils.model_plot",
    "plot_model": "fastdl.utils.model_plot",
    "PyDataset": "fastdl.utils.py_dataset",
    "Sequence": "fastdl.utils.py_dataset",
    "pack_x_y_sample_weight": "fastdl.data.adapters",
    "unpack_x_y_sample_weight": "fastdl.data.adapters",
    **dict.fromkeys(("image_dataset_from_directory", "text_dataset_from_directory",
                     "timeseries_dataset_from_array"), "fastdl.utils.dataset_utils"),
    **dict.fromkeys(("load_img", "img_to_array", "array_to_img", "save_img"),
                    "fastdl.utils.image_utils"),
    "clear_session": "fastdl.keras.config",
    "get_source_inputs": "fastdl.functional",
    "is_keras_tensor": "fastdl.functional",
    "standardize_dtype": "fastdl.utils.dtype_utils",
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
