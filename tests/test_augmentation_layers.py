"""The image layers: augmentations (active in training only, seeded), Resizing, CenterCrop.

Expected values come from the transforms' formulas (np.flip, np.rot90, whole-pixel shifts
against np.pad's modes, a loop-by-loop bilinear reference), from central differences for the
backward passes, and from real Keras (torch backend) where it is installed.
"""
import os

import numpy as np
import pytest

import fastdl
from fastdl import layers as L
from gradcheck import check_layer_gradients

RNG = np.random.default_rng(7)
IMAGES = RNG.uniform(0, 255, (3, 6, 5, 2)).astype(np.float32)

AUGMENTATIONS = [
    lambda **kw: L.RandomFlip(**kw),
    lambda **kw: L.RandomRotation(0.2, **kw),
    lambda **kw: L.RandomZoom(0.3, 0.2, **kw),
    lambda **kw: L.RandomTranslation(0.3, 0.3, **kw),
    lambda **kw: L.RandomContrast(0.5, **kw),
    lambda **kw: L.RandomBrightness(0.3, **kw),
    lambda **kw: L.RandomCrop(4, 3, **kw),
]


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch", reason="real Keras runs on the torch backend here")
    return pytest.importorskip("keras", reason="real Keras is the oracle")


@pytest.mark.parametrize("make", AUGMENTATIONS)
def test_identity_in_inference(make):
    layer = make(seed=1)
    np.testing.assert_array_equal(layer(IMAGES, training=False), IMAGES)
    np.testing.assert_array_equal(layer.backward(np.ones_like(IMAGES)), np.ones_like(IMAGES))
    model = fastdl.models.Sequential([L.Input((6, 5, 2)), make(seed=1)])
    np.testing.assert_array_equal(model.predict(IMAGES, verbose=0), IMAGES)
    np.testing.assert_array_equal(model(IMAGES), IMAGES)


@pytest.mark.parametrize("make", AUGMENTATIONS)
def test_deterministic_for_a_seed_and_changing_between_calls(make):
    a, b = make(seed=3), make(seed=3)
    first = a(IMAGES, training=True)
    np.testing.assert_array_equal(first, b(IMAGES, training=True))
    np.testing.assert_array_equal(a(IMAGES, training=True), b(IMAGES, training=True))
    assert not np.array_equal(first, a(IMAGES, training=True)) or isinstance(a, L.RandomFlip)
    # a direct call augments, as in Keras (its call's default is training=True)
    np.testing.assert_array_equal(make(seed=3)(IMAGES), first)


def test_seed_may_be_a_seed_generator_or_a_numpy_generator():
    from fastdl.random import SeedGenerator
    ref = L.RandomRotation(0.3, seed=11)(IMAGES)
    np.testing.assert_allclose(L.RandomRotation(0.3, seed=SeedGenerator(11))(IMAGES), ref)
    np.testing.assert_allclose(
        L.RandomRotation(0.3, seed=np.random.default_rng(11))(IMAGES), ref)
    with pytest.raises(TypeError, match="seed"):
        L.RandomRotation(0.3, seed="eleven")
    assert L.RandomRotation(0.3, seed=11).get_config()["seed"] == 11


def test_random_flip_flips_whole_images():
    x = np.arange(2 * 4 * 3 * 1, dtype=np.float32).reshape(2, 4, 3, 1)
    for mode, axes in (("horizontal", (2,)), ("vertical", (1,)),
                       ("horizontal_and_vertical", (1, 2))):
        seen = set()
        layer = L.RandomFlip(mode, seed=0)
        for _ in range(12):
            y = layer(x, training=True)
            for i in range(2):
                flipped = np.array_equal(y[i], np.flip(x[i], axis=tuple(a - 1 for a in axes)))
                assert flipped or np.array_equal(y[i], x[i])
                seen.add(flipped)
        assert seen == {True, False}


def test_rotation_by_a_quarter_turn_is_rot90_counter_clockwise():
    x = RNG.standard_normal((2, 5, 5, 3)).astype(np.float32)
    y = L.RandomRotation((0.25, 0.25), interpolation="nearest")(x, training=True)
    # Keras: positive angles turn the content counter-clockwise (as displayed, row 0 on top)
    np.testing.assert_array_equal(y, np.rot90(x, k=1, axes=(1, 2)))


@pytest.mark.parametrize("fill_mode,pad_mode", [("reflect", "symmetric"), ("wrap", "wrap"),
                                                ("nearest", "edge"), ("constant", "constant")])
def test_whole_pixel_translation_against_numpy_pad(fill_mode, pad_mode):
    x = RNG.standard_normal((1, 6, 5, 2)).astype(np.float32)
    dy, dx = 2, -1                       # 2/6 of the height down, 1/5 of the width left
    layer = L.RandomTranslation((dy / 6, dy / 6), (dx / 5, dx / 5), fill_mode=fill_mode,
                                fill_value=0.0)
    padded = np.pad(x, [(0, 0), (6, 6), (5, 5), (0, 0)], mode=pad_mode)
    expected = padded[:, 6 - dy:12 - dy, 5 - dx:10 - dx, :]
    np.testing.assert_allclose(layer(x, training=True), expected, atol=1e-5)


def _bilinear_reference(img, ys, xs, fill_value):
    """Loop-by-loop bilinear sampling of one (H, W, C) image with a constant border."""
    h, w, c = img.shape
    out = np.zeros(ys.shape + (c,))
    for i in range(ys.shape[0]):
        for j in range(ys.shape[1]):
            y, x = ys[i, j], xs[i, j]
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                    v = img[yy, xx] if 0 <= yy < h and 0 <= xx < w else fill_value
                    out[i, j] += wy * wx * v
    return out


def test_zoom_matches_the_bilinear_formula_about_the_centre():
    x = RNG.standard_normal((1, 6, 5, 2))
    zy, zx = 1.4, 0.7
    layer = L.RandomZoom((zy - 1, zy - 1), (zx - 1, zx - 1), fill_mode="constant",
                         fill_value=0.5, dtype="float64")
    jj, ii = np.meshgrid(np.arange(5.0), np.arange(6.0))
    ys = zy * ii + (6 - 1) / 2 * (1 - zy)
    xs = zx * jj + (5 - 1) / 2 * (1 - zx)
    np.testing.assert_allclose(layer(x, training=True)[0], _bilinear_reference(x[0], ys, xs, 0.5),
                               atol=1e-12)


def test_contrast_and_brightness_follow_their_formulas():
    x = RNG.uniform(100, 150, (4, 5, 3, 2)).astype(np.float64)
    y = L.RandomContrast((0.3, 0.6), seed=2, dtype="float64")(x).numpy()
    mean = x.mean(axis=(1, 2), keepdims=True)
    c = ((y - mean) * (x - mean)).sum(axis=(1, 2, 3)) / ((x - mean) ** 2).sum(axis=(1, 2, 3))
    assert np.all((c >= 1 - 0.3) & (c <= 1 + 0.6)) and len(set(np.round(c, 6))) == 4
    np.testing.assert_allclose(y, (x - mean) * c[:, None, None, None] + mean, rtol=1e-12)
    y = L.RandomBrightness((-0.1, 0.2), seed=2, dtype="float64")(x).numpy()
    delta = (y - x).reshape(4, -1)
    np.testing.assert_allclose(delta, delta[:, :1] * np.ones_like(delta), atol=1e-9)
    assert np.all((delta[:, 0] >= -0.1 * 255) & (delta[:, 0] <= 0.2 * 255))
    clipped = L.RandomBrightness((0.9, 0.9), value_range=(0, 1), dtype="float64")(x / 300)
    np.testing.assert_allclose(clipped, 1.0)
    assert L.RandomContrast(0.2).factor == (0.0, 0.2)          # Keras: (max(-f, 0), f)


def test_random_crop_windows_and_small_images():
    x = np.arange(2 * 6 * 5 * 1, dtype=np.float32).reshape(2, 6, 5, 1)
    layer = L.RandomCrop(3, 2, seed=4)
    y = layer(x, training=True)
    assert y.shape == (2, 3, 2, 1)
    top, left = np.argwhere(x[0, :, :, 0] == y[0, 0, 0, 0])[0]
    np.testing.assert_array_equal(y, x[:, top:top + 3, left:left + 2])   # one window per batch
    # not larger than the target: Keras cuts from the central box of the target's aspect ratio
    # (here rows 0.., columns 1..: a 6 x 4 window) and resizes that to the target
    small = L.RandomCrop(8, 5)(x, training=True)
    np.testing.assert_allclose(small, L.Resizing(8, 5)(x[:, :, 1:]), atol=1e-4)


@pytest.mark.parametrize("layer", [
    L.RandomRotation((0.07, 0.07), fill_mode="reflect", dtype="float64"),
    L.RandomRotation((-0.1, -0.1), fill_mode="constant", fill_value=2.0, dtype="float64"),
    L.RandomZoom((0.3, 0.3), (-0.2, -0.2), fill_mode="wrap", dtype="float64"),
    L.RandomTranslation((0.15, 0.15), (-0.25, -0.25), fill_mode="nearest", dtype="float64"),
    L.RandomBrightness((0.1, 0.1), value_range=(-1, 0.5), dtype="float64"),
    L.RandomCrop(7, 4, dtype="float64"),
    L.Resizing(4, 7, dtype="float64"),
    L.Resizing(3, 3, crop_to_aspect_ratio=True, dtype="float64"),
    L.CenterCrop(3, 2, dtype="float64"),
    L.CenterCrop(7, 5, dtype="float64"),
], ids=lambda l: type(l).__name__)
def test_backward_against_central_differences(layer):
    x = RNG.standard_normal((2, 5, 4, 2))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("layer", [
    L.RandomContrast((0.2, 0.7), value_range=(-2, 2), seed=3, dtype="float64"),
    L.RandomCrop(3, 2, seed=3, dtype="float64"),
    L.RandomFlip(seed=3, dtype="float64"),
], ids=lambda l: type(l).__name__)
def test_backward_against_central_differences_for_the_draw(layer):
    from gradcheck import numerical_gradient
    x = RNG.standard_normal((2, 5, 4, 2))
    r = RNG.standard_normal(layer(x, training=True).shape)
    dx = layer.backward(r.copy())
    drawn = layer._drawn          # the factors of that call, held fixed for the differences
    numeric = numerical_gradient(lambda: float(np.sum(layer.apply(x, drawn) * r)), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-4, atol=1e-6)


def test_random_flip_backward_is_its_adjoint():
    layer = L.RandomFlip(seed=5, dtype="float64")
    x, r = RNG.standard_normal((6, 4, 3, 2)), RNG.standard_normal((6, 4, 3, 2))
    y = layer(x, training=True)
    assert np.isclose(np.sum(y * r), np.sum(x * layer.backward(r)))


def test_resizing_half_pixel_bilinear_and_nearest():
    x = RNG.standard_normal((1, 4, 6, 1))
    y = L.Resizing(3, 4, dtype="float64")(x)
    ys = np.clip((np.arange(3) + 0.5) * 4 / 3 - 0.5, 0, 3)
    xs = np.clip((np.arange(4) + 0.5) * 6 / 4 - 0.5, 0, 5)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    # clamped coordinates: the reference's constant border is never reached with weight > 0
    np.testing.assert_allclose(y[0], _bilinear_reference(x[0], gy, gx, 0.0), atol=1e-12)
    near = L.Resizing(8, 3, interpolation="nearest")(x)
    rows = np.minimum(np.floor((np.arange(8) + 0.5) * 4 / 8), 3).astype(int)
    cols = np.minimum(np.floor((np.arange(3) + 0.5) * 6 / 3), 5).astype(int)
    np.testing.assert_allclose(near, x[:, rows][:, :, cols].astype(np.float32))
    np.testing.assert_array_equal(L.CenterCrop(2, 4)(x), x[:, 1:3, 1:5].astype(np.float32))


def test_bad_input_is_a_clear_error():
    with pytest.raises(TypeError, match="expects numbers"):
        L.RandomFlip()(np.array([["a"]]))
    with pytest.raises(ValueError, match="rank 3 or 4"):
        L.RandomRotation(0.1)(np.zeros((2, 3)), training=True)
    with pytest.raises(ValueError, match="fill_mode"):
        L.RandomZoom(0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match="factor"):
        L.RandomContrast(1.5)
    with pytest.raises(ValueError, match="mode"):
        L.RandomFlip("diagonal")
    with pytest.raises(ValueError, match="channels-last"):
        L.Resizing(2, 2, data_format="channels_first")


def test_training_through_augmentation_in_sequential_and_functional():
    x = RNG.uniform(0, 1, (16, 8, 8, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)
    for build in ("sequential", "functional"):
        layers = [L.Rescaling(2.0, -1.0), L.RandomFlip(seed=1), L.RandomRotation(0.05, seed=2),
                  L.Conv2D(2, 3), L.RandomZoom(0.1, seed=3), L.Flatten(),
                  L.Dense(1, activation="sigmoid")]
        if build == "sequential":
            model = fastdl.models.Sequential([L.Input((8, 8, 1))] + layers)
        else:
            inp = fastdl.keras.Input((8, 8, 1))
            out = inp
            for layer in layers:
                out = layer(out)
            model = fastdl.models.Model(inp, out)
        model.compile("adam", "binary_crossentropy")
        before = [w.copy() for w in model.get_weights()]
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        # inference is deterministic: the augmentations are off
        np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_oracle_affine_transforms():
    keras = _keras()
    x = RNG.uniform(0, 255, (2, 7, 6, 3)).astype(np.float32)
    for fill_mode in ("reflect", "wrap", "constant", "nearest"):
        for interpolation in ("bilinear", "nearest"):
            kw = dict(fill_mode=fill_mode, interpolation=interpolation, fill_value=3.0)
            pairs = [(keras.layers.RandomRotation((0.1, 0.1), **kw),
                      L.RandomRotation((0.1, 0.1), **kw)),
                     (keras.layers.RandomZoom((0.3, 0.3), (-0.2, -0.2), **kw),
                      L.RandomZoom((0.3, 0.3), (-0.2, -0.2), **kw)),
                     (keras.layers.RandomTranslation((0.2, 0.2), (-0.3, -0.3), **kw),
                      L.RandomTranslation((0.2, 0.2), (-0.3, -0.3), **kw))]
            for k, f in pairs:
                expected = keras.ops.convert_to_numpy(k(x, training=True))
                np.testing.assert_allclose(f(x, training=True), expected, atol=2e-4,
                                           err_msg=f"{type(f).__name__} {kw}")


def test_keras_oracle_resizing_and_crops():
    keras = _keras()
    x = RNG.uniform(0, 255, (2, 7, 6, 3)).astype(np.float32)
    for interpolation in ("bilinear", "nearest"):
        for h, w, crop in ((3, 4, False), (11, 9, False), (4, 4, True), (10, 3, True)):
            k = keras.layers.Resizing(h, w, interpolation=interpolation,
                                      crop_to_aspect_ratio=crop)
            f = L.Resizing(h, w, interpolation=interpolation, crop_to_aspect_ratio=crop)
            np.testing.assert_allclose(f(x), keras.ops.convert_to_numpy(k(x)), atol=2e-4)
    for h, w in ((4, 3), (9, 8)):
        np.testing.assert_allclose(L.CenterCrop(h, w)(x), keras.ops.convert_to_numpy(
            keras.layers.CenterCrop(h, w)(x)), atol=2e-4)
    np.testing.assert_allclose(L.RandomCrop(9, 4)(x), keras.ops.convert_to_numpy(
        keras.layers.RandomCrop(9, 4)(x, training=True)), atol=2e-4)


def test_saved_with_the_model_and_read_by_keras(tmp_path):
    pytest.importorskip("h5py", reason="the .keras format needs h5py")
    model = fastdl.models.Sequential([
        L.Input((8, 8, 3)), L.Rescaling(1 / 255), L.RandomFlip("horizontal", seed=1),
        L.RandomRotation(0.1, fill_mode="constant"), L.RandomZoom(0.1, 0.2),
        L.RandomTranslation(0.1, 0.1), L.RandomContrast(0.2, value_range=(0, 1)),
        L.RandomBrightness(0.1, value_range=(0, 1)), L.RandomCrop(6, 6), L.Resizing(8, 8),
        L.CenterCrop(6, 6), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    x = RNG.uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    for name in ("m.fdl", "m.keras"):
        model.save(tmp_path / name)
        loaded = fastdl.models.load_model(tmp_path / name)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)
        assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    keras = _keras()
    k = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(k.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    k.save(tmp_path / "k.keras")
    back = fastdl.models.load_model(tmp_path / "k.keras", compile=False)
    np.testing.assert_allclose(back.predict(x, verbose=0), expected, rtol=1e-6)


def test_training_skips_the_backward_of_leading_layers_without_weights(monkeypatch):
    # regression: Sequential ran the backward of every layer, so augmentation in front cost
    # its adjoint and the first Conv2D's dx on every step, though nothing before trains
    calls = []
    monkeypatch.setattr(L.RandomRotation, "backward", lambda self, dy: calls.append(1))
    conv = L.Conv2D(2, 3)
    needed = []
    original = type(conv).backward
    monkeypatch.setattr(type(conv), "backward",
                        lambda self, dy: needed.append(self.input_gradient_needed)
                        or original(self, dy))
    model = fastdl.models.Sequential([L.Input((6, 6, 1)), L.Rescaling(0.5),
                                      L.RandomRotation(0.1, seed=0), conv, L.Flatten(),
                                      L.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(RNG.standard_normal((4, 6, 6, 1)), np.zeros(4), epochs=1, verbose=0)
    assert calls == [] and needed == [False]
    assert conv.input_gradient_needed is True      # restored after training


def test_affine_kernel_reads_nan_coordinates_as_outside():
    from fastdl import _core
    out = _core.affine_transform(np.ones((1, 2, 2, 1), np.float32), np.full((1, 6), np.nan),
                                 "bilinear", "constant", 5.0)
    np.testing.assert_array_equal(out, 5.0)
