"""``tf.random`` / ``keras.random`` names: ``normal``, ``uniform``, ``randint``,
``truncated_normal``, ``shuffle``, ``dropout``, ``SeedGenerator``, ``set_seed``."""
from fastdl.ops.random import (  # noqa: F401
    SeedGenerator, dropout, normal, randint, set_seed, shuffle, truncated_normal, uniform)


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
