"""``keras.preprocessing.sequence.pad_sequences``."""
from fastdl.utils.data_utils import pad_sequences

__all__ = ["pad_sequences"]


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
