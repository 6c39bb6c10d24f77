"""``keras.layers.Lambda``: a function of the input as a layer, differentiated by the GradientTape."""
from fastdl.layers.base import Layer


class Lambda(Layer):
    """``Lambda(function, output_shape=None, mask=None, arguments=None)``: ``call`` returns
    ``function(inputs, **arguments)``. Written with ``fastdl.ops`` (or Tensor operators), the
    function is differentiated by a GradientTape; its output shape is found by running it.
    The layer has no weights."""

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable. Received: {function!r}")
        if mask is not None:
            raise ValueError(f"Lambda: mask= is not supported. Received: mask={mask!r}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"Lambda: arguments must be a dict. Received: {arguments!r}")
        self.function = function
        self.arguments = dict(arguments or {})
        self._output_shape = output_shape

    def call(self, inputs):
        return self.function(inputs, **self.arguments)

    def get_config(self):
        raise NotImplementedError(f"Lambda layer {self.name!r}: its function cannot be "
                                  "serialized (fastdl model files never contain code)")
