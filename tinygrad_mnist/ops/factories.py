"""Arrays made inside a step without a gradient: constants, fills, one-hots, random draws,
and Detached (a comparison, mask or index as a recorded op, so tinygrad_mnist.compile replays it).
"""

from __future__ import annotations

import numpy as np

from ..engine import Function, Tensor, rng


def const(arr) -> Tensor:
    """A 0-d constant (from a Python number): baked into a recording; any other array must come from a primitive."""
    return Tensor._const(np.asarray(arr))


class Detached(Function):
    """fn(*input arrays, *args, **kw) as a result outside the graph: comparisons, masks, indices, counts.

    The NumPy a Tensor method or a gradient rule would otherwise compute behind the
    graph's back (`x > 0`, argmax, isnan, ...), as a recorded op.  `fn` must be a
    module-level function or ufunc and `args`/`kw` plain values (they are baked into a
    recording).  The result never requires grad, whatever the inputs.

    Gradient: none: the result never requires grad (a comparison, a mask or an index carries no gradient).
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


class Full(Function):
    """An array of `shape` filled with `value` (a Python number), made inside a step (a seed of ones, ...).

    Gradient: none (no inputs).
    """

    saves_inputs = False

    def forward(self, shape, value, dtype):
        return np.full(shape, value, dtype)

    def backward(self, g):  # pragma: no cover - no inputs, never recorded
        return ()


class OneHot(Function):
    """Integer labels (any shape) -> rows of `num_classes` with a 1 at each label, in `dtype`.

    The labels must be checked first (nn.functional.check_class_indices): NumPy would
    wrap a negative label around instead of failing.

    Gradient: none (integer labels).
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

    Gradient: none: samples carry no gradient (inputs only parameterise the draw).
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

    Gradient: none (no inputs).
    """

    def forward(self, shape, p, dtype):
        keep = rng().random(shape, dtype=np.float32) >= p
        return (keep * (1.0 / (1.0 - p))).astype(dtype)

    def backward(self, g):  # pragma: no cover - no inputs, never recorded
        return ()
