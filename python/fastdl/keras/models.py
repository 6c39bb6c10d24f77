"""``fastdl.keras.models`` is ``fastdl.models``."""
import sys

from fastdl import models as _target

sys.modules[__name__] = _target
