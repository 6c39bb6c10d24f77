"""Keras's dataset builders, returning ``fastdl.data.Dataset``s: ``image_dataset_from_directory``,
``text_dataset_from_directory`` and ``timeseries_dataset_from_array``.

The directory builders index files as Keras does (class sub-folders in sorted order, files sorted
within each, searched recursively; with ``shuffle`` the list is permuted by
``np.random.RandomState(seed)``, so a seed picks the same training/validation split as Keras).
"""
import os

import numpy as np

from fastdl.data.dataset import AUTOTUNE, Dataset

IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
LABEL_MODES = ("int", "categorical", "binary", None)


def _default_seed(seed, shuffle):
    """Keras draws a seed when none is given; fastdl draws it from its own random state, so
    ``keras.utils.set_random_seed`` makes it reproducible."""
    if seed is not None or not shuffle:
        return seed
    from fastdl.utils.rng import get_rng
    return int(get_rng().integers(1_000_000))


def check_validation_split(validation_split, subset, shuffle, seed):
    if validation_split is not None and not (isinstance(validation_split, (int, float))
                                             and 0 < validation_split < 1):
        raise ValueError("`validation_split` must be between 0 and 1, received: "
                         f"{validation_split!r}")
    if bool(validation_split) != bool(subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely. "
                         f"Received: validation_split={validation_split!r}, subset={subset!r}")
    if subset not in ("training", "validation", "both", None):
        raise ValueError('`subset` must be either "training", "validation" or "both", '
                         f"received: {subset!r}")
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide a "
                         "`seed` argument, to make sure that there is no overlap between the "
                         "training and validation subset.")


def index_directory(directory, labels, formats, class_names, shuffle, seed, follow_links,
                    verbose):
    """``(file_paths, labels, class_names)`` of the files under ``directory`` (see the module
    docstring); ``labels`` "inferred" (from sub-folders), None, or one label per file."""
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} does not exist or is not a directory")
    inferred = isinstance(labels, str)
    if inferred:
        folders = sorted(d for d in os.listdir(directory)
                         if os.path.isdir(os.path.join(directory, d)) and not d.startswith("."))
        if class_names is not None:
            if not set(class_names) <= set(folders):
                raise ValueError("The `class_names` passed did not match the names of the "
                                 f"subdirectories of the target directory. Expected: {folders} "
                                 f"(or a subset of it), but received: class_names={class_names}")
            folders = list(class_names)
    else:
        if class_names is not None:
            raise ValueError("class_names applies to labels='inferred' only (with labels=None "
                             "there are no classes; with a list of labels they are its sorted "
                             f"values). Received: labels={labels!r:.100}")
        folders = [""]
    paths, found = [], []
    for index, folder in enumerate(folders):
        root = os.path.join(directory, folder)
        for dirpath, _, files in sorted(os.walk(root, followlinks=follow_links),
                                        key=lambda entry: entry[0]):
            for name in sorted(files):
                if name.lower().endswith(formats):
                    paths.append(os.path.join(dirpath, name))
                    found.append(index)
    if inferred:
        labels = np.asarray(found, dtype=np.int32)
    elif labels is None:
        folders = None
    else:
        if len(labels) != len(paths):
            raise ValueError("Expected the lengths of `labels` to match the number of files in "
                             f"the target directory. len(labels) is {len(labels)} while we found "
                             f"{len(paths)} files in directory {directory}.")
        folders = [str(label) for label in sorted(set(labels))]
        labels = np.asarray(labels)
    if verbose:
        print(f"Found {len(paths)} files." if labels is None else
              f"Found {len(paths)} files belonging to {len(folders)} classes.")
    if shuffle:
        np.random.RandomState(seed).shuffle(paths)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    return paths, labels, folders


def _split(paths, labels, validation_split, subset, verbose=True):
    if not validation_split:
        return paths, labels
    n_val = int(validation_split * len(paths))
    if subset == "training":
        if verbose:
            print(f"Using {len(paths) - n_val} files for training.")
        return paths[:len(paths) - n_val], None if labels is None else labels[:len(paths) - n_val]
    if verbose:
        print(f"Using {n_val} files for validation.")
    return paths[len(paths) - n_val:], None if labels is None else labels[len(paths) - n_val:]


def _check_arguments(labels, label_mode, batch_size):
    if not (labels is None or isinstance(labels, str) and labels == "inferred"
            or isinstance(labels, (list, tuple, np.ndarray))):
        raise ValueError('`labels` argument should be a list/tuple of integer labels, of the '
                         'same size as the number of files in the target directory. If you wish '
                         'to infer the labels from the subdirectory names in the target '
                         'directory, pass `labels="inferred"`. If you wish to get a dataset that '
                         f'only contains files (no labels), pass `labels=None`. Received: '
                         f'labels={labels!r}')
    if label_mode not in LABEL_MODES:
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", '
                         f"or None. Received: label_mode={label_mode!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None. Received: {batch_size!r}")


def _encode_labels(labels, label_mode, num_classes):
    if label_mode == "binary":
        return labels.astype(np.float32).reshape(-1, 1)
    if label_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[labels]
    return labels.astype(np.int32)


def _build(paths, labels, label_mode, class_names, load, batch_size, shuffle, seed):
    """Paths (and labels) -> loaded elements, shuffled and batched as Keras does. (Shuffling
    the paths before loading gives the same elements as Keras's shuffle after it, and loads
    only what is read.)"""
    ds = Dataset.from_tensor_slices(np.asarray(paths, dtype=str))
    if labels is not None:
        ds = Dataset.zip((ds, Dataset.from_tensor_slices(
            _encode_labels(np.asarray(labels), label_mode, len(class_names)))))
    if shuffle:
        ds = ds.shuffle(batch_size * 8 if batch_size is not None else 1024, seed=seed)
    ds = ds._map((lambda path, label: (load(str(path)), label)) if labels is not None
                 else (lambda path: load(str(path))), num_parallel_calls=AUTOTUNE)
    if batch_size is not None:
        ds = ds.batch(batch_size)
    ds = ds.prefetch(AUTOTUNE)
    ds.class_names = class_names
    ds.file_paths = list(paths)
    return ds


def _from_directory(directory, labels, label_mode, class_names, batch_size, shuffle, seed,
                    validation_split, subset, follow_links, verbose, formats, what, load):
    _check_arguments(labels, label_mode, batch_size)
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    check_validation_split(validation_split, subset, shuffle, seed)
    seed = _default_seed(seed, shuffle)
    paths, found, class_names = index_directory(directory, labels, formats, class_names,
                                                shuffle, seed, follow_links, verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 '
                         f"class_names. Received: class_names={class_names}")
    subsets = ["training", "validation"] if subset == "both" else [subset]
    datasets = []
    for part in subsets:
        part_paths, part_labels = _split(paths, found, validation_split, part, verbose)
        if not part_paths:
            kind = f"{part} " if part else ""
            raise ValueError(f"No {kind}{what} found in directory {directory}. Allowed "
                             f"formats: {formats}")
        datasets.append(_build(part_paths, part_labels, label_mode, class_names, load,
                               batch_size, shuffle, seed))
    return datasets if subset == "both" else datasets[0]


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, verbose=True):
    """A ``fastdl.data.Dataset`` of ``(images, labels)`` batches from image files in class
    sub-folders of ``directory`` (Keras's arguments; ``subset="both"`` returns
    ``[training, validation]``). Images are float32 (batch, height, width, channels) in 0..255,
    resized with Pillow's filter for ``interpolation``; labels int32 (``"int"``), float32 one-hot
    (``"categorical"``) or float32 (batch, 1) (``"binary"``). The dataset has ``class_names``
    and ``file_paths``. Needs Pillow (``pip install "fastdl[image]"``)."""
    from fastdl.utils import image_utils
    image_utils.pil_image()     # the install hint now, not in the first batch
    if color_mode not in image_utils.COLOR_MODES:
        raise ValueError('`color_mode` must be one of {"rgb", "rgba", "grayscale"}. '
                         f"Received: color_mode={color_mode!r}")
    image_size = image_utils._size(image_size, "image_size")
    image_utils._resample(interpolation)
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be "
                         "set to `True`.")
    data_format = image_utils._data_format(data_format)

    def load(path):
        image = image_utils.load_image_array(path, image_size, color_mode, interpolation,
                                             crop_to_aspect_ratio, pad_to_aspect_ratio)
        return image.transpose(2, 0, 1) if data_format == "channels_first" else image
    return _from_directory(directory, labels, label_mode, class_names, batch_size, shuffle,
                           seed, validation_split, subset, follow_links, verbose, IMAGE_FORMATS,
                           "images", load)


def text_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                class_names=None, batch_size=32, max_length=None, shuffle=True,
                                seed=None, validation_split=None, subset=None,
                                follow_links=False, verbose=True):
    """A ``fastdl.data.Dataset`` of ``(texts, labels)`` batches from the ``.txt`` files in class
    sub-folders of ``directory`` (Keras's arguments). A text is the file decoded as UTF-8 (a
    NumPy str; Keras gives bytes), cut to ``max_length`` characters if given."""
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(
            max_length, (int, np.integer)) or max_length < 1):
        raise ValueError(f"max_length must be a positive int or None. Received: {max_length!r}")

    def load(path):
        with open(path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"text_dataset_from_directory: {path} is not UTF-8 text "
                             f"({err})") from None
        return np.asarray(text if max_length is None else text[:max_length])
    return _from_directory(directory, labels, label_mode, class_names, batch_size, shuffle,
                           seed, validation_split, subset, follow_links, verbose, (".txt",),
                           "text files", load)


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None):
    """A ``fastdl.data.Dataset`` of sliding windows over ``data`` (Keras's arguments): window
    ``i`` is ``data[s + p_i : s + p_i + sequence_length * sampling_rate : sampling_rate]`` with
    ``s = start_index`` and ``p_i = i * sequence_stride``; its target is ``targets[s + p_i]``
    (windows stop where ``end_index``, the data or the targets end). Batches of ``batch_size``
    (None: single windows); ``shuffle`` permutes the windows (``seed``)."""
    data = np.asarray(data)
    n = len(data)
    for name, value in (("sequence_length", sequence_length),
                        ("sequence_stride", sequence_stride), ("sampling_rate", sampling_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
    if start_index:
        if start_index < 0:
            raise ValueError(f"`start_index` must be 0 or greater. Received: "
                             f"start_index={start_index}")
        if start_index >= n:
            raise ValueError("`start_index` must be lower than the length of the data. "
                             f"Received: start_index={start_index}, for data of length {n}")
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError("`end_index` must be higher than `start_index`. Received: "
                             f"start_index={start_index}, and end_index={end_index} ")
        if end_index >= n:
            raise ValueError("`end_index` must be lower than the length of the data. Received: "
                             f"end_index={end_index}, for data of length {n}")
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: end_index={end_index}")
    if sampling_rate >= n:
        raise ValueError("`sampling_rate` must be lower than the length of the data. Received: "
                         f"sampling_rate={sampling_rate}, for data of length {n}")
    if sequence_stride >= n:
        raise ValueError("`sequence_stride` must be lower than the length of the data. Received: "
                         f"sequence_stride={sequence_stride}, for data of length {n}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None. Received: {batch_size!r}")
    start = start_index or 0
    end = end_index if end_index is not None else n
    num_seqs = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        targets = np.asarray(targets)
        num_seqs = min(num_seqs, len(targets))
    positions = np.arange(0, max(num_seqs, 0), sequence_stride)
    if shuffle:
        if seed is None:
            seed = _default_seed(None, True)
        np.random.RandomState(seed).shuffle(positions)
    window = np.arange(0, sequence_length * sampling_rate, sampling_rate)
    ds = Dataset.from_tensor_slices(positions)._map(lambda p: data[start + p + window])
    if targets is not None:
        ds = Dataset.zip((ds, Dataset.from_tensor_slices(positions)._map(
            lambda p: targets[start + p])))
    if batch_size is not None:
        if shuffle:
            ds = ds.shuffle(buffer_size=batch_size * 8, seed=seed)
        ds = ds.batch(batch_size)
    elif shuffle:
        ds = ds.shuffle(buffer_size=1024, seed=seed)
    return ds
