"""Conv1D and Conv2D (channels last, Keras kernel layout ``(*kernel_size, in/groups, filters)``)
on the C++ 2-D conv kernels; DepthwiseConv1D/2D (tap by tap in NumPy) and SeparableConv1D/2D
(that, then a 1x1 convolution on the C++ kernels)."""
import numpy as np

from fastdl import _core, activations, constraints, initializers, regularizers
from fastdl.layers.base import (as_c_array, InputSpec, Layer, check_choice, check_int_tuple,
                                check_positive_int, shape_str)
from fastdl.layers.core import _reject_unsupported
from fastdl.ops.core.conv import conv2d_output_size


def check_data_format(data_format):
    """fastdl layers are channels_last (NHWC) only."""
    if data_format is None or data_format == "channels_last":
        return "channels_last"
    if data_format == "channels_first":
        raise ValueError("fastdl layers support data_format='channels_last' (NHWC) only; "
                         "transpose channels_first inputs with np.transpose(x, (0, 2, 3, 1)). "
                         f"Received: data_format={data_format!r}")
    raise ValueError("data_format must be 'channels_last' or None. "
                     f"Received: data_format={data_format!r}")


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")
    return bool(value)


def spatial_output_shape(layer, input_shape, window, strides, dilation, padding, channels):
    """(N, *spatial output sizes, channels) of a windowed layer of any rank; ValueError naming
    the sizes when one is < 1. ``padding="causal"`` gives the sizes of ``"same"``."""
    padding_for_size = "same" if padding == "causal" else padding
    out = tuple(None if d is None else conv2d_output_size(d, k, s, r, padding_for_size)
                for d, k, s, r in zip(input_shape[1:-1], window, strides, dilation))
    if any(o is not None and o < 1 for o in out):
        what = "kernel_size" if hasattr(layer, "kernel_size") else "pool_size"
        raise ValueError(
            f"Layer {layer.name!r}: the output size {out} would be less than 1 for input "
            f"shape {shape_str(input_shape)} with {what}={tuple(window)}, "
            f"strides={tuple(strides)}, dilation_rate={tuple(dilation)} and padding={padding!r}")
    return (input_shape[0],) + out + (channels,)


def check_rank(layer, input_shape):
    """ValueError unless ``input_shape`` is (batch, *rank spatial axes, channels)."""
    if len(input_shape) != layer.rank + 2:
        axes = ("steps",) if layer.rank == 1 else ("height", "width")
        raise ValueError(f"Layer {layer.name!r} expects {layer.rank + 2}-D input (batch, "
                         f"{', '.join(axes)}, channels). Received input shape "
                         f"{shape_str(input_shape)}")


def to_2d(x):
    """(N, T, C) -> the (N, 1, T, C) view the 2-D kernels run on; 4-D arrays pass through."""
    return x.reshape(x.shape[0], 1, *x.shape[1:]) if x.ndim == 3 else x


class _Conv(Layer):
    """Convolution of rank 1 or 2 on the C++ 2-D kernels (rank 1 runs with height 1).

    Keras 3 signature and defaults; kernel ``(*kernel_size, in_channels // groups, filters)``.
    ``activation="relu"`` is fused into the C++ kernel (forward and backward).

    ``input_gradient_needed`` (default True): a model may set it to False on its first layer,
    whose input gradient nobody reads; ``backward`` then skips computing dx (about half the
    backward cost of a first convolution) and returns None.
    """

    rank = None  # set by the subclasses
    input_gradient_needed = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, lora_alpha=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        r = self.rank
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = check_int_tuple(kernel_size, r, "kernel_size")
        self.strides = check_int_tuple(strides, r, "strides")
        self.padding = check_choice(padding, {"valid", "same"} | ({"causal"} if r == 1 else set()),
                                    "padding")
        self.data_format = check_data_format(data_format)
        self.dilation_rate = check_int_tuple(dilation_rate, r, "dilation_rate")
        self.groups = check_positive_int(groups, "groups")
        if self.filters % self.groups != 0:
            raise ValueError("The number of filters must be evenly divisible by the number of "
                             f"groups. Received: groups={self.groups}, filters={self.filters}")
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
        _reject_unsupported(self, lora_rank=lora_rank, lora_alpha=lora_alpha)
        self.input_spec = InputSpec(ndim=r + 2)
        self.kernel = self.bias = None
        self._fused_relu = self.activation is activations.relu
        self._cache = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels < 1:
            raise ValueError(f"Layer {self.name!r} needs a known, positive channel count (last "
                             f"axis). Received input shape {shape_str(input_shape)}")
        if channels % self.groups != 0:
            raise ValueError("The number of input channels must be evenly divisible by the number "
                             f"of groups. Received groups={self.groups}, but the input has "
                             f"{channels} channels (full input shape is {shape_str(input_shape)})")
        self.compute_output_shape(input_shape)  # validates the output size
        self.kernel = self.add_weight(
            "kernel", self._kernel_shape(channels), self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer,
                                     regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
                     if self.use_bias else None)
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={-1: channels})
        super().build(input_shape)

    def _kernel_shape(self, channels):
        return self.kernel_size + (channels // self.groups, self.filters)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        return spatial_output_shape(self, input_shape, self.kernel_size, self.strides,
                                    self.dilation_rate, self.padding, self.filters)

    def _args(self):
        """The 2-D kernels' arguments (rank 1: a window of height 1; causal: valid after the
        left padding of _pad)."""
        lead = (1,) * (2 - self.rank)
        padding = "valid" if self.padding == "causal" else self.padding
        return (*(lead + self.strides), padding, *(lead + self.dilation_rate), self.groups)

    def _kernel_2d(self):
        return self.kernel.reshape((1,) * (2 - self.rank) + self.kernel.shape)  # a view

    def _causal_pad(self):
        return (self.kernel_size[0] - 1) * self.dilation_rate[0] if self.padding == "causal" else 0

    def _input_2d(self, x):
        """The (N, H, W, C) input of the 2-D kernels: rank 1 gets height 1 and, for causal
        padding, (kernel_size - 1) * dilation_rate zero steps in front."""
        x = to_2d(as_c_array(x))
        pad = self._causal_pad()
        if pad:
            x = np.pad(x, ((0, 0), (0, 0), (pad, 0), (0, 0)))
        return x

    def _output(self, y):
        return y.reshape(y.shape[0], *y.shape[2:]) if self.rank == 1 else y

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)  # layer-level error for an output size < 1
        x = self._input_2d(x)
        z = _core.conv2d_forward(x, self._kernel_2d(), self.bias, *self._args(), self._fused_relu)
        y = z
        if not self._fused_relu and self.activation is not activations.linear:
            y = self.activation(z)
        self._cache = (x, z, y)
        return self._output(y)

    def _fuse_next(self, x, next_layer):
        """Conv (ReLU or linear) -> MaxPooling of the same rank with windows = strides and
        valid padding: one kernel pools each tile of the convolution while it is in cache
        (bitwise the two layers' result). With no backward to follow, the convolution's output
        is never written; otherwise both layers keep their usual caches."""
        from fastdl.layers.pooling import MaxPooling1D, MaxPooling2D

        pool = next_layer  # exactly the built-in class: a subclass may change call()
        if (type(pool) is not (MaxPooling1D, MaxPooling2D)[self.rank - 1]
                or pool.padding != "valid" or pool.strides != pool.pool_size
                or pool.dtype != self.dtype
                or not (self._fused_relu or self.activation is activations.linear)):
            return None
        out = self.compute_output_shape(x.shape)[1:-1]
        if any(o < p for o, p in zip(out, pool.pool_size)):
            return None  # the pooling layer's own call raises its error
        keep = not self._inference_only  # a backward follows
        x = self._input_2d(x)
        pooled, y, argmax = _core.conv2d_max_pool_forward(
            x, self._kernel_2d(), self.bias, *self._args(), self._fused_relu,
            *pool._window_2d(), keep)
        self._cache = (x, y, y) if keep else None  # as call(): (x, z, y) with z = y
        pool._cache = (pooled.shape, y.shape, argmax) if keep else None
        return self._output(pooled)

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        x, z, y = self._cache
        dy = as_c_array(dy, dtype=self.dtype)
        if dy.shape != self._output(y).shape:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(self._output(y).shape)}")
        dy = to_2d(dy)
        if not self._fused_relu and self.activation is not activations.linear:
            dy = as_c_array(self.activation.backward(z, y, dy), dtype=self.dtype)
        train = self._trainable
        entries = self._sparse_entries(dy)
        dx, dk, db = (self._sparse_backward(dy, x, z, entries) if entries is not None else
                      _core.conv2d_backward(dy, x, self._kernel_2d(), *self._args(),
                                            bool(self.input_gradient_needed), train,
                                            train and self.use_bias,
                                            z if self._fused_relu else None))
        if train:
            dk = dk.reshape(self.kernel.shape)
            self.grads = [dk, db] if self.use_bias else [dk]
        else:
            self.grads = []
        if dx is not None:
            dx = self._output(dx[:, :, self._causal_pad():, :])
        return dx

    # the sparse backward wins when at most this fraction of dy is nonzero
    _SPARSE_DENSITY = 1 / 32

    def _sparse_entries(self, dy):
        """The flat indices of dy's nonzeros when backward takes the sparse path (an
        ungrouped rank-1 convolution without 'same' padding whose dy is mostly zeros: after
        GlobalMaxPooling1D, one nonzero per sample and filter), else None."""
        if not (self.rank == 1 and self.groups == 1 and self._args()[2] == "valid"):
            return None
        nonzero = dy != 0     # (a boolean array counts and lists its nonzeros much faster)
        if np.count_nonzero(nonzero) > dy.size * self._SPARSE_DENSITY:
            return None
        return np.flatnonzero(nonzero)

    def _sparse_backward(self, dy, x, z, entries):
        """(dx, dkernel, dbias) of the rank-1 convolution from dy's nonzero ``entries``
        (O(nonzeros * kernel_size * channels) work in C++ instead of the dense GEMMs)."""
        n, _, steps, filters = dy.shape
        ns, rest = np.divmod(entries, steps * filters)
        ts, fs = np.divmod(rest, filters)
        g = dy.reshape(-1)[entries]
        if self._fused_relu:   # ReLU's gradient: only where the output was positive
            keep = z.reshape(-1)[entries] > 0
            ns, ts, fs, g = ns[keep], ts[keep], fs[keep], g[keep]
        kernel_t = np.ascontiguousarray(self.kernel.transpose(2, 0, 1))   # (F, K, C)
        dx, dk_t = _core.conv1d_sparse_backward(
            x.reshape(n, x.shape[2], x.shape[3]), kernel_t, ns, ts, fs,
            np.ascontiguousarray(g), self.strides[0], self.dilation_rate[0],
            bool(self.input_gradient_needed))
        db = np.bincount(fs, weights=g, minlength=filters).astype(self.dtype)
        return (None if dx is None else dx.reshape(x.shape),
                np.ascontiguousarray(dk_t.transpose(1, 2, 0)), db)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      padding=self.padding, data_format=self.data_format,
                      dilation_rate=self.dilation_rate, groups=self.groups,
                      activation=activations.serialize(self.activation), use_bias=self.use_bias,
                      kernel_initializer=initializers.serialize(self.kernel_initializer),
                      bias_initializer=initializers.serialize(self.bias_initializer),
                      kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                      bias_regularizer=regularizers.serialize(self.bias_regularizer),
                      activity_regularizer=regularizers.serialize(self.activity_regularizer),
                      kernel_constraint=constraints.serialize(self.kernel_constraint),
                      bias_constraint=constraints.serialize(self.bias_constraint))
        return config


class Conv1D(_Conv):
    """1-D convolution on ``(batch, steps, channels)``; kernel ``(kernel_size, in_channels //
    groups, filters)``. ``padding="causal"`` pads ``(kernel_size - 1) * dilation_rate`` zero
    steps in front, so output step t sees only inputs up to t.

    When at most 1/32 of dy is nonzero (a following GlobalMaxPooling1D passes one gradient per
    sample and filter), an ungrouped valid/causal Conv1D computes its gradients from those
    entries alone (``_core.conv1d_sparse_backward``) instead of the dense GEMMs."""

    rank = 1


class Conv2D(_Conv):
    """2-D convolution ``activation(conv2d(x, kernel) + bias)`` on NHWC inputs; kernel
    ``(kh, kw, in_channels // groups, filters)``."""

    rank = 2


Convolution1D = Conv1D
Convolution2D = Conv2D


def _serialized(**objects):
    """get_config entries of initializers, regularizers and constraints, by name suffix."""
    modules = {"initializer": initializers, "regularizer": regularizers,
               "constraint": constraints}
    return {name: modules[name.rsplit("_", 1)[1]].serialize(value)
            for name, value in objects.items()}


def _same_pads(size, kernel_size, stride, dilation):
    """TensorFlow's 'same' padding of one axis: (before, after), the smaller half first."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Depthwise:
    """Depthwise convolution of NHWC ``x`` with a ``(KH, KW, C, M)`` kernel, one multiply-add
    pass per kernel tap over shifted views of the (padded) input: O(N*OH*OW*C*M) work per tap,
    where the grouped im2col kernels would run C tiny GEMMs."""

    def __init__(self, x, kernel_shape, strides, dilation, padding):
        n, h, w, c = x.shape
        kh, kw = kernel_shape[:2]
        pads = ([_same_pads(h, kh, strides[0], dilation[0]),
                 _same_pads(w, kw, strides[1], dilation[1])] if padding == "same"
                else [(0, 0), (0, 0)])
        self.x = np.pad(x, ((0, 0), *pads, (0, 0))) if any(map(any, pads)) else x
        self.pads, self.in_shape = pads, x.shape
        hp, wp = self.x.shape[1:3]
        self.out_hw = ((hp - (kh - 1) * dilation[0] - 1) // strides[0] + 1,
                       (wp - (kw - 1) * dilation[1] - 1) // strides[1] + 1)
        oh, ow = self.out_hw
        self.taps = [(i, j, (slice(None), slice(i * dilation[0], i * dilation[0]
                                                 + (oh - 1) * strides[0] + 1, strides[0]),
                             slice(j * dilation[1], j * dilation[1] + (ow - 1) * strides[1] + 1,
                                   strides[1])))
                     for i in range(kh) for j in range(kw)]

    def forward(self, kernel):
        """(N, OH, OW, C * M), output channel c * M + m."""
        n, c, m = self.x.shape[0], kernel.shape[2], kernel.shape[3]
        y = np.zeros((n, *self.out_hw, c, m), dtype=self.x.dtype)
        for i, j, window in self.taps:
            y += self.x[window][..., None] * kernel[i, j]
        return y.reshape(n, *self.out_hw, c * m)

    def backward(self, dy, kernel, need_dx=True):
        """(dx of the unpadded input or None, dkernel) for dy (N, OH, OW, C * M)."""
        c, m = kernel.shape[2], kernel.shape[3]
        dy5 = dy.reshape(*dy.shape[:3], c, m)
        dk = np.empty_like(kernel)
        dxp = np.zeros_like(self.x) if need_dx else None
        for i, j, window in self.taps:
            dk[i, j] = np.einsum("nhwc,nhwcm->cm", self.x[window], dy5)
            if need_dx:
                dxp[window] += (dy5 * kernel[i, j]).sum(axis=-1)
        if dxp is None:
            return None, dk
        (top, _), (left, _) = self.pads
        h, w = self.in_shape[1:3]
        return np.ascontiguousarray(dxp[:, top:top + h, left:left + w]), dk


class _DepthwiseConv(_Conv):
    """Depthwise convolution: each input channel convolved with its own ``depth_multiplier``
    filters, output channel ``c * depth_multiplier + m``; kernel ``(*kernel_size, in_channels,
    depth_multiplier)`` (Keras). Computed tap by tap (``_Depthwise``); rank 1 runs with
    height 1."""

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        self.depth_multiplier = check_positive_int(depth_multiplier, "depth_multiplier")
        super().__init__(self.depth_multiplier, kernel_size, strides=strides,
                         padding=check_choice(padding, {"valid", "same"}, "padding"),
                         data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=depthwise_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=depthwise_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=depthwise_constraint,
                         bias_constraint=bias_constraint, **kwargs)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels >= 1:
            self.groups, self.filters = channels, channels * self.depth_multiplier
        super().build(input_shape)

    def _kernel_shape(self, channels):
        return self.kernel_size + (channels, self.depth_multiplier)

    def _depthwise_kernel(self):
        """The depthwise kernel as (KH, KW, C, M) (rank 1: KH = 1), a view."""
        return self.kernel.reshape((1,) * (2 - self.rank) + self.kernel.shape)

    def _depthwise(self, x):
        lead = (1,) * (2 - self.rank)
        return _Depthwise(to_2d(as_c_array(x)), self._depthwise_kernel().shape,
                          lead + self.strides, lead + self.dilation_rate, self.padding)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        channels = None if input_shape[-1] is None else input_shape[-1] * self.depth_multiplier
        return spatial_output_shape(self, input_shape, self.kernel_size, self.strides,
                                    self.dilation_rate, self.padding, channels)

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)
        op = self._depthwise(x)
        z = op.forward(self._depthwise_kernel())
        if self.bias is not None:
            z += self.bias
        y = self.activation(z) if self.activation is not activations.linear else z
        self._cache = (op, z, y)
        return self._output(y)

    def _fuse_next(self, x, next_layer):
        return None

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        op, z, y = self._cache
        dy = as_c_array(dy, dtype=self.dtype)
        if dy.shape != self._output(y).shape:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(self._output(y).shape)}")
        dz = to_2d(dy)
        if self.activation is not activations.linear:
            dz = self.activation.backward(z, y, dz)
        dx, dk = op.backward(dz, self._depthwise_kernel(), bool(self.input_gradient_needed))
        if self._trainable:
            self.grads = [dk.reshape(self.kernel.shape)]
            if self.use_bias:
                self.grads.append(dz.sum(axis=(0, 1, 2)))
        else:
            self.grads = []
        return None if dx is None else self._output(dx)

    def get_config(self):
        config = Layer.get_config(self)
        config.update(kernel_size=self.kernel_size, strides=self.strides, padding=self.padding,
                      depth_multiplier=self.depth_multiplier, data_format=self.data_format,
                      dilation_rate=self.dilation_rate,
                      activation=activations.serialize(self.activation), use_bias=self.use_bias,
                      **_serialized(depthwise_initializer=self.kernel_initializer,
                                    bias_initializer=self.bias_initializer,
                                    depthwise_regularizer=self.kernel_regularizer,
                                    bias_regularizer=self.bias_regularizer,
                                    activity_regularizer=self.activity_regularizer,
                                    depthwise_constraint=self.kernel_constraint,
                                    bias_constraint=self.bias_constraint))
        return config


class DepthwiseConv1D(_DepthwiseConv):
    """Depthwise 1-D convolution on ``(batch, steps, channels)``; kernel ``(kernel_size,
    in_channels, depth_multiplier)``."""

    rank = 1


class DepthwiseConv2D(_DepthwiseConv):
    """Depthwise 2-D convolution on NHWC inputs; kernel ``(kh, kw, in_channels,
    depth_multiplier)``."""

    rank = 2


class _SeparableConv(_DepthwiseConv):
    """Depthwise convolution (no bias) followed by a pointwise 1x1 convolution with the bias
    and the activation: weights ``depthwise_kernel (*kernel_size, in_channels,
    depth_multiplier)``, ``pointwise_kernel (*(1,) * rank, in_channels * depth_multiplier,
    filters)``, ``bias (filters,)``, as in Keras."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding,
                         depth_multiplier=depth_multiplier, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         depthwise_initializer=depthwise_initializer,
                         bias_initializer=bias_initializer,
                         depthwise_regularizer=depthwise_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         depthwise_constraint=depthwise_constraint,
                         bias_constraint=bias_constraint, **kwargs)
        self.pointwise_filters = check_positive_int(filters, "filters")
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.pointwise_constraint = constraints.get(pointwise_constraint)
        self.depthwise_kernel = self.pointwise_kernel = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels < 1:
            raise ValueError(f"Layer {self.name!r} needs a known, positive channel count (last "
                             f"axis). Received input shape {shape_str(input_shape)}")
        self.groups, self.filters = channels, self.pointwise_filters
        self.compute_output_shape(input_shape)  # validates the output size
        dm = self.depth_multiplier
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", self.kernel_size + (channels, dm), self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", (1,) * self.rank + (channels * dm, self.filters),
            self.pointwise_initializer, regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer,
                                     regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
                     if self.use_bias else None)
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={-1: channels})
        Layer.build(self, input_shape)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        return spatial_output_shape(self, input_shape, self.kernel_size, self.strides,
                                    self.dilation_rate, self.padding, self.pointwise_filters)

    def _depthwise_kernel(self):
        return self.depthwise_kernel.reshape((1,) * (2 - self.rank)
                                             + self.depthwise_kernel.shape)

    def _pointwise_2d(self):
        return self.pointwise_kernel.reshape((1, 1) + self.pointwise_kernel.shape[-2:])

    _POINTWISE_ARGS = (1, 1, "valid", 1, 1, 1)

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)
        op = self._depthwise(x)
        h = op.forward(self._depthwise_kernel())
        z = _core.conv2d_forward(h, self._pointwise_2d(), self.bias, *self._POINTWISE_ARGS,
                                 self._fused_relu)
        y = z
        if not self._fused_relu and self.activation is not activations.linear:
            y = self.activation(z)
        self._cache = (op, h, z, y)
        return self._output(y)

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        op, h, z, y = self._cache
        dy = as_c_array(dy, dtype=self.dtype)
        if dy.shape != self._output(y).shape:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(self._output(y).shape)}")
        dy = to_2d(dy)
        if not self._fused_relu and self.activation is not activations.linear:
            dy = as_c_array(self.activation.backward(z, y, dy), dtype=self.dtype)
        train = self._trainable
        dh, dpk, db = _core.conv2d_backward(dy, h, self._pointwise_2d(), *self._POINTWISE_ARGS,
                                            True, train, train and self.use_bias,
                                            z if self._fused_relu else None)
        dx, ddk = op.backward(dh, self._depthwise_kernel(), bool(self.input_gradient_needed))
        if train:
            self.grads = [ddk.reshape(self.depthwise_kernel.shape),
                          dpk.reshape(self.pointwise_kernel.shape)] + ([db] if self.use_bias
                                                                       else [])
        else:
            self.grads = []
        return None if dx is None else self._output(dx)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.pointwise_filters,
                      **_serialized(pointwise_initializer=self.pointwise_initializer,
                                    pointwise_regularizer=self.pointwise_regularizer,
                                    pointwise_constraint=self.pointwise_constraint))
        return config


class SeparableConv1D(_SeparableConv):
    """Depthwise 1-D convolution then a pointwise (1x1) one, on ``(batch, steps, channels)``."""

    rank = 1


class SeparableConv2D(_SeparableConv):
    """Depthwise 2-D convolution then a pointwise (1x1) one, on NHWC inputs."""

    rank = 2


SeparableConvolution1D = SeparableConv1D
SeparableConvolution2D = SeparableConv2D
