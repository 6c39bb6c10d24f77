"""Sequential.summary: Keras 3's table (columns at ``positions``, wrapped or cut cells, the
Trainable column), bytes per weight dtype, the optimizer line, nested layers, bad arguments."""
import re

import numpy as np
import pytest

from fastdl import layers
from fastdl.layers.base import Layer
from fastdl.models import Sequential

LONG = "d" * 60


def summary_lines(model, **kwargs):
    lines = []
    model.summary(print_fn=lines.append, **kwargs)
    return lines


def table(lines):
    """The table's lines (between the title and the totals)."""
    return [line for line in lines[1:] if not line.startswith(" ")]


def column_borders(line):
    return [i for i, ch in enumerate(line) if ch in "┃│┏┓┳┡┩╇├┤┼└┘┴"]


def long_model():
    model = Sequential([layers.Input(shape=(4,)), layers.Dense(3, name=LONG),
                        layers.Dense(2, name="out"), layers.Flatten(name="flat")])
    model.get_layer("out").trainable = False
    return model


@pytest.mark.parametrize("line_length", [None, 50, 120])
@pytest.mark.parametrize("show_trainable", [False, True])
def test_columns_never_run_together(line_length, show_trainable):
    lines = summary_lines(long_model(), line_length=line_length, show_trainable=show_trainable)
    rows = table(lines)
    width = len(rows[0])
    if line_length is not None:
        assert width == line_length
    # every table line has the same length and its borders at the same places, so no cell
    # ever spills into the next column
    assert all(len(r) == width for r in rows)
    borders = {tuple(column_borders(r)) for r in rows}
    assert len(borders) == 1 and len(next(iter(borders))) == 4 + show_trainable
    # the 60-character name is cut with "…" inside its column; the class goes on the next line
    name_line = next(r for r in rows if r.startswith("│ ddd"))
    assert "…" in name_line and LONG not in name_line
    assert rows[rows.index(name_line) + 1].startswith("│ (Dense)")
    # every cell keeps a space before the next border
    for r in rows:
        for b in column_borders(r)[1:]:
            assert r[b - 1] in " ━─"


def test_default_width_follows_keras_and_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert len(table(summary_lines(long_model()))[0]) == 88
    assert len(table(summary_lines(long_model(), show_trainable=True))[0]) == 100
    monkeypatch.setenv("COLUMNS", "70")
    assert len(table(summary_lines(long_model()))[0]) == 66


def test_positions_relative_and_absolute_set_the_column_ends():
    model = long_model()
    rel = table(summary_lines(model, line_length=100, positions=[0.3, 0.6, 1.0]))
    # each column ends at its position; the last border closes the line
    assert column_borders(rel[0]) == [0, 30, 60, 99]
    absolute = table(summary_lines(model, positions=[25, 50, 70]))
    assert column_borders(absolute[0]) == [0, 25, 50, 69]
    default = table(summary_lines(model, line_length=100))
    assert column_borders(default[0]) == [0, 45, 80, 99]


def test_show_trainable_column():
    model = long_model()
    lines = summary_lines(model, line_length=100, show_trainable=True)
    header = next(r for r in lines if r.startswith("┃"))
    assert header.split("┃")[-2].strip() == "Train…"        # cut to its column, as in Keras
    marks = {}
    for r in table(lines):
        cells = [c.strip() for c in r.split("│")[1:-1]]
        if cells and cells[0][:3] in ("ddd", "out", "fla"):
            marks[cells[0][:3]] = cells[-1]
    # trainable layer Y, frozen layer N, a layer without weights "-"
    assert marks == {"ddd": "Y", "out": "N", "fla": "-"}
    # positions are scaled by 0.9 and the Trainable column takes the rest (Keras)
    assert column_borders(table(lines)[0]) == [0, 40, 72, 90, 99]


def test_header_wraps_and_cuts_in_narrow_columns():
    lines = summary_lines(long_model(), line_length=50, show_trainable=True)
    header = [r for r in lines if r.startswith("┃")]
    assert len(header) == 2                                  # "Param" over "#"
    assert header[0].split("┃")[3].strip() == "Param" and header[1].split("┃")[3].strip() == "#"
    assert header[1].split("┃")[4].strip() == "…"             # "Trainable" cut to fit


def test_bytes_count_each_weight_at_its_dtype():
    model = Sequential([layers.Input(shape=(4,)), layers.Dense(3, dtype="float64"),
                        layers.Dense(2, dtype="float64")])
    model.layers[1].trainable = False
    text = "\n".join(summary_lines(model))
    # 15 + 8 parameters of 8 bytes each (Keras: weight_memory_size by dtype)
    assert " Total params: 23 (184.00 B)" in text
    assert " Trainable params: 15 (120.00 B)" in text
    assert " Non-trainable params: 8 (64.00 B)" in text
    f32 = Sequential([layers.Input(shape=(4,)), layers.Dense(256)])
    assert " Total params: 1,280 (5.00 KB)" in "\n".join(summary_lines(f32))


def test_optimizer_variables_are_listed_once_built():
    model = Sequential([layers.Input(shape=(4,)), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    assert not any("Optimizer" in line for line in summary_lines(model))
    model.fit(np.zeros((4, 4), np.float32), np.zeros((4, 3), np.float32), verbose=0)
    text = "\n".join(summary_lines(model))
    # Adam: iterations (int64) and the learning rate (float32), then m and v per weight
    slots = 2 * 15
    assert f" Optimizer params: {slots + 2} ({slots * 4 + 8 + 4:.2f} B)" in text
    assert f" Total params: {15 + slots + 2} ({15 * 4 + slots * 4 + 12:.2f} B)" in text


class Block(Layer):
    """A layer holding two Dense layers, listed by ``layers`` (as a nested Keras model is)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = [self._track_layer(layers.Dense(3, name="inner_a")),
                      self._track_layer(layers.Dense(2, name="inner_b"))]

    @property
    def layers(self):
        return list(self.inner)

    def build(self, input_shape):
        shape = input_shape
        for layer in self.inner:
            layer._maybe_build(shape)
            shape = layer.compute_output_shape(shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2)


def test_expand_nested_lists_the_inner_layers():
    model = Sequential([layers.Input(shape=(4,)), Block(name="block")])
    plain = "\n".join(summary_lines(model, line_length=80))
    assert "inner_a" not in plain and "block (Block)" in plain
    nested = "\n".join(summary_lines(model, line_length=80, expand_nested=True))
    assert re.search(r"│    └ inner_a \(Dense\) +│ \(None, 3\) +│ +15 │", nested)
    assert re.search(r"│    └ inner_b \(Dense\) +│ \(None, 2\) +│ +8 │", nested)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"positions": [0.5, 0.4, 1.0]}, ValueError, "increasing"),
    ({"positions": [0.5, 1.0]}, ValueError, "positions"),
    ({"positions": "wide"}, ValueError, "positions"),
    ({"line_length": 10}, ValueError, "Insufficient width"),
    ({"line_length": 0}, ValueError, "line_length"),
    ({"line_length": 80, "positions": [20, 40, 90]}, ValueError, "Insufficient width"),
    ({"positions": [20, 40, 44]}, ValueError, "Insufficient width"),   # no room in the last
    ({"show_trainable": 1}, TypeError, "show_trainable"),
    ({"expand_nested": "yes"}, TypeError, "expand_nested"),
    ({"print_fn": "stdout"}, TypeError, "print_fn"),
])
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        long_model().summary(**kwargs)


def test_tutorials_results_table_stays_aligned_for_long_names():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "tutorials.py")
    spec = importlib.util.spec_from_file_location("tutorials_example", path)
    tutorials = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tutorials)
    rows = [("linear regression", "learned", "y = 3.000 x + 2.000", 1.25, ""),
            ("logistic regression (breast cancer) " + "x" * 30, "test accuracy", "0.9912",
             123.4, "note"),
            ("digits CNN", "accuracy", "0.97", 0.0, "after 2 epoch(s)")]
    lines = tutorials.results_table(rows).splitlines()
    assert len(lines) == 3
    # every column starts at the same place on every line, two spaces after the longest entry
    for i, (name, metric, value, _, _) in enumerate(rows):
        assert lines[i].index(metric) == lines[0].index("learned") == len(rows[1][0]) + 2
        assert lines[i].index(value) == lines[0].index("y = 3.000")
    assert {line.index(" s") for line in lines} == {lines[0].index(" s")}
