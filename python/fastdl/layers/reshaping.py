"""Shape layers: ZeroPadding, Cropping, UpSampling (1-D and 2-D), RepeatVector, Reshape."""
import math

import numpy as np

from fastdl.layers.base import InputSpec, Layer, check_int_tuple, check_positive_int, shape_str
from fastdl.layers.convolutional import check_data_format, check_rank


def _check_pairs(value, rank, name):
    """Keras's forms of per-axis (before, after) amounts: an int, ``rank`` symmetric ints, or
    ``rank`` pairs (rank 1: an int or one pair). Returns a tuple of ``rank`` pairs."""
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

    if is_int(value):
        p = check_positive_int(value, name, allow_zero=True)
        return ((p, p),) * rank
    if isinstance(value, (tuple, list)) and rank == 1 and len(value) == 2:
        return (check_int_tuple(value, 2, name, allow_zero=True),)
    if isinstance(value, (tuple, list)) and len(value) == rank:
        return tuple(check_int_tuple(v, 2, f"{ordinal} entry of {name}", allow_zero=True)
                     for ordinal, v in zip(("1st", "2nd"), value))
    forms = ("either an int or a tuple of 2 ints (before, after)" if rank == 1 else
             "either an int, a tuple of 2 ints (symmetric_height, symmetric_width), or a tuple "
             "of 2 tuples of 2 ints ((top, bottom), (left, right))")
    raise ValueError(f"`{name}` should be {forms}. Received: {name}={value!r}")


class _SpatialReshape(Layer):
    """A shape change of the ``rank`` spatial axes of ``(N, *spatial, C)`` inputs."""

    rank = None  # set by the subclasses

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self._shape = None

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        sizes = tuple(None if d is None else self._out_size(d, i)
                      for i, d in enumerate(input_shape[1:-1]))
        if any(d is not None and d < 1 for d in sizes):
            raise ValueError(f"Layer {self.name!r}: the output shape would have a size < 1 for "
                             f"input shape {shape_str(input_shape)}")
        return (input_shape[0],) + sizes + (input_shape[-1],)

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)
        self._shape = x.shape
        return self._forward(x)

    def backward(self, dy):
        if self._shape is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        expect = self.compute_output_shape(self._shape)
        if tuple(np.shape(dy)) != expect:
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(np.shape(dy))}, "
                             f"the output has {shape_str(expect)}")
        self.grads = []
        return np.array(self._backward(np.asarray(dy, dtype=self.dtype)), dtype=self.dtype)


class _ZeroPadding(_SpatialReshape):
    """Zeros before and after each spatial axis."""

    def __init__(self, padding, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _check_pairs(padding, self.rank, "padding")
        self.data_format = check_data_format(data_format)

    def _out_size(self, d, i):
        return d + sum(self.padding[i])

    def _inside(self):
        return (slice(None),) + tuple(slice(b, b + d) for (b, _), d in
                                      zip(self.padding, self._shape[1:-1])) + (slice(None),)

    def _forward(self, x):
        y = np.zeros(self.compute_output_shape(x.shape), dtype=x.dtype)
        y[self._inside()] = x
        return y

    def _backward(self, dy):
        return dy[self._inside()]

    def get_config(self):
        config = super().get_config()
        config.update(padding=self.padding[0] if self.rank == 1 else self.padding,
                      data_format=self.data_format)
        return config


class ZeroPadding1D(_ZeroPadding):
    """Zero steps around a sequence: ``padding`` is an int or ``(before, after)``."""

    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding2D(_ZeroPadding):
    """Zero rows/columns around the image: ``padding`` is an int, ``(sym_h, sym_w)`` or
    ``((top, bottom), (left, right))`` (Keras forms)."""

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class _Cropping(_SpatialReshape):
    """Drops ``cropping`` cells before and after each spatial axis."""

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _check_pairs(cropping, self.rank, "cropping")
        self.data_format = check_data_format(data_format)

    def _out_size(self, d, i):
        return d - sum(self.cropping[i])

    def _inside(self, shape):
        return (slice(None),) + tuple(slice(b, d - a) for (b, a), d in
                                      zip(self.cropping, shape[1:-1])) + (slice(None),)

    def _forward(self, x):
        return x[self._inside(x.shape)]

    def _backward(self, dy):
        dx = np.zeros(self._shape, dtype=self.dtype)
        dx[self._inside(self._shape)] = dy
        return dx

    def get_config(self):
        config = super().get_config()
        config["cropping"] = self.cropping[0] if self.rank == 1 else self.cropping
        if self.rank > 1:
            config["data_format"] = self.data_format
        return config


class Cropping1D(_Cropping):
    """Drops steps at the start and end of a sequence: ``cropping`` is an int or
    ``(start, end)``."""

    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, **kwargs)


class Cropping2D(_Cropping):
    """Drops rows/columns at the borders: ``cropping`` is an int, ``(sym_h, sym_w)`` or
    ``((top, bottom), (left, right))``."""

    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class _UpSampling(_SpatialReshape):
    """Nearest-neighbour upsampling: every cell repeated ``size`` times along each axis."""

    def _out_size(self, d, i):
        return d * self.size[i]

    def _forward(self, x):
        for axis, k in enumerate(self.size, start=1):
            x = np.repeat(x, k, axis=axis)
        return x

    def _backward(self, dy):
        n, c = self._shape[0], self._shape[-1]
        split = [n]
        for d, k in zip(self._shape[1:-1], self.size):
            split += [d, k]
        dy = dy.reshape(split + [c])
        return dy.sum(axis=tuple(range(2, 2 * self.rank + 1, 2)))


class UpSampling1D(_UpSampling):
    """Repeats each step ``size`` times: ``(N, T, C) -> (N, T * size, C)``."""

    rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = (check_positive_int(size, "size"),)

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size[0]
        return config


class UpSampling2D(_UpSampling):
    """Repeats rows and columns ``size`` times (``interpolation="nearest"`` only)."""

    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = check_int_tuple(size, 2, "size")
        self.data_format = check_data_format(data_format)
        if interpolation != "nearest":
            raise ValueError("fastdl's UpSampling2D supports interpolation='nearest' only. "
                             f"Received: interpolation={interpolation!r}")
        self.interpolation = interpolation

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, data_format=self.data_format,
                      interpolation=self.interpolation)
        return config


class RepeatVector(Layer):
    """Repeats a vector ``n`` times: ``(N, F) -> (N, n, F)``."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = check_positive_int(n, "n")
        self.input_spec = InputSpec(ndim=2)
        self._shape = None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def call(self, x, training=False):
        self._shape = x.shape
        return np.repeat(x[:, None, :], self.n, axis=1)

    def backward(self, dy):
        if self._shape is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        dy = np.asarray(dy, dtype=self.dtype)
        if dy.shape != self.compute_output_shape(self._shape):
            raise ValueError(f"Layer {self.name!r}: dy has shape {shape_str(dy.shape)}, the "
                             f"output has {shape_str(self.compute_output_shape(self._shape))}")
        self.grads = []
        return dy.sum(axis=1)

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
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
