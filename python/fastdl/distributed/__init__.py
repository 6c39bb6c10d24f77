"""Data-parallel training across processes and machines on MPI, with Horovod's API shape.

::

    import fastdl.distributed as dist
    dist.init()
    model.compile(optimizer=dist.DistributedOptimizer(fastdl.optimizers.Adam(1e-3 * dist.size())),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=5,
              callbacks=[dist.MetricAverageCallback()])

Launch with ``mpiexec -n 4 python -m mpi4py train.py`` (or plain ``python train.py``: one
process, exactly as without this module). Everything here works without mpi4py installed and
in a one-process world, where it changes nothing: ``rank() == 0``, ``size() == 1`` and
``DistributedOptimizer`` updates bitwise like the optimizer it wraps.

What data parallelism does here:

- ``batch_size`` is per rank (Horovod's convention): a step trains on a global batch of
  ``batch_size * size()`` samples. ``fit`` with a distributed optimizer takes the same seeded
  permutation of the samples on every rank each epoch (seed broadcast from rank 0) and gives each
  rank its part of every global batch, so the ranks together see the whole epoch once. Every
  rank runs the same number of steps; a rank left without a sample in the last short global
  batch still joins that step's allreduce with a weight of zero. A Dataset, PyDataset or
  generator is each rank's own input (``ds.shard(size(), rank())``); the ranks then step in
  lockstep until the longest input ends, those that ran out joining with weight zero.
- Each step, the gradients of all trainable weights travel in ONE in-place allreduce over a flat
  buffer: rank r sends ``w_r * g_r`` and ``w_r``, where ``g_r`` is its local gradient and
  ``w_r`` what its loss divided by (the sample count for Keras's default reduction
  ``"sum_over_batch_size"``, sample weights included; the weight sum for
  ``"mean_with_sample_weight"``; 1 for ``"sum"``). The result, ``sum w_r g_r / sum w_r``
  (``sum g_r`` for ``"sum"``), is exactly the gradient of the global batch, so 2 ranks with
  batch B train like 1 process with batch 2B up to float rounding. (A loss over a masked
  sequence divides by its valid entries; ranks are still weighted by samples there.) The
  allreduce follows the backward pass rather than overlapping it: per-layer non-blocking
  allreduces started during the backward made the tutorial CNN's steps slower on 2 cores
  (MPICH progresses them only inside MPI calls, and no core is idle to do it).
- BatchNormalization normalises with each rank's own batch statistics (as Keras under
  tf.distribute and Horovod do); its moving mean and variance are averaged over the ranks in the
  same allreduce, so every rank keeps identical weights.
- Before the first step ``fit`` broadcasts the weights and the optimizer state from rank 0 and
  checks that every rank built the same model (a different layer shape is a ``ValueError`` on
  every rank, naming the weight and the ranks).
- Rank 0 alone prints progress bars and writes ``ModelCheckpoint``, ``CSVLogger`` and
  ``model.save`` files. ``MetricAverageCallback`` turns the logged loss and metrics into global
  values (weighting ranks by their sample counts).
- ``init()`` sets fastdl's threads to ``cores // local_size()`` unless ``OMP_NUM_THREADS`` is
  set, so several ranks on one machine do not oversubscribe it, and makes an unhandled
  exception on any rank print its traceback and abort the whole job (``MPI.Abort``) instead of
  leaving the others waiting in an allreduce.
"""
import math
import os
import sys

import numpy as np

__all__ = [
    "init", "is_initialized", "rank", "size", "local_rank", "local_size", "shutdown",
    "broadcast_weights", "allreduce", "DistributedOptimizer", "BroadcastWeightsCallback",
    "MetricAverageCallback", "LearningRateWarmup",
]

_state = {"comm": None, "local": None, "initialized": False}


def init():
    """Join the MPI job this process was started in (a no-op world of one without mpi4py).

    Safe to call more than once. Returns nothing; ``rank()``/``size()`` answer afterwards."""
    if _state["initialized"]:
        return
    try:
        from mpi4py import MPI
    except ImportError:     # no MPI: one process, exactly as without this module
        _state["initialized"] = True
        return
    comm = MPI.COMM_WORLD
    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    _state.update(comm=comm if comm.Get_size() > 1 else None, local=local, initialized=True)
    if comm.Get_size() > 1:
        _abort_on_uncaught_exception(comm)
    if local.Get_size() > 1 and "OMP_NUM_THREADS" not in os.environ:
        import fastdl
        cores = os.cpu_count() or 1
        fastdl.set_num_threads(max(1, cores // local.Get_size()))


def _abort_on_uncaught_exception(comm):
    """An exception that ends one rank must end the job: the others would wait forever in the
    next collective call. Print the traceback, then MPI_Abort (what ``python -m mpi4py`` does)."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.flush()
        comm.Abort(1)
    sys.excepthook = hook


def is_initialized():
    return _state["initialized"]


def shutdown():
    """Forget the MPI world (MPI itself is finalised by mpi4py at exit)."""
    _state.update(comm=None, local=None, initialized=False)


def rank():
    """This process's rank in the job (0 without MPI or before ``init()``)."""
    comm = _state["comm"]
    return 0 if comm is None else comm.Get_rank()


def size():
    """The number of processes in the job (1 without MPI or before ``init()``)."""
    comm = _state["comm"]
    return 1 if comm is None else comm.Get_size()


def local_rank():
    """This process's rank among the processes on its machine."""
    local = _state["local"]
    return 0 if local is None else local.Get_rank()


def local_size():
    """The number of processes of the job on this machine."""
    local = _state["local"]
    return 1 if local is None else local.Get_size()


def allreduce(value, average=True):
    """The sum (``average=True``: the mean) of a number or array over all ranks, as float64."""
    arr = np.array(value, dtype=np.float64)
    comm = _state["comm"]
    if comm is not None:
        from mpi4py import MPI
        comm.Allreduce(MPI.IN_PLACE, arr, op=MPI.SUM)
        if average:
            arr /= comm.Get_size()
    return arr if arr.ndim else float(arr)


def broadcast_weights(model, root_rank=0):
    """Give every rank ``root_rank``'s weights and optimizer state (in place).

    First checks that every rank holds the same weight shapes and dtypes: a mismatch raises
    ``ValueError`` on every rank, naming the first differing weight and the ranks."""
    comm = _state["comm"]
    if comm is None:
        return
    _check_root(root_rank)
    opt = getattr(model, "optimizer", None)
    state = opt.get_state() if opt is not None and getattr(opt, "built", False) else []
    weights = list(model.weights)
    labels = [f"layer {layer.name!r} weight {j}" for layer in getattr(model, "layers", [])
              for j in range(len(layer.weights))]
    if len(labels) != len(weights):
        labels = [f"weight {i}" for i in range(len(weights))]
    labels += [f"optimizer variable {i}" for i in range(len(state))]
    _bcast_arrays(comm, weights + state, labels, root_rank,
                  what=f"model {getattr(model, 'name', '')!r}")
    if state:
        opt.set_state(state)


def _check_root(root_rank):
    if isinstance(root_rank, bool) or not isinstance(root_rank, (int, np.integer)) \
            or not 0 <= root_rank < size():
        raise ValueError(f"root_rank must be a rank in [0, {size()}). Received: "
                         f"root_rank={root_rank!r}")


def _bcast_arrays(comm, arrays, labels, root, what):
    # shapes and dtypes only: layer names may differ between ranks (automatic numbering)
    signature = [(tuple(a.shape), np.dtype(a.dtype).str) for a in arrays]
    every = comm.allgather(signature)
    for r, sig in enumerate(every):
        if sig != every[root]:
            if len(sig) != len(every[root]):
                detail = f"{len(sig)} weight arrays against {len(every[root])}"
            else:
                i = next(i for i, (a, b) in enumerate(zip(sig, every[root])) if a != b)
                detail = (f"{labels[i]} has shape {sig[i][0]} dtype {sig[i][1]} against "
                          f"shape {every[root][i][0]} dtype {every[root][i][1]}")
            raise ValueError(f"fastdl.distributed: {what} differs between rank {r} and rank "
                             f"{root}: {detail}. Every rank must build the same model.")
    for a in arrays:
        if not a.flags.c_contiguous:
            raise ValueError("fastdl.distributed: weights must be C-contiguous arrays")
        comm.Bcast(a, root=root)


def _loss_weight(loss, y, sw):
    """What the loss divided its sum by (so ``w * gradient`` is the batch's gradient sum), and
    whether the global value is a mean (True) or a sum (``reduction="sum"``)."""
    reduction = getattr(loss, "reduction", "sum_over_batch_size")
    if reduction == "sum":
        return 1.0, False
    n = len(y)
    if reduction == "mean_with_sample_weight" and sw is not None:
        return float(np.sum(sw, dtype=np.float64)), True
    return float(n), True


class _Sharder:
    """This rank's part of every global batch of one ``fit``."""

    def __init__(self, comm, n, batch_size):
        self.comm, self.n, self.size = comm, n, comm.Get_size()
        if n < self.size:
            raise ValueError(f"fit on {self.size} ranks needs at least {self.size} samples "
                             f"(one per rank). Received: {n} samples")
        self.global_batch = batch_size * self.size
        self.steps = math.ceil(n / self.global_batch)
        from fastdl.utils.rng import get_rng
        seed = int(get_rng().integers(2**63)) if comm.Get_rank() == 0 else None
        self.rng = np.random.default_rng(comm.bcast(seed, root=0))

    def epoch(self, shuffle):
        """(indices, bounds): this rank's samples of the epoch and each step's [lo, hi) in them.
        A global batch is split evenly (sizes differ by at most one) between the ranks."""
        order = self.rng.permutation(self.n) if shuffle else np.arange(self.n)
        parts, bounds, lo = [], [], 0
        r = self.comm.Get_rank()
        for s in range(self.steps):
            chunk = order[s * self.global_batch:(s + 1) * self.global_batch]
            mine = np.array_split(chunk, self.size)[r]
            parts.append(mine)
            bounds.append((lo, lo + len(mine)))
            lo += len(mine)
        self.samples = lo     # for MetricAverageCallback
        return np.concatenate(parts), bounds


class _LockstepBatches:
    """A rank's own batches (``SourceBatches``), stepped in lockstep with the other ranks: the
    weights are broadcast from rank 0 once the first batch has built the model, and before
    each step the ranks agree whether any of them still has a batch. An epoch lasts as long as
    the longest rank's; a rank that has run out joins each remaining step's allreduce with an
    empty batch (weight zero), so no rank waits forever in an allreduce."""

    def __init__(self, comm, batches, model):
        self.comm, self.batches, self.model = comm, batches, model
        self.steps = batches.steps
        self._empty = None
        self.samples = 0      # this rank's samples in the epoch (MetricAverageCallback)

    @property
    def exhausted(self):
        return self.batches.exhausted

    def prime(self):
        self.batches.prime()
        broadcast_weights(self.model, 0)

    def epoch(self):
        from mpi4py import MPI
        own = self.batches.epoch()
        self.samples = 0
        while True:
            batch = next(own, None)
            if batch is not None:
                self.samples += len(_first_array(batch[0]))
                if self._empty is None:
                    self._empty = tuple(_no_rows(part) for part in batch)
            if not self.comm.allreduce(batch is not None, op=MPI.LOR):
                return
            if batch is None and self._empty is None:
                raise ValueError(f"fastdl.distributed: rank {self.comm.Get_rank()}'s input "
                                 "yielded no batch while other ranks trained: give every rank "
                                 "a non-empty shard")
            yield batch if batch is not None else self._empty


def _first_array(part):
    while isinstance(part, (dict, list, tuple)):
        part = next(iter(part.values())) if isinstance(part, dict) else part[0]
    return part


def _no_rows(part):
    """A batch part (an array, a list/tuple/dict of arrays, or None) with zero samples."""
    if part is None:
        return None
    if isinstance(part, dict):
        return {k: _no_rows(v) for k, v in part.items()}
    if isinstance(part, (list, tuple)):
        return type(part)(_no_rows(v) for v in part)
    return part[:0]


class _DistributedMixin:
    """Methods layered over an optimizer class by :func:`DistributedOptimizer`."""

    def distributed_fit(self, model, n, batch_size):
        """Called by ``fit`` before training: broadcast from rank 0, then the rank sharder."""
        self._model, self._sharder = model, None
        comm = _state["comm"]
        if comm is None:
            return None
        broadcast_weights(model, 0)
        self._sharder = _Sharder(comm, n, batch_size)
        return self._sharder

    def distributed_source(self, model, batches):
        """Called by ``fit`` on a Dataset, PyDataset or generator: each rank reads its own
        input (shard it as with Horovod: ``dataset.shard(size(), rank())``), so the ranks step
        in lockstep instead of being given shards (see :class:`_LockstepBatches`)."""
        self._model, self._sharder = model, None
        comm = _state["comm"]
        if comm is None:
            return batches
        self._sharder = _LockstepBatches(comm, batches, model)   # its samples weigh metrics
        return self._sharder

    def local_batch(self, loss, y, sw, variables):
        """Called by the train step before the forward pass with this rank's batch. Returns
        True when the batch is empty: this rank then joins the step's allreduce with zeros."""
        self._batch_weight, self._batch_mean = _loss_weight(loss, y, sw)
        if len(y) or _state["comm"] is None:
            return False
        if not self.built:
            self.build(variables)
        self._batch_weight = 0.0
        self.apply([np.zeros(v.shape, v.dtype) for v in variables], variables)
        return True

    def _synced_state(self):
        """Non-trainable arrays a training step changes (BatchNormalization's moving
        statistics): averaged over the ranks with the gradients."""
        model = getattr(self, "_model", None)
        if model is None:
            return []
        return [w for layer in model.layers if layer.trainable
                for w in layer.non_trainable_weights]

    def apply(self, grads, variables=None):
        comm = _state["comm"]
        if comm is None:
            return super().apply(grads, variables)
        from mpi4py import MPI
        grads = [np.asarray(g) for g in grads]
        state = self._synced_state()
        w = getattr(self, "_batch_weight", 1.0)
        mean = getattr(self, "_batch_mean", True)
        sizes = [g.size for g in grads] + [s.size for s in state]
        total = sum(sizes) + 1
        dtype = np.result_type(np.float32, *[g.dtype for g in grads])
        buf = getattr(self, "_flat", None)
        if buf is None or buf.size != total or buf.dtype != dtype:
            buf = self._flat = np.empty(total, dtype)   # reused every step
        pos = 0
        for a in grads + state:       # the state weighs by samples too (a rank with none: 0)
            np.multiply(a.reshape(-1), w, out=buf[pos:pos + a.size], casting="unsafe")
            pos += a.size
        buf[-1] = w
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        den = buf[-1]
        if den > 0:
            ng = sum(g.size for g in grads)
            buf[:ng] /= den if mean else 1.0
            buf[ng:-1] /= den
        pos, out = 0, []
        for g in grads:
            out.append(buf[pos:pos + g.size].reshape(g.shape))
            pos += g.size
        for s in state:
            np.copyto(s, buf[pos:pos + s.size].reshape(s.shape), casting="unsafe")
            pos += s.size
        self._batch_weight, self._batch_mean = 1.0, True
        return super().apply(out, variables)


_DISTRIBUTED_CLASSES = {}


def DistributedOptimizer(optimizer):
    """``optimizer`` made data-parallel: every step averages the gradients over all ranks (one
    fused in-place allreduce, weighted by each rank's samples) before the update.

    Returns an instance of a subclass of ``type(optimizer)`` with the same state and
    configuration, so ``learning_rate``, schedules, ``get_config`` and saving work unchanged.
    In a one-process world it updates exactly (bitwise) like ``optimizer``."""
    from fastdl.optimizers import Optimizer
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"DistributedOptimizer wraps a fastdl optimizer. Received: "
                        f"{type(optimizer).__name__} {optimizer!r}")
    base = type(optimizer)
    if isinstance(optimizer, _DistributedMixin):
        return optimizer
    cls = _DISTRIBUTED_CLASSES.get(base)
    if cls is None:
        cls = _DISTRIBUTED_CLASSES[base] = type(base.__name__, (_DistributedMixin, base),
                                                {"__module__": base.__module__,
                                                 "__qualname__": base.__qualname__})
    wrapped = cls.__new__(cls)
    wrapped.__dict__.update(optimizer.__dict__)
    return wrapped


from fastdl.distributed.callbacks import (  # noqa: E402
    BroadcastWeightsCallback, LearningRateWarmup, MetricAverageCallback)
