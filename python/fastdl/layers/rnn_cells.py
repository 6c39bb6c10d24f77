"""Keras's cell API: ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``, ``StackedRNNCells`` and
``RNN(cell)``.

A cell computes one time step, ``call(inputs, states) -> (output, new_states)``, with
``state_size`` (an int or a list). ``RNN`` runs any cell over the time axis in a Python loop of
fastdl ops, so a GradientTape differentiates it (the layer has no backward of its own): a custom
cell written with ``fastdl.ops`` (a ``Layer`` whose weights come from ``add_weight``) trains in
every model kind. The built-in cells use Keras's weight layouts and gate orders (as ``LSTM``,
``GRU``, ``SimpleRNN``); for speed use those layers, whose time loop is in C++.

Semantics as Keras's ``RNN``: ``go_backwards`` processes the last step first and returns outputs
in processing order; a masked step keeps the states and repeats the previous output (zeros with
``zero_output_for_mask``); ``stateful`` carries the final states into the next call until
``reset_states()``; ``return_state`` returns ``[output] + states`` (the stacked cells' states
flattened, in cell order). ``unroll`` is accepted and ignored (the loop is always unrolled).
``dropout``/``recurrent_dropout`` of the cells are not implemented (``ValueError`` when > 0;
the ``LSTM``/``GRU``/``SimpleRNN`` layers have them).
"""
import numpy as np

from fastdl import activations, initializers
from fastdl.layers.base import Layer, check_positive_int, check_rate, shape_str
from fastdl.tensor.tensor import Tensor

_OPS_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")
    return bool(value)


def _ops():
    from fastdl import ops
    return ops


def _apply(name, x):
    ops = _ops()
    return x if name == "linear" else getattr(ops, name)(x)


def _state_sizes(cell):
    size = getattr(cell, "state_size", None)
    if size is None:
        raise ValueError(f"RNN: the cell {cell!r} has no `state_size` (an int or a list of ints)")
    sizes = list(size) if isinstance(size, (list, tuple)) else [size]
    return [check_positive_int(s, "state_size") for s in sizes]


class _Cell(Layer):
    """Shared by the built-in cells: weights in Keras's layout, ``call`` written with ops."""

    _gates = 1

    def _setup(self, units, activation, recurrent_activation, use_bias, kernel_initializer,
               recurrent_initializer, bias_initializer, dropout, recurrent_dropout, seed):
        cls = type(self).__name__
        self.units = check_positive_int(units, "units")
        self.activation = activations.get(activation)
        for act, what in ((self.activation, "activation"),
                          (activations.get(recurrent_activation), "recurrent_activation")):
            if act is not None and act.name not in _OPS_ACTIVATIONS:
                raise ValueError(f"{cls} supports {what} in {list(_OPS_ACTIVATIONS)}. "
                                 f"Received: {what}={act.name!r}")
        self.recurrent_activation = (activations.get(recurrent_activation)
                                     if recurrent_activation is not None else None)
        self.use_bias = _check_bool(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        for rate, name in ((dropout, "dropout"), (recurrent_dropout, "recurrent_dropout")):
            if check_rate(rate, name) > 0:
                raise ValueError(f"{cls}: {name} is not implemented for cells in fastdl (the "
                                 f"{cls[:-4]} layer has it). Received: {name}={rate!r}")
        self.dropout = self.recurrent_dropout = 0.0
        self.seed = seed
        self.state_size = self.units
        self.output_size = self.units

    def __call__(self, inputs, states, training=False):
        inputs = inputs if isinstance(inputs, Tensor) else _ops().convert_to_tensor(inputs)
        if not self.built:
            self._maybe_build(tuple(inputs.shape))
        return self.call(inputs, states, training=training)

    def build(self, input_shape):
        gu = self._gates * self.units
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], gu),
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel",
                                                shape=(self.units, gu),
                                                initializer=self.recurrent_initializer)
        self.bias = self.add_weight(name="bias", shape=self._bias_shape(),
                                    initializer=self._bias_init()) if self.use_bias else None

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=activations.serialize(self.activation),
                      use_bias=self.use_bias,
                      kernel_initializer=initializers.serialize(self.kernel_initializer),
                      recurrent_initializer=initializers.serialize(self.recurrent_initializer),
                      bias_initializer=initializers.serialize(self.bias_initializer),
                      dropout=0.0, recurrent_dropout=0.0, seed=self.seed)
        if self.recurrent_activation is not None:
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        return config


class SimpleRNNCell(_Cell):
    """One step of ``SimpleRNN``: ``h = activation(x @ kernel + h_prev @ recurrent + bias)``."""

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self._setup(units, activation, None, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, dropout, recurrent_dropout, seed)

    def call(self, inputs, states, training=False):
        ops = _ops()
        h = states[0] if isinstance(states, (list, tuple)) else states
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        h = _apply(self.activation.name, z)
        return h, [h]


class LSTMCell(_Cell):
    """One step of ``LSTM`` (gates i, f, c, o; states ``[h, c]``)."""

    _gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, dropout, recurrent_dropout, seed)
        self.unit_forget_bias = _check_bool(unit_forget_bias, "unit_forget_bias")
        self.state_size = [self.units, self.units]

    def _bias_init(self):
        if self.unit_forget_bias:
            from fastdl.layers.recurrent import _UnitForgetBias
            return _UnitForgetBias(self.bias_initializer, self.units)
        return self.bias_initializer

    def call(self, inputs, states, training=False):
        ops = _ops()
        h, c = states
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        zi, zf, zc, zo = ops.split(z, 4, axis=-1)
        rec = self.recurrent_activation.name
        i, f, o = _apply(rec, zi), _apply(rec, zf), _apply(rec, zo)
        c = f * c + i * _apply(self.activation.name, zc)
        h = o * _apply(self.activation.name, c)
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        return config


class GRUCell(_Cell):
    """One step of ``GRU`` (gates z, r, h; ``reset_after`` as in the GRU layer)."""

    _gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", dropout=0.0, recurrent_dropout=0.0, reset_after=True,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, dropout, recurrent_dropout, seed)
        self.reset_after = _check_bool(reset_after, "reset_after")

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def call(self, inputs, states, training=False):
        ops = _ops()
        h = states[0] if isinstance(states, (list, tuple)) else states
        u, rec, act = self.units, self.recurrent_activation.name, self.activation.name
        zx = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            zx = zx + (self.bias[0] if self.reset_after else self.bias)
        xz, xr, xh = ops.split(zx, 3, axis=-1)
        if self.reset_after:
            zh = ops.matmul(h, self.recurrent_kernel)
            if self.bias is not None:
                zh = zh + self.bias[1]
            hz, hr, hh = ops.split(zh, 3, axis=-1)
            z, r = _apply(rec, xz + hz), _apply(rec, xr + hr)
            cand = _apply(act, xh + r * hh)
        else:
            hz, hr = ops.split(ops.matmul(h, self.recurrent_kernel[:, :2 * u]), 2, axis=-1)
            z, r = _apply(rec, xz + hz), _apply(rec, xr + hr)
            cand = _apply(act, xh + ops.matmul(r * h, self.recurrent_kernel[:, 2 * u:]))
        h = z * h + (1.0 - z) * cand
        return h, [h]

    def get_config(self):
        config = super().get_config()
        config["reset_after"] = self.reset_after
        return config


def _cell_from(value, what="cell"):
    if isinstance(value, Layer) or hasattr(value, "state_size"):
        return value
    if isinstance(value, dict) and "class_name" in value:
        from fastdl.layers import get_layer_class
        cls = get_layer_class(value["class_name"])
        if cls is None:
            raise ValueError(f"RNN: unknown {what} class {value['class_name']!r}")
        return cls.from_config(dict(value.get("config") or {}))
    raise ValueError(f"RNN: {what} must be an RNN cell (an object with `call(inputs, states)` "
                     f"and `state_size`), or a list of them. Received: {value!r}")


class StackedRNNCells(Layer):
    """Cells applied one after the other within each step; states are the cells' states in
    order (flattened)."""

    def __init__(self, cells, **kwargs):
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError(f"StackedRNNCells needs a non-empty list of cells. "
                             f"Received: cells={cells!r}")
        super().__init__(**kwargs)
        cells = [_cell_from(c) for c in cells]
        self.cells = [self._track_layer(c) if isinstance(c, Layer) else c for c in cells]
        self.state_size = [s for c in self.cells for s in _state_sizes(c)]
        last = self.cells[-1]
        self.output_size = getattr(last, "output_size", _state_sizes(last)[0])

    def build(self, input_shape):
        shape = tuple(input_shape)
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                cell._maybe_build(shape)
            shape = shape[:-1] + (getattr(cell, "output_size", _state_sizes(cell)[0]),)

    def __call__(self, inputs, states, training=False):
        if not self.built:
            self._maybe_build(tuple(inputs.shape))
        return self.call(inputs, states, training=training)

    def call(self, inputs, states, training=False):
        new_states, i = [], 0
        x = inputs
        for cell in self.cells:
            k = len(_state_sizes(cell))
            x, s = _step(cell, x, list(states[i:i + k]), training)
            new_states += s
            i += k
        return x, new_states

    def get_config(self):
        from fastdl.saving.common import layer_entry
        config = super().get_config()
        config["cells"] = [layer_entry(c) for c in self.cells]
        return config


def _step(cell, x, states, training):
    """One step of any cell: its ``call`` (built-in cells, Layers written with ops) with the
    states as a list; returns (output, new states as a list)."""
    if isinstance(cell, Layer):
        if not cell.built:
            cell._maybe_build(tuple(x.shape))
        if cell._call_takes_training:
            out, new = cell.call(x, states, training=training)
        else:
            out, new = cell.call(x, states)
    else:
        out, new = cell(x, states)
    return out, list(new) if isinstance(new, (list, tuple)) else [new]


class RNN(Layer):
    """Runs ``cell`` (or a list of cells, stacked) over the time axis of ``(batch, time, ...)``."""

    supports_masking = True

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        cell = _cell_from(cell)
        _state_sizes(cell)
        super().__init__(**kwargs)
        self.cell = self._track_layer(cell) if isinstance(cell, Layer) else cell
        self.return_sequences = _check_bool(return_sequences, "return_sequences")
        self.return_state = _check_bool(return_state, "return_state")
        self.go_backwards = _check_bool(go_backwards, "go_backwards")
        self.stateful = _check_bool(stateful, "stateful")
        self.unroll = _check_bool(unroll, "unroll")
        self.zero_output_for_mask = _check_bool(zero_output_for_mask, "zero_output_for_mask")
        self.states = None

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"Layer {self.name!r} expects (batch, timesteps, ...) input, "
                             f"received shape {shape_str(input_shape)}")
        if isinstance(self.cell, Layer) and not self.cell.built:
            self.cell._maybe_build((input_shape[0],) + tuple(input_shape[2:]))

    def reset_state(self):
        self.states = None

    def reset_states(self):
        self.reset_state()

    def _zero_states(self, inputs):
        """The initial states when none are given: zeros of (batch, state size) each."""
        return [_ops().zeros((inputs.shape[0], s), dtype=str(inputs.dtype))
                for s in _state_sizes(self.cell)]

    def call(self, inputs, training=False, mask=None, initial_state=None):
        ops = _ops()
        n, steps = inputs.shape[0], inputs.shape[1]
        if initial_state is not None:
            states = [s if isinstance(s, Tensor) else ops.convert_to_tensor(s)
                      for s in (initial_state if isinstance(initial_state, (list, tuple))
                                else [initial_state])]
        elif self.stateful and self.states is not None:
            if self.states[0].shape[0] != n:
                raise ValueError(f"If an RNN is stateful, the batch size of the input sequences "
                                 f"must be the same as the batch size of the initial state. "
                                 f"Layer {self.name!r}: expected batch size "
                                 f"{self.states[0].shape[0]}, received {n}")
            states = [ops.convert_to_tensor(s) for s in self.states]
        else:
            states = self._zero_states(inputs)
        if mask is not None:
            mask = np.asarray(mask._value if isinstance(mask, Tensor) else mask, dtype=bool)
            if mask.shape != (n, steps):
                raise ValueError(f"Layer {self.name!r}: the mask must have shape (batch, "
                                 f"timesteps) = {shape_str((n, steps))}, received "
                                 f"{shape_str(mask.shape)}")
        outputs, previous = [], None
        for t in (range(steps - 1, -1, -1) if self.go_backwards else range(steps)):
            out, new = _step(self.cell, inputs[:, t], states, training)
            if mask is not None:   # (batch, 1, ...): broadcast over the output's other axes
                keep = mask[:, t].reshape((n,) + (1,) * (len(out.shape) - 1))
                if previous is None or self.zero_output_for_mask:
                    previous = ops.zeros_like(out)
                out = ops.where(keep, out, previous)
                new = [ops.where(keep, a, b) for a, b in zip(new, states)]
            states, previous = new, out
            outputs.append(out)
        y = ops.stack(outputs, axis=1) if self.return_sequences else outputs[-1]
        if self.stateful:
            self.states = [np.array(s._value if isinstance(s, Tensor) else s) for s in states]
        return [y] + list(states) if self.return_state else y

    def compute_mask(self, x, mask=None):
        if mask is None or not self.return_sequences:
            return None
        return mask

    def get_config(self):
        from fastdl.saving.common import layer_entry
        config = super().get_config()
        config.update(cell=layer_entry(self.cell), return_sequences=self.return_sequences,
                      return_state=self.return_state, go_backwards=self.go_backwards,
                      stateful=self.stateful, unroll=self.unroll,
                      zero_output_for_mask=self.zero_output_for_mask)
        return config
