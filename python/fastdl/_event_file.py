"""TensorBoard event files, written without TensorFlow or protobuf.

An event file is a sequence of TFRecord records, each holding one serialized ``Event`` protocol
buffer. The record framing (little-endian ``uint64`` length, masked CRC-32C of the length bytes,
the data, masked CRC-32C of the data) and the few protobuf fields TensorBoard reads are written
here by hand, so the ``TensorBoard`` callback needs nothing beyond NumPy.

Field numbers (tensorflow/core/util/event.proto, framework/summary.proto, tensor.proto):
Event: wall_time 1 (double), step 2 (int64), file_version 3 (string), summary 5.
Summary: value 1 (repeated). Summary.Value: tag 1, simple_value 2 (float), histo 5,
tensor 8, metadata 9. HistogramProto: min 1, max 2, num 3, sum 4, sum_squares 5,
bucket_limit 6 (packed double), bucket 7 (packed double). SummaryMetadata: plugin_data 1
(PluginData: plugin_name 1, content 2). TensorProto: dtype 1 (DT_STRING = 7),
tensor_shape 2, string_val 8.
"""

import os
import socket
import struct
import time

import numpy as np

__all__ = ["EventFileWriter", "crc32c", "masked_crc32c"]


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --- protobuf wire format: just the pieces used below -------------------------------------------

def _varint(value):
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64 values are written as ten-byte two's complement
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _key(field, wire_type):
    return _varint((field << 3) | wire_type)


def _bytes_field(field, payload):
    return _key(field, 2) + _varint(len(payload)) + payload


def _double_field(field, value):
    return _key(field, 1) + struct.pack("<d", float(value))


def _float_field(field, value):
    return _key(field, 5) + struct.pack("<f", float(value))


def _int_field(field, value):
    return _key(field, 0) + _varint(int(value))


def _packed_doubles(field, values):
    return _bytes_field(field, np.asarray(values, dtype="<f8").tobytes())


def scalar_value(tag, value):
    """A ``Summary.Value`` holding one float (TensorBoard's scalars plugin)."""
    return _bytes_field(1, tag.encode()) + _float_field(2, value)


def histogram_value(tag, values, buckets=30):
    """A ``Summary.Value`` holding a ``HistogramProto`` of ``values`` in equal-width buckets.

    ``bucket_limit[i]`` is the right edge of bucket ``i`` and ``bucket[i]`` its count, as
    TensorBoard's histogram plugin reads them.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        low = high = 0.0
        limits, counts = np.array([0.0]), np.array([0.0])
    else:
        low, high = float(values.min()), float(values.max())
        if low == high:
            limits, counts = np.array([high]), np.array([float(values.size)])
        else:
            counts, edges = np.histogram(values, bins=buckets, range=(low, high))
            limits, counts = edges[1:], counts.astype(np.float64)
    histo = (_double_field(1, low) + _double_field(2, high) + _double_field(3, values.size)
             + _double_field(4, values.sum()) + _double_field(5, np.dot(values, values))
             + _packed_doubles(6, limits) + _packed_doubles(7, counts))
    return _bytes_field(1, tag.encode()) + _bytes_field(5, histo)


def text_tensor_value(tag, text, plugin_name, content=b"1"):
    """A ``Summary.Value`` holding one string tensor with plugin metadata (the Keras model graph)."""
    plugin = _bytes_field(1, plugin_name.encode()) + _bytes_field(2, content)
    metadata = _bytes_field(1, plugin)
    tensor = _int_field(1, 7) + _bytes_field(2, b"") + _bytes_field(8, text.encode())
    return _bytes_field(1, tag.encode()) + _bytes_field(9, metadata) + _bytes_field(8, tensor)


class EventFileWriter:
    """Appends events to ``<log_dir>/events.out.tfevents.<time>.<host>.<pid>.<n>.v2``.

    Each ``write`` is framed and flushed, so a crashed run keeps every event written before it.
    """

    _count = 0

    def __init__(self, log_dir):
        os.makedirs(log_dir, exist_ok=True)
        EventFileWriter._count += 1
        name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                f"{os.getpid()}.{EventFileWriter._count}.v2")
        self.path = os.path.join(log_dir, name)
        self._file = open(self.path, "wb")
        self._write_event(_double_field(1, time.time()) + _bytes_field(3, b"brain.Event:2"))

    def _write_event(self, event):
        header = struct.pack("<Q", len(event))
        self._file.write(header + struct.pack("<I", masked_crc32c(header)) + event
                         + struct.pack("<I", masked_crc32c(event)))
        self._file.flush()

    def write(self, step, values):
        """Writes one event at ``step`` holding the given ``Summary.Value`` payloads."""
        if self._file is None:
            raise ValueError(f"the event file {self.path} is closed")
        summary = b"".join(_bytes_field(1, value) for value in values)
        self._write_event(_double_field(1, time.time()) + _int_field(2, step)
                          + _bytes_field(5, summary))

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
