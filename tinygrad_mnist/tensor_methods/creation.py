"""Making tensors: the factories (zeros, randn, arange, ...), casts (float(), to()), copies (clone()).

Every factory's array comes out of a recorded op (`_made` for plain values, `_draw` for random
numbers), so a factory called inside a compiled step replays.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..engine import Tensor, _cast_checked, _check_device, _is_float, bool_, float32, float64, int64
from ..generator import check_generator
from .common import _shape_arg


class Creation:
    """Tensor's factories (classmethods, also at the top level: tinygrad_mnist.zeros(2, 3)), casts and copies.

    Attached to Tensor, with every other group, in tensor_methods/__init__.py.
    """

    @classmethod
    def zeros(cls, *shape, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(np.zeros, _shape_arg(shape), np.dtype(dtype or float32)), requires_grad, device)

    @classmethod
    def ones(cls, *shape, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(np.ones, _shape_arg(shape), np.dtype(dtype or float32)), requires_grad, device)

    @classmethod
    def empty(cls, *shape, requires_grad=False, dtype=None, device=None) -> Tensor:
        """Zeros (NumPy's uninitialised memory would only hide bugs)."""
        return cls.zeros(*shape, requires_grad=requires_grad, dtype=dtype, device=device)

    @classmethod
    def full(cls, shape, fill_value, requires_grad=False, dtype=None, device=None) -> Tensor:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if isinstance(fill_value, Tensor):
            fill_value = fill_value.item()
        if dtype is None:
            dtype = float32 if isinstance(fill_value, float) else np.asarray(fill_value).dtype
        # no silent 1.5 -> 1
        return cls._leaf(_made(_full_checked, shape, fill_value, np.dtype(dtype)), requires_grad, device)

    @classmethod
    def zeros_like(cls, t, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(np.zeros, np.shape(t), np.dtype(dtype or _dtype_of(t))), requires_grad, device)

    @classmethod
    def ones_like(cls, t, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(np.ones, np.shape(t), np.dtype(dtype or _dtype_of(t))), requires_grad, device)

    @classmethod
    def full_like(cls, t, fill_value, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls.full(np.shape(t), fill_value, requires_grad, dtype or _dtype_of(t), device)

    @classmethod
    def randn(cls, *shape, requires_grad=False, dtype=None, device=None, generator=None) -> Tensor:
        """Standard normal samples, from `generator` or the default stream (seed it with manual_seed)."""
        dtype = np.dtype(dtype or float32)
        return cls._leaf(_draw(_randn, generator, shape=_shape_arg(shape), dtype=dtype), requires_grad, device)

    @classmethod
    def uniform(cls, *shape, low=0.0, high=1.0, requires_grad=False, dtype=None, device=None,
                generator=None) -> Tensor:
        dtype = np.dtype(dtype or float32)
        data = _draw(_rand, generator, shape=_shape_arg(shape), low=low, high=high, dtype=dtype)
        return cls._leaf(data, requires_grad, device)

    @classmethod
    def rand(cls, *shape, requires_grad=False, dtype=None, device=None, generator=None) -> Tensor:
        """Uniform samples in [0, 1)."""
        return cls.uniform(*shape, requires_grad=requires_grad, dtype=dtype, device=device, generator=generator)

    @classmethod
    def randint(cls, low, high=None, size=None, dtype=None, device=None, requires_grad=False,
                generator=None) -> Tensor:
        """Integers uniform in [low, high); randint(high, size) starts at 0, as torch.randint."""
        if size is None:  # torch.randint(high, size)
            if high is None:
                raise TypeError("randint: needs high and size, e.g. randint(0, 10, (3,)) or randint(10, (3,))")
            low, high, size = 0, low, high
        size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        if high <= low:
            raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
        data = _draw(_randint, generator, low=low, high=high, size=size)
        return cls._leaf(_cast_checked(data, np.dtype(dtype or int64)), requires_grad, device)

    def multinomial(self, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
        """Category indices drawn with weights self (1-D, or one row per draw), as torch.multinomial.

        The weights need not sum to 1 but must be finite, >= 0 and not all zero in a row; without
        replacement no index repeats in a row (categories of weight 0 come last).
        """
        if self.ndim not in (1, 2):
            raise RuntimeError(f"multinomial: the weights must be 1-D or 2-D, got shape {self.shape}")
        if not _is_float(self.dtype):
            raise RuntimeError(f"multinomial: the weights must be a float tensor, got {self.dtype}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
            raise RuntimeError(f"multinomial: num_samples must be a positive int, got {num_samples!r}")
        if not replacement and num_samples > self.shape[-1]:
            raise RuntimeError(f"multinomial: can't draw {num_samples} samples without replacement from "
                               f"{self.shape[-1]} categories (weights of shape {self.shape}); pass replacement=True")
        # the weights are the op's input: checked and drawn from when it runs (a replay sees new weights)
        return Tensor._const(_draw(_multinomial, generator, self.detach(), num_samples=int(num_samples),
                                   replacement=bool(replacement)))

    def bernoulli(self, p=None, *, generator=None) -> Tensor:
        """0/1 samples, 1 with probability self (or with probability p, in self's shape), in self's dtype."""
        if self.dtype.kind != "f":
            raise TypeError(f"bernoulli: the probabilities must be a float tensor, got {self.dtype}")
        if p is not None and not 0 <= p <= 1:
            raise RuntimeError(f"bernoulli: p must be in [0, 1], got p={p}")
        if p is None and bool(((self.detach() < 0) | (self.detach() > 1)).any()):
            raise RuntimeError(f"bernoulli: every probability must be in [0, 1] (input of shape {self.shape})")
        u = Tensor.rand(self.shape, dtype=self.dtype, generator=generator)
        return _zero_grad_link((u < (self.detach() if p is None else p)).cast(self.dtype), self)

    @classmethod
    def eye(cls, n, m=None, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(_eye, n, m, np.dtype(dtype or float32)), requires_grad, device)

    @classmethod
    def arange(cls, start, stop=None, step=1, requires_grad=False, dtype=None, device=None) -> Tensor:
        if stop is None:
            start, stop = 0, start
        if dtype is None:
            ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
            dtype = int64 if ints else float32
        # no silent 0.5 -> 0
        return cls._leaf(_made(_arange_checked, start, stop, step, np.dtype(dtype)), requires_grad, device)

    @classmethod
    def linspace(cls, start, end, steps, requires_grad=False, dtype=None, device=None) -> Tensor:
        """`steps` evenly spaced values from start to end, both included."""
        return cls._leaf(_made(_linspace, start, end, int(steps), np.dtype(dtype or float32)), requires_grad, device)

    def cast(self, dtype) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype == self.data.dtype:
            return self
        if self._requires_grad and not _is_float(dtype):
            # an integer result can't carry a gradient: cut it from the graph
            return ops.Cast.apply(self.detach(), dtype=dtype)
        return ops.Cast.apply(self, dtype=dtype)

    astype = cast

    def float(self) -> Tensor:
        return self.cast(float32)

    def double(self) -> Tensor:
        return self.cast(float64)

    def long(self) -> Tensor:
        return self.cast(int64)

    def int(self) -> Tensor:
        return self.cast(np.int32)

    def bool(self) -> Tensor:
        return self.cast(bool_)

    def half(self) -> Tensor:
        raise TypeError("half: float16 is not supported by this engine; use .float() (float32) or .double()")

    def type_as(self, other: Tensor) -> Tensor:
        return self.cast(other.data.dtype)

    def type(self, dtype=None):
        """x.type(float64) converts; x.type() names the dtype ("float32")."""
        return str(self.data.dtype) if dtype is None else self.cast(dtype)

    # new tensors with this one's dtype, as torch's Tensor.new_*
    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return Tensor.zeros(*size, dtype=dtype or self.data.dtype, device=device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return Tensor.ones(*size, dtype=dtype or self.data.dtype, device=device, requires_grad=requires_grad)

    new_empty = new_zeros

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
        return Tensor.full(size, fill_value, dtype=dtype or self.data.dtype, device=device,
                           requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False) -> Tensor:
        return Tensor(data, dtype=dtype or self.data.dtype, device=device, requires_grad=requires_grad)

    def to(self, *args, dtype=None, device=None, copy: bool = False, non_blocking: bool = False) -> Tensor:
        """x.to(float64), x.to("cpu"), x.to(device="cpu", dtype=...), x.to(other_tensor), as in PyTorch.

        Only the CPU exists here: any other device is a clear error.
        """
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.data.dtype
            elif isinstance(a, str):
                device = a
            else:
                dtype = a
        _check_device(device, "to")
        out = self if dtype is None else self.cast(dtype)
        return out.clone() if copy and out is self else out

    def cpu(self) -> Tensor:
        return self

    def cuda(self, *args, **kwargs) -> Tensor:
        return self.to("cuda")  # the clear error

    def clone(self) -> Tensor:
        """A copy in new memory; recorded, so the gradient flows back to self (torch.clone)."""
        return ops.Clone.apply(self)

    def contiguous(self) -> Tensor:
        """self when its memory is already C-contiguous (as PyTorch), else a recorded copy."""
        return self if self.data.flags.c_contiguous else self.clone()


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor that shares `arr`'s memory (torch.from_numpy): writes to one show in the other."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy: expected an np.ndarray, got {type(arr).__name__} (use tensor(data) to copy data)")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: can't make a tensor from numpy dtype {arr.dtype}; expected numbers")
    return Tensor._const(arr)


def _made(fn, *args) -> np.ndarray:
    """A new array fn(*args) of plain values (a factory's), made by a recorded op (ops.Detached)."""
    return ops.Detached.apply(fn=fn, args=args).data


def _full_checked(shape, fill_value, dtype):
    return _cast_checked(np.full(shape, fill_value), dtype)


def _arange_checked(start, stop, step, dtype):
    return _cast_checked(np.arange(start, stop, step), dtype)


def _linspace(start, end, steps, dtype):
    return np.linspace(start, end, steps).astype(dtype)


def _eye(n, m, dtype):
    return np.eye(n, m, dtype=dtype)


def _draw(draw, generator=None, *inputs, **kw) -> np.ndarray:
    """Random numbers from a recorded op (ops.Random): under compile a replay draws fresh ones, in eager order.

    `draw(r, *input arrays, **kw)` gets the default stream as r; a Generator rides along as the op's
    parameter `generator` (only when given), read when the op runs, so a replay draws from it too.
    """
    if generator is not None:
        kw["generator"] = check_generator(generator, getattr(draw, "__name__", "draw").lstrip("_"))
    return ops.Random.apply(*inputs, draw=draw, **kw).data


# The draws: module level, so a recording can bake them in and compare them.


def _randn(r, shape, dtype, generator=None):
    return numpy_rng_or(r, generator).standard_normal(shape, dtype=dtype)


def _rand(r, shape, low, high, dtype, generator=None):
    data = numpy_rng_or(r, generator).random(shape, dtype=dtype)
    if (low, high) != (0.0, 1.0):
        data = data * dtype.type(high - low) + dtype.type(low)
    return data


def _randint(r, low, high, size, generator=None):
    return numpy_rng_or(r, generator).integers(low, high, size, dtype=np.int64)


def _randperm(r, n, dtype, generator=None):
    return numpy_rng_or(r, generator).permutation(n).astype(dtype)


def _multinomial(r, weights, num_samples, replacement, generator=None):
    g = numpy_rng_or(r, generator)
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise RuntimeError(f"multinomial: the weights (shape {weights.shape}) contain inf, nan or a value < 0")
    rows = weights.reshape(-1, weights.shape[-1]).astype(np.float64)
    total = rows.sum(axis=1)
    if np.any(total <= 0):
        raise RuntimeError(f"multinomial: a row of the weights (shape {weights.shape}) sums to 0: nothing to draw")
    if replacement:  # inverse CDF: the first category whose running share exceeds a uniform draw
        cdf = np.cumsum(rows, axis=1) / total[:, None]
        u = g.random((rows.shape[0], num_samples))
        idx = np.stack([np.searchsorted(c, v, side="right") for c, v in zip(cdf, u)])
        np.minimum(idx, rows.shape[1] - 1, out=idx)  # (rounding can leave the last share a hair below 1)
    else:  # the k largest weight / Exp(1) keys are a weighted sample without replacement (Efraimidis-Spirakis)
        keys = rows / g.exponential(size=rows.shape)
        idx = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    return idx.reshape(weights.shape[:-1] + (num_samples,)).astype(np.int64)


def _zero_grad_link(samples: Tensor, *params: Tensor) -> Tensor:
    """samples, tied to the parameters that require grad with zero gradients (PyTorch's normal and bernoulli)."""
    for t in params:
        if t.requires_grad:
            samples = samples + t * 0
    return samples


def numpy_rng_or(r, generator):
    """The stream a draw reads: the op's default (r, engine.rng()) unless a Generator came with it."""
    return r if generator is None else generator._np


def _dtype_of(t):
    return t.data.dtype if isinstance(t, Tensor) else np.asarray(t).dtype
