"""ZeroPadding2D and Reshape."""
import math

import numpy as np

from fastdl.layers.base import InputSpec, Layer, check_int_tuple, check_positive_int, shape_str
from fastdl.layers.convolutional import check_data_format


class ZeroPadding2D(Layer):
    """Zero rows/columns around the image: ``padding`` is an int, ``(sym_h, sym_w)`` or
    ``((top, bottom), (left, right))`` (Keras forms)."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, (int, np.integer)) and not isinstance(padding, (bool, np.bool_)):
            p = check_positive_int(padding, "padding", allow_zero=True)
            padding = ((p, p), (p, p))
        elif isinstance(padding, (tuple, list)) and len(padding) == 2:
            padding = (check_int_tuple(padding[0], 2, "1st entry of padding", allow_zero=True),
                       check_int_tuple(padding[1], 2, "2nd entry of padding", allow_zero=True))
        else:
            raise ValueError("`padding` should be either an int, a tuple of 2 ints "
                             "(symmetric_height_pad, symmetric_width_pad), or a tuple of 2 tuples "
                             "of 2 ints ((top_pad, bottom_pad), (left_pad, right_pad)). "
                             f"Received: padding={padding!r}")
        self.padding = padding
        self.data_format = check_data_format(data_format)
        self.input_spec = InputSpec(ndim=4)
        self._shape = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Layer {self.name!r} expects 4-D input (batch, height, width, "
                             f"channels). Received input shape {shape_str(input_shape)}")
        (t, b), (l, r) = self.padding
        n, h, w, c = input_shape
        return (n, None if h is None else h + t + b, None if w is None else w + l + r, c)

    def call(self, x, training=False):
        (t, b), (l, r) = self.padding
        n, h, w, c = x.shape
        y = np.zeros((n, h + t + b, w + l + r, c), dtype=x.dtype)
        y[:, t:t + h, l:l + w, :] = x
        self._shape = x.shape
        return y

    def backward(self, dy):
        if self._shape is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        (t, _), (l, _) = self.padding
        n, h, w, c = self._shape
        expect = self.compute_output_shape(self._shape)
        if tuple(dy.shape) != expect:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the output has {shape_str(expect)}")
        self.grads = []
        return np.array(dy[:, t:t + h, l:l + w, :], dtype=self.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(padding=self.padding, data_format=self.data_format)
        return config


class Reshape(Layer):
    """Reshape every sample to ``target_shape`` (the batch axis kept); one entry may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(target_shape, (tuple, list)):
            raise TypeError("target_shape must be a tuple of integers. "
                            f"Received: target_shape={target_shape!r}")
        dims = []
        for d in target_shape:
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
                raise TypeError("target_shape must be a tuple of integers. "
                                f"Received: target_shape={target_shape!r}")
            if d < 1 and d != -1:
                raise ValueError("target_shape entries must be positive integers or -1. "
                                 f"Received: target_shape={target_shape!r}")
            dims.append(int(d))
        if dims.count(-1) > 1:
            raise ValueError("There must be at most one unknown dimension (-1) in target_shape. "
                             f"Received: target_shape={tuple(dims)}")
        self.target_shape = tuple(dims)
        self._shape = None

    def _resolve(self, sample_shape):
        if any(d is None for d in sample_shape):
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(sample_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 not in self.target_shape:
            if size != known:
                raise ValueError("The total size of the tensor must be unchanged. Received: "
                                 f"input_shape={tuple(sample_shape)}, "
                                 f"target_shape={self.target_shape}")
            return self.target_shape
        if size % known != 0:
            raise ValueError("The total size of the tensor must be unchanged, however, the input "
                             "size cannot by divided by the specified dimensions in target_shape. "
                             f"Received: input_shape={tuple(sample_shape)}, "
                             f"target_shape={self.target_shape}")
        return tuple(size // known if d == -1 else d for d in self.target_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(tuple(input_shape[1:]))

    def call(self, x, training=False):
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self._resolve(x.shape[1:]))

    def backward(self, dy):
        if self._shape is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        self.grads = []
        dy = np.asarray(dy)
        if dy.size != math.prod(self._shape):
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, "
                             f"the input had {shape_str(self._shape)}")
        return dy.reshape(self._shape)

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config
