"""conv2d and pooling (tinygrad_mnist/ops/conv.py, fused_conv.py): the op table's conv and pool rows, the
fused ops against the composites they stand for, and against PyTorch.

ops.Conv2d, ops.MaxPool2d and ops.PoolGather (avg_pool2d) are single ops for speed.  Each docstring
names the composite it equals (pad -> unfold2d -> GEMM / reduction); here that composite is written
with public tensor ops and the two are compared in value, gradient and gradient of gradient.
Hypothesis draws shapes, strides, paddings and kernel sizes and compares everything with PyTorch
(skipped without it).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import HAVE_TORCH, check_op, grid, requires_torch, table_tests, torch
from tinygrad_mnist import Tensor, grad
from tinygrad_mnist.gradcheck import gradcheck

SETTINGS = settings(max_examples=25, deadline=None)

test_gradcheck, test_against_torch = table_tests("conv")  # this family's rows of the op table


# ---------------------------------------------------------------------------
# the composites, from public ops
# ---------------------------------------------------------------------------


def conv2d_composite(x, w, b=None, stride=1, padding=0):
    n = x.shape[0]
    o, c, kh, kw = w.shape
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x = x.pad(((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    cols = x.unfold2d((kh, kw), stride)  # (C, kh, kw, N, OH, OW)
    oh, ow = cols.shape[4:]
    out = w.reshape(o, c * kh * kw) @ cols.reshape(c * kh * kw, n * oh * ow)
    if b is not None:
        out = out + b.reshape(o, 1)
    return out.reshape(o, n, oh, ow).permute(1, 0, 2, 3)


def pool_composite(x, kernel, stride, padding, kind):
    n, c = x.shape[:2]
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x = x.pad(((0, 0), (0, 0), (ph, ph), (pw, pw)), value=-np.inf if kind == "max" else 0.0) if ph or pw else x
    cols = x.reshape(n * c, 1, *x.shape[2:]).unfold2d((kh, kw), stride)  # (1, kh, kw, N*C, OH, OW)
    windows = cols.reshape(kh * kw, n, c, *cols.shape[4:])
    return windows.amax(0) if kind == "max" else windows.mean(0)


def _fused_pool(x, kernel, stride, padding, kind):
    return (x.max_pool2d if kind == "max" else x.avg_pool2d)(kernel, stride, padding)


def distinct(rng, shape):
    """float64 values with no two equal (no ties inside a pooling window)."""
    n = int(np.prod(shape))
    return (rng.permutation(4 * n)[:n] - 2 * n).reshape(shape) * 0.01


def _tensors(*arrays):
    return [Tensor(a.copy(), requires_grad=True) for a in arrays]


def _all_grads(out, inputs, seed=0):
    r = np.random.default_rng(seed).standard_normal(out.shape)
    return grad((out * Tensor(r)).sum(), inputs)


CONV_CASES = [  # x shape, w shape, stride, padding, bias
    ((2, 3, 7, 6), (4, 3, 3, 2), 1, 0, True),
    ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1, True),
    ((1, 2, 6, 9), (3, 2, 2, 3), (2, 3), (1, 2), False),
    ((3, 1, 5, 5), (2, 1, 5, 5), 1, 2, True),
    ((2, 2, 4, 4), (2, 2, 1, 1), 3, 0, True),  # stride leaves rows over
]


@pytest.mark.parametrize("xs,ws,stride,padding,bias", CONV_CASES)
def test_conv2d_equals_composite_in_value_and_gradient(xs, ws, stride, padding, bias):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws)] + ([rng.standard_normal(ws[0])] if bias else [])
    a, b = _tensors(*arrays), _tensors(*arrays)
    fused = a[0].conv2d(*a[1:], stride=stride, padding=padding)
    comp = conv2d_composite(*b, stride=stride, padding=padding)
    np.testing.assert_allclose(fused.data, comp.data, rtol=1e-12, atol=1e-12)
    for gf, gc in zip(_all_grads(fused, a), _all_grads(comp, b)):
        np.testing.assert_allclose(gf.data, gc.data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs,ws,stride,padding,bias", CONV_CASES[:3])
def test_conv2d_grad_of_grad_equals_composite(xs, ws, stride, padding, bias):
    """d/d(x, w) of <r, d(loss)/dx> + <s, d(loss)/dw>: both first-order gradients differentiated again."""
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws)] + ([rng.standard_normal(ws[0])] if bias else [])
    r, s = rng.standard_normal(xs), rng.standard_normal(ws)
    results = []
    for conv in (lambda x, *p: x.conv2d(*p, stride=stride, padding=padding),
                 lambda x, *p: conv2d_composite(x, *p, stride=stride, padding=padding)):
        ins = _tensors(*arrays)
        out = conv(*ins)
        loss = (out.tanh() * 0.5).sum()
        gx, gw = grad(loss, ins[:2], create_graph=True)
        second = grad((gx * Tensor(r)).sum() + (gw * Tensor(s)).sum(), ins)
        results.append([g.data for g in second])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_conv2d_ops_gradcheck_second_order():
    rng = np.random.default_rng(3)
    x, w, b = _tensors(rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3))

    def f(x, w, b):
        return (x.conv2d(w, b, stride=(2, 1), padding=1) ** 2).sum()

    def grad_f(x, w, b):
        gx, gw, gb = grad(f(x, w, b), [x, w, b], create_graph=True)
        return (gx * gx).sum() + (gw ** 3).sum() + (gb * gw.sum()).sum()

    assert gradcheck(f, [x, w, b])
    assert gradcheck(grad_f, [x, w, b])


POOL_CASES = [  # x shape, kernel, stride, padding
    ((2, 3, 6, 6), 2, None, 0),
    ((1, 2, 5, 7), 2, None, 0),  # odd sizes: the last row/column is dropped
    ((1, 2, 5, 5), 3, 1, 0),  # overlapping
    ((2, 1, 6, 5), (2, 3), (2, 1), 1),
    ((1, 2, 7, 7), 3, 2, 1),
    ((1, 1, 5, 5), 1, 2, 0),  # stride larger than the kernel: pixels that no window reads
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs,kernel,stride,padding", POOL_CASES)
def test_pool_equals_composite_in_value_and_gradient(xs, kernel, stride, padding, kind):
    arr = distinct(np.random.default_rng(4), xs)
    (a,), (b,) = _tensors(arr), _tensors(arr)
    fused = _fused_pool(a, kernel, stride, padding, kind)
    comp = pool_composite(b, kernel, stride or kernel, padding, kind)
    np.testing.assert_allclose(fused.data, comp.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_all_grads(fused, [a])[0].data, _all_grads(comp, [b])[0].data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_gradcheck_first_and_second_order(kind):
    x = Tensor(distinct(np.random.default_rng(5), (2, 2, 5, 5)), requires_grad=True)

    def f(x):
        return (_fused_pool(x, 3, 2, 1, kind) ** 3).sum()

    def grad_f(x):
        (gx,) = grad(f(x), [x], create_graph=True)
        return (gx * gx * Tensor(np.arange(100.0).reshape(x.shape))).sum()

    assert gradcheck(f, [x])
    assert gradcheck(grad_f, [x])


def test_max_pool_ties_share_the_gradient():
    x = Tensor(np.array([[[[1.0, 1.0, 0.0], [1.0, 0.0, 2.0], [2.0, 2.0, 2.0]]]]), requires_grad=True)
    x.max_pool2d(2, stride=1).sum().backward()
    # windows [[1,1],[1,0]]: a three-way tie; [[1,0],[0,2]]; [[1,0],[2,2]]: two-way; [[0,2],[2,2]]: three-way
    want = np.array([[1 / 3, 1 / 3, 0], [1 / 3, 0, 1 + 1 / 3], [0.5, 0.5 + 1 / 3, 1 / 3]])
    np.testing.assert_allclose(x.grad.data[0, 0], want, rtol=1e-12)
    comp = Tensor(x.data, requires_grad=True)
    pool_composite(comp, 2, 1, 0, "max").sum().backward()
    np.testing.assert_allclose(x.grad.data, comp.grad.data, rtol=1e-12)


def test_first_layer_image_gets_no_gradient_work():
    """An input that needs no gradient gets none computed (no ConvTranspose2d op is run)."""
    from tinygrad_mnist import ops

    calls = []
    orig = ops.ConvTranspose2d.forward
    ops.ConvTranspose2d.forward = lambda self, *a, **k: calls.append(1) or orig(self, *a, **k)
    try:
        x = Tensor(np.ones((2, 1, 6, 6), np.float32))
        w = Tensor(np.ones((3, 1, 3, 3), np.float32), requires_grad=True)
        h = x.conv2d(w).relu()
        h.conv2d(Tensor(np.ones((2, 3, 3, 3), np.float32), requires_grad=True)).sum().backward()
    finally:
        ops.ConvTranspose2d.forward = orig
    assert len(calls) == 1  # the second conv's input gradient only
    assert w.grad is not None and x.grad is None


def test_results_are_float32_and_nchw_to_the_user():
    x = Tensor(np.random.default_rng(6).random((2, 3, 8, 8), dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    y = x.conv2d(w, Tensor(np.zeros(4, np.float32)), padding=1)
    p = y.max_pool2d(2)
    assert y.shape == (2, 4, 8, 8) and p.shape == (2, 4, 4, 4)
    assert y.dtype == np.float32 and p.dtype == np.float32
    assert p.avg_pool2d(2).flatten(1).shape == (2, 16)
    p.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    assert x.grad.data.flags.c_contiguous  # a leaf's .grad is its own contiguous array


# ---------------------------------------------------------------------------
# property tests against PyTorch
# ---------------------------------------------------------------------------


@st.composite
def conv_setups(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h = draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 8))
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    return (n, c, h, w), (o, c, kh, kw), (sh, sw), (ph, pw), draw(st.booleans()), draw(st.integers(0, 2**16))


@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch is not installed (pip install -e .[ref])")
@SETTINGS
@given(conv_setups())
def test_conv2d_matches_torch(setup):
    import torch
    import torch.nn.functional as F

    xs, ws, stride, padding, bias, seed = setup
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws)] + ([rng.standard_normal(ws[0])] if bias else [])
    ours = _tensors(*arrays)
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = ours[0].conv2d(*ours[1:], stride=stride, padding=padding)
    ref = F.conv2d(*theirs, stride=stride, padding=padding)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-10)
    r = rng.standard_normal(out.shape)
    # first order, then the gradient of <gx, u> + <gw, v> (grad of grad through conv)
    gs = grad((out * Tensor(r)).sum(), ours, create_graph=True)
    tgs = torch.autograd.grad((ref * torch.tensor(r)).sum(), theirs, create_graph=True)
    for g, tg in zip(gs, tgs):
        np.testing.assert_allclose(g.data, tg.detach().numpy(), rtol=1e-10, atol=1e-10)
    u, v = rng.standard_normal(xs), rng.standard_normal(ws)
    second = grad((gs[0] * Tensor(u)).sum() + (gs[1] * Tensor(v)).sum(), ours[:2], allow_unused=True)
    tsecond = torch.autograd.grad((tgs[0] * torch.tensor(u)).sum() + (tgs[1] * torch.tensor(v)).sum(), theirs[:2],
                                  allow_unused=True)
    for g, tg in zip(second, tsecond):
        want = np.zeros(g.shape) if tg is None else tg.numpy()
        got = np.zeros(want.shape) if g is None else g.data
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@st.composite
def pool_setups(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))  # PyTorch's limit: half the kernel
    h, w = draw(st.integers(max(1, kh - 2 * ph), 9)), draw(st.integers(max(1, kw - 2 * pw), 9))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), draw(st.integers(0, 2**16))


@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch is not installed (pip install -e .[ref])")
@SETTINGS
@given(pool_setups(), st.sampled_from(["max", "avg"]))
def test_pool_matches_torch(setup, kind):
    import torch
    import torch.nn.functional as F

    xs, kernel, stride, padding, seed = setup
    rng = np.random.default_rng(seed)
    arr = distinct(rng, xs)  # no ties: PyTorch sends a tie's gradient to one element, we share it
    (x,) = _tensors(arr)
    tx = torch.tensor(arr, requires_grad=True)
    out = _fused_pool(x, kernel, stride, padding, kind)
    ref = (F.max_pool2d if kind == "max" else F.avg_pool2d)(tx, kernel, stride, padding)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    r = rng.standard_normal(out.shape)
    (out * Tensor(r)).sum().backward()
    (ref * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@requires_torch
def test_float32_cnn_step_matches_torch():
    """The demo's CNN layers in float32: forward and every parameter gradient against PyTorch."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(7)
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    params = [rng.standard_normal(s).astype(np.float32) * 0.1 for s in [(8, 1, 5, 5), (8,), (6, 8, 5, 5), (6,)]]
    ours = _tensors(*params)
    theirs = [torch.tensor(p, requires_grad=True) for p in params]
    h = Tensor(x).conv2d(ours[0], ours[1]).max_pool2d(2).relu().conv2d(ours[2], ours[3], padding=1)
    h = h.avg_pool2d(2).relu()
    t = F.relu(F.max_pool2d(F.conv2d(torch.from_numpy(x), theirs[0], theirs[1]), 2))
    t = F.relu(F.avg_pool2d(F.conv2d(t, theirs[2], theirs[3], padding=1), 2))
    np.testing.assert_allclose(h.data, t.detach().numpy(), rtol=1e-4, atol=1e-5)
    (h * h).sum().backward()
    (t * t).sum().backward()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("threads", [2, 3])
def test_split_across_threads_is_bit_identical(monkeypatch, threads):
    """im2col, col2im and the pooling scatter split their work over channel chunks in a few threads;
    every element is computed by the same kernel either way, so results match one thread exactly."""
    from tinygrad_mnist.ops import fused_conv as ops  # the module whose thread settings the conv/pool ops read

    rng = np.random.default_rng(7)
    x0 = rng.standard_normal((3, 5, 12, 12)).astype(np.float32)
    w0 = rng.standard_normal((6, 5, 3, 3)).astype(np.float32)

    def run(n):
        monkeypatch.setattr(ops, "_num_threads", n)
        x, w = Tensor(x0, requires_grad=True), Tensor(w0, requires_grad=True)
        out = x.conv2d(w, padding=1).max_pool2d(2) + x.conv2d(w, padding=1).avg_pool2d(3, 1, 1).max_pool2d(2)
        (out * out).sum().backward()
        return [out.data, x.grad.data, w.grad.data]

    monkeypatch.setattr(ops, "_PARALLEL_MIN", 0)  # split even these small arrays
    calls = []
    parallel = ops._parallel
    monkeypatch.setattr(ops, "_parallel", lambda fn, n, size: calls.append(n) or parallel(fn, n, size))
    one = run(1)
    for a, b in zip(one, run(threads)):
        assert np.array_equal(a, b)
    assert len(calls) >= 6  # im2col x2, col2im x2, scatter x2, per run


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2), (2, 0))])
@pytest.mark.parametrize("band_bytes", [1, 4096, 1 << 30])
def test_conv_transpose_in_bands_equals_one_gemm_then_col2im(monkeypatch, stride, padding, band_bytes):
    """ConvTranspose2d makes and adds back its columns a band of output rows at a time (bottom to
    top, so every pixel gets its kernel offsets in the same order): bit for bit one GEMM + col2im."""
    from tinygrad_mnist import ops
    from tinygrad_mnist.ops import fused_conv

    monkeypatch.setattr(fused_conv, "_BAND_BYTES", band_bytes)
    rng = np.random.default_rng(8)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    n, c, h, w, o, kh, kw = 3, 4, 9, 8, 5, 3, 2
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    wt = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    g = rng.standard_normal((o, oh, ow, n)).astype(np.float32)  # (O, OH, OW, N): the conv's memory order
    cols = (wt.reshape(o, -1).T @ g.reshape(o, -1)).reshape(c, kh, kw, oh, ow, n)
    ref = np.zeros((c, h + 2 * ph, w + 2 * pw, n), np.float32)
    for i in range(kh):
        for j in range(kw):
            ref[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += cols[:, i, j]
    ref = ref[:, ph:ph + h, pw:pw + w].transpose(3, 0, 1, 2)
    out = ops.ConvTranspose2d.apply(Tensor(g.transpose(3, 0, 1, 2)), Tensor(wt), shape=(n, c, h, w),
                                    stride=(sh, sw), padding=(ph, pw))
    assert np.array_equal(out.data, ref)


@requires_torch
def test_larger_conv_against_torch():
    # a size closer to the MNIST model's first layer
    check_op([(4, 1, 12, 12), (8, 1, 5, 5), (8,)], lambda x, w, b: x.conv2d(w, b, padding=2).relu().max_pool2d(2),
             lambda x, w, b: torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(x, w, b, padding=2).relu(), 2),
             (None, None, grid(0.05)), numeric=False)


def test_max_pool_scatter_and_gather_are_adjoint_with_ties():
    """<PoolScatter(g, hits), v> == <g, PoolGather(v, hits)>, tie shares included: the pair that
    max pooling's gradient and its gradient of gradient are made of."""
    from tinygrad_mnist import ops

    rng = np.random.default_rng(4)
    x = Tensor(rng.integers(0, 2, (2, 3, 6, 6)).astype(np.float64))  # 0/1 values: ties everywhere
    geometry = ops._PoolGeometry(x.shape, (3, 3), (1, 1), (1, 1))
    out = ops.MaxPool2d.apply(x, geometry=geometry)
    hits = ops.PoolHits.apply(x, out, geometry=geometry)
    assert (hits.data.sum(0) > 1).any()
    g = Tensor(rng.standard_normal(out.shape))
    v = Tensor(rng.standard_normal(x.shape))
    scattered = ops.PoolScatter.apply(g, hits, geometry=geometry, layout=ops._layout(x.data))
    gathered = ops.PoolGather.apply(v, hits, geometry=geometry)
    np.testing.assert_allclose((scattered.data * v.data).sum(), (g.data * gathered.data).sum(), rtol=1e-12)
    # each output's gradient is shared out whole among its tied maxima
    np.testing.assert_allclose(ops.PoolScatter.apply(Tensor(np.ones(out.shape)), hits, geometry=geometry,
                                                     layout=ops._layout(x.data)).data.sum(), out.data.size)


@pytest.mark.parametrize("kernel,stride,padding", [((2, 2), (2, 2), (0, 0)), ((2, 2), (2, 2), (1, 1)),
                                                   ((3, 3), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 0))])
@pytest.mark.parametrize("chwn", [False, True])
def test_max_pool_grad_equals_scatter_of_hits(kernel, stride, padding, chwn):
    """The fused MaxPoolGrad is PoolScatter weighted by PoolHits, bit for bit, ties included, for
    windows that tile the image (its own path) or not, in NCHW or the convs' (C, H, W, N) memory order."""
    from tinygrad_mnist import ops

    rng = np.random.default_rng(5)
    a = rng.integers(0, 3, (4, 8, 8, 3) if chwn else (3, 4, 8, 8)).astype(np.float32)
    x = Tensor(a.transpose(3, 0, 1, 2) if chwn else a)
    geometry = ops._PoolGeometry(x.shape, kernel, stride, padding)
    out = ops.MaxPool2d.apply(x, geometry=geometry)
    g = Tensor(rng.standard_normal(out.shape).astype(np.float32))
    layout = ops._layout(x.data)
    fused = ops.MaxPoolGrad.apply(g, x, out, geometry=geometry, layout=layout)
    hits = ops.PoolHits.apply(x, out, geometry=geometry)
    assert np.array_equal(fused.data, ops.PoolScatter.apply(g, hits, geometry=geometry, layout=layout).data)
