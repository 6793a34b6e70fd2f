"""Elementwise primitives: binary (inputs broadcast like NumPy) and unary, each with its gradient rule.
"""

from __future__ import annotations

import math

import numpy as np

from ..engine import Function
from .factories import const
from .fused import MaskMul, ReluGrad, SigmoidGrad, TanhGrad

# ---------------------------------------------------------------------------
# elementwise, binary (inputs broadcast like NumPy)
# ---------------------------------------------------------------------------


class Add(Function):
    """x + y, broadcasting as NumPy.

    Gradient: dx = g, dy = g (the engine sums each back to its input's shape).
    """

    saves_inputs = False  # backward needs the inputs' shapes, not their values

    def forward(self, x, y):
        return x + y

    def backward(self, g):
        return g, g


class Sub(Function):
    """x - y, broadcasting as NumPy.

    Gradient: dx = g, dy = -g.
    """

    saves_inputs = False

    def forward(self, x, y):
        return x - y

    def backward(self, g):
        return g, (-g if self.parents[1]._requires_grad else None)


class Mul(Function):
    """x · y, broadcasting as NumPy.

    Gradient: dx = g · y, dy = g · x.
    """

    def forward(self, x, y):
        return x * y

    def backward(self, g):  # g has the inputs' dtype: Mul.apply directly, not through Tensor.__mul__
        x, y = self.parents
        return (Mul.apply(g, y) if x._requires_grad else None), (Mul.apply(g, x) if y._requires_grad else None)


class Div(Function):
    """x / y, broadcasting as NumPy.

    Gradient: dx = g / y, dy = -g · x / y².
    """

    def forward(self, x, y):
        return x / y

    def backward(self, g):
        x, y = self.parents
        gx = g / y if x._requires_grad else None
        gy = -(g * x) / (y * y) if y._requires_grad else None
        return gx, gy


class Pow(Function):
    """x ** y with a tensor exponent y.

    Gradient: dx = g · y · x^(y-1), dy = g · x^y · ln x.
    """

    def forward(self, x, y):
        return np.power(x, y)

    def backward(self, g):
        x, y = self.parents
        gx = g * y * x ** (y - 1) if x._requires_grad else None
        gy = g * x ** y * x.log() if y._requires_grad else None
        return gx, gy


class PowConst(Function):
    """x ** c for a Python number c: cheaper than Pow, whose exponent is a tensor.

    Gradient: dx = g · c · x^(c-1) (2 · g · x for c = 2).
    """

    def forward(self, x, c):
        self.c = c
        return np.square(x) if c == 2 else np.power(x, x.dtype.type(c) if x.dtype.kind == "f" else c)

    def backward(self, g):
        x, c = self.parents[0], self.c
        if c == 2:
            return ((g * x) * 2,)
        return (g * x ** (c - 1) * c,)


class Maximum(Function):
    """max(x, y) elementwise. Ties split the gradient equally, as in PyTorch.

    Gradient: dx = g · ([x > y] + ½ [x = y]), dy = g · ([y > x] + ½ [x = y]).
    """

    wins = staticmethod(np.greater)

    def forward(self, x, y):
        return np.maximum(x, y)

    def backward(self, g):
        x, y = self.parents
        gx = MaskMul.apply(g, x, y, mask=_wins, wins=self.wins) if x._requires_grad else None
        gy = MaskMul.apply(g, y, x, mask=_wins, wins=self.wins) if y._requires_grad else None
        return gx, gy


def _wins(x, y, wins):
    """1 where x wins against y, 0.5 at ties, else 0 (a 0/1 mask when nothing ties: as cheap as relu's)."""
    win = wins(x, y)
    tie = x == y
    return win if not tie.any() else win + 0.5 * tie


class Minimum(Maximum):
    """min(x, y) elementwise; ties split the gradient equally, as in PyTorch.

    Gradient: dx = g · ([x < y] + ½ [x = y]), dy = g · ([y < x] + ½ [x = y]).
    """

    wins = staticmethod(np.less)

    def forward(self, x, y):
        return np.minimum(x, y)


class Where(Function):
    """a where cond else b; cond is a bool tensor input (never requires grad).

    Gradient: da = g · [cond], db = g · [not cond]; cond gets none.
    """

    saves_inputs = (2,)  # only cond's value is read back

    def forward(self, a, b, cond):
        return np.where(cond, a, b)

    def backward(self, g):
        zero = const(np.zeros((), g.dtype))
        a, b, cond = self.parents
        ga = Where.apply(g, zero, cond) if a._requires_grad else None
        gb = Where.apply(zero, g, cond) if b._requires_grad else None
        return ga, gb, None


# ---------------------------------------------------------------------------
# elementwise, unary
# ---------------------------------------------------------------------------


class Neg(Function):
    """-x.

    Gradient: dx = -g.
    """

    saves_inputs = False

    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


class Exp(Function):
    """y = exp(x).

    Gradient: dx = g · y (reads the output, not the input).
    """

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return np.exp(x)

    def backward(self, g):
        return (g * self.output(),)


class Log(Function):
    """ln x.

    Gradient: dx = g / x.
    """

    def forward(self, x):
        return np.log(x)

    def backward(self, g):
        return (g / self.parents[0],)


class Log1p(Function):
    """ln(1 + x), exact for small x.

    Gradient: dx = g / (1 + x).
    """

    def forward(self, x):
        return np.log1p(x)

    def backward(self, g):
        return (g / (self.parents[0] + 1.0),)


class Expm1(Function):
    """y = exp(x) - 1, exact for small x.

    Gradient: dx = g · (y + 1).
    """

    saves_output = True
    saves_inputs = False

    def forward(self, x):
        return np.expm1(x)

    def backward(self, g):
        return (g * (self.output() + 1.0),)


class Sqrt(Function):
    """y = √x.

    Gradient: dx = g / (2y).
    """

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return np.sqrt(x)

    def backward(self, g):
        return (g / (self.output() * 2),)


class Erf(Function):
    """The error function (for exact GELU); NumPy has none, so math.erf per element.

    Gradient: dx = g · (2/√π) · exp(-x²).
    """

    def forward(self, x):
        return _erf(x).astype(x.dtype, copy=False)

    def backward(self, g):  # erf'(x) = 2/sqrt(pi) exp(-x^2), in Tensor ops so it differentiates again
        x = self.parents[0]
        return (g * (-(x * x)).exp() * (2.0 / math.sqrt(math.pi)),)


_erf = np.vectorize(math.erf, otypes=[np.float64])


class Abs(Function):
    """|x|.

    Gradient: dx = g · sign(x) (abs'(0) = 0, as PyTorch).
    """

    def forward(self, x):
        return np.abs(x)

    def backward(self, g):  # abs'(0) = 0
        return (MaskMul.apply(g, self.parents[0], mask=np.sign),)


class Relu(Function):
    """max(x, 0).

    Gradient: dx = g · [x > 0] (relu'(0) = 0, as PyTorch), one ReluGrad op.
    """

    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, g):  # relu'(0) = 0
        return (ReluGrad.apply(g, self.parents[0]),)


class LeakyRelu(Function):
    """x where x > 0, else slope · x.

    Gradient: dx = g · (1 where x > 0, else slope) (the slope at 0, as PyTorch).
    """

    def forward(self, x, slope):
        self.slope = slope
        return np.where(x > 0, x, x * x.dtype.type(slope))

    def backward(self, g):  # the slope at 0, as PyTorch
        return (MaskMul.apply(g, self.parents[0], mask=_leaky_slope, slope=self.slope),)


def _leaky_slope(x, slope):
    return np.where(x > 0, 1, slope)


class Sigmoid(Function):
    """y = σ(x) = 1 / (1 + exp(-x)), computed as ½ tanh(x/2) + ½ (never overflows).

    Gradient: dx = g · y · (1 - y), one SigmoidGrad op.
    """

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        # the tanh form never overflows, unlike 1 / (1 + exp(-x))
        half = x.dtype.type(0.5)
        out = np.tanh(x * half)
        out *= half
        out += half
        return out

    def backward(self, g):
        return (SigmoidGrad.apply(g, self.output()),)


class Tanh(Function):
    """y = tanh(x).

    Gradient: dx = g · (1 - y²), one TanhGrad op.
    """

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return np.tanh(x)

    def backward(self, g):
        return (TanhGrad.apply(g, self.output()),)


class Clip(Function):
    """x clipped to [lo, hi] (either bound may be None).

    Gradient: dx = g · [lo ≤ x ≤ hi] (the gradient passes at the bounds, as PyTorch's clamp).
    """

    def forward(self, x, lo, hi):
        self.lo, self.hi = lo, hi
        return np.clip(x, lo, hi).astype(x.dtype, copy=False)

    def backward(self, g):  # gradient passes where lo <= x <= hi, as PyTorch's clamp
        if self.lo is None and self.hi is None:
            return (g,)
        return (MaskMul.apply(g, self.parents[0], mask=_inside, lo=self.lo, hi=self.hi),)


def _inside(x, lo, hi):
    inside = None if lo is None else x >= lo
    if hi is not None:
        inside = x <= hi if inside is None else inside & (x <= hi)
    return inside


class Sin(Function):
    """sin x.

    Gradient: dx = g · cos x.
    """

    def forward(self, x):
        return np.sin(x)

    def backward(self, g):
        return (g * self.parents[0].cos(),)


class Cos(Function):
    """cos x.

    Gradient: dx = -g · sin x.
    """

    def forward(self, x):
        return np.cos(x)

    def backward(self, g):
        return (-(g * self.parents[0].sin()),)


class Step(Function):
    """floor, ceil, round, trunc, sign: piecewise constant, so the gradient is zero (as PyTorch).

    Gradient: dx = 0.
    """

    saves_inputs = False

    def forward(self, x, fn, **kw):
        return fn(x, **kw)

    def backward(self, g):
        return (const(np.zeros((), g.dtype)).expand(g.shape),)


class Clone(Function):
    """A copy in new memory (Tensor.clone); the gradient passes through unchanged.

    Gradient: dx = g.
    """

    saves_inputs = False

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return (g,)


class Cast(Function):
    """x converted to `dtype`.

    Gradient: dx = g converted back to x's dtype.
    """

    saves_inputs = False

    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, g):
        return (g.cast(self.parents[0].dtype),)
