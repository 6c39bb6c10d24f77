"""fastdl._core: fastdl's C++ kernels, as the build that fits this CPU (see fastdl._dispatch).

Importing this module imports the chosen extension module (fastdl._core_v2, _v3, _v4 or
_core_native) and puts it in this module's place, so ``from fastdl import _core`` gives the
extension module itself: its functions, ``__file__`` and ``build_info()``.
"""
import sys

from fastdl import _dispatch

sys.modules[__name__] = _dispatch.load()
