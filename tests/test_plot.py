"""fastdl.plot and the AttributionCallback: figures render to PNG without a display, matplotlib
stays optional (lazy import, clear ImportError), bad arguments are refused.

The figure tests need matplotlib (the ``plot`` and ``test`` extras) and skip without it; the
lazy-import test runs either way."""
import os
import subprocess
import sys

import numpy as np
import pytest

try:
    import matplotlib
    matplotlib.use("Agg")
except ImportError:
    matplotlib = None
needs_matplotlib = pytest.mark.skipif(matplotlib is None, reason='needs matplotlib '
                                      '(pip install "fastdl[plot]")')

from fastdl import explain, plot  # noqa: E402
from fastdl import layers as L  # noqa: E402
from fastdl.explain.callbacks import AttributionCallback  # noqa: E402
from fastdl.models import Sequential  # noqa: E402
from fastdl.utils import set_random_seed  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=3000):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) >= min_bytes, f"{path} is only {len(data)} bytes"
    return data


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def _cnn(seed=0):
    set_random_seed(seed)
    model = Sequential([L.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu", padding="same"),
                        L.MaxPooling2D(2), L.Flatten(), L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _image_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, n)


@needs_matplotlib
def test_history_plots_train_and_validation_curves(tmp_path):
    model = _cnn()
    x, y = _image_data()
    hist = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    path = tmp_path / "history.png"
    fig = plot.history(hist, path=path)
    assert_png(path)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    loss_ax = fig.axes[0]
    labels = [line.get_label() for line in loss_ax.lines]
    assert labels == ["train", "validation"]
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), hist.history["loss"])
    np.testing.assert_allclose(loss_ax.lines[1].get_ydata(), hist.history["val_loss"])
    one = plot.history(hist.history, metrics="loss")
    assert len(one.axes) == 1
    with pytest.raises(ValueError, match="no such metric.*'auc'"):
        plot.history(hist, metrics=["auc"])
    with pytest.raises(ValueError, match="empty"):
        plot.history({})
    with pytest.raises(TypeError, match="History"):
        plot.history([1, 2, 3])


@needs_matplotlib
def test_attributions_on_images_overlay_each_method(tmp_path):
    model = _cnn()
    x, _ = _image_data(4)
    maps = {"saliency": explain.saliency(model, x),
            "integrated gradients": explain.integrated_gradients(model, x, steps=8),
            "grad-cam": explain.grad_cam(model, x)}
    path = tmp_path / "attr.png"
    fig = plot.attributions(x, maps, path=path, titles=["a", "b", "c", "d"])
    assert_png(path)
    axes = image_axes(fig)
    assert len(axes) == 4 * (1 + 3)
    assert [ax.get_title() for ax in axes[:4]] == ["a", "saliency", "integrated gradients",
                                                   "grad-cam"]
    # the overlay shows the attribution itself (channel axis dropped)
    np.testing.assert_allclose(axes[1].images[1].get_array(), maps["saliency"][0, ..., 0])
    fig2 = plot.attributions(x, maps["saliency"], max_samples=2)
    assert len(image_axes(fig2)) == 2 * 2
    rgb = np.random.default_rng(1).random((2, 5, 6, 3))
    signed = np.random.default_rng(2).standard_normal((2, 5, 6, 3))
    axes = image_axes(plot.attributions(rgb, signed))
    assert axes[0].images[0].get_array().shape == (5, 6, 3)
    # the channel of largest magnitude, sign kept, on a colour scale centred at 0
    pick = np.take_along_axis(signed, np.abs(signed).argmax(-1)[..., None], -1)[..., 0]
    np.testing.assert_allclose(axes[1].images[1].get_array(), pick[0])
    lo, hi = axes[1].images[1].get_clim()
    assert lo == -hi == -np.abs(pick[0]).max()
    with pytest.raises(ValueError, match="do not match the images"):
        plot.attributions(x, np.zeros((4, 7, 7)))
    with pytest.raises(ValueError, match="titles"):
        plot.attributions(x, maps["saliency"], titles=["only one"])


@needs_matplotlib
def test_attributions_on_tabular_features_are_bar_charts(tmp_path):
    names = ["age", "dose", "weight", "height"]
    attr = np.array([[0.1, -2.0, 0.5, 0.0], [0.3, -1.0, 0.7, 0.0]])
    path = tmp_path / "bars.png"
    fig = plot.attributions(np.ones((2, 4)), {"IG": attr, "perm": attr[0]},
                            feature_names=names, path=path)
    assert_png(path)
    ax = fig.axes[0]
    # sorted by mean magnitude, largest on top (last tick)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["height", "age", "weight", "dose"]
    widths = [p.get_width() for p in ax.patches]
    np.testing.assert_allclose(widths, [0.0, 0.2, 0.6, -1.5])
    assert len(fig.axes) == 2
    plot.attributions(None, attr[0])  # 1-D attributions alone, default names
    with pytest.raises(ValueError, match="feature_names has 3 names for 4 features"):
        plot.attributions(None, attr, feature_names=names[:3])
    with pytest.raises(ValueError, match="same feature count"):
        plot.attributions(None, {"a": attr, "b": np.zeros(3)})
    with pytest.raises(TypeError, match="numeric"):
        plot.attributions(None, np.array(["a", "b"]))


@needs_matplotlib
def test_filters_shows_every_kernel(tmp_path):
    model = _cnn()
    path = tmp_path / "filters.png"
    fig = plot.filters(model.layers[0], path=path)
    assert_png(path, min_bytes=2000)
    axes = image_axes(fig)
    assert len(axes) == 4
    np.testing.assert_allclose(axes[2].images[0].get_array(), model.layers[0].kernel[:, :, 0, 2])
    rgb = Sequential([L.Input((6, 6, 3)), L.Conv2D(5, 3)])
    fig = plot.filters(rgb.layers[0], max_filters=3)
    assert len(image_axes(fig)) == 3 and image_axes(fig)[0].images[0].get_array().shape == (3, 3, 3)
    with pytest.raises(TypeError, match="Conv2D"):
        plot.filters(model.layers[-1])
    with pytest.raises(ValueError, match="not built"):
        plot.filters(L.Conv2D(2, 3))
    with pytest.raises(ValueError, match="channel"):
        plot.filters(rgb.layers[0], channel=3)


@needs_matplotlib
def test_attribution_callback_writes_pngs_and_does_not_change_training(tmp_path):
    x, y = _image_data()
    cb = AttributionCallback(x[:3], every_n_epochs=2, out_dir=tmp_path / "attr",
                             method="integrated_gradients", method_kwargs={"steps": 4})
    model = _cnn(1)
    set_random_seed(2)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[cb])
    assert [os.path.basename(p) for p in cb.paths] == [
        "integrated_gradients_epoch_0002.png", "integrated_gradients_epoch_0004.png"]
    for p in cb.paths:
        assert_png(p)
    twin = _cnn(1)
    set_random_seed(2)
    twin.fit(x, y, epochs=5, batch_size=8, verbose=0)
    for u, v in zip(model.weights, twin.weights):
        np.testing.assert_array_equal(u, v)
    grad_cam = AttributionCallback(x[:2], out_dir=tmp_path / "cam", method="grad_cam")
    _cnn(3).fit(x, y, epochs=1, verbose=0, callbacks=[grad_cam])
    assert len(grad_cam.paths) == 1 and os.path.exists(grad_cam.paths[0])
    with pytest.raises(ValueError, match="method"):
        AttributionCallback(x, method="lime")
    with pytest.raises(ValueError, match="every_n_epochs"):
        AttributionCallback(x, every_n_epochs=0)
    with pytest.raises(TypeError, match="every_n_epochs"):
        AttributionCallback(x, every_n_epochs=1.5)


def test_matplotlib_is_optional_and_imported_lazily():
    code = (
        "import sys\n"
        "import fastdl.plot, fastdl.explain, fastdl.explain.callbacks\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'\n"
        "sys.modules['matplotlib'] = None\n"  # now make it unavailable
        "sys.modules['matplotlib.figure'] = None\n"
        "try:\n"
        "    fastdl.plot.history({'loss': [1.0, 0.5]})\n"
        "except ImportError as e:\n"
        "    assert 'pip install \"fastdl[plot]\"' in str(e), str(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
        "try:\n"
        "    fastdl.explain.callbacks.AttributionCallback([[0.0]])\n"
        "except ImportError as e:\n"
        "    assert 'fastdl[plot]' in str(e), str(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError from the callback')\n"
        "print('ok')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
