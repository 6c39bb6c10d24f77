"""``keras.utils.PyDataset`` (and its older name ``Sequence``): batches by index."""
import itertools
import warnings

import numpy as np


class PyDataset:
    """Base class for a dataset of batches read by index, for ``fit``/``evaluate``/``predict``.

    A subclass defines ``__getitem__(index)`` (returning a batch: ``(x, y)``,
    ``(x, y, sample_weight)``, or ``x`` alone for predict) and ``__len__()`` (the number of
    batches), and may define ``on_epoch_begin``/``on_epoch_end``. Its ``__init__`` should call
    ``super().__init__(**kwargs)``.

    ``workers`` > 1 reads batches in that many threads, up to ``max_queue_size`` batches ahead
    (the order is kept). ``use_multiprocessing=True`` is refused: fastdl's kernels already use
    every core in the training process, and worker processes would pickle each batch across.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        for name, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"PyDataset: {name} must be a positive int. Received: "
                                 f"{name}={value!r}")
        if use_multiprocessing:
            raise ValueError(
                "PyDataset: use_multiprocessing=True is not supported by fastdl: its kernels "
                "already run multi-threaded in the training process, so worker processes would "
                "only add the cost of pickling every batch between processes. Use workers=N "
                "(threads) for a __getitem__ that waits on files or releases the GIL.")
        self._workers = int(workers)
        self._use_multiprocessing = False
        self._max_queue_size = int(max_queue_size)

    def _settings(self):
        """(workers, max_queue_size), defaults with Keras's warning when the subclass's
        ``__init__`` skipped ``super().__init__()``."""
        if not hasattr(self, "_workers"):
            warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in "
                          "its constructor. `**kwargs` can include `workers`, "
                          "`use_multiprocessing`, `max_queue_size`.", stacklevel=3)
            PyDataset.__init__(self)
        return self._workers, self._max_queue_size

    @property
    def workers(self):
        return self._settings()[0]

    @property
    def use_multiprocessing(self):
        return False

    @property
    def max_queue_size(self):
        return self._settings()[1]

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index), "
                                  "returning the batch at that index")

    @property
    def num_batches(self):
        """The number of batches: ``len(self)``, or None (infinite) without ``__len__``."""
        if type(self).__len__ is PyDataset.__len__:
            return None
        return len(self)

    def __len__(self):
        raise TypeError(f"{type(self).__name__} defines no __len__: it is infinite")

    def on_epoch_begin(self):
        """Called at the start of each epoch."""

    def on_epoch_end(self):
        """Called at the end of each epoch (e.g. to shuffle the samples)."""

    def __iter__(self):
        n = self.num_batches
        for i in range(n) if n is not None else itertools.count():
            yield self[i]


Sequence = PyDataset
