"""``Resizing``: images to ``height x width``, bilinear or nearest, with the half-pixel
convention of Keras/TensorFlow (``tf.image.resize``, PyTorch ``align_corners=False``): output
pixel i reads the input at ``(i + 0.5) * in / out - 0.5``, the edges repeated beyond the
border; nearest takes ``floor((i + 0.5) * in / out)``."""
import numpy as np

from fastdl.layers.base import check_choice, check_positive_int
from fastdl.layers.preprocessing.base import PreprocessingLayer
from fastdl.layers.preprocessing.image_sampling import INTERPOLATIONS, Plan


def check_data_format(data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError("fastdl's image layers take channels-last images (B, H, W, C). "
                         f"Received: data_format={data_format!r}")
    return "channels_last"


def _axis_coordinates(n_in, n_out, interpolation):
    c = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out)
    return c - 0.5 if interpolation == "bilinear" else np.minimum(np.floor(c), n_in - 1)


def resize_images(layer, x, height, width, interpolation, crop_to_aspect_ratio):
    """Resize x (B, H, W, C) or (H, W, C); keeps the plan on ``layer`` for its backward."""
    batched = x if x.ndim == 4 else x[None]
    b, h, w, _ = batched.shape
    top, left, ch, cw = 0, 0, h, w
    if crop_to_aspect_ratio:   # Keras: the largest central window of the target's aspect ratio
        ch = max(min(h, int(float(w * height) / width)), 1)
        cw = max(min(w, int(float(h * width) / height)), 1)
        top, left = int(float(h - ch) / 2), int(float(w - cw) / 2)
    ys = _axis_coordinates(ch, height, interpolation)
    xs = _axis_coordinates(cw, width, interpolation)
    grid_y = np.broadcast_to(ys[None, :, None], (b, height, width))
    grid_x = np.broadcast_to(xs[None, None, :], (b, height, width))
    # the window's edge pixels repeat beyond it (half-pixel coordinates reach -0.5)
    plan = Plan(grid_y, grid_x, ch, cw, interpolation, "nearest")
    window = np.ascontiguousarray(batched[:, top:top + ch, left:left + cw, :])
    layer._resize_state = (plan, (top, left, ch, cw), x.ndim)
    y = plan.sample(window)
    return y if x.ndim == 4 else y[0]


def resize_backward(layer, dy):
    plan, (top, left, ch, cw), ndim = layer._resize_state
    batched = dy if dy.ndim == 4 else dy[None]
    dwin = plan.sample_backward(np.ascontiguousarray(batched))
    shape = layer._input_shape_seen if ndim == 4 else (1,) + tuple(layer._input_shape_seen)
    dx = np.zeros(shape, dtype=dy.dtype)
    dx[:, top:top + ch, left:left + cw, :] = dwin
    return dx if ndim == 4 else dx[0]


class Resizing(PreprocessingLayer):
    """Resizes images (B, H, W, C) or (H, W, C) to ``height x width``. With
    ``crop_to_aspect_ratio=True`` the largest central window with the target's aspect ratio is
    resized, so the image is not distorted. Differentiable (the adjoint of the sampling)."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.height = check_positive_int(height, "height")
        self.width = check_positive_int(width, "width")
        self.interpolation = check_choice(interpolation, INTERPOLATIONS, "interpolation")
        if not isinstance(crop_to_aspect_ratio, bool):
            raise TypeError(f"crop_to_aspect_ratio must be a bool. Received: "
                            f"crop_to_aspect_ratio={crop_to_aspect_ratio!r}")
        if pad_to_aspect_ratio or antialias:
            raise ValueError("Resizing: pad_to_aspect_ratio and antialias are not supported "
                             "by fastdl. Received: pad_to_aspect_ratio="
                             f"{pad_to_aspect_ratio!r}, antialias={antialias!r}")
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.fill_mode, self.fill_value = fill_mode, fill_value   # used by padding only
        self.data_format = check_data_format(data_format)

    def transform(self, x):
        if x.ndim not in (3, 4):
            raise ValueError(f"Resizing layer {self.name!r} expects images of rank 3 or 4, "
                             f"received shape {x.shape}")
        return resize_images(self, x, self.height, self.width, self.interpolation,
                             self.crop_to_aspect_ratio)

    def backward(self, dy):
        self.grads = []
        return resize_backward(self, dy)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-3]) + (self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, interpolation=self.interpolation,
                      crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                      pad_to_aspect_ratio=False, fill_mode=self.fill_mode,
                      fill_value=self.fill_value, antialias=False,
                      data_format=self.data_format)
        return config
