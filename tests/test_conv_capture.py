"""conv2d, pooling and linear are capture-sound (TEAM rule 1 and 2 of issue 12's contract).

A throwaway tracer stands in for tinygrad_mnist.compile's recorder: it watches `engine._tracer`
while a forward and backward run, and checks that every array reaching an op is a known one (a
leaf made before the step, the output of an op seen earlier, or a 0-d constant) and that no op
gets an ndarray in its params.  So nothing these ops need in backward (im2col columns, max
pooling's hits) is computed with raw NumPy behind the recording or baked into a param.
Once `tinygrad_mnist.compile` exists, replay must also equal eager bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import strict_compile

from tinygrad_mnist import Function, Tensor, engine, grad, no_grad


def _arrays_in(v):
    if isinstance(v, np.ndarray):
        return [v]
    if isinstance(v, (tuple, list)):
        return [a for x in v for a in _arrays_in(x)]
    if isinstance(v, dict):
        return [a for x in v.values() for a in _arrays_in(x)]
    return []


class Tracer:
    """Records every op's output array; complains about unknown inputs and array params."""

    def __init__(self, leaves):
        self.known = {id(t.data): t.data for t in leaves}  # arrays held, so ids are never reused
        self.problems = []
        self.ops = []

    def leaf(self, t):
        # a leaf made during the step is only known when 0-d (a Python number's constant); one
        # that no op reads (a .grad copy) is harmless, one an op reads is reported in op()
        if not t.data.ndim:
            self.known[id(t.data)] = t.data

    def op(self, ctx, inputs, params, out):
        name = type(ctx).__name__
        self.ops.append(name)
        for i, t in enumerate(inputs):
            if id(t.data) not in self.known and t.data.ndim:
                self.problems.append(f"{name}: input {i} {t.shape} is no step input, leaf or op output")
        for k, v in params.items():
            if _arrays_in(v):
                self.problems.append(f"{name}: param {k!r} holds an ndarray")
        self.known[id(out.data)] = out.data


def traced(fn, leaves):
    tracer = Tracer(leaves)
    engine._tracer = tracer
    try:
        fn()
    finally:
        engine._tracer = None
    assert tracer.problems == []
    return tracer


def _net(x, p, pool):
    # x holds small integers: ties inside the first max pooling's windows.  tanh rather than relu,
    # whose mask is another helper's (rules) part of the contract.
    h = x.max_pool2d(3, stride=1, padding=1)
    h = h.conv2d(p["w1"], p["b1"], stride=1, padding=1).tanh()
    h = h.max_pool2d(2) if pool == "max" else h.avg_pool2d(2)
    h = h.conv2d(p["w2"], p["b2"], stride=2)
    return h.flatten(1).linear(p["fc"], p["fcb"])


def _image(rng):
    return Tensor(rng.integers(-3, 3, (2, 2, 10, 10)).astype(np.float64), requires_grad=True)


def _params(rng):
    shapes = {"w1": (4, 2, 3, 3), "b1": (4,), "w2": (3, 4, 3, 3), "b2": (3,), "fc": (5, 12), "fcb": (5,)}
    return {k: Tensor(rng.standard_normal(s), requires_grad=True) for k, s in shapes.items()}


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_forward_backward_touches_only_recorded_arrays(pool):
    rng = np.random.default_rng(0)
    p = _params(rng)
    x = _image(rng)  # its gradient runs ConvTranspose2d

    def step():
        out = _net(x, p, pool)
        (out * out).sum().backward()

    ops = traced(step, [x, *p.values()]).ops
    assert {"Conv2d", "ConvTranspose2d", "Conv2dWeightGrad", "MaxPoolGrad", "Linear", "Matmul"} <= set(ops)
    assert ("PoolGather" in ops) == (pool == "avg")  # avg pooling's forward; max pooling's is MaxPool2d
    assert ("PoolScatter" in ops) == (pool == "avg")  # avg pooling's gradient; max pooling's is MaxPoolGrad
    assert all(t.grad is not None for t in [x, *p.values()])


def test_grad_of_grad_touches_only_recorded_arrays():
    rng = np.random.default_rng(1)
    p = _params(rng)
    x = _image(rng)

    def step():
        out = _net(x, p, "max")
        gx, gw = grad((out * out).sum(), [x, p["w1"]], create_graph=True)
        ((gx * gx).sum() + (gw * gw).sum()).backward()

    ops = traced(step, [x, *p.values()]).ops
    assert {"PoolHits", "PoolGather"} <= set(ops)  # the gradient of max pooling's gradient (create_graph)
    assert p["w2"].grad is not None and x.grad is not None


def test_matmul_spellings_touch_only_recorded_arrays():
    rng = np.random.default_rng(2)
    w = Tensor(rng.standard_normal((6, 4)), requires_grad=True)
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    x = Tensor(rng.standard_normal((3, 6)), requires_grad=True)

    def step():
        h = (x @ w + b).tanh()
        (h @ w.T + x).sum().backward()

    traced(step, [x, w, b])
    assert w.grad is not None


class _SGDStep(Function):
    """p -= lr * g in place, as a recorded op (what tests/test_compile.py uses, before optim's lands)."""

    def forward(self, p, g, lr):
        p -= p.dtype.type(lr) * g
        return p


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_replay_equals_eager(pool):
    """tinygrad_mnist.compile: 2 recordings then replays of conv/pool/linear steps, bit for bit eager's."""

    def build():
        p = _params(np.random.default_rng(3))

        def step(x):
            for t in p.values():
                t.grad = None
            out = _net(x, p, pool)
            loss = (out * out).sum()
            loss.backward()
            with no_grad():
                for t in p.values():
                    _SGDStep.apply(t, t.grad, lr=0.01)
            return loss

        return p, step

    rng = np.random.default_rng(4)
    xs = [rng.integers(-3, 3, (2, 2, 10, 10)).astype(np.float64) for _ in range(5)]
    pe, eager = build()
    pc, step = build()
    step = strict_compile(step)
    for x in xs:
        le, lc = eager(Tensor(x)), step(Tensor(x))
        assert le.data.tobytes() == lc.data.tobytes()
        for a, b in zip(pe.values(), pc.values()):
            assert a.data.tobytes() == b.data.tobytes() and a.grad.data.tobytes() == b.grad.data.tobytes()
    assert step.replays == 3
