"""``tf.nn`` names (``import fastdl as tf; tf.nn.relu(...)``) over ``fastdl.ops``."""
from fastdl.ops.numpy import tanh  # noqa: F401
from fastdl.ops.tf_compat import (  # noqa: F401
    avg_pool2d, batch_normalization, conv1d, conv2d, dropout, elu, gelu, l2_loss, leaky_relu,
    log_softmax, max_pool2d, moments, relu, relu6, selu, sigmoid,
    sigmoid_cross_entropy_with_logits, silu, softmax, softmax_cross_entropy_with_logits,
    softplus, sparse_softmax_cross_entropy_with_logits)

swish = silu


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
