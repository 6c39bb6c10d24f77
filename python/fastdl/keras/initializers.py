"""``fastdl.keras.initializers`` is ``fastdl.initializers``."""
import sys

from fastdl import initializers as _target

sys.modules[__name__] = _target
