"""float32 GEMM: fastdl.ops.core.matmul vs NumPy (OpenBLAS) and PyTorch when importable.

Shapes: square n = 64..2048, the im2col products of the tutorial CNN (batch 64) with the two
transposed products of their backward pass (dW = cols^T @ dY: transpose_a; dcols = dY @ W^T:
transpose_b), and the small products of Dense layers and RNN steps. Each shape runs on 1 and 2
threads (fastdl.set_num_threads, threadpoolctl for NumPy, torch.set_num_threads); fastdl and the
peers are timed interleaved after a warm-up (A B C, B C A, C A B, ...: each repetition rotates
who goes first), and the table shows medians of the per-call wall time as GFLOP/s (2mnk / t).
With several threads, each library's block of calls starts after a pause, so that the worker
threads another library left spinning (OpenBLAS's spin for up to ~0.1 s) have gone to sleep
and do not steal the cores from the next one.

Run NumPy at its best kernel: some machines pin OpenBLAS to its AVX2 kernel, so unset that in the
benchmark command only (the BLAS kernel in use is printed at the top):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=python python bench/bench_gemm.py [--quick]

On a shared, busy machine add --clock thread: 1-thread runs are then timed by the calling thread's
CPU time, which other processes disturb far less than wall time (multi-thread runs stay on wall
time, and are only meaningful when the cores are otherwise idle: see the load average printed).
"""
import argparse
import faulthandler
import os
import statistics
import sys
import time

import numpy as np

import fastdl
from fastdl import _core
from fastdl.ops import core as ops

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is a bench dependency
    threadpool_info = threadpool_limits = None

try:
    import torch
except ImportError:
    torch = None

# (label, m, k, n, transpose_a, transpose_b): op(a) is (m, k), op(b) is (k, n)
SQUARE = [(f"{n}^3", n, n, n, False, False) for n in (64, 128, 256, 512, 1024, 2048)]
SKINNY = [  # tutorial CNN, batch 64: cols (N*OH*OW, KH*KW*C) @ W (KH*KW*C, F)
    ("conv1 fwd   cols @ W", 57600, 27, 32, False, False),
    ("conv1 dW    cols^T @ dY (ta)", 27, 57600, 32, True, False),
    ("conv1 dcols dY @ W^T (tb)", 57600, 32, 27, False, True),
    ("conv2 fwd   cols @ W", 10816, 288, 64, False, False),
    ("conv2 dW    cols^T @ dY (ta)", 288, 10816, 64, True, False),
    ("conv2 dcols dY @ W^T (tb)", 10816, 64, 288, False, True),
    ("conv3 fwd   cols @ W", 1024, 576, 128, False, False),
    ("conv3 dW    cols^T @ dY (ta)", 576, 1024, 128, True, False),
    ("conv3 dcols dY @ W^T (tb)", 1024, 128, 576, False, True),
    # bench_attention.py's fused query/key/value projection (B 32, T 200, d_model 128)
    ("mha qkv     x @ W", 6400, 128, 384, False, False),
    ("mha dW      x^T @ dY (ta)", 128, 6400, 384, True, False),
]
SMALL = [
    ("dense fwd   x @ W", 64, 128, 10, False, False),
    ("dense dW    x^T @ dy (ta)", 128, 64, 10, True, False),
    ("rnn step    h @ U", 64, 64, 256, False, False),
]
QUICK = {"256^3", "1024^3", "conv1 fwd   cols @ W", "conv1 dW    cols^T @ dY (ta)",
         "conv2 fwd   cols @ W", "conv3 dcols dY @ W^T (tb)", "mha dW      x^T @ dY (ta)",
         "dense fwd   x @ W", "rnn step    h @ U"}


def cpu_description():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()} logical CPUs"
    except OSError:
        pass
    return f"{os.cpu_count()} logical CPUs"


def blas_description():
    if threadpool_info is None:
        return "threadpoolctl not installed"
    rows = []
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            rows.append(f"{info.get('internal_api')} {info.get('version')} "
                        f"architecture={info.get('architecture')} "
                        f"threading={info.get('threading_layer')} ({os.path.basename(info['filepath'])})")
    return "; ".join(rows) or "no BLAS found by threadpoolctl"


def operands(m, k, n, ta, tb, rng):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, b


def make_runners(a, b, ta, tb):
    runners = {}
    runners["fastdl"] = lambda: ops.matmul(a, b, transpose_a=ta, transpose_b=tb)
    an, bn = (a.T if ta else a), (b.T if tb else b)  # views: BLAS gets the transpose flags
    runners["numpy"] = lambda: np.matmul(an, bn)
    if torch is not None:
        at, bt = torch.from_numpy(a), torch.from_numpy(b)
        at, bt = (at.T if ta else at), (bt.T if tb else bt)
        runners["torch"] = lambda: torch.matmul(at, bt)
    return runners


def calibrate(fn, target_s):
    """Number of calls that takes about target_s."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, int(target_s / once))


def time_block(fn, calls, clock=time.perf_counter):
    t0 = clock()
    for _ in range(calls):
        fn()
    return (clock() - t0) / calls


def set_threads(t):
    fastdl.set_num_threads(t)
    if torch is not None:
        torch.set_num_threads(t)


def bench_shape(shape, threads, reps, target_s, pause_s, clock, rng):
    label, m, k, n, ta, tb = shape
    a, b = operands(m, k, n, ta, tb, rng)
    runners = make_runners(a, b, ta, tb)
    set_threads(threads)
    limiter = threadpool_limits(limits=threads, user_api="blas") if threadpool_limits else None
    try:
        calls = {}
        for name, fn in runners.items():  # warm-up (buffers, thread pools), then calibrate
            for _ in range(3):
                fn()
            calls[name] = calibrate(fn, target_s)
        times = {name: [] for name in runners}
        names = list(runners)
        for rep in range(reps):  # interleaved, rotating the order: A B C, B C A, C A B, ...
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                if pause_s:
                    time.sleep(pause_s)
                times[name].append(time_block(runners[name], calls[name], clock))
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    flops = 2.0 * m * n * k
    return {name: flops / statistics.median(ts) / 1e9 for name, ts in times.items()}


def fmt_ratio(x, y):
    return f"{x / y:6.2f}" if (x and y) else "     -"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes and repetitions")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions")
    parser.add_argument("--only", default=None, help="run shapes whose label contains this text")
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of pause before each timed block with several threads")
    parser.add_argument("--clock", choices=["wall", "thread"], default="wall",
                        help="'thread' times 1-thread runs by the CPU time of the calling thread "
                             "(every library computes on it then), which a busy shared machine "
                             "disturbs far less than wall time; runs with more threads always "
                             "use wall time")
    args = parser.parse_args(argv)
    faulthandler.enable()

    shapes = SQUARE + SKINNY + SMALL
    if args.quick:
        shapes = [s for s in shapes if s[0] in QUICK]
    if args.only:
        shapes = [s for s in shapes if args.only in s[0]]
    reps = args.reps or (3 if args.quick else 7)
    target_s = 0.05 if args.quick else 0.15

    print(f"CPU: {cpu_description()}")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch is not None else 'not installed'}")
    print(f"NumPy BLAS: {blas_description()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"WARNING: {var}={os.environ[var]} is set: NumPy may not run its best kernel")
    print(f"fastdl build_info: {dict(_core.build_info())}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    clock_name = "thread CPU time for 1 thread, wall time otherwise" if args.clock == "thread" else "wall time"
    print(f"float32, median of {reps} interleaved repetitions, GFLOP/s (2mnk / {clock_name}); "
          f"{os.cpu_count()} CPUs, load average at start {load:.2f}\n")

    header = (f"| {'product':<30} | {'m,k,n':>16} | thr | fastdl | numpy  |"
              f" torch  | fd/np  | fd/torch |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    rng = np.random.default_rng(0)
    original = fastdl.get_num_threads()
    try:
        for threads in args.threads:
            for shape in shapes:
                clock = time.thread_time if (args.clock == "thread" and threads == 1) else time.perf_counter
                r = bench_shape(shape, threads, reps, target_s, args.pause if threads > 1 else 0.0,
                                clock, rng)
                label, m, k, n = shape[:4]
                fd, nump, tor = r["fastdl"], r["numpy"], r.get("torch")
                tor_s = f"{tor:6.1f}" if tor else "     -"
                print(f"| {label:<30} | {f'{m},{k},{n}':>16} | {threads:>3} | {fd:6.1f} | {nump:6.1f} |"
                      f" {tor_s} | {fmt_ratio(fd, nump)} | {fmt_ratio(fd, tor):>8} |", flush=True)
    finally:
        fastdl.set_num_threads(original)


if __name__ == "__main__":
    main()
