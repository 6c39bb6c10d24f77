"""``fastdl.keras.utils`` is ``fastdl.utils``."""
import sys

from fastdl import utils as _target

sys.modules[__name__] = _target
