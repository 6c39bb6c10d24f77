"""The affine augmentations: ``RandomRotation``, ``RandomZoom``, ``RandomTranslation``.

Each draws one transform per image and resamples it with Keras's ``affine_transform``
convention: the 6 numbers [a0, a1, a2, b0, b1, b2] map an output pixel (x, y) to the input
point (a0 x + a1 y + a2, b0 x + b1 y + b2), the image extended by ``fill_mode`` and sampled as
``image_sampling`` describes. The resampling and its adjoint (the backward pass) are C++
kernels (``fastdl._core.affine_transform``, cpp/image_transform.cpp): in NumPy they made the
tutorial CNN's epoch 82% slower with RandomFlip + RandomRotation + RandomZoom in front
(bench/bench_augment.py, bench/RESULTS.md). The matrices are
Keras's: a rotation by ``angle`` about the centre ((W - 1) / 2, (H - 1) / 2), a zoom by
(zx, zy) about that centre (> 1 zooms out), a shift by (dx, dy) pixels.
"""
import numpy as np

from fastdl import _core
from fastdl.layers.base import as_c_array, check_choice
from fastdl.layers.preprocessing.base import RandomLayer, check_number, check_pair
from fastdl.layers.preprocessing.image_sampling import FILL_MODES, INTERPOLATIONS
from fastdl.layers.preprocessing.resizing import check_data_format


def rotation_matrices(angles, height, width):
    """Keras's rotation about the image centre; ``angles`` in radians, counter-clockwise."""
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    c, s = np.cos(angles), np.sin(angles)
    return np.stack([c, -s, cx - cx * c + cy * s, s, c, cy - cx * s - cy * c], axis=1)


def zoom_matrices(zx, zy, height, width):
    zero = np.zeros_like(zx)
    return np.stack([zx, zero, (width - 1) / 2.0 * (1 - zx),
                     zero, zy, (height - 1) / 2.0 * (1 - zy)], axis=1)


def translation_matrices(dx, dy):
    one, zero = np.ones_like(dx), np.zeros_like(dx)
    return np.stack([one, zero, -dx, zero, one, -dy], axis=1)


class _AffineLayer(RandomLayer):
    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.fill_mode = check_choice(fill_mode, FILL_MODES, "fill_mode")
        self.interpolation = check_choice(interpolation, INTERPOLATIONS, "interpolation")
        self.fill_value = check_number(fill_value, "fill_value")
        self.data_format = check_data_format(data_format)

    def sample(self, x):
        b, h, w, _ = x.shape
        return np.ascontiguousarray(self.matrices(b, h, w), dtype=np.float64)

    def apply(self, x, matrices):
        return _core.affine_transform(as_c_array(x), matrices, self.interpolation,
                                      self.fill_mode, self.fill_value)

    def apply_backward(self, dy, matrices):
        return _core.affine_transform_backward(as_c_array(dy, self.dtype), matrices,
                                               self.interpolation, self.fill_mode)

    def get_config(self):
        config = super().get_config()
        config.update(fill_mode=self.fill_mode, interpolation=self.interpolation,
                      fill_value=self.fill_value, data_format=self.data_format)
        return config


class RandomRotation(_AffineLayer):
    """Rotates each image by an angle drawn uniformly from ``factor`` (fractions of a full
    turn: 0.1 is [-36, 36] degrees; a pair (lower, upper) gives that range), counter-clockwise
    for positive angles, about the image centre."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = check_pair(factor, "factor")

    def matrices(self, b, h, w):
        turns = self._rng.uniform(self.factor[0], self.factor[1], size=b)
        return rotation_matrices(turns * 2 * np.pi, h, w)

    def get_config(self):
        config = super().get_config()
        config["factor"] = list(self.factor)
        return config


class RandomZoom(_AffineLayer):
    """Zooms each image by 1 + u, u drawn from ``height_factor`` (a number f: [-f, f]; a pair:
    that range; values in (-1, 1], negative zooms in) vertically and from ``width_factor``
    horizontally (None: the same factor as vertically, keeping the aspect ratio)."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = check_pair(height_factor, "height_factor", -1, 1)
        self.width_factor = (None if width_factor is None
                             else check_pair(width_factor, "width_factor", -1, 1))

    def matrices(self, b, h, w):
        zy = 1.0 + self._rng.uniform(self.height_factor[0], self.height_factor[1], size=b)
        zx = zy if self.width_factor is None else 1.0 + self._rng.uniform(
            self.width_factor[0], self.width_factor[1], size=b)
        return zoom_matrices(zx, zy, h, w)

    def get_config(self):
        config = super().get_config()
        config.update(height_factor=list(self.height_factor),
                      width_factor=None if self.width_factor is None else list(self.width_factor))
        return config


class RandomTranslation(_AffineLayer):
    """Shifts each image by a fraction of its height drawn from ``height_factor`` and of its
    width from ``width_factor`` (a number f: [-f, f]; a pair: that range; positive values move
    the content down and right)."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = check_pair(height_factor, "height_factor", -1, 1)
        self.width_factor = check_pair(width_factor, "width_factor", -1, 1)

    def matrices(self, b, h, w):
        dy = self._rng.uniform(self.height_factor[0], self.height_factor[1], size=b) * h
        dx = self._rng.uniform(self.width_factor[0], self.width_factor[1], size=b) * w
        return translation_matrices(dx, dy)

    def get_config(self):
        config = super().get_config()
        config.update(height_factor=list(self.height_factor),
                      width_factor=list(self.width_factor))
        return config
