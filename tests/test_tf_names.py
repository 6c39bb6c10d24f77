"""TensorFlow names a custom training loop under ``import fastdl as tf`` reaches for:
``tf.function``, ``tf.print``, tensor utilities, control flow. Expected values come from NumPy
formulas or real ``keras.ops``; gradients through the tape from central differences."""
import collections
import io
import os

import numpy as np
import pytest

import fastdl as tf
from gradcheck import numerical_gradient


# ----------------------------------------------------------------------------------------------
# tf.function, tf.executing_eagerly, tf.print


def test_function_runs_the_python_function_eagerly_in_every_form():
    calls = []

    def f(x, y=1.0):
        calls.append(1)  # a Python side effect runs on every call: fastdl does not trace
        return x * x + y

    x = tf.constant([1.0, 2.0])
    expected = f(x).numpy()
    for wrapped in (tf.function(f), tf.function()(f),
                    tf.function(jit_compile=True, reduce_retracing=True, autograph=False)(f),
                    tf.function(f, experimental_relax_shapes=True)):
        np.testing.assert_array_equal(wrapped(x).numpy(), expected)
        np.testing.assert_array_equal(wrapped(x, y=2.0).numpy(), expected + 1)
        assert wrapped.__name__ == "f" and wrapped.python_function is f
    assert len(calls) == 1 + 4 * 2
    assert tf.executing_eagerly() is True

    @tf.function
    def inside():
        return tf.executing_eagerly()
    assert inside() is True


def test_function_on_a_method_binds_self():
    class Scaler:
        def __init__(self, k):
            self.k = k

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return x * self.k

    np.testing.assert_array_equal(Scaler(3.0)(tf.constant([1.0, 2.0])).numpy(), [3.0, 6.0])
    with pytest.raises(TypeError, match=r"argument 0 of shape \(2, 2\)"):
        Scaler(3.0)(tf.constant(np.ones((2, 2), np.float32)))


def test_function_on_a_model_call_keeps_its_training_argument():
    class Net(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = tf.keras.layers.Dense(2)
            self.drop = tf.keras.layers.Dropout(0.5)

        @tf.function
        def call(self, x, training=False):
            return self.drop(self.dense(x), training=training)

    net = Net()
    x = np.ones((8, 3), np.float32)
    inference = np.asarray(net(x))
    np.testing.assert_allclose(inference, x @ np.asarray(net.dense.kernel) + np.asarray(net.dense.bias),
                               rtol=1e-6)
    dropped = np.asarray(net(x, training=True))
    assert ((dropped == 0) | np.isclose(dropped, 2 * inference)).all() and (dropped == 0).any()
    net.compile(optimizer="sgd", loss="mse")
    losses = net.fit(x, np.zeros((8, 2)), epochs=2, verbose=0).history["loss"]
    assert len(losses) == 2 and np.isfinite(losses).all()


def test_function_checks_input_signature_and_its_arguments():
    f = tf.function(lambda x: x + 1, input_signature=[tf.TensorSpec((None, 2), "float32")])
    assert f(tf.constant([[1.0, 2.0]])).shape == (1, 2)
    with pytest.raises(TypeError, match=r"argument 0 of shape \(3,\) and dtype float32"):
        f(tf.constant([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match=r"dtype float64 does not match"):
        f(tf.constant(np.ones((1, 2))))
    with pytest.raises(TypeError, match="<lambda>: too many positional arguments"):
        f(tf.constant([[1.0, 2.0]]), 2)
    converted = f(np.ones((1, 2)))  # NumPy and Python values become the spec's dtype
    assert tf.is_tensor(converted) and converted.dtype == tf.float32
    g = tf.function(lambda x, y=None: x, input_signature=[tf.TensorSpec((2,))])
    assert g(x=tf.constant([1.0, 2.0])).shape == (2,)   # by name, as TensorFlow binds it
    with pytest.raises(TypeError, match=r"1 TensorSpec\(s\), received 2 argument"):
        g(tf.constant([1.0, 2.0]), y=tf.constant(1.0))
    with pytest.raises(TypeError, match="unexpected keyword argument 'jit'"):
        tf.function(jit=True)
    with pytest.raises(TypeError, match="input_signature must be a list or tuple"):
        tf.function(input_signature=tf.TensorSpec((2,)))
    with pytest.raises(TypeError, match="must hold TensorSpec"):
        tf.function(input_signature=[(2,)])
    with pytest.raises(TypeError, match="jit_compile must be a bool or None, received 'yes'"):
        tf.function(jit_compile="yes")
    with pytest.raises(TypeError, match="func must be callable, received int"):
        tf.function(3)


def test_print_writes_values_as_tensorflow_does():
    out = io.StringIO()
    r = tf.range(10)
    tf.print(r, output_stream=out)
    tf.print("tensors:", r, {2: r * 2}, output_stream=out)
    tf.print(tf.range(2), tf.range(2) * 2, output_stream=out, sep=",", end=";\n")
    tf.print(tf.constant([1.0, 2.5]), [tf.constant(3), "s"], output_stream=out)
    tf.print(r, summarize=-1, output_stream=out)
    tf.print(tf.reshape(tf.range(16), (2, 8)), summarize=1, output_stream=out)
    # floats: 6 significant digits (15 for float64), more when needed to read back the same
    tf.print(tf.constant([1e-7, 123456789.0, 1 / 3]), tf.constant(np.array([1 / 3, -0.0])),
             output_stream=out)
    tf.print(tf.constant([True, False]), tf.constant([np.nan, np.inf]), output_stream=out)
    tf.print(tf.ones((1, 40)), output_stream=out, summarize=-1)  # one line: rows never wrap
    assert out.getvalue().splitlines() == [
        "[0 1 2 ... 7 8 9]",
        "tensors: [0 1 2 ... 7 8 9] {2: [0 2 4 ... 14 16 18]}",
        "[0 1],[0 2];",
        "[1 2.5] [3, 's']",
        "[0 1 2 3 4 5 6 7 8 9]",
        "[[0 ... 7]",
        " [8 ... 15]]",
        "[1e-07 123456792 0.333333343] [0.33333333333333331 -0]",
        "[1 0] [nan inf]",
        "[[" + " ".join(["1"] * 40) + "]]",
    ]


def test_print_defaults_to_stderr_and_appends_to_file_urls(capsys, tmp_path):
    tf.print("loss", tf.constant(0.5))
    assert capsys.readouterr().err == "loss 0.5\n"
    path = tmp_path / "log.txt"
    tf.print("a", output_stream=f"file://{path}")
    tf.print("b", output_stream=f"file://{path}")
    assert path.read_text() == "a\nb\n"
    with pytest.raises(ValueError, match="output_stream must be a file object"):
        tf.print("x", output_stream=3)


# ----------------------------------------------------------------------------------------------
# tensor utilities


def test_tensor_shape():
    s = tf.TensorShape([None, 28, 28])
    assert s.as_list() == [None, 28, 28] and s.rank == s.ndims == 3 and len(s) == 3
    assert s[0] is None and s[-1] == 28 and s[1:] == tf.TensorShape([28, 28])
    assert s == (None, 28, 28) and s == [None, 28, 28] and (None, 28, 28) == s
    assert s != (1, 28, 28) and s != (None, 28)
    assert list(s) == [None, 28, 28] and not s.is_fully_defined() and s.num_elements() is None
    assert tf.TensorShape((2, 3)).num_elements() == 6 and tf.TensorShape([]).rank == 0
    assert s.is_compatible_with((5, 28, 28)) and not s.is_compatible_with((5, 28))
    assert s.concatenate([3]) == (None, 28, 28, 3) == s + [3] and [1] + s == (1, None, 28, 28)
    assert tf.TensorShape([]) and not tf.TensorShape(None)  # TensorFlow's truth
    assert tf.TensorShape(tf.constant(np.zeros((2, 3))).shape) == (2, 3)
    assert tf.TensorShape(tf.shape(tf.zeros((4, 1)))) == [4, 1]  # an int32 tensor's entries
    assert hash(tf.TensorShape([None, 2])) == hash((None, 2))
    assert {tf.TensorShape([3]): "a"}[(3,)] == "a"
    assert repr(s) == "TensorShape([None, 28, 28])" and str(s) == "(None, 28, 28)"
    unknown = tf.TensorShape(None)
    assert unknown.rank is None and unknown.is_compatible_with((1, 2))
    with pytest.raises(ValueError, match="unknown TensorShape"):
        unknown.as_list()
    with pytest.raises(TypeError, match="non-negative int or None, received -1"):
        tf.TensorShape([-1])
    with pytest.raises(TypeError, match="non-negative int or None, received 'a'"):
        tf.TensorShape(["a"])
    with pytest.raises(TypeError, match="non-negative int or None, received True"):
        tf.TensorShape([True])
    with pytest.raises(TypeError, match="dims must be a list, tuple, int or None, received "
                                        "float 2.5"):
        tf.TensorShape(2.5)


def test_is_tensor_newaxis_eye_linspace():
    x = tf.constant([1.0, 2.0])
    assert tf.is_tensor(x) and tf.is_tensor(tf.Variable(x)) and not tf.is_tensor(np.ones(2))
    assert tf.newaxis is None and x[tf.newaxis, :].shape == (1, 2)
    np.testing.assert_array_equal(tf.eye(2, 3).numpy(), np.eye(2, 3))
    assert tf.eye(2).dtype == tf.float32 and tf.eye(2, dtype=tf.int32).dtype == tf.int32
    np.testing.assert_array_equal(tf.eye(2, batch_shape=[3]).numpy(),
                                  np.broadcast_to(np.eye(2), (3, 2, 2)))
    lin = tf.linspace(0.0, 1.0, 5)
    assert lin.dtype == tf.float32
    np.testing.assert_allclose(lin.numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    both = tf.linspace(tf.constant([0.0, 1.0], tf.float64), tf.constant([1.0, 3.0], tf.float64),
                       3, axis=1)
    assert both.dtype == tf.float64
    np.testing.assert_allclose(both.numpy(), [[0, 0.5, 1], [1, 2, 3]])
    assert tf.linspace(0, 1, 3).dtype == tf.float64  # integers: float64, as TensorFlow
    np.testing.assert_array_equal(tf.linspace(tf.constant(0), 2, 3).numpy(), [0.0, 1.0, 2.0])


def test_shapes_and_orders_against_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    x = tf.constant(a)
    np.testing.assert_array_equal(tf.broadcast_to(tf.constant([1, 2, 3]), [2, 3]).numpy(),
                                  np.broadcast_to([1, 2, 3], (2, 3)))
    np.testing.assert_array_equal(tf.broadcast_to(x[:1], tf.constant([2, 3, 4])).numpy(),
                                  np.broadcast_to(a[:1], (2, 3, 4)))
    u, v, w = tf.constant([1, 2, 3]), tf.constant([4, 5]), tf.constant([6, 7, 8, 9])
    for indexing in ("xy", "ij"):
        got = tf.meshgrid(u, v, w, indexing=indexing)
        for g, e in zip(got, np.meshgrid([1, 2, 3], [4, 5], [6, 7, 8, 9], indexing=indexing)):
            np.testing.assert_array_equal(g.numpy(), e)
    np.testing.assert_array_equal(tf.reverse(x, [0, -1]).numpy(), a[::-1, :, ::-1])
    np.testing.assert_array_equal(tf.roll(x, shift=[1, -2], axis=[1, 2]).numpy(),
                                  np.roll(a, (1, -2), (1, 2)))
    ties = tf.constant([3, 1, 3, 2, 1])
    np.testing.assert_array_equal(tf.argsort(ties).numpy(), [1, 4, 3, 0, 2])
    np.testing.assert_array_equal(tf.argsort(ties, direction="DESCENDING").numpy(),
                                  [0, 2, 3, 1, 4])
    assert tf.argsort(ties).dtype == tf.int32
    np.testing.assert_array_equal(tf.argsort(x, axis=1).numpy(), np.argsort(a, axis=1))
    y, idx = tf.unique(tf.constant([4, 1, 4, 2, 7, 1]))
    assert y.numpy().tolist() == [4, 1, 2, 7] and idx.numpy().tolist() == [0, 1, 0, 2, 3, 1]
    assert idx.dtype == tf.int32 and tf.unique(y, out_idx=tf.int64)[1].dtype == tf.int64
    seq = np.sort(rng.integers(0, 10, (2, 6)), axis=1)
    vals = rng.integers(0, 10, (2, 4))
    for side in ("left", "right"):
        got = tf.searchsorted(tf.constant(seq), tf.constant(vals), side=side).numpy()
        np.testing.assert_array_equal(got, [np.searchsorted(s, q, side) for s, q in
                                            zip(seq, vals)])
    b = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(tf.tensordot(x, b, axes=[[2], [0]]).numpy(),
                               np.tensordot(a, b, axes=([2], [0])), rtol=1e-5)
    np.testing.assert_array_equal(tf.round(tf.constant([0.5, 1.5, 2.5, -0.5, -1.7])).numpy(),
                                  [0.0, 2.0, 2.0, -0.0, -2.0])  # halves to even, as TF
    np.testing.assert_array_equal(tf.floor(tf.constant([-1.5, 1.5])).numpy(), [-2.0, 1.0])


def test_masks_and_scatter_gather_against_numpy():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = tf.constant(a)
    m = np.array([[True, False, True], [False, False, True]])
    np.testing.assert_array_equal(tf.boolean_mask(x, m).numpy(), a[m])
    np.testing.assert_array_equal(tf.boolean_mask(x, [True, False, True], axis=1).numpy(),
                                  a[:, [0, 2]])
    np.testing.assert_array_equal(tf.boolean_mask(x, np.ones((3, 4), bool), axis=1).numpy(),
                                  a.reshape(2, 12))
    with pytest.raises(ValueError, match=r"mask of shape \(2,\) does not match"):
        tf.boolean_mask(x, [True, False], axis=1)
    mask = tf.sequence_mask(tf.constant([1, 3, 0]), 4)
    assert mask.dtype == tf.bool
    np.testing.assert_array_equal(mask.numpy(), np.arange(4) < np.array([[1], [3], [0]]))
    assert tf.sequence_mask([[1, 2], [3, 0]]).shape == (2, 2, 3)
    assert tf.sequence_mask([2], 3, dtype=tf.float32).numpy().tolist() == [[1.0, 1.0, 0.0]]
    idx = np.array([[1, 2, 3], [0, 0, 0]])
    np.testing.assert_array_equal(tf.gather_nd(x, idx).numpy(), a[(idx[:, 0], idx[:, 1],
                                                                    idx[:, 2])])
    np.testing.assert_array_equal(tf.gather_nd(x, [[1], [0]]).numpy(), a[[1, 0]])
    np.testing.assert_array_equal(tf.gather_nd(x, [[2], [0]], batch_dims=1).numpy(),
                                  np.stack([a[0, 2], a[1, 0]]))
    scattered = tf.scatter_nd(tf.constant([[4], [3], [1], [7], [1]]),
                              tf.constant([9.0, 10.0, 11.0, 12.0, 1.0]), tf.constant([8]))
    np.testing.assert_array_equal(scattered.numpy(), [0, 12, 0, 10, 9, 0, 0, 12])
    rows = tf.scatter_nd([[0], [2]], tf.constant([[1, 2], [3, 4]]), [3, 2])
    assert rows.dtype == tf.int32 and rows.numpy().tolist() == [[1, 2], [0, 0], [3, 4]]
    upd = tf.tensor_scatter_nd_update(x, [[0, 1], [1, 2]], tf.constant(-np.ones((2, 4))))
    e = a.copy()
    e[0, 1] = e[1, 2] = -1
    np.testing.assert_array_equal(upd.numpy(), e)
    np.testing.assert_array_equal(a, np.arange(24.0).reshape(2, 3, 4))  # the input is kept
    with pytest.raises(TypeError, match="indices must be an integer tensor"):
        tf.gather_nd(x, [[0.5]])


def test_clip_by_norm_and_global_norm_follow_the_formula():
    t = np.array([[3.0, 4.0], [6.0, 8.0]], np.float32)
    np.testing.assert_allclose(tf.clip_by_norm(tf.constant(t), 5.0).numpy(),
                               t * 5 / np.sqrt((t ** 2).sum()), rtol=1e-6)
    np.testing.assert_allclose(tf.clip_by_norm(tf.constant(t), 20.0).numpy(), t)
    np.testing.assert_allclose(tf.clip_by_norm(tf.constant(t), 5.0, axes=[1]).numpy(),
                               [[3, 4], [3, 4]], rtol=1e-6)
    np.testing.assert_array_equal(tf.clip_by_norm(tf.zeros((2,)), 1.0).numpy(), [0, 0])
    ts = [tf.constant([3.0, 4.0]), None, tf.constant([[12.0]])]
    clipped, norm = tf.clip_by_global_norm(ts, 6.5)
    assert float(norm) == pytest.approx(13.0) and clipped[1] is None
    np.testing.assert_allclose(clipped[0].numpy(), [1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(clipped[2].numpy(), [[6.0]], rtol=1e-6)
    same, _ = tf.clip_by_global_norm(ts, 100.0)
    np.testing.assert_allclose(same[0].numpy(), [3.0, 4.0], rtol=1e-6)
    given, norm = tf.clip_by_global_norm(ts, 1.0, use_norm=2.0)
    assert float(norm) == 2.0
    np.testing.assert_allclose(given[0].numpy(), [1.5, 2.0], rtol=1e-6)
    inf, _ = tf.clip_by_global_norm([tf.constant([np.inf, 1.0])], 1.0)
    assert np.isnan(inf[0].numpy()).all()  # TensorFlow's signal for an infinite norm
    assert tf.clip_by_global_norm([tf.constant(np.ones(2))], 1.0)[0][0].dtype == tf.float64
    zero, _ = tf.clip_by_global_norm(ts, 0.0)  # TensorFlow's formula: every tensor to 0
    np.testing.assert_array_equal(zero[0].numpy(), [0.0, 0.0])
    with pytest.raises(TypeError, match="t_list must be a list or tuple of tensors"):
        tf.clip_by_global_norm(tf.constant([1.0]), 1.0)


@pytest.fixture(scope="module")
def kops():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="real Keras is the oracle for keras.ops twins")
    return keras.ops


def test_twins_match_real_keras_ops(kops):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((4, 2)).astype(np.float32)
    x = tf.constant(a)

    def same(got, expected):
        np.testing.assert_allclose(np.asarray(got.numpy(), np.float64),
                                   np.asarray(kops.convert_to_numpy(expected), np.float64),
                                   rtol=1e-6, atol=1e-6)

    same(tf.roll(x, 2, axis=1), kops.roll(a, 2, axis=1))
    same(tf.reverse(x, [1]), kops.flip(a, axis=1))
    same(tf.argsort(x, axis=0), kops.argsort(a, axis=0))
    same(tf.tensordot(x, b, axes=1), kops.tensordot(a, b, axes=1))
    same(tf.round(x * 2), kops.round(a * 2))
    same(tf.round(tf.constant([0.5, 1.5, 2.5])), kops.round(np.array([0.5, 1.5, 2.5])))
    same(tf.floor(x), kops.floor(a))
    same(tf.broadcast_to(x[:1], [5, 4]), kops.broadcast_to(a[:1], (5, 4)))
    same(tf.eye(3, 4), kops.eye(3, 4))
    same(tf.linspace(-1.0, 2.0, 7), kops.linspace(-1.0, 2.0, 7))
    for g, e in zip(tf.meshgrid(tf.constant([1, 2, 3]), tf.constant([4, 5])),
                    kops.meshgrid(np.array([1, 2, 3]), np.array([4, 5]))):
        same(g, e)
    seq, q = np.array([1.0, 3.0, 3.0, 7.0]), np.array([0.0, 3.0, 5.0, 8.0])
    for side in ("left", "right"):
        same(tf.searchsorted(tf.constant(seq), tf.constant(q), side=side),
             kops.searchsorted(seq, q, side=side))


def _check_gradient(op, shape, seed=0):
    """The tape's gradient of sum(op(x) * r) against central differences in float64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    r = rng.standard_normal(op(tf.constant(x)).shape)
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        loss = tf.reduce_sum(op(t) * r)
    got = tape.gradient(loss, t).numpy()
    expected = numerical_gradient(lambda: float(np.sum(op(tf.constant(x)).numpy() * r)), x)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name,op,shape", [
    ("boolean_mask", lambda t: tf.boolean_mask(t, [[True, False, True], [False, True, True]]),
     (2, 3)),
    ("boolean_mask axis", lambda t: tf.boolean_mask(t, [False, True, True], axis=1), (2, 3, 2)),
    ("gather_nd", lambda t: tf.gather_nd(t, [[0, 1], [1, 2], [0, 1]]), (2, 3)),
    ("gather_nd rows", lambda t: tf.gather_nd(t, [[1], [1]]), (2, 3)),
    ("tensordot", lambda t: tf.tensordot(t, tf.constant(np.arange(6.0).reshape(3, 2)), 1),
     (2, 3)),
    ("reverse", lambda t: tf.reverse(t, [0, 1]), (2, 3)),
    ("roll", lambda t: tf.roll(t, [1, -1], [0, 1]), (3, 4)),
    ("broadcast_to", lambda t: tf.broadcast_to(t, [4, 2, 3]), (2, 1)),
    ("meshgrid", lambda t: tf.meshgrid(t, t * 2)[1], (3,)),
    ("clip_by_norm", lambda t: tf.clip_by_norm(t, 0.5), (2, 3)),
    ("clip_by_global_norm",
     lambda t: tf.concat([tf.reshape(c, [-1]) for c in
                          tf.clip_by_global_norm([t, None, t[0] * 3.0], 1.0)[0]
                          if c is not None], 0), (2, 3)),
    ("scatter_nd", lambda t: tf.scatter_nd([[2], [0], [2]], t, [4, 3]), (3, 3)),
    ("tensor_scatter_nd_update",
     lambda t: tf.tensor_scatter_nd_update(t, [[1]], t[:1] * 2.0), (3, 2)),
    ("map_fn", lambda t: tf.map_fn(lambda row: row * tf.reduce_sum(row), t), (3, 2)),
    ("while_loop", lambda t: tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * t),
                                           (0, t))[1], (2, 2)),
    ("py_function", lambda t: tf.py_function(lambda v: tf.sin(v) * v, [t], tf.float64), (3,)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_gradients_flow_through_the_tape(name, op, shape):
    _check_gradient(op, shape)


# ----------------------------------------------------------------------------------------------
# control flow


def test_cond_case_and_while_loop_run_as_python():
    x = tf.constant(2.0)
    assert float(tf.cond(x > 1, lambda: x * 10, lambda: x)) == 20.0
    assert float(tf.cond(tf.constant([False]), lambda: x * 10, lambda: x)) == 2.0
    with pytest.raises(ValueError, match=r"pred must be a scalar, received shape \(2,\)"):
        tf.cond(tf.constant([True, False]), lambda: 1, lambda: 2)
    with pytest.raises(TypeError, match="false_fn must be callable"):
        tf.cond(True, lambda: 1, 2)
    assert tf.case([(x > 5, lambda: 1), (x > 1, lambda: 2)], default=lambda: 3) == 2
    assert tf.case([(x > 5, lambda: 1)], default=lambda: 3) == 3
    with pytest.raises(ValueError, match="exclusive=True but 2 predicates"):
        tf.case([(x > 0, lambda: 1), (x > 1, lambda: 2)], exclusive=True)

    i, total = tf.while_loop(lambda i, s: i < 5, lambda i, s: (i + 1, s + i), [0, 0])
    assert tf.is_tensor(i) and int(i) == 5 and int(total) == 10
    assert int(tf.while_loop(lambda v: v < 100, lambda v: v * 2, 3)) == 192
    assert int(tf.while_loop(lambda v: True, lambda v: v + 1, 0, maximum_iterations=7)) == 7
    Pair = collections.namedtuple("Pair", "a b")
    out = tf.while_loop(lambda p: p.a < 2, lambda p: (Pair(p.a + 1, p.b * 2),), (Pair(0, 1),))
    assert isinstance(out, tuple) and isinstance(out[0], Pair) and int(out[0].b) == 4
    with pytest.raises(ValueError, match=r"body returned 1 value\(s\) for 2 loop"):
        tf.while_loop(lambda i, s: i < 5, lambda i, s: [i + 1], [0, 0])
    with pytest.raises(ValueError, match="body must return the list or tuple structure"):
        tf.while_loop(lambda v: v < 5, lambda v: v + 1, [0])


def test_map_fn_vectorized_map_and_python_functions():
    x = tf.constant(np.arange(6.0, dtype=np.float32).reshape(3, 2))
    np.testing.assert_array_equal(tf.map_fn(lambda r: r * 2, x).numpy(), x.numpy() * 2)
    np.testing.assert_array_equal(tf.vectorized_map(lambda r: tf.reduce_sum(r), x).numpy(),
                                  [1, 5, 9])
    pair = tf.map_fn(lambda e: (e[0] + e[1], e[0] * e[1]), (x[:, 0], x[:, 1]))
    np.testing.assert_array_equal(pair[0].numpy(), [1, 5, 9])
    np.testing.assert_array_equal(pair[1].numpy(), [0, 6, 20])
    as_int = tf.map_fn(lambda r: tf.cast(r[0], tf.int32), x, fn_output_signature=tf.int32)
    assert as_int.dtype == tf.int32 and as_int.numpy().tolist() == [0, 2, 4]
    with pytest.raises(TypeError, match="fn returned float32 values where fn_output_signature "
                                        "is int32"):
        tf.map_fn(lambda r: r[0], x, fn_output_signature=tf.int32)
    with pytest.raises(ValueError, match="share the length of their first axis"):
        tf.map_fn(lambda e: e, (x, tf.constant([1.0])))
    with pytest.raises(ValueError, match="has length 0"):
        tf.map_fn(lambda e: e, tf.zeros((0, 2)))

    y = tf.py_function(lambda a, b: a + b, [x, 1.0], Tout=tf.float32)
    np.testing.assert_array_equal(y.numpy(), x.numpy() + 1)
    two = tf.py_function(lambda a: (a, a * 2), [x], Tout=[tf.float32, tf.float32])
    assert isinstance(two, list) and len(two) == 2
    with pytest.raises(TypeError, match="returned a float32 tensor where Tout is int32"):
        tf.py_function(lambda a: a, [x], Tout=tf.int32)
    seen = []
    z = tf.numpy_function(lambda a: (seen.append(type(a)), np.sqrt(a))[1], [x], tf.float32)
    assert seen == [np.ndarray] and tf.is_tensor(z) and z.dtype == tf.float32
    np.testing.assert_allclose(z.numpy(), np.sqrt(x.numpy()))


def test_tensor_array_as_eager_tensorflow_has_it():
    ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
    for i in range(3):
        ta = ta.write(i, tf.constant([1.0, 2.0]) * i)
    assert int(ta.size()) == 3 and ta.element_shape == (2,)
    np.testing.assert_array_equal(ta.stack().numpy(), [[0, 0], [1, 2], [2, 4]])
    np.testing.assert_array_equal(ta.read(1).numpy(), [1, 2])
    np.testing.assert_array_equal(ta.gather([2, 0]).numpy(), [[2, 4], [0, 0]])
    np.testing.assert_array_equal(ta.concat().numpy(), [0, 0, 1, 2, 2, 4])
    fixed = tf.TensorArray(tf.int32, size=3, element_shape=[2])
    fixed = fixed.scatter([2, 0], tf.constant([[5, 6], [7, 8]]))
    np.testing.assert_array_equal(fixed.stack().numpy(), [[7, 8], [0, 0], [5, 6]])  # zeros
    assert tf.TensorArray(tf.float32, size=0, element_shape=[3]).stack().shape == (0, 3)
    rows = tf.TensorArray(tf.float64, size=2).unstack(np.eye(2))
    np.testing.assert_array_equal(rows.stack().numpy(), np.eye(2))
    with pytest.raises(IndexError, match=r"index 3 is outside the array of size 3 \(dynamic"):
        fixed.write(3, [1, 2])
    with pytest.raises(TypeError, match="cannot write a float32 tensor to a TensorArray of int32"):
        fixed.write(0, tf.constant([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"element of shape \(3,\) does not match"):
        fixed.write(0, [1, 2, 3])
    with pytest.raises(ValueError, match="never written and the element shape is not known"):
        tf.TensorArray(tf.float32, size=2).read(0)
    with pytest.raises(ValueError, match="give a size, or dynamic_size=True"):
        tf.TensorArray(tf.float32)
    # a recurrence written as in TensorFlow's guides, differentiated through stack
    w = tf.Variable(0.5)
    with tf.GradientTape() as tape:
        out = tf.TensorArray(tf.float32, size=3)
        h = tf.constant(1.0)
        for i in range(3):
            h = h * w + 1.0
            out = out.write(i, h)
        loss = tf.reduce_sum(out.stack())
    # h1 = w + 1, h2 = w^2 + w + 1, h3 = w^3 + w^2 + w + 1: d/dw of the sum at w = 0.5
    assert float(tape.gradient(loss, w)) == pytest.approx(1 + (2 * 0.5 + 1)
                                                          + (3 * 0.25 + 2 * 0.5 + 1))


def test_module_finds_variables_depth_first_and_trains_as_the_tutorial():
    class Linear(tf.Module):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.w = tf.Variable(5.0)
            self.b = tf.Variable(0.0)
            self.frozen = tf.Variable([1.0, 2.0], trainable=False)

        def __call__(self, x):
            return self.w * x + self.b

    class Stack(tf.Module):
        def __init__(self):
            super().__init__()
            self.layers = [Linear(name="first"), {"k": Linear(name="second")}]
            self.dense = tf.keras.layers.Dense(2)
            self.dense.build((None, 3))
            self.scale = tf.Variable(3.0)

    model = Linear()
    assert model.name == "linear" and Stack().name == "stack"
    assert [float(v.numpy().sum()) for v in model.variables] == [0.0, 3.0, 5.0]  # b, frozen, w
    assert [float(v) for v in model.trainable_variables] == [0.0, 5.0]
    assert model.non_trainable_variables == (model.frozen,)
    stack = Stack()
    first, second = stack.layers[0], stack.layers[1]["k"]
    # attribute names in order (dense, layers, scale): own values first, then each submodule's
    expected = [stack.scale, *stack.dense.variables, first.b, first.frozen, first.w, second.b,
                second.frozen, second.w]
    assert [id(v) for v in stack.variables] == [id(v) for v in expected]
    assert [id(m) for m in stack.submodules] == [id(stack.dense), id(first), id(second)]
    assert tf.Module.with_name_scope(len) is len and model.name_scope.name == "linear"
    with pytest.raises(ValueError, match="'my model' is not a valid module name"):
        tf.Module(name="my model")

    # TensorFlow's "basic training loops" tutorial: y = 3x + 2 fitted by gradient descent
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50).astype(np.float32)
    y = 3.0 * x + 2.0
    w, b = 5.0, 0.0
    for _ in range(10):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - model(x)))
        dw, db = tape.gradient(loss, [model.w, model.b])
        model.w.assign_sub(0.1 * dw)
        model.b.assign_sub(0.1 * db)
        err = (w * x + b) - y       # the same step from d/dw, d/db of mean(err ** 2)
        w, b = w - 0.1 * 2 * np.mean(err * x), b - 0.1 * 2 * np.mean(err)
    assert float(model.w) == pytest.approx(w, rel=1e-5)
    assert float(model.b) == pytest.approx(b, rel=1e-5)


def test_name_scope_control_dependencies_and_logger_are_eager_no_ops():
    with tf.name_scope("encoder") as scope:
        assert scope == "encoder/"
        with tf.control_dependencies([tf.constant(1.0)]):
            y = tf.constant(2.0) * 3
    assert float(y) == 6.0
    with pytest.raises(ValueError, match="name must be a string, received 3"):
        tf.name_scope(3)
    with pytest.raises(TypeError, match="control_inputs must be a list"):
        tf.control_dependencies(tf.constant(1.0))
    assert tf.get_logger().name == "tensorflow"


# ----------------------------------------------------------------------------------------------
# a TensorFlow tutorial's custom training loop, unchanged


def _model(weights=None):
    model = tf.keras.Sequential([tf.keras.layers.Dense(8, activation="tanh", input_shape=(4,)),
                                 tf.keras.layers.Dense(3)])
    if weights is not None:
        model.set_weights(weights)
    return model


def test_tutorial_training_loop_with_tf_function_and_global_norm_clipping():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((5, 16, 4)).astype(np.float32) * 4
    ys = rng.integers(0, 3, (5, 16))
    tf.random.set_seed(0)
    model = _model()
    start = [w.copy() for w in model.get_weights()]
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = tf.keras.optimizers.SGD(0.5)
    norms = []

    @tf.function(jit_compile=True, reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        grads, norm = tf.clip_by_global_norm(grads, 1.0)
        norms.append(float(norm))
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for x, y in zip(xs, ys):
        train_step(tf.constant(x), tf.constant(y))

    # the same loop without the decorator, clipping computed by hand in NumPy
    plain = _model(start)
    plain_optimizer = tf.keras.optimizers.SGD(0.5)
    for x, y in zip(xs, ys):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, plain(x, training=True))
        grads = [g.numpy() for g in tape.gradient(loss, plain.trainable_variables)]
        norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
        grads = [g * (1.0 / max(norm, 1.0)) for g in grads]
        plain_optimizer.apply_gradients(zip(grads, plain.trainable_variables))
    assert max(norms) > 1.0  # the clipping did act
    for got, expected in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# tf.matmul / tf.norm signatures, tf.linalg, tf.image


def test_matmul_and_norm_take_tensorflow_arguments():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 4))
    b = rng.standard_normal((2, 5, 4))
    np.testing.assert_allclose(tf.matmul(a, b, transpose_b=True).numpy(),
                               a @ np.swapaxes(b, 1, 2))
    c = rng.standard_normal((2, 3, 5))
    np.testing.assert_allclose(tf.linalg.matmul(a, c, adjoint_a=True).numpy(),
                               np.swapaxes(a, 1, 2) @ c)
    np.testing.assert_allclose(tf.linalg.matvec(a, b[:, 0]).numpy(),
                               np.einsum("bij,bj->bi", a, b[:, 0]))
    m = a[0]
    assert float(tf.norm(m)) == pytest.approx(np.sqrt((m ** 2).sum()))
    assert float(tf.norm(m, ord="euclidean")) == pytest.approx(np.sqrt((m ** 2).sum()))
    np.testing.assert_allclose(tf.norm(a).numpy(), np.sqrt((a ** 2).sum()))  # a vector
    np.testing.assert_allclose(tf.norm(a, ord=1, axis=[-2, -1]).numpy(),
                               np.linalg.norm(a, 1, axis=(-2, -1)))
    np.testing.assert_allclose(tf.norm(a, ord=np.inf, axis=(1, 2), keepdims=True).numpy(),
                               np.linalg.norm(a, np.inf, axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(tf.norm(a, ord=3, axis=-1).numpy(),
                               np.linalg.norm(a, 3, axis=-1))
    np.testing.assert_allclose(tf.linalg.norm(a, ord=np.inf, axis=1).numpy(),
                               np.abs(a).max(axis=1))
    with pytest.raises(ValueError, match="matrix norms are 'euclidean'/'fro', 1 and np.inf"):
        tf.norm(m, ord=2, axis=(0, 1))
    assert float(tf.norm(m, ord="fro", axis=[0, 1])) == pytest.approx(np.sqrt((m ** 2).sum()))
    with pytest.raises(ValueError, match="'fro' is a matrix norm"):
        tf.norm(m, ord="fro")
    with pytest.raises(ValueError, match="ord must be 'euclidean', 'fro'"):
        tf.norm(m, ord=-1)
    assert float(tf.linalg.global_norm([tf.constant([3.0]), None, tf.constant([4.0])])) == 5.0


def test_linalg_against_numpy():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 3)) + 3 * np.eye(3)
    b = rng.standard_normal((2, 3, 2))
    x = tf.constant(a)
    np.testing.assert_allclose(tf.linalg.inv(x).numpy(), np.linalg.inv(a), rtol=1e-10)
    np.testing.assert_allclose(tf.linalg.inv(x, adjoint=True).numpy(),
                               np.linalg.inv(np.swapaxes(a, 1, 2)), rtol=1e-10)
    np.testing.assert_allclose(tf.linalg.det(x).numpy(), np.linalg.det(a), rtol=1e-10)
    sign, logdet = tf.linalg.slogdet(x)
    np.testing.assert_allclose(sign.numpy() * np.exp(logdet.numpy()), np.linalg.det(a),
                               rtol=1e-10)
    np.testing.assert_allclose(tf.linalg.solve(x, b).numpy(), np.linalg.solve(a, b),
                               rtol=1e-10)
    np.testing.assert_allclose(tf.linalg.solve(x, b, adjoint=True).numpy(),
                               np.linalg.solve(np.swapaxes(a, 1, 2), b), rtol=1e-10)
    np.testing.assert_array_equal(tf.linalg.diag_part(x).numpy(), np.diagonal(a, 0, 1, 2))
    r = np.arange(12.0).reshape(3, 4)
    for k in (-2, -1, 0, 1, 3):
        np.testing.assert_array_equal(tf.linalg.diag_part(r, k=k).numpy(), np.diagonal(r, k))
        np.testing.assert_array_equal(tf.linalg.diag(tf.constant([1.0, 2.0]), k=k).numpy(),
                                      np.diag([1.0, 2.0], k))
    np.testing.assert_array_equal(tf.linalg.diag(tf.constant([[1, 2], [3, 4]])).numpy(),
                                  [np.diag([1, 2]), np.diag([3, 4])])
    ones = np.ones((4, 5))
    for lower, upper in ((1, 0), (0, -1), (-1, 1), (0, 0), (2, 3)):
        i, j = np.indices((4, 5))
        keep = ((lower < 0) | (i - j <= lower)) & ((upper < 0) | (j - i <= upper))
        np.testing.assert_array_equal(tf.linalg.band_part(ones, lower, upper).numpy(), keep)
    np.testing.assert_allclose(tf.linalg.trace(x).numpy(), np.trace(a, axis1=1, axis2=2))
    np.testing.assert_array_equal(tf.linalg.matrix_transpose(x).numpy(), np.swapaxes(a, 1, 2))
    v = rng.standard_normal((3, 4))
    np.testing.assert_allclose(tf.linalg.l2_normalize(v, axis=1).numpy(),
                               v / np.linalg.norm(v, axis=1, keepdims=True))
    np.testing.assert_array_equal(tf.linalg.l2_normalize(np.zeros(3)).numpy(), np.zeros(3))
    with pytest.raises(ValueError, match=r"square matrices \(\.\.\., N, N\), received shape"):
        tf.linalg.inv(tf.ones((2, 3)))
    with pytest.raises(TypeError, match="must be a float tensor, received dtype int32"):
        tf.linalg.det(tf.constant([[1, 0], [0, 1]]))
    with pytest.raises(AttributeError, match="fastdl does not provide tf.linalg.qr"):
        tf.linalg.qr


def test_linalg_matches_real_keras_ops(kops):
    rng = np.random.default_rng(4)
    a = (rng.standard_normal((2, 3, 3)) + 3 * np.eye(3)).astype(np.float32)
    b = rng.standard_normal((2, 3, 2)).astype(np.float32)
    for got, expected in ((tf.linalg.inv(a), kops.inv(a)), (tf.linalg.det(a), kops.det(a)),
                          (tf.linalg.solve(a, b), kops.solve(a, b)),
                          (tf.linalg.diag_part(a), kops.diagonal(a, axis1=-2, axis2=-1)),
                          (tf.linalg.trace(a), kops.trace(a, axis1=-2, axis2=-1)),
                          (tf.norm(a, ord=1, axis=(1, 2)), kops.norm(a, ord=1, axis=(1, 2)))):
        np.testing.assert_allclose(got.numpy(), kops.convert_to_numpy(expected), rtol=1e-5,
                                   atol=1e-6)


def test_image_basics():
    rng = np.random.default_rng(5)
    img = rng.random((2, 4, 5, 3)).astype(np.float32)
    x = tf.constant(img)
    np.testing.assert_array_equal(tf.image.flip_left_right(x).numpy(), img[:, :, ::-1])
    np.testing.assert_array_equal(tf.image.flip_up_down(x[0]).numpy(), img[0, ::-1])
    flipped = tf.image.random_flip_left_right(tf.constant(np.repeat(img[:1], 64, 0)), seed=3)
    which = [bool(np.array_equal(f, img[0, :, ::-1])) for f in flipped.numpy()]
    assert all(w or np.array_equal(f, img[0]) for w, f in zip(which, flipped.numpy()))
    assert 10 < sum(which) < 54  # each image flips on its own coin
    up = tf.image.random_flip_up_down(x[0], seed=0).numpy()
    assert np.array_equal(up, img[0]) or np.array_equal(up, img[0, ::-1])
    np.testing.assert_allclose(tf.image.adjust_brightness(x, 0.25).numpy(), img + 0.25)
    u8 = np.array([[[0, 100, 250]]], np.uint8)
    # integer images are adjusted in [0, 1] floats and converted back with saturation
    np.testing.assert_array_equal(tf.image.adjust_brightness(u8, 0.1).numpy(),
                                  np.clip((u8 / 255.0 + 0.1) * 255.5, 0, 255).astype(np.uint8))
    gray = tf.image.rgb_to_grayscale(x)
    assert gray.shape == (2, 4, 5, 1)
    np.testing.assert_allclose(gray.numpy()[..., 0], img @ np.array([0.2989, 0.5870, 0.1140]),
                               rtol=1e-6)
    np.testing.assert_array_equal(tf.image.grayscale_to_rgb(gray).numpy(),
                                  np.repeat(gray.numpy(), 3, -1))
    mean = img.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(tf.image.adjust_contrast(x, 1.5).numpy(),
                               (img - mean) * 1.5 + mean, rtol=1e-5, atol=1e-6)
    std = np.maximum(img.std(axis=(1, 2, 3), keepdims=True), 1 / np.sqrt(60))
    assert tf.image.per_image_standardization(x).dtype == tf.float32
    assert tf.image.per_image_standardization(u8).dtype == tf.float32
    np.testing.assert_allclose(tf.image.per_image_standardization(x).numpy(),
                               (img - img.mean(axis=(1, 2, 3), keepdims=True)) / std,
                               rtol=1e-5, atol=1e-5)
    f = np.array([0.0, 0.5, 1.0], np.float32)
    np.testing.assert_array_equal(tf.image.convert_image_dtype(f, tf.uint8).numpy(),
                                  (f * 255.5).astype(np.uint8))
    np.testing.assert_allclose(tf.image.convert_image_dtype(u8, tf.float32).numpy(), u8 / 255)
    np.testing.assert_array_equal(
        tf.image.convert_image_dtype(np.array([1, 127], np.int8), tf.int16).numpy(),
        [256, 32512])
    np.testing.assert_array_equal(
        tf.image.convert_image_dtype(np.array([1000, 4000], np.int16), tf.uint8).numpy(),
        [1000 // 128, 4000 // 128])
    assert tf.image.resize(x, [8, 6]).shape == (2, 8, 6, 3)
    near = tf.image.resize(u8, (2, 6), method="nearest")
    assert near.dtype == tf.uint8 and near.shape == (2, 6, 3)
    with pytest.raises(ValueError, match=r"\(H, W, C\) or \(B, H, W, C\), received shape"):
        tf.image.flip_left_right(tf.ones((4, 5)))
    with pytest.raises(ValueError, match="method must be 'bilinear' or 'nearest'"):
        tf.image.resize(x, (2, 2), method="bicubic")


def test_image_resize_and_grayscale_match_real_keras_ops(kops):
    img = np.random.default_rng(6).random((2, 5, 7, 3)).astype(np.float32)
    for method in ("bilinear", "nearest"):
        np.testing.assert_allclose(
            tf.image.resize(img, (8, 4), method=method).numpy(),
            kops.convert_to_numpy(kops.image.resize(img, (8, 4), interpolation=method,
                                                    antialias=False)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tf.image.rgb_to_grayscale(img).numpy(),
                               kops.convert_to_numpy(kops.image.rgb_to_grayscale(img)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,op,shape", [
    ("matmul transpose_b", lambda t: tf.matmul(t, t, transpose_b=True), (2, 3)),
    ("inv", lambda t: tf.linalg.inv(t + 3 * np.eye(3)), (2, 3, 3)),
    ("inv adjoint", lambda t: tf.linalg.inv(t + 3 * np.eye(3), adjoint=True), (3, 3)),
    ("det", lambda t: tf.linalg.det(t + np.eye(3)), (2, 3, 3)),
    ("slogdet", lambda t: tf.linalg.slogdet(t + 3 * np.eye(3))[1], (3, 3)),
    ("solve", lambda t: tf.linalg.solve(t[:, :3] + 3 * np.eye(3), t[:, 3:]), (3, 5)),
    ("solve adjoint", lambda t: tf.linalg.solve(t[:, :3] + 3 * np.eye(3), t[:, 3:],
                                                adjoint=True), (3, 5)),
    ("diag_part", lambda t: tf.linalg.diag_part(t, k=1), (2, 3, 4)),
    ("diag", lambda t: tf.linalg.diag(t, k=-1), (2, 3)),
    ("band_part", lambda t: tf.linalg.band_part(t, 1, 0), (3, 3)),
    ("norm ord=1 matrix", lambda t: tf.norm(t, ord=1, axis=(0, 1)), (3, 3)),
    ("l2_normalize", lambda t: tf.linalg.l2_normalize(t, axis=-1), (2, 3)),
    ("flip_left_right", lambda t: tf.image.flip_left_right(t), (2, 2, 3, 1)),
    ("random_flip_up_down", lambda t: tf.image.random_flip_up_down(t, seed=1), (3, 2, 2, 1)),
    ("adjust_contrast", lambda t: tf.image.adjust_contrast(t, 0.7), (2, 2, 3)),
    ("rgb_to_grayscale", lambda t: tf.image.rgb_to_grayscale(t), (2, 2, 3)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_linalg_and_image_gradients(name, op, shape):
    _check_gradient(op, shape)
