"""Where one training step's time goes: per-layer forward and backward, the loss and the
optimizer update, for the tutorial CNN (batch 64) and the Embedding + RNN models (T = 200,
batch 64). Each part is timed around its own call inside real `train_on_batch` steps, medians
over the steps; the last column is the share of the whole step.

Run: python bench/profile_step.py [--model cnn|lstm|gru|simplernn] [--threads 1] [--steps 30]
"""
import argparse
import collections
import statistics
import time

import numpy as np

import fastdl
from fastdl import layers as L


def build(kind):
    rng = np.random.default_rng(0)
    if kind == "cnn":
        model = fastdl.Sequential([
            L.Input((32, 32, 3)),
            L.Conv2D(32, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
            L.Conv2D(128, (3, 3), activation="relu"), L.Flatten(),
            L.Dense(128, activation="relu"), L.Dense(10)])
        model.compile("adam", fastdl.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = rng.random((64, 32, 32, 3), dtype=np.float32)
        y = rng.integers(0, 10, 64)
    else:
        cell = {"lstm": L.LSTM, "gru": L.GRU, "simplernn": L.SimpleRNN}[kind]
        model = fastdl.Sequential([L.Input((200,)), L.Embedding(10000, 32), cell(64), L.Dense(1)])
        model.compile("adam", fastdl.losses.BinaryCrossentropy(from_logits=True))
        x = rng.integers(0, 10000, (64, 200))
        y = rng.integers(0, 2, 64).astype(np.float32)
    return model, x, y


def instrument(model, times, clock):
    """Wrap each layer's call/backward, the loss and the optimizer so each records its time."""
    def timed(label, fn):
        def wrapper(*args, **kwargs):
            t = clock()
            out = fn(*args, **kwargs)
            times[label].append(clock() - t)
            return out
        return wrapper

    for i, layer in enumerate(model.layers):
        name = f"{i}:{type(layer).__name__}"
        layer.call = timed(f"{name} forward", layer.call)
        layer.backward = timed(f"{name} backward", layer.backward)
    model.loss.forward_backward = timed("loss", model.loss.forward_backward)
    model.optimizer.apply = timed("optimizer", model.optimizer.apply)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="cnn", choices=["cnn", "lstm", "gru", "simplernn"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--clock", choices=["thread", "wall"], default=None,
                        help="thread CPU time (default for 1 thread: other processes on the "
                             "machine disturb it little) or wall time (default for more)")
    args = parser.parse_args()
    clock_name = args.clock or ("thread" if args.threads == 1 else "wall")
    clock = time.thread_time if clock_name == "thread" else time.perf_counter
    fastdl.set_num_threads(args.threads)
    model, x, y = build(args.model)
    for _ in range(3):
        model.train_on_batch(x, y)
    times = collections.defaultdict(list)
    instrument(model, times, clock)
    steps = []
    for _ in range(args.steps):
        t = clock()
        model.train_on_batch(x, y)
        steps.append(clock() - t)
    step = statistics.median(steps)
    print(f"{args.model}, batch {len(x)}, {args.threads} thread(s): step {step * 1e3:.2f} ms "
          f"({len(x) / step:.0f} samples/s), median of {args.steps}, {clock_name} clock")
    print(f"{'part':<28}{'ms':>9}{'share':>8}")
    accounted = 0.0
    for label, values in times.items():
        ms = statistics.median(values) * 1e3
        accounted += ms
        print(f"{label:<28}{ms:>9.3f}{ms / (step * 1e3):>7.0%}")
    print(f"{'rest (Python, metrics)':<28}{step * 1e3 - accounted:>9.3f}"
          f"{1 - accounted / (step * 1e3):>7.0%}")


if __name__ == "__main__":
    main()
