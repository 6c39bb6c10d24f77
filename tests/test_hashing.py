"""Keras's Hashing layer and fastdl's string hashes (FarmHash Fingerprint64, SipHash-2-4).

The hashes are checked against pyfarmhash (Google's FarmHash; CI's peers job installs it) and
the SipHash paper's test vectors; the layer against Keras's definition (the bins of the values'
bytes, integers as decimal strings, the mask bin, the encodings) and its config against Keras's
constructor."""
import inspect
import os

import numpy as np
import pytest

import fastdl
from fastdl import _core
from fastdl import layers as L

# hash % N for two large coprime-ish moduli pins all 64 bits of the hash
MODULI = (2 ** 63 - 1, 2 ** 63 - 25)


def _farmhash():
    return pytest.importorskip("farmhash", reason="pyfarmhash is the Fingerprint64 oracle")


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch", reason="real Keras runs on the torch backend here")
    return pytest.importorskip("keras", reason="real Keras is the oracle")


def _hash(layer, x):
    return np.asarray(layer(x))


def _fingerprint(s):
    return _farmhash().fingerprint64(s)


def test_fingerprint64_equals_farmhash_at_every_length():
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 256, n, dtype=np.uint8).tobytes()
             for n in list(range(0, 200)) + [255, 256, 257, 1000, 4097]]
    for m in MODULI:
        assert _core.hash_buckets(items, m).tolist() == [_fingerprint(s) % m for s in items]


@pytest.mark.parametrize("n, want", [(0, 0x726fdb47dd0e0e31), (1, 0x74f839c593dc67fd),
                                     (15, 0xa129ca6149be45e5)])
def test_siphash24_matches_the_papers_test_vectors(n, want):
    # SipHash paper, appendix: key 00 01 .. 0f, message 00 01 .. (n - 1)
    key = (0x0706050403020100, 0x0f0e0d0c0b0a0908)
    for m in MODULI:
        assert _core.hash_buckets([bytes(range(n))], m, key).tolist() == [want % m]


def test_siphash_covers_every_tail_length_and_the_key():
    # 0-7 trailing bytes take different paths; every length gives a different hash, and the
    # two halves of the key both matter
    items = [bytes(range(n)) for n in range(24)]
    h = _core.hash_buckets(items, MODULI[0], (1, 2))
    assert len(set(h.tolist())) == len(items)
    assert (h != _core.hash_buckets(items, MODULI[0], (1, 3))).all()
    assert (h != _core.hash_buckets(items, MODULI[0], (0, 2))).all()


# ------------------------------------------------------------------ the layer
def _bins(values, num_bins):
    """Keras's to_hash_bucket_fast on the bytes TensorFlow writes for each value."""
    return np.array([_fingerprint(v) % num_bins for v in values], dtype=np.int64)


def test_strings_and_integers_hash_to_keras_bins():
    words = np.array([["cat"], ["dog"], [""], ["Grüße"], [b"raw bytes"], ["x" * 100]],
                     dtype=object)
    as_bytes = [w.encode("utf-8") if isinstance(w, str) else w for w in words.ravel()]
    out = _hash(L.Hashing(num_bins=7), words)
    assert out.dtype == np.int64 and out.shape == (6, 1)
    np.testing.assert_array_equal(out.ravel(), _bins(as_bytes, 7))
    ints = np.array([[0, -5, 123456789012], [7, 1, -1]])
    np.testing.assert_array_equal(L.Hashing(num_bins=11)(ints),
                                  _bins([str(v).encode() for v in ints.ravel()], 11).reshape(2, 3))
    # floats are cast to int64 first (toward zero), booleans spelled as TensorFlow does
    floats = np.array([2.9, -2.9, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(L.Hashing(num_bins=11)(floats), _bins([b"2", b"-2", b"0"], 11))
    np.testing.assert_array_equal(L.Hashing(num_bins=5)(np.array([True, False])),
                                  _bins([b"true", b"false"], 5))
    assert not _hash(L.Hashing(num_bins=1), words).any()
    assert _hash(L.Hashing(num_bins=3, dtype="int32"), ints).dtype == np.int32


def test_mask_value_takes_bin_zero():
    words = np.array(["a", "mask", "b", "mask", "c"])
    out = L.Hashing(num_bins=4, mask_value="mask")(words)
    want = 1 + _bins([w.encode() for w in words], 3)
    want[[1, 3]] = 0
    np.testing.assert_array_equal(out, want)
    ints = np.array([3, 0, 9])
    out = L.Hashing(num_bins=4, mask_value=0)(ints)
    np.testing.assert_array_equal(out, [1 + _bins([b"3"], 3)[0], 0, 1 + _bins([b"9"], 3)[0]])
    # with one bin there is no room for a mask bin: Keras hashes everything into bin 0
    assert not _hash(L.Hashing(num_bins=1, mask_value="a"), words).any()
    with pytest.raises(TypeError, match="cannot be compared with numbers"):
        L.Hashing(num_bins=4, mask_value="mask")(ints)


def test_salt_selects_siphash_keyed_by_the_pair():
    words = np.array(["a", "bb", "ccc", "dddd"])
    as_bytes = [w.encode() for w in words]
    one = L.Hashing(num_bins=13, salt=99)
    assert one.salt == [99, 99]
    np.testing.assert_array_equal(one(words), _core.hash_buckets(as_bytes, 13, (99, 99)))
    pair = L.Hashing(num_bins=13, salt=(5, -1))   # int64 bits read as unsigned, as TensorFlow
    np.testing.assert_array_equal(pair(words),
                                  _core.hash_buckets(as_bytes, 13, (5, 2 ** 64 - 1)))


@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
def test_output_modes_encode_the_bins(mode):
    words = np.array([["a", "b", "a"], ["c", "c", "d"]])
    ids = _hash(L.Hashing(num_bins=5), words)
    out = _hash(L.Hashing(num_bins=5, output_mode=mode), words)
    assert out.dtype == np.float32
    eye = np.eye(5, dtype=np.float32)
    if mode == "one_hot":
        np.testing.assert_array_equal(out, eye[ids])
    else:
        counts = eye[ids].sum(axis=1)
        np.testing.assert_array_equal(out, counts if mode == "count" else counts > 0)
    column = _hash(L.Hashing(num_bins=5, output_mode="one_hot"), words[:, :1])
    assert column.shape == (2, 5)    # a trailing axis of 1 is replaced, as in Keras
    assert L.Hashing(num_bins=5, output_mode=mode).compute_output_shape(words.shape) == \
        out.shape


def test_bad_arguments_are_clear_errors():
    for bad in (0, -3, None):
        with pytest.raises(ValueError, match="num_bins"):
            L.Hashing(num_bins=bad)
    with pytest.raises(ValueError, match="tuple of size 2 integers"):
        L.Hashing(num_bins=3, salt="pepper")
    with pytest.raises(ValueError, match="int64 integers"):
        L.Hashing(num_bins=3, salt=2 ** 63)
    with pytest.raises(ValueError, match="output_mode"):
        L.Hashing(num_bins=3, output_mode="tf_idf")
    with pytest.raises(ValueError, match="dtype"):
        L.Hashing(num_bins=3, dtype="float32")
    with pytest.raises(ValueError, match="sparse"):
        L.Hashing(num_bins=3, output_mode="one_hot", sparse=True)
    layer = L.Hashing(num_bins=3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        layer(np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="expects strings or integers"):
        layer(np.array(["a", 3], dtype=object))


def test_config_round_trip_and_keras_signature():
    layer = L.Hashing(num_bins=9, mask_value="", salt=(1, 2), output_mode="count")
    config = layer.get_config()
    again = L.Hashing.from_config(config)
    words = np.array([["x", "", "y"]])
    np.testing.assert_array_equal(again(words), layer(words))
    assert config["salt"] == [1, 2] and config["dtype"] == "float32"
    keras = _keras()
    params = inspect.signature(keras.layers.Hashing.__init__).parameters
    assert {"num_bins", "mask_value", "salt", "output_mode", "sparse"} <= set(params)
    assert set(config) - {"name", "trainable", "dtype"} <= set(params)


@pytest.mark.parametrize("name", ["h.fdl", "h.keras"])
def test_model_with_hashed_string_feature_trains_and_saves(tmp_path, name):
    if name.endswith(".keras"):
        pytest.importorskip("h5py", reason="the .keras format needs h5py")
    rng = np.random.default_rng(1)
    names = np.array(["paris", "rome", "oslo", "lima", "kyiv", "doha"])
    hashing = L.Hashing(num_bins=256, salt=3)
    assert len(set(_hash(hashing, names).tolist())) == 6   # no two cities share a bin
    cities = names[rng.integers(0, 6, 64)]
    y = (np.isin(cities, ["paris", "oslo", "kyiv"])).astype(np.float32)
    model = fastdl.models.Sequential([
        L.Input(shape=(1,), dtype="string"), hashing,
        L.Embedding(256, 4), L.Flatten(), L.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    model.fit(cities[:, None], y, epochs=40, batch_size=16, verbose=0)
    expected = model.predict(cities[:, None], verbose=0)
    assert model.evaluate(cities[:, None], y, verbose=0)[1] == 1.0
    model.save(tmp_path / name)
    loaded = fastdl.models.load_model(tmp_path / name)
    assert loaded.layers[0].salt == [3, 3]
    np.testing.assert_allclose(loaded.predict(cities[:, None], verbose=0), expected, rtol=1e-6)


# ------------------------------------------------------------------ lookups' OOV ids
def test_lookups_hash_out_of_vocabulary_values_into_their_oov_ids():
    words = np.array(["a", "zz", "q", "b", "Grüße"])
    # no mask: OOV ids 0..2, then the vocabulary; unknown strings hash (Keras's farmhash path)
    got = _hash(L.StringLookup(vocabulary=["a", "b"], num_oov_indices=3), words)
    fp = [_fingerprint(w.encode("utf-8")) % 3 for w in words]
    np.testing.assert_array_equal(got, [3, fp[1], fp[2], 4, fp[4]])
    # a mask token takes id 0 and shifts the OOV ids to 1..4; a salt keys SipHash
    layer = L.StringLookup(vocabulary=["a", "b"], num_oov_indices=4, mask_token="",
                           oov_method="farmhash", salt=11)
    got = _hash(layer, np.array(["", "zz", "a"]))
    np.testing.assert_array_equal(got, [0, 1 + _core.hash_buckets([b"zz"], 4, (11, 11))[0], 5])
    again = L.StringLookup.from_config(layer.get_config())
    assert again.salt == [11, 11] and again.oov_method == "farmhash"
    np.testing.assert_array_equal(_hash(again, np.array(["", "zz", "a"])), got)
    # integers: floormod by default, their decimal strings hashed with oov_method="farmhash"
    ints = np.array([4, 77, -3, 9])
    np.testing.assert_array_equal(
        _hash(L.IntegerLookup(vocabulary=[4, 9], num_oov_indices=3), ints),
        [3, 77 % 3, -3 % 3, 4])
    np.testing.assert_array_equal(
        _hash(L.IntegerLookup(vocabulary=[4, 9], num_oov_indices=3, oov_method="farmhash"),
              ints), [3, _fingerprint(b"77") % 3, _fingerprint(b"-3") % 3, 4])
    with pytest.raises(ValueError, match="oov_method"):
        L.StringLookup(vocabulary=["a"], oov_method="sha")
