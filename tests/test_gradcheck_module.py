"""tinygrad_mnist.gradcheck: importable as a module, catches wrong gradients with a useful report,
and compares against a reference implementation (PyTorch or any callable)."""

from __future__ import annotations

import importlib
import inspect
import re

import numpy as np
import pytest
from helpers import requires_torch

import tinygrad_mnist
from tinygrad_mnist import Function, Tensor
from tinygrad_mnist.gradcheck import (
    GradcheckError,
    analytical_jacobian,
    compare_with_reference,
    gradcheck,
    numerical_jacobian,
    torch_reference,
)


class GoodCube(Function):
    def forward(self, x):
        return x ** 3

    def backward(self, g):
        x = self.parents[0]
        return (g * x * x * 3,)


class WrongCube(Function):
    """x^3 with the derivative 2 x^2 instead of 3 x^2."""

    def forward(self, x):
        return x ** 3

    def backward(self, g):
        x = self.parents[0]
        return (g * x * x * 2,)


class WrongSecondInput(Function):
    """x * y whose gradient w.r.t. y is wrong (only) at element 2 of y."""

    def forward(self, x, y):
        return x * y

    def backward(self, g):
        x, y = self.parents
        bump = np.zeros(y.shape)
        bump[2] = 1.0
        return g * y, g * x + g * Tensor(bump)


def test_module_is_not_shadowed_by_the_function():
    import tinygrad_mnist.gradcheck as m

    assert inspect.ismodule(m)
    assert inspect.ismodule(importlib.import_module("tinygrad_mnist.gradcheck"))
    assert inspect.ismodule(tinygrad_mnist.gradcheck)
    assert callable(m.gradcheck) and callable(m.numerical_jacobian)
    assert m.gradcheck is gradcheck


def test_correct_custom_function_passes():
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    assert gradcheck(lambda t: GoodCube.apply(t), [x])


def test_wrong_custom_function_is_reported():
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: WrongCube.apply(t), [x])
    msg = str(info.value)
    assert "input 0" in msg
    # first bad entry: d out[0] / d x[0]; analytic 2 * 0.25 = 0.5, numeric 3 * 0.25 = 0.75
    assert re.search(r"d output\[0\] / d input\[0\]", msg), msg
    assert re.search(r"analytic 0\.5\b", msg) and re.search(r"numeric 0\.75\b", msg), msg
    assert isinstance(info.value, AssertionError)  # a plain assert-style failure in pytest


def test_wrong_gradient_names_second_input_and_element():
    x = Tensor(np.arange(1.0, 5.0), requires_grad=True)
    y = Tensor(np.array([0.5, 1.5, -1.0, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: WrongSecondInput.apply(a, b), [x, y])
    msg = str(info.value)
    assert "input 1" in msg and "(4,)" in msg
    assert "d output[2] / d input[2]" in msg  # the one wrong entry of the Jacobian
    assert "analytic 4" in msg and "numeric 3" in msg  # x[2] + 1 vs x[2]
    assert "1 of 16" in msg


def test_wrong_gradient_element_index_is_multidimensional():
    x = Tensor(np.array([[0.5, 1.0], [1.5, 2.0]]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input\[0, 0\]"):
        gradcheck(lambda t: WrongCube.apply(t).sum(), [x])


def test_raise_exception_false_returns_false():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert gradcheck(lambda t: WrongCube.apply(t), [x], raise_exception=False) is False
    assert gradcheck(lambda t: GoodCube.apply(t), [x], raise_exception=False) is True


def test_gradcheck_works_in_float64_on_copies():
    x = Tensor(np.array([0.3, 0.7], np.float32), requires_grad=True)
    seen = []

    def f(t):
        seen.append(t.dtype)
        return (t.exp() * t).sum()

    assert gradcheck(f, [x])
    assert set(seen) == {np.dtype(np.float64)}
    np.testing.assert_array_equal(x.data, np.array([0.3, 0.7], np.float32))
    assert x.dtype == np.float32 and x.grad is None


def test_non_tensor_and_frozen_inputs_pass_through():
    x = Tensor(np.array([[0.2, -0.3, 0.1]]), requires_grad=True)
    c = Tensor(np.array([1.0, 2.0, 3.0]))  # not checked
    labels = np.array([2])
    assert gradcheck(lambda a, b, y: (a * b).cross_entropy(y), [x, c, labels])


def test_numerical_jacobian_matches_known_jacobian():
    A = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]])
    x = Tensor(np.array([0.5, -0.5, 1.0]), requires_grad=True)
    y = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    (jx, jy) = numerical_jacobian(lambda a, b: (Tensor(A) @ a) * b, [x, y])
    assert jx.shape == (2, 3) and jy.shape == (2, 2)
    np.testing.assert_allclose(jx, A * y.data[:, None], atol=1e-8)
    np.testing.assert_allclose(jy, np.diag(A @ x.data), atol=1e-8)
    (ax, ay) = analytical_jacobian(lambda a, b: (Tensor(A) @ a) * b, [x, y])
    np.testing.assert_allclose(ax, jx, atol=1e-8)
    np.testing.assert_allclose(ay, jy, atol=1e-8)


def test_numerical_jacobian_skips_inputs_without_grad():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = Tensor(np.array([3.0, 4.0]))
    jac = numerical_jacobian(lambda a, b: a * b, [c, x])
    assert len(jac) == 1
    np.testing.assert_allclose(jac[0], np.diag([3.0, 4.0]), atol=1e-8)


# ---------------------------------------------------------------------------
# compare_with_reference
# ---------------------------------------------------------------------------


def numpy_reference_mul_exp(arrays, grad_output):
    """A reference written in NumPy: out = a * exp(b)."""
    a, b = arrays
    out = a * np.exp(b)
    return out, [grad_output * np.exp(b), grad_output * out]


def test_compare_with_numpy_reference():
    a = Tensor(np.array([1.0, -2.0, 0.5], np.float32), requires_grad=True)
    b = Tensor(np.array([0.1, 0.2, -0.3], np.float32), requires_grad=True)
    assert compare_with_reference(lambda x, y: x * y.exp(), numpy_reference_mul_exp, [a, b])
    with pytest.raises(GradcheckError, match=r"gradient of input 1.*index \[2\]"):
        compare_with_reference(lambda x, y: x * WrongSecondInput.apply(Tensor(np.ones(3, np.float32)), y.exp()),
                               numpy_reference_mul_exp, [a, b])
    with pytest.raises(GradcheckError, match="output"):
        compare_with_reference(lambda x, y: x * y.exp() + 0.01, numpy_reference_mul_exp, [a, b])


@requires_torch
def test_torch_reference_agrees_on_correct_functions():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 2)).astype(np.float32), requires_grad=True)
    assert compare_with_reference(lambda a, b: (a @ b).tanh(), torch_reference(lambda a, b: (a @ b).tanh()), [x, w])
    assert compare_with_reference(lambda a: GoodCube.apply(a), torch_reference(lambda a: a ** 3), [x],
                                  grad_output=rng.standard_normal((3, 4)))
    labels = np.array([0, 3, 1])
    import torch

    assert compare_with_reference(lambda a, y: a.cross_entropy(y),
                                  torch_reference(lambda a, y: torch.nn.functional.cross_entropy(a, y)), [x, labels])


@requires_torch
def test_torch_reference_catches_a_wrong_gradient():
    x = Tensor(np.array([0.5, -1.0, 2.0], np.float32), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        compare_with_reference(lambda a: WrongCube.apply(a), torch_reference(lambda a: a ** 3), [x])
    msg = str(info.value)
    assert "gradient of input 0" in msg and "index [0]" in msg
    assert "ours 0.5" in msg and "reference 0.75" in msg


@requires_torch
def test_torch_reference_catches_a_wrong_forward_and_wrong_second_input():
    x = Tensor(np.arange(1.0, 5.0, dtype=np.float32), requires_grad=True)
    y = Tensor(np.array([0.5, 1.5, -1.0, 2.0], np.float32), requires_grad=True)
    with pytest.raises(GradcheckError, match="output"):
        compare_with_reference(lambda a: a.sigmoid(), torch_reference(lambda a: a.tanh()), [x])
    with pytest.raises(GradcheckError, match=r"gradient of input 1.*index \[2\]"):
        compare_with_reference(lambda a, b: WrongSecondInput.apply(a, b), torch_reference(lambda a, b: a * b), [x, y])


@requires_torch
def test_compare_with_reference_leaves_inputs_alone():
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    compare_with_reference(lambda a: a * a, torch_reference(lambda a: a * a), [x])
    assert x.grad is None
    np.testing.assert_array_equal(x.data, [1.0, 2.0])


class CubeOffBy(Function):
    """x^3 whose derivative is off by a relative factor `rel` (set on the class)."""

    rel = 0.0

    def forward(self, x):
        return x ** 3

    def backward(self, g):
        x = self.parents[0]
        return (g * x * x * (3 * (1 + self.rel)),)


@pytest.mark.parametrize("rel, passes", [(1e-2, False), (2e-3, False), (1e-5, True), (0.0, True)])
def test_default_tolerance_is_pinned(monkeypatch, rel, passes):
    """gradcheck's defaults catch a Jacobian 1% (even 0.2%) off and accept one 1e-5 off: loosening the default
    rtol (1e-3) to, say, 0.2 would let wrong gradients through, and this test would say so."""
    monkeypatch.setattr(CubeOffBy, "rel", rel)
    x = Tensor(np.array([0.7, -1.3, 2.1]), requires_grad=True)  # derivatives ~1.5 to 13: atol=1e-5 doesn't matter
    assert gradcheck(lambda t: CubeOffBy.apply(t), [x], raise_exception=False) is passes
    defaults = inspect.signature(gradcheck).parameters
    assert defaults["rtol"].default == 1e-3 and defaults["atol"].default == 1e-5
