"""keras.utils dataset builders and image helpers: image/text_dataset_from_directory,
timeseries_dataset_from_array, split_dataset on a Dataset, load_img & co, pack/unpack."""
import io
import os
import sys

import numpy as np
import pytest

import fastdl
from fastdl import layers
from fastdl.data import Dataset
from fastdl.models import Sequential
from fastdl.utils import (image_dataset_from_directory, pack_x_y_sample_weight, split_dataset,
                          text_dataset_from_directory, timeseries_dataset_from_array,
                          unpack_x_y_sample_weight)

# class -> the pixel values of its images (each image is filled with one value)
IMAGES = {"cats": [10, 11, 12], "dogs": [100, 101]}


@pytest.fixture
def image_dir(tmp_path):
    Image = pytest.importorskip("PIL.Image", reason="the image helpers need Pillow")
    for cls, values in IMAGES.items():
        (tmp_path / cls / "nested").mkdir(parents=True)
        for i, v in enumerate(values):
            folder = tmp_path / cls / ("nested" if i == 0 else "")
            size = (6, 4) if i % 2 else (5, 5)
            Image.fromarray(np.full(size[::-1] + (3,), v, np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    return tmp_path


def all_elements(ds):
    xs, ys = zip(*ds.as_numpy_iterator())
    return np.concatenate(xs), np.concatenate(ys)


def test_image_dataset_infers_labels_from_sub_folders(image_dir):
    ds = image_dataset_from_directory(image_dir, image_size=(4, 3), batch_size=2, seed=1,
                                      verbose=False)
    assert ds.class_names == ["cats", "dogs"] and len(ds.file_paths) == 5
    assert all(p.endswith(".png") for p in ds.file_paths)
    x, y = all_elements(ds)
    assert x.shape == (5, 4, 3, 3) and x.dtype == np.float32 and y.dtype == np.int32
    for image, label in zip(x, y):      # every image carries its class's pixel value
        assert image.min() == image.max()
        assert int(image[0, 0, 0]) in IMAGES[ds.class_names[label]]
    assert sorted(x[:, 0, 0, 0].tolist()) == sorted(IMAGES["cats"] + IMAGES["dogs"])
    # the batches are of batch_size; an unshuffled listing is sorted (sub-folders recursively)
    assert [len(b) for b, _ in ds] == [2, 2, 1]
    plain = image_dataset_from_directory(image_dir, image_size=(5, 5), shuffle=False,
                                         verbose=False)
    x, y = all_elements(plain)
    assert x[:, 0, 0, 0].tolist() == [11, 12, 10, 101, 100]   # 1.png, 2.png, nested/0.png
    assert y.tolist() == [0, 0, 0, 1, 1]


def test_label_modes_color_modes_and_fit(image_dir):
    kw = dict(image_size=(4, 4), shuffle=False, verbose=False)
    _, y = all_elements(image_dataset_from_directory(image_dir, label_mode="categorical", **kw))
    np.testing.assert_array_equal(y, np.eye(2, dtype=np.float32)[[0, 0, 0, 1, 1]])
    _, y = all_elements(image_dataset_from_directory(image_dir, label_mode="binary", **kw))
    assert y.dtype == np.float32 and y.shape == (5, 1) and y[:, 0].tolist() == [0, 0, 0, 1, 1]
    only = image_dataset_from_directory(image_dir, label_mode=None, color_mode="grayscale", **kw)
    assert only.class_names is None
    assert next(iter(only)).shape == (5, 4, 4, 1)
    # labels given per file (in the sorted listing's order): the classes are their values
    given = image_dataset_from_directory(image_dir, labels=[2, 0, 2, 1, 1], **kw)
    assert given.class_names == ["0", "1", "2"]
    assert all_elements(given)[1].tolist() == [2, 0, 2, 1, 1]
    with pytest.raises(ValueError, match="len\\(labels\\) is 2 while we found 5 files"):
        image_dataset_from_directory(image_dir, labels=[0, 1], **kw)
    ds = image_dataset_from_directory(image_dir, batch_size=2, **kw)
    model = Sequential([layers.Input((4, 4, 3)), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_validation_split_partitions_the_seeded_listing_as_keras_does(image_dir):
    train, val = image_dataset_from_directory(image_dir, image_size=(4, 4), seed=7,
                                              validation_split=0.4, subset="both",
                                              verbose=False)
    listing = sorted(os.path.join(dirpath, f) for dirpath, _, files in os.walk(image_dir)
                     for f in files if f.endswith(".png"))
    # Keras: the listing (class by class; here each class's sorted paths are its walk order)
    # shuffled by RandomState(seed); the last int(0.4 * 5) = 2 files are the validation subset
    per_class = [p for cls in IMAGES for p in listing if os.sep + cls + os.sep in p]
    np.random.RandomState(7).shuffle(per_class)
    assert sorted(val.file_paths) == sorted(per_class[-2:])
    assert sorted(train.file_paths + val.file_paths) == listing
    again = image_dataset_from_directory(image_dir, image_size=(4, 4), seed=7,
                                         validation_split=0.4, subset="validation",
                                         verbose=False)
    assert again.file_paths == val.file_paths


def test_image_dataset_bad_arguments(image_dir, tmp_path_factory):
    kw = dict(verbose=False)
    with pytest.raises(ValueError, match="must provide a `seed`"):
        image_dataset_from_directory(image_dir, validation_split=0.2, subset="training", **kw)
    with pytest.raises(ValueError, match="`validation_split` must be set"):
        image_dataset_from_directory(image_dir, subset="training", seed=1, **kw)
    with pytest.raises(ValueError, match="exactly 2 class_names"):
        image_dataset_from_directory(image_dir, label_mode="binary", class_names=["cats"], **kw)
    with pytest.raises(ValueError, match="`label_mode` argument must be one of"):
        image_dataset_from_directory(image_dir, label_mode="sparse", **kw)
    with pytest.raises(ValueError, match="No images found"):
        image_dataset_from_directory(tmp_path_factory.mktemp("empty"), **kw)
    with pytest.raises(ValueError, match="does not exist"):
        image_dataset_from_directory(image_dir / "nowhere", **kw)
    with pytest.raises(ValueError, match="image_size must be"):
        image_dataset_from_directory(image_dir, image_size=(0, 3), **kw)


def test_text_dataset_from_directory(tmp_path):
    for cls, texts in {"neg": ["bad film", "awful"], "pos": ["great"]}.items():
        (tmp_path / cls).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / cls / f"{i}.txt").write_text(t, encoding="utf-8")
    ds = text_dataset_from_directory(tmp_path, shuffle=False, max_length=4, verbose=False)
    texts, labels = next(ds.as_numpy_iterator())
    assert texts.tolist() == ["bad ", "awfu", "grea"] and labels.tolist() == [0, 0, 1]
    assert ds.class_names == ["neg", "pos"]
    (tmp_path / "pos" / "bad.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="bad.txt is not UTF-8"):
        list(text_dataset_from_directory(tmp_path, verbose=False))


def test_timeseries_windows_and_targets_follow_the_formula():
    data = np.arange(100) * 10
    targets = np.arange(100)
    ds = timeseries_dataset_from_array(data, targets, sequence_length=5, sequence_stride=3,
                                       sampling_rate=2, batch_size=4, start_index=10,
                                       end_index=60)
    windows, ts = map(np.concatenate, zip(*ds.as_numpy_iterator()))
    starts = list(range(0, 60 - 10 - 4 * 2, 3))
    assert len(windows) == len(starts)
    for w, t, p in zip(windows, ts, starts):
        assert w.tolist() == [data[10 + p + 2 * k] for k in range(5)] and t == targets[10 + p]
    shuffled = timeseries_dataset_from_array(data, targets, 5, sequence_stride=3,
                                             sampling_rate=2, batch_size=None, shuffle=True,
                                             seed=3, start_index=10, end_index=60)
    pairs = sorted((tuple(w.tolist()), int(t)) for w, t in shuffled.as_numpy_iterator())
    assert pairs == sorted((tuple(w.tolist()), int(t)) for w, t in zip(windows, ts))
    assert [int(t) for _, t in shuffled] != sorted(int(t) for _, t in shuffled)
    no_targets = timeseries_dataset_from_array(data, None, 3, batch_size=None)
    assert next(no_targets.as_numpy_iterator()).tolist() == [0, 10, 20] and len(list(no_targets)) == 98
    with pytest.raises(ValueError, match="`end_index` must be lower than the length"):
        timeseries_dataset_from_array(data, None, 3, end_index=100)


def test_split_dataset_splits_a_dataset_sample_by_sample():
    x, y = np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10)
    left, right = split_dataset(Dataset.from_tensor_slices((x, y)).batch(4), left_size=0.7)
    assert isinstance(left, Dataset) and [len(b[0]) for b in left] == [4, 3]
    assert np.concatenate([b[1] for b in right.as_numpy_iterator()]).tolist() == [7, 8, 9]
    left, right = split_dataset(Dataset.range(10), right_size=3, shuffle=True, seed=2)
    got = sorted(int(v) for v in left) + sorted(int(v) for v in right)
    assert sorted(got) == list(range(10)) and len(list(right)) == 3
    with pytest.raises(ValueError, match="infinite"):
        split_dataset(Dataset.range(3).repeat(), left_size=1)


def test_pack_and_unpack_x_y_sample_weight():
    x, y, sw = np.zeros(2), np.ones(2), np.full(2, 0.5)
    assert unpack_x_y_sample_weight(pack_x_y_sample_weight(x, y, sw)) == (x, y, sw)
    assert unpack_x_y_sample_weight(pack_x_y_sample_weight(x, y)) == (x, y, None)
    assert pack_x_y_sample_weight(x) is x
    assert pack_x_y_sample_weight([x, y]) == ([x, y],)
    with pytest.raises(ValueError, match="found a tuple of 4 parts"):
        unpack_x_y_sample_weight((x, y, sw, sw))


def test_image_helpers_round_trip_and_match_keras(tmp_path):
    pytest.importorskip("PIL", reason="the image helpers need Pillow")
    from fastdl.keras.preprocessing.image import (array_to_img, img_to_array, load_img,
                                                  save_img)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 9, 3)).astype(np.float32)
    save_img(tmp_path / "a.png", pixels, scale=False)
    back = img_to_array(load_img(tmp_path / "a.png"))
    np.testing.assert_array_equal(back, pixels)
    assert img_to_array(load_img(tmp_path / "a.png", color_mode="grayscale")).shape == (6, 9, 1)
    assert img_to_array(array_to_img(pixels), data_format="channels_first").shape == (3, 6, 9)
    with pytest.warns(UserWarning, match="JPEG format does not support RGBA"):
        save_img(tmp_path / "b.jpg", np.concatenate([pixels, pixels[..., :1]], -1))
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(pixels[0])
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras_image = pytest.importorskip("keras.utils", reason="real Keras is the oracle")
    for kwargs in ({"target_size": (4, 5), "interpolation": "bilinear"},
                   {"target_size": (4, 4), "keep_aspect_ratio": True},
                   {"color_mode": "rgba"}):
        ours = img_to_array(load_img(tmp_path / "a.png", **kwargs))
        theirs = keras_image.img_to_array(keras_image.load_img(tmp_path / "a.png", **kwargs))
        np.testing.assert_array_equal(ours, theirs)
    scaled = np.linspace(-1, 1, 6 * 9 * 3).reshape(6, 9, 3)
    np.testing.assert_array_equal(img_to_array(array_to_img(scaled)),
                                  keras_image.img_to_array(keras_image.array_to_img(scaled)))


def test_missing_pillow_names_the_extra(monkeypatch):
    from fastdl.utils import load_img
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r'pip install "fastdl\[image\]"'):
        load_img(io.BytesIO(b""))


def test_names_are_exported_where_keras_has_them():
    import fastdl as tf
    utils = tf.keras.utils
    for name in ("image_dataset_from_directory", "text_dataset_from_directory",
                 "timeseries_dataset_from_array", "load_img", "img_to_array", "array_to_img",
                 "save_img", "PyDataset", "Sequence", "pack_x_y_sample_weight",
                 "unpack_x_y_sample_weight", "split_dataset", "get_file"):
        assert callable(getattr(utils, name)), name
    prep = tf.keras.preprocessing
    assert prep.image_dataset_from_directory is utils.image_dataset_from_directory
    assert prep.timeseries_dataset_from_array is utils.timeseries_dataset_from_array
    assert prep.image.load_img is utils.load_img
    assert callable(prep.image.smart_resize)
