"""Writes, or checks, tests/data/rnn_keras_golden.npz: outputs of real Keras 3 recurrent layers,
the oracle of tests/test_rnn.py::test_matches_keras_golden_values.

Inputs: x (3, 6, 4) float32, a mask with masked first and last steps, initial states h0 and c0
(3, 5). Cases: SimpleRNN (tanh and relu), LSTM, GRU (reset_after True and False), each forward and
with go_backwards, every one with return_sequences=True and return_state=True and called with the
mask and the initial state; Bidirectional(GRU(5, return_sequences=True)) with each merge mode
and the mask. All values, weights (random biases included) and inputs, come from a seeded NumPy
generator, so a file depends only on the Keras version (and on rounding in its backend).

Stored per case: ``<case>/w<i>`` (``layer.get_weights()``) and ``<case>/y<i>`` (the layer's
outputs: sequences, then the final states); plus ``x``, ``mask``, ``h0``, ``c0``, ``cases``,
``keras_version`` and ``keras_backend``.

Needs Keras 3 and one of its backends (CPU torch is enough):

    KERAS_BACKEND=torch python tests/data/make_rnn_keras_golden.py           # rewrite the file
    KERAS_BACKEND=torch python tests/data/make_rnn_keras_golden.py --check   # verify it

``--check`` recomputes every stored output with the installed Keras from the stored inputs and
weights and exits 1 on any difference beyond the test's tolerance, so the file's provenance can
be checked without rewriting it (tests/test_rnn.py runs it where Keras is installed).
"""
import argparse
import os
import sys

import numpy as np

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rnn_keras_golden.npz")
UNITS = 5
MASK = np.array([[0, 0, 1, 1, 1, 0],   # masked first and last steps
                 [1, 1, 1, 1, 0, 0],
                 [1, 1, 1, 1, 1, 1]], dtype=bool)
RTOL, ATOL = 1e-5, 2e-6                # the tolerance of test_matches_keras_golden_values
CASES = ([f"{name}_gb{gb}" for name in ("simple_rnn", "simple_rnn_relu", "lstm", "gru",
                                        "gru_reset_before") for gb in (0, 1)]
         + [f"bidirectional_{merge}" for merge in ("concat", "sum", "mul", "ave")])


def make_layer(keras, case):
    L = keras.layers
    if case.startswith("bidirectional_"):
        return L.Bidirectional(L.GRU(UNITS, return_sequences=True),
                               merge_mode=case.split("_", 1)[1])
    name, gb = case.rsplit("_gb", 1)
    options = dict(return_sequences=True, return_state=True, go_backwards=gb == "1")
    if name == "simple_rnn":
        return L.SimpleRNN(UNITS, **options)
    if name == "simple_rnn_relu":
        return L.SimpleRNN(UNITS, activation="relu", **options)
    if name == "lstm":
        return L.LSTM(UNITS, **options)
    return L.GRU(UNITS, reset_after=name == "gru", **options)


def keras_outputs(keras, case, weights, x, mask, h0, c0):
    """The Keras layer's outputs (a list of NumPy arrays) for the given weights and inputs."""
    layer = make_layer(keras, case)
    layer.build(x.shape)
    layer.set_weights(weights)
    kwargs = {"mask": keras.ops.convert_to_tensor(mask)}
    if not case.startswith("bidirectional_"):
        kwargs["initial_state"] = [keras.ops.convert_to_tensor(h0)] + (
            [keras.ops.convert_to_tensor(c0)] if case.startswith("lstm") else [])
    outs = layer(keras.ops.convert_to_tensor(x), **kwargs)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [keras.ops.convert_to_numpy(o) for o in outs]


def weight_shapes(keras, case, x_shape):
    layer = make_layer(keras, case)
    layer.build(x_shape)
    return [w.shape for w in layer.get_weights()]


def generate(keras):
    rng = np.random.default_rng(20240611)
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    h0 = rng.standard_normal((3, UNITS)).astype(np.float32)
    c0 = rng.standard_normal((3, UNITS)).astype(np.float32)
    data = {"x": x, "mask": MASK, "h0": h0, "c0": c0, "cases": np.array(CASES),
            "keras_version": np.array(keras.__version__),
            "keras_backend": np.array(keras.backend.backend())}
    for case in CASES:
        # kernels scaled like Glorot's, biases random too (so their layout is exercised)
        weights = [(rng.standard_normal(s) * (0.5 if len(s) == 2 else 0.3)).astype(np.float32)
                   for s in weight_shapes(keras, case, x.shape)]
        for i, w in enumerate(weights):
            data[f"{case}/w{i}"] = w
        for i, y in enumerate(keras_outputs(keras, case, weights, x, MASK, h0, c0)):
            data[f"{case}/y{i}"] = y
    np.savez_compressed(GOLDEN, **data)
    print(f"wrote {GOLDEN}: {len(CASES)} cases, Keras {keras.__version__} "
          f"({keras.backend.backend()} backend)")


def check(keras):
    with np.load(GOLDEN, allow_pickle=False) as d:
        g = {key: d[key] for key in d.files}
    made_by = f"Keras {g['keras_version']}" + (f" ({g['keras_backend']} backend)"
                                               if "keras_backend" in g else "")
    bad = []
    for case in (str(c) for c in g["cases"]):
        weights = [g[f"{case}/w{i}"] for i in range(6) if f"{case}/w{i}" in g]
        stored = [g[f"{case}/y{i}"] for i in range(3) if f"{case}/y{i}" in g]
        got = keras_outputs(keras, case, weights, g["x"], g["mask"], g["h0"], g["c0"])
        if len(got) != len(stored):
            bad.append(f"{case}: {len(got)} outputs, the file has {len(stored)}")
            continue
        for i, (a, b) in enumerate(zip(got, stored)):
            if a.shape != b.shape or not np.allclose(a, b, rtol=RTOL, atol=ATOL):
                err = np.max(np.abs(a - b)) if a.shape == b.shape else f"shape {a.shape}"
                bad.append(f"{case} output {i}: differs ({err})")
    now = f"Keras {keras.__version__} ({keras.backend.backend()} backend)"
    if bad:
        print(f"{GOLDEN} (made by {made_by}) does not match {now}:\n  " + "\n  ".join(bad))
        return 1
    print(f"{GOLDEN} (made by {made_by}) matches {now}: {len(g['cases'])} cases")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="verify the stored outputs against the installed Keras; write nothing")
    args = ap.parse_args()
    import keras
    return check(keras) if args.check else generate(keras)


if __name__ == "__main__":
    sys.exit(main())
