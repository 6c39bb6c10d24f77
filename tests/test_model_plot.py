"""keras.utils.model_to_dot / plot_model: the layer graph as Graphviz text, images via `dot`."""
import os
import re
import stat

import numpy as np
import pytest

import fastdl
from fastdl import layers
from fastdl.utils import model_to_dot, plot_model


def _graph(text):
    """{node id: label} and the set of (source label, target label) edges of a dot text."""
    labels = dict(re.findall(r'^\s*"(\w+)" \[label="(.*)"\];$', text, re.M))
    edges = {(labels[a].split("\\n")[0], labels[b].split("\\n")[0])
             for a, b in re.findall(r'^\s*"(\w+)" -> "(\w+)";$', text, re.M)}
    return labels, edges


def _residual():
    inp = fastdl.Input((4,), name="x")
    a = layers.Dense(3, activation="relu", name="a")(inp)
    b = layers.Dense(3, name="b")(a)
    out = layers.Add(name="sum")([a, b])
    return fastdl.Model(inp, out, name="residual")


def test_functional_graph_edges_follow_the_calls():
    text = model_to_dot(_residual()).to_string()
    assert text.startswith('digraph "residual" {')
    labels, edges = _graph(text)
    assert sorted(l.split("\\n")[0] for l in labels.values()) == [
        "a (Dense)", "b (Dense)", "sum (Add)", "x (InputLayer)"]
    assert edges == {("x (InputLayer)", "a (Dense)"), ("a (Dense)", "b (Dense)"),
                     ("a (Dense)", "sum (Add)"), ("b (Dense)", "sum (Add)")}


def test_labels_show_what_is_asked():
    text = model_to_dot(_residual(), show_shapes=True, show_layer_activations=True,
                        show_trainable=True, show_dtype=True, show_layer_names=False).to_string()
    labels, _ = _graph(text)
    dense_a = next(l for l in labels.values() if "Activation: relu" in l)
    assert dense_a.split("\\n") == ["Dense", "Activation: relu", "Input shape: (None, 4)",
                                    "Output shape: (None, 3)", "Output dtype: float32",
                                    "Trainable: Y"]
    add = next(l for l in labels.values() if l.startswith("Add"))
    assert "Input shape: (None, 3), (None, 3)" in add and "Trainable: -" in add


def test_sequential_is_a_chain_and_nested_models_expand():
    inner = fastdl.Sequential([fastdl.Input((3,)), layers.Dense(2, name="i1"),
                               layers.Dense(2, name="i2")], name="inner")
    inp = fastdl.Input((3,), name="x")
    out = layers.Dense(1, name="head")(inner(inp))
    model = fastdl.Model(inp, out)
    _, edges = _graph(model_to_dot(inner).to_string())
    assert edges == {("i1 (Dense)", "i2 (Dense)")}
    flat = model_to_dot(model).to_string()
    assert ("inner (Sequential)", "head (Dense)") in _graph(flat)[1]
    expanded = model_to_dot(model, expand_nested=True).to_string()
    assert 'subgraph "cluster_' in expanded and "i1 (Dense)" in expanded
    _, edges = _graph(expanded)
    assert {("x (InputLayer)", "i1 (Dense)"), ("i1 (Dense)", "i2 (Dense)"),
            ("i2 (Dense)", "head (Dense)")} <= edges


def test_plot_model_writes_dot_without_graphviz(tmp_path):
    path = tmp_path / "m.dot"
    assert plot_model(_residual(), to_file=str(path)) is None
    assert path.read_text() == model_to_dot(_residual(), show_layer_names=False).to_string()


def test_plot_model_renders_with_the_dot_program(tmp_path, monkeypatch):
    # A stand-in for Graphviz's `dot`: records its arguments and input, answers fixed bytes.
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\n/bin/cat > {tmp_path}/input\n"
                    "printf 'PNGDATA'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.setitem(__import__("sys").modules, "IPython", None)
    plot_model(_residual(), to_file=str(tmp_path / "m.svg"), show_shapes=True)
    assert (tmp_path / "m.svg").read_bytes() == b"PNGDATA"
    assert (tmp_path / "args").read_text().split() == ["-Tsvg"]
    assert (tmp_path / "input").read_text() == model_to_dot(
        _residual(), show_shapes=True, show_layer_names=False).to_string()


def test_missing_graphviz_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImportError, match="install graphviz"):
        plot_model(_residual(), to_file=str(tmp_path / "m.png"))
    assert not (tmp_path / "m.png").exists()


def test_bad_arguments():
    model = _residual()
    with pytest.raises(ValueError, match="layer_range"):
        model_to_dot(model, layer_range=["a", "b"])
    with pytest.raises(ValueError, match="Unrecognized"):
        model_to_dot(model, colour=True)
    with pytest.raises(ValueError, match="rankdir"):
        model_to_dot(model, rankdir="XY")
    with pytest.raises(TypeError, match="show_shapes"):
        model_to_dot(model, show_shapes="yes")
    with pytest.raises(TypeError, match="fastdl model"):
        model_to_dot(np.zeros(3))
    unbuilt = fastdl.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="not yet been built"):
        model_to_dot(unbuilt)
