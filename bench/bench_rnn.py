"""Benchmark of the tutorial RNN's training step: fastdl vs a NumPy cell loop vs PyTorch vs Keras.

Model: Embedding(10000, 32) -> {LSTM, GRU, SimpleRNN}(64) -> Dense(1, sigmoid), sequences of
T=200 token ids, batch 64, binary cross-entropy, Adam(1e-3). One training step = forward,
loss, backward through time and the optimizer update, measured in sequences per second:

  * fastdl      ``Sequential.train_on_batch`` (the C++ time loop, everything included)
  * numpy       a vectorised NumPy implementation: one matmul for the input projection, a Python
                loop over time for the cell, BPTT with one matmul per step, Adam (float32)
  * torch       torch.nn.Embedding + nn.LSTM/GRU/RNN(batch_first) + nn.Linear, autograd, Adam,
                with ``torch.set_flush_denormal(True)`` (its fastest setting on CPU: without it,
                vanishing gradients reach subnormal floats and PyTorch slows down several-fold)
  * tensorflow  Keras 3 on TensorFlow, ``model.train_on_batch`` (when importable), compiled
                with ``jit_compile=False`` (faster here than the XLA default)

Every framework runs in its own worker process per thread count (TensorFlow fixes its thread
pools once per process); the parent interleaves the workers (A B C D A B C D ...), each turn
timing a few steps after warm-up, and reports medians and ratios.

Usage: python bench/bench_rnn.py [--cells lstm gru simple_rnn] [--threads 1 2] [--rounds 5]
                                 [--steps 3] [--frameworks fastdl numpy torch tensorflow]
                                 [--clock wall|cpu] [--kernels]
--kernels times the cell alone (forward + BPTT from embedded inputs) in fastdl's kernels and in
the NumPy cell loop, in this process.
For NumPy at its best kernel, run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

V, E, U, T, N = 10000, 32, 64, 200, 64
# `import fastdl` sets OMP_WAIT_POLICY=PASSIVE when it is unset; the peers' workers must get the
# environment the user started with (PyTorch's OpenMP threads are slower when passive).
_USER_OMP_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")
CELLS = ("lstm", "gru", "simple_rnn")
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def _data(seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V, (N, T)).astype(np.int32)
    y = (rng.random((N, 1)) > 0.5).astype(np.float32)
    return x, y


# ------------------------------------------------------------------ NumPy reference
class NumpyModel:
    """The same model written with NumPy: the time loop in Python, float32, Adam."""

    def __init__(self, cell, seed=0):
        import numpy as np
        self.np, self.cell = np, cell
        rng = np.random.default_rng(seed)
        g = GATES[cell] * U

        def glorot(shape):
            lim = np.sqrt(6 / sum(shape))
            return rng.uniform(-lim, lim, shape).astype(np.float32)

        q, _ = np.linalg.qr(rng.standard_normal((g, U)))
        self.p = {
            "emb": rng.uniform(-0.05, 0.05, (V, E)).astype(np.float32),
            "W": glorot((E, g)), "R": np.ascontiguousarray(q.T, dtype=np.float32),
            "b": np.zeros((2, g) if cell == "gru" else (g,), np.float32),
            "Wd": glorot((U, 1)), "bd": np.zeros(1, np.float32),
        }
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = 0

    def step(self, ids, y):
        self._adam(self.gradients(ids, y))

    def gradients(self, ids, y):
        np, p = self.np, self.p
        x = p["emb"][ids]                                   # (N, T, E)
        grads, dx = self.cell_gradients(x, y)
        demb = np.zeros_like(p["emb"])
        np.add.at(demb, ids.reshape(-1), dx.reshape(-1, E))
        grads["emb"] = demb
        return grads

    def cell_gradients(self, x, y):
        """The cell's forward over T steps, the Dense head and BPTT: (grads, dx)."""
        np, p, cell = self.np, self.p, self.cell

        def sig(a):
            return 0.5 + 0.5 * np.tanh(0.5 * a)

        bx = p["b"][0] if cell == "gru" else p["b"]
        xp = x @ p["W"] + bx                                # (N, T, G*U): one matmul
        R = p["R"]
        h = np.zeros((N, U), np.float32)
        c = np.zeros((N, U), np.float32)
        cache = []
        for t in range(T):                                  # the cell loop
            hp, cp = h, c
            if cell == "lstm":
                z = xp[:, t] + h @ R
                i, f, o = sig(z[:, :U]), sig(z[:, U:2 * U]), sig(z[:, 3 * U:])
                gg = np.tanh(z[:, 2 * U:3 * U])
                c = f * c + i * gg
                tc = np.tanh(c)
                h = o * tc
                cache.append((hp, cp, i, f, gg, o, tc))
            elif cell == "gru":
                hr = h @ R + p["b"][1]
                zz = sig(xp[:, t, :U] + hr[:, :U])
                r = sig(xp[:, t, U:2 * U] + hr[:, U:2 * U])
                hh = np.tanh(xp[:, t, 2 * U:] + r * hr[:, 2 * U:])
                h = zz * h + (1 - zz) * hh
                cache.append((hp, zz, r, hh, hr[:, 2 * U:]))
            else:
                h = np.tanh(xp[:, t] + h @ R)
                cache.append((hp, h))
        logit = h @ p["Wd"] + p["bd"]
        prob = 1 / (1 + np.exp(-logit))
        dlogit = (prob - y) / N
        grads = {"Wd": h.T @ dlogit, "bd": dlogit.sum(0)}
        dh = dlogit @ p["Wd"].T
        dc = np.zeros_like(dh)
        dG = np.empty((T, N, xp.shape[2]), np.float32)
        dGr = np.empty((T, N, xp.shape[2]), np.float32) if cell == "gru" else dG
        hprev = np.empty((T, N, U), np.float32)
        for t in range(T - 1, -1, -1):                      # backpropagation through time
            if cell == "lstm":
                hp, cp, i, f, gg, o, tc = cache[t]
                dc = dc + dh * o * (1 - tc * tc)
                dG[t] = np.concatenate([dc * gg * i * (1 - i), dc * cp * f * (1 - f),
                                        dc * i * (1 - gg * gg), dh * tc * o * (1 - o)], axis=1)
                dc = dc * f
                dh = dG[t] @ R.T
            elif cell == "gru":
                hp, zz, r, hh, hrh = cache[t]
                dz = dh * (hp - hh) * zz * (1 - zz)
                dph = dh * (1 - zz) * (1 - hh * hh)
                dr = dph * hrh * r * (1 - r)
                dG[t] = np.concatenate([dz, dr, dph], axis=1)
                dGr[t] = np.concatenate([dz, dr, dph * r], axis=1)
                dh = dh * zz + dGr[t] @ R.T
            else:
                hp, ht = cache[t]
                dG[t] = dh * (1 - ht * ht)
                dh = dG[t] @ R.T
            hprev[t] = hp
        dGx = dG.transpose(1, 0, 2).reshape(N * T, -1)
        grads["W"] = x.reshape(N * T, E).T @ dGx
        grads["R"] = hprev.reshape(T * N, U).T @ dGr.reshape(T * N, -1)
        db = dGx.sum(0)
        grads["b"] = np.stack([db, dGr.reshape(T * N, -1).sum(0)]) if cell == "gru" else db
        dx = (dGx @ p["W"].T).reshape(N, T, E)
        return grads, dx

    def _adam(self, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
        np = self.np
        self.t += 1
        a = lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for k, g in grads.items():
            m, v = self.m[k], self.v[k]
            m += (1 - b1) * (g - m)
            v += (1 - b2) * (g * g - v)
            self.p[k] -= (a * m / (np.sqrt(v) + eps)).astype(np.float32)


# ------------------------------------------------------------------ workers
def _worker_models(framework, threads):
    """Returns make(cell) -> step() for the framework, or raises ImportError."""
    x, y = _data()
    if framework == "fastdl":
        import fastdl
        from fastdl import layers
        from fastdl.models import Sequential
        fastdl.set_num_threads(threads)

        def make(cell):
            fastdl.utils.set_random_seed(0)
            cls = {"lstm": layers.LSTM, "gru": layers.GRU, "simple_rnn": layers.SimpleRNN}[cell]
            model = Sequential([layers.Embedding(V, E), cls(U), layers.Dense(1, activation="sigmoid")])
            model.compile(optimizer=fastdl.optimizers.Adam(1e-3), loss="binary_crossentropy")
            return lambda: model.train_on_batch(x, y)
        return make
    if framework == "numpy":
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(threads)
        except ImportError:
            pass

        def make(cell):
            model = NumpyModel(cell)
            return lambda: model.step(x, y)
        return make
    if framework == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
        xt, yt = torch.from_numpy(x.astype("int64")), torch.from_numpy(y)

        def make(cell):
            torch.manual_seed(0)
            rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[cell]
            emb, rnn, dense = torch.nn.Embedding(V, E), rnn_cls(E, U, batch_first=True), \
                torch.nn.Linear(U, 1)
            params = list(emb.parameters()) + list(rnn.parameters()) + list(dense.parameters())
            opt = torch.optim.Adam(params, 1e-3)

            def step():
                opt.zero_grad()
                out, _ = rnn(emb(xt))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(dense(out[:, -1]), yt)
                loss.backward()
                opt.step()
            return step
        return make
    if framework == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras

        def make(cell):
            keras.utils.set_random_seed(0)
            cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU,
                   "simple_rnn": keras.layers.SimpleRNN}[cell]
            model = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(V, E),
                                      cls(U), keras.layers.Dense(1, activation="sigmoid")])
            # jit_compile=False: TensorFlow's faster setting here (~1200 against ~840 seq/s
            # for Keras's default "auto", which compiles this LSTM with XLA)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                          jit_compile=False)
            return lambda: model.train_on_batch(x, y)
        return make
    raise ValueError(framework)


def worker(framework, threads, clock="wall"):
    """Line protocol on stdin/stdout: 'CELL STEPS' -> JSON list of step times (seconds)."""
    now = time.perf_counter if clock == "wall" else time.process_time
    try:
        make = _worker_models(framework, threads)
    except ImportError as e:
        print(json.dumps({"unavailable": str(e)}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    steps_for = {}
    for line in sys.stdin:
        cell, steps = line.split()
        if cell not in steps_for:
            steps_for[cell] = make(cell)
            for _ in range(2):  # warm-up: first-call costs, allocations, tracing
                steps_for[cell]()
        step = steps_for[cell]
        times = []
        for _ in range(int(steps)):
            t0 = now()
            step()
            times.append(now() - t0)
        print(json.dumps(times), flush=True)


# ------------------------------------------------------------------ parent
def _spawn(framework, threads, clock):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    try:  # the workers use the fastdl this process imports (e.g. a private copy of the build)
        import fastdl
        python_dir = os.path.dirname(os.path.dirname(os.path.abspath(fastdl.__file__)))
    except ImportError:
        python_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                  "python")
    env["PYTHONPATH"] = python_dir + os.pathsep + env.get("PYTHONPATH", "")
    if framework != "fastdl":
        env.pop("OMP_WAIT_POLICY", None)
        if _USER_OMP_WAIT_POLICY is not None:
            env["OMP_WAIT_POLICY"] = _USER_OMP_WAIT_POLICY
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", framework,
                             str(threads), "--clock", clock], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    first = json.loads(proc.stdout.readline() or '{"unavailable": "worker died"}')
    if "unavailable" in first:
        proc.wait()
        return None, first["unavailable"]
    return proc, None


def _ask(proc, cell, steps):
    """Step times from a worker, or None when it has died."""
    try:
        proc.stdin.write(f"{cell} {steps}\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
    except (BrokenPipeError, OSError):
        return None
    return json.loads(line) if line.strip() else None


def kernels(args):
    """The cell alone: fastdl.ops.core.rnn forward (training) + backward against NumpyModel's cell
    loop (forward, Dense head, BPTT), on the same embedded inputs and weights, in this process;
    rounds interleaved, medians."""
    import statistics
    import numpy as np
    import fastdl
    from fastdl.ops.core import rnn
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    ids, y = _data()
    print(f"# cell alone (forward + BPTT), T={T}, batch {N}, input {E}, units {U}; median over "
          f"{args.rounds} interleaved rounds x {args.steps} calls")
    print("| cell | threads | fastdl ms | NumPy loop ms | NumPy / fastdl |")
    print("|---|---|---|---|---|")
    for cell in args.cells:
        ref = NumpyModel(cell)
        x = ref.p["emb"][ids]
        w, r, b = ref.p["W"], ref.p["R"], ref.p["b"]
        dy = np.full((N, U), 1.0 / N, np.float32)

        def fastdl_cell():
            _, _, tape = rnn.rnn_forward(cell, x, w, r, b, training=True)
            rnn.rnn_backward(tape, dy)

        def numpy_cell():
            ref.cell_gradients(x, y)

        for threads in args.threads:
            fastdl.set_num_threads(threads)
            limit = threadpool_limits(threads) if threadpool_limits else None
            times = {"fastdl": [], "numpy": []}
            for fn in (fastdl_cell, numpy_cell):
                fn()  # warm-up
            for _ in range(args.rounds):
                for name, fn in (("fastdl", fastdl_cell), ("numpy", numpy_cell)):
                    # OpenBLAS's idle threads spin for ~0.1 s after NumPy's last product and
                    # would take the second core from whichever side runs next
                    time.sleep(0.3)
                    for _ in range(2):  # untimed: the first calls after the pause run cold
                        fn()
                    for _ in range(args.steps):
                        t0 = time.perf_counter()
                        fn()
                        times[name].append(time.perf_counter() - t0)
            if limit is not None:
                limit.unregister()
            f, n = (statistics.median(times[k]) * 1e3 for k in ("fastdl", "numpy"))
            print(f"| {cell} | {threads} | {f:.2f} | {n:.2f} | {n / f:.1f}x |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--frameworks", nargs="+", default=["fastdl", "numpy", "torch", "tensorflow"])
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time (default); cpu: the worker process's CPU time, "
                         "steadier on a shared machine but blind to multithreaded speed-ups")
    ap.add_argument("--kernels", action="store_true",
                    help="time the cell alone (forward over T steps + BPTT, from embedded "
                         "inputs) in fastdl's C++ kernels and in the NumPy cell loop")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]), args.clock)
    if args.kernels:
        return kernels(args)

    import numpy as np
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, NumPy {np.__version__}")
    print(f"# Embedding({V},{E}) + cell({U}) + Dense(1), T={T}, batch {N}, training step; "
          f"median over {args.rounds} interleaved rounds x {args.steps} steps, {args.clock} clock")
    workers = {}
    for threads in args.threads:
        for fw in args.frameworks:
            proc, why = _spawn(fw, threads, args.clock)
            if proc is None:
                print(f"# {fw}: not available ({why})")
            else:
                workers[(fw, threads)] = proc
    times = {}
    try:
        for _ in range(args.rounds):
            for cell in args.cells:
                for threads in args.threads:
                    for fw in args.frameworks:
                        proc = workers.get((fw, threads))
                        if proc is None:
                            continue
                        got = _ask(proc, cell, args.steps)
                        if got is None:
                            print(f"# {fw} ({threads} threads) worker died "
                                  f"(exit code {proc.poll()}); its results are incomplete")
                            del workers[(fw, threads)]
                            continue
                        times.setdefault((cell, threads, fw), []).extend(got)
    finally:
        for proc in workers.values():
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.wait()

    peers = [fw for fw in args.frameworks if fw not in ("fastdl", "numpy")]
    cols = [fw for fw in args.frameworks]
    header = f"| cell | threads | " + " | ".join(f"{c} seq/s" for c in cols)
    header += " | fastdl / numpy | fastdl / best peer |"
    print()
    print(header)
    print("|" + "---|" * (len(cols) + 4))
    for cell in args.cells:
        for threads in args.threads:
            rate = {fw: N / float(np.median(times[(cell, threads, fw)]))
                    for fw in cols if (cell, threads, fw) in times}
            row = f"| {cell} | {threads} | " + " | ".join(
                f"{rate[fw]:.0f}" if fw in rate else "-" for fw in cols)
            fd = rate.get("fastdl")
            ratio_np = f"{fd / rate['numpy']:.1f}x" if fd and "numpy" in rate else "-"
            best = max((rate[p] for p in peers if p in rate), default=None)
            ratio_peer = f"{fd / best:.2f}x" if fd and best else "-"
            print(row + f" | {ratio_np} | {ratio_peer} |")


if __name__ == "__main__":
    main()
