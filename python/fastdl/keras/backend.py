"""``keras.backend``: the same settings as ``keras.config``."""
from fastdl.keras.config import (  # noqa: F401
    backend, clear_session, epsilon, floatx, image_data_format, set_epsilon, set_floatx,
    set_image_data_format)


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
