"""In-place ops (x[i] = v, add_ ... clamp_, += -= *= /=) and their autograd rules, as PyTorch has them.

Each op is checked on a non-leaf tensor in a graph: its value and the gradients of the input and of the
written value against PyTorch, and numerically (float64 central differences).  Then the rules: leaves
only under no_grad (the manual SGD loop), version counters that make a backward refuse values written
after they were saved, views that rebase their base, and every error message.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import HAVE_TORCH, away, make_inputs, positive, requires_torch, uniform

from tinygrad_mnist import Tensor, grad, no_grad
from tinygrad_mnist.gradcheck import gradcheck

if HAVE_TORCH:
    import torch


def raises(exc, *parts):
    """pytest.raises whose message must contain every one of `parts` (literally)."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(p)})" for p in parts))


# ---------------------------------------------------------------------------
# every op, on a non-leaf: value and gradients vs PyTorch and numerically
# ---------------------------------------------------------------------------

X_SHAPE = (3, 4)
MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])
LO, HI = -0.3, 0.45  # clamp bounds; y = 1.5 * x, so x keeps away from -0.2 and 0.3


def _iadd(y, v):
    y += v


def _isub(y, v):
    y -= v


def _imul(y, v):
    y *= v


def _idiv(y, v):
    y /= v


def _torch_index(i):
    if isinstance(i, Tensor):
        return torch.as_tensor(i.data)
    if isinstance(i, np.ndarray):
        return torch.as_tensor(i)
    if isinstance(i, tuple):
        return tuple(_torch_index(j) for j in i)
    return i


def _setitem(index):
    def engine(y, v):
        y[index] = v

    def reference(y, v):
        y[_torch_index(index)] = v

    return engine, reference


# name: (engine op, torch op, shape of the written value or None, init of the value)
CASES = {
    "setitem_int": (*_setitem(1), (4,), None),
    "setitem_negative_int": (*_setitem(-1), (1, 4), None),
    "setitem_slice": (*_setitem(slice(0, 2)), (1, 4), None),
    "setitem_tuple": (*_setitem((1, slice(1, 3))), (2,), None),
    "setitem_mask": (*_setitem(MASK), (), None),
    "setitem_mask_tensor": (*_setitem(Tensor(MASK)), (6,), None),
    "setitem_int_array": (*_setitem(np.array([2, 0])), (2, 4), None),
    "setitem_int_list": (*_setitem([0, 2]), (4,), None),
    "setitem_int_tensor": (*_setitem(Tensor(np.array([1]))), (1, 4), None),
    "setitem_array_pair": (*_setitem((np.array([0, 2]), np.array([3, 1]))), (2,), None),
    "add_": (lambda y, v: y.add_(v), lambda y, v: y.add_(v), (4,), None),
    "add_alpha": (lambda y, v: y.add_(v, alpha=2.0), lambda y, v: y.add_(v, alpha=2.0), (3, 1), None),
    "sub_": (lambda y, v: y.sub_(v), lambda y, v: y.sub_(v), (3, 4), None),
    "sub_alpha": (lambda y, v: y.sub_(v, alpha=0.5), lambda y, v: y.sub_(v, alpha=0.5), (4,), None),
    "mul_": (lambda y, v: y.mul_(v), lambda y, v: y.mul_(v), (4,), None),
    "div_": (lambda y, v: y.div_(v), lambda y, v: y.div_(v), (3, 1), positive()),
    "iadd": (_iadd, _iadd, (4,), None),
    "isub": (_isub, _isub, (3, 4), None),
    "imul": (_imul, _imul, (), None),
    "itruediv": (_idiv, _idiv, (4,), positive()),
    "add_scalar": (lambda y, v: y.add_(0.5), lambda y, v: y.add_(0.5), None, None),
    "mul_scalar": (lambda y, v: y.mul_(-2.0), lambda y, v: y.mul_(-2.0), None, None),
    "div_scalar": (lambda y, v: y.div_(4.0), lambda y, v: y.div_(4.0), None, None),
    "zero_": (lambda y, v: y.zero_(), lambda y, v: y.zero_(), None, None),
    "fill_": (lambda y, v: y.fill_(v), lambda y, v: y.fill_(v), (), None),
    "fill_number": (lambda y, v: y.fill_(2.5), lambda y, v: y.fill_(2.5), None, None),
    "copy_": (lambda y, v: y.copy_(v), lambda y, v: y.copy_(v), (4,), None),
    "copy_full": (lambda y, v: y.copy_(v), lambda y, v: y.copy_(v), (3, 4), None),
    "clamp_min": (lambda y, v: y.clamp_(min=LO), lambda y, v: y.clamp_(min=LO), None, None),
    "clamp_max": (lambda y, v: y.clamp_(max=HI), lambda y, v: y.clamp_(max=HI), None, None),
    "clamp_both": (lambda y, v: y.clamp_(LO, HI), lambda y, v: y.clamp_(LO, HI), None, None),
    "clamp_tensor_min": (lambda y, v: y.clamp_(min=v), lambda y, v: y.clamp_(min=v), (4,), None),
    "clamp_tensor_max": (lambda y, v: y.clamp_(max=v), lambda y, v: y.clamp_(max=v), (3, 1), None),
    "relu_": (lambda y, v: y.relu_(), lambda y, v: y.relu_(), None, None),
    "sigmoid_": (lambda y, v: y.sigmoid_(), lambda y, v: y.sigmoid_(), None, None),
    "tanh_": (lambda y, v: y.tanh_(), lambda y, v: y.tanh_(), None, None),
    "exp_": (lambda y, v: y.exp_(), lambda y, v: y.exp_(), None, None),
    "abs_log_": (lambda y, v: y.abs_().add_(0.5).log_(), lambda y, v: y.abs_().add_(0.5).log_(), None, None),
    "abs_sqrt_": (lambda y, v: y.abs_().add_(0.5).sqrt_(), lambda y, v: y.abs_().add_(0.5).sqrt_(), None, None),
    "abs_": (lambda y, v: y.abs_(), lambda y, v: y.abs_(), None, None),
    "neg_": (lambda y, v: y.neg_(), lambda y, v: y.neg_(), None, None),
    "pow_": (lambda y, v: y.pow_(3), lambda y, v: y.pow_(3), None, None),
    "masked_fill_": (lambda y, v: y.masked_fill_(MASK, v), lambda y, v: y.masked_fill_(torch.as_tensor(MASK), v),
                     (), None),
    "masked_fill_number": (lambda y, v: y.masked_fill_(MASK[0], -1.0),
                           lambda y, v: y.masked_fill_(torch.as_tensor(MASK[0]), -1.0), None, None),
    "clamp_min_": (lambda y, v: y.clamp_min_(LO), lambda y, v: y.clamp_min_(LO), None, None),
    "clamp_max_": (lambda y, v: y.clamp_max_(HI), lambda y, v: y.clamp_max_(HI), None, None),
    "setitem_then_add": (lambda y, v: (y.__setitem__(0, v), y.add_(v)),
                         lambda y, v: (y.__setitem__(0, v), y.add_(v)), (4,), None),
    "index_iadd": (lambda y, v: y.__setitem__(slice(1, 3), y[1:3].__iadd__(v)),  # y[1:3] += v
                   lambda y, v: y.__setitem__(slice(1, 3), y[1:3].__iadd__(v)), (4,), None),
    "index_imul_list": (lambda y, v: y.__setitem__([0, 2], y[[0, 2]].__imul__(v)),  # y[[0, 2]] *= v
                        lambda y, v: y.__setitem__([0, 2], y[[0, 2]].__imul__(v)), (4,), None),
    "mask_isub": (lambda y, v: y.__setitem__(MASK, y[MASK].__isub__(v)),  # y[mask] -= v
                  lambda y, v: y.__setitem__(torch.as_tensor(MASK), y[torch.as_tensor(MASK)].__isub__(v)), (), None),
}

X_INIT = away(-0.2, 0.3, gap=0.05)


def _inputs(name):
    _, _, v_shape, v_init = CASES[name]
    shapes = [X_SHAPE] + ([v_shape] if v_shape is not None else [])
    return make_inputs(shapes, [X_INIT] + ([v_init or uniform()] if v_shape is not None else []))


def _weights():
    return np.linspace(-1.0, 2.0, 12).reshape(X_SHAPE)


def _engine_fn(name):
    op = CASES[name][0]

    def fn(x, v=None):
        y = x * 1.5  # a non-leaf: the op rebases it
        op(y, v)
        return y * Tensor(_weights().astype(x.dtype)) + x  # x is also used directly, after the write

    return fn


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_float64(name):
    arrays = _inputs(name)
    inputs = [Tensor(a, requires_grad=True) for a in arrays]
    assert gradcheck(_engine_fn(name), inputs)


@requires_torch
@pytest.mark.parametrize("name", list(CASES))
def test_value_and_grads_match_torch(name):
    arrays = _inputs(name)
    fn = _engine_fn(name)
    ours = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    out = fn(*ours)
    g = np.random.default_rng(0).standard_normal(X_SHAPE).astype(np.float32)
    out.backward(g)

    theirs = [torch.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    y = theirs[0] * 1.5
    CASES[name][1](y, *(theirs[1:] or [None]))
    ref = y * torch.tensor(_weights().astype(np.float32)) + theirs[0]
    ref.backward(torch.tensor(g))

    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_same_object_and_same_memory(name):
    arrays = _inputs(name)
    x = Tensor(arrays[0].astype(np.float32), requires_grad=True)
    v = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays[1:]]
    y = x * 1.5
    data, alias = y.data, y.data.reshape(-1)  # a user's view of the memory
    ref = Tensor(y.data.copy())  # the same op on a constant, for the expected values
    CASES[name][0](ref, *([t.detach() for t in v] or [None]))
    same = y
    CASES[name][0](y, *(v or [None]))
    assert y is same and y.data is data
    np.testing.assert_array_equal(alias.reshape(X_SHAPE), ref.data)  # the alias saw the write
    np.testing.assert_array_equal(y.data, ref.data)
    assert y.grad_fn is not None and not y.is_leaf


@pytest.mark.parametrize("method,args", [("add_", (1.0,)), ("sub_", (1.0,)), ("mul_", (2.0,)),
                                         ("div_", (2.0,)), ("zero_", ()), ("fill_", (3.0,)),
                                         ("copy_", (np.ones(3, np.float32),)), ("clamp_", (0.0, 1.0)),
                                         ("relu_", ()), ("exp_", ()), ("neg_", ()), ("pow_", (2,)),
                                         ("masked_fill_", (np.array([True, False, True]), 0.0))])
def test_methods_return_self(method, args):
    t = Tensor([1.0, -2.0, 3.0])
    assert getattr(t, method)(*args) is t


# ---------------------------------------------------------------------------
# gradient routing through rebased tensors
# ---------------------------------------------------------------------------


def test_setitem_zeroes_the_gradient_of_the_overwritten_element():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y[0] = 0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 2.0, 2.0])
    np.testing.assert_array_equal(y.data, [0.0, 4.0, 6.0])


def test_iadd_sends_gradient_to_both_sides():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    y = a * 1
    y += b
    (y * Tensor([1.0, 10.0])).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [1.0, 10.0])
    np.testing.assert_array_equal(b.grad.data, [1.0, 10.0])


def test_masked_setitem_sends_summed_gradient_to_the_value():
    x = Tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    v = Tensor(5.0, requires_grad=True)
    y = x * 1
    y[np.array([True, False, True, False])] = v
    (y * Tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert v.grad.item() == 4.0  # g[mask] = 1 + 3, summed to v's shape
    np.testing.assert_array_equal(x.grad.data, [0.0, 2.0, 0.0, 4.0])


def test_constant_written_from_a_grad_tensor_joins_the_graph():
    w = Tensor([2.0, 3.0], requires_grad=True)
    buf = Tensor.zeros(4)
    buf[1:3] = w * 2
    assert buf.requires_grad and not buf.is_leaf
    buf.sum().backward()
    np.testing.assert_array_equal(w.grad.data, [2.0, 2.0])


@requires_torch
def test_ops_recorded_before_the_write_keep_their_gradient():
    # exp saved its output, not y: writing y afterwards is allowed, and exp's gradient still
    # flows to y's value before the write
    x0 = np.array([0.1, -0.4, 0.7], np.float32)
    x = Tensor(x0, requires_grad=True)
    y = x * 2
    z = y.exp()
    y.add_(1)
    w = y * 3
    (z.sum() + w.sum() + y.sum()).backward()
    tx = torch.tensor(x0, requires_grad=True)
    ty = tx * 2
    tz = ty.exp()
    ty.add_(1)
    tw = ty * 3
    (tz.sum() + tw.sum() + ty.sum()).backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-6)


@requires_torch
def test_repeated_writes_chain_their_gradients():
    x0 = np.array([0.5, -1.0, 2.0], np.float32)
    x = Tensor(x0, requires_grad=True)
    w = Tensor(np.array([1.5, 0.5, -2.0], np.float32), requires_grad=True)
    y = x * 1
    y.mul_(w)
    y[1] = x[0]
    y.add_(y.detach())
    y.clamp_(-3.0, 3.0)
    (y * y.detach()).sum().backward()
    tx = torch.tensor(x0, requires_grad=True)
    tw = torch.tensor(w.data, requires_grad=True)
    ty = tx * 1
    ty.mul_(tw)
    ty[1] = tx[0]
    ty.add_(ty.detach())
    ty.clamp_(-3.0, 3.0)
    (ty * ty.detach()).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-6)


@requires_torch
def test_second_order_gradient_through_a_write():
    x0 = np.array([0.5, -1.0, 2.0], np.float64)
    x = Tensor(x0, requires_grad=True)
    y = x * x
    y[0] = 0.0
    (g,) = grad(y.sum(), x, create_graph=True)
    (g * g).sum().backward()
    tx = torch.tensor(x0, requires_grad=True)
    ty = tx * tx
    ty[0] = 0.0
    (tg,) = torch.autograd.grad(ty.sum(), tx, create_graph=True)
    (tg * tg).sum().backward()
    np.testing.assert_allclose(g.data, tg.detach().numpy())
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())


# ---------------------------------------------------------------------------
# views: writing a view rebases its base
# ---------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("view", ["slice", "row", "reshape", "permute", "chain"])
def test_writing_a_view_rebases_its_base(view):
    make = {
        "slice": lambda y: y[0:2],
        "row": lambda y: y[1],
        "reshape": lambda y: y.reshape(-1),
        "permute": lambda y: y.permute(1, 0),
        "chain": lambda y: y.reshape(2, 6)[1].reshape(3, 2),
    }[view]
    x0 = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    v0 = np.float32(2.0)
    x, v = Tensor(x0, requires_grad=True), Tensor(v0, requires_grad=True)
    y = x * 1.5
    part = make(y)
    part.mul_(v)
    part.add_(1.0)
    (y * Tensor(x0)).sum().backward()

    tx, tv = torch.tensor(x0, requires_grad=True), torch.tensor(v0, requires_grad=True)
    ty = tx * 1.5
    tpart = {"reshape": lambda t: t.reshape(-1), "permute": lambda t: t.permute(1, 0),
             "chain": lambda t: t.reshape(2, 6)[1].reshape(3, 2)}.get(view, make)(ty)
    tpart.mul_(tv)
    tpart.add_(1.0)
    (ty * torch.tensor(x0)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(v.grad.data, tv.grad.numpy(), rtol=1e-6)


def test_a_view_taken_before_its_base_was_written_refuses_backward():
    # PyTorch regenerates such a view's history; the engine says so instead of guessing
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    a = x * 1
    b = a[0:2]
    a.mul_(2)
    with raises(RuntimeError, "GetItem", "(2,)", "in-place", "take the view again"):
        b.sum().backward()


def test_writing_a_view_of_a_leaf_that_requires_grad_raises():
    w = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    with raises(RuntimeError, "add_", "view of a leaf", "requires grad", "no_grad"):
        w[0:2].add_(1)
    with raises(RuntimeError, "__setitem__", "view of a leaf", "(3,)"):
        w.reshape(3, 1)[0] = 5.0
    np.testing.assert_array_equal(w.data, [1.0, 2.0, 3.0])  # nothing was written
    with no_grad():
        w[0:2].add_(1)
    np.testing.assert_array_equal(w.data, [2.0, 3.0, 3.0])


# ---------------------------------------------------------------------------
# leaves: only under no_grad; the manual SGD loop
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("write", [
    lambda w: w.add_(1), lambda w: w.sub_(1), lambda w: w.mul_(2), lambda w: w.div_(2), lambda w: w.zero_(),
    lambda w: w.fill_(1), lambda w: w.copy_(np.ones(3)), lambda w: w.clamp_(0, 1),
    lambda w: w.__setitem__(0, 1.0), lambda w: w.__iadd__(1), lambda w: w.__isub__(1),
    lambda w: w.__imul__(2), lambda w: w.__itruediv__(2),
], ids=["add_", "sub_", "mul_", "div_", "zero_", "fill_", "copy_", "clamp_", "setitem", "+=", "-=", "*=", "/="])
def test_leaf_that_requires_grad_only_under_no_grad(write):
    w = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    with raises(RuntimeError, "leaf", "requires grad", "in place", "with no_grad():", ".detach()", ".clone()"):
        write(w)
    np.testing.assert_array_equal(w.data, [1.0, 2.0, 3.0])
    with no_grad():
        out = write(w)
        assert out is None or out is w
    assert w.is_leaf and w.requires_grad and w.grad_fn is None


def test_textbook_update_keeps_the_same_leaf():
    w = Tensor([1.0, 2.0], requires_grad=True)
    data = w.data
    before = w
    (w * w).sum().backward()
    with no_grad():
        w -= 0.1 * w.grad
    assert w is before and w.data is data and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.data, [0.8, 1.6], rtol=1e-6)
    w.grad.zero_()  # PyTorch's old zero_grad idiom
    (w * w).sum().backward()  # the next backward works
    np.testing.assert_allclose(w.grad.data, [1.6, 3.2], rtol=1e-6)


def _mlp_params(rng):
    return [rng.standard_normal((4, 8)) * 0.5, rng.standard_normal(8) * 0.1,
            rng.standard_normal((8, 3)) * 0.5, rng.standard_normal(3) * 0.1]


def _engine_sgd(params, xs, ys, lr, zero_style):
    ps = [Tensor(p.copy(), requires_grad=True) for p in params]
    ids = [(id(p), id(p.data)) for p in ps]
    for x, y in zip(xs, ys):
        w1, b1, w2, b2 = ps
        h = (Tensor(x) @ w1 + b1).tanh()
        loss = ((h @ w2 + b2 - Tensor(y)) ** 2).mean()
        loss.backward()
        with no_grad():
            for p in ps:
                p -= lr * p.grad
        for p in ps:
            if zero_style == "none":
                p.grad = None
            else:
                p.grad.zero_()
    assert [(id(p), id(p.data)) for p in ps] == ids and all(p.is_leaf for p in ps)
    return [p.data for p in ps]


@requires_torch
@pytest.mark.parametrize("zero_style", ["none", "zero_"])
def test_manual_sgd_loop_trains_like_pytorch(zero_style):
    rng = np.random.default_rng(7)
    params = _mlp_params(rng)
    xs = [rng.standard_normal((5, 4)) for _ in range(6)]
    ys = [rng.standard_normal((5, 3)) for _ in range(6)]
    ours = _engine_sgd(params, xs, ys, 0.1, zero_style)

    ps = [torch.tensor(p, requires_grad=True) for p in params]
    for x, y in zip(xs, ys):
        w1, b1, w2, b2 = ps
        h = (torch.tensor(x) @ w1 + b1).tanh()
        loss = ((h @ w2 + b2 - torch.tensor(y)) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in ps:
                p -= 0.1 * p.grad
        for p in ps:
            p.grad = None
    for a, b in zip(ours, ps):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert not np.allclose(ours[0], params[0])  # it did train


# ---------------------------------------------------------------------------
# version counters
# ---------------------------------------------------------------------------


def test_version_counts_writes_and_is_shared_by_views():
    t = Tensor([1.0, 2.0, 3.0, 4.0])
    v, d, r = t[1:3], t.detach(), t.reshape(2, 2)
    other = Tensor([1.0, 2.0])
    assert t._version == 0
    t.add_(1)
    v.zero_()
    d[0] = 5
    r.mul_(2)
    t += 1
    assert t._version == v._version == d._version == r._version == 5
    assert other._version == 0
    np.testing.assert_array_equal(t.data, [11.0, 1.0, 1.0, 11.0])


def test_modified_saved_tensor_makes_that_backward_raise():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    z = y * y  # Mul saves y
    y.add_(1)
    with raises(RuntimeError, "backward", "Mul", "(3,)", "modified by an in-place operation",
                "version 1", "expected version 0"):
        z.sum().backward()


def test_weights_written_between_forward_and_backward():
    x = Tensor([[1.0, 2.0]])
    w = Tensor([[0.5], [0.25]], requires_grad=True)
    loss = (x @ w).sum()  # Matmul saves w
    with no_grad():
        w -= 0.1
        w.mul_(2)
    with raises(RuntimeError, "Matmul", "(2, 1)", "version 2", "expected version 0"):
        loss.backward()
    b = Tensor([0.5, 0.25], requires_grad=True)
    loss = (x + b).sum()  # Add reads nothing back: writing b is fine, as in PyTorch
    with no_grad():
        b -= 0.1
    loss.backward()
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0])


def test_version_expected_counts_earlier_writes():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    y.add_(1)
    y.add_(1)  # version 2 when Mul saves it
    z = y * y
    y.add_(1)
    with raises(RuntimeError, "version 3", "expected version 2"):
        z.sum().backward()


SAVERS = {  # op on y -> does its backward read y (and so refuse a later write)? Same answers as PyTorch.
    "add": (lambda y, c: y + c, False),
    "sub": (lambda y, c: c - y, False),
    "neg": (lambda y, c: -y, False),
    "sum": (lambda y, c: y.sum(), False),
    "exp": (lambda y, c: y.exp(), False),  # saves its output
    "tanh": (lambda y, c: y.tanh(), False),
    "sigmoid": (lambda y, c: y.sigmoid(), False),
    "gather": (lambda y, c: y[np.array([1, 0])], False),
    "mul": (lambda y, c: y * c, True),
    "div": (lambda y, c: c / y, True),
    "log": (lambda y, c: y.log(), True),
    "pow": (lambda y, c: y ** 3, True),
    "matmul": (lambda y, c: y.reshape(1, 2) @ c.reshape(2, 1), True),
}


@pytest.mark.parametrize("name", list(SAVERS))
def test_only_ops_that_read_an_input_refuse_a_later_write(name):
    fn, reads = SAVERS[name]
    x = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([3.0, 4.0], requires_grad=True)
    y = x * 1
    out = fn(y, c)
    y.add_(1)  # rebases y; ops recorded above still route to its old node
    if reads:
        with raises(RuntimeError, "modified by an in-place operation"):
            out.sum().backward()
    else:
        out.sum().backward()
        assert x.grad is not None
    if HAVE_TORCH:  # PyTorch agrees on which ops refuse
        tx, tc = torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([3.0, 4.0], requires_grad=True)
        ty = tx * 1
        tfn = {"gather": lambda t, _: t[torch.tensor([1, 0])]}.get(name, fn)
        tout = tfn(ty, tc)
        ty.add_(1)
        if reads:
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                tout.sum().backward()
        else:
            tout.sum().backward()
            np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("chain", ["exp_ sqrt_", "exp_ mul_", "sigmoid_ add_", "mul_self add_"])
def test_writing_a_saved_output_again_refuses_backward_as_in_pytorch(chain):
    # exp_, sqrt_, sigmoid_ keep their result (the tensor itself) for backward: a second write breaks it
    def run(make):
        x = make([0.5, -1.0])
        y = x * 1.5
        for op in chain.split():
            if op == "mul_self":
                y.mul_(y.detach())
            else:
                getattr(y, op)(*((2.0,) if op in ("mul_", "add_") else ()))
        try:
            y.sum().backward()
        except RuntimeError as e:
            return str(e)

    ours = run(lambda v: Tensor(v, requires_grad=True))
    assert ours is not None and "modified by an in-place operation" in ours
    if HAVE_TORCH:
        assert run(lambda v: torch.tensor(v, requires_grad=True)) is not None


def test_max_output_written_in_place_refuses_backward():
    x = Tensor([[1.0, 3.0], [4.0, 2.0]], requires_grad=True)
    m = x.amax(1, keepdim=True)  # its output is the array Max kept for backward
    with no_grad():
        m.add_(1)
    with raises(RuntimeError, "Max", "saved", "version 1"):
        m.sum().backward()


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


def test_setitem_shape_mismatch():
    y = Tensor.zeros(3, 4)
    with raises(ValueError, "__setitem__", "(3,)", "(2, 4)"):
        y[0:2] = np.ones(3, np.float32)
    with raises(ValueError, "__setitem__", "(2, 4)", "(4,)"):
        y[0] = np.ones((2, 4), np.float32)
    with raises(IndexError, "__setitem__", "(3, 4)"):
        y[5] = 1.0
    y[0:2] = np.ones((1, 1, 4), np.float32)  # leading 1s are dropped, as in NumPy and PyTorch
    assert y.data[:2].sum() == 8


def test_in_place_op_cannot_grow_the_tensor():
    y = Tensor.zeros(3)
    with raises(ValueError, "add_", "(2, 3)", "(3,)"):
        y.add_(Tensor.ones(2, 3))
    with raises(ValueError, "+=", "(4,)", "(3,)"):
        y += np.ones(4, np.float32)
    with raises(ValueError, "copy_", "(2,)", "(3,)"):
        y.copy_(np.ones(2))
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.0])


def test_int_tensors():
    with raises(TypeError, "floating-point", "int64"):
        Tensor([1, 2]).requires_grad_()
    t = Tensor(np.array([1, 2, 3]))
    t += 2
    t *= 3
    np.testing.assert_array_equal(t.data, [9, 12, 15])
    with raises(TypeError, "+=", "int64"):
        t += 0.5
    with raises(TypeError, "div_", "int64"):
        t.div_(2)
    with raises(TypeError, "clamp_", "int64"):
        t.clamp_(0.5)
    with raises(TypeError, "exp_", "float", "int64"):
        t.exp_()
    np.testing.assert_array_equal(Tensor(np.array([-1, 2])).relu_().neg_().data, [0, -2])  # int results stay
    # a value that requires grad written into an int tensor: the int result can't carry a gradient
    w = Tensor([1.7, 2.2], requires_grad=True)
    t[0:2] = w
    assert t.dtype == np.int64 and not t.requires_grad
    np.testing.assert_array_equal(t.data, [1, 2, 15])
    t.copy_(Tensor([2.9, 3.1, -1.5], requires_grad=True))
    np.testing.assert_array_equal(t.data, [2, 3, -1])


def test_read_only_memory():
    x = Tensor([1.0, 2.0, 3.0])
    e = x.expand(2, 3)
    with raises(RuntimeError, "add_", "read-only", ".clone()"):
        e.add_(1)


def test_bad_arguments():
    t = Tensor([1.0, 2.0])
    with raises(ValueError, "clamp_", "min=", "max="):
        t.clamp_()
    with raises(ValueError, "clamp_", "(3,)", "(2,)"):
        t.clamp_(min=np.zeros(3))
    with raises(ValueError, "fill_", "(2,)"):
        t.fill_(np.ones(2))


def test_float64_value_into_float32_tensor():
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    v = Tensor(np.array([3.0], np.float64), requires_grad=True)
    y = x * 1
    y[0:1] = v
    y.add_(v)
    assert y.dtype == np.float32
    y.sum().backward()
    assert v.grad.dtype == np.float64 and v.grad.item() == 3.0
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0])


@requires_torch
def test_writes_between_backwards_through_released_graphs():
    # ops that saved nothing can be backpropagated again after a release (as PyTorch); a write in
    # between rebases y, and each graph keeps routing to the y it saw
    def run(tensor):
        x, w = tensor([1.0, 2.0]), tensor([3.0, 4.0])
        y = x + 0
        a = (y + 1).sum()
        a.backward()
        y.add_(w)
        b = (y + 1).sum()
        b.backward()
        b.backward()
        a.backward()
        return x.grad, w.grad

    theirs = run(lambda v: torch.tensor(v, requires_grad=True))
    ours = run(lambda v: Tensor(v, requires_grad=True))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.data, b.numpy())


@requires_torch
@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_optimizer_step_between_forward_and_backward_raises_as_in_pytorch(opt):
    from tinygrad_mnist import optim

    def run(tensor, optimizers):
        w = tensor([[0.5, -0.25], [1.0, 2.0]])
        x = tensor([[1.0, 2.0]])
        first = (x @ w).sum()
        (x @ w).sum().backward()
        getattr(optimizers, opt)([w], lr=0.1).step()
        try:
            first.backward()  # Matmul saved w, which the step wrote
        except RuntimeError as e:
            return str(e)
        return None

    ours = run(lambda v: Tensor(v, requires_grad=True), optim)
    theirs = run(lambda v: torch.tensor(v, requires_grad=True), torch.optim)
    assert theirs is not None and "modified by an inplace operation" in theirs
    assert ours is not None and "modified by an in-place operation" in ours and "Matmul" in ours
