"""``fastdl.keras.ops`` is ``fastdl.ops`` (Keras 3's ``keras.ops`` names)."""
import sys

from fastdl import ops as _target

sys.modules[__name__] = _target
