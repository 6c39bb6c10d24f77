"""Functional, nested and subclassed models in files: native round trips, Keras 3's ``.keras``
both ways against the real Keras (torch backend, in one subprocess, as
tests/test_keras_interop.py does), the config utilities, and hostile functional configs.

The same builder source (``ARCHS``) makes each model with ``fastdl.keras`` here and with
``keras`` in the worker, so both sides describe the same architecture.
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

import fastdl
from fastdl import keras as fkeras
from fastdl import layers as L
from fastdl import ops
from fastdl.functional import Functional
from fastdl.models import Model, Sequential
from fastdl.saving import ModelFileError, load_model, save_model
from fastdl.utils import set_random_seed

# Building a graph runs each op on zero arrays to infer its output shape (fastdl.functional),
# so ``2.0 / x`` warns about dividing by zero while the model is built; the values are right.
pytestmark = pytest.mark.filterwarnings(
    "ignore:(divide by zero|invalid value) encountered:RuntimeWarning")

HAVE_KERAS = all(importlib.util.find_spec(m) is not None for m in ("keras", "torch", "h5py"))
needs_keras = pytest.mark.skipif(not HAVE_KERAS, reason="needs keras, torch and h5py")
needs_h5py = pytest.mark.skipif(importlib.util.find_spec("h5py") is None, reason="needs h5py")

# Each architecture as a function of a Keras-like namespace (fastdl.keras or keras).
ARCHS = textwrap.dedent('''
    def multi_io_dict(keras):
        L = keras.layers
        a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
        h = L.Dense(8, activation="tanh", name="h")(L.Concatenate(name="cat")([a, b]))
        s = h + keras.ops.mean(h, axis=1, keepdims=True)
        return keras.Model({"a": a, "b": b},
                           [L.Dense(2, name="o1")(s), 2.0 * h[:, 1:3] - 1.0], name="dict_io")

    def multi_io_list(keras):
        L = keras.layers
        a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
        x = L.Dense(5, activation="relu", name="da")(a)
        y = L.Dense(5, activation="relu", name="db")(b)
        return keras.Model([a, b], [L.Dense(1, name="o1")(x * y),
                                    L.Dense(3, activation="softmax", name="o2")(x - y)])

    def residual_cnn(keras):
        L = keras.layers
        inp = keras.Input((8, 8, 3))
        x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
        y = L.Conv2D(4, 3, padding="same")(x)
        z = L.Activation("relu")(L.Add()([x, y]))
        z = L.Conv2D(6, 3, strides=2, activation="relu")(z)
        return keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(z)))

    def shared_layer(keras):
        L = keras.layers
        a, b = keras.Input((4,), name="left"), keras.Input((4,), name="right")
        shared = L.Dense(3, activation="tanh", name="shared")
        return keras.Model([a, b], L.Dense(1)(L.Concatenate()([shared(a), shared(b)])))

    def nested(keras):
        L = keras.layers
        inner = keras.Sequential([keras.Input((4,)), L.Dense(5, activation="relu"),
                                  L.Dense(3)], name="inner_seq")
        i = keras.Input((3,))
        inner_f = keras.Model(i, L.Dense(2, name="f_dense")(i), name="inner_fn")
        a = keras.Input((4,))
        twice = L.Add(name="join")([inner_f(inner(a)), inner_f(L.Dense(3, name="side")(a))])
        mid = keras.Model(a, L.Add(name="again")([L.Dense(2, name="after")(twice),
                                                  inner_f(inner(a))]), name="mid")
        return keras.Sequential([keras.Input((4,)), mid, L.Dense(2, name="head")],
                                name="outer")

    def nested_functional(keras):
        """The last call of a nested functional model is an output: Keras counts from 1."""
        L = keras.layers
        i = keras.Input((3,))
        inner_f = keras.Model(i, L.Dense(2, name="f_dense")(i), name="inner_fn")
        a = keras.Input((3,))
        mid = keras.Model(a, inner_f(a), name="mid")
        b = keras.Input((3,))
        return keras.Model(b, mid(b), name="outer_fn")

    CUSTOM = {}

    def register(keras):
        """The same custom layer, registered as "Graphs>Scale", on each side."""
        @keras.saving.register_keras_serializable(package="Graphs")
        class Scale(keras.layers.Layer):
            def __init__(self, factor=2.0, **kwargs):
                super().__init__(**kwargs)
                self.factor = factor

            def build(self, input_shape):
                self.w = self.add_weight(name="w", shape=(input_shape[-1],),
                                         initializer="ones")

            def call(self, x):
                return x * self.w * self.factor

            def get_config(self):
                return {**super().get_config(), "factor": self.factor}
        CUSTOM["Scale"] = Scale

        @keras.saving.register_keras_serializable(package="Graphs")
        class Tower(keras.Model):
            """Layers in an attribute, a list, a dict, a nested Sequential, a private
            attribute, and one layer reached twice."""
            def __init__(self, units=2, **kwargs):
                super().__init__(**kwargs)
                self.units = units
                self.blocks = [keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(5)]
                self.heads = {"out": keras.layers.Dense(units)}
                self.shared = self.blocks[0]
                self.seq = keras.Sequential([keras.layers.Dense(5, activation="relu")])
                self._private = keras.layers.Dense(5)

            def call(self, x):
                for block in self.blocks:
                    x = block(x)
                return self.heads["out"](self._private(self.seq(x)))

            def get_config(self):
                return {**super().get_config(), "units": self.units}
        CUSTOM["Tower"] = Tower

    def custom_layer(keras):
        L = keras.layers
        a = keras.Input((3,))
        return keras.Model(a, CUSTOM["Scale"](0.5)(L.Dense(4)(a)) + a[:, :1])

    def ops_zoo(keras):
        """Every op fastdl maps to a Keras op class, as keras.ops calls and operators."""
        ops = keras.ops
        a = keras.Input((2, 3), name="a")
        b = keras.layers.Dense(3, name="d")(a)
        t = ops.transpose(b, (0, 2, 1))
        outs = [ops.reshape(b, (-1, 6)), ops.squeeze(ops.expand_dims(b, 1), axis=1),
                ops.softmax(b, axis=1), ops.concatenate([b, a * 2.0], axis=-1),
                ops.stack([a, b], axis=1), ops.max(b, axis=2), ops.min(b, axis=-1, keepdims=True),
                ops.sum(b, axis=1), ops.mean(b, axis=-1), 1.0 - b, 2.0 / (ops.abs(b) + 1.0), -b,
                b ** 2.0, b[:, ..., 1:], b[:, None, 0, ::2], ops.relu(b) + ops.sigmoid(b),
                ops.exp(-ops.square(b)) * ops.tanh(b), ops.sqrt(ops.square(b) + 1.0),
                ops.maximum(b, 0.5) - ops.minimum(b, a * 3.0), ops.matmul(b, t) @ b,
                ops.add(a, b) / ops.subtract(a, 3.0) * ops.multiply(b, 0.5),
                (ops.abs(ops.divide(b, 2.0)) + 1.0) ** ops.power(2.0, ops.negative(b))]
        return keras.Model(a, outs, name="ops_zoo")

    def subclassed(keras):
        import numpy as np
        model = CUSTOM["Tower"](units=3, name="tower")
        model(np.zeros((1, 6), "float32"))
        return model
''')
GRAPHS = ["multi_io_dict", "multi_io_list", "residual_cnn", "shared_layer", "nested",
          "nested_functional", "custom_layer", "ops_zoo"]
NAMES = GRAPHS + ["subclassed"]
_ns = {}
exec(ARCHS, _ns)          # the builders above, for fastdl.keras here
_ns["register"](fkeras)


def make_inputs(model, rng):
    """Inputs for the model in its inputs' structure (dict, list or one array)."""
    if isinstance(model, Sequential):
        return rng.standard_normal((5,) + tuple(model.input_shape[1:])).astype(np.float32)
    if not isinstance(model, Functional):   # subclassed: the shape it was called on
        return rng.standard_normal((5,) + tuple(model._build_input_shape[1:])).astype(np.float32)
    arrays = {t.name: rng.standard_normal((5,) + tuple(t.shape[1:])).astype(np.float32)
              for t in model.inputs}
    struct = model._inputs_struct
    if isinstance(struct, dict):
        return arrays
    if isinstance(struct, (list, tuple)):
        return [arrays[t.name] for t in struct]
    return arrays[struct.name]


def build(name, seed=0):
    set_random_seed(seed)
    model = _ns[name](fkeras)
    rng = np.random.default_rng(seed + 1)
    model.set_weights([rng.standard_normal(w.shape).astype(w.dtype) * 0.5
                       for w in model.get_weights()])
    return model


def as_list(pred):
    return [np.asarray(p) for p in pred] if isinstance(pred, (list, tuple)) else \
        [np.asarray(pred)]


def assert_same(a, b, atol=0.0):
    a, b = as_list(a), as_list(b)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, atol=atol, rtol=0)


# ------------------------------------------------------------------------- native round trips

@pytest.mark.parametrize("name", NAMES)
def test_native_round_trip_predicts_identically(tmp_path, name):
    model = build(name)
    x = make_inputs(model, np.random.default_rng(2))
    before = model.predict(x, verbose=0)
    save_model(model, tmp_path / "m.fdl")
    loaded = load_model(tmp_path / "m.fdl")
    assert type(loaded) is type(model)
    if name != "subclassed":    # a subclass names its layers anew in __init__, as in Keras
        assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert_same(loaded.predict(x, verbose=0), before)
    assert loaded.get_config() == json.loads(json.dumps(model.get_config()))


def test_native_round_trip_restores_compile_state_and_training_continues(tmp_path):
    model = build("shared_layer")
    rng = np.random.default_rng(3)
    x = make_inputs(model, rng)
    y = rng.standard_normal((5, 1)).astype(np.float32)
    model.compile(optimizer=fastdl.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    model.train_on_batch(x, y)
    save_model(model, tmp_path / "m.fdl")
    loaded = load_model(tmp_path / "m.fdl")
    assert loaded.compiled and type(loaded.optimizer) is fastdl.optimizers.Adam
    for a, b in zip(loaded.optimizer.get_state(), model.optimizer.get_state()):
        np.testing.assert_array_equal(a, b)
    assert model.train_on_batch(x, y) == loaded.train_on_batch(x, y)
    assert_same(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("name,suffix", [("residual_cnn", ".fdl"),
                                         ("residual_cnn", ".weights.h5"),
                                         ("subclassed", ".fdl"), ("subclassed", ".weights.h5")])
def test_load_weights_into_a_functional_or_subclassed_model(tmp_path, name, suffix):
    if suffix.endswith(".h5"):
        pytest.importorskip("h5py", reason="Keras's weights file needs h5py")
    model = build(name)
    model.save_weights(tmp_path / f"w{suffix}")
    other = build(name, seed=7)
    x = make_inputs(model, np.random.default_rng(0))
    assert not np.allclose(other.predict(x, verbose=0), model.predict(x, verbose=0))
    other.load_weights(tmp_path / f"w{suffix}")
    assert_same(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_operation_order_sets_the_weight_paths(tmp_path):
    """Keras names a functional model's weights by its operations' order: depth from the
    outputs first, then first visit (keras/src/ops/function.py map_graph)."""
    from fastdl.saving import common
    a = fastdl.Input((3,), name="a")
    deep = L.Dense(2, name="deep")(L.Dense(3, name="first")(a))
    shallow = L.Dense(2, name="shallow")(a)
    model = Model(a, L.Add(name="sum")([shallow, deep]))
    # "first" is deepest; "shallow" is visited before "deep" from the output but both have
    # depth 1, Keras breaks the tie by first visit.
    assert [l.name for l in common.saving_layers(model)] == ["a", "first", "shallow", "deep",
                                                             "sum"]
    assert [p for p, _ in common.layer_paths(model)] == [
        "layers/input_layer", "layers/dense", "layers/dense_1", "layers/dense_2", "layers/add"]


def test_op_without_a_keras_mapping_is_refused_on_save_naming_it(tmp_path):
    a = fastdl.Input((4,))
    model = Model(a, ops.cumsum(a, axis=1))
    with pytest.raises(ValueError, match="cannot save the op node 'cumsum'"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


# ------------------------------------------------------------------------- hostile configs

def _functional_header(tmp_path):
    from fastdl.saving import native
    model = build("shared_layer")
    save_model(model, tmp_path / "ok.fdl")
    header, tensors = native.read_file(tmp_path / "ok.fdl")
    return json.loads(json.dumps(header)), [(n, np.array(a)) for n, a in tensors]


def _load_changed(tmp_path, change):
    from fastdl.saving import native
    header, tensors = _functional_header(tmp_path)
    change(header["model_config"]["config"])
    native.write_file(tmp_path / "bad.fdl", header, tensors)
    with pytest.raises(ModelFileError) as info:
        load_model(tmp_path / "bad.fdl")
    return str(info.value)


def _layer(config, name):
    return next(e for e in config["layers"] if e["name"] == name)


def _history_of(config, name):
    return _layer(config, name)["inbound_nodes"][0]["args"][0]["config"]["keras_history"]


def test_config_reading_a_missing_layer_is_refused_naming_it(tmp_path):
    def change(config):
        _history_of(config, "shared")[0] = "ghost"
    msg = _load_changed(tmp_path, change)
    assert "'ghost'" in msg and "not a layer of the model" in msg


def test_config_with_a_cycle_is_refused(tmp_path):
    def change(config):     # shared's first call reads the Concatenate that reads shared
        cat = next(e for e in config["layers"] if e["class_name"] == "Concatenate")
        _history_of(config, "shared")[:] = [cat["name"], 0, 0]
    msg = _load_changed(tmp_path, change)
    assert "cannot be rebuilt" in msg and "'shared'" in msg and "cycle" in msg


def test_config_with_an_unknown_class_or_op_is_refused_naming_it(tmp_path):
    def unknown_layer(config):
        _layer(config, "shared")["class_name"] = "EvilDense"
    msg = _load_changed(tmp_path, unknown_layer)
    assert "unknown layer class 'EvilDense'" in msg

    def unknown_op(config):
        config["layers"].append({"module": "keras.src.ops.numpy", "class_name": "Eval",
                                 "config": {"name": "e"}, "registered_name": "Eval",
                                 "name": "e", "inbound_nodes": [{"args": [], "kwargs": {}}]})
    assert "unknown op class 'Eval'" in _load_changed(tmp_path, unknown_op)

    def imported_module(config):
        _layer(config, "shared")["module"] = "os"
        _layer(config, "shared")["class_name"] = "system"
    assert "module 'os'" in _load_changed(tmp_path, imported_module)


def test_config_with_a_lambda_layer_or_lambda_argument_is_refused(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(os, "system", lambda *a: ran.append(a))

    def lambda_layer(config):
        entry = _layer(config, "shared")
        entry["class_name"] = "Lambda"
        entry["config"] = {"name": "shared", "function": {"class_name": "__lambda__",
                                                          "config": {"value": "b64code"}}}
    assert "refusing layer class 'Lambda'" in _load_changed(tmp_path, lambda_layer)

    def lambda_argument(config):
        _layer(config, "shared")["inbound_nodes"][0]["kwargs"] = {
            "fn": {"class_name": "__lambda__", "config": {"value": "b64code"}}}
    assert "refusing the serialized object '__lambda__'" in _load_changed(tmp_path,
                                                                         lambda_argument)
    assert ran == []


def test_config_listing_layers_outputs_first_loads(tmp_path):
    """Nodes run once their inputs exist, whatever order the config lists the layers in."""
    from fastdl.saving import native
    model = build("nested")
    save_model(model, tmp_path / "ok.fdl")
    header, tensors = native.read_file(tmp_path / "ok.fdl")
    header = json.loads(json.dumps(header))
    mid = header["model_config"]["config"]["layers"][1]
    mid["config"]["layers"].reverse()
    native.write_file(tmp_path / "reversed.fdl", header, [(n, np.array(a)) for n, a in tensors])
    x = make_inputs(model, np.random.default_rng(0))
    assert_same(load_model(tmp_path / "reversed.fdl").predict(x, verbose=0),
                model.predict(x, verbose=0))


def test_config_with_bad_references_is_refused(tmp_path):
    def bad_output(config):
        config["output_layers"] = [["shared", 7, 0]]
    assert "never computed" in _load_changed(tmp_path, bad_output)

    def duplicate(config):
        config["layers"].append(dict(config["layers"][-1]))
    assert "is used twice" in _load_changed(tmp_path, duplicate)

    def bad_history(config):
        _history_of(config, "shared")[1] = -1
    assert "invalid keras_history" in _load_changed(tmp_path, bad_history)


# ------------------------------------------------------------------------- Keras, both ways

WORKER = ARCHS + textwrap.dedent('''
    import json, os, sys
    import numpy as np
    import keras

    def predict(model, x):
        out = model.predict(x, verbose=0)
        return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else \\
            [np.asarray(out)]

    def load_x(path):
        data = np.load(path)
        kind = str(data["__kind__"])
        if kind == "dict":
            return {k: data[k] for k in data.files if not k.startswith("__")}
        if kind == "list":
            return [data[f"__{i}"] for i in range(int(data["__n__"]))]
        return data["__x__"]

    job = json.load(open(sys.argv[1]))
    out = job["out"]
    register(keras)
    for name in job["names"]:
        x = load_x(os.path.join(out, name + ".x.npz"))
        model = keras.models.load_model(os.path.join(out, "fastdl_" + name + ".keras"))
        np.savez(os.path.join(out, "fastdl_" + name + ".keras_pred.npz"), *predict(model, x))
        with open(os.path.join(out, "fastdl_" + name + ".json")) as f:
            from_json = keras.models.model_from_json(f.read())
        from_json.set_weights(model.get_weights())
        np.savez(os.path.join(out, "fastdl_" + name + ".json_pred.npz"),
                 *predict(from_json, x))
        keras.utils.set_random_seed(3)
        mine = globals()[name](keras)
        rng = np.random.default_rng(4)
        mine.set_weights([rng.standard_normal(w.shape).astype(w.dtype) * 0.5
                          for w in mine.get_weights()])
        if name in ("shared_layer", "subclassed"):
            mine.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
            y = rng.standard_normal(predict(mine, x)[0].shape).astype("float32")
            mine.train_on_batch(x, y)
            np.savez(os.path.join(out, "keras_" + name + ".opt.npz"),
                     *[np.asarray(v) for v in mine.optimizer.variables])
        mine.save(os.path.join(out, "keras_" + name + ".keras"))
        np.savez(os.path.join(out, "keras_" + name + ".pred.npz"), *predict(mine, x))
    print("worker done")
''')


def save_x(path, x):
    if isinstance(x, dict):
        np.savez(path, __kind__="dict", **x)
    elif isinstance(x, list):
        np.savez(path, __kind__="list", __n__=len(x), **{f"__{i}": v for i, v in enumerate(x)})
    else:
        np.savez(path, __kind__="one", __x__=x)


def load_preds(path):
    data = np.load(path)
    return [data[f"arr_{i}"] for i in range(len(data.files))]


@pytest.fixture(scope="module")
def keras_side(tmp_path_factory):
    """fastdl's .keras files and inputs written; the Keras worker run once on them."""
    out = tmp_path_factory.mktemp("graphs")
    mine = {}
    for name in NAMES:
        model = build(name)
        x = make_inputs(model, np.random.default_rng(9))
        save_x(out / f"{name}.x.npz", x)
        save_model(model, out / f"fastdl_{name}.keras")
        (out / f"fastdl_{name}.json").write_text(model.to_json())
        mine[name] = (x, model.predict(x, verbose=0))
    job = out / "job.json"
    job.write_text(json.dumps({"out": str(out), "names": NAMES}))
    script = out / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(script), str(job)], env=env, cwd=str(out),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "worker done" in proc.stdout, proc.stderr[-4000:]
    return out, mine


@needs_keras
@pytest.mark.parametrize("name", NAMES)
def test_keras_loads_fastdl_file_and_predicts_the_same(keras_side, name):
    out, mine = keras_side
    _, pred = mine[name]
    assert_same(load_preds(out / f"fastdl_{name}.keras_pred.npz"), pred, atol=2e-5)


@needs_keras
@pytest.mark.parametrize("name", NAMES)
def test_keras_model_from_json_reads_fastdl_to_json(keras_side, name):
    out, mine = keras_side
    _, pred = mine[name]
    assert_same(load_preds(out / f"fastdl_{name}.json_pred.npz"), pred, atol=2e-5)


@needs_keras
@pytest.mark.parametrize("name", NAMES)
def test_fastdl_loads_keras_file_and_predicts_the_same(keras_side, name):
    out, mine = keras_side
    x, _ = mine[name]
    model = load_model(out / f"keras_{name}.keras")
    assert isinstance(model, (Functional, Sequential)) or type(model) is _ns["CUSTOM"]["Tower"]
    assert_same(model.predict(x, verbose=0), load_preds(out / f"keras_{name}.pred.npz"),
                atol=2e-5)
    # and fastdl writes it back in the layout it read: the same file content loads again
    save_model(model, out / f"again_{name}.keras")
    assert_same(load_model(out / f"again_{name}.keras").predict(x, verbose=0),
                model.predict(x, verbose=0))


@needs_keras
@pytest.mark.parametrize("name", ["shared_layer", "subclassed"])
def test_keras_optimizer_state_of_a_functional_or_subclassed_model_loads(keras_side, name):
    out, _ = keras_side
    model = load_model(out / f"keras_{name}.keras")
    theirs = load_preds(out / f"keras_{name}.opt.npz")
    state = model.optimizer.get_state()
    assert len(state) == len(theirs) > 2 and int(state[0]) == 1
    for a, b in zip(state[2:], theirs[2:]):
        np.testing.assert_array_equal(a, b)


@needs_h5py
def test_keras_file_layout_of_nested_models(tmp_path):
    """Keras's config.json and weights layout for nested models (keras/src/models/functional.py
    get_config; saving_lib's ``layers/<snake class>[_k]`` per model level)."""
    import h5py
    model = build("nested")
    save_model(model, tmp_path / "n.keras")
    with zipfile.ZipFile(tmp_path / "n.keras") as zf:
        config = json.loads(zf.read("config.json"))
        zf.extract("model.weights.h5", tmp_path)
    mid = config["config"]["layers"][1]
    assert mid["class_name"] == "Functional" and mid["module"] == "keras.src.models.functional"
    layers = {e["name"]: e for e in mid["config"]["layers"]}
    assert len(layers["inner_fn"]["inbound_nodes"]) == 3
    # a node's arguments count a nested functional model's calls from 0 ...
    join = layers["join"]["inbound_nodes"][0]["args"][0]
    assert [t["config"]["keras_history"] for t in join] == [["inner_fn", 0, 0],
                                                            ["inner_fn", 1, 0]]
    # ... output_layers from 1 (Keras's Functional.get_config)
    config = build("nested_functional").get_config()
    assert config["output_layers"] == ["mid", 1, 0]
    assert config["layers"][1]["config"]["output_layers"] == ["inner_fn", 1, 0]
    with h5py.File(tmp_path / "model.weights.h5") as h5:
        paths = []
        h5.visititems(lambda p, o: paths.append(p) if isinstance(o, h5py.Dataset) else None)
    assert {p.rsplit("/vars/", 1)[0] for p in paths} == {
        "layers/dense", "layers/functional/layers/functional/layers/dense",
        "layers/functional/layers/sequential/layers/dense",
        "layers/functional/layers/sequential/layers/dense_1",
        "layers/functional/layers/dense", "layers/functional/layers/dense_1"}


# ------------------------------------------------------------------------- config utilities

@pytest.mark.parametrize("name", GRAPHS)
def test_clone_model_has_the_architecture_and_new_weights(name):
    model = build(name)
    clone = fastdl.models.clone_model(model)
    assert type(clone) is type(model) and clone is not model
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    assert not any(a is b for a, b in zip(clone.weights, model.weights))
    assert not all(np.array_equal(a, b) for a, b in zip(clone.get_weights(),
                                                        model.get_weights()))
    clone.set_weights(model.get_weights())
    x = make_inputs(model, np.random.default_rng(1))
    assert_same(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_clone_model_keeps_shared_layers_shared_and_takes_a_clone_function():
    model = build("shared_layer")
    seen = []

    def clone_function(layer):
        seen.append(layer.name)
        return type(layer).from_config(layer.get_config())
    clone = fastdl.models.clone_model(model, clone_function=clone_function)
    assert seen.count("shared") == 1
    shared = clone.get_layer("shared")
    assert len([n for n in shared._inbound_nodes if n in clone._nodes]) == 2
    new_inputs = [fastdl.Input((4,), name="l2"), fastdl.Input((4,), name="r2")]
    clone = fastdl.models.clone_model(model, input_tensors=new_inputs)
    assert [t.name for t in clone.inputs] == ["l2", "r2"]
    with pytest.raises(ValueError, match="has 2 inputs; input_tensors has 1"):
        fastdl.models.clone_model(model, input_tensors=[new_inputs[0]])
    with pytest.raises(TypeError, match="clone_function must return a fastdl layer"):
        fastdl.models.clone_model(model, clone_function=lambda layer: None)
    with pytest.raises(ValueError, match="'tower' is a subclassed model"):
        fastdl.models.clone_model(build("subclassed"))


@pytest.mark.parametrize("name", NAMES)
def test_to_json_and_model_from_json(name):
    model = build(name)
    text = model.to_json()
    description = json.loads(text)
    assert set(description) >= {"module", "class_name", "config", "registered_name"}
    again = fastdl.models.model_from_json(text)
    assert type(again) is type(model)
    again.set_weights(model.get_weights())
    x = make_inputs(model, np.random.default_rng(1))
    assert_same(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert json.loads(again.to_json()) == description


def test_model_from_json_refuses_bad_input_naming_it():
    with pytest.raises(ModelFileError, match="not valid JSON"):
        fastdl.models.model_from_json("{not json")
    with pytest.raises(TypeError, match="expects a JSON string"):
        fastdl.models.model_from_json({"class_name": "Sequential"})
    bad = json.loads(build("nested").to_json())
    bad["config"]["layers"][1]["config"]["layers"][1]["class_name"] = "Lambda"
    with pytest.raises(ModelFileError, match="refusing layer class 'Lambda'"):
        fastdl.models.model_from_json(json.dumps(bad))


def test_models_from_config():
    model = build("multi_io_list")
    again = Model.from_config(model.get_config())
    assert type(again) is Functional and again.name == model.name
    seq = Sequential([fastdl.Input((3,)), L.Dense(2, name="d")], name="s")
    again = Sequential.from_config(seq.get_config())
    assert type(again) is Sequential and again.built and again.layers[0].name == "d"


def _layer_classes():
    from fastdl.layers.base import Layer
    return sorted(n for n in dir(L) if isinstance(getattr(L, n), type)
                  and issubclass(getattr(L, n), Layer))


_REQUIRED = {"activation": "relu", "pool_size": 2, "filters": 2, "kernel_size": 3, "units": 3,
             "axes": 1, "rate": 0.5, "input_dim": 5, "output_dim": 4, "n": 2,
             "target_shape": (2, 2), "function": abs, "stddev": 0.1, "dims": (2, 1),
             "num_tokens": 4, "height": 4, "width": 4, "scale": 0.5, "factor": 0.2,
             "height_factor": 0.2, "width_factor": 0.1, "num_heads": 2, "key_dim": 4}
# Layers whose required arguments are layers or need a choice among several
_BUILT = {
    "Bidirectional": lambda: L.Bidirectional(L.LSTM(2, return_sequences=True), merge_mode="sum"),
    "InputLayer": lambda: L.InputLayer(shape=(3, 2), name="inp"),
    "TimeDistributed": lambda: L.TimeDistributed(L.Dense(3)),
    "RNN": lambda: L.RNN(L.LSTMCell(3), return_sequences=True),
    "StackedRNNCells": lambda: L.StackedRNNCells([L.GRUCell(2), L.SimpleRNNCell(3)]),
    "Pipeline": lambda: L.Pipeline([L.Rescaling(0.5), L.RandomFlip("horizontal")]),
    "Discretization": lambda: L.Discretization(bin_boundaries=[0.0, 1.5]),
    "CategoryEncoding": lambda: L.CategoryEncoding(num_tokens=4, output_mode="count"),
    "Hashing": lambda: L.Hashing(num_bins=5, salt=(3, -4), mask_value="", output_mode="count"),
    "HashedCrossing": lambda: L.HashedCrossing(num_bins=7, output_mode="one_hot"),
}


@pytest.mark.parametrize("name", _layer_classes())
def test_every_layer_class_round_trips_its_config(name):
    import inspect
    cls = getattr(L, name)
    if name in _BUILT:
        layer = _BUILT[name]()
    else:
        params = inspect.signature(cls.__init__).parameters.values()
        layer = cls(**{p.name: _REQUIRED[p.name] for p in params if p.default is p.empty
                       and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                       and p.name != "self"})
    if name == "Lambda":    # its function is code: no config, and none is ever read
        with pytest.raises(NotImplementedError, match="cannot be serialized"):
            layer.get_config()
        return
    config = json.loads(json.dumps(layer.get_config()))
    again = cls.from_config(config)
    assert type(again) is cls
    assert json.loads(json.dumps(again.get_config())) == config
