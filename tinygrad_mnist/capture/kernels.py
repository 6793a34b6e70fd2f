"""Faster replay lines, each bit-identical to the op's forward: hot ops written out, dead buffers reused.

- `kernel_lines`: ops whose forward is more than one expression (Linear, Matmul, Sigmoid, SumTo,
  Sum, the in-place writes) written out as the very NumPy calls their forward makes, without the
  Python call into the op and its keyword arguments.  Their forwards keep nothing a replay reads
  (Matmul's `ta`, SumTo's axes are the recorded parameters, set on the op when it was recorded).
- `Buffers`: which intermediate arrays a replay may write a result into (`out=`) once they are dead:
  arrays the step itself allocated (fresh every call, owning their memory), that no result,
  re-bound `.data`/`.grad`, op or later line can still see.  Only exactly rounded ufuncs (+ - * /,
  maximum, minimum) and Sigmoid's own in-place steps write into them, on arrays of the result's
  shape, dtype and C layout: the same operations on the same values, so the same bits.
"""

from __future__ import annotations

import ast

import numpy as np

from ..engine import Function
from ..ops.elementwise import Sigmoid
from ..ops.fused import CrossEntropyGrad, Linear
from ..ops.matmul import Matmul
from ..ops.reduce import Sum
from ..ops.shape import SumTo
from ..ops.writes import _BinaryInPlace
from .record import OP

# smaller arrays come from NumPy's own cache of small blocks: out= saves nothing there (and costs a keyword)
MIN_REUSE_BYTES = 4096

# ufuncs whose results are exactly rounded: the same bits whatever loop (SIMD or not) NumPy picks
_EXACT = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide}
_EXACT_CALLS = (np.add, np.subtract, np.multiply, np.true_divide, np.maximum, np.minimum)


def _root(a):
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


class Buffers:
    """Which recorded op results a replay may overwrite, and from which op on (see the module docstring)."""

    def __init__(self, rec, kind: list, last_use: dict, keep: set):
        arrays = rec.arrays
        roots = [_root(a) for a in arrays]
        members: dict[int, list[int]] = {}  # id(memory owner) -> the slots whose arrays live in it
        for i, r in enumerate(roots):
            members.setdefault(id(r), []).append(i)
        untraced = [arrays[i] for i, r in enumerate(roots) if not isinstance(r, np.ndarray)]  # (as_strided)
        held = _held_by_ops(rec)
        self.free_after: dict[int, int] = {}  # slot -> the op that last reads any view of its memory
        self.fresh: set[int] = set()  # slots whose producer allocates a new array every call (set while writing)
        for i, a in enumerate(arrays):
            if (kind[i] != OP or roots[i] is not a or not a.flags.writeable or not a.flags.c_contiguous
                    or a.nbytes < MIN_REUSE_BYTES or id(a) in held):
                continue
            group = members[id(a)]
            if any(kind[j] != OP or j in keep for j in group) or any(np.may_share_memory(a, u) for u in untraced):
                continue
            self.free_after[i] = max(last_use.get(j, -1) for j in group)
        self.group = {i: set(members[id(arrays[i])]) for i in self.free_after}

    def donor(self, k: int, op, out_slot) -> int | None:
        """An input of op k whose memory is free after op k and can hold its result, or None."""
        for i in op.ins:
            if (i in self.fresh and self.free_after.get(i) == k and out_slot.shape == self.shape[i]
                    and out_slot.dtype == self.dtype[i] and not any(j in self.group[i] for j in op.ins if j != i)):
                return i
        return None

    def note_shapes(self, slots) -> None:
        self.shape = {i: slots[i].shape for i in self.free_after}
        self.dtype = {i: slots[i].dtype for i in self.free_after}


def _held_by_ops(rec) -> set:
    """Memory an op can reach outside its slots: arrays kept on op objects, inputs of ops another op reads."""
    held = set()

    def add(v):
        if isinstance(v, np.ndarray):
            held.add(id(_root(v)))
        elif isinstance(v, (tuple, list)):
            for x in v:
                add(x)

    by_ctx = {id(op.ctx): op for op in rec.ops}
    for op in rec.ops:
        for v in vars(op.ctx).values():
            add(v)
        for v in op.params.values():  # an op handed another op (CrossEntropyGrad's `of`) reads its state
            for f in (v if isinstance(v, (tuple, list)) else (v,)):
                if isinstance(f, Function) and id(f) in by_ctx:
                    for i in by_ctx[id(f)].ins:
                        add(rec.arrays[i])
    return held


# the hot ops written out
# ---------------------------------------------------------------------------


def _t(name: str, ndim: int) -> str:
    return f"{name}.T" if ndim == 2 else f"{name}.swapaxes(-1, -2)"


def kernel_lines(op, k: int, ins: list, out: str, slots, g: dict, donor: str | None) -> list[str] | None:
    """The op's forward as replay lines assigning `out`, or None (then the op's forward is called).

    `donor`: an input (its name) whose memory `out` may take (Sigmoid computes in place there)."""
    cls = type(op.ctx)
    if getattr(op.ctx.forward, "__func__", None) is not cls.forward:
        return None
    p = op.params
    if cls.forward is Matmul.forward:
        g["_matmul"] = np.matmul
        x, y = ins
        nx, ny = (slots[i].shape for i in op.ins)
        a = _t(x, len(nx)) if p.get("ta", False) else x
        b = _t(y, len(ny)) if p.get("tb", False) else y
        return [f"{out} = _matmul({a}, {b})"]
    if cls.forward is Linear.forward and not p:
        g["_matmul"] = np.matmul
        lines = [f"{out} = _matmul({ins[0]}, {ins[1]}.T)"]
        if len(ins) == 3:
            lines.append(f"{out} += {ins[2]}")
        return lines if len(ins) in (2, 3) else None
    if cls.forward is Sigmoid.forward and not p:
        g[f"c{k}_half"] = slots[op.ins[0]].dtype.type(0.5)
        h = f"c{k}_half"
        if donor is not None:  # tanh(x/2)/2 + 1/2 in x's own memory, step by step as forward does it
            g["_multiply"], g["_tanh"] = np.multiply, np.tanh
            return [f"{out} = _multiply({donor}, {h}, out={donor})", f"_tanh({out}, out={out})",
                    f"{out} *= {h}", f"{out} += {h}"]
        g["_tanh"] = np.tanh
        return [f"{out} = _tanh({ins[0]} * {h})", f"{out} *= {h}", f"{out} += {h}"]
    if cls.forward is SumTo.forward and op.ctx._to == p.get("shape") and op.ctx._from == slots[op.ins[0]].shape:
        axes = op.ctx._axes
        if not axes:
            return None
        g["_add_reduce"], g[f"c{k}_axes"] = np.add.reduce, axes
        line = f"{out} = _add_reduce({ins[0]}, axis=c{k}_axes)"
        reduced = tuple(s for d, s in enumerate(slots[op.ins[0]].shape) if d not in axes)
        if reduced != tuple(p["shape"]):
            g[f"c{k}_shape"] = tuple(p["shape"])
            line += f".reshape(c{k}_shape)"
        return [line]
    if cls.forward is Sum.forward and set(p) == {"axis", "keepdim"} and slots[op.out].shape != ():
        g["_add_reduce"], g[f"c{k}_axis"], g[f"c{k}_keep"] = np.add.reduce, p["axis"], p["keepdim"]
        return [f"{out} = _add_reduce({ins[0]}, axis=c{k}_axis, keepdims=c{k}_keep)"]
    if cls.forward is _BinaryInPlace.forward and cls.ufunc is not None and not p and len(ins) == 2:
        g[f"c{k}_ufunc"] = cls.ufunc
        casting = "same_kind" if slots[op.ins[0]].dtype.kind in "fc" else "unsafe"
        return [f"c{k}_ufunc({ins[0]}, {ins[1]}, out={ins[0]}, casting={casting!r})", f"{out} = {ins[0]}"]
    return None


def fresh_kernel(op) -> bool:
    """Does this op's forward hand back a new array of its own every call (given it is not a view)?"""
    return type(op.ctx).forward in (Matmul.forward, Linear.forward, Sigmoid.forward, SumTo.forward, Sum.forward,
                                    CrossEntropyGrad.forward)


# elementwise expressions into a dead buffer
# ---------------------------------------------------------------------------


def fresh_expression(expr: ast.expr, g: dict) -> bool:
    """An inlined forward that always makes a new array: arithmetic, a comparison, or a ufunc call without out=."""
    if isinstance(expr, (ast.BinOp, ast.UnaryOp, ast.Compare)):
        return True
    if isinstance(expr, ast.Call) and not expr.keywords:
        return isinstance(_resolve(expr.func, g), np.ufunc)
    return False


def _resolve(node, g: dict):
    try:
        return eval(_compile_expr(ast.Expression(node)), dict(g))  # a name or attribute, bound when inlined
    except Exception:  # noqa: BLE001  (not something we can name: not reused)
        return None


def _compile_expr(tree):
    """An expression node as code to eval (the inlined names are globals of the replay)."""
    return compile(ast.fix_missing_locations(tree), "<replay expression>", "eval")


def expression_into(expr: ast.expr, donor: str, out: str, g: dict, shapes: dict, want) -> list[str] | None:
    """`out = <expr>` computed in donor's memory, as the same ufunc calls in the same order, or None.

    `shapes`: name -> (shape, dtype) of the slot arrays the expression reads; `want`: the result's
    (shape, dtype), which every step written into the donor must have too."""
    if sum(isinstance(n, ast.Name) and n.id == donor for n in ast.walk(expr)) != 1:
        return None
    if isinstance(expr, ast.Call):
        fn = _resolve(expr.func, g)
        if not any(fn is u for u in _EXACT_CALLS) or expr.keywords or not any(
                isinstance(a, ast.Name) and a.id == donor for a in expr.args):
            return None
        return [f"{out} = {ast.unparse(expr)[:-1]}, out={donor})"]
    spine = []  # the left spine a * b * c evaluates first: ((a * b) * c)
    node = expr
    while isinstance(node, ast.BinOp) and type(node.op) in _EXACT:
        spine.append(node)
        node = node.left
    if not spine:
        return None
    bottom = spine[-1]
    if not any(isinstance(a, ast.Name) and a.id == donor for a in (bottom.left, bottom.right)):
        return None
    dummies = {n: np.zeros(s, d) for n, (s, d) in shapes.items()}
    with np.errstate(all="ignore"):
        for node in spine:
            v = eval(_compile_expr(ast.Expression(node)), dict(g), dummies)
            if not isinstance(v, np.ndarray) or (v.shape, v.dtype) != want:
                return None
    lines = []
    for j, node in enumerate(reversed(spine)):
        fn = f"_{_EXACT[type(node.op)].__name__}"
        g[fn] = _EXACT[type(node.op)]
        left = ast.unparse(node.left) if j == 0 else out
        lines.append(f"{out} = {fn}({left}, {ast.unparse(node.right)}, out={donor if j == 0 else out})")
    return lines
