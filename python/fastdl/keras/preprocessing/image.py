"""``keras.preprocessing.image``: ``load_img``, ``img_to_array``, ``array_to_img``,
``save_img`` (they need Pillow: ``pip install "fastdl[image]"``)."""
from fastdl.utils.image_utils import array_to_img, img_to_array, load_img, save_img

__all__ = ["array_to_img", "img_to_array", "load_img", "save_img"]


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
