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
import copy

import numpy as np

from ..engine import Function
from ..ops.elementwise import PowConst, Sigmoid
from ..ops.fused import CrossEntropyGrad, Linear
from ..ops.matmul import Matmul
from ..ops.reduce import Sum
from ..ops.shape import SumTo
from ..ops.writes import _BinaryInPlace
from .record import CONST, OP

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
        self.slots = rec.slots

    def donor(self, k: int, op, out_slot) -> int | None:
        """An input of op k whose memory is free after op k and can hold its result, or None."""
        for i in op.ins:
            slot = self.slots[i]
            if (i in self.fresh and self.free_after.get(i) == k
                    and (out_slot.shape, out_slot.dtype) == (slot.shape, slot.dtype)
                    and not any(j in self.group[i] for j in op.ins if j != i)):
                return i
        return None


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
    zero_d = slots[op.out].shape == ()  # NumPy hands back a scalar there: wrapped as Function.apply does
    if cls.forward is Sum.forward and set(p) == {"axis", "keepdim"}:
        g["_add_reduce"], g[f"c{k}_axis"], g[f"c{k}_keep"] = np.add.reduce, p["axis"], p["keepdim"]
        call = f"_add_reduce({ins[0]}, axis=c{k}_axis, keepdims=c{k}_keep)"
        return [f"{out} = _asarray({call})" if zero_d else f"{out} = {call}"]
    if cls.forward is PowConst.forward and set(p) == {"c"} and p["c"] == 2:
        g["_square"] = np.square
        return [f"{out} = _asarray(_square({ins[0]}))" if zero_d else f"{out} = _square({ins[0]})"]
    if zero_d:
        return None
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


# one-element arrays as NumPy scalars
# ---------------------------------------------------------------------------

# ufuncs a scalar form may call: exactly rounded ones, and tanh, whose one-element loop NumPy runs the same
# way for a scalar and for an array (tests/test_compile_reuse.py compares them over many values)
_SCALAR_CALLS = (*_EXACT_CALLS, np.negative, np.absolute, np.tanh)


class Scalars:
    """A chain of elementwise ops on one-element float arrays (W4's), replayed on NumPy scalars.

    NumPy's scalar arithmetic gives the bits its ufuncs give (+ - * / are exactly rounded; the same dtype
    rules: a float32 scalar stays float32 with Python numbers), at a fraction of a ufunc call's cost.
    A slot held as a scalar `sN` is an op result whose memory nothing else shares (no view, no in-place
    write); it becomes an array again (`vN`) where an op that is not written this way reads it, and
    at the end for what the step hands back.
    """

    def __init__(self, rec, kind: list, g: dict):
        self.rec, self.kind, self.g = rec, kind, g
        roots = [id(_root(a)) for a in rec.arrays]
        sharing: dict[int, int] = {}
        for r in roots:
            sharing[r] = sharing.get(r, 0) + 1
        self.alone = [sharing[r] == 1 for r in roots]  # no other slot (a view, an in-place result) in its memory
        self.readers: dict[int, list] = {}  # slot -> the ops that read it
        for op in rec.ops:
            for i in op.ins:
                self.readers.setdefault(i, []).append(op)
        self.held: set[int] = set()  # slots with a scalar `sN` in the replay
        self.only: set[int] = set()  # ... and no array `vN` (yet)
        self.count = 0

    def _tiny(self, i: int) -> bool:
        s = self.rec.slots[i]
        return s.dtype.kind == "f" and int(np.prod(s.shape)) == 1

    def _fits(self, op) -> bool:
        return (not op.random and self.alone[op.out] and self._tiny(op.out) and bool(op.ins)
                and all(self._tiny(i) for i in op.ins))

    def fits(self, op) -> bool:
        """Worth a scalar line: a one-element op in a chain (an input already a scalar, or its result read by
        another such op); a lone one would only add the reads and the array made again."""
        return self._fits(op) and (any(i in self.held for i in op.ins) or any(
            self._fits(c) for c in self.readers.get(op.out, ())))

    def line(self, op, expr: ast.expr) -> list[str] | None:
        """`sN = <expr on scalars>` (and the scalars of its inputs read first), or None if expr won't do."""
        g = self.g
        for node in ast.walk(expr):
            if isinstance(node, ast.Call):
                fn = _resolve(node.func, g)
                if node.keywords or not any(fn is u for u in _SCALAR_CALLS):
                    return None
            elif isinstance(node, ast.BinOp) and type(node.op) not in _EXACT:
                return None
            elif isinstance(node, (ast.Subscript, ast.Lambda, ast.IfExp, ast.BoolOp, ast.Starred, ast.Slice)):
                return None
            elif isinstance(node, ast.Attribute) and not any(node is c.func for c in ast.walk(expr)
                                                             if isinstance(c, ast.Call)):
                return None  # an attribute read (x.T, x.shape): only functions like np.tanh are looked up
            elif isinstance(node, ast.Name) and not node.id.startswith("v") and not isinstance(
                    g.get(node.id), (int, float, np.generic, np.ufunc, type(np))):
                return None
        pre, names = [], {}
        for i in op.ins:
            v, idx = f"v{i}", ", ".join(["0"] * len(self.rec.slots[i].shape)) or "()"
            if i not in self.held:
                if self.kind[i] == CONST:  # baked: its scalar is a constant too
                    g[f"s{i}"] = self.rec.slots[i].value[(0,) * len(self.rec.slots[i].shape)]
                    self.held.add(i)
                elif self.alone[i]:  # read once: nothing writes it during the step
                    pre.append(f"s{i} = {v}[{idx}]")
                    self.held.add(i)
                else:
                    names[v] = f"{v}[{idx}]"
                    continue
            names[v] = f"s{i}"

        class Rename(ast.NodeTransformer):
            def visit_Name(self, n):  # noqa: N802  (ast's visitor naming)
                return ast.copy_location(ast.parse(names[n.id], mode="eval").body, n) if n.id in names else n

        self.held.add(op.out)
        self.only.add(op.out)
        self.count += 1
        return [*pre, f"s{op.out} = {ast.unparse(Rename().visit(expr))}"]

    def arrays_for(self, slots) -> list[str]:
        """Lines making `vN` of those slots that are held only as scalars so far."""
        lines = []
        for i in slots:
            if i in self.only:
                self.g["_asarray"] = np.asarray
                shape = self.rec.slots[i].shape
                self.g[f"c_shape{i}"] = shape
                lines.append(f"v{i} = _asarray(s{i}).reshape(c_shape{i})")
                self.only.discard(i)
        return lines


def broadcast_constants_as_scalars(expr: ast.expr, consts: dict, g: dict, shapes: dict, want) -> ast.expr:
    """expr with each baked constant that is one value broadcast (an expanded seed gradient, strides all 0)
    read as that value, 0-d: the same products element by element, without a strided loop over the copies.
    Only in + - * / expressions, and only where the result keeps its shape and dtype."""
    if not all(isinstance(n, (ast.BinOp, ast.Name, ast.Constant, ast.Load, ast.operator)) and
               (not isinstance(n, ast.BinOp) or type(n.op) in _EXACT) for n in ast.walk(expr)):
        return expr
    swap = {}
    for name, arr in consts.items():
        if arr.ndim and arr.size > 1 and not any(arr.strides):
            g[f"{name}_0d"] = np.asarray(arr.reshape(-1)[0])  # (a 0-d array keeps the dtype rules of an array)
            swap[name] = f"{name}_0d"
    if not swap:
        return expr

    class Rename(ast.NodeTransformer):
        def visit_Name(self, n):  # noqa: N802  (ast's visitor naming)
            return ast.copy_location(ast.Name(swap[n.id], ast.Load()), n) if n.id in swap else n

    new = Rename().visit(copy.deepcopy(expr))
    dummies = {n: np.zeros(s, d) for n, (s, d) in shapes.items()}
    with np.errstate(all="ignore"):
        v = eval(_compile_expr(ast.Expression(new)), dict(g), dummies)
    return new if isinstance(v, np.ndarray) and (v.shape, v.dtype) == want else expr
