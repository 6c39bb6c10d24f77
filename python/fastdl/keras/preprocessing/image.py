"""``keras.preprocessing.image``: ``load_img``, ``img_to_array``, ``array_to_img``,
``save_img`` (they need Pillow: ``pip install "fastdl[image]"``) and ``smart_resize``."""
from fastdl.utils.image_utils import array_to_img, img_to_array, load_img, save_img, smart_resize

__all__ = ["array_to_img", "img_to_array", "load_img", "save_img", "smart_resize"]


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
