"""One op-checking helper in the style of early tinygrad's `helper_test_op`, plus input makers.

    check_op([(3, 1), (1, 4)], lambda a, b: a * b, lambda a, b: a * b)

builds random inputs of the given shapes, runs the engine in float64 through `gradcheck` (central
differences), and, when PyTorch is importable and a torch function is given, compares the engine's
forward and input gradients in float32 with PyTorch's (`compare_with_reference` + `torch_reference`).

Inputs are made by `init` callables `(rng, shape) -> float64 ndarray`.  Ops with kinks (relu, abs,
clip, max, maximum, pooling) get inputs kept well away from the kinks (`away`, `grid`), so the
numeric checks are meaningful at the default, tight tolerances.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from tinygrad_mnist import Tensor, grad
from tinygrad_mnist import compile as _compile
from tinygrad_mnist.gradcheck import compare_with_reference, gradcheck, torch_reference

try:  # PyTorch is only a reference; everything but the torch comparison runs without it
    import torch
except ImportError:  # pragma: no cover - exercised only where torch is missing
    torch = None

HAVE_TORCH = torch is not None
requires_torch = pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch is not installed (pip install -e .[ref])")

Init = Callable[[np.random.Generator, tuple], np.ndarray]


# ---------------------------------------------------------------------------
# input makers
# ---------------------------------------------------------------------------


def uniform(low: float = -2.0, high: float = 2.0) -> Init:
    """Uniform values in [low, high)."""
    return lambda rng, shape: rng.uniform(low, high, shape)


def away(*points: float, gap: float = 0.1, low: float = -2.0, high: float = 2.0) -> Init:
    """Uniform values, moved so that none lies within `gap` of any of `points` (kinks, clip bounds)."""

    def make(rng, shape):
        x = rng.uniform(low, high, shape)
        for p in points:
            d = x - p
            near = np.abs(d) < gap
            x = np.where(near, p + np.where(d >= 0, 1.0, -1.0) * (gap + np.abs(d)), x)
        for p in points:  # the promise, checked
            assert np.all(np.abs(x - p) >= gap * 0.999), "away(): kink points are too close together"
        return x

    return make


def grid(step: float = 0.1, offset: float = 0.0) -> Init:
    """Distinct values on a shuffled grid `step * (k + offset)` centred on 0.

    Any two values of one input differ by at least `step`; an input made with offset 0 and one made
    with offset 0.5 differ everywhere by at least step / 2.  That keeps max/min reductions, maximum,
    minimum and max pooling away from ties.
    """

    def make(rng, shape):
        n = int(np.prod(shape, dtype=np.int64))
        k = max(2 * n, 40)
        vals = (rng.permutation(k)[:n] - k // 2 + offset) * step
        return vals.reshape(shape).astype(np.float64)

    return make


def positive(low: float = 0.5, high: float = 2.0) -> Init:
    return uniform(low, high)


def _seed_for(shapes) -> int:
    return zlib.crc32(repr(shapes).encode())


def make_inputs(shapes: Sequence[tuple], init=None, seed: int | None = None) -> list[np.ndarray]:
    """float64 arrays for `shapes`; `init` is one Init for all inputs or a sequence of them (None = uniform)."""
    rng = np.random.default_rng(_seed_for(shapes) if seed is None else seed)
    inits = list(init) if isinstance(init, (list, tuple)) else [init] * len(shapes)
    assert len(inits) == len(shapes), "one init per input"
    return [np.asarray((f or uniform())(rng, tuple(s)), dtype=np.float64) for f, s in zip(inits, shapes)]


# ---------------------------------------------------------------------------
# the helper
# ---------------------------------------------------------------------------


def check_op(shapes: Sequence[tuple], engine_fn: Callable, torch_fn: Callable | None = None, init=None, *,
             seed: int | None = None, numeric: bool = True, atol: float | None = None,
             rtol: float | None = None) -> None:
    """Check one op: float64 gradcheck, then float32 agreement with PyTorch.

    shapes:    the shape of each input (each becomes a Tensor with requires_grad=True)
    engine_fn: Tensors -> Tensor, written with tinygrad_mnist
    torch_fn:  torch.Tensors -> torch.Tensor, the same function in PyTorch (None: no reference check)
    init:      how to fill the inputs (see `uniform`, `away`, `grid`, `positive`)
    numeric:   run the float64 central-difference gradcheck (the torch-only test file turns it off)
    atol/rtol: tolerances for the torch comparison (None: compare_with_reference's float32 defaults)

    With torch_fn given but PyTorch missing, the float64 check still runs and the test is then
    skipped with a reason.
    """
    arrays = make_inputs(shapes, init, seed)

    if numeric:
        inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = engine_fn(*inputs)
        assert isinstance(out, Tensor), f"engine_fn returned {type(out).__name__}, not a Tensor"
        assert out.dtype == np.float64, f"float64 inputs gave a {out.dtype} output"
        assert gradcheck(engine_fn, inputs)
        for t, a in zip(inputs, arrays):  # gradcheck must work on copies
            np.testing.assert_array_equal(t.data, a)

    if torch_fn is None:
        return
    if not HAVE_TORCH:
        pytest.skip("PyTorch is not installed: compared with numeric gradients only")

    inputs32 = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    out32 = engine_fn(*inputs32)
    assert out32.dtype == np.float32, f"float32 inputs gave a {out32.dtype} output"
    go = np.random.default_rng(1).standard_normal(out32.shape).astype(np.float32)  # not just ones
    assert compare_with_reference(engine_fn, torch_reference(torch_fn), inputs32, grad_output=go,
                                  atol=atol, rtol=rtol)
    out32.backward(go)  # the gradients keep their inputs' dtype
    for i, t in enumerate(inputs32):
        if t.grad is not None:
            assert t.grad.dtype == np.float32, f"gradient of input {i} is {t.grad.dtype}"
            assert t.grad.shape == t.shape, f"gradient of input {i} has shape {t.grad.shape}, input {t.shape}"


# ---------------------------------------------------------------------------
# the op table: each family of ops runs its rows in tests/test_ops_<family>.py (CASES_BY_FAMILY below)
# ---------------------------------------------------------------------------

# torch functions look `torch` up when called, so this table imports without PyTorch.


def _tf():
    return torch.nn.functional


def _t(a):
    """A constant ndarray (labels, masks, weights) as a torch tensor."""
    return torch.from_numpy(np.ascontiguousarray(a))


def case(name, shapes, fn, tfn, init=None):
    return pytest.param(tuple(tuple(s) for s in shapes), fn, tfn, init, id=name)


BINARY_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((2, 1, 4), (3, 1)),
]

BINARY_OPS = [
    # name, engine, torch, init
    ("add", lambda a, b: a + b, lambda a, b: a + b, None),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, None),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, None),
    ("div", lambda a, b: a / b, lambda a, b: a / b, (uniform(), away(0.0, gap=0.5))),
    ("pow", lambda a, b: a ** b, lambda a, b: a ** b, (positive(0.3, 2.0), uniform(-1.5, 1.5))),
    ("maximum", lambda a, b: a.maximum(b), torch.maximum if torch else None, (grid(0.1), grid(0.1, 0.5))),
    ("minimum", lambda a, b: a.minimum(b), torch.minimum if torch else None, (grid(0.1), grid(0.1, 0.5))),
]

BINARY_CASES = [case(f"{name}-{'x'.join(map(str, sa)) or 's'}-{'x'.join(map(str, sb)) or 's'}", (sa, sb), f, tf, init)
                for name, f, tf, init in BINARY_OPS for sa, sb in BINARY_SHAPES]

_C = np.random.default_rng(7).uniform(0.5, 1.5, (3, 4)).astype(np.float32)  # an ndarray constant
_CM = np.random.default_rng(8).uniform(-1, 1, (2, 3)).astype(np.float32)
_COND = np.random.default_rng(9).random((3, 4)) > 0.5

SCALAR_CASES = [
    case("add-scalar", [(3, 4)], lambda x: x + 2.5, lambda x: x + 2.5),
    case("radd-scalar", [(3, 4)], lambda x: 2.5 + x, lambda x: 2.5 + x),
    case("sub-scalar", [(3, 4)], lambda x: x - 1.5, lambda x: x - 1.5),
    case("rsub-scalar", [(3, 4)], lambda x: 1.5 - x, lambda x: 1.5 - x),
    case("mul-scalar", [(3, 4)], lambda x: x * -3.0, lambda x: x * -3.0),
    case("rmul-int", [(3, 4)], lambda x: 3 * x, lambda x: 3 * x),
    case("div-scalar", [(3, 4)], lambda x: x / 4.0, lambda x: x / 4.0),
    case("rdiv-scalar", [(3, 4)], lambda x: 4.0 / x, lambda x: 4.0 / x, away(0.0, gap=0.5)),
    case("pow-2", [(3, 4)], lambda x: x ** 2, lambda x: x ** 2),
    case("pow-3", [(3, 4)], lambda x: x ** 3, lambda x: x ** 3),
    case("pow-half", [(3, 4)], lambda x: x ** 0.5, lambda x: x ** 0.5, positive()),
    case("pow-neg", [(3, 4)], lambda x: x ** -1.5, lambda x: x ** -1.5, positive()),
    case("rpow-scalar", [(3, 4)], lambda x: 2.0 ** x, lambda x: 2.0 ** x),
    case("neg", [(3, 4)], lambda x: -x, lambda x: -x),
    case("ndarray-mul", [(3, 4)], lambda x: _C * x, lambda x: _t(_C) * x),
    case("ndarray-add", [(1, 4)], lambda x: _C + x, lambda x: _t(_C) + x),
    case("ndarray-sub", [(3, 1)], lambda x: _C - x, lambda x: _t(_C) - x),
    case("ndarray-div", [(3, 4)], lambda x: _C / x, lambda x: _t(_C) / x, away(0.0, gap=0.5)),
    case("ndarray-pow", [(3, 4)], lambda x: _C ** x, lambda x: _t(_C) ** x),
    case("ndarray-matmul", [(3, 2)], lambda x: _CM @ x, lambda x: _t(_CM) @ x),
    case("tensor-div-ndarray", [(3, 4)], lambda x: x / _C, lambda x: x / _t(_C)),
]

UNARY_SHAPES = [(), (5,), (2, 3, 4)]

UNARY_OPS = [
    ("exp", lambda x: x.exp(), lambda x: x.exp(), None),
    ("log", lambda x: x.log(), lambda x: x.log(), positive(0.2, 3.0)),
    ("sqrt", lambda x: x.sqrt(), lambda x: x.sqrt(), positive(0.2, 3.0)),
    ("abs", lambda x: x.abs(), lambda x: x.abs(), away(0.0)),
    ("relu", lambda x: x.relu(), lambda x: x.relu(), away(0.0)),
    ("sigmoid", lambda x: x.sigmoid(), lambda x: x.sigmoid(), uniform(-4, 4)),
    ("tanh", lambda x: x.tanh(), lambda x: x.tanh(), None),
    ("leaky_relu", lambda x: x.leaky_relu(0.2), lambda x: _tf().leaky_relu(x, 0.2), away(0.0)),
    ("leaky_relu-default", lambda x: x.leaky_relu(), lambda x: _tf().leaky_relu(x), away(0.0)),
    ("clip", lambda x: x.clip(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), away(-0.5, 0.7)),
    ("clip-lo", lambda x: x.clamp(min=-0.3), lambda x: x.clamp(min=-0.3), away(-0.3)),
    ("clip-hi", lambda x: x.clamp(max=0.4), lambda x: x.clamp(max=0.4), away(0.4)),
]

UNARY_CASES = [case(f"{name}-{'x'.join(map(str, s)) or 's'}", [s], f, tf, init)
               for name, f, tf, init in UNARY_OPS for s in UNARY_SHAPES]

WHERE_CASES = [
    case("where", [(3, 4), (3, 4)], lambda a, b: Tensor.where(_COND, a, b), lambda a, b: torch.where(_t(_COND), a, b)),
    case("where-bcast", [(3, 1), (4,)], lambda a, b: Tensor.where(_COND, a, b),
         lambda a, b: torch.where(_t(_COND), a, b)),
    case("where-scalar", [(3, 4)], lambda a: Tensor.where(_COND, a, 0.5), lambda a: torch.where(_t(_COND), a, 0.5)),
    case("where-scalar-a", [(4,)], lambda b: Tensor.where(_COND, -1.0, b), lambda b: torch.where(_t(_COND), -1.0, b)),
]

_ALL = (0, 1, 2)
REDUCTION_CASES = [
    case("sum-all", [(2, 3, 4)], lambda x: x.sum(), lambda x: x.sum()),
    case("sum-0d", [()], lambda x: x.sum(), lambda x: x.sum()),
    case("sum-1", [(2, 3, 4)], lambda x: x.sum(1), lambda x: x.sum(1)),
    case("sum-neg", [(2, 3, 4)], lambda x: x.sum(-1), lambda x: x.sum(-1)),
    case("sum-tuple-keep", [(2, 3, 4)], lambda x: x.sum((0, 2), keepdim=True), lambda x: x.sum((0, 2), keepdim=True)),
    case("mean-all", [(2, 3, 4)], lambda x: x.mean(), lambda x: x.mean()),
    case("mean-1-keep", [(2, 3, 4)], lambda x: x.mean(1, keepdim=True), lambda x: x.mean(1, keepdim=True)),
    case("mean-tuple", [(2, 3, 4)], lambda x: x.mean((0, -1)), lambda x: x.mean((0, -1))),
    case("max-all", [(2, 3, 4)], lambda x: x.max(), lambda x: torch.amax(x, _ALL), grid()),
    case("max-1", [(2, 3, 4)], lambda x: x.amax(1), lambda x: torch.amax(x, 1), grid()),
    case("max-dim-values", [(2, 3, 4)], lambda x: x.max(1).values, lambda x: x.max(1).values, grid()),
    case("min-dim-values-keep", [(2, 3, 4)], lambda x: x.min(dim=-1, keepdim=True)[0],
         lambda x: x.min(dim=-1, keepdim=True)[0], grid()),
    case("max-tuple-keep", [(2, 3, 4)], lambda x: x.amax((0, 2), keepdim=True),
         lambda x: torch.amax(x, (0, 2), keepdim=True), grid()),
    case("max-neg", [(3, 5)], lambda x: x.amax(-1), lambda x: torch.amax(x, -1), grid()),
    case("min-all", [(2, 3, 4)], lambda x: x.min(), lambda x: torch.amin(x, _ALL), grid()),
    case("min-0-keep", [(2, 3, 4)], lambda x: x.amin(0, keepdim=True), lambda x: torch.amin(x, 0, keepdim=True),
         grid()),
    case("min-tuple", [(2, 3, 4)], lambda x: x.amin((1, 2)), lambda x: torch.amin(x, (1, 2)), grid()),
    case("var-all", [(2, 3, 4)], lambda x: x.var(), lambda x: x.var()),
    case("var-1", [(2, 3, 4)], lambda x: x.var(1), lambda x: x.var(1)),
    case("var-tuple-keep", [(2, 3, 4)], lambda x: x.var((0, 2), keepdim=True), lambda x: x.var((0, 2), keepdim=True)),
    case("var-corr0", [(2, 3, 4)], lambda x: x.var(-1, correction=0), lambda x: x.var(-1, correction=0)),
    case("std-all", [(2, 3, 4)], lambda x: x.std(), lambda x: x.std()),
    case("std-1", [(2, 3, 4)], lambda x: x.std(1), lambda x: x.std(1)),
    case("std-tuple-keep", [(2, 3, 4)], lambda x: x.std((0, 2), keepdim=True), lambda x: x.std((0, 2), keepdim=True)),
    case("std-corr0", [(2, 3, 4)], lambda x: x.std(0, correction=0), lambda x: x.std(0, correction=0)),
    case("logsumexp-all", [(2, 3, 4)], lambda x: x.logsumexp(), lambda x: torch.logsumexp(x, _ALL)),
    case("logsumexp-1", [(2, 3, 4)], lambda x: x.logsumexp(1), lambda x: torch.logsumexp(x, 1)),
    case("logsumexp-tuple-keep", [(2, 3, 4)], lambda x: x.logsumexp((0, 2), keepdim=True),
         lambda x: torch.logsumexp(x, (0, 2), keepdim=True)),
]

_IDX = np.array([2, 0, -1, 0, 2])  # repeated and negative
_MASK = np.random.default_rng(3).random((3, 4)) > 0.4

SHAPE_CASES = [
    case("reshape", [(2, 3, 4)], lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1)),
    case("reshape-tuple", [(2, 3, 4)], lambda x: x.reshape((3, 2, 4)), lambda x: x.reshape((3, 2, 4))),
    case("reshape-flat", [(2, 3, 4)], lambda x: x.reshape(-1), lambda x: x.reshape(-1)),
    case("flatten", [(2, 3, 4)], lambda x: x.flatten(), lambda x: x.flatten()),
    case("flatten-1", [(2, 3, 4)], lambda x: x.flatten(1), lambda x: x.flatten(1)),
    case("transpose", [(2, 3, 4)], lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
    case("transpose-neg", [(2, 3, 4)], lambda x: x.transpose(-1, 1), lambda x: x.transpose(-1, 1)),
    case("permute", [(2, 3, 4)], lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    case("T-2d", [(3, 4)], lambda x: x.T, lambda x: x.T),
    case("T-3d", [(2, 3, 4)], lambda x: x.T, lambda x: x.permute(2, 1, 0)),
    case("expand", [(3, 1)], lambda x: x.expand(2, 3, 4), lambda x: x.expand(2, 3, 4)),
    case("expand-minus1", [(3, 1)], lambda x: x.expand(2, -1, 4), lambda x: x.expand(2, -1, 4)),
    case("squeeze", [(2, 1, 3)], lambda x: x.squeeze(1), lambda x: x.squeeze(1)),
    case("squeeze-all", [(1, 3, 1)], lambda x: x.squeeze(), lambda x: x.squeeze()),
    case("unsqueeze", [(2, 3)], lambda x: x.unsqueeze(0), lambda x: x.unsqueeze(0)),
    case("unsqueeze-neg", [(2, 3)], lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1)),
    case("pad", [(2, 3)], lambda x: x.pad(((1, 2), (0, 1))), lambda x: _tf().pad(x, (0, 1, 1, 2))),
    case("pad-value-3d", [(2, 2, 3)], lambda x: x.pad(((0, 0), (1, 1), (2, 0)), value=0.5),
         lambda x: _tf().pad(x, (2, 0, 1, 1), value=0.5)),
    case("getitem-int", [(3, 4)], lambda x: x[1], lambda x: x[1]),
    case("getitem-neg-int-slice", [(3, 4)], lambda x: x[-1, 1:3], lambda x: x[-1, 1:3]),
    case("getitem-step", [(5, 4)], lambda x: x[::2, 1::2], lambda x: x[::2, 1::2]),
    case("getitem-ellipsis", [(2, 3, 4)], lambda x: x[..., 1], lambda x: x[..., 1]),
    case("getitem-none", [(3, 4)], lambda x: x[None, :, 2, None], lambda x: x[None, :, 2, None]),
    case("getitem-intarray", [(3, 4)], lambda x: x[_IDX], lambda x: x[_t(_IDX)]),
    case("getitem-intarray-axis1", [(3, 4)], lambda x: x[:, _IDX[:3] + 1], lambda x: x[:, _t(_IDX[:3] + 1)]),
    case("getitem-two-arrays", [(3, 4)], lambda x: x[np.array([0, 2, 2]), np.array([1, -1, 1])],
         lambda x: x[_t(np.array([0, 2, 2])), _t(np.array([1, -1, 1]))]),
    case("getitem-list", [(3, 4)], lambda x: x[[2, 2, 0]], lambda x: x[[2, 2, 0]]),
    case("getitem-bool", [(3, 4)], lambda x: x[_MASK], lambda x: x[_t(_MASK)]),
    case("getitem-bool-rows", [(3, 4)], lambda x: x[np.array([True, False, True])],
         lambda x: x[_t(np.array([True, False, True]))]),
    case("cat-0", [(2, 3), (1, 3), (4, 3)], lambda a, b, c: Tensor.cat([a, b, c]),
         lambda a, b, c: torch.cat([a, b, c])),
    case("cat-neg", [(2, 3), (2, 1)], lambda a, b: Tensor.cat([a, b], axis=-1), lambda a, b: torch.cat([a, b], -1)),
    case("stack-0", [(2, 3)] * 3, lambda a, b, c: Tensor.stack([a, b, c]), lambda a, b, c: torch.stack([a, b, c])),
    case("stack-neg", [(2, 3)] * 2, lambda a, b: Tensor.stack([a, b], axis=-1), lambda a, b: torch.stack([a, b], -1)),
]

# numeric-only: PyTorch has no negative slice steps
INDEX_NUMERIC_CASES = [
    case("getitem-negative-step", [(5, 4)], lambda x: x[::-2, 3:0:-1], None),
    case("getitem-mixed", [(3, 4)], lambda x: x[1:, [0, 2, 0]], None),
]
DROPOUT_NUMERIC_CASES = [
    case("dropout-seeded", [(4, 5)], lambda x: _seeded_dropout(x, 0.4), None),
]
NUMERIC_ONLY_CASES = INDEX_NUMERIC_CASES + DROPOUT_NUMERIC_CASES


def _seeded_dropout(x, p):
    from tinygrad_mnist import manual_seed

    manual_seed(123)  # the same mask on every call: a fixed, differentiable function
    return x.dropout(p, training=True)


MATMUL_SHAPES = [
    ((2, 3), (3, 4)),
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((5, 3, 4), (4, 2)),
    ((3, 4), (2, 4, 5)),
]

MATMUL_CASES = [case(f"matmul-{'x'.join(map(str, sa))}-{'x'.join(map(str, sb))}", (sa, sb), lambda a, b: a @ b,
                     lambda a, b: a @ b) for sa, sb in MATMUL_SHAPES] + [
    case("matmul-method", [(2, 3), (3, 4)], lambda a, b: a.matmul(b), lambda a, b: a.matmul(b)),
    case("dot-1d", [(4,), (4,)], lambda a, b: a.dot(b), lambda a, b: a.dot(b)),
    case("dot-2d", [(2, 4), (4, 3)], lambda a, b: a.dot(b), lambda a, b: a @ b),
]

_LABELS = np.array([0, 4, 2, 2])
_ONEHOT = np.eye(5, dtype=np.float32)[[1, 3, 3, 0]]
_SOFT = np.random.default_rng(4).dirichlet(np.ones(5), 4).astype(np.float32)


def _ce(reduction, labels):
    return lambda x: x.cross_entropy(labels, reduction=reduction)


def _tce(reduction, labels):
    return lambda x: _tf().cross_entropy(x, _t(labels.data if isinstance(labels, Tensor) else labels),
                                         reduction=reduction)


def _conv(stride, padding, bias=True):
    if bias:
        return (lambda x, w, b: x.conv2d(w, b, stride=stride, padding=padding),
                lambda x, w, b: _tf().conv2d(x, w, b, stride=stride, padding=padding))
    return (lambda x, w: x.conv2d(w, stride=stride, padding=padding),
            lambda x, w: _tf().conv2d(x, w, stride=stride, padding=padding))


SOFTMAX_CASES = [
    case("softmax", [(3, 5)], lambda x: x.softmax(), lambda x: x.softmax(-1)),
    case("softmax-0", [(3, 5)], lambda x: x.softmax(0), lambda x: x.softmax(0)),
    case("softmax-3d", [(2, 3, 4)], lambda x: x.softmax(1), lambda x: x.softmax(1)),
    case("log_softmax", [(3, 5)], lambda x: x.log_softmax(), lambda x: x.log_softmax(-1)),
    case("log_softmax-0", [(3, 5)], lambda x: x.log_softmax(0), lambda x: x.log_softmax(0)),
]
CROSS_ENTROPY_CASES = [
    case("cross_entropy-mean", [(4, 5)], _ce("mean", _LABELS), _tce("mean", _LABELS)),
    case("cross_entropy-sum", [(4, 5)], _ce("sum", _LABELS), _tce("sum", _LABELS)),
    case("cross_entropy-none", [(4, 5)], _ce("none", _LABELS), _tce("none", _LABELS)),
    case("cross_entropy-tensor-labels", [(4, 5)], _ce("mean", Tensor(_LABELS)), _tce("mean", _LABELS)),
    case("cross_entropy-onehot", [(4, 5)], _ce("mean", _ONEHOT), _tce("mean", _ONEHOT)),
    case("cross_entropy-soft-none", [(4, 5)], _ce("none", _SOFT), _tce("none", _SOFT)),
]
CONV_POOL_CASES = [
    case("conv2d", [(2, 3, 5, 5), (4, 3, 3, 3), (4,)], *_conv(1, 0)),
    case("conv2d-stride2-pad1", [(2, 3, 5, 5), (4, 3, 3, 3), (4,)], *_conv(2, 1)),
    case("conv2d-tuple-nonsquare", [(1, 2, 6, 7), (3, 2, 2, 3), (3,)], *_conv((2, 1), (1, 2))),
    case("conv2d-nobias", [(2, 1, 6, 5), (2, 1, 3, 2)], *_conv((1, 2), (0, 1), bias=False)),
    case("conv2d-1x1", [(2, 3, 3, 3), (2, 3, 1, 1), (2,)], *_conv(1, 0)),
    case("max_pool2d", [(2, 2, 4, 4)], lambda x: x.max_pool2d(2), lambda x: _tf().max_pool2d(x, 2), grid()),
    case("max_pool2d-odd", [(1, 2, 5, 5)], lambda x: x.max_pool2d(2), lambda x: _tf().max_pool2d(x, 2), grid()),
    case("max_pool2d-overlap", [(1, 2, 5, 5)], lambda x: x.max_pool2d(3, stride=1),
         lambda x: _tf().max_pool2d(x, 3, stride=1), grid()),
    case("max_pool2d-pad", [(1, 2, 5, 6)], lambda x: x.max_pool2d((2, 3), stride=(2, 1), padding=1),
         lambda x: _tf().max_pool2d(x, (2, 3), stride=(2, 1), padding=1), grid()),
    case("avg_pool2d", [(2, 2, 4, 4)], lambda x: x.avg_pool2d(2), lambda x: _tf().avg_pool2d(x, 2)),
    case("avg_pool2d-stride-pad", [(1, 2, 5, 5)], lambda x: x.avg_pool2d(3, stride=2, padding=1),
         lambda x: _tf().avg_pool2d(x, 3, stride=2, padding=1)),
    case("avg_pool2d-nonsquare", [(1, 1, 5, 6)], lambda x: x.avg_pool2d((2, 3), stride=(1, 2)),
         lambda x: _tf().avg_pool2d(x, (2, 3), stride=(1, 2))),
]
DROPOUT_CASES = [
    case("dropout-eval", [(3, 4)], lambda x: x.dropout(0.5, training=False),
         lambda x: _tf().dropout(x, 0.5, training=False)),
]
MIXED_CASES = [  # several families in one expression
    case("mlp", [(4, 6), (6, 5), (5,), (5, 3)],
         lambda x, w1, b1, w2: ((x @ w1 + b1).tanh() @ w2).cross_entropy(np.array([0, 2, 1, 2])),
         lambda x, w1, b1, w2: _tf().cross_entropy((x @ w1 + b1).tanh() @ w2, _t(np.array([0, 2, 1, 2])))),
]

NN_CASES = SOFTMAX_CASES + CROSS_ENTROPY_CASES + CONV_POOL_CASES + DROPOUT_CASES + MIXED_CASES

# The one op table, by the family of tinygrad_mnist/ops/ whose ops it exercises: tests/test_ops_<family>.py
# runs the family's rows against float64 central differences, and the first list against PyTorch too.
# family -> (rows with a PyTorch reference, numeric-only rows)
CASES_BY_FAMILY = {
    "elementwise": (BINARY_CASES + SCALAR_CASES + UNARY_CASES + WHERE_CASES, []),
    "reduce": (REDUCTION_CASES + SOFTMAX_CASES, []),
    "shape": (SHAPE_CASES, INDEX_NUMERIC_CASES),
    "matmul": (MATMUL_CASES, []),
    "conv": (CONV_POOL_CASES, []),
    "fused": (CROSS_ENTROPY_CASES, []),
    "factories": (DROPOUT_CASES, DROPOUT_NUMERIC_CASES),
    "mixed": (MIXED_CASES, []),  # tests/test_ops_gradcheck.py and test_ops_torch.py
}

ALL_TORCH_CASES = (BINARY_CASES + SCALAR_CASES + UNARY_CASES + WHERE_CASES + REDUCTION_CASES + SHAPE_CASES
                   + MATMUL_CASES + NN_CASES)


def table_tests(family: str):
    """The two tests every tests/test_ops_<family>.py runs over its family's rows of the op table."""
    with_torch, numeric_only = CASES_BY_FAMILY[family]

    @pytest.mark.parametrize("shapes,fn,tfn,init", with_torch + numeric_only)
    def test_gradcheck(shapes, fn, tfn, init):
        """Engine gradients vs float64 central differences, several shapes incl. broadcasting."""
        check_op(shapes, fn, init=init)

    @requires_torch
    @pytest.mark.parametrize("shapes,fn,tfn,init", with_torch)
    def test_against_torch(shapes, fn, tfn, init):
        """Forward values and input gradients vs PyTorch in float32."""
        check_op(shapes, fn, tfn, init, numeric=False)

    return test_gradcheck, test_against_torch


def grads_of_grads_match_torch(cases, xd, values: bool) -> None:
    """Each (ours, theirs) pair: the gradient and the gradient of the gradient of sum(f(x)**2) agree with PyTorch
    (and the values of f(x) too when `values`)."""
    for ours, theirs in cases:
        x, xt = Tensor(xd, requires_grad=True), torch.tensor(xd, requires_grad=True)
        a, b = ours(x), theirs(xt)
        if values:
            np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-5, atol=1e-6)
        (ga,) = grad((a * a).sum(), x, create_graph=True)
        (gb,) = torch.autograd.grad((b * b).sum(), xt, create_graph=True)
        np.testing.assert_allclose(ga.data, gb.detach().numpy(), rtol=1e-5, atol=1e-6)
        (gga,) = grad((ga * ga).sum(), x)
        (ggb,) = torch.autograd.grad((gb * gb).sum(), xt)
        np.testing.assert_allclose(gga.data, ggb.numpy(), rtol=1e-4, atol=1e-5)


def strict_compile(fn=None, **kwargs):
    """tinygrad_mnist.compile that raises CaptureError where the default falls back to eager (fallback=False):
    the replay tests want to know that a step replays, not that it ran somehow."""
    return _compile(fn, fallback=False, **kwargs)
