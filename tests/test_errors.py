"""Bad input gets a clear error: the exception type, and a message that names the op and the shapes or values."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinygrad_mnist import Tensor, grad


def raises(exc, *parts):
    """pytest.raises whose message must contain every one of `parts` (literally)."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(p)})" for p in parts))


def f32(*shape):
    return Tensor(np.zeros(shape, np.float32))


# ---------------------------------------------------------------------------
# broadcasting and matmul
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,op", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b), ("maximum", lambda a, b: a.maximum(b)),
    ("minimum", lambda a, b: a.minimum(b)),
])
def test_broadcast_mismatch_names_op_and_both_shapes(name, op):
    with raises(ValueError, name, "(2, 3)", "(4,)"):
        op(f32(2, 3), f32(4))
    with raises(ValueError, name, "(2, 3)", "(3, 2)"):
        op(f32(2, 3), np.zeros((3, 2), np.float32))  # an ndarray operand too
    if name not in ("maximum", "minimum"):  # reflected: an ndarray on the left
        with raises(ValueError, name, "(5,)", "(2, 3)"):
            op(np.zeros(5, np.float32), f32(2, 3))


def test_broadcast_mismatch_in_where_and_comparison():
    with raises(ValueError, "where", "(2, 3)", "(4,)"):
        Tensor.where(np.ones((2, 3), bool), f32(2, 3), f32(4))
    with raises(ValueError, "(2, 3)", "(4,)"):
        f32(2, 3) < f32(4)  # noqa: B015


@pytest.mark.parametrize("sa,sb", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (4,)), ((4,), (3, 5)),
                                   ((2, 2, 3), (2, 4, 5))])
def test_matmul_mismatch_names_op_and_shapes(sa, sb):
    with raises(ValueError, "matmul", str(sa), str(sb)):
        f32(*sa) @ f32(*sb)


def test_matmul_batch_mismatch_and_scalar_operand():
    with raises(ValueError, "matmul", "(2, 2, 3)", "(3, 3, 4)"):
        f32(2, 2, 3) @ f32(3, 3, 4)
    with raises(ValueError, "matmul", "()", "(2, 3)"):
        Tensor(1.0) @ f32(2, 3)


# ---------------------------------------------------------------------------
# backward
# ---------------------------------------------------------------------------


def test_backward_non_scalar_without_gradient():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    with raises(RuntimeError, "backward", "(2, 3)", "scalar"):
        (x * 2).backward()


def test_backward_gradient_of_wrong_shape():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    with raises(ValueError, "backward", "(3,)", "(2, 3)"):
        (x * 2).backward(np.ones(3))


def test_backward_through_released_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * 2).sum()
    y.backward()
    with raises(RuntimeError, "backward", "released", "retain_graph"):
        y.backward()


def test_backward_through_released_graph_from_a_new_root():
    x = Tensor(np.ones(3), requires_grad=True)
    h = x.exp()
    h.sum().backward()
    with raises(RuntimeError, "released"):
        (h * 2).sum().backward()  # the new part is fine, the shared part is gone


def test_backward_on_tensor_without_grad():
    with raises(RuntimeError, "backward", "does not require grad"):
        Tensor([1.0, 2.0]).sum().backward()


def test_grad_input_that_does_not_require_grad():
    x = Tensor(np.ones(2), requires_grad=True)
    with raises(RuntimeError, "grad", "input 1"):
        grad((x * 2).sum(), [x, Tensor(np.ones(2))])


# ---------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------


def test_requires_grad_on_integer_tensor():
    with raises(TypeError, "grad", "int64"):
        Tensor([1, 2], requires_grad=True)
    with raises(TypeError, "grad", "int64"):
        Tensor.arange(3, requires_grad=True)
    with raises(TypeError, "grad", "bool"):
        Tensor([True], requires_grad=True)


@pytest.mark.parametrize("make", [
    lambda: Tensor([1.5], dtype="int64"),
    lambda: Tensor(np.array([0.0, 2.5]), dtype=np.int64),
    lambda: Tensor(Tensor([1.0, 1.5]), dtype="int32"),
    lambda: Tensor(-0.5, dtype="int64"),
    lambda: Tensor([np.nan], dtype="int64"),
    lambda: Tensor.full((2,), 1.5, dtype="int64"),
    lambda: Tensor.arange(0, 2, 0.5, dtype="int64"),
])
def test_float_to_int_truncation_is_refused(make):
    with raises(TypeError, "int", "truncate"):
        make()


def test_whole_floats_may_become_int():
    np.testing.assert_array_equal(Tensor([1.0, -2.0], dtype="int64").data, [1, -2])
    np.testing.assert_array_equal(Tensor.full((2,), 3.0, dtype="int64").data, [3, 3])
    np.testing.assert_array_equal(Tensor.arange(0.0, 3.0, 1.0, dtype="int64").data, [0, 1, 2])


def test_non_numeric_data():
    with raises(TypeError, "Tensor", "numbers"):
        Tensor(["a", "b"])


# ---------------------------------------------------------------------------
# indexing and shapes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("index,shape", [
    (5, (3,)), (-4, (3,)), ((0, 5), (2, 3)), (np.array([0, 3]), (3,)), (np.array([-4]), (3,)),
    ((slice(None), [0, 7]), (2, 3)), ((0, 0, 0), (2, 3)),
])
def test_index_out_of_range(index, shape):
    with raises(IndexError, "getitem", str(shape)):
        Tensor(np.zeros(shape))[index]


def test_bool_mask_of_wrong_shape():
    with raises(IndexError, "getitem", "(2, 3)"):
        Tensor(np.zeros((2, 3)))[np.array([True, False, True])]


def test_shape_op_errors():
    with raises(ValueError, "reshape", "(24,)"):
        f32(24).reshape(5, -1)
    with raises(ValueError, "reshape", "(24,)"):
        f32(24).reshape(-1, -1, 2)
    with raises(ValueError, "expand", "(3, 1)", "(2, 4)"):
        f32(3, 1).expand(2, 4)
    with raises(ValueError, "cat", "(2, 3)", "(3, 4)"):
        Tensor.cat([f32(2, 3), f32(3, 4)])
    with raises(ValueError, "stack", "(2, 3)", "(4,)"):
        Tensor.stack([f32(2, 3), f32(4)])
    with raises(ValueError, "permute", "(2, 3)"):
        f32(2, 3).permute(0, 0)
    assert f32(2, 3).squeeze(0).shape == (2, 3)  # a non-singleton dim is left alone, as in PyTorch
    with raises(ValueError, "pad"):
        f32(2, 3).pad(((-1, 0), (0, 0)))
    with raises(IndexError, "axis 2", "2 dimension"):
        f32(2, 3).sum(2)
    with raises(ValueError, "item", "(2, 3)"):
        f32(2, 3).item()


def test_grad_assignment_of_wrong_shape():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    with raises(ValueError, "grad", "(3,)", "(2, 3)"):
        x.grad = np.zeros(3)


# ---------------------------------------------------------------------------
# neural-network functions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("labels,bad", [(np.array([0, 3]), "3"), (np.array([-1, 0]), "-1"),
                                        (Tensor([0, 7]), "7")])
def test_cross_entropy_label_out_of_range(labels, bad):
    with raises(IndexError, "cross_entropy", f"label {bad}", "3 classes"):
        f32(2, 3).cross_entropy(labels)


def test_cross_entropy_other_bad_input():
    with raises(ValueError, "cross_entropy", "(2,)", "(2, 3)", "(3,)"):
        f32(2, 3).cross_entropy(np.array([0, 1, 2]))
    with raises(ValueError, "cross_entropy", "(2, 3)", "(2,)"):
        f32(2, 3).cross_entropy(np.array([0.0, 1.0]))
    with raises(ValueError, "cross_entropy", "(3,)"):
        f32(3).cross_entropy(np.array([0]))
    with raises(ValueError, "cross_entropy", "reduction", "avg"):
        f32(2, 3).cross_entropy(np.array([0, 1]), reduction="avg")


def test_conv_and_pool_errors():
    with raises(ValueError, "conv2d", "3 channels", "(2, 2, 3, 3)"):
        f32(1, 3, 5, 5).conv2d(f32(2, 2, 3, 3))
    with raises(ValueError, "conv2d", "(3, 5, 5)"):
        f32(3, 5, 5).conv2d(f32(2, 3, 3, 3))
    with raises(ValueError, "conv2d", "bias", "(3,)"):
        f32(1, 3, 5, 5).conv2d(f32(2, 3, 3, 3), f32(3))
    with raises(ValueError, "stride", "(0, 0)"):
        f32(1, 1, 4, 4).conv2d(f32(1, 1, 3, 3), stride=0)
    with raises(ValueError, "pool2d", "(3, 3)", "(2, 2)"):
        f32(1, 1, 2, 2).max_pool2d(3)


def test_dropout_probability_out_of_range():
    with raises(ValueError, "dropout", "1.5"):
        f32(3).dropout(1.5)
