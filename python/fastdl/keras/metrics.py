"""``fastdl.keras.metrics`` is ``fastdl.metrics``."""
import sys

from fastdl import metrics as _target

sys.modules[__name__] = _target
