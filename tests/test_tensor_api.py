"""The Tensor contract: construction and dtypes, attributes, factories, operators, and forward values vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_mnist
from tinygrad_mnist import Tensor

RNG = np.random.default_rng(0)


def arr(*shape, low=-2.0, high=2.0, dtype=np.float32):
    return RNG.uniform(low, high, shape).astype(dtype)


# ---------------------------------------------------------------------------
# construction and dtypes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("data,shape,dtype", [
    (1.5, (), np.float32),
    (3, (), np.int64),
    (True, (), np.bool_),
    ([1.0, 2.0], (2,), np.float32),
    ([[1, 2], [3, 4]], (2, 2), np.int64),
    ([[1, 2.5]], (1, 2), np.float32),
    (np.zeros((2, 3), np.float32), (2, 3), np.float32),
    (np.zeros((2, 3), np.float64), (2, 3), np.float64),
    (np.arange(4), (4,), np.int64),
])
def test_construction_dtype_and_shape(data, shape, dtype):
    t = Tensor(data)
    assert t.shape == shape
    assert t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.data, np.asarray(data, dtype=dtype))


def test_construction_from_tensor_and_explicit_dtype():
    a = Tensor([1.0, 2.0])
    b = Tensor(a)
    np.testing.assert_array_equal(b.data, a.data)
    assert b.dtype == np.float32
    assert Tensor([1, 2], dtype="float32").dtype == np.float32
    assert Tensor([1.0, 2.0], dtype=np.float64).dtype == np.float64
    assert Tensor(np.ones(3, np.float64), dtype=tinygrad_mnist.float32).dtype == np.float32
    assert Tensor([2.0, -3.0], dtype="int64").dtype == np.int64  # whole numbers cast fine
    np.testing.assert_array_equal(Tensor([2.0, -3.0], dtype="int64").data, [2, -3])


def test_requires_grad_flag():
    t = Tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None and t.grad_fn is None
    assert not Tensor([1.0]).requires_grad
    u = Tensor([1.0]).requires_grad_()
    assert u.requires_grad


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating"):
        Tensor([1, 2, 3], requires_grad=True)
    t = Tensor([1, 2, 3])
    with pytest.raises(TypeError, match="int64"):
        t.requires_grad = True


@pytest.mark.parametrize("op", [
    lambda t: t + 1.5, lambda t: 1.5 + t, lambda t: t - 2.0, lambda t: 2.0 - t, lambda t: t * 0.1,
    lambda t: 0.1 * t, lambda t: t / 3.0, lambda t: 3.0 / t, lambda t: t ** 2.0, lambda t: 2.0 ** t,
    lambda t: t + 1, lambda t: t * 3, lambda t: t ** 2, lambda t: 2 - t, lambda t: t.maximum(0.5),
    lambda t: t.minimum(1), lambda t: Tensor.where(t.data > 1, t, 0.25),
])
def test_python_scalars_never_upcast_float32(op):
    t = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = op(t)
    assert out.dtype == np.float32
    out.sum().backward()
    assert t.grad.dtype == np.float32


def test_scalar_arithmetic_keeps_float64_and_promotes_ints():
    t = Tensor(np.array([1.0, 2.0]))
    assert (t * 0.5).dtype == np.float64
    assert (t + 1).dtype == np.float64
    i = Tensor([1, 2])
    assert (i + 1).dtype == np.int64
    assert (i * 0.5).dtype == np.float32  # int tensor times a float gives float32, as in PyTorch
    np.testing.assert_allclose((i * 0.5).data, [0.5, 1.0])
    assert (Tensor([1.0, 2.0]) + i).dtype == np.float32  # no float64 creep from int data


def test_float32_with_float64_tensor_gives_float64():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor(np.array([0.5, 0.25]), requires_grad=True)
    out = a * b
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64  # each grad in its input's dtype
    np.testing.assert_allclose(a.grad.data, [0.5, 0.25])


# ---------------------------------------------------------------------------
# attributes
# ---------------------------------------------------------------------------


def test_attributes():
    data = arr(2, 3)
    t = Tensor(data)
    assert isinstance(t.data, np.ndarray) and isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(t.numpy(), data)
    assert t.shape == (2, 3) and t.ndim == 2 and t.size() == (2, 3) and t.numel() == 6 and len(t) == 2
    assert t.dtype == np.float32
    assert Tensor(4.5).item() == 4.5 and isinstance(Tensor(4.5).item(), float)
    assert Tensor([[7]]).item() == 7
    with pytest.raises(ValueError, match=r"item.*\(2, 3\)"):
        t.item()
    with pytest.raises(TypeError):
        len(Tensor(1.0))
    assert float(Tensor(2.5)) == 2.5 and int(Tensor(3)) == 3


def test_detach():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    np.testing.assert_array_equal(d.data, y.data)


def test_repr():
    t = Tensor([1.5, -2.0])
    r = repr(t)
    assert r.startswith("Tensor(") and "1.5" in r and "-2." in r
    assert "requires_grad=True" in repr(Tensor([1.0], requires_grad=True))
    assert "float64" in repr(Tensor(np.zeros(2)))
    y = Tensor([1.0], requires_grad=True) * 2
    assert "grad_fn" in repr(y) and "Mul" in repr(y)
    assert "..." in repr(Tensor.zeros(1000))  # long tensors are summarised


# ---------------------------------------------------------------------------
# factories
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,fill", [("zeros", 0.0), ("ones", 1.0)])
def test_zeros_ones(name, fill):
    f = getattr(Tensor, name)
    for t in (f(2, 3), f((2, 3)), f([2, 3])):
        assert t.shape == (2, 3) and t.dtype == np.float32
        np.testing.assert_array_equal(t.data, np.full((2, 3), fill))
    t = f(4, requires_grad=True, dtype="float64")
    assert t.shape == (4,) and t.dtype == np.float64 and t.requires_grad
    assert f(3, dtype="int64").dtype == np.int64


def test_full_eye_arange():
    t = Tensor.full((2, 2), 3.5)
    np.testing.assert_array_equal(t.data, np.full((2, 2), 3.5))
    assert t.dtype == np.float32
    assert Tensor.full(3, 2.0, requires_grad=True, dtype="float64").dtype == np.float64
    assert Tensor.full((2,), 7).dtype == np.int64
    np.testing.assert_array_equal(Tensor.eye(3).data, np.eye(3))
    assert Tensor.eye(3).dtype == np.float32
    np.testing.assert_array_equal(Tensor.eye(2, 3).data, np.eye(2, 3))
    assert Tensor.eye(2, requires_grad=True).requires_grad
    a = Tensor.arange(5)
    np.testing.assert_array_equal(a.data, np.arange(5))
    assert a.dtype == np.int64
    b = Tensor.arange(0, 1, 0.25)
    np.testing.assert_allclose(b.data, [0, 0.25, 0.5, 0.75])
    assert b.dtype == np.float32
    np.testing.assert_array_equal(Tensor.arange(2, 10, 3).data, [2, 5, 8])
    c = Tensor.arange(4, dtype="float32", requires_grad=True)
    assert c.dtype == np.float32 and c.requires_grad


def test_like_factories():
    src = Tensor(np.zeros((2, 5), np.float64))
    z = Tensor.zeros_like(src)
    o = Tensor.ones_like(src, requires_grad=True)
    assert z.shape == o.shape == (2, 5)
    assert z.dtype == o.dtype == np.float64
    assert o.requires_grad and (o.data == 1).all() and (z.data == 0).all()
    assert Tensor.zeros_like(Tensor([1, 2])).dtype == np.int64
    assert Tensor.ones_like(Tensor([1.0]), dtype="float64").dtype == np.float64


def test_random_factories_shape_dtype_and_range():
    r = Tensor.randn(200, 100)
    assert r.shape == (200, 100) and r.dtype == np.float32
    assert abs(r.data.mean()) < 0.05 and abs(r.data.std() - 1) < 0.05
    u = Tensor.rand(100, 100)
    assert u.dtype == np.float32 and u.data.min() >= 0 and u.data.max() < 1
    assert abs(u.data.mean() - 0.5) < 0.02
    v = Tensor.uniform(50, 50, low=-3.0, high=-1.0)
    assert v.data.min() >= -3 and v.data.max() <= -1 and abs(v.data.mean() + 2) < 0.05
    assert Tensor.randn(3, dtype="float64", requires_grad=True).dtype == np.float64
    assert Tensor.rand((2, 2), requires_grad=True).requires_grad


@pytest.mark.parametrize("name,make", [
    ("zeros", lambda **kw: Tensor.zeros(2, 3, **kw)), ("ones", lambda **kw: Tensor.ones((2, 3), **kw)),
    ("full", lambda **kw: Tensor.full((2, 3), 0.5, **kw)), ("randn", lambda **kw: Tensor.randn(2, 3, **kw)),
    ("rand", lambda **kw: Tensor.rand(2, 3, **kw)), ("uniform", lambda **kw: Tensor.uniform(2, 3, low=-1.0, **kw)),
    ("eye", lambda **kw: Tensor.eye(3, **kw)), ("arange", lambda **kw: Tensor.arange(0, 3, 0.5, **kw)),
    ("zeros_like", lambda **kw: Tensor.zeros_like(Tensor([[1.0, 2.0]]), **kw)),
    ("ones_like", lambda **kw: Tensor.ones_like(np.zeros((2, 2), np.float32), **kw)),
])
def test_every_factory_takes_requires_grad_and_dtype(name, make):
    t = make()
    assert t.dtype == np.float32 and not t.requires_grad
    t = make(requires_grad=True)
    assert t.dtype == np.float32 and t.requires_grad and t.is_leaf
    t = make(dtype="float64", requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad
    t.sum().backward()
    np.testing.assert_array_equal(t.grad.data, np.ones(t.shape))


@pytest.mark.parametrize("make", [
    lambda: Tensor.randn(3, 4), lambda: Tensor.rand(5), lambda: Tensor.uniform(2, 2, low=-1.0, high=1.0),
    lambda: Tensor.ones(100).dropout(0.5),
])
def test_manual_seed_reproducible(make):
    tinygrad_mnist.manual_seed(42)
    a = make().data.copy()
    b = make().data.copy()
    tinygrad_mnist.manual_seed(42)
    np.testing.assert_array_equal(make().data, a)
    np.testing.assert_array_equal(make().data, b)
    assert not np.array_equal(a, b)  # the stream moves on
    tinygrad_mnist.manual_seed(43)
    assert not np.array_equal(make().data, a)


# ---------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------

BINOPS = {
    "+": (lambda a, b: a + b), "-": (lambda a, b: a - b), "*": (lambda a, b: a * b),
    "/": (lambda a, b: a / b), "**": (lambda a, b: a ** b),
}


@pytest.mark.parametrize("op", BINOPS)
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (2, 2))])
def test_binary_operators_forward(op, sa, sb):
    a, b = arr(*sa, low=0.5, high=2), arr(*sb, low=0.5, high=2)
    f = BINOPS[op]
    want = f(a, b)
    np.testing.assert_allclose(f(Tensor(a), Tensor(b)).data, want, rtol=1e-6)
    # reflected: a scalar or ndarray on the left gives a Tensor
    for left in (a, float(a.ravel()[0])):
        out = f(left, Tensor(b))
        assert isinstance(out, Tensor)
        np.testing.assert_allclose(out.data, f(np.float32(left) if isinstance(left, float) else left, b), rtol=1e-6)
    out = f(Tensor(a), b)
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, want, rtol=1e-6)


def test_ndarray_on_the_left_gives_tensor_and_grad():
    c = arr(3, 4)
    x = Tensor(arr(3, 4), requires_grad=True)
    for out in (c * x, c + x, c - x, c / (x.abs() + 1), np.abs(c) ** x.tanh(), c.T @ x):
        assert isinstance(out, Tensor) and out.requires_grad
    (c * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, c)


def test_unary_neg_and_pos():
    a = arr(3)
    np.testing.assert_array_equal((-Tensor(a)).data, -a)
    np.testing.assert_array_equal((+Tensor(a)).data, a)


def test_matmul_operator_and_method():
    a, b = arr(2, 3), arr(3, 4)
    for out in (Tensor(a) @ Tensor(b), Tensor(a).matmul(b), Tensor(a).dot(Tensor(b)), a @ Tensor(b), Tensor(a) @ b):
        assert isinstance(out, Tensor)
        np.testing.assert_allclose(out.data, a @ b, rtol=1e-6)


@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 4)), ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)),
                                   ((2, 3, 4), (4,)), ((4,), (2, 4, 3)), ((2, 1, 3, 4), (5, 4, 2)),
                                   ((5, 3, 4), (4, 2)), ((3, 4), (2, 4, 5))])
def test_matmul_numpy_semantics(sa, sb):
    a, b = arr(*sa), arr(*sb)
    out = Tensor(a) @ Tensor(b)
    want = np.matmul(a, b)
    assert out.shape == want.shape
    np.testing.assert_allclose(out.data, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,fn", [("<", np.less), ("<=", np.less_equal), (">", np.greater),
                                     (">=", np.greater_equal), ("==", np.equal), ("!=", np.not_equal)])
def test_comparisons(name, fn):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], np.float32)
    b = np.array([2.0, 2.0, 2.0], np.float32)
    x = Tensor(a, requires_grad=True)
    ops = {"<": lambda p, q: p < q, "<=": lambda p, q: p <= q, ">": lambda p, q: p > q,
           ">=": lambda p, q: p >= q, "==": lambda p, q: p == q, "!=": lambda p, q: p != q}
    op = ops[name]
    for other in (Tensor(b), b, 2.0):
        out = op(x, other)
        assert isinstance(out, Tensor)
        assert out.dtype == np.bool_ and not out.requires_grad and out.grad_fn is None
        np.testing.assert_array_equal(out.data, fn(a, np.asarray(other.data if isinstance(other, Tensor) else other)))
    out = op(b, x)  # an ndarray on the left still gives a Tensor
    assert isinstance(out, Tensor)
    np.testing.assert_array_equal(out.data, fn(b, a))


def test_tensor_is_hashable():
    a, b = Tensor([1.0]), Tensor([1.0])
    assert len({a, b}) == 2


# ---------------------------------------------------------------------------
# elementwise functions
# ---------------------------------------------------------------------------

UNARY = {
    "exp": (lambda t: t.exp(), np.exp),
    "log": (lambda t: t.log(), np.log),
    "sqrt": (lambda t: t.sqrt(), np.sqrt),
    "abs": (lambda t: t.abs(), np.abs),
    "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0)),
    "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    "tanh": (lambda t: t.tanh(), np.tanh),
    "leaky_relu": (lambda t: t.leaky_relu(0.1), lambda a: np.where(a > 0, a, 0.1 * a)),
    "clip": (lambda t: t.clip(-0.5, 0.25), lambda a: np.clip(a, -0.5, 0.25)),
}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_forward(name, dtype):
    a = arr(4, 5, dtype=dtype)
    if name in ("log", "sqrt"):
        a = np.abs(a) + dtype(0.1)
    f, ref = UNARY[name]
    out = f(Tensor(a))
    assert out.dtype == dtype and out.shape == a.shape
    np.testing.assert_allclose(out.data, ref(a.astype(np.float64)), rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_sigmoid_saturates_without_overflow():
    with np.errstate(all="raise"):
        out = Tensor([-1000.0, 0.0, 1000.0]).sigmoid()
    np.testing.assert_allclose(out.data, [0.0, 0.5, 1.0])


def test_maximum_minimum_where_forward():
    a, b = arr(3, 4), arr(4)
    np.testing.assert_array_equal(Tensor(a).maximum(Tensor(b)).data, np.maximum(a, b))
    np.testing.assert_array_equal(Tensor(a).minimum(b).data, np.minimum(a, b))
    cond = a > 0
    np.testing.assert_array_equal(Tensor.where(cond, Tensor(a), Tensor(b)).data, np.where(cond, a, b))
    np.testing.assert_array_equal(Tensor.where(Tensor(cond), a, 0.0).data, np.where(cond, a, 0))
    assert Tensor.where(cond, Tensor(a), 0.0).dtype == np.float32


# ---------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------

AXES = [None, 0, 1, -1, (0, 2), (2, 0, 1)]


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "std", "logsumexp"])
def test_reductions_forward(name, axis, keepdim):
    a = arr(2, 3, 4, dtype=np.float64)
    refs = {
        "sum": lambda: np.sum(a, axis=axis, keepdims=keepdim),
        "mean": lambda: np.mean(a, axis=axis, keepdims=keepdim),
        "max": lambda: np.max(a, axis=axis, keepdims=keepdim),
        "min": lambda: np.min(a, axis=axis, keepdims=keepdim),
        "var": lambda: np.var(a, axis=axis, keepdims=keepdim, ddof=1),
        "std": lambda: np.std(a, axis=axis, keepdims=keepdim, ddof=1),
        "logsumexp": lambda: np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdim)),
    }
    method = {"max": "amax", "min": "amin"}.get(name, name)  # max(dim)/min(dim) return (values, indices)
    out = getattr(Tensor(a), method)(axis, keepdim=keepdim)
    want = refs[name]()
    assert out.shape == np.shape(want)
    np.testing.assert_allclose(out.data, want, rtol=1e-12)


def test_var_std_correction():
    a = arr(10, dtype=np.float64)
    np.testing.assert_allclose(Tensor(a).var(correction=0).item(), np.var(a), rtol=1e-12)
    np.testing.assert_allclose(Tensor(a).std(correction=0).item(), np.std(a), rtol=1e-12)
    np.testing.assert_allclose(Tensor(a).var().item(), np.var(a, ddof=1), rtol=1e-12)


def test_logsumexp_is_stable():
    out = Tensor([[1e4, 1e4], [-1e4, 0.0]]).logsumexp(1)
    assert np.isfinite(out.data).all()
    np.testing.assert_allclose(out.data, [1e4 + np.log(2), 0.0], rtol=1e-6)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmax(axis):
    a = arr(4, 5)
    out = Tensor(a).argmax(axis)
    np.testing.assert_array_equal(out.data, np.argmax(a, axis=axis))
    assert out.dtype.kind == "i" and not out.requires_grad
    np.testing.assert_array_equal(Tensor(a).argmax(1, keepdim=True).data, np.argmax(a, 1, keepdims=True))


# ---------------------------------------------------------------------------
# shape
# ---------------------------------------------------------------------------


def test_reshape_flatten_transpose_permute():
    a = arr(2, 3, 4)
    t = Tensor(a)
    np.testing.assert_array_equal(t.reshape(4, -1).data, a.reshape(4, -1))
    np.testing.assert_array_equal(t.reshape((6, 4)).data, a.reshape(6, 4))
    np.testing.assert_array_equal(t.reshape(-1).data, a.ravel())
    np.testing.assert_array_equal(t.flatten().data, a.ravel())
    np.testing.assert_array_equal(t.flatten(1).data, a.reshape(2, 12))
    assert Tensor(arr(2, 3, 4, 5)).flatten(2).shape == (2, 3, 20)
    np.testing.assert_array_equal(t.transpose(0, 2).data, a.transpose(2, 1, 0))
    np.testing.assert_array_equal(t.transpose(-1, -2).data, a.swapaxes(-1, -2))
    np.testing.assert_array_equal(t.permute(2, 0, 1).data, a.transpose(2, 0, 1))
    np.testing.assert_array_equal(t.permute((1, 2, 0)).data, a.transpose(1, 2, 0))
    np.testing.assert_array_equal(t.T.data, a.T)
    np.testing.assert_array_equal(Tensor(arr(3, 5)).T.shape, (5, 3))


def test_expand_squeeze_unsqueeze():
    a = arr(3, 1)
    np.testing.assert_array_equal(Tensor(a).expand(2, 3, 4).data, np.broadcast_to(a, (2, 3, 4)))
    np.testing.assert_array_equal(Tensor(a).expand(3, 5).data, np.broadcast_to(a, (3, 5)))
    assert Tensor(a).expand(-1, 6).shape == (3, 6)
    b = arr(2, 1, 3, 1)
    assert Tensor(b).squeeze().shape == (2, 3)
    assert Tensor(b).squeeze(1).shape == (2, 3, 1)
    assert Tensor(b).squeeze(-1).shape == (2, 1, 3)
    assert Tensor(b).unsqueeze(0).shape == (1, 2, 1, 3, 1)
    assert Tensor(b).unsqueeze(-1).shape == (2, 1, 3, 1, 1)
    assert Tensor(arr(2, 3)).unsqueeze(1).shape == (2, 1, 3)


def test_pad():
    a = arr(2, 3)
    np.testing.assert_array_equal(Tensor(a).pad(((1, 2), (0, 3))).data, np.pad(a, ((1, 2), (0, 3))))
    np.testing.assert_array_equal(Tensor(a).pad(((0, 0), (2, 1)), value=-1.0).data,
                                  np.pad(a, ((0, 0), (2, 1)), constant_values=-1))


_A = np.arange(60, dtype=np.float32).reshape(3, 4, 5)


@pytest.mark.parametrize("index", [
    1, -1, (0, 2), (slice(None), 1), slice(1, None, 2), (slice(None, None, -1), slice(0, 4, 3)),
    (Ellipsis, 2), (None, 1), (1, None, Ellipsis, None), np.array([2, 0, -1, 0]), [0, 0, 2],
    (np.array([0, 2]), np.array([1, -1])), (slice(1, None), [0, 3]), _A > 30, np.array([True, False, True]),
    (Ellipsis, np.array([4, 0])),
], ids=repr)
def test_getitem_matches_numpy(index):
    out = Tensor(_A)[index]
    np.testing.assert_array_equal(out.data, _A[index])


def test_getitem_with_tensor_index():
    idx = Tensor([2, 0])
    np.testing.assert_array_equal(Tensor(_A)[idx].data, _A[[2, 0]])
    np.testing.assert_array_equal(Tensor(_A)[Tensor(_A > 10)].data, _A[_A > 10])


def test_cat_stack():
    a, b, c = arr(2, 3), arr(1, 3), arr(4, 3)
    np.testing.assert_array_equal(Tensor.cat([Tensor(a), Tensor(b), Tensor(c)]).data, np.concatenate([a, b, c]))
    np.testing.assert_array_equal(Tensor.cat([Tensor(a), Tensor(a)], axis=1).data, np.concatenate([a, a], 1))
    np.testing.assert_array_equal(Tensor.cat([Tensor(a), a], axis=-1).data, np.concatenate([a, a], -1))
    np.testing.assert_array_equal(Tensor.stack([Tensor(a), Tensor(a * 2)]).data, np.stack([a, a * 2]))
    np.testing.assert_array_equal(Tensor.stack([Tensor(a), Tensor(a * 2)], axis=-1).data, np.stack([a, a * 2], -1))
    np.testing.assert_array_equal(Tensor.stack([Tensor(a), Tensor(a * 2)], axis=1).data, np.stack([a, a * 2], 1))


# ---------------------------------------------------------------------------
# neural-network functions
# ---------------------------------------------------------------------------


def _np_log_softmax(a, axis):
    s = a - a.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_log_softmax(axis):
    a = arr(3, 5, 2, dtype=np.float64)
    sm = Tensor(a).softmax(axis)
    np.testing.assert_allclose(sm.data.sum(axis=axis), 1.0, rtol=1e-12)
    np.testing.assert_allclose(sm.data, np.exp(_np_log_softmax(a, axis)), rtol=1e-12)
    np.testing.assert_allclose(Tensor(a).log_softmax(axis).data, _np_log_softmax(a, axis), rtol=1e-12)


def test_log_softmax_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4]], np.float32)
    x = Tensor(logits, requires_grad=True)
    out = x.log_softmax()
    assert np.isfinite(out.data).all()
    np.testing.assert_allclose(out.data[0], [0.0, -1e4, -2e4], rtol=1e-6)
    np.testing.assert_allclose(out.data[1], [-np.log(3)] * 3, rtol=1e-6)
    sm = Tensor(logits).softmax()
    np.testing.assert_allclose(sm.data, [[1, 0, 0], [1 / 3] * 3], rtol=1e-6)
    loss = x.cross_entropy(np.array([1, 0]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(x.grad.data).all()
    np.testing.assert_allclose(loss.item(), (1e4 + np.log(3)) / 2, rtol=1e-6)


def _np_ce(logits, labels, reduction):
    lp = _np_log_softmax(logits.astype(np.float64), 1)
    per = -(lp * labels).sum(1) if labels.dtype.kind == "f" else -lp[np.arange(len(labels)), labels]
    return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(reduction):
    logits = arr(6, 4)
    labels = np.array([0, 3, 1, 1, 2, 3])
    for y in (labels, Tensor(labels), labels.astype(np.int32)):
        out = Tensor(logits).cross_entropy(y, reduction=reduction)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.data, _np_ce(logits, labels, reduction), rtol=1e-5)
    onehot = np.eye(4, dtype=np.float32)[labels]
    np.testing.assert_allclose(Tensor(logits).cross_entropy(onehot, reduction=reduction).data,
                               _np_ce(logits, labels, reduction), rtol=1e-5)
    soft = RNG.dirichlet(np.ones(4), 6).astype(np.float32)
    np.testing.assert_allclose(Tensor(logits).cross_entropy(Tensor(soft), reduction=reduction).data,
                               _np_ce(logits, soft, reduction), rtol=1e-5)


def _np_conv2d(x, w, b, stride, padding):
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out + (0 if b is None else b[None, :, None, None])


@pytest.mark.parametrize("xs,ws,stride,padding,bias", [
    ((2, 3, 6, 6), (4, 3, 3, 3), 1, 0, True),
    ((2, 3, 6, 6), (4, 3, 3, 3), 2, 1, True),
    ((1, 2, 7, 5), (3, 2, 2, 3), (2, 1), (1, 2), False),
    ((1, 1, 5, 5), (2, 1, 5, 5), 1, 0, True),
    ((2, 2, 4, 4), (1, 2, 1, 1), (1, 3), 0, True),
])
def test_conv2d_forward(xs, ws, stride, padding, bias):
    x, w = arr(*xs, dtype=np.float64), arr(*ws, dtype=np.float64)
    b = arr(ws[0], dtype=np.float64) if bias else None
    out = Tensor(x).conv2d(Tensor(w), None if b is None else Tensor(b), stride=stride, padding=padding)
    want = _np_conv2d(x, w, b, stride, padding)
    assert out.shape == want.shape
    np.testing.assert_allclose(out.data, want, rtol=1e-10, atol=1e-12)


def _np_pool(x, k, s, p, reduce, pad_value):
    kh, kw = (k, k) if isinstance(k, int) else k
    s = k if s is None else s
    sh, sw = (s, s) if isinstance(s, int) else s
    ph, pw = (p, p) if isinstance(p, int) else p
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw], axis=(2, 3))
    return out


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 1, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1)), (2, None, 1)])
@pytest.mark.parametrize("shape", [(2, 3, 6, 6), (1, 2, 5, 7)])
def test_pooling_forward(k, s, p, shape):
    x = arr(*shape, dtype=np.float64)
    mp = Tensor(x).max_pool2d(k, stride=s, padding=p)
    np.testing.assert_allclose(mp.data, _np_pool(x, k, s, p, np.max, -np.inf), rtol=1e-12)
    ap = Tensor(x).avg_pool2d(k, stride=s, padding=p)
    np.testing.assert_allclose(ap.data, _np_pool(x, k, s, p, np.mean, 0.0), rtol=1e-12)


def test_dropout():
    x = Tensor(np.full((200, 200), 2.0, np.float32), requires_grad=True)
    tinygrad_mnist.manual_seed(0)
    out = x.dropout(0.25)
    kept = out.data != 0
    np.testing.assert_allclose(out.data[kept], 2.0 / 0.75, rtol=1e-6)  # kept values scaled by 1/(1-p)
    assert abs(kept.mean() - 0.75) < 0.01
    assert out.dtype == np.float32
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.where(kept, 1 / 0.75, 0.0), rtol=1e-6)
    ev = x.dropout(0.25, training=False)
    np.testing.assert_array_equal(ev.data, x.data)
    np.testing.assert_array_equal(x.dropout(0.0).data, x.data)
    assert (x.dropout(1.0).data == 0).all()
