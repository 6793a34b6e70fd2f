"""Shape, movement and indexing: reshape, permute, expand and its adjoint, pad, cat, getitem/gather
and their scatter adjoints, and SetItem (an in-place write as a graph node).
"""

from __future__ import annotations

import numpy as np

from ..engine import Function, Tensor
from .fused import MaskMul


class Reshape(Function):
    """x with a new `shape` (a view where NumPy can).

    Gradient: dx = g reshaped to x's shape (in x's memory order).
    """

    saves_inputs = False

    def forward(self, x, shape):
        return x.reshape(shape)

    def backward(self, g):
        x = self.parents[0]
        if type(x) is not Tensor:  # released: a TensorRecord keeps the shape, not the memory layout
            return (g.reshape(x.shape),)
        x = x.data
        g = g.reshape(x.shape)
        order = _memory_order(x) if x.ndim > 2 and not x.flags.c_contiguous and g.data.flags.c_contiguous else None
        if order:
            # x was a permuted block (a conv/pool result in (C, H, W, N) order, say): hand back the
            # gradient in that order, or every elementwise op behind it mixes two layouts (~10x slower)
            g = Relayout.apply(g, order=tuple(order))
        return (g,)


class Relayout(Function):
    """The same values, stored with the axes in memory `order` (outermost first); identity for gradients.

    Gradient: dx = g.
    """

    saves_inputs = False

    def forward(self, x, order):
        out = np.empty(tuple(x.shape[a] for a in order), x.dtype).transpose(np.argsort(order))
        out[...] = x
        return out

    def backward(self, g):
        return (g,)


def _memory_order(a: np.ndarray):
    """The axes of `a` outermost first, when `a` is a transposed view of one contiguous block; else None."""
    order = sorted(range(a.ndim), key=lambda ax: -a.strides[ax])
    return order if a.transpose(order).flags.c_contiguous else None


def _layout(a: np.ndarray) -> tuple:
    """The memory order of a's axes, outermost first (a param: ops that make arrays "like" another)."""
    return tuple(sorted(range(a.ndim), key=lambda ax: -a.strides[ax]))


def _empty_in(layout, shape, dtype, fill=None, lead=()) -> np.ndarray:
    """A new array of `lead + shape` whose last len(shape) axes lie in memory in the order `layout`."""
    buf = np.zeros(lead + tuple(shape[a] for a in layout), dtype) if fill == 0 else \
        np.empty(lead + tuple(shape[a] for a in layout), dtype)
    if fill not in (None, 0):
        buf.fill(fill)
    k = len(lead)
    return buf.transpose(tuple(range(k)) + tuple(k + a for a in np.argsort(layout)))


class Permute(Function):
    """x with its axes in `order` (a view).

    Gradient: dx = g permuted by the inverse order.
    """

    saves_inputs = False

    def forward(self, x, order):
        self.order = order
        return x.transpose(order)

    def backward(self, g):
        return (g.permute(tuple(np.argsort(self.order))),)


class Expand(Function):
    """x broadcast to `shape` (a read-only view).

    Gradient: dx = g summed over the broadcast axes (SumTo).
    """

    saves_inputs = False

    def forward(self, x, shape):
        lead = len(shape) - x.ndim
        if lead < 0 or any(a != b and a != 1 for a, b in zip(x.shape, shape[lead:])):
            raise ValueError(f"can't expand shape {x.shape} to {shape}")
        if not x.flags.c_contiguous:
            return np.broadcast_to(x, shape)
        # the view np.broadcast_to would make, built directly (np.broadcast_to
        # costs several microseconds, a lot for the tiny gradients of a loss)
        strides = (0,) * lead + tuple(0 if a != b else st for a, b, st in zip(x.shape, shape[lead:], x.strides))
        out = np.ndarray(shape, x.dtype, buffer=x, strides=strides)
        out.flags.writeable = False  # its elements alias each other
        return out

    def backward(self, g):
        return (g.sum_to(self.parents[0].shape),)


class SumTo(Function):
    """Sum the broadcast axes of x away to reach `shape` (the adjoint of Expand).

    Gradient: dx = g expanded back to x's shape (Expand).
    """

    saves_inputs = False
    _from = _to = None  # the shapes `_axes` was worked out for

    def forward(self, x, shape):
        if x.shape != self._from or shape != self._to:  # the axes depend on the shapes only: a replay reuses them
            lead = x.ndim - len(shape)
            if lead < 0:
                raise ValueError(f"can't sum shape {x.shape} down to {shape}")
            self._axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                                    if s == 1 and x.shape[lead + i] != 1)
            self._from, self._to = x.shape, shape
        axes = self._axes
        # np.add.reduce, not np.sum: same loop without np.sum's Python-level dispatch (this runs for every bias)
        out = np.add.reduce(x, axis=axes) if axes else x
        return out if out.shape == shape else out.reshape(shape)

    def backward(self, g):
        return (g.expand(self.parents[0].shape),)


class Pad(Function):
    """x padded with `value` by `pad_width` (before, after) per axis.

    Gradient: dx = g without the padding (g[inner]).
    """

    saves_inputs = False

    def forward(self, x, pad_width, value):
        self.inner = tuple(slice(b, b + s) for (b, _), s in zip(pad_width, x.shape))
        shape = tuple(b + s + a for (b, a), s in zip(pad_width, x.shape))
        out = np.full(shape, value, x.dtype) if value else np.zeros(shape, x.dtype)
        out[self.inner] = x
        return out

    def backward(self, g):
        return (g[self.inner],)


def _is_basic(index) -> bool:
    """Basic indexing (ints, slices, None, ...) never selects an element twice."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


class At:
    """A place in an index template: the k-th index array, which the op receives as a tensor input."""

    def __init__(self, k: int):
        self.k = k

    def __eq__(self, other):
        return type(other) is At and other.k == self.k

    __hash__ = None

    def __repr__(self) -> str:
        return f"At({self.k})"


def split_index(index) -> tuple:
    """An index as (template, tensors): each array in it (Tensor, ndarray or list) becomes a tensor input
    of the op and `At(k)` in the template, so no array is baked into the op's params (capture, issue 12)."""
    single = not isinstance(index, tuple)
    template, tensors = [], []
    for i in (index,) if single else index:
        if isinstance(i, (Tensor, np.ndarray, list)):
            tensors.append(i if isinstance(i, Tensor) else Tensor._const(np.asarray(i)))
            template.append(At(len(tensors) - 1))
        else:
            template.append(i)
    return (template[0] if single else tuple(template)), tensors


def _fill(template, arrays) -> object:
    """The index a template stands for, with the input arrays in their places."""
    if not arrays:
        return template
    if type(template) is At:
        return arrays[template.k]
    return tuple(arrays[i.k] if type(i) is At else i for i in template)


class GetItem(Function):
    """x[index]; index arrays come as tensor inputs after x (see split_index), or (older callers) in index.

    Gradient: dx = zeros of x's shape with g added at `index` (IndexAdd); index arrays get none.
    """

    saves_inputs = False

    def forward(self, x, *arrays, index):
        self.template = index
        if arrays:  # the backward reads them again: not x
            index = _fill(index, arrays)
            self.saves_inputs = tuple(range(1, len(arrays) + 1))
        self.index = index
        if not _is_basic(index):  # index arrays are saved data; slices are not
            self.saved = ("index",)
        return x[index]

    def backward(self, g):
        x, *idx = self.parents
        return (IndexAdd.apply(g, *idx, shape=x.shape, index=self.template),) + (None,) * len(idx)


def _along(idx: np.ndarray, axis: int) -> tuple:
    """The index that picks idx[i, j, ...] along axis and i, j, ... elsewhere (torch.gather's)."""
    grids = list(np.indices(idx.shape, sparse=True))
    grids[axis] = idx
    return tuple(grids)


class Gather(Function):
    """out[i][j] = x[idx[i][j]][j] for axis 0 (and so on), as torch.gather; idx is an integer tensor input.

    Equals ``GetItem`` with the index ``_along(idx, axis)``, with the indices a tensor (recorded) rather
    than a baked param.  The gradient scatters back (ScatterAdd); idx gets none.

    Gradient: dx = ScatterAdd(g, idx); idx gets none.
    """

    saves_inputs = (1,)

    def forward(self, x, idx, axis):
        self.axis = axis
        return x[_along(idx, axis)]

    def backward(self, g):
        x, idx = self.parents
        return ScatterAdd.apply(g, idx, axis=self.axis, shape=x.shape), None


class ScatterAdd(Function):
    """zeros(shape) with g[i][j] added at [idx[i][j]][j] for axis 0 (repeats accumulate): Gather's adjoint.

    Gradient: dg = Gather(gg, idx); idx gets none.
    """

    saves_inputs = (1,)

    def forward(self, g, idx, axis, shape):
        self.axis = axis
        out = np.zeros(shape, g.dtype)
        np.add.at(out, _along(idx, axis), g)
        return out

    def backward(self, gg):
        return Gather.apply(gg, self.parents[1], axis=self.axis), None


class IndexAdd(Function):
    """zeros(shape) with g added at `index` (repeated indices accumulate); adjoint of GetItem.

    Index arrays come as tensor inputs after g, as GetItem's.

    Gradient: dg = gg[index] (GetItem); index arrays get none.
    """

    saves_inputs = False

    def forward(self, g, *arrays, shape, index):
        self.template = index
        if arrays:
            index = _fill(index, arrays)
            self.saves_inputs = tuple(range(1, len(arrays) + 1))
        self.index = index
        if not _is_basic(index):
            self.saved = ("index",)
        out = np.zeros(shape, g.dtype)
        if _is_basic(index) or (not isinstance(index, tuple) and np.asarray(index).dtype == bool):
            out[index] = g
        else:
            np.add.at(out, index, g)
        return out

    def backward(self, gg):
        g, *idx = self.parents
        return (GetItem.apply(gg, *idx, index=self.template),) + (None,) * len(idx)


class SetItem(Function):
    """x with x[index] = v: what an in-place write leaves, as a graph node (PyTorch's CopySlices).

    inplace.py writes the result into x's own memory afterwards; here x is the
    value before the write.  copy_, fill_ and zero_ use index Ellipsis.

    Gradient: dx = g with the written elements zeroed, dv = g[index] (the engine sums it to v's shape); index arrays
    get none.
    """

    saves_inputs = False

    def forward(self, x, v, *arrays, index):
        self.template = index
        if arrays:  # index arrays as tensor inputs (see split_index)
            index = _fill(index, arrays)
            self.saves_inputs = tuple(range(2, len(arrays) + 2))
        self.index = index
        if not _is_basic(index):
            self.saved = ("index",)
        out = x.copy()
        out[index] = v
        return out

    def backward(self, g):
        x, v, *idx = self.parents
        gx = gv = None
        if x._requires_grad:  # the overwritten elements had no say in the result
            gx = MaskMul.apply(g, *idx, mask=_unwritten, shape=g.shape, index=self.template)
        if v._requires_grad:
            gv = GetItem.apply(g, *idx, index=self.template)
            if gv.ndim < v.ndim:  # v may carry extra leading 1s that assignment ignores
                gv = gv.reshape((1,) * (v.ndim - gv.ndim) + gv.shape)
        return (gx, gv) + (None,) * len(idx)


def _unwritten(*arrays, shape, index):
    keep = np.ones(shape, bool)
    keep[_fill(index, arrays)] = False
    return keep


class Cat(Function):
    """x_1, ..., x_n concatenated along `axis`.

    Gradient: dx_k = the slice of g along `axis` that x_k filled.
    """

    saves_inputs = False

    def forward(self, *xs, axis):
        self.axis = axis
        return np.concatenate(xs, axis=axis)

    def backward(self, g):
        axis = self.axis % g.ndim
        grads, start = [], 0
        for p in self.parents:
            n = p.shape[axis]
            grads.append(g[(slice(None),) * axis + (slice(start, start + n),)] if p._requires_grad else None)
            start += n
        return tuple(grads)
