"""Saving and loading models: fastdl's native file and Keras 3's formats.

The file name chooses the format:

- ``*.keras``: Keras 3's zip (``metadata.json``, ``config.json``, ``model.weights.h5``), which
  Keras 3 loads (and fastdl loads Keras's). Needs h5py: ``pip install "fastdl[keras]"``.
- ``*.weights.h5``: Keras 3's weights file (``save_weights``/``load_weights``).
- anything else: fastdl's native format (``.fdl`` recommended; see :mod:`fastdl.saving.native`):
  one checksummed file of JSON and raw arrays, no extra dependency.

No format ever holds pickled objects or code, and loading never imports or runs anything a file
names: layer classes come from fastdl's registry plus the ``custom_objects`` you pass. Every
refused file raises :class:`ModelFileError` (a ``ValueError``) saying why; a failed
``load_weights`` leaves the model unchanged. Saving is atomic: a temporary file in the same
folder is fsynced and renamed over the target, so a crash never leaves a half-written file.
Loading does not change fastdl's global random state, so ``fit`` -> ``save`` -> ``load_model``
-> ``fit`` continues exactly like one uninterrupted ``fit``.
"""
import os

from fastdl.saving.common import ModelFileError

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "ModelFileError",
           "RECOMMENDED_EXTENSION"]

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
    return "native"


def _check_model(model, what):
    from fastdl.models import Sequential
    if not isinstance(model, Sequential):
        raise TypeError(f"{what} expects a fastdl Sequential model, received "
                        f"{type(model).__name__}")


def _check_flag(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    """Save the architecture, the weights, the compile settings and (``include_optimizer``) the
    optimizer state. ``*.keras`` writes Keras 3's format, ``*.weights.h5`` is refused (use
    ``save_weights``), any other name fastdl's native format (``.fdl`` recommended).
    ``overwrite=False`` raises ``FileExistsError`` when the file exists."""
    _check_model(model, "save_model")
    _check_flag(overwrite, "overwrite")
    _check_flag(include_optimizer, "include_optimizer")
    path = _path(filepath)
    kind = _format(path)
    if kind == "keras":
        from fastdl.saving import keras_format
        keras_format.save_model(model, path, overwrite=overwrite,
                                include_optimizer=include_optimizer)
    elif kind == "weights.h5":
        raise ValueError(f"{path!r} names a weights file: use save_weights for *.weights.h5, or "
                         f"save the whole model as *.keras or *{RECOMMENDED_EXTENSION}")
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
    from fastdl.saving import native
    return native.load_model(path, custom_objects=custom_objects, compile=compile)


def save_weights(model, filepath, overwrite=True):
    """Save the weights: ``*.weights.h5`` in Keras 3's layout (with the optimizer state when the
    optimizer has been built, as Keras does), any other name in fastdl's native format
    (weights only). ``*.keras`` is refused (use ``save``)."""
    _check_model(model, "save_weights")
    _check_flag(overwrite, "overwrite")
    path = _path(filepath)
    kind = _format(path)
    if kind == "weights.h5":
        from fastdl.saving import keras_format
        keras_format.save_weights(model, path, overwrite=overwrite)
    elif kind == "keras":
        raise ValueError(f"{path!r}: save_weights writes *.weights.h5 or *"
                         f"{RECOMMENDED_EXTENSION}; use model.save for *.keras")
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
    else:
        from fastdl.saving import native
        native.load_weights(model, path)


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
