"""Shared test setup.

- puts this folder on sys.path so `from helpers import ...` works under any pytest import mode;
- fails a test that leaves grad mode switched off (a leaked no_grad would silently break the tests after it);
- switches downloads off: tests never need the network (data tests fake the downloader explicitly).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

os.environ.setdefault("TINYGRAD_MNIST_OFFLINE", "1")

import tinygrad_mnist  # noqa: E402


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    assert tinygrad_mnist.is_grad_enabled(), "grad mode was off before the test started"
    yield
    if not tinygrad_mnist.is_grad_enabled():
        tinygrad_mnist.set_grad_enabled(True)  # a plain call switches it back: one leak must not fail every later test
        pytest.fail("the test left grad mode switched off (an unclosed no_grad()/set_grad_enabled(False))")
