"""Reductions (tinygrad_mnist/ops/reduce.py): the op table's reduction and softmax rows, tie rules and huge logits.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import requires_torch, table_tests, torch
from tinygrad_mnist import Tensor

test_gradcheck, test_against_torch = table_tests("reduce")  # this family's rows of the op table


@requires_torch
def test_helper_catches_a_wrong_tie_rule():
    # torch.max(x, dim) sends the whole gradient to one tied element (so does ours); amax splits it
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], np.float32), requires_grad=True)
    x.amax(1).sum().backward()
    tx = torch.tensor(x.data, requires_grad=True)
    torch.amax(tx, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())
    np.testing.assert_array_equal(x.grad.data, [[0, 0.5, 0.5], [0.5, 0.5, 0]])


@requires_torch
@pytest.mark.parametrize("op", ["max", "min"])
def test_full_reduction_ties_match_torch(op):
    data = np.array([[1.0, 4.0], [4.0, 1.0], [4.0, -2.0]], np.float32)
    x = Tensor(data, requires_grad=True)
    getattr(x, op)().backward()
    tx = torch.tensor(data, requires_grad=True)
    getattr(tx, op)().backward()  # full max()/min() split evenly in torch too
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())


@requires_torch
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
