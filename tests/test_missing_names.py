"""Keras/TensorFlow names fastdl lacks say so; layers refuse non-arrays and losses refuse
functions with a message that names what is unsupported (and what to use instead)."""
import copy
import importlib
import importlib.util
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastdl
from fastdl import _missing, layers as L, losses, metrics
from fastdl.saving import load_model, save_model

NAMESPACES = sorted(_missing.NAMESPACES.items())
# fastdl modules outside Keras's namespaces: unknown names still get a considered message
OTHER_MODULES = ["fastdl.explain", "fastdl.plot"]


def _qualified(namespace, name):
    full = f"{namespace}.{name}"
    return f"TensorFlow's {full}" if namespace == "tf" else full


@pytest.mark.parametrize("module,namespace", [(m, ns) for m, ns in NAMESPACES
                                              if ns in _missing.MISSING])
def test_every_missing_name_says_fastdl_does_not_provide_it(module, namespace):
    mod = importlib.import_module(module)
    for name in sorted(_missing.MISSING[namespace]):
        with pytest.raises(AttributeError) as info:
            getattr(mod, name)
        message = str(info.value)
        assert message.startswith(f"module {module!r} has no attribute {name!r}: ")
        assert f"fastdl does not provide {_qualified(namespace, name)} yet" in message
        alternative = _missing.ALTERNATIVES.get(f"{namespace}.{name}")
        if alternative:
            assert message.endswith(alternative)


@pytest.mark.parametrize("module,namespace", NAMESPACES)
def test_missing_table_and_real_attributes_are_disjoint(module, namespace):
    # A name another change provides must leave the table (the merge check).
    mod = importlib.import_module(module)
    provided = sorted(n for n in _missing.MISSING.get(namespace, ()) if hasattr(mod, n))
    assert provided == []


def test_every_alternative_belongs_to_a_missing_name():
    for full in _missing.ALTERNATIVES:
        namespace, _, name = full.rpartition(".")
        assert name in _missing.MISSING[namespace], full


@pytest.mark.parametrize("module,namespace", NAMESPACES)
def test_an_unlisted_name_gets_the_generic_message(module, namespace):
    mod = importlib.import_module(module)
    with pytest.raises(AttributeError,
                       match=rf"fastdl does not provide {_qualified(namespace, 'NotAName')} "
                             r"\(yet\)$"):
        mod.NotAName


@pytest.mark.parametrize("module", OTHER_MODULES)
def test_other_fastdl_modules_route_unknown_names_too(module):
    mod = importlib.import_module(module)
    with pytest.raises(AttributeError, match=rf"^module {module!r} has no attribute 'NotAName'$"):
        mod.NotAName
    assert not hasattr(mod, "NotAName")


def test_tutorial_names_through_import_fastdl_as_tf():
    tf = fastdl
    cases = [
        (lambda: tf.keras.layers.Conv3D, r"keras.layers.Conv3D yet"),
        (lambda: tf.signal, r"TensorFlow's tf.signal yet"),
        (lambda: tf.keras.layers.RMSNormalization, r"keras.layers.RMSNormalization yet; "
                                                   r"BatchNormalization, LayerNormalization"),
        (lambda: tf.keras.layers.GroupQueryAttention, r"keras.layers.GroupQueryAttention yet"),
        (lambda: tf.keras.optimizers.Adafactor, r"keras.optimizers.Adafactor yet; "
                                                r"SGD, Adam, AdamW"),
    ]
    for get, regex in cases:
        with pytest.raises(AttributeError, match="fastdl does not provide " + regex):
            get()


def test_a_typo_suggests_the_close_names():
    with pytest.raises(AttributeError, match=r"keras.layers.Dens \(yet\); did you mean 'Dense'\?"):
        fastdl.keras.layers.Dens
    with pytest.raises(AttributeError, match=r"no attribute 'salency': did you mean 'saliency'\?$"):
        fastdl.explain.salency


def test_a_submodule_not_yet_imported_says_to_import_it(monkeypatch):
    import fastdl.saving.native  # noqa: F401  (then unbound, as before its first import)
    monkeypatch.delattr(fastdl.saving, "native")
    with pytest.raises(AttributeError, match=r"^module 'fastdl.saving' has no attribute 'native': "
                                             r"fastdl.saving.native is a submodule: import "
                                             r"fastdl.saving.native$"):
        fastdl.saving.native
    assert not hasattr(fastdl.layers, "a.b")  # not an identifier: no import is attempted


def test_hasattr_and_getattr_default_keep_working():
    assert not hasattr(fastdl.keras.layers, "Conv3D")
    assert not hasattr(fastdl, "GradientTape_")
    assert getattr(fastdl.keras.layers, "Conv3D", "absent") == "absent"
    assert hasattr(fastdl.keras.layers, "Dense") and hasattr(fastdl.keras, "Sequential")


@pytest.mark.parametrize("module", [m for m, _ in NAMESPACES] + OTHER_MODULES)
def test_private_names_keep_the_plain_attribute_error(module):
    mod = importlib.import_module(module)
    for name in ("_private", "__wrapped__", "__reduce_ex_probe__"):
        with pytest.raises(AttributeError) as info:
            getattr(mod, name)
        assert str(info.value) == f"module {module!r} has no attribute {name!r}"


def test_copy_and_pickle_of_fastdl_objects_are_unaffected():
    loss = losses.MeanSquaredError()
    assert type(copy.deepcopy(loss)) is losses.MeanSquaredError
    assert type(pickle.loads(pickle.dumps(loss))) is losses.MeanSquaredError
    assert pickle.loads(pickle.dumps(losses.mean_squared_error)) is losses.mean_squared_error


def test_from_import_of_a_missing_name_carries_the_message():
    with pytest.raises(ImportError, match=r"cannot import name 'Conv3D' from 'fastdl.layers': "
                                          r"fastdl does not provide keras.layers.Conv3D yet"):
        exec("from fastdl.keras.layers import Dense, Conv3D", {})
    with pytest.raises(ImportError, match=r"keras.layers.RMSNormalization yet; "
                                          r"BatchNormalization"):
        exec("from fastdl.keras.layers import RMSNormalization", {})
    with pytest.raises(ImportError, match=r"TensorFlow's tf.signal yet"):
        exec("from fastdl import signal", {})
    scope = {}
    exec("from fastdl.keras.layers import Dense, Conv2D\n"
         "from fastdl.keras.preprocessing.sequence import pad_sequences\n"
         "from fastdl.keras import Layer, saving", scope)
    assert scope["Dense"] is L.Dense and scope["Layer"] is L.Layer
    assert scope["saving"] is fastdl.saving


def test_keras_namespace_aliases_are_fastdl_classes():
    k = fastdl.keras
    assert (k.Layer, k.InputSpec, k.Loss, k.Metric, k.Optimizer, k.Initializer) == (
        L.Layer, L.InputSpec, losses.Loss, metrics.Metric, fastdl.optimizers.Optimizer,
        fastdl.initializers.Initializer)
    assert k.preprocessing.sequence.pad_sequences is fastdl.utils.pad_sequences
    assert {"Layer", "saving"} <= set(dir(k))
    assert {"to_categorical", "pad_sequences", "Progbar"} <= set(dir(fastdl.utils))


# Real Keras 3 lists its public names in a child process, so that torch (its backend here) and
# its OpenMP runtime stay out of the test process.
_KERAS_PUBLIC_NAMES = """
import importlib, json, os, sys
os.environ["KERAS_BACKEND"] = "torch"
print(json.dumps({ns: [n for n in dir(importlib.import_module(ns)) if not n.startswith("_")]
                  for ns in sys.argv[1:]}))
"""


def test_table_names_are_public_keras_names_and_every_keras_name_answers():
    for package in ("keras", "torch"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed: real Keras 3 is the oracle for the table")
    keras_namespaces = [ns for _, ns in NAMESPACES if not ns.startswith("tf")]
    run = subprocess.run([sys.executable, "-c", _KERAS_PUBLIC_NAMES, *keras_namespaces],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    public = json.loads(run.stdout.splitlines()[-1])
    for module, namespace in NAMESPACES:
        if namespace.startswith("tf"):
            continue
        assert _missing.MISSING.get(namespace, frozenset()) <= set(public[namespace]), namespace
        ours = importlib.import_module(module)
        for name in sorted(set(public[namespace]) - {"src"}):
            try:
                getattr(ours, name)
            except AttributeError as e:
                assert f"fastdl does not provide {namespace}.{name}" in str(e)
    assert "Conv1D" in public["keras.layers"]  # the oracle is real Keras


# ------------------------------------------------------------------- layers on non-arrays

@pytest.mark.parametrize("make,shape", [(lambda: L.Dense(2), (None, 4, 4, 2)),
                                        (lambda: L.Conv2D(2, 3), (None, 2, 2, 2)),
                                        (lambda: L.LSTM(2), None),
                                        (lambda: L.Embedding(10, 2), None)])
def test_a_layer_called_on_a_symbolic_input_gives_a_symbolic_output(make, shape):
    # the functional API: a KerasTensor out, or an error naming the layer and the shape
    layer = make()
    x = fastdl.keras.Input(shape=(4, 4, 3))
    if shape is None:
        with pytest.raises(ValueError, match=rf"Layer '{layer.name}' \({type(layer).__name__}\) "
                                             r"cannot be called on a symbolic input of shape "
                                             r"\(None, 4, 4, 3\)"):
            layer(x)
    else:
        assert layer(x).shape == shape


@pytest.mark.parametrize("x,exc,regex", [
    (None, TypeError, r"was called on None; pass a NumPy array"),
    ("text", TypeError, r"was called on a str; layers take numeric arrays"),
    ({"a": np.ones((2, 3))}, TypeError, r"was called on a dict; a layer takes one array \(named "
                                        r"inputs belong to a functional model"),
    ([np.ones((2, 3)), np.ones((2, 4))], ValueError, r"was called on a list whose elements have "
                                                     r"different shapes; .*Concatenate"),
    (L.Dense(3), TypeError, r"was called on a Dense layer; call layers on keras.Input tensors"),
])
def test_a_layer_called_on_a_non_array_says_what_is_unsupported(x, exc, regex):
    with pytest.raises(exc, match=r"Dense layer 'dense\w*' " + regex):
        L.Dense(2)(x)


def test_models_and_layers_still_take_arrays_and_nested_lists():
    assert L.Dense(2)([[1.0, 2.0, 3.0]]).shape == (1, 2)
    assert L.Dense(2)((np.ones(3), np.zeros(3))).shape == (2, 2)
    model = fastdl.Sequential([fastdl.keras.Input(shape=(3,)), L.Dense(2)])
    assert model.predict([[1, 2, 3]], verbose=0).shape == (1, 2)
    with pytest.raises(TypeError, match="is symbolic .*it has no value"):
        model.predict(fastdl.keras.Input(shape=(3,)), verbose=0)


# ------------------------------------------------------------------- functions as loss/metric

def _model():
    fastdl.utils.set_random_seed(0)
    return fastdl.Sequential([L.Dense(1, input_shape=(3,))])


X = np.random.default_rng(0).random((8, 3)).astype(np.float32)
Y = np.random.default_rng(1).random((8, 1)).astype(np.float32)


def _my_loss(y_true, y_pred):
    return np.mean((y_true - y_pred) ** 2, axis=-1)


def _my_mae(y_true, y_pred):
    return np.mean(np.abs(y_true - y_pred), axis=-1)


def test_a_function_as_loss_trains_as_the_builtin_loss():
    # NumPy functions on Tensors run fastdl's differentiable ops: the tape differentiates it
    custom, builtin = _model(), _model()
    custom.compile(optimizer="sgd", loss=_my_loss)
    builtin.compile(optimizer="sgd", loss="mse")
    assert custom.loss.name == "_my_loss"
    custom.fit(X, Y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    builtin.fit(X, Y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(custom.get_weights(), builtin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fn,cls", [(losses.mean_squared_error, losses.MeanSquaredError),
                                    (losses.mse, losses.MeanSquaredError),
                                    (fastdl.keras.losses.binary_crossentropy,
                                     losses.BinaryCrossentropy),
                                    (losses.huber, losses.Huber)])
def test_fastdl_loss_functions_still_work_as_loss(fn, cls):
    model = _model()
    model.compile(loss=fn)
    assert type(model.loss) is cls and model.loss.get_config() == cls().get_config()
    assert type(losses.get(fn)) is cls


def test_a_function_as_metric_is_its_mean_over_the_samples():
    model = _model()
    model.compile(optimizer="sgd", loss="mse",
                  metrics=[_my_mae, metrics.binary_accuracy, lambda t, p: (t - p) ** 2])
    assert [m.name for m in model.compiled_metrics] == ["_my_mae", "binary_accuracy", "<lambda>"]
    logs = model.evaluate(X, Y, verbose=0, return_dict=True)
    pred = model.predict(X, verbose=0)
    np.testing.assert_allclose(logs["_my_mae"], np.mean(np.abs(Y - pred)), rtol=1e-6)
    np.testing.assert_allclose(logs["binary_accuracy"], np.mean((pred > 0.5) == Y), rtol=1e-6)
    np.testing.assert_allclose(logs["<lambda>"], logs["loss"], rtol=1e-6)
    history = model.fit(X, Y, epochs=1, batch_size=4, verbose=0)
    assert "_my_mae" in history.history


def test_a_function_metric_survives_save_and_load_through_custom_objects(tmp_path):
    model = _model()
    model.compile(loss="mse", metrics=[_my_mae])
    model.fit(X, Y, epochs=1, verbose=0)
    save_model(model, tmp_path / "m.fdl")
    loaded = load_model(tmp_path / "m.fdl", custom_objects={"_my_mae": _my_mae})
    assert [m.name for m in loaded.compiled_metrics] == ["_my_mae"]
    assert loaded.evaluate(X, Y, verbose=0, return_dict=True) == \
        model.evaluate(X, Y, verbose=0, return_dict=True)


def test_layer_and_model_attributes_fastdl_lacks_are_named():
    model = fastdl.Sequential([fastdl.Input((3,)), fastdl.layers.Dense(2)])
    with pytest.raises(AttributeError, match=r"fastdl does not provide "
                                             r"keras.Model.make_train_function yet; fit"):
        model.make_train_function
    with pytest.raises(AttributeError, match=r"keras.layers.Layer.add_metric yet"):
        model.layers[0].add_metric
    with pytest.raises(AttributeError, match=r"did you mean 'trainable_weights'"):
        model.trainable_weight
    assert not hasattr(model.layers[0], "make_train_function")   # a Layer is not a Model
    with pytest.raises(AttributeError,
                       match=r"'Dense' object has no attribute 'make_train_function'") as info:
        model.layers[0].make_train_function
    assert "keras.Model" not in str(info.value)
    # a property that fails with AttributeError keeps its own message
    class Probe(fastdl.layers.Layer):
        @property
        def broken(self):
            raise AttributeError("the probe's own message")
    with pytest.raises(AttributeError, match="the probe's own message"):
        Probe().broken


def test_attribute_tables_list_only_what_fastdl_lacks():
    from fastdl._missing import LAYER_ATTRIBUTES, MODEL_ATTRIBUTES
    model = fastdl.Sequential([fastdl.Input((3,)), fastdl.layers.Dense(2)])
    model.compile("sgd", "mse")
    provided = {n for n in LAYER_ATTRIBUTES | MODEL_ATTRIBUTES if hasattr(type(model), n)
                or n in vars(model)}
    assert not provided, f"remove from fastdl._missing's attribute tables: {sorted(provided)}"
