"""fastdl.explain: input gradients through every layer type (float64 central differences),
integrated-gradients completeness, occlusion / permutation importance / Grad-CAM on models with a
planted answer, state preservation (nothing in the model changes) and bad input."""
import numpy as np
import pytest

from fastdl import explain
from fastdl import layers as L
from fastdl.explain import _common
from fastdl.models import Sequential
from fastdl.optimizers import Adam
from fastdl.utils import set_random_seed
from fastdl.utils.rng import get_rng
from gradcheck import numerical_gradient

D = "float64"


def numerical_input_gradient(model, x, target):
    """d output[n, target[n]] / d x[n] by central differences: each sample moves only its own
    output, so the gradient of the sum over samples holds every sample's."""
    x = np.array(x, dtype=np.float64)
    rows = np.arange(len(x))

    def total():
        return float(model.predict(x, verbose=0).reshape(len(x), -1)[rows, target].sum())

    return numerical_gradient(total, x)


def _randomize_bn(model, rng):
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.moving_mean[...] = rng.standard_normal(layer.moving_mean.shape)
            layer.moving_variance[...] = rng.random(layer.moving_variance.shape) + 0.3
            layer.gamma[...] = rng.standard_normal(layer.gamma.shape)
            layer.beta[...] = rng.standard_normal(layer.beta.shape)


def _cases():
    return {
        "dense": ([L.Input((5,), dtype=D), L.Dense(6, activation="tanh", dtype=D),
                   L.Dense(4, activation="relu", dtype=D),
                   L.Dense(3, activation="softmax", dtype=D)], (3, 5)),
        "dense_activation_sigmoid": ([L.Input((4,), dtype=D), L.Dense(5, dtype=D),
                                      L.Activation("sigmoid", dtype=D),
                                      L.Dense(1, dtype=D)], (3, 4)),
        "conv2d": ([L.Input((6, 7, 2), dtype=D),
                    L.Conv2D(3, 3, padding="same", activation="relu", dtype=D),
                    L.Conv2D(2, (2, 3), strides=(2, 1), activation="tanh", dtype=D),
                    L.Conv2D(2, 1, dtype=D), L.Flatten(dtype=D), L.Dense(3, dtype=D)],
                   (2, 6, 7, 2)),
        "pooling": ([L.Input((6, 6, 2), dtype=D), L.MaxPooling2D(2, dtype=D),
                     L.AveragePooling2D(2, padding="same", dtype=D), L.Flatten(dtype=D),
                     L.Dense(3, dtype=D)], (2, 6, 6, 2)),
        "global_pooling_padding_reshape": ([L.Input((5, 5, 3), dtype=D),
                                            L.ZeroPadding2D(1, dtype=D),
                                            L.GlobalMaxPooling2D(dtype=D),
                                            L.Reshape((3, 1), dtype=D), L.Flatten(dtype=D),
                                            L.Dense(2, dtype=D)], (2, 5, 5, 3)),
        "global_average_pooling": ([L.Input((4, 5, 3), dtype=D),
                                    L.Conv2D(4, 2, activation="sigmoid", dtype=D),
                                    L.GlobalAveragePooling2D(dtype=D), L.Dense(2, dtype=D)],
                                   (2, 4, 5, 3)),
        "batchnorm_dropout_inference": ([L.Input((4,), dtype=D), L.Dense(5, dtype=D),
                                         L.BatchNormalization(dtype=D), L.Dropout(0.5, dtype=D),
                                         L.Activation("tanh", dtype=D), L.Dense(2, dtype=D)],
                                        (3, 4)),
        "batchnorm_images": ([L.Input((4, 4, 2), dtype=D), L.BatchNormalization(dtype=D),
                              L.Conv2D(2, 3, dtype=D), L.Flatten(dtype=D),
                              L.Dense(2, dtype=D)], (2, 4, 4, 2)),
        "simple_rnn_lstm_gru": ([L.Input((4, 3), dtype=D),
                                 L.SimpleRNN(5, return_sequences=True, dtype=D),
                                 L.LSTM(4, return_sequences=True, go_backwards=True, dtype=D),
                                 L.GRU(3, dtype=D), L.Dense(2, dtype=D)], (2, 4, 3)),
        "gru_reset_before": ([L.Input((4, 3), dtype=D), L.GRU(3, reset_after=False, dtype=D),
                              L.Dense(2, dtype=D)], (2, 4, 3)),
        "bidirectional": ([L.Input((4, 3), dtype=D),
                           L.Bidirectional(L.LSTM(3, return_sequences=True, dtype=D), dtype=D),
                           L.Bidirectional(L.GRU(2, dtype=D), merge_mode="mul", dtype=D),
                           L.Dense(2, dtype=D)], (2, 4, 3)),
        "sequence_output": ([L.Input((3, 2), dtype=D),
                             L.SimpleRNN(2, return_sequences=True, dtype=D)], (2, 3, 2)),
    }


@pytest.mark.parametrize("case", sorted(_cases()))
def test_input_gradients_match_central_differences_for_every_layer_type(case):
    set_random_seed(3)
    layers, shape = _cases()[case]
    model = Sequential(layers)
    rng = np.random.default_rng(0)
    _randomize_bn(model, rng)
    x = rng.standard_normal(shape)
    k = int(np.prod(model.output_shape[1:]))
    for target in sorted({0, k - 1}):
        targets = np.full(len(x), target)
        g = explain.input_gradients(model, x, target=target)
        assert g.shape == x.shape and g.dtype == np.float64
        np.testing.assert_allclose(g, numerical_input_gradient(model, x, targets),
                                   rtol=1e-4, atol=1e-7, err_msg=f"{case}, target {target}")
    # one target per sample, and the default (top output per sample)
    per_sample = np.arange(len(x)) % k
    np.testing.assert_allclose(explain.input_gradients(model, x, target=per_sample),
                               numerical_input_gradient(model, x, per_sample),
                               rtol=1e-4, atol=1e-7)
    top = model.predict(x, verbose=0).reshape(len(x), -1).argmax(axis=1)
    np.testing.assert_array_equal(explain.input_gradients(model, x),
                                  explain.input_gradients(model, x, target=top))


def test_input_gradients_scalar_output_batching_and_float32():
    set_random_seed(0)
    model = Sequential([L.Input((3,)), L.Dense(4, activation="tanh"),
                        L.Dense(1, activation="sigmoid")])
    x = np.random.default_rng(1).standard_normal((10, 3)).astype(np.float32)
    g = explain.input_gradients(model, x)
    assert g.dtype == np.float32 and g.shape == (10, 3)
    np.testing.assert_array_equal(g, explain.input_gradients(model, x, target=0))
    np.testing.assert_allclose(explain.input_gradients(model, x, batch_size=3), g, rtol=1e-6)
    # float32 analytic gradient agrees with the float64 twin's
    twin = Sequential([L.Input((3,), dtype=D), L.Dense(4, activation="tanh", dtype=D),
                       L.Dense(1, activation="sigmoid", dtype=D)])
    twin.set_weights(model.get_weights())
    np.testing.assert_allclose(g, explain.input_gradients(twin, x.astype(D)), rtol=1e-4,
                               atol=1e-7)
    assert explain.input_gradients(model, np.zeros((0, 3))).shape == (0, 3)


def test_first_conv2d_without_input_gradient_still_attributes_and_flag_is_restored():
    set_random_seed(0)
    model = Sequential([L.Input((5, 5, 1), dtype=D), L.Conv2D(2, 3, dtype=D),
                        L.Flatten(dtype=D), L.Dense(2, dtype=D)])
    model.layers[0].input_gradient_needed = False
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 1))
    g = explain.input_gradients(model, x, target=1)
    np.testing.assert_allclose(g, numerical_input_gradient(model, x, np.ones(2, int)),
                               rtol=1e-4, atol=1e-7)
    assert model.layers[0].input_gradient_needed is False


def test_saliency_is_the_absolute_gradient():
    set_random_seed(0)
    model = Sequential([L.Input((4,)), L.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).standard_normal((5, 4))
    g = explain.input_gradients(model, x, target=2)
    np.testing.assert_array_equal(explain.saliency(model, x, target=2), np.abs(g))
    np.testing.assert_array_equal(explain.saliency(model, x, target=2, abs=False), g)
    assert np.any(g < 0)


def test_embedding_models_refuse_gradient_methods_but_allow_the_others():
    model = Sequential([L.Input((4,), dtype="int32"), L.Embedding(10, 3), L.LSTM(2),
                        L.Dense(1, activation="sigmoid")])
    ids = np.array([[1, 2, 3, 4], [5, 6, 7, 0]])
    for fn in (explain.input_gradients, explain.saliency, explain.integrated_gradients,
               explain.smoothgrad):
        with pytest.raises(ValueError, match="float inputs"):
            fn(model, ids)
    outs = explain.layer_outputs(model, ids)
    assert list(outs) == [l.name for l in model.layers]
    assert outs[model.layers[0].name].shape == (2, 4, 3)
    occ = explain.occlusion(model, ids, target=0, window=1, baseline=0)
    assert occ.shape == (2, 4)


# ----------------------------------------------------------------------------- integrated gradients

def _random_biases(model, rng, scale=0.2):
    for layer in model.layers:
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias[...] = scale * rng.standard_normal(bias.shape)


def _ig_models():
    """Smooth float32 models (tanh/softmax, a tanh CNN with average pooling and inference-mode
    BatchNormalization, an LSTM) with non-zero biases, and inputs far from the zero baseline."""
    set_random_seed(5)
    rng = np.random.default_rng(1)
    tanh = Sequential([L.Input((6,)), L.Dense(8, activation="tanh"),
                       L.Dense(3, activation="softmax")])
    cnn = Sequential([L.Input((8, 8, 1)), L.Conv2D(4, 3, activation="tanh", padding="same"),
                      L.AveragePooling2D(2), L.BatchNormalization(), L.Flatten(),
                      L.Dense(10, activation="softmax")])
    cnn.layers[-1].kernel[...] *= 3
    lstm = Sequential([L.Input((5, 2)), L.LSTM(4), L.Dense(1, activation="sigmoid")])
    for model in (tanh, cnn, lstm):
        _random_biases(model, rng)
    bn = cnn.layers[2]
    bn.moving_mean[...] = 0.1 * rng.standard_normal(4)
    bn.moving_variance[...] = 0.05 + 0.05 * rng.random(4)
    return [(tanh, 2 * rng.standard_normal((6, 6))), (cnn, rng.random((4, 8, 8, 1))),
            (lstm, 2 * rng.standard_normal((4, 5, 2)))]


def _completeness_error(model, x, baseline, **kwargs):
    """max over samples of |sum(attr) - (f(x) - f(b))| / |f(x) - f(b)| (and the returned delta)."""
    attr, delta = explain.integrated_gradients(model, x, baseline=baseline,
                                               return_convergence_delta=True, **kwargs)
    assert attr.shape == x.shape
    b = np.zeros_like(x) if baseline is None else np.broadcast_to(baseline, x.shape)
    fx = model.predict(x, verbose=0).reshape(len(x), -1).astype(np.float64)
    fb = model.predict(b, verbose=0).reshape(len(x), -1).astype(np.float64)
    t = fx.argmax(axis=1)
    rows = np.arange(len(x))
    change = fx[rows, t] - fb[rows, t]
    assert np.all(np.abs(change) > 0.005), change  # a meaningful change to attribute
    sums = attr.reshape(len(x), -1).sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(delta, sums - change, atol=1e-5)
    return np.max(np.abs(sums - change) / np.abs(change))


@pytest.mark.parametrize("which", [0, 1, 2])
def test_integrated_gradients_completeness_within_one_percent_at_50_steps(which):
    model, x = _ig_models()[which]
    noise = 0.1 * np.random.default_rng(3).standard_normal(x.shape[1:]).astype(np.float32)
    for baseline in (None, noise):
        assert _completeness_error(model, x, baseline, steps=50) <= 0.01
    # a single step is far off, so the check above has teeth
    assert _completeness_error(model, x, noise, steps=1) > 0.01


def test_integrated_gradients_relu_maxpool_cnn_converges_with_steps():
    """Piecewise-linear models (ReLU, max pooling) have kinks along the path, so the quadrature
    error falls like 1/steps instead of exponentially: a few percent at 50 steps, < 1% at 400."""
    set_random_seed(5)
    cnn = Sequential([L.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu", padding="same"),
                      L.MaxPooling2D(2), L.Flatten(), L.Dense(10, activation="softmax")])
    cnn.layers[-1].kernel[...] *= 3
    x = np.random.default_rng(2).random((6, 8, 8, 1))
    b = 0.1 * np.random.default_rng(3).standard_normal((8, 8, 1))
    assert _completeness_error(cnn, x, None, steps=50) <= 0.01  # zero biases: exact ray
    assert _completeness_error(cnn, x, b, steps=400) <= 0.01


def test_integrated_gradients_exact_on_linear_model_and_batching_invariant():
    set_random_seed(0)
    model = Sequential([L.Input((4,), dtype=D), L.Dense(2, dtype=D)])
    x = np.random.default_rng(0).standard_normal((3, 4))
    b = np.full(4, 0.5)
    attr = explain.integrated_gradients(model, x, baseline=b, target=1, steps=3)
    np.testing.assert_allclose(attr, (x - b) * model.layers[0].kernel[:, 1], rtol=1e-12)
    trap = explain.integrated_gradients(model, x, baseline=b, target=1, steps=4,
                                        method="riemann_trapezoid")
    np.testing.assert_allclose(trap, attr, rtol=1e-12)
    model2, x2 = _ig_models()[0]
    a1 = explain.integrated_gradients(model2, x2, steps=20, batch_size=7)
    a2 = explain.integrated_gradients(model2, x2, steps=20, batch_size=1000)
    np.testing.assert_allclose(a1, a2, rtol=1e-5, atol=1e-7)


def test_integrated_gradients_target_comes_from_the_input_not_the_path():
    # a model whose top class at the baseline differs from the top class at x
    model = Sequential([L.Input((1,), dtype=D), L.Dense(2, dtype=D, activation="softmax")])
    model.set_weights([np.array([[1.0, -1.0]]), np.array([0.0, 0.5])])
    x = np.array([[3.0]])  # class 0 at x, class 1 at the zero baseline
    attr, delta = explain.integrated_gradients(model, x, return_convergence_delta=True)
    p_x, p_0 = model.predict(x, verbose=0)[0, 0], model.predict(np.zeros((1, 1)), verbose=0)[0, 0]
    assert attr[0, 0] == pytest.approx(p_x - p_0, rel=1e-6) and abs(delta[0]) < 1e-6


# ----------------------------------------------------------------------------- smoothgrad

def test_smoothgrad_averages_noisy_gradients_reproducibly():
    model, x = _ig_models()[0]
    g = explain.input_gradients(model, x)
    np.testing.assert_allclose(explain.smoothgrad(model, x, noise_level=0.0, n_samples=3), g,
                               rtol=1e-6)
    s1 = explain.smoothgrad(model, x, n_samples=8, seed=4)
    s2 = explain.smoothgrad(model, x, n_samples=8, seed=4, batch_size=5)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-7)
    assert not np.allclose(s1, g)
    # the mean of the noisy-input gradients, computed directly
    rng = np.random.default_rng(4)
    flat = x.reshape(len(x), -1)
    sigma = 0.15 * (flat.max(axis=1) - flat.min(axis=1))
    t = model.predict(x, verbose=0).argmax(axis=1)
    expect = np.zeros_like(x, dtype=np.float64)
    noisy = np.repeat(x, 8, axis=0) + rng.standard_normal((len(x) * 8,) + x.shape[1:]) * \
        np.repeat(sigma, 8)[:, None]
    gn = explain.input_gradients(model, noisy, target=np.repeat(t, 8))
    expect = gn.reshape(len(x), 8, -1).mean(axis=1)
    np.testing.assert_allclose(s1, expect, rtol=1e-4, atol=1e-6)
    # a linear model's gradient does not depend on the input: smoothgrad is exact
    lin = Sequential([L.Input((4,), dtype=D), L.Dense(2, dtype=D)])
    xl = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(explain.smoothgrad(lin, xl, target=1, seed=0),
                               np.broadcast_to(lin.layers[0].kernel[:, 1], xl.shape), rtol=1e-12)


# ----------------------------------------------------------------------------- occlusion

def _patch_model(patch=(slice(2, 5), slice(4, 7))):
    """Output = sum of the pixels in one 3x3 patch of an 8x8 image (and nothing else)."""
    model = Sequential([L.Input((8, 8, 1), dtype=D), L.Flatten(dtype=D), L.Dense(1, dtype=D)])
    w = np.zeros((8, 8, 1))
    w[patch] = 1.0
    model.set_weights([w.reshape(64, 1), np.zeros(1)])
    return model


def test_occlusion_finds_the_patch_the_answer_depends_on():
    model = _patch_model()
    x = np.random.default_rng(0).random((3, 8, 8, 1)) + 0.5
    attr = explain.occlusion(model, x, target=0, window=3, stride=1)
    inside = np.zeros((8, 8, 1), bool)
    inside[2:5, 4:7] = True
    for i in range(3):
        peak = np.unravel_index(np.argmax(attr[i, ..., 0]), (8, 8))
        assert inside[peak + (0,)], peak
        assert attr[i][inside].mean() > 2 * attr[i][~inside & (attr[i] > 0)].mean()
    # windows that never touch the patch leave their pixels at exactly 0
    assert np.all(attr[:, 7] == 0) and np.all(attr[:, :, :2] == 0)
    assert np.all(attr[:, :7, 2:] > 0)
    # window 1: each pixel's occlusion drop is exactly its contribution w * x
    exact = explain.occlusion(model, x, target=0, window=(1, 1))
    np.testing.assert_allclose(exact, x * inside, atol=1e-12)
    # tabular input, windows over features, every feature covered (edge-aligned last window)
    lin = Sequential([L.Input((5,), dtype=D), L.Dense(1, dtype=D)])
    lin.set_weights([np.arange(1.0, 6.0)[:, None], np.zeros(1)])
    xt = np.ones((2, 5))
    np.testing.assert_allclose(explain.occlusion(lin, xt, target=0, window=1),
                               np.tile(np.arange(1.0, 6.0), (2, 1)))
    two = explain.occlusion(lin, xt, target=0, window=2, stride=2)
    np.testing.assert_allclose(two[0], [3, 3, 7, (7 + 9) / 2, 9])  # windows 0-1, 2-3, 3-4


# --------------------------------------------------------------------- permutation importance

def test_permutation_importance_ranks_the_planted_feature_first():
    set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 6)).astype(np.float32)
    y = (2.5 * x[:, 3] + 0.4 * x[:, 1] > 0).astype(np.float32)
    model = Sequential([L.Input((6,)), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=Adam(learning_rate=0.05), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] > 0.95
    metric_state = (model.compiled_metrics[0].total, model.compiled_metrics[0].count)
    res = explain.permutation_importance(model, x, y, n_repeats=4, seed=1)
    assert res.metric == "accuracy" and res.importances.shape == (6, 4)
    assert np.argmax(res.importances_mean) == 3
    assert list(np.argsort(-res.importances_mean)[:2]) == [3, 1]
    assert res.importances_mean[3] > 0.3
    assert np.all(np.abs(res.importances_mean[[0, 2, 4, 5]]) < 0.05)
    np.testing.assert_allclose(res.importances_std, res.importances.std(axis=1))
    assert (model.compiled_metrics[0].total, model.compiled_metrics[0].count) == metric_state
    # the compiled loss (lower is better: importance = increase of the loss), a callable error
    loss = explain.permutation_importance(model, x, y, metric="loss", n_repeats=2, seed=1)
    assert np.argmax(loss.importances_mean) == 3 and loss.importances_mean[3] > 0
    mse = explain.permutation_importance(
        model, x, y, metric=lambda t, p: float(np.mean((t - p[:, 0]) ** 2)),
        greater_is_better=False, n_repeats=2, seed=1)
    assert np.argmax(mse.importances_mean) == 3 and mse.importances_mean[3] > 0
    same = explain.permutation_importance(model, x, y, n_repeats=4, seed=1)
    np.testing.assert_array_equal(same.importances, res.importances)


# ----------------------------------------------------------------------------- grad-cam

def _blob_model():
    """Conv2D detects a bright 3x3 blob (ones kernel, bias -0.5, relu); class 1 = its mean."""
    model = Sequential([L.Input((10, 10, 1), dtype=D),
                        L.Conv2D(1, 3, padding="same", activation="relu", dtype=D, name="blob"),
                        L.GlobalAveragePooling2D(dtype=D), L.Dense(2, dtype=D)])
    model.set_weights([np.full((3, 3, 1, 1), 1.0 / 9), np.array([-0.5]),
                       np.array([[-1.0, 1.0]]), np.zeros(2)])
    return model


def test_grad_cam_highlights_the_planted_region():
    model = _blob_model()
    rng = np.random.default_rng(0)
    x = rng.random((4, 10, 10, 1)) * 0.3
    centres = [(2, 2), (7, 3), (5, 7), (1, 8)]
    for i, (r, c) in enumerate(centres):
        x[i, r - 1:r + 2, c - 1:c + 2] = 1.0
    cam = explain.grad_cam(model, x, target=1)
    assert cam.shape == (4, 10, 10) and np.all(cam >= 0)
    for i, (r, c) in enumerate(centres):
        assert np.unravel_index(np.argmax(cam[i]), (10, 10)) == (r, c)
        far = (np.abs(np.arange(10)[:, None] - r) > 2) | (np.abs(np.arange(10)[None, :] - c) > 2)
        assert cam[i, r, c] > 0 and np.all(cam[i][far] == 0)
    assert np.all(explain.grad_cam(model, x, target=0) == 0)  # evidence against class 0 only
    np.testing.assert_array_equal(explain.grad_cam(model, x, layer="blob", target=1), cam)
    np.testing.assert_array_equal(explain.grad_cam(model, x, layer=0, target=1), cam)


def test_grad_cam_upsamples_to_the_input_size():
    set_random_seed(0)
    model = Sequential([L.Input((8, 8, 1)), L.Conv2D(3, 3, activation="relu"),
                        L.MaxPooling2D(2), L.Flatten(), L.Dense(2, activation="softmax")])
    x = np.random.default_rng(0).random((2, 8, 8, 1))
    small = explain.grad_cam(model, x, upsample=False)
    big = explain.grad_cam(model, x)
    assert small.shape == (2, 6, 6) and big.shape == (2, 8, 8) and small.max() > 0
    # the map itself: weights = mean gradient at the conv output, relu(sum_c w_c A_c)
    acts = explain.layer_outputs(model, x, layers=[0])[model.layers[0].name].astype(np.float64)
    grad_a = _common.target_gradients(model, np.asarray(x, np.float32), None, 256, stop=1)[0]
    expect = np.maximum(np.einsum("nhwc,nc->nhw", acts, grad_a.mean(axis=(1, 2))), 0)
    np.testing.assert_allclose(small, expect, rtol=1e-5, atol=1e-7)
    # bilinear resizing with half-pixel centres reproduces a linear ramp exactly
    from fastdl.explain.attributions import _resize_bilinear
    ramp = np.array([[[0.0, 1.0], [2.0, 3.0]]])
    pos = np.array([0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(_resize_bilinear(ramp, 4, 4)[0], 2 * pos[:, None] + pos[None, :])
    assert np.all(big[:, 0, 0] == small[:, 0, 0]) and np.all(big[:, -1, -1] == small[:, -1, -1])


# ----------------------------------------------------------------------------- layer outputs

def test_layer_outputs_by_name_and_index():
    set_random_seed(0)
    model = Sequential([L.Input((4,)), L.Dense(3, activation="relu", name="h"),
                        L.Dropout(0.5), L.Dense(2, name="out")])
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    outs = explain.layer_outputs(model, x, layers=["out", 0])
    assert list(outs) == ["h", "out"]
    k, b = model.layers[0].get_weights()
    np.testing.assert_allclose(outs["h"], np.maximum(x @ k + b, 0), rtol=1e-6)
    np.testing.assert_array_equal(outs["out"], model.predict(x, verbose=0))
    np.testing.assert_array_equal(explain.layer_outputs(model, x, layers="h", batch_size=2)["h"],
                                  outs["h"])


# ----------------------------------------------------------------------------- nothing changes

def _trained_model(seed):
    set_random_seed(seed)
    model = Sequential([L.Input((8, 8, 1)), L.Conv2D(3, 3, activation="relu"),
                        L.BatchNormalization(), L.MaxPooling2D(2), L.Flatten(),
                        L.Dropout(0.3), L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    x = rng.random((32, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model, x, y


def _snapshot(model):
    return {
        "weights": [w.copy() for w in model.weights],
        "grads": [[g.copy() for g in layer.grads] for layer in model.layers],
        "optimizer": [a.copy() for a in model.optimizer._state_arrays()],
        "iterations": model.optimizer.iterations,
        "metrics": [(m.total, m.count) for m in model.compiled_metrics],
        "rng": get_rng().bit_generator.state,
    }


def _assert_same(a, b):
    assert a["iterations"] == b["iterations"] and a["metrics"] == b["metrics"]
    assert a["rng"] == b["rng"]
    for key in ("weights", "optimizer"):
        assert len(a[key]) == len(b[key])
        for u, v in zip(a[key], b[key]):
            np.testing.assert_array_equal(u, v, err_msg=key)
    for ga, gb in zip(a["grads"], b["grads"]):
        assert len(ga) == len(gb)
        for u, v in zip(ga, gb):
            np.testing.assert_array_equal(u, v, err_msg="grads")


def test_explaining_changes_nothing_in_the_model():
    model, x, y = _trained_model(7)
    bn = model.layers[1]
    assert not np.allclose(bn.moving_mean, 0) and model.optimizer.iterations == 4
    assert all(len(l.grads) for l in model.layers if l.trainable_weights)
    before = _snapshot(model)
    xe = x[:4]
    explain.input_gradients(model, xe)
    explain.saliency(model, xe, target=1)
    explain.integrated_gradients(model, xe, steps=8)
    explain.smoothgrad(model, xe, n_samples=3, seed=0)
    explain.occlusion(model, xe, target=0, window=4, stride=4)
    explain.grad_cam(model, xe)
    explain.layer_outputs(model, xe)
    explain.permutation_importance(model, x.reshape(32, 8, 8, 1), y, n_repeats=1, seed=0)
    _assert_same(before, _snapshot(model))
    # and training goes on exactly as in an unexplained twin
    twin, _, _ = _trained_model(7)
    set_random_seed(11)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    set_random_seed(11)
    twin.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for u, v in zip(model.weights, twin.weights):
        np.testing.assert_array_equal(u, v)


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs_raise_clear_errors():
    set_random_seed(0)
    model = Sequential([L.Input((4,)), L.Dense(3, activation="softmax")])
    img = Sequential([L.Input((6, 6, 1)), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    x = np.zeros((2, 4))
    xi = np.zeros((2, 6, 6, 1))
    with pytest.raises(TypeError, match="Sequential"):
        explain.input_gradients("model", x)
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        explain.input_gradients(model, np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"\(2, 7, 7, 1\).*\(None, 6, 6, 1\)"):
        explain.saliency(img, np.zeros((2, 7, 7, 1)))
    with pytest.raises(ValueError, match="NaN"):
        explain.input_gradients(model, np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match=r"\[0, 3\).*target=3"):
        explain.input_gradients(model, x, target=3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        explain.input_gradients(model, x, target=-1)
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(3,\)"):
        explain.input_gradients(model, x, target=[0, 1, 2])
    with pytest.raises(ValueError, match=r"\[0, 3\).*5"):
        explain.input_gradients(model, x, target=[0, 5])
    with pytest.raises(TypeError, match="target"):
        explain.input_gradients(model, x, target=0.5)
    with pytest.raises(TypeError, match="target"):
        explain.input_gradients(model, x, target=True)
    with pytest.raises(ValueError, match="steps.*Received: steps=0"):
        explain.integrated_gradients(model, x, steps=0)
    with pytest.raises(TypeError, match="steps"):
        explain.integrated_gradients(model, x, steps="5")
    with pytest.raises(ValueError, match="method"):
        explain.integrated_gradients(model, x, method="simpson")
    with pytest.raises(ValueError, match="riemann_trapezoid' needs steps >= 2"):
        explain.integrated_gradients(model, x, steps=1, method="riemann_trapezoid")
    with pytest.raises(ValueError, match=r"baseline.*\(3,\)"):
        explain.integrated_gradients(model, x, baseline=np.zeros(3))
    with pytest.raises(ValueError, match="noise_level"):
        explain.smoothgrad(model, x, noise_level=-0.1)
    with pytest.raises(ValueError, match="n_samples"):
        explain.smoothgrad(model, x, n_samples=0)
    with pytest.raises(TypeError, match="seed"):
        explain.smoothgrad(model, x, seed="a")
    with pytest.raises(ValueError, match=r"window \(7, 7, 1\) is larger.*\(6, 6, 1\)"):
        explain.occlusion(img, xi, target=0, window=7)
    with pytest.raises(ValueError, match="window"):
        explain.occlusion(img, xi, target=0, window=0)
    with pytest.raises(ValueError, match="more axes"):
        explain.occlusion(model, x, target=0, window=(1, 1))
    with pytest.raises(ValueError, match="stride"):
        explain.occlusion(img, xi, target=0, window=2, stride=0)
    with pytest.raises(ValueError, match="baseline"):
        explain.occlusion(img, xi, target=0, window=2, baseline=np.zeros(3))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        explain.occlusion(img, xi, target=2, window=2)
    with pytest.raises(ValueError, match="no Conv2D"):
        explain.grad_cam(model, x)
    with pytest.raises(ValueError, match="4-D output"):
        explain.grad_cam(img, xi, layer=-1)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        explain.grad_cam(img, xi, layer="nope")
    with pytest.raises(ValueError, match="out of range"):
        explain.layer_outputs(img, xi, layers=[9])
    with pytest.raises(TypeError, match="layer"):
        explain.layer_outputs(img, xi, layers=[1.5])
    with pytest.raises(ValueError, match="not compiled.*metric="):
        explain.permutation_importance(model, x, [0, 1])
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        explain.permutation_importance(model, x, [0, 1], metric="nope")
    with pytest.raises(ValueError, match="n_repeats"):
        explain.permutation_importance(model, x, [0, 1], metric="mse", n_repeats=0)
    with pytest.raises(ValueError, match="same number of samples"):
        explain.permutation_importance(model, x, [0, 1, 2], metric="mse")
    with pytest.raises(ValueError, match="at least 2 samples"):
        explain.permutation_importance(model, x[:1], [0], metric="mse")
