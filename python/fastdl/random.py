"""``tf.random`` / ``keras.random`` names: ``normal``, ``uniform``, ``randint``,
``truncated_normal``, ``shuffle``, ``dropout``, ``SeedGenerator``, ``set_seed``."""
from fastdl.ops.random import (  # noqa: F401
    SeedGenerator, dropout, normal, randint, set_seed, shuffle, truncated_normal, uniform)
