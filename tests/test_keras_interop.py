"""Keras 3 interchange, both ways, against the real Keras (torch backend) in a subprocess.

One subprocess (keras + torch take seconds to import, and stay out of the test process) does
all of Keras's side: it loads every ``.keras`` / ``.weights.h5`` file fastdl wrote and records
Keras's predictions and optimizer variables, and it writes Keras's own files for every layer
family, with its predictions and optimizer variables. The tests then compare in this process.
CI installs keras, torch and h5py: these tests run there (they are skipped only where keras,
torch or h5py cannot be imported).
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
pytest.importorskip("hypothesis", reason="needs hypothesis (the test extra: pip install \".[test]\")")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastdl
from fastdl import layers
from fastdl.models import Sequential
from fastdl.saving import ModelFileError, load_model, load_weights, save_model, save_weights
from fastdl.utils import set_random_seed

HAVE_KERAS = all(importlib.util.find_spec(m) is not None for m in ("keras", "torch", "h5py"))
needs_keras = pytest.mark.skipif(not HAVE_KERAS, reason="needs keras, torch and h5py")
needs_h5py = pytest.mark.skipif(importlib.util.find_spec("h5py") is None, reason="needs h5py")

# Every layer family fastdl has, as a fastdl model and as the same Keras model (worker below).
FAMILIES = ["core", "conv", "norm", "rnn"]
INPUTS = {"core": (4, 3), "conv": (9, 9, 3), "norm": (5, 6, 2), "rnn": (7,)}
VOCAB = 12                      # the rnn family reads token ids in [0, VOCAB)


def make_x(family, rng, n):
    if family == "rnn":
        return rng.integers(0, VOCAB, (n,) + INPUTS[family]).astype(np.int32)
    return rng.random((n,) + INPUTS[family]).astype(np.float32)


def fastdl_model(family):
    if family == "core":
        return Sequential([layers.Input(INPUTS[family]), layers.Flatten(),
                           layers.Dense(16, activation="relu"), layers.Dropout(0.3),
                           layers.Dense(5), layers.Activation("softmax")])
    if family == "conv":
        return Sequential([layers.Input(INPUTS[family]),
                           layers.Conv2D(4, 3, padding="same", activation="relu"),
                           layers.MaxPooling2D(),
                           layers.Conv2D(6, (2, 3), strides=(1, 2), use_bias=False),
                           layers.AveragePooling2D(2, padding="same"),
                           layers.GlobalAveragePooling2D(keepdims=True),
                           layers.GlobalMaxPooling2D(),
                           layers.Dense(5, activation="softmax")])
    if family == "norm":
        return Sequential([layers.Input(INPUTS[family]), layers.ZeroPadding2D(((1, 2), (0, 1))),
                           layers.Conv2D(3, 3), layers.BatchNormalization(),
                           layers.Reshape((-1, 3)), layers.BatchNormalization(epsilon=0.01),
                           layers.Flatten(), layers.Dense(5, activation="softmax")])
    if family == "rnn":
        return Sequential([layers.Input(INPUTS[family], dtype="int32"),
                           layers.Embedding(VOCAB, 4),
                           layers.SimpleRNN(3, return_sequences=True),
                           layers.LSTM(3, return_sequences=True),
                           layers.GRU(3, return_sequences=True, go_backwards=True),
                           layers.Bidirectional(layers.LSTM(2)),
                           layers.Dense(5, activation="softmax")])
    raise KeyError(family)


WORKER = textwrap.dedent('''
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    L = keras.layers
    job = json.load(open(sys.argv[1]))
    out = job["out"]
    INPUTS = {k: tuple(v) for k, v in job["inputs"].items()}

    def model(family):
        inp = keras.Input(INPUTS[family], dtype="int32" if family == "rnn" else "float32")
        if family == "core":
            body = [L.Flatten(), L.Dense(16, activation="relu"), L.Dropout(0.3), L.Dense(5),
                    L.Activation("softmax")]
        elif family == "conv":
            body = [L.Conv2D(4, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                    L.Conv2D(6, (2, 3), strides=(1, 2), use_bias=False),
                    L.AveragePooling2D(2, padding="same"),
                    L.GlobalAveragePooling2D(keepdims=True), L.GlobalMaxPooling2D(),
                    L.Dense(5, activation="softmax")]
        elif family == "norm":
            body = [L.ZeroPadding2D(((1, 2), (0, 1))), L.Conv2D(3, 3), L.BatchNormalization(),
                    L.Reshape((-1, 3)), L.BatchNormalization(epsilon=0.01), L.Flatten(),
                    L.Dense(5, activation="softmax")]
        elif family == "rnn":
            body = [L.Embedding(job["vocab"], 4), L.SimpleRNN(3, return_sequences=True),
                    L.LSTM(3, return_sequences=True),
                    L.GRU(3, return_sequences=True, go_backwards=True),
                    L.Bidirectional(L.LSTM(2)), L.Dense(5, activation="softmax")]
        return keras.Sequential([inp] + body)

    def randomize(m, seed):
        r = np.random.default_rng(seed)
        for layer in m.layers:
            ws = [r.standard_normal(tuple(v.shape)) * 0.4 for v in layer.weights]
            ws = [np.abs(w) + 0.5 if "variance" in v.path else w
                  for v, w in zip(layer.weights, ws)]
            layer.set_weights([w.astype("float32") for w in ws])

    def opt_vars(m):
        return {str(i): np.asarray(v.numpy()) for i, v in enumerate(m.optimizer.variables)}

    keras.utils.set_random_seed(0)
    # Keras reads fastdl's files
    for item in job["fastdl_files"]:
        x = np.load(item["x"])
        m = keras.models.load_model(item["keras"])
        np.save(item["keras"] + ".pred.npy", m.predict(x, verbose=0))
        np.savez(item["keras"] + ".opt.npz", **opt_vars(m))
        m.load_weights(item["weights_h5"])
        np.save(item["weights_h5"] + ".pred.npy", m.predict(x, verbose=0))
        np.savez(item["weights_h5"] + ".opt.npz", **opt_vars(m))
    for path in job["fresh_files"]:         # compiled, never trained: optimizer not built
        m = keras.models.load_model(path)
        np.savez(path + ".opt.npz", **opt_vars(m))
    # Keras writes its own files
    for family in job["keras_families"]:
        r = np.random.default_rng(1)
        if family == "rnn":
            x = r.integers(0, job["vocab"], (6,) + INPUTS[family]).astype("int32")
        else:
            x = r.random((6,) + INPUTS[family]).astype("float32")
        y = r.integers(0, 5, 6)
        m = model(family)
        randomize(m, 2)
        m.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        m.train_on_batch(x, y)
        m.train_on_batch(x, y)
        base = os.path.join(out, "keras_" + family)
        m.save(base + ".keras")
        np.save(base + ".x.npy", x)
        np.save(base + ".pred.npy", m.predict(x, verbose=0))
        np.savez(base + ".opt.npz", **opt_vars(m))
        randomize(m, 3)
        m.save_weights(base + ".weights.h5")
        np.save(base + ".weights.pred.npy", m.predict(x, verbose=0))
    # files fastdl must refuse
    inp = keras.Input((3,))
    keras.Sequential([inp, L.Lambda(lambda t: t * 2), L.Dense(2)]).save(
        os.path.join(out, "lambda.keras"))
    keras.Sequential([keras.Input((3,)), L.Dense(2, lora_rank=2)]).save(
        os.path.join(out, "lora.keras"))
    a = keras.Input((3,))
    keras.Model(a, L.Dense(2)(a)).save(os.path.join(out, "functional.keras"))
    print("worker done")
''')


def _randomize(model, seed):
    r = np.random.default_rng(seed)
    values = []
    for layer in model.layers:
        for name, w in zip(layer.weight_names, layer.weights):
            v = r.standard_normal(w.shape) * 0.4
            values.append((np.abs(v) + 0.5 if "variance" in name else v).astype(w.dtype))
    model.set_weights(values)


@pytest.fixture(scope="module")
def interop(tmp_path_factory):
    """Write fastdl's files, run the Keras worker once, return what both sides produced."""
    out = tmp_path_factory.mktemp("interop")
    fastdl_side = {}
    items = []
    for family in FAMILIES:
        set_random_seed(0)
        r = np.random.default_rng(5)
        x = make_x(family, r, 6)
        y = r.integers(0, 5, 6)
        model = fastdl_model(family)
        _randomize(model, 4)
        model.compile(optimizer=fastdl.optimizers.Adam(0.01),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
        base = str(out / f"fastdl_{family}")
        save_model(model, base + ".keras")
        np.save(base + ".x.npy", x)
        pred = model.predict(x, verbose=0)
        state = model.optimizer.get_state()
        _randomize(model, 6)
        save_weights(model, base + ".weights.h5")
        fastdl_side[family] = {"x": x, "pred": pred, "state": state,
                               "weights_pred": model.predict(x, verbose=0),
                               "weights_state": model.optimizer.get_state(), "base": base}
        items.append({"keras": base + ".keras", "weights_h5": base + ".weights.h5",
                      "x": base + ".x.npy"})
    fresh = fastdl_model("core")
    fresh.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    save_model(fresh, out / "fresh.keras")
    job = out / "job.json"
    job.write_text(json.dumps({"out": str(out), "fastdl_files": items,
                               "fresh_files": [str(out / "fresh.keras")],
                               "keras_families": FAMILIES, "vocab": VOCAB,
                               "inputs": {k: list(v) for k, v in INPUTS.items()}}))
    env = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="")
    script = out / "worker.py"
    script.write_text(WORKER)
    proc = subprocess.run([sys.executable, str(script), str(job)], env=env, cwd=str(out),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "worker done" in proc.stdout, proc.stderr[-4000:]
    return out, fastdl_side, proc.stderr


# ------------------------------------------------------------------------- fastdl -> Keras

@needs_keras
@pytest.mark.parametrize("family", FAMILIES)
def test_keras_loads_fastdl_keras_file_and_predicts_the_same(interop, family):
    out, side, stderr = interop
    mine = side[family]
    theirs = np.load(mine["base"] + ".keras.pred.npy")
    np.testing.assert_allclose(theirs, mine["pred"], atol=1e-5, rtol=0)
    opt = np.load(mine["base"] + ".keras.opt.npz")
    assert len(opt.files) == len(mine["state"]) > 2
    assert int(opt["0"]) == int(mine["state"][0]) == 2             # iterations
    for i, expected in enumerate(mine["state"][1:], start=1):      # learning rate, m, v, ...
        np.testing.assert_array_equal(opt[str(i)], expected)


@needs_keras
@pytest.mark.parametrize("family", FAMILIES)
def test_keras_loads_fastdl_weights_h5(interop, family):
    out, side, _ = interop
    mine = side[family]
    theirs = np.load(mine["base"] + ".weights.h5.pred.npy")
    assert not np.allclose(theirs, mine["pred"])                   # the load changed the model
    np.testing.assert_allclose(theirs, mine["weights_pred"], atol=1e-5, rtol=0)
    opt = np.load(mine["base"] + ".weights.h5.opt.npz")
    for i, expected in enumerate(mine["weights_state"]):
        np.testing.assert_array_equal(opt[str(i)], expected)


@needs_keras
def test_an_unbuilt_optimizer_is_written_as_keras_expects_it(interop):
    out, _, _ = interop
    opt = np.load(out / "fresh.keras.opt.npz")
    assert len(opt.files) == 2 + 2 * 4 and int(opt["0"]) == 0     # built by Keras, all loaded
    assert not np.any(opt["2"])


@needs_keras
def test_keras_printed_no_loading_warnings(interop):
    _, _, stderr = interop
    for warning in ("Skipping variable loading", "could not be loaded", "compile()` was not"):
        assert warning not in stderr, stderr[-3000:]


# ------------------------------------------------------------------------- Keras -> fastdl

@needs_keras
@pytest.mark.parametrize("family", FAMILIES)
def test_fastdl_loads_keras_file_and_predicts_the_same(interop, family):
    out, _, _ = interop
    base = str(out / f"keras_{family}")
    x = np.load(base + ".x.npy")
    model = load_model(base + ".keras")
    assert [type(l).__name__ for l in model.layers] == \
        [type(l).__name__ for l in fastdl_model(family).layers]
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(base + ".pred.npy"),
                               atol=1e-5, rtol=0)
    assert model.compiled and type(model.optimizer).__name__ == "Adam"
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert [m.name for m in model.compiled_metrics] == ["accuracy"]
    assert type(model.loss).__name__ == "SparseCategoricalCrossentropy"
    keras_opt = np.load(base + ".opt.npz")
    state = model.optimizer.get_state()
    assert len(state) == len(keras_opt.files) > 2
    assert int(state[0]) == int(keras_opt["0"]) == 2
    for i in range(1, len(state)):
        np.testing.assert_array_equal(state[i], keras_opt[str(i)])


@needs_keras
@pytest.mark.parametrize("family", FAMILIES)
def test_fastdl_loads_keras_weights_h5(interop, family):
    out, _, _ = interop
    base = str(out / f"keras_{family}")
    x = np.load(base + ".x.npy")
    model = load_model(base + ".keras")
    before = model.predict(x, verbose=0)
    load_weights(model, base + ".weights.h5")
    after = model.predict(x, verbose=0)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, np.load(base + ".weights.pred.npy"), atol=1e-5, rtol=0)
    fresh = fastdl_model(family)                    # differently named layers, same structure
    load_weights(fresh, base + ".weights.h5")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), after, atol=0, rtol=0)


@needs_keras
def test_fastdl_refuses_lambda_functional_and_unsupported_options(interop):
    out, _, _ = interop
    with pytest.raises(ModelFileError, match="Lambda"):
        load_model(out / "lambda.keras")
    assert type(load_model(out / "functional.keras")).__name__ == "Functional"  # loads now
    with pytest.raises(ModelFileError, match="lora_(rank|alpha)"):
        load_model(out / "lora.keras")


# ------------------------------------------------------------------ fastdl <-> fastdl via Keras

@needs_h5py
@pytest.mark.parametrize("family", FAMILIES)
def test_keras_format_round_trip_in_fastdl_is_exact(tmp_path, family):
    set_random_seed(0)
    model = fastdl_model(family)
    _randomize(model, 8)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    x = make_x(family, np.random.default_rng(0), 4)
    model.train_on_batch(x, np.arange(4))
    save_model(model, tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(loaded.optimizer.get_state(), model.optimizer.get_state()):
        assert np.array_equal(a, b)
    assert [m.name for m in loaded.compiled_metrics] == ["acc"]
    before = [w.copy() for w in loaded.weights]
    save_weights(model, tmp_path / "w.weights.h5")
    _randomize(loaded, 9)
    load_weights(loaded, tmp_path / "w.weights.h5")
    for a, b in zip(loaded.weights, before):
        assert np.array_equal(a, b)
    load_weights(loaded, tmp_path / "m.keras")          # Keras also reads weights from .keras


@needs_h5py
def test_keras_file_layout(tmp_path):
    import h5py
    set_random_seed(0)
    model = fastdl_model("core")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        meta = json.loads(zf.read("metadata.json"))
        assert set(meta) >= {"keras_version", "date_saved"}
        config = json.loads(zf.read("config.json"))
        with h5py.File(zf.open("model.weights.h5"), "r") as h5:
            groups = []
            h5.visit(groups.append)
            assert "layers/dense/vars/0" in groups and "layers/dense_1/vars/1" in groups
            assert h5["layers/dense/vars/0"].shape == (12, 16)
            assert "layers/flatten/vars" in groups and "layers/dropout/vars" in groups
            assert h5["optimizer/vars/0"].shape == ()          # iterations
            n_vars = len(h5["optimizer/vars"])
            assert n_vars == 2 + 2 * 4                         # Adam: m and v per variable
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    entries = config["config"]["layers"]
    assert entries[0]["class_name"] == "InputLayer"
    assert entries[0]["config"]["batch_shape"] == [None, 4, 3]
    dense = entries[2]
    assert dense["config"]["dtype"]["class_name"] == "DTypePolicy"
    assert dense["build_config"] == {"input_shape": [None, 12]}
    assert "batch_input_shape" not in json.dumps(config)
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"


@needs_h5py
def test_missing_h5py_gives_the_install_hint(tmp_path, monkeypatch):
    model = Sequential([layers.Dense(2, input_shape=(3,))])
    save_model(model, tmp_path / "k.keras")                # written while h5py is there
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r'pip install "fastdl\[keras\]"'):
        save_model(model, tmp_path / "m.keras")
    with pytest.raises(ImportError, match=r'pip install "fastdl\[keras\]"'):
        save_weights(model, tmp_path / "m.weights.h5")
    assert not (tmp_path / "m.keras").exists()
    with pytest.raises(ImportError, match=r'pip install "fastdl\[keras\]"'):
        load_model(tmp_path / "k.keras")
    with pytest.raises(ImportError, match=r'pip install "fastdl\[keras\]"'):
        load_weights(model, tmp_path / "k.keras")
    save_model(model, tmp_path / "m.fdl")                  # the native format needs no h5py
    load_model(tmp_path / "m.fdl")


@needs_h5py
def test_hostile_keras_archives_are_refused(tmp_path):
    set_random_seed(0)
    model = fastdl_model("core")
    save_model(model, tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])

    def archive(name, **replace):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            for member, data in {**members, **replace}.items():
                zf.writestr(member, data)
        return path

    layer = config["config"]["layers"][2]
    for class_name, module, pattern in [("Lambda", "keras.layers", "Lambda"),
                                        ("system", "os", "module 'os'"),
                                        ("Evil", "keras.layers", "unknown layer class 'Evil'")]:
        bad = json.loads(json.dumps(config))
        bad["config"]["layers"][2] = dict(layer, class_name=class_name, module=module)
        with pytest.raises(ModelFileError, match=pattern):
            load_model(archive("bad.keras", **{"config.json": json.dumps(bad)}))
    bad = json.loads(json.dumps(config))
    bad["config"]["layers"][2]["config"]["units"] = 0
    with pytest.raises(ModelFileError, match="units must be a positive integer"):
        load_model(archive("units.keras", **{"config.json": json.dumps(bad)}))
    bad = json.loads(json.dumps(config))
    bad["config"]["layers"][2]["config"]["quantization_config"] = {"mode": "int8"}
    with pytest.raises(ModelFileError, match="quantization_config"):
        load_model(archive("quant.keras", **{"config.json": json.dumps(bad)}))
    dup = members["config.json"].replace(b'"units":16', b'"units":16,"units":16')
    with pytest.raises(ModelFileError, match="duplicate key 'units'"):
        load_model(archive("dup.keras", **{"config.json": dup}))
    with pytest.raises(ModelFileError, match="no config.json"):
        path = tmp_path / "empty.keras"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("other.txt", b"x")
        load_model(path)
    with pytest.raises(ModelFileError, match="not a readable HDF5"):
        load_model(archive("h5.keras", **{"model.weights.h5": b"\x89HDF\r\n\x1a\n"
                                          + b"\0" * len(members["model.weights.h5"])}))
    with pytest.raises(ModelFileError):
        load_model(archive("trunc.keras",
                           **{"model.weights.h5": members["model.weights.h5"][:200]}))

    # weights of the wrong shape / an unexpected dataset / a link in the HDF5 file
    import h5py
    other = Sequential([layers.Input((4, 3)), layers.Flatten(), layers.Dense(17),
                        layers.Dropout(0.3), layers.Dense(5), layers.Activation("softmax")])
    save_weights(other, tmp_path / "other.weights.h5")
    before = [w.copy() for w in model.weights]
    with pytest.raises(ModelFileError, match=r"expected shape \(12, 16\)"):
        load_weights(model, tmp_path / "other.weights.h5")
    save_weights(model, tmp_path / "extra.weights.h5")
    with h5py.File(tmp_path / "extra.weights.h5", "a") as h5:
        h5["layers/dense/vars/2"] = np.zeros(3, np.float32)
    with pytest.raises(ModelFileError, match="unexpected"):
        load_weights(model, tmp_path / "extra.weights.h5")
    save_weights(model, tmp_path / "link.weights.h5")
    with h5py.File(tmp_path / "link.weights.h5", "a") as h5:
        del h5["layers/dense/vars/1"]
        h5["layers/dense/vars/1"] = h5py.ExternalLink("/etc/passwd", "/x")
    with pytest.raises(ModelFileError, match="links are not allowed"):
        load_weights(model, tmp_path / "link.weights.h5")
    save_weights(model, tmp_path / "dtype.weights.h5")
    with h5py.File(tmp_path / "dtype.weights.h5", "a") as h5:
        del h5["layers/dense/vars/1"]
        h5["layers/dense/vars/1"] = np.array(["x"] * 16, dtype=object)
    with pytest.raises(ModelFileError, match="dtype"):
        load_weights(model, tmp_path / "dtype.weights.h5")
    for a, b in zip(model.weights, before):                     # nothing was assigned
        assert np.array_equal(a, b)


@pytest.fixture(scope="module")
def keras_bytes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kfuzz")
    set_random_seed(0)
    model = fastdl_model("rnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(make_x("rnn", np.random.default_rng(0), 4), np.arange(4))
    save_model(model, folder / "m.keras")
    with zipfile.ZipFile(folder / "m.keras") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    return folder, members


@needs_h5py
@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10 ** 9), st.integers(0, 255)), min_size=1,
                      max_size=6),
       target=st.sampled_from(["model.weights.h5", "zip", "deflated"]))
def test_fuzz_damaged_keras_files_raise_only_model_file_error(keras_bytes, flips, target):
    folder, members = keras_bytes
    path = folder / "fuzzed.keras"
    h5 = bytearray(members["model.weights.h5"])
    if target == "model.weights.h5":
        for pos, value in flips:
            h5[pos % len(h5)] = value
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if target == "deflated"
                         else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, bytes(h5) if name == "model.weights.h5" else data)
    if target != "model.weights.h5":
        blob = bytearray(path.read_bytes())
        for pos, value in flips:
            blob[pos % len(blob)] = value
        path.write_bytes(bytes(blob))
    try:
        load_model(path)
    except ModelFileError:
        pass
