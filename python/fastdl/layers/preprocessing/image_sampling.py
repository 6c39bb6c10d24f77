"""Sampling images at fractional coordinates, with its adjoint for backward: the rules of
Resizing (here, in NumPy) and of the affine augmentations (RandomRotation, RandomZoom,
RandomTranslation: the same rules in C++, cpp/image_transform.cpp).

An output pixel reads the input at coordinates (y, x). The input is extended beyond its edges
by ``fill_mode``, as Keras's ``affine_transform`` does (it pads the image with NumPy's modes,
then samples): ``"reflect"`` (d c b a | a b c d | d c b a, NumPy ``symmetric``), ``"wrap"``
(a b c d | a b c d), ``"nearest"`` (a a | a b c d | d d) and ``"constant"`` (``fill_value``).
``"bilinear"`` mixes the four neighbours with weights (1 - fy)(1 - fx), ...; ``"nearest"``
takes the closest one, a tie to the even index (``np.rint``, as Keras's torch and JAX backends
round).

A :class:`Plan` holds, per output pixel, the flat input indices and weights of its taps (and
the weight of ``fill_value`` in constant mode), so the forward pass is a weighted gather and
the backward pass the matching scatter-add: the layers' exact gradients.
"""
import numpy as np

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def _extend(i, n, fill_mode):
    """Integer indices ``i`` mapped into [0, n) by the fill mode; (indices, inside mask)."""
    if fill_mode == "reflect":
        m = np.mod(i, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m), None
    if fill_mode == "wrap":
        return np.mod(i, n), None
    inside = (i >= 0) & (i < n) if fill_mode == "constant" else None
    return np.clip(i, 0, n - 1), inside


class Plan:
    """The taps of each output pixel: ``taps`` is a list of (flat index into the batch's
    B*H*W pixels, weight), each of shape (B, Ho, Wo); ``fill`` the weight of fill_value."""

    def __init__(self, ys, xs, height, width, interpolation, fill_mode):
        b = ys.shape[0]
        base = (np.arange(b) * (height * width)).reshape((b,) + (1,) * (ys.ndim - 1))
        if interpolation == "nearest":
            corners = [(np.rint(ys), np.rint(xs), 1.0)]
        else:
            y0, x0 = np.floor(ys), np.floor(xs)
            fy, fx = ys - y0, xs - x0
            corners = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                       (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]
        self.taps, fill = [], 0.0
        for yi, xi, w in corners:
            iy, in_y = _extend(yi.astype(np.int64), height, fill_mode)
            ix, in_x = _extend(xi.astype(np.int64), width, fill_mode)
            w = np.broadcast_to(np.asarray(w, dtype=np.float64), ys.shape)
            if in_y is not None:
                inside = in_y & in_x
                fill = fill + np.where(inside, 0.0, w)
                w = np.where(inside, w, 0.0)
            self.taps.append((base + iy * width + ix, w))
        self.fill = fill if fill_mode == "constant" else None
        self.in_shape = (b, height, width)

    def sample(self, images, fill_value=0.0):
        """images (B, H, W, C) -> (B, Ho, Wo, C) in the images' dtype."""
        c = images.shape[-1]
        flat = images.reshape(-1, c)
        dtype = images.dtype
        out = None
        for idx, w in self.taps:
            term = flat[idx] * w[..., None].astype(dtype)
            out = term if out is None else out + term
        if self.fill is not None and fill_value != 0:
            out = out + (self.fill[..., None] * fill_value).astype(dtype)
        return out

    def sample_backward(self, dy):
        """The adjoint of :meth:`sample`: d(loss)/d(images) from dy (B, Ho, Wo, C)."""
        c = dy.shape[-1]
        n = int(np.prod(self.in_shape))
        idx = np.concatenate([i.reshape(-1) for i, _ in self.taps])
        flat_dy = dy.reshape(-1, c)
        vals = np.concatenate([flat_dy * w.reshape(-1, 1) for _, w in self.taps])
        dx = np.stack([np.bincount(idx, weights=vals[:, k], minlength=n) for k in range(c)],
                      axis=-1)
        return dx.reshape(self.in_shape + (c,)).astype(dy.dtype)
