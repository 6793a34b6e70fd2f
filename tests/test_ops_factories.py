"""Arrays made without a gradient (tinygrad_mnist/ops/factories.py): one-hots, fills, dropout masks.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import table_tests
from tinygrad_mnist import Tensor, ops
from tinygrad_mnist.nn import functional as F

test_gradcheck, test_against_torch = table_tests("factories")  # this family's rows of the op table


def test_one_hot_op_and_full_op():
    y = Tensor(np.array([[2, 0], [1, 1]]))
    out = ops.OneHot.apply(y, num_classes=3, dtype=np.dtype(np.float32))
    np.testing.assert_array_equal(out.data, np.eye(3, dtype=np.float32)[y.data])
    np.testing.assert_array_equal(F.one_hot(y, 3).data, np.eye(3, dtype=np.int64)[y.data])
    full = ops.Full.apply(shape=(2, 1), value=1, dtype=np.dtype(np.float64))
    np.testing.assert_array_equal(full.data, np.ones((2, 1)))


def test_one_hot_refuses_a_negative_label_it_was_not_checked_for():
    with pytest.raises(IndexError, match="out of range"):
        ops.OneHot.apply(Tensor(np.array([1, -100])), num_classes=10, dtype=np.dtype(np.float32))
