"""Reductions: sum, mean, max/min, var/std, logsumexp, arg-max/min, prod, cumsum, norm, median, ...

PyTorch's dim=/keepdim=; NumPy's axis=/keepdims= are accepted as aliases (checked only when given).
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..engine import Tensor, int64
from .common import _dim_alias, _norm_axes, _one_dim, return_types
from .composite import composite


class Reductions:
    """Tensor's reductions.

    Attached to Tensor, with every other group, in tensor_methods/__init__.py.
    """

    def sum(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("sum", dim, axis, keepdim, keepdims)
        return ops.Sum.apply(self, axis=_norm_axes(dim, self.ndim, "sum"), keepdim=keepdim)

    @composite("mean")
    def mean(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("mean", dim, axis, keepdim, keepdims)
        axes = _norm_axes(dim, self.ndim, "mean")
        n = self.data.size if axes is None else math.prod(self.shape[a] for a in axes)
        if n == 0:
            raise ValueError(f"mean: reducing an empty set of elements (shape {self.shape}, dim {dim})")
        return self.sum(axes, keepdim) * (1.0 / n)

    def amax(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Largest values over dim (an int or a tuple; None: all); ties share the gradient equally."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("amax", dim, axis, keepdim, keepdims)
        return ops.Max.apply(self, axis=_norm_axes(dim, self.ndim, "amax"), keepdim=keepdim)

    def amin(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Smallest values over dim (an int or a tuple; None: all); ties share the gradient equally."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("amin", dim, axis, keepdim, keepdims)
        return ops.Min.apply(self, axis=_norm_axes(dim, self.ndim, "amin"), keepdim=keepdim)

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """As torch.max: x.max() is the largest value (ties share the gradient);
        x.max(dim) is a (values, indices) named tuple (the gradient goes to the element at indices);
        x.max(other_tensor) is the elementwise maximum."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("max", dim, axis, keepdim, keepdims)
        if dim is None:
            return ops.Max.apply(self, axis=None, keepdim=keepdim)
        return self._extremum(dim, keepdim, "max", np.argmax)

    def min(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """As torch.min: x.min(), x.min(dim) -> (values, indices), x.min(other_tensor)."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("min", dim, axis, keepdim, keepdims)
        if dim is None:
            return ops.Min.apply(self, axis=None, keepdim=keepdim)
        return self._extremum(dim, keepdim, "min", np.argmin)

    def _extremum(self, dim, keepdim, op, arg):
        if isinstance(dim, Tensor):  # torch.max(a, b): the elementwise maximum
            return self.maximum(dim) if op == "max" else self.minimum(dim)
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"{op}: dim must be one int (it returns values and indices); "
                            f"for several dims use a{op}(dim={tuple(dim)}), which returns the values")
        d = _one_dim(dim, self.ndim, op)
        if self.ndim == 0:
            return getattr(return_types, op)(self, Tensor._const(np.zeros((), int64)))
        if self.shape[d] == 0:
            raise IndexError(f"{op}: dim {dim} has size 0 (shape {self.shape}): there is no {op}")
        idx = ops.Detached.apply(self, fn=_arg_index, which=arg, axis=d, keepdims=True)
        values = self.gather(d, idx)
        if not keepdim:
            values, idx = values.squeeze(d), idx.squeeze(d)
        return getattr(return_types, op)(values, idx)

    @composite("var")
    def var(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None, axis=None, keepdims=None):
        """Variance with Bessel's correction by default (unbiased=True, i.e. correction=1), as PyTorch."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("var", dim, axis, keepdim, keepdims)
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        elif unbiased is not None:
            raise TypeError("var: pass either unbiased= or correction=, not both")
        axes = _norm_axes(dim, self.ndim, "var")
        n = self.data.size if axes is None else math.prod(self.shape[a] for a in axes)
        d = self - self.mean(axes, keepdim=True)
        return (d * d).sum(axes, keepdim) * (1.0 / (n - correction) if n > correction else math.nan)

    @composite("std")
    def std(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None, axis=None, keepdims=None):
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("std", dim, axis, keepdim, keepdims)
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    @composite("logsumexp")
    def logsumexp(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("logsumexp", dim, axis, keepdim, keepdims)
        axes = _norm_axes(dim, self.ndim, "logsumexp")
        m = ops.Detached.apply(self, fn=_finite_max, axis=axes)  # all -inf rows stay -inf
        out = (self - m).exp().sum(axes, keepdim=True).log() + m
        if keepdim:
            return out
        return out.reshape(()) if axes is None else out.squeeze(axes)

    def argmax(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """Index of the largest value (the first on ties); dim None: into the flattened tensor."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("argmax", dim, axis, keepdim, keepdims)
        d = None if dim is None else _one_dim(dim, self.ndim, "argmax")
        return ops.Detached.apply(self, fn=_arg_index, which=np.argmax, axis=d, keepdims=keepdim)

    def argmin(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("argmin", dim, axis, keepdim, keepdims)
        d = None if dim is None else _one_dim(dim, self.ndim, "argmin")
        return ops.Detached.apply(self, fn=_arg_index, which=np.argmin, axis=d, keepdims=keepdim)

    def prod(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Product over one dim (None: all elements)."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("prod", dim, axis, keepdim, keepdims)
        if dim is None:
            out = ops.Prod.apply(self.reshape(-1), axis=0)
            return out.reshape((1,) * self.ndim) if keepdim else out
        d = _one_dim(dim, self.ndim, "prod")
        out = ops.Prod.apply(self, axis=d) if self.ndim else self
        return out.unsqueeze(d) if keepdim and self.ndim else out

    def cumsum(self, dim=None, *, axis=None):
        """Running sums along dim (required, as in PyTorch)."""
        if axis is not None:
            dim, _ = _dim_alias("cumsum", dim, axis)
        if dim is None:
            raise TypeError("cumsum: dim is required, e.g. x.cumsum(0) (flatten first for a running sum over all)")
        if self.ndim == 0:
            return self
        return ops.Cumsum.apply(self, axis=_one_dim(dim, self.ndim, "cumsum"), reverse=False)

    def cumprod(self, dim=None, *, axis=None):
        """Running products along dim; differentiable where the input has no zeros (else a clear error)."""
        if axis is not None:
            dim, _ = _dim_alias("cumprod", dim, axis)
        if dim is None:
            raise TypeError("cumprod: dim is required, e.g. x.cumprod(0)")
        if self.ndim == 0:
            return self
        d = _one_dim(dim, self.ndim, "cumprod")
        return ops.Cumprod.apply(self, axis=d)

    @composite("norm")
    def norm(self, p="fro", dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Vector p-norm over dim (None: all elements); p: 2 (= 'fro'), 1, inf, -inf, 0 or any number.

        The gradient at an all-zero input is 0 (PyTorch's subgradient), not nan.
        """
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("norm", dim, axis, keepdim, keepdims)
        if p == "fro":
            p = 2
        if isinstance(p, str):
            raise ValueError(f"norm: p={p!r} is not supported (use 2, 'fro', 1, inf, -inf, 0 or a number)")
        axes = _norm_axes(dim, self.ndim, "norm")
        a = self.abs()
        if p == math.inf:
            return a.amax(axes, keepdim)
        if p == -math.inf:
            return a.amin(axes, keepdim)
        if p == 0:
            return (a != 0).cast(self.data.dtype).sum(axes, keepdim)
        if p == 1:
            return a.sum(axes, keepdim)
        s = (self * self if p == 2 else a ** p).sum(axes, keepdim)
        # s ** (1/p) where s > 0; the inner where keeps the gradient finite at s = 0
        pos = s > 0
        safe = Tensor.where(pos, s, 1.0)
        root = safe.sqrt() if p == 2 else safe ** (1.0 / p)
        return Tensor.where(pos, root, 0.0)

    def any(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("any", dim, axis, keepdim, keepdims)
        return ops.Detached.apply(self, fn=np.any, axis=_norm_axes(dim, self.ndim, "any"), keepdims=keepdim)

    def all(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("all", dim, axis, keepdim, keepdims)
        return ops.Detached.apply(self, fn=np.all, axis=_norm_axes(dim, self.ndim, "all"), keepdims=keepdim)

    def count_nonzero(self, dim=None) -> Tensor:
        return ops.Detached.apply(self, fn=_count_nonzero, axis=_norm_axes(dim, self.ndim, "count_nonzero"))

    @composite("median")
    def median(self, dim=None, keepdim: bool = False):
        """The lower median (of all elements, or (values, indices) along dim), as torch.median."""
        if dim is None:
            flat = self.reshape(-1)
            if flat.shape[0] == 0:
                raise ValueError("median: of an empty tensor")
            return flat.sort().values[(flat.shape[0] - 1) // 2]
        d = _one_dim(dim, self.ndim, "median")
        srt = self.sort(d)
        k = (self.shape[d] - 1) // 2
        idx = ops.Detached.apply(srt.indices, fn=_take_one, k=k, axis=d)
        values = self.gather(d, idx)
        if not keepdim:
            values, idx = values.squeeze(d), idx.squeeze(d)
        return return_types.median(values, idx)


def _arg_index(a, which, axis, keepdims):
    return np.asarray(which(a, axis=axis, keepdims=keepdims), int64)


def _finite_max(a, axis):
    """The max over axis (kept), 0 where it is not finite (logsumexp's shift)."""
    m = np.max(a, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0).astype(a.dtype)


def _count_nonzero(a, axis):
    return np.asarray(np.count_nonzero(a, axis=axis), int64)


def _take_one(idx, k, axis):
    return np.ascontiguousarray(idx.take([k], axis=axis))
