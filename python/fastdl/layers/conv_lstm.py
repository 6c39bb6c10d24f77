"""``ConvLSTM1D`` and ``ConvLSTM2D`` (Keras 3): an LSTM whose input and recurrent transforms are
convolutions, on ``(batch, time, *spatial, channels)`` (channels_last).

Keras's weight layout: ``kernel (*kernel_size, in_channels, 4 * filters)``,
``recurrent_kernel (*kernel_size, filters, 4 * filters)``, ``bias (4 * filters,)``, gates i, f,
c, o; the recurrent convolution always has stride 1 and "same" padding (and no dilation), so the
state keeps the spatial size of the input convolution's output. A step is two conv2d primitives
and elementwise ops, and ``RNN`` runs the steps in a Python loop, so a GradientTape
differentiates the layer (no backward of its own). Masks, ``go_backwards``, ``stateful`` and
``return_state`` (``[output, h, c]``) are ``RNN``'s, as in Keras.

``dropout``/``recurrent_dropout`` (training only) draw one mask per sequence, for the inputs and
for the previous state ``h``, shared by the four gates (each gate's convolution sees the same
dropped entries).
"""
from fastdl import activations, constraints, initializers, regularizers
from fastdl.layers.base import (InputSpec, Layer, check_choice, check_int_tuple,
                                check_positive_int, check_rate, shape_str)
from fastdl.layers.convolutional import check_bool, check_data_format, spatial_output_shape
from fastdl.layers.rnn_cells import _OPS_ACTIVATIONS, RNN, _apply, _ops
from fastdl.utils.rng import seed_generator

_OBJECTS = {"initializer": initializers, "regularizer": regularizers,
            "constraint": constraints}


class _ConvLSTMCell(Layer):
    """One ConvLSTM step: ``call(x_t, [h, c]) -> (h, [h, c])``."""

    def __init__(self, rank, filters, kernel_size, strides, padding, data_format, dilation_rate,
                 activation, recurrent_activation, use_bias, kernel_initializer,
                 recurrent_initializer, bias_initializer, unit_forget_bias, kernel_regularizer,
                 recurrent_regularizer, bias_regularizer, kernel_constraint,
                 recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed,
                 **kwargs):
        super().__init__(**kwargs)
        self.rank = rank
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = check_int_tuple(kernel_size, rank, "kernel_size")
        self.strides = check_int_tuple(strides, rank, "strides")
        self.padding = check_choice(padding, {"valid", "same"}, "padding")
        self.data_format = check_data_format(data_format)
        self.dilation_rate = check_int_tuple(dilation_rate, rank, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("Specifying `strides > 1` is not compatible with `dilation_rate > "
                             f"1`. Please provide `strides=1` or `dilation_rate=1`. Received: "
                             f"strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        for act, what in ((self.activation, "activation"),
                          (self.recurrent_activation, "recurrent_activation")):
            if act.name not in _OPS_ACTIVATIONS:
                raise ValueError(f"ConvLSTM supports {what} in {list(_OPS_ACTIVATIONS)}. "
                                 f"Received: {what}={act.name!r}")
        self.use_bias = check_bool(use_bias, "use_bias")
        self.unit_forget_bias = check_bool(unit_forget_bias, "unit_forget_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
        seed_generator(seed)   # validates
        self.seed = seed
        self._rng = None
        self._masks = None     # (input mask, recurrent mask) of the current sequence
        self.state_size = [self.filters, self.filters]   # channels; spatial sizes follow x

    def output_shape_for(self, step_shape):
        """``(batch, *spatial, filters)`` of a step on ``step_shape`` (ValueError when a
        spatial size would be < 1)."""
        return spatial_output_shape(self, step_shape, self.kernel_size, self.strides,
                                    self.dilation_rate, self.padding, self.filters)

    def build(self, input_shape):
        channels = input_shape[-1]
        if len(input_shape) != self.rank + 2 or channels is None:
            raise ValueError(f"ConvLSTM{self.rank}D: a step's input must be (batch, "
                             f"{self.rank} spatial axes, channels) with known channels. "
                             f"Received: {shape_str(input_shape)}")
        self.output_shape_for(input_shape)
        f4 = 4 * self.filters
        self.kernel = self.add_weight(
            name="kernel", shape=self.kernel_size + (channels, f4),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=self.kernel_size + (self.filters, f4),
            initializer=self.recurrent_initializer, regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint)
        if self.use_bias:
            if self.unit_forget_bias:
                from fastdl.layers.recurrent import _UnitForgetBias
                init = _UnitForgetBias(self.bias_initializer, self.filters)
            else:
                init = self.bias_initializer
            self.bias = self.add_weight(name="bias", shape=(f4,), initializer=init,
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        else:
            self.bias = None

    def _draw_masks(self, x, h):
        from fastdl.layers.recurrent import _dropout_mask
        if self._rng is None:
            self._rng = seed_generator(self.seed) if self.seed is not None else None
        rng = self._rng if self._rng is not None else seed_generator(None)
        dtype = x.numpy().dtype
        return (_dropout_mask(rng, x.shape, self.dropout, dtype) if self.dropout > 0 else None,
                _dropout_mask(rng, h.shape, self.recurrent_dropout, dtype)
                if self.recurrent_dropout > 0 else None)

    def call(self, inputs, states, training=False):
        ops = _ops()
        h, c = states
        if training and (self.dropout > 0 or self.recurrent_dropout > 0):
            if self._masks is None:
                self._masks = self._draw_masks(inputs, h)
            x_mask, h_mask = self._masks
            inputs = inputs if x_mask is None else inputs * x_mask
            h_in = h if h_mask is None else h * h_mask
        else:
            h_in = h
        z = ops.conv(inputs, self.kernel, strides=self.strides, padding=self.padding,
                     dilation_rate=self.dilation_rate)
        if self.bias is not None:
            z = z + self.bias
        z = z + ops.conv(h_in, self.recurrent_kernel, strides=1, padding="same")
        zi, zf, zc, zo = ops.split(z, 4, axis=-1)
        rec, act = self.recurrent_activation.name, self.activation.name
        i, f, o = _apply(rec, zi), _apply(rec, zf), _apply(rec, zo)
        c = f * c + i * _apply(act, zc)
        h = o * _apply(act, c)
        return h, [h, c]


class _ConvLSTM(RNN):
    """Shared by ConvLSTM1D and ConvLSTM2D (``rank``)."""

    rank = None

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, **kwargs):
        cell = _ConvLSTMCell(
            self.rank, filters, kernel_size, strides, padding, data_format, dilation_rate,
            activation, recurrent_activation, use_bias, kernel_initializer,
            recurrent_initializer, bias_initializer, unit_forget_bias, kernel_regularizer,
            recurrent_regularizer, bias_regularizer, kernel_constraint, recurrent_constraint,
            bias_constraint, dropout, recurrent_dropout, seed, name="conv_lstm_cell",
            dtype=kwargs.get("dtype"))
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful,
                         activity_regularizer=activity_regularizer, **kwargs)
        self.input_spec = InputSpec(ndim=self.rank + 3)

    def build(self, input_shape):
        if len(input_shape) != self.rank + 3:
            axes = "steps" if self.rank == 1 else "rows, cols"
            raise ValueError(f"Layer {self.name!r} expects {self.rank + 3}-D input (batch, "
                             f"time, {axes}, channels). Received input shape "
                             f"{shape_str(input_shape)}")
        if any(d is None for d in input_shape[2:]):
            raise ValueError("ConvLSTM layers only support static input shapes for the spatial "
                             "dimensions and the channels. Received invalid input shape: "
                             f"input_shape={shape_str(input_shape)}")
        super().build(input_shape)

    def _zero_states(self, inputs):
        ops = _ops()
        shape = self.cell.output_shape_for((inputs.shape[0],) + tuple(inputs.shape[2:]))
        return [ops.zeros(shape, dtype=str(inputs.dtype)) for _ in range(2)]

    def call(self, inputs, training=False, mask=None, initial_state=None):
        self.cell._masks = None    # new dropout masks for every sequence
        try:
            return super().call(inputs, training=training, mask=mask,
                                initial_state=initial_state)
        finally:
            self.cell._masks = None

    def compute_output_shape(self, input_shape):
        step = self.cell.output_shape_for((input_shape[0],) + tuple(input_shape[2:]))
        out = (step[:1] + (input_shape[1],) + step[1:]) if self.return_sequences else step
        return (out, step, step) if self.return_state else out

    def get_config(self):
        cell = self.cell
        config = super().get_config()
        del config["cell"]
        config.update(
            filters=cell.filters, kernel_size=cell.kernel_size, strides=cell.strides,
            padding=cell.padding, data_format=cell.data_format,
            dilation_rate=cell.dilation_rate,
            activation=activations.serialize(cell.activation),
            recurrent_activation=activations.serialize(cell.recurrent_activation),
            use_bias=cell.use_bias, unit_forget_bias=cell.unit_forget_bias,
            dropout=cell.dropout, recurrent_dropout=cell.recurrent_dropout, seed=cell.seed,
            activity_regularizer=regularizers.serialize(self.activity_regularizer))
        for kind, module in _OBJECTS.items():
            for part in ("kernel", "recurrent", "bias"):
                config[f"{part}_{kind}"] = module.serialize(getattr(cell, f"{part}_{kind}"))
        return config


# As Keras's properties: the layer's arguments are its cell's (layer.filters, layer.padding)
for _name in ("filters kernel_size strides padding data_format dilation_rate activation "
              "recurrent_activation use_bias unit_forget_bias dropout recurrent_dropout seed "
              "kernel_initializer recurrent_initializer bias_initializer kernel_regularizer "
              "recurrent_regularizer bias_regularizer kernel_constraint recurrent_constraint "
              "bias_constraint").split():
    setattr(_ConvLSTM, _name, property(lambda self, _name=_name: getattr(self.cell, _name)))
del _name


class ConvLSTM1D(_ConvLSTM):
    """ConvLSTM over ``(batch, time, steps, channels)``; kernels ``(k, in, 4 * filters)``."""

    rank = 1


class ConvLSTM2D(_ConvLSTM):
    """ConvLSTM over ``(batch, time, rows, cols, channels)``; kernels
    ``(kh, kw, in, 4 * filters)``."""

    rank = 2
