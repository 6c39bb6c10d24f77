"""``tf.linalg`` names (``import fastdl as tf; tf.linalg.inv(...)``) over ``fastdl.ops``.

Matrices are the last two axes; leading axes are batches. Every function is differentiable:
``inv``, ``det``, ``slogdet`` and ``solve`` record their own vector-Jacobian rules, the others
are composed of differentiable ops.
"""
import numpy as np

from fastdl.ops import numpy as _np_ops
from fastdl.ops.numpy import einsum, tensordot  # noqa: F401
from fastdl.ops.tf_compat import eye, global_norm, matmul, norm  # noqa: F401
from fastdl.tensor.tensor import Tensor


def _square_matrices(a, what):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{what}: input must be square matrices (..., N, N), received shape "
                         f"{a.shape}")
    if a.dtype.kind != "f":
        raise TypeError(f"{what}: input must be a float tensor, received dtype {a.dtype}")
    return a


def _mT(a):
    return np.swapaxes(a, -1, -2)


def matrix_transpose(a, name="matrix_transpose", conjugate=False):
    """``tf.linalg.matrix_transpose``: the last two axes swapped."""
    return _np_ops.swapaxes(a, -1, -2)


def matvec(a, b, transpose_a=False, adjoint_a=False, a_is_sparse=False, b_is_sparse=False,
           name=None):
    """``tf.linalg.matvec``: ``a @ b`` for a vector ``b`` (batched)."""
    return _np_ops.squeeze(matmul(a, _np_ops.expand_dims(b, -1), transpose_a=transpose_a,
                                  adjoint_a=adjoint_a), -1)


def inv(input, adjoint=False, name=None):  # noqa: A002
    """``tf.linalg.inv``: the inverse of each matrix (``LinAlgError`` when one is singular)."""
    a = _square_matrices(_np_ops._array(input), "inv")
    y = np.linalg.inv(_mT(a) if adjoint else a)
    out = Tensor(y)
    if _np_ops._TAPES:
        # d(A^-1) = -A^-1 dA A^-1, so the gradient is -A^-T g A^-T (transposed for adjoint)
        _np_ops._record(out, (input,), _inv_vjp, (y, adjoint))
    return out


def _inv_vjp(c, g):
    y, adjoint = c
    ga = -_mT(y) @ g @ _mT(y)
    return (_mT(ga) if adjoint else ga,)


def det(input, name=None):  # noqa: A002
    """``tf.linalg.det``: the determinant of each matrix."""
    a = _square_matrices(_np_ops._array(input), "det")
    d = np.linalg.det(a).astype(a.dtype)
    out = Tensor(np.asarray(d))
    if _np_ops._TAPES:
        # d det / dA = det * A^-T
        _np_ops._record(out, (input,), lambda c, g: (
            (g * c[1])[..., None, None] * _mT(np.linalg.inv(c[0])),), (a, d))
    return out


def slogdet(input, name=None):  # noqa: A002
    """``tf.linalg.slogdet``: ``(sign, log_abs_determinant)`` of each matrix."""
    a = _square_matrices(_np_ops._array(input), "slogdet")
    sign, logdet = np.linalg.slogdet(a)
    out = Tensor(np.asarray(logdet, a.dtype))
    if _np_ops._TAPES:
        _np_ops._record(out, (input,), lambda c, g: (
            np.asarray(g)[..., None, None] * _mT(np.linalg.inv(c)),), a)
    return Tensor(np.asarray(sign, a.dtype)), out


def logdet(matrix, name=None):
    """``tf.linalg.logdet``: ``log(det(matrix))`` of Hermitian positive definite matrices."""
    return slogdet(matrix)[1]


def solve(matrix, rhs, adjoint=False, name=None):
    """``tf.linalg.solve``: ``X`` with ``matrix @ X = rhs`` (``matrix^T`` with ``adjoint``)."""
    a = _square_matrices(_np_ops._array(matrix), "solve")
    b = _np_ops._array(rhs)
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise ValueError(f"solve: rhs must be (..., {a.shape[-1]}, K), received shape {b.shape}")
    m = _mT(a) if adjoint else a
    x = np.linalg.solve(m, b)
    out = Tensor(x)
    if _np_ops._TAPES:
        _np_ops._record(out, (matrix, rhs), _solve_vjp, (m, x, adjoint))
    return out


def _solve_vjp(c, g):
    m, x, adjoint = c
    gb = np.linalg.solve(_mT(m), g)   # X = M^-1 B: dB = M^-T g, dM = -dB X^T
    gm = -gb @ _mT(x)
    return (_mT(gm) if adjoint else gm), gb


def diag_part(input, name="diag_part", k=0, padding_value=0, align="RIGHT_LEFT"):  # noqa: A002
    """``tf.linalg.diag_part``: the ``k``-th diagonal of each matrix (an int ``k``)."""
    a = _np_ops._array(input)
    if a.ndim < 2:
        raise ValueError(f"diag_part: input must be at least 2-D, received shape {a.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"diag_part: k must be an int (one diagonal), received {k!r}")
    rows, cols = a.shape[-2:]
    n = max(min(rows, cols - k) if k >= 0 else min(rows + k, cols), 0)
    r = np.arange(n)
    return _np_ops._getitem(input, (Ellipsis, r, r + k) if k >= 0 else (Ellipsis, r - k, r))


def diag(diagonal, name="diag", k=0, num_rows=-1, num_cols=-1, padding_value=0,
         align="RIGHT_LEFT"):
    """``tf.linalg.diag``: square matrices with ``diagonal``'s last axis on the ``k``-th
    diagonal, zeros elsewhere."""
    d = _np_ops._array(diagonal)
    if d.ndim < 1 or isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"diag: diagonal must be at least 1-D and k an int, received shape "
                         f"{d.shape} and k={k!r}")
    if (num_rows, num_cols, padding_value) != (-1, -1, 0):
        raise ValueError("diag: fastdl builds square matrices with zero padding: num_rows, "
                         "num_cols and padding_value must keep their defaults")
    m, k = d.shape[-1], int(k)
    n = m + abs(k)
    # row r of the result holds diagonal[r] (k >= 0) or diagonal[r + k] (k < 0)
    widths = [(0, 0)] * (d.ndim - 1) + [(0, k) if k >= 0 else (-k, 0)]
    padded = _np_ops.pad(diagonal, widths)
    return _np_ops.multiply(_np_ops.expand_dims(padded, -1), np.eye(n, k=k, dtype=d.dtype))


def band_part(input, num_lower, num_upper, name=None):  # noqa: A002
    """``tf.linalg.band_part``: each matrix with entries below the ``num_lower``-th or above
    the ``num_upper``-th diagonal zeroed (a negative count keeps that whole triangle)."""
    a = _np_ops._array(input)
    if a.ndim < 2:
        raise ValueError(f"band_part: input must be at least 2-D, received shape {a.shape}")
    lower, upper = int(num_lower), int(num_upper)
    i = np.arange(a.shape[-2])[:, None]
    j = np.arange(a.shape[-1])[None, :]
    keep = ((lower < 0) | (i - j <= lower)) & ((upper < 0) | (j - i <= upper))
    return _np_ops.where(keep, input, np.zeros((), a.dtype))


def trace(x, name=None):
    """``tf.linalg.trace``: the sum of each matrix's main diagonal."""
    return _np_ops.sum(diag_part(x), axis=-1)


def l2_normalize(x, axis=None, epsilon=1e-12, name=None, dim=None):
    """``tf.linalg.l2_normalize``: ``x / sqrt(max(sum(x ** 2, axis), epsilon))``."""
    square_sum = _np_ops.sum(_np_ops.square(x), axis=axis if dim is None else dim,
                             keepdims=True)
    return _np_ops.multiply(x, _np_ops.rsqrt(_np_ops.maximum(square_sum, epsilon)))


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
