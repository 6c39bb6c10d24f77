"""Slow, obvious float64 NumPy references for convolution, pooling and batch normalization.

The convolution is the direct definition -- a loop over the kernel taps, each adding one shifted,
strided view of the zero-padded input times that tap's (C/groups, F) matrix -- not im2col.
Pooling loops over the output positions. Padding follows TensorFlow/Keras ("same": total pad
max((out-1)*s + (k-1)*d + 1 - n, 0), the smaller half first).
"""
import numpy as np


def pads(size, k, stride, dilation, padding):
    """(out, pad_before, pad_after) of one spatial axis."""
    eff = (k - 1) * dilation + 1
    if padding == "valid":
        return max((size - eff) // stride + 1, 0) if size >= eff else 0, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2, total - total // 2


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation=1, groups=1):
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    sh, sw = _pair(strides)
    dh, dw = _pair(dilation)
    n, h, w, c = x.shape
    kh, kw, cg, f = kernel.shape
    assert cg * groups == c and f % groups == 0
    fg = f // groups
    oh, pt, pb = pads(h, kh, sh, dh, padding)
    ow, pl, pr = pads(w, kw, sw, dw, padding)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    y = np.zeros((n, oh, ow, f))
    for i in range(kh):
        for j in range(kw):
            view = xp[:, i * dh: i * dh + (oh - 1) * sh + 1: sh,
                      j * dw: j * dw + (ow - 1) * sw + 1: sw, :]
            for g in range(groups):
                y[..., g * fg:(g + 1) * fg] += (view[..., g * cg:(g + 1) * cg]
                                                @ kernel[i, j, :, g * fg:(g + 1) * fg])
    if bias is not None:
        y += np.asarray(bias, np.float64)
    return y


def conv2d_backward(dy, x, kernel, strides=1, padding="valid", dilation=1, groups=1):
    """(dx, dkernel, dbias) of conv2d by the same loop over kernel taps: each tap's strided view
    of the padded input receives dy @ tap^T and contributes view^T @ dy to the tap's gradient."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    sh, sw = _pair(strides)
    dh, dw = _pair(dilation)
    n, h, w, c = x.shape
    kh, kw, cg, f = kernel.shape
    fg = f // groups
    oh, pt, pb = pads(h, kh, sh, dh, padding)
    ow, pl, pr = pads(w, kw, sw, dw, padding)
    dxp = np.zeros((n, h + pt + pb, w + pl + pr, c))
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dk = np.zeros_like(kernel)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
            cols = slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)
            for g in range(groups):
                cs, fs = slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)
                view = xp[:, rows, cols, cs].reshape(-1, cg)
                dk[i, j, :, fs] = view.T @ dy[..., fs].reshape(-1, fg)
                dxp[:, rows, cols, cs] += dy[..., fs] @ kernel[i, j, :, fs].T
    dx = dxp[:, pt:pt + h, pl:pl + w, :]
    return dx, dk, dy.sum(axis=(0, 1, 2))


def _windows(size, k, stride, padding):
    """For each output position: the [lo, hi) range of real input elements in its window."""
    out, before, _ = pads(size, k, stride, 1, padding)
    return [(max(o * stride - before, 0), min(o * stride - before + k, size)) for o in range(out)]


def max_pool2d(x, pool_size, strides=None, padding="valid"):
    x = np.asarray(x, np.float64)
    ph, pw = _pair(pool_size)
    sh, sw = _pair(strides if strides is not None else pool_size)
    rows, cols = _windows(x.shape[1], ph, sh, padding), _windows(x.shape[2], pw, sw, padding)
    y = np.zeros((x.shape[0], len(rows), len(cols), x.shape[3]))
    for a, (r0, r1) in enumerate(rows):
        for b, (c0, c1) in enumerate(cols):
            y[:, a, b, :] = x[:, r0:r1, c0:c1, :].max(axis=(1, 2))
    return y


def avg_pool2d(x, pool_size, strides=None, padding="valid"):
    x = np.asarray(x, np.float64)
    ph, pw = _pair(pool_size)
    sh, sw = _pair(strides if strides is not None else pool_size)
    rows, cols = _windows(x.shape[1], ph, sh, padding), _windows(x.shape[2], pw, sw, padding)
    y = np.zeros((x.shape[0], len(rows), len(cols), x.shape[3]))
    for a, (r0, r1) in enumerate(rows):
        for b, (c0, c1) in enumerate(cols):
            y[:, a, b, :] = x[:, r0:r1, c0:c1, :].sum(axis=(1, 2)) / ((r1 - r0) * (c1 - c0))
    return y


def batch_norm(x, gamma, beta, mean, var, epsilon):
    """y = gamma * (x - mean) / sqrt(var + epsilon) + beta over the last axis."""
    x = np.asarray(x, np.float64)
    return (gamma * (x - mean) / np.sqrt(np.asarray(var, np.float64) + epsilon) + beta)


def batch_norm_train(x, gamma, beta, epsilon):
    """Training-mode batch norm over all axes but the last: (y, batch mean, biased batch var)."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = ((x - mean) ** 2).mean(axis=axes)
    return batch_norm(x, gamma, beta, mean, var, epsilon), mean, var
