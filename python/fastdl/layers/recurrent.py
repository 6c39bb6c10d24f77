"""SimpleRNN, LSTM, GRU and Bidirectional with Keras 3's API on fastdl's C++ time-loop kernels.

Weights use Keras layouts and names: ``kernel (features, G*units)``, ``recurrent_kernel
(units, G*units)``, ``bias (G*units,)`` (GRU with ``reset_after=True``: ``(2, 3*units)``, row 0
the input bias, row 1 the recurrent bias); gate order i, f, c, o (LSTM) and z, r, h (GRU).

On Tensors (functional and subclassed models, a GradientTape) every call is one tape primitive
(:func:`_call_recorded`), with ``return_state`` and ``initial_state`` too: an encoder's states
fed to a decoder's ``initial_state`` receive their gradients.

Differences from Keras, on purpose:

- ``return_state=True`` makes the layer return ``[output, h]`` (LSTM ``[output, h, c]``); in a
  ``Sequential`` model only ``output`` goes on to the next layer (and ``backward`` may then be
  given the output's gradient alone).
- ``unroll`` and ``use_cudnn`` are accepted and ignored (they do not change the results).
- ``stateful=True`` carries each call's final states into the next call (no gradient flows
  between calls) until ``reset_states()``; the batch size is the declared one
  (``Input(batch_size=...)``) or else the first call's, and a different one is a ``ValueError``.
- LSTM and GRU compute ``activation="tanh"`` and ``recurrent_activation="sigmoid"`` only;
  SimpleRNN supports ``tanh``, ``relu``, ``sigmoid`` and ``linear``/None.
- ``compute_mask`` returns the output's mask only (no per-state masks), as the sequence is
  what a ``Sequential`` passes on.
- In float32 the kernels use a rational tanh (a few ulp) and flush subnormal numbers to zero.

``call(..., training=True)`` keeps what the backward needs; an inference call skips that cache
(faster ``predict``) and a ``backward`` after it replays the forward first.
``dropout`` (training only) drops input features with one mask per sample for all timesteps,
as Keras does; ``recurrent_dropout`` (training only) drops the previous state's units before
the recurrent kernel with one mask per sample and gate for all timesteps, as Keras 3 does (its
cells' ``implementation=1``: LSTM 4 masks, GRU 3, in the C++ kernels). With both, the input
masks are per gate too, as in Keras (the gates' masked inputs side by side times a
block-diagonal kernel). Masks (e.g. from ``Embedding(mask_zero=True)``) follow Keras: a masked step keeps
the state and repeats the previous output.
"""
import numpy as np

from fastdl import activations, constraints, initializers, regularizers
from fastdl.layers.base import (_eager_outputs, as_c_array, InputSpec, Layer,
                                check_positive_int, check_rate, shape_str)
from fastdl.ops.core import rnn as rnn_ops
from fastdl.tensor.tape import recording as _recording
from fastdl.tensor.tensor import Tensor
from fastdl.utils.rng import seed_generator

_REGULARIZERS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer")
_CONSTRAINTS = ("kernel_constraint", "recurrent_constraint", "bias_constraint")


def _dropout_mask(rng, shape, rate, dtype):
    """Kept entries 1 / (1 - rate), dropped ones 0 (Keras's dropout of a ones tensor)."""
    keep = rng.random(shape) >= rate
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")
    return bool(value)


def _dispatch_call(layer, x, training, mask, initial_state):
    """``__call__`` of the recurrent layers and Bidirectional: a functional-API node on
    KerasTensors; on Tensors (or inside a recording GradientTape) one tape primitive; on
    arrays the plain call, its outputs as constant Tensors (Layer.__call__)."""
    from fastdl.functional import is_symbolic
    if is_symbolic(x) or (initial_state is not None and is_symbolic(initial_state)):
        kwargs = {} if initial_state is None else {"initial_state": initial_state}
        return Layer.__call__(layer, x, training=training, mask=mask, **kwargs)
    tensors = isinstance(x, Tensor) or (initial_state is not None and any(
        isinstance(s, Tensor) for s in _as_list(initial_state)))
    if tensors or _recording():
        return _call_recorded(layer, x, training, mask, initial_state)
    return _eager_outputs(layer._call_arrays(x, training=training, mask=mask,
                                             initial_state=initial_state))


def _as_list(states):
    return list(states) if isinstance(states, (list, tuple)) else [states]


def _call_recorded(layer, x, training, mask, initial_state):
    """The call on Tensors, recorded as ONE primitive whose VJP is the layer's backward.

    A primitive has one output, so a call with several (``return_state``, Bidirectional's
    ``merge_mode=None``) records their concatenation ``(batch, sum of sizes)`` and returns
    differentiable slices of it; initial states are inputs of the primitive (their gradients
    are ``layer.d_initial_state``)."""
    from fastdl import ops
    from fastdl.ops.layers import call_layer, layer_variables
    from fastdl.tensor.tape import _TAPES, record
    xt = x if isinstance(x, Tensor) else Tensor(layer.convert_input(x))
    if (initial_state is None and not layer.return_state
            and getattr(layer, "merge_mode", "concat") is not None):   # one output
        return call_layer(layer, xt, training=training, mask=mask)
    states = [] if initial_state is None else [
        s if isinstance(s, Tensor) else Tensor(np.asarray(s, dtype=layer.dtype))
        for s in _as_list(initial_state)]
    out = layer._call_arrays(xt._value, training=training, mask=mask,
                             initial_state=[s._value for s in states] or None)
    several = isinstance(out, (list, tuple))
    outs = list(out) if several else [out]
    if not _TAPES:
        tensors = [Tensor(o) for o in outs]
        return tensors if several else tensors[0]
    n = outs[0].shape[0]
    shapes = [o.shape for o in outs]
    packed = Tensor(np.concatenate([o.reshape(n, -1) for o in outs], axis=1))
    variables = layer_variables(layer)
    record(packed, (xt, *states, *variables), _recorded_vjp,
           (layer, layer.__dict__.copy(), shapes, several, len(states)))
    pieces, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape[1:], dtype=np.int64))
        pieces.append(ops.reshape(packed[:, start:start + size], shape))
        start += size
    return pieces if several else pieces[0]


def _recorded_vjp(cache, g):
    layer, state, shapes, several, n_states = cache
    g = np.asarray(g, dtype=layer.dtype)
    pieces, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape[1:], dtype=np.int64))
        pieces.append(np.ascontiguousarray(g[:, start:start + size].reshape(shape)))
        start += size
    current = layer.__dict__.copy()
    layer.__dict__.update(state)
    try:
        dx = layer.backward(pieces if several else pieces[0])
        grads = list(layer.grads)
        d0 = list(layer.d_initial_state)[:n_states] if n_states else []
    finally:
        layer.__dict__.clear()
        layer.__dict__.update(current)
    return [dx] + d0 + grads


class _UnitForgetBias(initializers.Initializer):
    """LSTM bias with ``unit_forget_bias``: ``[init(u), ones(u), init(2u)]`` (Keras's layout)."""

    def __init__(self, base, units):
        self.base, self.units = base, units

    def __call__(self, shape, dtype="float32"):
        u = self.units
        return np.concatenate([self.base((u,), dtype=dtype), np.ones((u,), dtype=dtype),
                               self.base((2 * u,), dtype=dtype)])


class _RNN(Layer):
    """Shared machinery of SimpleRNN, LSTM and GRU (subclasses set ``_cell``)."""

    supports_masking = True
    _cell = None
    _gates = 1

    def _setup(self, units, activation, recurrent_activation, use_bias, kernel_initializer,
               recurrent_initializer, bias_initializer, dropout, recurrent_dropout, seed,
               return_sequences, return_state, go_backwards, stateful, unroll,
               zero_output_for_mask, unsupported):
        cls = type(self).__name__
        self.units = check_positive_int(units, "units")
        self.activation = activations.get(activation)
        if self._cell == "simple_rnn":
            if self.activation.name not in rnn_ops.SIMPLE_RNN_ACTIVATIONS:
                raise ValueError(f"{cls} supports activation in "
                                 f"{list(rnn_ops.SIMPLE_RNN_ACTIVATIONS)} (or None). "
                                 f"Received: activation={activation!r}")
            self.recurrent_activation = None
        else:
            if self.activation.name != "tanh":
                raise ValueError(f"{cls} supports only activation='tanh' in fastdl. "
                                 f"Received: activation={activation!r}")
            self.recurrent_activation = activations.get(recurrent_activation)
            if self.recurrent_activation.name != "sigmoid":
                raise ValueError(f"{cls} supports only recurrent_activation='sigmoid' in fastdl. "
                                 f"Received: recurrent_activation={recurrent_activation!r}")
        self.use_bias = _check_bool(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
        seed_generator(seed)  # validates
        self.seed = seed
        self._rng = None
        self.return_sequences = _check_bool(return_sequences, "return_sequences")
        self.return_state = _check_bool(return_state, "return_state")
        self.go_backwards = _check_bool(go_backwards, "go_backwards")
        self.stateful = _check_bool(stateful, "stateful")
        self.states = None   # stateful: the final states of the last call (constants)
        self.unroll = _check_bool(unroll, "unroll")
        self.zero_output_for_mask = _check_bool(zero_output_for_mask, "zero_output_for_mask")
        for name in _REGULARIZERS:
            setattr(self, name, regularizers.get(unsupported.pop(name)))
        for name in _CONSTRAINTS:
            setattr(self, name, constraints.get(unsupported.pop(name)))
        self.activity_regularizer = regularizers.get(unsupported.pop("activity_regularizer"))
        for name, value in unsupported.items():
            if value is not None:
                raise ValueError(f"{cls}: {name} is not supported by fastdl yet. "
                                 f"Received: {name}={value!r}")
        self.input_spec = InputSpec(ndim=3)
        self._tape = None
        self._replay = None
        self._dropout_mask = None
        self._per_gate_inputs = False
        self.d_initial_state = None

    # ------------------------------------------------------------------ build
    def _check_rank(self, shape):
        if len(shape) != 3:
            hint = ""
            if len(shape) == 2:
                hint = (" A 2-D array needs a timesteps axis: e.g. x.reshape(batch, timesteps, "
                        "features), or x[..., None] for one feature per step.")
            raise ValueError(f"Input 0 of layer {self.name!r} is incompatible with the layer: "
                             f"expected ndim=3, i.e. shape (batch, timesteps, features), found "
                             f"ndim={len(shape)}. Full shape received: {shape_str(shape)}.{hint}")

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None or features < 1:
            raise ValueError(f"Layer {self.name!r} needs a known, positive number of features "
                             f"(last axis). Received input shape {shape_str(input_shape)}")
        gu = self._gates * self.units
        self.kernel = self.add_weight("kernel", (features, gu), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, gu),
                                                self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        self.bias = self.add_weight("bias", self._bias_shape(), self._bias_init(),
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None
        self.input_spec = InputSpec(ndim=3, axes={-1: features})

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    # ------------------------------------------------------------------ forward / backward
    # a Tensor input (or any input under a recording GradientTape) makes one tape primitive
    _primitive_call = True

    def __call__(self, x, training=False, mask=None, initial_state=None):
        return _dispatch_call(self, x, training, mask, initial_state)

    def _call_arrays(self, x, training=False, mask=None, initial_state=None):
        x = self.convert_input(x)
        self._maybe_build(x.shape)
        self.check_input_shape(x.shape)
        return self.call(x, training=training, mask=mask, initial_state=initial_state)

    def _kernel_args(self):
        return {}

    def call(self, x, training=False, mask=None, initial_state=None):
        n, t = x.shape[0], x.shape[1]
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (n, t):
                raise ValueError(f"Layer {self.name!r}: the mask must have shape (batch, "
                                 f"timesteps) = {shape_str((n, t))}, received {shape_str(mask.shape)}")
        if initial_state is not None:
            if isinstance(initial_state, np.ndarray):
                initial_state = [initial_state]
            initial_state = [np.asarray(s, dtype=self.dtype) for s in initial_state]
            for s in initial_state:
                if s.shape != (n, self.units):
                    raise ValueError(f"Layer {self.name!r}: each initial state must have shape "
                                     f"(batch, units) = {shape_str((n, self.units))}, received "
                                     f"{shape_str(s.shape)}")
        if self.stateful:
            initial_state = self._stateful_initial_state(n, initial_state)
        self._dropout_mask = None
        self._per_gate_inputs = False
        recurrent_mask = None
        if training and (self.dropout > 0 or self.recurrent_dropout > 0):
            if self._rng is None:
                self._rng = seed_generator(self.seed) if self.seed is not None else None
            rng = self._rng if self._rng is not None else seed_generator(None)
            if self.dropout > 0:
                # with recurrent dropout Keras's LSTM/GRU cells draw one input mask per gate
                # (implementation=1): the gates' inputs then go side by side, (N, T, G*F)
                self._per_gate_inputs = self.recurrent_dropout > 0 and self._gates > 1
                gates = self._gates if self._per_gate_inputs else 1
                self._dropout_mask = _dropout_mask(rng, (n, gates, x.shape[2]), self.dropout,
                                                   x.dtype)
                if self._per_gate_inputs:
                    x = (x[:, :, None, :] * self._dropout_mask[:, None]).reshape(n, t, -1)
                else:
                    x = x * self._dropout_mask
            if self.recurrent_dropout > 0:   # one mask per sample and gate (Keras 3)
                recurrent_mask = _dropout_mask(rng, (n, self._gates, self.units),
                                               self.recurrent_dropout, x.dtype)
        # inference skips the backward's cache; a backward after it replays the forward
        self._replay = (x, initial_state, mask, recurrent_mask)
        y, states, self._tape = self._forward(x, initial_state, mask, bool(training),
                                              recurrent_mask)
        if self.stateful:
            self.states = [s.copy() for s in states]
        if self.return_state:
            return [y] + states
        return y

    def _stateful_initial_state(self, n, initial_state):
        """The states a stateful layer starts from: ``initial_state`` when given, else the
        previous call's final states (zeros after ``reset_states``). The batch size is fixed
        by the declared batch size (``Input(batch_size=...)``, ``batch_input_shape``) or else
        by the first call, as each sample's row carries on into the next batch."""
        expected = self.states[0].shape[0] if self.states is not None else None
        declared = (self._declared_batch_shape or (None,))[0]
        for size in (expected, declared):
            if size is not None and size != n:
                raise ValueError(f"If an RNN is stateful, the batch size of the input sequences "
                                 f"must be the same as the batch size of the initial state. "
                                 f"Layer {self.name!r}: expected batch size {size}, received {n}")
        if initial_state is not None:
            return initial_state
        return self.states

    def reset_state(self):
        """Stateful layers: start the next call from zero states."""
        self.states = None

    def reset_states(self):
        """Alias of :meth:`reset_state` (Keras's compatibility name)."""
        self.reset_state()

    def _gate_blocks(self):
        """The kernel for per-gate inputs (N, T, G*F): block-diagonal, gate g's columns fed by
        its own copy of the input."""
        f, u = self.kernel.shape[0], self.units
        k = np.zeros((self._gates * f, self._gates * u), self.kernel.dtype)
        for g in range(self._gates):
            k[g * f:(g + 1) * f, g * u:(g + 1) * u] = self.kernel[:, g * u:(g + 1) * u]
        return k

    def _forward(self, x, initial_state, mask, training, recurrent_mask=None):
        kernel = self._gate_blocks() if self._per_gate_inputs else self.kernel
        return rnn_ops.rnn_forward(
            self._cell, x, kernel, self.recurrent_kernel, self.bias, initial_state, mask,
            return_sequences=self.return_sequences, go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask, training=training,
            recurrent_mask=recurrent_mask, **self._kernel_args())

    def backward(self, dy):
        """dL/dx for the last call; ``dy`` is the output's gradient, or with ``return_state`` a
        list ``[d_output, d_h(, d_c)]`` (entries may be None). Fills ``grads`` and
        ``d_initial_state`` (the gradients of the initial states)."""
        if self._tape is None:
            if self._replay is None:
                raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
            x, initial_state, mask, recurrent_mask = self._replay
            self._tape = self._forward(x, initial_state, mask, True, recurrent_mask)[2]
        dstates = None
        if isinstance(dy, (list, tuple)):
            dy, dstates = dy[0], list(dy[1:])
            if not dstates:
                dstates = None
        # fastdl.privacy may ask one backward for the gate gradients too (an array it set)
        dx, dk, dr, db, d0 = rnn_ops.rnn_backward(
            self._tape, dy, dstates, gate_grads=self.__dict__.pop("_gate_grads_out", None))
        if self._per_gate_inputs:
            n, t = dx.shape[:2]
            f, u = self.kernel.shape[0], self.units
            dx = (dx.reshape(n, t, self._gates, f) * self._dropout_mask[:, None]).sum(axis=2)
            dk = np.concatenate([dk[g * f:(g + 1) * f, g * u:(g + 1) * u]
                                 for g in range(self._gates)], axis=1)
        elif self._dropout_mask is not None:
            dx *= self._dropout_mask
        self.d_initial_state = d0
        if self._trainable:
            self.grads = [dk, dr] + ([db] if self.bias is not None else [])
        else:
            self.grads = []
        return dx

    # ------------------------------------------------------------------ shapes, masks, config
    def compute_output_shape(self, input_shape):
        n = input_shape[0]
        out = (n, input_shape[1], self.units) if self.return_sequences else (n, self.units)
        if self.return_state:
            return [out] + [(n, self.units)] * rnn_ops.num_states(self._cell)
        return out

    def compute_mask(self, x, mask=None):
        if mask is None or not self.return_sequences:
            return None
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            recurrent_initializer=initializers.serialize(self.recurrent_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            dropout=self.dropout, recurrent_dropout=self.recurrent_dropout, seed=self.seed,
            return_sequences=self.return_sequences, return_state=self.return_state,
            go_backwards=self.go_backwards, stateful=self.stateful, unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask,
            **{name: regularizers.serialize(getattr(self, name)) for name in _REGULARIZERS},
            **{name: constraints.serialize(getattr(self, name)) for name in _CONSTRAINTS})
        if self.recurrent_activation is not None:
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        return config


class SimpleRNN(_RNN):
    """Fully-connected RNN: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""

    _cell = "simple_rnn"
    _gates = 1

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None,
                 zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        self._setup(units, activation, None, use_bias, kernel_initializer, recurrent_initializer,
                    bias_initializer, dropout, recurrent_dropout, seed, return_sequences,
                    return_state, go_backwards, stateful, unroll, zero_output_for_mask,
                    dict(kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint))

    def _kernel_args(self):
        return {"activation": self.activation.name}


class LSTM(_RNN):
    """Long short-term memory (Hochreiter 1997), Keras gate order i, f, c, o."""

    _cell = "lstm"
    _gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 use_cudnn="auto", zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, dropout, recurrent_dropout, seed,
                    return_sequences, return_state, go_backwards, stateful, unroll,
                    zero_output_for_mask,
                    dict(kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint))
        self.unit_forget_bias = _check_bool(unit_forget_bias, "unit_forget_bias")
        if use_cudnn not in ("auto", True, False):
            raise ValueError("use_cudnn must be one of 'auto', True, False. "
                             f"Received: use_cudnn={use_cudnn!r}")
        self.use_cudnn = use_cudnn

    def _bias_init(self):
        if self.unit_forget_bias:
            return _UnitForgetBias(self.bias_initializer, self.units)
        return self.bias_initializer

    def get_config(self):
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        config["use_cudnn"] = self.use_cudnn
        return config


class GRU(_RNN):
    """Gated recurrent unit (Cho 2014), Keras gate order z, r, h;
    ``h = z * h_prev + (1 - z) * h~``. ``reset_after=True`` (Keras 3's default, the cuDNN
    variant): ``h~ = tanh(x W_h + b_xh + r * (h_prev R_h + b_rh))`` with bias ``(2, 3*units)``;
    ``reset_after=False``: ``h~ = tanh(x W_h + b_h + (r * h_prev) R_h)`` with bias ``(3*units,)``."""

    _cell = "gru"
    _gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True,
                 use_cudnn="auto", zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, dropout, recurrent_dropout, seed,
                    return_sequences, return_state, go_backwards, stateful, unroll,
                    zero_output_for_mask,
                    dict(kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint))
        self.reset_after = _check_bool(reset_after, "reset_after")
        if use_cudnn not in ("auto", True, False):
            raise ValueError("use_cudnn must be one of 'auto', True, False. "
                             f"Received: use_cudnn={use_cudnn!r}")
        self.use_cudnn = use_cudnn

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _kernel_args(self):
        return {"reset_after": self.reset_after}

    def get_config(self):
        config = super().get_config()
        config["reset_after"] = self.reset_after
        config["use_cudnn"] = self.use_cudnn
        return config


_MERGE_MODES = ("concat", "sum", "mul", "ave", None)
_RNN_CLASSES = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


def _layer_from(value, what):
    """A recurrent layer given as an instance or as a serialized entry / config."""
    if isinstance(value, _RNN):
        return value
    if isinstance(value, dict) and "class_name" in value:
        cls = _RNN_CLASSES.get(value["class_name"])
        if cls is None:
            raise ValueError(f"Bidirectional: {what} must be SimpleRNN, LSTM or GRU. "
                             f"Received class_name={value['class_name']!r}")
        return cls.from_config(dict(value.get("config") or {}))
    raise ValueError(f"Bidirectional: {what} must be a SimpleRNN, LSTM or GRU layer instance. "
                     f"Received: {value!r}")


def _strip(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy backwards over the sequence and merges their
    outputs (``merge_mode`` "concat" (default), "sum", "mul", "ave", or None for the pair).

    Weights: the forward layer's, then the backward layer's (Keras's order). With
    ``return_sequences`` the backward layer's output is flipped back to input order, and both
    layers output zeros at masked steps (Keras sets ``zero_output_for_mask`` on them).
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        layer = _layer_from(layer, "layer")
        if backward_layer is not None:
            backward_layer = _layer_from(backward_layer, "backward_layer")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Merge mode should be one of {_MERGE_MODES}. "
                             f"Received: merge_mode={merge_mode!r}")
        super().__init__(**kwargs)
        if self._declared_batch_shape is None:
            self._declared_batch_shape = layer._declared_batch_shape
        config = layer.get_config()
        config["name"] = "forward_" + _strip(layer.name, "forward_")
        config["zero_output_for_mask"] = layer.return_sequences
        forward = type(layer).from_config(config)
        if backward_layer is None:
            config = layer.get_config()
            config["go_backwards"] = not layer.go_backwards
            config["name"] = "backward_" + _strip(layer.name, "backward_")
            config["zero_output_for_mask"] = layer.return_sequences
            backward = type(layer).from_config(config)
        else:
            backward = backward_layer
            backward.zero_output_for_mask = backward.return_sequences
        if forward.go_backwards == backward.go_backwards:
            raise ValueError("Forward layer and backward layer should have different "
                             f"`go_backwards` value. Received: forward_layer.go_backwards="
                             f"{forward.go_backwards}, backward_layer.go_backwards="
                             f"{backward.go_backwards}")
        for attr in ("return_sequences", "return_state"):
            if getattr(forward, attr) != getattr(backward, attr):
                raise ValueError(f"Forward layer and backward layer are expected to have the same "
                                 f"value for attribute {attr!r}, got {getattr(forward, attr)} for "
                                 f"forward layer and {getattr(backward, attr)} for backward layer")
        self.forward_layer = self._track_layer(forward)
        self.backward_layer = self._track_layer(backward)
        self.merge_mode = merge_mode
        self.return_sequences = forward.return_sequences
        self.return_state = forward.return_state
        self.stateful = False
        self._initial_weights = list(weights) if weights is not None else None
        self.input_spec = InputSpec(ndim=3)

    def _check_rank(self, shape):
        self.forward_layer._check_rank(shape)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.forward_layer._maybe_build(input_shape)
        self.backward_layer._maybe_build(input_shape)
        self.input_spec = InputSpec(ndim=3, axes={-1: input_shape[-1]})
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    # one GradientTape primitive, as the recurrent layers: the sublayers' caches travel with
    # this layer's attributes (_sub_states)
    _primitive_call = True

    def __call__(self, x, training=False, mask=None, initial_state=None):
        return _dispatch_call(self, x, training, mask, initial_state)

    _call_arrays = _RNN._call_arrays

    def call(self, x, training=False, mask=None, initial_state=None):
        fs = bs = None
        if initial_state is not None:
            initial_state = list(initial_state)
            half = len(initial_state) // 2
            fs, bs = initial_state[:half], initial_state[half:]
        y = self.forward_layer.call(x, training=training, mask=mask, initial_state=fs)
        y_rev = self.backward_layer.call(x, training=training, mask=mask, initial_state=bs)
        self._sub_states = (self.forward_layer.__dict__.copy(),
                            self.backward_layer.__dict__.copy())
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        self._outputs = (y, y_rev)
        if self.merge_mode == "concat":
            out = np.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            out = y + y_rev
        elif self.merge_mode == "ave":
            out = (y + y_rev) / 2
        elif self.merge_mode == "mul":
            out = y * y_rev
        else:
            out = (y, as_c_array(y_rev))
        if self.return_state:
            return (list(out) if self.merge_mode is None else [out]) + states
        return out

    def backward(self, dy):
        """``dy``: the output's gradient; with merge_mode None the pair ``(dy, dy_rev)``; with
        return_state a list ``[d_output(s), d_states...]`` (forward layer's, then backward's)."""
        if getattr(self, "_outputs", None) is None:
            raise RuntimeError(f"Layer {self.name!r}: backward() needs a call() first")
        nf = rnn_ops.num_states(self.forward_layer._cell)
        parts = list(dy) if isinstance(dy, (list, tuple)) else [dy]
        if self.merge_mode is None:
            dyf = parts[0]
            dyb = parts[1] if len(parts) > 1 else None
            dstates = parts[2:]
        else:
            dyf = dyb = parts[0]
            dstates = parts[1:]
        y, y_rev = self._outputs
        if self.merge_mode == "concat":
            u = y.shape[-1]
            dyf, dyb = dyf[..., :u], dyf[..., u:]
        elif self.merge_mode == "ave":
            dyf = dyb = dyf * 0.5
        elif self.merge_mode == "mul":
            dyf, dyb = dyf * y_rev, dyf * y
        if dyb is None:
            dyb = np.zeros_like(y_rev)
        if self.return_sequences:
            dyb = dyb[:, ::-1]
        self.forward_layer.__dict__.update(self._sub_states[0])
        self.backward_layer.__dict__.update(self._sub_states[1])
        dsf = list(dstates[:nf]) if dstates else []
        dsb = list(dstates[nf:]) if dstates else []
        dxf = self.forward_layer.backward([as_c_array(dyf)] + dsf)
        dxb = self.backward_layer.backward([as_c_array(dyb)] + dsb)
        self.d_initial_state = (list(self.forward_layer.d_initial_state) +
                                list(self.backward_layer.d_initial_state))
        self.grads = (self.forward_layer.grads + self.backward_layer.grads) \
            if self._trainable else []
        return dxf + dxb

    def compute_output_shape(self, input_shape):
        fshape = self.forward_layer.compute_output_shape(input_shape)
        bshape = self.backward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            states = list(fshape[1:]) + list(bshape[1:])
            fshape, bshape = fshape[0], bshape[0]
        if self.merge_mode == "concat":
            out = tuple(fshape[:-1]) + (fshape[-1] + bshape[-1],)
        elif self.merge_mode is None:
            out = [tuple(fshape), tuple(bshape)]
        else:
            out = tuple(fshape)
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def compute_mask(self, x, mask=None):
        if mask is None or not self.return_sequences:
            return None
        return mask

    def get_config(self):
        from fastdl.saving.common import layer_entry
        config = super().get_config()
        config["merge_mode"] = self.merge_mode
        config["layer"] = layer_entry(self.forward_layer)
        config["backward_layer"] = layer_entry(self.backward_layer)
        return config
