"""Reductions along axes (sum, max/min with shared ties, prod, running sums and products, log-softmax).
"""

from __future__ import annotations

import numpy as np

from ..engine import Function, is_grad_enabled
from .fused import MaskMul, ProdGrad
from .shape import Expand, Reshape


def _keep_shape(shape, axis):
    """`shape` with the reduced axes kept as size 1."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else s for i, s in enumerate(shape))


class Sum(Function):
    """Σ x over `axis` (all axes for None), `keepdim` as NumPy's keepdims.

    Gradient: dx = g broadcast back over the summed axes (Reshape, Expand).
    """

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
    """y = max of x over `axis`; ties share the gradient equally (PyTorch's rule for max/min/amax).

    Gradient split equally among tied maxima (PyTorch's rule for max/min/amax).

    Gradient: dx = g · [x = y] / (number of entries equal to y in the reduced slice).
    """

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
    """y = min of x over `axis`; ties share the gradient equally.

    Gradient: dx = g · [x = y] / (number of entries equal to y in the reduced slice).
    """

    reduce = np.minimum.reduce


class Prod(Function):
    """Product along one axis.

    d prod / d x_i is the product of the other entries (ProdOthers): out / x_i
    when no entry is zero, else from cumulative products from both sides.  When the
    gradient itself is recorded (create_graph=True) it is written with tensor ops,
    out / x_i, so it can be differentiated again: not where the input has zeros.

    Gradient: dx_i = g · Π_{j≠i} x_j (= g · y / x_i where x has no zeros).
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


class Cumsum(Function):
    """Running sum along an axis (reverse: from the end); its adjoint is the running sum the other way.

    Gradient: dx = the running sum of g the other way (from the end for a forward running sum).
    """

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
    would need a different rule; they raise instead of returning a wrong gradient.

    Gradient: dx_i = (Σ_{j≥i} g_j · y_j) / x_i (inputs with zeros raise).
    """

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


class LogSoftmax(Function):
    """y = x - ln Σ exp(x) along `axis` (shifted by the max: never overflows).

    Gradient: dx = g - exp(y) · Σ g along `axis` (exp(y) is softmax(x)).
    """

    saves_inputs = False
    saves_output = True

    def forward(self, x, axis):
        self.axis = axis
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))

    def backward(self, g):
        softmax = self.output().exp()
        return (g - softmax * g.sum(self.axis, keepdim=True),)
