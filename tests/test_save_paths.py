"""File names that would lie are refused: legacy HDF5 names (``*.h5``, ``*.hdf5``) and
directories (Keras's SavedModel) get a ValueError naming what fastdl writes, and nothing is
written; the names fastdl does write keep working."""
import os

import numpy as np
import pytest

from fastdl import callbacks, layers
from fastdl.models import Sequential, load_model
from fastdl.saving import ModelFileError

WRITES = r"\*\.keras .*\*\.fdl .*\*\.weights\.h5"


def small_model():
    model = Sequential([layers.Input(shape=(3,)), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize("name", ["m.h5", "m.H5", "m.hdf5"])
def test_legacy_hdf5_names_are_refused_and_nothing_is_written(tmp_path, name):
    model = small_model()
    with pytest.raises(ValueError, match="legacy Keras HDF5 .*" + WRITES):
        model.save(tmp_path / name)
    with pytest.raises(ValueError, match="legacy Keras HDF5"):
        model.save_weights(tmp_path / name)
    with pytest.raises(ValueError, match="legacy Keras HDF5"):
        callbacks.ModelCheckpoint(str(tmp_path / name))
    assert os.listdir(tmp_path) == []


def test_legacy_hdf5_files_are_refused_on_load_with_the_conversion(tmp_path):
    path = tmp_path / "m.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelFileError, match=r"legacy Keras HDF5 .*\.save\(\"model\.keras\"\)"):
        load_model(path)
    with pytest.raises(ModelFileError, match="legacy Keras HDF5"):
        small_model().load_weights(path)


def test_directories_are_refused(tmp_path):
    model = small_model()
    existing = tmp_path / "saved_model"
    existing.mkdir()
    for target in (existing, str(tmp_path / "new_dir") + os.sep):
        with pytest.raises(ValueError, match="is a directory.*SavedModel.*" + WRITES):
            model.save(target)
        with pytest.raises(ValueError, match="is a directory"):
            model.save_weights(target)
    with pytest.raises(ValueError, match="is a directory"):
        callbacks.ModelCheckpoint(str(existing))
    assert os.listdir(tmp_path) == ["saved_model"] and os.listdir(existing) == []


def test_the_names_fastdl_writes_still_work(tmp_path):
    model = small_model()
    x = np.ones((2, 3), np.float32)
    model.save(tmp_path / "m.fdl")
    model.save(tmp_path / "no_extension")
    model.save_weights(tmp_path / "w.fdl")
    for name in ("m.fdl", "no_extension"):
        np.testing.assert_array_equal(load_model(tmp_path / name).predict(x, verbose=0),
                                      model.predict(x, verbose=0))
    other = small_model()
    other.load_weights(tmp_path / "w.fdl")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    callbacks.ModelCheckpoint(str(tmp_path / "ckpt.weights.h5"), save_weights_only=True)
    callbacks.ModelCheckpoint(str(tmp_path / "ckpt.fdl"))


def test_keras_and_weights_names_go_to_the_right_call(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match="use save_weights"):
        model.save(tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match="use model.save"):
        model.save_weights(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="use save_weights"):
        callbacks.ModelCheckpoint(str(tmp_path / "m.weights.h5"))
    assert os.listdir(tmp_path) == []
