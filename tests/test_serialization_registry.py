"""Keras's serialization registry (register_keras_serializable, custom_object_scope,
serialize/deserialize_keras_object) and the subclassed models and custom layers it lets files
hold, in fastdl's native format."""
import json
import os

import numpy as np
import pytest

import fastdl
from fastdl import layers as L
from fastdl.models import Model, Sequential
from fastdl.saving import (CustomObjectScope, ModelFileError, custom_object_scope,
                           deserialize_keras_object, get_custom_objects, get_registered_name,
                           get_registered_object, load_model, register_keras_serializable,
                           serialize_keras_object)
from fastdl.saving import registry
from fastdl.utils import set_random_seed


@pytest.fixture(autouse=True)
def clean_registry():
    """Each test registers into an empty registry, restored afterwards."""
    saved = dict(registry._GLOBAL_CUSTOM_OBJECTS), dict(registry._GLOBAL_CUSTOM_NAMES)
    registry._GLOBAL_CUSTOM_OBJECTS.clear()
    registry._GLOBAL_CUSTOM_NAMES.clear()
    yield
    for table, old in zip((registry._GLOBAL_CUSTOM_OBJECTS, registry._GLOBAL_CUSTOM_NAMES),
                          saved):
        table.clear()
        table.update(old)


class Scale(L.Layer):
    """A custom layer with a weight and a constructor argument."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.w * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Tower(Model):
    """A subclassed model: layers in an attribute, a list and a dict, one custom layer."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.blocks = [L.Dense(4, activation="tanh"), L.Dense(5)]
        self.heads = {"out": L.Dense(units)}
        self.scale = Scale(0.5)

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return self.scale(self.heads["out"](x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_register_names_classes_as_keras_does():
    assert get_registered_name(Scale) == "Scale"                 # unregistered: its own name
    assert register_keras_serializable()(Scale) is Scale
    assert get_registered_name(Scale) == "Custom>Scale"
    assert get_registered_object("Custom>Scale") is Scale
    assert get_custom_objects() == {"Custom>Scale": Scale}
    register_keras_serializable(package="pkg", name="Tall")(Tower)
    assert get_registered_name(Tower) == "pkg>Tall" and get_registered_object("pkg>Tall") is Tower
    assert get_registered_object("Tower") is None
    assert get_registered_object("Tower", custom_objects={"Tower": Tower}) is Tower

    class NoConfig:
        pass
    with pytest.raises(ValueError, match="does not have a get_config"):
        register_keras_serializable()(NoConfig)
    with pytest.raises(TypeError, match="package must be a non-empty string"):
        register_keras_serializable(package="")
    assert fastdl.keras.utils.register_keras_serializable is register_keras_serializable
    assert fastdl.keras.saving.custom_object_scope is CustomObjectScope


def test_custom_object_scope_nests_and_restores():
    assert get_registered_object("Scale") is None
    with custom_object_scope({"Scale": Scale}):
        assert get_registered_object("Scale") is Scale
        with CustomObjectScope({"Tower": Tower}):
            assert get_registered_object("Tower") is Tower
            assert get_registered_object("Scale") is Scale
        assert get_registered_object("Tower") is None
    assert get_registered_object("Scale") is None
    with pytest.raises(TypeError, match="takes a dict"):
        custom_object_scope([Scale])


def test_serialize_and_deserialize_objects():
    dense = L.Dense(3, activation="relu", name="d")
    config = serialize_keras_object(dense)
    assert config["class_name"] == "Dense" and config["module"] == "keras.layers"
    again = deserialize_keras_object(config)
    assert type(again) is L.Dense and again.get_config() == dense.get_config()
    adam = deserialize_keras_object(serialize_keras_object(fastdl.optimizers.Adam(0.05)))
    assert type(adam) is fastdl.optimizers.Adam
    assert adam.get_config()["learning_rate"] == pytest.approx(0.05)
    register_keras_serializable("mine")(Scale)
    config = serialize_keras_object(Scale(3.0, name="s"))
    assert config["registered_name"] == "mine>Scale"
    assert deserialize_keras_object(config).factor == 3.0
    assert serialize_keras_object([1, "a", None]) == [1, "a", None]
    with pytest.raises(ValueError, match="refusing to deserialize '__lambda__'"):
        deserialize_keras_object({"class_name": "__lambda__", "config": {"value": "x"}},
                                 safe_mode=False)
    with pytest.raises(ValueError, match="refusing to deserialize 'Lambda'"):
        deserialize_keras_object({"class_name": "Lambda", "module": "keras.layers",
                                  "config": {}})


def _tower(seed=0):
    set_random_seed(seed)
    model = Tower(units=2, name="tower")
    x = np.random.default_rng(seed).standard_normal((4, 6)).astype(np.float32)
    model(x)
    return model, x


def test_subclassed_model_round_trips_when_registered(tmp_path):
    register_keras_serializable("Custom")(Tower)
    register_keras_serializable("Custom")(Scale)
    model, x = _tower()
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.zeros((4, 2), np.float32), verbose=0)
    model.save(tmp_path / "t.fdl")
    loaded = load_model(tmp_path / "t.fdl")
    assert type(loaded) is Tower and loaded.units == 2 and loaded.name == "tower"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.compiled and int(loaded.optimizer.iterations) == 1
    for a, b in zip(loaded.optimizer.get_state(), model.optimizer.get_state()):
        np.testing.assert_array_equal(a, b)
    y = np.ones((4, 2), np.float32)
    assert loaded.train_on_batch(x, y) == model.train_on_batch(x, y)


def test_subclassed_model_loads_with_custom_objects_or_a_scope(tmp_path):
    model, x = _tower()
    model.save(tmp_path / "t.fdl")
    with pytest.raises(ModelFileError, match=r"'Tower' from module .*custom_objects or "
                                             r"registered with"):
        load_model(tmp_path / "t.fdl")
    loaded = load_model(tmp_path / "t.fdl", custom_objects={"Tower": Tower, "Scale": Scale})
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with custom_object_scope({"Tower": Tower, "Scale": Scale}):
        loaded = load_model(tmp_path / "t.fdl")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_registered_name_in_a_file_needs_that_registration(tmp_path):
    register_keras_serializable("pkg")(Scale)
    model = Sequential([fastdl.Input((3,)), Scale(2.0)])
    model.save(tmp_path / "s.fdl")
    registry._GLOBAL_CUSTOM_OBJECTS.clear()
    with pytest.raises(ModelFileError, match=r"refusing custom class 'pkg>Scale'.*"
                                             r"register_keras_serializable"):
        load_model(tmp_path / "s.fdl")
    assert type(load_model(tmp_path / "s.fdl", custom_objects={"pkg>Scale": Scale}).layers[0]) \
        is Scale


def test_subclassed_model_with_unknown_input_shape_is_refused_saying_why(tmp_path):
    class Built(Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.d = L.Dense(2)
            self.d.build((None, 3))

        def call(self, x):
            return self.d(x)
    with pytest.raises(ValueError, match="input shape is unknown; call the model"):
        Built().save(tmp_path / "u.fdl")
    assert not (tmp_path / "u.fdl").exists()


def test_custom_layer_config_must_be_plain_data(tmp_path):
    class Holds(Scale):
        def get_config(self):
            return {**super().get_config(), "fn": print}
    model = Sequential([fastdl.Input((3,)), Holds()])
    with pytest.raises(ValueError, match="cannot save a value of type builtin_function"):
        model.save(tmp_path / "h.fdl")


def test_file_naming_an_unknown_subclassed_model_runs_nothing(tmp_path, monkeypatch):
    from fastdl.saving import native
    model, _ = _tower()
    model.save(tmp_path / "t.fdl")
    header, tensors = native.read_file(tmp_path / "t.fdl")
    header = json.loads(json.dumps(header))
    header["model_config"]["module"] = "os"
    header["model_config"]["class_name"] = "system"
    native.write_file(tmp_path / "bad.fdl", header, [(n, np.array(a)) for n, a in tensors])
    ran = []
    monkeypatch.setattr(os, "system", lambda *a: ran.append(a))
    with pytest.raises(ModelFileError, match=r"refusing custom class 'Tower' \(class_name "
                                             r"'system', module 'os'\)"):
        load_model(tmp_path / "bad.fdl")
    assert ran == []
