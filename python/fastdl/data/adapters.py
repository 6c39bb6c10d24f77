"""What ``fit``/``evaluate``/``predict`` iterate: any accepted input as batches, epoch by epoch.

``ArrayBatches`` slices (already converted) arrays; ``SourceBatches`` reads a batch source: a
``fastdl.data.Dataset``, a ``keras.utils.PyDataset`` or a Python generator/iterator. Both have
``steps`` (batches per epoch, None when unknown) and ``epoch()``, a generator of
``(x, y, sample_weight)`` batches; the model's loops consume only that. Steps follow Keras's
``EpochIterator``: without ``steps`` an epoch is a whole pass over the source; with ``steps``
each epoch reads that many batches, continuing the same pass (a finite Dataset or PyDataset
starts a new pass when one ends; a generator is read once).
"""
import collections
import itertools
import types
import warnings

import numpy as np

from fastdl.data.dataset import INFINITE_CARDINALITY, Dataset, flatten, map_structure
from fastdl.utils.py_dataset import PyDataset

RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or "
           "generator can generate at least `steps_per_epoch * epochs` batches. You may need to "
           "use the `.repeat()` function when building your dataset.")


def is_batch_source(x):
    """Whether ``x`` yields batches (rather than being arrays fit slices itself)."""
    if isinstance(x, np.ndarray):
        return False
    if isinstance(x, (Dataset, PyDataset, types.GeneratorType)):
        return True
    return hasattr(x, "__next__") and hasattr(x, "__iter__") and not isinstance(
        x, (np.ndarray, list, tuple, dict))


def source_name(x):
    if isinstance(x, Dataset):
        return "Dataset"
    if isinstance(x, PyDataset):
        return "PyDataset"
    return "generator" if isinstance(x, types.GeneratorType) else "iterator"


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, as a batch source yields it. A tuple
    or list ``x`` with nothing else is packed as ``(x,)``, so it stays one (multi-input) x."""
    if y is None:
        return (x,) if isinstance(x, (tuple, list)) else x
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """``(x, y, sample_weight)`` from a batch: a tuple (or list) of 1 to 3 parts, or ``x``."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError("Data is expected to be in format `x`, `(x,)`, `(x, y)`, or "
                     f"`(x, y, sample_weight)`, found a tuple of {len(data)} parts: {data!r:.300}")


class ArrayBatches:
    """Batches sliced from arrays of one length (``_Arrays`` for several inputs), shuffled each
    epoch with fastdl's random state when ``shuffle``; ``shard`` (fastdl.distributed) gives this
    rank's part of each global batch instead."""
    __slots__ = ("x", "y", "sw", "batch_size", "shuffle", "shard", "steps")

    def __init__(self, x, y, sw, batch_size, shuffle=False, shard=None):
        self.x, self.y, self.sw = x, y, sw
        self.batch_size, self.shuffle, self.shard = batch_size, shuffle, shard
        n = len(x)
        self.steps = shard.steps if shard is not None else -(-n // batch_size)

    def epoch(self):
        x, y, sw, size, n = self.x, self.y, self.sw, self.batch_size, len(self.x)
        if self.shard is None and not self.shuffle:
            if n <= size:   # one batch (predict on a few samples): no generator to run
                return iter(((x, y, sw),) if n else ())
            return self._slices(x, y, sw, size, n)
        if self.shard is not None:
            order, bounds = self.shard.epoch(self.shuffle)
        else:
            from fastdl.utils.rng import get_rng
            order, bounds = get_rng().permutation(n), None
        return self._gather(x, y, sw, order, bounds or [(lo, lo + size)
                                                        for lo in range(0, n, size)])

    @staticmethod
    def _slices(x, y, sw, size, n):
        for lo in range(0, n, size):
            yield x[lo:lo + size], None if y is None else y[lo:lo + size], \
                None if sw is None else sw[lo:lo + size]

    @staticmethod
    def _gather(x, y, sw, order, bounds):
        for lo, hi in bounds:
            idx = order[lo:hi]
            yield x[idx], None if y is None else y[idx], None if sw is None else sw[idx]


class SourceBatches:
    """Batches from a Dataset, PyDataset or generator/iterator (see the module docstring).

    ``convert(x, y, sw)`` turns a batch's parts into the model's arrays; each batch's per-sample
    shapes and dtypes must match the first batch's. ``what`` names the input in errors (``x``,
    ``validation_data``)."""

    def __init__(self, source, steps=None, shuffle=False, convert=None, what="x"):
        self.source, self.what, self.convert = source, what, convert
        self.kind = source_name(source)
        if steps is not None and (isinstance(steps, bool) or not isinstance(
                steps, (int, np.integer)) or steps < 1):
            raise ValueError(f"steps must be a positive int or None. Received: {steps!r}")
        self.steps_arg = None if steps is None else int(steps)
        if isinstance(source, Dataset):
            if source._batched is False:
                raise ValueError(f"The Dataset given as {what} is not batched: its elements are "
                                 "single samples. Call dataset.batch(batch_size) first.")
            card = int(source.cardinality())
            if card == INFINITE_CARDINALITY and steps is None:
                raise ValueError(f"The Dataset given as {what} is infinite (repeat() without a "
                                 "count): pass the number of batches per epoch (steps_per_epoch, "
                                 "validation_steps or steps).")
            self.num_batches = card if card >= 0 else None
            self._new_pass = source._arrays   # NumPy, not the Tensors iteration gives
        elif isinstance(source, PyDataset):
            self.num_batches = _py_dataset_length(source)
            if self.num_batches is None and steps is None:
                raise ValueError(f"The PyDataset given as {what} has no __len__ (it is "
                                 "infinite): pass the number of batches per epoch "
                                 "(steps_per_epoch, validation_steps or steps).")
            self._new_pass = lambda: _read_py_dataset(source, self.num_batches, shuffle)
        else:   # a generator is read once: every "pass" continues it
            self.num_batches = None
            self._new_pass = lambda: source
        if self.num_batches == 0:
            raise self._empty()
        self.steps = self.steps_arg or self.num_batches
        self._iterator, self._seen, self._batches, self._signature = None, 0, 0, None
        self._primed = self.exhausted = False

    def prime(self):
        """Read and convert the first batch now, before training starts: a model without an
        input shape builds from it, and a bad first batch or an empty source fails early. The
        batch is still the first one the first epoch yields. Priming twice reads nothing."""
        if self._primed:
            return
        iterator = iter(self._new_pass())
        try:
            batch = next(iterator)
        except StopIteration:
            raise self._empty() from None
        self._standardize(batch)
        self._iterator, self._seen, self._primed = itertools.chain((batch,), iterator), 0, True

    def epoch(self):
        """This epoch's batches; ``exhausted`` is set when a generator has no more."""
        py_dataset = self.kind == "PyDataset"
        if py_dataset:
            self.source.on_epoch_begin()
        if not self._primed and (self._iterator is None or self.steps_arg is None):
            self._iterator, self._seen = iter(self._new_pass()), 0
        self._primed = False
        step = 0
        while self.steps_arg is None or step < self.steps_arg:
            if self.num_batches is not None and self._seen >= self.num_batches:
                if self.steps_arg is not None:
                    warnings.warn(RAN_OUT, UserWarning, stacklevel=3)
                break
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                if self._batches == 0:
                    raise self._empty() from None
                if self.kind in ("generator", "iterator"):
                    if step == 0:
                        self.exhausted = True
                    elif self.steps_arg is not None:
                        warnings.warn(RAN_OUT, UserWarning, stacklevel=3)
                break
            self._seen += 1
            self._batches += 1
            yield self._standardize(batch)
            step += 1
        if self.num_batches is not None and self._seen >= self.num_batches:
            self._iterator = None
        if py_dataset:
            self.source.on_epoch_end()

    def _empty(self):
        return ValueError(f"The {self.kind} given as {self.what} yielded no batches (it is "
                          "empty)")

    def _standardize(self, batch):
        arrays = tuple(None if part is None else part if isinstance(part, np.ndarray)
                       else map_structure(np.asarray, part)
                       for part in unpack_x_y_sample_weight(batch))
        signature = tuple(None if part is None else _structure_signature(part)
                          for part in arrays)
        if self._signature is None:
            self._signature = signature
        elif signature != self._signature:
            raise ValueError(
                f"Batch {self._batches - 1} of the {self.kind} given as {self.what} differs from "
                f"its first batch: (x, y, sample_weight) per-sample shapes and dtypes "
                f"{_describe(signature)}, first batch {_describe(self._signature)}. Every batch "
                "must have the same shapes after the batch axis (pad sequences to one length) "
                "and the same dtypes.")
        return self.convert(*arrays) if self.convert is not None else arrays


def _structure_signature(part):
    if isinstance(part, np.ndarray):    # (the common case, kept cheap: it runs every batch)
        return (part.shape[1:], part.dtype.str)
    structure = map_structure(lambda a: None, part)
    return (repr(structure),) + tuple((a.shape[1:], a.dtype.str) for a in flatten(part))


def _describe(signature):
    def parts(s):
        pairs = [s] if isinstance(s[1], str) else s[1:]     # one array, or a structure
        return [(shape, np.dtype(dt).name) for shape, dt in pairs]
    return [None if s is None else parts(s) for s in signature]


def _py_dataset_length(py_dataset):
    n = py_dataset.num_batches
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{type(py_dataset).__name__}.__len__ must return the number of "
                         f"batches, an int >= 0. Received: {n!r}")
    return int(n)


def _read_py_dataset(py_dataset, n, shuffle):
    """The batches of one pass, in a shuffled order if ``shuffle``; read ahead by a thread pool
    when the PyDataset has ``workers`` > 1."""
    if n is None:
        indices = itertools.count()
    else:
        from fastdl.utils.rng import get_rng
        indices = get_rng().permutation(n).tolist() if shuffle else range(n)

    def get(index):
        try:
            batch = py_dataset[index]
        except IndexError as err:
            if n is None:
                raise
            raise ValueError(f"{type(py_dataset).__name__}[{index}] raised IndexError, but its "
                             f"__len__() is {n}: __len__ must return the number of batches "
                             "__getitem__ serves") from err
        first = flatten(unpack_x_y_sample_weight(batch)[0])
        if any(np.ndim(a) == 0 or len(a) == 0 for a in first):
            raise ValueError(f"{type(py_dataset).__name__}[{index}] is an empty batch (x "
                             f"shapes {[np.shape(a) for a in first]}); its __len__() is {n}: "
                             "__len__ must return the number of batches __getitem__ serves")
        return batch
    workers, queue_size = py_dataset._settings()
    if workers == 1:
        for index in indices:
            yield get(index)
        return
    import concurrent.futures   # (on first use: it costs import time)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        for index in indices:
            pending.append(pool.submit(get, index))
            if len(pending) >= max(queue_size, workers):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
