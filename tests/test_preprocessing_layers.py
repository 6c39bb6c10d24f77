"""The preprocessing layers: Rescaling, Normalization, TextVectorization, StringLookup,
IntegerLookup, CategoryEncoding, Discretization, and how they save and train in models.

Expected values come from the formulas in Keras's source (vocabulary order, id layout, tf-idf,
quantiles) and from real Keras (torch backend) where it is installed. Keras's text layers need
TensorFlow, so their expected values here are worked out by hand from those rules.
"""
import json
import os
import zipfile

import numpy as np
import pytest

import fastdl
from fastdl import layers as L
from gradcheck import check_layer_gradients

RNG = np.random.default_rng(3)


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch", reason="real Keras runs on the torch backend here")
    return pytest.importorskip("keras", reason="real Keras is the oracle")


# ------------------------------------------------------------------ numeric layers
def test_rescaling_formula_and_gradient():
    x = RNG.uniform(0, 255, (4, 3)).astype(np.float32)
    np.testing.assert_allclose(L.Rescaling(1 / 127.5, offset=-1)(x), x / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(L.Rescaling([1.0, 2.0, 3.0])(x), x * [1, 2, 3], rtol=1e-6)
    check_layer_gradients(L.Rescaling([0.5, -2.0, 3.0], offset=1.0, dtype="float64"), x)
    assert L.Rescaling(0.5).get_config()["scale"] == 0.5
    with pytest.raises(TypeError, match="scale"):
        L.Rescaling("half")


@pytest.mark.parametrize("axis,keep", [(-1, (2,)), (None, ()), ((1, 2), (1, 2)), (1, (1,))])
def test_normalization_adapt_against_numpy(axis, keep):
    x = RNG.normal(3.0, 2.0, (40, 4, 3))
    layer = L.Normalization(axis=axis, dtype="float64")
    layer.adapt(x)
    reduce = tuple(a for a in range(3) if a not in keep)
    mean, var = x.mean(axis=reduce, keepdims=True), x.var(axis=reduce, keepdims=True)
    np.testing.assert_allclose(layer(x), (x - mean) / np.sqrt(var), rtol=1e-9)
    assert layer.weight_names == ["mean", "variance", "count"]
    assert layer.weights[2].shape == () and int(layer.weights[2]) == x.size // max(
        mean.size, 1)   # count: the values per statistic (a 0-d weight, as in Keras)
    assert layer.trainable_weights == []
    check_layer_gradients(layer, x[:3])


def test_normalization_given_statistics_invert_and_epsilon():
    x = RNG.normal(size=(5, 3))
    layer = L.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.0, 9.0], dtype="float64")
    scale = np.maximum(np.sqrt([4.0, 0.0, 9.0]), 1e-7)
    np.testing.assert_allclose(layer(x), (x - [1, 2, 3]) / scale)
    assert layer.weights == []
    inverse = L.Normalization(mean=2.0, variance=4.0, invert=True, dtype="float64")
    np.testing.assert_allclose(inverse(x), 2.0 + x * 2.0)
    # the adapted statistics over batches equal those of the whole array
    batched = L.Normalization(dtype="float64")
    batched.adapt([x[:2], x[2:]])
    whole = L.Normalization(dtype="float64")
    whole.adapt(x)
    np.testing.assert_allclose(batched.weights[0], whole.weights[0])
    np.testing.assert_allclose(batched.weights[1], whole.weights[1])
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        L.Normalization(mean=1.0)


def test_scalar_weight_stays_zero_dimensional():
    # regression: add_weight(shape=()) gave shape (1,), which Keras refuses to load
    layer = L.Dense(2)
    assert layer.add_weight(name="s", shape=(), initializer="ones").shape == ()


def test_normalization_under_a_gradient_tape():
    layer = L.Normalization(mean=1.0, variance=4.0)
    x = fastdl.Variable(np.ones((2, 3), dtype=np.float32))
    with fastdl.GradientTape() as tape:
        loss = fastdl.ops.sum(layer(x))
    np.testing.assert_allclose(tape.gradient(loss, x), np.full((2, 3), 0.5))


def test_numeric_layers_refuse_strings():
    with pytest.raises(TypeError, match="expects numbers, received an array of dtype <U"):
        L.Rescaling(2.0)(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="expects numbers"):
        L.Normalization(mean=0.0, variance=1.0)(np.array(["a"], dtype=object))


def test_keras_oracle_normalization_and_category_encoding():
    keras = _keras()
    x = RNG.normal(size=(30, 4, 3)).astype(np.float32)
    for axis in (-1, None, (1, 2)):
        k, f = keras.layers.Normalization(axis=axis), L.Normalization(axis=axis)
        k.adapt(x)
        f.adapt(x)
        np.testing.assert_allclose(f(x), keras.ops.convert_to_numpy(k(x)), rtol=1e-4,
                                   atol=1e-5)
    for mode in ("one_hot", "multi_hot", "count"):
        for ids in (np.array([0, 2, 3]), np.array([[0], [2]]), np.array([[0, 1, 1], [3, 3, 2]])):
            expected = keras.ops.convert_to_numpy(
                keras.layers.CategoryEncoding(4, output_mode=mode)(ids))
            got = L.CategoryEncoding(4, output_mode=mode)(ids)
            np.testing.assert_array_equal(got, expected)
            assert L.CategoryEncoding(4, output_mode=mode).compute_output_shape(ids.shape) == \
                expected.shape


def test_category_encoding_formula_and_range_check():
    ids = np.array([[0, 3, 3], [1, 1, 2]])
    np.testing.assert_array_equal(L.CategoryEncoding(4, output_mode="count")(ids),
                                  [[1, 0, 0, 2], [0, 2, 1, 0]])
    with pytest.raises(ValueError, match="0 <= values < num_tokens"):
        L.CategoryEncoding(3)(np.array([[3]]))
    with pytest.raises(TypeError, match="expects integers"):
        L.CategoryEncoding(3)(np.array(["a"]))


def test_discretization_boundaries_and_quantiles():
    layer = L.Discretization(bin_boundaries=[0.0, 1.0, 2.5])
    x = np.array([[-1.0, 0.0, 0.5], [1.0, 2.5, 9.0]])
    np.testing.assert_array_equal(layer(x), [[0, 1, 1], [2, 3, 3]])   # b[i-1] <= x < b[i]
    assert layer(x).dtype == np.int64
    np.testing.assert_array_equal(
        L.Discretization(bin_boundaries=[0.0], output_mode="one_hot")(np.array([-1.0, 1.0])),
        [[1, 0], [0, 1]])
    # up to 1/epsilon values: the k/num_bins quantiles of the data's cumulative distribution
    # (value i of n sorted values sits at fraction (i + 1) / n), linearly interpolated
    data = RNG.permutation(np.arange(40.0))
    adapted = L.Discretization(num_bins=4)
    adapted.adapt(data)
    fractions = np.arange(1, 41) / 40
    expected = np.interp([0.25, 0.5, 0.75], fractions, np.arange(40.0))
    np.testing.assert_allclose(adapted.bin_boundaries, expected)
    restored = L.Discretization.from_config(adapted.get_config())
    assert restored.bin_boundaries == adapted.bin_boundaries
    with pytest.raises(ValueError, match="Exactly one"):
        L.Discretization(bin_boundaries=[1.0], num_bins=2)


# ------------------------------------------------------------------ text and lookups
TEXTS = np.array(["The cat sat on the mat.", "The dog ate my homework!", "A cat, a dog; a bird?",
                  "b a b a c c"])


def test_text_vectorization_vocabulary_order_and_ids():
    layer = L.TextVectorization()
    layer.adapt(TEXTS)
    # counts: a 5, the 3, b 2, c 2, cat 2, dog 2, then 1 each; ties: the token descending
    assert layer.get_vocabulary() == ["", "[UNK]", "a", "the", "dog", "cat", "c", "b", "sat",
                                      "on", "my", "mat", "homework", "bird", "ate"]
    out = layer(np.array(["The bird ate a fish", "dog"]))
    np.testing.assert_array_equal(out, [[3, 13, 14, 2, 1], [4, 0, 0, 0, 0]])
    assert out.dtype == np.int64
    short = L.TextVectorization(max_tokens=5, output_sequence_length=3, vocabulary=["x", "y"])
    np.testing.assert_array_equal(short(np.array([["y x z w"]])), [[3, 2, 1]])
    assert short.get_vocabulary() == ["", "[UNK]", "x", "y"]


def test_text_vectorization_standardize_split_and_ngrams():
    layer = L.TextVectorization(vocabulary=["école", "a b", "a", "b"], ngrams=2)
    # tf.strings.lower lowercases ASCII only: "ÉCOLE" keeps its É and is unknown
    np.testing.assert_array_equal(layer(np.array(["ÉCOLE école", "A, B!"])),
                                  [[1, 2, 1], [4, 5, 3]])
    upper = L.TextVectorization(standardize="strip_punctuation", split="character",
                                vocabulary=["A", "b"])
    np.testing.assert_array_equal(upper(np.array(["A-b"])), [[2, 3]])
    custom = L.TextVectorization(standardize=lambda s: np.char.upper(s.astype(str)),
                                 split=lambda s: [t.split("|") for t in s],
                                 vocabulary=["X", "Y Z"])
    np.testing.assert_array_equal(custom(np.array(["x|y z|q"])), [[2, 3, 1]])
    with pytest.raises(TypeError, match="expects strings"):
        layer(np.array([1.0, 2.0]))


def test_end_to_end_model_takes_raw_strings_as_keras_text_tutorial():
    # keras.io "text classification from scratch": Input(shape=(1,), dtype="string") ->
    # TextVectorization -> the trained model, evaluated on batches of shape (n,) as Keras
    # accepts (a missing last axis of size 1 is added)
    texts = np.array(["good film", "bad film", "good good", "bad plot", "a good plot"])
    labels = np.array([1, 0, 1, 0, 1])
    vectorize = L.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorize.adapt(texts)
    ids = L.Input((None,), dtype="int64")
    inner = fastdl.Model(ids, L.Dense(1, activation="sigmoid")(
        L.GlobalAveragePooling1D()(L.Embedding(20, 3)(ids))))
    raw = L.Input((1,), dtype="string")
    end_to_end = fastdl.Model(raw, inner(vectorize(raw)))
    end_to_end.compile("adam", "binary_crossentropy")
    expected = inner.predict(vectorize(texts[:, None]).numpy(), verbose=0)
    np.testing.assert_array_equal(end_to_end.predict(texts, verbose=0), expected)
    np.testing.assert_array_equal(end_to_end.predict(texts[:, None], verbose=0), expected)
    ds = fastdl.data.Dataset.from_tensor_slices((texts, labels)).batch(2)
    inner.compile("adam", "binary_crossentropy")
    assert end_to_end.evaluate(ds, verbose=0) == pytest.approx(
        inner.evaluate(vectorize(texts[:, None]).numpy(), labels, verbose=0), rel=1e-6)
    with pytest.raises(TypeError, match="is a string input, received dtype float"):
        end_to_end.predict(np.zeros(3), verbose=0)


def test_text_vectorization_multi_hot_count_and_tf_idf():
    docs = np.array(["a b a", "b c", "c c c d"])
    counts = L.TextVectorization(output_mode="count")
    counts.adapt(docs)
    vocab = counts.get_vocabulary()
    assert vocab == ["[UNK]", "c", "b", "a", "d"]
    query = np.array(["a a z", "d c"])
    np.testing.assert_array_equal(counts(query), [[1, 0, 0, 2, 0], [0, 1, 0, 0, 1]])
    multi = L.TextVectorization(output_mode="multi_hot", vocabulary=vocab[1:])
    np.testing.assert_array_equal(multi(query), [[1, 0, 0, 1, 0], [0, 1, 0, 0, 1]])
    tfidf = L.TextVectorization(output_mode="tf_idf")
    tfidf.adapt(docs)
    df = np.array([2, 2, 1, 1])                     # documents holding c, b, a, d
    idf = np.log(1 + 3 / (1 + df))
    idf = np.concatenate([[idf.mean()], idf])       # the OOV id gets the mean (Keras)
    np.testing.assert_allclose(tfidf(query), np.array([[1, 0, 0, 2, 0], [0, 1, 0, 0, 1]]) * idf,
                               rtol=1e-6)
    padded = L.TextVectorization(max_tokens=8, output_mode="multi_hot", pad_to_max_tokens=True,
                                 vocabulary=["a"])
    assert padded(np.array(["a"])).shape == (1, 8)


def test_string_lookup_id_layout_and_invert():
    vocab = ["a", "b", "c"]
    np.testing.assert_array_equal(L.StringLookup(vocabulary=vocab)(np.array([["a", "z"],
                                                                             ["c", "b"]])),
                                  [[1, 0], [3, 2]])
    masked = L.StringLookup(vocabulary=vocab, mask_token="")
    np.testing.assert_array_equal(masked(np.array(["", "a", "q"])), [0, 2, 1])
    assert masked.get_vocabulary() == ["", "[UNK]", "a", "b", "c"]
    inverse = L.StringLookup(vocabulary=vocab, invert=True)
    np.testing.assert_array_equal(inverse(np.array([0, 1, 3, 7])), ["[UNK]", "a", "c", "[UNK]"])
    strict = L.StringLookup(vocabulary=vocab, num_oov_indices=0)
    with pytest.raises(ValueError, match="num_oov_indices=0"):
        strict(np.array(["q"]))
    with pytest.raises(ValueError, match="repeated"):
        L.StringLookup(vocabulary=["a", "a"])
    with pytest.raises(TypeError, match="expects strings"):
        L.StringLookup(vocabulary=vocab)(np.array([1, 2]))


def test_string_lookup_adapt_and_encodings():
    layer = L.StringLookup(max_tokens=4, output_mode="multi_hot", mask_token="[M]")
    layer.adapt(np.array([["x", "y", "x"], ["z", "y", "x"], ["w", "[M]", "[M]"]]))
    # multi_hot: no mask id; [UNK] then the 3 most frequent (x 3, y 2, then z over w)
    assert layer.get_vocabulary() == ["[UNK]", "x", "y", "z"]
    np.testing.assert_array_equal(layer(np.array([["z", "[M]", "q"]])), [[1, 0, 0, 1]])


def test_integer_lookup_floormod_oov_and_invert():
    layer = L.IntegerLookup(num_oov_indices=3, mask_token=0)
    layer.adapt(np.array([4, 4, 5, 9, 9, 9, 2]))
    assert layer.get_vocabulary() == [0, -1, -1, -1, 9, 4, 5, 2]
    # unknown v -> 1 + (v mod 3); the mask 0 -> 0
    np.testing.assert_array_equal(layer(np.array([[0, 4, 7, -8, 100]])), [[0, 5, 2, 2, 2]])
    inverse = L.IntegerLookup(vocabulary=[3, 5, 7], invert=True)
    np.testing.assert_array_equal(inverse(np.array([0, 1, 2, 3, 9])), [-1, 3, 5, 7, -1])
    with pytest.raises(TypeError, match="expects integers"):
        layer(np.array(["4"]))
    with pytest.raises(ValueError, match="salt` can only be used when"):
        L.IntegerLookup(num_oov_indices=2, salt=3)


def test_lookups_have_no_gradient_under_a_tape():
    layer = L.StringLookup(vocabulary=["a"])
    with fastdl.GradientTape():
        ids = layer(np.array(["a", "b"]))
    np.testing.assert_array_equal(np.asarray(ids), [1, 0])
    disc = L.Discretization(bin_boundaries=[0.0])
    x = fastdl.Variable(np.array([-1.0, 1.0], dtype=np.float32))
    with fastdl.GradientTape() as tape:
        y = fastdl.ops.sum(fastdl.ops.cast(disc(x), "float32") * x)
    np.testing.assert_allclose(tape.gradient(y, x), [0.0, 1.0])   # only the product's part


# ------------------------------------------------------------------ models and files
def _text_model():
    texts = np.array(["good great fine", "bad awful", "great good", "awful terrible",
                      "fine good", "bad bad"] * 2)
    labels = np.array([1, 0, 1, 0, 1, 0] * 2, dtype=np.float32)
    vectorize = L.TextVectorization(max_tokens=12, output_sequence_length=4)
    vectorize.adapt(texts)
    model = fastdl.models.Sequential([L.Input(shape=(1,), dtype="string"), vectorize,
                                      L.Embedding(12, 4), L.GlobalAveragePooling1D(),
                                      L.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    model.fit(texts[:, None], labels, epochs=3, batch_size=4, verbose=0)
    return model, texts[:, None]


@pytest.mark.parametrize("name", ["t.fdl", "t.keras"])
def test_text_model_trains_and_keeps_its_vocabulary_in_files(tmp_path, name):
    if name.endswith(".keras"):
        pytest.importorskip("h5py", reason="the .keras format needs h5py")
    model, texts = _text_model()
    expected = model.predict(texts, verbose=0)
    model.save(tmp_path / name)
    loaded = fastdl.models.load_model(tmp_path / name)
    assert loaded.layers[0].get_vocabulary() == model.layers[0].get_vocabulary()
    np.testing.assert_allclose(loaded.predict(texts, verbose=0), expected, rtol=1e-6)


def test_keras_vocabulary_asset_is_read(tmp_path):
    # Keras writes an adapted vocabulary to assets/<layer path>/vocabulary.txt and leaves
    # "vocabulary": null in the config; a file laid out that way loads with its vocabulary
    pytest.importorskip("h5py", reason="the .keras format needs h5py")
    model, texts = _text_model()
    expected = model.predict(texts, verbose=0)
    model.save(tmp_path / "t.keras")
    with zipfile.ZipFile(tmp_path / "t.keras") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    layer = config["config"]["layers"][1]
    assert layer["class_name"] == "TextVectorization"
    layer["config"]["vocabulary"] = None
    members["config.json"] = json.dumps(config).encode()
    vocab = model.layers[0].get_vocabulary()
    members["assets/layers/text_vectorization/vocabulary.txt"] = "\n".join(vocab).encode()
    with zipfile.ZipFile(tmp_path / "k.keras", "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    loaded = fastdl.models.load_model(tmp_path / "k.keras")
    assert loaded.layers[0].get_vocabulary() == vocab
    np.testing.assert_allclose(loaded.predict(texts, verbose=0), expected, rtol=1e-6)


def test_adapted_normalization_round_trips_through_real_keras(tmp_path):
    pytest.importorskip("h5py", reason="the .keras format needs h5py")
    keras = _keras()
    x = RNG.normal(5.0, 3.0, (20, 4)).astype(np.float32)
    norm = L.Normalization()
    norm.adapt(x)
    model = fastdl.models.Sequential([L.Input((4,)), L.Rescaling(0.5), norm, L.Dense(2),
                                      L.Discretization(bin_boundaries=[-0.5, 0.5]),
                                      L.CategoryEncoding(3, output_mode="count")])
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    k = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(k(x)), expected)
    kn = k.layers[1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kn.mean), norm.weights[0][None])
    k.save(tmp_path / "k.keras")
    back = fastdl.models.load_model(tmp_path / "k.keras", compile=False)
    np.testing.assert_allclose(back.predict(x, verbose=0), expected)
    np.testing.assert_allclose(back.layers[1].weights[1], norm.weights[1])
