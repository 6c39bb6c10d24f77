"""``CenterCrop``: the central ``height x width`` window of each image (resized when smaller)."""
import numpy as np

from fastdl.layers.base import check_positive_int
from fastdl.layers.preprocessing.base import PreprocessingLayer
from fastdl.layers.preprocessing.resizing import check_data_format, resize_images


def crop_box(in_h, in_w, height, width):
    """Keras's central window: (top, left) of a ``height x width`` crop."""
    return (in_h - height) // 2, (in_w - width) // 2


class CenterCrop(PreprocessingLayer):
    """Crops the centre of images (B, H, W, C) or (H, W, C) to ``height x width``. As in Keras,
    an image smaller than the target on either side is first resized (bilinear) with its
    aspect ratio cropped to the target's. Differentiable (the crop pads dy with zeros)."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.height = check_positive_int(height, "height")
        self.width = check_positive_int(width, "width")
        self.data_format = check_data_format(data_format)

    def transform(self, x):
        if x.ndim not in (3, 4):
            raise ValueError(f"CenterCrop layer {self.name!r} expects images of rank 3 or 4, "
                             f"received shape {x.shape}")
        h, w = x.shape[-3], x.shape[-2]
        self._resized = h < self.height or w < self.width
        if self._resized:
            return resize_images(self, x, self.height, self.width, "bilinear", True)
        top, left = crop_box(h, w, self.height, self.width)
        return x[..., top:top + self.height, left:left + self.width, :]

    def backward(self, dy):
        self.grads = []
        if self._resized:
            return self._plan_backward(dy)
        h, w = self._input_shape_seen[-3], self._input_shape_seen[-2]
        top, left = crop_box(h, w, self.height, self.width)
        dx = np.zeros(self._input_shape_seen, dtype=dy.dtype)
        dx[..., top:top + self.height, left:left + self.width, :] = dy
        return dx

    def _plan_backward(self, dy):
        from fastdl.layers.preprocessing.resizing import resize_backward
        return resize_backward(self, dy)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-3]) + (self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, data_format=self.data_format)
        return config
