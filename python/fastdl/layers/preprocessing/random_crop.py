"""``RandomCrop``: a random ``height x width`` window of the images in training."""
import numpy as np

from fastdl.layers.base import check_positive_int
from fastdl.layers.preprocessing.base import RandomLayer
from fastdl.layers.preprocessing.resizing import (check_data_format, resize_backward,
                                                  resize_images)


class RandomCrop(RandomLayer):
    """In training, crops the batch to a ``height x width`` window at one uniformly drawn
    offset (Keras draws one per batch). As in Keras 3: an image not larger than the target on
    both sides is cut at the central window of the target's aspect ratio instead, and resized
    (bilinear) when that window is not ``height x width``; in inference the images pass
    unchanged."""

    def __init__(self, height, width, seed=None, data_format=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name, **kwargs)
        self.height = check_positive_int(height, "height")
        self.width = check_positive_int(width, "width")
        self.data_format = check_data_format(data_format)

    def sample(self, x):
        h, w = x.shape[1], x.shape[2]
        if h > self.height and w > self.width:
            return (int(self._rng.integers(0, h - self.height + 1)),
                    int(self._rng.integers(0, w - self.width + 1)))
        crop_h = max(min(h, int(float(w * self.height) / self.width)), 1)
        crop_w = max(min(w, int(float(h * self.width) / self.height)), 1)
        return int(float(h - crop_h) / 2), int(float(w - crop_w) / 2)

    def apply(self, x, offset):
        top, left = offset
        window = x[:, top:top + self.height, left:left + self.width, :]
        self._resized = window.shape[1:3] != (self.height, self.width)
        if self._resized:
            self._window_shape = window.shape
            return resize_images(self, np.ascontiguousarray(window), self.height, self.width,
                                 "bilinear", False)
        return window

    def apply_backward(self, dy, offset):
        top, left = offset
        shape = self._input_shape_seen if len(self._input_shape_seen) == 4 else \
            (1,) + tuple(self._input_shape_seen)
        dx = np.zeros(shape, dtype=dy.dtype)
        if self._resized:
            seen, self._input_shape_seen = self._input_shape_seen, self._window_shape
            try:
                dy = resize_backward(self, dy)
            finally:
                self._input_shape_seen = seen
        dx[:, top:top + dy.shape[1], left:left + dy.shape[2], :] = dy
        return dx

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-3]) + (self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, data_format=self.data_format)
        return config
