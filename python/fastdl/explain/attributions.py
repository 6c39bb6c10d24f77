"""Gradient and perturbation attributions for ``Sequential`` models.

Every gradient here comes from the layers' own ``backward`` passes after an inference forward
(``call(x, training=False)``): Dropout is the identity, BatchNormalization uses its moving
statistics (``dy * gamma / sqrt(moving_var + eps)``), recurrent layers replay their forward to get
the tape their BPTT needs. Nothing in the model changes (see ``_common.preserved_state``).

Targets: ``target`` is a class (output unit) index, an array with one index per sample, or None
for each sample's top-scoring output (the single output when the model has one unit). A model
whose output has more than one axis past the batch (e.g. ``return_sequences``) is indexed in its
flattened output. Attributions are of the model's output as it is: for a softmax model that is
the class probability (build the model's twin without the final softmax to attribute logits).
"""
import itertools
import numbers

import numpy as np

from fastdl.explain import _common as C
from fastdl.layers.base import shape_str

__all__ = ["input_gradients", "saliency", "integrated_gradients", "smoothgrad", "occlusion",
           "grad_cam", "layer_outputs"]


def _prepare(model, x, target, what, batch_size):
    """Checked model, converted ``x``, batch size and ``target`` as validated indices (or None)."""
    C.check_model(model, what)
    batch_size = C.check_batch_size(batch_size)
    x = C.convert_x(model, x, what)
    k = C.output_units(model, x)
    if k is None and len(x):
        k = C.predict(model, x[:1], 1).shape[1]
    targets = None
    if target is not None:
        targets = C.resolve_target(target, np.zeros((len(x), k or 1), dtype=np.float32), what)
    return x, targets, batch_size


def input_gradients(model, x, target=None, batch_size=None):
    """d output[target] / d input for every sample of ``x``, through every layer.

    Args:
        model: a fastdl ``Sequential`` model (float inputs: a model that starts with an
            ``Embedding`` raises ``ValueError``).
        x: input batch with the model's input shape, e.g. ``(N, 8, 8, 1)``.
        target: an output index, one index per sample, or None (each sample's top output; the
            only output for a one-unit model).
        batch_size: samples per forward/backward pass (default 256).

    Returns:
        An array with the shape of ``x`` in the model's dtype.
    """
    x, targets, batch_size = _prepare(model, x, target, "input_gradients", batch_size)
    if len(x) == 0:
        return np.zeros_like(x)
    grads, _, _, _ = C.target_gradients(model, x, targets, batch_size)
    return grads.astype(x.dtype, copy=False)


def saliency(model, x, target=None, abs=True, batch_size=None):
    """Vanilla-gradient saliency (Simonyan et al. 2013): ``|d output[target] / d x|``.

    ``abs=False`` keeps the sign (the plain input gradient). Returns the shape of ``x``; the
    plots take the maximum over colour channels.
    """
    if not isinstance(abs, (bool, np.bool_)):
        raise TypeError(f"saliency: abs must be a bool. Received: abs={abs!r}")
    grads = input_gradients(model, x, target=target, batch_size=batch_size)
    return np.abs(grads) if abs else grads


def _quadrature(steps, method):
    """Nodes in [0, 1] and weights summing to 1 for the path integral."""
    if method in ("gausslegendre", "gauss_legendre"):
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1.0) / 2.0, weights / 2.0
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("integrated_gradients: method='riemann_trapezoid' needs steps >= 2. "
                             f"Received: steps={steps}")
        nodes = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] *= 0.5
        return nodes, weights
    raise ValueError("integrated_gradients: method must be 'gausslegendre' or "
                     f"'riemann_trapezoid'. Received: method={method!r}")


def _baseline(baseline, x, what, name="baseline"):
    """A baseline per sample, shape of ``x``: None (zeros), a number, one sample or a batch."""
    if baseline is None:
        return np.zeros_like(x)
    if isinstance(baseline, (bool, np.bool_)):
        raise TypeError(f"{what}: {name} must be a number or an array. Received: {baseline!r}")
    if isinstance(baseline, numbers.Real):
        b = np.full_like(x, baseline)
    else:
        b = np.asarray(baseline)
        if b.dtype.kind not in "biuf":
            raise TypeError(f"{what}: {name} must be a real number or array. Received dtype "
                            f"{b.dtype}")
        if b.shape == x.shape[1:]:
            b = np.broadcast_to(b, x.shape)
        elif b.shape != x.shape:
            raise ValueError(f"{what}: {name} must be a number, one sample of shape "
                             f"{shape_str(x.shape[1:])} or a batch of shape {shape_str(x.shape)}. "
                             f"Received {name} of shape {shape_str(b.shape)}")
        b = np.array(b, dtype=x.dtype)
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{what}: {name} contains NaN or Inf values")
    return b


def integrated_gradients(model, x, baseline=None, target=None, steps=50,
                         return_convergence_delta=False, method="gausslegendre",
                         batch_size=None):
    """Integrated gradients (Sundararajan et al. 2017).

    ``(x - baseline) * integral_0^1 grad f(baseline + a (x - baseline)) da`` with ``steps``
    Gauss-Legendre nodes (default; or ``method="riemann_trapezoid"``). All samples' path points
    go through the model in batches of ``batch_size`` rows (default 256).

    Completeness: the attributions of a sample sum to ``f(x)[target] - f(baseline)[target]``;
    ``return_convergence_delta=True`` also returns that residual per sample (shape ``(N,)``),
    which shrinks as ``steps`` grows. The target defaults to each sample's top output at ``x``.
    Smooth models (tanh, sigmoid, softmax, LSTM/GRU) converge fast: well under 1% at 50 steps.
    Piecewise-linear ones (ReLU, max pooling) have kinks along the path and converge like
    1/steps: a few percent at 50 steps is typical with a non-zero baseline, so check the delta
    and raise ``steps`` (e.g. 300) when it matters.

    Args:
        baseline: None (zeros), a number, one sample (shape of ``x[0]``) or one per sample.
    """
    what = "integrated_gradients"
    steps = C.check_int(steps, "steps")
    nodes, weights = _quadrature(steps, method)
    if not isinstance(return_convergence_delta, (bool, np.bool_)):
        raise TypeError(f"{what}: return_convergence_delta must be a bool. "
                        f"Received: {return_convergence_delta!r}")
    x, targets, batch_size = _prepare(model, x, target, what, batch_size)
    b = _baseline(baseline, x, what)
    n = len(x)
    if n == 0:
        attr = np.zeros_like(x)
        return (attr, np.zeros(0)) if return_convergence_delta else attr

    fx = C.predict(model, x, batch_size)
    if targets is None:
        targets = C.resolve_target(None, fx, what)
    fb = C.predict(model, b, batch_size)
    rows = np.arange(n)
    diff = x.astype(np.float64) - b
    total = np.zeros(x.shape, dtype=np.float64)
    sample_of = np.repeat(np.arange(n), steps)
    node_of = np.tile(np.arange(steps), n)
    for lo in range(0, n * steps, batch_size):
        s = sample_of[lo:lo + batch_size]
        k = node_of[lo:lo + batch_size]
        shape = (len(s),) + (1,) * (x.ndim - 1)
        path = (b[s] + nodes[k].reshape(shape) * diff[s]).astype(x.dtype)
        g, _, _, _ = C.target_gradients(model, path, targets[s], batch_size)
        wg = g.astype(np.float64) * weights[k].reshape(shape)
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        total[s[starts]] += np.add.reduceat(wg, starts, axis=0)
    attr = diff * total
    if not return_convergence_delta:
        return attr.astype(x.dtype)
    delta = attr.reshape(n, -1).sum(axis=1) - (fx[rows, targets] - fb[rows, targets])
    return attr.astype(x.dtype), delta


def smoothgrad(model, x, target=None, n_samples=25, noise_level=0.15, seed=None,
               batch_size=None):
    """SmoothGrad (Smilkov et al. 2017): the input gradient averaged over ``n_samples`` noisy
    copies of each sample, Gaussian noise with standard deviation ``noise_level * (max - min)``
    of that sample. The target defaults to each sample's top output on the clean input.
    ``seed``: an int or a numpy Generator for the noise (fastdl's shared RNG is not used).
    Returns signed gradients with the shape of ``x`` (take ``np.abs`` for a saliency map).
    """
    what = "smoothgrad"
    n_samples = C.check_int(n_samples, "n_samples")
    noise_level = C.check_float(noise_level, "noise_level")
    rng = C.make_rng(seed)
    x, targets, batch_size = _prepare(model, x, target, what, batch_size)
    n = len(x)
    if n == 0:
        return np.zeros_like(x)
    if targets is None:
        targets = C.resolve_target(None, C.predict(model, x, batch_size), what)
    flat = x.reshape(n, -1).astype(np.float64)
    sigma = noise_level * (flat.max(axis=1) - flat.min(axis=1))
    total = np.zeros(x.shape, dtype=np.float64)
    sample_of = np.repeat(np.arange(n), n_samples)
    for lo in range(0, n * n_samples, batch_size):
        s = sample_of[lo:lo + batch_size]
        shape = (len(s),) + (1,) * (x.ndim - 1)
        noisy = (x[s] + rng.standard_normal(x[s].shape) * sigma[s].reshape(shape)).astype(x.dtype)
        g, _, _, _ = C.target_gradients(model, noisy, targets[s], batch_size)
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        total[s[starts]] += np.add.reduceat(g.astype(np.float64), starts, axis=0)
    return (total / n_samples).astype(x.dtype)


def _window(value, sample_shape, name):
    """An occlusion window/stride over the sample axes: an int (square on the H, W axes of
    images ``(H, W, C)``, else the first axis) or a tuple over the leading axes; axes left out
    are covered whole."""
    ndim = len(sample_shape)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"occlusion: {name} must be an int or a tuple of ints. Received: "
                        f"{name}={value!r}")
    if isinstance(value, (int, np.integer)):
        value = (value, value) if ndim == 3 else (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"occlusion: {name} must be an int or a tuple of ints. Received: "
                        f"{name}={value!r}")
    if len(value) > ndim:
        raise ValueError(f"occlusion: {name}={tuple(value)} has more axes than one sample of x, "
                         f"shape {shape_str(sample_shape)}")
    out = tuple(C.check_int(v, name) for v in value)
    return out + tuple(sample_shape[len(out):])


def _starts(size, window, stride):
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:  # cover the far edge too
        starts.append(size - window)
    return starts


def occlusion(model, x, target, window, stride=None, baseline=0, batch_size=None):
    """Occlusion sensitivity (Zeiler & Fergus 2014): slide a ``window`` over each sample with
    ``stride`` (default: the window, no overlap), replace the window by ``baseline`` and record
    how much ``output[target]`` drops. Each input element gets the mean drop over the windows
    that cover it (the last window on each axis is aligned to the far edge, so every element is
    covered). No gradients are used, so any model works (an Embedding model with an integer
    ``baseline`` such as a padding id too).

    Args:
        window: an int (a square window on images ``(H, W, C)``, all channels at once; on other
            inputs a run along the first sample axis) or a tuple over the leading sample axes.
        baseline: a number or an array broadcastable to one sample.
    Returns:
        Attributions with the shape of ``x`` (float64).
    """
    what = "occlusion"
    C.check_model(model, what)
    batch_size = C.check_batch_size(batch_size)
    x = C.convert_x(model, x, what, float_only=False)
    sample_shape = x.shape[1:]
    win = _window(window, sample_shape, "window")
    std = _window(win[:len(win)] if stride is None else stride, sample_shape, "stride")
    if any(w > s for w, s in zip(win, sample_shape)):
        raise ValueError(f"occlusion: window {win} is larger than one sample of x, shape "
                         f"{shape_str(sample_shape)}")
    if isinstance(baseline, (bool, np.bool_)):
        raise TypeError(f"occlusion: baseline must be a number or an array. Received: {baseline!r}")
    b = np.asarray(baseline)
    if b.dtype.kind not in "biuf":
        raise TypeError(f"occlusion: baseline must be a real number or array. Received dtype "
                        f"{b.dtype}")
    try:
        b = np.broadcast_to(b, sample_shape).astype(x.dtype)
    except ValueError:
        raise ValueError(f"occlusion: baseline of shape {shape_str(b.shape)} does not broadcast "
                         f"to one sample of x, shape {shape_str(sample_shape)}") from None
    n = len(x)
    attr = np.zeros(x.shape, dtype=np.float64)
    k = C.output_units(model, x)
    C.check_target_for_model(target, k, n, what)
    if n == 0:
        return attr
    fx = C.predict(model, x, batch_size)
    targets = C.resolve_target(target, fx, what)
    rows = np.arange(n)
    f0 = fx[rows, targets]
    windows = [tuple(slice(s0, s0 + w) for s0, w in zip(starts, win))
               for starts in itertools.product(*(_starts(s, w, st)
                                                 for s, w, st in zip(sample_shape, win, std)))]
    counts = np.zeros(sample_shape, dtype=np.float64)
    per_chunk = max(1, batch_size // n)
    for lo in range(0, len(windows), per_chunk):
        chunk = windows[lo:lo + per_chunk]
        xs = np.repeat(x[None], len(chunk), axis=0)
        for j, sl in enumerate(chunk):
            xs[(j, slice(None)) + sl] = b[sl]
        out = C.predict(model, xs.reshape((-1,) + sample_shape), batch_size)
        drop = f0[None, :] - out.reshape(len(chunk), n, -1)[:, rows, targets]
        for j, sl in enumerate(chunk):
            attr[(slice(None),) + sl] += drop[j].reshape((n,) + (1,) * len(sample_shape))
            counts[sl] += 1
    return attr / counts


def _last_conv2d(model, what):
    from fastdl.layers.convolutional import Conv2D
    for i in range(len(model._layers) - 1, -1, -1):
        if isinstance(model._layers[i], Conv2D):
            return i
    raise ValueError(f"{what}: model {model.name!r} has no Conv2D layer; pass layer= (the name "
                     "or index of a layer with 4-D output (batch, height, width, channels))")


def _resize_bilinear(maps, height, width):
    """(N, h, w) -> (N, height, width), half-pixel centres (as tf.image.resize / cv2)."""
    n, h, w = maps.shape
    if (h, w) == (height, width):
        return maps

    def axis(out, size):
        pos = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, size - 1)
        return lo, hi, pos - lo

    r0, r1, fr = axis(height, h)
    c0, c1, fc = axis(width, w)
    top = maps[:, r0][:, :, c0] * (1 - fc) + maps[:, r0][:, :, c1] * fc
    bot = maps[:, r1][:, :, c0] * (1 - fc) + maps[:, r1][:, :, c1] * fc
    return top * (1 - fr)[None, :, None] + bot * fr[None, :, None]


def grad_cam(model, x, layer=None, target=None, upsample=True, batch_size=None):
    """Grad-CAM (Selvaraju et al. 2017) for models with convolutional layers.

    The gradient of ``output[target]`` at the output ``A`` of ``layer`` (default: the last
    ``Conv2D``) is averaged over height and width into one weight per channel, and the map is
    ``relu(sum_c weight_c * A[..., c])``. With ``upsample=True`` (default) the map is resized
    bilinearly to the input's height and width.

    Returns:
        ``(N, H, W)`` maps (float64, not normalised; the plots scale them).
    """
    what = "grad_cam"
    C.check_model(model, what)
    idx = _last_conv2d(model, what) if layer is None else C.resolve_layer(model, layer, what)
    x, targets, batch_size = _prepare(model, x, target, what, batch_size)
    out_shape = model._output_shapes[idx]
    if isinstance(out_shape, list):
        out_shape = out_shape[0]
    if len(out_shape) != 4:
        chosen = model._layers[idx]
        raise ValueError(f"{what}: layer {chosen.name!r} ({type(chosen).__name__}) has output "
                         f"shape {shape_str(out_shape)}; Grad-CAM needs a layer with 4-D output "
                         "(batch, height, width, channels)")
    n = len(x)
    if n == 0:
        h, w = (x.shape[1], x.shape[2]) if upsample and x.ndim >= 3 else out_shape[1:3]
        return np.zeros((0, h, w))
    grads, _, _, acts = C.target_gradients(model, x, targets, batch_size, stop=idx + 1,
                                           keep_layer=idx)
    weights = grads.astype(np.float64).mean(axis=(1, 2))
    cam = np.maximum(np.einsum("nhwc,nc->nhw", acts.astype(np.float64), weights), 0.0)
    if upsample and x.ndim == 4:
        cam = _resize_bilinear(cam, x.shape[1], x.shape[2])
    return cam


def layer_outputs(model, x, layers=None, batch_size=None):
    """Activations of the given layers for ``x`` (inference mode), e.g. to plot feature maps.

    Args:
        layers: names or indices (or layer objects) of the model's layers; None for all.
    Returns:
        A dict ``{layer name: array}`` in model order.
    """
    what = "layer_outputs"
    C.check_model(model, what)
    batch_size = C.check_batch_size(batch_size)
    if layers is None:
        idx = list(range(len(model._layers)))
    else:
        if isinstance(layers, (str, int, np.integer)) or not hasattr(layers, "__iter__"):
            layers = [layers]
        idx = sorted({C.resolve_layer(model, l, what) for l in layers})
        if not idx:
            raise ValueError(f"{what}: layers must name at least one layer. Received: []")
    x = C.convert_x(model, x, what, float_only=False)
    parts = {i: [] for i in idx}
    with C.preserved_state(model):
        for lo in range(0, len(x), batch_size):
            _, kept = C.forward(model, x[lo:lo + batch_size], keep=idx)
            for i in idx:
                parts[i].append(np.array(kept[i], copy=True))
    out = {}
    for i in idx:
        name = model._layers[i].name
        if parts[i]:
            out[name] = np.concatenate(parts[i])
        else:
            shape = model._output_shapes[i]
            shape = shape[0] if isinstance(shape, list) else shape
            out[name] = np.zeros((0,) + tuple(d or 0 for d in shape[1:]),
                                 dtype=model._layers[i].dtype)
    return out
