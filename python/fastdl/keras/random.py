"""``fastdl.keras.random`` is ``fastdl.random`` (Keras 3's ``keras.random`` names)."""
import sys

from fastdl import random as _target

sys.modules[__name__] = _target
