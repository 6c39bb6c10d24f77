"""Plots for training histories, attributions and convolution filters (matplotlib, optional).

Install with ``pip install "fastdl[plot]"``. matplotlib is imported only when a plot is made,
and figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``), so
no display and no pyplot state are involved: the functions work on headless machines and in
callbacks without leaking figures. Each function returns the ``Figure`` (shown by Jupyter when
it is the cell's value) and writes a PNG when given ``path=``.
"""
import numbers
import os

import numpy as np

__all__ = ["history", "attributions", "filters"]

_INSTALL_HINT = ('fastdl.plot needs matplotlib: pip install "fastdl[plot]" '
                 '(or pip install matplotlib)')


def _figure(width, height):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(_INSTALL_HINT) from e
    return Figure(figsize=(width, height), layout="constrained")


def _finish(fig, path, dpi):
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike. Received: {type(path).__name__}")
        fig.savefig(os.fspath(path), format="png", dpi=dpi)
    return fig


# ----------------------------------------------------------------------------- history

def history(history, metrics=None, path=None, dpi=100):
    """Loss and metric curves per epoch, training and ``val_`` side by side.

    Args:
        history: the ``History`` returned by ``fit`` (or its ``.history`` dict).
        metrics: names to plot (without ``val_``); None for all.
        path: write a PNG there.
    Returns:
        The matplotlib ``Figure``, one panel per metric.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError("plot.history expects the History returned by fit() or its .history "
                        f"dict. Received: {type(history).__name__}")
    if not logs or not any(len(v) for v in logs.values()):
        raise ValueError("plot.history: the history is empty (fit() ran no epochs?)")
    names = [k for k in logs if not k.startswith("val_")]
    names += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in logs]
    names.sort(key=lambda k: (k != "loss", k))
    if metrics is not None:
        if isinstance(metrics, str):
            metrics = [metrics]
        unknown = [m for m in metrics if m not in names]
        if unknown:
            raise ValueError(f"plot.history: no such metric(s) {unknown}. Available: {names}")
        names = list(metrics)
    for key in list(logs):
        values = np.asarray(logs[key], dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"plot.history: {key!r} must be a list of numbers per epoch")
    fig = _figure(4.0 * len(names), 3.2)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "train", "-"), ("val_" + name, "validation", "--")):
            if key in logs and len(logs[key]):
                values = np.asarray(logs[key], dtype=np.float64)
                ax.plot(np.arange(1, len(values) + 1), values, style, marker="o",
                        markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _finish(fig, path, dpi)


# ----------------------------------------------------------------------------- attributions

def _as_maps(attributions):
    """{title: array} from an array or a dict of arrays."""
    if isinstance(attributions, dict):
        if not attributions:
            raise ValueError("plot.attributions: the attributions dict is empty")
        items = list(attributions.items())
    else:
        items = [("attribution", attributions)]
    out = {}
    for title, a in items:
        a = np.asarray(a)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"plot.attributions: attributions {title!r} must be numeric. "
                            f"Received dtype {a.dtype}")
        out[str(title)] = a.astype(np.float64)
    return out


def _image_kind(x):
    """True when x is a batch of images (N, H, W), (N, H, W, C) with C in {1, 3, 4}."""
    return x.ndim == 3 and min(x.shape[1:]) > 1 or x.ndim == 4 and x.shape[-1] in (1, 3, 4)


def _to_heat(a, n, hw):
    """One non-negative-or-signed 2-D map per sample: channels reduced by max |value|."""
    if a.ndim == 4:
        idx = np.argmax(np.abs(a), axis=-1)[..., None]
        a = np.take_along_axis(a, idx, axis=-1)[..., 0]
    if a.shape != (n,) + hw:
        raise ValueError(f"plot.attributions: attributions of shape {a.shape} do not match the "
                         f"images, expected ({n}, {hw[0]}, {hw[1]}) or with a channel axis")
    return a


def attributions(x, attributions, feature_names=None, path=None, max_samples=8, titles=None,
                 cmap=None, alpha=0.55, dpi=100):
    """Show attributions next to their inputs.

    - Images (``x`` of shape ``(N, H, W, C)`` with C in 1, 3, 4, or ``(N, H, W)``): one row per
      sample (at most ``max_samples``): the image, then each attribution map overlaid on it.
      Maps with a channel axis are reduced to the channel of largest magnitude; signed maps
      use a diverging colour map centred at 0, non-negative ones (saliency, Grad-CAM) a
      sequential one. ``(N, h, w)`` maps (Grad-CAM) must already have the image's size.
    - Tabular (``x`` of shape ``(N, F)`` or ``(F,)``, or None): a horizontal bar chart per
      method of the mean attribution over samples (error bars: the standard deviation when
      there are several samples), features sorted by mean magnitude, labelled with
      ``feature_names``.

    Args:
        attributions: an array like ``x``, or a dict ``{method name: array}`` to compare several.
        titles: per-sample row labels for images (e.g. the predicted classes).
        path: write a PNG there.
    Returns:
        The matplotlib ``Figure``.
    """
    maps = _as_maps(attributions)
    first = next(iter(maps.values()))
    if x is not None:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"plot.attributions: x must be numeric. Received dtype {x.dtype}")
    if x is not None and _image_kind(x):
        return _image_attributions(x.astype(np.float64), maps, path, max_samples, titles, cmap,
                                   alpha, dpi)
    return _tabular_attributions(x, maps, first, feature_names, path, dpi)


def _image_attributions(x, maps, path, max_samples, titles, cmap, alpha, dpi):
    if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) \
            or max_samples < 1:
        raise ValueError(f"plot.attributions: max_samples must be a positive int. "
                         f"Received: {max_samples!r}")
    n = min(len(x), int(max_samples))
    if n == 0:
        raise ValueError("plot.attributions: x holds no samples")
    hw = x.shape[1:3]
    heats = {}
    for title, a in maps.items():
        if len(a) < n:
            raise ValueError(f"plot.attributions: attributions {title!r} hold {len(a)} samples, "
                             f"x holds {len(x)}")
        heats[title] = _to_heat(a[:len(x)], len(x), hw)[:n]
    if titles is not None and len(titles) < n:
        raise ValueError(f"plot.attributions: titles has {len(titles)} entries for {n} samples")
    images = x[:n]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    lo, hi = images.min(), images.max()
    images = (images - lo) / (hi - lo) if hi > lo else np.zeros_like(images)
    cols = 1 + len(heats)
    fig = _figure(2.0 * cols + 0.6, 2.0 * n)
    axes = fig.subplots(n, cols, squeeze=False)
    grey = images.ndim == 3
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(images[i], cmap="gray" if grey else None, interpolation="nearest")
        label = "input" if titles is None else str(titles[i])
        ax.set_title(label if i == 0 or titles is not None else "", fontsize=9)
        for j, (title, heat) in enumerate(heats.items(), start=1):
            h = heat[i]
            ax = axes[i, j]
            ax.imshow(images[i], cmap="gray" if grey else None, interpolation="nearest")
            if np.min(heat) < 0:
                m = np.max(np.abs(h)) or 1.0
                im = ax.imshow(h, cmap=cmap or "bwr", vmin=-m, vmax=m, alpha=alpha,
                               interpolation="nearest")
            else:
                im = ax.imshow(h, cmap=cmap or "inferno", vmin=0, vmax=np.max(h) or 1.0,
                               alpha=alpha, interpolation="nearest")
            if i == 0:
                ax.set_title(title, fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig, path, dpi)


def _tabular_attributions(x, maps, first, feature_names, path, dpi):
    n_features = first.shape[-1] if first.ndim else 0
    for title, a in maps.items():
        if a.ndim not in (1, 2) or a.shape[-1] != n_features or n_features == 0:
            raise ValueError(f"plot.attributions: tabular attributions must be (features,) or "
                             f"(samples, features) with the same feature count; {title!r} has "
                             f"shape {a.shape}")
    if x is not None and (x.ndim not in (1, 2) or x.shape[-1] != n_features):
        raise ValueError(f"plot.attributions: x of shape {x.shape} does not match attributions "
                         f"with {n_features} features (for images x must be (N, H, W) or "
                         f"(N, H, W, C) with C in 1, 3, 4)")
    if feature_names is None:
        feature_names = [f"feature {i}" for i in range(n_features)]
    else:
        if isinstance(feature_names, str) or not hasattr(feature_names, "__len__"):
            raise TypeError("plot.attributions: feature_names must be a list of names")
        feature_names = [str(f) for f in feature_names]
        if len(feature_names) != n_features:
            raise ValueError(f"plot.attributions: feature_names has {len(feature_names)} names "
                             f"for {n_features} features")
    stats = {}
    for title, a in maps.items():
        a2 = a.reshape(-1, n_features)
        stats[title] = (a2.mean(axis=0), a2.std(axis=0) if len(a2) > 1 else None)
    order = np.argsort(-np.abs(next(iter(stats.values()))[0]))[::-1]
    cols = len(stats)
    fig = _figure(4.2 * cols + 1.5, max(2.4, 0.9 + 0.24 * n_features))
    axes = fig.subplots(1, cols, squeeze=False, sharey=True)[0]
    pos = np.arange(n_features)
    for ax, (title, (mean, std)) in zip(axes, stats.items()):
        colors = np.where(mean[order] >= 0, "#d62728", "#1f77b4")
        ax.barh(pos, mean[order], xerr=None if std is None else std[order], color=colors,
                error_kw={"elinewidth": 0.8, "alpha": 0.6})
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(pos)
    axes[0].set_yticklabels([feature_names[i] for i in order], fontsize=8)
    return _finish(fig, path, dpi)


# ----------------------------------------------------------------------------- filters

def filters(layer, path=None, channel=None, max_filters=64, dpi=100):
    """A Conv2D layer's kernels as an image grid, one tile per filter.

    Kernels with 3 input channels are shown in colour (each filter scaled to [0, 1]); others in
    grey: the input channel ``channel``, or the mean over input channels when None (the only
    channel for single-channel inputs). Signed values use a diverging map centred at 0.
    """
    from fastdl.layers.convolutional import Conv2D
    if not isinstance(layer, Conv2D):
        raise TypeError(f"plot.filters expects a Conv2D layer. Received: {type(layer).__name__}")
    if not layer.built or layer.kernel is None:
        raise ValueError(f"plot.filters: layer {layer.name!r} is not built yet (it has no "
                         "kernel); build or fit the model first")
    if isinstance(max_filters, bool) or not isinstance(max_filters, (int, np.integer)) \
            or max_filters < 1:
        raise ValueError(f"plot.filters: max_filters must be a positive int. "
                         f"Received: {max_filters!r}")
    k = np.asarray(layer.kernel, dtype=np.float64)  # (kh, kw, cin, filters)
    cin = k.shape[2]
    if channel is not None:
        if isinstance(channel, bool) or not isinstance(channel, numbers.Integral) \
                or not 0 <= channel < cin:
            raise ValueError(f"plot.filters: channel must be an int in [0, {cin}). "
                             f"Received: channel={channel!r}")
    count = min(k.shape[3], int(max_filters))
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    fig = _figure(1.3 * cols + 0.4, 1.3 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    rgb = cin == 3 and channel is None
    grey = k[:, :, channel, :] if channel is not None else k.mean(axis=2)
    m = np.max(np.abs(grey[..., :count])) or 1.0
    for f in range(rows * cols):
        ax = axes.ravel()[f]
        ax.set_xticks([])
        ax.set_yticks([])
        if f >= count:
            ax.axis("off")
            continue
        if rgb:
            tile = k[:, :, :, f]
            lo, hi = tile.min(), tile.max()
            ax.imshow((tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile),
                      interpolation="nearest")
        else:
            ax.imshow(grey[:, :, f], cmap="bwr", vmin=-m, vmax=m, interpolation="nearest")
        ax.set_title(str(f), fontsize=7)
    fig.suptitle(f"{layer.name}: {k.shape[3]} filters {k.shape[0]}x{k.shape[1]}x{cin}",
                 fontsize=9)
    return _finish(fig, path, dpi)


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
