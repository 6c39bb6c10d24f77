"""Keras's HashedCrossing layer: the bins of TensorFlow's ``sparse.cross_hashed``.

The expected bins come from the definition, written here in Python integers: each feature's
64-bit value (a string's FarmHash Fingerprint64 from pyfarmhash, CI's peers job installs it; an
integer's int64 bits) folded into 0xDECAFCAFFE with TensorFlow's FingerprintCat64, modulo
num_bins. Keras's HashedCrossing itself needs TensorFlow, which CI does not install; its
constructor signature is checked against real Keras."""
import inspect
import os

import numpy as np
import pytest

import fastdl
from fastdl import _core
from fastdl import layers as L

M64 = 2 ** 64 - 1
MUL = 0xC6A4A7935BD1E995


def _shift_mix(v):
    return v ^ (v >> 47)


def _cat(fp1, fp2):
    """TensorFlow's FingerprintCat64 on Python ints (mod 2**64)."""
    h = fp1 ^ MUL
    h ^= (_shift_mix((fp2 * MUL) & M64) * MUL) & M64
    h = (h * MUL) & M64
    return _shift_mix((_shift_mix(h) * MUL) & M64)


def _value(v):
    if isinstance(v, (str, bytes)):
        farmhash = pytest.importorskip("farmhash", reason="pyfarmhash is the Fingerprint64 oracle")
        return farmhash.fingerprint64(v.encode("utf-8") if isinstance(v, str) else v)
    return int(v) & M64


def _crossed(columns, num_bins):
    """The definition, row by row."""
    out = []
    for row in zip(*[np.asarray(c, dtype=object).ravel().tolist() for c in columns]):
        h = 0xDECAFCAFFE
        for v in row:
            h = _cat(h, _value(v))
        out.append(h % num_bins)
    return np.array(out, dtype=np.int64).reshape(np.shape(columns[0]))


CITIES = np.array(["A", "B", "A", "B", "A", "Grüße", "", "x" * 40])
CODES = np.array([101, 101, 101, 102, 102, -5, 2 ** 62, 0], dtype=np.int64)
SMALL = np.array([3, -1, 0, 7, 9, 1, 2, 255], dtype=np.int32)


@pytest.mark.parametrize("columns", [(CITIES, CODES), (CODES, CITIES), (CITIES, CODES, SMALL),
                                     (SMALL, CODES), (CITIES, CITIES[::-1])],
                         ids=["str-int", "int-str", "three", "int32-int64", "str-str"])
@pytest.mark.parametrize("num_bins", [1, 5, 1000003, 2 ** 62 + 1])
def test_bins_are_tensorflows_cross_hashed(columns, num_bins):
    got = np.asarray(L.HashedCrossing(num_bins=num_bins)(columns))
    assert got.dtype == np.int64 and got.shape == CITIES.shape
    np.testing.assert_array_equal(got, _crossed(columns, num_bins))


def test_input_forms_and_order():
    layer = L.HashedCrossing(num_bins=97)
    want = _crossed((CITIES, CODES), 97)
    # (batch, 1) columns, lists, bytes, unsigned and object arrays give the same bins
    np.testing.assert_array_equal(layer((CITIES[:, None], CODES[:, None])), want[:, None])
    np.testing.assert_array_equal(layer([CITIES.tolist(), CODES.tolist()]), want)
    as_bytes = np.array([c.encode("utf-8") for c in CITIES], dtype=object)
    np.testing.assert_array_equal(layer((as_bytes, CODES)), want)
    np.testing.assert_array_equal(layer((CITIES, SMALL.astype(np.uint8).astype(np.uint64))),
                                  _crossed((CITIES, SMALL.astype(np.uint8)), 97))
    # scalars cross to a scalar
    assert np.asarray(layer(("A", 101))).shape == ()
    assert int(np.asarray(layer(("A", 101)))) == want[0]
    # the cross is ordered: swapping the features changes the bins
    assert (np.asarray(L.HashedCrossing(num_bins=2 ** 40)((CODES, CITIES))) !=
            np.asarray(L.HashedCrossing(num_bins=2 ** 40)((CITIES, CODES)))).all()


def test_fingerprint64_is_the_full_hash_of_hash_buckets():
    items = [bytes(range(n)) for n in range(70)] + ["Grüße".encode("utf-8")]
    full = _core.fingerprint64(items)
    assert full.dtype == np.uint64 and full.shape == (len(items),)
    for m in (2 ** 63 - 1, 2 ** 63 - 25):
        np.testing.assert_array_equal((full % np.uint64(m)).astype(np.int64),
                                      _core.hash_buckets(items, m))
    assert _core.fingerprint64([]).shape == (0,)


def test_one_hot_and_dtype():
    ids = np.asarray(L.HashedCrossing(num_bins=6)((CITIES, CODES)))
    eye = np.eye(6, dtype=np.float32)
    out = np.asarray(L.HashedCrossing(num_bins=6, output_mode="one_hot")((CITIES, CODES)))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, eye[ids])
    column = L.HashedCrossing(num_bins=6, output_mode="one_hot")((CITIES[:, None], CODES[:, None]))
    np.testing.assert_array_equal(column, eye[ids])   # the trailing 1 is replaced, as in Keras
    assert np.asarray(L.HashedCrossing(num_bins=6, dtype="int32")((CITIES, CODES))).dtype == \
        np.int32
    layer = L.HashedCrossing(num_bins=6, output_mode="one_hot")
    assert layer.compute_output_shape([(None, 1), (None, 1)]) == (None, 6)
    assert layer.compute_output_shape([(None,), (None,)]) == (None, 6)
    assert L.HashedCrossing(num_bins=6).compute_output_shape([(None, 1), (None, 1)]) == (None, 1)


def test_bad_input_is_a_clear_error():
    layer = L.HashedCrossing(num_bins=5)
    cases = [
        (CITIES, "list or tuple of inputs"),
        ((CITIES,), "at least two inputs"),
        ((CITIES, CODES[:3]), "equal shape"),
        ((CITIES[:, None, None], CODES[:, None, None]), r"shape `\(\)`"),
        ((np.stack([CITIES, CITIES], 1), np.stack([CODES, CODES], 1)), r"shape `\(\)`"),
        ((CITIES, CODES.astype(np.float32)), "integer or string dtype"),
        ((CITIES, CODES > 0), "integer or string dtype"),
        ((CITIES, np.array([2 ** 63] * 8, dtype=np.uint64)), "2\\*\\*63"),
    ]
    for inputs, message in cases:
        with pytest.raises(ValueError, match=message):
            layer(inputs)
    with pytest.raises(TypeError, match="expects strings or integers"):
        layer((np.array(["a", 3], dtype=object), np.array([1, 2])))
    for bad, error in ((0, ValueError), (-1, ValueError), (None, TypeError), (2.5, TypeError)):
        with pytest.raises(error, match="num_bins"):
            L.HashedCrossing(num_bins=bad)
    with pytest.raises(ValueError, match="output_mode"):
        L.HashedCrossing(num_bins=3, output_mode="multi_hot")
    with pytest.raises(ValueError, match="sparse"):
        L.HashedCrossing(num_bins=3, output_mode="one_hot", sparse=True)
    with pytest.raises(ValueError, match="dtype"):
        L.HashedCrossing(num_bins=3, dtype="float32")


def test_config_round_trip_and_keras_signature():
    layer = L.HashedCrossing(num_bins=9, output_mode="one_hot", name="cross")
    config = layer.get_config()
    again = L.HashedCrossing.from_config(config)
    np.testing.assert_array_equal(again((CITIES, CODES)), layer((CITIES, CODES)))
    assert config["num_bins"] == 9 and config["dtype"] == "float32" and not config["sparse"]
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch", reason="real Keras runs on the torch backend here")
    keras = pytest.importorskip("keras", reason="real Keras is the oracle")
    params = inspect.signature(keras.layers.HashedCrossing.__init__).parameters
    assert {"num_bins", "output_mode", "sparse"} <= set(params)
    assert set(config) - {"name", "trainable", "dtype"} <= set(params)


@pytest.mark.parametrize("name", ["cross.fdl", "cross.keras"])
def test_functional_model_crosses_two_inputs_and_saves(tmp_path, name):
    if name.endswith(".keras"):
        pytest.importorskip("h5py", reason="the .keras format needs h5py")
    city = L.Input(shape=(1,), dtype="string", name="city")
    code = L.Input(shape=(1,), dtype="int64", name="code")
    crossed = L.HashedCrossing(num_bins=64, output_mode="one_hot")([city, code])
    out = L.Dense(1, activation="sigmoid")(crossed)
    model = fastdl.Model([city, code], out)
    x = [CITIES[:, None], CODES[:, None]]
    y = (CODES > 101).astype(np.float32)[:, None]
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    expected = model.predict(x, verbose=0)
    ids = np.asarray(L.HashedCrossing(num_bins=64)((CITIES, CODES)))
    w, b = model.layers[-1].get_weights()
    np.testing.assert_allclose(expected[:, 0], 1 / (1 + np.exp(-(w[ids, 0] + b[0]))), rtol=1e-5)
    model.save(tmp_path / name)
    loaded = fastdl.models.load_model(tmp_path / name)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)
