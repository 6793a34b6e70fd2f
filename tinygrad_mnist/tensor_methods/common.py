"""What the method groups share: argument normalisation (dims, shapes), dtype promotion, return_types."""

from __future__ import annotations

import collections

import numpy as np

from ..engine import Tensor, _is_float


def _shape_arg(shape) -> tuple:
    """Accept f(2, 3), f((2, 3)) and f([2, 3])."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _norm_axes(axis, ndim: int, op: str = "reduce"):
    """None -> None; int or tuple -> a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise IndexError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimension(s)")
        out.append(int(a) % max(ndim, 1))
    return tuple(sorted(set(out)))


def _dim_alias(op: str, dim, axis, keepdim=False, keepdims=None):
    """PyTorch's dim=/keepdim= with NumPy's axis=/keepdims= accepted as aliases (called only when one is given)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both dim= and axis= (the same argument under two names); pass only dim=")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, keepdim


def _one_dim(dim, ndim: int, op: str) -> int:
    """A single dimension, range-checked, as a non-negative int."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimension(s)")
    return int(dim) % max(ndim, 1)


def _promote(a: Tensor, b: Tensor):
    """Mixed dtypes: a float side wins over an int side (no float64 creep from int data)."""
    fa, fb = _is_float(a.data.dtype), _is_float(b.data.dtype)
    if fa and not fb:
        return a, b.cast(a.data.dtype)
    if fb and not fa:
        return a.cast(b.data.dtype), b
    if (a.data.ndim == 0) != (b.data.ndim == 0) and (a.data.dtype.kind == "b") == (b.data.dtype.kind == "b"):
        # PyTorch: within a category a 0-d tensor doesn't widen one with dims (float32 * float64 0-d -> float32)
        return (a.cast(b.data.dtype), b) if a.data.ndim == 0 else (a, b.cast(a.data.dtype))
    dt = np.result_type(a.data.dtype, b.data.dtype)
    return a.cast(dt), b.cast(dt)


class return_types:  # noqa: N801  (named after torch.return_types)
    """The (values, indices) named tuples of max(dim) and min(dim), as torch.return_types."""

    max = collections.namedtuple("max", ["values", "indices"])
    min = collections.namedtuple("min", ["values", "indices"])
    sort = collections.namedtuple("sort", ["values", "indices"])
    topk = collections.namedtuple("topk", ["values", "indices"])
    median = collections.namedtuple("median", ["values", "indices"])
