"""Ops fused for speed (tinygrad_mnist/ops/fused.py) equal the composites they stand for, in value and gradient
(the conv and pool ones: tests/test_ops_conv.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import grads_of_grads_match_torch, grid, requires_torch, table_tests
from tinygrad_mnist import Tensor, grad, ops
from tinygrad_mnist.gradcheck import gradcheck

test_gradcheck, test_against_torch = table_tests("fused")  # this family's rows of the op table


def test_relu_grad_equals_its_composite_and_differentiates_again():
    rng = np.random.default_rng(1)
    g = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    x = Tensor(grid(offset=0.5)(rng, (3, 4)), requires_grad=True)  # no zeros: away from the kink
    out = ops.ReluGrad.apply(g, x)
    np.testing.assert_array_equal(out.data, (g * (x > 0).double()).data)
    assert gradcheck(lambda g: ops.ReluGrad.apply(g, x), [g])
    assert gradcheck(lambda x: ops.ReluGrad.apply(g, x), [x])  # zero almost everywhere
    # grad of grad of relu through ReluGrad
    y = Tensor(grid(offset=0.5)(rng, (3, 4)), requires_grad=True)
    assert gradcheck(lambda y: grad((y.relu() * y.relu()).sum(), y, create_graph=True)[0], [y])


@pytest.mark.parametrize("case", ["abs", "leaky", "clip", "maximum", "maximum_ties", "amax_ties", "setitem"])
def test_mask_mul_equals_its_composite(case):
    rng = np.random.default_rng(2)
    xd = grid()(rng, (3, 4))
    xd[0, :2] = xd[0, 2]  # ties in row 0
    x = Tensor(xd)
    y = Tensor(xd if case == "maximum_ties" else grid(offset=0.5)(rng, (3, 4)))
    g = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    fns = {
        "abs": (lambda g: ops.MaskMul.apply(g, x, mask=np.sign), lambda: np.sign(xd)),
        "leaky": (lambda g: ops.MaskMul.apply(g, x, mask=ops._leaky_slope, slope=0.1),
                  lambda: np.where(xd > 0, 1, 0.1)),
        "clip": (lambda g: ops.MaskMul.apply(g, x, mask=ops._inside, lo=-0.3, hi=0.4),
                 lambda: (xd >= -0.3) & (xd <= 0.4)),
        "maximum": (lambda g: ops.MaskMul.apply(g, x, y, mask=ops._wins, wins=np.greater),
                    lambda: xd > y.data),
        "maximum_ties": (lambda g: ops.MaskMul.apply(g, x, y, mask=ops._wins, wins=np.greater),
                         lambda: np.full(xd.shape, 0.5)),
        "amax_ties": (lambda g: ops.MaskMul.apply(g, x, x.amax(1, keepdim=True), mask=ops._shares, keep=(3, 1),
                                                  axis=(1,)),
                      lambda: (xd == xd.max(1, keepdims=True)) / (xd == xd.max(1, keepdims=True)).sum(1, keepdims=True)),  # noqa: E501
        "setitem": (lambda g: ops.MaskMul.apply(g, mask=ops._unwritten, shape=(3, 4), index=(1, slice(None))),
                    lambda: np.arange(12).reshape(3, 4) // 4 != 1),
    }
    fn, weights = fns[case]
    np.testing.assert_array_equal(fn(g).data, g.data * weights())
    assert gradcheck(fn, [g])
    gg = Tensor(rng.standard_normal((3, 4)))
    (back,) = grad(fn(g), g, grad_outputs=gg, create_graph=True)
    np.testing.assert_array_equal(back.data, gg.data * weights())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_grad_equals_its_composite(reduction):
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    y = np.array([0, 1, 3, 3, 2])
    (g_fused,) = grad(x.cross_entropy(y, reduction=reduction).sum(), x)
    (g_graph,) = grad(x.cross_entropy(y, reduction=reduction).sum(), x, create_graph=True)
    np.testing.assert_allclose(g_fused.data, g_graph.data, rtol=1e-6, atol=1e-7)
    target = np.eye(4, dtype=np.float32)[y]
    soft = np.exp(x.data - x.data.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    scale = 1 / 5 if reduction == "mean" else 1.0
    np.testing.assert_allclose(g_fused.data, (soft - target) * scale, rtol=1e-5, atol=1e-7)
    x64 = Tensor(rng.standard_normal((5, 4)), requires_grad=True)
    assert gradcheck(lambda x: x.cross_entropy(y, reduction=reduction), [x64])
    assert gradcheck(lambda x: grad(x.cross_entropy(y, reduction=reduction).sum(), x, create_graph=True)[0],
                     [x64])


@requires_torch
def test_fused_rules_match_pytorch():
    import torch

    rng = np.random.default_rng(4)
    xd = rng.standard_normal((4, 6)).astype(np.float32)
    xd[1, 2] = xd[1, 3]  # a tie for max
    y = np.array([1, 0, 5, 2])
    cases = [
        (lambda t: t.relu(), lambda t: t.relu()),
        (lambda t: t.leaky_relu(0.2), lambda t: torch.nn.functional.leaky_relu(t, 0.2)),
        (lambda t: t.abs(), lambda t: t.abs()),
        (lambda t: t.clamp(-0.5, 0.5), lambda t: t.clamp(-0.5, 0.5)),
        (lambda t: t.amax(1), lambda t: t.amax(1)),
        (lambda t: t.maximum(t.detach() * 0 + t.detach()[:, :1]), lambda t: t.maximum(t.detach()[:, :1])),
        (lambda t: t.prod(1), lambda t: t.prod(1)),
    ]
    grads_of_grads_match_torch(cases, xd, values=False)
    x = Tensor(xd, requires_grad=True)
    xt = torch.tensor(xd, requires_grad=True)
    (ga,) = grad(x.cross_entropy(y), x)
    (gb,) = torch.autograd.grad(torch.nn.functional.cross_entropy(xt, torch.tensor(y)), xt)
    np.testing.assert_allclose(ga.data, gb.numpy(), rtol=1e-5, atol=1e-7)


def test_prod_grad_equals_its_composite():
    rng = np.random.default_rng(5)
    xd = rng.uniform(0.5, 2.0, (3, 4))
    g = Tensor(rng.standard_normal((3, 1)))
    out = ops.ProdGrad.apply(g, Tensor(xd), axis=1)
    np.testing.assert_array_equal(out.data, g.data * xd.prod(1, keepdims=True) / xd)
    xd[1, 2] = 0.0  # with a zero: the products of the others
    out = ops.ProdGrad.apply(g, Tensor(xd), axis=1)
    others = np.array([[np.prod(np.delete(row, i)) for i in range(4)] for row in xd])
    np.testing.assert_allclose(out.data, g.data * others, rtol=1e-12)


FUSED_COMPOSITES = {  # fused op -> (its composite from primitives, the shapes of its inputs)
    "SigmoidGrad": (lambda g, s: ops.SigmoidGrad.apply(g, s), lambda g, s: g * s * (1 - s), [(3, 4), (3, 4)]),
    "TanhGrad": (lambda g, t: ops.TanhGrad.apply(g, t), lambda g, t: g * (1 - t * t), [(3, 4), (3, 4)]),
    "Linear": (lambda x, w, b: ops.Linear.apply(x, w, b), lambda x, w, b: x @ w.T + b, [(5, 3), (4, 3), (4,)]),
}


@pytest.mark.parametrize("name", sorted(FUSED_COMPOSITES))
def test_fused_op_equals_its_composite_in_value_gradient_and_grad_of_grad(name):
    fused, composite, shapes = FUSED_COMPOSITES[name]
    rng = np.random.default_rng(11)
    inputs = [Tensor(rng.uniform(-0.9, 0.9, s), requires_grad=True) for s in shapes]
    a, b = fused(*inputs), composite(*inputs)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-15)
    r = Tensor(rng.standard_normal(a.shape))
    ga = grad((a * r).sum(), inputs, create_graph=True)
    gb = grad((b * r).sum(), inputs, create_graph=True)
    for x, y in zip(ga, gb):
        np.testing.assert_allclose(x.data, y.data, rtol=1e-12, atol=1e-15)
    gga = grad(sum((x * x).sum() for x in ga), inputs, allow_unused=True)  # Linear's is free of its bias
    ggb = grad(sum((y * y).sum() for y in gb), inputs, allow_unused=True)
    for x, y in zip(gga, ggb):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_allclose(x.data, y.data, rtol=1e-10, atol=1e-13)
    assert gradcheck(fused, inputs)
