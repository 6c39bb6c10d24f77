"""``keras.config`` / ``keras.backend`` settings: ``epsilon``, ``floatx``,
``image_data_format``, ``backend``, ``clear_session``.

fastdl computes in float32 by default and lays images out channels-last; those two settings
report that and accept only that value.
"""


def backend():
    """The backend's name: ``"fastdl"``."""
    return "fastdl"


def epsilon():
    """The fuzz factor of the ops' clipping (``keras.config.epsilon``), default 1e-7."""
    from fastdl.ops import nn
    return nn.EPSILON


def set_epsilon(value):
    """Set the fuzz factor used by ``fastdl.ops`` cross-entropies."""
    from fastdl.ops import nn
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"set_epsilon: value must be a number in [0, 1), received {value!r}")
    nn.EPSILON = float(value)


def floatx():
    """The default float dtype: ``"float32"``."""
    return "float32"


def set_floatx(value):
    """Only ``"float32"`` is accepted (fastdl's default float type)."""
    if value != "float32":
        raise ValueError(f"set_floatx: fastdl's default float type is float32, received {value!r}")


def image_data_format():
    """``"channels_last"``: fastdl's layers take NHWC images."""
    return "channels_last"


def set_image_data_format(data_format):
    """Only ``"channels_last"`` is accepted (fastdl's layers take NHWC images)."""
    if data_format != "channels_last":
        raise ValueError("set_image_data_format: fastdl's layers are channels_last, received "
                         f"{data_format!r}")


def clear_session(free_memory=True):
    """Reset the automatic names of layers, models and metrics (the next Dense is ``dense``
    again), as Keras does; ``free_memory`` also runs Python's garbage collector."""
    from fastdl.layers import base
    base._name_counts.clear()
    if free_memory:
        import gc
        gc.collect()


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
