"""Ops fused for speed: each equals a composite of the primitives (its docstring says which),
and a test proves they agree in value and gradient (tests/test_ops_fused.py).

Mostly gradient rules as one op (ReluGrad, MaskMul, SigmoidGrad, ...), the softmax cross-entropy
loss of every training step, and nn.Linear's forward.
"""

from __future__ import annotations

import numpy as np

from ..engine import Function, is_grad_enabled
from .factories import OneHot
from .matmul import Matmul


class MaskMul(Function):
    """g * mask(*xs, **kw): a gradient times weights that depend only on which branch the forward took.

    Equals the composite ``g * Detached.apply(*xs, fn=mask, **kw)`` (cast to g's dtype) in one op.
    mask returns bools or float weights (abs's sign, a shared tie, leaky relu's slope).  Piecewise
    constant in xs, so only g gets a gradient back: the same product of gg (grad of grad works).

    Gradient: dg = MaskMul(gg, xs) (the same weights); the xs get none (the weights are piecewise constant in them).
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

    Gradient: dg = gg · [x > 0]; x gets none.
    """

    saves_inputs = (1,)

    def forward(self, g, x):
        return g * (x > 0)  # float * bool stays float (no cast pass)

    def backward(self, gg):
        g, x = self.parents
        return (ReluGrad.apply(gg, x) if g._requires_grad else None), None


class SigmoidGrad(Function):
    """g * s * (1 - s): Sigmoid's gradient as one op, itself differentiable (grad of grad).

    Equals the composite ``g * s * (1 - s)``.

    Gradient: dg = gg · s · (1 - s), ds = gg · g · (1 - 2s).
    """

    def forward(self, g, s):
        return g * s * (1 - s)

    def backward(self, gg):
        g, s = self.parents
        return (gg * (s * (1 - s)) if g._requires_grad else None), (gg * g * (1 - 2 * s) if s._requires_grad else None)


class TanhGrad(Function):
    """g * (1 - t^2): Tanh's gradient as one op, itself differentiable (grad of grad).

    Equals the composite ``g * (1 - t * t)``.

    Gradient: dg = gg · (1 - t²), dt = -2 · gg · g · t.
    """

    def forward(self, g, t):
        return g * (1 - t * t)

    def backward(self, gg):
        g, t = self.parents
        return (gg * (1 - t * t) if g._requires_grad else None), (gg * g * t * -2 if t._requires_grad else None)


class ProdGrad(Function):
    """Prod's gradient g * (product of the other entries along axis), as one op (g has axis kept as 1).

    Equals the composite ``g * Prod(x).unsqueeze(axis) / x`` where x has no zeros; with zeros the
    products of the others come from cumulative products from both sides.  Used only when the
    gradient is not itself recorded (create_graph=False), so it needs no gradient of its own.

    Gradient: none: applied only when the gradient is not itself recorded (create_graph=False).
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


class CrossEntropy(Function):
    """Softmax cross-entropy of logits (N, C) against class indices (N,) or target probabilities (N, C), in one op.

    A primitive for speed: the loss of every training step.  The target is a tensor
    input that gets no gradient.  Class indices are used as the one-hot rows they
    stand for (ops.OneHot), without making them: the loss picks -log p of the label,
    the gradient subtracts 1 there.  The gradient is (softmax(x) - target) scaled
    by the reduction; forward keeps it as an array, which CrossEntropyGrad reads.
    When the backward itself is recorded (create_graph=True), softmax is recomputed
    with tensor ops so the gradient stays differentiable.

    Equals the composite ``-(x.log_softmax(1) * t).sum(1)`` reduced by `reduction` (the mean over rows, the sum, or
    none), t the one-hot rows of the labels or the target probabilities.

    Gradient: dx = (softmax(x) - t) · g, scaled by 1/N for the mean and per row for reduction "none" (t: the labels'
    one-hot rows or the target probabilities); the target gets none.
    """

    saved = ("dlogits",)

    def forward(self, x, target, reduction):
        self.reduction = reduction
        # np.maximum.reduce / np.add.reduce: np.max / np.sum without their Python layer (every training step)
        shifted = x - np.maximum.reduce(x, axis=1, keepdims=True)
        logp = shifted - np.log(np.add.reduce(np.exp(shifted), axis=1, keepdims=True))
        if target.ndim == 1:  # class indices, checked by the caller (a replay's are not: negatives must not wrap)
            if len(target) and np.minimum.reduce(target) < 0:
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
            losses = np.add.reduce(losses, axis=None) * x.dtype.type(self.scale)
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

    Gradient: none: applied only when the gradient is not itself recorded (create_graph=False).
    """

    saves_inputs = False

    def forward(self, g, of):
        if of.reduction == "none":
            return of.dlogits * g.reshape(-1, 1)
        return of.dlogits * (g * g.dtype.type(of.scale))

    def backward(self, gg):  # pragma: no cover - applied only with grad mode off
        raise NotImplementedError("CrossEntropyGrad is applied only when the gradient is not recorded")


class Linear(Function):
    """x @ w.T + b (nn.Linear's forward) as one op: one node instead of three, the bias added in place.

    Equals the composite ``x @ w.T + b``.

    Gradient: dx = g @ w, dw = gᵀ @ x, db = Σ of g over the rows (each one Matmul or SumTo).
    """

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
