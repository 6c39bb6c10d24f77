"""Max / average pooling (C++ 2-D kernels; 1-D runs with height 1) and global pooling
(NumPy), channels last."""
import numpy as np

from fastdl import _core
from fastdl.layers.base import as_c_array, InputSpec, Layer, check_choice, check_int_tuple, shape_str
from fastdl.layers.convolutional import (check_bool, check_data_format, check_rank,
                                         spatial_output_shape, to_2d)


class _Pooling(Layer):
    """Windowed pooling of rank 1 or 2 on the C++ 2-D kernels (rank 1 runs with height 1)."""

    rank = None  # set by the subclasses

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = check_int_tuple(pool_size, self.rank, "pool_size")
        self.strides = (self.pool_size if strides is None
                        else check_int_tuple(strides, self.rank, "strides"))
        self.padding = check_choice(padding, {"valid", "same"}, "padding")
        self.data_format = check_data_format(data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self._cache = None

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        return spatial_output_shape(self, input_shape, self.pool_size, self.strides,
                                    (1,) * self.rank, self.padding, input_shape[-1])

    def _window_2d(self):
        return (1,) * (2 - self.rank) + self.pool_size

    def _args(self):
        return (*self._window_2d(), *((1,) * (2 - self.rank) + self.strides), self.padding)

    def _output(self, y):
        return y.reshape(y.shape[0], *y.shape[2:]) if self.rank == 1 else y

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, padding=self.padding, strides=self.strides,
                      data_format=self.data_format)
        return config

    def _dy(self, dy):
        """dy as the 2-D kernels' C-contiguous (N, OH, OW, C) array, its shape checked."""
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first "
                               "(predict and evaluate keep nothing for a backward pass)")
        dy = as_c_array(dy, dtype=self.dtype)
        expect = self._output(np.empty(self._cache[0], dtype=np.int8)).shape
        if dy.shape != expect:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(expect)}")
        return to_2d(dy)


class _MaxPooling(_Pooling):
    """Max over ``pool_size`` windows; the gradient goes to each window's (first) maximum."""

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)
        need_argmax = not self._inference_only
        x = to_2d(as_c_array(x))
        y, argmax = _core.max_pool2d_forward(x, *self._args(), need_argmax)
        self._cache = (y.shape, x.shape, argmax) if need_argmax else None
        return self._output(y)

    def backward(self, dy):
        dy = self._dy(dy)
        _, x_shape, argmax = self._cache
        self.grads = []
        return self._output(_core.max_pool2d_backward(dy, argmax, x_shape[1], x_shape[2],
                                                      *self._args()))


class _AveragePooling(_Pooling):
    """Mean over ``pool_size`` windows; with ``padding="same"`` padded cells are not counted."""

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)
        x = to_2d(as_c_array(x))
        y = _core.avg_pool2d_forward(x, *self._args())
        self._cache = (y.shape, x.shape)
        return self._output(y)

    def backward(self, dy):
        dy = self._dy(dy)
        x_shape = self._cache[1]
        self.grads = []
        return self._output(_core.avg_pool2d_backward(dy, x_shape[1], x_shape[2], *self._args()))


class MaxPooling1D(_MaxPooling):
    """Max over windows of ``pool_size`` steps: ``(N, T, C) -> (N, T', C)``."""

    rank = 1


class MaxPooling2D(_MaxPooling):
    """Max over ``pool_size`` windows of NHWC inputs."""

    rank = 2

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling1D(_AveragePooling):
    """Mean over windows of ``pool_size`` steps: ``(N, T, C) -> (N, T', C)``."""

    rank = 1

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(_AveragePooling):
    """Mean over ``pool_size`` windows of NHWC inputs."""

    rank = 2

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class _GlobalPooling(Layer):
    """Pooling over every spatial axis of a rank 1 or 2 input: ``(N, *spatial, C) -> (N, C)``,
    ``(N, *ones, C)`` with keepdims."""

    rank = None  # set by the subclasses

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format)
        self.keepdims = check_bool(keepdims, "keepdims")
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self._cache = None

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        if self.keepdims:
            return (input_shape[0],) + (1,) * self.rank + (input_shape[-1],)
        return (input_shape[0], input_shape[-1])

    def _out(self, y):
        return y.reshape(self.compute_output_shape(self._cache[0])) if self.keepdims else y

    def _dy(self, dy):
        """dy as (N, 1, C), its shape checked."""
        if self._cache is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        shape = self._cache[0]
        dy = np.asarray(dy, dtype=self.dtype)
        expect = self.compute_output_shape(shape)
        if dy.shape != expect:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(expect)}")
        return dy.reshape(shape[0], 1, shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(data_format=self.data_format, keepdims=self.keepdims)
        return config


class _GlobalAveragePooling(_GlobalPooling):
    """Mean over the spatial axes."""

    def call(self, x, training=False):
        n, c = x.shape[0], x.shape[-1]
        # one summation order for every memory layout: the same values give the same bits
        steps = int(np.prod(x.shape[1:-1]))
        y = np.ascontiguousarray(x).reshape(n, steps, c).mean(axis=1, dtype=x.dtype)
        self._cache = (x.shape,)
        return self._out(y)

    def backward(self, dy):
        dy = self._dy(dy)
        shape = self._cache[0]
        steps = int(np.prod(shape[1:-1]))
        self.grads = []
        return np.broadcast_to(dy * dy.dtype.type(1.0 / steps),
                               (shape[0], steps, shape[-1])).reshape(shape).copy()


class _GlobalMaxPooling(_GlobalPooling):
    """Max over the spatial axes. Like TensorFlow's reduce_max gradient, tied maxima share the
    gradient equally."""

    def call(self, x, training=False):
        x3 = x.reshape(x.shape[0], int(np.prod(x.shape[1:-1])), x.shape[-1])
        y = x3.max(axis=1)
        self._cache = (x.shape, x3, y)
        return self._out(y)

    def backward(self, dy):
        dy = self._dy(dy)
        shape, x3, y = self._cache
        self.grads = []
        mask = x3 == y[:, None, :]
        count = mask.sum(axis=1, keepdims=True, dtype=x3.dtype)
        return (mask * (dy / np.maximum(count, 1))).reshape(shape)


class GlobalAveragePooling1D(_GlobalAveragePooling):
    """Mean over the steps: ``(N, T, C) -> (N, C)``. With a mask (e.g. from
    ``Embedding(mask_zero=True)``) only the unmasked steps count, as in Keras (a sample with
    every step masked gives NaN, 0/0, as in Keras)."""

    rank = 1
    supports_masking = True

    def call(self, x, training=False, mask=None):
        if mask is None:
            self._mask = None
            return super().call(x, training)
        mask = np.asarray(mask)
        if mask.shape != x.shape[:2]:
            raise ValueError(f"Layer {self.name!r}: the mask has shape {shape_str(mask.shape)}, "
                             f"expected {shape_str(x.shape[:2])} (batch, steps)")
        weights = mask.astype(x.dtype)[:, :, None]
        count = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = (x * weights).sum(axis=1) / count
        self._mask = weights / count[:, None, :]
        self._cache = (x.shape,)
        return self._out(y)

    def backward(self, dy):
        if getattr(self, "_mask", None) is None:
            return super().backward(dy)
        dy = self._dy(dy)
        self.grads = []
        return dy * self._mask

    def compute_mask(self, x, mask=None):
        return None  # the steps axis is gone


class GlobalAveragePooling2D(_GlobalAveragePooling):
    """Mean over height and width: ``(N, H, W, C) -> (N, C)``, ``(N, 1, 1, C)`` with keepdims."""

    rank = 2


class GlobalMaxPooling1D(_GlobalMaxPooling):
    """Max over the steps: ``(N, T, C) -> (N, C)``."""

    rank = 1


class GlobalMaxPooling2D(_GlobalMaxPooling):
    """Max over height and width: ``(N, H, W, C) -> (N, C)``."""

    rank = 2


MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
