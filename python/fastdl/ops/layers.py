"""Built-in layers as tape primitives: ``layer(tensor)`` under a GradientTape.

A layer called on a fastdl Tensor runs its ordinary NumPy/C++ forward and, while a tape
records, is recorded as ONE primitive whose VJP is the layer's own ``backward``. The layer keeps
one cache (its attributes after ``call``), so the entry stores a shallow copy of the layer's
attributes and the VJP puts it back around ``backward``: a layer called twice under one tape
(shared weights) differentiates both calls correctly.

The layer's trainable arrays take part as Variables that share their memory
(:func:`layer_variables`), so ``tape.gradient(loss, layer.trainable_weights)`` and the
optimizers' in-place updates see the same arrays.
"""
import weakref

import numpy as np

from fastdl.tensor.tape import _TAPES, record, tracked
from fastdl.tensor.tensor import Tensor, Variable

_VARIABLES = weakref.WeakKeyDictionary()   # layer -> Variables over its trainable arrays


def layer_variables(layer):
    """Variables sharing the memory of ``layer.trainable_weights`` (the same objects per layer
    while its arrays stay the same)."""
    arrays = layer.trainable_weights
    cached = _VARIABLES.get(layer)
    if (cached is None or len(cached) != len(arrays)
            or any(v._value is not a for v, a in zip(cached, arrays))):
        # a layer written with ops holds the Variables its add_weight returned: use those
        own = {id(w.value): w.variable for w in layer._weight_entries() if w.variable is not None}
        for sub in layer._sublayers:   # a sublayer records its calls with its own Variables
            own.update((id(a), v) for a, v in zip(sub.trainable_weights, layer_variables(sub)))
        cached = [own[id(a)] if id(a) in own else Variable._wrap(a, f"{layer.name}/{i}")
                  for i, a in enumerate(arrays)]
        _VARIABLES[layer] = cached
    return cached


def call_layer(layer, x, training=False, mask=None):
    """``layer(x)`` for a Tensor ``x``: the output as a Tensor, recorded as one primitive."""
    # the recurrent layers take arrays in their own __call__; the others run Layer's array
    # path directly (Layer.__call__ under a recording tape would come back here)
    if layer._primitive_call:
        y = layer(x._value, training=training, mask=mask)
    else:
        y = layer._call_arrays(x._value, training=training, mask=mask)
    out = Tensor(y)
    if _TAPES:
        variables = layer_variables(layer)
        state = layer.__dict__.copy()
        if hasattr(layer, "input_gradient_needed") and not tracked(x):
            state["input_gradient_needed"] = False   # no tape can ask for dx: skip it
        record(out, (x, *variables), _layer_vjp, (layer, state))
    return out


def _layer_vjp(cache, g):
    layer, state = cache
    current = layer.__dict__.copy()
    layer.__dict__.update(state)
    try:
        dx = layer.backward(np.ascontiguousarray(g, dtype=layer.dtype))
        grads = list(layer.grads)
    finally:
        layer.__dict__.clear()
        layer.__dict__.update(current)
    return [dx] + grads
