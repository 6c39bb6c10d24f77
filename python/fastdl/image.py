"""``tf.image`` names (``import fastdl as tf; tf.image.resize(...)``): the basics augmentation
tutorials use, over fastdl's ops and its image layers' kernels. Images are channels-last,
``(H, W, C)`` or a batch ``(B, H, W, C)``; the float ones are differentiable."""
import numpy as np

from fastdl.ops import numpy as _np_ops
from fastdl.ops import random as _random
from fastdl.tensor.tensor import Tensor, as_dtype

_GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)   # TensorFlow's rgb_to_grayscale weights


def _images(image, what):
    a = _np_ops._array(image)
    if a.ndim not in (3, 4):
        raise ValueError(f"{what}: image must be (H, W, C) or (B, H, W, C), received shape "
                         f"{a.shape}")
    return a


def convert_image_dtype(image, dtype, saturate=False, name=None):
    """``tf.image.convert_image_dtype``: floats are in ``[0, 1]``, integers in ``[0, MAX]``
    of their dtype; converting scales between the two (integer to integer by the ratio of the
    ranges), and ``saturate`` clips before a cast that could overflow."""
    x = _np_ops.convert_to_tensor(image)
    src, dst = x._value.dtype, np.dtype(as_dtype(dtype).name)
    if dst.kind not in "fiu":
        raise ValueError(f"convert_image_dtype: dtype must be a float or integer dtype, "
                         f"received {dst}")
    if src == dst:
        return x
    if src.kind == "f" and dst.kind == "f":
        return _np_ops.cast(x, dst)
    if src.kind == "f":
        scaled = _np_ops.multiply(x, float(np.iinfo(dst).max) + 0.5)  # + 0.5: round, not floor
        return _cast_int(scaled, dst, saturate)
    if dst.kind == "f":
        return _np_ops.multiply(_np_ops.cast(x, dst), 1.0 / np.iinfo(src).max)
    scale_in, scale_out = int(np.iinfo(src).max), int(np.iinfo(dst).max)
    if scale_in > scale_out:
        return _cast_int(Tensor(x._value // ((scale_in + 1) // (scale_out + 1))), dst, saturate)
    cast = _cast_int(x, dst, saturate)
    return Tensor(cast._value * np.asarray((scale_out + 1) // (scale_in + 1), dst))


def _cast_int(x, dtype, saturate):
    v = x._value
    if saturate:
        info = np.iinfo(dtype)
        v = np.clip(v, max(info.min, _lowest(v.dtype)), min(info.max, _highest(v.dtype)))
    return Tensor(v.astype(dtype))


def _lowest(dt):
    return np.finfo(dt).min if dt.kind == "f" else np.iinfo(dt).min


def _highest(dt):
    return np.finfo(dt).max if dt.kind == "f" else np.iinfo(dt).max


def _in_float(image, fn):
    """``fn`` applied to the image as float32 (integer images converted and converted back with
    saturation, as TensorFlow's adjust_* do)."""
    x = _np_ops.convert_to_tensor(image)
    if x._value.dtype.kind == "f":
        return fn(x)
    return convert_image_dtype(fn(convert_image_dtype(x, "float32")), x._value.dtype,
                               saturate=True)


def resize(images, size, method="bilinear", preserve_aspect_ratio=False, antialias=False,
           name=None):
    """``tf.image.resize`` to ``size = (height, width)``, ``"bilinear"`` or ``"nearest"`` (the
    Resizing layer's half-pixel sampling); float32 results, except nearest keeps the dtype."""
    from fastdl.layers.preprocessing.resizing import Resizing
    a = _images(images, "resize")
    if preserve_aspect_ratio or antialias:
        raise ValueError(f"resize: preserve_aspect_ratio and antialias are not supported by "
                         f"fastdl, received {preserve_aspect_ratio!r} and {antialias!r}")
    method = getattr(method, "value", method)
    if method not in ("bilinear", "nearest"):
        raise ValueError(f"resize: method must be 'bilinear' or 'nearest' in fastdl, received "
                         f"{method!r}")
    height, width = (int(n) for n in _np_ops.convert_to_numpy(size))
    x = images if a.dtype.kind == "f" else _np_ops.cast(images, "float32")
    y = Resizing(height, width, interpolation=method, dtype="float32")(x)
    return _np_ops.cast(y, a.dtype) if method == "nearest" and a.dtype != y._value.dtype else y


def flip_left_right(image):
    """``tf.image.flip_left_right``: each image mirrored along its width."""
    _images(image, "flip_left_right")
    return _np_ops.flip(image, -2)


def flip_up_down(image):
    """``tf.image.flip_up_down``: each image upside down."""
    _images(image, "flip_up_down")
    return _np_ops.flip(image, -3)


def _random_flip(image, seed, axis, what):
    a = _images(image, what)
    # one draw per image (a single image: one draw), flipped when below 1/2
    coins = _random.uniform((a.shape[0],) if a.ndim == 4 else (), seed=seed)._value < 0.5
    flip = coins.reshape(coins.shape + (1,) * 3)
    return _np_ops.where(flip, _np_ops.flip(image, axis), image)


def random_flip_left_right(image, seed=None):
    """``tf.image.random_flip_left_right``: each image mirrored with probability 1/2."""
    return _random_flip(image, seed, -2, "random_flip_left_right")


def random_flip_up_down(image, seed=None):
    """``tf.image.random_flip_up_down``: each image upside down with probability 1/2."""
    return _random_flip(image, seed, -3, "random_flip_up_down")


def adjust_brightness(image, delta):
    """``tf.image.adjust_brightness``: ``image + delta`` (in [0, 1] units for integer images)."""
    return _in_float(image, lambda x: _np_ops.add(x, delta))


def random_brightness(image, max_delta, seed=None):
    """``tf.image.random_brightness``: :func:`adjust_brightness` by a delta drawn uniformly
    from ``[-max_delta, max_delta)``."""
    if max_delta < 0:
        raise ValueError(f"random_brightness: max_delta must be non-negative, received "
                         f"{max_delta!r}")
    delta = float(_random.uniform((), -max_delta, max_delta, seed=seed)._value)
    return adjust_brightness(image, delta)


def adjust_contrast(images, contrast_factor):
    """``tf.image.adjust_contrast``: ``(x - mean) * contrast_factor + mean`` with the mean of
    each image's channel over height and width."""
    _images(images, "adjust_contrast")

    def contrast(x):
        mean = _np_ops.mean(x, axis=(-3, -2), keepdims=True)
        return _np_ops.add(_np_ops.multiply(_np_ops.subtract(x, mean), contrast_factor), mean)
    return _in_float(images, contrast)


def rgb_to_grayscale(images, name=None):
    """``tf.image.rgb_to_grayscale``: ``0.2989 R + 0.5870 G + 0.1140 B``, one channel kept."""
    a = _np_ops._array(images)
    if a.ndim < 1 or a.shape[-1] != 3:
        raise ValueError(f"rgb_to_grayscale: the last axis must hold 3 channels, received shape "
                         f"{a.shape}")

    def gray(x):
        weights = np.asarray(_GRAY_WEIGHTS, x._value.dtype)
        return _np_ops.expand_dims(_np_ops.tensordot(x, weights, axes=1), -1)
    return _in_float(images, gray)


def grayscale_to_rgb(images, name=None):
    """``tf.image.grayscale_to_rgb``: the one channel repeated three times."""
    a = _np_ops._array(images)
    if a.ndim < 1 or a.shape[-1] != 1:
        raise ValueError(f"grayscale_to_rgb: the last axis must hold 1 channel, received shape "
                         f"{a.shape}")
    return _np_ops.tile(images, (1,) * (a.ndim - 1) + (3,))


def per_image_standardization(image):
    """``tf.image.per_image_standardization``: each image scaled to mean 0 and variance 1,
    ``(x - mean) / max(stddev, 1 / sqrt(N))`` over its N = H * W * C values (other dtypes
    than float16 and float32 are converted to float32 first, as TensorFlow does)."""
    a = _images(image, "per_image_standardization")
    x = image if a.dtype in (np.float16, np.float32) else convert_image_dtype(image, "float32")
    axes = (-3, -2, -1)
    mean = _np_ops.mean(x, axis=axes, keepdims=True)
    std = _np_ops.std(x, axis=axes, keepdims=True)
    floor = 1.0 / float(np.sqrt(np.prod(a.shape[-3:])))  # a Python float keeps x's dtype
    return _np_ops.divide(_np_ops.subtract(x, mean), _np_ops.maximum(std, floor))


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
