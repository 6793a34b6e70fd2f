"""The op table of helpers.py against PyTorch in float32: forward values and input gradients.

Skipped as a whole when PyTorch is not installed (test_ops_gradcheck.py covers the same ops numerically).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is the reference here (pip install -e .[ref])")

from helpers import ALL_TORCH_CASES, check_op, grid  # noqa: E402

from tinygrad_mnist import Tensor  # noqa: E402
from tinygrad_mnist.gradcheck import GradcheckError  # noqa: E402


@pytest.mark.parametrize("shapes,fn,tfn,init", ALL_TORCH_CASES)
def test_against_torch(shapes, fn, tfn, init):
    check_op(shapes, fn, tfn, init, numeric=False)


def test_full_helper_runs_both_parts():
    check_op([(3, 1), (1, 4)], lambda a, b: (a * b).tanh(), lambda a, b: (a * b).tanh())


def test_helper_catches_a_wrong_forward():
    with pytest.raises(GradcheckError, match="output"):
        check_op([(3, 4)], lambda x: x.sigmoid(), lambda x: x.tanh(), numeric=False)


def test_helper_catches_a_wrong_tie_rule():
    # torch.max(x, dim) sends the whole gradient to one tied element (so does ours); amax splits it
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], np.float32), requires_grad=True)
    x.amax(1).sum().backward()
    tx = torch.tensor(x.data, requires_grad=True)
    torch.amax(tx, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())
    np.testing.assert_array_equal(x.grad.data, [[0, 0.5, 0.5], [0.5, 0.5, 0]])


@pytest.mark.parametrize("op", ["max", "min"])
def test_full_reduction_ties_match_torch(op):
    data = np.array([[1.0, 4.0], [4.0, 1.0], [4.0, -2.0]], np.float32)
    x = Tensor(data, requires_grad=True)
    getattr(x, op)().backward()
    tx = torch.tensor(data, requires_grad=True)
    getattr(tx, op)().backward()  # full max()/min() split evenly in torch too
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())


def test_maximum_minimum_ties_match_torch():
    a = np.array([1.0, 2.0, 3.0, -1.0], np.float32)
    b = np.array([1.0, 0.0, 3.0, 5.0], np.float32)
    for op in ("maximum", "minimum"):
        x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
        getattr(x, op)(y).sum().backward()
        tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        getattr(torch, op)(tx, ty).sum().backward()
        np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())
        np.testing.assert_array_equal(y.grad.data, ty.grad.numpy())


@pytest.mark.parametrize("name", ["relu", "abs", "leaky_relu", "clip"])
def test_kinks_match_torch(name):
    data = np.array([-1.0, 0.0, 0.5, 1.0, 2.0], np.float32)
    f = {"relu": (lambda t: t.relu(), lambda t: t.relu()),
         "abs": (lambda t: t.abs(), lambda t: t.abs()),
         "leaky_relu": (lambda t: t.leaky_relu(0.1), lambda t: torch.nn.functional.leaky_relu(t, 0.1)),
         "clip": (lambda t: t.clip(0.0, 1.0), lambda t: t.clamp(0.0, 1.0))}[name]
    x = Tensor(data, requires_grad=True)
    f[0](x).sum().backward()
    tx = torch.tensor(data, requires_grad=True)
    f[1](tx).sum().backward()
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())


def test_log_softmax_huge_logits_match_torch():
    data = np.array([[1e4, 0.0, -1e4], [3e4, 3e4 - 1, 2e4]], np.float32)
    x = Tensor(data, requires_grad=True)
    out = x.log_softmax()
    tx = torch.tensor(data, requires_grad=True)
    tout = tx.log_softmax(-1)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-6)
    g = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]], np.float32)
    out.backward(g)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_larger_conv_against_torch():
    # a size closer to the MNIST model's first layer
    check_op([(4, 1, 12, 12), (8, 1, 5, 5), (8,)], lambda x, w, b: x.conv2d(w, b, padding=2).relu().max_pool2d(2),
             lambda x, w, b: torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(x, w, b, padding=2).relu(), 2),
             (None, None, grid(0.05)), numeric=False)
