"""Array helpers with Keras's semantics: ``to_categorical``, ``normalize``, ``pad_sequences`` and
``split_dataset``."""
import random

import numpy as np


def to_categorical(y, num_classes=None):
    """One-hot encode integer class labels as float32.

    ``y``: an int array-like (bool, or floats holding whole numbers, are accepted). As in Keras, a
    trailing axis of size 1 is dropped (``(N, 1)`` -> ``(N, num_classes)``), and the output has shape
    ``y.shape + (num_classes,)``. ``num_classes`` defaults to ``max(y) + 1``. Labels that are negative
    or ``>= num_classes`` raise ``ValueError`` (Keras would wrap or fail with an IndexError).
    """
    y = np.asarray(y)
    if y.dtype.kind == "f":
        bad = y[~(np.isfinite(y) & (y == np.round(y)))]
        if bad.size:
            raise ValueError(f"to_categorical: y must hold whole numbers, received {y.dtype} values "
                             f"such as {bad[:3].tolist()}")
    elif y.dtype.kind not in "biu":
        raise TypeError(f"to_categorical: y must be an integer array-like, received dtype {y.dtype}")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise TypeError(f"to_categorical: num_classes must be an int or None, received "
                            f"{type(num_classes).__name__} {num_classes!r}")
        if num_classes < 1:
            raise ValueError(f"to_categorical: num_classes must be >= 1, received {num_classes}")
    shape = y.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = y.reshape(-1)
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, received {labels.min()}")
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("to_categorical: cannot infer num_classes from an empty y; pass num_classes")
        num_classes = int(labels.max()) + 1
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(f"to_categorical: labels must be < num_classes={num_classes}, "
                         f"received {labels.max()}")
    labels = labels.astype(np.int64)
    out = np.zeros((labels.size, int(num_classes)), dtype=np.float32)
    out[np.arange(labels.size), labels] = 1.0
    return out.reshape(shape + (int(num_classes),))


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Pad (and truncate) a list of sequences to one ``(num_samples, maxlen, ...)`` array, as Keras.

    ``maxlen`` defaults to the longest sequence (0 for an empty list, where Keras raises).
    ``truncating``: ``"pre"`` drops values from the start, ``"post"`` from the end; ``padding``:
    ``"pre"`` pads before, ``"post"`` after, with ``value``. Elements may themselves be arrays (e.g.
    ``(len, features)``): their trailing shape is taken from the first non-empty sequence and must
    agree. Values are cast to ``dtype`` as NumPy casts. Errors (``ValueError``): a non-iterable
    argument or element, an unknown padding or truncating mode, a string ``value`` with a non-string,
    non-object ``dtype``, a sample shape mismatch, a negative ``maxlen``; a non-int ``maxlen`` is a
    ``TypeError``.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError(f"pad_sequences: `sequences` must be iterable, received "
                         f"{type(sequences).__name__}")
    if padding not in ("pre", "post"):
        raise ValueError(f'pad_sequences: Padding type "{padding}" not understood; use "pre" or "post"')
    if truncating not in ("pre", "post"):
        raise ValueError(f'pad_sequences: Truncating type "{truncating}" not understood; '
                         'use "pre" or "post"')
    if maxlen is not None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
            raise TypeError(f"pad_sequences: maxlen must be an int or None, received "
                            f"{type(maxlen).__name__} {maxlen!r}")
        if maxlen < 0:
            raise ValueError(f"pad_sequences: maxlen must be >= 0, received {maxlen}")
        maxlen = int(maxlen)
    lengths, sample_shape = [], None
    for i, s in enumerate(sequences):
        try:
            n = len(s)
        except TypeError:
            raise ValueError(f"pad_sequences: `sequences` must be a list of iterables. Found "
                             f"non-iterable at position {i}: {s!r}") from None
        lengths.append(n)
        if sample_shape is None and n:
            sample_shape = np.asarray(s).shape[1:]
    sample_shape = sample_shape or ()
    if maxlen is None:
        maxlen = max(lengths, default=0)
    is_text = np.issubdtype(np.dtype(dtype), np.str_)
    if isinstance(value, str) and np.dtype(dtype) != object and not is_text:
        raise ValueError(f"pad_sequences: `dtype` {dtype} is not compatible with `value`'s type: "
                         f"{type(value)}. Set dtype=object for variable-length strings.")
    x = np.full((len(lengths), maxlen) + tuple(sample_shape), value, dtype=dtype)
    if maxlen == 0:
        return x
    for i, s in enumerate(sequences):
        if not lengths[i]:
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        trunc = np.asarray(trunc, dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(f"pad_sequences: Shape of sample {trunc.shape[1:]} of sequence at "
                             f"position {i} is different from expected shape {sample_shape}")
        if padding == "post":
            x[i, :len(trunc)] = trunc
        else:
            x[i, -len(trunc):] = trunc
    return x


def normalize(x, axis=-1, order=2):
    """``x`` divided by its L-``order`` norm along ``axis`` (zero vectors stay zero), as Keras.

    ``x``: a numeric array-like; the result has its shape, and NumPy's dtype for ``x / norm``
    (float32 stays float32, integers give float64). ``order``: an int >= 1. ``axis``: an int. (For
    NumPy input Keras expands the norm on axis -1 whatever ``axis`` is, and returns a 1-D input as
    ``(1, n)``; fastdl divides along ``axis`` and keeps the shape, as Keras does for tensors.)
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"normalize: x must be a numeric array, received dtype {x.dtype}")
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"normalize: order must be an int >= 1, received {order!r}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"normalize: axis must be an int, received {type(axis).__name__} {axis!r}")
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"normalize: axis {axis} is out of range for an array of shape {x.shape}")
    norm = np.linalg.norm(x, ord=int(order), axis=int(axis), keepdims=True)
    norm[norm == 0] = 1
    return x / norm


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split an array, or a tuple/list of arrays of one length, into a left and a right part.

    ``left_size``/``right_size``: a float in (0, 1) (a fraction, rounded as Keras rounds it) or an
    int in (0, N) (a count); the one left None is the complement of the other; if both are given and
    add up to less than N, the samples between the two parts are left out, as in Keras. ``shuffle``:
    permute the samples first with Python's ``random.Random(seed)`` (the permutation Keras's
    ``random.seed(seed); random.shuffle`` gives; fastdl leaves the global ``random`` state alone).

    Returns ``(left, right)``, each an array (for an array) or a tuple of arrays (for a tuple or
    list), which ``fit`` takes directly (Keras returns ``tf.data.Dataset``s). A
    ``fastdl.data.Dataset`` is split sample by sample (a batched one is unbatched, and both parts
    batched again by its first batch's size) into two Datasets, as Keras splits a tf.data one.
    """
    from fastdl.data.dataset import Dataset
    if isinstance(dataset, Dataset):
        return _split_dataset_pipeline(dataset, left_size, right_size, shuffle, seed)
    if isinstance(dataset, np.ndarray):
        arrays, single = [dataset], True
    elif isinstance(dataset, (tuple, list)) and dataset:
        arrays, single = [np.asarray(a) for a in dataset], False
    else:
        raise TypeError(f"split_dataset: dataset must be a NumPy array or a non-empty tuple/list of "
                        f"arrays, received {type(dataset).__name__}")
    lengths = {len(a) if a.ndim else None for a in arrays}
    if len(lengths) != 1 or None in lengths:
        raise ValueError(f"split_dataset: the arrays must have one length (first axis), received "
                         f"shapes {[a.shape for a in arrays]}")
    total = lengths.pop()
    left, right = _split_sizes(left_size, right_size, total)
    order = list(range(total))
    if shuffle:
        random.Random(seed).shuffle(order)
    order = np.asarray(order, dtype=np.int64)
    parts = [tuple(a[idx] for a in arrays) for idx in (order[:left], order[total - right:])]
    return tuple(p[0] for p in parts) if single else tuple(parts)


def _split_dataset_pipeline(dataset, left_size, right_size, shuffle, seed):
    from fastdl.data.dataset import Dataset, _stack, flatten
    if dataset._cardinality == -1:
        raise ValueError("split_dataset: the Dataset is infinite (repeat() without a count)")
    batch_size = None
    if dataset._batched:
        first = next(dataset._arrays(), None)
        batch_size = len(flatten(first)[0]) if first is not None else None
        dataset = dataset.unbatch()
    samples = list(dataset._arrays())
    total = len(samples)
    left, right = _split_sizes(left_size, right_size, total)
    order = list(range(total))
    if shuffle:
        random.Random(seed).shuffle(order)
    parts = []
    for idx in (order[:left], order[total - right:]):
        part = Dataset.from_tensor_slices(_stack([samples[i] for i in idx], "split_dataset"))
        parts.append(part.batch(batch_size) if batch_size else part)
    return tuple(parts)


def _split_sizes(left_size, right_size, total):
    """Keras's rules for (left_size, right_size) -> two positive counts adding up to at most ``total``."""
    if left_size is None and right_size is None:
        raise ValueError("split_dataset: at least one of left_size and right_size must be given")
    sizes = []
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if size is None:
            sizes.append(None)
        elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            if not 0 < size < total:
                raise ValueError(f"split_dataset: {name} must be a positive int smaller than the "
                                 f"{total} samples, or a float in (0, 1), received {size}")
            sizes.append(int(size))
        elif isinstance(size, (float, np.floating)):
            if not 0 < size < 1:
                raise ValueError(f"split_dataset: {name} must be a float in (0, 1) or a positive int "
                                 f"smaller than the {total} samples, received {size}")
            sizes.append(round(float(size) * total))
        else:
            raise TypeError(f"split_dataset: {name} must be an int, a float or None, received "
                            f"{type(size).__name__} {size!r}")
    if isinstance(left_size, float) and isinstance(right_size, float) and left_size + right_size > 1:
        raise ValueError(f"split_dataset: left_size + right_size = {left_size + right_size} is more "
                         "than 1")
    left, right = sizes
    left = total - right if left is None else left
    right = total - left if right is None else right
    if left + right > total:
        raise ValueError(f"split_dataset: left_size + right_size = {left + right} samples is more "
                         f"than the {total} there are")
    if left == 0 or right == 0:
        raise ValueError(f"split_dataset: with {total} samples, left_size={left_size} and "
                         f"right_size={right_size} leave the {'left' if left == 0 else 'right'} part "
                         "empty")
    return left, right
