"""Type stubs of fastdl._core, the C++ kernels (cpp/bindings/). Internal: use fastdl.ops and the
layers. tests/test_core_stub.py checks that these names are exactly the module's functions.

Arrays are strict: C-contiguous, aligned, of exactly one float dtype per call (float32 or
float64; ``mask`` bool, ``argmax`` int64, ``ids`` int32 or int64), never converted. Bad
arguments raise ValueError (shapes, sizes, hyperparameters) or TypeError (types, dtypes,
layouts), before anything is allocated or computed.
"""
from typing import Literal, Optional, Tuple

import numpy as np
from numpy.typing import NDArray

Float = NDArray[np.floating]
Ids = NDArray[np.integer]
Padding = Literal["valid", "same"]

# ---- gemm
def matmul(a: Float, b: Float, transpose_a: bool = False, transpose_b: bool = False,
           bias: Optional[Float] = None) -> Float:
    """op(a) @ op(b) (+ bias, n values added to every row, in the same pass) for C-contiguous
    2-D arrays of one float dtype."""
def matmul_b_sums(a: Float, b: Float, transpose_a: bool = False,
                  transpose_b: bool = False) -> Tuple[Float, Float]:
    """(op(a) @ op(b), op(b).sum(axis=0)) for C-contiguous 2-D arrays of one float dtype, the
    sums taken as the product reads op(b)."""
def matmul_backward(dc: Float, a: Float, b: Float, transpose_a: bool = False,
                    transpose_b: bool = False) -> Tuple[Float, Float]:
    """(da, db) for c = op(a) @ op(b)."""

# ---- conv2d
def conv2d_forward(x: Float, kernel: Float, bias: Optional[Float], stride_h: int, stride_w: int,
                   padding: Padding, dilation_h: int, dilation_w: int, groups: int,
                   relu: bool) -> Float:
    """y = [relu](conv2d(x, kernel) + bias): x (N,H,W,C), kernel (KH,KW,C/groups,F)."""
def conv2d_max_pool_forward(
        x: Float, kernel: Float, bias: Optional[Float], stride_h: int, stride_w: int,
        padding: Padding, dilation_h: int, dilation_w: int, groups: int, relu: bool,
        pool_h: int, pool_w: int,
        training: bool) -> Tuple[Float, Optional[Float], Optional[NDArray[np.int64]]]:
    """(pooled, y, argmax): conv2d_forward fused with a max pooling (windows = strides)."""
def conv2d_backward(
        dy: Float, x: Float, kernel: Float, stride_h: int, stride_w: int, padding: Padding,
        dilation_h: int, dilation_w: int, groups: int, need_dx: bool, need_dkernel: bool,
        need_dbias: bool,
        relu_output: Optional[Float]) -> Tuple[Optional[Float], Optional[Float], Optional[Float]]:
    """(dx, dkernel, dbias) of conv2d_forward, None where not needed."""
def conv2d_set_chunk_bytes(bytes: int) -> None: ...
def conv2d_chunk_bytes() -> int: ...
def conv2d_set_algorithm(algorithm: Literal["auto", "im2col", "winograd"]) -> None: ...
def conv2d_algorithm() -> str: ...

# ---- conv1d_sparse (cpp/conv1d_sparse.cpp)
def conv1d_sparse_backward(x: Float, kernel_t: Float, n: NDArray[np.int64], t: NDArray[np.int64],
                           f: NDArray[np.int64], g: Float, stride: int, dilation: int,
                           need_dx: bool) -> Tuple[Optional[Float], Float]:
    """(dx or None, dkernel_t (F,K,C)) of a valid 1-D convolution from the upstream gradient's
    nonzero entries (n, t, f, g): x (N, steps, C), kernel_t the (K,C,F) kernel transposed."""

# ---- attention (cpp/attention.cpp)
def attention_forward(q: Float, k: Float, v: Float, mask: Optional[NDArray[np.bool_]] = None,
                      drop: Optional[Float] = None, scale: float = 1.0,
                      causal: bool = False) -> Tuple[Float, Float]:
    """(out, probs): probs = masked softmax(q k^T * scale) over (P, Tq, Tk), out =
    (probs * drop) @ v, for q (P, Tq, dk), k (P, Tk, dk), v (P, Tk, dv) or, read in place
    with a heads axis, q (B, Tq, H, dk), k (B, Tk, H, dk), v (B, Tk, H, dv) with P = B * H
    (out then (B, Tq, H, dv)); mask (M, Tq, Tk) with M dividing P, True = visible. q, k, v
    (and the backward's dout, dq, dk, dv) may be strided: each head's rows contiguous and
    not overlapping, e.g. slices of the last axis of one packed projection."""
def attention_backward(dout: Float, q: Float, k: Float, v: Float, probs: Float,
                       drop: Optional[Float] = None, scale: float = 1.0,
                       dq: Optional[Float] = None, dk: Optional[Float] = None,
                       dv: Optional[Float] = None) -> Tuple[Float, Float, Float]:
    """(dq, dk, dv) of attention_forward given dout and its probs, shaped like q, k, v: new
    arrays, or the given ones written in place (not overlapping each other or the inputs)."""

# ---- image (cpp/image_transform.cpp)
def affine_transform(images: Float, matrices: NDArray[np.floating], interpolation: str,
                     fill_mode: str, fill_value: float) -> Float:
    """Keras's affine_transform of (batch, height, width, channels) images: output (x, y) reads
    the input at (a0 x + a1 y + a2, b0 x + b1 y + b2), one row [a0, a1, a2, b0, b1, b2] of
    matrices per image; interpolation 'bilinear'/'nearest', fill_mode 'reflect', 'wrap',
    'constant' or 'nearest'."""
def affine_transform_backward(dy: Float, matrices: NDArray[np.floating], interpolation: str,
                              fill_mode: str) -> Float:
    """The adjoint of affine_transform: d(loss)/d(images) from dy."""

# ---- pool2d
def max_pool2d_forward(x: Float, pool_h: int, pool_w: int, stride_h: int, stride_w: int,
                       padding: Padding,
                       need_argmax: bool = True) -> Tuple[Float, Optional[NDArray[np.int64]]]:
    """(y, argmax): window maxima of x (N,H,W,C) and their flat indices."""
def max_pool2d_backward(dy: Float, argmax: NDArray[np.int64], input_h: int, input_w: int,
                        pool_h: int, pool_w: int, stride_h: int, stride_w: int,
                        padding: Padding) -> Float:
    """dx of max pooling: dy scattered (added) at argmax."""
def avg_pool2d_forward(x: Float, pool_h: int, pool_w: int, stride_h: int, stride_w: int,
                       padding: Padding) -> Float:
    """Window means of x (N,H,W,C); padding is not counted."""
def avg_pool2d_backward(dy: Float, input_h: int, input_w: int, pool_h: int, pool_w: int,
                        stride_h: int, stride_w: int, padding: Padding) -> Float:
    """dx of average pooling."""

# ---- rnn (recurrent_mask: None or (N, G, units), Keras's per-gate recurrent dropout masks): forwards -> (y, h_last, c_last | None, cache | None);
# backwards -> (dx, dkernel, drecurrent, dbias | None, dh0, dc0 | None)
RnnForward = Tuple[Float, Float, Optional[Float], Optional[Float]]
RnnBackward = Tuple[Float, Float, Float, Optional[Float], Float, Optional[Float]]

def simple_rnn_forward(x: Float, kernel: Float, recurrent_kernel: Float,
                       bias: Optional[Float] = None, h0: Optional[Float] = None,
                       mask: Optional[NDArray[np.bool_]] = None,
                       activation: Literal["tanh", "relu", "linear", "sigmoid"] = "tanh",
                       return_sequences: bool = False, go_backwards: bool = False,
                       zero_output_for_mask: bool = False,
                       training: bool = False,
                recurrent_mask: Optional[Float] = None) -> RnnForward: ...
def lstm_forward(x: Float, kernel: Float, recurrent_kernel: Float, bias: Optional[Float] = None,
                 h0: Optional[Float] = None, c0: Optional[Float] = None,
                 mask: Optional[NDArray[np.bool_]] = None, return_sequences: bool = False,
                 go_backwards: bool = False, zero_output_for_mask: bool = False,
                 training: bool = False,
                recurrent_mask: Optional[Float] = None) -> RnnForward: ...
def gru_forward(x: Float, kernel: Float, recurrent_kernel: Float, bias: Optional[Float] = None,
                h0: Optional[Float] = None, mask: Optional[NDArray[np.bool_]] = None,
                reset_after: bool = True, return_sequences: bool = False,
                go_backwards: bool = False, zero_output_for_mask: bool = False,
                training: bool = False,
                recurrent_mask: Optional[Float] = None) -> RnnForward: ...
def simple_rnn_backward(dy: Float, dh: Optional[Float], x: Float, kernel: Float,
                        recurrent_kernel: Float, mask: Optional[NDArray[np.bool_]],
                        cache: Float,
                        activation: Literal["tanh", "relu", "linear", "sigmoid"] = "tanh",
                        use_bias: bool = True, return_sequences: bool = False,
                        go_backwards: bool = False,
                        zero_output_for_mask: bool = False,
                recurrent_mask: Optional[Float] = None,
                gate_grads: Optional[Float] = None) -> RnnBackward: ...
def lstm_backward(dy: Float, dh: Optional[Float], dc: Optional[Float], x: Float, kernel: Float,
                  recurrent_kernel: Float, mask: Optional[NDArray[np.bool_]], cache: Float,
                  use_bias: bool = True, return_sequences: bool = False,
                  go_backwards: bool = False,
                  zero_output_for_mask: bool = False,
                recurrent_mask: Optional[Float] = None,
                gate_grads: Optional[Float] = None) -> RnnBackward: ...
def gru_backward(dy: Float, dh: Optional[Float], x: Float, kernel: Float,
                 recurrent_kernel: Float, mask: Optional[NDArray[np.bool_]], cache: Float,
                 use_bias: bool = True, reset_after: bool = True,
                 return_sequences: bool = False, go_backwards: bool = False,
                 zero_output_for_mask: bool = False,
                recurrent_mask: Optional[Float] = None,
                gate_grads: Optional[Float] = None) -> RnnBackward: ...

# ---- embedding
def embedding_forward(embeddings: Float, ids: Ids) -> Float:
    """embeddings[ids]: ids.shape + (output_dim,)."""
def embedding_backward(dy: Float, ids: Ids, input_dim: int) -> Float:
    """Scatter-add of dy into a zero (input_dim, output_dim) gradient."""

# ---- optimizers (in place on flat 1-D buffers of g's dtype)
def adam_update(g: Float, m: Float, v: Float, vhat: Optional[Float], alpha: float, c1: float,
                c2: float, eps: float) -> None:
    """Adam/AMSGrad: updates m, v (and vhat); g becomes the step."""
def rmsprop_update(g: Float, v: Float, average_gradient: Optional[Float],
                   momentum_buffer: Optional[Float], lr: float, rho: float, c: float,
                   momentum: float, eps: float) -> None:
    """RMSprop: updates the slots; g becomes the increment."""

# ---- hashing (Keras's Hashing and HashedCrossing layers)
def hash_buckets(items: list, num_bins: int,
                 key: Optional[Tuple[int, int]] = None) -> NDArray[np.int64]:
    """hash(item) % num_bins for a list of bytes: FarmHash Fingerprint64, or SipHash-2-4 under
    key (k0, k1), each in [0, 2**64)."""
def fingerprint64(items: list) -> NDArray[np.uint64]:
    """FarmHash Fingerprint64 of each item of a list of bytes."""

# ---- threads and build
def set_num_threads(n: int) -> None: ...
def max_threads() -> int: ...
def get_num_threads() -> int: ...
def build_info() -> dict: ...
def _sanitizer_canary(kind: Literal["address", "undefined"] = "address") -> bool:
    """Sanitizer build only (FASTDL_SANITIZE): the module has it only there."""
