"""``fastdl.data.Dataset``: the part of ``tf.data.Dataset`` Keras tutorials use, on NumPy arrays.

An element is a NumPy array, or a tuple/list/dict of them (nested). A Dataset is a recipe: each
``iter()`` runs the pipeline again from its source (a Python generator's function is called
again), so a Dataset can feed several epochs. Transformations return new Datasets.
"""
import collections
import itertools
import threading

import numpy as np

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


class TensorSpec:
    """The shape (``None`` for any size) and dtype of one component: ``from_generator``'s
    ``output_signature`` and ``Dataset.element_spec``."""

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(getattr(dtype, "name", dtype))
        self.name = name

    def is_compatible_with(self, array):
        return len(array.shape) == len(self.shape) and all(
            d is None or d == a for d, a in zip(self.shape, array.shape))

    def __eq__(self, other):
        return isinstance(other, TensorSpec) and (self.shape, self.dtype) == (other.shape,
                                                                              other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f"TensorSpec(shape={self.shape}, dtype={self.dtype.name}, name={self.name!r})"


def _as_tensors(element):
    import fastdl.ops  # noqa: F401  (binds the Tensor operators the user's code may use)
    from fastdl.tensor.tensor import Tensor
    return map_structure(lambda a: Tensor(a) if getattr(a, "dtype", np.dtype(object)).kind in "biufc"
                         else a, element)


def map_structure(fn, element):
    """``fn`` applied to each array of a (nested) tuple/list/dict element, the structure kept."""
    if isinstance(element, dict):
        return {k: map_structure(fn, v) for k, v in element.items()}
    if isinstance(element, (tuple, list)):
        return type(element)(map_structure(fn, v) for v in element)
    return fn(element)


def flatten(element):
    """The arrays of an element, depth first (dicts in key order)."""
    if isinstance(element, dict):
        return [a for k in element for a in flatten(element[k])]
    if isinstance(element, (tuple, list)):
        return [a for v in element for a in flatten(v)]
    return [element]


def _lists_to_arrays(tensors):
    """As tf.data reads its sources: tuples and dicts are structure, a list is one array."""
    if isinstance(tensors, dict):
        return {k: _lists_to_arrays(v) for k, v in tensors.items()}
    if isinstance(tensors, tuple):
        return tuple(_lists_to_arrays(v) for v in tensors)
    if isinstance(tensors, list):
        try:
            array = np.asarray(tensors)
        except ValueError:
            array = None
        if array is None or array.dtype == object:
            raise ValueError("Dataset: a list is read as one array, and this one is ragged "
                             "(use a tuple for several components)")
        return array
    return _to_numpy(tensors)


def _to_numpy(value):
    """A component as a NumPy array (a fastdl Tensor returned by ``map`` becomes its value)."""
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    return np.asarray(value)


def _check_count(name, value, allow_none=False, minimum=0):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Dataset: {name} must be an int >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _stack(elements, what):
    """Elements of one structure stacked along a new first axis."""
    first = elements[0]
    parts = [flatten(e) for e in elements]
    try:
        stacked = [np.stack(column) for column in zip(*parts)]
    except ValueError as err:   # components of different shapes
        shapes = [[p.shape for p in e] for e in parts[:4]]
        raise ValueError(f"Dataset.{what}: cannot stack elements of different shapes into one "
                         f"batch (the first elements' shapes: {shapes}); pad them to one shape "
                         "first") from err
    it = iter(stacked)
    return map_structure(lambda _: next(it), first)


class Dataset:
    """A pipeline of elements (see the module docstring). Build one with ``from_tensor_slices``,
    ``from_tensors``, ``from_generator`` or ``range``."""

    def __init__(self, make_iterator, cardinality, batched=None, slices=None):
        self._make_iterator = make_iterator
        self._cardinality = cardinality
        # False: elements are single samples (fit needs .batch()); True: batches; None: unknown
        self._batched = batched
        # (arrays, order): this dataset is arrays[i] for i in order(), an iterable of indices.
        # batch() then gathers each batch at once instead of stacking single samples.
        self._slices = slices

    # ---------------------------------------------------------------- sources
    @staticmethod
    def from_tensor_slices(tensors, name=None):
        """One element per index of the first axis of ``tensors`` (an array or a nested
        tuple/dict of arrays of one length; a list is one array, as in tf.data)."""
        arrays = _lists_to_arrays(tensors)
        flat = flatten(arrays)
        if any(a.ndim == 0 for a in flat):
            raise ValueError("Dataset.from_tensor_slices: every component needs a first axis to "
                             f"slice; received shapes {[a.shape for a in flat]}")
        lengths = {len(a) for a in flat}
        if len(lengths) != 1:
            raise ValueError("Dataset.from_tensor_slices: all components must have the same "
                             f"first dimension; received shapes {[a.shape for a in flat]}")
        n = lengths.pop()

        def make():
            for i in range(n):
                yield map_structure(lambda a: a[i], arrays)
        return Dataset(make, n, batched=False, slices=(arrays, lambda: range(n)))

    @staticmethod
    def from_tensors(tensors, name=None):
        """One element: ``tensors`` as given (a list is one array, as in tf.data)."""
        element = _lists_to_arrays(tensors)
        return Dataset(lambda: iter((element,)), 1)

    @staticmethod
    def from_generator(generator, output_types=None, output_shapes=None, args=None,
                       output_signature=None, name=None):
        """The elements ``generator(*args)`` yields (called again for each iteration).

        With ``output_signature`` (a structure of ``TensorSpec``) or ``output_types`` (and
        ``output_shapes``), each element is checked against it and cast to its dtypes; an
        element of another structure, shape or dtype kind raises ``ValueError``/``TypeError``."""
        if not callable(generator):
            raise TypeError("Dataset.from_generator: generator must be a callable that returns "
                            f"an iterator (a generator function). Received: {generator!r}")
        if output_signature is None and output_types is not None:
            output_signature = _signature(output_types, output_shapes)
        args = tuple(args or ())

        def make():
            for element in generator(*args):
                yield element if output_signature is None else _conform(element,
                                                                        output_signature)
        return Dataset(make, UNKNOWN_CARDINALITY)

    @staticmethod
    def range(*args, dtype="int64", name=None):
        """``range(stop)``, ``range(start, stop[, step])`` as scalar arrays."""
        r = range(*args)
        dtype = np.dtype(getattr(dtype, "name", dtype))
        return Dataset(lambda: (np.asarray(i, dtype=dtype) for i in r), len(r), batched=False)

    @staticmethod
    def zip(*datasets, name=None):
        """Elements of several datasets side by side (a tuple, or a dict of datasets), until the
        shortest ends."""
        structure = datasets[0] if len(datasets) == 1 and isinstance(
            datasets[0], (tuple, list, dict)) else datasets
        members = list(structure.values()) if isinstance(structure, dict) else list(structure)
        if not members or not all(isinstance(d, Dataset) for d in members):
            raise TypeError("Dataset.zip: expected Datasets (as arguments, a tuple or a dict). "
                            f"Received: {datasets!r}")

        def make():
            for parts in zip(*(d._arrays() for d in members)):
                if isinstance(structure, dict):
                    yield dict(zip(structure, parts))
                else:
                    yield tuple(parts)
        known = [d._cardinality for d in members]
        finite = [c for c in known if c >= 0]
        if finite:
            card = min(finite) if all(c >= 0 or c == INFINITE_CARDINALITY for c in known) \
                else UNKNOWN_CARDINALITY
        else:
            card = UNKNOWN_CARDINALITY if UNKNOWN_CARDINALITY in known else INFINITE_CARDINALITY
        batched = {d._batched for d in members}
        return Dataset(make, card, batched.pop() if len(batched) == 1 else None)

    # ---------------------------------------------------------------- iteration
    def __iter__(self):
        """The elements with their numeric arrays as ``fastdl.Tensor``s (sharing the arrays), as
        iterating a ``tf.data.Dataset`` gives tensors (``images.numpy()``); string arrays stay
        NumPy arrays."""
        return map(_as_tensors, self._arrays())

    def as_numpy_iterator(self):
        """An iterator of the elements as NumPy arrays."""
        return self._arrays()

    def _arrays(self):
        """The elements as the pipeline makes them (NumPy arrays): what the transformations
        and the fit/evaluate/predict adapters read."""
        return iter(self._make_iterator())

    def cardinality(self):
        """The number of elements, or ``INFINITE_CARDINALITY`` (-1) / ``UNKNOWN_CARDINALITY``
        (-2)."""
        return np.int64(self._cardinality)

    def __len__(self):
        if self._cardinality == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if self._cardinality == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return self._cardinality

    def __bool__(self):
        return True

    @property
    def element_spec(self):
        """A ``TensorSpec`` structure read from the first element (a batched dataset's first
        axis is ``None``, as its last batch may be smaller)."""
        for element in self._arrays():
            return map_structure(lambda a: TensorSpec(
                ((None,) + a.shape[1:]) if self._batched and a.ndim else a.shape, a.dtype),
                element)
        raise ValueError("Dataset.element_spec: the dataset is empty")

    def __repr__(self):
        return f"<Dataset cardinality={self._cardinality}>"

    # ---------------------------------------------------------------- transformations
    def _derive(self, make, cardinality=None, batched=None):
        return Dataset(make, self._cardinality if cardinality is None else cardinality,
                       self._batched if batched is None else batched)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None, name=None):
        """Consecutive elements stacked into batches of ``batch_size`` (the last one smaller
        unless ``drop_remainder``)."""
        batch_size = _check_count("batch_size", batch_size, minimum=1)

        def make():
            if self._slices is not None:    # the same batches, gathered from the arrays
                arrays, order = self._slices
                indices = iter(order())
                while True:
                    idx = np.fromiter(itertools.islice(indices, batch_size), dtype=np.intp)
                    if not len(idx) or drop_remainder and len(idx) < batch_size:
                        return
                    yield map_structure(lambda a: a[idx], arrays)
            it = self._arrays()
            while True:
                chunk = list(itertools.islice(it, batch_size))
                if not chunk or drop_remainder and len(chunk) < batch_size:
                    return
                yield _stack(chunk, "batch")
        card = self._cardinality
        if card >= 0:
            card = card // batch_size if drop_remainder else -(-card // batch_size)
        return self._derive(make, card, batched=True)

    def unbatch(self, name=None):
        """Each batch split into its elements along the first axis."""
        def make():
            for element in self._arrays():
                flat = flatten(element)
                if any(a.ndim == 0 for a in flat) or len({len(a) for a in flat}) > 1:
                    raise ValueError("Dataset.unbatch: every component needs the same first "
                                     f"dimension; received shapes {[a.shape for a in flat]}")
                for i in range(len(flat[0])):
                    yield map_structure(lambda a: a[i], element)
        card = INFINITE_CARDINALITY if self._cardinality == INFINITE_CARDINALITY \
            else UNKNOWN_CARDINALITY
        return self._derive(make, card, batched=False)

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """``map_func`` on each element: a tuple element's components are its positional
        arguments (as in tf.data), any other element is its one argument; numeric components
        arrive as ``fastdl.Tensor``s (``.numpy()``, fastdl ops), strings as NumPy values. With
        ``num_parallel_calls`` (an int > 1 or ``AUTOTUNE``) a thread pool runs it; the order is
        kept."""
        if not callable(map_func):
            raise TypeError(f"Dataset.map: map_func must be callable. Received: {map_func!r}")
        return self._map(map_func, num_parallel_calls, _as_tensors)

    def _map(self, map_func, num_parallel_calls=None, wrap=None):
        """``map`` with the elements passed through ``wrap`` (fastdl's own pipelines map
        NumPy arrays: ``wrap=None``)."""
        if num_parallel_calls is not None and num_parallel_calls != AUTOTUNE:
            _check_count("num_parallel_calls", num_parallel_calls, minimum=1)

        def apply(element):
            if wrap is not None:
                element = wrap(element)
            out = map_func(*element) if isinstance(element, tuple) else map_func(element)
            return map_structure(_to_numpy, out)
        workers = (4 if num_parallel_calls == AUTOTUNE else num_parallel_calls) or 1

        def make():
            if workers == 1:
                for element in self._arrays():
                    yield apply(element)
                return
            import concurrent.futures   # (on first use: it costs import time)
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                pending = collections.deque()
                for element in self._arrays():
                    pending.append(pool.submit(apply, element))
                    if len(pending) >= 2 * workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
        return self._derive(make)

    def filter(self, predicate, name=None):
        """The elements for which ``predicate`` (called as ``map_func`` is, on tensors) is true."""
        if not callable(predicate):
            raise TypeError(f"Dataset.filter: predicate must be callable. Received: {predicate!r}")

        def keep(element):
            element = _as_tensors(element)
            out = predicate(*element) if isinstance(element, tuple) else predicate(element)
            out = _to_numpy(out)
            if out.shape != () or out.dtype != np.bool_:
                raise TypeError("Dataset.filter: predicate must return a scalar bool. Received: "
                                f"dtype {out.dtype}, shape {out.shape}")
            return bool(out)

        def make():
            return (e for e in self._arrays() if keep(e))
        card = INFINITE_CARDINALITY if self._cardinality == INFINITE_CARDINALITY \
            else UNKNOWN_CARDINALITY
        return self._derive(make, card)

    def take(self, count, name=None):
        """The first ``count`` elements (all of them for ``count=-1``)."""
        count = _check_count("count", count, minimum=-1)
        if count == -1:
            return self

        def make():
            return itertools.islice(self._arrays(), count)
        card = self._cardinality
        card = count if card == INFINITE_CARDINALITY else (min(card, count) if card >= 0 else card)
        return self._derive(make, card)

    def skip(self, count, name=None):
        """All but the first ``count`` elements (none for ``count=-1``)."""
        count = _check_count("count", count, minimum=-1)

        def make():
            return itertools.islice(self._arrays(), count, None) if count >= 0 else iter(())
        card = self._cardinality
        if count == -1:
            card = 0
        elif card >= 0:
            card = max(0, card - count)
        return self._derive(make, card)

    def shard(self, num_shards, index, name=None):
        """Every ``num_shards``-th element starting at ``index`` (tf.data's ``shard``): with
        ``fastdl.distributed``, ``dataset.shard(size(), rank())`` gives each rank its part."""
        num_shards = _check_count("num_shards", num_shards, minimum=1)
        index = _check_count("index", index)
        if index >= num_shards:
            raise ValueError(f"Dataset.shard: index must be in [0, num_shards={num_shards}). "
                             f"Received: index={index}")

        def make():
            return itertools.islice(self._arrays(), index, None, num_shards)
        card = self._cardinality
        if card >= 0:
            card = max(0, -(-(card - index) // num_shards))
        return self._derive(make, card)

    def repeat(self, count=None, name=None):
        """The dataset ``count`` times over (forever for ``None`` or -1)."""
        count = None if count in (None, -1) else _check_count("count", count)

        def make():
            times = itertools.count() if count is None else range(count)
            for _ in times:
                produced = False
                for element in self._arrays():
                    produced = True
                    yield element
                if not produced:    # an empty dataset repeated forever stays empty
                    return
        card = self._cardinality
        if count is None:
            card = 0 if card == 0 else (INFINITE_CARDINALITY if card != UNKNOWN_CARDINALITY
                                        else UNKNOWN_CARDINALITY)
        elif card >= 0:
            card *= count
        elif count == 0:
            card = 0
        return self._derive(make, card)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """tf.data's buffer shuffle: a buffer of the next ``buffer_size`` elements, from which a
        random one is output and replaced by the next input element. ``seed=None`` draws from
        fastdl's random state (``keras.utils.set_random_seed``); ``reshuffle_each_iteration=False``
        repeats the first iteration's order."""
        buffer_size = _check_count("buffer_size", buffer_size, minimum=1)
        if seed is not None:
            seed = _check_count("seed", seed)
        fixed = None
        if seed is None and not reshuffle_each_iteration:
            from fastdl.utils.rng import get_rng
            fixed = int(get_rng().integers(2 ** 63))
        iteration = itertools.count()

        def new_rng():
            from fastdl.utils.rng import get_rng
            if seed is not None:
                return np.random.default_rng([seed, 0 if not reshuffle_each_iteration
                                              else next(iteration)])
            if fixed is not None:
                return np.random.default_rng(fixed)
            return np.random.default_rng(get_rng().integers(2 ** 63))

        def make():
            return _buffer_shuffle(self._arrays(), buffer_size, new_rng())
        slices = None
        if self._slices is not None:    # shuffle the indices: the same order, arrays kept
            arrays, order = self._slices
            slices = (arrays, lambda: _buffer_shuffle(order(), buffer_size, new_rng()))
        out = self._derive(make)
        out._slices = slices
        return out

    def cache(self, filename="", name=None):
        """The elements of the first complete iteration kept in memory and replayed after.
        (An iteration stopped early caches nothing.) Only the in-memory cache: ``filename``
        must be empty."""
        if filename:
            raise ValueError("Dataset.cache: fastdl caches in memory only; call cache() "
                             f"without a filename. Received: filename={filename!r}")
        stored = []

        def make():
            if stored:
                yield from stored[0]
                return
            seen = []
            for element in self._arrays():
                seen.append(element)
                yield element
            stored.append(seen)
        return self._derive(make)

    def prefetch(self, buffer_size, name=None):
        """A background thread reads up to ``buffer_size`` elements ahead (``AUTOTUNE``: 2).
        An error in the pipeline surfaces, with its traceback, where the element is read."""
        if buffer_size != AUTOTUNE:
            _check_count("buffer_size", buffer_size)
        size = 2 if buffer_size in (AUTOTUNE, 0) else buffer_size
        done = object()

        def make():
            import queue
            items, stop = queue.Queue(size), threading.Event()

            def produce():
                try:
                    for element in self._arrays():
                        while not stop.is_set():
                            try:
                                items.put((True, element), timeout=0.1)
                                break
                            except queue.Full:
                                pass
                        if stop.is_set():
                            return
                    items.put((True, done))
                except BaseException as err:   # handed to the reader, raised there
                    items.put((False, err))
            worker = threading.Thread(target=produce, daemon=True, name="fastdl-prefetch")
            worker.start()
            try:
                while True:
                    ok, element = items.get()
                    if not ok:
                        raise element
                    if element is done:
                        return
                    yield element
            finally:
                stop.set()
        return self._derive(make)

    def concatenate(self, dataset, name=None):
        """This dataset's elements, then ``dataset``'s."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"Dataset.concatenate: expected a Dataset. Received: {dataset!r}")

        def make():
            return itertools.chain(self._arrays(), dataset._arrays())
        a, b = self._cardinality, dataset._cardinality
        card = INFINITE_CARDINALITY if INFINITE_CARDINALITY in (a, b) else (
            a + b if a >= 0 and b >= 0 else UNKNOWN_CARDINALITY)
        return Dataset(make, card, self._batched if self._batched == dataset._batched else None)


def _buffer_shuffle(items, buffer_size, rng):
    """tf.data's shuffle of ``items`` through a buffer of ``buffer_size``: each output is a
    uniformly drawn buffer slot, refilled by the next item (uniform draws taken 1024 at once)."""
    buffer, draws = [], iter(())

    def slot(bound):
        nonlocal draws
        u = next(draws, None)
        if u is None:
            draws = iter(rng.random(1024).tolist())
            u = next(draws)
        return int(u * bound)
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        i = slot(buffer_size)
        yield buffer[i]
        buffer[i] = item
    while buffer:
        i = slot(len(buffer))
        buffer[i], buffer[-1] = buffer[-1], buffer[i]
        yield buffer.pop()


class _AnyShape(TensorSpec):
    """``output_types`` without ``output_shapes``: the dtype is checked, any shape passes."""

    def __init__(self, dtype):
        super().__init__((), dtype)

    def is_compatible_with(self, array):
        return True


def _signature(types, shapes):
    """``output_types``/``output_shapes`` (one structure, shapes optional) as TensorSpecs."""
    if isinstance(types, dict):
        return {k: _signature(t, None if shapes is None else shapes[k]) for k, t in types.items()}
    if isinstance(types, (tuple, list)):
        return tuple(_signature(t, None if shapes is None else shapes[i])
                     for i, t in enumerate(types))
    return _AnyShape(types) if shapes is None else TensorSpec(shapes, types)


def _conform(element, signature):
    """A generator's element checked against ``output_signature`` and cast to its dtypes."""
    if isinstance(signature, TensorSpec):
        array = np.asarray(element)
        if array.dtype == object or not np.can_cast(array.dtype, signature.dtype, "same_kind"):
            raise TypeError(f"Dataset.from_generator: the generator yielded an element of dtype "
                            f"{array.dtype} where {signature.dtype} was expected")
        if not signature.is_compatible_with(array):
            raise ValueError(f"Dataset.from_generator: the generator yielded an element of shape "
                             f"{array.shape} where {signature.shape} was expected")
        return array.astype(signature.dtype, copy=False)
    if isinstance(signature, dict) and isinstance(element, dict) and \
            set(signature) == set(element):
        return {k: _conform(element[k], s) for k, s in signature.items()}
    if isinstance(signature, (tuple, list)) and isinstance(element, (tuple, list)) and \
            len(signature) == len(element):
        return tuple(_conform(e, s) for e, s in zip(element, signature))
    raise ValueError(f"Dataset.from_generator: the generator yielded {type(element).__name__} "
                     f"{element!r:.200} where output_signature expects the structure "
                     f"{signature!r:.200}")
