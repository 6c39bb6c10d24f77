"""The TensorBoard callback's event files: the record framing, the protobuf fields TensorBoard
reads, and (when the tensorboard package is installed) TensorBoard's own reader."""
import glob
import os
import struct

import numpy as np
import pytest

import fastdl
from fastdl import _event_file
from fastdl.callbacks import TensorBoard


def test_crc32c_check_value():
    # The CRC-32C (Castagnoli) check value of b"123456789" is 0xE3069283 (RFC 3720, B.4).
    assert _event_file.crc32c(b"123456789") == 0xE3069283
    assert _event_file.crc32c(b"") == 0


def _records(path):
    """Reads a TFRecord file, verifying both masked CRCs of every record."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        assert crc == _event_file.masked_crc32c(header)
        body = data[pos + 12:pos + 12 + length]
        (crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        assert crc == _event_file.masked_crc32c(body)
        out.append(body)
        pos += 16 + length
    return out


def _fit(tmp_path, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = fastdl.Sequential([fastdl.Input((3,)), fastdl.layers.Dense(4, activation="relu"),
                               fastdl.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=10, validation_split=0.25, verbose=0,
                        callbacks=[TensorBoard(str(tmp_path), **kwargs)])
    return model, history


def test_event_files_are_framed_records(tmp_path):
    _fit(tmp_path, histogram_freq=1)
    for run in ("train", "validation"):
        files = glob.glob(os.path.join(tmp_path, run, "events.out.tfevents.*"))
        assert len(files) == 1
        records = _records(files[0])
        assert b"brain.Event:2" in records[0]
        assert len(records) > 3


def test_tensorboard_reads_scalars_and_histograms(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard's own event reader is the oracle")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, history = _fit(tmp_path, histogram_freq=1, update_freq=2)
    train = EventAccumulator(os.path.join(tmp_path, "train"),
                             size_guidance={"scalars": 0, "histograms": 0})
    train.Reload()
    val = EventAccumulator(os.path.join(tmp_path, "validation"), size_guidance={"scalars": 0})
    val.Reload()
    for name in ("loss", "accuracy"):
        events = train.Scalars(f"epoch_{name}")
        assert [e.step for e in events] == [0, 1, 2]
        np.testing.assert_allclose([e.value for e in events], history.history[name], rtol=1e-6)
        events = val.Scalars(f"epoch_{name}")
        np.testing.assert_allclose([e.value for e in events], history.history[f"val_{name}"],
                                   rtol=1e-6)
    assert [e.value for e in train.Scalars("epoch_learning_rate")] == pytest.approx([0.01] * 3)
    # 30 training samples in batches of 10: 3 batches per epoch, 9 in all; every 2nd logged
    assert [e.step for e in train.Scalars("batch_loss")] == [2, 4, 6, 8]
    assert len(val.Scalars("evaluation_loss_vs_iterations")) == 3
    kernel = model.layers[-1].weights[0]
    tag = f"{model.layers[-1].name}/kernel/histogram"
    assert tag in train.Tags()["histograms"]
    last = train.Histograms(tag)[-1].histogram_value
    assert last.num == kernel.size
    assert last.min == pytest.approx(kernel.min()) and last.max == pytest.approx(kernel.max())
    assert last.sum == pytest.approx(float(kernel.astype(np.float64).sum()))
    assert sum(last.bucket) == kernel.size


def test_no_batch_scalars_with_epoch_updates(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard's own event reader is the oracle")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _fit(tmp_path)
    train = EventAccumulator(os.path.join(tmp_path, "train"))
    train.Reload()
    assert "batch_loss" not in train.Tags()["scalars"]
    assert "epoch_loss" in train.Tags()["scalars"]


@pytest.mark.parametrize("kwargs", [{"profile_batch": 2}, {"embeddings_freq": 1},
                                    {"write_images": True}])
def test_tensorflow_only_features_are_refused(kwargs):
    with pytest.raises(NotImplementedError, match="fastdl does not provide"):
        TensorBoard("logs", **kwargs)


@pytest.mark.parametrize("kwargs", [{"update_freq": 0}, {"update_freq": "step"},
                                    {"histogram_freq": -1}, {"histogram_freq": 1.5}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="TensorBoard"):
        TensorBoard("logs", **kwargs)
