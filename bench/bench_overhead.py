"""Python overhead of the training API: the tutorial linear regression as a whole process,
per-step cost of fit on a tiny model, predict on one sample, and import time.

fastdl beside TensorFlow/Keras and PyTorch (a hand-written loop) when they are installed.
Run: python bench/bench_overhead.py [--repeats 3] [--skip-peers]
"""
import argparse
import statistics
import subprocess
import sys
import time

LINEAR_FASTDL = """
import numpy as np
import fastdl as tf
rng = np.random.default_rng(42)
X = rng.random((100, 1)).astype("float32"); y = 3 * X + 2
model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(1,))])
model.compile(optimizer="sgd", loss="mean_squared_error")
model.fit(X, y, epochs=1000, verbose=0)
"""
LINEAR_KERAS = LINEAR_FASTDL.replace("import fastdl as tf", "import tensorflow as tf")
LINEAR_TORCH = """
import numpy as np
import torch
torch.set_num_threads(1)
rng = np.random.default_rng(42)
X = torch.from_numpy(rng.random((100, 1)).astype("float32")); y = 3 * X + 2
model = torch.nn.Linear(1, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(1000):
    perm = torch.randperm(100)
    for i in range(0, 100, 32):
        idx = perm[i:i + 32]
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
"""
IMPORTS = {"fastdl": "import fastdl", "tensorflow": "import tensorflow",
           "torch": "import torch", "numpy": "import numpy"}


def available(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True).returncode == 0


def time_process(code, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                            "OMP_NUM_THREADS": "1"})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process_fastdl(repeats):
    import numpy as np

    import fastdl
    from fastdl import layers
    from fastdl.models import Sequential

    rng = np.random.default_rng(0)
    x = rng.random((3200, 1)).astype(np.float32)
    y = 3 * x + 2
    model = Sequential([layers.Dense(1, input_shape=(1,))])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x[:64], y[:64], epochs=2, verbose=0)
    steps = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=10, verbose=0)
        steps.append((time.perf_counter() - start) / (10 * 100))
    one = x[:1]
    model.predict(one, verbose=0)
    preds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(1000):
            model.predict(one, verbose=0)
        preds.append((time.perf_counter() - start) / 1000)
    return statistics.median(steps), statistics.median(preds)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()

    peers = [] if args.skip_peers else [p for p in ("tensorflow", "torch") if available(p)]
    print(f"python {sys.version.split()[0]}; peers: {', '.join(peers) or 'none'}")
    print()
    print(f"{'workload':<52}{'fastdl':>10}" + "".join(f"{p:>12}" for p in peers) + "  ratio")

    rows = []
    # interleaved: fastdl, then each peer, repeated
    fast, peer_times = [], {p: [] for p in peers}
    for _ in range(args.repeats):
        fast.append(time_process(LINEAR_FASTDL, 1))
        if "tensorflow" in peers:
            peer_times["tensorflow"].append(time_process(LINEAR_KERAS, 1))
        if "torch" in peers:
            peer_times["torch"].append(time_process(LINEAR_TORCH, 1))
    f = statistics.median(fast)
    cells = {p: statistics.median(v) for p, v in peer_times.items()}
    ratio = " ".join(f"{p}/fastdl={cells[p] / f:.1f}x" for p in peers)
    rows.append(("linear regression, 1000 epochs, whole process (s)", f"{f:.3f}",
                 [f"{cells[p]:.3f}" for p in peers], ratio))

    imp = {}
    for name in ["fastdl", "numpy"] + peers:
        imp[name] = time_process(IMPORTS[name], args.repeats)
    bare = time_process("pass", args.repeats)
    rows.append(("import time beyond a bare interpreter (s)", f"{imp['fastdl'] - bare:.3f}",
                 [f"{imp[p] - bare:.3f}" for p in peers], f"numpy alone {imp['numpy'] - bare:.3f}"))

    step, pred = in_process_fastdl(args.repeats)
    rows.append(("fit per step, Dense(1), batch 32 (us)", f"{step * 1e6:.1f}",
                 ["" for _ in peers], "target <= 30"))
    rows.append(("predict one sample (us)", f"{pred * 1e6:.1f}", ["" for _ in peers],
                 "target <= 50"))
    for name, value, peer_cells, note in rows:
        print(f"{name:<52}{value:>10}" + "".join(f"{c:>12}" for c in peer_cells) + f"  {note}")


if __name__ == "__main__":
    main()
