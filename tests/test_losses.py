"""Tests of tinygrad_mnist.losses: each loss against its formula in NumPy, PyTorch, and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_mnist import losses
from tinygrad_mnist.engine import Tensor
from tinygrad_mnist.gradcheck import gradcheck

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is only a reference
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (reference only) is not installed")

RNG = np.random.default_rng(0)
N, C = 5, 4
SCORES = RNG.standard_normal((N, C)).astype(np.float32) * 2
LABELS = np.array([0, 3, 1, 1, 2])
ONE_HOT = np.eye(C, dtype=np.float32)[LABELS]
PROBS = RNG.uniform(0.05, 0.95, (N, C)).astype(np.float32)
TARGETS = RNG.uniform(0, 1, (N, C)).astype(np.float32)


def t(a, grad=True):
    return Tensor(np.array(a), requires_grad=grad)


def f64(a):
    return Tensor(np.asarray(a, np.float64), requires_grad=True)


def log_softmax_np(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


# ---------------------------------------------------------------------------
# mse: Nielsen's quadratic cost
# ---------------------------------------------------------------------------


def test_mse_is_nielsens_quadratic_cost():
    a, y = PROBS, ONE_HOT
    want = np.sum(np.linalg.norm(y - a, axis=1) ** 2) / (2 * N)  # C = 1/(2n) sum_x ||y(x) - a(x)||^2
    loss = losses.mse(t(a), y)
    assert loss.shape == () and loss.dtype == np.float32
    np.testing.assert_allclose(loss.item(), want, rtol=1e-6)
    np.testing.assert_allclose(losses.mse(t(a), y, reduction="sum").item(), want * N, rtol=1e-6)
    np.testing.assert_allclose(losses.mse(t(a), y, reduction="none").data, 0.5 * ((y - a) ** 2).sum(1), rtol=1e-6)


def test_mse_gradient_is_a_minus_y_over_n():
    a = t(PROBS)
    losses.mse(a, ONE_HOT).backward()
    np.testing.assert_allclose(a.grad.data, (PROBS - ONE_HOT) / N, rtol=1e-6)


def test_mse_accepts_integer_labels_and_tensors():
    a = t(PROBS)
    np.testing.assert_allclose(losses.mse(a, LABELS).item(), losses.mse(a, Tensor(ONE_HOT)).item())
    np.testing.assert_allclose(losses.mse(t([1.0, 2.0, 4.0]), [1.0, 1.0, 1.0]).item(), (0 + 1 + 9) / 2 / 3)
    with pytest.raises(ValueError, match="target shape"):
        losses.mse(a, ONE_HOT[:, :2])
    with pytest.raises(IndexError, match="out of range"):
        losses.mse(a, np.array([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="reduction must be"):
        losses.mse(a, LABELS, reduction="avg")


@needs_torch
def test_mse_vs_torch():
    at = torch.tensor(PROBS, requires_grad=True)
    ref = F.mse_loss(at, torch.tensor(ONE_HOT), reduction="sum") / (2 * N)
    ref.backward()
    a = t(PROBS)
    loss = losses.mse(a, ONE_HOT)
    loss.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-6)
    np.testing.assert_allclose(a.grad.data, at.grad.numpy(), rtol=1e-6)


# ---------------------------------------------------------------------------
# cross-entropy and nll
# ---------------------------------------------------------------------------


def test_cross_entropy_formula():
    want = -log_softmax_np(SCORES)[np.arange(N), LABELS]
    np.testing.assert_allclose(losses.cross_entropy(t(SCORES), LABELS).item(), want.mean(), rtol=1e-6)
    np.testing.assert_allclose(losses.cross_entropy(t(SCORES), ONE_HOT).item(), want.mean(), rtol=1e-6)
    np.testing.assert_allclose(losses.cross_entropy(t(SCORES), LABELS, "sum").item(), want.sum(), rtol=1e-6)
    np.testing.assert_allclose(losses.cross_entropy(t(SCORES), LABELS, "none").data, want, rtol=1e-6)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = t([[1000.0, -1000.0, 0.0], [-1e4, 1e4, 3.0]])
    loss = losses.cross_entropy(logits, np.array([1, 1]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.isclose(loss.item(), 1000.0)
    assert np.isfinite(logits.grad.data).all()


def test_nll_formula():
    lp = log_softmax_np(SCORES).astype(np.float32)
    want = -lp[np.arange(N), LABELS]
    a = t(lp)
    loss = losses.nll(a, LABELS)
    np.testing.assert_allclose(loss.item(), want.mean(), rtol=1e-6)
    loss.backward()
    expected = np.zeros((N, C), np.float32)
    expected[np.arange(N), LABELS] = -1 / N
    np.testing.assert_allclose(a.grad.data, expected)
    np.testing.assert_allclose(losses.nll(t(lp), LABELS, "none").data, want, rtol=1e-6)
    # nll of log_softmax is cross-entropy
    np.testing.assert_allclose(losses.nll(t(SCORES).log_softmax(1), LABELS).item(),
                               losses.cross_entropy(t(SCORES), LABELS).item(), rtol=1e-6)
    with pytest.raises(TypeError, match="integer class indices"):
        losses.nll(a, ONE_HOT)
    with pytest.raises(IndexError, match="label 4 is out of range"):
        losses.nll(a, np.array([0, 1, 2, 3, 4]))


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_and_nll_vs_torch(reduction):
    for ours, theirs, x in [(losses.cross_entropy, F.cross_entropy, SCORES),
                            (losses.nll, F.nll_loss, log_softmax_np(SCORES).astype(np.float32))]:
        xt = torch.tensor(x, requires_grad=True)
        ref = theirs(xt, torch.tensor(LABELS), reduction=reduction)
        ref.sum().backward()
        a = t(x)
        loss = ours(a, LABELS, reduction=reduction)
        loss.sum().backward()
        np.testing.assert_allclose(loss.data, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.grad.data, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# binary cross-entropy
# ---------------------------------------------------------------------------


def bce_np(p, y):
    p, y = p.astype(np.float64), y.astype(np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_binary_cross_entropy_formula():
    np.testing.assert_allclose(losses.binary_cross_entropy(t(PROBS), TARGETS).item(),
                               bce_np(PROBS, TARGETS).mean(), rtol=1e-5)
    np.testing.assert_allclose(losses.binary_cross_entropy(t(PROBS), TARGETS, reduction="none").data,
                               bce_np(PROBS, TARGETS), rtol=1e-5)
    np.testing.assert_allclose(losses.binary_cross_entropy(t(PROBS), TARGETS, reduction="sum").item(),
                               bce_np(PROBS, TARGETS).sum(), rtol=1e-5)


def test_binary_cross_entropy_clips_to_eps():
    p = t([0.0, 1.0, 0.0, 1.0])
    loss = losses.binary_cross_entropy(p, np.array([1.0, 0.0, 0.0, 1.0], np.float32), eps=1e-7, reduction="none")
    assert np.isfinite(loss.data).all()
    np.testing.assert_allclose(loss.data[:2], -np.log(np.float32(1e-7)), rtol=1e-3)
    np.testing.assert_allclose(loss.data[2:], 0, atol=1e-6)
    loss.sum().backward()
    assert np.isfinite(p.grad.data).all()


def test_binary_cross_entropy_with_logits_formula_and_stability():
    x = SCORES
    sig = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(losses.binary_cross_entropy_with_logits(t(x), TARGETS).item(),
                               bce_np(sig, TARGETS).mean(), rtol=1e-5)
    big = t([-1000.0, 1000.0, -1000.0, 1000.0, 0.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0], np.float32)
    loss = losses.binary_cross_entropy_with_logits(big, y, reduction="none")
    np.testing.assert_allclose(loss.data, [1000.0, 1000.0, 0.0, 0.0, np.log(2)], rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(big.grad.data, [-1.0, 1.0, 0.0, 0.0, -0.5], atol=1e-7)


def test_bce_with_logits_gradient_is_sigmoid_minus_target_even_at_zero():
    x = t(np.array([[0.0, 0.0, 2.0], [-3.0, 0.0, 0.5]], np.float32))
    y = np.array([[1.0, 0.0, 0.3], [0.0, 0.5, 1.0]], np.float32)
    losses.binary_cross_entropy_with_logits(x, y, reduction="sum").backward()
    np.testing.assert_allclose(x.grad.data, 1 / (1 + np.exp(-x.data)) - y, rtol=1e-6, atol=1e-7)


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropies_vs_torch(reduction):
    for ours, theirs, x in [(losses.binary_cross_entropy, F.binary_cross_entropy, PROBS),
                            (losses.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, SCORES)]:
        xt = torch.tensor(x, requires_grad=True)
        ref = theirs(xt, torch.tensor(TARGETS), reduction=reduction)
        ref.sum().backward()
        a = t(x)
        loss = ours(a, TARGETS, reduction=reduction)
        loss.sum().backward()
        np.testing.assert_allclose(loss.data, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.grad.data, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------
# gradcheck (float64, central differences)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_losses(reduction):
    y64 = TARGETS.astype(np.float64)
    x0 = SCORES.astype(np.float64)
    x0[0, 0] = 0.0  # the kink of a relu/abs formulation of BCE-with-logits
    checks = [
        (lambda a: losses.mse(a, ONE_HOT.astype(np.float64), reduction), PROBS),
        (lambda a: losses.mse(a, LABELS, reduction), PROBS),
        (lambda a: losses.cross_entropy(a, LABELS, reduction), SCORES),
        (lambda a: losses.cross_entropy(a, y64 / y64.sum(1, keepdims=True), reduction), SCORES),
        (lambda a: losses.nll(a, LABELS, reduction), log_softmax_np(SCORES)),
        (lambda a: losses.binary_cross_entropy(a, y64, reduction=reduction), PROBS),
        (lambda a: losses.binary_cross_entropy_with_logits(a, y64, reduction), x0),
    ]
    for fn, x in checks:
        assert gradcheck(fn, [f64(x)])


def test_gradcheck_against_the_prediction_and_a_tensor_target():
    assert gradcheck(lambda a, y: losses.mse(a, y), [f64(PROBS), f64(TARGETS)])
    assert gradcheck(lambda a, y: losses.binary_cross_entropy(a, y), [f64(PROBS), f64(TARGETS)])
    assert gradcheck(lambda a, y: losses.binary_cross_entropy_with_logits(a, y), [f64(SCORES), f64(TARGETS)])


# ---------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------


def test_accuracy():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], np.float32)
    assert losses.accuracy(scores, np.array([1, 0, 0, 0])) == 0.75
    assert losses.accuracy(Tensor(scores), Tensor(np.array([1, 0, 1, 0]))) == 1.0
    assert losses.accuracy(scores, np.eye(2)[[0, 0, 0, 0]]) == 0.5
    assert isinstance(losses.accuracy(scores, np.array([1, 0, 0, 0])), float)
    assert np.isnan(losses.accuracy(np.zeros((0, 3)), np.zeros(0, np.int64)))
    with pytest.raises(ValueError, match="labels must have shape"):
        losses.accuracy(scores, np.array([1, 0]))
    with pytest.raises(ValueError, match="scores must have shape"):
        losses.accuracy(scores.ravel(), np.array([1, 0]))
