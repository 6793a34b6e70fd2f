"""In-place operations (x[i] = v, add_, -=, ...) with PyTorch's autograd rules.

An in-place op writes into the tensor's own ndarray, so every alias of that
memory (a view, `.data`, `.detach()`) sees the change.  Three rules keep the
gradients right:

1. A leaf that requires grad may only be written under `no_grad()` (an
   optimizer step); anywhere else the write raises.
2. Writing a tensor while gradients are recorded gives it a new grad_fn that
   records the write ("rebasing", as PyTorch says).  The tensor's previous node
   lives on as a hidden tensor, and ops recorded before the write still send
   their gradient there (`resolve`).  Writing a view (reshape, permute, basic
   indexing) rebases the tensor it views too.
3. Each block of memory has a version: the number of writes into it.  An op
   whose backward reads a tensor that was written after the op recorded it
   raises instead of computing a wrong gradient (`check`).

All of it keys on a clock, `engine._clock`, the number of writes so far: an op
recorded while the clock is 0 carries no stamp (it counts as recorded at 0),
and backward only looks closer at ops recorded before the latest write.  A
program that never writes in place pays one integer test per op.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
import weakref

import numpy as np

from . import engine, ops
from .engine import Tensor, _is_float, is_grad_enabled, no_grad
from .ops.writes import (  # the write ops
    AddInPlace,
    ClampInPlace,
    DivInPlace,
    MulInPlace,
    SetItemInPlace,
    SubInPlace,
    ZerosLike,
)

_ticks = itertools.count(1)
_lock = threading.Lock()  # writes from several threads: the clock only moves forward, versions count every write
_KEEP = 64  # write stamps kept per block of memory: versions are exact for ops recorded within the last 64 writes


class _Writes:
    """The write history of one block of memory."""

    __slots__ = ("version", "stamps", "recorded")

    def __init__(self):
        self.version = 0
        self.stamps = []  # clock of each write, oldest first (the last _KEEP)
        self.recorded = []  # clock of each write that was recorded in a graph (the last _KEEP)


_writes: dict[int, _Writes] = {}  # id(owning ndarray) -> its writes; dropped when the array dies
_history: dict[int, list] = {}  # id(tensor) -> [(clock, the node it was before), ...], one entry per rebase


def _index_arg(index):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _owner(a: np.ndarray) -> np.ndarray:
    """The ndarray that owns a's memory: a view, a reshape and the original all map to it."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _note_write(arr: np.ndarray, recorded: bool) -> int:
    """Advance the clock and the version of arr's memory; returns this write's stamp."""
    with _lock:
        return _bump(_owner(arr), recorded)


def _bump(owner: np.ndarray, recorded: bool) -> int:
    """_note_write's work, with _lock held."""
    key = id(owner)
    w = _writes.get(key)
    if w is None:
        w = _writes[key] = _Writes()
        weakref.finalize(owner, _writes.pop, key, None)
    stamp = next(_ticks)
    w.version += 1
    w.stamps.append(stamp)
    del w.stamps[:-_KEEP]
    if recorded:
        w.recorded.append(stamp)
        del w.recorded[:-_KEEP]
    engine._clock = stamp
    return stamp


def written(*ts: Tensor) -> None:
    """Count a write made straight into each t.data (an optimizer step): ops that saved t then refuse backward."""
    with _lock:
        for t in ts:
            _bump(_owner(t.data), False)


def version(t: Tensor) -> int:
    """How many in-place writes t's memory has had (PyTorch's `t._version`)."""
    w = _writes.get(id(_owner(t.data)))
    return 0 if w is None else w.version


# ---------------------------------------------------------------------------
# backward's side: route through rebased tensors, refuse stale values
# ---------------------------------------------------------------------------


def resolve(ctx) -> None:
    """Point an op recorded before a tensor was rebased at the node it really used."""
    parents = ctx.parents
    if not _history or ctx.released:
        return
    resolved, changed = [], False
    for p in parents:
        h = _history.get(id(p))
        if h is not None:
            i = bisect.bisect_right(h, ctx._t, key=lambda e: e[0])  # the first rebase after ctx was recorded
            if i < len(h):
                p, changed = h[i][1], True
        resolved.append(p)
    if changed:
        ctx._raw_parents = parents  # the tensors as recorded: their memory is what check() looks at
        ctx.parents = tuple(resolved)


def check(ctx, node) -> None:
    """Raise if ctx's backward would read memory written after ctx was recorded, or if node is stale."""
    t = ctx._t
    raw = ctx.__dict__.get("_raw_parents", ctx.parents)
    saved = ctx.saves_inputs
    if saved and raw:
        for i in (range(len(raw)) if saved is True else saved):
            _check_saved(ctx, raw[i].data, t, f"input {i}")
    if ctx.saves_output:
        out = ctx._out()
        if out is not None:
            _check_saved(ctx, out.data, t, "output")
    for v in list(vars(ctx).values()):  # arrays the op kept (Max keeps its output, Where its condition)
        if isinstance(v, np.ndarray):
            _check_saved(ctx, v, t, "a saved array")
    _check_fresh(ctx, node, "backward")


def _check_saved(ctx, arr: np.ndarray, t: int, what: str) -> None:
    w = _writes.get(id(_owner(arr)))
    if w is None or not w.stamps or w.stamps[-1] <= t:
        return
    expected = w.version - (len(w.stamps) - bisect.bisect_right(w.stamps, t))
    raise RuntimeError(
        f"backward: a tensor of shape {arr.shape} that {ctx.name} saved for its gradient ({what}) has been "
        f"modified by an in-place operation since {ctx.name} was recorded: it is at version {w.version}, "
        f"expected version {expected}. Its gradient would be wrong; do the in-place operation after backward(), "
        f"or on a .clone()")


def _check_fresh(ctx, node: Tensor, who: str) -> None:
    """node's memory must not have had a recorded write, other than through node itself, since ctx made it."""
    w = _writes.get(id(_owner(node.data)))
    if w is None or not w.recorded:
        return
    moved = ctx.__dict__.get("_moved", math.inf)  # when node itself was rebased away from ctx
    t = ctx._t
    if any(t < s < moved for s in w.recorded):
        raise RuntimeError(
            f"{who}: the tensor of shape {node.shape} made by {ctx.name} shares memory with a tensor that an "
            f"in-place operation changed afterwards (memory at version {w.version}), so its recorded history no "
            f"longer matches its values; take the view again after the in-place operation, or .clone() it")


def zero_grads(params, set_to_none: bool = True) -> None:
    """zero_grad() of an optimizer or a module: drop each .grad (set_to_none), or set it to zeros in place,
    as PyTorch does (a gradient that is part of a graph, or read-only memory, is replaced by new zeros)."""
    for p in params:
        g = p.grad
        if g is None:
            continue
        if set_to_none:
            p.grad = None
            continue
        with no_grad():
            if g._ctx is None and g.data.flags.writeable:
                g.zero_()
            else:
                p.grad = ZerosLike.apply(g)


# ---------------------------------------------------------------------------
# the write itself
# ---------------------------------------------------------------------------


def _node_of(t: Tensor, copy: bool = False) -> Tensor:
    """A hidden tensor standing for t's current value and graph node."""
    if copy:
        with no_grad():  # the copy is a primitive (compile records it), not part of the graph
            node = ops.Clone.apply(t)
    else:
        node = Tensor._const(t.data)
    node._ctx, node._requires_grad, node._name = t._ctx, t._requires_grad, t.name
    return node


def _rebase(t: Tensor, ctx, old: Tensor, stamp: int) -> None:
    """Make ctx (recorded from `old`, t's previous node) the grad_fn of t."""
    if t._ctx is not None:
        t._ctx._moved = stamp
    h = _history.get(id(t))
    if h is None:
        h = _history[id(t)] = []
        weakref.finalize(t, _history.pop, id(t), None)
    h.append((stamp, old))
    ctx._t, ctx._write = stamp, True
    if ctx.saves_output:
        ctx._out = weakref.ref(t)
    t._ctx, t._requires_grad = ctx, True
    t._record = None  # records handed out so far stand for the old node; a later release makes a new one


_VIEWS = (ops.Reshape, ops.Permute, ops.GetItem)


def _view_chain(t: Tensor, name: str) -> list:
    """[(view, base, view op), ...]: the graph tensors t's memory belongs to, t first."""
    chain, node = [], t
    while True:
        ctx = node._ctx
        if ctx is None:
            if node is not t and node._requires_grad:
                raise RuntimeError(
                    f"{name}: this tensor is a view of a leaf tensor that requires grad (shape {node.shape}), "
                    f"and a leaf can't be modified in place while gradients are recorded; wrap the update in "
                    f"`with no_grad():`, or .clone() the view first")
            return chain
        if ctx.released:  # released by a backward: nothing will flow through it again
            return chain
        _check_fresh(ctx, node, name)
        if "_write" in vars(ctx):  # written before: its input is its own old value; is it a view of something?
            if "_view" not in vars(ctx):
                return chain
            base, view_op = ctx._view
        else:
            resolve(ctx)
            base, view_op = ctx.parents[0], ctx
            if not np.may_share_memory(node.data, base.data):
                return chain
            if type(ctx) not in _VIEWS or (type(ctx) is ops.GetItem and not ops._is_basic(ctx.index)):
                raise RuntimeError(f"{name}: this tensor shares memory with the input of {ctx.name}, and an "
                                   f"in-place write through it can't be followed by autograd; .clone() it first")
        chain.append((node, base, view_op))
        node = base


def _base_value(ctx, old_base: Tensor, view: Tensor) -> Tensor:
    """The base's new value as a recorded op of its old node and the written view."""
    if type(ctx) is ops.GetItem:
        return ops.SetItem.apply(old_base, view, index=ctx.index)
    if type(ctx) is ops.Permute:
        return ops.Permute.apply(view, order=tuple(int(i) for i in np.argsort(ctx.order)))
    return ops.Reshape.apply(view, shape=old_base.shape)


def update(t: Tensor, name: str, compute, direct, others=(), reads_self: bool = False) -> Tensor:
    """Write a new value into t's memory.

    compute(node) -> Tensor gives the new value as recorded ops of `node`, t's
    current value; direct(t) writes it into t's array with a write primitive
    (below), outside the graph.
    reads_self: compute's backward reads the old value (mul_, div_, clamp_), so
    the recorded node gets a copy of it.
    """
    if not t.data.flags.writeable:
        raise RuntimeError(f"{name}: this tensor's memory is read-only (expand() makes views whose elements share "
                           f"memory); .clone() it first")
    grad_on = is_grad_enabled()
    if grad_on and t._requires_grad and t._ctx is None:
        raise RuntimeError(
            f"{name}: a leaf tensor that requires grad (shape {t.shape}) can't be modified in place while gradients "
            f"are recorded: autograd would lose the value it started from. Update weights inside "
            f"`with no_grad():` (as an optimizer step does), or work on a copy (.detach() or .clone())")
    record = grad_on and _is_float(t.data.dtype) and (t._requires_grad or any(o._requires_grad for o in others))
    if not record:
        direct(t)
        _note_write(t.data, recorded=False)
        return t
    chain = _view_chain(t, name)
    old = _node_of(t, copy=reads_self)
    res = compute(old)
    if res.shape != t.shape:  # the callers check shapes first; this guards the memory
        raise ValueError(f"{name}: the result has shape {res.shape}, the tensor {t.shape}")
    if res.data.dtype != t.data.dtype:
        res = res.cast(t.data.dtype)
    stamp = _note_write(t.data, recorded=True)
    with no_grad():  # the graph has its node (res); the memory gets the value through a primitive
        SetItemInPlace.apply(t, res, index=Ellipsis)
    _rebase(t, res._ctx, old, stamp)
    for view, base, view_op in chain:
        view._ctx._view = (base, view_op)  # still a view of base: the next write through it rebases base again
        old_base = _node_of(base)
        _rebase(base, _base_value(view_op, old_base, view)._ctx, old_base, stamp)
    return t


# ---------------------------------------------------------------------------
# the ops
# ---------------------------------------------------------------------------


def _operand(t: Tensor, value) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float, bool, np.generic)):
        return t._lift(value)
    return Tensor._const(np.asarray(value))


def _check_fits(name: str, t_shape: tuple, v_shape: tuple, where: str) -> None:
    """v must broadcast to t_shape without growing it (leading 1s of v are dropped, as in assignment)."""
    if v_shape == t_shape or not v_shape:  # the common cases, without np.broadcast_shapes' cost
        return
    s = tuple(v_shape)
    while len(s) > len(t_shape) and s[0] == 1:
        s = s[1:]
    try:
        ok = np.broadcast_shapes(s, t_shape) == tuple(t_shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: a value of shape {tuple(v_shape)} can't be broadcast to {where} {tuple(t_shape)}")


_BINARY = {"add": (AddInPlace, ops.Add), "sub": (SubInPlace, ops.Sub), "mul": (MulInPlace, ops.Mul),
           "div": (DivInPlace, ops.Div)}


def binary(t: Tensor, op: str, other, name: str, alpha=1) -> Tensor:
    """t op= other (add, sub, mul, div), other broadcast to t's shape."""
    o = _operand(t, other)
    if alpha != 1:
        o = o * alpha
    if not _is_float(t.data.dtype) and (_is_float(o.data.dtype) or op == "div"):
        raise TypeError(f"{name}: the result is floating point and can't be written into this {t.data.dtype} "
                        f"tensor in place; use the out-of-place op, or .float() the tensor first")
    _check_fits(name, t.shape, o.shape, "the tensor's shape")
    write, cls = _BINARY[op]
    return update(t, name, lambda s: s._binary(cls, o), lambda t: write.apply(t, o), (o,),
                  reads_self=op in ("mul", "div") and o._requires_grad)


def setitem(t: Tensor, index, value) -> None:
    """t[index] = value: ints, slices, None, ..., boolean masks, integer arrays/lists/Tensors."""
    idx = _index_arg(index)
    try:
        target = t.data[idx].shape
    except IndexError as e:
        raise IndexError(f"__setitem__: {e} (tensor shape {t.shape})") from None
    v = _operand(t, value)
    if ops._is_basic(idx) and _same_memory(t.data[idx], v.data):
        return  # x[i] += y: Python writes x[i] back into itself after the in-place add; nothing changes
    _check_fits("__setitem__", target, v.shape, "the indexed shape")
    if v._requires_grad and v.data.dtype != t.data.dtype and _is_float(t.data.dtype):
        v = v.cast(t.data.dtype)

    template, arrays = ops.split_index(index)  # index arrays are tensor inputs of the ops, never params
    update(t, "__setitem__", lambda s: ops.SetItem.apply(s, v, *arrays, index=template),
           lambda t: SetItemInPlace.apply(t, v, *arrays, index=template), (v,))


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    ia, ib = a.__array_interface__, b.__array_interface__
    return ia["data"][0] == ib["data"][0] and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype


def fill(t: Tensor, value, name: str) -> Tensor:
    v = _operand(t, value)
    if v.ndim:
        raise ValueError(f"{name}: the fill value must be a number or a 0-d tensor, got shape {v.shape}")
    return copy(t, v, name)


def copy(t: Tensor, src, name: str = "copy_") -> Tensor:
    """t[...] = src, src broadcast to t's shape and cast to t's dtype."""
    s = _operand(t, src)
    _check_fits(name, t.shape, s.shape, "the tensor's shape")
    if s._requires_grad and s.data.dtype != t.data.dtype and _is_float(t.data.dtype):
        s = s.cast(t.data.dtype)

    return update(t, name, lambda n: ops.SetItem.apply(n, s, index=Ellipsis),
                  lambda t: SetItemInPlace.apply(t, s, index=Ellipsis), (s,))


def clamp(t: Tensor, lo, hi, name: str = "clamp_") -> Tensor:
    """t limited to [lo, hi]; bounds are numbers or tensors broadcast to t's shape (as Tensor.clamp)."""
    if lo is None and hi is None:
        raise ValueError(f"{name}: at least one of min= and max= must be given")
    bounds = [b if b is None or isinstance(b, Tensor) else _operand(t, b) for b in (lo, hi)]
    if not _is_float(t.data.dtype) and any(b is not None and _is_float(b.data.dtype) for b in bounds):
        raise TypeError(f"{name}: floating-point bounds can't clamp this {t.data.dtype} tensor in place; "
                        f"use clamp() out of place, or .float() the tensor first")
    for b in bounds:
        if b is not None:
            _check_fits(name, t.shape, b.shape, "the tensor's shape")
    lo_, hi_ = (None if b is None else b if b._requires_grad else b.data for b in bounds)
    given = [b for b in bounds if b is not None]

    def direct(t):
        ClampInPlace.apply(t, *given, lo=bounds[0] is not None, hi=bounds[1] is not None)

    return update(t, name, lambda s: s.clamp(lo_, hi_), direct, given, reads_self=True)


def apply(t: Tensor, name: str, fn, others=(), reads_self: bool = False) -> Tensor:
    """t = fn(t) in place, for an out-of-place method fn (relu_, exp_, masked_fill_, ...)."""

    def direct(t):
        res = fn(t)  # not recorded: grad mode is off, or nothing here requires grad
        a, r = t.data, res.data
        if not np.can_cast(r.dtype, a.dtype, casting="same_kind"):  # int tensors (never recorded) land here
            raise TypeError(f"{name}: the result is {r.dtype} and can't be written into this {a.dtype} tensor "
                            f"in place; use the out-of-place op, or .float() the tensor first")
        if r.shape != a.shape:
            raise ValueError(f"{name}: the result has shape {r.shape}, the tensor {a.shape}")
        SetItemInPlace.apply(t, res, index=Ellipsis)

    return update(t, name, fn, direct, others, reads_self)
