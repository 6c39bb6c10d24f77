"""Benchmark of the tutorial CNN's conv and pooling kernels: fastdl vs NumPy vs PyTorch.

Tutorial CNN (batch 64): 32x32x3 -> Conv2D(32, 3x3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3x3,
relu) -> MaxPooling2D(2) -> Conv2D(128, 3x3, relu) (-> Flatten -> Dense 128 -> Dense 10).

For each conv / pool layer, the same work timed for each library:
  forward     inference: the forward pass alone (PyTorch under no_grad)
  fwd+bwd     a training step's share: the forward pass that keeps what the backward needs
              (fastdl: the output and the pooling argmax; NumPy: the im2col matrix; PyTorch: the
              autograd graph), then every gradient (dx, dkernel, dbias)
of
  * fastdl      fastdl.ops.core.conv / fastdl.ops.core.pool (ReLU fused into the conv)
  * numpy       a vectorised NumPy reference: im2col with sliding_window_view + matmul,
                col2im by KH*KW strided slice adds; reshape-max pooling (the usual hand-written
                NumPy CNN)
  * torch       torch.nn.functional.conv2d / max_pool2d on NCHW with autograd (when importable)
at 1 and 2 threads; rounds interleaved (A B C A B C ...), medians, ratios (see bench()).
PyTorch cannot time its backward without the forward that records the graph, so no library's
backward is timed alone: each fwd+bwd row is both passes, from the inputs.

Usage: python bench/bench_cnn.py [--reps 7] [--batch 64] [--threads 1 2]
For NumPy at its best kernel, run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset.
"""
import argparse
import os
import platform
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import fastdl
from fastdl.ops.core import conv, pool

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is optional
    torch = None

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_limits = threadpool_info = None


# ------------------------------------------------------------------ NumPy reference
def np_conv_forward(x, k, b):
    kh, kw, c, f = k.shape
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))          # (N, OH, OW, C, KH, KW)
    n, oh, ow = win.shape[:3]
    cols = win.reshape(n * oh * ow, c * kh * kw)                 # copies: the im2col matrix
    wmat = k.transpose(2, 0, 1, 3).reshape(c * kh * kw, f)
    y = cols @ wmat + b
    np.maximum(y, 0, out=y)
    return y.reshape(n, oh, ow, f), cols


def np_conv_backward(dy, y, cols, x, k):
    kh, kw, c, f = k.shape
    n, oh, ow, _ = dy.shape
    g = (dy * (y > 0)).reshape(-1, f)
    db = g.sum(axis=0)
    dk = (cols.T @ g).reshape(c, kh, kw, f).transpose(1, 2, 0, 3)
    dcols = (g @ k.transpose(2, 0, 1, 3).reshape(c * kh * kw, f).T).reshape(n, oh, ow, c, kh, kw)
    dx = np.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + oh, j:j + ow, :] += dcols[..., i, j]
    return dx, dk, db


def np_pool_forward(x):
    n, h, w, c = x.shape
    oh, ow = h // 2, w // 2
    xc = x[:, :2 * oh, :2 * ow]
    return xc.reshape(n, oh, 2, ow, 2, c).max(axis=(2, 4))


def np_pool_backward(dy, y, x):
    n, h, w, c = x.shape
    oh, ow = y.shape[1:3]
    up = y.repeat(2, axis=1).repeat(2, axis=2)
    mask = x[:, :2 * oh, :2 * ow] == up
    dx = np.zeros_like(x)
    dx[:, :2 * oh, :2 * ow] = mask * dy.repeat(2, axis=1).repeat(2, axis=2)
    return dx


# ------------------------------------------------------------------ the three implementations
def make_layers(batch, rng):
    shapes = [("conv1 3x3x3->32", "conv", (batch, 32, 32, 3), 32),
              ("pool1 2x2", "pool", (batch, 30, 30, 32), None),
              ("conv2 3x3x32->64", "conv", (batch, 15, 15, 32), 64),
              ("pool2 2x2", "pool", (batch, 13, 13, 64), None),
              ("conv3 3x3x64->128", "conv", (batch, 6, 6, 64), 128)]
    layers = []
    for name, kind, xs, f in shapes:
        x = rng.standard_normal(xs).astype(np.float32)
        if kind == "conv":
            k = (rng.standard_normal((3, 3, xs[3], f)) * 0.1).astype(np.float32)
            b = (rng.standard_normal(f) * 0.1).astype(np.float32)
        else:
            k = b = None
        layers.append(dict(name=name, kind=kind, x=x, k=k, b=b))
    return layers


# Each *_pair returns (forward, fwd+bwd); dy is all ones, made once outside the timed calls.
def fastdl_pair(L):
    x, k, b = L["x"], L["k"], L["b"]
    if L["kind"] == "conv":
        dy = np.ones_like(conv.conv2d(x, k, b, activation="relu"))

        def fwd():
            return conv.conv2d(x, k, b, activation="relu")

        def train():
            y = conv.conv2d(x, k, b, activation="relu")
            return conv.conv2d_backward(dy, x, k, relu_output=y)
    else:
        dy = np.ones_like(pool.max_pool2d(x, 2)[0])

        def fwd():
            return pool.max_pool2d(x, 2)

        def train():
            _, argmax = pool.max_pool2d(x, 2)
            return pool.max_pool2d_backward(dy, argmax, x.shape, 2)
    return fwd, train


def numpy_pair(L):
    x, k, b = L["x"], L["k"], L["b"]
    if L["kind"] == "conv":
        dy = np.ones_like(np_conv_forward(x, k, b)[0])

        def train():
            y, cols = np_conv_forward(x, k, b)
            return np_conv_backward(dy, y, cols, x, k)
        return (lambda: np_conv_forward(x, k, b)), train
    dy = np.ones_like(np_pool_forward(x))

    def train():
        return np_pool_backward(dy, np_pool_forward(x), x)
    return (lambda: np_pool_forward(x)), train


def torch_pair(L):
    xt = torch.from_numpy(L["x"].transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    if L["kind"] == "conv":
        kt = torch.from_numpy(L["k"].transpose(3, 2, 0, 1).copy()).requires_grad_(True)
        bt = torch.from_numpy(L["b"]).requires_grad_(True)
        f = lambda: F.relu(F.conv2d(xt, kt, bt))  # noqa: E731
    else:
        f = lambda: F.max_pool2d(xt, 2)  # noqa: E731

    with torch.no_grad():
        dy = torch.ones_like(f())

    def fwd():
        with torch.no_grad():
            return f()

    def train():  # autograd: the forward that records the graph, then the backward
        f().backward(dy)

    return fwd, train


def bench(fns, reps, inner=3, settle=0.2, stat=np.median):
    """Interleaved rounds (A B C A B C ...): returns the median (or `stat`) seconds of each.

    Each round of one function sleeps `settle` seconds first, so the previous library's idle
    threads (OpenBLAS's spin-wait for ~0.1 s after their last call, PyTorch's libgomp for
    milliseconds) have stopped competing for the cores, makes two untimed calls (the first
    after the pause runs cold), then times `inner` calls in a row (back to back, as a training
    loop makes them).
    """
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            time.sleep(settle)
            fn()
            fn()
            for _ in range(inner):
                t0 = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t0)
    return [float(stat(t)) for t in times]


def set_threads(n):
    fastdl.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7, help="interleaved rounds (3 timed calls each)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="statistic of the timed calls (min resists a busy, shared machine)")
    args = ap.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"fastdl {fastdl.__version__} {fastdl._core.build_info()['simd']}; numpy {np.__version__}"
          + (f"; torch {torch.__version__}" if torch is not None else "; torch not installed"))
    if threadpool_info is not None:
        for info in threadpool_info():
            if info.get("user_api") == "blas":
                print(f"numpy BLAS: {info.get('internal_api')} {info.get('version')} "
                      f"kernel {info.get('architecture')}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]}")
    layers = make_layers(args.batch, np.random.default_rng(0))
    header = f"{'layer':<20} {'pass':<8} {'thr':>3} {'fastdl ms':>10} {'numpy ms':>9} {'np/fd':>6}"
    if torch is not None:
        header += f" {'torch ms':>9} {'torch/fd':>8}"
    print(f"\nbatch {args.batch}, {args.stat} of {args.reps} interleaved rounds x 3 calls "
          "(ratio > 1: fastdl faster)")
    print(header)
    print("-" * len(header))
    totals = {}
    for threads in args.threads:
        set_threads(threads)
        limiter = threadpool_limits(limits=threads) if threadpool_limits else None
        try:
            for L in layers:
                impls = [fastdl_pair(L), numpy_pair(L)] + ([torch_pair(L)] if torch else [])
                for p, name in ((0, "forward"), (1, "fwd+bwd")):
                    t = bench([impl[p] for impl in impls], args.reps,
                              stat=np.min if args.stat == "min" else np.median)
                    tot = totals.setdefault((threads, name), [0.0] * len(t))
                    for i, v in enumerate(t):
                        tot[i] += v
                    line = (f"{L['name']:<20} {name:<8} {threads:>3} {t[0]*1e3:>10.3f} "
                            f"{t[1]*1e3:>9.3f} {t[1]/t[0]:>6.1f}")
                    if torch is not None:
                        line += f" {t[2]*1e3:>9.3f} {t[2]/t[0]:>8.2f}"
                    print(line, flush=True)
        finally:
            if limiter is not None:
                limiter.unregister()
    print("-" * len(header))
    for (threads, name), t in totals.items():
        line = f"{'all conv+pool':<20} {name:<8} {threads:>3} {t[0]*1e3:>10.3f} {t[1]*1e3:>9.3f} {t[1]/t[0]:>6.1f}"
        if torch is not None:
            line += f" {t[2]*1e3:>9.3f} {t[2]/t[0]:>8.2f}"
        print(line)


if __name__ == "__main__":
    main()
