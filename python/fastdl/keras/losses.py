"""``fastdl.keras.losses`` is ``fastdl.losses``."""
import sys

from fastdl import losses as _target

sys.modules[__name__] = _target
