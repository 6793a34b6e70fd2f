"""In-place methods (x[i] = v, add_, -=, zero_, ...): they write into self.data; the autograd rules
live in inplace.py."""

from __future__ import annotations

from .. import inplace
from ..engine import Tensor


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
