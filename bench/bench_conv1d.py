"""Benchmark of the Conv1D text CNN's training step (issue #15): fastdl vs PyTorch vs Keras/TF.

Model (the IMDB text CNN): Embedding(20000, 128) -> Conv1D(250, 3, relu) -> GlobalMaxPooling1D
-> Dense(1, sigmoid), sequences of T=400 token ids, batch 32, binary cross-entropy,
Adam(1e-3). One training step = forward, loss, backward and the optimizer update (the
embedding's gradient included), in sequences per second:

  * fastdl      ``Sequential.train_on_batch``
  * torch       nn.Embedding + nn.Conv1d (on the transposed (N, C, T) activations) + max over
                time + nn.Linear, autograd, Adam
  * tensorflow  Keras 3 on TensorFlow, ``model.train_on_batch``, ``jit_compile=False``

Every framework runs in its own worker process per thread count; the parent interleaves the
workers (A B C A B C ...), each turn timing a few steps after warm-up, and reports medians and
ratios. ``--profile`` times fastdl's layers one by one (forward and backward) in this process.

Usage: python bench/bench_conv1d.py [--threads 2] [--rounds 5] [--steps 3]
                                    [--frameworks fastdl torch tensorflow] [--profile]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

V, E, F, K, T, N = 20000, 128, 250, 3, 400, 32
_USER_OMP_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")


def _data(seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V, (N, T)).astype(np.int32)
    y = (rng.random((N, 1)) > 0.5).astype(np.float32)
    return x, y


def _fastdl_model():
    import fastdl
    from fastdl import layers
    from fastdl.models import Sequential
    fastdl.utils.set_random_seed(0)
    model = Sequential([layers.Input((T,), dtype="int32"), layers.Embedding(V, E),
                        layers.Conv1D(F, K, activation="relu"), layers.GlobalMaxPooling1D(),
                        layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=fastdl.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


def _make_step(framework, threads):
    """step() for the framework, or raises ImportError."""
    x, y = _data()
    if framework == "fastdl":
        import fastdl
        fastdl.set_num_threads(threads)
        model = _fastdl_model()
        return lambda: model.train_on_batch(x, y)
    if framework == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        xt, yt = torch.from_numpy(x.astype("int64")), torch.from_numpy(y)
        emb, conv, dense = torch.nn.Embedding(V, E), torch.nn.Conv1d(E, F, K), \
            torch.nn.Linear(F, 1)
        params = list(emb.parameters()) + list(conv.parameters()) + list(dense.parameters())
        opt = torch.optim.Adam(params, 1e-3)
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def step():
            opt.zero_grad()
            h = torch.relu(conv(emb(xt).transpose(1, 2)))     # (N, F, T - K + 1)
            loss = loss_fn(dense(h.amax(dim=2)), yt)
            loss.backward()
            opt.step()
        return step
    if framework == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(V, E),
                                  keras.layers.Conv1D(F, K, activation="relu"),
                                  keras.layers.GlobalMaxPooling1D(),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                      jit_compile=False)
        return lambda: model.train_on_batch(x, y)
    raise ValueError(framework)


def worker(framework, threads):
    """Line protocol on stdin/stdout: 'STEPS' -> JSON list of step times (seconds)."""
    try:
        step = _make_step(framework, threads)
    except ImportError as e:
        print(json.dumps({"unavailable": str(e)}), flush=True)
        return
    for _ in range(2):   # warm-up: first-call costs, allocations, tracing
        step()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)


def _spawn(framework, threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    python_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "python")
    env["PYTHONPATH"] = python_dir + os.pathsep + env.get("PYTHONPATH", "")
    if framework != "fastdl":   # `import fastdl` sets a passive wait policy; peers get the user's
        env.pop("OMP_WAIT_POLICY", None)
        if _USER_OMP_WAIT_POLICY is not None:
            env["OMP_WAIT_POLICY"] = _USER_OMP_WAIT_POLICY
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", framework,
                             str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    first = json.loads(proc.stdout.readline() or '{"unavailable": "worker died"}')
    if "unavailable" in first:
        proc.wait()
        return None, first["unavailable"]
    return proc, None


def _ask(proc, steps):
    proc.stdin.write(f"{steps}\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    return json.loads(line) if line.strip() else None


def profile(threads, steps):
    """fastdl's step split by layer: forward and backward of each, the loss and the optimizer
    (medians over ``steps`` steps, in this process)."""
    import numpy as np
    import fastdl
    fastdl.set_num_threads(threads)
    model = _fastdl_model()
    x, y = _data()
    model.train_on_batch(x, y)
    chain = model.layers
    rows = {}

    def timed(key, fn, *a):
        t0 = time.perf_counter()
        out = fn(*a)
        rows.setdefault(key, []).append(time.perf_counter() - t0)
        return out

    trainable, weights = model._training_state()
    for _ in range(steps):
        h = x
        for layer in chain:
            h = timed(f"{layer.name} forward", layer, h, True)
        loss, dy = timed("loss", model.loss.forward_backward, y, h, None)
        for i, layer in enumerate(reversed(chain)):
            if i == len(chain) - 1:
                layer.input_gradient_needed = False
            dy = timed(f"{layer.name} backward", layer.backward, dy)
        grads = [g for layer in trainable for g in layer.grads]
        timed("optimizer", model.optimizer.apply, grads, weights)
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        rows.setdefault("whole train_on_batch", []).append(time.perf_counter() - t0)
    print(f"| part ({threads} threads) | ms |")
    print("|---|---|")
    for key, ts in rows.items():
        print(f"| {key} | {1e3 * statistics.median(ts):.2f} |")
    del np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", nargs="+", type=int, default=[2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--frameworks", nargs="+", default=["fastdl", "torch", "tensorflow"])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]))
    if args.profile:
        for threads in args.threads:
            profile(threads, args.steps * args.rounds)
        return

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    print(f"# Embedding({V},{E}) + Conv1D({F},{K},relu) + GlobalMaxPooling1D + Dense(1), "
          f"T={T}, batch {N}, training step; median over {args.rounds} interleaved rounds x "
          f"{args.steps} steps, wall clock")
    workers = {}
    for threads in args.threads:
        for fw in args.frameworks:
            proc, why = _spawn(fw, threads)
            if proc is None:
                print(f"# {fw}: not available ({why})")
            else:
                workers[(fw, threads)] = proc
    times = {key: [] for key in workers}
    try:
        for _ in range(args.rounds):
            for key, proc in workers.items():
                got = _ask(proc, args.steps)
                if got is not None:
                    times[key] += got
    finally:
        for proc in workers.values():
            proc.stdin.close()
            proc.wait()
    print("| threads | framework | ms / step | sequences / s | fastdl speed-up |")
    print("|---|---|---|---|---|")
    for threads in args.threads:
        ours = times.get(("fastdl", threads))
        for fw in args.frameworks:
            ts = times.get((fw, threads))
            if not ts:
                continue
            ms = 1e3 * statistics.median(ts)
            ratio = (f"{statistics.median(ts) / statistics.median(ours):.2f}x" if ours else "-")
            print(f"| {threads} | {fw} | {ms:.1f} | {N / ms * 1e3:.0f} | "
                  f"{ratio if fw != 'fastdl' else '1.00x'} |")


if __name__ == "__main__":
    main()
