"""Shape and indexing: reshape, permute, expand, indexing (x[i]), split, gather, sort, cat, stack, ...."""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..engine import Tensor, bool_, int64
from .common import _dim_alias, _norm_axes, _one_dim, _shape_arg, return_types
from .composite import composite


class Shape:
    """Tensor's shape, indexing, sorting and joining methods.

    Attached to Tensor, with every other group, in tensor_methods/__init__.py.
    """

    def reshape(self, *shape):
        shape = _shape_arg(shape)
        if shape == self.data.shape:
            return self
        return ops.Reshape.apply(self, shape=shape)

    def view(self, *shape):
        """reshape (-1 allowed); like reshape it copies only when NumPy must."""
        if len(shape) == 1 and isinstance(shape[0], (np.dtype, type)):
            raise TypeError("view(dtype) (reinterpreting the bits) is not supported; use .to(dtype) to convert values")
        return self.reshape(*shape)

    def reshape_as(self, other: Tensor):
        return self.reshape(other.shape)

    view_as = reshape_as

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:]
        return self.reshape(shape)

    def permute(self, *order):
        order = _shape_arg(order)
        if len(order) != self.ndim or sorted(o % max(self.ndim, 1) for o in order) != list(range(self.ndim)):
            raise ValueError(f"permute: {order} is not a permutation of the {self.ndim} axes of shape {self.shape}")
        order = tuple(o % self.ndim for o in order)
        if order == tuple(range(self.ndim)):
            return self
        return ops.Permute.apply(self, order=order)

    def transpose(self, dim0: int = -2, dim1: int = -1):
        if not (-self.ndim <= dim0 < self.ndim and -self.ndim <= dim1 < self.ndim):
            raise IndexError(f"transpose: dims ({dim0}, {dim1}) out of range for shape {self.shape}")
        order = list(range(self.ndim))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        return self.permute(order)

    swapaxes = swapdims = transpose

    def t(self):
        """Transpose of a matrix; 0-d and 1-d tensors come back as they are (torch.t)."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor with <= 2 dimensions, got shape {self.shape}; "
                             f"use .mT or transpose(-2, -1) for a batch of matrices")
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self):  # noqa: N802  (PyTorch's name)
        """Transpose of the last two dims (a batch of matrices)."""
        if self.ndim < 2:
            raise ValueError(f"mT: needs at least 2 dimensions, got shape {self.shape}")
        return self.transpose(-2, -1)

    def expand(self, *shape):
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        if shape == self.shape:
            return self
        return ops.Expand.apply(self, shape=shape)

    broadcast_to = expand

    def expand_as(self, other: Tensor):
        return self.expand(other.shape)

    @composite("repeat")
    def repeat(self, *sizes):
        """Tile the tensor sizes[i] times along each dim (torch.repeat, np.tile)."""
        sizes = _shape_arg(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat: needs at least one size per dim ({self.ndim}), got {sizes}")
        shape = (1,) * (len(sizes) - self.ndim) + self.shape
        # (1, s0, 1, s1, ...) -> expand to (r0, s0, r1, s1, ...) -> merge each pair
        x = self.reshape(tuple(v for s in shape for v in (1, s)))
        x = x.expand(tuple(v for r, s in zip(sizes, shape) for v in (r, s)))
        return x.reshape(tuple(r * s for r, s in zip(sizes, shape)))

    def sum_to(self, shape):
        """Sum broadcast axes away so the result has `shape` (the adjoint of expand)."""
        shape = tuple(shape)
        if shape == self.shape:
            return self
        return ops.SumTo.apply(self, shape=shape)

    def squeeze(self, dim=None, *, axis=None):
        """Drop size-1 dims (all of them, or those in dim); a dim of another size is left alone, as PyTorch."""
        if axis is not None:
            dim, _ = _dim_alias("squeeze", dim, axis)
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        axes = _norm_axes(dim, self.ndim, "squeeze")
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if i not in axes or s != 1))

    def unsqueeze(self, dim=None, *, axis=None):
        if axis is not None:
            dim, _ = _dim_alias("unsqueeze", dim, axis)
        if dim is None:
            raise TypeError("unsqueeze: dim is required, e.g. x.unsqueeze(0)")
        d = _one_dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def pad(self, pad_width, value: float = 0.0):
        """Constant padding, `pad_width` per axis as in np.pad: ((before, after), ...)."""
        pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (self.ndim, 2))
        if (pw < 0).any():
            raise ValueError(f"pad: negative pad widths {pad_width} are not supported")
        return ops.Pad.apply(self, pad_width=tuple(map(tuple, pw.tolist())), value=value)

    def __getitem__(self, index):
        index, arrays = ops.split_index(index)  # index arrays become tensor inputs of the op, not baked params
        return ops.GetItem.apply(self, *arrays, index=index)

    def _slice(self, d: int, start: int, stop: int):
        return ops.GetItem.apply(self, index=(slice(None),) * d + (slice(start, stop),))

    @composite("split")
    def split(self, split_size_or_sections, dim=None, *, axis=None) -> tuple:
        """Pieces along dim (default 0): of split_size each (the last may be smaller), or of the listed sizes."""
        dim = _dim_alias("split", dim, axis)[0] if axis is not None else 0 if dim is None else dim
        d = _one_dim(dim, self.ndim, "split")
        n = self.shape[d]
        if isinstance(split_size_or_sections, (int, np.integer)):
            step = int(split_size_or_sections)
            if step <= 0:
                raise ValueError(f"split: split_size must be positive, got {step}")
            bounds = [(i, min(i + step, n)) for i in range(0, n, step)] or [(0, 0)]
        else:
            sizes = [int(v) for v in split_size_or_sections]
            if sum(sizes) != n or min(sizes, default=0) < 0:
                raise ValueError(f"split: sizes {sizes} don't add up to {n}, the length of dim {dim} "
                                 f"(shape {self.shape})")
            ends = np.cumsum([0] + sizes).tolist()
            bounds = list(zip(ends[:-1], ends[1:]))
        return tuple(self._slice(d, a, b) for a, b in bounds)

    @composite("chunk")
    def chunk(self, chunks: int, dim=None, *, axis=None) -> tuple:
        """Up to `chunks` pieces of ceil(n / chunks) along dim (default 0; fewer when they run out, as PyTorch)."""
        dim = _dim_alias("chunk", dim, axis)[0] if axis is not None else 0 if dim is None else dim
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be positive, got {chunks}")
        n = self.shape[_one_dim(dim, self.ndim, "chunk")]
        return self.split(max(-(-n // chunks), 1), dim)

    def narrow(self, dim: int, start: int, length: int):
        d = _one_dim(dim, self.ndim, "narrow")
        start = start + self.shape[d] if start < 0 else start
        if not (0 <= start and length >= 0 and start + length <= self.shape[d]):
            raise IndexError(f"narrow: start {start} + length {length} exceeds dim {dim} of size {self.shape[d]}")
        return self._slice(d, start, start + length)

    def select(self, dim: int, index: int):
        d = _one_dim(dim, self.ndim, "select")
        if not -self.shape[d] <= index < self.shape[d]:
            raise IndexError(f"select: index {index} is out of range for dim {dim} of size {self.shape[d]}")
        return ops.GetItem.apply(self, index=(slice(None),) * d + (int(index),))

    def flip(self, *dims):
        """Reverse the order along the given dims (a view-like slice with step -1; the gradient flips back)."""
        dims = _norm_axes(_shape_arg(dims), self.ndim, "flip")
        return ops.GetItem.apply(self, index=tuple(slice(None, None, -1) if i in dims else slice(None)
                                                   for i in range(self.ndim)))

    def movedim(self, source, destination):
        src = _norm_axes(source, self.ndim, "movedim") if isinstance(source, int) else \
            tuple(_one_dim(s, self.ndim, "movedim") for s in source)
        dst = _norm_axes(destination, self.ndim, "movedim") if isinstance(destination, int) else \
            tuple(_one_dim(s, self.ndim, "movedim") for s in destination)
        if len(src) != len(dst):
            raise ValueError(f"movedim: source {source} and destination {destination} differ in length")
        order = [i for i in range(self.ndim) if i not in src]
        for d, s in sorted(zip(dst, src)):
            order.insert(d, s)
        return self.permute(order)

    moveaxis = movedim

    @composite("tril")
    def tril(self, diagonal: int = 0):
        """The lower triangle of the last two dims (the rest zero); the gradient is masked the same way."""
        mask = ops.Detached.apply(fn=np.tri, args=self.shape[-2:], k=diagonal, dtype=bool_)
        return Tensor.where(mask, self, _zero_of(self))

    @composite("triu")
    def triu(self, diagonal: int = 0):
        mask = ~ops.Detached.apply(fn=np.tri, args=self.shape[-2:], k=diagonal - 1, dtype=bool_)
        return Tensor.where(mask, self, _zero_of(self))

    @composite("sort")
    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """(values, indices) along dim; the values' gradient goes back to where each came from."""
        d = _one_dim(dim, self.ndim, "sort")
        idx = self.argsort(d, descending)
        return return_types.sort(self.gather(d, idx), idx) if self.ndim else return_types.sort(self, idx)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        if self.ndim == 0:
            return Tensor._const(np.zeros((), int64))
        d = _one_dim(dim, self.ndim, "argsort")
        return ops.Detached.apply(self, fn=_argsort, axis=d, descending=descending)

    @composite("topk")
    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
        """The k largest (or smallest) values along dim and their indices, as torch.topk."""
        d = _one_dim(dim, self.ndim, "topk")
        if not 0 <= k <= (self.shape[d] if self.ndim else 1):
            raise IndexError(f"topk: k={k} is out of range for dim {dim} of size {self.shape[d] if self.ndim else 1}")
        if self.ndim == 0:
            return return_types.topk(self, Tensor._const(np.zeros((), int64)))
        idx = ops.Detached.apply(self.argsort(d, descending=largest), fn=_first_k, k=k, axis=d)
        return return_types.topk(self.gather(d, idx), idx)

    def nonzero(self, as_tuple: bool = False):
        """Indices of the nonzero elements: an (n, ndim) int64 tensor, or one per dim with as_tuple=True."""
        if as_tuple:
            return tuple(ops.Detached.apply(self, fn=_nonzero, dim=i) for i in range(self.ndim))
        return ops.Detached.apply(self, fn=_nonzero)

    @composite("unfold")
    def unfold(self, dimension: int, size: int, step: int):
        """Windows of `size` every `step` along a dim, as a new last dim (torch.Tensor.unfold)."""
        d = _one_dim(dimension, self.ndim, "unfold")
        n = self.shape[d]
        if size > n or size <= 0 or step <= 0:
            raise ValueError(f"unfold: size {size} and step {step} don't fit dim {dimension} of size {n}")
        count = (n - size) // step + 1
        x = self.index_select(d, ops.Detached.apply(fn=_windows_index, count=count, size=size, step=step))
        return x.reshape(self.shape[:d] + (count, size) + self.shape[d + 1:]).movedim(d + 1, -1)

    def unflatten(self, dim: int, sizes):
        d = _one_dim(dim, self.ndim, "unflatten")
        return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])

    @composite("repeat_interleave")
    def repeat_interleave(self, repeats, dim=None):
        """Each element `repeats` times in a row along dim (None: of the flattened tensor)."""
        x, d = (self.reshape(-1), 0) if dim is None else (self, _one_dim(dim, self.ndim, "repeat_interleave"))
        if isinstance(repeats, (int, np.integer)):
            return x.index_select(d, ops.Detached.apply(fn=_repeat_index, args=(int(repeats),), n=x.shape[d]))
        reps = repeats if isinstance(repeats, Tensor) else Tensor._const(np.asarray(repeats))
        return x.index_select(d, ops.Detached.apply(reps, fn=_repeat_index, n=x.shape[d]))

    @composite("roll")
    def roll(self, shifts, dims=None):
        """Shift elements along dims, wrapping around (torch.roll); dims None rolls the flattened tensor."""
        if dims is None:
            return self.reshape(-1).roll(shifts, 0).reshape(self.shape)
        shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
        dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
        if len(shifts) != len(dims):
            raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
        out = self
        for sh, dm in zip(shifts, dims):
            d = _one_dim(dm, self.ndim, "roll")
            out = out.index_select(d, ops.Detached.apply(fn=_rolled_index, n=self.shape[d], shift=sh))
        return out

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1):
        """The diagonal of dims (dim1, dim2), appended as the last dim, as torch.diagonal."""
        d1, d2 = _one_dim(dim1, self.ndim, "diagonal"), _one_dim(dim2, self.ndim, "diagonal")
        if d1 == d2:
            raise ValueError("diagonal: dim1 and dim2 must differ")
        rest = [i for i in range(self.ndim) if i not in (d1, d2)]
        x = self.permute(rest + [d1, d2])
        n1, n2 = x.shape[-2:]
        i = ops.Detached.apply(fn=_diagonal_index, n1=n1, n2=n2, offset=offset)
        return ops.GetItem.apply(x, i, i + offset, index=(Ellipsis, ops.At(0), ops.At(1)))

    @composite("diag")
    def diag(self, diagonal: int = 0):
        """1-D: a square matrix with the vector on a diagonal; 2-D: that diagonal, as torch.diag."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise ValueError(f"diag: expects a 1-D or 2-D tensor, got shape {self.shape}")
        n = self.shape[0] + abs(diagonal)
        eye = ops.Detached.apply(fn=np.eye, args=(n,), k=diagonal, dtype=bool_)
        return Tensor.where(eye, self[ops.Detached.apply(eye, fn=_diag_picks)], 0)

    @composite("trace")
    def trace(self):
        if self.ndim != 2:
            raise ValueError(f"trace: expects a matrix, got shape {self.shape}")
        return self.diagonal().sum()

    def unbind(self, dim: int = 0) -> tuple:
        d = _one_dim(dim, self.ndim, "unbind")
        return tuple(ops.GetItem.apply(self, index=(slice(None),) * d + (i,)) for i in range(self.shape[d]))

    def gather(self, dim: int, index, *, axis=None):
        """out[i][j] = self[index[i][j]][j] for dim 0 (and so on), as torch.gather; the gradient scatters back."""
        if axis is not None:
            dim, _ = _dim_alias("gather", dim, axis)
        idx = _int_index(index, "gather")
        d = _one_dim(dim, self.ndim, "gather")
        if idx.ndim != self.ndim:
            raise ValueError(f"gather: index must have as many dims as the input ({self.ndim}), got shape {idx.shape}")
        if any(i > s for k, (i, s) in enumerate(zip(idx.shape, self.shape)) if k != d):
            raise ValueError(f"gather: index shape {idx.shape} is larger than the input {self.shape} "
                             f"outside dim {d}")
        _check_index_range(idx, self.shape[d], "gather")
        index = index.detach() if isinstance(index, Tensor) else Tensor._const(idx)
        return ops.Gather.apply(self, index, axis=d)

    def index_select(self, dim: int, index, *, axis=None):
        """The entries at the 1-D `index` along dim (repeats allowed)."""
        if axis is not None:
            dim, _ = _dim_alias("index_select", dim, axis)
        idx = _int_index(index, "index_select")
        if idx.ndim > 1:
            raise ValueError(f"index_select: index must be 1-D, got shape {idx.shape}")
        d = _one_dim(dim, self.ndim, "index_select")
        _check_index_range(idx, self.shape[d], "index_select")
        index = index.reshape(-1) if isinstance(index, Tensor) else Tensor._const(idx.reshape(-1))
        return ops.GetItem.apply(self, index, index=(slice(None),) * d + (ops.At(0),))

    @composite("masked_fill")
    def masked_fill(self, mask, value):
        """`value` where mask is True, self elsewhere; mask must be boolean and broadcast to self's shape."""
        m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got {m.dtype} (compare first, e.g. x > 0)")
        if np.broadcast_shapes(m.shape, self.shape) != self.shape:
            raise ValueError(f"masked_fill: mask of shape {m.shape} doesn't broadcast to {self.shape}")
        if isinstance(value, Tensor) and value.ndim:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
        cond = mask if isinstance(mask, Tensor) else m  # a tensor mask stays an op input (compile records it)
        return Tensor.where(cond, value if isinstance(value, Tensor) else self._lift(value), self)

    @staticmethod
    def cat(tensors, dim=None, *, axis=None) -> Tensor:
        dim = _dim_alias("cat", dim, axis)[0] if axis is not None else 0 if dim is None else dim
        tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
        if not tensors:
            raise ValueError("cat: needs at least one tensor")
        dtype = np.result_type(*[t.data.dtype for t in tensors])
        tensors = [t.cast(dtype) for t in tensors]
        return ops.Cat.apply(*tensors, axis=dim)

    @staticmethod
    @composite("stack")
    def stack(tensors, dim=None, *, axis=None) -> Tensor:
        dim = _dim_alias("stack", dim, axis)[0] if axis is not None else 0 if dim is None else dim
        tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
        if not tensors:
            raise ValueError("stack: needs at least one tensor")
        shapes = {t.shape for t in tensors}
        if len(shapes) > 1:
            raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
        return Tensor.cat([t.unsqueeze(dim) for t in tensors], dim=dim)


def _argsort(a, axis, descending):
    if descending and a.dtype.kind == "b":
        return np.ascontiguousarray(np.flip(np.argsort(a, axis=axis, kind="stable"), axis), dtype=int64)
    idx = np.argsort(-a if descending else a, axis=axis, kind="stable")
    return np.ascontiguousarray(idx, dtype=int64)


def _first_k(idx, k, axis):
    return np.ascontiguousarray(np.take(idx, np.arange(k), axis=axis))


def _nonzero(a, dim=None):
    found = np.nonzero(a)
    if dim is not None:
        return found[dim].astype(int64)
    return np.stack(found, axis=1).astype(int64) if found else np.zeros((0, 0), int64)


def _windows_index(count, size, step):
    return (np.arange(count)[:, None] * step + np.arange(size)).ravel()


def _repeat_index(repeats, n):
    return np.repeat(np.arange(n), repeats)


def _rolled_index(n, shift):
    return np.roll(np.arange(n), shift)


def _diagonal_index(n1, n2, offset):
    return np.arange(max(0, -offset), min(n1, n2 - offset)) if n2 - offset > 0 else np.arange(0)


def _diag_picks(eye):
    """For each place of a square matrix, the vector entry on its diagonal (0 off it)."""
    rows, cols = np.nonzero(eye)
    picks = np.zeros(eye.shape, np.int64)
    picks[rows, cols] = np.arange(len(rows))
    return picks


def _int_index(index, op: str) -> np.ndarray:
    idx = index.data if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got {idx.dtype}")
    return idx


def _check_index_range(idx: np.ndarray, n: int, op: str) -> None:
    """PyTorch rejects negative and too-large indices here (NumPy would wrap the negative ones)."""
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].ravel()[0]
        raise IndexError(f"{op}: index {bad} is out of range for a dim of size {n}")


def _zero_of(t):
    """The zero tril/triu fill in: False for a bool tensor, which then stays bool (the causal-mask line
    `torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)`), 0 otherwise."""
    return False if t.dtype == bool_ else 0
