"""The demo's three models with their recipes' optimizers: 100 compiled steps equal 100 eager steps bit for bit.

Both runs start from the same weights and draw dropout masks from generators seeded alike; they run in
lockstep (each with its own generator): every step's loss is compared, gradients and parameters every
fifth step and at the end (a difference, once there, stays in the parameters).
The learning-rate schedule moves during the run, and a shorter batch comes in now and then.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import strict_compile

import tinygrad_mnist as tg
from tinygrad_mnist import engine
from tinygrad_mnist.models import MODELS
from tinygrad_mnist.train import RECIPES, compute_loss, make_optimizer, make_schedule


def make_run(name: str):
    tg.manual_seed(0)
    model = MODELS[name]()
    recipe = RECIPES[name]
    params = list(model.parameters())
    opt = make_optimizer(recipe, params)
    sched = make_schedule(recipe, opt, steps_per_epoch=50)  # (onecycle: per batch; the others ignore it)

    def step(x, y):
        opt.zero_grad()
        loss = compute_loss(recipe, model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step, params, opt, sched


def same(a, b) -> bool:
    """Bit for bit (as integers of the same width: -0.0 differs from 0.0, NaNs compare)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    as_int = np.dtype(f"i{a.dtype.itemsize}")
    return np.array_equal(np.ascontiguousarray(a).view(as_int), np.ascontiguousarray(b).view(as_int))


@pytest.mark.parametrize("name,batch,steps", [("nielsen", 10, 100), ("mlp", 16, 100), ("cnn", 4, 100),
                                              ("fast", 8, 60)])
def test_compiled_training_equals_eager(name, batch, steps):
    step_e, pe, _, sched_e = make_run(name)
    step_c, pc, _, sched_c = make_run(name)
    compiled = strict_compile(step_c)
    rng_e, rng_c = np.random.default_rng(1), np.random.default_rng(1)  # dropout draws, one generator per run
    data = np.random.default_rng(2)
    for i in range(steps):
        n = batch if i % 7 != 6 else batch // 2 + 1  # now and then a shorter batch: it records its own
        x = data.random((n, 784), dtype=np.float32)
        y = data.integers(0, 10, n)
        engine._rng = rng_e
        le = step_e(tg.from_numpy(x), y)
        engine._rng = rng_c
        lc = compiled(tg.from_numpy(x), y)
        assert same(le.data, lc.data), f"step {i}: loss"
        if i % 5 == 4 or i == steps - 1:  # (every step's would only cost time: a difference persists)
            for a, b in zip(pe, pc):
                assert same(a.data, b.data), f"step {i}: parameter"
                assert same(a.grad.data, b.grad.data), f"step {i}: gradient"
        if i % 10 == 9 and sched_e is not None:  # the learning rate moves: replay reads it when the update runs
            sched_e.step()
            sched_c.step()
    assert compiled.replays >= steps - 8 and compiled.programs == 2
