"""Arithmetic, comparisons, logical ops, elementwise math and matrix products of Tensors.

The binary operators are the hot path: `x + y` is `_binary` (a type check, a dtype check) then
`Function.apply`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import ops
from ..engine import Tensor, _as_array, _is_float, bool_, float32
from .common import _promote
from .composite import _tag_call, composite


class _static_or_method:
    """Tensor.f(a, b, c) calls f as written; x.f(b, c) calls f(b, x, c).

    For where: Tensor.where(cond, x, y) as torch.where, and x.where(cond, y) as torch's Tensor.where.
    """

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self.fn
        return functools.partial(lambda x, cond, other: self.fn(cond, x, other), obj)


class Arithmetic:
    """Tensor's operators (+, *, @, <, &, ...), elementwise math and matrix products.

    Attached to Tensor, with every other group, in tensor_methods/__init__.py.
    """

    def _lift(self, other) -> Tensor:
        """Turn a Python/NumPy scalar or array into a constant Tensor."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float, np.generic)):
            dt = self.data.dtype
            if not _is_float(dt) and isinstance(other, (float, np.floating)):
                dt = float32  # int tensor * 0.5 gives float32, as in PyTorch
            elif dt.kind == "b" and not isinstance(other, (bool, np.bool_)):
                dt = np.asarray(other).dtype
            return Tensor._const(np.array(other, dt))
        return Tensor._const(_as_array(other, copy=False))  # a constant operand: no copy needed

    def _binary(self, cls, other, reverse=False):
        if type(other) is not Tensor:
            other = self._lift(other)
        a, b = (other, self) if reverse else (self, other)
        da, db = a.data.dtype, b.data.dtype
        if da is not db and da != db:
            a, b = _promote(a, b)
        return cls.apply(a, b)

    def __add__(self, other):
        return self._binary(ops.Add, other)

    def __radd__(self, other):
        return self._binary(ops.Add, other, True)

    def __sub__(self, other):
        return self._binary(ops.Sub, other)

    def __rsub__(self, other):
        return self._binary(ops.Sub, other, True)

    def __mul__(self, other):
        return self._binary(ops.Mul, other)

    def __rmul__(self, other):
        return self._binary(ops.Mul, other, True)

    def __truediv__(self, other):
        if self.data.dtype.kind != "f" and not (isinstance(other, Tensor) and other.data.dtype.kind == "f"):
            return self.float()._binary(ops.Div, other)  # int / int is float32, as in PyTorch (NumPy: float64)
        return self._binary(ops.Div, other)

    def __rtruediv__(self, other):
        if self.data.dtype.kind != "f" and not isinstance(other, (float, np.floating)):
            return self.float()._binary(ops.Div, other, True)
        return self._binary(ops.Div, other, True)

    def __pow__(self, other):
        if isinstance(other, (int, float)) and not isinstance(other, bool) and (
                _is_float(self.data.dtype) or isinstance(other, int)):
            return ops.PowConst.apply(self, c=other)
        return self._binary(ops.Pow, other)

    def __rpow__(self, other):
        return self._binary(ops.Pow, other, True)

    def __matmul__(self, other):
        return self.matmul(other)

    def __rmatmul__(self, other):
        return self._lift(other).matmul(self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    mul, div, pow = __mul__, __truediv__, __pow__

    def add(self, other, *, alpha=1):
        """self + alpha * other (torch.add)."""
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    subtract, multiply, divide, true_divide, neg, negative = sub, mul, div, div, __neg__, __neg__

    def __abs__(self):
        return self.abs()

    def __floordiv__(self, other):
        """floor(self / other), as torch's //: a step function, so no gradient flows."""
        other = self._lift(other)
        if not (_is_float(self.data.dtype) or _is_float(other.data.dtype)):  # int // int stays int
            return ops.Detached.apply(self, other, fn=np.floor_divide)
        return (self / other).floor()

    def __rfloordiv__(self, other):
        return self._lift(other) // self

    def __mod__(self, other):
        """Python's (and torch.remainder's) modulo, self - floor(self / other) * other; differentiable."""
        other = self._lift(other)
        if not (_is_float(self.data.dtype) or _is_float(other.data.dtype)):
            return ops.Detached.apply(self, other, fn=np.remainder)
        return self - (self / other).floor() * other

    def __rmod__(self, other):
        return self._lift(other) % self

    floor_divide, remainder = __floordiv__, __mod__

    # logical and bitwise ops on bool/int tensors: recorded, outside the graph, as comparisons
    def _logical(self, other, fn, op):
        b = other if isinstance(other, Tensor) else Tensor._const(np.asarray(other))
        if _is_float(self.data.dtype) or _is_float(b.data.dtype):
            raise TypeError(f"{op}: needs bool or integer tensors, got {self.data.dtype} and {b.data.dtype} "
                            f"(compare first, e.g. (x > 0) {op} (y > 0))")
        return ops.Detached.apply(self, b, fn=fn)

    def __and__(self, other):
        return self._logical(other, np.bitwise_and, "&")

    def __or__(self, other):
        return self._logical(other, np.bitwise_or, "|")

    def __xor__(self, other):
        return self._logical(other, np.bitwise_xor, "^")

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    bitwise_and, bitwise_or, bitwise_xor = __and__, __or__, __xor__

    def __invert__(self):
        if _is_float(self.data.dtype):
            raise TypeError(f"~: needs a bool or integer tensor, got {self.data.dtype}")
        return ops.Detached.apply(self, fn=np.invert)

    bitwise_not = __invert__

    def logical_not(self) -> Tensor:
        return ops.Detached.apply(self, fn=np.logical_not)

    def logical_and(self, other) -> Tensor:
        return self._compare(other, np.logical_and)

    def logical_or(self, other) -> Tensor:
        return self._compare(other, np.logical_or)

    def logical_xor(self, other) -> Tensor:
        return self._compare(other, np.logical_xor)

    # comparisons: boolean tensors outside the graph, made by a recorded op (ops.Detached)
    def _compare(self, other, fn):
        if isinstance(other, (int, float, bool, np.generic)):  # a number is baked into the op, as NumPy sees it
            return ops.Detached.apply(self, fn=fn, args=(other,))
        other = other if isinstance(other, Tensor) else Tensor._const(np.asarray(other))
        try:
            np.broadcast_shapes(self.shape, other.shape)
        except ValueError as e:
            raise ValueError(f"{fn.__name__}: {e} (shapes {self.shape} and {other.shape})") from None
        return ops.Detached.apply(self, other, fn=fn)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        """NumPy meets a Tensor operand.

        `arr += t` (NumPy writes into its own array, as in `p.data += -lr * p.grad`) computes with the
        tensors' arrays, into `arr`.  `arr * t`, `arr < t`, `arr @ t`, ... give the Tensor's own
        reflected operator (a Tensor, in the graph).  Any other NumPy function of a Tensor is refused:
        call the Tensor's method (x.exp()), or np.exp(x.numpy()) for an array.
        """
        if method == "__call__" and out is not None and not any(isinstance(o, Tensor) for o in out):
            return ufunc(*[x.data if isinstance(x, Tensor) else x for x in inputs], out=out, **kwargs)
        if method == "__call__" and out is None and not kwargs and len(inputs) == 2 \
                and isinstance(inputs[1], Tensor) and not isinstance(inputs[0], Tensor):
            reflected = _REFLECTED.get(ufunc)
            if reflected is not None:
                return reflected(inputs[1], inputs[0])
        return NotImplemented

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne

    def equal(self, other) -> bool:
        """True when shapes and all elements are equal (torch.equal)."""
        other = other.data if isinstance(other, Tensor) else np.asarray(other)
        return self.data.shape == other.shape and bool(np.array_equal(self.data, other))

    def allclose(self, other, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
        other = other.data if isinstance(other, Tensor) else other
        return bool(np.allclose(self.data, other, rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isnan(self) -> Tensor:
        return ops.Detached.apply(self, fn=np.isnan)

    def isfinite(self) -> Tensor:
        return ops.Detached.apply(self, fn=np.isfinite)

    def isinf(self) -> Tensor:
        return ops.Detached.apply(self, fn=np.isinf)

    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def log1p(self):
        """log(1 + x), accurate for tiny x."""
        return ops.Log1p.apply(self)

    def expm1(self):
        """exp(x) - 1, accurate for tiny x."""
        return ops.Expm1.apply(self)

    @composite("log2")
    def log2(self):
        return self.log() * (1.0 / math.log(2.0))

    @composite("log10")
    def log10(self):
        return self.log() * (1.0 / math.log(10.0))

    @composite("exp2")
    def exp2(self):
        return (self * math.log(2.0)).exp()

    @composite("lerp")
    def lerp(self, end, weight):
        """self + weight * (end - self)."""
        return self + (end - self) * weight

    def clamp_min(self, min):  # noqa: A002
        return self.clamp(min=min)

    def clamp_max(self, max):  # noqa: A002
        return self.clamp(max=max)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def relu(self):
        return ops.Relu.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def leaky_relu(self, slope: float = 0.01):
        return ops.LeakyRelu.apply(self, slope=slope)

    def maximum(self, other):
        return self._binary(ops.Maximum, other)

    def minimum(self, other):
        return self._binary(ops.Minimum, other)

    def clamp(self, min=None, max=None):  # noqa: A002  (PyTorch's keyword names)
        """Limit to [min, max]; the gradient passes where min <= x <= max (PyTorch's rule).

        Bounds may be tensors (broadcast against x); they then get the gradient where they are the result.
        """
        if min is None and max is None:
            raise ValueError("clamp: at least one of min= and max= must be given")
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            out = self
            if min is not None:
                out = Tensor.where(out < min, min, out)
            if max is not None:
                out = Tensor.where(out > max, max, out)
            return out
        return ops.Clip.apply(self, lo=min, hi=max)

    clip = clamp

    def square(self):
        return self * self

    def sin(self):
        return ops.Sin.apply(self)

    def cos(self):
        return ops.Cos.apply(self)

    def reciprocal(self):
        return 1.0 / self if _is_float(self.data.dtype) else 1.0 / self.float()

    @composite("rsqrt")
    def rsqrt(self):
        return self.sqrt().reciprocal()

    # step functions: the gradient is zero (PyTorch's convention), but it does flow as zeros
    def floor(self):
        return self if not _is_float(self.data.dtype) else ops.Step.apply(self, fn=np.floor)

    def ceil(self):
        return self if not _is_float(self.data.dtype) else ops.Step.apply(self, fn=np.ceil)

    def trunc(self):
        return self if not _is_float(self.data.dtype) else ops.Step.apply(self, fn=np.trunc)

    def round(self, decimals: int = 0):
        """Round half to even, as torch.round (and NumPy)."""
        if not _is_float(self.data.dtype):
            return self
        # decimals as a plain param, not a functools.partial made per call: compile compares the params of two steps
        return ops.Step.apply(self, fn=np.round) if decimals == 0 else ops.Step.apply(self, fn=np.round,
                                                                                     decimals=decimals)

    def sign(self):
        return ops.Step.apply(self, fn=np.sign)

    @_static_or_method
    def where(cond, a, b) -> Tensor:
        """Elementwise `a if cond else b`; the gradient flows to a and b, not cond.

        Tensor.where(cond, a, b) as torch.where; x.where(cond, other) as torch's Tensor.where (x where cond).
        """
        if not isinstance(cond, Tensor):
            cond = Tensor._const(np.asarray(cond, dtype=bool))
        elif cond.data.dtype != bool_:
            cond = ops.Detached.apply(cond, fn=np.asarray, dtype=bool_)
        if not isinstance(a, Tensor):  # a scalar side takes the tensor side's dtype
            a = b._lift(a) if isinstance(b, Tensor) else Tensor(a)
        if not isinstance(b, Tensor):
            b = a._lift(b)
        if a.data.dtype != b.data.dtype:
            a, b = _promote(a, b)
        return ops.Where.apply(a, b, cond)

    def matmul(self, other) -> Tensor:
        """Matrix product with NumPy's matmul rules (batching, broadcasting, 1-D)."""
        other = self._lift(other)
        a, b = self, other
        if a.data.dtype != b.data.dtype:
            a, b = _promote(a, b)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least one dimension, got shapes {a.shape} and {b.shape}")
        k = b.shape[-2] if b.ndim >= 2 else b.shape[0]
        if a.shape[-1] != k:  # checked here so the message names the caller's shapes, not the 1-D reshapes
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} don't match ({a.shape[-1]} != {k})")
        if a.ndim >= 2 and b.ndim >= 2:
            return ops.Matmul.apply(a, b)
        # 1-D operands: promote to matrices, multiply, drop the added axis
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        out = ops.Matmul.apply(a2, b2)
        if a.ndim == 1 and b.ndim == 1:
            return out.reshape(())
        return out.squeeze(-2 if a.ndim == 1 else -1)

    dot = matmul

    def linear(self, weight, bias=None) -> Tensor:
        """self @ weight.T + bias, with weight (out, in) as in nn.Linear; no transpose is materialised."""
        if weight.ndim != 2 or self.ndim < 2 or self.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input {self.shape} and weight {weight.shape} don't fit "
                             f"(need input (..., in) and weight (out, in))")
        if weight.dtype != self.dtype or (bias is not None and (bias.dtype != self.dtype or bias.ndim > 1)):
            out = ops.Matmul.apply(*_promote(self, weight), tb=True)  # mixed dtypes: the general path
            out = out if bias is None else out + bias
            if out._ctx is not None:
                _tag_call("linear", (self, weight, bias), None, [out])
            return out
        # one op, the whole call: Linear names itself `linear` (call_name), no tagging cost per step
        return ops.Linear.apply(self, weight) if bias is None else ops.Linear.apply(self, weight, bias)

    @composite("outer")
    def outer(self, other):
        if self.ndim != 1 or other.ndim != 1:
            raise ValueError(f"outer: needs two 1-D tensors, got shapes {self.shape} and {np.shape(other)}")
        return self.reshape(-1, 1) * other.reshape(1, -1)

    ger = outer

    def mm(self, other):
        if self.ndim != 2 or np.ndim(other) != 2:
            raise ValueError(f"mm: needs two matrices, got shapes {self.shape} and {np.shape(other)} "
                             f"(matmul broadcasts)")
        return self.matmul(other)

    def bmm(self, other):
        if self.ndim != 3 or np.ndim(other) != 3 or self.shape[0] != np.shape(other)[0]:
            raise ValueError(f"bmm: needs two (B, n, m) batches of the same B, got shapes {self.shape} and "
                             f"{np.shape(other)}")
        return self.matmul(other)

    def mv(self, vec):
        if self.ndim != 2 or np.ndim(vec) != 1:
            raise ValueError(f"mv: needs a matrix and a vector, got shapes {self.shape} and {np.shape(vec)}")
        return self.matmul(vec)


# ndarray (left) op Tensor (right): what NumPy's operator hands to Tensor.__array_ufunc__, and the Tensor's answer
# (the methods as written here, before attach copies them onto Tensor)
_REFLECTED = {
    np.add: Arithmetic.__radd__, np.subtract: Arithmetic.__rsub__, np.multiply: Arithmetic.__rmul__,
    np.true_divide: Arithmetic.__rtruediv__, np.power: Arithmetic.__rpow__, np.matmul: Arithmetic.__rmatmul__,
    np.floor_divide: Arithmetic.__rfloordiv__, np.remainder: Arithmetic.__rmod__,
    np.bitwise_and: Arithmetic.__rand__, np.bitwise_or: Arithmetic.__ror__, np.bitwise_xor: Arithmetic.__rxor__,
    np.less: Arithmetic.__gt__, np.less_equal: Arithmetic.__ge__, np.greater: Arithmetic.__lt__,
    np.greater_equal: Arithmetic.__le__, np.equal: Arithmetic.__eq__, np.not_equal: Arithmetic.__ne__,
}
