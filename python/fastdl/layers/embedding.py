"""Embedding: integer token ids -> dense vectors (Keras 3 API), C++ gather / scatter-add."""
import warnings

import numpy as np

from fastdl import constraints, initializers, regularizers
from fastdl.layers.base import (as_c_array, as_input_array, InputSpec, Layer, check_positive_int,
                                shape_str)
from fastdl.ops.core import rnn as rnn_ops


class Embedding(Layer):
    """Turns ids of shape ``(batch, sequence_length)`` into vectors ``(batch, sequence_length,
    output_dim)``: row ``ids[b, t]`` of the ``embeddings`` weight ``(input_dim, output_dim)``.

    - ids must lie in ``[0, input_dim)``; any other value raises ``ValueError`` naming the value
      and its position, before anything is read (Keras on CPU would silently read garbage or
      zeros).
    - Input must be 2-D: ``(batch, sequence_length)``, or 1-D ``(sequence_length,)`` giving
      ``(sequence_length, output_dim)`` (position embeddings: ``pos_emb(ops.arange(n))``, added
      to the token embeddings by broadcasting). Integer arrays are used as they are; a
      float array is accepted when every value is integral (e.g. ids stored as float32) and
      converted, otherwise ``ValueError`` (Keras would truncate 0.7 to 0 silently).
    - ``mask_zero=True``: id 0 is padding; ``compute_mask`` gives ``ids != 0`` and the recurrent
      layers after it skip those steps (``input_dim`` must then count id 0 as well).
    - ``input_length`` is accepted and ignored, with the same deprecation warning as Keras 3.
    - ``backward`` returns None (there is no gradient with respect to integer ids) and sets the
      embeddings' gradient, a dense ``(input_dim, output_dim)`` array.
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, lora_rank=None, lora_alpha=None, input_length=None, **kwargs):
        if input_length is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.", stacklevel=2)
        super().__init__(**kwargs)
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.output_dim = check_positive_int(output_dim, "output_dim")
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        for name, value in (("lora_rank", lora_rank), ("lora_alpha", lora_alpha)):
            if value is not None:
                raise ValueError(f"Embedding: {name} is not supported by fastdl yet. "
                                 f"Received: {name}={value!r}")
        if not isinstance(mask_zero, (bool, np.bool_)):
            raise TypeError(f"mask_zero must be a bool. Received: mask_zero={mask_zero!r}")
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.input_spec = InputSpec(min_ndim=1)   # and at most 2: _check_rank
        self._ids = None
        if weights is not None:
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self._maybe_build((None, None))
            self.set_weights(weights)

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)

    def _check_rank(self, shape):
        shape = tuple(shape)
        if len(shape) in (1, 2):
            return
        if len(shape) == 3 and shape[-1] == 1:
            fix = (f"reshape x to {shape_str(shape[:2])} (drop the trailing axis of size 1: "
                   f"x.reshape({shape[0]}, {shape[1]}) or x[..., 0])")
        elif len(shape) == 3:
            fix = ("for real-valued features of shape (batch, timesteps, features) leave out the "
                   "Embedding layer and give the data to the recurrent layer directly "
                   f"(input_shape={shape_str(shape[1:])})")
        else:
            fix = "pass a 2-D array of token ids"
        raise ValueError(f"Layer {self.name!r} (Embedding) expects integer token ids of shape "
                         f"(batch, sequence_length), but received input of shape "
                         f"{shape_str(shape)}; {fix}.")

    def convert_input(self, x):
        x = as_input_array(x, self)
        self._check_rank(x.shape)  # the shape is the more useful message (e.g. (100, 10, 1))
        try:
            return rnn_ops.as_ids(x, f"Layer {self.name!r} (Embedding) input")
        except ValueError as e:
            raise ValueError(f"{e}. Embedding takes integer token ids in [0, input_dim="
                             f"{self.input_dim}); real-valued features should go to the recurrent "
                             "or Dense layer directly, without an Embedding") from None

    def check_input_shape(self, shape):
        self._check_rank(shape)

    def call(self, x, training=False):
        ids = rnn_ops.as_ids(x, f"Layer {self.name!r} (Embedding) input")
        self._check_rank(ids.shape)
        try:
            y = rnn_ops.embedding_lookup(self.embeddings, ids)
        except ValueError as e:
            raise ValueError(f"Layer {self.name!r} (Embedding, input_dim={self.input_dim}): "
                             f"{e}") from None
        self._ids = ids
        return y

    def backward(self, dy):
        if self._ids is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        if self._trainable:
            dy = as_c_array(dy, dtype=self.embeddings.dtype)
            self.grads = [rnn_ops.embedding_backward(dy, self._ids, self.input_dim)]
        else:
            self.grads = []
        return None

    def compute_mask(self, x, mask=None):
        if not self.mask_zero:
            return None
        return np.asarray(x) != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim,
                      embeddings_initializer=initializers.serialize(self.embeddings_initializer),
                      embeddings_regularizer=regularizers.serialize(self.embeddings_regularizer),
                      embeddings_constraint=constraints.serialize(self.embeddings_constraint),
                      mask_zero=self.mask_zero)
        return config
