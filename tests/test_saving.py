"""Model files: native round trips, resume == uninterrupted fit, every rejection listed in
docs/testing.md, "Files" (each through a file crafted from the documented layout, with a valid
checksum so the intended check is the one that fires), the pickle canary, atomic saves, failed
loads that change nothing.
"""
import hashlib
import json
import os
import pathlib
import pickle
import re
import struct
import zipfile

import numpy as np
import pytest
pytest.importorskip("hypothesis", reason="needs hypothesis (the test extra: pip install \".[test]\")")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastdl
from fastdl import layers
from fastdl.layers.base import Layer
from fastdl.models import Sequential
from fastdl.saving import ModelFileError, load_model, load_weights, save_model, save_weights
from fastdl.saving import native
from fastdl.utils import rng as rng_module
from fastdl.utils import set_random_seed

# The documented layout (python/fastdl/saving/native.py), written here independently.
MAGIC = b"\x89FDL\r\n\x1a\n"
PREFIX = struct.Struct("<8sIQ32s")


def pack(header, data=b"", version=1, magic=MAGIC, header_len=None, checksum=None):
    """A native file from a header (dict or raw bytes) and raw data, with a valid checksum."""
    hb = header if isinstance(header, bytes) else json.dumps(header).encode("utf-8")
    hl = len(hb) if header_len is None else header_len
    head = struct.pack("<8sIQ", magic, version, hl)
    digest = hashlib.sha256(head + hb + data).digest() if checksum is None else checksum
    return head + digest + hb + data


def unpack(blob):
    magic, version, hl, digest = PREFIX.unpack(blob[:PREFIX.size])
    header = json.loads(blob[PREFIX.size:PREFIX.size + hl])
    return header, blob[PREFIX.size + hl:]


def small_model(units=(8, 3), seed=0, compile=True):
    set_random_seed(seed)
    model = Sequential([layers.Dense(units[0], activation="relu", input_shape=(4,)),
                        layers.Dropout(0.25),
                        layers.Dense(units[1], activation="softmax")])
    if compile:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    return model


def data(n=64, seed=1):
    r = np.random.default_rng(seed)
    return r.random((n, 4), dtype=np.float32), r.integers(0, 3, n)


@pytest.fixture
def trained(tmp_path):
    model = small_model()
    x, y = data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "model.fdl"
    save_model(model, path)
    return model, path, x, y


def weights_of(model):
    return [w.copy() for w in model.weights]


def assert_bitwise(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes()


# ------------------------------------------------------------------------------------ round trips

def test_round_trip_predictions_weights_and_compile_state_bitwise(trained):
    model, path, x, y = trained
    loaded = load_model(path)
    assert loaded.name == model.name
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert_bitwise(loaded.weights, model.weights)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.compiled and type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    assert_bitwise(loaded.optimizer.get_state(), model.optimizer.get_state())
    assert type(loaded.loss) is type(model.loss)
    assert [m.name for m in loaded.compiled_metrics] == ["accuracy"]
    assert np.allclose(loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0))


def test_repeated_saves_are_byte_identical_and_a_loaded_model_resaves_identically(trained,
                                                                                   tmp_path):
    model, path, _, _ = trained
    save_model(model, tmp_path / "again.fdl")
    assert (tmp_path / "again.fdl").read_bytes() == path.read_bytes()
    save_model(load_model(path), tmp_path / "resaved.fdl")
    assert (tmp_path / "resaved.fdl").read_bytes() == path.read_bytes()


def test_file_layout_matches_the_documentation(trained):
    _, path, _, _ = trained
    blob = path.read_bytes()
    magic, version, hl, digest = PREFIX.unpack(blob[:PREFIX.size])
    assert magic == MAGIC and version == 1
    assert hashlib.sha256(blob[:20] + blob[52:]).digest() == digest
    header, payload = unpack(blob)
    assert header["format"] == "fastdl" and header["kind"] == "model"
    cfg = header["model_config"]
    assert cfg["class_name"] == "Sequential"
    first = cfg["config"]["layers"][0]
    assert first["module"] == "keras.layers" and first["class_name"] == "Dense"
    assert first["build_config"] == {"input_shape": [None, 4]}
    names = [t["name"] for t in header["tensors"]]
    assert names[:4] == ["layers/dense/kernel", "layers/dense/bias", "layers/dense_1/kernel",
                         "layers/dense_1/bias"]
    assert names[4:] == [f"optimizer/{i}" for i in range(len(names) - 4)]
    end = 0
    for t in header["tensors"]:
        assert t["offset"] == end
        end += t["nbytes"]
    assert end == len(payload)
    assert header["compile_config"]["optimizer"]["class_name"] == "Adam"
    for banned in (b"pickle", b"\x80\x04\x95", b"__reduce__"):
        assert banned not in blob


def test_model_methods_and_models_load_model(tmp_path):
    model = small_model()
    x, _ = data()
    model.save(tmp_path / "m.fdl")
    loaded = fastdl.models.load_model(tmp_path / "m.fdl")
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.save_weights(tmp_path / "w.fdl")
    other = small_model(seed=5)
    assert not np.array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    other.load_weights(tmp_path / "w.fdl")
    assert np.array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_weights_load_by_layer_type_and_position_not_by_name(tmp_path):
    model = small_model()
    save_weights(model, tmp_path / "w.fdl")
    other = Sequential([layers.Dense(8, activation="relu", input_shape=(4,), name="a"),
                        layers.Dropout(0.25, name="b"),
                        layers.Dense(3, activation="softmax", name="c")])
    load_weights(other, tmp_path / "w.fdl")
    assert_bitwise(other.weights, model.weights)
    with pytest.raises(ModelFileError, match="holds weights only"):
        load_model(tmp_path / "w.fdl")


def test_load_weights_builds_an_unbuilt_model_from_the_file(tmp_path):
    model = small_model()
    save_weights(model, tmp_path / "w.fdl")
    other = Sequential([layers.Dense(8, activation="relu"), layers.Dropout(0.25),
                        layers.Dense(3, activation="softmax")])
    state = rng_module.get_rng().bit_generator.state
    load_weights(other, tmp_path / "w.fdl")
    assert rng_module.get_rng().bit_generator.state == state
    assert_bitwise(other.weights, model.weights)


def test_pop_and_add_on_a_loaded_model_do_not_collide_with_its_names(tmp_path):
    model = Sequential([layers.Dense(3, input_shape=(2,), name="dense_99999"),
                        layers.Dense(2, name="dense_100000")])
    save_model(model, tmp_path / "n.fdl")
    loaded = load_model(tmp_path / "n.fdl")
    loaded.pop()
    loaded.add(layers.Dense(4))
    loaded.add(layers.Dense(1))
    assert [l.name for l in loaded.layers] == ["dense_99999", "dense_100001", "dense_100002"]


def test_unbuilt_frozen_float64_and_uncompiled_models_round_trip(tmp_path):
    unbuilt = Sequential([layers.Dense(3), layers.Activation("tanh")], name="lazy")
    save_model(unbuilt, tmp_path / "u.fdl")
    u = load_model(tmp_path / "u.fdl")
    assert not u.built and u.name == "lazy" and not u.compiled
    assert [type(l).__name__ for l in u.layers] == ["Dense", "Activation"]

    set_random_seed(3)
    model = Sequential([layers.Input((2, 3)), layers.Flatten(dtype="float64"),
                        layers.Dense(5, dtype="float64"),
                        layers.Dense(2, kernel_initializer="he_normal", dtype="float64")])
    model.layers[1].trainable = False
    save_model(model, tmp_path / "f.fdl")
    loaded = load_model(tmp_path / "f.fdl")
    assert loaded.layers[1].dtype == "float64" and loaded.layers[1].weights[0].dtype == np.float64
    assert loaded.layers[1].trainable is False and loaded.layers[2].trainable is True
    assert loaded.layers[2].get_config()["kernel_initializer"]["class_name"] == "HeNormal"
    assert_bitwise(loaded.weights, model.weights)
    x = np.random.default_rng(0).random((5, 2, 3)).astype(np.float32)
    # float64 predictions only to the last bit: _core.matmul's float64 path is not bitwise
    # reproducible for tiny matrices (it depends on the alignment of the arrays)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-14, atol=1e-15)

    model.trainable = False
    save_model(model, tmp_path / "g.fdl")
    assert all(not l.trainable for l in load_model(tmp_path / "g.fdl").layers)


def test_compile_false_and_include_optimizer_false(trained, tmp_path):
    model, path, x, y = trained
    assert not load_model(path, compile=False).compiled
    save_model(model, tmp_path / "noopt.fdl", include_optimizer=False)
    header, _ = unpack((tmp_path / "noopt.fdl").read_bytes())
    assert not any(t["name"].startswith("optimizer/") for t in header["tensors"])
    loaded = load_model(tmp_path / "noopt.fdl")
    assert loaded.compiled and loaded.optimizer.iterations == 0
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_compile_settings_round_trip(tmp_path):
    set_random_seed(0)
    for optimizer, loss, metrics in [
            (fastdl.optimizers.SGD(0.05, momentum=0.9, nesterov=True), "mse", ["mae"]),
            (fastdl.optimizers.RMSprop(0.002, centered=True), fastdl.losses.Huber(delta=2.0),
             [fastdl.metrics.RootMeanSquaredError()]),
            ("adagrad", "mean_absolute_error", None)]:
        model = Sequential([layers.Dense(2, input_shape=(3,))])
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
        save_model(model, tmp_path / "cs.fdl")
        loaded = load_model(tmp_path / "cs.fdl")
        assert loaded.optimizer.get_config() == model.optimizer.get_config()
        assert loaded.loss.get_config() == model.loss.get_config()
        assert [m.name for m in loaded.compiled_metrics] == [m.name for m in model.compiled_metrics]
        assert_bitwise(loaded.optimizer.get_state(), model.optimizer.get_state())


def every_layer_model(family):
    """A model per layer family, together covering every layer class fastdl has."""
    if family == "conv":
        model = Sequential([layers.Input((9, 8, 2)), layers.ZeroPadding2D((1, 2)),
                            layers.Conv2D(4, 3, activation="relu"), layers.BatchNormalization(),
                            layers.MaxPooling2D(), layers.Conv2D(6, (2, 2), padding="same"),
                            layers.AveragePooling2D(2, strides=1),
                            layers.GlobalAveragePooling2D(keepdims=True),
                            layers.Reshape((2, 3)), layers.Flatten(), layers.Dropout(0.1),
                            layers.Dense(3, activation="softmax")])
        x = np.random.default_rng(0).random((8, 9, 8, 2)).astype(np.float32)
    elif family == "global_max":
        model = Sequential([layers.Input((5, 5, 3)), layers.Conv2D(4, 2),
                            layers.GlobalMaxPooling2D(), layers.Activation("relu"),
                            layers.Dense(3, activation="softmax")])
        x = np.random.default_rng(0).random((8, 5, 5, 3)).astype(np.float32)
    else:
        model = Sequential([layers.Input((6,), dtype="int32"),
                            layers.Embedding(10, 4, mask_zero=True),
                            layers.SimpleRNN(3, return_sequences=True),
                            layers.LSTM(3, return_sequences=True),
                            layers.GRU(3, return_sequences=True),
                            layers.Bidirectional(layers.GRU(2), merge_mode="sum"),
                            layers.Dense(3, activation="softmax")])
        x = np.random.default_rng(0).integers(0, 10, (8, 6)).astype(np.int32)
        x[:, :2] = 0                                    # padding, masked
    return model, x


@pytest.mark.parametrize("family", ["conv", "global_max", "rnn"])
def test_every_layer_type_round_trips_bitwise(tmp_path, family):
    set_random_seed(0)
    model, x = every_layer_model(family)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(8) % 3, epochs=2, batch_size=4, verbose=0)
    save_model(model, tmp_path / "m.fdl")
    loaded = load_model(tmp_path / "m.fdl")
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    assert_bitwise(loaded.weights, model.weights)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    save_model(loaded, tmp_path / "again.fdl")
    assert (tmp_path / "again.fdl").read_bytes() == (tmp_path / "m.fdl").read_bytes()


def test_resume_with_batch_norm_statistics_and_conv(tmp_path):
    def make():
        model, x = every_layer_model("conv")
        model.compile(optimizer=fastdl.optimizers.SGD(0.05, momentum=0.5),
                      loss="sparse_categorical_crossentropy")
        return model, x

    y = np.arange(8) % 3
    set_random_seed(1)
    straight, x = make()
    straight.fit(x, y, epochs=2, batch_size=4, verbose=0)
    set_random_seed(1)
    first, _ = make()
    first.fit(x, y, epochs=1, batch_size=4, verbose=0)
    save_model(first, tmp_path / "c.fdl")
    resumed = load_model(tmp_path / "c.fdl")
    resumed.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert_bitwise(resumed.weights, straight.weights)        # incl. BN moving statistics


def test_a_config_may_not_carry_weights(tmp_path):
    set_random_seed(0)
    model, _ = every_layer_model("rnn")
    save_model(model, tmp_path / "r.fdl")
    header, payload = unpack((tmp_path / "r.fdl").read_bytes())
    bad = _with_layer_config(header, 1, weights=[[0.0] * 4] * 10)
    assert "may not carry 'weights'" in _load_blob(tmp_path, pack(bad, payload))
    bad = json.loads(json.dumps(header))
    bad["model_config"]["config"]["layers"][5]["config"]["layer"]["config"]["weights"] = [1]
    assert "may not carry 'weights'" in _load_blob(tmp_path, pack(bad, payload))
    bad = json.loads(json.dumps(header))
    bad["model_config"]["config"]["layers"][5]["config"]["layer"]["class_name"] = "Lambda"
    assert "Lambda" in _load_blob(tmp_path, pack(bad, payload))


class Scale(Layer):
    """A user layer: multiplies by a learned per-feature scale."""

    def __init__(self, init=2.0, **kwargs):
        super().__init__(**kwargs)
        self.init = float(init)

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (input_shape[-1],),
                                     fastdl.initializers.Constant(self.init))

    def call(self, x, training=False):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "init": self.init}


class MyLoss(fastdl.losses.MeanSquaredError):
    pass


class MyMetric(fastdl.metrics.MeanAbsoluteError):
    pass


def test_custom_loss_and_metric_classes_load_through_custom_objects(tmp_path):
    model = Sequential([layers.Dense(2, input_shape=(3,))])
    model.compile(optimizer="sgd", loss=MyLoss(), metrics=[MyMetric(name="my_mae")])
    save_model(model, tmp_path / "c.fdl")
    with pytest.raises(ModelFileError, match="MyLoss"):
        load_model(tmp_path / "c.fdl")
    with pytest.raises(ModelFileError, match="MyMetric"):
        load_model(tmp_path / "c.fdl", custom_objects={"MyLoss": MyLoss})
    loaded = load_model(tmp_path / "c.fdl",
                        custom_objects={"MyLoss": MyLoss, "MyMetric": MyMetric})
    assert type(loaded.loss) is MyLoss
    assert [(type(m), m.name) for m in loaded.compiled_metrics] == [(MyMetric, "my_mae")]
    assert not load_model(tmp_path / "c.fdl", compile=False).compiled


def test_custom_layers_load_only_through_custom_objects(tmp_path):
    model = Sequential([layers.Dense(3, input_shape=(2,)), Scale(3.0)])
    save_model(model, tmp_path / "c.fdl")
    with pytest.raises(ModelFileError, match="Scale"):
        load_model(tmp_path / "c.fdl")
    loaded = load_model(tmp_path / "c.fdl", custom_objects={"Scale": Scale})
    x = np.ones((2, 2), np.float32)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ModelFileError, match="not a fastdl Layer"):
        load_model(tmp_path / "c.fdl", custom_objects={"Scale": print})


# -------------------------------------------------------------- resume == uninterrupted, RNG state

@pytest.mark.parametrize("optimizer", ["adam", "sgd_momentum"])
def test_fit_save_load_fit_equals_one_uninterrupted_fit(tmp_path, optimizer):
    def make():
        opt = fastdl.optimizers.SGD(0.1, momentum=0.9) if optimizer == "sgd_momentum" else "adam"
        model = small_model(compile=False)
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    x, y = data(96)
    set_random_seed(7)
    straight = make()
    straight.fit(x, y, epochs=3, batch_size=16, verbose=0)

    set_random_seed(7)
    first = make()
    first.fit(x, y, epochs=1, batch_size=16, verbose=0)
    save_model(first, tmp_path / "ckpt.fdl")
    del first
    resumed = load_model(tmp_path / "ckpt.fdl")
    resumed.fit(x, y, epochs=2, batch_size=16, verbose=0)

    assert_bitwise(resumed.weights, straight.weights)
    assert_bitwise(resumed.optimizer.get_state(), straight.optimizer.get_state())


def test_loading_leaves_the_global_random_state_alone(trained):
    _, path, _, _ = trained
    import random
    set_random_seed(11)
    before = (rng_module.get_rng().bit_generator.state, random.getstate(),
              np.random.get_state()[1].copy())
    load_model(path)
    after = (rng_module.get_rng().bit_generator.state, random.getstate(),
             np.random.get_state()[1].copy())
    assert before[0] == after[0] and before[1] == after[1]
    assert np.array_equal(before[2], after[2])


# ------------------------------------------------------------------------ save: atomic, overwrite

def test_overwrite_false_refuses_an_existing_file(trained, tmp_path):
    model, path, _, _ = trained
    before = path.read_bytes()
    other = small_model(seed=9)
    with pytest.raises(FileExistsError):
        save_model(other, path, overwrite=False)
    with pytest.raises(FileExistsError):
        save_weights(other, path, overwrite=False)
    assert path.read_bytes() == before
    save_model(other, tmp_path / "new.fdl", overwrite=False)
    assert (tmp_path / "new.fdl").exists()
    save_model(other, path)                         # overwrite=True replaces it
    assert path.read_bytes() != before


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_failure_in_the_middle_of_writing_leaves_the_old_file_intact(trained, tmp_path,
                                                                      monkeypatch):
    model, path, _, _ = trained
    before, names = path.read_bytes(), _listing(tmp_path)
    calls = []
    original = native._write_array

    def failing(f, array):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        original(f, array)

    monkeypatch.setattr(native, "_write_array", failing)
    with pytest.raises(OSError, match="disk full"):
        save_model(small_model(seed=4), path)
    assert len(calls) == 2                      # it really failed midway
    assert path.read_bytes() == before
    assert _listing(tmp_path) == names          # no temporary file left behind
    monkeypatch.setattr(native, "_write_array", original)

    def no_fsync(fd):
        raise OSError("fsync failed (simulated)")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        save_model(small_model(seed=4), path)
    assert path.read_bytes() == before and _listing(tmp_path) == names
    load_model(path)


def test_saved_file_gets_normal_permissions(tmp_path):
    save_model(small_model(), tmp_path / "p.fdl")
    mode = (tmp_path / "p.fdl").stat().st_mode & 0o777
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask


def test_bad_arguments():
    model = small_model()
    with pytest.raises(TypeError):
        save_model("not a model", "x.fdl")
    with pytest.raises(TypeError):
        save_model(model, "x.fdl", overwrite="yes")
    with pytest.raises(ValueError, match="save_weights"):
        save_model(model, "x.weights.h5")
    with pytest.raises(ValueError, match="save_weights writes"):
        save_weights(model, "x.keras")
    with pytest.raises(ModelFileError, match="weights file"):
        load_model("x.weights.h5")


# ------------------------------------------------------------------ failed loads change nothing

def test_failed_load_weights_leaves_the_model_bitwise_unchanged(tmp_path):
    # the first layer of the file matches, the second does not: nothing may be assigned
    save_weights(small_model(units=(8, 5)), tmp_path / "other.fdl")
    model = small_model(seed=2)
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    before, opt_before = weights_of(model), model.optimizer.get_state()
    with pytest.raises(ModelFileError, match="shape"):
        load_weights(model, tmp_path / "other.fdl")
    assert_bitwise(model.weights, before)
    assert_bitwise(model.optimizer.get_state(), opt_before)

    good = tmp_path / "good.fdl"
    save_weights(small_model(seed=6), good)
    blob = bytearray(good.read_bytes())
    blob[-3] ^= 0xFF
    (tmp_path / "flipped.fdl").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="checksum"):
        load_weights(model, tmp_path / "flipped.fdl")
    assert_bitwise(model.weights, before)

    deeper = Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                         layers.Dense(3), layers.Dense(3)])
    with pytest.raises(ModelFileError, match="missing"):
        load_weights(deeper, good)


# ------------------------------------------------------------------------------ rejected files

@pytest.fixture
def parts(trained):
    """(header, data) of a valid saved model, to be altered by each test."""
    _, path, _, _ = trained
    return unpack(path.read_bytes())


def _load_blob(tmp_path, blob, name="bad.fdl"):
    path = tmp_path / name
    path.write_bytes(blob)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    return str(info.value)


def test_the_crafting_helper_makes_loadable_files(tmp_path, parts):
    header, payload = parts
    model = load_model(_write(tmp_path, pack(header, payload)))
    assert model.built


def _write(tmp_path, blob, name="ok.fdl"):
    path = tmp_path / name
    path.write_bytes(blob)
    return path


@pytest.mark.parametrize("blob, pattern", [
    (b"", "empty"),
    (b"\x89FDL\r\n\x1a", "too short"),                     # 7 bytes
    (struct.pack("<8sIQ", MAGIC, 1, 0) + b"\0" * 40, "header length 0 is outside"),
    (struct.pack("<8sIQ", MAGIC, 1, 1) + b"\0" * 40, "header length 1 is outside"),
])
def test_tiny_files(tmp_path, blob, pattern):
    assert pytest.raises(ModelFileError, load_model, _write(tmp_path, blob)).match(pattern)


def test_huge_header_length_and_header_beyond_the_file(tmp_path, parts):
    header, payload = parts
    msg = _load_blob(tmp_path, pack(header, payload, header_len=1 << 62))
    assert "header length" in msg and "outside" in msg
    hb = json.dumps(header).encode()
    msg = _load_blob(tmp_path, pack(header, payload, header_len=len(hb) + len(payload) + 1))
    assert "beyond the end" in msg


def test_bad_magic_version_and_checksum(tmp_path, parts):
    header, payload = parts
    assert "not a fastdl model file" in _load_blob(tmp_path, pack(header, payload,
                                                                   magic=b"NOTAFDL!"))
    assert "format version 2" in _load_blob(tmp_path, pack(header, payload, version=2))
    assert "checksum mismatch" in _load_blob(tmp_path, pack(header, payload,
                                                            checksum=b"\0" * 32))
    good = pack(header, payload)
    for position in (30, 60, len(good) - 1):                # prefix, header, data
        blob = bytearray(good)
        blob[position] ^= 0x01
        assert "checksum mismatch" in _load_blob(tmp_path, bytes(blob))
    assert "checksum mismatch" in _load_blob(tmp_path, good[:-5])    # really truncated


def test_header_encoding_and_json(tmp_path, parts):
    header, payload = parts
    assert "UTF-8" in _load_blob(tmp_path, pack(b'{"format": "fastdl\xff\xfe"}', payload))
    dup = b'{"format": "fastdl", "format": "fastdl", "kind": "model", "tensors": []}'
    assert "duplicate key 'format'" in _load_blob(tmp_path, pack(dup))
    text = json.dumps(header)
    inner = text.replace('"units": 8', '"units": 8, "units": 8', 1)
    assert inner != text
    assert "duplicate key 'units'" in _load_blob(tmp_path, pack(inner.encode(), payload))
    assert "not valid JSON" in _load_blob(tmp_path, pack(b"{not json", payload))
    nan = text.replace('"units": 8', '"units": NaN', 1).encode()
    assert "non-finite" in _load_blob(tmp_path, pack(nan, payload))
    assert "JSON object" in _load_blob(tmp_path, pack(b"[1, 2]", payload))
    assert "unknown header keys" in _load_blob(tmp_path, pack({**header, "code": "x"}, payload))
    assert "unknown kind" in _load_blob(tmp_path, pack({**header, "kind": "script"}, payload))


def _with_tensor(header, index, **changes):
    header = json.loads(json.dumps(header))
    header["tensors"][index].update(changes)
    return header


@pytest.mark.parametrize("changes, pattern", [
    ({"dtype": "float16"}, "dtype 'float16' is not allowed"),
    ({"dtype": "object"}, "dtype 'object' is not allowed"),
    ({"dtype": "<f4"}, "is not allowed"),
    ({"shape": [-4, 8]}, r"dimension .* must be an integer >= 0"),
    ({"shape": [4, 2 ** 62]}, "needs more bytes than"),
    ({"shape": [2 ** 31] * 8}, "needs more bytes than"),
    ({"shape": [4.0, 8]}, "must be an integer"),
    ({"shape": [True, 8]}, "must be an integer"),
    ({"shape": "4,8"}, "shape must be a list"),
    ({"nbytes": 100}, "nbytes 100 does not match"),
    ({"offset": -1}, "offset must be an integer >= 0"),
    ({"name": ""}, "invalid name"),
    ({"extra": 1}, "expected the keys"),
])
def test_tensor_table_rejections(tmp_path, parts, changes, pattern):
    header, payload = parts
    msg = _load_blob(tmp_path, pack(_with_tensor(header, 0, **changes), payload))
    assert re.search(pattern, msg), msg


def test_overlapping_gapped_trailing_and_truncated_tensors(tmp_path, parts):
    header, payload = parts
    t1 = header["tensors"][1]
    overlap = _with_tensor(header, 1, offset=t1["offset"] - 4)
    assert "overlaps" in _load_blob(tmp_path, pack(overlap, payload))
    gap = _with_tensor(header, 1, offset=t1["offset"] + 4)
    assert "gap" in _load_blob(tmp_path, pack(gap, payload))
    assert "trailing bytes" in _load_blob(tmp_path, pack(header, payload + b"\0" * 8))
    assert "truncated" in _load_blob(tmp_path, pack(header, payload[:-4]))
    dup = json.loads(json.dumps(header))
    dup["tensors"][1]["name"] = dup["tensors"][0]["name"]
    assert "appears twice" in _load_blob(tmp_path, pack(dup, payload))


def test_unexpected_weight_names_and_shapes(tmp_path, parts):
    header, payload = parts
    renamed = _with_tensor(header, 1, name="layers/dense/bias_evil")
    msg = _load_blob(tmp_path, pack(renamed, payload))
    assert "missing ['layers/dense/bias']" in msg and "unexpected ['layers/dense/bias_evil']" in msg
    t0 = header["tensors"][0]                     # kernel (4, 8) stored as (8, 4): same bytes
    assert "shape (4, 8) in the model, (8, 4) in the file" in \
        _load_blob(tmp_path, pack(_with_tensor(header, 0, shape=t0["shape"][::-1]), payload))
    t1 = header["tensors"][1]                     # bias float32 (8,) read as int32 (8,)
    assert "dtype float32 in the model, int32 in the file" in \
        _load_blob(tmp_path, pack(_with_tensor(header, 1, dtype="int32"), payload))
    odd = _with_tensor(header, len(header["tensors"]) - 1, name="optimizer/99")
    assert "optimizer/0, optimizer/1" in _load_blob(tmp_path, pack(odd, payload))
    del t1


def _with_layer(header, index, **changes):
    header = json.loads(json.dumps(header))
    header["model_config"]["config"]["layers"][index].update(changes)
    return header


def _with_layer_config(header, index, **changes):
    header = json.loads(json.dumps(header))
    header["model_config"]["config"]["layers"][index]["config"].update(changes)
    return header


@pytest.mark.parametrize("changes, pattern", [
    ({"class_name": "FancyLayer"}, "unknown layer class 'FancyLayer'"),
    ({"class_name": "os.system"}, "unknown layer class 'os.system'"),
    ({"class_name": "system", "module": "os"}, "refusing class 'system' from module 'os'"),
    ({"class_name": "Lambda"}, "refusing layer class 'Lambda'"),
    ({"class_name": "Dense", "registered_name": "evil>Payload"}, "refusing custom class "
                                                                "'evil>Payload'"),
    ({"class_name": ["Dense"]}, "invalid 'class_name'"),
    ({"class_name": "Sequential"}, "layer 0 (nested Sequential): the Sequential config has no "
                                   "'layers' list"),
])
def test_only_registered_classes_load(tmp_path, parts, changes, pattern):
    header, payload = parts
    msg = _load_blob(tmp_path, pack(_with_layer(header, 0, **changes), payload))
    assert pattern in msg


@pytest.mark.parametrize("changes, pattern", [
    ({"units": 0}, "units must be a positive integer"),
    ({"units": -3}, "units must be a positive integer"),
    ({"units": "8"}, "units must be an integer"),
    ({"units": True}, "units must be an integer"),
    ({"activation": "os.system"}, "Unknown activation"),
    ({"kernel_initializer": {"class_name": "Evil", "config": {}}}, "Unknown initializer"),
    ({"use_bias": "yes"}, "use_bias must be a bool"),
    ({"dtype": "float16"}, "dtype must be"),
    ({"surprise": 1}, "unrecognized keyword"),
    ({"units": 10 ** 12}, "more weights than the file holds"),
])
def test_layer_configs_go_through_the_constructor_validation(tmp_path, parts, changes, pattern):
    header, payload = parts
    msg = _load_blob(tmp_path, pack(_with_layer_config(header, 0, **changes), payload))
    assert pattern in msg and "layer 0" in msg


def test_conv_kernel_size_zero_is_refused(tmp_path):
    set_random_seed(0)
    model = Sequential([layers.Conv2D(2, 3, input_shape=(5, 5, 1)), layers.Flatten()])
    save_model(model, tmp_path / "conv.fdl")
    header, payload = unpack((tmp_path / "conv.fdl").read_bytes())
    for value in (0, [3, 0]):
        msg = _load_blob(tmp_path, pack(_with_layer_config(header, 0, kernel_size=value),
                                        payload))
        assert "kernel_size" in msg and "layer 0 (Conv2D" in msg


def test_model_level_rejections(tmp_path, parts):
    header, payload = parts
    h = json.loads(json.dumps(header))
    h["model_config"]["class_name"] = "Evil"
    assert "unknown layer class 'Evil'" in _load_blob(tmp_path, pack(h, payload))
    h = json.loads(json.dumps(header))
    h["model_config"]["config"]["layers"] = "all of them"
    assert "'layers' list" in _load_blob(tmp_path, pack(h, payload))
    h = json.loads(json.dumps(header))
    h["compile_config"]["optimizer"]["class_name"] = "Evil"
    assert "Unknown optimizer" in _load_blob(tmp_path, pack(h, payload))
    h = json.loads(json.dumps(header))
    h["compile_config"]["loss"] = "os.system"
    assert "Unknown loss" in _load_blob(tmp_path, pack(h, payload))
    h = json.loads(json.dumps(header))
    h["compile_config"]["optimizer"]["config"]["learning_rate"] = -1.0
    assert "learning_rate" in _load_blob(tmp_path, pack(h, payload))
    h = json.loads(json.dumps(header))
    h["compile_config"] = None
    assert "optimizer state without a compile config" in _load_blob(tmp_path, pack(h, payload))


# --------------------------------------------------------------------------------- pickle canary

class _Canary:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickle_canary_is_refused_and_never_unpickled(tmp_path):
    control = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(_Canary(control)))
    assert control.exists()                      # the payload really fires when unpickled

    marker = tmp_path / "marker"
    payload = pickle.dumps({"model": _Canary(marker), "weights": [np.ones(3)]}, protocol=4)
    # the message names what the file is (the temporary path alone contains "pickle")
    for name, what in (("model.fdl", "Python pickle"), ("model", "Python pickle"),
                       ("model.pkl", "Python pickle"), ("model.h5", "legacy Keras HDF5")):
        path = _write(tmp_path, payload, name)
        with pytest.raises(ModelFileError, match=what):
            load_model(path)
        with pytest.raises(ModelFileError, match=what):
            load_weights(small_model(), path)
    keras_path = _write(tmp_path, payload, "model.keras")
    with pytest.raises(ModelFileError, match="Python pickle"):
        load_model(keras_path)
    h5_path = _write(tmp_path, payload, "model.weights.h5")
    with pytest.raises(ModelFileError, match="Python pickle"):
        load_weights(small_model(), h5_path)
    zipped = tmp_path / "inner.keras"                 # a pickle inside the archive
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("config.json", payload)
        zf.writestr("model.weights.h5", payload)
    with pytest.raises(ModelFileError):
        load_model(zipped)
    with pytest.raises(ModelFileError):
        load_weights(small_model(), zipped)
    assert not marker.exists()


def test_other_foreign_files_get_a_hint(tmp_path):
    model = small_model()
    renamed = tmp_path / "renamed.fdl"        # a .keras file is a zip archive (no h5py needed)
    with zipfile.ZipFile(renamed, "w") as zf:
        zf.writestr("config.json", "{}")
    assert "zip archive" in _load_blob(tmp_path, renamed.read_bytes())
    np.save(tmp_path / "a.npy", np.ones(3))
    assert "NumPy" in _load_blob(tmp_path, (tmp_path / "a.npy").read_bytes())
    save_model(model, tmp_path / "native.fdl")
    os.replace(tmp_path / "native.fdl", tmp_path / "native.keras")
    with pytest.raises(ModelFileError, match="fastdl native file"):
        load_model(tmp_path / "native.keras")


# ----------------------------------------------------------------------------------- fuzzing

_SCALAR = re.compile(r'(?<=: )(-?\d+(\.\d+)?|"[^"]*"|null|true|false)')
_TOKENS = ["0", "-1", "1e309", '"x"', "null", "true", "[]", "{}", "99999999999", "2.5", "[0, 0]",
           '"Lambda"', '{"class_name": "Lambda", "config": {}}', "[[[[[[[[]]]]]]]]"]


@pytest.fixture(scope="module")
def fuzz_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    corpus = []
    for family in ("conv", "rnn"):
        set_random_seed(0)
        model, x = every_layer_model(family)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
        save_model(model, folder / f"{family}.fdl")
        header, payload = unpack((folder / f"{family}.fdl").read_bytes())
        text = json.dumps(header)
        corpus.append((text, [m.span() for m in _SCALAR.finditer(text)], payload))
    return folder, corpus


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 1), where=st.integers(0, 10 ** 6), token=st.sampled_from(_TOKENS))
def test_fuzz_header_values_raise_only_model_file_error(fuzz_corpus, which, where, token):
    folder, corpus = fuzz_corpus
    text, spans, payload = corpus[which]
    a, b = spans[where % len(spans)]
    path = folder / "fuzzed.fdl"
    path.write_bytes(pack((text[:a] + token + text[b:]).encode(), payload))
    try:
        load_model(path)
    except ModelFileError:
        pass
