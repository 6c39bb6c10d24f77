"""``fastdl.keras.callbacks`` is ``fastdl.callbacks``."""
import sys

from fastdl import callbacks as _target

sys.modules[__name__] = _target
