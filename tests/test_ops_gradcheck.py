"""The op table's checker (helpers.check_op) itself, and expressions mixing several families of ops.

Each family's rows of the op table (tests/helpers.py, CASES_BY_FAMILY) run in tests/test_ops_<family>.py,
against float64 central differences and PyTorch; the mixed rows run here (numerically) and in
test_ops_torch.py.  No PyTorch needed here.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CASES_BY_FAMILY, NUMERIC_ONLY_CASES, check_op, grid, make_inputs, table_tests

from tinygrad_mnist import Tensor
from tinygrad_mnist.gradcheck import GradcheckError, gradcheck

test_gradcheck, _ = table_tests("mixed")  # the mixed rows of the op table; test_ops_torch.py runs them against torch


def test_every_row_of_the_op_table_runs_in_one_family():
    """No row of the table is left out of the per-family tests, and none runs twice."""
    from helpers import ALL_TORCH_CASES

    with_torch = [c.id for rows, _ in CASES_BY_FAMILY.values() for c in rows]
    numeric = [c.id for _, rows in CASES_BY_FAMILY.values() for c in rows]
    assert sorted(with_torch) == sorted(c.id for c in ALL_TORCH_CASES)
    assert sorted(numeric) == sorted(c.id for c in NUMERIC_ONLY_CASES)


def test_check_op_runs_gradcheck_without_torch_fn():
    # the helper must fail on a wrong gradient even with no reference given
    from tinygrad_mnist import Function

    class WrongExp(Function):
        def forward(self, x):
            return np.exp(x)

        def backward(self, g):
            return (g * self.parents[0],)  # should be g * exp(x)

    with pytest.raises(GradcheckError):
        check_op([(3,)], lambda x: WrongExp.apply(x))


def test_check_op_with_torch_reference_runs_numeric_part_first():
    # with torch_fn given, the float64 part runs (and here fails) before any torch import is needed
    with pytest.raises(GradcheckError):
        check_op([(3,)], lambda x: Tensor.where(x.data > 0, x, x) * x.detach(), lambda x: x * x)


def test_input_makers_keep_away_from_kinks():
    from helpers import away

    (x,) = make_inputs([(1000,)], away(0.0, 0.5, gap=0.1), seed=0)
    assert np.abs(x).min() >= 0.1 - 1e-12 and np.abs(x - 0.5).min() >= 0.1 - 1e-12
    a, b = make_inputs([(30,), (30,)], (grid(0.1), grid(0.1, 0.5)), seed=0)
    assert np.abs(a[:, None] - b[None, :]).min() >= 0.05 - 1e-12
    assert np.diff(np.sort(a)).min() >= 0.1 - 1e-12


@pytest.mark.parametrize("shape", [(2, 3), (4,), ()])
def test_composite_expression(shape):
    # a longer expression mixing many ops, with broadcasting against a row
    def f(x, y):
        z = (x * y).tanh() + (x - y).exp() / (1 + y * y) - x.sigmoid() * 3.0
        return (z ** 2).sum() + z.mean()

    check_op([shape, shape[-1:] if shape else ()], f)


def test_gradcheck_of_gradient_on_reused_input():
    x = Tensor(np.array([0.3, -0.7, 1.2]), requires_grad=True)
    assert gradcheck(lambda x: (x * x * x + x.exp() * x).sum(), [x])
