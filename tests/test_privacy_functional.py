"""DP-SGD for functional models (fastdl.privacy on a GradientTape's layer calls): per-example
gradients against each example run alone under a GradientTape (and against torch.func), the
same training as the equivalent Sequential model, clipping, accounting and refusals."""
import math

import numpy as np
import pytest

from fastdl import layers, losses, optimizers
from fastdl.models import Model, Sequential
from fastdl.ops import GradientTape
from fastdl.privacy import (PrivacyError, make_private, per_example_gradients,
                            per_example_norms, validate)
from fastdl.utils import set_random_seed

F64 = {"dtype": "float64"}


def alone(model, x, y, loss_weights=None):
    """Each example's loss gradient, the example run alone through the model under a
    GradientTape (model.loss per output, weighted as compile's loss_weights)."""
    xs, ys = (x if isinstance(x, list) else [x]), (y if isinstance(y, list) else [y])
    per_output = getattr(model.loss, "losses", [model.loss])
    weights = loss_weights or [1.0] * len(per_output)
    out = []
    for i in range(len(ys[0])):
        xi = [a[i:i + 1] for a in xs]
        with GradientTape() as tape:
            pred = model(xi if isinstance(x, list) else xi[0], training=True)
            preds = pred if isinstance(pred, list) else [pred]
            loss = sum(w * l(yt[i:i + 1], p) for l, w, yt, p in zip(per_output, weights, ys, preds)
                       if l is not None)
        out.append([g.numpy() for g in tape.gradient(loss, model.trainable_weights,
                                                     unconnected_gradients="zero")])
    return [np.stack(g) for g in zip(*out)]


def check(model, x, y, loss="mse", loss_weights=None):
    model.compile(optimizer="sgd", loss=loss, loss_weights=loss_weights)
    expected = alone(model, x, y, loss_weights)
    got = per_example_gradients(model, x, y)
    n = len(y[0] if isinstance(y, list) else y)
    assert [g.shape for g in got] == [(n,) + w.shape for w in model.trainable_weights]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    norms = np.sqrt(sum((e.reshape(n, -1) ** 2).sum(axis=1) for e in expected))
    np.testing.assert_allclose(per_example_norms(model, x, y), norms, rtol=1e-10, atol=1e-12)
    return got


rng = np.random.default_rng(0)


def normal(*shape):
    return rng.normal(size=shape)


def test_two_branches_merged_by_concatenate_and_add():
    set_random_seed(1)
    inp = layers.Input((4,))
    a = layers.Dense(5, activation="tanh", **F64)(inp)
    b = layers.Dense(5, activation="relu", **F64)(inp)
    merged = layers.Concatenate(**F64)([layers.Add(**F64)([a, b]), inp])
    check(Model(inp, layers.Dense(2, **F64)(merged)), normal(6, 4), normal(6, 2))


def test_two_inputs_with_an_embedding_branch_and_sequences():
    # Embedding (repeated ids) -> LSTM and Conv1D -> LayerNormalization branches, Dense on
    # sequences (Gram norms), then a merge
    set_random_seed(2)
    ids, seq = layers.Input((5,), dtype="int32"), layers.Input((5, 3))
    e = layers.LSTM(3, **F64)(layers.Embedding(6, 4, **F64)(ids))
    c = layers.LayerNormalization(**F64)(layers.Conv1D(4, 2, padding="causal", **F64)(seq))
    d = layers.Flatten(**F64)(layers.Dense(2, **F64)(c))
    out = layers.Dense(1, **F64)(layers.Concatenate(**F64)([e, d]))
    x = [np.array([[1, 1, 2, 0, 1], [5, 5, 5, 5, 5], [0, 1, 2, 3, 4]]), normal(3, 5, 3)]
    check(Model([ids, seq], out), x, normal(3, 1))


def test_a_layer_called_twice_has_the_sum_over_its_calls():
    set_random_seed(3)
    left, right = layers.Input((3,)), layers.Input((3,))
    shared = layers.Dense(4, activation="tanh", **F64)
    out = layers.Dense(1, **F64)(layers.Concatenate(**F64)([shared(left), shared(right)]))
    model = Model([left, right], out)
    x = [normal(4, 3), normal(4, 3)]
    got = check(model, x, normal(4, 1))
    assert not np.allclose(got[0], 0)


def test_several_outputs_and_an_output_without_loss():
    # loss_weights scale each output's gradient; the output without a loss sends none back,
    # so the layer that only it uses has zero per-example gradients
    set_random_seed(4)
    inp = layers.Input((3,))
    h = layers.Dense(4, activation="relu", **F64)(inp)
    a, b = layers.Dense(2, **F64)(h), layers.Dense(1, **F64)(h)
    c = layers.Dense(2, **F64)(inp)
    model = Model(inp, [a, b, c])
    got = check(model, normal(5, 3), [normal(5, 2), normal(5, 1), normal(5, 2)],
                loss=["mse", "mae", None], loss_weights=[0.5, 2.0, 1.0])
    assert np.all(got[-1] == 0) and np.all(got[-2] == 0)


def test_nested_sequential_and_a_lambda_layer():
    set_random_seed(5)
    inner = Sequential([layers.Input((4,)), layers.Dense(3, activation="tanh", **F64)])
    inp = layers.Input((4,))
    h = layers.Lambda(lambda t: t * 2.0, **F64)(inner(inp))
    check(Model(inp, layers.Dense(2, **F64)(h)), normal(4, 4), normal(4, 2))


def test_per_example_gradients_match_torch_func():
    torch = pytest.importorskip("torch", reason="torch.func is the second oracle")
    from torch.func import grad, vmap
    set_random_seed(6)
    x_in, ids_in = layers.Input((3,), dtype="float64"), layers.Input((4,), dtype="int32")
    dense = layers.Dense(4, activation="tanh", **F64)
    emb = layers.Embedding(5, 2, **F64)
    head = layers.Dense(2, **F64)
    out = head(layers.Concatenate(**F64)([dense(x_in), layers.Flatten(**F64)(emb(ids_in))]))
    model = Model([x_in, ids_in], out)
    model.compile(optimizer="sgd", loss="mse")
    x, ids, y = normal(6, 3), rng.integers(0, 5, (6, 4)), normal(6, 2)
    got = per_example_gradients(model, [x, ids], y)

    def loss(params, xi, idi, yi):
        k1, b1, table, k2, b2 = params
        h = torch.cat([torch.tanh(xi @ k1 + b1), table[idi].reshape(-1)])
        return ((h @ k2 + b2 - yi) ** 2).mean()

    params = [torch.tensor(w) for w in model.trainable_weights]
    expected = vmap(grad(loss), in_dims=(None, 0, 0, 0))(
        params, torch.tensor(x), torch.tensor(ids), torch.tensor(y))
    assert [w.shape for w in model.trainable_weights] == \
        [dense.kernel.shape, dense.bias.shape, emb.embeddings.shape, head.kernel.shape,
         head.bias.shape]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-10, atol=1e-12)


def cnn(kind):
    set_random_seed(0)
    stack = [layers.Conv2D(3, 3, activation="relu", padding="same"), layers.MaxPooling2D(2),
             layers.Flatten(), layers.Dense(4, activation="relu"),
             layers.Dense(3, activation="softmax")]
    if kind == "sequential":
        model = Sequential([layers.Input((6, 6, 1))] + stack)
    else:
        inp = h = layers.Input((6, 6, 1))
        for layer in stack:
            h = layer(h)
        model = Model(inp, h)
    model.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return make_private(model, l2_norm_clip=0.3, noise_multiplier=1.1, batch_size=4)


def test_same_training_and_epsilon_as_the_sequential_model():
    # the same layers' backward passes and rules, the same sampling and noise draws: the
    # Sequential chain and the tape's walk give the same weights bit for bit
    x = rng.normal(size=(24, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, 24)
    results = []
    for kind in ("sequential", "functional"):
        model = cnn(kind)
        set_random_seed(7)
        history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
        results.append((model.get_weights(), history.history["loss"], model.privacy_spent(),
                        model._train_strategy.segments))
    (w_seq, loss_seq, eps_seq, seg_seq), (w_fun, loss_fun, eps_fun, seg_fun) = results
    assert all(np.array_equal(a, b) for a, b in zip(w_seq, w_fun))
    assert loss_seq == loss_fun and seg_seq == seg_fun and eps_seq == eps_fun
    assert eps_fun[0] > 0


def test_each_example_update_is_clipped_to_the_bound():
    # batches of one example, no noise, plain SGD: each step moves the weights by exactly
    # lr * min(||g_i||, C), the clipped example gradient
    set_random_seed(8)
    a, b = layers.Input((3,)), layers.Input((3,))
    shared = layers.Dense(4, activation="tanh", **F64)
    out = layers.Dense(2, **F64)(layers.Add(**F64)([shared(a), shared(b)]))
    model = Model([a, b], out)
    model.compile(optimizer=optimizers.SGD(1.0), loss="mse")
    x, y = [normal(6, 3) * 3, normal(6, 3) * 3], normal(6, 2) * 3
    norms = np.sqrt(sum((g.reshape(6, -1) ** 2).sum(axis=1)
                        for g in per_example_gradients(model, x, y)))
    clip = float(np.median(norms))
    make_private(model, l2_norm_clip=clip, noise_multiplier=0.0, batch_size=1,
                 sampling="shuffle")
    for i in range(6):
        before = np.concatenate([w.ravel() for w in model.get_weights()])
        norm = math.sqrt(sum(float((g ** 2).sum()) for g in per_example_gradients(
            model, [x[0][i:i + 1], x[1][i:i + 1]], y[i:i + 1])))
        model.fit([x[0][i:i + 1], x[1][i:i + 1]], y[i:i + 1], batch_size=1, epochs=1,
                  shuffle=False, verbose=0)
        step = np.linalg.norm(np.concatenate([w.ravel() for w in model.get_weights()]) - before)
        assert step == pytest.approx(min(norm, clip), rel=1e-12)
    assert model.privacy_spent()[0] == math.inf   # no noise: no privacy


def test_physical_chunks_add_up_to_the_whole_batch():
    def trained(physical):
        set_random_seed(9)
        ids = layers.Input((4,), dtype="int32")
        h = layers.Flatten(**F64)(layers.Embedding(7, 3, **F64)(ids))
        model = Model(ids, layers.Dense(1, **F64)(h))
        model.compile(optimizer=optimizers.SGD(0.5), loss="mse")
        make_private(model, l2_norm_clip=0.1, noise_multiplier=0.0, sampling="shuffle",
                     max_physical_batch_size=physical)
        model.fit(np.arange(40).reshape(10, 4) % 7, np.linspace(-1, 1, 10), batch_size=10,
                  epochs=1, shuffle=False, verbose=0)
        return model.get_weights()
    for a, b in zip(trained(None), trained(3)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


class Subclassed(Model):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(2)

    def call(self, x, training=None):
        return self.dense(x)


def test_subclasses_of_sequential_that_keep_the_training_step():
    class Plain(Sequential):
        pass

    class OwnStep(Sequential):
        def train_step(self, data):
            return super().train_step(data)

    plain = Plain([layers.Input((3,)), layers.Dense(1)])
    plain.compile(optimizer="sgd", loss="mse")
    assert make_private(plain, l2_norm_clip=1.0, noise_multiplier=1.0) is plain
    inp = layers.Input((3,))
    own = Model(inp, OwnStep([layers.Dense(1)])(inp))   # nested: checked as well
    own.compile(optimizer="sgd", loss="mse")
    with pytest.raises(PrivacyError, match=r"\(OwnStep: overrides train_step\) \(nested in"):
        make_private(own, l2_norm_clip=1.0, noise_multiplier=1.0)
    alone = OwnStep([layers.Input((3,)), layers.Dense(1)])
    alone.compile(optimizer="sgd", loss="mse")
    with pytest.raises(PrivacyError, match="overrides train_step"):   # fit would run it
        make_private(alone, l2_norm_clip=1.0, noise_multiplier=1.0)


def test_refusals_name_the_model_or_layer():
    sub = Subclassed()
    sub.compile(optimizer="sgd", loss="mse")
    sub(np.zeros((1, 3)))
    with pytest.raises(PrivacyError, match=r"'subclassed.*\(Subclassed: a subclassed model\)"):
        make_private(sub, l2_norm_clip=1.0, noise_multiplier=1.0)
    inp = layers.Input((3,))
    nested = Model(inp, sub(inp))
    nested.compile(optimizer="sgd", loss="mse")
    with pytest.raises(PrivacyError, match="nested in model"):
        make_private(nested, l2_norm_clip=1.0, noise_multiplier=1.0)
    assert nested._train_strategy is None

    prelu = Model(inp, layers.PReLU(name="prelu")(layers.Dense(2)(inp)))
    prelu.compile(optimizer="sgd", loss="mse")
    assert validate(prelu)[0][0] == "prelu"
    with pytest.raises(PrivacyError, match="'prelu'.*no per-example gradient rule"):
        make_private(prelu, l2_norm_clip=1.0, noise_multiplier=1.0)

    # a frozen layer's activity penalty would reach the trainable layer below it unclipped
    act = Model(inp, layers.Dense(2, trainable=False, activity_regularizer="l2",
                                  name="act")(layers.Dense(2)(inp)))
    act.compile(optimizer="sgd", loss="mse")
    with pytest.raises(PrivacyError, match="'act'.*activity_regularizer"):
        make_private(act, l2_norm_clip=1.0, noise_multiplier=1.0)

    mixed = Model(inp, [layers.Dense(1)(inp), layers.Dense(1)(inp)])
    mixed.compile(optimizer="sgd", loss=["mse", losses.MeanSquaredError(reduction="sum")])
    with pytest.raises(PrivacyError, match="the same for every output"):
        make_private(mixed, l2_norm_clip=1.0, noise_multiplier=1.0)

    seq = layers.Input((4, 2))
    _, state = layers.SimpleRNN(3, return_state=True, name="rnn")(seq)
    stateful = Model(seq, layers.Dense(1)(state))
    stateful.compile(optimizer="sgd", loss="mse")
    make_private(stateful, l2_norm_clip=1.0, noise_multiplier=1.0, batch_size=2)
    before = stateful.get_weights()
    with pytest.raises(PrivacyError, match="'rnn'.*return_state"):
        stateful.fit(np.zeros((4, 4, 2)), np.zeros((4, 1)), batch_size=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, stateful.get_weights()))


def test_a_layer_the_loss_does_not_reach_trains_on_noise_only():
    set_random_seed(10)
    inp = layers.Input((3,))
    unused = layers.Dense(2, kernel_initializer="zeros", bias_initializer="zeros", **F64)
    model = Model(inp, [layers.Dense(1, **F64)(inp), unused(inp)])
    model.compile(optimizer=optimizers.SGD(1.0), loss=["mse", None])
    make_private(model, l2_norm_clip=0.5, noise_multiplier=0.0, sampling="shuffle")
    rng_x = np.random.default_rng(3)
    model.fit(rng_x.normal(size=(4, 3)), [rng_x.normal(size=(4, 1)), np.zeros((4, 2))],
              batch_size=4, epochs=1, verbose=0)
    assert not np.any(unused.kernel) and not np.any(unused.bias)
