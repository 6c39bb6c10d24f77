"""keras.constraints: projections against real Keras, applied after each optimizer step, and
kept by configs and files."""
import os

import numpy as np
import pytest

import fastdl
from fastdl import constraints, layers, regularizers
from fastdl.models import Sequential


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="real Keras is the oracle")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("name, kwargs", [
    ("MaxNorm", {}), ("MaxNorm", dict(max_value=0.5, axis=1)), ("NonNeg", {}),
    ("UnitNorm", {}), ("UnitNorm", dict(axis=[0, 1])), ("MinMaxNorm", {}),
    ("MinMaxNorm", dict(min_value=1.5, max_value=2.0, rate=0.5, axis=1))])
def test_projections_match_keras(keras, rng, name, kwargs):
    w = rng.standard_normal((4, 3, 2)).astype(np.float32)
    ours, theirs = getattr(constraints, name)(**kwargs), getattr(keras.constraints, name)(**kwargs)
    np.testing.assert_allclose(ours(w), keras.ops.convert_to_numpy(theirs(w)), rtol=1e-6,
                               atol=1e-7)
    assert constraints.serialize(ours) == keras.constraints.serialize(theirs)
    assert constraints.get(keras.constraints.serialize(theirs)) == ours


def test_names_and_defaults():
    assert constraints.get("max_norm") == constraints.MaxNorm(2, 0)
    assert constraints.get("non_neg") == constraints.NonNeg()
    assert constraints.get("UnitNorm") == constraints.UnitNorm(0)
    assert constraints.get(None) is None


@pytest.mark.parametrize("make, match", [
    (lambda: constraints.MaxNorm(-1.0), "max_value"),
    (lambda: constraints.UnitNorm(axis="rows"), "axis"),
    (lambda: constraints.get("positive"), "positive"),
    (lambda: constraints.get(np.abs), "Constraint"),
    (lambda: layers.Dense(2, kernel_constraint="maxnorm"), "maxnorm"),
])
def test_bad_constraints(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_applied_after_each_optimizer_step(rng):
    """SGD step, then the projection: kernel = MaxNorm(1)(kernel - lr * grad)."""
    model = Sequential([layers.Input((3,)), layers.Dense(
        2, kernel_constraint=constraints.MaxNorm(1.0), bias_constraint="non_neg",
        kernel_initializer="random_normal", bias_initializer="random_normal", dtype="float64")])
    model.compile(fastdl.optimizers.SGD(0.5), "mse")
    x, y = 3 * rng.standard_normal((8, 3)), 3 * rng.standard_normal((8, 2))
    kernel, bias = model.get_weights()
    err = 2 * (x @ kernel + bias - y) / y.size  # d mse / d y_pred
    expect_kernel = constraints.MaxNorm(1.0)(kernel - 0.5 * x.T @ err)
    expect_bias = np.maximum(bias - 0.5 * err.sum(axis=0), 0)
    model.train_on_batch(x, y)
    np.testing.assert_allclose(model.get_weights()[0], expect_kernel, rtol=1e-12)
    np.testing.assert_allclose(model.get_weights()[1], expect_bias, rtol=1e-12)
    assert np.all(np.linalg.norm(model.get_weights()[0], axis=0) <= 1.0 + 1e-12)


def test_every_layer_family_takes_its_constraints(rng, tmp_path):
    model = Sequential([
        layers.Input((6,)),
        layers.Embedding(9, 4, embeddings_constraint="unit_norm"),
        layers.Conv1D(4, 3, kernel_constraint="max_norm", bias_constraint="non_neg"),
        layers.BatchNormalization(gamma_constraint="non_neg", beta_regularizer="l2"),
        layers.PReLU(alpha_constraint="non_neg"),
        layers.GRU(3, recurrent_constraint=constraints.MaxNorm(0.5)),
        layers.Dense(2, kernel_constraint=constraints.MinMaxNorm(0.1, 0.2)),
    ])
    model.compile("adam", "mse")
    x, y = rng.integers(0, 9, (16, 6)), rng.standard_normal((16, 2))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    emb, conv, bn, prelu, gru, dense = model.layers
    np.testing.assert_allclose(np.linalg.norm(emb.embeddings, axis=0), 1.0, rtol=1e-5)
    assert np.all(np.linalg.norm(conv.kernel.reshape(-1, 4), axis=0) <= 2.0 + 1e-6)
    assert np.all(conv.bias >= 0) and np.all(bn.gamma >= 0) and np.all(prelu.alpha >= 0)
    assert np.all(np.linalg.norm(gru.recurrent_kernel, axis=0) <= 0.5 + 1e-6)
    norms = np.linalg.norm(dense.kernel, axis=0)
    assert np.all((norms >= 0.1 - 1e-6) & (norms <= 0.2 + 1e-6))
    model.save(tmp_path / "m.fdl")
    again = fastdl.models.load_model(tmp_path / "m.fdl")
    for a, b in zip(again.layers, model.layers):
        assert a.get_config() == b.get_config()


def test_keras_file_round_trip_with_real_keras(keras, rng, tmp_path):
    pytest.importorskip("h5py", reason="the .keras weights are HDF5")
    model = Sequential([layers.Input((5,)), layers.Dense(
        3, kernel_constraint=constraints.MaxNorm(1.5, axis=0), bias_constraint="non_neg",
        kernel_regularizer=regularizers.L2(0.25))])
    model.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    dense = theirs.layers[0]
    assert keras.constraints.serialize(dense.kernel_constraint) == \
        constraints.serialize(constraints.MaxNorm(1.5))
    assert type(dense.bias_constraint).__name__ == "NonNeg"
    x = rng.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)  # float32 sums in another order
    theirs.save(tmp_path / "theirs.keras")
    again = fastdl.models.load_model(tmp_path / "theirs.keras", compile=False)
    assert again.layers[0].get_config() == model.layers[0].get_config()
