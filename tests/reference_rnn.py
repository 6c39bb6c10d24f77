"""Slow, obvious float64 NumPy references for SimpleRNN, LSTM, GRU and Embedding.

Written from Keras 3's cells (keras/src/layers/rnn/{simple_rnn,lstm,gru}.py) and its backend
``rnn()`` loop (keras/src/backend/tensorflow/rnn.py):

- the sequence is processed step by step; ``go_backwards`` processes time T-1 first and the
  outputs stay in processing order (the returned sequence is reversed);
- a masked step keeps the previous states, and its output is the previous step's output
  (zeros before the first processed step), or zeros with ``zero_output_for_mask``;
- without ``return_sequences`` the output is the last step's output;
- ``recurrent_mask`` (N, G, U) is recurrent dropout as in Keras's cells with
  ``implementation=1``: gate g's recurrent product takes ``h_prev * recurrent_mask[:, g]``;
  ``input_mask`` (N, G, F), the input dropout of that implementation: gate g takes
  ``x * input_mask[:, g]``.
"""
import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0.0),
    "linear": lambda v: v,
    None: lambda v: v,
    "sigmoid": _sigmoid,
}


def _gate_states(h, recurrent_mask, gates):
    """h_prev as each gate's recurrent product sees it."""
    if recurrent_mask is None:
        return [h] * gates
    return [h * recurrent_mask[:, g] for g in range(gates)]


def simple_rnn_cell(x, states, kernel, recurrent, bias, activation="tanh", recurrent_mask=None):
    (h,) = states
    (h_m,) = _gate_states(h, recurrent_mask, 1)
    z = x @ kernel + h_m @ recurrent
    if bias is not None:
        z = z + bias
    h = _ACTIVATIONS[activation](z)
    return h, [h]


def lstm_cell(x, states, kernel, recurrent, bias, recurrent_mask=None, input_mask=None):
    h, c = states
    u = h.shape[1]
    hg = _gate_states(h, recurrent_mask, 4)
    xg = _gate_states(x, input_mask, 4)
    z = np.concatenate([xg[g] @ kernel[:, g * u:(g + 1) * u] + hg[g] @ recurrent[:, g * u:(g + 1) * u]
                        for g in range(4)], axis=1)
    if bias is not None:
        z = z + bias
    i = _sigmoid(z[:, :u])
    f = _sigmoid(z[:, u:2 * u])
    g = np.tanh(z[:, 2 * u:3 * u])
    o = _sigmoid(z[:, 3 * u:])
    c = f * c + i * g
    h = o * np.tanh(c)
    return h, [h, c]


def gru_cell(x, states, kernel, recurrent, bias, reset_after=True, recurrent_mask=None,
             input_mask=None):
    (h_prev,) = states
    u = h_prev.shape[1]
    h_z, h_r, h_h = _gate_states(h_prev, recurrent_mask, 3)
    x_0, x_1, x_2 = _gate_states(x, input_mask, 3)
    if bias is None:
        input_bias = recurrent_bias = np.zeros(3 * u)
    elif reset_after:
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, None
    x_z = x_0 @ kernel[:, :u] + input_bias[:u]
    x_r = x_1 @ kernel[:, u:2 * u] + input_bias[u:2 * u]
    x_h = x_2 @ kernel[:, 2 * u:] + input_bias[2 * u:]
    rec_z = h_z @ recurrent[:, :u]
    rec_r = h_r @ recurrent[:, u:2 * u]
    if reset_after and recurrent_bias is not None:
        rec_z = rec_z + recurrent_bias[:u]
        rec_r = rec_r + recurrent_bias[u:2 * u]
    z = _sigmoid(x_z + rec_z)
    r = _sigmoid(x_r + rec_r)
    if reset_after:
        rec_h = h_h @ recurrent[:, 2 * u:]
        if recurrent_bias is not None:
            rec_h = rec_h + recurrent_bias[2 * u:]
        rec_h = r * rec_h
    else:
        rec_h = (r * h_h) @ recurrent[:, 2 * u:]
    hh = np.tanh(x_h + rec_h)
    h = z * h_prev + (1.0 - z) * hh
    return h, [h]


def run_rnn(cell, x, initial_states, mask=None, return_sequences=False, go_backwards=False,
            zero_output_for_mask=False):
    """Keras's rnn() loop around ``cell(x_t, states) -> (output, states)``.

    Returns (output, final_states): output (N, T, U) in processing order or (N, U).
    """
    x = np.asarray(x, dtype=np.float64)
    n, steps = x.shape[:2]
    states = [np.array(s, dtype=np.float64) for s in initial_states]
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    outputs = []
    prev_out = None
    for t in order:
        out, new_states = cell(x[:, t], states)
        if prev_out is None:
            prev_out = np.zeros_like(out)
        if mask is not None:
            m = np.asarray(mask[:, t], dtype=bool)[:, None]
            out = np.where(m, out, 0.0 if zero_output_for_mask else prev_out)
            new_states = [np.where(m, ns, s) for ns, s in zip(new_states, states)]
        states = new_states
        prev_out = out
        outputs.append(out)
    seq = np.stack(outputs, axis=1)
    return (seq if return_sequences else seq[:, -1]), states


def simple_rnn(x, kernel, recurrent, bias=None, h0=None, mask=None, activation="tanh",
               return_sequences=False, go_backwards=False, zero_output_for_mask=False,
               recurrent_mask=None):
    u = recurrent.shape[0]
    h0 = np.zeros((x.shape[0], u)) if h0 is None else h0
    cell = lambda xt, s: simple_rnn_cell(xt, s, kernel, recurrent, bias, activation,  # noqa: E731
                                         recurrent_mask)
    return run_rnn(cell, x, [h0], mask, return_sequences, go_backwards, zero_output_for_mask)


def lstm(x, kernel, recurrent, bias=None, h0=None, c0=None, mask=None, return_sequences=False,
         go_backwards=False, zero_output_for_mask=False, recurrent_mask=None, input_mask=None):
    u = recurrent.shape[0]
    h0 = np.zeros((x.shape[0], u)) if h0 is None else h0
    c0 = np.zeros((x.shape[0], u)) if c0 is None else c0
    cell = lambda xt, s: lstm_cell(xt, s, kernel, recurrent, bias, recurrent_mask,  # noqa: E731
                                   input_mask)
    return run_rnn(cell, x, [h0, c0], mask, return_sequences, go_backwards, zero_output_for_mask)


def gru(x, kernel, recurrent, bias=None, h0=None, mask=None, reset_after=True,
        return_sequences=False, go_backwards=False, zero_output_for_mask=False,
        recurrent_mask=None, input_mask=None):
    u = recurrent.shape[0]
    h0 = np.zeros((x.shape[0], u)) if h0 is None else h0
    cell = lambda xt, s: gru_cell(xt, s, kernel, recurrent, bias, reset_after,  # noqa: E731
                                  recurrent_mask, input_mask)
    return run_rnn(cell, x, [h0], mask, return_sequences, go_backwards, zero_output_for_mask)


def embedding(table, ids):
    out = np.zeros(ids.shape + (table.shape[1],))
    for pos in np.ndindex(*ids.shape):
        out[pos] = table[int(ids[pos])]
    return out
