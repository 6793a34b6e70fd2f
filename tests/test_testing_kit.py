"""tinygrad_mnist.testing: gradgradcheck catches wrong and non-differentiable backwards, a user's own
Function works end to end, the error carries its details, and the kit keeps one home per function."""

from __future__ import annotations

import importlib
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_mnist
import tinygrad_mnist.gradcheck as gradcheck_module
import tinygrad_mnist.testing as testing
from tinygrad_mnist import Function, Tensor
from tinygrad_mnist.testing import GradcheckError, format_table, gradcheck, gradgradcheck

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# user-written ops: one right, and one wrong at each order
# ---------------------------------------------------------------------------


class Cube(Function):
    """x^3, its backward written with Tensor ops: differentiable again."""

    def forward(self, x):
        assert type(x) is np.ndarray  # forward works on arrays
        return x ** 3

    def backward(self, g):
        (x,) = self.parents
        return (g * x * x * 3,)


class WrongCube(Function):
    """x^3 with a wrong first-order rule: 2 x^2."""

    def forward(self, x):
        return x ** 3

    def backward(self, g):
        (x,) = self.parents
        return (g * x * x * 2,)


class CubeBehindTheGraph(Function):
    """x^3 whose gradient values are right, but 3 x^2 is computed in NumPy: a constant to the graph."""

    def forward(self, x):
        return x ** 3

    def backward(self, g):
        (x,) = self.parents
        return (g * Tensor(3 * x.data ** 2),)


class CubeDetachedGrad(Function):
    """x^3 whose backward reads the incoming gradient's raw values: not differentiable in grad_output."""

    def forward(self, x):
        return x ** 3

    def backward(self, g):
        (x,) = self.parents
        return (Tensor(g.data) * x * x * 3,)


class ThreeSquaresWrongRule(Function):
    """3 x^2 whose own gradient is wrong (3 x instead of 6 x)."""

    def forward(self, x):
        return 3 * x ** 2

    def backward(self, g):
        (x,) = self.parents
        return (g * x * 3,)


class CubeWrongSecondOrder(Function):
    """x^3 with a right first-order rule built on an op whose rule is wrong: only order 2 can see it."""

    def forward(self, x):
        return x ** 3

    def backward(self, g):
        (x,) = self.parents
        return (g * ThreeSquaresWrongRule.apply(x),)


class ScaledProduct(Function):
    """scale * x * y: two inputs and a keyword parameter."""

    def forward(self, x, y, scale=1.0):
        self.scale = scale
        return scale * x * y

    def backward(self, g):
        x, y = self.parents
        return g * y * self.scale, g * x * self.scale


X = np.array([0.5, -1.0, 2.0])
ONES = np.ones(3)


def leaf(values):
    return Tensor(np.array(values, np.float64), requires_grad=True)


# ---------------------------------------------------------------------------
# the public names
# ---------------------------------------------------------------------------


def test_one_home_per_function():
    for name in ("gradcheck", "gradgradcheck", "GradcheckError", "numerical_jacobian", "analytical_jacobian",
                 "compare_with_reference", "torch_reference", "assert_close", "format_table"):
        assert getattr(testing, name) is getattr(gradcheck_module, name), name
    assert tinygrad_mnist.autograd.gradcheck is gradcheck and tinygrad_mnist.autograd.gradgradcheck is gradgradcheck
    assert issubclass(GradcheckError, AssertionError)
    assert importlib.import_module("tinygrad_mnist.gradcheck") is gradcheck_module  # still importable


def test_function_is_importable_from_the_top_level():
    from tinygrad_mnist.engine import Function as EngineFunction

    assert tinygrad_mnist.Function is EngineFunction
    assert "Function" in tinygrad_mnist.__all__


def test_importing_the_kit_imports_neither_torch_nor_hypothesis():
    code = ("import sys, tinygrad_mnist.testing, tinygrad_mnist.testing.plugin\n"
            "print(sorted(m for m in ('torch', 'hypothesis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# ---------------------------------------------------------------------------
# a user's own Function, end to end
# ---------------------------------------------------------------------------


def test_user_function_end_to_end():
    x = leaf(X)
    y = Cube.apply(x)
    np.testing.assert_allclose(y.data, X ** 3)
    assert y.requires_grad and isinstance(y.grad_fn, Cube)
    (y * Tensor(np.array([1.0, 2.0, -1.0]))).sum().backward()
    np.testing.assert_allclose(x.grad.data, 3 * X ** 2 * np.array([1.0, 2.0, -1.0]))
    assert gradcheck(lambda t: Cube.apply(t), [x])
    assert gradgradcheck(lambda t: Cube.apply(t), [x])


def test_user_function_with_two_inputs_and_a_parameter():
    x, y = leaf([0.5, -2.0]), leaf([[1.5], [0.25]])
    out = ScaledProduct.apply(x, y, scale=3.0)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out.data, 3.0 * x.data * y.data)
    assert gradcheck(lambda a, b: ScaledProduct.apply(a, b, scale=3.0), [x, y])  # broadcast summed back
    assert gradgradcheck(lambda a, b: ScaledProduct.apply(a, b, scale=3.0).tanh(), [x, y])


# ---------------------------------------------------------------------------
# gradgradcheck
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn, shapes", [
    (lambda a, b: (a @ b).tanh(), [(2, 3), (3, 4)]),
    (lambda a: a.softmax(-1).log(), [(2, 3)]),
    (lambda a, b: (a * b).sigmoid().sum(), [(3,), (2, 3)]),
    (lambda a: a.exp().mean(0), [(3, 2)]),
])
def test_gradgradcheck_passes_builtin_ops(fn, shapes):
    rng = np.random.default_rng(0)
    inputs = [Tensor(rng.uniform(-1, 1, s), requires_grad=True) for s in shapes]
    assert gradgradcheck(fn, inputs)


def test_gradgradcheck_leaves_its_inputs_alone():
    x = Tensor(np.array([0.3, -0.7], np.float32), requires_grad=True)
    assert gradgradcheck(lambda t: (t * t * t).sum(), [x])
    np.testing.assert_array_equal(x.data, np.array([0.3, -0.7], np.float32))
    assert x.dtype == np.float32 and x.grad is None


def test_gradgradcheck_catches_a_backward_computed_behind_the_graph():
    x = leaf(X)
    assert gradcheck(lambda t: CubeBehindTheGraph.apply(t), [x])  # the values are right: order 1 passes
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda t: CubeBehindTheGraph.apply(t), [x], grad_outputs=ONES)
    e, msg = info.value, str(info.value)
    assert "order 2" in msg and "input 0 (shape (3,))" in msg
    # d grad_input0[0] / d x[0] = 6 x[0] * grad_output[0] = 3; the graph saw a constant: 0
    assert "d grad_input0[0] / d input0[0]: analytic 0, numeric 3" in msg, msg
    assert "3 of 9" in msg  # the diagonal of d grad / d x (d grad / d grad_output is right)
    assert "behind the graph's back" in msg
    assert (e.order, e.what, e.index) == (2, "input 0", (0,))
    np.testing.assert_allclose(e.want, [3.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_array_equal(e.got, [0.0, 0.0, 0.0])


def test_gradgradcheck_catches_a_gradient_detached_from_grad_output():
    x = leaf(X)
    assert gradcheck(lambda t: CubeDetachedGrad.apply(t), [x])
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda t: CubeDetachedGrad.apply(t), [x])
    msg = str(info.value)
    assert "for grad_output (shape (3,))" in msg, msg
    # d grad_input0[0] / d grad_output[0] = 3 x[0]^2 = 0.75
    assert "d grad_input0[0] / d grad_output[0]: analytic 0, numeric 0.75" in msg, msg
    assert info.value.what == "grad_output"


def test_gradgradcheck_catches_a_wrong_second_order_rule():
    x = leaf(X)
    assert gradcheck(lambda t: CubeWrongSecondOrder.apply(t), [x])
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda t: CubeWrongSecondOrder.apply(t), [x], grad_outputs=np.array([1.0, 2.0, -1.0]))
    msg = str(info.value)
    # element 1: 6 x g = 6 * -1 * 2 = -12; the wrong rule gives 3 x g = -6
    assert "d grad_input0[0] / d input0[0]: analytic 1.5, numeric 3" in msg, msg
    assert "3 of 9" in msg
    assert "behind the graph" not in msg  # the analytic value is not zero: no such hint
    np.testing.assert_allclose(info.value.got, [1.5, 0, 0])


def test_gradgradcheck_checks_the_backward_not_the_forward():
    """A wrong first-order rule is a consistent backward of its own: gradgradcheck (which differentiates the
    backward) passes it, gradcheck (which compares it with the forward) does not.  Run both."""
    assert gradgradcheck(lambda t: WrongCube.apply(t), [leaf(X)])
    with pytest.raises(GradcheckError, match=r"order 1\) for input 0"):
        gradcheck(lambda t: WrongCube.apply(t), [leaf(X)])


def test_gradgradcheck_names_the_input_and_its_element():
    x = Tensor(np.array([[0.5, 1.0], [1.5, 2.0]]), requires_grad=True)
    w = Tensor(np.array([0.2, -0.4]), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda a, b: CubeBehindTheGraph.apply(b) * a, [x, w])
    msg = str(info.value)
    # x enters linearly (its second derivatives are right); w's are lost: d grad_input1[0] / d w[0]
    assert "for input 1 (shape (2,))" in msg and "d grad_input1[0] / d input1[0]" in msg, msg
    assert info.value.index == (0,)


def test_gradgradcheck_raise_exception_false_and_bad_arguments():
    assert gradgradcheck(lambda t: CubeBehindTheGraph.apply(t), [leaf(X)], raise_exception=False) is False
    assert gradgradcheck(lambda t: Cube.apply(t), [leaf(X)], raise_exception=False) is True
    with pytest.raises(ValueError, match=r"grad_outputs has shape \(2,\), the output has \(3,\)"):
        gradgradcheck(lambda t: Cube.apply(t), [leaf(X)], grad_outputs=np.ones(2))
    with pytest.raises(ValueError, match="no input requires grad"):
        gradgradcheck(lambda t: t * 2, [Tensor(X)])


def test_gradgradcheck_accepts_unused_inputs_and_labels():
    x, unused = leaf([[0.2, -0.3, 0.1], [0.5, 0.4, -0.2]]), leaf([1.0])
    assert gradgradcheck(lambda a, b, y: a.cross_entropy(y), [x, unused, np.array([2, 0])])


def test_gradcheck_names_the_output_element_in_its_shape():
    x = Tensor(np.array([[0.5, 1.0], [1.5, 2.0]]), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: WrongCube.apply(t), [x])
    assert "d output[0, 0] / d input[0, 0]: analytic 0.5, numeric 0.75" in str(info.value)
    assert info.value.order == 1


# ---------------------------------------------------------------------------
# the error's details
# ---------------------------------------------------------------------------


def test_format_table_marks_the_differences_around_the_first():
    got = np.arange(30.0).reshape(5, 6)
    want = got.copy()
    want[3, 4] += 1
    want[4, 5] += 1
    table = format_table(got, want, (3, 4), radius=1, got_name="ours", want_name="ref")
    assert table.splitlines() == [
        "first difference at [3, 4]; elements near it, * = outside tolerance:",
        "ours:",
        "      3    4    5",
        "  2  15   16   17",
        "  3  21   22*  23",
        "  4  27   28   29*",
        "ref:",
        "      3    4    5",
        "  2  15   16   17",
        "  3  21   23*  23",
        "  4  27   28   30*",
    ]


def test_format_table_other_ranks():
    t1 = format_table(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 3.0]), (1,), radius=5)
    assert t1.splitlines()[1:] == ["got:", "      0     1     2", "      1     2*    3",
                                   "want:", "      0     1     2", "      1   2.5*    3"]
    t0 = format_table(np.array(1.5), np.array(2.0), ())
    assert t0 == "got: 1.5\nwant: 2"
    t3 = format_table(np.zeros((2, 2, 2)), np.ones((2, 2, 2)), (1, 0, 1))
    assert "elements [1, :, :] near it" in t3


def test_error_keeps_its_details_through_pickling():
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda t: CubeBehindTheGraph.apply(t), [leaf(X)])
    back = pickle.loads(pickle.dumps(info.value))
    assert str(back) == str(info.value) and back.order == 2 and back.index == (0,)
    assert back.table() == info.value.table() and "numeric:" in back.table()


def test_assert_close_names_what_and_where():
    testing.assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]))
    with pytest.raises(GradcheckError) as info:
        testing.assert_close(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.5, 4.0]]),
                             what="gradient of x", reference="oracle")
    msg = str(info.value)
    assert re.search(r"gradient of x differs from the oracle at 1 of 4 elements .*index \[1, 0\]: "
                     r"ours 3, oracle 3\.5", msg), msg
    with pytest.raises(GradcheckError, match=r"step differs .*\(exactly\).*ours 2, reference 3"):  # integers
        testing.assert_close(np.array(2), np.array(3), what="step")
    with pytest.raises(GradcheckError, match=r"shape \(2,\), reference has \(3,\)"):
        testing.assert_close(np.zeros(2), np.zeros(3))
