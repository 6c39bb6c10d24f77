"""to_categorical and pad_sequences against Keras's documented behaviour."""
import numpy as np
import pytest
pytest.importorskip("hypothesis", reason="needs hypothesis (the test extra: pip install \".[test]\")")
from hypothesis import given, settings
from hypothesis import strategies as st

from fastdl.utils.data_utils import pad_sequences, to_categorical


# ----------------------------------------------------------------------------- to_categorical

def test_to_categorical_keras_doc_example():
    a = to_categorical([0, 1, 2, 3], num_classes=4)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, np.eye(4, dtype=np.float32))


def test_to_categorical_infers_num_classes():
    np.testing.assert_array_equal(to_categorical(np.array([2, 0, 1, 2])),
                                  [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_to_categorical_extra_classes_are_zero_columns():
    out = to_categorical([1, 0], num_classes=5)
    np.testing.assert_array_equal(out, [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]])


@pytest.mark.parametrize("shape,want", [
    ((6, 1), (6, 4)),        # trailing axis of 1 squeezed (Keras)
    ((2, 3), (2, 3, 4)),
    ((2, 3, 1), (2, 3, 4)),
    ((1,), (1, 4)),          # a lone axis of 1 is not squeezed
    ((), (4,)),
    ((0,), (0, 4)),
])
def test_to_categorical_shapes(shape, want):
    y = np.arange(int(np.prod(shape))).reshape(shape) % 4
    out = to_categorical(y, num_classes=4)
    assert out.shape == want and out.dtype == np.float32
    if out.size:
        np.testing.assert_array_equal(out.sum(-1), 1.0)
    np.testing.assert_array_equal(out.reshape(-1, 4).argmax(1), y.reshape(-1))


def test_to_categorical_accepts_whole_floats_and_uint8_columns():
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])
    y = np.array([[9], [0], [3]], dtype=np.uint8)  # CIFAR-style labels
    out = to_categorical(y, 10)
    assert out.shape == (3, 10) and out[0, 9] == 1 and out[1, 0] == 1 and out[2, 3] == 1


@pytest.mark.parametrize("y,kw,exc,msg", [
    ([0, -1, 2], {}, ValueError, "labels must be >= 0, received -1"),
    ([0, 3], {"num_classes": 3}, ValueError, "labels must be < num_classes=3, received 3"),
    ([0.5, 1.0], {}, ValueError, r"whole numbers.*0\.5"),
    ([np.nan], {}, ValueError, "whole numbers"),
    (["a", "b"], {}, TypeError, "integer array-like"),
    ([0, 1], {"num_classes": 0}, ValueError, "num_classes must be >= 1"),
    ([0, 1], {"num_classes": True}, TypeError, "received bool"),
    ([0, 1], {"num_classes": 2.0}, TypeError, "received float"),
    ([], {}, ValueError, "cannot infer num_classes"),
])
def test_to_categorical_errors(y, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        to_categorical(y, **kw)


# ----------------------------------------------------------------------------- pad_sequences

SEQ = [[1], [2, 3], [4, 5, 6]]


def test_pad_sequences_keras_doc_examples():
    out = pad_sequences(SEQ)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQ, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQ, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQ, maxlen=2), [[0, 1], [2, 3], [5, 6]])


def test_pad_sequences_truncating_post_and_longer_maxlen():
    np.testing.assert_array_equal(pad_sequences(SEQ, maxlen=2, truncating="post"), [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(pad_sequences(SEQ, maxlen=2, truncating="post", padding="post"),
                                  [[1, 0], [2, 3], [4, 5]])
    np.testing.assert_array_equal(pad_sequences(SEQ, maxlen=4), [[0, 0, 0, 1], [0, 0, 2, 3], [0, 4, 5, 6]])


def test_pad_sequences_dtype_value_and_empty_rows():
    out = pad_sequences([[1.5, 2.5], [], [3.25]], dtype="float32", value=0.5)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.5, 2.5], [0.5, 0.5], [0.5, 3.25]])
    np.testing.assert_array_equal(pad_sequences([[1.9, 2.2]]), [[1, 2]])  # cast as NumPy casts


def test_pad_sequences_multidimensional_samples():
    out = pad_sequences([[[1, 2]], [[3, 4], [5, 6]], []], padding="post")
    assert out.shape == (3, 2, 2)
    np.testing.assert_array_equal(out, [[[1, 2], [0, 0]], [[3, 4], [5, 6]], [[0, 0], [0, 0]]])


def test_pad_sequences_object_dtype_strings():
    out = pad_sequences([["a"], ["b", "c"]], dtype=object, value="")
    assert out.tolist() == [["", "a"], ["b", "c"]]


def test_pad_sequences_numpy_and_tuple_inputs():
    out = pad_sequences((np.array([7, 8, 9]), (1,)), maxlen=2)
    np.testing.assert_array_equal(out, [[8, 9], [0, 1]])


def test_pad_sequences_edge_lengths():
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([[], []]).shape == (2, 0)
    assert pad_sequences(SEQ, maxlen=0).shape == (3, 0)


@pytest.mark.parametrize("args,kw,exc,msg", [
    ((5,), {}, ValueError, "must be iterable"),
    (([1, 2],), {}, ValueError, "non-iterable at position 0"),
    ((SEQ,), {"padding": "middle"}, ValueError, 'Padding type "middle" not understood'),
    ((SEQ,), {"truncating": "both"}, ValueError, 'Truncating type "both" not understood'),
    ((SEQ,), {"value": "x"}, ValueError, "not compatible with `value`'s type"),
    (([[[1, 2]], [[1, 2, 3]]],), {}, ValueError, r"Shape of sample \(3,\) of sequence at position 1"),
    ((SEQ,), {"maxlen": -1}, ValueError, "maxlen must be >= 0, received -1"),
    ((SEQ,), {"maxlen": 2.0}, TypeError, "maxlen must be an int or None, received float"),
    ((SEQ,), {"maxlen": True}, TypeError, "received bool"),
])
def test_pad_sequences_errors(args, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        pad_sequences(*args, **kw)


def _reference_pad(seqs, maxlen, padding, truncating, value):
    """Plain-list definition of Keras's padding for 1-D integer sequences."""
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    rows = []
    for s in seqs:
        s = list(s)
        if len(s) > maxlen:
            s = s[len(s) - maxlen:] if truncating == "pre" else s[:maxlen]
        fill = [value] * (maxlen - len(s))
        rows.append(fill + s if padding == "pre" else s + fill)
    return rows


@settings(max_examples=200, deadline=None)
@given(seqs=st.lists(st.lists(st.integers(-1000, 1000), max_size=8), max_size=6),
       maxlen=st.one_of(st.none(), st.integers(0, 10)), padding=st.sampled_from(["pre", "post"]),
       truncating=st.sampled_from(["pre", "post"]), value=st.integers(-5, 5))
def test_pad_sequences_matches_reference(seqs, maxlen, padding, truncating, value):
    out = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=value)
    want = _reference_pad(seqs, maxlen, padding, truncating, value)
    assert out.dtype == np.int32
    assert out.shape == (len(seqs), maxlen if maxlen is not None else max((len(s) for s in seqs), default=0))
    assert out.tolist() == want
