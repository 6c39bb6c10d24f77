"""TensorFlow names over fastdl.ops (``import fastdl as tf``) and the keras namespaces."""
import subprocess
import sys

import numpy as np
import pytest

import fastdl as tf


def test_a_tensorflow_training_step_runs_unchanged():
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    y = tf.constant([[1.0], [0.0]])
    w = tf.Variable(tf.zeros((2, 1)))
    b = tf.Variable(0.5)
    with tf.GradientTape() as tape:
        pred = tf.sigmoid(tf.matmul(x, w) + b)
        loss = tf.reduce_mean(tf.square(pred - y))
    dw, db = tape.gradient(loss, [w, b])
    p = 1 / (1 + np.exp(-0.5))
    per = 2 * (p - y.numpy()) * p * (1 - p) / 2
    np.testing.assert_allclose(dw.numpy(), x.numpy().T @ per, rtol=1e-6)
    np.testing.assert_allclose(db.numpy(), per.sum(), rtol=1e-6)


def test_tf_names_follow_tensorflow_signatures():
    x = tf.constant(np.arange(6.0).reshape(2, 3))
    assert tf.reduce_sum(x, axis=1).numpy().tolist() == [3.0, 12.0]
    assert tf.reduce_max(x, 0, keepdims=True).shape == (1, 3)
    assert tf.concat([x, x], axis=0).shape == (4, 3)
    assert tf.reshape(x, [3, 2]).shape == (3, 2)
    assert tf.cast(x, tf.int32).dtype == tf.int32
    assert tf.shape(x).numpy().tolist() == [2, 3] and tf.shape(x).dtype == "int32"
    assert tf.one_hot([0, 2], 3).numpy().tolist() == [[1, 0, 0], [0, 0, 1]]
    assert tf.one_hot([1], 2, on_value=5.0, off_value=-1.0).numpy().tolist() == [[-1, 5]]
    assert tf.gather(x, [1, 1]).shape == (2, 3)
    assert tf.range(3).numpy().tolist() == [0, 1, 2]
    assert tf.fill([2], 7).numpy().tolist() == [7, 7]
    assert [p.shape for p in tf.split(x, [1, 2], axis=1)] == [(2, 1), (2, 2)]
    assert tf.clip_by_value(x, 1.0, 2.0).numpy().max() == 2.0
    assert tf.constant(1.0, shape=(2,)).numpy().tolist() == [1.0, 1.0]
    assert tf.math.reduce_logsumexp(x).shape == ()
    assert tf.math.is_nan(x).dtype == tf.bool
    np.testing.assert_allclose(tf.nn.softmax(x).numpy().sum(-1), [1, 1], rtol=1e-6)
    np.testing.assert_allclose(tf.nn.leaky_relu(tf.constant([-1.0]), alpha=0.1).numpy(), [-0.1])
    assert tf.nn.conv2d(np.ones((1, 4, 4, 1), np.float32), np.ones((2, 2, 1, 1), np.float32),
                        strides=[1, 2, 2, 1], padding="VALID").shape == (1, 2, 2, 1)
    assert tf.nn.max_pool2d(np.ones((1, 4, 4, 1), np.float32), 2, 2, "SAME").shape == (1, 2, 2, 1)
    labels = np.array([[0.0, 1.0]])
    logits = np.array([[1.0, 3.0]])
    np.testing.assert_allclose(tf.nn.softmax_cross_entropy_with_logits(labels, logits).numpy(),
                               [np.log1p(np.exp(-2.0))])
    with pytest.raises(ValueError, match="padding must be 'SAME' or 'VALID', received 'full'"):
        tf.nn.conv2d(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)), 1, "full")


def test_dtypes_compare_with_strings_numpy_and_each_other():
    assert tf.float32 == "float32" and tf.float32 == np.float32 and tf.float32 != tf.float64
    assert tf.int32.as_numpy_dtype is np.int32 and tf.float16.is_floating
    assert np.dtype(tf.float64) == np.float64 and tf.as_dtype(np.int64) == tf.int64
    assert tf.constant(1).dtype == tf.int32 and tf.constant(1.0).dtype == tf.float32


def test_random_is_seeded_by_set_seed():
    tf.random.set_seed(3)
    a = tf.random.normal((3,)).numpy()
    tf.random.set_seed(3)
    np.testing.assert_array_equal(a, tf.random.normal((3,)).numpy())
    u = tf.random.uniform((1000,), minval=2.0, maxval=3.0)
    assert u.dtype == "float32" and 2.0 <= float(tf.reduce_min(u)) and float(tf.reduce_max(u)) < 3


def test_versions_and_keras_settings():
    assert tf.version.VERSION == tf.__version__ == tf.keras.__version__
    kb = tf.keras.backend
    assert kb.image_data_format() == "channels_last" and kb.epsilon() == 1e-7
    assert tf.keras.config.floatx() == "float32"
    tf.keras.config.set_epsilon(1e-5)
    try:
        assert tf.keras.backend.epsilon() == 1e-5
        # the ops' clipping follows the setting
        np.testing.assert_allclose(tf.keras.ops.binary_crossentropy(
            np.array([1.0]), np.array([0.0])).numpy(), [-np.log(1e-5)], rtol=1e-6)
    finally:
        tf.keras.config.set_epsilon(1e-7)
    with pytest.raises(ValueError, match="channels_last, received 'channels_first'"):
        tf.keras.config.set_image_data_format("channels_first")
    first = tf.layers.Dense(1).name
    tf.keras.backend.clear_session()
    assert tf.layers.Dense(1).name == first.split("_")[0]
    assert tf.keras.ops.relu is tf.ops.relu and tf.keras.random.normal is tf.random.normal


def test_import_fastdl_does_not_load_the_ops():
    code = ("import sys, fastdl; assert 'fastdl.ops' not in sys.modules; "
            "fastdl.reduce_mean; assert 'fastdl.ops' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=None)
