"""Callbacks for data-parallel training (Horovod's names, fastdl's Callback API)."""
import numpy as np

from fastdl.callbacks import Callback, _print
from fastdl.optimizers.base import check_number


class BroadcastWeightsCallback(Callback):
    """At the start of training, give every rank ``root_rank``'s weights and optimizer state.

    ``fit`` with a ``DistributedOptimizer`` already broadcasts from rank 0; this callback picks
    another root, or serves a model trained with another optimizer."""

    def __init__(self, root_rank=0):
        super().__init__()
        from fastdl.distributed import _check_root
        _check_root(root_rank)
        self.root_rank = int(root_rank)

    def on_train_begin(self, logs=None):
        from fastdl.distributed import broadcast_weights
        broadcast_weights(self.model, self.root_rank)


class MetricAverageCallback(Callback):
    """Replace the epoch's logged loss and metrics by their global values: the mean over ranks
    weighted by each rank's samples in the epoch (exact for the loss and for metrics that are
    means over samples, such as accuracy). Pass it first in ``callbacks`` so the callbacks after
    it (and History, the progress bar) see the global values."""

    def on_epoch_end(self, epoch, logs=None):
        from fastdl.distributed import allreduce, size
        if not logs or size() == 1:
            return
        sharder = getattr(self.model.optimizer, "_sharder", None)
        count = float(sharder.samples) if sharder is not None else 1.0
        keys = sorted(k for k, v in logs.items()
                      if isinstance(v, (int, float, np.integer, np.floating))
                      and not isinstance(v, bool))
        if len(set(map(tuple, _gather_keys(keys)))) != 1:
            raise ValueError("MetricAverageCallback: the ranks logged different keys; every "
                             "rank must compile the same metrics")
        # validation runs on every rank's full validation data: equal weights there
        weights = np.array([1.0 if k.startswith("val_") else count for k in keys])
        values = np.array([float(logs[k]) for k in keys])
        sums = allreduce(np.concatenate([values * weights, weights]), average=False)
        for k, total, weight in zip(keys, sums[:len(keys)], sums[len(keys):]):
            logs[k] = float(total / weight)


def _gather_keys(keys):
    from fastdl.distributed import _state
    comm = _state["comm"]
    return comm.allgather(keys) if comm is not None else [keys]


class LearningRateWarmup(Callback):
    """Ramp the learning rate from ``initial_lr / size()`` to ``initial_lr`` over the first
    ``warmup_epochs`` epochs, step by step (Goyal et al., "Accurate, Large Minibatch SGD"): a
    global batch ``size()`` times larger takes a learning rate ``size()`` times larger, reached
    gradually so the first steps do not diverge."""

    def __init__(self, initial_lr, warmup_epochs=5, verbose=0):
        super().__init__()
        check_number("initial_lr", initial_lr, low=0.0, low_open=True)
        check_number("warmup_epochs", warmup_epochs, low=0.0, low_open=True)
        self.initial_lr = float(initial_lr)
        self.warmup_epochs = float(warmup_epochs)
        self.verbose = verbose
        self._epoch = 0
        self._done = False

    def on_train_begin(self, logs=None):
        self._done = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        from fastdl.distributed import size
        if self._done:
            return
        steps = self.params.get("steps") or 1
        progress = (self._epoch + batch / steps) / self.warmup_epochs
        n = size()
        if progress >= 1.0:
            self._done = True   # from here on the learning rate is the user's (or a schedule's)
            lr = self.initial_lr
            if self.verbose:
                _print(f"\nEpoch {self._epoch + 1}: finished learning rate warmup to {lr:g}.")
        else:
            lr = self.initial_lr / n * (1.0 + progress * (n - 1))
        self.model.optimizer.learning_rate = lr

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)
