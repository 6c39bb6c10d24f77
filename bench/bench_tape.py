"""Per-op overhead of fastdl's GradientTape beside PyTorch autograd, on a loop of small ops.

The loop applies N elementwise ops (multiply, add, tanh, in turn) to a small float32 vector
(16 elements), so the arithmetic is negligible and the time is the per-op machinery. Three
phases per library, each the median of R repetitions, reported in microseconds per op:

  * eager    no tape / ``torch.no_grad()``: the op alone;
  * record   inside a ``GradientTape`` / with ``requires_grad``: the op plus recording it;
  * backward ``tape.gradient`` / ``loss.backward()``: per recorded op.

A second table times one training step of a small MLP (784-128-10, batch 64, float32:
matmul + bias + relu + matmul + softmax cross-entropy, backward, SGD update) written with
``GradientTape`` on ``fastdl.ops``, beside the same step in PyTorch autograd and fastdl's own
``Sequential.train_on_batch``.

Timed on the calling thread's CPU clock (``time.thread_time``), which other processes on a
shared machine disturb far less than wall time. Run:

    PYTHONPATH=python python bench/bench_tape.py [--ops 300] [--reps 30]
"""
import argparse
import statistics
import time

import numpy as np


def _time(fn, reps):
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t0 = time.thread_time()
        fn()
        out.append(time.thread_time() - t0)
    return statistics.median(out)


def fastdl_phases(n_ops, reps, size):
    from fastdl import ops
    from fastdl.ops import GradientTape, Variable
    x0 = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    w = Variable(np.full(size, 0.5, np.float32))

    def chain():
        y = x0
        for i in range(n_ops):
            k = i % 3
            y = ops.multiply(y, w) if k == 0 else ops.add(y, w) if k == 1 else ops.tanh(y)
        return y

    def record():
        with GradientTape() as tape:
            y = chain()
        return tape, y

    state = {}

    def prepare_and_backward():
        tape, y = record()
        t0 = time.thread_time()
        tape.gradient(y, w)
        state["bw"] = time.thread_time() - t0

    eager = _time(chain, reps)
    rec = _time(record, reps)
    bws = []
    prepare_and_backward()
    for _ in range(reps):
        prepare_and_backward()
        bws.append(state["bw"])
    return eager, rec, statistics.median(bws)


def torch_phases(n_ops, reps, size):
    import torch
    torch.set_num_threads(1)
    x0 = torch.from_numpy(np.random.default_rng(0).standard_normal(size).astype(np.float32))
    w = torch.full((size,), 0.5, requires_grad=True)

    def chain():
        y = x0
        for i in range(n_ops):
            k = i % 3
            y = y * w if k == 0 else y + w if k == 1 else torch.tanh(y)
        return y

    def eager():
        with torch.no_grad():
            chain()

    state = {}

    def prepare_and_backward():
        w.grad = None
        y = chain().sum()
        t0 = time.thread_time()
        y.backward()
        state["bw"] = time.thread_time() - t0

    e = _time(eager, reps)
    rec = _time(chain, reps)
    bws = []
    prepare_and_backward()
    for _ in range(reps):
        prepare_and_backward()
        bws.append(state["bw"])
    return e, rec, statistics.median(bws)


def mlp_steps(reps):
    """Milliseconds per training step: fastdl tape, fastdl train_on_batch, torch autograd."""
    import fastdl
    from fastdl import ops
    from fastdl.ops import GradientTape, Variable
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 784)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    y = np.eye(10, dtype=np.float32)[labels]
    w1 = Variable((rng.standard_normal((784, 128)) * 0.05).astype(np.float32))
    b1 = Variable(np.zeros(128, np.float32))
    w2 = Variable((rng.standard_normal((128, 10)) * 0.05).astype(np.float32))
    b2 = Variable(np.zeros(10, np.float32))
    params = [w1, b1, w2, b2]
    opt = fastdl.optimizers.SGD(0.01)

    def tape_step():
        with GradientTape() as tape:
            h = ops.relu(ops.matmul(x, w1) + b1)
            loss = ops.mean(ops.categorical_crossentropy(y, ops.matmul(h, w2) + b2,
                                                         from_logits=True))
        opt.apply_gradients(zip(tape.gradient(loss, params), params))

    model = fastdl.Sequential([fastdl.layers.Input((784,)),
                               fastdl.layers.Dense(128, activation="relu"),
                               fastdl.layers.Dense(10)])
    model.compile(optimizer=fastdl.optimizers.SGD(0.01),
                  loss=fastdl.losses.CategoricalCrossentropy(from_logits=True))

    def fit_step():
        model.train_on_batch(x, y)

    out = {"fastdl tape": _time(tape_step, reps), "fastdl train_on_batch": _time(fit_step, reps)}
    try:
        import torch
    except ImportError:
        return out
    tx, tl = torch.from_numpy(x), torch.from_numpy(labels)
    tw = [torch.tensor(p.numpy(), requires_grad=True) for p in params]
    topt = torch.optim.SGD(tw, lr=0.01)

    def torch_step():
        topt.zero_grad()
        h = torch.relu(tx @ tw[0] + tw[1])
        loss = torch.nn.functional.cross_entropy(h @ tw[2] + tw[3], tl)
        loss.backward()
        topt.step()

    out["torch autograd"] = _time(torch_step, reps)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=300, help="ops per loop")
    p.add_argument("--reps", type=int, default=30, help="repetitions (median)")
    p.add_argument("--size", type=int, default=16, help="elements per tensor")
    args = p.parse_args()
    rows = {"fastdl": fastdl_phases(args.ops, args.reps, args.size)}
    try:
        import torch  # noqa: F401
        rows["torch"] = torch_phases(args.ops, args.reps, args.size)
    except ImportError:
        print("torch is not importable: fastdl only")
    us = {k: [t / args.ops * 1e6 for t in v] for k, v in rows.items()}
    print(f"{args.ops} ops (multiply/add/tanh) on float32[{args.size}], median of {args.reps}, "
          "thread CPU time, microseconds per op")
    print(f"{'':10s}{'eager':>10s}{'record':>10s}{'backward':>10s}")
    for k, v in us.items():
        print(f"{k:10s}" + "".join(f"{t:10.2f}" for t in v))
    if "torch" in us:
        ratio = [a / b for a, b in zip(us["fastdl"], us["torch"])]
        print(f"{'ratio':10s}" + "".join(f"{r:10.2f}" for r in ratio) + "   (fastdl / torch)")
        rec_overhead = us["fastdl"][1] - us["fastdl"][0]
        print(f"fastdl recording overhead: {rec_overhead:.2f} us per op; torch: "
              f"{us['torch'][1] - us['torch'][0]:.2f}")
    print("\nMLP 784-128-10 training step, batch 64, float32, 1 thread: ms per step")
    import fastdl
    fastdl.set_num_threads(1)
    for name, t in mlp_steps(args.reps).items():
        print(f"  {name:24s}{t * 1e3:8.3f}")


if __name__ == "__main__":
    main()
