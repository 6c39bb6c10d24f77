"""BackupAndRestore: an interrupted fit resumed from its backup equals the uninterrupted fit."""
import os

import numpy as np
import pytest

import fastdl
from fastdl.callbacks import BackupAndRestore, Callback


class _Interrupt(Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt("simulated crash")


def _model(seed):
    fastdl.utils.set_random_seed(seed)
    model = fastdl.Sequential([fastdl.Input((4,)), fastdl.layers.Dense(8, activation="relu"),
                               fastdl.layers.Dropout(0.3), fastdl.layers.Dense(1)])
    model.compile(fastdl.optimizers.Adam(0.01), "mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def test_resumed_fit_equals_uninterrupted(tmp_path):
    x, y = _data()
    reference = _model(1)
    full = reference.fit(x, y, epochs=4, batch_size=16, verbose=0)

    crashed = _model(1)
    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(x, y, epochs=4, batch_size=16, verbose=0,
                    callbacks=[BackupAndRestore(backup), _Interrupt(at_epoch=1)])
    assert os.path.exists(os.path.join(backup, "backup.npz"))

    resumed = _model(99)   # a new process: other initial weights, other random state
    history = resumed.fit(x, y, epochs=4, batch_size=16, verbose=0,
                          callbacks=[BackupAndRestore(backup)])
    assert history.epoch == [2, 3]
    np.testing.assert_allclose(history.history["loss"], full.history["loss"][2:], rtol=0, atol=0)
    for a, b in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(resumed.optimizer.get_state(), reference.optimizer.get_state()):
        np.testing.assert_array_equal(a, b)
    assert not os.path.exists(backup)   # a completed fit deletes its backup


def test_batch_frequency_and_kept_backup(tmp_path):
    x, y = _data()
    model = _model(2)
    backup = tmp_path / "b"
    saved = []

    class Watch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            saved.append(os.path.getmtime(backup / "backup.npz")
                         if (backup / "backup.npz").exists() else None)

    model.fit(x, y, epochs=1, batch_size=16, verbose=0,
              callbacks=[BackupAndRestore(backup, save_freq=2, delete_checkpoint=False), Watch()])
    assert saved[0] is None and saved[1] is not None   # written after the 2nd batch
    assert (backup / "backup.npz").exists()


def test_corrupt_backup_falls_back_to_previous(tmp_path):
    x, y = _data()
    backup = tmp_path / "b"
    model = _model(3)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=4, batch_size=16, verbose=0,
                  callbacks=[BackupAndRestore(backup, double_checkpoint=True), _Interrupt(1)])
    (backup / "backup.npz").write_bytes(b"not a zip file")
    resumed = _model(4)
    history = resumed.fit(x, y, epochs=4, batch_size=16, verbose=0,
                          callbacks=[BackupAndRestore(backup, double_checkpoint=True)])
    assert history.epoch == [1, 2, 3]   # the previous backup: after epoch 0


def test_corrupt_backup_is_a_clear_error_and_changes_nothing(tmp_path):
    x, y = _data()
    backup = tmp_path / "b"
    backup.mkdir()
    (backup / "backup.npz").write_bytes(b"garbage")
    model = _model(5)
    before = model.get_weights()
    with pytest.raises(ValueError, match="BackupAndRestore: cannot restore"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[BackupAndRestore(backup)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_backup_of_another_model_is_refused(tmp_path):
    x, y = _data()
    backup = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        _model(6).fit(x, y, epochs=3, verbose=0,
                      callbacks=[BackupAndRestore(backup), _Interrupt(0)])
    other = fastdl.Sequential([fastdl.Input((4,)), fastdl.layers.Dense(2)])
    other.compile("sgd", "mse")
    with pytest.raises(ValueError, match="weights of shapes"):
        other.fit(x, np.zeros((64, 2), "float32"), epochs=1, verbose=0,
                  callbacks=[BackupAndRestore(backup)])


@pytest.mark.parametrize("kwargs", [{"backup_dir": ""}, {"backup_dir": "b", "save_freq": 0},
                                    {"backup_dir": "b", "save_freq": "step"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        BackupAndRestore(**kwargs)
