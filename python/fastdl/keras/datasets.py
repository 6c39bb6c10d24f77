"""``fastdl.keras.datasets`` is ``fastdl.datasets``."""
import sys

from fastdl import datasets as _target

sys.modules[__name__] = _target
