"""Random ops with ``keras.random`` names: ``normal``, ``uniform``, ``randint``,
``truncated_normal``, ``shuffle``, ``dropout``.

``seed``: None draws from fastdl's global generator (``fastdl.utils.set_random_seed`` /
``fastdl.random.set_seed`` make it reproducible); an int gives the same numbers every call (a
fresh generator seeded with it); a :class:`SeedGenerator` advances its own stream.
"""
import numpy as np

from fastdl.ops.numpy import _array, _standard_dtype, multiply
from fastdl.tensor.tensor import Tensor
from fastdl.utils import rng as _rng


class SeedGenerator:
    """A stream of random state: each op given this generator draws fresh numbers from it."""

    def __init__(self, seed=None, name=None, **kwargs):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"SeedGenerator: seed must be an int or None, received {seed!r}")
        self.name = name
        self.generator = np.random.default_rng(
            _rng.get_rng().integers(2**63) if seed is None else int(seed))


def _generator(seed):
    if seed is None:
        return _rng.get_rng()
    if isinstance(seed, SeedGenerator):
        return seed.generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be None, an int or a SeedGenerator, received "
                        f"{type(seed).__name__} {seed!r}")
    return np.random.default_rng(int(seed))


def _float_dtype(dtype):
    d = _standard_dtype(dtype) or np.dtype(np.float32)
    if d.kind != "f":
        raise TypeError(f"dtype must be a float dtype, received {dtype!r}")
    return d


def _shape(shape):
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Samples of a normal distribution."""
    d = _float_dtype(dtype)
    z = _generator(seed).standard_normal(_shape(shape))
    return Tensor((z * stddev + mean).astype(d))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal samples redrawn until within two standard deviations of the mean."""
    d = _float_dtype(dtype)
    gen = _generator(seed)
    z = gen.standard_normal(_shape(shape))
    bad = np.abs(z) > 2
    while bad.any():
        z[bad] = gen.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2
    return Tensor((z * stddev + mean).astype(d))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Samples uniform in ``[minval, maxval)``."""
    d = _float_dtype(dtype)
    return Tensor(_generator(seed).uniform(minval, maxval, _shape(shape)).astype(d))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers uniform in ``[minval, maxval)``."""
    return Tensor(_generator(seed).integers(minval, maxval, _shape(shape)).astype(
        _standard_dtype(dtype)))


def shuffle(x, axis=0, seed=None):
    """``x`` with its entries along ``axis`` randomly permuted."""
    a = np.asarray(_array(x))
    perm = _generator(seed).permutation(a.shape[axis])
    return Tensor(np.take(a, perm, axis=axis))


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Entries of ``inputs`` zeroed with probability ``rate``, the rest scaled by
    ``1 / (1 - rate)`` (differentiable in ``inputs``)."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1), received {rate!r}")
    a = _array(inputs)
    shape = a.shape if noise_shape is None else tuple(
        a.shape[i] if n is None else n for i, n in enumerate(noise_shape))
    keep = _generator(seed).uniform(size=shape) >= rate
    d = a.dtype if a.dtype.kind == "f" else np.dtype(np.float32)
    return multiply(inputs, (keep / (1 - rate)).astype(d))


def set_seed(seed):
    """Seed the global generator (``tf.random.set_seed``; same as ``keras.utils.set_random_seed``)."""
    _rng.set_random_seed(seed)


set_random_seed = set_seed
