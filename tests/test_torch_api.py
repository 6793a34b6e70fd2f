"""The PyTorch-spelled Tensor surface and top level (issue 8, item 1).

Three parts: gradient checks of every new differentiable op (float64 central differences, and
PyTorch in float32 through helpers.check_op); the same PyTorch-style snippets run against PyTorch
and against the engine with the results compared; and the engine-only rules (copies vs shared
memory, clear errors where the engine differs).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import HAVE_TORCH, away, check_op, grid, positive, requires_torch, torch, uniform

import tinygrad_mnist as tg
from tinygrad_mnist import Tensor

# ---------------------------------------------------------------------------
# gradients of the new ops: float64 numeric, and PyTorch in float32
# ---------------------------------------------------------------------------

_GIDX = np.array([[2, 0, 1, 1], [0, 0, 2, 1]])  # gather along dim 0 of a (3, 4)
_SIDX = np.array([3, 0, 3, 1])  # index_select, repeats
_FMASK = np.random.default_rng(5).random((3, 4)) > 0.5


def _ti(a):
    return torch.from_numpy(np.ascontiguousarray(a))


NEW_OPS = [
    ("prod-all", [(2, 3)], lambda x: x.prod(), lambda x: x.prod(), uniform(0.5, 1.5)),
    ("prod-dim", [(2, 3, 4)], lambda x: x.prod(1), lambda x: x.prod(1), uniform(-1.5, 1.5)),
    ("prod-dim-keep", [(2, 3, 4)], lambda x: x.prod(dim=-1, keepdim=True), lambda x: x.prod(-1, keepdim=True), None),
    ("cumsum-0", [(3, 4)], lambda x: x.cumsum(0), lambda x: x.cumsum(0), None),
    ("cumsum-neg", [(2, 3, 4)], lambda x: x.cumsum(dim=-1), lambda x: x.cumsum(-1), None),
    ("norm", [(3, 4)], lambda x: x.norm(), lambda x: x.norm(), None),
    ("norm-dim", [(3, 4)], lambda x: x.norm(dim=1), lambda x: x.norm(dim=1), None),
    ("norm-p1-keep", [(3, 4)], lambda x: x.norm(p=1, dim=0, keepdim=True), lambda x: x.norm(p=1, dim=0, keepdim=True),
     away(0.0)),
    ("norm-p3", [(3, 4)], lambda x: x.norm(p=3, dim=1), lambda x: x.norm(p=3, dim=1), away(0.0)),
    ("norm-fro-tuple", [(2, 3, 4)], lambda x: x.norm("fro", dim=(1, 2)), lambda x: x.norm("fro", dim=(1, 2)), None),
    ("norm-inf", [(3, 4)], lambda x: x.norm(float("inf"), dim=1), lambda x: x.norm(float("inf"), dim=1), grid()),
    ("clone", [(3, 4)], lambda x: x.clone() * 2, lambda x: x.clone() * 2, None),
    ("gather", [(3, 4)], lambda x: x.gather(0, _GIDX), lambda x: x.gather(0, _ti(_GIDX)), None),
    ("gather-dim1-smaller", [(3, 4)], lambda x: x.gather(1, Tensor(_GIDX[:, :2])),
     lambda x: x.gather(1, _ti(_GIDX[:, :2])), None),
    ("index_select", [(4, 3)], lambda x: x.index_select(0, _SIDX), lambda x: x.index_select(0, _ti(_SIDX)), None),
    ("index_select-1", [(2, 5)], lambda x: x.index_select(1, Tensor(_SIDX)), lambda x: x.index_select(1, _ti(_SIDX)),
     None),
    ("repeat", [(2, 3)], lambda x: x.repeat(2, 3), lambda x: x.repeat(2, 3), None),
    ("repeat-lead", [(3,)], lambda x: x.repeat(2, 1, 2), lambda x: x.repeat(2, 1, 2), None),
    ("split-int", [(5, 3)], lambda x: x.split(2)[2] * 3 + x.split(2)[0].sum(),
     lambda x: x.split(2)[2] * 3 + x.split(2)[0].sum(), None),
    ("split-list", [(2, 6)], lambda x: x.split([1, 3, 2], dim=1)[1], lambda x: x.split([1, 3, 2], dim=1)[1], None),
    ("chunk", [(2, 7)], lambda x: Tensor.cat(list(x.chunk(3, 1))[::-1], dim=1),
     lambda x: torch.cat(list(x.chunk(3, 1))[::-1], dim=1), None),
    ("masked_fill", [(3, 4)], lambda x: x.masked_fill(_FMASK, -1.5), lambda x: x.masked_fill(_ti(_FMASK), -1.5), None),
    ("masked_fill-tensor-value", [(3, 4), ()], lambda x, v: x.masked_fill(Tensor(_FMASK), v),
     lambda x, v: x.masked_fill(_ti(_FMASK), v), None),
    ("clamp-min-max", [(3, 4)], lambda x: x.clamp(min=-0.5, max=0.5), lambda x: x.clamp(min=-0.5, max=0.5),
     away(-0.5, 0.5)),
    ("clamp-tensor-bounds", [(3, 4), (4,), (3, 1)], lambda x, lo, hi: x.clamp(min=lo, max=hi + 2.0),
     lambda x, lo, hi: x.clamp(min=lo, max=hi + 2.0), (grid(0.1), grid(0.1, 0.5), grid(0.1, 0.25))),
    ("max-dim-values", [(3, 5)], lambda x: x.max(dim=1).values, lambda x: x.max(dim=1).values, grid()),
    ("min-dim-keep", [(3, 5)], lambda x: x.min(0, keepdim=True)[0], lambda x: x.min(0, keepdim=True)[0], grid()),
    ("max-other", [(3, 4), (3, 4)], lambda a, b: a.max(b), lambda a, b: a.max(b), (grid(0.1), grid(0.1, 0.5))),
    ("amax-tuple", [(2, 3, 4)], lambda x: x.amax(dim=(0, 2)), lambda x: x.amax(dim=(0, 2)), grid()),
    ("amin-keep", [(2, 3, 4)], lambda x: x.amin(1, keepdim=True), lambda x: x.amin(1, keepdim=True), grid()),
    ("t", [(3, 4)], lambda x: x.t(), lambda x: x.t(), None),
    ("mT", [(2, 3, 4)], lambda x: x.mT, lambda x: x.mT, None),
    ("view-minus1", [(2, 3, 4)], lambda x: x.view(-1, 4), lambda x: x.view(-1, 4), None),
    ("expand_as", [(3, 1), (3, 4)], lambda x, y: x.expand_as(y) * y, lambda x, y: x.expand_as(y) * y, None),
    ("unbind", [(3, 4)], lambda x: x.unbind(1)[2], lambda x: x.unbind(1)[2], None),
    ("pow-method", [(3, 4)], lambda x: x.pow(3), lambda x: x.pow(3), None),
    ("pow-tensor", [(3, 4), (3, 4)], lambda x, y: x.pow(y), lambda x, y: x.pow(y), (positive(), uniform())),
    ("sum-dim-kw", [(2, 3, 4)], lambda x: x.sum(dim=(0, 2), keepdim=True), lambda x: x.sum(dim=(0, 2), keepdim=True),
     None),
    ("mean-dim-kw", [(2, 3, 4)], lambda x: x.mean(dim=1), lambda x: x.mean(dim=1), None),
    ("var-unbiased-false", [(2, 3, 4)], lambda x: x.var(1, False), lambda x: x.var(1, False), None),
    ("std-dim-keep", [(2, 3, 4)], lambda x: x.std(dim=-1, keepdim=True), lambda x: x.std(dim=-1, keepdim=True), None),
    ("softmax-dim", [(3, 4)], lambda x: x.softmax(dim=0), lambda x: x.softmax(dim=0), None),
    ("log_softmax-dim", [(3, 4)], lambda x: x.log_softmax(dim=1), lambda x: x.log_softmax(dim=1), None),
    ("logsumexp-dim", [(3, 4)], lambda x: x.logsumexp(dim=1), lambda x: x.logsumexp(dim=1), None),
    ("sin", [(3, 4)], lambda x: x.sin(), lambda x: x.sin(), None),
    ("cos", [(3, 4)], lambda x: x.cos(), lambda x: x.cos(), None),
    ("floor-ceil-round-sign", [(3, 4)], lambda x: x * 2 + x.floor() + x.ceil() + x.round() + x.sign() + x.trunc(),
     lambda x: x * 2 + x.floor() + x.ceil() + x.round() + x.sign() + x.trunc(), away(-1.5, -1, -0.5, 0, 0.5, 1, 1.5)),
    ("remainder", [(3, 4), (3, 4)], lambda x, y: x % y, lambda x, y: x % y,
     (uniform(-3, 3), positive(0.7, 1.3))),
    ("remainder-scalar", [(3, 4)], lambda x: x % 0.75, lambda x: x % 0.75, None),
    ("reciprocal-rsqrt", [(3, 4)], lambda x: x.reciprocal() + x.rsqrt(), lambda x: x.reciprocal() + x.rsqrt(),
     positive()),
    ("flip", [(2, 3, 4)], lambda x: x.flip(0, 2), lambda x: x.flip(0, 2), None),
    ("tril-triu", [(2, 3, 4)], lambda x: x.tril() * 2 + x.triu(1), lambda x: x.tril() * 2 + x.triu(1), None),
    ("outer", [(3,), (4,)], lambda a, b: a.outer(b), lambda a, b: a.outer(b), None),
    ("mm-mv-bmm", [(2, 3), (3, 4), (3,), (5, 2, 3)],
     lambda a, b, v, c: a.mm(b).sum() + a.mv(v).sum() + c.bmm(b.expand(5, 3, 4)),
     lambda a, b, v, c: a.mm(b).sum() + a.mv(v).sum() + c.bmm(b.expand(5, 3, 4)), None),
    ("narrow-select", [(4, 5)], lambda x: x.narrow(1, 1, 3) * x.select(0, -1).narrow(0, 2, 3),
     lambda x: x.narrow(1, 1, 3) * x.select(0, -1).narrow(0, 2, 3), None),
    ("movedim", [(2, 3, 4)], lambda x: x.movedim(0, -1), lambda x: x.movedim(0, -1), None),
    ("movedim-tuple", [(2, 3, 4)], lambda x: x.movedim((0, 1), (2, 0)), lambda x: x.movedim((0, 1), (2, 0)), None),
    ("sort-values", [(3, 5)], lambda x: x.sort(dim=1, descending=True).values * Tensor(np.arange(5.0)).type_as(x),
     lambda x: x.sort(dim=1, descending=True).values * torch.arange(5.0, dtype=x.dtype), grid()),
    ("topk-values", [(3, 5)], lambda x: x.topk(2, dim=0)[0], lambda x: x.topk(2, dim=0)[0], grid()),
    ("topk-smallest", [(3, 5)], lambda x: x.topk(3, largest=False).values, lambda x: x.topk(3, largest=False).values,
     grid()),
    ("log1p-expm1", [(3, 4)], lambda x: x.log1p() + x.expm1(), lambda x: x.log1p() + x.expm1(), uniform(-0.5, 2)),
    ("log2-log10-exp2", [(3, 4)], lambda x: x.log2() + x.log10() + x.exp2(), lambda x: x.log2() + x.log10() + x.exp2(),
     positive()),
    ("lerp", [(3, 4), (3, 4)], lambda a, b: a.lerp(b, 0.3), lambda a, b: a.lerp(b, 0.3), None),
    ("lerp-tensor-weight", [(3, 4), (3, 4), (4,)], lambda a, b, w: a.lerp(b, w), lambda a, b, w: a.lerp(b, w), None),
    ("add-alpha", [(3, 4), (3, 4)], lambda a, b: a.add(b, alpha=2.5).sub(a, alpha=0.5),
     lambda a, b: a.add(b, alpha=2.5).sub(a, alpha=0.5), None),
    ("cumprod", [(3, 4)], lambda x: x.cumprod(1), lambda x: x.cumprod(1), away(0.0, gap=0.3)),
    ("diag-diagonal-trace", [(4,), (3, 4)], lambda v, m: v.diag(1).sum(0) + m.diagonal(1).sum() + m[:, :3].trace(),
     lambda v, m: v.diag(1).sum(0) + m.diagonal(1).sum() + m[:, :3].trace(), None),
    ("diagonal-3d", [(2, 3, 4)], lambda x: x.diagonal(-1, 1, 2), lambda x: x.diagonal(-1, 1, 2), None),
    ("median", [(3, 5)], lambda x: x.median() + x.median(1).values.sum(),
     lambda x: x.median() + x.median(1).values.sum(), grid()),
    ("roll", [(3, 4)], lambda x: x.roll(1, 0) * x.roll((-1, 2), (0, 1)),
     lambda x: x.roll(1, 0) * x.roll((-1, 2), (0, 1)), None),
    ("roll-flat", [(3, 4)], lambda x: x.roll(5), lambda x: x.roll(5), None),
    ("repeat_interleave", [(2, 3)], lambda x: x.repeat_interleave(2, dim=1), lambda x: x.repeat_interleave(2, dim=1),
     None),
    ("unfold", [(2, 7)], lambda x: x.unfold(1, 3, 2), lambda x: x.unfold(1, 3, 2), None),
    ("einsum-matmul", [(2, 3, 4), (2, 4, 5)], lambda a, b: tg.einsum("bij,bjk->bik", a, b),
     lambda a, b: torch.einsum("bij,bjk->bik", a, b), None),
    ("einsum-sum-out-and-implicit", [(3, 4), (4, 5)],
     lambda a, b: tg.einsum("ij,jk", a, b) + tg.einsum("ij->i", a)[:, None],
     lambda a, b: torch.einsum("ij,jk", a, b) + torch.einsum("ij->i", a)[:, None], None),
    ("einsum-three", [(2, 3), (3, 4), (4,)], lambda a, b, c: tg.einsum("ij,jk,k->i", [a, b, c]),
     lambda a, b, c: torch.einsum("ij,jk,k->i", [a, b, c]), None),
    ("to-float64-and-back", [(3, 4)], lambda x: x.to(dtype=tg.float64).type_as(x) * 2.0,
     lambda x: x.to(dtype=torch.float64).type_as(x) * 2.0, None),
    ("top-level-fns", [(3, 4), (4, 2)],
     lambda a, b: tg.log_softmax(tg.matmul(tg.tanh(a), tg.sigmoid(b)), dim=1) + tg.exp(tg.relu(a)).sum()
     + tg.where(tg.tensor(_FMASK), a, 0.0).sum() + tg.cat([a, a], dim=1).sum() + tg.stack([b, b], 0).sum(),
     lambda a, b: torch.log_softmax(torch.matmul(torch.tanh(a), torch.sigmoid(b)), dim=1)
     + torch.exp(torch.relu(a)).sum()
     + torch.where(_ti(_FMASK), a, 0.0).sum() + torch.cat([a, a], dim=1).sum() + torch.stack([b, b], 0).sum(),
     None),
]

NEW_CASES = [pytest.param(tuple(map(tuple, shapes)), f, tf, init, id=name) for name, shapes, f, tf, init in NEW_OPS]


@pytest.mark.parametrize("shapes,fn,tfn,init", NEW_CASES)
def test_new_op_gradients(shapes, fn, tfn, init):
    check_op(shapes, fn, tfn if HAVE_TORCH else None, init)


def test_prod_gradient_with_zeros_matches_torch_rule():
    data = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 4.0]])
    x = Tensor(data, requires_grad=True)
    x.prod(1).sum().backward()
    # d/dx_i = product of the others: zero unless x_i is the only zero of its row
    np.testing.assert_array_equal(x.grad.data, [[0, 6, 0], [0, 0, 0], [8, 4, 2]])
    y = Tensor(data, requires_grad=True)
    y.prod().backward()
    np.testing.assert_array_equal(y.grad.data, np.zeros((3, 3)))


def test_prod_grad_of_grad_without_zeros():
    from tinygrad_mnist.gradcheck import gradcheck

    x = Tensor(np.random.default_rng(0).uniform(0.5, 1.5, (2, 3)), requires_grad=True)
    assert gradcheck(lambda t: tg.autograd.grad(t.prod(1).sum(), t, create_graph=True)[0], [x])


def test_prod_grad_of_grad_at_zeros_is_a_clear_error():
    x = Tensor(np.array([1.0, 0.0, 2.0]), requires_grad=True)
    with pytest.raises(NotImplementedError, match="prod"):
        tg.autograd.grad(x.prod(0), x, create_graph=True)


def test_norm_gradient_at_zero_is_zero_not_nan():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    x.norm(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.zeros((2, 3)))
    assert x.norm().item() == 0.0


def test_cumsum_grad_of_grad():
    from tinygrad_mnist.gradcheck import gradcheck

    x = Tensor(np.random.default_rng(1).normal(size=(3, 4)), requires_grad=True)
    assert gradcheck(lambda t: tg.autograd.grad((t.cumsum(1) ** 3).sum(), t, create_graph=True)[0], [x])


# ---------------------------------------------------------------------------
# the same snippets in PyTorch and in the engine
# ---------------------------------------------------------------------------

# Each snippet runs with `T` bound to torch or to tinygrad_mnist and sets `out` (a tensor, a number,
# a tuple/list of them, or a shape).  The results must agree.
SNIPPETS = {
    "tensor-dtypes": "out = [T.tensor([1.5, 2.0]).dtype == T.float32, T.tensor([1, 2]).dtype == T.int64, "
                     "T.tensor([True]).dtype == T.bool, T.tensor(3.0).dim()]",
    "size": "x = T.zeros(2, 3, 4); out = [tuple(x.size()), x.size(0), x.size(-1), x.shape[1], x.numel(), x.dim(), "
            "x.ndim]",
    "factories": "out = [T.zeros(2, 3), T.ones((2,)), T.full((2, 2), 7.0), T.eye(3), T.eye(2, 3), T.arange(5), "
                 "T.arange(1, 4, 0.5), T.linspace(0, 1, 5), T.zeros_like(T.ones(2)), T.ones_like(T.zeros(3, 1)), "
                 "T.empty(2, 3).shape, T.full((2,), 3).dtype == T.int64]",
    "factory-kw": "out = [T.zeros(2, dtype=T.float64).dtype == T.float64, T.ones(3, requires_grad=True).requires_grad, "
                  "T.zeros(2, device='cpu').device.type]",
    "random-shapes": "T.manual_seed(0); out = [T.randn(2, 3).shape, T.rand((4,)).shape, "
                     "T.randint(0, 10, (5,)).dtype == T.int64, T.randint(3, (2, 2)).shape, "
                     "bool((T.rand(100) < 1).all())]",
    "max-dim": "x = T.tensor([[1., 5., 2.], [7., 0., 7.]]); r = x.max(1); out = [r.values, r.indices, r[0], x.max()]",
    "min-dim-keep": "x = T.tensor([[1., 5., 2.], [7., 0., 7.]]); v, i = x.min(dim=0, keepdim=True); out = [v, i]",
    "amax-amin": "x = T.arange(24.).reshape(2, 3, 4); out = [x.amax(dim=(0, 2)), x.amin(1), x.amax()]",
    "argmax": "x = T.tensor([[1., 5., 2.], [7., 0., 3.]]); out = [x.argmax(), x.argmax(1), "
              "x.argmax(dim=0, keepdim=True), x.argmin(1)]",
    "reductions-dim": "x = T.arange(24.).reshape(2, 3, 4); out = [x.sum(dim=1), x.mean(dim=(0, 2), keepdim=True), "
                      "x.std(1), x.var(1, False), x.var(dim=2, correction=0), x.prod(2), x.cumsum(dim=1), "
                      "x.logsumexp(dim=2)]",
    "norm": "x = T.tensor([[3., -4.], [1., 2.]]); out = [x.norm(), x.norm(dim=1), x.norm(p=1), x.norm(1, dim=0), "
            "x.norm(p='fro'), x.norm(float('inf'))]",
    "squeeze": "x = T.zeros(2, 1, 3, 1); out = [x.squeeze().shape, x.squeeze(0).shape, x.squeeze(1).shape, "
               "x.squeeze(-1).shape, x.unsqueeze(0).shape, x.unsqueeze(-1).shape]",
    "transposes": "x = T.arange(6.).reshape(2, 3); y = T.arange(24.).reshape(2, 3, 4); out = [x.t(), x.T, y.mT, "
                  "y.transpose(0, 2), T.arange(3.).t()]",
    "view-repeat": "x = T.arange(6.).reshape(2, 3); out = [x.view(-1), x.view(3, -1), x.repeat(2, 2), "
                   "x.repeat(1, 2, 1), x.contiguous(), x.flatten(), x.reshape(-1, 2)]",
    "split-chunk": "x = T.arange(10.).reshape(5, 2); out = list(x.split(2)) + list(x.split([1, 4])) + "
                   "list(x.chunk(2)) + list(x.chunk(3, dim=1)) + list(T.arange(6.).chunk(4))",
    "gather-index_select": "x = T.arange(12.).reshape(3, 4); i = T.tensor([[0, 2], [3, 1], [1, 1]]); "
                           "out = [x.gather(1, i), x.index_select(0, T.tensor([2, 0, 2])), "
                           "x.gather(0, T.tensor([[2, 1, 0, 0]]))]",
    "masked_fill-where": "x = T.arange(6.).reshape(2, 3); m = x > 2; out = [x.masked_fill(m, -1.0), "
                         "T.where(m, x, T.zeros_like(x)), T.where(x < 2, 1.0, x)]",
    "comparisons": "x = T.tensor([1., 2., 3.]); y = T.tensor([3., 2., 1.]); out = [x.eq(y), x.ne(y), x.lt(y), "
                   "x.le(2.0), x.gt(y), x.ge(2), x == y, (x > 1).any(), (x > 1).all(), (x > 0).all(dim=0)]",
    "clamp": "x = T.tensor([-2., -0.5, 0.5, 2.]); out = [x.clamp(min=0), x.clamp(max=0.0), x.clamp(-1, 1), "
             "x.clip(min=-1.0), x.clamp(min=T.zeros(4)), x.clamp(min=T.tensor(1.0), max=T.tensor(0.0))]",
    "dtype-conversions": "x = T.tensor([1.7, -2.0]); out = [x.double().dtype == T.float64, x.long().dtype == T.int64, "
                         "x.to(T.float64).dtype == T.float64, x.to('cpu').dtype == T.float32, "
                         "x.to(device='cpu', dtype=T.float64).dtype == T.float64, x.cpu().dtype == T.float32, "
                         "x.float().dtype == T.float32, x.type_as(T.zeros(1, dtype=T.float64)).dtype == T.float64, "
                         "x.element_size(), x.double().element_size(), x.is_floating_point(), "
                         "T.tensor([True]).long(), x.to(T.zeros(2, dtype=T.float64)).dtype == T.float64]",
    "device": "x = T.zeros(2); out = [x.device.type, str(x.device), x.device == T.device('cpu'), x.is_cuda]",
    "clone-grad": "x = T.tensor([1., 2.], requires_grad=True); y = x.clone(); (y * y).sum().backward(); "
                  "out = [x.grad, y.requires_grad, y.is_leaf]",
    "tensor-copies": "import numpy as np; a = np.ones(3, np.float32); t = T.tensor(a); a[0] = 5.0; out = [t]",
    "from_numpy-shares": "import numpy as np; a = np.ones(3); t = T.from_numpy(a); a[0] = 5.0; "
                         "out = [t, t.dtype == T.float64]",
    "top-level-math": "x = T.tensor([[0.5, -1.0], [2.0, 0.25]]); out = [T.exp(x), T.log(x.abs()), T.sqrt(x.abs()), "
                      "T.tanh(x), T.sigmoid(x), T.relu(x), T.matmul(x, x), T.softmax(x, dim=1), "
                      "T.log_softmax(x, 0), T.cat([x, x]), T.cat([x, x], dim=1), T.stack([x, x], dim=2)]",
    "autograd-grad": "x = T.tensor([1., 2., 3.], requires_grad=True); y = (x ** 3).sum(); "
                     "(g,) = T.autograd.grad(y, x, create_graph=True); (h,) = T.autograd.grad(g.sum(), x); "
                     "out = [g, h, x.grad is None]",
    "autograd-backward": "x = T.tensor([1., 2.], requires_grad=True); a = (x * x).sum(); b = x * 3; "
                         "T.autograd.backward([a, b], [None, T.tensor([1., 0.5])]); out = [x.grad]",
    "no_grad-set_grad_enabled": "x = T.ones(2, requires_grad=True)\n"
                                "with T.no_grad():\n    y = x * 2\n"
                                "with T.set_grad_enabled(False):\n    z = x * 2\n"
                                "with T.no_grad():\n    with T.enable_grad():\n        w = x * 2\n"
                                "out = [y.requires_grad, z.requires_grad, w.requires_grad, T.is_grad_enabled()]",
    "logical": "x = T.tensor([1., -2., 3., 0.]); a, b = x > 0, x < 2; out = [a & b, a | b, a ^ b, ~a, "
               "a.logical_not(), a.logical_and(b), T.logical_or(a, b), (x == 0).nonzero(), x.nonzero(), "
               "x.count_nonzero()]",
    "floordiv-mod": "x = T.tensor([-3.5, -1.0, 2.0, 7.25]); out = [x // 2, x % 2, x % -1.5, 7 % T.tensor([2., 3.]), "
                    "T.tensor([7, -7]) // 2, T.tensor([7, -7]) % 3, x.remainder(2), x.floor_divide(2)]",
    "sort-topk": "x = T.tensor([[3., 1., 2.], [0., -1., 5.]]); s = x.sort(); k = x.topk(2, dim=1); "
                 "out = [s.values, s.indices, x.sort(0, descending=True)[0], x.argsort(1), k.values, k.indices, "
                 "x.topk(1, dim=0, largest=False).indices, T.sort(x, dim=1).values]",
    "shape-misc": "x = T.arange(24.).reshape(2, 3, 4); out = [x.flip(1), x.flip(0, 2), x.narrow(2, 1, 2), "
                  "x.select(1, 0), x.movedim(2, 0).shape, x.stride(), x.stride(1), x.is_contiguous(), "
                  "x.mT.is_contiguous(), x[0].tril(), x[0].triu(-1), T.arange(3.).outer(T.arange(2.)), x.unbind(1)[1]]",
    "elementwise-misc": "x = T.tensor([0.5, 1.5, 2.5, -0.5, 4.0]); out = [x.sin(), x.cos(), x.floor(), x.ceil(), "
                        "x.round(), x.trunc(), x.sign(), x.reciprocal(), x.abs().rsqrt(), abs(x), x.square(), "
                        "x.neg(), T.neg(x), T.add(x, 1), T.mul(x, x), T.sub(x, 1.0), T.div(x, 2), T.pow(x, 2)]",
    "top-level-reductions": "x = T.arange(12.).reshape(3, 4); out = [T.sum(x), T.sum(x, dim=1), T.mean(x, 0), "
                            "T.max(x), T.max(x, 1).values, T.max(x, T.ones(3, 4) * 5), T.amax(x, 0), T.argmin(x, 1), "
                            "T.prod(x + 1, 1), T.cumsum(x, 0), T.norm(x), T.std(x, 1), T.var(x), "
                            "T.logsumexp(x, 1), T.all(x >= 0), T.any(x > 10), T.topk(x, 2).values]",
    "python-protocols": "x = T.tensor(0.123456); i = T.tensor(2); out = [f'{x:.3f}', f'{x * 2:8.2e}', [5, 6, 7][i], "
                        "list(range(10))[T.tensor(1):T.tensor(4)], float(x) == x.item(), int(T.tensor([3.7]))]",
    "new-tensors": "x = T.zeros(2, dtype=T.float64); out = [x.new_zeros(2, 3), x.new_ones((2,)), x.new_full((2,), 3), "
                   "x.new_tensor([1, 2]), x.new_empty(3).shape, x.new_zeros(2).dtype == T.float64]",
    "int-division": "x = T.tensor([1, 2, 3]); out = [x / 2, 3 / x, x / T.tensor([2, 4, 8]), x / x.double(), "
                    "(x / 2).dtype == T.float32]",
    "misc-2": "x = T.tensor([[1., 2., 3.], [4., 5., 6.]]); out = [x.log1p(), x.expm1(), x.log2(), x.log10(), "
              "x.exp2(), x.lerp(T.zeros(2, 3), 0.25), x.add(x, alpha=2), x.cumprod(1), x.diagonal(), "
              "x[:, :2].diag(), T.arange(3.).diag(-1), x[:, :2].trace(), x.median(), x.median(1).values, "
              "x.median(dim=0, keepdim=True).indices, x.roll(1, 1), x.roll(2), x.repeat_interleave(2), "
              "x.repeat_interleave(2, dim=0), x.unflatten(1, (3, 1)).shape, x.unfold(1, 2, 1), x.clamp_min(2.5), "
              "x.clamp_max(2.5), T.einsum('ij,kj->ik', x, x), T.einsum('ij', x), T.einsum('ii', x[:, :2])]",
    "device-idiom": "device = T.device('cuda' if T.cuda.is_available() else 'cpu'); x = T.zeros(2, device=device)\n"
                    "T.backends.cudnn.benchmark = True\n"
                    "with T.inference_mode():\n    y = T.ones(2, requires_grad=True) * 2\n"
                    "out = [str(device), x.to(device).device.type, T.get_default_dtype() == T.float32, "
                    "y.requires_grad, T.cuda.device_count(), T.backends.mps.is_available()]",
    "no_grad-decorator": "@T.no_grad()\ndef f(a):\n    return a * 2\n"
                         "out = [f(T.ones(2, requires_grad=True)).requires_grad, T.is_grad_enabled()]",
    "where-forms": "x = T.arange(4.); out = [x.where(x > 1, T.zeros(4)), x.where(x < 2, 9.0), T.where(x > 1, x, -x), "
                   "T.tensor([1.0, float('inf'), -float('inf')]).isinf(), T.isnan(T.tensor([float('nan')]))]",
    "promotion-0d": "f = T.tensor([1., 2.]); i = T.tensor([1, 2]); d0 = T.tensor(2.0, dtype=T.float64); "
                    "b = T.tensor([True, False]); out = [(f * d0).dtype == T.float32, (i * d0).dtype == T.float64, "
                    "(i.int() * T.tensor(3)).dtype == T.int32, (b + T.tensor(2)).dtype == T.int64, "
                    "(f.double() * T.tensor(2.0)).dtype == T.float64, (T.tensor(1.0) * d0).dtype == T.float64, "
                    "(f + f.double()).dtype == T.float64, T.where(b, f, d0).dtype == T.float32, f * d0]",
    "scalar-helpers": "x = T.tensor([[1., 2.], [3., 4.]]); out = [x.sum().item(), x.tolist(), x.numel(), len(x), "
                      "x.equal(x.clone()), x.allclose(x + 1e-9)]",
}


def _to_numpy(v):
    if torch is not None and isinstance(v, torch.Tensor):
        return v.detach().numpy()
    if isinstance(v, Tensor):
        return v.numpy()
    if isinstance(v, tuple) and all(isinstance(e, int) for e in v):  # a shape (torch.Size is a tuple)
        return tuple(v)
    if isinstance(v, (tuple, list)):  # lists, and (values, indices) named tuples
        return [_to_numpy(e) for e in v]
    return v


def _run(module, code):
    env = {"T": module}
    exec(code, env)  # noqa: S102  (our own snippets)
    return _to_numpy(env["out"])


def _assert_same(got, want, path="out"):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got!r} vs {want!r}"
        for k, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{path}[{k}]")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{path}: engine gave {type(got).__name__}, torch a tensor"
        assert got.shape == want.shape, f"{path}: shape {got.shape} vs torch {want.shape}"
        assert got.dtype == want.dtype, f"{path}: dtype {got.dtype} vs torch {want.dtype}"
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=path)
    else:
        assert got == want or (isinstance(want, float) and np.isclose(got, want)), f"{path}: {got!r} vs torch {want!r}"


@requires_torch
@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippet_matches_torch(name):
    want = _run(torch, SNIPPETS[name])
    got = _run(tg, SNIPPETS[name])
    _assert_same(got, want)


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippet_runs_without_torch(name):
    if "random" in name:
        pytest.skip("random streams differ from torch's; shapes are compared in the torch test")
    _run(tg, SNIPPETS[name])


# ---------------------------------------------------------------------------
# engine-only rules: memory, aliases, clear errors
# ---------------------------------------------------------------------------


def test_tensor_and_Tensor_copy_from_numpy_shares():
    a = np.ones(3, np.float32)
    t1, t2, t3 = tg.tensor(a), Tensor(a), tg.from_numpy(a)
    a[0] = 9
    assert t1.data[0] == 1 and t2.data[0] == 1 and t3.data[0] == 9
    assert t3.data is a
    src = Tensor([1.0, 2.0])
    assert not np.shares_memory(Tensor(src).data, src.data)
    assert tg.as_tensor(a).data is a


def test_from_numpy_rejects_non_arrays_and_strings():
    with pytest.raises(TypeError, match="tensor\\(data\\)"):
        tg.from_numpy([1.0, 2.0])
    with pytest.raises(TypeError, match="dtype"):
        tg.from_numpy(np.array(["a"]))


def test_ndarray_operands_and_factories_do_not_copy():
    a = np.ones((2, 3), np.float32)
    x = Tensor.zeros(2, 3, requires_grad=True)
    y = x * a
    assert y.grad_fn.parents[1].data is a  # a constant operand is wrapped, not copied
    z = Tensor.zeros(3)
    assert z.data.base is None and z.data.flags.writeable


def test_dim_and_axis_are_aliases_both_is_an_error():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.sum(axis=1).data, x.sum(dim=1).data)
    np.testing.assert_array_equal(x.mean(axis=0, keepdims=True).data, x.mean(0, keepdim=True).data)
    np.testing.assert_array_equal(Tensor.cat([x, x], axis=1).data, tg.cat([x, x], dim=1).data)
    np.testing.assert_array_equal(x.softmax(axis=0).data, x.softmax(dim=0).data)
    np.testing.assert_array_equal(x.argmax(axis=1).data, [2, 2])
    for call in (lambda: x.sum(dim=1, axis=1), lambda: x.max(0, axis=0), lambda: Tensor.cat([x], dim=0, axis=0),
                 lambda: x.softmax(dim=1, axis=1), lambda: x.squeeze(0, axis=0)):
        with pytest.raises(TypeError, match="dim= and axis="):
            call()


def test_max_with_several_dims_points_to_amax():
    x = Tensor(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="amax"):
        x.max((0, 1))
    with pytest.raises(IndexError, match="dim 3"):
        x.max(3)


def test_max_returns_a_named_tuple():
    x = Tensor(np.array([[1.0, 3.0], [4.0, 2.0]]), requires_grad=True)
    r = x.max(1)
    assert isinstance(r, tg.return_types.max) and r._fields == ("values", "indices")
    values, indices = r
    assert values is r.values and indices.dtype == np.int64 and not indices.requires_grad
    assert isinstance(x.max(), Tensor) and isinstance(x.min(dim=0), tg.return_types.min)


def test_other_devices_are_a_clear_error():
    x = Tensor([1.0])
    for call in (lambda: x.to("cuda"), lambda: x.to(device="mps"), lambda: x.cuda(), lambda: tg.zeros(2, device="cuda"),
                 lambda: tg.tensor([1.0], device="cuda:0"), lambda: tg.device("cuda")):
        with pytest.raises(RuntimeError, match="CPU"):
            call()
    assert x.to("cpu") is x and x.cpu() is x and x.to(tg.device("cpu")) is x


def test_clone_is_new_memory_and_recorded_contiguous_is_self():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    c = x.clone()
    assert not np.shares_memory(c.data, x.data) and c.grad_fn is not None
    assert x.contiguous() is x
    t = x.T
    assert not t.data.flags.c_contiguous and t.contiguous().data.flags.c_contiguous
    assert x.detach().clone().grad_fn is None


def test_size_is_a_method():
    x = Tensor.zeros(2, 3)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size(-2) == 2 and x.numel() == 6 and x.nelement() == 6
    with pytest.raises(IndexError, match="dim 2"):
        x.size(2)


def test_t_needs_at_most_two_dims():
    with pytest.raises(ValueError, match="mT"):
        Tensor.zeros(2, 3, 4).t()


def test_split_gather_index_select_errors():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="add up"):
        x.split([1, 1], dim=1)
    with pytest.raises(IndexError, match="out of range"):
        x.index_select(1, np.array([-1]))  # torch rejects negative indices here; NumPy would wrap
    with pytest.raises(IndexError, match="out of range"):
        x.gather(1, np.array([[3], [0]]))
    with pytest.raises(TypeError, match="integer"):
        x.gather(1, np.array([[0.5]]))
    with pytest.raises(TypeError, match="bool"):
        x.masked_fill(np.array([1, 0, 1]), 0.0)


def test_half_and_where_nonzero_are_clear_errors():
    with pytest.raises(TypeError, match="float16"):
        Tensor([1.0]).half()
    with pytest.raises(TypeError, match="where"):
        tg.where(Tensor([True]))


def test_cumsum_needs_dim():
    with pytest.raises(TypeError, match="dim"):
        Tensor([1.0, 2.0]).cumsum()


def test_top_level_names_exist():
    for name in ("tensor from_numpy zeros ones full empty zeros_like ones_like randn rand randint arange linspace eye "
                 "cat stack where exp log sqrt tanh sigmoid relu matmul softmax log_softmax float32 float64 int64 bool "
                 "bool_ manual_seed no_grad enable_grad set_grad_enabled").split():
        assert hasattr(tg, name), name
    assert callable(tg.tensor) and tg.bool == np.bool_ and tg.long == tg.int64 and tg.double == tg.float64
    assert callable(tg.autograd.grad) and callable(tg.autograd.backward)


def test_factories_accept_varargs_tuple_and_list():
    assert tg.zeros(2, 3).shape == tg.zeros((2, 3)).shape == tg.zeros([2, 3]).shape == (2, 3)
    assert tg.randn(4).dtype == np.float32 and tg.rand(2, 2, dtype=tg.float64).dtype == np.float64
    assert tg.randint(5, (3,)).data.max() < 5
    x = tg.ones(3, requires_grad=True)
    assert x.is_leaf and x.requires_grad


def test_autograd_backward_with_inputs_only_fills_those():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0], requires_grad=True)
    tg.autograd.backward((a * b).sum(), inputs=[a])
    np.testing.assert_array_equal(a.grad.data, [3.0, 3.0])
    assert b.grad is None


def test_view_dtype_and_type():
    x = Tensor([1.0, 2.0])
    with pytest.raises(TypeError, match=r"\.to\(dtype\)"):
        x.view(tg.float64)
    assert x.type() == "float32" and x.type(tg.float64).dtype == np.float64
    with pytest.raises(TypeError, match="index"):
        [1, 2][Tensor([1.0])]


def test_cumprod_and_einsum_limits_are_clear_errors():
    x = Tensor(np.array([1.0, 0.0, 2.0]), requires_grad=True)
    with pytest.raises(NotImplementedError, match="cumprod"):
        x.cumprod(0).sum().backward()
    m = Tensor(np.eye(2), requires_grad=True)
    with pytest.raises(NotImplementedError, match="diagonal"):
        tg.einsum("ii->", m).backward()
    with pytest.raises(NotImplementedError, match="letter"):
        tg.einsum("...ij->...", m)


def test_legacy_shape_constructor_is_a_clear_error():
    with pytest.raises(TypeError, match="zeros"):
        Tensor(2, 3)


def test_factory_tensors_have_every_slot():
    for t in (tg.zeros(2), tg.randn(2, requires_grad=True), tg.arange(3), Tensor.full((2,), 1.0)):
        assert t.name is None and t.grad is None and t.grad_fn is None and t.is_leaf
        (t.float() * 2).sum()


SECOND_ORDER = [  # every new primitive: its backward is written in Tensor ops, so it differentiates again
    ("clone", lambda x: (x.clone() ** 3).sum(), None),
    ("prod", lambda x: x.prod(1).sum(), uniform(0.5, 1.5)),
    ("cumsum", lambda x: (x.cumsum(1) ** 3).sum(), None),
    ("cumprod", lambda x: x.cumprod(1).sum(), uniform(0.5, 1.5)),
    ("sin-cos", lambda x: (x.sin() * x.cos()).sum(), None),
    ("log1p-expm1", lambda x: (x.log1p() * x.expm1()).sum(), uniform(-0.5, 1.5)),
    ("step-fns", lambda x: (x.floor() * x * x + x.sign() * x ** 3).sum(), away(-1, 0, 1)),
    ("einsum", lambda x: tg.einsum("ij,kj->ik", x, x * x).sum(), None),
    ("gather-max-dim", lambda x: (x.max(1).values ** 3).sum() + (x.gather(0, _GIDX[:2]) ** 2).sum(), grid()),
    ("norm", lambda x: x.norm(dim=1).sum() + x.norm(p=3), away(0.0)),
]


@pytest.mark.parametrize("name,f,init", SECOND_ORDER, ids=[c[0] for c in SECOND_ORDER])
def test_new_primitives_grad_of_grad(name, f, init):
    from helpers import make_inputs

    from tinygrad_mnist.gradcheck import gradcheck

    (a,) = make_inputs([(3, 4)], init)
    x = Tensor(a, requires_grad=True)
    assert gradcheck(lambda t: tg.autograd.grad(f(t), t, create_graph=True)[0], [x])
