"""``Pipeline(layers)``: Keras 3's chain of layers that is a plain layer, not a model, for
preprocessing and augmentation pipelines (``dataset.map(pipeline)`` or the first layer of a
model). As in Keras, a direct call runs with ``training=True`` (augmentations apply); inside a
model the model's flag is passed on. It has no backward of its own: on Tensors each inner layer
is its own GradientTape primitive."""
from fastdl.layers.base import Layer
from fastdl.layers.sequence import layer_from


def _layer_from(value):
    layer = layer_from(value, "Pipeline")
    if layer is None:
        raise ValueError(f"Pipeline takes layers; received {value!r:.100}")
    return layer


class Pipeline(Layer):
    """Applies ``layers`` one after the other."""

    supports_masking = True

    def __init__(self, layers, name=None, **kwargs):
        if not isinstance(layers, (list, tuple)):
            raise ValueError("`Pipeline` config must contain a `layers` key mapping to a list "
                             f"of serialized layers. Received config with layers={layers!r}.")
        layers = [_layer_from(layer) for layer in layers]
        super().__init__(name=name, **kwargs)
        self._pipeline_layers = [self._track_layer(layer) for layer in layers]

    @property
    def layers(self):
        return list(self._pipeline_layers)

    def __call__(self, x, training=True, mask=None, **kwargs):
        return super().__call__(x, training=training, mask=mask, **kwargs)

    def call(self, inputs, training=True, mask=None):
        for layer in self._pipeline_layers:
            kwargs = {"training": training}
            if layer._call_takes_mask and mask is not None:
                kwargs["mask"] = mask
            inputs = layer(inputs, **kwargs)
            mask = None        # Keras passes on the mask the layer's output carries
        return inputs

    def compute_output_shape(self, input_shape):
        for layer in self._pipeline_layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    def get_config(self):
        from fastdl.saving.common import layer_entry
        return {"layers": [layer_entry(layer) for layer in self._pipeline_layers],
                "name": self.name}
