"""Label and sequence helpers with Keras's semantics: ``to_categorical`` and ``pad_sequences``."""
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
