"""Keras's image helpers: ``load_img``, ``img_to_array``, ``array_to_img``, ``save_img``.

They need Pillow, an optional dependency: ``pip install "fastdl[image]"``. Arrays are
``channels_last`` (height, width, channels) unless ``data_format="channels_first"``.
"""
import io
import pathlib
import warnings

import numpy as np

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}


def pil_image():
    """``PIL.Image``, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("fastdl's image utilities need Pillow, an optional dependency: "
                          'pip install "fastdl[image]" (or pip install Pillow)') from err
    return Image


def _data_format(data_format):
    if data_format is None:
        return "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError('data_format must be "channels_last", "channels_first" or None. '
                         f"Received: data_format={data_format!r}")
    return data_format


def _resample(interpolation):
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}. Received: "
                         f"interpolation={interpolation!r}")
    return getattr(pil_image().Resampling, interpolation.upper())


def _color(img, color_mode):
    if color_mode not in COLOR_MODES:
        raise ValueError('color_mode must be "grayscale", "rgb", or "rgba". Received: '
                         f"color_mode={color_mode!r}")
    if color_mode == "grayscale":
        return img if img.mode in ("L", "I;16", "I") else img.convert("L")
    mode = color_mode.upper()
    return img if img.mode == mode else img.convert(mode)


def _size(target_size, name="target_size"):
    if not (isinstance(target_size, (tuple, list)) and len(target_size) == 2 and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
            for d in target_size)):
        raise ValueError(f"{name} must be (height, width), two positive ints. Received: "
                         f"{name}={target_size!r}")
    return int(target_size[0]), int(target_size[1])


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """The image file at ``path`` (a path or ``io.BytesIO``) as a PIL image in ``color_mode``
    ("grayscale", "rgb", "rgba"), resized to ``target_size`` (height, width) if given;
    ``keep_aspect_ratio`` first crops the centre to the target's aspect ratio."""
    Image = pil_image()
    if isinstance(path, io.BytesIO):
        img = Image.open(path)
    elif isinstance(path, (str, bytes, pathlib.Path)):
        with open(path, "rb") as f:
            img = Image.open(io.BytesIO(f.read()))
    else:
        raise TypeError(f"load_img: path must be path-like or io.BytesIO, not "
                        f"{type(path).__name__}")
    img = _color(img, color_mode)
    if target_size is None:
        return img
    height, width = _size(target_size)
    if img.size == (width, height):
        return img
    resample = _resample(interpolation)
    box = None
    if keep_aspect_ratio:
        box = _crop_box(img.size, (width, height))
    return img.resize((width, height), resample, box=box)


def _crop_box(size, target):
    """The centred (left, top, right, bottom) of ``size`` (w, h) with ``target``'s aspect."""
    w, h = size
    tw, th = target
    crop_h, crop_w = min(h, (w * th) // tw), min(w, (h * tw) // th)
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    return (left, top, left + crop_w, top + crop_h)


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image as a float32 (or ``dtype``) array (height, width, channels)."""
    data_format = _data_format(data_format)
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 2:
        x = x[None] if data_format == "channels_first" else x[..., None]
    elif x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    else:
        raise ValueError(f"img_to_array: unsupported image shape {x.shape}")
    return x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A (height, width, 1|3|4) array as a PIL image (L, RGB, RGBA; "I" for grayscale above
    255); ``scale`` maps the array's min..max to 0..255 first."""
    Image = pil_image()
    data_format = _data_format(data_format)
    x = np.array(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError(f"array_to_img: expected an image array of rank 3 (one image). "
                         f"Received shape {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x /= top
        x *= 255
    channels = x.shape[2]
    if channels in (3, 4):
        return Image.fromarray(x.astype("uint8"), "RGB" if channels == 3 else "RGBA")
    if channels == 1:
        if np.max(x) > 255:
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"array_to_img: unsupported channel count {channels} (1, 3 or 4)")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Save an image array to ``path``; the format comes from the suffix unless
    ``file_format`` is given (an RGBA image saved as JPEG becomes RGB, with a warning)."""
    if file_format is None and isinstance(path, (str, pathlib.Path)):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.",
                      UserWarning, stacklevel=2)
        img = img.convert("RGB")
    img.save(path, format=file_format or None, **kwargs)


def load_image_array(path, image_size, color_mode, interpolation, crop_to_aspect_ratio,
                     pad_to_aspect_ratio):
    """image_dataset_from_directory's loader: one file as a float32 (h, w, c) array."""
    img = load_img(path, color_mode=color_mode)
    height, width = image_size
    if pad_to_aspect_ratio:     # black bars around the centred image, to the target aspect
        w, h = img.size
        pad_w, pad_h = max(w, (h * width + height - 1) // height), max(
            h, (w * height + width - 1) // width)
        if (pad_w, pad_h) != (w, h):
            canvas = pil_image().new(img.mode, (pad_w, pad_h))
            canvas.paste(img, ((pad_w - w) // 2, (pad_h - h) // 2))
            img = canvas
    if img.size != (width, height):
        box = _crop_box(img.size, (width, height)) if crop_to_aspect_ratio else None
        img = img.resize((width, height), _resample(interpolation), box=box)
    return img_to_array(img)


def smart_resize(x, size, interpolation="bilinear", data_format="channels_last"):
    """Resize an image (h, w, c) or a batch (b, h, w, c) to ``size`` = (height, width) without
    distorting it, as Keras does: the largest central crop with the target's aspect ratio is
    resized (half-pixel bilinear or nearest sampling, as ``keras.layers.Resizing``). Returns a
    float NumPy array (float32 unless the input is float64); ``data_format="channels_first"``
    takes and returns (c, h, w) / (b, c, h, w)."""
    import types

    from fastdl.layers.preprocessing.resizing import resize_images
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise ValueError(f"Expected `size` to be a tuple of 2 integers, but got: {size!r}.")
    height, width = _size(size, "size")
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError('smart_resize: fastdl interpolates "bilinear" or "nearest". Received: '
                         f"interpolation={interpolation!r}")
    data_format = _data_format(data_format)
    img = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
    if img.ndim not in (3, 4):
        raise ValueError("Expected an image array with shape `(height, width, channels)`, or "
                         "`(batch_size, height, width, channels)`, but got input with incorrect "
                         f"rank, of shape {img.shape}.")
    if img.dtype.kind not in "biuf":
        raise TypeError(f"smart_resize takes numeric images. Received dtype {img.dtype}")
    if img.dtype != np.float64:
        img = img.astype(np.float32)
    if data_format == "channels_first":
        img = np.moveaxis(img, -3, -1)
    out = resize_images(types.SimpleNamespace(), img, height, width, interpolation, True)
    return np.moveaxis(out, -1, -3) if data_format == "channels_first" else out
