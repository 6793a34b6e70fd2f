"""The primitive ops, each with its gradient rule next to it.

`forward` computes on ndarrays.  `backward` receives the output's gradient as
a Tensor and returns one gradient per input (None where an input needs none),
written with Tensor operations: that is what lets a gradient be differentiated
again (create_graph=True).  Broadcasting is undone by the engine, which sums
each returned gradient down to its input's shape, so binary ops here simply
return the broadcast gradient.

Masks and weights that depend only on which branch was taken (relu, max,
abs, ...) have a derivative that is zero almost everywhere.  They are never
computed with NumPy behind the graph's back: a gradient rule builds every
array with a primitive (`MaskMul`, `ReluGrad`, `Detached`, ...), so
tinygrad_mnist.compile can record and replay a whole step (issue 12).

`saves_inputs = False` marks ops whose backward never reads an input's
values (only shapes, dtypes, requires_grad): after backward releases the
graph they can be backpropagated again.  See Function's docstring.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os

import numpy as np

from .engine import Function, Tensor, is_grad_enabled, rng


def const(arr) -> Tensor:
    """A 0-d constant (from a Python number): baked into a recording; any other array must come from a primitive."""
    return Tensor._const(np.asarray(arr))


# ---------------------------------------------------------------------------
# arrays without a gradient, made by primitives (so capture records them)
# ---------------------------------------------------------------------------


class Detached(Function):
    """fn(*input arrays, *args, **kw) as a result outside the graph: comparisons, masks, indices, counts.

    The NumPy a Tensor method or a gradient rule would otherwise compute behind the
    graph's back (`x > 0`, argmax, isnan, ...), as a recorded op.  `fn` must be a
    module-level function or ufunc and `args`/`kw` plain values (they are baked into a
    recording).  The result never requires grad, whatever the inputs.
    """

    saves_inputs = False

    def forward(self, *arrays, fn, args=(), **kw):
        out = fn(*arrays, *args, **kw)
        return out if type(out) is np.ndarray else np.asarray(out)

    @classmethod
    def apply(cls, *inputs, **params) -> Tensor:
        out = super().apply(*inputs, **params)
        out._ctx = None  # never part of the graph: no gradient flows through a comparison or an index
        out._requires_grad = False
        return out

    def backward(self, g):  # pragma: no cover - never recorded in a graph
        raise RuntimeError("Detached ops have no gradient")


class MaskMul(Function):
    """g * mask(*xs, **kw): a gradient times weights that depend only on which branch the forward took.

    Equals the composite ``g * Detached.apply(*xs, fn=mask, **kw)`` (cast to g's dtype) in one op.
    mask returns bools or float weights (abs's sign, a shared tie, leaky relu's slope).  Piecewise
    constant in xs, so only g gets a gradient back: the same product of gg (grad of grad works).
    """

    def forward(self, g, *xs, mask, **kw):
        self.mask, self.kw = mask, kw
        self.saves_inputs = tuple(range(1, len(xs) + 1))  # the backward's MaskMul re-reads the xs, not g
        w = mask(*xs, **kw)
        return g * w if w.dtype == np.bool_ or w.dtype == g.dtype else g * w.astype(g.dtype)

    def backward(self, gg):
        g, *xs = self.parents
        return (MaskMul.apply(gg, *xs, mask=self.mask, **self.kw) if g._requires_grad else None,) + (None,) * len(xs)


class ReluGrad(Function):
    """g * (x > 0): Relu's gradient as one op (MaskMul with the mask `x > 0`, without the params' cost).

    Equals ``g * (x > 0)``; itself differentiable in g (grad of grad), zero in x.
    """

    saves_inputs = (1,)

    def forward(self, g, x):
        return g * (x > 0)  # float * bool stays float (no cast pass)

    def backward(self, gg):
        g, x = self.parents
        return (ReluGrad.apply(gg, x) if g._requires_grad else None), None


class Full(Function):
    """An array of `shape` filled with `value` (a Python number), made inside a step (a seed of ones, ...)."""

    saves_inputs = False

    def forward(self, shape, value, dtype):
        return np.full(shape, value, dtype)

    def backward(self, g):  # pragma: no cover - no inputs, never recorded
        return ()


class OneHot(Function):
    """Integer labels (any shape) -> rows of `num_classes` with a 1 at each label, in `dtype`.

    The labels must be checked first (nn.functional.check_class_indices): NumPy would
    wrap a negative label around instead of failing.
    """

    saves_inputs = False

    def forward(self, labels, num_classes, dtype):
        flat = labels.reshape(-1)
        if flat.size and flat.min() < 0:  # a replay's labels were never checked: fail rather than wrap around
            raise IndexError(f"one-hot: label {flat.min()} is out of range for {num_classes} classes")
        out = np.zeros((flat.size, num_classes), dtype)
        out[np.arange(flat.size), flat] = 1
        return out.reshape(*labels.shape, num_classes)

    def backward(self, g):  # pragma: no cover - labels never require grad
        return (None,)


class Random(Function):
    """draw(engine.rng(), *arrays, **kw): random numbers drawn when the op runs, so a replay draws fresh ones in
    eager order.

    `draw` is a module-level function (the factories randn, rand, randint, randperm, multinomial use it); a
    `generator=` parameter (a tinygrad_mnist.Generator) is read by `draw` when it runs, like engine.rng().
    Inputs (multinomial's weights) only parameterise the draw: the result never requires grad.
    """

    def forward(self, *arrays, draw, **kw):
        return draw(rng(), *arrays, **kw)

    @classmethod
    def apply(cls, *inputs, **params) -> Tensor:
        out = super().apply(*inputs, **params)
        out._ctx, out._requires_grad = None, False  # samples carry no gradient (a no-input draw records none)
        return out

    def backward(self, g):  # pragma: no cover - never recorded
        return ()


class DropoutMask(Function):
    """keep / (1 - p) with keep = U[0, 1) >= p, drawn from engine.rng() when the op runs (in eager order).

    No inputs: a replay draws fresh numbers from the same generator, in the same order as eager.
    """

    def forward(self, shape, p, dtype):
        keep = rng().random(shape, dtype=np.float32) >= p
        return (keep * (1.0 / (1.0 - p))).astype(dtype)

    def backward(self, g):  # pragma: no cover - no inputs, never recorded
        return ()


# ---------------------------------------------------------------------------
# elementwise, binary (inputs broadcast like NumPy)
# ---------------------------------------------------------------------------


class Add(Function):
    saves_inputs = False  # backward needs the inputs' shapes, not their values

    def forward(self, x, y):
        return x + y

    def backward(self, g):
        return g, g


class Sub(Function):
    saves_inputs = False

    def forward(self, x, y):
        return x - y

    def backward(self, g):
        return g, (-g if self.parents[1]._requires_grad else None)


class Mul(Function):
    def forward(self, x, y):
        return x * y

    def backward(self, g):  # g has the inputs' dtype: Mul.apply directly, not through Tensor.__mul__
        x, y = self.parents
        return (Mul.apply(g, y) if x._requires_grad else None), (Mul.apply(g, x) if y._requires_grad else None)


class Div(Function):
    def forward(self, x, y):
        return x / y

    def backward(self, g):
        x, y = self.parents
        gx = g / y if x._requires_grad else None
        gy = -(g * x) / (y * y) if y._requires_grad else None
        return gx, gy


class Pow(Function):
    def forward(self, x, y):
        return np.power(x, y)

    def backward(self, g):
        x, y = self.parents
        gx = g * y * x ** (y - 1) if x._requires_grad else None
        gy = g * x ** y * x.log() if y._requires_grad else None
        return gx, gy


class PowConst(Function):
    """x ** c for a Python number c: cheaper than Pow, whose exponent is a tensor."""

    def forward(self, x, c):
        self.c = c
        return np.square(x) if c == 2 else np.power(x, x.dtype.type(c) if x.dtype.kind == "f" else c)

    def backward(self, g):
        x, c = self.parents[0], self.c
        if c == 2:
            return ((g * x) * 2,)
        return (g * x ** (c - 1) * c,)


class Maximum(Function):
    """Ties split the gradient equally, as in PyTorch."""

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
    wins = staticmethod(np.less)

    def forward(self, x, y):
        return np.minimum(x, y)


class Where(Function):
    """a where cond else b; cond is a bool tensor input (never requires grad)."""

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
    saves_inputs = False

    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


class Exp(Function):
    saves_inputs = False
    saves_output = True
    saves_inputs = False

    def forward(self, x):
        return np.exp(x)

    def backward(self, g):
        return (g * self.output(),)


class Log(Function):
    def forward(self, x):
        return np.log(x)

    def backward(self, g):
        return (g / self.parents[0],)


class Log1p(Function):
    def forward(self, x):
        return np.log1p(x)

    def backward(self, g):
        return (g / (self.parents[0] + 1.0),)


class Expm1(Function):
    saves_output = True
    saves_inputs = False

    def forward(self, x):
        return np.expm1(x)

    def backward(self, g):
        return (g * (self.output() + 1.0),)


class Sqrt(Function):
    saves_inputs = False
    saves_output = True
    saves_inputs = False

    def forward(self, x):
        return np.sqrt(x)

    def backward(self, g):
        return (g / (self.output() * 2),)


class Erf(Function):
    """The error function (for exact GELU); NumPy has none, so math.erf per element."""

    def forward(self, x):
        return _erf(x).astype(x.dtype, copy=False)

    def backward(self, g):  # erf'(x) = 2/sqrt(pi) exp(-x^2), in Tensor ops so it differentiates again
        x = self.parents[0]
        return (g * (-(x * x)).exp() * (2.0 / math.sqrt(math.pi)),)


_erf = np.vectorize(math.erf, otypes=[np.float64])


class Abs(Function):
    def forward(self, x):
        return np.abs(x)

    def backward(self, g):  # abs'(0) = 0
        return (MaskMul.apply(g, self.parents[0], mask=np.sign),)


class Relu(Function):
    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, g):  # relu'(0) = 0
        return (ReluGrad.apply(g, self.parents[0]),)


class LeakyRelu(Function):
    def forward(self, x, slope):
        self.slope = slope
        return np.where(x > 0, x, x * x.dtype.type(slope))

    def backward(self, g):  # the slope at 0, as PyTorch
        return (MaskMul.apply(g, self.parents[0], mask=_leaky_slope, slope=self.slope),)


def _leaky_slope(x, slope):
    return np.where(x > 0, 1, slope)


class Sigmoid(Function):
    saves_inputs = False
    saves_output = True
    saves_inputs = False

    def forward(self, x):
        # the tanh form never overflows, unlike 1 / (1 + exp(-x))
        half = x.dtype.type(0.5)
        out = np.tanh(x * half)
        out *= half
        out += half
        return out

    def backward(self, g):
        return (SigmoidGrad.apply(g, self.output()),)


class SigmoidGrad(Function):
    """g * s * (1 - s): Sigmoid's gradient as one op, itself differentiable (grad of grad)."""

    def forward(self, g, s):
        return g * s * (1 - s)

    def backward(self, gg):
        g, s = self.parents
        return (gg * (s * (1 - s)) if g._requires_grad else None), (gg * g * (1 - 2 * s) if s._requires_grad else None)


class Tanh(Function):
    saves_inputs = False
    saves_output = True
    saves_inputs = False

    def forward(self, x):
        return np.tanh(x)

    def backward(self, g):
        return (TanhGrad.apply(g, self.output()),)


class TanhGrad(Function):
    """g * (1 - t^2): Tanh's gradient as one op, itself differentiable (grad of grad)."""

    def forward(self, g, t):
        return g * (1 - t * t)

    def backward(self, gg):
        g, t = self.parents
        return (gg * (1 - t * t) if g._requires_grad else None), (gg * g * t * -2 if t._requires_grad else None)


class Clip(Function):
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
    def forward(self, x):
        return np.sin(x)

    def backward(self, g):
        return (g * self.parents[0].cos(),)


class Cos(Function):
    def forward(self, x):
        return np.cos(x)

    def backward(self, g):
        return (-(g * self.parents[0].sin()),)


class Step(Function):
    """floor, ceil, round, trunc, sign: piecewise constant, so the gradient is zero (as PyTorch)."""

    saves_inputs = False

    def forward(self, x, fn, **kw):
        return fn(x, **kw)

    def backward(self, g):
        return (const(np.zeros((), g.dtype)).expand(g.shape),)


class Clone(Function):
    """A copy in new memory (Tensor.clone); the gradient passes through unchanged."""

    saves_inputs = False

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return (g,)


class Cast(Function):
    saves_inputs = False

    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, g):
        return (g.cast(self.parents[0].dtype),)


# ---------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------


def _keep_shape(shape, axis):
    """`shape` with the reduced axes kept as size 1."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else s for i, s in enumerate(shape))


class Sum(Function):
    saves_inputs = False

    def forward(self, x, axis, keepdim):
        self.axis = axis
        return np.add.reduce(x, axis=axis, keepdims=keepdim)  # np.sum minus its Python-level dispatch

    def backward(self, g):
        shape = self.parents[0].shape
        if g.ndim and g.ndim != len(shape):  # reduced axes were dropped: put them back as size 1
            g = Reshape.apply(g, shape=_keep_shape(shape, self.axis))
        return (Expand.apply(g, shape=shape),)


class Max(Function):
    """Gradient split equally among tied maxima (PyTorch's rule for max/min/amax)."""

    saves_output = True
    reduce = np.maximum.reduce

    def forward(self, x, axis, keepdim):
        self.axis = axis
        extremum = self.reduce(x, axis=axis, keepdims=True)
        return extremum if keepdim else extremum.reshape(np.sum(extremum, axis=axis).shape)

    def backward(self, g):
        x = self.parents[0]
        keep = _keep_shape(x.shape, self.axis)
        return (MaskMul.apply(g.reshape(keep), x, self.output(), mask=_shares, keep=keep, axis=self.axis),)


def _shares(x, extremum, keep, axis):
    """1 where x equals its row's extremum, 1/k for each of k ties (ties share the gradient equally)."""
    extremum = extremum.reshape(keep)
    hit = x == extremum
    if np.count_nonzero(hit) == extremum.size:  # no ties (one count tells): a 0/1 mask
        return hit
    weight = hit.astype(x.dtype)
    weight /= np.add.reduce(weight, axis=axis, keepdims=True)
    return weight


class Min(Max):
    reduce = np.minimum.reduce


class Prod(Function):
    """Product along one axis.

    d prod / d x_i is the product of the other entries (ProdOthers): out / x_i
    when no entry is zero, else from cumulative products from both sides.  When the
    gradient itself is recorded (create_graph=True) it is written with tensor ops,
    out / x_i, so it can be differentiated again: not where the input has zeros.
    """

    def forward(self, x, axis):
        self.axis = axis
        return np.prod(x, axis=axis)

    def backward(self, g):
        x = self.parents[0]
        g = g.unsqueeze(self.axis)
        if not is_grad_enabled():
            return (ProdGrad.apply(g, x, axis=self.axis),)
        if not np.all(x.data != 0):  # a check only (it raises): the rule below is the same either way
            raise NotImplementedError("prod: grad of grad (create_graph=True) is not supported where the input "
                                      "has zeros; compute the product with exp(log(...)) or mask the zeros")
        return (g * Prod.apply(x, axis=self.axis).unsqueeze(self.axis) / x,)


class ProdGrad(Function):
    """Prod's gradient g * (product of the other entries along axis), as one op (g has axis kept as 1).

    Equals the composite ``g * Prod(x).unsqueeze(axis) / x`` where x has no zeros; with zeros the
    products of the others come from cumulative products from both sides.  Used only when the
    gradient is not itself recorded (create_graph=False), so it needs no gradient of its own.
    """

    def forward(self, g, x, axis):
        if np.all(x != 0):
            return g * np.expand_dims(np.prod(x, axis=axis), axis) / x
        a = np.moveaxis(x, axis, -1)
        ones = np.ones(a.shape[:-1] + (1,), a.dtype)
        left = np.cumprod(np.concatenate([ones, a[..., :-1]], -1), -1)  # product of the entries before i
        right = np.cumprod(np.concatenate([ones, a[..., :0:-1]], -1), -1)[..., ::-1]  # and after i
        return g * np.moveaxis(left * right, -1, axis)

    def backward(self, gg):  # pragma: no cover - applied only with grad mode off
        raise NotImplementedError("ProdGrad is applied only when the gradient is not recorded")


class Cumsum(Function):
    """Running sum along an axis (reverse: from the end); its adjoint is the running sum the other way."""

    saves_inputs = False

    def forward(self, x, axis, reverse):
        self.axis, self.reverse = axis, reverse
        if reverse:
            return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis).copy()
        return np.cumsum(x, axis=axis)

    def backward(self, g):
        return (Cumsum.apply(g, axis=self.axis, reverse=not self.reverse),)


class Cumprod(Function):
    """Running product along an axis.  d out_j / d x_i = out_j / x_i for j >= i, so the gradient is the
    reverse running sum of g * out, divided by x: tensor ops, differentiable again.  Inputs with zeros
    would need a different rule; they raise instead of returning a wrong gradient."""

    saves_output = True

    def forward(self, x, axis):
        self.axis = axis
        return np.cumprod(x, axis=axis)

    def backward(self, g):
        x = self.parents[0]
        if not np.all(x.data != 0):
            raise NotImplementedError("cumprod: the gradient at inputs equal to 0 is not supported; "
                                      "mask the zeros or compute the products another way")
        return (Cumsum.apply(g * self.output(), axis=self.axis, reverse=True) / x,)


class Einsum(Function):
    """np.einsum for explicit subscripts (spec = (input subscripts, output subscripts)).

    The gradient for operand k is itself an einsum: of g and the other operands, to operand k's
    subscripts; letters summed in operand k alone come back by broadcasting.
    """

    def forward(self, *xs, spec):
        self.spec = spec
        ins, out = spec
        return np.asarray(np.einsum(",".join(ins) + "->" + out, *xs, optimize=len(xs) > 2))

    def backward(self, g):
        ins, out = self.spec
        grads = []
        for k, p in enumerate(self.parents):
            if not p._requires_grad:
                grads.append(None)
                continue
            sk = ins[k]
            if len(set(sk)) != len(sk):
                raise NotImplementedError(f"einsum: no gradient through a repeated index within one operand "
                                          f"({sk!r}, a diagonal); use Tensor.diagonal instead")
            others = [j for j in range(len(ins)) if j != k]
            avail = set(out).union(*[ins[j] for j in others])
            keep = "".join(c for c in sk if c in avail)
            gk = Einsum.apply(g, *[self.parents[j] for j in others], spec=((out, *[ins[j] for j in others]), keep))
            if keep != sk:  # broadcast along the letters only this operand had
                gk = gk.reshape(tuple(n if c in avail else 1 for c, n in zip(sk, p.shape))).expand(p.shape)
            grads.append(gk)
        return tuple(grads)


class LogSoftmax(Function):
    saves_inputs = False
    saves_output = True
    saves_inputs = False

    def forward(self, x, axis):
        self.axis = axis
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))

    def backward(self, g):
        softmax = self.output().exp()
        return (g - softmax * g.sum(self.axis, keepdim=True),)


class CrossEntropy(Function):
    """Softmax cross-entropy of logits (N, C) against class indices (N,) or target probabilities (N, C), in one op.

    A primitive for speed: the loss of every training step.  The target is a tensor
    input that gets no gradient.  Class indices are used as the one-hot rows they
    stand for (ops.OneHot), without making them: the loss picks -log p of the label,
    the gradient subtracts 1 there.  The gradient is (softmax(x) - target) scaled
    by the reduction; forward keeps it as an array, which CrossEntropyGrad reads.
    When the backward itself is recorded (create_graph=True), softmax is recomputed
    with tensor ops so the gradient stays differentiable.
    """

    saved = ("dlogits",)

    def forward(self, x, target, reduction):
        self.reduction = reduction
        shifted = x - np.max(x, axis=1, keepdims=True)
        logp = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        if target.ndim == 1:  # class indices, checked by the caller (a replay's are not: negatives must not wrap)
            if len(target) and target.min() < 0:
                raise IndexError(f"cross_entropy: label {target.min()} is out of range for {x.shape[1]} classes")
            rows = np.arange(len(x))
            losses = -logp[rows, target]  # = -sum(logp * one_hot) exactly: the other terms are zeros
            self.dlogits = np.exp(logp)  # d(sum of losses)/dx = softmax - one_hot
            self.dlogits[rows, target] -= 1
        else:
            losses = -np.sum(logp * target, axis=1)
            self.dlogits = np.exp(logp) - target
        self.scale = 1.0 / max(len(x), 1) if reduction == "mean" else 1.0
        if reduction != "none":
            losses = np.sum(losses) * x.dtype.type(self.scale)
        return losses

    def backward(self, g):
        if not is_grad_enabled():
            return CrossEntropyGrad.apply(g, of=self), None
        x, target = self.parents  # building a graph of the gradient: keep softmax differentiable
        if target.ndim == 1:
            target = OneHot.apply(target, num_classes=x.shape[1], dtype=x.dtype)
        d = x.softmax(axis=1) - target
        if self.reduction == "none":
            return d * g.reshape(-1, 1), None
        return d * (g * self.scale), None


class CrossEntropyGrad(Function):
    """CrossEntropy's gradient when it is not itself recorded, as one op: the forward's stored
    softmax(x) - target, times g (per row for reduction "none", else g times 1/N or 1).

    Equals the composite ``(x.softmax(1) - target) * (g * scale)`` (``* g.reshape(-1, 1)`` for
    "none").  `of` is the CrossEntropy op whose forward stored the array: read at forward time,
    so a replay, which re-runs that forward first, reads fresh values.
    """

    saves_inputs = False

    def forward(self, g, of):
        if of.reduction == "none":
            return of.dlogits * g.reshape(-1, 1)
        return of.dlogits * (g * g.dtype.type(of.scale))

    def backward(self, gg):  # pragma: no cover - applied only with grad mode off
        raise NotImplementedError("CrossEntropyGrad is applied only when the gradient is not recorded")


# ---------------------------------------------------------------------------
# shape and movement
# ---------------------------------------------------------------------------


class Reshape(Function):
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
    """The same values, stored with the axes in memory `order` (outermost first); identity for gradients."""

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
    saves_inputs = False

    def forward(self, x, order):
        self.order = order
        return x.transpose(order)

    def backward(self, g):
        return (g.permute(tuple(np.argsort(self.order))),)


class Expand(Function):
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
    """Sum the broadcast axes of x away to reach `shape` (the adjoint of Expand)."""

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
    """x[index]; index arrays come as tensor inputs after x (see split_index), or (older callers) in index."""

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
    """

    saves_inputs = (1,)

    def forward(self, x, idx, axis):
        self.axis = axis
        return x[_along(idx, axis)]

    def backward(self, g):
        x, idx = self.parents
        return ScatterAdd.apply(g, idx, axis=self.axis, shape=x.shape), None


class ScatterAdd(Function):
    """zeros(shape) with g[i][j] added at [idx[i][j]][j] for axis 0 (repeats accumulate): Gather's adjoint."""

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

    Index arrays come as tensor inputs after g, as GetItem's."""

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


# ---------------------------------------------------------------------------
# linear algebra and convolution windows
# ---------------------------------------------------------------------------


class Matmul(Function):
    """Batched matrix product of operands with ndim >= 2 (Tensor.matmul reshapes 1-D cases).

    `ta`/`tb` multiply by the transpose of the last two axes of x/y instead:
    BLAS reads the transpose in place, and every gradient below is then one
    product with no transpose op of its own.
    """

    def forward(self, x, y, ta=False, tb=False):
        self.ta, self.tb = ta, tb
        return np.matmul(x.swapaxes(-1, -2) if ta else x, y.swapaxes(-1, -2) if tb else y)

    def backward(self, g):
        x, y = self.parents
        ta, tb = self.ta, self.tb
        gx = gy = None
        # d/dA of op(A) @ op(B), transposed back when op(A) = A^T.  An operand stored transposed
        # (h @ W.T: W.T's data is W's memory read column-first) gets its gradient computed in that
        # layout too, as the transpose of a product: the gradient it hands back to W is then W's
        # own C-order array instead of a transposing copy (~3x the GEMM's time for a 784x512 W).
        if x._requires_grad:
            if ta or (_transposed_2d(x.data) and y.ndim == 2):
                gx = Matmul.apply(y, g, ta=tb, tb=True)
                gx = gx if ta else gx.T
            else:
                gx = Matmul.apply(g, y, tb=not tb)
        if y._requires_grad:
            if tb or (_transposed_2d(y.data) and x.ndim == 2):
                gy = Matmul.apply(g, x, ta=True, tb=ta)
                gy = gy if tb else gy.T
            else:
                gy = Matmul.apply(x, g, ta=not ta)
        return gx, gy


def _transposed_2d(a: np.ndarray) -> bool:
    """A matrix whose transpose is C-contiguous (and that is not C-contiguous itself)."""
    return a.ndim == 2 and not a.flags.c_contiguous and a.flags.f_contiguous


class Linear(Function):
    """x @ w.T + b (nn.Linear's forward) as one op: one node instead of three, the bias added in place."""

    saves_inputs = (0, 1)  # the bias's value is never read back
    call_name = "linear"  # Tensor.linear is this one op: its call record is made only when looked at

    def call_output_shape(self):
        x, w = self.parents[:2]
        return tuple(x.shape[:-1]) + (w.shape[0],)

    def forward(self, x, w, b=None):
        out = np.matmul(x, w.T)
        if b is not None:
            out += b
        return out

    def backward(self, g):
        x, w = self.parents[:2]
        gx = Matmul.apply(g, w) if x._requires_grad else None
        gw = Matmul.apply(g, x, ta=True) if w._requires_grad else None
        if len(self.parents) == 2:
            return gx, gw
        b = self.parents[2]
        return gx, gw, (g.sum_to(b.shape) if b._requires_grad else None)


class Unfold(Function):
    """im2col: (N, C, H, W) -> (C, kh, kw, N, OH, OW), every kh x kw window at the given stride.

    Window offsets first, positions last: a convolution is then one GEMM
    (O, C*kh*kw) @ (C*kh*kw, N*OH*OW) with a long contiguous inner dimension,
    and pooling reduces over the leading axis, elementwise across slabs.
    """

    saves_inputs = False

    def forward(self, x, kernel, stride):
        self.kernel, self.stride = kernel, stride
        win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))
        win = win[:, :, ::stride[0], ::stride[1]]  # (N, C, OH, OW, kh, kw), a view
        return np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3))

    def backward(self, g):
        return (Fold.apply(g, shape=self.parents[0].shape, kernel=self.kernel, stride=self.stride),)


@functools.lru_cache(maxsize=64)
def _placement(k: int, o: int, stride: int, length: int, dtype: str) -> np.ndarray:
    """0/1 matrix (k*o, length): row (i, q) has its one at q*stride + i, where window q's offset i lands."""
    m = np.zeros((k, o, length), dtype)
    i, q = np.arange(k)[:, None], np.arange(o)[None, :]
    m[i, q, q * stride + i] = 1
    return m.reshape(k * o, length)


class Fold(Function):
    """col2im: the adjoint of Unfold; overlapping windows add up.

    Each spatial axis is folded by one matrix product with a 0/1 placement
    matrix that adds every (offset, window) value onto its pixel: two GEMMs,
    no loops over pixels or kernel offsets.
    """

    saves_inputs = False

    def forward(self, cols, shape, kernel, stride):
        self.kernel, self.stride = kernel, stride
        c, kh, kw, n, oh, ow = cols.shape
        h, w = shape[2:]
        dt = cols.dtype.str
        # width first: (C, kh, N, OH, kw*OW) is the cheaper copy of the two orders
        a = cols.transpose(0, 1, 3, 4, 2, 5).reshape(-1, kw * ow) @ _placement(kw, ow, stride[1], w, dt)
        a = a.reshape(c, kh, n, oh, w).transpose(0, 2, 4, 1, 3).reshape(-1, kh * oh)
        a = a @ _placement(kh, oh, stride[0], h, dt)  # (C*N*W, H)
        return a.reshape(c, n, w, h).transpose(1, 0, 3, 2)

    def backward(self, gg):
        return (Unfold.apply(gg, kernel=self.kernel, stride=self.stride),)


# ---------------------------------------------------------------------------
# convolution and pooling as whole ops
#
# Inside these ops images live in (C, H, W, N) memory order: with the batch
# last, every kernel offset (i, j) addresses one slab x[:, i:i+OH, j:j+OW, :]
# whose rows are OW*N contiguous numbers, so im2col, col2im and the pooling
# windows are kh*kw long, fast copies or adds, and the convolution GEMM writes
# its (O, OH*OW*N) result straight into that order.  Callers see NCHW: the
# results are transposed views, and the next op reads the memory order through
# the strides (NumPy's elementwise ops keep it).  A user's NCHW array costs one
# small transposing copy on the way in.
# ---------------------------------------------------------------------------


# The copies, adds and comparisons around the GEMMs run on one core in NumPy while BLAS uses
# them all.  They can be split into contiguous chunks (of channels) run side by side in a few
# threads (NumPy releases the GIL inside them); each element is computed by the same kernel as in
# one piece, so results are the same bit for bit with any number of threads.  Off by default: on
# its own col2im runs ~1.8x faster on 2 free cores, but inside a training step OpenBLAS's idle
# worker thread keeps spinning on the other core for tens of ms after every GEMM, and a whole CNN
# step measured no faster (2-core machine).  `set_num_threads(n)` turns it on (it may pay where
# BLAS runs one thread, OPENBLAS_NUM_THREADS=1; not measured in a whole step).
_num_threads = 1
_PARALLEL_MIN = 1 << 20  # elements: below ~1M a thread hand-off (~40 us) costs more than it saves
_pool = None
_pool_pid = None


def set_num_threads(n: int) -> None:
    """How many threads the conv/pool ops split their big copies over (default 1: never split); BLAS keeps its own."""
    global _num_threads
    if int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    _num_threads = int(n)


def get_num_threads() -> int:
    return _num_threads


def _parallel(fn, n: int, size: int) -> None:
    """Run fn(lo, hi) over contiguous chunks of range(n), side by side when `size` elements of work
    are worth it.  The chunks must write disjoint parts of the result."""
    global _pool, _pool_pid
    k = min(_num_threads, n)
    if k < 2 or size < _PARALLEL_MIN:
        fn(0, n)
        return
    if _pool_pid != os.getpid():  # first use, or a forked child: its parent's threads don't exist here
        _pool, _pool_pid = concurrent.futures.ThreadPoolExecutor(_num_threads - 1), os.getpid()
    bounds = [n * i // k for i in range(k + 1)]
    rest = [_pool.submit(fn, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    fn(bounds[0], bounds[1])
    for f in rest:
        f.result()


def _chwn(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (C, H, W, N), a view."""
    return x.transpose(1, 2, 3, 0)


def _nchw(x: np.ndarray) -> np.ndarray:
    """(C, H, W, N) -> (N, C, H, W), a view."""
    return x.transpose(3, 0, 1, 2)


def _out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _window(i: int, j: int, oh: int, ow: int, stride) -> tuple:
    """Index of the slab of a (C, H, W, N) array that kernel offset (i, j) reads for every output pixel."""
    sh, sw = stride
    return slice(None), slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)


def _padded_chwn(x: np.ndarray, padding, value=0) -> np.ndarray:
    """x (N, C, H, W) as a C-contiguous (C, H+2ph, W+2pw, N) array (a view when it already is one)."""
    ph, pw = padding
    xc = _chwn(x)
    if not (ph or pw):
        return xc if xc.flags.c_contiguous else np.ascontiguousarray(xc)
    c, h, w, n = xc.shape
    out = np.full((c, h + 2 * ph, w + 2 * pw, n), value, x.dtype) if value else \
        np.zeros((c, h + 2 * ph, w + 2 * pw, n), x.dtype)
    out[:, ph:ph + h, pw:pw + w] = xc
    return out


def _im2col(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Columns (C*kh*kw, OH*OW*N) of x (N, C, H, W): one copy per kernel offset."""
    xp = _padded_chwn(x, padding)
    (kh, kw), (c, h, w, n) = kernel, xp.shape
    oh, ow = (h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1
    cols = np.empty((c, kh, kw, oh, ow, n), x.dtype)

    def channels(lo, hi):
        for i in range(kh):
            for j in range(kw):
                cols[lo:hi, i, j] = xp[lo:hi][_window(i, j, oh, ow, stride)]

    _parallel(channels, c, cols.size)  # (one channel, the image entering the net: fast as it is)
    return cols.reshape(c * kh * kw, oh * ow * n)


_BAND_BYTES = 2 << 20  # columns made and added back at a time by _conv_transpose


def _conv_transpose(wt: np.ndarray, g: np.ndarray, shape, kernel, stride, padding) -> np.ndarray:
    """Columns ``wt @ g`` (wt (C*kh*kw, O), g (O, OH*OW*N)) added back onto an (N, C, H, W) image
    (col2im, the adjoint of _im2col; overlapping windows add up).

    Done in bands of output rows, each band's GEMM result added in while it is still in cache (~2 MB
    of columns at a time, not all of them at once: one GEMM + col2im of the demo CNN's second layer
    takes ~15% less CPU).  The bands run bottom to top, so each pixel still receives its kernel
    offsets in the order (i, j) ascending: the same sums, bit for bit, as one GEMM then one col2im.
    """
    n, c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    hp, wp = h + 2 * ph, w + 2 * pw
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = np.zeros((c, hp, wp, n), g.dtype)
    per_row = ow * n  # columns of one output row
    band = max(1, _BAND_BYTES // (wt.shape[0] * per_row * g.itemsize))
    for y0 in reversed(range(0, oh, band)):
        r = min(band, oh - y0)
        cols = (wt @ g[:, y0 * per_row:(y0 + r) * per_row]).reshape(c, kh, kw, r, ow, n)

        def channels(lo, hi, cols=cols, rows=slice(y0 * sh, y0 * sh + sh * (r - 1) + 1, sh)):
            part, cs = out[lo:hi], cols[lo:hi]
            for i in range(kh):
                for j in range(kw):
                    part[:, rows.start + i:rows.stop + i:sh, j:j + sw * (ow - 1) + 1:sw] += cs[:, i, j]

        _parallel(channels, c, cols.size)
    return _nchw(out[:, ph:ph + h, pw:pw + w] if ph or pw else out)


def _rows(g: np.ndarray) -> np.ndarray:
    """An (N, O, OH, OW) gradient as the (O, OH*OW*N) matrix the GEMMs use (free in (C, H, W, N) order)."""
    gc = _chwn(g)
    return gc.reshape(gc.shape[0], -1)


class Conv2d(Function):
    """conv2d of x (N, C, H, W) with w (O, C, kh, kw) and an optional bias (O,), as one op.

    Fused for speed; it equals the composite
    ``x.pad(...).unfold2d(kernel, stride)`` -> ``w.reshape(O, -1) @ cols`` -> ``+ b`` -> reshape and
    permute to NCHW (tests/test_conv_pool.py checks values and gradients against it).  The
    forward's columns are kept for the weight gradient; the input gradient is
    ConvTranspose2d (one GEMM and a col2im) and is skipped for inputs that need none, such as
    the image entering the first layer.  Every gradient is itself one of these three ops, so
    gradients of gradients work.
    """

    saved = ("cols",)

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0)):
        self.stride, self.padding = stride, padding
        o, kernel = w.shape[0], w.shape[2:]
        cols = _im2col(x, kernel, stride, padding)
        self.cols = cols  # reused by the weight gradient
        out = w.reshape(o, -1) @ cols  # (O, OH*OW*N): one GEMM
        if b is not None:
            out += b[:, None]  # in place
        oh = _out_size(x.shape[2], kernel[0], stride[0], padding[0])
        ow = _out_size(x.shape[3], kernel[1], stride[1], padding[1])
        return _nchw(out.reshape(o, oh, ow, x.shape[0]))

    def backward(self, g):
        x, w = self.parents[:2]
        geometry = {"stride": self.stride, "padding": self.padding}
        gx = ConvTranspose2d.apply(g, w, shape=x.shape, **geometry) if x._requires_grad else None
        # the columns reach the weight gradient through this op (read when it runs), never as an array param
        gw = Conv2dWeightGrad.apply(x, g, kernel=w.shape[2:], conv=self, **geometry) \
            if w._requires_grad else None
        if len(self.parents) == 2:
            return gx, gw
        b = self.parents[2]
        return gx, gw, (g.sum((0, 2, 3)) if b._requires_grad else None)


class ConvTranspose2d(Function):
    """The input gradient of Conv2d: g (N, O, OH, OW) and w (O, C, kh, kw) -> (N, C, H, W).

    Equals the transpose of the composite's im2col GEMM: ``Fold(w.reshape(O, -1).T @ g)``.
    Linear in g and in w; its own gradients are a Conv2d and a Conv2dWeightGrad.
    """

    def forward(self, g, w, shape, stride, padding):
        self.shape, self.stride, self.padding = shape, stride, padding
        o = w.shape[0]
        return _conv_transpose(w.reshape(o, -1).T, _rows(g), shape, w.shape[2:], stride, padding)

    def backward(self, gg):
        g, w = self.parents
        geometry = {"stride": self.stride, "padding": self.padding}
        dg = Conv2d.apply(gg, w, **geometry) if g._requires_grad else None
        dw = Conv2dWeightGrad.apply(gg, g, kernel=w.shape[2:], **geometry) if w._requires_grad else None
        return dg, dw


class Conv2dWeightGrad(Function):
    """The weight gradient of Conv2d: x (N, C, H, W) and g (N, O, OH, OW) -> (O, C, kh, kw).

    Equals the composite's ``g.reshape(O, -1) @ unfold(x).T``: one GEMM over the columns.  `conv`
    is the Conv2d whose gradient this is: its forward kept x's columns, read here when this op
    runs (a replay re-runs that forward first, so they are fresh).  Linear in x and in g.
    """

    def forward(self, x, g, kernel, stride, padding, conv=None):
        self.kernel, self.stride, self.padding = kernel, stride, padding
        cols = None if conv is None else conv.cols
        if cols is None:
            cols = _im2col(x, kernel, stride, padding)
        # (C*kh*kw, O) = cols @ g^T, reshaped (copied) to (O, C, kh, kw): BLAS runs this orientation
        # of the long-K product ~20% faster than g @ cols^T (1 and 2 threads, the demo's conv layers)
        gw = (cols @ _rows(g).T).T
        return gw.reshape(gw.shape[0], x.shape[1], *kernel)

    def backward(self, ggw):
        x, g = self.parents
        geometry = {"stride": self.stride, "padding": self.padding}
        dx = ConvTranspose2d.apply(g, ggw, shape=x.shape, **geometry) if x._requires_grad else None
        dg = Conv2d.apply(x, ggw, **geometry) if g._requires_grad else None
        return dx, dg


def _pad_hw(x: np.ndarray, padding, value) -> np.ndarray:
    """Pad the H and W axes of (N, C, H, W), keeping x's memory order."""
    ph, pw = padding
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    out = _empty_in(_layout(x), (n, c, h + 2 * ph, w + 2 * pw), x.dtype, fill=value)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


class _PoolGeometry:
    """Windows of a 2-D pooling over (N, C, H, W): kernel, stride, padding and the slab of each offset.

    Equal by value (a recording compares the params of two calls)."""

    def __init__(self, shape, kernel, stride, padding):
        self.shape, self.kernel, self.stride, self.padding = shape, kernel, stride, padding
        n, c, h, w = shape
        self.padded = (n, c, h + 2 * padding[0], w + 2 * padding[1])
        self.out = (n, c, (self.padded[2] - kernel[0]) // stride[0] + 1,
                    (self.padded[3] - kernel[1]) // stride[1] + 1)
        self.overlap = kernel[0] > stride[0] or kernel[1] > stride[1]
        # the windows cover every padded pixel exactly once (2x2 pooling of an even image)
        self.tiles = kernel == stride and self.out[2] * kernel[0] == self.padded[2] \
            and self.out[3] * kernel[1] == self.padded[3]

    def _key(self):
        return self.shape, self.kernel, self.stride, self.padding

    def __eq__(self, other):
        return isinstance(other, _PoolGeometry) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "_PoolGeometry(shape={}, kernel={}, stride={}, padding={})".format(*self._key())

    def slabs(self):
        """For each kernel offset, the index of the (N, C, OH, OW) slab of the padded input it reads."""
        (kh, kw), (sh, sw), (oh, ow) = self.kernel, self.stride, self.out[2:]
        return [(slice(None), slice(None), slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
                for i in range(kh) for j in range(kw)]

    def unpad(self, a: np.ndarray) -> np.ndarray:
        (ph, pw), (h, w) = self.padding, self.shape[2:]
        return a[:, :, ph:ph + h, pw:pw + w] if ph or pw else a


def _low(dtype):
    """Max pooling's padding value: below every value of the dtype."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _tie_shares(hits: np.ndarray, dtype):
    """Max pooling's weight of each window offset from the 0/1 hits (k, N, C, OH, OW): the hits
    themselves, or where k > 1 offsets tie for the max, 1/k for each (Tensor.max's tie rule)."""
    if np.count_nonzero(hits) == hits[0].size:
        return hits
    count = hits.sum(0, dtype=np.uint16 if len(hits) > 255 else np.uint8)
    return hits * np.reciprocal(count, dtype=dtype)


def _weight(weights, k: int, scale, dtype):
    """The multiplier of window offset k: a slab of the weights, or the scalar scale."""
    return dtype.type(scale) if weights is None else weights[k]


class PoolHits(Function):
    """Which window offsets hold the max: bool (kh*kw, N, C, OH, OW), `x`'s window slab == `out`.

    Max pooling's gradient routes each output gradient to these offsets (PoolScatter/PoolGather
    with the hits as weights).  A 0/1 mask: its own derivative is zero, so its gradient is None.
    """

    saves_inputs = False

    def forward(self, x, out, geometry):
        xp = _pad_hw(x, geometry.padding, _low(x.dtype))
        slabs = geometry.slabs()
        hits = _empty_in(_layout(out), out.shape, np.bool_, lead=(len(slabs),))
        for k, slab in enumerate(slabs):
            np.equal(xp[slab], out, out=hits[k])
        return hits

    def backward(self, g):
        return None, None


class PoolGather(Function):
    """out = sum over the window offsets k of weight_k * (window slab k of x): a weighted 2-D pooling.

    With no weights and `scale` 1/(kh*kw) it is avg_pool2d (zero padding counted, as PyTorch's
    default); it equals the composite ``x.pad(...).unfold2d(...)`` -> ``.mean(0)``.  With the hits
    of max pooling (PoolHits, a second input) the weights are their tie-sharing shares.
    Linear in x; the gradient is PoolScatter.
    """

    saves_inputs = (1,)  # the hits, when given; x's value is never read back

    def forward(self, x, hits=None, geometry=None, scale=1.0):
        self.geometry, self.scale, self.layout = geometry, scale, _layout(x)
        weights = None if hits is None else _tie_shares(hits, x.dtype)
        xp = _pad_hw(x, geometry.padding, 0)
        out = _empty_in(_layout(x), geometry.out, x.dtype)
        for k, slab in enumerate(geometry.slabs()):
            wk = _weight(weights, k, scale, x.dtype)
            if k == 0:
                np.multiply(xp[slab], wk, out=out)
            else:
                out += xp[slab] * wk
        return out

    def backward(self, g):
        hits = self.parents[1] if len(self.parents) > 1 else None
        inputs = (g,) if hits is None else (g, hits)
        gx = PoolScatter.apply(*inputs, geometry=self.geometry, scale=self.scale, layout=self.layout)
        return (gx,) if hits is None else (gx, None)


class PoolScatter(Function):
    """The adjoint of PoolGather: each output gradient times weight_k goes back to window slab k.

    Overlapping windows add up; the result has the pooled input's shape (N, C, H, W), its axes in
    memory in the order `layout`.  Linear in g; the gradient is PoolGather.
    """

    saves_inputs = (1,)

    def forward(self, g, hits=None, geometry=None, scale=1.0, layout=(0, 1, 2, 3)):
        self.geometry, self.scale = geometry, scale
        weights = None if hits is None else _tie_shares(hits, g.dtype)
        out = _empty_in(layout, geometry.padded, g.dtype, fill=None if geometry.tiles else 0)
        relayout = _memory_order(g) != _memory_order(out)  # one copy, not a mixed-layout op per offset
        buf = _empty_in(layout, g.shape, g.dtype) if relayout else g
        slabs = geometry.slabs()

        def channels(lo, hi):
            gc = buf[:, lo:hi]
            if relayout:
                gc[...] = g[:, lo:hi]
            for k, slab in enumerate(slabs):
                wk = _weight(weights, k, scale, g.dtype)
                wk = wk if weights is None else wk[:, lo:hi]
                if geometry.overlap:
                    out[slab][:, lo:hi] += gc * wk
                else:  # disjoint windows: write each slab once
                    np.multiply(gc, wk, out=out[slab][:, lo:hi])

        _parallel(channels, g.shape[1], out.size)
        return geometry.unpad(out)

    def backward(self, gg):
        hits = self.parents[1] if len(self.parents) > 1 else None
        inputs = (gg,) if hits is None else (gg, hits)
        dg = PoolGather.apply(*inputs, geometry=self.geometry, scale=self.scale)
        return (dg,) if hits is None else (dg, None)


class MaxPool2d(Function):
    """Max over each 2-D window of x (N, C, H, W), padding with -inf; ties share the gradient equally.

    Equals the composite ``x.pad(..., value=-inf).unfold2d(...)`` -> ``.max(0)`` (Tensor.max's tie
    rule).  One elementwise maximum per window offset; the gradient is MaxPoolGrad (PoolScatter
    weighted by PoolHits: which offsets hold the max, found by comparing each slab with the result).
    """

    saves_output = True

    def forward(self, x, geometry):
        self.geometry, self.layout = geometry, _layout(x)
        xp = _pad_hw(x, geometry.padding, _low(x.dtype))
        slabs = geometry.slabs()
        out = _empty_in(self.layout, geometry.out, x.dtype)
        np.maximum(xp[slabs[0]], xp[slabs[1]], out=out) if len(slabs) > 1 else np.copyto(out, xp[slabs[0]])
        for slab in slabs[2:]:
            np.maximum(out, xp[slab], out=out)
        return out

    def backward(self, g):
        return (MaxPoolGrad.apply(g, self.parents[0], self.output(), geometry=self.geometry, layout=self.layout),)


class MaxPoolGrad(Function):
    """Max pooling's input gradient: g (N, C, OH, OW) routed to the window offsets where x (N, C, H, W)
    held the max `out`, tied maxima sharing.  The result has x's shape and memory order (`layout`).

    Equals ``PoolScatter(g, PoolHits(x, out))``, fused: one pass over chunks of channels (split
    across threads) makes each chunk's hits and uses them while they are in cache.  Linear in g;
    its gradient is PoolGather with the hits; x and out get none (the hits are a 0/1 choice).
    """

    saves_inputs = (1, 2)  # x and out; g's value is never read back

    def forward(self, g, x, out, geometry, layout):
        self.geometry = geometry
        xp = _pad_hw(x, geometry.padding, _low(x.dtype))
        slabs = geometry.slabs()
        dst = _empty_in(layout, geometry.padded, g.dtype, fill=None if geometry.tiles else 0)
        relayout = _memory_order(g) != _memory_order(dst)  # one copy, not a mixed-layout op per offset
        buf = _empty_in(layout, g.shape, g.dtype) if relayout else g

        if geometry.tiles:  # windows tile the image: one compare, one multiply over (N, C, OH, kh, OW, kw) views
            (kh, kw), (n, c, oh, ow) = geometry.kernel, out.shape
            six = (n, c, oh, kh, ow, kw)
            x6, d6 = xp.reshape(six, copy=False), dst.reshape(six, copy=False)
            h6 = _empty_in(layout, geometry.padded, np.bool_).reshape(six, copy=False)

            def tiles(lo, hi):
                gc, h = buf[:, lo:hi], h6[:, lo:hi]
                if relayout:
                    gc[...] = g[:, lo:hi]
                np.equal(x6[:, lo:hi], out[:, lo:hi, :, None, :, None], out=h)
                if np.count_nonzero(h) != gc.size:  # ties share: g/k to each of k tied maxima (as _tie_shares)
                    gc = gc * np.reciprocal(h.sum((3, 5), dtype=np.uint16 if kh * kw > 255 else np.uint8),
                                            dtype=g.dtype)  # scaling g, not the hits: a 1/(kh*kw) size temporary
                np.multiply(gc[:, :, :, None, :, None], h, out=d6[:, lo:hi])

            _parallel(tiles, g.shape[1], dst.size)
            return geometry.unpad(dst)

        def channels(lo, hi):
            gc, h = buf[:, lo:hi], hits[:, :, lo:hi]
            if relayout:
                gc[...] = g[:, lo:hi]
            for k, slab in enumerate(slabs):
                np.equal(xp[slab][:, lo:hi], out[:, lo:hi], out=h[k])
            shares = _tie_shares(h, g.dtype)  # elementwise: the same whatever the chunks
            for k, slab in enumerate(slabs):
                if geometry.overlap:
                    dst[slab][:, lo:hi] += gc * shares[k]
                else:  # disjoint windows: write each slab once
                    np.multiply(gc, shares[k], out=dst[slab][:, lo:hi])

        hits = _empty_in(_layout(out), out.shape, np.bool_, lead=(len(slabs),))
        _parallel(channels, g.shape[1], dst.size)
        return geometry.unpad(dst)

    def backward(self, gg):
        g, x, out = self.parents
        hits = PoolHits.apply(x, out, geometry=self.geometry)
        return PoolGather.apply(gg, hits, geometry=self.geometry), None, None
