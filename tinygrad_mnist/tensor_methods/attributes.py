"""Tensor attributes and conversions to Python and NumPy: size(), numel(), item(), tolist(), repr, ...."""

from __future__ import annotations

import numpy as np

from ..engine import _check_device, _is_float, float32
from .common import _one_dim


class device(str):
    """The device a tensor lives on: always "cpu" (compares equal to the string, like torch.device)."""

    def __new__(cls, spec="cpu"):
        return super().__new__(cls, _check_device(spec, "device"))

    @property
    def type(self) -> str:
        return "cpu"

    @property
    def index(self):
        return None

    def __repr__(self) -> str:
        return "device(type='cpu')"


_CPU = device("cpu")


class Size(tuple):
    """A shape, as torch.Size: a tuple (x.shape == Size([2, 3]) where x.shape == (2, 3)) that prints as one.

    x.size() returns one; x.shape stays the plain tuple NumPy gives (it is read on every op), and
    compares equal to a Size all the same.
    """

    def __new__(cls, sizes=()):
        return super().__new__(cls, (int(s) for s in sizes))

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self) -> str:
        return f"tinygrad_mnist.Size({list(self)})"


class Attributes:
    """Tensor's size, device, conversions to Python values and repr.

    Attached to Tensor, with every other group, in tensor_methods/__init__.py.
    """

    def size(self, dim=None):
        """The shape as a Size (a tuple), or the length of one dimension (x.size(0))."""
        if dim is None:
            return Size(self.data.shape)
        return self.data.shape[_one_dim(dim, self.data.ndim, "size")]

    def numel(self) -> int:
        return self.data.size

    nelement = numel

    def dim(self) -> int:
        return self.data.ndim

    def element_size(self) -> int:
        return self.data.itemsize

    @property
    def device(self) -> device:
        return _CPU

    @property
    def is_cuda(self) -> bool:
        return False

    def is_floating_point(self) -> bool:
        return _is_float(self.data.dtype)

    def is_contiguous(self) -> bool:
        return self.data.flags.c_contiguous

    def stride(self, dim=None):
        """Steps in elements (not bytes, unlike NumPy's strides), as torch.stride."""
        steps = tuple(st // self.data.itemsize for st in self.data.strides)
        return steps if dim is None else steps[_one_dim(dim, self.data.ndim, "stride")]

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def numpy(self) -> np.ndarray:
        return self.data

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python scalar, "
                             f"this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20, edgeitems=2,
                               prefix="Tensor(")
        extra = ""
        if self.data.dtype != float32:
            extra += f", dtype={self.data.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx.name}"
        elif self._requires_grad:
            extra += ", requires_grad=True"
        if self.name is not None:
            extra += f", name={self.name!r}"
        return f"Tensor({body}{extra})"

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        """A one-element integer tensor can index a list or a range, as in PyTorch."""
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an index "
                            f"(this one: {self.data.dtype}, shape {self.shape})")
        return int(self.data.item())

    def __format__(self, spec: str) -> str:
        """f"{loss:.4f}" formats the value of a one-element tensor, as in PyTorch."""
        if self.data.size == 1 and self.data.ndim == 0:
            return format(self.data.item(), spec)
        return format(str(self), spec)
