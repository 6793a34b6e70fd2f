"""The op table's PyTorch comparison itself (helpers.check_op with a reference), and the mixed rows against PyTorch.

Each family's rows run against PyTorch in tests/test_ops_<family>.py.  Skipped as a whole when PyTorch is
not installed (test_ops_gradcheck.py covers the same rows numerically).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is the reference here (pip install -e .[ref])")

from helpers import check_op, table_tests  # noqa: E402

from tinygrad_mnist.gradcheck import GradcheckError  # noqa: E402

_, test_against_torch = table_tests("mixed")  # the mixed rows of the op table (several families at once)


def test_full_helper_runs_both_parts():
    check_op([(3, 1), (1, 4)], lambda a, b: (a * b).tanh(), lambda a, b: (a * b).tanh())


def test_helper_catches_a_wrong_forward():
    with pytest.raises(GradcheckError, match="output"):
        check_op([(3, 4)], lambda x: x.sigmoid(), lambda x: x.tanh(), numeric=False)
