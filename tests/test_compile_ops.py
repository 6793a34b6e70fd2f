"""Every primitive under compile: replaying a step (forward, backward) equals running it eagerly, bit for bit.

The step of each case is the op table of test_ops_gradcheck (helpers.py): the case's function of
parameter tensors, a backward through it, the output and every gradient returned. Four calls
with new values each time: two recordings, then two replays, compared with four eager calls.
A case may instead be refused with a CaptureError (an op that computes arrays behind the graph,
an ndarray constant in the case itself); it may never replay something different from eager.
"""

from __future__ import annotations

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
)

import tinygrad_mnist as tg
from tinygrad_mnist import CaptureError, Tensor

ALL_CASES = (BINARY_CASES + SCALAR_CASES + UNARY_CASES + WHERE_CASES + REDUCTION_CASES + SHAPE_CASES
             + NUMERIC_ONLY_CASES + MATMUL_CASES + NN_CASES)

CAPTURED: set = set()  # op classes seen in a step that replayed exactly
REFUSED: dict = {}  # case id -> the refusal


def run_case(shapes, fn, init, name):
    def build():
        return [Tensor(a.astype(np.float32), requires_grad=True) for a in make_inputs(shapes, init, seed=0)]

    pe, pc = build(), build()

    def step_of(ps):
        def step():
            for p in ps:
                p.grad = None
            out = fn(*ps)
            outs = out if isinstance(out, tuple) else (out,)
            loss = sum(((o * o).sum() for o in outs if o.requires_grad), start=tg.zeros(()))
            if loss.requires_grad:
                loss.backward()
            return outs, tuple(p.grad for p in ps)

        return step

    eager, step = step_of(pe), tg.compile(step_of(pc))
    for k in range(4):
        for a, b, v in zip(pe, pc, make_inputs(shapes, init, seed=k + 1)):  # new values, same memory
            a.data[...] = v
            b.data[...] = v
        (oe, ge) = eager()
        try:
            (oc, gc) = step()
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


@pytest.mark.parametrize("shapes,fn,tfn,init", ALL_CASES)
def test_replay_equals_eager_or_refuses(request, shapes, fn, tfn, init):
    step = run_case(shapes, fn, init, request.node.callspec.id)
    if step is not None:
        for prog in step._programs.values():
            CAPTURED.update(type(op.ctx) for op in prog.rec_ops)
