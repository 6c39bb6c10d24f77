"""``fastdl.keras.layers`` is ``fastdl.layers``."""
import sys

from fastdl import layers as _target

sys.modules[__name__] = _target
