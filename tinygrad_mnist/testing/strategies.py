"""hypothesis strategies for gradient tests: shapes, broadcastable shapes, tensors, index arrays.

    from hypothesis import given
    from tinygrad_mnist.testing import gradcheck, strategies as tst

    @given(tst.tensors(dtype="float64", requires_grad=True, away_from=(0.0,)))
    def test_relu(x):
        gradcheck(lambda t: t.relu(), [x])

Values are always finite; `away_from` keeps them a `gap` away from kinks (relu's 0, a clip's
bounds), where central differences and the analytic gradient rightly disagree.  hypothesis is an
optional dependency: importing this module without it raises an ImportError that says how to get it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as e:  # pragma: no cover - exercised in a subprocess without hypothesis
    raise ImportError("tinygrad_mnist.testing.strategies needs hypothesis, an optional dependency: "
                      "pip install hypothesis (or pip install 'tinygrad_mnist[dev]')") from e

from ..engine import Tensor

__all__ = ["broadcastable_shapes", "index_arrays", "shapes", "tensors"]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Tensor shapes (tuples of ints) with min_dims..max_dims axes of min_side..max_side each.

    Small by default: gradcheck costs two forwards per input element.
    """
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(shape: Sequence[int], min_dims: int = 0, max_dims: int | None = None, min_side: int = 1,
                         max_side: int | None = None) -> st.SearchStrategy:
    """Shapes that broadcast against `shape` (sides of 1, missing leading axes, or equal sides)."""
    return hnp.broadcastable_shapes(tuple(shape), min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                                    max_side=max_side)


def tensors(shape=None, dtype="float32", elements: st.SearchStrategy | None = None, requires_grad: bool = False,
            min_value: float = -4.0, max_value: float = 4.0, away_from: Sequence[float] = (),
            gap: float = 0.1) -> st.SearchStrategy:
    """Tensors of float32 or float64 values, finite and within [min_value, max_value].

    shape:         a tuple, a strategy of tuples, or None (any of `shapes()`)
    elements:      a strategy for the values, replacing min_value/max_value/away_from
    requires_grad: make leaves that require grad (ready for gradcheck)
    away_from:     points no value comes within `gap` of (kinks: 0 for relu and abs, clip bounds)
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"tensors: dtype must be float32 or float64, got {dtype}")
    if elements is None:
        if not min_value < max_value:
            raise ValueError(f"tensors: need min_value < max_value, got {min_value} and {max_value}")
        elements = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                             width=dtype.itemsize * 8)
        points = tuple(float(p) for p in away_from)
        if points:
            elements = elements.filter(lambda v: all(abs(v - p) >= gap for p in points))
    if shape is None:
        shape = shapes()
    elif not isinstance(shape, st.SearchStrategy):
        shape = st.just(tuple(shape))
    arrays = hnp.arrays(dtype, shape, elements=elements)
    return arrays.map(lambda a: Tensor(a, requires_grad=requires_grad))


def index_arrays(shape: Sequence[int], result_shape: st.SearchStrategy | None = None) -> st.SearchStrategy:
    """Integer index arrays into a tensor of `shape`: a tuple of int64 arrays, one per axis, for `x[idx]`.

    Indices lie in [-side, side) for each axis (negative ones included) and may repeat, so a
    gather's gradient must add up repeated picks.  `result_shape` is the strategy for the shape of
    the picked result (default: 1 or 2 axes of 1 to 4).
    """
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"index_arrays: need a shape with at least one axis and no empty side, got {shape}")
    if result_shape is None:
        result_shape = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4)
    return hnp.integer_array_indices(shape, result_shape=result_shape, dtype=np.dtype(np.int64))
