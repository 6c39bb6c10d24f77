"""Input pipelines: fit/evaluate/predict on a fastdl.data.Dataset, a PyDataset and Python
generators give what the same batches as arrays give; the Dataset transformations keep tf.data's
semantics; bad pipelines are clear errors."""
import math
import threading
import traceback
import warnings

import numpy as np
import pytest

import fastdl
from fastdl import layers
from fastdl.data import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, TensorSpec
from fastdl.models import Model, Sequential
from fastdl.utils import PyDataset, set_random_seed

N, BATCH = 20, 8      # 3 batches per epoch, the last one of 4 samples
STEPS = math.ceil(N / BATCH)


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = rng.standard_normal((n, 2)).astype(np.float32)
    sw = rng.uniform(0.5, 2.0, n)
    return x, y, sw


def model():
    set_random_seed(3)
    m = Sequential([layers.Input(shape=(4,)), layers.Dense(5, activation="tanh"),
                    layers.Dense(2)])
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return m


def batches(x, y, sw=None, batch_size=BATCH):
    for lo in range(0, len(x), batch_size):
        part = (x[lo:lo + batch_size], y[lo:lo + batch_size])
        yield part if sw is None else part + (sw[lo:lo + batch_size],)


class Batches(PyDataset):
    def __init__(self, x, y, sw=None, batch_size=BATCH, **kwargs):
        super().__init__(**kwargs)
        self.parts = list(batches(x, y, sw, batch_size))
        self.epochs_ended = 0

    def __len__(self):
        return len(self.parts)

    def __getitem__(self, index):
        return self.parts[index]

    def on_epoch_end(self):
        self.epochs_ended += 1


def fitted(x, *args, **kwargs):
    m = model()
    history = m.fit(x, *args, verbose=0, **kwargs)
    return m, history


def assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


# ------------------------------------------------------------------ equivalence with arrays
@pytest.mark.parametrize("with_sw", [False, True])
def test_dataset_generator_and_pydataset_train_bitwise_like_arrays(with_sw):
    x, y, sw = data()
    sw = sw if with_sw else None
    ref, ref_hist = fitted(x, y, sample_weight=sw, batch_size=BATCH, epochs=2, shuffle=False)
    slices = (x, y) if sw is None else (x, y, sw)
    sources = {
        "dataset": lambda: fitted(Dataset.from_tensor_slices(slices).batch(BATCH), epochs=2),
        "generator": lambda: fitted(
            (b for _ in range(2) for b in batches(x, y, sw)), epochs=2, steps_per_epoch=STEPS),
        "pydataset": lambda: fitted(Batches(x, y, sw), epochs=2, shuffle=False),
        "pydataset-3-workers": lambda: fitted(Batches(x, y, sw, workers=3, max_queue_size=2),
                                              epochs=2, shuffle=False),
    }
    for name, run in sources.items():
        m, hist = run()
        assert_same_weights(ref, m)
        assert hist.history == ref_hist.history, name


class Small(Model):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = layers.Dense(5, activation="tanh"), layers.Dense(2)

    def call(self, x, training=None):
        return self.out(self.hidden(x))


@pytest.mark.parametrize("kind", ["subclassed", "sequential-without-input"])
def test_a_model_built_by_the_first_batch_trains_from_a_source(kind):
    # the weights exist only once the first batch has built the model: fit must train them
    x, y, _ = data()
    results = []
    for source in (False, True):
        set_random_seed(4)
        m = Small() if kind == "subclassed" else Sequential([layers.Dense(5), layers.Dense(2)])
        m.compile(optimizer="adam", loss="mse")
        if source:
            m.fit(Dataset.from_tensor_slices((x, y)).batch(BATCH), epochs=2, verbose=0)
        else:
            m.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
        results.append(m.get_weights())
    for got, want in zip(results[1], results[0]):
        np.testing.assert_array_equal(got, want)


def test_class_weight_applies_to_each_batch_of_a_source():
    x, y, _ = data()        # two columns: the class of a row is its argmax
    weights = {0: 0.5, 1: 2.0}
    ref, _ = fitted(x, y, batch_size=BATCH, shuffle=False, class_weight=weights)
    m, _ = fitted(Dataset.from_tensor_slices((x, y)).batch(BATCH), class_weight=weights)
    assert_same_weights(ref, m)


def test_validation_data_evaluate_and_predict_take_every_source():
    x, y, _ = data()
    xv, yv, _ = data(12, seed=1)
    ref, ref_hist = fitted(x, y, batch_size=BATCH, shuffle=False, validation_data=(xv, yv),
                           validation_batch_size=5)
    val_sources = [Dataset.from_tensor_slices((xv, yv)).batch(5), Batches(xv, yv, batch_size=5)]
    for val in val_sources:
        m, hist = fitted(Dataset.from_tensor_slices((x, y)).batch(BATCH), validation_data=val)
        assert hist.history == ref_hist.history
        assert_same_weights(ref, m)
    expected = ref.evaluate(xv, yv, batch_size=5, verbose=0)
    assert ref.evaluate(Dataset.from_tensor_slices((xv, yv)).batch(5), verbose=0) == expected
    assert ref.evaluate(batches(xv, yv, batch_size=5), verbose=0) == expected
    assert ref.evaluate(Batches(xv, yv, batch_size=5), verbose=0) == expected
    out = ref.predict(xv, batch_size=5, verbose=0)
    np.testing.assert_array_equal(ref.predict(Dataset.from_tensor_slices(xv).batch(5),
                                              verbose=0), out)
    np.testing.assert_array_equal(ref.predict((xb for xb, _ in batches(xv, yv, batch_size=5)),
                                              verbose=0), out)
    np.testing.assert_array_equal(ref.predict(Batches(xv, yv, batch_size=5), verbose=0), out)
    # steps reads only the first batches, as on arrays
    np.testing.assert_array_equal(
        ref.predict(Dataset.from_tensor_slices(xv).batch(5), steps=2, verbose=0), out[:10])


def test_generator_validation_with_validation_steps_continues_each_time():
    x, y, _ = data()
    xv, yv, _ = data(8, seed=1)
    ref, ref_hist = fitted(x, y, batch_size=BATCH, shuffle=False, validation_data=(xv, yv),
                           validation_batch_size=4, epochs=2)
    endless = (b for _ in range(2) for b in batches(xv, yv, batch_size=4))
    m, hist = fitted(x, y, batch_size=BATCH, shuffle=False, validation_data=endless,
                     validation_steps=2, epochs=2)
    assert hist.history == ref_hist.history


def test_a_validation_generator_read_to_its_end_is_a_clear_error_at_the_next_validation():
    x, y, _ = data()
    with pytest.raises(ValueError, match="generator given as validation_data has no batches "
                                         "left: a generator is read once"):
        model().fit(x, y, validation_data=batches(x, y), epochs=2, verbose=0)


def test_named_inputs_as_dicts_from_a_dataset():
    x, y, _ = data()
    set_random_seed(5)
    a, b = fastdl.keras.Input((3,), name="a"), fastdl.keras.Input((1,), name="b")
    out = layers.Dense(2)(layers.Concatenate()([a, b]))
    m = Model([a, b], out)
    m.compile(optimizer="sgd", loss="mse")
    weights = m.get_weights()
    inputs = {"a": x[:, :3], "b": x[:, 3:]}
    m.fit(inputs, y, batch_size=BATCH, shuffle=False, verbose=0)
    expected = m.get_weights()
    m.set_weights(weights)
    m.fit(Dataset.from_tensor_slices((inputs, y)).batch(BATCH), verbose=0)
    for got, want in zip(m.get_weights(), expected):
        np.testing.assert_array_equal(got, want)


def test_pydataset_shuffle_permutes_the_batch_order_and_on_epoch_end_runs_each_epoch():
    x, y, _ = data()
    seq = Batches(x, y)
    m, _ = fitted(seq, epochs=3)          # shuffle=True: a batch order per epoch
    assert seq.epochs_ended == 3
    model()             # seeds and initializes as fitted() did: the orders are drawn next
    orders = [fastdl.utils.rng.get_rng().permutation(STEPS) for _ in range(3)]
    assert any(order.tolist() != list(range(STEPS)) for order in orders)
    ref = model()       # the same batches in those orders, from a generator
    ref.fit((seq.parts[i] for order in orders for i in order), steps_per_epoch=STEPS,
            epochs=3, verbose=0)
    assert_same_weights(ref, m)


# ------------------------------------------------------------------ steps semantics (Keras's)
def test_steps_per_epoch_continues_a_finite_dataset_and_restarts_it_at_its_end():
    x, y, _ = data()
    ds = Dataset.from_tensor_slices((x, y)).batch(BATCH)        # 3 batches
    m, hist = fitted(ds, epochs=3, steps_per_epoch=2)
    # epoch 1: batches 0, 1; epoch 2: batch 2 (the pass ends: warned); epoch 3: batches 0, 1
    parts = list(batches(x, y))
    ref = model()
    for part in parts[:2] + parts[2:3] + parts[:2]:
        ref.train_on_batch(*part)
    assert_same_weights(ref, m)
    assert len(hist.history["loss"]) == 3


def test_a_generator_that_runs_out_stops_training_with_keras_warning():
    x, y, _ = data()
    with pytest.warns(UserWarning, match="ran out of data"):
        m, hist = fitted(batches(x, y), epochs=3)
    assert len(hist.history["loss"]) == 1
    ref, _ = fitted(x, y, batch_size=BATCH, shuffle=False)
    assert_same_weights(ref, m)


def test_an_infinite_dataset_needs_steps():
    x, y, _ = data()
    ds = Dataset.from_tensor_slices((x, y)).batch(BATCH).repeat()
    with pytest.raises(ValueError, match="infinite.*steps_per_epoch"):
        model().fit(ds, verbose=0)
    m, hist = fitted(ds, epochs=2, steps_per_epoch=STEPS)
    ref, _ = fitted(x, y, batch_size=BATCH, shuffle=False, epochs=2)
    assert_same_weights(ref, m)


# ------------------------------------------------------------------ bad input
def test_arguments_the_source_carries_are_refused():
    x, y, sw = data()
    ds = Dataset.from_tensor_slices((x, y)).batch(BATCH)
    m = model()
    for kwargs in ({"y": y}, {"sample_weight": sw}, {"batch_size": 4},
                   {"validation_split": 0.2}):
        with pytest.raises(ValueError, match="When x is a Dataset, .* must not be given"):
            m.fit(ds, verbose=0, **kwargs)
    with pytest.raises(ValueError, match="steps_per_epoch applies to a Dataset"):
        m.fit(x, y, steps_per_epoch=2, verbose=0)
    with pytest.raises(ValueError, match="validation_steps applies"):
        m.fit(x, y, validation_data=(x, y), validation_steps=2, verbose=0)
    with pytest.raises(ValueError, match="not batched.*batch"):
        m.fit(Dataset.from_tensor_slices((x, y)), verbose=0)
    with pytest.raises(ValueError, match="carry no targets"):
        m.fit(Dataset.from_tensor_slices(x).batch(4), verbose=0)


@pytest.mark.parametrize("bad", ["shape", "dtype"])
def test_batches_of_inconsistent_shapes_or_dtypes_are_a_clear_error(bad):
    x, y, _ = data()
    wrong = np.zeros((4, 5), np.float32) if bad == "shape" else x[:4].astype(np.float64)

    def gen():
        yield x[:8], y[:8]
        yield wrong, y[:4]
    m = model()
    with pytest.raises(ValueError, match="Batch 1 of the generator given as x differs from its "
                                         "first batch"):
        m.fit(gen(), verbose=0)


def test_an_empty_source_is_a_clear_error():
    x, y, _ = data()
    m = model()
    with pytest.raises(ValueError, match="Dataset given as x yielded no batches"):
        m.fit(Dataset.from_tensor_slices((x, y)).take(0).batch(4), verbose=0)
    with pytest.raises(ValueError, match="generator given as x yielded no batches"):
        m.evaluate((b for b in ()), verbose=0)
    with pytest.raises(ValueError, match="PyDataset given as x yielded no batches"):
        m.fit(Batches(x[:0], y[:0]), verbose=0)


def test_a_generator_raising_mid_epoch_surfaces_with_its_traceback_and_keeps_the_last_step():
    x, y, _ = data()

    def flaky():
        for i, part in enumerate(batches(x, y)):
            if i == 2:
                raise RuntimeError("disk went away")
            yield part
    m = model()
    with pytest.raises(RuntimeError, match="disk went away") as info:
        m.fit(flaky(), verbose=0)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "flaky" in frames
    ref = model()
    for part in list(batches(x, y))[:2]:
        ref.train_on_batch(*part)
    assert_same_weights(ref, m)
    # through a prefetching Dataset pipeline, the same error and the same frame
    ds = Dataset.from_generator(flaky).prefetch(2)
    with pytest.raises(RuntimeError, match="disk went away") as info:
        model().fit(ds, verbose=0)
    assert "flaky" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]


def test_a_pydataset_whose_len_disagrees_with_its_items_is_a_clear_error():
    x, y, _ = data()

    class TooLong(Batches):
        def __len__(self):
            return len(self.parts) + 1

    class EmptyTail(Batches):
        def __len__(self):
            return len(self.parts) + 1

        def __getitem__(self, index):
            return self.parts[index] if index < len(self.parts) else (x[:0], y[:0])
    with pytest.raises(ValueError, match=r"TooLong\[3\] raised IndexError, but its __len__\(\) "
                                         "is 4"):
        model().fit(TooLong(x, y), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match=r"EmptyTail\[3\] is an empty batch"):
        model().fit(EmptyTail(x, y, workers=2), shuffle=False, verbose=0)


def test_pydataset_arguments():
    with pytest.raises(ValueError, match="use_multiprocessing=True is not supported"):
        PyDataset(use_multiprocessing=True)
    with pytest.raises(ValueError, match="workers must be a positive int"):
        PyDataset(workers=0)
    assert fastdl.keras.utils.Sequence is PyDataset

    class NoSuper(PyDataset):
        def __init__(self):
            pass
    with pytest.warns(UserWarning, match="super"):
        assert NoSuper().workers == 1


# ------------------------------------------------------------------ Dataset semantics
def elements(ds):
    return [e.tolist() if isinstance(e, np.ndarray) else e for e in ds.as_numpy_iterator()]


def test_sources_and_batching():
    ds = Dataset.from_tensor_slices({"a": np.arange(5), "b": np.arange(10).reshape(5, 2)})
    first = next(ds.as_numpy_iterator())
    assert first["a"] == 0 and first["b"].tolist() == [0, 1]
    batched = ds.batch(2)
    assert [b["a"].tolist() for b in batched.as_numpy_iterator()] == [[0, 1], [2, 3], [4]]
    assert batched.cardinality() == 3 and len(batched) == 3
    assert len(ds.batch(2, drop_remainder=True)) == 2
    assert elements(Dataset.range(2, 9, 3)) == [2, 5, 8]
    assert elements(Dataset.from_tensors(np.arange(3))) == [[0, 1, 2]]
    assert elements(ds.batch(2).unbatch().map(lambda e: e["a"])) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="same first dimension"):
        Dataset.from_tensor_slices((np.zeros(3), np.zeros(4)))
    # as in tf.data, a list is one array (a tuple is structure)
    assert elements(Dataset.from_tensor_slices([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]
    with pytest.raises(ValueError, match="ragged"):
        Dataset.from_tensor_slices([[1, 2], [3]])


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_batches_gathered_from_slices_equal_the_stacked_elements(drop_remainder):
    # from_tensor_slices(...)[.shuffle(...)].batch(...) gathers each batch from the arrays;
    # an identity map forces the element-by-element path: both must give the same batches
    x, y = np.arange(46, dtype=np.float32).reshape(23, 2), np.arange(23)
    def source(shuffled):   # a new one each time: a seeded shuffle reshuffles per iteration
        ds = Dataset.from_tensor_slices({"x": x, "y": y})
        return ds.shuffle(5, seed=9) if shuffled else ds
    for shuffled in (False, True):
        fast = list(source(shuffled).batch(4, drop_remainder=drop_remainder)
                    .as_numpy_iterator())
        slow = list(source(shuffled).map(lambda e: e).batch(4, drop_remainder=drop_remainder))
        assert len(fast) == len(slow) == (5 if drop_remainder else 6)
        for a, b in zip(fast, slow):
            np.testing.assert_array_equal(a["x"], b["x"])
            np.testing.assert_array_equal(a["y"], b["y"])
        fast[0]["x"][:] = -1            # a batch is a copy: the source arrays stay
    assert x.min() == 0


def test_map_passes_tuple_components_as_arguments_and_keeps_order_in_parallel():
    ds = Dataset.from_tensor_slices((np.arange(20), np.arange(20) * 10))
    expected = [[i + 10 * i] for i in range(20)]
    assert elements(ds.map(lambda a, b: np.stack([a + b]))) == expected
    assert elements(ds.map(lambda a, b: np.stack([a + b]), num_parallel_calls=AUTOTUNE)) \
        == expected
    # a fastdl Tensor returned by map becomes an array
    got = next(ds.map(lambda a, b: fastdl.constant(a) * 2).as_numpy_iterator())
    assert isinstance(got, np.ndarray)


def test_map_and_filter_functions_receive_tensors_as_in_tf_data():
    # tf.data hands map/filter functions tensors: tutorials call .numpy() on them and use tf ops
    images = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    ds = Dataset.from_tensor_slices((images, np.arange(6), np.array(list("abcdef"))))
    seen = []

    def normalize(image, label, name):
        seen.append((type(image), image.numpy().sum(), isinstance(name, fastdl.Tensor)))
        return fastdl.cast(image, "float32") / 255.0, fastdl.one_hot(label, 6)

    x, y = next(ds.map(normalize).batch(6).as_numpy_iterator())
    np.testing.assert_allclose(x, images / np.float32(255.0), rtol=1e-7)
    np.testing.assert_array_equal(y, np.eye(6, dtype=np.float32))
    assert seen == [(fastdl.Tensor, images[i].sum(), False) for i in range(6)]  # strings: NumPy
    kept = ds.filter(lambda image, label, name: label.numpy() % 2 == 0)
    assert [int(e[1]) for e in kept.as_numpy_iterator()] == [0, 2, 4]


def test_tf_time_series_tutorial_window_split_runs_on_tensors():
    # TensorFlow's time-series tutorial: slice the windows, stack the label columns, set_shape
    data = np.arange(60, dtype=np.float32).reshape(20, 3)

    def split_window(features):
        inputs, labels = features[:, 0:4, :], features[:, 4:, :]
        labels = fastdl.stack([labels[:, :, 2]], axis=-1)
        inputs.set_shape([None, 4, None])
        labels.set_shape([None, 1, None])
        return inputs, labels

    ds = fastdl.keras.utils.timeseries_dataset_from_array(data, None, sequence_length=5,
                                                         batch_size=8).map(split_window)
    x, y = next(ds.as_numpy_iterator())
    np.testing.assert_array_equal(x, np.stack([data[i:i + 4] for i in range(8)]))
    np.testing.assert_array_equal(y, data[4:12, 2].reshape(8, 1, 1))
    with pytest.raises(ValueError, match="not compatible with supplied shape"):
        fastdl.constant(np.zeros((2, 3))).set_shape([2, 4])


def test_shard_takes_every_nth_element_from_index():
    ds = Dataset.range(10)
    assert elements(ds.shard(3, 1)) == [1, 4, 7]
    assert [len(ds.shard(3, i)) for i in range(3)] == [4, 3, 3]
    assert sorted(sum((elements(ds.shard(4, i)) for i in range(4)), [])) == list(range(10))
    assert ds.repeat().shard(2, 0).cardinality() == INFINITE_CARDINALITY
    with pytest.raises(ValueError, match=r"index must be in \[0, num_shards=2\)"):
        ds.shard(2, 2)
    with pytest.raises(ValueError, match="num_shards must be an int >= 1"):
        ds.shard(0, 0)


def test_filter_take_skip_repeat_concatenate_zip_and_cardinality():
    ds = Dataset.range(10)
    assert elements(ds.filter(lambda v: v % 3 == 0)) == [0, 3, 6, 9]
    assert ds.filter(lambda v: v > 0).cardinality() == UNKNOWN_CARDINALITY
    assert elements(ds.skip(7)) == [7, 8, 9] and elements(ds.take(2)) == [0, 1]
    assert elements(ds.take(3).repeat(2)) == [0, 1, 2, 0, 1, 2]
    assert ds.repeat().cardinality() == INFINITE_CARDINALITY
    assert ds.repeat().take(4).cardinality() == 4
    assert elements(ds.take(2).concatenate(ds.skip(8))) == [0, 1, 8, 9]
    zipped = Dataset.zip((ds, ds.skip(5)))
    assert zipped.cardinality() == 5 and next(iter(zipped)) == (0, 5)
    assert next(iter(Dataset.zip({"p": ds, "q": ds.repeat()})))["q"] == 0
    with pytest.raises(TypeError, match="infinite"):
        len(ds.repeat())
    with pytest.raises(TypeError, match="unknown"):
        len(ds.filter(lambda v: v > 0))


def test_shuffle_has_tf_buffer_semantics():
    n, buffer = 50, 4
    ds = Dataset.range(n).shuffle(buffer, seed=1)
    order = elements(ds)
    assert sorted(order) == list(range(n))
    position = {v: i for i, v in enumerate(order)}
    # element i enters the buffer after i - buffer outputs: it cannot come out earlier
    assert all(position[i] >= i - buffer + 1 for i in range(n))
    assert elements(Dataset.range(n).shuffle(1)) == list(range(n))
    # a seed reshuffles each iteration reproducibly; reshuffle_each_iteration=False repeats
    assert elements(ds) != order
    assert elements(Dataset.range(n).shuffle(buffer, seed=1)) == order
    fixed = Dataset.range(n).shuffle(n, reshuffle_each_iteration=False)
    assert elements(fixed) == elements(fixed)
    set_random_seed(7)
    a = elements(Dataset.range(n).shuffle(n))
    set_random_seed(7)
    assert elements(Dataset.range(n).shuffle(n)) == a and a != list(range(n))


def test_cache_replays_and_prefetch_reads_ahead_in_a_thread():
    calls = []

    def gen():
        for i in range(3):
            calls.append(i)
            yield np.float32(i)
    cached = Dataset.from_generator(gen).cache()
    assert elements(cached) == elements(cached) == [0.0, 1.0, 2.0]
    assert calls == [0, 1, 2]
    threads = []

    def record():
        threads.append(threading.current_thread().name)
        yield np.int64(1)
    assert elements(Dataset.from_generator(record).prefetch(AUTOTUNE)) == [1]
    assert threads == ["fastdl-prefetch"]


def test_from_generator_checks_the_output_signature():
    def gen():
        yield np.zeros(2), 1
        yield np.zeros(3), 2
    ds = Dataset.from_generator(gen, output_signature=(TensorSpec((None,), fastdl.float32),
                                                       TensorSpec((), "int32")))
    first, second = list(ds)
    assert first[0].dtype == np.float32 and first[1].dtype == np.int32
    assert second[0].shape == (3,)
    strict = Dataset.from_generator(gen, output_signature=(TensorSpec((2,)), TensorSpec((),
                                                                                        "int32")))
    with pytest.raises(ValueError, match=r"shape \(3,\) where \(2,\) was expected"):
        list(strict)
    typed = Dataset.from_generator(gen, output_types=(fastdl.int32, fastdl.int32))
    with pytest.raises(TypeError, match="dtype float64 where int32 was expected"):
        list(typed)
    spec = Dataset.from_tensor_slices((np.zeros((6, 2), np.float32), np.arange(6))).batch(
        4).element_spec
    assert spec == (TensorSpec((None, 2), "float32"), TensorSpec((None,), "int64"))


def test_tf_data_names_for_import_fastdl_as_tf():
    import fastdl as tf
    assert tf.data.Dataset is Dataset and tf.data.AUTOTUNE == AUTOTUNE
    assert tf.data.experimental.AUTOTUNE == AUTOTUNE and tf.TensorSpec is TensorSpec
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(tf.data.Dataset.range(3).batch(2)) == 2
