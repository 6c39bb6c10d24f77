"""Saving and loading models: fastdl's native file and Keras 3's formats.

The file name chooses the format:

- ``*.keras``: Keras 3's zip (``metadata.json``, ``config.json``, ``model.weights.h5``), which
  Keras 3 loads (and fastdl loads Keras's). Needs h5py: ``pip install "fastdl[keras]"``.
- ``*.weights.h5``: Keras 3's weights file (``save_weights``/``load_weights``).
- anything else: fastdl's native format (``.fdl`` recommended; see :mod:`fastdl.saving.native`):
  one checksummed file of JSON and raw arrays, no extra dependency.

Two kinds of name are refused, since fastdl writes neither format they promise: ``*.h5`` /
``*.hdf5`` (other than ``*.weights.h5``), the legacy Keras HDF5 format, and a directory (an
existing one or a path ending in a separator), Keras's SavedModel.

No format ever holds pickled objects or code, and loading never imports or runs anything a file
names: layer classes come from fastdl's own plus those you pass in ``custom_objects``, make
visible with ``custom_object_scope`` or register with ``@register_keras_serializable()``
(:mod:`fastdl.saving.registry`). Every
refused file raises :class:`ModelFileError` (a ``ValueError``) saying why; a failed
``load_weights`` leaves the model unchanged. Saving is atomic: a temporary file in the same
folder is fsynced and renamed over the target, so a crash never leaves a half-written file.
Loading does not change fastdl's global random state, so ``fit`` -> ``save`` -> ``load_model``
-> ``fit`` continues exactly like one uninterrupted ``fit``.
"""
import os

from fastdl.saving.common import ModelFileError
from fastdl.saving.registry import (CustomObjectScope, custom_object_scope,
                                    deserialize_keras_object, get_custom_objects,
                                    get_registered_name, get_registered_object,
                                    register_keras_serializable, serialize_keras_object)

from fastdl.saving.cloning import clone_model, model_from_config, model_from_json  # noqa: E402

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "check_target",
           "clone_model", "model_from_config", "model_from_json",
           "ModelFileError", "RECOMMENDED_EXTENSION", "CustomObjectScope",
           "custom_object_scope", "deserialize_keras_object", "get_custom_objects",
           "get_registered_name", "get_registered_object", "register_keras_serializable",
           "serialize_keras_object"]

RECOMMENDED_EXTENSION = ".fdl"


def _path(filepath):
    path = os.fspath(filepath)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError("filepath must not be empty")
    return path


def _format(path):
    if path.endswith(".keras"):
        return "keras"
    if path.endswith(".weights.h5"):
        return "weights.h5"
    if path.lower().endswith((".h5", ".hdf5")):
        return "legacy h5"
    return "native"


_WRITES = (f"fastdl writes a whole model as *.keras (Keras 3's format, which Keras 3 loads) or "
           f"*{RECOMMENDED_EXTENSION} (fastdl's own; any other file name works too) with "
           f"model.save, and weights alone as *.weights.h5 (Keras 3's layout) or "
           f"*{RECOMMENDED_EXTENSION} with model.save_weights")


def check_target(filepath, weights_only=False):
    """The path ``save_model`` (``save_weights`` with ``weights_only``) would write, after
    refusing names whose format fastdl does not write: a directory (Keras's SavedModel; there is
    none here) and a legacy Keras HDF5 name (``*.h5``, ``*.hdf5``), which would otherwise get a
    file of another format under a name that promises HDF5."""
    path = _path(filepath)
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory: fastdl saves to one file, not a SavedModel "
                         f"folder. {_WRITES}.")
    kind = _format(path)
    if kind == "legacy h5":
        raise ValueError(f"{path!r}: fastdl does not write the legacy Keras HDF5 format (.h5). "
                         f"{_WRITES}.")
    if weights_only and kind == "keras":
        raise ValueError(f"{path!r}: save_weights writes *.weights.h5 or *"
                         f"{RECOMMENDED_EXTENSION}; use model.save for *.keras")
    if not weights_only and kind == "weights.h5":
        raise ValueError(f"{path!r} names a weights file: use save_weights for *.weights.h5, or "
                         f"save the whole model as *.keras or *{RECOMMENDED_EXTENSION}")
    return path


def _refuse_legacy_h5(path):
    raise ModelFileError(f"{path!r}: fastdl does not read the legacy Keras HDF5 format (.h5). "
                         "Convert the file with Keras: keras.models.load_model(path)"
                         '.save("model.keras") (or .save_weights("model.weights.h5")), then '
                         "load that.")


def _check_model(model, what):
    from fastdl.models import Model
    if not isinstance(model, Model):
        raise TypeError(f"{what} expects a fastdl model (Sequential, functional or a Model "
                        f"subclass), received {type(model).__name__}")


def _check_flag(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    """Save the architecture, the weights, the compile settings and (``include_optimizer``) the
    optimizer state. ``*.keras`` writes Keras 3's format, any other name fastdl's native format
    (``.fdl`` recommended); ``*.weights.h5`` (use ``save_weights``), ``*.h5``/``*.hdf5`` and
    directories are refused (:func:`check_target`).
    ``overwrite=False`` raises ``FileExistsError`` when the file exists."""
    _check_model(model, "save_model")
    _check_flag(overwrite, "overwrite")
    _check_flag(include_optimizer, "include_optimizer")
    path = check_target(filepath)
    if _format(path) == "keras":
        from fastdl.saving import keras_format
        keras_format.save_model(model, path, overwrite=overwrite,
                                include_optimizer=include_optimizer)
    else:
        from fastdl.saving import native
        native.save_model(model, path, overwrite=overwrite, include_optimizer=include_optimizer)


def load_model(filepath, custom_objects=None, compile=True):
    """Load a model saved by :func:`save_model` (native) or a Keras 3 ``.keras`` file.

    ``custom_objects`` maps class names to your own Layer/Loss/Metric classes; nothing else
    outside fastdl's registry is loaded. With ``compile=True`` a file that holds compile
    settings gives a compiled model with its optimizer state restored."""
    _check_flag(compile, "compile")
    path = _path(filepath)
    kind = _format(path)
    if kind == "keras":
        from fastdl.saving import keras_format
        return keras_format.load_model(path, custom_objects=custom_objects, compile=compile)
    if kind == "weights.h5":
        raise ModelFileError(f"{path!r} is a weights file: build the model in code and call "
                             "model.load_weights")
    if kind == "legacy h5":
        _refuse_legacy_h5(path)
    from fastdl.saving import native
    return native.load_model(path, custom_objects=custom_objects, compile=compile)


def save_weights(model, filepath, overwrite=True):
    """Save the weights: ``*.weights.h5`` in Keras 3's layout (with the optimizer state when the
    optimizer has been built, as Keras does), any other name in fastdl's native format
    (weights only). ``*.keras`` (use ``save``), other ``*.h5``/``*.hdf5`` names and
    directories are refused (:func:`check_target`). A private model (``fastdl.privacy``) gets
    a warning: its DP-SGD accounting is not in a weights file (``save`` keeps it)."""
    _check_model(model, "save_weights")
    _check_flag(overwrite, "overwrite")
    path = check_target(filepath, weights_only=True)
    if getattr(model, "_train_strategy", None) is not None:
        import warnings
        warnings.warn(f"model {model.name!r} is private (fastdl.privacy): save_weights keeps its "
                      "weights but not its DP-SGD settings and privacy accounting; model.save "
                      "keeps them, and load_model continues them", UserWarning, stacklevel=3)
    if _format(path) == "weights.h5":
        from fastdl.saving import keras_format
        keras_format.save_weights(model, path, overwrite=overwrite)
    else:
        from fastdl.saving import native
        native.save_weights(model, path, overwrite=overwrite)


def load_weights(model, filepath):
    """Load weights into ``model`` (matched by layer type and position, as Keras does) from a
    native file (``save_weights`` or ``save``), a ``*.weights.h5`` or a ``*.keras`` file.
    Everything is checked before anything is assigned: on failure the model is unchanged."""
    _check_model(model, "load_weights")
    path = _path(filepath)
    kind = _format(path)
    if kind in ("keras", "weights.h5"):
        from fastdl.saving import keras_format
        keras_format.load_weights(model, path)
    elif kind == "legacy h5":
        _refuse_legacy_h5(path)
    else:
        from fastdl.saving import native
        native.load_weights(model, path)


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
