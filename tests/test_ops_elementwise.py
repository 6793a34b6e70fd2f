"""Elementwise ops (tinygrad_mnist/ops/elementwise.py): the op table's binary, scalar, unary and where rows
against float64 central differences and PyTorch, and ties and kinks against PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import requires_torch, table_tests, torch
from tinygrad_mnist import Tensor

test_gradcheck, test_against_torch = table_tests("elementwise")  # this family's rows of the op table


@requires_torch
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


@requires_torch
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
