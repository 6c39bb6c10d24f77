"""fastdl's random state: one NumPy Generator shared by initializers, shuffling and dropout."""
import random as _random

import numpy as np

_rng = np.random.default_rng()


def get_rng():
    """The Generator every random operation in fastdl draws from."""
    return _rng


def set_random_seed(seed):
    """Seed fastdl (and Python's ``random`` and NumPy's global state, as Keras does).

    After this, building and fitting the same model gives bitwise-equal weights at a fixed thread
    count.
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_random_seed: seed must be an int, received {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"set_random_seed: seed must be >= 0, received {seed}")
    seed = int(seed)
    _random.seed(seed)
    np.random.seed(seed % 2**32)
    _rng = np.random.default_rng(seed)


def seed_generator(seed=None):
    """A Generator for a layer/initializer given ``seed=`` (None: draw from the shared one)."""
    if seed is None:
        return _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or None, received {type(seed).__name__} {seed!r}")
    return np.random.default_rng(int(seed))
