"""Matrix products (tinygrad_mnist/ops/matmul.py): the op table's matmul rows, every broadcasting spelling.
"""

from __future__ import annotations

from tests.helpers import table_tests

test_gradcheck, test_against_torch = table_tests("matmul")  # this family's rows of the op table


