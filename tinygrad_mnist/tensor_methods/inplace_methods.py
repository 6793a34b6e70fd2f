"""In-place methods (x[i] = v, add_, -=, zero_, ...): they write into self.data; the autograd rules
live in inplace.py."""

from __future__ import annotations

import numpy as np

from .. import inplace
from ..engine import Tensor
from .creation import _draw, numpy_rng_or


class InPlace:
    """Tensor's in-place methods.

    Attached to Tensor, with every other group, in tensor_methods/__init__.py.
    """

    def __setitem__(self, index, value) -> None:
        inplace.setitem(self, index, value)

    def add_(self, other, alpha=1) -> Tensor:
        return inplace.binary(self, "add", other, "add_", alpha)

    def sub_(self, other, alpha=1) -> Tensor:
        return inplace.binary(self, "sub", other, "sub_", alpha)

    def mul_(self, other) -> Tensor:
        return inplace.binary(self, "mul", other, "mul_")

    def div_(self, other) -> Tensor:
        return inplace.binary(self, "div", other, "div_")

    def __iadd__(self, other):
        return inplace.binary(self, "add", other, "+=")

    def __isub__(self, other):
        return inplace.binary(self, "sub", other, "-=")

    def __imul__(self, other):
        return inplace.binary(self, "mul", other, "*=")

    def __itruediv__(self, other):
        return inplace.binary(self, "div", other, "/=")

    def clamp_(self, min=None, max=None) -> Tensor:  # noqa: A002  (PyTorch's keyword names)
        return inplace.clamp(self, min, max)

    def fill_(self, value) -> Tensor:
        return inplace.fill(self, value, "fill_")

    def zero_(self) -> Tensor:
        return inplace.fill(self, 0, "zero_")

    def copy_(self, src) -> Tensor:
        return inplace.copy(self, src)

    def relu_(self) -> Tensor:
        return inplace.apply(self, "relu_", Tensor.relu, reads_self=True)

    def sigmoid_(self) -> Tensor:
        return inplace.apply(self, "sigmoid_", Tensor.sigmoid)

    def tanh_(self) -> Tensor:
        return inplace.apply(self, "tanh_", Tensor.tanh)

    def exp_(self) -> Tensor:
        return inplace.apply(self, "exp_", Tensor.exp)

    def log_(self) -> Tensor:
        return inplace.apply(self, "log_", Tensor.log, reads_self=True)

    def sqrt_(self) -> Tensor:
        return inplace.apply(self, "sqrt_", Tensor.sqrt)

    def abs_(self) -> Tensor:
        return inplace.apply(self, "abs_", Tensor.abs, reads_self=True)

    def neg_(self) -> Tensor:
        return inplace.apply(self, "neg_", Tensor.__neg__)

    def pow_(self, exponent) -> Tensor:
        others = (exponent,) if isinstance(exponent, Tensor) else ()
        return inplace.apply(self, "pow_", lambda s: s ** exponent, others, reads_self=True)

    def masked_fill_(self, mask, value) -> Tensor:
        others = (value,) if isinstance(value, Tensor) else ()
        return inplace.apply(self, "masked_fill_", lambda s: s.masked_fill(mask, value), others)

    def clamp_min_(self, min) -> Tensor:  # noqa: A002  (PyTorch's keyword name)
        return inplace.clamp(self, min, None, "clamp_min_")

    def clamp_max_(self, max) -> Tensor:  # noqa: A002
        return inplace.clamp(self, None, max, "clamp_max_")

    @property
    def _version(self) -> int:
        """In-place writes into this tensor's memory so far (shared by its views), as in PyTorch."""
        return inplace.version(self)

    # random fills, as torch's: values drawn by a recorded op (so compile replays fresh ones), then copy_
    def uniform_(self, a=0.0, b=1.0, *, generator=None) -> Tensor:
        """Fill with U[a, b) samples (torch's from=/to= are a, b here: `from` is a Python keyword)."""
        if a > b:
            raise RuntimeError(f"uniform_: needs a <= b for the range [a, b), got a={a}, b={b}")
        return self.copy_(Tensor.uniform(self.shape, low=a, high=b, dtype=_float_of(self), generator=generator))

    def normal_(self, mean=0.0, std=1.0, *, generator=None) -> Tensor:
        if std < 0:
            raise RuntimeError(f"normal_: std must be >= 0, got {std}")
        z = Tensor.randn(self.shape, dtype=_float_of(self), generator=generator)
        return self.copy_(z * std + mean if (mean, std) != (0.0, 1.0) else z)

    def bernoulli_(self, p=0.5, *, generator=None) -> Tensor:
        """Fill with 0/1 samples, 1 with probability p (a number, or a tensor broadcast to self)."""
        if not isinstance(p, Tensor) and not 0 <= p <= 1:
            raise RuntimeError(f"bernoulli_: p must be in [0, 1], got p={p}")
        u = Tensor.rand(self.shape, dtype=_float_of(self), generator=generator)
        return self.copy_((u < (p.detach() if isinstance(p, Tensor) else p)).cast(self.dtype))

    def exponential_(self, lambd=1.0, *, generator=None) -> Tensor:
        """Fill with samples of the exponential distribution of rate lambd (mean 1 / lambd)."""
        if not lambd > 0:
            raise RuntimeError(f"exponential_: lambd must be > 0, got {lambd}")
        data = _draw(_exponential, generator, shape=self.shape, scale=1.0 / lambd, dtype=_float_of(self))
        return self.copy_(Tensor._const(data))

    def random_(self, a=0, b=None, *, generator=None) -> Tensor:
        """Fill with integers: random_(b) in [0, b), random_(a, b) in [a, b), random_() in [0, 2**mantissa]
        for floats (all a dtype holds exactly) or [0, max] for integers, as torch's."""
        if b is None and a != 0:
            a, b = 0, a
        if b is None:
            dt = self.dtype
            b = 2 ** (np.finfo(dt).nmant + 1) + 1 if dt.kind == "f" else 2 if dt.kind == "b" else int(np.iinfo(dt).max)
        if a >= b:
            raise RuntimeError(f"random_: needs a < b for the range [a, b), got a={a}, b={b}")
        return self.copy_(Tensor.randint(a, b, self.shape, generator=generator).cast(self.dtype))


def _float_of(t: Tensor):
    return t.dtype if t.dtype.kind == "f" else np.dtype(np.float32)


def _exponential(r, shape, scale, dtype, generator=None):
    return numpy_rng_or(r, generator).exponential(scale, shape).astype(dtype)
