"""DP-SGD cost: a private training step of the tutorial CNN (bench/bench_cnn_model.py's model,
32x32x3 inputs, batch 64) against a non-private step, fastdl beside Opacus on PyTorch when
installed; and the peak memory of a private step of Embedding(10000, 100) -> LSTM(100) ->
Dense(1) (batch 100, sequences of 200) against a non-private one.

Each measurement runs in its own process. The private fastdl step is
``make_private(model, l2_norm_clip=1, noise_multiplier=1, sampling="shuffle")`` (fixed-size
batches, so that both steps see the same batch size; Poisson sampling costs the same per
example). Opacus runs ``PrivacyEngine.make_private(..., poisson_sampling=False)``. Step times
are medians of single steps of one epoch (8 steps) per round; memory is the rise of the
process's peak resident set (VmHWM) over its value before training.

``--baseline DIR`` also times the private CNN step of another checkout's ``python/`` folder
(e.g. the code before a change) in the same interleaved rounds, against the same non-private
step.

Run: python bench/bench_privacy.py [--rounds 3] [--threads 1] [--baseline DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time
import numpy as np
what, private, threads = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])

def hwm_mb(key="VmHWM"):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key)) / 1024

class Timer:
    def __init__(self): self.times = []
    def on_train_batch_begin(self, *a): self.t = time.perf_counter()
    def on_train_batch_end(self, *a): self.times.append(time.perf_counter() - self.t)

if what in ("cnn", "lstm"):
    import fastdl
    fastdl.set_num_threads(threads)
    from fastdl import callbacks
    from fastdl.keras import layers as L, models
    from fastdl.privacy import make_private
    rng = np.random.default_rng(0)
    if what == "cnn":
        batch, n = 64, 64 * 8
        x = rng.random((n, 32, 32, 3), dtype=np.float32); y = rng.integers(0, 10, n)
        model = models.Sequential([L.Input((32, 32, 3)),
            L.Conv2D(32, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
            L.Conv2D(128, (3, 3), activation="relu"), L.Flatten(),
            L.Dense(128, activation="relu"), L.Dense(10)])
        model.compile(optimizer="adam",
                      loss=fastdl.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        batch, n = 100, 100 * 2
        x = rng.integers(1, 10000, (n, 200)); y = rng.integers(0, 2, n).astype(np.float32)
        model = models.Sequential([L.Input((200,), dtype="int32"), L.Embedding(10000, 100),
                                   L.LSTM(100), L.Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy")
    if private:
        make_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, sampling="shuffle",
                     max_physical_batch_size=batch)
    model.predict(x[:2], verbose=0)
    before = hwm_mb("VmRSS")
    timer = Timer()
    cb = callbacks.LambdaCallback(on_train_batch_begin=timer.on_train_batch_begin,
                                  on_train_batch_end=timer.on_train_batch_end)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    print(json.dumps({"step_ms": 1e3 * sorted(timer.times)[len(timer.times) // 2],
                      "mem_mb": hwm_mb() - before}))
else:   # opacus
    import torch, warnings
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    from torch import nn
    torch.manual_seed(0)
    batch, n = 64, 64 * 8
    x = torch.rand(n, 3, 32, 32); y = torch.randint(0, 10, (n,))
    model = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(128 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters())
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)
    if private:
        from opacus import PrivacyEngine
        model, opt, loader = PrivacyEngine().make_private(
            module=model, optimizer=opt, data_loader=loader, noise_multiplier=1.0,
            max_grad_norm=1.0, poisson_sampling=False)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for xb, yb in loader:
        t = time.perf_counter()
        opt.zero_grad(); loss_fn(model(xb), yb).backward(); opt.step()
        times.append(time.perf_counter() - t)
    print(json.dumps({"step_ms": 1e3 * sorted(times)[len(times) // 2], "mem_mb": 0.0}))
"""


def run(what, private, threads, pythonpath=None):
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    out = subprocess.run([sys.executable, "-c", WORKER, what, str(int(private)), str(threads)],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{what} private={private} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pair(what, threads, rounds, baseline=None):
    """Medians over interleaved rounds (non-private, then private, then the baseline's private
    step if given, each round): the machine's load changes between rounds, and the ratio of
    each round's pair is the steadier figure."""
    runs = [(run(what, False, threads), run(what, True, threads))
            + ((run(what, True, threads, baseline),) if baseline else ()) for _ in range(rounds)]
    med = (lambda key, i: statistics.median(r[i][key] for r in runs))
    ratio = (lambda key, i=1: statistics.median(r[i][key] / max(r[0][key], 1e-9) for r in runs))
    return med, ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline", default=None,
                        help="a python/ folder whose private CNN step is timed alongside")
    args = parser.parse_args()
    try:
        import opacus  # noqa: F401
        cases = [("cnn", "tutorial CNN, batch 64 (fastdl)"),
                 ("opacus", "tutorial CNN, batch 64 (Opacus)")]
    except ImportError:
        cases = [("cnn", "tutorial CNN, batch 64 (fastdl)")]
        print("opacus is not installed: fastdl only")
    print(f"{args.threads} thread(s), medians of {args.rounds} interleaved rounds; ratio: the "
          "median of the rounds' ratios")
    print(f"{'step time':40s} {'non-private':>12s} {'DP-SGD':>10s} {'ratio':>7s}")
    for what, name in cases + [("lstm", "Embedding(10000,100)+LSTM(100), batch 100")]:
        baseline = args.baseline if what == "cnn" else None
        med, ratio = pair(what, args.threads, args.rounds, baseline)
        print(f"{name:40s} {med('step_ms', 0):9.1f} ms {med('step_ms', 1):7.1f} ms "
              f"{ratio('step_ms'):6.2f}x")
        if baseline:
            print(f"{'  the same, baseline ' + baseline:40s} {'':12s} {med('step_ms', 2):7.1f} ms "
                  f"{ratio('step_ms', 2):6.2f}x")
        if what == "lstm":
            print(f"{'  its peak memory rise':40s} {med('mem_mb', 0):9.1f} MB "
                  f"{med('mem_mb', 1):7.1f} MB {ratio('mem_mb'):6.2f}x")


if __name__ == "__main__":
    main()
