"""tinygrad_mnist.testing.strategies: what each strategy promises holds for what it draws, and the
module says how to get hypothesis when it is missing."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_mnist as tg
from tinygrad_mnist import Tensor
from tinygrad_mnist.testing import gradcheck
from tinygrad_mnist.testing import strategies as tst

SETTINGS = settings(max_examples=25, deadline=None)


@SETTINGS
@given(tst.shapes(min_dims=1, max_dims=3, min_side=2, max_side=3))
def test_shapes_stay_in_bounds(shape):
    assert isinstance(shape, tuple) and 1 <= len(shape) <= 3
    assert all(2 <= s <= 3 for s in shape)


@SETTINGS
@given(st.data())
def test_broadcastable_shapes_broadcast(data):
    shape = data.draw(tst.shapes())
    other = data.draw(tst.broadcastable_shapes(shape, max_dims=4))
    result = np.broadcast_shapes(shape, other)  # raises if they do not broadcast
    assert len(result) == max(len(shape), len(other)) and len(other) <= 4


@SETTINGS
@given(tst.tensors(dtype="float64", requires_grad=True, min_value=-2, max_value=3, away_from=(0.0, 1.0), gap=0.25))
def test_tensors_are_finite_bounded_and_away_from_kinks(x):
    assert isinstance(x, Tensor) and x.requires_grad and x.dtype == np.float64 and x.grad_fn is None
    assert np.isfinite(x.data).all()
    assert ((x.data >= -2) & (x.data <= 3)).all()
    assert (np.abs(x.data) >= 0.25).all() and (np.abs(x.data - 1.0) >= 0.25).all()


@SETTINGS
@given(tst.tensors(shape=(2, 3)), tst.tensors(shape=tst.shapes(min_dims=2, max_dims=2), dtype=tg.float64))
def test_tensors_shape_and_dtype(a, b):
    assert a.shape == (2, 3) and a.dtype == np.float32 and not a.requires_grad
    assert b.ndim == 2 and b.dtype == np.float64


@SETTINGS
@given(tst.tensors(shape=(4,), elements=st.sampled_from([-1.5, 2.5])))
def test_tensors_take_an_elements_strategy(x):
    assert set(x.data.tolist()) <= {-1.5, 2.5}


def test_tensors_rejects_other_dtypes_and_empty_ranges():
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got int64"):
        tst.tensors(dtype=np.int64)
    with pytest.raises(ValueError, match="need min_value < max_value, got 2 and 1"):
        tst.tensors(min_value=2, max_value=1)


@SETTINGS
@given(st.data())
def test_index_arrays_pick_valid_elements_and_gradcheck_through_them(data):
    shape = data.draw(tst.shapes(min_dims=1, max_dims=2, max_side=3))
    idx = data.draw(tst.index_arrays(shape))
    assert isinstance(idx, tuple) and len(idx) == len(shape)
    for i, side in zip(idx, shape):
        assert i.dtype == np.int64 and ((i >= -side) & (i < side)).all()
    x = data.draw(tst.tensors(shape, dtype="float64", requires_grad=True))
    np.testing.assert_array_equal(x[idx].data, x.data[idx])
    assert gradcheck(lambda t: t[idx] * t[idx], [x])  # repeated picks add up


def test_index_arrays_needs_a_real_shape():
    with pytest.raises(ValueError, match=r"at least one axis and no empty side, got \(2, 0\)"):
        tst.index_arrays((2, 0))


def test_without_hypothesis_the_import_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # what a missing package looks like to import
    monkeypatch.delitem(sys.modules, "tinygrad_mnist.testing.strategies")
    with pytest.raises(ImportError, match=r"needs hypothesis.*pip install hypothesis"):
        importlib.import_module("tinygrad_mnist.testing.strategies")
