"""Max / average pooling (C++ kernels) and global pooling (NumPy), NHWC."""
import numpy as np

from fastdl import _core
from fastdl.layers.base import as_c_array, InputSpec, Layer, check_choice, check_int_tuple, shape_str
from fastdl.layers.convolutional import check_bool, check_data_format, spatial_output_shape


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.pool_size = check_int_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool_size if strides is None else check_int_tuple(strides, 2, "strides")
        self.padding = check_choice(padding, {"valid", "same"}, "padding")
        self.data_format = check_data_format(data_format)
        self.input_spec = InputSpec(ndim=4)
        self._cache = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Layer {self.name!r} expects 4-D input (batch, height, width, "
                             f"channels). Received input shape {shape_str(input_shape)}")
        return spatial_output_shape(self, input_shape, self.pool_size, self.strides, (1, 1),
                                    self.padding, input_shape[3])

    def _args(self):
        return (*self.pool_size, *self.strides, self.padding)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, padding=self.padding, strides=self.strides,
                      data_format=self.data_format)
        return config

    def _dy(self, dy):
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first "
                               "(predict and evaluate keep nothing for a backward pass)")
        dy = as_c_array(dy, dtype=self.dtype)
        if dy.shape != self._cache[0]:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(self._cache[0])}")
        return dy


class MaxPooling2D(_Pooling2D):
    """Max over ``pool_size`` windows; the gradient goes to each window's (first) maximum."""

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)
        need_argmax = not self._inference_only
        y, argmax = _core.max_pool2d_forward(as_c_array(x), *self._args(), need_argmax)
        self._cache = (y.shape, x.shape, argmax) if need_argmax else None
        return y

    def backward(self, dy):
        dy = self._dy(dy)
        _, x_shape, argmax = self._cache
        self.grads = []
        return _core.max_pool2d_backward(dy, argmax, x_shape[1], x_shape[2], *self._args())


class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows; with ``padding="same"`` padded cells are not counted."""

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)
        y = _core.avg_pool2d_forward(as_c_array(x), *self._args())
        self._cache = (y.shape, x.shape)
        return y

    def backward(self, dy):
        dy = self._dy(dy)
        x_shape = self._cache[1]
        self.grads = []
        return _core.avg_pool2d_backward(dy, x_shape[1], x_shape[2], *self._args())


class _GlobalPooling2D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format)
        self.keepdims = check_bool(keepdims, "keepdims")
        self.input_spec = InputSpec(ndim=4)
        self._cache = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Layer {self.name!r} expects 4-D input (batch, height, width, "
                             f"channels). Received input shape {shape_str(input_shape)}")
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def _out(self, y):
        return y.reshape(y.shape[0], 1, 1, y.shape[1]) if self.keepdims else y

    def _dy(self, dy):
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        n, c = self._cache[0][0], self._cache[0][3]
        dy = np.asarray(dy, dtype=self.dtype)
        expect = (n, 1, 1, c) if self.keepdims else (n, c)
        if dy.shape != expect:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(expect)}")
        return dy.reshape(n, 1, 1, c)

    def get_config(self):
        config = super().get_config()
        config.update(data_format=self.data_format, keepdims=self.keepdims)
        return config


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over height and width: ``(N, H, W, C) -> (N, C)``, ``(N, 1, 1, C)`` with keepdims."""

    def call(self, x, training=False):
        n, h, w, c = x.shape
        # one summation order for every memory layout: the same values give the same bits
        y = np.ascontiguousarray(x).reshape(n, h * w, c).mean(axis=1, dtype=x.dtype)
        self._cache = (x.shape,)
        return self._out(y)

    def backward(self, dy):
        dy = self._dy(dy)
        n, h, w, c = self._cache[0]
        self.grads = []
        return np.broadcast_to(dy * dy.dtype.type(1.0 / (h * w)), (n, h, w, c)).copy()


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Max over height and width. Like TensorFlow's reduce_max gradient, tied maxima share
    the gradient equally."""

    def call(self, x, training=False):
        y = x.max(axis=(1, 2))
        self._cache = (x.shape, x, y)
        return self._out(y)

    def backward(self, dy):
        dy = self._dy(dy)
        _, x, y = self._cache
        self.grads = []
        mask = x == y[:, None, None, :]
        count = mask.sum(axis=(1, 2), keepdims=True, dtype=x.dtype)
        return mask * (dy / np.maximum(count, 1))


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
