"""keras.regularizers: values and defaults (formulas and real Keras), layer and model penalties,
their gradients (float64 central differences), the reported training loss, and configs."""
import os

import numpy as np
import pytest

from fastdl import layers, regularizers
from fastdl.models import Sequential
from gradcheck import numerical_gradient


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras", reason="real Keras is the oracle")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_values_and_keras_3_defaults(rng):
    x = rng.standard_normal((3, 4))
    assert regularizers.L1()(x) == pytest.approx(0.01 * np.abs(x).sum())
    assert regularizers.L2()(x) == pytest.approx(0.01 * (x ** 2).sum())
    assert regularizers.L1L2(l1=0.2, l2=0.3)(x) == pytest.approx(
        0.2 * np.abs(x).sum() + 0.3 * (x ** 2).sum())
    assert regularizers.L1L2()(x) == 0.0  # Keras 3: L1L2's factors default to 0
    assert regularizers.get("l1") == regularizers.L1(0.01)
    assert regularizers.get("l2") == regularizers.L2(0.01)
    assert regularizers.get("l1_l2") == regularizers.L1L2(0.0, 0.0)
    assert regularizers.get("L2") == regularizers.L2()
    assert regularizers.get(None) is None
    reg = regularizers.L1L2(0.1, 0.2)
    assert regularizers.get(reg) is reg


@pytest.mark.parametrize("name, kwargs", [("L1", dict(l1=0.3)), ("L2", dict(l2=0.2)),
                                          ("L1L2", dict(l1=0.1, l2=0.4)), ("L1", {}),
                                          ("L2", {}), ("L1L2", {})])
def test_values_and_configs_match_keras(keras, rng, name, kwargs):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    ours = getattr(regularizers, name)(**kwargs)
    theirs = getattr(keras.regularizers, name)(**kwargs)
    # a backend tensor, as Keras's weights are (its NumPy path normalizes columns wrongly)
    expect = float(keras.ops.convert_to_numpy(theirs(keras.ops.convert_to_tensor(x))))
    assert ours(x) == pytest.approx(expect, rel=1e-5)
    mine, keras_form = regularizers.serialize(ours), keras.regularizers.serialize(theirs)
    # Keras keeps L1's factor as a float32 tensor: its config says 0.30000001192092896
    assert mine["config"] == pytest.approx(keras_form.pop("config"), rel=1e-7)
    assert {k: v for k, v in mine.items() if k != "config"} == keras_form
    back = regularizers.get(keras.regularizers.serialize(theirs))
    assert type(back) is type(ours)
    assert back.get_config() == pytest.approx(ours.get_config(), rel=1e-7)


@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(0.2),
                                 regularizers.L1L2(0.1, 0.4)])
def test_gradient_is_the_derivative(rng, reg):
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(reg.gradient(x), numerical_gradient(lambda: reg(x), x),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("make, match", [
    (lambda: regularizers.L2(-0.1), "l2"),
    (lambda: regularizers.L1(float("nan")), "l1"),
    (lambda: regularizers.L1L2(l1="a"), "l1"),
    (lambda: regularizers.get("l3"), "l3"),
    (lambda: regularizers.get(lambda w: 0.0), "gradient"),
    (lambda: regularizers.get({"class_name": "Orthogonal", "config": {}}), "Orthogonal"),
    (lambda: layers.Dense(2, kernel_regularizer="l5"), "l5"),
])
def test_bad_regularizers(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _model(dtype="float64"):
    """Every regularizer argument of every layer family, in one small model."""
    return Sequential([
        layers.Input((6,)),
        layers.Embedding(9, 3, embeddings_regularizer=regularizers.L2(0.02), dtype=dtype),
        layers.Conv1D(4, 3, padding="causal", kernel_regularizer=regularizers.L1L2(0.01, 0.02),
                      bias_regularizer="l1", activity_regularizer=regularizers.L2(0.03),
                      bias_initializer="random_normal", dtype=dtype),
        layers.LSTM(3, kernel_regularizer="l2", recurrent_regularizer=regularizers.L1(0.02),
                    bias_regularizer=regularizers.L2(0.1), return_sequences=True,
                    activity_regularizer=regularizers.L1(0.01), dtype=dtype),
        layers.GlobalAveragePooling1D(dtype=dtype),
        layers.Dense(2, kernel_regularizer=regularizers.L1L2(0.05, 0.05),
                     bias_regularizer=regularizers.L2(0.3), bias_initializer="random_normal",
                     activity_regularizer=regularizers.L1L2(0.02, 0.1), dtype=dtype),
    ])


def _penalties(model, x):
    """The penalties from their formulas, with the weights and activations of a forward pass."""
    total = 0.0
    for layer in model.layers:
        for name, weight in zip(layer.weight_names, layer.weights):
            reg = getattr(layer, f"{name.replace('_kernel', '')}_regularizer", None)
            total += reg(weight) if reg is not None else 0.0
    h = x
    for layer in model.layers:
        h = layer(h)
        if layer.activity_regularizer is not None:
            total += layer.activity_regularizer(h) / len(x)
    return total


def test_model_losses_are_the_formulas(rng):
    model = _model()
    x = rng.integers(1, 9, (5, 6))
    model(x)
    assert len(model.losses) == 1 + 3 + 4 + 3  # per layer: regularized weights + activity
    assert sum(model.losses) == pytest.approx(_penalties(model, x), rel=1e-12)


def test_penalty_gradients_central_differences(rng):
    """The training step's gradients are those of data loss + penalties."""
    model = _model()
    model.compile("sgd", "mse")
    x, y = rng.integers(1, 9, (4, 6)), rng.standard_normal((4, 2))

    def total():
        y_pred = model._forward(x, True)
        return model.loss(y, y_pred) + model._regularization_loss()

    y_pred = model._forward(x, True)
    _, dy = model.loss.forward_backward(y, y_pred)
    model._backward(dy, penalties=model.layers)   # every layer adds its penalties
    for layer in model.layers:
        for w, g in zip(layer.trainable_weights, layer.grads):
            np.testing.assert_allclose(g, numerical_gradient(total, w), rtol=1e-4, atol=1e-7,
                                       err_msg=layer.name)


def test_fit_and_train_on_batch_report_data_loss_plus_penalty(rng):
    model = Sequential([layers.Input((3,)), layers.Dense(2, kernel_regularizer="l2",
                                                         dtype="float64")])
    model.compile("sgd", "mse")
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    for step in (lambda: model.train_on_batch(x, y),
                 lambda: model.fit(x, y, batch_size=8, verbose=0).history["loss"][0]):
        kernel, bias = model.get_weights()
        expect = np.mean((x @ kernel + bias - y) ** 2) + 0.01 * np.sum(kernel ** 2)
        assert step() == pytest.approx(expect, rel=1e-10)
    kernel, bias = model.get_weights()
    expect = np.mean((x @ kernel + bias - y) ** 2) + 0.01 * np.sum(kernel ** 2)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expect, rel=1e-10)


def test_l2_shrinks_the_weights_like_weight_decay(rng):
    """With a zero data gradient, SGD on L2(l2) multiplies the kernel by 1 - 2 * lr * l2."""
    model = Sequential([layers.Input((3,)), layers.Dense(1, kernel_regularizer=regularizers.L2(0.5),
                                                         use_bias=False, dtype="float64")])
    model.compile(__import__("fastdl").optimizers.SGD(0.25), "mse")  # exact in float32
    x = np.zeros((4, 3))
    before = model.get_weights()[0]
    model.train_on_batch(x, np.zeros((4, 1)))
    np.testing.assert_allclose(model.get_weights()[0], before * (1 - 2 * 0.25 * 0.5), rtol=1e-12)


def test_a_frozen_layer_has_no_weight_penalty(rng):
    dense = layers.Dense(2, kernel_regularizer="l2")
    dense(rng.standard_normal((2, 3)))
    assert len(dense.losses) == 1
    dense.trainable = False
    assert dense.losses == []


def test_evaluate_matches_keras(keras, rng):
    """Keras's evaluate reports data loss + sum(model.losses), activity penalties included."""
    kwargs = dict(kernel_regularizer=dict(l1=0.01, l2=0.02), bias_regularizer=dict(l2=0.3),
                  activity_regularizer=dict(l1=0.05))

    def make(lib):
        regs = {k: lib.regularizers.L1L2(**v) for k, v in kwargs.items()}
        return lib.Sequential([lib.layers.Input((7, 2)),
                               lib.layers.Conv1D(3, 2, padding="causal", **regs),
                               lib.layers.Flatten(), lib.layers.Dense(2, **regs)])

    import fastdl
    ours, theirs = make(fastdl.keras), make(keras)
    weights = [w + rng.uniform(0.1, 0.5, w.shape).astype(np.float32) for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x, y = rng.standard_normal((6, 7, 2)).astype(np.float32), rng.standard_normal((6, 2))
    ours.compile("sgd", "mse")
    theirs.compile("sgd", "mse")
    assert ours.evaluate(x, y, batch_size=6, verbose=0) == pytest.approx(
        theirs.evaluate(x, y, batch_size=6, verbose=0), rel=1e-5)


def test_keras_file_round_trip_with_real_keras(keras, rng, tmp_path):
    pytest.importorskip("h5py", reason="the .keras weights are HDF5")
    model = Sequential([
        layers.Input((8, 2)),
        layers.Conv1D(3, 3, padding="causal", kernel_regularizer=regularizers.L2(0.02),
                      bias_regularizer="l1", activity_regularizer=regularizers.L1L2(0.01, 0.03)),
        layers.MaxPooling1D(2), layers.GlobalAveragePooling1D(),
        layers.Dense(2, kernel_regularizer=regularizers.L1(0.05)),
    ])
    x = rng.standard_normal((3, 8, 2)).astype(np.float32)
    model.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    conv = theirs.layers[0]
    assert keras.regularizers.serialize(conv.kernel_regularizer) == \
        regularizers.serialize(regularizers.L2(0.02))
    assert conv.activity_regularizer.get_config() == {"l1": 0.01, "l2": 0.03}
    theirs.save(tmp_path / "theirs.keras")
    again = __import__("fastdl").models.load_model(tmp_path / "theirs.keras", compile=False)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    for a, b in zip(again.layers, model.layers):
        ca, cb = a.get_config(), b.get_config()
        for key in [k for k in cb if k.endswith("_regularizer") and cb[k] is not None]:
            # Keras keeps L1's factor as float32: 0.01 comes back as 0.009999999776482582
            ra, rb = ca.pop(key), cb.pop(key)
            assert ra["class_name"] == rb["class_name"]
            assert ra["config"] == pytest.approx(rb["config"], rel=1e-7)
        assert ca == cb


def test_fdl_round_trip_keeps_the_regularizers(rng, tmp_path):
    model = _model("float32")
    model.save(tmp_path / "m.fdl")
    again = __import__("fastdl").models.load_model(tmp_path / "m.fdl")
    for a, b in zip(again.layers, model.layers):
        assert a.get_config() == b.get_config()
    x = rng.integers(1, 9, (3, 6))
    model(x)
    again(x)
    assert model.losses == again.losses


# ---------------------------------------------------------------- OrthogonalRegularizer
def _orthogonal_formula(x, factor, mode):
    rows = x if mode == "rows" else x.T
    u = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    n = len(rows)
    gram = u @ u.T
    return factor * 0.5 * (np.abs(gram).sum() - np.abs(np.diag(gram)).sum()) / (n * (n - 1) / 2)


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer_formula_and_gradient(rng, mode):
    x = rng.standard_normal((4, 5))
    reg = regularizers.OrthogonalRegularizer(0.3, mode=mode)
    assert reg(x) == pytest.approx(_orthogonal_formula(x, 0.3, mode), rel=1e-12)
    np.testing.assert_allclose(reg.gradient(x), numerical_gradient(lambda: reg(x), x),
                               rtol=1e-5, atol=1e-9)
    q = np.linalg.qr(rng.standard_normal((5, 5)))[0]   # orthogonal rows/columns: no penalty
    scales = np.arange(1.0, 6.0)
    assert reg(q * (scales[:, None] if mode == "rows" else scales)) == pytest.approx(0, abs=1e-14)
    assert regularizers.orthogonal_regularizer is regularizers.OrthogonalRegularizer
    assert regularizers.OrthogonalRegularizer()(x) == pytest.approx(
        _orthogonal_formula(x, 0.01, "rows"))


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer_matches_keras(keras, rng, mode):
    x = rng.standard_normal((6, 3)).astype(np.float32)
    x[2] = 0.0   # a zero row (and, in columns mode, a zero entry): Keras's clamped normalization
    ours = regularizers.OrthogonalRegularizer(0.2, mode)
    theirs = keras.regularizers.OrthogonalRegularizer(0.2, mode)
    # a backend tensor, as Keras's weights are (its NumPy path normalizes columns wrongly)
    expect = float(keras.ops.convert_to_numpy(theirs(keras.ops.convert_to_tensor(x))))
    assert ours(x) == pytest.approx(expect, rel=1e-5)
    mine, keras_form = regularizers.serialize(ours), keras.regularizers.serialize(theirs)
    # Keras keeps the factor as a float32 tensor: its config says 0.20000000298023224
    assert mine["config"].pop("factor") == pytest.approx(keras_form["config"].pop("factor"))
    assert mine == keras_form
    back = regularizers.get(keras.regularizers.serialize(theirs))
    assert type(back) is type(ours) and back.mode == mode
    assert back.factor == pytest.approx(0.2)


def test_orthogonal_regularizer_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="factor"):
        regularizers.OrthogonalRegularizer(factor=-1)
    with pytest.raises(ValueError, match="rank 2"):
        regularizers.OrthogonalRegularizer()(np.zeros((2, 3, 4)))


def test_orthogonal_kernel_regularizer_trains_in_a_model(rng):
    """As a kernel regularizer: the reported loss is data loss + penalty, and with only the
    penalty (zero inputs, zero targets) training makes the kernel's 3 columns (in R^4, so
    they can be orthogonal) much closer to orthogonal."""
    __import__("fastdl").utils.set_random_seed(0)   # the initial kernel: a fixed start
    reg = regularizers.OrthogonalRegularizer(1.0, mode="columns")
    model = Sequential([layers.Input((4,)), layers.Dense(3, kernel_regularizer=reg,
                                                         use_bias=False, dtype="float64")])
    model.compile(__import__("fastdl").optimizers.SGD(0.5), "mse")
    x, y = np.zeros((8, 4)), np.zeros((8, 3))
    before = reg(model.get_weights()[0])
    assert model.train_on_batch(x, y) == pytest.approx(before, rel=1e-12)
    for _ in range(50):
        model.train_on_batch(x, y)
    assert reg(model.get_weights()[0]) < 0.25 * before   # (subgradient steps on |.|: no exact 0)


# ---------------------------------------------------------------- activity outside Sequential
def _activity_models(kind):
    """The same two-layer model as Sequential and as ``kind`` (functional or subclassed),
    with equal weights; activity penalties on both layers."""
    import fastdl
    from fastdl.models import Model

    def make_layers():
        return [layers.Dense(5, activation="tanh", dtype="float64",
                             activity_regularizer=regularizers.L1L2(0.01, 0.02)),
                layers.Dense(2, dtype="float64",
                             activity_regularizer=regularizers.OrthogonalRegularizer(0.1))]
    seq = Sequential([layers.Input((3,))] + make_layers())
    first, second = make_layers()
    if kind == "functional":
        inp = fastdl.Input((3,), dtype="float64")
        other = Model(inp, second(first(inp)))
    else:
        class TwoLayers(Model):
            def __init__(self):
                super().__init__()
                self.first, self.second = first, second

            def call(self, x):
                return self.second(self.first(x))
        other = TwoLayers()
        other(np.zeros((1, 3)))
    other.set_weights(seq.get_weights())
    return seq, other


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_activity_regularizers_train_outside_sequential(rng, kind):
    """Regression (they were refused): a functional or subclassed model reports the activity
    penalties in model.losses and the loss, and trains on their gradients exactly as the
    Sequential model does."""
    seq, other = _activity_models(kind)
    # float32 values: a subclassed model converts its input to float32 (exact for these)
    x = rng.standard_normal((6, 3)).astype(np.float32).astype(np.float64)
    y = rng.standard_normal((6, 2))
    for model in (seq, other):
        model.compile(__import__("fastdl").optimizers.SGD(0.5), "mse")
    for _ in range(3):
        np.testing.assert_allclose(other.train_on_batch(x, y), seq.train_on_batch(x, y),
                                   rtol=1e-12)
    for a, b in zip(other.get_weights(), seq.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    other(x), seq(x)
    assert len(other.losses) == 2
    np.testing.assert_allclose(other.losses, seq.losses, rtol=1e-12)


def test_activity_gradients_outside_sequential_central_differences(rng):
    """The functional model's training gradients are those of data loss + penalties."""
    seq, model = _activity_models("functional")
    model.compile("sgd", "mse")
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    trainable, weights = model._training_state()
    y_pred, state = model._train_forward(x)
    _, dy = model.loss.forward_backward(y, y_pred, None)
    grads = model._train_backward(state, dy, trainable)

    def total():
        return model.loss(y, model._forward(x, True)) + model._regularization_loss()
    for w, g in zip(weights, grads):
        np.testing.assert_allclose(g, numerical_gradient(total, w), rtol=1e-5, atol=1e-8)
