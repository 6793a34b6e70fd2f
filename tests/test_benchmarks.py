"""The benchmark harness's own check, run as a test: every engine spelling of every workload starts from
the references' weights and agrees with hand-written NumPy (or PyTorch, for W7) on the first steps."""

from __future__ import annotations

import ast

import pytest

from benchmarks import run
from benchmarks.workloads import WORKLOADS, init_params, make_batches
from tests.helpers import HAVE_TORCH


@pytest.mark.parametrize("key", sorted(WORKLOADS))
def test_engine_agrees_with_the_reference_in_every_spelling(key):
    w = WORKLOADS[key]
    systems = run.load_systems()
    names = run.system_names(w)
    if w.numpy_ref:
        names.remove("torch")  # PyTorch is compared when the harness runs
    elif not HAVE_TORCH:
        pytest.skip("this workload's reference is PyTorch, which is not installed")
    checks = run.check_workload(w, init_params(w), make_batches(w, 3), systems, names)
    for name in names:
        assert checks[name]["ok"], (name, checks[name])
    assert sum(n.startswith("engine") for n in names) == len(w.spellings)


@pytest.mark.skipif(not HAVE_TORCH, reason="the mirror is a PyTorch model")
def test_fast_recipes_torch_mirror_is_the_same_network():
    """benchmarks/fast.py's PyTorch FastCNN, given the engine model's weights, computes the same logits and,
    after three one-cycle Adam steps on the same batches with the recipe's loss (label smoothing included),
    holds the same weights (float32 tolerance)."""
    import numpy as np
    import torch

    import tinygrad_mnist as tm
    from benchmarks.fast import torch_fast
    from tinygrad_mnist import optim
    from tinygrad_mnist.models import MODELS
    from tinygrad_mnist.train import RECIPES, compute_loss

    recipe = RECIPES["fast"]
    assert recipe.label_smoothing > 0  # the loss below is the smoothed one
    tm.manual_seed(3)
    ours, theirs = MODELS["fast"](), torch_fast()
    with torch.no_grad():
        for tp, p in zip([*theirs.parameters(), *theirs.buffers()], [*ours.parameters(), *ours.buffers()]):
            tp.copy_(torch.from_numpy(np.array(p.data)))
    x = np.random.default_rng(0).random((6, 16, 784), dtype=np.float32)
    y = np.random.default_rng(1).integers(0, 10, (6, 16))
    betas = (0.9, recipe.adam_beta2)
    opt = optim.Adam(ours.parameters(), lr=recipe.lr, betas=betas)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=6)
    topt = torch.optim.Adam(theirs.parameters(), lr=recipe.lr, betas=betas)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=recipe.lr, total_steps=6)
    for i in range(3):
        out, tout = ours(tm.from_numpy(x[i])), theirs(torch.from_numpy(x[i]))
        np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-4, atol=1e-4)
        opt.zero_grad()
        compute_loss(recipe, out, y[i]).backward()
        opt.step()
        sched.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tout, torch.from_numpy(y[i]),
                                          label_smoothing=recipe.label_smoothing).backward()
        topt.step()
        tsched.step()
    for p, tp in zip([*ours.parameters(), *ours.buffers()], [*theirs.parameters(), *theirs.buffers()]):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("key", ["W1", "W2", "W3", "W4"])
def test_kernel_breakdown_times_every_replayed_line_and_reference_statement(key):
    """benchmarks.kernels on one-step blocks: every line of the generated replay and every statement of the
    NumPy step gets a time and the replayed lines their op (no timing is asserted)."""
    from benchmarks import kernels

    r = kernels.breakdown(key, repeats=1, blocks=1)
    body = ast.parse(r["source"]).body[0].body  # the generated replay's statements, one timed row each
    assert [line for _, line, _ in r["compiled"]] == [ast.unparse(st).splitlines()[0] for st in body]
    assert all(t >= 0 for *_, t in r["compiled"]) and all(t >= 0 for _, t in r["numpy"])
    ops = {label for label, _, _ in r["compiled"]}
    assert ops & {"Linear", "Tanh"} and "" not in ops
    assert any("step" in line or "=" in line for line, _ in r["numpy"])
    text = kernels.report(r)
    assert "ratio run/numpy" in text and key in text


def test_kernel_breakdown_of_the_fast_recipe_step():
    """benchmarks.kernels fast: every line of the fast recipe's replayed step gets a time and its op."""
    from benchmarks import kernels

    r = kernels.fast_breakdown(batch=4, repeats=1, blocks=1)
    ops = {label for label, _, _ in r["compiled"]}
    assert {"Conv2d", "ConvTranspose2d", "Conv2dWeightGrad", "MaxPool2d", "AdamStep"} <= ops
    assert all(t >= 0 for *_, t in r["compiled"]) and "" not in ops
    assert "Conv2d" in kernels.fast_report(r)
