"""fastdl.distributed: data-parallel training on MPI.

The single-process tests run everywhere. The others launch this file as an MPI program with
``mpiexec -n 2`` (skipped when mpi4py or mpiexec is missing; ``.ci/distributed`` installs both
and runs them) and compare against one process computing the global batch here.

Run as a script, this file is the MPI worker: ``mpiexec -n 2 python tests/test_distributed.py
CASE OUTDIR``.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastdl
import fastdl.distributed as dist
from fastdl import layers

B = 4            # per-rank batch; the single-process reference uses 2 * B
N = 37           # not a multiple of 2 * B: the last global batch has 5 samples (3 + 2)
N_EMPTY = 33     # the last global batch has 1 sample: rank 1 has none in that step
EPOCHS = 2
DS_RANK1 = 9     # samples rank 1's Dataset keeps: 3 batches against rank 0's 5


# ---------------------------------------------------------------------------- shared setup
def _data(case, n=N):
    rng = np.random.default_rng(7)
    if case == "conv":
        x = rng.normal(size=(n, 6, 6, 1))
    elif case == "lstm":
        x = rng.normal(size=(n, 4, 2))
    else:
        x = rng.normal(size=(n, 5))
    y = rng.normal(size=(n, 1))
    sw = rng.uniform(0.2, 2.0, size=n)
    return x.astype(np.float32), y.astype(np.float32), sw.astype(np.float32)


def _model(case, seed, units=4):
    fastdl.utils.set_random_seed(seed)
    stacks = {
        "dense": [layers.Input((5,)), layers.Dense(units, activation="tanh"), layers.Dense(1)],
        "conv": [layers.Input((6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                 layers.Flatten(), layers.Dense(1)],
        "bn": [layers.Input((5,)), layers.Dense(units), layers.BatchNormalization(),
               layers.Activation("relu"), layers.Dense(1)],
        "lstm": [layers.Input((4, 2)), layers.LSTM(3), layers.Dense(1)],
    }
    model = fastdl.Sequential(stacks[case])
    return model


def _compile(model, distributed, reduction="sum_over_batch_size"):
    opt = fastdl.optimizers.SGD(0.05 if reduction != "sum" else 0.01, momentum=0.9)
    model.compile(optimizer=dist.DistributedOptimizer(opt) if distributed else opt,
                  loss=fastdl.losses.MeanSquaredError(reduction=reduction), metrics=["mae"])
    return model


CASES = ("dense", "conv", "bn", "lstm")
REDUCTIONS = ("sum", "mean_with_sample_weight")   # the default is in every CASES run


# ---------------------------------------------------------------------------- the MPI worker
class _CheckIdentical(fastdl.callbacks.Callback):
    """Every rank holds bitwise the same weights (after the initial broadcast, every epoch)."""

    def _check(self, when):
        from mpi4py import MPI
        mine = np.concatenate([w.ravel().astype(np.float64) for w in self.model.weights])
        every = MPI.COMM_WORLD.allgather(mine)
        if any(not np.array_equal(e, every[0]) for e in every):
            raise AssertionError(f"weights differ between ranks {when}")

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0 and self._epoch == 0:
            self._check("after the initial broadcast")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._check(f"after epoch {epoch + 1}")


def _worker(case, out):
    os.environ.pop("OMP_NUM_THREADS", None)
    dist.init()
    r = dist.rank()
    if case == "threads":
        np.save(os.path.join(out, f"threads{r}.npy"),
                [fastdl.get_num_threads(), os.cpu_count(), dist.local_size(), dist.size()])
        return
    if case == "mismatch":
        model = _compile(_model("dense", 1, units=4 + r), True)
        x, y, _ = _data("dense")
        model.fit(x, y, batch_size=B, epochs=1, verbose=0)
        return
    if case == "fail":
        class Boom(fastdl.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if r == 1:
                    raise RuntimeError("deliberate failure on rank 1")
        model = _compile(_model("dense", 1), True)
        x, y, _ = _data("dense")
        model.fit(x, y, batch_size=B, epochs=50, verbose=0, callbacks=[Boom()])
        return
    if r == 1:      # rank 1's automatic layer names now differ: same shapes still match
        _model("dense", 0)
    for name in CASES:
        for n, weighted in ((N, True), (N_EMPTY, False)):
            x, y, sw = _data(name, n)
            model = _compile(_model(name, 1 + r), True)    # rank 1 starts from other weights
            tag = f"{name}_{n}"
            cbs = [dist.MetricAverageCallback(), _CheckIdentical(),
                   fastdl.callbacks.CSVLogger(os.path.join(out, f"{tag}_rank{r}.csv")),
                   fastdl.callbacks.ModelCheckpoint(os.path.join(out, f"{tag}_rank{r}.fdl"))]
            hist = model.fit(x, y, sample_weight=sw if weighted else None, batch_size=B,
                             epochs=EPOCHS, verbose=1, shuffle=False, callbacks=cbs)
            np.savez(os.path.join(out, f"{tag}_rank{r}.npz"), *model.get_weights(),
                     loss=hist.history["loss"], mae=hist.history["mae"])
    for reduction in REDUCTIONS:
        x, y, sw = _data("dense")
        model = _compile(_model("dense", 1), True, reduction)
        model.fit(x, y, sample_weight=sw, batch_size=B, epochs=EPOCHS, verbose=0, shuffle=False)
        np.savez(os.path.join(out, f"{reduction}_rank{r}.npz"), *model.get_weights())
    # a Dataset each rank shards itself (Horovod's pattern); rank 1's runs out two steps early
    x, y, _ = _data("dense")
    model = _compile(_model("dense", 1 + r), True)
    ds = fastdl.data.Dataset.from_tensor_slices((x, y)).shard(2, r)
    hist = model.fit((ds if r == 0 else ds.take(DS_RANK1)).batch(B), epochs=EPOCHS, verbose=0,
                     callbacks=[dist.MetricAverageCallback(), _CheckIdentical()])
    np.savez(os.path.join(out, f"dataset_rank{r}.npz"), *model.get_weights(),
             loss=hist.history["loss"])
    # shuffled epochs: the ranks' shards of every epoch partition the data set
    sharder = dist._Sharder(dist._state["comm"], N, B)
    from mpi4py import MPI
    for _ in range(2):
        order, bounds = sharder.epoch(True)
        every = np.concatenate(MPI.COMM_WORLD.allgather(order))
        assert sorted(every.tolist()) == list(range(N)), every
        assert len(bounds) == sharder.steps


# ---------------------------------------------------------------------------- launching
def _mpiexec():
    pytest.importorskip("mpi4py", reason="the MPI tests need mpi4py (pip install fastdl[mpi])")
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("the MPI tests need mpiexec (pip install mpich)")
    return exe


def _launch(case, out, timeout=120):
    """Run the worker on 2 ranks; (returncode, output, seconds). The whole process group is
    killed on timeout, so a hang fails the test instead of blocking it."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    cmd = [_mpiexec(), "-n", "2", sys.executable, os.path.abspath(__file__), case, str(out)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, text=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"mpiexec -n 2 ({case}) still running after {timeout} s:\n{output}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, output, time.monotonic() - start


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    rc, output, _ = _launch("train", out)
    assert rc == 0, output
    return out, output


def _emulated_fit(model, x, y, sw, epochs):
    """One process doing what 2 ranks do with BatchNormalization: each half of a global batch
    normalised with its own statistics, gradients combined by sample count, moving statistics
    averaged the same way."""
    trainable, weights = model._trainable_state()
    moving = [w for l in model.layers for w in l.non_trainable_weights]
    for _ in range(epochs):
        for lo in range(0, len(x), 2 * B):
            idx = np.arange(lo, min(len(x), lo + 2 * B))
            halves = [h for h in np.array_split(idx, 2) if len(h)]
            start = [m.copy() for m in moving]
            grads, stats = None, [np.zeros_like(m, dtype=np.float64) for m in moving]
            for h in halves:
                for m, s in zip(moving, start):
                    m[...] = s
                y_pred = model._forward(x[h], True)
                _, dy = model.loss.forward_backward(y[h], y_pred, None if sw is None else sw[h])
                model._backward(dy)
                g = [gi.astype(np.float64) * len(h) for l in trainable for gi in l.grads]
                grads = g if grads is None else [a + b for a, b in zip(grads, g)]
                stats = [s + m * len(h) for s, m in zip(stats, moving)]
            for m, s in zip(moving, stats):
                m[...] = s / len(idx)
            model.optimizer.apply([(g / len(idx)).astype(np.float32) for g in grads], weights)
    return model


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n", [N, N_EMPTY])
def test_two_ranks_equal_one_process_with_the_global_batch(trained, case, n):
    out, _ = trained
    weighted = n == N
    x, y, sw = _data(case, n)
    ref = _compile(_model(case, 1), False)
    if case == "bn":    # per-rank batch statistics: the reference normalises each half apart
        _emulated_fit(ref, x, y, sw if weighted else None, EPOCHS)
        expected_loss = None
    else:
        hist = ref.fit(x, y, sample_weight=sw if weighted else None, batch_size=2 * B,
                       epochs=EPOCHS, verbose=0, shuffle=False)
        expected_loss = hist.history
    got = np.load(out / f"{case}_{n}_rank0.npz")
    for i, w in enumerate(ref.get_weights()):
        np.testing.assert_allclose(got[f"arr_{i}"], w, rtol=2e-5, atol=2e-6,
                                   err_msg=f"{case}: weight {i}")
    if expected_loss is not None:     # MetricAverageCallback: the global epoch values
        np.testing.assert_allclose(got["loss"], expected_loss["loss"], rtol=1e-5)
        np.testing.assert_allclose(got["mae"], expected_loss["mae"], rtol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_two_ranks_equal_one_process_for_every_loss_reduction(trained, reduction):
    out, _ = trained
    x, y, sw = _data("dense")
    ref = _compile(_model("dense", 1), False, reduction)
    ref.fit(x, y, sample_weight=sw, batch_size=2 * B, epochs=EPOCHS, verbose=0, shuffle=False)
    got = np.load(out / f"{reduction}_rank0.npz")
    for i, w in enumerate(ref.get_weights()):
        np.testing.assert_allclose(got[f"arr_{i}"], w, rtol=2e-5, atol=2e-6,
                                   err_msg=f"{reduction}: weight {i}")


def test_two_ranks_on_their_own_dataset_shards_step_in_lockstep(trained):
    # Each step's global batch is rank 0's batch with rank 1's (none in the last two steps)
    out, _ = trained
    x, y, _ = _data("dense")
    shards = [np.arange(N)[0::2], np.arange(N)[1::2][:DS_RANK1]]
    steps = [[s[i:i + B] for i in range(0, len(s), B)] for s in shards]
    ref = _compile(_model("dense", 1), False)
    losses = []
    for _ in range(EPOCHS):
        total = 0.0
        for step in range(len(steps[0])):
            idx = np.concatenate([rank[step] for rank in steps if step < len(rank)])
            total += ref.train_on_batch(x[idx], y[idx], return_dict=True)["loss"] * len(idx)
        losses.append(total / (len(shards[0]) + len(shards[1])))
    got = np.load(out / "dataset_rank0.npz")
    for i, w in enumerate(ref.get_weights()):
        np.testing.assert_allclose(got[f"arr_{i}"], w, rtol=2e-5, atol=2e-6,
                                   err_msg=f"dataset: weight {i}")
    np.testing.assert_allclose(got["loss"], losses, rtol=1e-5)


def test_rank_zero_alone_writes_files_and_progress(trained):
    out, output = trained
    for case in CASES:
        assert (out / f"{case}_{N}_rank0.csv").exists()
        assert (out / f"{case}_{N}_rank0.fdl").exists()
        assert not (out / f"{case}_{N}_rank1.csv").exists()
        assert not (out / f"{case}_{N}_rank1.fdl").exists()
    # verbose=1 on both ranks: one progress bar line per epoch and model, from rank 0
    assert output.count(f"Epoch 1/{EPOCHS}") == 2 * len(CASES)


def test_exception_on_one_rank_ends_the_job(tmp_path):
    rc, output, seconds = _launch("fail", tmp_path, timeout=60)
    assert rc != 0
    assert "deliberate failure on rank 1" in output and "Traceback" in output
    assert seconds < 60


def test_mismatched_models_are_detected_at_the_first_broadcast(tmp_path):
    rc, output, _ = _launch("mismatch", tmp_path, timeout=60)
    assert rc != 0
    assert "differs between rank 1 and rank 0" in output
    assert "layer 'dense' weight 0 has shape (5, 5) dtype <f4 against shape (5, 4)" in output


def test_threads_default_to_cores_per_local_rank(tmp_path):
    rc, output, _ = _launch("threads", tmp_path, timeout=60)
    assert rc == 0, output
    for r in range(2):
        threads, cores, local, world = np.load(tmp_path / f"threads{r}.npy")
        assert (local, world) == (2, 2)
        assert threads == max(1, cores // 2)


# ---------------------------------------------------------------------------- one process
def test_one_process_world_is_unchanged():
    dist.init()
    assert dist.is_initialized()
    assert (dist.rank(), dist.size(), dist.local_rank(), dist.local_size()) == (0, 1, 0, 1)
    assert dist.allreduce(3.5) == 3.5
    np.testing.assert_array_equal(dist.allreduce([1.0, 2.0], average=False), [1.0, 2.0])


def test_without_mpi4py_init_is_a_world_of_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)      # import mpi4py raises ImportError
    threads = fastdl.get_num_threads()
    saved = dict(dist._state)
    dist.shutdown()
    try:
        dist.init()
        assert dist.is_initialized() and dist._state["comm"] is None
        assert (dist.rank(), dist.size(), dist.local_size()) == (0, 1, 1)
        assert fastdl.get_num_threads() == threads
    finally:
        dist._state.update(saved)


def test_distributed_optimizer_alone_updates_bitwise_like_the_optimizer():
    x, y, sw = _data("dense")
    results = []
    for distributed in (False, True):
        model = _compile(_model("dense", 3), distributed)
        model.fit(x, y, sample_weight=sw, batch_size=B, epochs=2, verbose=0)
        results.append(model.get_weights() + model.optimizer.variables)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_distributed_optimizer_keeps_class_config_and_state(tmp_path):
    inner = fastdl.optimizers.Adam(0.003, beta_1=0.8)
    opt = dist.DistributedOptimizer(inner)
    assert isinstance(opt, fastdl.optimizers.Adam)
    assert type(opt).__name__ == "Adam"
    assert opt.get_config() == inner.get_config()
    assert dist.DistributedOptimizer(opt) is opt
    model = _model("dense", 2)
    model.compile(optimizer=opt, loss="mse")
    x, y, _ = _data("dense")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.fdl")
    loaded = fastdl.models.load_model(tmp_path / "m.fdl")
    assert type(loaded.optimizer).__name__ == "Adam"
    for a, b in zip(loaded.optimizer.variables, opt.variables):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="wraps a fastdl optimizer.*str"):
        dist.DistributedOptimizer("adam")
    with pytest.raises(ValueError, match="root_rank must be a rank in \\[0, 1\\)"):
        dist.BroadcastWeightsCallback(root_rank=1)
    with pytest.raises(ValueError, match="initial_lr"):
        dist.LearningRateWarmup(initial_lr=-1.0)


def test_learning_rate_warmup_ramps_to_the_initial_lr(monkeypatch):
    monkeypatch.setattr(dist, "size", lambda: 4)
    x, y, _ = _data("dense", 16)
    model = _compile(_model("dense", 1), False)
    seen = []

    class Record(fastdl.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(model.optimizer.learning_rate))

    model.fit(x, y, batch_size=8, epochs=3, verbose=0,
              callbacks=[dist.LearningRateWarmup(0.4, warmup_epochs=1), Record()])
    # 2 steps per epoch: progress 0, 0.5 -> lr = 0.1 * (1 + progress * 3); then 0.4
    np.testing.assert_allclose(seen, [0.1, 0.25, 0.4, 0.4, 0.4, 0.4], rtol=1e-6)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
