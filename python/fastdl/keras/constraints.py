"""``fastdl.keras.constraints`` is ``fastdl.constraints``."""
import sys

from fastdl import constraints as _target

sys.modules[__name__] = _target
