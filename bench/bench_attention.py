"""Benchmark of a 2-layer MultiHeadAttention encoder's training step: fastdl vs PyTorch vs Keras
on TensorFlow.

Model: x (batch 32, sequence 200, d_model 128) -> two residual self-attention blocks
``h = h + MultiHeadAttention(4 heads, key_dim 32)(h, h)`` -> mean over the sequence ->
Dense(1), mean squared error, Adam(1e-3). One step = forward, loss, backward, update, in
sequences per second:

  * fastdl      a functional ``Model``, ``train_on_batch``
  * torch       ``nn.MultiheadAttention(batch_first=True)`` blocks, autograd, Adam
  * tensorflow  the same Keras model on TensorFlow, ``train_on_batch`` (``jit_compile=False``)

Each framework runs in its own worker process (TensorFlow fixes its thread pools once per
process); the parent interleaves the workers (A B C A B C ...), each turn timing a few steps
after warm-up, and prints medians and ratios. Each turn starts after a short pause, so that the
worker threads the previous framework left spinning (OpenMP's and TensorFlow's pools spin for a
while after their last task) have gone to sleep and do not take the cores from the next one.

Usage: python bench/bench_attention.py [--threads 2] [--rounds 5] [--steps 3] [--pause 0.3]
                                       [--frameworks fastdl torch tensorflow]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

B, T, D, H = 32, 200, 128, 4
_USER_OMP_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")


def _data():
    import numpy as np
    rng = np.random.default_rng(0)
    return (rng.standard_normal((B, T, D)).astype(np.float32),
            rng.standard_normal((B, 1)).astype(np.float32))


def _keras_model(keras):
    inputs = keras.Input((T, D))
    h = inputs
    for _ in range(2):
        h = h + keras.layers.MultiHeadAttention(H, D // H)(h, h)
    out = keras.layers.Dense(1)(keras.ops.mean(h, axis=1))
    model = keras.Model(inputs, out)
    return model


def fastdl_step(threads):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "python"))
    import fastdl
    from fastdl import keras
    fastdl.set_num_threads(threads)
    model = _keras_model(keras)
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    x, y = _data()
    return lambda: model.train_on_batch(x, y)


def tensorflow_step(threads):
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    model = _keras_model(keras)
    model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=False)
    x, y = _data()
    return lambda: model.train_on_batch(x, y)


def torch_step(threads):
    import torch
    torch.set_num_threads(threads)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList(
                torch.nn.MultiheadAttention(D, H, batch_first=True) for _ in range(2))
            self.out = torch.nn.Linear(D, 1)

        def forward(self, h):
            for block in self.blocks:
                h = h + block(h, h, h, need_weights=False)[0]
            return self.out(h.mean(dim=1))

    model = Encoder()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = (torch.from_numpy(a) for a in _data())

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    return step


STEPS = {"fastdl": fastdl_step, "torch": torch_step, "tensorflow": tensorflow_step}


def worker(name, threads, steps):
    step = STEPS[name](threads)
    for _ in range(2):   # warm-up (graph tracing, allocations)
        step()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:   # one line per turn: time `steps` steps
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sys.stdout.write(json.dumps((time.perf_counter() - start) / steps) + "\n")
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--frameworks", nargs="+", default=list(STEPS), choices=list(STEPS))
    parser.add_argument("--pause", type=float, default=0.3,
                        help="seconds of idle before each turn (see the module docstring)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.threads, args.steps)
    env = dict(os.environ)
    if _USER_OMP_WAIT_POLICY is None:
        env.pop("OMP_WAIT_POLICY", None)
    env.setdefault("OMP_NUM_THREADS", str(args.threads))
    procs = {}
    for name in args.frameworks:
        p = subprocess.Popen([sys.executable, __file__, "--worker", name, "--threads",
                              str(args.threads), "--steps", str(args.steps)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            p.kill()
            print(f"{name}: not available (the worker failed to start)")
            continue
        procs[name] = p
    times = {name: [] for name in procs}
    for _ in range(args.rounds):
        for name, p in procs.items():
            time.sleep(args.pause)
            p.stdin.write("go\n")
            p.stdin.flush()
            times[name].append(float(p.stdout.readline()))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(f"2-layer MultiHeadAttention encoder training step: batch {B}, sequence {T}, "
          f"d_model {D}, {H} heads, {args.threads} threads, median of {args.rounds} rounds "
          f"x {args.steps} steps")
    rate = {name: B / statistics.median(ts) for name, ts in times.items()}
    for name in procs:
        line = f"  {name:<11} {statistics.median(times[name]) * 1e3:8.1f} ms/step " \
               f"{rate[name]:8.1f} seq/s"
        if name != "fastdl" and "fastdl" in rate:
            line += f"   fastdl/{name} = {rate['fastdl'] / rate[name]:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
