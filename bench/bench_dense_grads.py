"""A dense layer's weight and bias gradients, dW = x^T @ dy and db = dy.sum(axis=0): fastdl's
``matmul_b_sums`` (the column sums taken as the GEMM packs dy) beside the path it replaced
(``matmul`` then NumPy's sum: a second pass over dy) and PyTorch (``x.T @ dy``, ``dy.sum(0)``).

Shapes: the tutorial MLP and CNN's Dense layers at batch 64, a 512-wide layer at batch 128, and
the MultiHeadAttention encoder's projections (6400 rows = batch 32 x sequence 200). Each dy is
one of several arrays used in turn, so it comes from memory as in a training step, not from
the cache of the previous call. Medians of interleaved calls (the variants alternate, and which
goes first alternates), per call in microseconds, on 1 and 2 threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=python python bench/bench_dense_grads.py
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "python"))
import fastdl  # noqa: E402
from fastdl.ops.core import matmul, matmul_b_sums  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - a bench peer
    torch = None

# (rows k, inputs m, units n)
SHAPES = [(64, 784, 128), (64, 128, 10), (64, 3136, 128), (128, 512, 512), (6400, 128, 384),
          (6400, 128, 128)]
COPIES = 4  # dy arrays used in turn: together larger than the L2 cache for the big shapes


def variants(x, dys):
    out = {
        "fastdl matmul_b_sums": lambda i: matmul_b_sums(x, dys[i], transpose_a=True),
        "fastdl matmul + np.sum": lambda i: (matmul(x, dys[i], transpose_a=True),
                                             dys[i].sum(axis=0)),
    }
    if torch is not None:
        tx, tdys = torch.from_numpy(x), [torch.from_numpy(d) for d in dys]
        out["torch x.T @ dy, dy.sum(0)"] = lambda i: (tx.T @ tdys[i], tdys[i].sum(0))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=40)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("dense weight + bias gradient, median us per call (ratio: the variant / fastdl's "
          "matmul_b_sums)")
    for threads in args.threads:
        fastdl.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        for k, m, n in SHAPES:
            x = rng.standard_normal((k, m)).astype(np.float32)
            dys = [rng.standard_normal((k, n)).astype(np.float32) for _ in range(COPIES)]
            fns = variants(x, dys)
            times = {name: [] for name in fns}
            for name, fn in fns.items():  # warm-up
                fn(0)
            order = list(fns)
            for r in range(args.reps):
                for name in (order if r % 2 == 0 else order[::-1]):
                    t = time.perf_counter()
                    fns[name](r % COPIES)
                    times[name].append(time.perf_counter() - t)
            base = statistics.median(times["fastdl matmul_b_sums"])
            cells = "   ".join(f"{name} {statistics.median(v) * 1e6:8.1f}"
                               f" ({statistics.median(v) / base:.2f})" for name, v in times.items())
            print(f"  {threads} thr  x^T dy {m:>4} x {k:>4} x {n:>3}   {cells}")


if __name__ == "__main__":
    main()
