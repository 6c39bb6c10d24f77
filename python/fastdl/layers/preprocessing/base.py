"""What the preprocessing and augmentation layers share.

These layers compute on NumPy and have no trainable weights. They still follow the Layer
contract, so they run first (or anywhere) in a ``Sequential`` model and as GradientTape
primitives: the numeric image layers have an exact ``backward`` (they are linear in their
input), and the layers that map values to ids or counts (lookups, hashing, discretization,
category encoding) are piecewise constant, so their gradient is zero for a float input and
there is none (``None``) for strings or integers.

The augmentation layers (``RandomFlip``, ...) transform only in training and are the identity
otherwise, as in Keras: ``fit`` trains, ``predict``/``evaluate``/``model(x)`` do not, and a
direct call ``layer(x)`` augments unless given ``training=False`` (Keras's default). Their randomness comes from
``seed=``: an int (a fresh ``numpy.random.Generator`` per layer), a ``fastdl.random.
SeedGenerator`` or a ``numpy.random.Generator`` (used as given); None draws from fastdl's shared
generator (``fastdl.random.set_seed``).
"""
import numbers

import numpy as np

from fastdl.layers.base import Layer, as_input_array

_INT_DTYPES = ("int32", "int64")


def is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_number(value, name):
    if not is_number(value):
        raise TypeError(f"{name} must be a number. Received: {name}={value!r}")
    return float(value)


def check_pair(value, name, low=None, high=None):
    """Keras's ``factor``: a number f gives (max(-|f|, low), |f|) and a pair (lower, upper) is
    taken sorted; each bound must lie in [low, high] when given."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a pair of numbers. "
                             f"Received: {name}={value!r}")
        pair = tuple(sorted(check_number(v, name) for v in value))
    else:
        f = abs(check_number(value, name))
        pair = (-f if low is None else max(-f, low), f)
    if (low is not None and pair[0] < low) or (high is not None and pair[1] > high):
        raise ValueError(f"{name} must be in [{low}, {high}]. Received: {name}={value!r}")
    return pair


def array_input(x, layer):
    """``np.asarray(x)`` with fastdl's messages for what cannot be a layer's input."""
    if isinstance(x, (str, bytes)):
        x = np.asarray([x])   # one string: a batch of one, as Keras accepts
    return as_input_array(x, layer)


def is_text(a):
    return a.dtype.kind in "USO"


def as_text(x, layer):
    """A NumPy array of Python str (dtype object) from str/bytes/object input; numbers are a
    TypeError naming the dtype received."""
    a = array_input(x, layer)
    if not is_text(a):
        raise TypeError(f"{type(layer).__name__} layer {layer.name!r} expects strings, received "
                        f"an array of dtype {a.dtype}")
    out = np.empty(a.shape, dtype=object)
    flat, src = out.reshape(-1), a.reshape(-1)
    for i, v in enumerate(src):
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        elif not isinstance(v, str):
            raise TypeError(f"{type(layer).__name__} layer {layer.name!r} expects strings, "
                            f"received an element of type {type(v).__name__}: {v!r:.50}")
        flat[i] = v
    return out


def as_integers(x, layer):
    """An int64 array from integer input (floats with integral values are accepted, as Keras
    casts); strings are a TypeError naming the dtype received."""
    a = array_input(x, layer)
    if is_text(a) or a.dtype.kind not in "biuf":
        raise TypeError(f"{type(layer).__name__} layer {layer.name!r} expects integers, "
                        f"received an array of dtype {a.dtype}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{type(layer).__name__} layer {layer.name!r} expects integers, "
                             "received non-integral floats")
    return a.astype(np.int64)


def check_output_dtype(dtype, default, allowed):
    """The dtype a layer outputs (Keras writes it as the layer's ``dtype``)."""
    if dtype is None:
        return default
    if isinstance(dtype, dict):  # a Keras DTypePolicy
        dtype = dtype.get("config", {}).get("name", dtype)
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in allowed:
        raise ValueError(f"dtype must be one of {list(allowed)}. Received: dtype={dtype!r}")
    return name


def batches(data, layer):
    """The arrays ``adapt`` reads, as in Keras: an array (or a list of plain values) is one
    batch; any other iterable (a list of arrays, a generator) yields batches, each an array or
    an (x, y) pair of which x is used."""
    if isinstance(data, (str, bytes)):
        yield np.asarray([data])
        return
    if isinstance(data, np.ndarray) or (hasattr(data, "__array__")
                                        and not isinstance(data, (list, tuple))):
        yield np.asarray(data)
        return
    if isinstance(data, (list, tuple)) and (not data or not isinstance(
            data[0], (np.ndarray, list, tuple)) and not hasattr(data[0], "__array__")):
        yield np.asarray(data)
        return
    if not hasattr(data, "__iter__"):
        raise TypeError(f"{type(layer).__name__}.adapt expects an array or an iterable of "
                        f"batches, received {type(data).__name__}")
    empty = True
    for batch in data:
        if isinstance(batch, tuple):
            batch = batch[0]
        empty = False
        yield np.asarray(batch)
    if empty:
        raise ValueError(f"{type(layer).__name__}.adapt received no data")


class PreprocessingLayer(Layer):
    """A layer that transforms its input without trainable weights (see the module docstring).

    Subclasses set ``_input_kind``: ``"float"`` (cast to the layer's float dtype), ``"any"``
    (strings or numbers, left as they are) and implement ``call``; ``backward`` defaults to the
    piecewise-constant rule (zeros for a float input, None otherwise)."""

    _input_kind = "float"

    def convert_input(self, x):
        if self._input_kind == "float":
            a = array_input(x, self)
            if is_text(a):
                raise TypeError(f"{type(self).__name__} layer {self.name!r} expects numbers, "
                                f"received an array of dtype {a.dtype}")
            return super().convert_input(a)
        return array_input(x, self)

    def _autocast_input(self, x):
        return super()._autocast_input(x) if self._input_kind == "float" else x

    def call(self, x, training=False):
        self._input_float = x.dtype.kind == "f"
        self._input_shape_seen = x.shape
        return self.transform(x)

    def transform(self, x):
        raise NotImplementedError(f"{type(self).__name__}.transform")

    def backward(self, dy):
        self.grads = []
        if not getattr(self, "_input_float", False):
            return None   # strings or integers: no gradient
        return np.zeros(self._input_shape_seen, dtype=dy.dtype if dy is not None else
                        self.dtype)


def generator_from(seed, what="seed"):
    """The numpy Generator behind ``seed=`` (see the module docstring)."""
    from fastdl.ops.random import SeedGenerator
    from fastdl.utils.rng import seed_generator
    if isinstance(seed, SeedGenerator):
        return seed.generator
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"{what} must be None, an int, a fastdl SeedGenerator or a "
                        f"numpy.random.Generator. Received: {what}={seed!r}")
    return seed_generator(None if seed is None else int(seed))


class RandomLayer(PreprocessingLayer):
    """An augmentation layer: ``sample(x)`` draws this batch's parameters when training, then
    ``apply(x, params)`` transforms; inference returns the input unchanged. The parameters of
    the last training call are kept for ``backward``."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._rng = generator_from(seed)
        # Keras's config keeps an int seed; a generator object is not data and saves as None
        self.seed = int(seed) if isinstance(seed, (int, np.integer)) else None

    def __call__(self, x, training=None, mask=None, **kwargs):
        # Keras: a direct call augments (its call's default is training=True); models and
        # fit/predict pass their own flag
        return super().__call__(x, training=True if training is None else training, mask=mask,
                                **kwargs)

    def call(self, x, training=False):
        self._drawn = None
        self._input_shape_seen = x.shape
        if not training:
            return x
        if x.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__} layer {self.name!r} expects images of "
                             f"rank 3 or 4 (channels last), received shape {x.shape}")
        batched = x if x.ndim == 4 else x[None]
        self._drawn = self.sample(batched)
        y = self.apply(batched, self._drawn)
        return y if x.ndim == 4 else y[0]

    def backward(self, dy):
        self.grads = []
        if self._drawn is None or dy is None:
            return dy
        batched = dy if dy.ndim == 4 else dy[None]
        dx = self.apply_backward(np.asarray(batched), self._drawn)
        return dx if dy.ndim == 4 else dx[0]

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
