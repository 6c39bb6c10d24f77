"""GradientTape, Variable and optimizer.apply_gradients with TensorFlow's semantics."""
import numpy as np
import pytest

import fastdl
from fastdl import ops
from fastdl.ops import GradientTape, Tensor, Variable


def test_trainable_variables_are_watched_and_gradients_follow_the_formula():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    w = Variable(np.array([[0.5], [-1.0]]))
    b = Variable(np.array([0.25]))
    with GradientTape() as tape:
        y = ops.matmul(x, w) + b
        loss = ops.sum(y * y)
    gw, gb = tape.gradient(loss, [w, b])
    y_np = x @ w.numpy() + b.numpy()
    np.testing.assert_allclose(gw.numpy(), 2 * x.T @ y_np)
    np.testing.assert_allclose(gb.numpy(), 2 * y_np.sum(0))
    assert tape.watched_variables() == (w, b)


def test_constants_need_watch_and_unconnected_sources_give_none_or_zero():
    x = ops.convert_to_tensor(np.array([1.0, 2.0]))
    c = ops.convert_to_tensor(np.array([3.0]))
    with GradientTape(persistent=True) as tape:
        y = ops.sum(x * x)
    assert tape.gradient(y, x) is None              # not watched: a constant
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = ops.sum(x * x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [2.0, 4.0])
    assert tape.gradient(y, c) is None
    np.testing.assert_array_equal(tape.gradient(y, c, unconnected_gradients="zero").numpy(), [0.0])


def test_nested_sources_keep_their_structure_and_non_scalar_targets_are_summed():
    a = Variable(np.array([1.0, 2.0]))
    b = Variable(np.array(3.0))
    with GradientTape() as tape:
        y = a * b                                   # non-scalar: TF sums it
    g = tape.gradient(y, {"a": a, "rest": [b, (a,)]})
    assert set(g) == {"a", "rest"} and isinstance(g["rest"], list) and isinstance(g["rest"][1], tuple)
    np.testing.assert_allclose(g["a"].numpy(), [3.0, 3.0])
    np.testing.assert_allclose(g["rest"][0].numpy(), 3.0)
    np.testing.assert_allclose(g["rest"][1][0].numpy(), [3.0, 3.0])


def test_output_gradients_and_fan_out_accumulate():
    v = Variable(np.array([1.0, -2.0]))
    with GradientTape() as tape:
        y = v * 3 + ops.exp(v) * v                  # v used three times
    (g,) = tape.gradient([y], [v], output_gradients=[np.array([1.0, 2.0])])
    x = v.numpy()
    np.testing.assert_allclose(g.numpy(), np.array([1.0, 2.0]) * (3 + np.exp(x) * (1 + x)))


def test_persistent_tape_answers_twice_and_non_persistent_raises():
    v = Variable(np.array(2.0))
    with GradientTape(persistent=True) as tape:
        y = v * v
        z = y * v
    assert float(tape.gradient(y, v)) == 4.0
    assert float(tape.gradient(z, v)) == 12.0
    with GradientTape() as tape:
        y = v * v
    tape.gradient(y, v)
    with pytest.raises(RuntimeError, match="non-persistent GradientTape"):
        tape.gradient(y, v)


def test_stop_recording_stop_gradient_and_untrainable_variables():
    v = Variable(np.array(3.0))
    frozen = Variable(np.array(5.0), trainable=False)
    with GradientTape() as tape:
        with tape.stop_recording():
            hidden = v * 2
        y = v * ops.stop_gradient(v) + hidden + frozen * v
    assert float(tape.gradient(y, v)) == 3.0 + 5.0
    with GradientTape() as tape:
        y = frozen * v
    assert tape.gradient(y, frozen) is None


def test_watch_accessed_variables_false_and_integer_sources():
    v = Variable(np.array([1.0, 2.0]))
    i = Variable(np.array([1, 2]))
    with GradientTape(watch_accessed_variables=False) as tape:
        y = ops.sum(v * v) + ops.sum(ops.cast(i, "float64"))
    assert tape.gradient(y, [v, i]) == [None, None]
    with GradientTape() as tape:
        tape.watch(i)
        y = ops.sum(v * ops.cast(i, "float64"))
    gv, gi = tape.gradient(y, [v, i])
    assert gi is None and gv is not None


def test_nested_tapes_record_on_both_and_second_order_is_refused():
    v = Variable(np.array(2.0))
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = v * v * v
        with pytest.raises(NotImplementedError, match="first-order"):
            inner.gradient(y, v)
    assert float(outer.gradient(y, v)) == 12.0


def test_gradient_misuse_is_a_clear_error():
    v = Variable(np.array([1.0]))
    with GradientTape(persistent=True) as tape:
        y = v * 2
    with pytest.raises(TypeError, match="sources must be a fastdl Tensor or Variable, "
                                        "received ndarray"):
        tape.gradient(y, np.array([1.0]))
    with pytest.raises(TypeError, match="target must be a fastdl Tensor.*received float"):
        tape.gradient(1.0, v)
    with pytest.raises(ValueError, match="unconnected_gradients must be 'none' or 'zero'"):
        tape.gradient(y, v, unconnected_gradients="zeros")
    with pytest.raises(ValueError, match="output_gradients of shape \\(2,\\)"):
        tape.gradient(y, v, output_gradients=[np.ones(2)])
    with pytest.raises(TypeError, match="GradientTape.watch: expected a fastdl Tensor"):
        tape.watch(np.ones(2))


def test_numpy_on_a_tracked_tensor_is_an_error_naming_the_function():
    v = Variable(np.array([1.0, 2.0]))
    with GradientTape() as tape:
        y = np.exp(v) * 2                       # mapped to fastdl.ops.exp: differentiable
        with pytest.raises(TypeError, match=r"numpy.cbrt received a fastdl Tensor of shape "
                                            r"\(2,\) and dtype float64"):
            np.cbrt(v)
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), 2 * np.exp([1.0, 2.0]))
    np.testing.assert_allclose(np.cbrt(Tensor(np.array([8.0]))), [2.0])  # untracked: fine


def test_tensor_behaves_as_an_array():
    t = ops.convert_to_tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.shape == (2, 2) and t.dtype == "float32" and t.dtype == np.float32
    assert t.dtype == fastdl.float32 and str(t.dtype) == "float32"
    np.testing.assert_array_equal(np.asarray(t) + 1, (t + 1).numpy())
    np.testing.assert_array_equal((2 - t).numpy(), [[1, 0], [-1, -2]])
    np.testing.assert_array_equal((np.ones(2, np.float32) + t).numpy(), [[2, 3], [4, 5]])
    assert isinstance(np.ones(2) + t, Tensor)
    assert [r.shape for r in t] == [(2,), (2,)] and len(t) == 2
    assert float(t[1, 0]) == 3.0 and bool(t[0, 0] == 1.0)
    assert (t @ t).numpy().tolist() == [[7, 10], [15, 22]]
    assert (t > 2).dtype == "bool"
    assert ops.convert_to_tensor(1).dtype == "int32" and ops.convert_to_tensor(1.0).dtype == "float32"
    assert "shape=(2, 2)" in repr(t)
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(ops.convert_to_tensor(1.0))


def test_variable_assign_and_properties():
    v = Variable([1.0, 2.0], name="w")
    arr = v._value
    assert v.dtype == "float32" and v.shape == (2,) and v.trainable and v.name == "w"
    v.assign([3.0, 4.0])
    v.assign_add(np.ones(2))
    v.assign_sub(ops.convert_to_tensor([0.5, 0.5]))
    np.testing.assert_array_equal(v.numpy(), [3.5, 4.5])
    assert v._value is arr                          # in place: optimizer slots stay keyed
    assert v.value is v and (v + 0).numpy().tolist() == [3.5, 4.5]
    with pytest.raises(ValueError, match="Variable.assign: w has shape \\(2,\\), received a "
                                         "value of shape \\(3,\\)"):
        v.assign([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(v.numpy(), [3.5, 4.5])


def test_apply_gradients_updates_variables_in_place_and_rejects_mismatches():
    w = Variable(np.array([1.0, 2.0], np.float32))
    b = Variable(np.array([0.5], np.float32))
    opt = fastdl.optimizers.SGD(learning_rate=0.1)
    with GradientTape() as tape:
        loss = ops.sum(w * w) + ops.sum(b)
    grads = tape.gradient(loss, [w, b])
    opt.apply_gradients(zip(grads, [w, b]))
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6], rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), [0.4], rtol=1e-6)
    opt.apply(grads, [w, b])
    np.testing.assert_allclose(w.numpy(), [0.6, 1.2], rtol=1e-6)
    assert opt.iterations == 2
    before = (w.numpy(), b.numpy())
    with pytest.raises(ValueError, match="received 1 gradients for 2 variables"):
        opt.apply(grads[:1], [w, b])
    np.testing.assert_array_equal(w.numpy(), before[0])
    np.testing.assert_array_equal(b.numpy(), before[1])


def test_linear_regression_tape_loop_equals_sequential_fit_with_sgd():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype(np.float32)
    y = (x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    model = fastdl.Sequential([fastdl.layers.Input((3,)), fastdl.layers.Dense(1)])
    model.compile(optimizer=fastdl.optimizers.SGD(learning_rate=0.1), loss="mse")
    k0, b0 = [np.array(a) for a in model.get_weights()]
    w, b = Variable(k0.copy()), Variable(b0.copy())
    opt = fastdl.optimizers.SGD(learning_rate=0.1)
    for _ in range(5):
        with GradientTape() as tape:
            loss = ops.mean(ops.square(y - (x @ w + b)))
        opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
    model.fit(x, y, batch_size=32, epochs=5, shuffle=False, verbose=0)
    k, bias = model.get_weights()
    np.testing.assert_allclose(w.numpy(), k, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(b.numpy(), bias, rtol=1e-6, atol=1e-6)
    # and against the closed form of the same 5 full-batch steps in float64
    kk, bb = k0.astype(np.float64), b0.astype(np.float64)
    for _ in range(5):
        r = x @ kk + bb - y
        kk, bb = kk - 0.1 * 2 * x.T @ r / 32, bb - 0.1 * 2 * r.mean(0)
    np.testing.assert_allclose(w.numpy(), kk, rtol=1e-5, atol=1e-6)


LAYER_CASES = {
    "dense_shared_twice": (lambda: fastdl.layers.Dense(3, activation="tanh", dtype="float64"),
                           (4, 3), 2),
    "conv2d": (lambda: fastdl.layers.Conv2D(2, 3, padding="same", activation="relu",
                                            dtype="float64"), (2, 5, 5, 3), 1),
    "max_pooling": (lambda: fastdl.layers.MaxPooling2D(2, dtype="float64"), (1, 4, 4, 2), 1),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_a_layer_called_on_a_tensor_is_one_differentiable_primitive(case):
    from gradcheck import numerical_gradient
    make, shape, times = LAYER_CASES[case]
    layer = make()
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal(shape)
    x = Tensor(x_np)

    def forward(inp):
        for _ in range(times):
            inp = layer(inp)
        return inp

    y = forward(x)
    assert isinstance(y, Tensor)
    r = rng.standard_normal(y.shape)
    with GradientTape() as tape:
        tape.watch(x)
        loss = ops.sum(forward(x) * r)
    weights = layer.trainable_weights
    grads = tape.gradient(loss, [x] + weights)

    def f():
        return float(np.sum(forward(x_np) * r))

    for g, a in zip(grads, [x_np] + weights):
        np.testing.assert_allclose(g.numpy(), numerical_gradient(f, a), rtol=1e-5, atol=1e-7)


def test_layer_weights_train_with_apply_gradients():
    layer = fastdl.layers.Dense(1)
    x = ops.convert_to_tensor(np.ones((2, 3), np.float32))
    layer(x)
    kernel = layer.trainable_weights[0]
    before = kernel.copy()
    opt = fastdl.optimizers.SGD(0.5)
    with GradientTape() as tape:
        loss = ops.mean(layer(x))
    grads = tape.gradient(loss, layer.trainable_weights)
    opt.apply_gradients(zip(grads, layer.trainable_weights))
    np.testing.assert_allclose(kernel, before - 0.5, rtol=1e-6)   # d mean / d kernel = 1
    assert layer.trainable_weights[0] is kernel                   # updated in place


def test_integer_targets_give_none():
    v = Variable(np.array([1.0, 2.0]))
    with GradientTape() as tape:
        y = ops.argmax(v * 2)
    assert tape.gradient(y, v) is None


def test_jacobian_is_one_reverse_pass_per_target_element():
    w = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    x = Variable(np.array([0.5, -1.0, 2.0]))
    unused = Variable(np.array([1.0]))
    with GradientTape(persistent=True) as tape:
        y = ops.matmul(w, x)
        z = x * x
    np.testing.assert_allclose(tape.jacobian(y, x).numpy(), w)
    jz, ju = tape.jacobian(z, [x, unused])
    np.testing.assert_allclose(jz.numpy(), np.diag(2 * x.numpy()))
    assert ju is None
    assert tape.jacobian(z, unused, unconnected_gradients="zero").shape == (3, 1)


def test_variable_rejects_non_numeric_initial_values():
    with pytest.raises(TypeError, match="initial_value must be numeric.*received str 'zeros'"):
        Variable("zeros")
    with pytest.raises(ValueError, match="a callable initial_value needs shape="):
        Variable(fastdl.initializers.get("zeros"))
    v = Variable(fastdl.initializers.get("ones"), shape=(2,))
    assert v.dtype == "float32" and v.numpy().tolist() == [1.0, 1.0]


@pytest.mark.parametrize("which", ["kernel_only", "input_only"])
def test_kernels_skip_the_gradients_of_untracked_inputs_correctly(which):
    from gradcheck import numerical_gradient
    rng = np.random.default_rng(2)
    x_np, k_np = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 2))
    w_np = rng.standard_normal((2, 3))
    x, k, w = Tensor(x_np), Tensor(k_np), Tensor(w_np)
    tracked = [k, w] if which == "kernel_only" else [x]
    with GradientTape() as tape:
        tape.watch(tracked)
        loss = ops.sum(ops.square(ops.matmul(ops.reshape(ops.conv(x, k), (-1, 2)), w)))
    grads = tape.gradient(loss, [x, k, w])

    def f():
        return float(np.sum(np.square((ops.conv(x_np, k_np).numpy().reshape(-1, 2)) @ w_np)))

    for g, t, a in zip(grads, [x, k, w], [x_np, k_np, w_np]):
        if any(t is u for u in tracked):
            np.testing.assert_allclose(g.numpy(), numerical_gradient(f, a), rtol=1e-5, atol=1e-7)
        else:
            assert g is None


def test_apply_gradients_skips_none_with_a_warning_and_rejects_non_pairs():
    w = Variable(np.array([1.0, 2.0], np.float32))
    b = Variable(np.array([0.5], np.float32))
    opt = fastdl.optimizers.SGD(learning_rate=0.1)
    with GradientTape() as tape:
        loss = ops.sum(w * w)
    grads = tape.gradient(loss, [w, b])
    assert grads[1] is None
    with pytest.warns(UserWarning, match="Gradients do not exist for variables \\[1\\]"):
        opt.apply_gradients(zip(grads, [w, b]))
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6], rtol=1e-6)
    assert b.numpy().tolist() == [0.5]
    with pytest.raises(ValueError, match="expected \\(gradient, variable\\) pairs, received "
                                         "Tensor at position 0"):
        opt.apply_gradients(grads[:1])
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6], rtol=1e-6)
