"""fastdl: a fast CPU deep-learning library with the Keras API.

Hot kernels are C++ (Eigen + OpenMP) in ``fastdl._core``, compiled for several x86-64 levels
(the best this CPU runs loads with them: see ``build_info``); layers, losses, optimizers,
metrics, callbacks and ``Sequential`` are Python on top. Submodules load on first use, so
``import fastdl`` stays cheap.
"""
import importlib as _importlib
import os as _os

__version__ = "0.1.0"

# OpenMP threads that wait at a barrier sleep instead of spinning, unless the user chose
# otherwise. On a machine where other processes also want the cores, spinning threads steal
# time from the one thread still working: measured here, tutorial-CNN training on 2 threads
# beside one busy process ran at ~450 img/s with libgomp's spinning default, ~1850 with PASSIVE.
# libgomp reads this once, when fastdl._core first loads it.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_SUBMODULES = {
    "activations", "callbacks", "constraints", "data", "datasets", "distributed", "explain",
    "image", "initializers", "keras", "layers", "linalg", "losses", "math", "metrics", "models",
    "nn", "ops",
    "optimizers", "plot", "random", "regularizers", "saving", "utils",
}
# Keras submodules that TensorFlow's top level lacks, for ``import fastdl as keras`` (e.g.
# ``keras.backend.clear_session()``, ``keras.preprocessing.sequence.pad_sequences``)
_KERAS_SUBMODULES = {"backend", "preprocessing"}
_ATTRIBUTES = {  # public name -> module that defines it
    "Sequential": "fastdl.models",
    "Model": "fastdl.models",
    "Input": "fastdl.layers",
    "TensorSpec": "fastdl.data",
}
# TensorFlow names (``import fastdl as tf``), all from fastdl.ops.tf_compat; see docs/engine.md
_ATTRIBUTES.update(dict.fromkeys((
    "constant", "Variable", "GradientTape", "Tensor", "DType", "as_dtype", "convert_to_tensor",
    "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_std",
    "reduce_variance", "reduce_logsumexp", "reduce_any", "reduce_all", "matmul", "concat",
    "reshape", "cast", "one_hot", "shape", "size", "rank", "square", "sqrt", "exp", "abs",
    "add", "subtract", "multiply", "divide", "pow", "negative", "maximum", "minimum", "sigmoid",
    "tanh", "sin", "cos", "sign", "zeros", "ones", "zeros_like", "ones_like", "fill", "range",
    "transpose", "expand_dims", "squeeze", "stack", "unstack", "split", "gather", "where",
    "argmax", "argmin", "clip_by_value", "stop_gradient", "tile", "pad", "einsum", "norm",
    "sort", "cumsum", "identity", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "logical_and", "logical_or", "logical_not", "float16", "float32",
    "float64", "int8", "int16", "int32", "int64", "uint8", "bool", "version",
    "function", "executing_eagerly", "print", "is_tensor", "newaxis", "TensorShape", "eye",
    "linspace", "broadcast_to", "meshgrid", "reverse", "roll", "argsort", "unique",
    "searchsorted", "tensordot", "round", "floor", "boolean_mask", "sequence_mask", "gather_nd",
    "scatter_nd", "tensor_scatter_nd_update", "clip_by_norm", "clip_by_global_norm", "map_fn",
    "vectorized_map", "cond", "case", "while_loop", "py_function", "numpy_function",
    "TensorArray", "name_scope", "control_dependencies", "get_logger", "Module",
), "fastdl.ops.tf_compat"))


def set_num_threads(n):
    """Set the number of threads fastdl's kernels use (default: ``OMP_NUM_THREADS`` or all cores).

    ``n`` is at most ``max(64, 4 * cores)``; ``RuntimeError`` when the process cannot create
    ``n`` threads now (a memory or process limit), leaving the count unchanged.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, received {type(n).__name__} {n!r}")
    from fastdl import _core
    if not 1 <= n <= _core.max_threads():
        raise ValueError(f"set_num_threads: n must be between 1 and {_core.max_threads()} "
                         f"(4 per core, at least 64), received {n}")
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads fastdl's kernels use."""
    from fastdl import _core
    return _core.get_num_threads()


def build_info():
    """How this fastdl was built and which kernels run: a dict.

    ``isa`` is the x86-64 level of the kernels this process runs ("v2", "v3", "v4", or "native"
    for a ``-march=native``/sanitizer build), ``isa_levels`` the levels this installation has,
    ``cpu_isa_levels`` the levels this CPU runs (None in a single-level build), ``gemm`` the
    float32 GEMM ("avx512", "avx2" or "eigen"); also ``simd``, ``eigen_version``, ``openmp``
    and ``sanitizer``. ``FASTDL_ISA=v2|v3|v4`` chooses a lower level than the best.
    """
    from fastdl import _core, _dispatch
    info = dict(_core.build_info())
    info["isa_levels"] = _dispatch.compiled_levels()
    info["cpu_isa_levels"] = None if info["isa"] == _dispatch.NATIVE else _dispatch.cpu_levels()
    return info


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"fastdl.{name}")
    if name in _KERAS_SUBMODULES:
        return _importlib.import_module(f"fastdl.keras.{name}")
    if name in _ATTRIBUTES:
        return getattr(_importlib.import_module(_ATTRIBUTES[name]), name)
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | _KERAS_SUBMODULES | set(_ATTRIBUTES))
