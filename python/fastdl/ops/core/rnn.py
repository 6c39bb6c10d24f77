"""Recurrent layers and embedding lookups on fastdl's C++ kernels.

:func:`rnn_forward` runs SimpleRNN, LSTM or GRU over a whole sequence (the time loop is in C++)
and :func:`rnn_backward` backpropagates through time. Weights use Keras layouts: kernel
``(features, G*units)``, recurrent kernel ``(units, G*units)`` with gate order i, f, c, o (LSTM)
and z, r, h (GRU); bias ``(G*units,)``, or ``(2, 3*units)`` for GRU with ``reset_after=True``
(row 0 the input bias, row 1 the recurrent bias).

Semantics follow Keras 3: ``go_backwards`` processes the last timestep first and returns the
outputs in processing order (reversed); a masked step (``mask[n, t]`` false) keeps the previous
state and repeats the previous output (zeros before the first processed step).

float32 kernels use a rational tanh (a few ulp) and sigmoid(x) = (1 + tanh(x/2)) / 2, and flush
subnormal numbers to zero in their threads, as TensorFlow does; float64 kernels use the C
library's functions and IEEE arithmetic (for gradient checks). Batch rows are split across
threads, so outputs are bitwise independent of the thread count; weight gradients are summed
over the threads' rows and may differ in the last bits between thread counts.
"""
import numpy as np

from fastdl import _core
from fastdl.ops.core import as_float_array

CELLS = ("simple_rnn", "lstm", "gru")
SIMPLE_RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
_GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def num_states(cell):
    """Number of state tensors of a cell: 2 for LSTM (h, c), else 1."""
    return 2 if cell == "lstm" else 1


def _as_mask(mask, dtype_name="mask"):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype == object or not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.number)):
        raise TypeError(f"{dtype_name} must be a boolean array, received dtype {mask.dtype}")
    return np.require(mask, dtype=np.bool_, requirements="CA")


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, received {type(value).__name__} {value!r}")
    return bool(value)


class RnnTape:
    """What :func:`rnn_backward` needs from a training forward pass."""

    __slots__ = ("cell", "x", "kernel", "recurrent_kernel", "use_bias", "mask", "cache",
                 "activation", "reset_after", "return_sequences", "go_backwards",
                 "zero_output_for_mask", "recurrent_mask")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields[name])


def rnn_forward(cell, x, kernel, recurrent_kernel, bias=None, initial_state=None, mask=None,
                activation="tanh", reset_after=True, return_sequences=False, go_backwards=False,
                zero_output_for_mask=False, training=False, recurrent_mask=None):
    """Run ``cell`` ("simple_rnn", "lstm" or "gru") over ``x`` of shape ``(N, T, features)``.

    ``initial_state``: None (zeros) or a list of ``(N, units)`` arrays (``[h]``, LSTM ``[h, c]``).
    ``mask``: None or ``(N, T)`` booleans; ``zero_output_for_mask`` makes masked steps output
    zeros instead of the previous output. ``activation``: SimpleRNN only (tanh, relu, sigmoid,
    linear). ``recurrent_mask``: None or ``(N, G, units)`` (G gates: 1, LSTM 4, GRU 3), Keras's
    recurrent dropout: gate g's recurrent product uses ``h_prev * recurrent_mask[:, g]`` at every
    step (values 0 or ``1 / (1 - rate)``). Returns ``(y, states, tape)``: y ``(N, T, units)`` with ``return_sequences`` else
    ``(N, units)``; states the final ``[h]`` or ``[h, c]``; tape for :func:`rnn_backward` when
    ``training`` (else None). Raises ``ValueError`` for inconsistent shapes and ``TypeError`` for
    non-float or mixed dtypes.
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, received {cell!r}")
    x = as_float_array(x, "x")
    kernel = as_float_array(kernel, "kernel", dtype=x.dtype)
    recurrent_kernel = as_float_array(recurrent_kernel, "recurrent_kernel", dtype=x.dtype)
    if bias is not None:
        bias = as_float_array(bias, "bias", dtype=x.dtype)
    states = [None] * num_states(cell)
    if initial_state is not None:
        if isinstance(initial_state, np.ndarray):
            initial_state = [initial_state]
        initial_state = list(initial_state)
        if len(initial_state) != len(states):
            raise ValueError(f"{cell} takes {len(states)} initial state(s), received "
                             f"{len(initial_state)}")
        states = [as_float_array(s, f"initial_state[{i}]", dtype=x.dtype)
                  for i, s in enumerate(initial_state)]
    mask = _as_mask(mask)
    if recurrent_mask is not None:
        recurrent_mask = np.require(as_float_array(recurrent_mask, "recurrent_mask",
                                                   dtype=x.dtype), requirements="CA")
    return_sequences = _flag(return_sequences, "return_sequences")
    go_backwards = _flag(go_backwards, "go_backwards")
    zero_output_for_mask = _flag(zero_output_for_mask, "zero_output_for_mask")
    training = _flag(training, "training")
    options = dict(return_sequences=return_sequences, go_backwards=go_backwards,
                   zero_output_for_mask=zero_output_for_mask, training=training,
                   recurrent_mask=recurrent_mask)
    if cell == "simple_rnn":
        if activation not in SIMPLE_RNN_ACTIVATIONS:
            raise ValueError(f"activation must be one of {SIMPLE_RNN_ACTIVATIONS}, received "
                             f"{activation!r}")
        y, h, _, cache = _core.simple_rnn_forward(x, kernel, recurrent_kernel, bias, states[0],
                                                  mask, activation=activation, **options)
        final = [h]
    elif cell == "lstm":
        y, h, c, cache = _core.lstm_forward(x, kernel, recurrent_kernel, bias, states[0],
                                            states[1], mask, **options)
        final = [h, c]
    else:
        reset_after = _flag(reset_after, "reset_after")
        y, h, _, cache = _core.gru_forward(x, kernel, recurrent_kernel, bias, states[0], mask,
                                           reset_after=reset_after, **options)
        final = [h]
    tape = None
    if training:
        tape = RnnTape(cell=cell, x=x, kernel=kernel, recurrent_kernel=recurrent_kernel,
                       use_bias=bias is not None, mask=mask, cache=cache, activation=activation,
                       reset_after=bool(reset_after), return_sequences=return_sequences,
                       go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask,
                       recurrent_mask=recurrent_mask)
    return y, final, tape


def rnn_backward(tape, dy, dstates=None, gate_grads=None):
    """Backpropagation through time for the forward that produced ``tape``.

    ``dy`` like the forward's y; ``dstates`` None or a list like its states (entries may be
    None). Returns ``(dx, dkernel, drecurrent_kernel, dbias or None, dinitial_states)``.
    ``gate_grads``: None or a C-contiguous array of the tape's dtype, shape ``(steps, batch,
    W)``, that receives each step's gradient of the pre-activation gates (processing order,
    zeros at masked steps): ``W = G*units`` (GRU ``reset_after``: ``2*G*units``, the recurrent
    product's then the input product's), from which the weight gradients are per-step products
    with the inputs and the cached previous states (per-example gradients, fastdl.privacy).
    """
    if not isinstance(tape, RnnTape):
        raise TypeError("rnn_backward needs the tape of rnn_forward(..., training=True)")
    dtype = tape.x.dtype
    dy = np.require(as_float_array(dy, "dy"), dtype=dtype, requirements="CA")
    ds = [None] * num_states(tape.cell)
    if dstates is not None:
        dstates = list(dstates)
        if len(dstates) != len(ds):
            raise ValueError(f"{tape.cell} has {len(ds)} state(s), received {len(dstates)} "
                             "state gradients")
        ds = [None if g is None else np.require(as_float_array(g, "dstates"), dtype=dtype, requirements="CA")
              for g in dstates]
    t = tape
    arrays = (t.x, t.kernel, t.recurrent_kernel, t.mask, t.cache)
    options = dict(use_bias=t.use_bias, return_sequences=t.return_sequences,
                   go_backwards=t.go_backwards, zero_output_for_mask=t.zero_output_for_mask,
                   recurrent_mask=t.recurrent_mask, gate_grads=gate_grads)
    if t.cell == "simple_rnn":
        dx, dk, dr, db, dh0, _ = _core.simple_rnn_backward(dy, ds[0], *arrays,
                                                           activation=t.activation, **options)
        d0 = [dh0]
    elif t.cell == "lstm":
        dx, dk, dr, db, dh0, dc0 = _core.lstm_backward(dy, ds[0], ds[1], *arrays, **options)
        d0 = [dh0, dc0]
    else:
        dx, dk, dr, db, dh0, _ = _core.gru_backward(dy, ds[0], *arrays,
                                                    reset_after=t.reset_after, **options)
        d0 = [dh0]
    return dx, dk, dr, db, d0


# ---------------------------------------------------------------------------- embedding
_MAX_ID = 2**62  # beyond any table; keeps float -> int64 conversion exact and overflow-free


def as_ids(ids, name="ids"):
    """Integer ids as a C-contiguous int32/int64 array.

    int32/int64 pass through; other integer dtypes and bools are converted to int64; floats are
    accepted when every value is integral (``[[1.0, 2.0]]``) and converted, otherwise
    ``ValueError`` (Keras would truncate silently). Other dtypes raise ``TypeError``.
    """
    ids = np.asarray(ids)
    if ids.dtype in (np.int32, np.int64):
        return np.require(ids, requirements="CA")
    if ids.dtype == np.bool_ or np.issubdtype(ids.dtype, np.integer):
        if ids.dtype == np.uint64 and ids.size and int(ids.max()) > _MAX_ID:
            pos = tuple(map(int, np.unravel_index(int(np.argmax(ids)), ids.shape)))
            raise ValueError(f"{name}: index {int(ids[pos])} at position {pos} is out of range")
        return np.require(ids, dtype=np.int64, requirements="CA")
    if np.issubdtype(ids.dtype, np.floating):
        bad = ~np.isfinite(ids) | (np.abs(ids) > _MAX_ID)
        finite = np.where(bad, 0, ids)
        bad |= finite != np.floor(finite)
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} must be integers; a float array is accepted only when "
                             f"every value is integral, but {name}[{pos}] = {ids[pos]!r}")
        return np.require(ids, dtype=np.int64, requirements="CA")
    raise TypeError(f"{name} must be an integer array, received dtype {ids.dtype}")


def embedding_lookup(embeddings, ids):
    """``embeddings[ids]``: shape ``ids.shape + (output_dim,)``.

    Every id is checked against ``[0, input_dim)`` before any row is read; the first offending
    value and its position are reported in a ``ValueError``.
    """
    embeddings = as_float_array(embeddings, "embeddings")
    return _core.embedding_forward(embeddings, as_ids(ids))


def embedding_backward(dy, ids, input_dim):
    """Gradient of the embedding table: ``dy`` rows scatter-added into a zero
    ``(input_dim, output_dim)`` array (row ``ids[i]`` gets ``dy[i]``)."""
    dy = as_float_array(dy, "dy")
    if isinstance(input_dim, (bool, np.bool_)) or not isinstance(input_dim, (int, np.integer)):
        raise TypeError(f"input_dim must be an int, received {input_dim!r}")
    return _core.embedding_backward(dy, as_ids(ids), int(input_dim))
