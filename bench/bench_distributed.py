"""Data-parallel training speed: the tutorial CNN on 2 MPI ranks x 1 thread against 1 process x
2 threads on one machine, the allreduce's share of a step, and the ring-allreduce projection.

Tutorial CNN: 32x32x3 -> Conv2D(32, 3x3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3x3, relu) ->
MaxPooling2D(2) -> Conv2D(128, 3x3, relu) -> Flatten -> Dense(128, relu) -> Dense(10); Adam,
sparse categorical cross-entropy from logits, random images (the speed does not depend on them).

* single: ``python bench_distributed.py --worker single`` with 2 threads, batch 2B.
* ranks:  ``mpiexec -n 2 python bench_distributed.py --worker ranks`` with 1 thread per rank,
  batch B per rank (the same global batch 2B, the same samples per epoch).
Rounds alternate (single, ranks, single, ranks, ...); each round times ``--epochs`` epochs after
a warm-up epoch and reports samples per second; the table shows medians. The ranks' run also
times every step's allreduce (wall time inside ``MPI_Allreduce``, which includes waiting for
the slower rank) and, afterwards, Allreduce alone on 8 bytes and on the gradient's size: the
latency ``alpha`` and bandwidth ``beta`` of this machine's shared-memory transport.

Projection (printed with its assumptions): a ring allreduce of M bytes on p ranks costs
``2 (p - 1) alpha + 2 (p - 1) / p * M / beta``; with B samples per rank the compute per step
stays that of one rank (weak scaling) and the allreduce is not overlapped with compute, so the
parallel efficiency is ``t_compute / (t_compute + t_allreduce(p))``. It is printed for this
machine's measured alpha/beta and for an assumed 10 Gb/s Ethernet network (alpha = 25 us,
beta = 1.1 GB/s), the usual link between machines.

Usage: python bench/bench_distributed.py [--rounds 3] [--epochs 2] [--batch 32] [--steps 12]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np


def _model(fastdl):
    from fastdl import layers
    model = fastdl.Sequential([
        layers.Input((32, 32, 3)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, activation="relu"), layers.Flatten(),
        layers.Dense(128, activation="relu"), layers.Dense(10)])
    return model


class _TimedComm:
    """COMM_WORLD with every Allreduce timed (the optimizer's fused gradient allreduce)."""

    def __init__(self, comm):
        self._comm, self.seconds, self.calls = comm, 0.0, 0

    def Allreduce(self, *args, **kwargs):
        start = time.perf_counter()
        self._comm.Allreduce(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        self.calls += 1

    def __getattr__(self, name):
        return getattr(self._comm, name)


def _worker(kind, batch, steps, epochs):
    import fastdl
    import fastdl.distributed as dist
    from fastdl import losses, optimizers
    dist.init()
    fastdl.set_num_threads(1 if kind == "ranks" else 2)
    per_rank = batch if kind == "ranks" else 2 * batch
    n = steps * 2 * batch
    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model = _model(fastdl)
    opt = optimizers.Adam(1e-3)
    model.compile(optimizer=dist.DistributedOptimizer(opt) if kind == "ranks" else opt,
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=per_rank, epochs=1, verbose=0)      # warm-up
    timed = None
    if kind == "ranks":
        timed = dist._state["comm"] = _TimedComm(dist._state["comm"])
        timed.Barrier()
    start = time.perf_counter()
    model.fit(x, y, batch_size=per_rank, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    result = {"samples_per_s": n * epochs / seconds, "step_s": seconds / (steps * epochs)}
    if kind == "ranks":
        from mpi4py import MPI
        comm = timed._comm
        grad_bytes = 4 * (model.count_params() + 1)
        result["allreduce_per_step_s"] = comm.allreduce(timed.seconds / timed.calls) / 2
        result["grad_bytes"] = grad_bytes
        for label, nbytes in (("t_small_s", 8), ("t_grad_s", grad_bytes)):
            buf = np.zeros(nbytes // 4, np.float32)
            for _ in range(5):
                comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            comm.Barrier()
            reps = 200 if nbytes == 8 else 50
            start = time.perf_counter()
            for _ in range(reps):
                comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            result[label] = comm.allreduce((time.perf_counter() - start) / reps) / 2
        result["samples_per_s"] = comm.allreduce(n * epochs / seconds, op=MPI.MIN)
        if dist.rank() != 0:
            return
    print("RESULT " + json.dumps(result), flush=True)


def _run(cmd):
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _ring(p, alpha, beta, nbytes):
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / beta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32, help="per-rank batch B")
    ap.add_argument("--steps", type=int, default=12, help="steps per epoch")
    ap.add_argument("--worker", choices=("single", "ranks"))
    args = ap.parse_args()
    if args.worker:
        return _worker(args.worker, args.batch, args.steps, args.epochs)
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                           + os.environ.get("PATH", ""))
    if mpiexec is None:
        raise SystemExit("needs mpiexec: pip install mpi4py mpich")
    me = [os.path.abspath(__file__), "--batch", str(args.batch), "--steps", str(args.steps),
          "--epochs", str(args.epochs), "--worker"]
    single, ranks = [], []
    for r in range(args.rounds):
        single.append(_run([sys.executable] + me + ["single"]))
        ranks.append(_run([mpiexec, "-n", "2", sys.executable] + me + ["ranks"]))
        print(f"round {r + 1}: 1x2 threads {single[-1]['samples_per_s']:.1f} samples/s, "
              f"2 ranks x 1 thread {ranks[-1]['samples_per_s']:.1f} samples/s", flush=True)

    def med(rows, key):
        return statistics.median(row[key] for row in rows)

    s_tp, r_tp = med(single, "samples_per_s"), med(ranks, "samples_per_s")
    step, ar = med(ranks, "step_s"), med(ranks, "allreduce_per_step_s")
    t_small, t_grad = med(ranks, "t_small_s"), med(ranks, "t_grad_s")
    nbytes = ranks[0]["grad_bytes"]
    # p = 2 ring: t = 2 alpha + M / beta
    alpha = t_small / 2
    beta = nbytes / max(t_grad - t_small, 1e-9)
    print(f"\nTutorial CNN, global batch {2 * args.batch}, {args.steps} steps/epoch, "
          f"{os.cpu_count()} cores, medians of {args.rounds} rounds")
    print(f"  1 process x 2 threads : {s_tp:8.1f} samples/s")
    print(f"  2 ranks x 1 thread    : {r_tp:8.1f} samples/s  = {100 * r_tp / s_tp:.1f}% "
          f"of the single process")
    print(f"  step time (2 ranks)   : {1e3 * step:8.2f} ms; allreduce in it {1e3 * ar:.3f} ms "
          f"({100 * ar / step:.1f}%), {nbytes / 1e6:.2f} MB of gradients")
    print(f"  Allreduce alone       : 8 B {1e6 * t_small:.1f} us, {nbytes / 1e6:.2f} MB "
          f"{1e3 * t_grad:.3f} ms -> alpha {1e6 * alpha:.1f} us, beta {beta / 1e9:.2f} GB/s")
    compute = step - ar
    print("\nProjection (ring allreduce, B per rank fixed, no overlap, compute per step as "
          "measured here):")
    for label, a, b in (("this machine's alpha/beta", alpha, beta),
                        ("10 Gb/s Ethernet (alpha 25 us, beta 1.1 GB/s)", 25e-6, 1.1e9)):
        for p in (8, 64):
            t = _ring(p, a, b, nbytes)
            print(f"  {label:48s} p={p:3d}: allreduce {1e3 * t:7.3f} ms, efficiency "
                  f"{100 * compute / (compute + t):5.1f}%, "
                  f"{p * args.batch / (compute + t):9.0f} samples/s")


if __name__ == "__main__":
    main()
