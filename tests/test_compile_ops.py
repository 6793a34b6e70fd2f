"""Every primitive under compile: replaying a step (forward, backward) equals running it eagerly, bit for bit.

The step of each case is a row of the op table (helpers.py): the case's function of
parameter tensors, a backward through it, the output and every gradient returned. Four calls
with new values each time: two recordings, then two replays, compared with four eager calls.
A case may instead be refused with a CaptureError (REFUSED_ON_PURPOSE says which and why); it may
never replay something different from eager.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
from helpers import (
    BINARY_CASES,
    MATMUL_CASES,
    NN_CASES,
    NUMERIC_ONLY_CASES,
    REDUCTION_CASES,
    SCALAR_CASES,
    SHAPE_CASES,
    UNARY_CASES,
    WHERE_CASES,
    make_inputs,
    strict_compile,
)

import tinygrad_mnist as tg
from tinygrad_mnist import CaptureError, Function, Tensor, losses, ops

ALL_CASES = (BINARY_CASES + SCALAR_CASES + UNARY_CASES + WHERE_CASES + REDUCTION_CASES + SHAPE_CASES
             + NUMERIC_ONLY_CASES + MATMUL_CASES + NN_CASES)

CAPTURED: set = set()  # op classes seen in a step that replayed exactly
REFUSED: dict = {}  # case id -> the refusal


def run_case(shapes, fn, init, name, make_args=None):
    """Four calls of a step around fn(*params, *args), compiled and eager; make_args(k) gives call k's arguments."""

    def build():
        return [Tensor(a.astype(np.float32), requires_grad=True) for a in make_inputs(shapes, init, seed=0)]

    pe, pc = build(), build()

    def step_of(ps):
        def step(*args):
            for p in ps:
                p.grad = None
            out = fn(*ps, *args)
            outs = out if isinstance(out, tuple) else (out,)
            if len(outs) == 1 and outs[0].shape == (1, 1):  # a one-element root that is not 0-d: its own seed
                outs[0].backward()
            else:
                loss = sum(((o * o).sum() for o in outs if o.requires_grad), start=tg.zeros(()))
                if loss.requires_grad:
                    loss.backward()
            return outs, tuple(p.grad for p in ps)

        return step

    eager, step = step_of(pe), strict_compile(step_of(pc))
    for k in range(4):
        for a, b, v in zip(pe, pc, make_inputs(shapes, init, seed=k + 1)):  # new values, same memory
            a.data[...] = v
            b.data[...] = v
        args = make_args(k) if make_args else ()
        tg.manual_seed(k)  # random ops (dropout) draw the same numbers in both runs
        (oe, ge) = eager(*args)
        tg.manual_seed(k)
        try:
            (oc, gc) = step(*args)
        except CaptureError as e:
            REFUSED[name] = str(e)
            return None
        for a, b in zip(oe + ge, oc + gc):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape
                assert a.data.tobytes() == b.data.tobytes(), f"call {k}: replay differs from eager"
        for a, b in zip(pe, pc):
            assert a.data.tobytes() == b.data.tobytes()
    assert step.replays == 2
    return step


# Cases refused on purpose, by the start of their id.  Anything else must replay equal to eager.
REFUSED_ON_PURPOSE = {
    # the case builds an ndarray into the step instead of taking it as an argument: replay can't know it is fixed
    **dict.fromkeys(["ndarray-", "tensor-div-ndarray", "where", "cross_entropy-", "mlp"], "an ndarray in the case"),
    "dropout-seeded": "manual_seed inside the step (a Python side effect)",
    # an index list or array written into the step becomes an array no op made: index with a tensor made
    # before the step instead (test_index_tensor_made_before_the_step)
    **dict.fromkeys(["getitem-bool", "getitem-intarray", "getitem-list", "getitem-two-arrays", "getitem-mixed"],
                    "an index array made inside the step"),
}


def refused_on_purpose(name: str) -> bool:
    return any(name.startswith(prefix) for prefix in REFUSED_ON_PURPOSE)


@pytest.mark.parametrize("shapes,fn,tfn,init", ALL_CASES)
def test_replay_equals_eager_or_refuses(request, shapes, fn, tfn, init):
    name = request.node.callspec.id
    step = run_case(shapes, fn, init, name)
    assert step is not None or refused_on_purpose(name), REFUSED.get(name)
    if step is not None:
        for prog in [p for ps in step._programs.values() for p in ps]:
            CAPTURED.update(type(op.ctx) for op in prog.rec_ops)


def _labels(k):
    return (np.random.default_rng(k).integers(0, 5, 4),)


def _floats(*shapes, kind=np.float32):
    return lambda k: tuple(np.random.default_rng(k).random(s).astype(kind) for s in shapes)


def _mask(k):
    return (np.random.default_rng(k).random((3, 4)) > 0.5,)


# ops the table above reaches only with an ndarray built into the case (refused: not a step input), or not at all;
# here labels, conditions and data come in as step arguments
EXTRA_CASES = [
    ("sin-cos", [(3, 4)], lambda x: x.sin() * x.cos(), None),
    ("log1p-expm1", [(3, 4)], lambda x: (x * x).log1p() + x.expm1(), None),
    ("gelu-erf", [(3, 4)], lambda x: tg.nn.functional.gelu(x), None),
    ("cast-double", [(3, 4)], lambda x: x.double() * 2.0, None),
    ("clone-floor", [(3, 4)], lambda x: x.clone() + (x * 3.0).floor(), None),
    ("cumsum-cumprod-prod", [(3, 4)], lambda x: x.cumsum(1) + x.cumprod(0) + x.prod(1, keepdim=True), None),
    ("einsum", [(3, 4), (4, 2)], lambda a, b: tg.einsum("ij,jk->ik", a, b), None),
    ("cat-stack", [(3, 4), (2, 4)], lambda a, b: tg.cat([a, b]).sum(0) + tg.stack([a[0], b[1]]).sum(0), None),
    ("setitem-on-clone", [(3, 4), (4,)], lambda a, b: _setitem(a, b), None),
    ("linear", [(4, 6), (3, 6), (3,)], lambda x, w, b: x.linear(w, b), None),
    ("where-cond-arg", [(3, 4), (3, 4)], lambda a, b, c: Tensor.where(tg.from_numpy(c), a, b), _mask),
    ("cross_entropy-labels-arg", [(4, 5)], lambda x, y: x.cross_entropy(y), _labels),
    ("cross_entropy-tensor-labels-arg", [(4, 5)], lambda x, y: x.cross_entropy(tg.from_numpy(y)), _labels),
    ("mse-integer-labels-arg", [(4, 5)], lambda x, y: losses.mse(x.sigmoid(), y), _labels),
    ("mse-onehot-arg", [(4, 5)], lambda x, t: ((x.softmax(-1) - tg.from_numpy(t)) ** 2).mean(), _floats((4, 5))),
    ("dropout", [(4, 5)], lambda x: x.dropout(0.4, training=True), None),
    ("random-factories", [(3, 4)], lambda x: x * tg.rand(3, 4) + tg.randn(4) * tg.ones(3, 1) + tg.arange(4), None),
    ("comparisons", [(3, 4)], lambda x: x * (x > 0.0).float() + x.abs() * (x <= 0.5).float(), None),
    ("max-argmax", [(3, 5)], lambda x: x.max(1).values * x.argmax(1).float(), None),
    ("conv2d-pools", [(2, 1, 6, 6), (3, 1, 3, 3), (3,)],
     lambda x, w, b: x.conv2d(w, b, padding=1).relu().max_pool2d(2) + x.conv2d(w, b, padding=1).avg_pool2d(2), None),
    ("conv2d-stride", [(2, 2, 5, 5), (4, 2, 3, 3), (4,)], lambda x, w, b: x.conv2d(w, b, stride=2, padding=1), None),
    ("conv2d-pool-flatten", [(2, 1, 6, 6), (3, 1, 3, 3), (3,)],
     lambda x, w, b: x.conv2d(w, b).max_pool2d(2).relu().flatten(1), None),
    ("unfold2d", [(2, 3, 5, 5)], lambda x: x.unfold2d(3, stride=2), None),
    ("max_pool2d-grad-of-grad", [(1, 2, 4, 4)],
     lambda x: tg.grad(((x * 1.0).max_pool2d(2) ** 2).sum(), x, create_graph=True)[0], None),
    ("sum-keepdim-seed", [(3, 4)], lambda x: (x * x).sum(keepdim=True), None),
    ("relayout", [(2, 3, 4, 5)], lambda x: ops.Relayout.apply(x * 1.0, order=(1, 2, 3, 0)) * 2.0, None),
    ("in-place-writes", [(3, 4), (4,)], lambda a, b: _writes(a, b), None),
]


def _writes(a, b):
    """Every write op (ops/writes.py) outside the graph, as an optimizer step or zero_grad does them."""
    with tg.no_grad():
        c = a * 1.0
        c += b
        c -= b * 0.5
        c *= 2.0
        c /= 3.0
        c[0] = b
        c.clamp_(-0.5, 0.5)
    holder = tg.zeros(3, 4)
    holder.grad = a * 2.0  # a gradient that is part of a graph: zero_grad replaces it by new zeros (ZerosLike)
    tg.optim.SGD([holder], lr=0.1).zero_grad(set_to_none=False)
    return a * c + holder.grad


def _setitem(a, b):
    c = a.clone()
    c[1] = b * 2.0
    return c


@pytest.mark.parametrize("name,shapes,fn,make_args", EXTRA_CASES, ids=[c[0] for c in EXTRA_CASES])
def test_more_ops_replay_equal_eager_or_refuse(name, shapes, fn, make_args):
    step = run_case(shapes, fn, None, name, make_args)
    assert step is not None or refused_on_purpose(name), REFUSED.get(name)
    if step is not None:
        for prog in [p for ps in step._programs.values() for p in ps]:
            CAPTURED.update(type(op.ctx) for op in prog.rec_ops)


def test_index_tensor_made_before_the_step():
    idx = Tensor(np.array([0, 2, 0]))  # made before the step: read afresh at every call, like a parameter
    w = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4), requires_grad=True)

    def step():
        w.grad = None
        out = w[1:, idx]
        (out * out).sum().backward()
        return out, w.grad

    c = strict_compile(step)
    for k in range(4):
        idx.data[...] = [k % 4, 3 - k % 4, 1]  # new indices, same memory
        out, g = c()
        expect = np.arange(12, dtype=np.float32).reshape(3, 4)[1:, idx.data]
        assert out.data.tobytes() == expect.tobytes()
        assert g.data.sum() == 2 * expect.sum()
    assert c.replays == 2


def _ops_modules():
    """The modules of the ops package, one per family (walked, so a new family file is checked too)."""
    return [importlib.import_module(f"{ops.__name__}.{m.name}") for m in pkgutil.iter_modules(ops.__path__)]


def test_every_primitive_replays_in_some_case():
    """Every Function subclass in the ops package (each family's module) replays equal to eager in some case above."""
    seen = set()
    for param in ALL_CASES:
        shapes, fn, _, init = param.values
        step = run_case(shapes, fn, init, param.id)
        if step is not None:
            seen.update(type(op.ctx) for progs in step._programs.values() for prog in progs for op in prog.rec_ops)
    for name, shapes, fn, make_args in EXTRA_CASES:
        step = run_case(shapes, fn, None, name, make_args)
        if step is not None:
            seen.update(type(op.ctx) for progs in step._programs.values() for prog in progs for op in prog.rec_ops)
    primitives = {c for module in _ops_modules() for c in vars(module).values() if isinstance(c, type)
                  and issubclass(c, Function) and c.__module__ == module.__name__ and not c.__name__.startswith("_")}
    assert sorted(c.__name__ for c in primitives - seen) == []
