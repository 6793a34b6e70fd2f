"""Reading the recorded graph: the only place viz looks at the engine.

Everything goes through the engine's public API: `Tensor.grad_fn`,
`requires_grad`, `grad`, `name`, `Function.inputs / name / calls / released /
saved_arrays() / backward_of`, `records.node_of`, and `engine.walk` (the same traversal the
backward pass uses).  A node of the walk is a live Tensor or, after a
backward() released the graph, the engine's lightweight record of one
(shape, dtype, grad_fn, name, grad; no data).
"""

from __future__ import annotations

import numpy as np

from .. import engine, records


def walk(roots, constants: bool = True) -> list:
    """Nodes reachable from roots through grad_fn.inputs, parents before children (the engine's own walk)."""
    return engine.walk(list(roots), constants=constants)


def key(t) -> int:
    """One identity per graph node: a non-leaf is its producing op (a Tensor and its
    released record share it), a leaf is the node that stands for it in the graph
    (itself, or its record once a backward released the ops reading it)."""
    fn = t.grad_fn
    if fn is not None:
        return id(fn)
    return id(records.node_of(t))


def inputs(fn) -> tuple:
    return tuple(fn.inputs)


def calls(fn) -> tuple:
    """Composite calls (conv2d, cross_entropy, ...) this op was made in, innermost first."""
    return tuple(fn.calls)


def released(fn) -> bool:
    return bool(fn.released)


def saved_arrays(fn) -> list:
    return list(fn.saved_arrays())


def backward_of(fn):
    return fn.backward_of


def name(t) -> str | None:
    return t.name


def data(t):
    """The node's array, or None for a released record."""
    arr = getattr(t, "data", None)
    return arr if isinstance(arr, np.ndarray) else None


def grad_array(t):
    g = getattr(t, "grad", None)
    if g is None:
        return None
    arr = getattr(g, "data", g)
    return np.asarray(arr)


def array_root(arr):
    """The array that owns a view's memory (views of one batch share it)."""
    while isinstance(arr, np.ndarray) and isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr
