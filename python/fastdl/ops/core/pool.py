"""2-D max and average pooling on fastdl's C++ kernels (NHWC).

Windows follow TensorFlow/Keras's valid/same rule (see :mod:`fastdl.ops.core.conv`); padded positions
never take part: max pooling ignores them and average pooling divides by the number of real
elements in each window. ``strides=None`` means ``pool_size``.
"""
import numpy as np

from fastdl import _core
from fastdl.ops.core import as_float_array
from fastdl.ops.core.conv import int_pair, padding_mode


def _window(pool_size, strides, padding):
    """The kernels' window keywords: pool_h, pool_w, stride_h, stride_w, padding."""
    ph, pw = int_pair(pool_size, "pool_size")
    sh, sw = (ph, pw) if strides is None else int_pair(strides, "strides")
    return dict(pool_h=ph, pool_w=pw, stride_h=sh, stride_w=sw, padding=padding_mode(padding))


def _input_hw(input_shape):
    """The kernels' input_h and input_w keywords, from x's shape (N, H, W, C)."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 4:
        raise TypeError("input_shape must be the 4-tuple (N, H, W, C) of x, "
                        f"received {input_shape!r}")
    h, w = int_pair(tuple(input_shape[1:3]), "input_shape[1:3]")
    return dict(input_h=h, input_w=w)


def max_pool2d(x, pool_size, strides=None, padding="valid"):
    """``(y, argmax)``: window maxima of x ``(N, H, W, C)`` and their flat int64 indices into x."""
    x = as_float_array(x, "x")
    return _core.max_pool2d_forward(x, **_window(pool_size, strides, padding))


def max_pool2d_backward(dy, argmax, input_shape, pool_size, strides=None, padding="valid"):
    """dL/dx ``input_shape`` of :func:`max_pool2d`: ``dy`` added at ``argmax``."""
    dy = as_float_array(dy, "dy")
    if not isinstance(argmax, np.ndarray) or argmax.dtype != np.int64:
        raise TypeError("argmax must be the int64 array max_pool2d returned, received "
                        f"{getattr(argmax, 'dtype', type(argmax).__name__)}")
    argmax = np.require(argmax, requirements="CA")
    return _core.max_pool2d_backward(dy, argmax, **_input_hw(input_shape),
                                     **_window(pool_size, strides, padding))


def avg_pool2d(x, pool_size, strides=None, padding="valid"):
    """Window means of x ``(N, H, W, C)`` (padding excluded from the count)."""
    x = as_float_array(x, "x")
    return _core.avg_pool2d_forward(x, **_window(pool_size, strides, padding))


def avg_pool2d_backward(dy, input_shape, pool_size, strides=None, padding="valid"):
    """dL/dx ``input_shape`` of :func:`avg_pool2d`."""
    dy = as_float_array(dy, "dy")
    return _core.avg_pool2d_backward(dy, **_input_hw(input_shape),
                                     **_window(pool_size, strides, padding))
