"""One piece of math, one cost: `h @ W + b`, `h @ W.T + b` and `h.linear(W, b)` give the same values and
gradients, and `maximum(x, 0)` / `clamp(min=0)` the same as `relu` (ties aside).  Matmul computes the gradient
of an operand stored transposed (W.T) as the transpose of a product, so W gets its gradient in its own layout;
these tests pin that this changes no value, first or second order.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_mnist import Tensor, grad


def _mlp_grads(spelling, x, w, b):
    xs, ws, bs = Tensor(x), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    if spelling == "linear":
        out = xs.linear(ws, bs)
    elif spelling == "matmul_t":
        out = xs @ ws.T + bs
    else:  # W given (out, in): the (in, out) layout is its transpose, a leaf of its own
        ws = Tensor(np.ascontiguousarray(w.T), requires_grad=True)
        out = xs @ ws + bs
    loss = out.relu().cross_entropy(np.array([0, 2, 1, 2]))
    loss.backward()
    gw = ws.grad.data if spelling != "matmul" else ws.grad.data.T
    return loss.data, gw, bs.grad.data


def test_three_spellings_agree():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)
    ref = _mlp_grads("linear", x, w, b)
    for spelling in ("matmul", "matmul_t"):
        for got, want in zip(_mlp_grads(spelling, x, w, b), ref):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_transposed_operand_keeps_its_gradient_semantics():
    rng = np.random.default_rng(1)
    a = Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((5, 4)), requires_grad=True)
    wt = w.T
    wt.retain_grad()  # the transposed tensor's own gradient is wanted: it must come out too
    (a @ wt).sum().backward()
    np.testing.assert_allclose(wt.grad.data, w.grad.data.T)
    np.testing.assert_allclose(w.grad.data, np.ones((2, 3, 5)).reshape(-1, 5).T @ a.data.reshape(-1, 4))
    # a.T on a 3-D tensor reverses all axes: not a matrix transpose, so not taken as one
    (ga,) = grad((a.T.permute(2, 1, 0) @ w.T).sum(), [a])
    np.testing.assert_allclose(ga.data, np.ones((2, 3, 5)) @ w.data)


@pytest.mark.parametrize("ta,tb", [(True, False), (False, True), (True, True)])
def test_transposed_operands_second_order(ta, tb):
    rng = np.random.default_rng(2)
    a = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = Tensor(rng.standard_normal((4, 2)), requires_grad=True)
    a2, b2 = Tensor(a.data.T.copy(), requires_grad=True), Tensor(b.data.T.copy(), requires_grad=True)
    left, right = (a2.T if ta else a), (b2.T if tb else b)
    out = ((left @ right).tanh() ** 2).sum()
    ga, gb = grad(out, [a2 if ta else a, b2 if tb else b], create_graph=True)
    h = grad((ga ** 2).sum() + (gb ** 3).sum(), [a2 if ta else a, b2 if tb else b])
    ref_a, ref_b = Tensor(a.data.copy(), requires_grad=True), Tensor(b.data.copy(), requires_grad=True)
    out = ((ref_a @ ref_b).tanh() ** 2).sum()
    ra, rb = grad(out, [ref_a, ref_b], create_graph=True)
    ra, rb = (ra.T if ta else ra), (rb.T if tb else rb)
    rh = grad((ra ** 2).sum() + (rb ** 3).sum(), [ref_a, ref_b])
    np.testing.assert_allclose(h[0].data, rh[0].data.T if ta else rh[0].data, rtol=1e-10)
    np.testing.assert_allclose(h[1].data, rh[1].data.T if tb else rh[1].data, rtol=1e-10)


@pytest.mark.parametrize("spelling", ["relu", "maximum", "maximum_rev", "clamp", "minimum_neg"])
def test_relu_spellings_agree(spelling):
    x = Tensor(np.array([[-1.0, 2.0, 0.5], [3.0, -0.2, -4.0]]), requires_grad=True)
    f = {"relu": lambda x: x.relu(), "maximum": lambda x: x.maximum(0.0),
         "maximum_rev": lambda x: Tensor(np.zeros(())).maximum(x), "clamp": lambda x: x.clamp(0.0),
         "minimum_neg": lambda x: -((-x).minimum(0.0))}[spelling]
    out = f(x)
    (out * Tensor(np.arange(6.0).reshape(2, 3))).sum().backward()
    np.testing.assert_allclose(out.data, np.maximum(x.data, 0))
    np.testing.assert_allclose(x.grad.data, (x.data > 0) * np.arange(6.0).reshape(2, 3))


def test_maximum_ties_still_split():
    x = Tensor(np.array([0.0, 1.0, -1.0]), requires_grad=True)
    y = Tensor(np.array([0.0, 0.0, 0.0]), requires_grad=True)
    x.maximum(y).sum().backward()
    np.testing.assert_allclose(x.grad.data, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(y.grad.data, [0.5, 0.0, 1.0])


def test_transposed_operand_against_a_batched_one():
    """A transposed 2-D operand next to a batched one takes the plain rule (the gradient is summed over the batch)."""
    rng = np.random.default_rng(3)
    a = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal((2, 4, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    (a.T @ b).sum().backward()
    (b.transpose(-1, -2) @ a @ w.T).sum().backward()
    ones = np.ones((2, 3, 5))
    want_a = (b.data @ ones.transpose(0, 2, 1)).sum(0) + (b.data @ np.ones((2, 5, 5)) @ w.data).sum(0)
    np.testing.assert_allclose(a.grad.data, want_a, rtol=1e-12)
    want_w = (np.ones((5, 5)) @ (b.data.transpose(0, 2, 1) @ a.data)).sum(0)
    np.testing.assert_allclose(w.grad.data, want_w, rtol=1e-12)
