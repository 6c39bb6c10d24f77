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
_ACTIVITY = None   # while a model's training step records: layer -> its output Tensor


class collect_activity:
    """Within this block, the output Tensor of each call of a layer with an
    ``activity_regularizer`` (the last call per layer) is collected into the dict it returns,
    so that a training step can seed the penalties' gradients there."""

    def __enter__(self):
        global _ACTIVITY
        self._outer, _ACTIVITY = _ACTIVITY, {}
        return _ACTIVITY

    def __exit__(self, *exc):
        global _ACTIVITY
        _ACTIVITY = self._outer


def layer_variables(layer):
    """Variables sharing the memory of ``layer.trainable_weights`` (the same objects per layer
    while its arrays stay the same)."""
    arrays = layer.trainable_weights
    cached = _VARIABLES.get(layer)
    if (cached is None or len(cached) != len(arrays)
            or any(v._value is not a for v, a in zip(cached, arrays))):
        # a layer written with ops holds the Variables its add_weight returned: use those
        entries = {id(w.value): w for w in layer._weight_entries()}
        own = {i: w.variable for i, w in entries.items() if w.variable is not None}
        for sub in layer._sublayers:   # a sublayer records its calls with its own Variables
            own.update((id(a), v) for a, v in zip(sub.trainable_weights, layer_variables(sub)))
        cached = [own[id(a)] if id(a) in own else Variable._wrap(
                      a, f"{layer.name}/{entries[id(a)].name if id(a) in entries else i}")
                  for i, a in enumerate(arrays)]
        _VARIABLES[layer] = cached
    return cached


def call_layer(layer, x, training=False, mask=None):
    """``layer(x)`` for a Tensor ``x``: the output as a Tensor, recorded as one primitive."""
    # the array path directly (__call__ under a recording tape would come back here); the
    # recurrent layers' own _call_arrays does not note the activity penalty, so it is noted here
    y = layer._call_arrays(x._value, training=training, mask=mask)
    if layer._primitive_call:
        layer._record_activity(y)
    out = Tensor(y)
    if _ACTIVITY is not None and layer.activity_regularizer is not None:
        _ACTIVITY[layer] = out   # the last call's output, as layer.losses has its penalty
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
