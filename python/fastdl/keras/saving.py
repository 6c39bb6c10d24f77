"""``fastdl.keras.saving`` is ``fastdl.saving``."""
import sys

from fastdl import saving as _target

sys.modules[__name__] = _target
