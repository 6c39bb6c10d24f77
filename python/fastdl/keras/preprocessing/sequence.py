"""``keras.preprocessing.sequence.pad_sequences``."""
from fastdl.utils.data_utils import pad_sequences

__all__ = ["pad_sequences"]
