"""``fastdl.keras.optimizers`` is ``fastdl.optimizers``."""
import sys

from fastdl import optimizers as _target

sys.modules[__name__] = _target
