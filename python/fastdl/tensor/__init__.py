"""Tensors, Variables and the gradient tape (see ``docs/engine.md``).

This package sits under ``fastdl.ops``: it imports nothing from the ops, which bind the
Tensor operators (``+``, ``@``, ``[]``, ...) when ``fastdl.ops`` loads. The public names are
``fastdl.Tensor``, ``fastdl.Variable`` and ``fastdl.GradientTape``, which load the ops first.
"""
from fastdl.tensor.tensor import DType, Tensor, Variable, as_dtype
from fastdl.tensor.tape import GradientTape, record, recording

__all__ = ["DType", "GradientTape", "Tensor", "Variable", "as_dtype", "record", "recording"]
