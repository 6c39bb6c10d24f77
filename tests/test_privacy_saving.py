"""A private model keeps its DP-SGD settings and accounting through model.save/load_model (both
formats), ModelCheckpoint and BackupAndRestore; what keeps weights only says so."""
import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from fastdl import layers, optimizers
from fastdl.callbacks import BackupAndRestore, Callback, ModelCheckpoint
from fastdl.models import Model, load_model
from fastdl.privacy import make_private
from fastdl.saving import ModelFileError
from fastdl.utils import set_random_seed

FORMATS = [".fdl", pytest.param(".keras", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("h5py") is None, reason=".keras needs h5py"))]


def plain(seed=0):
    set_random_seed(seed)
    inp = layers.Input((4,))
    out = layers.Dense(1)(layers.Dense(3, activation="tanh")(inp))
    model = Model(inp, out)
    model.compile(optimizer=optimizers.Adam(0.01), loss="mse")
    return model


def private(seed=0, **settings):
    return make_private(plain(seed), **(settings or {"l2_norm_clip": 0.5, "noise_multiplier": 1.1,
                                                     "batch_size": 10}))


rng = np.random.default_rng(0)
X, Y = rng.normal(size=(100, 4)), rng.normal(size=(100, 1))


def fit(model, epochs=2, **kwargs):
    return model.fit(X, Y, batch_size=10, epochs=epochs, verbose=0, **kwargs)


@pytest.mark.parametrize("ext", FORMATS)
def test_loaded_model_continues_private_with_its_accounting(tmp_path, ext):
    # fit -> save -> load_model -> fit equals the two fits in one process: same weights (the
    # optimizer state and the calibrated noise kept), the same steps and epsilon
    uninterrupted = private()
    set_random_seed(3)
    fit(uninterrupted, epochs=1)
    fit(uninterrupted, epochs=1)
    saved = private()
    set_random_seed(3)
    fit(saved, epochs=1)
    path = str(tmp_path / f"model{ext}")
    saved.save(path)
    loaded = load_model(path)
    strategy = loaded._train_strategy
    assert strategy.get_config() == saved._train_strategy.get_config()
    assert loaded.privacy_spent() == saved.privacy_spent() and loaded.privacy_spent()[0] > 0
    fit(loaded, epochs=1)
    assert all(np.array_equal(a, b)
               for a, b in zip(loaded.get_weights(), uninterrupted.get_weights()))
    assert loaded.privacy_spent() == uninterrupted.privacy_spent()
    assert strategy.segments == uninterrupted._train_strategy.segments


@pytest.mark.parametrize("ext", FORMATS)
def test_loaded_without_compile_warns_that_it_is_not_private(tmp_path, ext):
    model = private()
    fit(model, epochs=1)
    path = str(tmp_path / f"model{ext}")
    model.save(path)
    with pytest.warns(UserWarning, match="differential privacy.*compile=False.*not private"):
        loaded = load_model(path, compile=False)
    assert loaded._train_strategy is None


@pytest.mark.parametrize("settings", [
    {"l2_norm_clip": float("inf"), "noise_multiplier": 0.0, "sampling": "shuffle"},
    {"l2_norm_clip": 1.0, "target_epsilon": 2.0, "epochs": 4, "batch_size": 10,
     "accountant": "pld", "max_physical_batch_size": 3, "target_delta": 1e-4},
])
def test_settings_round_trip_before_any_fit(tmp_path, settings):
    model = private(**settings)
    path = str(tmp_path / "model.fdl")
    model.save(path)
    loaded = load_model(path)
    assert loaded._train_strategy.get_config() == model._train_strategy.get_config()
    assert loaded._train_strategy.l2_norm_clip == settings["l2_norm_clip"]
    assert loaded.privacy_spent() == (0.0, settings.get("target_delta", 1e-5))


def test_target_epsilon_stays_beside_its_calibrated_noise(tmp_path):
    model = private(l2_norm_clip=1.0, target_epsilon=2.0, epochs=4, batch_size=10)
    model._train_strategy.plan(model, 100, 10)   # what fit does first: calibrate the noise
    path = str(tmp_path / "model.fdl")
    model.save(path)
    strategy = load_model(path)._train_strategy
    assert strategy.get_config() == model._train_strategy.get_config()
    assert strategy.target_epsilon == 2.0 and strategy.noise_multiplier > 0


def keras_file_with_privacy(path, privacy):
    """A copy of the .keras file at ``path`` whose fastdl_privacy.json holds ``privacy``."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["fastdl_privacy.json"] = json.dumps(privacy).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    bad = path.replace(".keras", "_bad.keras")
    with open(bad, "wb") as f:
        f.write(out.getvalue())
    return bad


@pytest.mark.parametrize("change, match", [
    (lambda c: c.pop("segments"), "keys"),
    (lambda c: c.update(segments=[[1.5, 1.0, 3]]), "q must be in"),
    (lambda c: c.update(segments=[[0.1, 1.0, 0]]), "steps must be a positive int"),
    (lambda c: c.update(segments=[[0.1, -1.0, 3]]), "noise_multiplier must be >= 0"),
    (lambda c: c.update(l2_norm_clip="big"), "l2_norm_clip must be a number"),
    (lambda c: c.update(sampling="uniform"), "sampling must be one of"),
    (lambda c: c.update(n=None), "n or batch_size is missing"),
])
def test_a_bad_privacy_state_is_refused(tmp_path, change, match):
    pytest.importorskip("h5py", reason=".keras files need h5py")
    model = private()
    fit(model, epochs=1)
    path = str(tmp_path / "model.keras")
    model.save(path)
    config = model._train_strategy.get_config()
    change(config)
    with pytest.raises(ModelFileError, match=f"DP-SGD state.*{match}"):
        load_model(keras_file_with_privacy(path, config))


def test_native_file_with_a_bad_privacy_state_is_refused(tmp_path):
    from fastdl.saving import native
    model = private()
    path = str(tmp_path / "model.fdl")
    model.save(path)
    header, tensors = native.read_file(path)
    header["privacy"] = {"segments": "many"}
    del header["tensors"]
    native.write_file(path, header, tensors, True)
    with pytest.raises(ModelFileError, match="DP-SGD state.*keys"):
        load_model(path)


def test_save_weights_warns_that_the_accounting_stays_behind(tmp_path):
    model = private()
    with pytest.warns(UserWarning, match="save_weights keeps its weights but not its DP-SGD"):
        model.save_weights(str(tmp_path / "w.fdl"))


def test_model_checkpoint_files_load_private(tmp_path):
    model = private()
    epsilons = []

    class Record(Callback):
        def on_epoch_end(self, epoch, logs=None):
            epsilons.append(self.model.privacy_spent())

    pattern = str(tmp_path / "ckpt-{epoch}.fdl")
    fit(model, epochs=2, callbacks=[ModelCheckpoint(pattern), Record()])
    for epoch in (1, 2):
        loaded = load_model(pattern.format(epoch=epoch))
        assert loaded.privacy_spent() == epsilons[epoch - 1]
    assert epsilons[0][0] < epsilons[1][0]


class Interrupt(Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated crash")


def test_backup_and_restore_keeps_the_accounting(tmp_path):
    reference = private()
    set_random_seed(5)
    fit(reference, epochs=4)
    backup = str(tmp_path / "backup")
    crashed = private()
    set_random_seed(5)
    with pytest.raises(KeyboardInterrupt):
        fit(crashed, epochs=4, callbacks=[BackupAndRestore(backup), Interrupt()])
    copy = str(tmp_path / "copy")
    shutil.copytree(backup, copy)
    # a new process: the model made private again counts no step until it reads the backup
    resumed = private(seed=9)
    set_random_seed(11)
    history = fit(resumed, epochs=4, callbacks=[BackupAndRestore(backup)])
    assert history.epoch == [2, 3]
    assert resumed._train_strategy.segments == reference._train_strategy.segments
    assert resumed.privacy_spent() == reference.privacy_spent()
    assert all(np.array_equal(a, b) for a, b in zip(resumed.get_weights(),
                                                     reference.get_weights()))
    # the interrupted process resuming counted its steps already: they are not added twice
    fit(crashed, epochs=4, callbacks=[BackupAndRestore(copy)])
    assert crashed._train_strategy.segments == reference._train_strategy.segments


def test_backup_of_a_non_private_fit_is_refused_for_a_private_model(tmp_path):
    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        fit(plain(), epochs=4, callbacks=[BackupAndRestore(backup), Interrupt()])
    model = private()
    before = model.get_weights()
    with pytest.raises(ValueError, match="without differential privacy"):
        fit(model, epochs=4, callbacks=[BackupAndRestore(backup)])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model._train_strategy.segments == []
    assert os.path.exists(backup)
