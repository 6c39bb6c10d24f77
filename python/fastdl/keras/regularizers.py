"""``fastdl.keras.regularizers`` is ``fastdl.regularizers``."""
import sys

from fastdl import regularizers as _target

sys.modules[__name__] = _target
