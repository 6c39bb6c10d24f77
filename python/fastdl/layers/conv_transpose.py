"""Conv1DTranspose and Conv2DTranspose (channels last; Keras kernel layout
``(*kernel_size, filters, in_channels)``) on the C++ 2-D conv kernels.

A transposed convolution is the input gradient of a convolution whose kernel
``(KH, KW, filters, in_channels)`` maps ``filters`` channels to ``in_channels``: the forward
runs the conv backward-data kernel, the backward the conv forward kernel (dx) and the
weight-gradient kernel (dkernel). The kernels run the "full" transposed convolution (valid
padding, ``(in - 1) * stride + (kernel - 1) * dilation + 1`` steps); the layer's output is the
window of it that Keras's (TensorFlow's) padding selects: it starts ``pad_before`` steps in
(``"same"``: half of the total padding, the smaller half first) and runs past the end with
zeros when ``output_padding`` asks for more.
"""
import numpy as np

from fastdl import _core, activations, constraints, initializers, regularizers
from fastdl.layers.base import (as_c_array, InputSpec, Layer, check_choice, check_int_tuple,
                                check_positive_int, shape_str)
from fastdl.layers.convolutional import check_bool, check_data_format, check_rank, to_2d


def conv_transpose_length(size, kernel_size, stride, dilation, padding, output_padding):
    """Keras's output length of one axis of a transposed convolution."""
    eff = (kernel_size - 1) * dilation + 1
    if padding == "valid":
        extra = max(eff, stride) - eff if output_padding is None else output_padding
        return (size - 1) * stride + eff + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + eff % 2 + output_padding


def conv_transpose_pad_before(size, kernel_size, stride, dilation, padding, out):
    """Where the output starts in the full transposed convolution: TensorFlow's padding of
    the convolution that maps ``out`` steps back to ``size`` steps."""
    if padding == "valid":
        return 0
    eff = (kernel_size - 1) * dilation + 1
    return max((size - 1) * stride + eff - out, 0) // 2


class _ConvTranspose(Layer):
    """Transposed convolution of rank 1 or 2 (rank 1 runs with height 1).

    Keras 3 signature and defaults; kernel ``(*kernel_size, filters, in_channels)``;
    ``output_padding`` (None or ints < strides) adds steps at the end of each axis.
    """

    rank = None
    input_gradient_needed = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        r = self.rank
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = check_int_tuple(kernel_size, r, "kernel_size")
        self.strides = check_int_tuple(strides, r, "strides")
        self.padding = check_choice(padding, {"valid", "same"}, "padding")
        self.output_padding = (None if output_padding is None else
                               check_int_tuple(output_padding, r, "output_padding",
                                               allow_zero=True))
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError("Each output_padding must be less than its stride. Received: "
                             f"output_padding={self.output_padding}, strides={self.strides}")
        self.data_format = check_data_format(data_format)
        self.dilation_rate = check_int_tuple(dilation_rate, r, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.activation = activations.get(activation)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(ndim=r + 2)
        self.kernel = self.bias = None
        self._cache = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels < 1:
            raise ValueError(f"Layer {self.name!r} needs a known, positive channel count (last "
                             f"axis). Received input shape {shape_str(input_shape)}")
        self.kernel = self.add_weight(
            "kernel", self.kernel_size + (self.filters, channels), self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer,
                                     regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
                     if self.use_bias else None)
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={-1: channels})
        super().build(input_shape)

    def _lengths(self, spatial):
        """Per axis: (output length, full length, pad_before)."""
        ops = self.output_padding or (None,) * self.rank
        out = []
        for n, k, s, d, op in zip(spatial, self.kernel_size, self.strides, self.dilation_rate,
                                  ops):
            length = conv_transpose_length(n, k, s, d, self.padding, op)
            out.append((length, (n - 1) * s + (k - 1) * d + 1,
                        conv_transpose_pad_before(n, k, s, d, self.padding, length)))
        return out

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        spatial = input_shape[1:-1]
        if any(d is None for d in spatial):
            known = [None if d is None else self._lengths([d] * self.rank)[i][0]
                     for i, d in enumerate(spatial)]
            return (input_shape[0], *known, self.filters)
        return (input_shape[0], *(o for o, _, _ in self._lengths(spatial)), self.filters)

    def _windows(self, spatial):
        """2-D (full sizes, output sizes, the slices of the full output that the output keeps,
        the slices of the output they fill); rank 1 gets a height of 1."""
        lead = [(1, 1, 0)] * (2 - self.rank)
        full, out, src, dst = [], [], [], []
        for n_out, n_full, pad in lead + self._lengths(spatial):
            keep = max(min(n_out, n_full - pad), 0)
            full.append(n_full)
            out.append(n_out)
            src.append(slice(pad, pad + keep))
            dst.append(slice(0, keep))
        return tuple(full), tuple(out), tuple(src), tuple(dst)

    def _args(self):
        lead = (1,) * (2 - self.rank)
        return (*(lead + self.strides), "valid", *(lead + self.dilation_rate), 1)

    def _kernel_2d(self):
        return self.kernel.reshape((1,) * (2 - self.rank) + self.kernel.shape)

    def _output(self, y):
        return y.reshape(y.shape[0], *y.shape[2:]) if self.rank == 1 else y

    def call(self, x, training=False):
        x = to_2d(as_c_array(x))
        full_hw, out_hw, src, dst = self._windows(x.shape[3 - self.rank:3])
        n = x.shape[0]
        # the conv's input only gives the kernel its shape: no gradient of it is read
        shape_only = np.empty((n, *full_hw, self.filters), dtype=x.dtype)
        full = _core.conv2d_backward(x, shape_only, self._kernel_2d(), *self._args(),
                                     True, False, False, None)[0]
        if full.shape[1:3] == out_hw:
            z = full
        else:
            z = np.zeros((n, *out_hw, self.filters), dtype=x.dtype)
            z[:, dst[0], dst[1]] = full[:, src[0], src[1]]
        if self.bias is not None:
            z += self.bias
        y = self.activation(z) if self.activation is not activations.linear else z
        self._cache = (x, full.shape, src, dst, z, y)
        return self._output(y)

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        x, full_shape, src, dst, z, y = self._cache
        dy = as_c_array(dy, dtype=self.dtype)
        if dy.shape != self._output(y).shape:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(self._output(y).shape)}")
        dz = to_2d(dy)
        if self.activation is not activations.linear:
            dz = as_c_array(self.activation.backward(z, y, dz), dtype=self.dtype)
        if dz.shape == full_shape:
            dfull = dz
        else:
            dfull = np.zeros(full_shape, dtype=self.dtype)
            dfull[:, src[0], src[1]] = dz[:, dst[0], dst[1]]
        kernel, args = self._kernel_2d(), self._args()
        train = self._trainable
        dx = None
        if self.input_gradient_needed:
            dx = self._output(_core.conv2d_forward(dfull, kernel, None, *args, False))
        if train:
            # dkernel: the conv's weight gradient with input dfull and upstream gradient x
            dk = _core.conv2d_backward(x, dfull, kernel, *args, False, True, False, None)[1]
            self.grads = [dk.reshape(self.kernel.shape)]
            if self.use_bias:
                self.grads.append(dz.sum(axis=(0, 1, 2)))
        else:
            self.grads = []
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      padding=self.padding, output_padding=self.output_padding,
                      data_format=self.data_format, dilation_rate=self.dilation_rate,
                      activation=activations.serialize(self.activation), use_bias=self.use_bias,
                      kernel_initializer=initializers.serialize(self.kernel_initializer),
                      bias_initializer=initializers.serialize(self.bias_initializer),
                      kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                      bias_regularizer=regularizers.serialize(self.bias_regularizer),
                      activity_regularizer=regularizers.serialize(self.activity_regularizer),
                      kernel_constraint=constraints.serialize(self.kernel_constraint),
                      bias_constraint=constraints.serialize(self.bias_constraint))
        return config


class Conv1DTranspose(_ConvTranspose):
    """Transposed 1-D convolution on ``(batch, steps, channels)``; kernel
    ``(kernel_size, filters, in_channels)``."""

    rank = 1


class Conv2DTranspose(_ConvTranspose):
    """Transposed 2-D convolution on NHWC inputs; kernel ``(kh, kw, filters, in_channels)``."""

    rank = 2


Convolution1DTranspose = Conv1DTranspose
Convolution2DTranspose = Conv2DTranspose
