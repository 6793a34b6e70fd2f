"""Every differentiable op, several shapes incl. broadcasting: engine gradients vs central differences in float64.

No PyTorch needed here; test_ops_torch.py runs the same table against PyTorch in float32.
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
    check_op,
    grid,
    make_inputs,
)

from tinygrad_mnist import Tensor
from tinygrad_mnist.gradcheck import GradcheckError, gradcheck

ARGS = "shapes,fn,tfn,init"


@pytest.mark.parametrize(ARGS, BINARY_CASES)
def test_binary(shapes, fn, tfn, init):
    check_op(shapes, fn, init=init)


@pytest.mark.parametrize(ARGS, SCALAR_CASES)
def test_scalar_and_ndarray_operands(shapes, fn, tfn, init):
    check_op(shapes, fn, init=init)


@pytest.mark.parametrize(ARGS, UNARY_CASES + WHERE_CASES)
def test_elementwise(shapes, fn, tfn, init):
    check_op(shapes, fn, init=init)


@pytest.mark.parametrize(ARGS, REDUCTION_CASES)
def test_reductions(shapes, fn, tfn, init):
    check_op(shapes, fn, init=init)


@pytest.mark.parametrize(ARGS, SHAPE_CASES + NUMERIC_ONLY_CASES)
def test_shape_ops(shapes, fn, tfn, init):
    check_op(shapes, fn, init=init)


@pytest.mark.parametrize(ARGS, MATMUL_CASES)
def test_matmul(shapes, fn, tfn, init):
    check_op(shapes, fn, init=init)


@pytest.mark.parametrize(ARGS, NN_CASES)
def test_nn_ops(shapes, fn, tfn, init):
    check_op(shapes, fn, init=init)


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
