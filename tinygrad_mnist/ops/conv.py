"""The convolution windows as primitives: Unfold (im2col) and its adjoint Fold (col2im).

A convolution is Unfold, then Matmul; pooling is Unfold, then a reduction over the window
offsets.  fused_conv.py holds the same computations as single ops, for speed.
"""

from __future__ import annotations

import functools

import numpy as np

from ..engine import Function


class Unfold(Function):
    """im2col: (N, C, H, W) -> (C, kh, kw, N, OH, OW), every kh x kw window at the given stride.

    Window offsets first, positions last: a convolution is then one GEMM
    (O, C*kh*kw) @ (C*kh*kw, N*OH*OW) with a long contiguous inner dimension,
    and pooling reduces over the leading axis, elementwise across slabs.

    Gradient: dx = Fold(g): col2im, overlapping windows add up.
    """

    saves_inputs = False

    def forward(self, x, kernel, stride):
        self.kernel, self.stride = kernel, stride
        win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))
        win = win[:, :, ::stride[0], ::stride[1]]  # (N, C, OH, OW, kh, kw), a view
        return np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3))

    def backward(self, g):
        return (Fold.apply(g, shape=self.parents[0].shape, kernel=self.kernel, stride=self.stride),)


@functools.lru_cache(maxsize=64)
def _placement(k: int, o: int, stride: int, length: int, dtype: str) -> np.ndarray:
    """0/1 matrix (k*o, length): row (i, q) has its one at q*stride + i, where window q's offset i lands."""
    m = np.zeros((k, o, length), dtype)
    i, q = np.arange(k)[:, None], np.arange(o)[None, :]
    m[i, q, q * stride + i] = 1
    return m.reshape(k * o, length)


class Fold(Function):
    """col2im: the adjoint of Unfold; overlapping windows add up.

    Each spatial axis is folded by one matrix product with a 0/1 placement
    matrix that adds every (offset, window) value onto its pixel: two GEMMs,
    no loops over pixels or kernel offsets.

    Gradient: dcols = Unfold(gg).
    """

    saves_inputs = False

    def forward(self, cols, shape, kernel, stride):
        self.kernel, self.stride = kernel, stride
        c, kh, kw, n, oh, ow = cols.shape
        h, w = shape[2:]
        dt = cols.dtype.str
        # width first: (C, kh, N, OH, kw*OW) is the cheaper copy of the two orders
        a = cols.transpose(0, 1, 3, 4, 2, 5).reshape(-1, kw * ow) @ _placement(kw, ow, stride[1], w, dt)
        a = a.reshape(c, kh, n, oh, w).transpose(0, 2, 4, 1, 3).reshape(-1, kh * oh)
        a = a @ _placement(kh, oh, stride[0], h, dt)  # (C*N*W, H)
        return a.reshape(c, n, w, h).transpose(1, 0, 3, 2)

    def backward(self, gg):
        return (Unfold.apply(gg, kernel=self.kernel, stride=self.stride),)
