"""The optimizers' updates as primitives: one Function per rule, whose forward writes the new values into
the parameters' arrays (and the state arrays) in place.

An optimizer calls its primitive once per parameter group, through `.apply` under no_grad, with the
inputs p0, g0, <state of p0>, p1, g1, <state of p1>, ... (k arrays per parameter; one op for the whole
group costs less than one per parameter, as torch's "foreach" updates).  Nothing is recorded in a graph,
but `tinygrad_mnist.compile` sees each update as an op of the step and replays it by calling forward
again on the same arrays.  Forward reads the hyperparameters from the parameter group (the optimizer's
own dict, held by a GroupRef) each time it runs, so a learning rate a scheduler sets between steps is
the one used, eager or replayed.  Forward returns the first parameter's array (the op's output means
nothing else).

The arithmetic is the optimizers' original in-place NumPy, step for step (same operations, same order,
same dtypes): results are bit-identical to it.  There is no backward: an update is not differentiable.
"""

from __future__ import annotations

import math

import numpy as np

from ..engine import Function


class GroupRef:
    """An optimizer's parameter group as an update primitive's parameter: forward reads the
    hyperparameters from `.group` each time it runs.  A plain holder, not the dict itself: compile
    bakes params into the recording and checks that no array or Tensor hides in them, and the
    group's "params" list holds Tensors.  Two refs to the same group are equal."""

    __slots__ = ("group",)

    def __init__(self, group: dict):
        self.group = group

    def __eq__(self, other):
        return type(other) is GroupRef and other.group is self.group

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"GroupRef({ {k: v for k, v in self.group.items() if k != 'params'} })"


class _Update(Function):
    def backward(self, grad):
        raise RuntimeError(f"{self.name}: an optimizer update has no gradient")


class SGDStep(_Update):
    """p -= lr * g for each parameter, with weight decay and momentum / Nesterov; see optim.SGD.

    Per parameter (k = 3): p, g, scratch (a p-sized temporary); with momentum (k = 5) also buf (the
    momentum buffer) and started (a 0-d bool array, False until the first step: that step sets buf = g
    exactly, as PyTorch does, whatever the dampening).
    """

    def forward(self, *arrays, hp, k):
        group = hp.group
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        dampening, nesterov = group["dampening"], group["nesterov"]
        for i in range(0, len(arrays), k):
            p, g, scratch = arrays[i:i + 3]
            dt = p.dtype.type  # Python floats -> the parameter's scalar type: float32 math stays float32
            if wd:
                g = g + dt(wd) * p
            if momentum and k == 5:
                buf, started = arrays[i + 3:i + 5]
                m = dt(momentum)
                if started:  # (truth of a 0-d array: ~20x cheaper than comparing it)
                    buf *= m
                    buf += dt(1 - dampening) * g if dampening else g
                else:
                    buf[...] = g
                    started[...] = True
                g = g + m * buf if nesterov else buf
            p -= np.multiply(g, dt(lr), out=scratch)  # p -= lr * g; g (maybe p.grad) untouched
        return arrays[0]


class AdamStep(_Update):
    """One Adam (decoupled=False) or AdamW (decoupled=True) update of each parameter; see optim.Adam.

    Per parameter: p, g, m (exp_avg), v (exp_avg_sq), t (a 0-d int array: the step counter, incremented
    here; the bias corrections are computed from it, in Python floats as torch does), scratch.
    """

    def forward(self, *arrays, hp, decoupled):
        group = hp.group
        b1, b2 = group["betas"]
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        for i in range(0, len(arrays), 6):
            p, g, m, v, t, scratch = arrays[i:i + 6]
            dt = p.dtype.type
            if wd and decoupled:
                p *= dt(1 - lr * wd)  # AdamW: shrink the weights, apart from the gradient
            elif wd:
                g = g + dt(wd) * p
            step = t.item() + 1
            t[...] = step  # (cheaper than t += 1 on a 0-d array)
            # in-place passes through the kept scratch array: this runs for every parameter on every batch
            tmp = np.multiply(g, dt(1 - b1), out=scratch)
            m *= dt(b1)
            m += tmp  # m = b1 m + (1 - b1) g
            np.multiply(g, g, out=tmp)
            tmp *= dt(1 - b2)
            v *= dt(b2)
            v += tmp  # v = b2 v + (1 - b2) g^2
            denom = np.sqrt(v, out=tmp)
            denom /= dt(math.sqrt(1 - b2 ** step))
            denom += dt(eps)
            upd = np.divide(m, denom, out=tmp)
            upd *= dt(lr / (1 - b1 ** step))
            p -= upd  # p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        return arrays[0]
