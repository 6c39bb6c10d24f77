"""Shared machinery of the attribution methods: input checks, target resolution, state
preservation and the forward/backward passes through a ``Sequential`` model's own layers.

Nothing here changes a model: weights and optimizer state are never written (only inference
calls, ``training=False``, so BatchNormalization's moving statistics and dropout RNG stay as they
are), and every layer's attributes (``grads``, forward caches, ...) are restored afterwards, so
``layer.grads`` still holds what the last training step left there.
"""
import contextlib
import numbers

import numpy as np

from fastdl.layers.base import shape_str

DEFAULT_BATCH_SIZE = 256


# ----------------------------------------------------------------------------- argument checks

def check_model(model, what):
    """The model must be a built-or-buildable fastdl Sequential with at least one layer."""
    from fastdl.models import Sequential
    if not isinstance(model, Sequential):
        raise TypeError(f"{what} expects a fastdl Sequential model. Received: "
                        f"{type(model).__name__}")
    if not model._layers:
        raise ValueError(f"{what}: model {model.name!r} has no layers")
    return model


def check_int(value, name, low=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer. Received: {name}={value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")
    return int(value)


def check_float(value, name, low=0.0):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number. Received: {name}={value!r}")
    value = float(value)
    if not np.isfinite(value) or value < low:
        raise ValueError(f"{name} must be a finite number >= {low}. Received: {name}={value!r}")
    return value


def check_batch_size(batch_size):
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    return check_int(batch_size, "batch_size")


def make_rng(seed):
    """A private Generator (fastdl's shared random state is never touched)."""
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, a numpy Generator or None. Received: seed={seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0. Received: seed={seed!r}")
    return np.random.default_rng(int(seed))


def is_embedding(layer):
    from fastdl.layers.embedding import Embedding
    return isinstance(layer, Embedding)


def convert_x(model, x, what, name="x", float_only=True):
    """``x`` converted to the model's input dtype and checked against the model's input shape."""
    first = model._layers[0]
    if float_only and is_embedding(first):
        raise ValueError(
            f"{what}: the model starts with an Embedding layer ({first.name!r}), whose input is "
            "integer token ids; a gradient with respect to ids is not defined. Attribution needs "
            "float inputs: attribute to the embedding output instead (a model without the "
            "Embedding layer fed with embedding.call(ids), then sum the attributions over the "
            "embedding axis to score each token), or use occlusion/permutation_importance, which "
            "need no gradient.")
    if x is None:
        raise ValueError(f"{what}: {name} must not be None")
    if isinstance(x, np.ndarray) and x.dtype.kind in "OcSUV":
        raise TypeError(f"{what}: {name} must be a real numeric array. Received dtype {x.dtype}")
    x = model._convert_x(x, name)
    expected = model.input_shape
    if expected is not None:
        expected = tuple(expected)
        if len(expected) != x.ndim or any(e is not None and e != d
                                          for e, d in zip(expected[1:], x.shape[1:])):
            raise ValueError(f"{what}: {name} has shape {shape_str(x.shape)}, but model "
                             f"{model.name!r} expects input of shape {shape_str(expected)}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: {name} contains NaN or Inf values")
    return x


def output_units(model, x):
    """The number of output values per sample (the flattened output shape)."""
    shape = model.output_shape
    if isinstance(shape, list):
        shape = shape[0]
    rest = shape[1:]
    if all(d is not None for d in rest):
        return int(np.prod(rest, dtype=np.int64))
    return None


def resolve_target(target, outputs, what):
    """Per-sample target indices into the flattened outputs ``(N, K)``.

    ``None``: the scalar output when K == 1, otherwise each sample's top-scoring output. An int:
    the same index for every sample. An array of N ints: one index per sample.
    """
    n, k = outputs.shape
    if target is None:
        if k == 1:
            return np.zeros(n, dtype=np.int64)
        return np.argmax(outputs, axis=1).astype(np.int64)
    if isinstance(target, (bool, np.bool_)):
        raise TypeError(f"{what}: target must be an int, an array of ints (one per sample) or "
                        f"None. Received: target={target!r}")
    if isinstance(target, (int, np.integer)):
        if not 0 <= target < k:
            raise ValueError(f"{what}: target must be in [0, {k}) (the model has {k} outputs per "
                             f"sample). Received: target={target!r}")
        return np.full(n, int(target), dtype=np.int64)
    t = np.asarray(target)
    if t.ndim == 0 and t.dtype.kind in "iu":
        return resolve_target(int(t), outputs, what)
    if t.dtype.kind not in "iu":
        if t.dtype.kind == "f" and t.size and np.all(np.isfinite(t)) and np.all(t == np.round(t)):
            t = t.astype(np.int64)
        else:
            raise TypeError(f"{what}: target must be an int, an array of ints (one per sample) "
                            f"or None. Received an array of dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"{what}: target must be one class index per sample, shape ({n},). "
                         f"Received target of shape {t.shape}")
    if n and (t.min() < 0 or t.max() >= k):
        bad = t[(t < 0) | (t >= k)][0]
        raise ValueError(f"{what}: target must be in [0, {k}) (the model has {k} outputs per "
                         f"sample). Received a target of {bad}")
    return t.astype(np.int64)


def check_target_for_model(target, k, n, what):
    """Validate a target against the output count ``k`` before any expensive work."""
    if target is None or k is None:
        return
    dummy = np.zeros((n, k), dtype=np.float32)
    resolve_target(target, dummy, what)


# ----------------------------------------------------------------------------- model state

def _all_layers(model):
    out, stack = [], list(model._layers)
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(getattr(layer, "_sublayers", []))
    return out


@contextlib.contextmanager
def preserved_state(model):
    """Run model passes without leaving a trace on the layers.

    Every layer's (and sub-layer's) attributes are snapshotted and restored afterwards: the
    ``grads`` of the last training step, forward caches, ``d_initial_state``, flags such as
    ``Conv2D.input_gradient_needed``. Weights are arrays updated in place by training only; the
    passes here never write them. The first layer is told that its input gradient is needed.
    Like fit, it has the model to itself (Sequential._in_use): other threads' calls wait or fail.
    """
    with model._in_use("explain", training=True):
        layers = _all_layers(model)
        saved = [(layer, dict(vars(layer))) for layer in layers]
        try:
            first = model._layers[0]
            if hasattr(first, "input_gradient_needed"):
                first.input_gradient_needed = True
            yield
        finally:
            for layer, attrs in saved:
                current = vars(layer)
                for key in [k for k in current if k not in attrs]:
                    del current[key]
                current.update(attrs)


def forward(model, x, keep=()):
    """Inference forward through every layer (masks passed as ``Sequential._forward`` does);
    returns ``(output, {index: output of layer index})`` for the indices in ``keep``."""
    mask = None
    kept = {}
    keep = set(keep)
    for i, layer in enumerate(model._layers):
        x = layer._autocast_input(x)
        next_mask = layer.compute_mask(x, mask)
        if layer._call_takes_mask:
            x = layer.call(x, training=False, mask=mask)
        else:
            x = layer.call(x, training=False)
        if isinstance(x, (list, tuple)):  # an RNN with return_state: the sequence goes on
            x = x[0]
        if i in keep:
            kept[i] = x
        mask = next_mask
    return x, kept


def backward(model, dy, stop=0):
    """Backward from the model output through layers ``len-1 .. stop``; returns the gradient at
    the input of layer ``stop`` (the model input for ``stop=0``)."""
    for layer in reversed(model._layers[stop:]):
        dy = layer.backward(layer._autocast_input(dy))
        if dy is None:
            raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) returned no input "
                             "gradient, so attributions cannot flow through it")
    return dy


def seed_gradient(y, target):
    """One-hot ``d output[target] / d output`` with the output's shape and dtype."""
    n = y.shape[0]
    seed = np.zeros((n, int(np.prod(y.shape[1:], dtype=np.int64))), dtype=y.dtype)
    seed[np.arange(n), target] = 1
    return seed.reshape(y.shape)


def flat_outputs(y):
    return y.reshape(y.shape[0], -1)


def target_gradients(model, x, target, batch_size, stop=0, keep_layer=None):
    """Gradients of output[target] (per sample) at the input of layer ``stop``, batched.

    ``target`` is None or per-sample indices (already resolved, or resolved per batch when
    None). Returns ``(gradients, output values at the targets, resolved targets, kept)`` where
    ``kept`` is the output of layer ``keep_layer`` (or None).
    """
    n = len(x)
    grads, values, targets, kept_all = [], [], [], []
    keep = () if keep_layer is None else (keep_layer,)
    with preserved_state(model):
        for lo in range(0, n, batch_size):
            xb = x[lo:lo + batch_size]
            y, kept = forward(model, xb, keep)
            yf = flat_outputs(y)
            tb = resolve_target(None, yf, "") if target is None else target[lo:lo + batch_size]
            g = backward(model, seed_gradient(y, tb), stop=stop)
            grads.append(np.array(g, copy=True))
            values.append(yf[np.arange(len(xb)), tb].astype(np.float64))
            targets.append(tb)
            if keep_layer is not None:
                kept_all.append(np.array(kept[keep_layer], copy=True))
    if not grads:
        return None, np.zeros(0), np.zeros(0, dtype=np.int64), None
    kept_out = np.concatenate(kept_all) if keep_layer is not None else None
    return (np.concatenate(grads), np.concatenate(values), np.concatenate(targets), kept_out)


def predict(model, x, batch_size):
    """Inference outputs, batched, with the layers' state preserved; flattened ``(N, K)``."""
    outs = []
    with preserved_state(model):
        for lo in range(0, len(x), batch_size):
            y, _ = forward(model, x[lo:lo + batch_size])
            outs.append(np.array(flat_outputs(y), copy=True))
    if not outs:
        k = output_units(model, x) or 0
        return np.zeros((0, k), dtype=np.float64)
    return np.concatenate(outs)


def predict_raw(model, x, batch_size):
    """Inference outputs with their own shape (for metrics), batched, state preserved."""
    outs = []
    with preserved_state(model):
        for lo in range(0, len(x), batch_size):
            y, _ = forward(model, x[lo:lo + batch_size])
            outs.append(np.array(y, copy=True))
    return np.concatenate(outs) if outs else None


def resolve_layer(model, layer, what):
    """A layer given as a name, an index or the layer itself -> its index in the model."""
    from fastdl.layers.base import Layer
    layers = model._layers
    if isinstance(layer, Layer):
        for i, l in enumerate(layers):
            if l is layer:
                return i
        raise ValueError(f"{what}: layer {layer.name!r} is not a layer of model {model.name!r}")
    if isinstance(layer, str):
        for i, l in enumerate(layers):
            if l.name == layer:
                return i
        raise ValueError(f"{what}: no layer named {layer!r} in model {model.name!r}. "
                         f"Existing layers are: {[l.name for l in layers]}")
    if isinstance(layer, (bool, np.bool_)) or not isinstance(layer, (int, np.integer)):
        raise TypeError(f"{what}: a layer is given by its name, its index or the layer itself. "
                        f"Received: {layer!r}")
    if not -len(layers) <= layer < len(layers):
        raise ValueError(f"{what}: layer index {layer} is out of range for model {model.name!r} "
                         f"with {len(layers)} layers")
    return int(layer) % len(layers)
