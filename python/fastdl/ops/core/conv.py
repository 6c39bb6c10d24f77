"""2-D convolution on fastdl's C++ kernels: NHWC input, kernel ``(KH, KW, C/groups, F)``.

Padding follows TensorFlow/Keras: ``"valid"`` uses no padding; ``"same"`` gives
``OH = ceil(H / stride)`` output rows with total padding
``max((OH-1)*stride + (KH-1)*dilation + 1 - H, 0)``, the smaller half on the top/left.
Inputs of any memory layout are accepted (converted explicitly with
:func:`fastdl.ops.core.as_float_array`); dtypes other than float32/float64 raise ``TypeError``.

Algorithms: 3x3, stride-1, undilated, ungrouped convolutions with at least 16 input channels
and 16 filters run Winograd's F(2x2, 3x3) (2.25x fewer multiply-adds); every other shape runs
im2col + GEMM. Both agree to rounding (float32: ~1e-6 relative). One difference: an infinite
input that direct convolution turns into +-inf outputs can give NaN under Winograd (its
transforms subtract the inf from itself). :func:`set_algorithm` picks one by hand.
"""
import numpy as np

from fastdl import _core
from fastdl.ops.core import as_float_array

_INT64_MAX = 2**63 - 1


def int_pair(value, name):
    """An int >= 1 or a 2-tuple/list of them -> tuple of two ints. Bools are rejected."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be an int or a tuple of 2 ints, received {value!r}")
    out = []
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int or a tuple of 2 ints, received {value!r}")
        if not 1 <= v <= _INT64_MAX:
            raise ValueError(f"{name} must hold positive integers, received {value!r}")
        out.append(int(v))
    return tuple(out)


def positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, received {type(value).__name__} {value!r}")
    if not 1 <= value <= _INT64_MAX:
        raise ValueError(f"{name} must be a positive integer, received {value!r}")
    return int(value)


def padding_mode(padding):
    """'valid' or 'same' (case-insensitive)."""
    if not isinstance(padding, str):
        raise TypeError(f"padding must be 'valid' or 'same', received {padding!r}")
    mode = padding.lower()
    if mode not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', received {padding!r}")
    return mode


def _activation(activation):
    if activation is None or activation == "linear":
        return False
    if activation == "relu":
        return True
    raise ValueError("activation must be None, 'linear' or 'relu' (fused), "
                     f"received {activation!r}")


def set_algorithm(name):
    """Algorithm of 3x3 stride-1 convolutions, for every later call in the process:
    ``"auto"`` (the default: Winograd when C and F are >= 16), ``"im2col"`` or ``"winograd"``
    (forced, for any channel count). Other shapes always run im2col."""
    if not isinstance(name, str):
        raise TypeError(f"algorithm must be a str, received {type(name).__name__} {name!r}")
    _core.conv2d_set_algorithm(name)


def get_algorithm():
    """The name set by :func:`set_algorithm` (``"auto"`` unless changed)."""
    return _core.conv2d_algorithm()


def conv2d_output_size(size, kernel_size, stride, dilation, padding):
    """Output length of one spatial axis (0 when the window does not fit with 'valid')."""
    eff = (kernel_size - 1) * dilation + 1
    if padding == "same":
        return -(-size // stride)
    return 0 if eff > size else (size - eff) // stride + 1


def conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1,
           activation=None, max_pool=None):
    """``y = activation(conv2d(x, kernel) + bias)``.

    x ``(N, H, W, C)``, kernel ``(KH, KW, C/groups, F)``, bias ``(F,)`` or None
    -> y ``(N, OH, OW, F)`` of x's dtype. ``activation`` None/'linear' or 'relu' (fused into the
    output pass). ``max_pool=(ph, pw)`` fuses a following max pooling (windows = strides, valid
    padding): y is then ``(N, OH // ph, OW // pw, F)``, bitwise ``pool.max_pool2d`` of the
    unpooled output, computed without writing that output (inference: no argmax is kept).
    Raises ``ValueError`` for inconsistent shapes or hyperparameters and an output
    size below 1, ``TypeError`` for non-float or mixed dtypes and non-integer hyperparameters.
    """
    x = as_float_array(x, "x")
    kernel = as_float_array(kernel, "kernel", dtype=x.dtype)
    if bias is not None:
        bias = as_float_array(bias, "bias", dtype=x.dtype)
    sh, sw = int_pair(strides, "strides")
    dh, dw = int_pair(dilation_rate, "dilation_rate")
    options = dict(stride_h=sh, stride_w=sw, padding=padding_mode(padding), dilation_h=dh,
                   dilation_w=dw, groups=positive_int(groups, "groups"),
                   relu=_activation(activation))
    if max_pool is None:
        return _core.conv2d_forward(x, kernel, bias, **options)
    ph, pw = int_pair(max_pool, "max_pool")
    return _core.conv2d_max_pool_forward(x, kernel, bias, **options, pool_h=ph, pool_w=pw,
                                         training=False)[0]


def conv2d_backward(dy, x, kernel, strides=1, padding="valid", dilation_rate=1, groups=1,
                    relu_output=None, need_dx=True, need_dkernel=True, need_dbias=True):
    """Gradients ``(dx, dkernel, dbias)`` of :func:`conv2d` given ``dy = dL/dy``.

    ``relu_output``: the forward's output when it ran with ``activation='relu'`` (``dy`` is then
    masked by ``relu_output > 0``), else None. ``need_dx`` / ``need_dkernel`` / ``need_dbias``
    set to False skip those gradients (returned as None).
    """
    x = as_float_array(x, "x")
    kernel = as_float_array(kernel, "kernel", dtype=x.dtype)
    dy = as_float_array(dy, "dy", dtype=x.dtype)
    if relu_output is not None:
        relu_output = as_float_array(relu_output, "relu_output", dtype=x.dtype)
    for flag, name in ((need_dx, "need_dx"), (need_dkernel, "need_dkernel"),
                       (need_dbias, "need_dbias")):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, received {flag!r}")
    sh, sw = int_pair(strides, "strides")
    dh, dw = int_pair(dilation_rate, "dilation_rate")
    return _core.conv2d_backward(dy, x, kernel, stride_h=sh, stride_w=sw,
                                 padding=padding_mode(padding), dilation_h=dh, dilation_w=dw,
                                 groups=positive_int(groups, "groups"), need_dx=bool(need_dx),
                                 need_dkernel=bool(need_dkernel), need_dbias=bool(need_dbias),
                                 relu_output=relu_output)
