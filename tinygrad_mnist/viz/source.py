"""Reading the recorded graph: the only place viz looks at the engine.

Everything goes through the engine's public API: `Tensor.grad_fn`,
`requires_grad`, `grad`, `name`, `Function.inputs / name / calls / released /
saved_arrays() / backward_of`, and `engine.walk` (the same traversal the
backward pass uses).  A node of the walk is a live Tensor or, after a
backward() released the graph, the engine's lightweight record of one
(shape, dtype, grad_fn, name, grad; no data).
"""

from __future__ import annotations

import numpy as np

from .. import engine


def walk(roots, constants: bool = True) -> list:
    """Nodes reachable from roots through grad_fn.inputs, parents before children."""
    if hasattr(engine, "walk"):
        return engine.walk(roots, constants=constants)
    return _compat_walk(roots, constants)  # TEMP until the engine branch lands


def _compat_walk(roots, constants):
    order, seen = [], set()
    stack = [(r, False) for r in reversed(list(roots))]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        fn = node.grad_fn
        for p in reversed(inputs(fn) if fn is not None else ()):
            if id(p) not in seen and (constants or p.requires_grad):
                stack.append((p, False))
    return order


def key(t) -> int:
    """One identity per graph node: a non-leaf is its producing op (a Tensor and its
    released record share it), a leaf is the node that stands for it in the graph
    (itself, or its record once a backward released the ops reading it)."""
    fn = t.grad_fn
    if fn is not None:
        return id(fn)
    return id(engine.node_of(t)) if hasattr(engine, "node_of") else id(t)


def inputs(fn) -> tuple:
    if not hasattr(fn, "inputs"):  # TEMP
        return tuple(fn.parents or ())
    return tuple(fn.inputs)


def calls(fn) -> tuple:
    """Composite calls (conv2d, cross_entropy, ...) this op was made in, innermost first."""
    return tuple(getattr(fn, "calls", ()))  # TEMP getattr


def released(fn) -> bool:
    if not hasattr(fn, "released"):  # TEMP
        return fn.parents is None
    return bool(fn.released)


def saved_arrays(fn) -> list:
    if not hasattr(fn, "saved_arrays"):  # TEMP
        if fn.parents is None:
            return []
        return [p.data for p in fn.parents] + [v for v in vars(fn).values() if isinstance(v, np.ndarray)]
    return list(fn.saved_arrays())


def backward_of(fn):
    return getattr(fn, "backward_of", None)  # TEMP getattr


def name(t) -> str | None:
    return getattr(t, "name", None)


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
