"""Reuters newswire topics: 11,228 newswires from Reuters labelled over 46 topics, as sequences of
word ids ranked by frequency (raw id 1 = the most frequent word). Read from Keras's ``reuters.npz``
and ``reuters_word_index.json``."""
from fastdl.datasets import _files, _sequences, _split

_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
URL = _ORIGIN + "reuters.npz"
SHA256 = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
WORD_INDEX_URL = _ORIGIN + "reuters_word_index.json"
WORD_INDEX_MD5 = "4d44cc38712099c9e383dc6e5f11a921"  # the only checksum published for it
# Bounds from the official files, past which reading stops with DatasetFormatError: reuters.npz holds
# 11,228 newswires of about 1.6 million word ids in all (a few MB once decompressed);
# reuters_word_index.json about 31,000 words in under 1 MB.
MAX_NPZ_BYTES = 64 << 20  # both arrays together, decompressed
MAX_NPZ_ITEMS = 1 << 23  # items in one array, counting each newswire list and each word id
MAX_WORD_INDEX_BYTES = 16 << 20
LABEL_NAMES = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply",
    "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi",
    "money-fx", "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin", "strategic-metal",
    "livestock", "retail", "ipi", "iron-steel", "rubber", "heat", "jobs", "lei", "bop", "zinc",
    "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog", "lead")


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113,
              start_char=1, oov_char=2, index_from=3):
    """Load Reuters as ``(x_train, y_train), (x_test, y_test)`` with Keras's processing.

    ``x_*``: 1-D object arrays of lists of ints; ``y_*``: integer topic labels (0-45). In Keras's
    order: shuffle all newswires with ``np.random.RandomState(seed)``; prepend ``start_char`` (unless
    None) and add ``index_from`` to every raw id; with ``maxlen``, keep only sequences SHORTER than
    ``maxlen`` (start_char included); ``num_words`` defaults to the largest id (which, as in Keras,
    then counts as out of range); ids outside ``[skip_top, num_words)`` become ``oov_char`` (dropped
    when it is None); the first ``int(N * (1 - test_split))`` are training, the rest test.

    ``path``: a bare name is looked up in the fastdl then Keras cache and downloaded there
    (sha256-checked), never read from the working folder; any other path is read as is. The
    sequences are an object array: its pickle is read only by fastdl's restricted unpickler (NumPy
    arrays and plain lists, nothing else). A malformed file, or more than the official file holds
    (``MAX_NPZ_BYTES``, ``MAX_NPZ_ITEMS``), raises ``DatasetFormatError`` naming it.
    """
    loader = "reuters.load_data"
    args = _sequences.check_args(loader, num_words=num_words, skip_top=skip_top, maxlen=maxlen,
                                 seed=seed, start_char=start_char, oov_char=oov_char,
                                 index_from=index_from)
    test_split = _split.check_test_split(loader, test_split)
    source = _files.find("The Reuters data set (reuters.npz)", path, ["reuters.npz"],
                         remote={"url": URL, "sha256": SHA256})
    source = _files.file_in(source, "reuters.npz")
    arrays = _files.load_npz(source, ["x", "y"], official_sha256=SHA256, max_bytes=MAX_NPZ_BYTES,
                             max_items=MAX_NPZ_ITEMS)
    rows = _sequences.raw_sequences(arrays["x"], f"{source}[x]")
    labels = _sequences.labels(arrays["y"], len(rows), f"{source}[y]")
    order = _split.shuffled_order(loader, len(rows), args.pop("seed"))
    seqs, keep = _sequences.process([rows[i] for i in order], **args)
    if maxlen is not None and not seqs:  # Keras fails here too, less clearly (max() of nothing)
        raise ValueError(f"{loader}: after filtering for sequences shorter than maxlen={maxlen}, no "
                         "sequence was kept. Increase maxlen.")
    labels = labels[order][keep]
    n = _split.train_count(len(seqs), test_split)
    return ((_sequences.object_array(seqs[:n]), labels[:n]),
            (_sequences.object_array(seqs[n:]), labels[n:]))


def get_word_index(path="reuters_word_index.json"):
    """The ``{word: raw id}`` dict of ``reuters_word_index.json`` (ids before ``index_from`` is added).

    ``path`` as in ``load_data``: a bare name is looked up in the caches and downloaded there (md5
    checked). A malformed file raises ``DatasetFormatError``.
    """
    source = _files.find("The Reuters word index (reuters_word_index.json)", path,
                         ["reuters_word_index.json"],
                         remote={"url": WORD_INDEX_URL, "md5": WORD_INDEX_MD5})
    source = _files.file_in(source, "reuters_word_index.json")
    return _sequences.parse_word_index(_files.read_file(source, limit=MAX_WORD_INDEX_BYTES), source)


def get_label_names():
    """The 46 topic names, indexed by label, as in Keras."""
    return LABEL_NAMES
