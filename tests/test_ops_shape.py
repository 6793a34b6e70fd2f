"""Shape, movement and indexing ops (tinygrad_mnist/ops/shape.py): the op table's shape rows, and the index
ops with their index arrays as inputs (gradcheck, grad of grad, PyTorch).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import grads_of_grads_match_torch, requires_torch, table_tests
from tinygrad_mnist import Tensor, grad, ops
from tinygrad_mnist.gradcheck import gradcheck
from tinygrad_mnist.nn import functional as F

test_gradcheck, test_against_torch = table_tests("shape")  # this family's rows of the op table


def test_gather_and_scatter_add_gradcheck_twice():
    rng = np.random.default_rng(6)
    idx = Tensor(np.array([[0, 2, 2], [1, 0, 1]]))
    x = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert gradcheck(lambda x: ops.Gather.apply(x, idx, axis=1), [x])
    assert gradcheck(lambda x: grad((ops.Gather.apply(x, idx, axis=1) ** 2).sum(), x, create_graph=True)[0], [x])
    g = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert gradcheck(lambda g: ops.ScatterAdd.apply(g, idx, axis=1, shape=(2, 3)), [g])
    assert gradcheck(lambda g: grad((ops.ScatterAdd.apply(g, idx, axis=1, shape=(2, 3)) ** 2).sum(), g,
                                    create_graph=True)[0], [g])


@pytest.mark.parametrize("index", ["ints", "two_arrays", "mask", "mixed"])
def test_getitem_with_index_tensors_gradcheck_twice(index):
    rng = np.random.default_rng(7)
    i = Tensor(np.array([2, 0, 2]))
    make = {"ints": lambda x: x[i], "two_arrays": lambda x: x[i, Tensor(np.array([1, 3, 1]))],
            "mask": lambda x: x[Tensor(np.arange(12).reshape(3, 4) % 3 == 0)], "mixed": lambda x: x[1:, i]}[index]
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(make, [x])
    assert gradcheck(lambda x: grad((make(x) ** 2).sum(), x, create_graph=True)[0], [x])


def test_setitem_with_index_tensors_gradcheck_twice():
    rng = np.random.default_rng(8)
    index, arrays = ops.split_index((Tensor(np.array([0, 2])), slice(1, 3)))
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    v = Tensor(rng.standard_normal((2, 2)), requires_grad=True)

    def f(x, v):
        return ops.SetItem.apply(x, v, *arrays, index=index)

    assert gradcheck(f, [x, v])
    assert gradcheck(lambda x, v: grad((f(x, v) ** 2).sum(), [x, v], create_graph=True)[0] * 1.0, [x, v])


@requires_torch
def test_index_ops_match_pytorch():
    import torch

    rng = np.random.default_rng(9)
    xd = rng.standard_normal((4, 5)).astype(np.float32)
    i = np.array([3, 0, 3])
    cases = [
        (lambda t: t[Tensor(i)], lambda t: t[torch.tensor(i)]),
        (lambda t: t.gather(1, Tensor(np.array([[0, 4], [1, 1], [2, 0], [3, 3]]))),
         lambda t: t.gather(1, torch.tensor([[0, 4], [1, 1], [2, 0], [3, 3]]))),
        (lambda t: t.max(1).values, lambda t: t.max(1).values),
        (lambda t: t.sort(1).values, lambda t: t.sort(1).values),
        (lambda t: t.index_select(0, Tensor(i)), lambda t: t.index_select(0, torch.tensor(i))),
        (lambda t: F.cross_entropy(t, Tensor(np.array([0, 2, 2, 4])), ignore_index=2, label_smoothing=0.1),
         lambda t: torch.nn.functional.cross_entropy(t, torch.tensor([0, 2, 2, 4]), ignore_index=2,
                                                     label_smoothing=0.1)),
    ]
    grads_of_grads_match_torch(cases, xd, values=True)
