"""Autograd semantics (PyTorch's): backward, accumulation, graph release, create_graph, grad(), no_grad, detach,
higher-order gradients and Hessian-vector products, and the gradient rules at kinks."""

from __future__ import annotations

import gc
import sys
import warnings
import weakref

import numpy as np
import pytest
from helpers import grid, requires_torch

import tinygrad_mnist
from tinygrad_mnist import Tensor, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from tinygrad_mnist.gradcheck import gradcheck

RNG = np.random.default_rng(1)


def t64(*shape, low=-1.0, high=1.0, requires_grad=True):
    return Tensor(RNG.uniform(low, high, shape), requires_grad=requires_grad)


# ---------------------------------------------------------------------------
# backward
# ---------------------------------------------------------------------------


def test_scalar_backward_fills_leaf_grads():
    x = t64(3)
    y = (x * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)
    assert isinstance(x.grad, Tensor) and x.grad.shape == x.shape


def test_size_one_non_scalar_backward_is_implicit():
    x = t64(1, 1)
    (x * 3).backward()
    np.testing.assert_allclose(x.grad.data, [[3.0]])


@pytest.mark.parametrize("kind", ["ndarray", "Tensor", "list"])
def test_backward_with_explicit_gradient(kind):
    x = t64(2, 3)
    y = x * x
    g = RNG.standard_normal((2, 3))
    y.backward({"ndarray": g, "Tensor": Tensor(g), "list": g.tolist()}[kind])
    np.testing.assert_allclose(x.grad.data, 2 * x.data * g)


def test_gradient_of_other_dtype_is_cast():
    x = Tensor([1.0, 2.0], requires_grad=True)  # float32
    (x * 2).backward(np.array([1.0, 1.0]))  # float64 gradient
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.data, [2, 2])


def test_reuse_accumulates():
    x = t64(4)
    y = (x * x + x).sum()  # x used three times
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data + 1)


def test_two_backwards_accumulate_and_grad_can_be_reset():
    x = t64(3)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, [5, 5, 5])
    x.grad = None
    assert x.grad is None
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad.data, [4, 4, 4])


def test_grad_assignment():
    x = t64(2)
    x.grad = np.array([1.0, 2.0])
    assert isinstance(x.grad, Tensor) and x.grad.dtype == x.dtype
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, [4, 5])
    x.grad = Tensor(np.zeros(2))
    np.testing.assert_array_equal(x.grad.data, [0, 0])
    with pytest.raises(ValueError, match=r"shape"):
        x.grad = np.zeros(3)


def test_diamond():
    x = t64(3)
    a = x * 2
    b = a.exp()
    c = a * a
    d = (b + c).sum()
    d.backward()
    np.testing.assert_allclose(x.grad.data, 2 * (np.exp(2 * x.data) + 4 * x.data), rtol=1e-12)


def test_shared_subexpression_several_paths():
    x = t64(2, 2)
    h = x.tanh()
    out = (h * h.sigmoid() + h.exp() - h / 2).sum()
    out.backward()
    th = np.tanh(x.data)
    s = 1 / (1 + np.exp(-th))
    dh = s + th * s * (1 - s) + np.exp(th) - 0.5
    np.testing.assert_allclose(x.grad.data, dh * (1 - th ** 2), rtol=1e-12)


def test_intermediates_keep_no_grad_unless_retained():
    x = t64(3)
    h = x * 2
    k = h * 3
    k.retain_grad()
    loss = (k * k).sum()
    loss.backward()
    assert h.grad is None
    np.testing.assert_allclose(k.grad.data, 2 * k.data)
    np.testing.assert_allclose(x.grad.data, 2 * k.data * 6)
    assert loss.grad is None


def test_constants_get_no_grad():
    x = t64(3)
    c = Tensor(np.ones(3))
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad


def test_requires_grad_propagates():
    a, b = Tensor([1.0]), Tensor([2.0], requires_grad=True)
    assert not (a * 2).requires_grad and (a * 2).grad_fn is None
    assert (a * b).requires_grad and (a * b).grad_fn is not None and not (a * b).is_leaf


def test_grads_do_not_alias():
    # two leaves reached by the same incoming gradient (add) get separate memory,
    # and a leaf's .grad never shares memory with the gradient the caller passed in
    x, w = t64(2, 3), t64(2, 3)
    g = np.ones((2, 3))
    (x + w).backward(g)
    assert not np.shares_memory(x.grad.data, w.grad.data)
    assert not np.shares_memory(x.grad.data, g) and not np.shares_memory(w.grad.data, g)
    x.grad.data[...] = 5.0
    np.testing.assert_array_equal(w.grad.data, 1.0)
    np.testing.assert_array_equal(g, 1.0)
    gt = Tensor(np.ones((2, 3)))
    y = t64(2, 3)
    (y * 1.0 + 0.0).reshape(6).reshape(2, 3).backward(gt)
    y.grad.data[...] = 7.0
    np.testing.assert_array_equal(gt.data, 1.0)


def test_long_chain_no_recursion_error():
    limit = sys.getrecursionlimit()
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.00001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.00001 ** 100_000] * 2, rtol=1e-9)
    assert sys.getrecursionlimit() == limit


def test_long_chain_without_backward_can_be_freed():
    limit = sys.getrecursionlimit()
    x = Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    r = weakref.ref(y)
    del y
    gc.collect()
    assert r() is None
    assert sys.getrecursionlimit() == limit


# ---------------------------------------------------------------------------
# graph release and retain_graph
# ---------------------------------------------------------------------------


def test_second_backward_through_released_graph_raises():
    x = t64(3)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = t64(3)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * np.exp(x.data))
    with pytest.raises(RuntimeError, match="released"):
        y.backward()


def test_backward_releases_intermediates():
    x = t64(100)
    h = x.exp()
    r = weakref.ref(h)
    y = (h * 2).sum()
    del h
    assert r() is not None  # the graph holds it
    y.backward()
    gc.collect()
    assert r() is None  # released with the graph


# ---------------------------------------------------------------------------
# create_graph and higher order
# ---------------------------------------------------------------------------


def test_create_graph_then_backward_of_grad():
    x = Tensor(3.0, requires_grad=True)
    y = x ** 3
    y.backward(create_graph=True)
    assert x.grad.item() == pytest.approx(27.0)
    assert x.grad.requires_grad and x.grad.grad_fn is not None
    x.grad.backward()
    assert x.grad.item() == pytest.approx(27.0 + 18.0)  # d(3x^2)/dx = 6x = 18 accumulates on top


@requires_torch
def test_create_graph_then_backward_of_grad_matches_torch():
    import torch

    ours = Tensor(np.array(3.0), requires_grad=True)
    (ours ** 3).backward(create_graph=True)
    ours.grad.backward()
    ref = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the reference cycle create_graph makes
        (ref ** 3).backward(create_graph=True)
        ref.grad.backward()
    assert ours.grad.item() == pytest.approx(ref.grad.item(), rel=1e-12)
    assert ref.grad.item() == pytest.approx(45.0)


def test_create_graph_keeps_the_graph_on_every_leaf():
    # x and w receive the very same incoming gradient (through add); both .grads must stay differentiable
    x, w = t64(3), t64(3)
    ((x + w) ** 2).sum().backward(create_graph=True)
    for t in (x, w):
        assert t.grad.requires_grad and t.grad.grad_fn is not None
        np.testing.assert_allclose(t.grad.data, 2 * (x.data + w.data))
    assert not np.shares_memory(x.grad.data, w.grad.data)
    gx, gw = grad((x.grad * w.grad).sum(), [x, w])  # sum 4 (x + w)^2
    np.testing.assert_allclose(gx.data, 8 * (x.data + w.data))
    np.testing.assert_allclose(gw.data, 8 * (x.data + w.data))


def test_without_create_graph_gradient_has_no_graph():
    x = t64(3)
    (x.tanh() * x).sum().backward()
    assert not x.grad.requires_grad and x.grad.grad_fn is None
    (g,) = grad((x.tanh() * x).sum(), [x])
    assert not g.requires_grad and g.grad_fn is None


def test_create_graph_gradient_of_squared_gradient_norm():
    # d/dx |grad f|^2 for f = sum(x^3): grad f = 3x^2, |.|^2 = 9 sum x^4, derivative 36 x^3
    x = t64(4)
    (g,) = grad((x ** 3).sum(), x, create_graph=True)
    (gg,) = grad((g * g).sum(), x)
    np.testing.assert_allclose(gg.data, 36 * x.data ** 3, rtol=1e-12)


def grad_of(f):
    """x1..xn -> the flattened, concatenated gradient of the scalar f(x1..xn), built with create_graph."""

    def g(*xs):
        gs = grad(f(*xs), list(xs), create_graph=True)
        return Tensor.cat([t.reshape(-1) for t in gs])

    return g


W = np.random.default_rng(5).uniform(0.5, 1.5, 64)
_COND = np.random.default_rng(6).random((3, 4)) > 0.5


def weights(shape):
    n = int(np.prod(shape))
    return Tensor(W[:n].reshape(shape))


SECOND_ORDER = {
    "tanh": ([(3, 4)], lambda x: (x.tanh() * weights(x.shape)).sum(), None),
    "sigmoid": ([(3, 4)], lambda x: (x.sigmoid() * weights(x.shape)).sum(), None),
    "exp": ([(3, 4)], lambda x: (x.exp() * weights(x.shape)).sum(), None),
    "log": ([(3, 4)], lambda x: (x.log() * weights(x.shape)).sum(), "positive"),
    "sqrt": ([(3, 4)], lambda x: (x.sqrt() * weights(x.shape)).sum(), "positive"),
    "mul": ([(3, 4), (4,)], lambda x, y: (x * y * x * weights((3, 4))).sum(), None),
    "div": ([(3, 4), (3, 1)], lambda x, y: (x / y * weights((3, 4))).sum(), "positive"),
    "pow": ([(3, 4), (3, 4)], lambda x, y: (x ** y * weights((3, 4))).sum(), "positive"),
    "pow-scalar": ([(3, 4)], lambda x: (x ** 3 * weights((3, 4))).sum(), None),
    "matmul": ([(2, 3), (3, 4)], lambda x, y: ((x @ y).tanh() * weights((2, 4))).sum(), None),
    "matmul-batched": ([(2, 2, 3), (3,)], lambda x, y: ((x @ y) ** 2).sum(), None),
    "log_softmax": ([(3, 4)], lambda x: (x.log_softmax() * weights(x.shape)).sum(), None),
    "softmax": ([(3, 4)], lambda x: (x.softmax(0) * weights(x.shape)).sum(), None),
    "cross_entropy": ([(3, 4)], lambda x: x.cross_entropy(np.array([0, 3, 1])), None),
    "conv2d": ([(1, 2, 4, 4), (2, 2, 2, 2), (2,)],
               lambda x, w, b: (x.conv2d(w, b, stride=1, padding=1).tanh() * weights((1, 2, 5, 5))).sum(), None),
    "max": ([(3, 4)], lambda x: (x.amax(1) ** 2 * weights((3,))).sum(), "grid"),
    "max-all": ([(3, 4)], lambda x: x.max() ** 3, "grid"),
    "min": ([(3, 4)], lambda x: (x.amin(0) ** 2 * weights((4,))).sum(), "grid"),
    "sum": ([(3, 4)], lambda x: (x.sum(0) ** 2 * weights((4,))).sum(), None),
    "mean": ([(3, 4)], lambda x: (x.mean(1, keepdim=True) ** 3 * weights((3, 1))).sum(), None),
    "var": ([(3, 4)], lambda x: (x.var(1) * weights((3,))).sum(), None),
    "std": ([(3, 4)], lambda x: (x.std(0) * weights((4,))).sum(), None),
    "logsumexp": ([(3, 4)], lambda x: (x.logsumexp(1) * weights((3,))).sum(), None),
    "getitem": ([(3, 4)], lambda x: (x[np.array([0, 2, 0])] ** 3 * weights((3, 4))).sum(), None),
    "getitem-slice": ([(3, 4)], lambda x: (x[1:, ::2] ** 2 * x[:2, 1::2]).sum(), None),
    "where": ([(3, 4)], lambda x: (Tensor.where(_COND, x * x, x.exp()) * weights((3, 4))).sum(), None),
    "relu-times-x": ([(3, 4)], lambda x: (x.relu() * x * weights((3, 4))).sum(), "away0"),
    "maximum": ([(3, 4), (4,)], lambda x, y: (x.maximum(y) ** 2).sum(), "grid"),
    "permute-reshape": ([(2, 3, 2)], lambda x: (x.permute(2, 0, 1).reshape(4, 3) ** 2 * weights((4, 3))).sum(), None),
    "pad-cat": ([(2, 2), (1, 2)], lambda x, y: (Tensor.cat([x.pad(((1, 0), (0, 1))), y.pad(((0, 0), (1, 0)))]) ** 3)
                .sum(), None),
    "avg_pool2d": ([(1, 1, 4, 4)], lambda x: (x.avg_pool2d(2) ** 2).sum(), None),
    "max_pool2d": ([(1, 1, 4, 4)], lambda x: (x.max_pool2d(2, stride=1) ** 2).sum(), "grid"),
}


def _inputs(shapes, kind):
    rng = np.random.default_rng(11)
    out = []
    for i, s in enumerate(shapes):
        if kind == "positive":
            a = rng.uniform(0.5, 1.5, s)
        elif kind == "grid":
            a = grid(0.1, 0.5 * i)(rng, s)
        elif kind == "away0":
            a = rng.uniform(0.2, 1.0, s) * rng.choice([-1, 1], s)
        else:
            a = rng.uniform(-1, 1, s)
        out.append(Tensor(a, requires_grad=True))
    return out


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_grad_of_grad_gradcheck(name):
    shapes, f, kind = SECOND_ORDER[name]
    xs = _inputs(shapes, kind)
    assert gradcheck(f, xs)  # first order
    assert gradcheck(grad_of(f), xs)  # second order: the Jacobian of the gradient is the Hessian


def hessian_numeric(f, x, eps=1e-5):
    """Central differences of the (first-order) gradient."""
    n = x.numel()
    flat = x.data.reshape(-1)
    cols = []
    for i in range(n):
        old = flat[i]
        flat[i] = old + eps
        gp = grad(f(x), x)[0].data.ravel().copy()
        flat[i] = old - eps
        gm = grad(f(x), x)[0].data.ravel().copy()
        flat[i] = old
        cols.append((gp - gm) / (2 * eps))
    return np.stack(cols, axis=1)


def hvp(f, x, v):
    (g,) = grad(f(x), x, create_graph=True)
    (h,) = grad((g * Tensor(v)).sum(), x)
    return h.data


def test_hessian_vector_product_vs_analytic():
    n = 5
    A = np.random.default_rng(2).standard_normal((n, n))

    def f(x):
        return (x @ (Tensor(A) @ x)) * 0.5 + x.exp().sum() + x.tanh().sum()

    x = Tensor(np.random.default_rng(3).uniform(-1, 1, n), requires_grad=True)
    th = np.tanh(x.data)
    H = 0.5 * (A + A.T) + np.diag(np.exp(x.data) - 2 * th * (1 - th ** 2))
    for k in range(3):
        v = np.random.default_rng(10 + k).standard_normal(n)
        np.testing.assert_allclose(hvp(f, x, v), H @ v, rtol=1e-10, atol=1e-12)
    assert x.grad is None  # grad() leaves .grad alone
    np.testing.assert_allclose(hessian_numeric(f, x), H, rtol=1e-6, atol=1e-7)


def test_hessian_vector_product_vs_finite_differences():
    def f(x):
        h = (x.reshape(2, 3) @ Tensor(W[:12].reshape(3, 4))).tanh()
        return h.log_softmax().sum() + (h * h).mean()

    x = Tensor(np.random.default_rng(4).uniform(-1, 1, 6), requires_grad=True)
    H = hessian_numeric(f, x)
    np.testing.assert_allclose(H, H.T, atol=1e-7)
    v = np.random.default_rng(5).standard_normal(6)
    np.testing.assert_allclose(hvp(f, x, v), H @ v, rtol=1e-6, atol=1e-7)


@requires_torch
def test_hessian_vector_product_matches_torch():
    import torch

    a = np.random.default_rng(6).uniform(-1, 1, (3, 4))
    v = np.random.default_rng(7).standard_normal((3, 4))

    def f(x):
        return (x.sigmoid() * x).log_softmax(1).sum() + (x ** 3).sum()

    ours = hvp(f, Tensor(a, requires_grad=True), v)
    ta = torch.tensor(a, requires_grad=True)
    _, ref = torch.autograd.functional.hvp(lambda x: (x.sigmoid() * x).log_softmax(1).sum() + (x ** 3).sum(),
                                           ta, torch.tensor(v))
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# grad()
# ---------------------------------------------------------------------------


def test_grad_returns_tuple_and_leaves_dot_grad_alone():
    x, y = t64(3), t64(3)
    out = (x * y).sum()
    res = grad(out, [x, y])
    assert isinstance(res, tuple) and len(res) == 2
    np.testing.assert_allclose(res[0].data, y.data)
    np.testing.assert_allclose(res[1].data, x.data)
    assert x.grad is None and y.grad is None
    single = grad((x * x).sum(), x)
    assert isinstance(single, tuple) and len(single) == 1
    np.testing.assert_allclose(single[0].data, 2 * x.data)


def test_grad_does_not_change_existing_grad():
    x = t64(3)
    x.grad = np.full(3, 9.0)
    grad((x * x).sum(), [x])
    np.testing.assert_array_equal(x.grad.data, 9.0)


def test_grad_with_grad_outputs_and_several_outputs():
    x = t64(2, 3)
    go = RNG.standard_normal((2, 3))
    (g,) = grad(x * x, [x], grad_outputs=go)
    np.testing.assert_allclose(g.data, 2 * x.data * go)
    (g,) = grad(x * x, [x], grad_outputs=Tensor(go))
    np.testing.assert_allclose(g.data, 2 * x.data * go)
    (g,) = grad([(x * 2).sum(), (x * x).sum()], [x])
    np.testing.assert_allclose(g.data, 2 + 2 * x.data)
    (g,) = grad([x * 2, x.exp()], [x], grad_outputs=[go, np.ones((2, 3))])
    np.testing.assert_allclose(g.data, 2 * go + np.exp(x.data))
    with pytest.raises(RuntimeError, match="scalar"):
        grad(x * x, [x])


def test_grad_retain_graph_and_create_graph():
    x = t64(3)
    y = (x.exp() * x).sum()
    grad(y, [x])
    with pytest.raises(RuntimeError, match="released"):
        grad(y, [x])
    z = (x.exp() * x).sum()
    a = grad(z, [x], retain_graph=True)[0].data
    b = grad(z, [x])[0].data
    np.testing.assert_array_equal(a, b)
    (g,) = grad((x ** 3).sum(), [x], create_graph=True)
    assert g.requires_grad
    (gg,) = grad(g.sum(), [x])
    np.testing.assert_allclose(gg.data, 6 * x.data)
    assert x.grad is None


def test_grad_unused_input():
    x, y = t64(2), t64(2)
    with pytest.raises(RuntimeError, match="input 1"):
        grad((x * 2).sum(), [x, y])
    gx, gy = grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gy is None
    np.testing.assert_array_equal(gx.data, [2, 2])


def test_grad_of_intermediate():
    x = t64(3)
    h = x * 2
    (gh,) = grad((h * h).sum(), [h])
    np.testing.assert_allclose(gh.data, 2 * h.data)
    assert h.grad is None and x.grad is None


# ---------------------------------------------------------------------------
# no_grad, detach
# ---------------------------------------------------------------------------


def test_no_grad_records_nothing():
    x = t64(3)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp().sum()
        assert not y.requires_grad and y.grad_fn is None
        with enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert is_grad_enabled()
    assert (x * 2).requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_restores_after_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0  # noqa: B018
    assert is_grad_enabled()
    with set_grad_enabled(False):
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_no_grad_in_place_update_pattern():
    w = t64(3)
    (w * w).sum().backward()
    with no_grad():
        w2 = w - w.grad * 0.1
    assert not w2.requires_grad
    np.testing.assert_allclose(w2.data, w.data * 0.8)


def test_detach_cuts_the_graph():
    x = t64(3)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    np.testing.assert_array_equal(d.data, x.data)
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, x.data)  # only through the non-detached factor
    y = x.exp()
    z = (y.detach() * y).sum()
    x.grad = None
    z.backward()
    np.testing.assert_allclose(x.grad.data, np.exp(x.data) ** 2)


# ---------------------------------------------------------------------------
# gradients at kinks and ties (PyTorch's conventions), and analytic rules
# ---------------------------------------------------------------------------


def _grad_at(f, values):
    x = Tensor(np.array(values, np.float32), requires_grad=True)
    f(x).sum().backward()
    return x.grad.data


def test_relu_abs_leaky_at_zero():
    np.testing.assert_array_equal(_grad_at(lambda x: x.relu(), [-1.0, 0.0, 2.0]), [0, 0, 1])
    np.testing.assert_array_equal(_grad_at(lambda x: x.abs(), [-1.0, 0.0, 2.0]), [-1, 0, 1])
    np.testing.assert_allclose(_grad_at(lambda x: x.leaky_relu(0.1), [-1.0, 0.0, 2.0]), [0.1, 0.1, 1])


def test_clip_passes_gradient_at_the_bounds():
    np.testing.assert_array_equal(_grad_at(lambda x: x.clip(0.0, 1.0), [-0.5, 0.0, 0.5, 1.0, 1.5]), [0, 1, 1, 1, 0])


def test_maximum_minimum_ties_split_equally():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = Tensor(np.array([1.0, 3.0, 2.0]), requires_grad=True)
    a.maximum(b).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [0.5, 0, 1])
    np.testing.assert_array_equal(b.grad.data, [0.5, 1, 0])
    a.grad = b.grad = None
    a.minimum(b).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [0.5, 1, 0])
    np.testing.assert_array_equal(b.grad.data, [0.5, 0, 1])


def test_max_min_reduction_ties_split_equally():
    data = np.array([[1.0, 5.0, 5.0, 5.0], [2.0, 0.0, 2.0, -1.0]])
    np.testing.assert_allclose(_grad_at(lambda x: x.amax(1), data), [[0, 1 / 3, 1 / 3, 1 / 3], [0.5, 0, 0.5, 0]])
    # max(dim) returns (values, indices) and the gradient goes to the element at indices, as torch.max(dim)
    np.testing.assert_allclose(_grad_at(lambda x: x.max(1).values, data), [[0, 1, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_allclose(_grad_at(lambda x: x.max(), data), [[0, 1 / 3, 1 / 3, 1 / 3], [0, 0, 0, 0]])
    np.testing.assert_allclose(_grad_at(lambda x: x.amin(0), data), [[1, 0, 0, 0], [0, 1, 1, 1]])
    np.testing.assert_allclose(_grad_at(lambda x: x.min(), np.ones((2, 2))), np.full((2, 2), 0.25))
    np.testing.assert_allclose(_grad_at(lambda x: x.max_pool2d(2), np.ones((1, 1, 2, 2))), np.full((1, 1, 2, 2), 0.25))


def test_getitem_repeated_indices_accumulate():
    x = t64(4)
    (x[np.array([0, 0, 3, -1, 0])] * Tensor(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))).sum().backward()
    np.testing.assert_allclose(x.grad.data, [8, 0, 0, 7])
    y = t64(3, 2)
    y[[1, 1]].sum().backward()
    np.testing.assert_allclose(y.grad.data, [[0, 0], [2, 2], [0, 0]])


def test_getitem_bool_mask_gradient():
    x = t64(3, 4)
    mask = x.data > 0
    (x[mask] * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.where(mask, 3.0, 0.0))


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    logits = np.random.default_rng(0).standard_normal((5, 4))
    labels = np.array([0, 3, 3, 1, 2])
    x = Tensor(logits, requires_grad=True)
    x.cross_entropy(labels).backward()
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(x.grad.data, (p - np.eye(4)[labels]) / 5, rtol=1e-10, atol=1e-14)
    x.grad = None
    x.cross_entropy(Tensor(labels), reduction="sum").backward()
    np.testing.assert_allclose(x.grad.data, p - np.eye(4)[labels], rtol=1e-10, atol=1e-14)


def test_gradient_dtype_follows_input_dtype():
    for dt in (np.float32, np.float64):
        x = Tensor(np.ones((2, 3), dt), requires_grad=True)
        w = Tensor(np.ones((3, 2), dt), requires_grad=True)
        ((x @ w).tanh().log_softmax() * 2.0).sum().backward()
        assert x.grad.dtype == dt and w.grad.dtype == dt


def test_dropout_gradient_uses_the_same_mask():
    tinygrad_mnist.manual_seed(1)
    x = Tensor(np.ones((50, 50)), requires_grad=True)
    out = x.dropout(0.3)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, out.data)  # d(mask * x / 0.7)/dx = mask / 0.7 = out when x = 1
