"""Property tests: binary ops over random broadcastable shape pairs.

For every pair the forward must equal NumPy's, every gradient must have its input's shape, and the
gradient values must equal the textbook rule summed back over the broadcast axes (computed here with
plain NumPy, independently of the engine).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_mnist import Tensor

SETTINGS = settings(max_examples=30, deadline=None)


def sum_to(a: np.ndarray, shape: tuple) -> np.ndarray:
    """Undo NumPy broadcasting: sum `a` down to `shape` (written independently of the engine)."""
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


@st.composite
def operands(draw, nonzero_b=False, ties=False):
    """Two float64 arrays with mutually broadcastable shapes, and an upstream gradient."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
    sa, sb = shapes.input_shapes
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if ties:  # small integers: plenty of exact ties for maximum/minimum
        a = rng.integers(-2, 3, sa).astype(np.float64)
        b = rng.integers(-2, 3, sb).astype(np.float64)
    else:
        a = rng.uniform(-3, 3, sa)
        b = rng.uniform(-3, 3, sb)
    if nonzero_b:
        b = np.where(np.abs(b) < 0.5, np.copysign(0.5, b) + b, b)
    g = rng.standard_normal(shapes.result_shape)
    return a, b, g


def run(op, a, b, g):
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = op(x, y)
    out.backward(Tensor(g))
    assert out.shape == np.broadcast_shapes(a.shape, b.shape)
    assert x.grad.shape == a.shape, f"grad of x has shape {x.grad.shape}, x has {a.shape}"
    assert y.grad.shape == b.shape, f"grad of y has shape {y.grad.shape}, y has {b.shape}"
    assert out.dtype == x.grad.dtype == y.grad.dtype == np.float64
    return out.data, x.grad.data, y.grad.data


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(operands())
def test_add(args):
    a, b, g = args
    out, gx, gy = run(lambda x, y: x + y, a, b, g)
    close(out, a + b)
    close(gx, sum_to(g, a.shape))
    close(gy, sum_to(g, b.shape))


@SETTINGS
@given(operands())
def test_sub(args):
    a, b, g = args
    out, gx, gy = run(lambda x, y: x - y, a, b, g)
    close(out, a - b)
    close(gx, sum_to(g, a.shape))
    close(gy, sum_to(-g, b.shape))


@SETTINGS
@given(operands())
def test_mul(args):
    a, b, g = args
    out, gx, gy = run(lambda x, y: x * y, a, b, g)
    close(out, a * b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    close(gx, sum_to(g * np.broadcast_to(b, shape), a.shape))
    close(gy, sum_to(g * np.broadcast_to(a, shape), b.shape))


@SETTINGS
@given(operands(nonzero_b=True))
def test_div(args):
    a, b, g = args
    out, gx, gy = run(lambda x, y: x / y, a, b, g)
    close(out, a / b)
    close(gx, sum_to(g / b, a.shape))
    close(gy, sum_to(-g * a / (b * b), b.shape))


@SETTINGS
@given(operands(ties=True))
def test_maximum(args):
    a, b, g = args
    out, gx, gy = run(lambda x, y: x.maximum(y), a, b, g)
    close(out, np.maximum(a, b))
    wa = np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))  # ties split equally, as in PyTorch
    close(gx, sum_to(g * wa, a.shape))
    close(gy, sum_to(g * (1 - wa), b.shape))


@SETTINGS
@given(operands(ties=True))
def test_minimum(args):
    a, b, g = args
    out, gx, gy = run(lambda x, y: x.minimum(y), a, b, g)
    close(out, np.minimum(a, b))
    wa = np.where(a < b, 1.0, np.where(a == b, 0.5, 0.0))
    close(gx, sum_to(g * wa, a.shape))
    close(gy, sum_to(g * (1 - wa), b.shape))


@SETTINGS
@given(operands())
def test_float32_stays_float32_under_broadcasting(args):
    a, b, g = args
    x, y = Tensor(a.astype(np.float32), requires_grad=True), Tensor(b.astype(np.float32), requires_grad=True)
    out = (x * y + x) * 2.0 - 1
    out.backward(g.astype(np.float32))
    assert out.dtype == x.grad.dtype == y.grad.dtype == np.float32
    assert x.grad.shape == a.shape and y.grad.shape == b.shape
    shape = out.shape
    np.testing.assert_allclose(x.grad.data, sum_to(2 * g * (np.broadcast_to(b, shape) + 1), a.shape),
                               rtol=1e-4, atol=1e-4)


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), st.data())
def test_sum_over_random_axes(shape, data):
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)).map(tuple))
    keepdim = data.draw(st.booleans())
    a = np.random.default_rng(len(shape)).standard_normal(shape)
    x = Tensor(a, requires_grad=True)
    axis = axes if axes else None
    out = x.sum(axis, keepdim=keepdim)
    np.testing.assert_allclose(out.data, a.sum(axis=axis, keepdims=keepdim), rtol=1e-12)
    g = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(g)
    full = g.reshape(a.sum(axis=axis, keepdims=True).shape)
    np.testing.assert_allclose(x.grad.data, np.broadcast_to(full, shape), rtol=1e-12)
