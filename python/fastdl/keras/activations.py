"""``fastdl.keras.activations`` is ``fastdl.activations``."""
import sys

from fastdl import activations as _target

sys.modules[__name__] = _target
