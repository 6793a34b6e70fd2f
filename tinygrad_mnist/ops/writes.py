"""Writes into memory as ops: the in-place writes themselves (x += y, x[i] = v, clamp_), with no gradient.

inplace.py decides when a write may happen and how the graph records it (SetItem, rebasing);
these ops only write, so tinygrad_mnist.compile records and replays them like any other op.
"""

from __future__ import annotations

import numpy as np

from ..engine import Function
from .shape import _fill

# A write that is not part of a graph (a leaf under no_grad, an integer tensor, a tensor nothing
# requires grad of) still goes through Function.apply, so tinygrad_mnist.compile records it and its
# replay writes into the same array again.  Forward writes into its first input and returns it.


class _WriteInPlace(Function):
    """Base of the writes below.

    Gradient: none: a write into memory outside the graph (what it means for autograd is inplace.py's rules: a new
    node, version checks).
    """

    def backward(self, grad):
        raise RuntimeError(f"{self.name} writes memory in place outside the graph; it has no gradient")


class _BinaryInPlace(_WriteInPlace):
    """a op= o, o broadcast to a's shape (a's dtype kept: same_kind casting, unsafe for integer a)."""

    ufunc = None

    def forward(self, a, o):
        self.ufunc(a, o, out=a, casting="same_kind" if a.dtype.kind in "fc" else "unsafe")
        return a


class AddInPlace(_BinaryInPlace):
    """a += o in a's own memory (o broadcast to a's shape, a's dtype kept)."""

    ufunc = np.add


class SubInPlace(_BinaryInPlace):
    """a -= o in a's own memory (o broadcast to a's shape, a's dtype kept)."""

    ufunc = np.subtract


class MulInPlace(_BinaryInPlace):
    """a *= o in a's own memory (o broadcast to a's shape, a's dtype kept)."""

    ufunc = np.multiply


class DivInPlace(_BinaryInPlace):
    """a /= o in a's own memory (o broadcast to a's shape, a's dtype kept)."""

    ufunc = np.true_divide


class SetItemInPlace(_WriteInPlace):
    """a[index] = v; the index arrays (masks, integer indices) come as inputs after v, and `index` is
    the template ops.split_index makes of the index (arrays are never baked into a recording)."""

    def forward(self, a, v, *arrays, index):
        a[_fill(index, arrays)] = v
        return a


class ClampInPlace(_WriteInPlace):
    """np.clip(a, lo, hi, out=a); lo/hi say which bounds are given (as inputs, in that order)."""

    def forward(self, a, *bounds, lo, hi):
        bounds = list(bounds)
        np.clip(a, bounds.pop(0) if lo else None, bounds.pop(0) if hi else None, out=a)
        return a


class ZerosLike(Function):
    """New zeros of x's shape and dtype (zero_grad(set_to_none=False) of a gradient it can't zero in place).

    Gradient: none: the result is constant zeros.
    """

    def forward(self, x):
        return np.zeros_like(x)

    def backward(self, grad):
        return (None,)


