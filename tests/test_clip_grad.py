"""nn.utils.clip_grad_norm_ / clip_grad_value_: PyTorch's values, its errors and arguments, and replay under compile."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import tinygrad_mnist as tg
from tinygrad_mnist import Tensor, nn

torch = pytest.importorskip("torch")

SHAPES = [(4, 3), (3,), (2, 3)]


def both(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    grads = [(rng.standard_normal(s) * scale).astype(np.float32) for s in SHAPES]
    ours = [Tensor(np.zeros(s, np.float32), requires_grad=True) for s in SHAPES]
    theirs = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
    for p, q, g in zip(ours, theirs, grads):
        p.grad = Tensor(g.copy())
        q.grad = torch.tensor(g.copy())
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.1, 1000.0])
@pytest.mark.parametrize("foreach", [None, False, True])
def test_clip_grad_norm_matches_pytorch(norm_type, max_norm, foreach):
    ours, theirs = both()
    a = nn.utils.clip_grad_norm_(ours, max_norm, norm_type, foreach=foreach)
    b = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type, foreach=foreach)
    assert a.dtype == np.float32 and a.shape == ()
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-7)
    for p, q in zip(ours, theirs):  # the norm is summed in float64 here, float32 there: an ulp apart at most
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=2.5e-7, atol=0)
    if max_norm > 100:  # nothing to clip: the gradients are the very values they were
        fresh, _ = both()
        assert all(np.array_equal(p.grad.numpy(), f.grad.numpy()) for p, f in zip(ours, fresh))


@pytest.mark.parametrize("foreach", [None, True])
def test_clip_grad_value_matches_pytorch(foreach):
    ours, theirs = both()
    assert nn.utils.clip_grad_value_(ours, 0.3, foreach=foreach) is None
    torch.nn.utils.clip_grad_value_(theirs, 0.3, foreach=foreach)
    for p, q in zip(ours, theirs):
        assert np.array_equal(p.grad.numpy(), q.grad.numpy())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_error_if_nonfinite_raises_as_pytorch_and_scales_otherwise(bad):
    ours, theirs = both()
    ours[1].grad.data[0] = bad
    theirs[1].grad[0] = bad
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    a = nn.utils.clip_grad_norm_(ours, 1.0)
    b = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert np.isnan(a.numpy()) == np.isnan(b.numpy()) and np.isinf(a.numpy()) == np.isinf(b.numpy())
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(np.isnan(p.grad.numpy()), np.isnan(q.grad.numpy()))


def test_no_gradients_gives_a_zero_norm():
    p = Tensor(np.zeros(3, np.float32), requires_grad=True)
    assert float(nn.utils.clip_grad_norm_([p], 1.0)) == float(torch.nn.utils.clip_grad_norm_([], 1.0)) == 0.0


def test_a_replayed_step_raises_on_a_nonfinite_norm_as_eager_does():
    tg.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = tg.optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = model(tg.from_numpy(x)).sum()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)
        opt.step()
        return loss

    compiled = tg.compile(step, fallback=False)
    for i in range(4):
        compiled(np.full((2, 3), i, np.float32))
    assert compiled.replays >= 1
    with pytest.raises(RuntimeError, match="non-finite"):
        compiled(np.full((2, 3), np.inf, np.float32))
    assert sys.gettrace() is None or "capture" not in repr(sys.gettrace())
