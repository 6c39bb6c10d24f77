"""The tutorial CNN end to end: training img/s (batch 64) and inference img/s (batch 256),
fastdl beside TensorFlow/Keras and PyTorch when installed, 1 and 2 threads, each framework in its
own process per thread count (TensorFlow fixes its thread pools at start-up), interleaved rounds,
medians, ratio columns. Run: python bench/bench_cnn_model.py [--rounds 3] [--steps 20]

Memory is the whole process's peak resident set (VmHWM) after the training and inference steps:
the framework's own libraries and start-up allocations included, not the training working set
alone.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, os, sys, time
import numpy as np
framework, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.random((64 * 4, 32, 32, 3), dtype=np.float32)
y = rng.integers(0, 10, 64 * 4)
xi = rng.random((256, 32, 32, 3), dtype=np.float32)

def timeit(step, n):
    # median of single steps: a shared VM stalls a process now and then for 50-150 ms, which
    # would dominate a mean over a few steps
    for _ in range(3):
        step(0)
    times = []
    for i in range(n):
        t = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2]

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024

if framework in ("fastdl", "tensorflow"):
    if framework == "fastdl":
        import fastdl as tf
        tf.set_num_threads(threads)
    else:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    L = tf.keras.layers
    model = tf.keras.Sequential([
        L.Conv2D(32, (3, 3), activation="relu", input_shape=(32, 32, 3)), L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
        L.Conv2D(128, (3, 3), activation="relu"), L.Flatten(),
        L.Dense(128, activation="relu"), L.Dense(10)])
    model.compile(optimizer="adam",
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    def train(i):
        j = i % 4
        model.train_on_batch(x[j * 64:(j + 1) * 64], y[j * 64:(j + 1) * 64])
    def infer(i):
        model.predict_on_batch(xi)
else:
    import torch
    torch.set_num_threads(threads)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(64, 128, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(2048, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()); ty = torch.from_numpy(y)
    txi = torch.from_numpy(xi.transpose(0, 3, 1, 2).copy())
    def train(i):
        j = i % 4
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(tx[j * 64:(j + 1) * 64]), ty[j * 64:(j + 1) * 64])
        loss.backward(); opt.step()
    def infer(i):
        with torch.no_grad():
            model(txi)
t_train = timeit(train, steps)
t_infer = timeit(infer, max(5, steps // 2))
print(json.dumps({"train": 64 / t_train, "infer": 256 / t_infer, "peak_mb": rss_mb()}))
"""


def available(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def run(framework, threads, steps):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", WORKER, framework, str(threads), str(steps)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    frameworks = ["fastdl"] + [f for f in ("tensorflow", "torch") if available(f)]
    print(f"tutorial CNN (356,810 parameters), frameworks: {', '.join(frameworks)}; "
          f"{os.cpu_count()} CPUs; medians of {args.rounds} interleaved rounds")
    print(f"{'threads':>7} {'workload':<22}" + "".join(f"{f:>12}" for f in frameworks) +
          "".join(f"{'fastdl/' + f:>18}" for f in frameworks[1:]))
    for threads in [int(t) for t in args.threads.split(",")]:
        results = {f: [] for f in frameworks}
        for _ in range(args.rounds):
            for f in frameworks:
                results[f].append(run(f, threads, args.steps))
        for key, label in (("train", "train img/s (b=64)"), ("infer", "infer img/s (b=256)"),
                           ("peak_mb", "process peak RSS MB")):
            med = {f: statistics.median(r[key] for r in results[f]) for f in frameworks}
            ratios = "".join(f"{med['fastdl'] / med[f]:>17.2f}x" for f in frameworks[1:])
            print(f"{threads:>7} {label:<22}" + "".join(f"{med[f]:>12.0f}" for f in frameworks)
                  + ratios)


if __name__ == "__main__":
    main()
