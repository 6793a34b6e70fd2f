"""A recording turned into Python: one generated line per op, simple forwards inlined, argument guards.

`_Program(rec, args, kwargs)` writes two functions: `run(args, kwargs)`, which checks the arguments
have the recorded signature, reads the live tensors and replays the ops, and `body(*sources)`, the
same ops on given arrays, which the second recording is verified with (see check.py).
"""

from __future__ import annotations

import ast
import builtins
import copy
import inspect
import re
import textwrap

import numpy as np

from ..engine import Tensor
from .guards import _Guard, guard_source
from .kernels import (
    Buffers,
    Scalars,
    broadcast_constants_as_scalars,
    expression_into,
    fresh_expression,
    fresh_kernel,
    kernel_lines,
)
from .record import CONST, INPUT, LIVE, OP, _get_data, _Miss, _Op, _plain, _Recorder, _Stale

_FORMS: dict = {}  # forward function -> (parameter names, defaults, returned expression) or None


def _inline_form(fn):
    """How to inline `fn` when it is `def forward(self, a, b, ...): return <expression>` not using self."""
    if fn in _FORMS:
        return _FORMS[fn]
    form = None
    try:
        d = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    except (OSError, TypeError, SyntaxError):
        d = None
    if isinstance(d, ast.FunctionDef) and not d.decorator_list and not fn.__code__.co_freevars:
        body = [st for st in d.body if not (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant))]
        a = d.args
        if (len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None
                and not (a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs)):
            expr = body[0].value
            nodes = list(ast.walk(expr))
            names = [x.arg for x in a.args]
            if names and not any(isinstance(n, (ast.Lambda, ast.comprehension, ast.NamedExpr)) for n in nodes) \
                    and not any(isinstance(n, ast.Name) and n.id == names[0] for n in nodes) and _same_code(d, fn):
                defaults = dict(zip(names[len(names) - len(fn.__defaults__ or ()):], fn.__defaults__ or ()))
                form = (names[1:], defaults, expr)
    _FORMS[fn] = form
    return form


def _same_code(d: ast.FunctionDef, fn) -> bool:
    """Does the source we read look like the code that runs (names, constants)?  A file edited since the import
    would not; bytecode itself differs between compilations, and call 2's check replays what we wrote anyway."""
    code = builtins.compile(ast.Module(body=[d], type_ignores=[]), fn.__code__.co_filename, "exec", dont_inherit=True)
    made = next((c for c in code.co_consts if hasattr(c, "co_code")), None)

    def consts(c):
        return [x for x in c.co_consts if not hasattr(x, "co_code")][1:]  # (the first is the docstring or None)

    return made is not None and consts(made) == consts(fn.__code__) and all(
        getattr(made, a) == getattr(fn.__code__, a) for a in ("co_names", "co_varnames", "co_argcount"))


def _inlined(op: _Op, k: int, args: list, g: dict) -> ast.expr | None:
    """The op's forward written out in place (`v7 = v2 + v5` for Add): a Python call less per op.

    Only for a forward that is a single `return <expression>` of its arguments (Add, Mul, Tanh, ...):
    the same expression on the same arrays gives the same result.
    """
    fn = type(op.ctx).forward
    if getattr(op.ctx.forward, "__func__", None) is not fn:
        return None
    form = _inline_form(fn)
    if form is None:
        return None
    names, defaults, expr = form
    subst = {}
    for name, arg in zip(names, args[:len(op.ins)]):
        subst[name] = arg
    for j, key in enumerate(op.params):
        subst[key] = f"c{k}_{j}"
    for name in names:
        if name not in subst:
            if name not in defaults:
                return None
            g[f"c{k}_{name}"] = defaults[name]
            subst[name] = f"c{k}_{name}"
    glob = fn.__globals__

    class Rename(ast.NodeTransformer):
        def visit_Name(self, n):  # noqa: N802  (ast's visitor naming)
            if n.id in subst:
                return ast.copy_location(ast.Name(subst[n.id], ast.Load()), n)
            value = glob[n.id] if n.id in glob else getattr(builtins, n.id)  # a module global: bind it now
            alias = n.id  # its own name (np.tanh reads as np.tanh) unless that could mean something else here
            if g.get(alias, value) is not value or re.fullmatch(r"[a-z]\d.*|_.*", alias):
                alias = f"_{n.id}_{id(value):x}"
            g[alias] = value
            return ast.copy_location(ast.Name(alias, ast.Load()), n)

    try:
        return Rename().visit(copy.deepcopy(expr))
    except (AttributeError, KeyError):  # a name that is neither an argument nor a global: leave the call as it is
        return None


def _call_args(op: _Op, k: int, ins: list, g: dict) -> list:
    """The op's call arguments: its input variables, then each parameter as a keyword bound to a global `c{k}_{j}`."""
    args = list(ins)
    for j, (name, value) in enumerate(op.params.items()):
        g[f"c{k}_{j}"] = value
        args.append(f"{name}=c{k}_{j}")
    return args


def _hashable(v) -> bool:
    try:
        hash(v)
        return True
    except TypeError:
        return False


def _guards(args: tuple, kwargs: dict, g: dict, arg_names: dict) -> list:
    """Lines that raise _Miss unless the arguments have the signature these did (see _signature).

    The array of each array or Tensor argument is left in a variable, named in arg_names."""
    lines = [f"    if len(args) != {len(args)}: raise _Miss"]
    if kwargs:
        g["_kw"] = set(kwargs)
        lines.append("    if kwargs.keys() != _kw: raise _Miss")
    else:
        lines.append("    if kwargs: raise _Miss")
    for n, (key, where, v) in enumerate([(i, f"args[{i}]", v) for i, v in enumerate(args)]
                                        + [(k, f"kwargs[{k!r}]", v) for k, v in kwargs.items()]):
        a = f"a{n}"
        if type(v) is np.ndarray or isinstance(v, Tensor):
            arg_names[key] = a
            arr = _get_data(v) if isinstance(v, Tensor) else v
            g[f"_T{n}"], g[f"_S{n}"] = type(v), (arr.shape, arr.dtype, arr.strides)
            lines += [f"    {a} = {where}", f"    if type({a}) is not _T{n}: raise _Miss"]
            if isinstance(v, Tensor):
                lines.append(f"    {a} = {a}.data")
            lines.append(f"    if ({a}.shape, {a}.dtype, {a}.strides) != _S{n}: raise _Miss")
        elif _hashable(v):
            g[f"_T{n}"], g[f"_V{n}"] = type(v), v
            lines.append(f"    if type({where}) is not _T{n} or {where} != _V{n}: raise _Miss")
        else:
            g[f"_V{n}"] = v
            lines.append(f"    if {where} is not _V{n}: raise _Miss")
    return lines


# a recording turned into Python
# ---------------------------------------------------------------------------


class _Program:
    """The recording as two generated functions: `run(args, kwargs)` for replay, `body(*sources)` for checking.

    Each recorded op is one line, `v7 = f3(v2, v5, axis=c3_0)`: f3 is the op's bound forward and the
    parameters are globals of the generated module.  An op that only reads constants (the loss's
    scale times the seed gradient, its broadcast) gives the same array every time: its recorded
    result becomes a read-only constant too, and the op is not replayed.
    """

    def __init__(self, rec: _Recorder, call_args: tuple, call_kwargs: dict):
        self.rec = rec
        g = {"_asarray": np.asarray, "_wrap": Tensor._const, "_Stale": _Stale, "_Miss": _Miss,
             "_ndarray": np.ndarray}
        lines = []
        sources = [s for s in rec.slots if s.kind in (INPUT, LIVE)]
        self.sources = sources
        writes = {s for _, s in rec.data_writes} | {s for _, s in rec.grad_writes if s is not None}
        kind = self._fold(rec, writes)
        for s in rec.slots:
            if kind[s.index] == CONST:
                g[f"v{s.index}"] = s.value  # baked: a global under the slot's name
            elif s.kind == OP:
                s.value = None  # the recorded array of an op that is replayed: not needed
        last_use = {}
        for k, op in enumerate(rec.ops):
            for i in op.ins:
                last_use[i] = k
        keep = set(writes)  # slots needed after the ops: results, re-bound .data/.grad
        self._collect_outputs(rec.outputs, keep)
        self.folded = 0
        buffers = Buffers(rec, kind, last_use, keep)
        self.reused = 0  # results written into a dead input's memory
        scalars = Scalars(rec, kind, g)
        for k, op in enumerate(rec.ops):
            if kind[op.out] == CONST:
                self.folded += 1
                continue
            out, slot = f"v{op.out}", rec.slots[op.out]
            ins = [f"v{i}" for i in op.ins]
            if scalars.fits(op):  # one-element floats: NumPy scalars, whose arithmetic skips the ufunc machinery
                args = _call_args(op, k, ins, g)
                expr = _inlined(op, k, args, g)
                written = None if expr is None else scalars.line(op, expr)
                if written is not None:
                    lines += [f"    {line}" for line in written]
                    dead = sorted({i for i in op.ins if last_use[i] == k and i not in keep and kind[i] == OP
                                   and i not in scalars.only})
                    if dead:
                        lines.append(f"    del {', '.join(f'v{i}' for i in dead)}")
                    continue
            lines += [f"    {line}" for line in scalars.arrays_for(op.ins)]
            # a dead input this step allocated, of the result's shape and dtype: the result may go in its memory
            donor = buffers.donor(k, op, slot) if rec.arrays[op.out].flags.c_contiguous else None
            written = kernel_lines(op, k, ins, out, rec.slots, g, None if donor is None else f"v{donor}")
            if written and written[-1] == f"{out} = {ins[0]}" and op.out not in last_use and op.out not in keep:
                written.pop()  # an in-place write whose result slot nothing reads: the alias is not needed
            fresh = written is not None and fresh_kernel(op)
            if written is None:
                args = _call_args(op, k, ins, g)
                expr = _inlined(op, k, args, g)
                if expr is not None:
                    consts = {f"v{i}": rec.slots[i].value for i in op.ins if kind[i] == CONST}
                    shapes = {f"v{i}": (rec.slots[i].shape, rec.slots[i].dtype) for i in op.ins}
                    if consts and slot.shape != ():
                        expr = broadcast_constants_as_scalars(expr, consts, g, shapes, (slot.shape, slot.dtype))
                    fresh = fresh_expression(expr, g)
                    if donor is not None and slot.shape != ():
                        written = expression_into(expr, f"v{donor}", out, g, shapes, (slot.shape, slot.dtype))
                    call = f"({ast.unparse(expr)})"
                else:
                    g[f"f{k}"] = op.ctx.forward
                    call = f"f{k}({', '.join(args)})"
                    fresh = fresh_kernel(op)
                if written is None:
                    if slot.shape == ():  # NumPy hands back scalars for 0-d results; apply wraps them
                        call = f"_asarray({call})"
                    written = [f"{out} = {call}"]
            lines += [f"    {line}" for line in written]
            reused = donor is not None and any(f"out=v{donor}" in line for line in written)
            self.reused += reused
            if reused or (fresh and all(rec.arrays[op.out] is not rec.arrays[i] for i in op.ins)):
                buffers.fresh.add(op.out)  # new memory every call (or the donor's, itself new): reusable once dead
            dead = sorted({i for i in op.ins if last_use[i] == k and i not in keep and kind[i] == OP})
            if dead:  # drop intermediates as soon as the last op read them (big activations in a CNN)
                lines.append(f"    del {', '.join(f'v{i}' for i in dead)}")
        lines += [f"    {line}" for line in scalars.arrays_for(sorted(keep))]  # results, .grad, .data: arrays
        self.scalar_ops = scalars.count
        result = self._expr(rec.outputs, g)
        data_w = [f"v{s}" for _, s in rec.data_writes]
        grad_w = ["None" if s is None else f"v{s}" for _, s in rec.grad_writes]
        # body: sources as arguments; returns the result and the re-bound arrays
        src_args = ", ".join(f"v{s.index}" for s in sources)
        body = [f"def body({src_args}):", *lines,
                f"    return {result}, ({', '.join(data_w)}{',' if data_w else ''}), "
                f"({', '.join(grad_w)}{',' if grad_w else ''})"]
        # run: reads the sources itself, writes .data/.grad back
        arg_names = {}  # argument position or keyword -> the variable holding its array after the guards
        head = ["def run(args, kwargs):", *_guards(call_args, call_kwargs, g, arg_names)]
        self.reads = rec.watch.reads
        if self.reads:  # the Python state the recording read (guards.py); before anything is read or written
            g["_Guard"] = _Guard
            head += ["    try:", f"        _ok = {guard_source(self.reads, g)}",
                     "    except Exception:", "        _ok = False  # (an item gone: a KeyError, an IndexError)",
                     "    if not _ok: raise _Guard"]
        for j, p in enumerate(rec.need_no_grad):
            g[f"q{j}"] = p
            head.append(f"    if q{j}._grad is not None: raise _Stale")
        for s in sources:
            if s.kind == INPUT:  # the guards read it already
                head.append(f"    v{s.index} = {arg_names[s.value]}")
            elif s.owner is not None:
                g[f"t{s.index}"] = s.owner
                head += [f"    v{s.index} = t{s.index}._grad", f"    if v{s.index} is None: raise _Stale",
                         f"    v{s.index} = v{s.index}.data"]
            else:
                g[f"t{s.index}"] = s.tensor
                head.append(f"    v{s.index} = t{s.index}.data")
        live = [s for s in sources if s.kind == LIVE]
        if live:  # a tensor from before the step re-bound to another shape (load_state_dict of another model)
            g["_live_shapes"] = tuple(x for s in live for x in (s.shape, s.dtype))  # (a cast: Module.to(float64))
            head.append(f"    if ({', '.join(f'v{s.index}.shape, v{s.index}.dtype' for s in live)},) "
                        f"!= _live_shapes: raise _Stale")
        for j, ((m, name), value) in enumerate(rec.watch.module_writes.items()):
            g[f"_mo{j}"], g[f"_mv{j}"] = m, value  # model.train() inside the step: set again, first
            head.append(f"    setattr(_mo{j}, {name!r}, _mv{j})")
        if rec.cleared_first:  # an op that raises (a bad label) leaves the .grads as eager's zero_grad() did
            for j, p in enumerate(rec.cleared_first):
                g[f"_cf{j}"] = p
            lines = ["    try:", *("    " + line for line in lines), "    except BaseException:",
                     *(f"        _cf{j}._grad = None" for j in range(len(rec.cleared_first))), "        raise"]
        tail = []
        for j, (t, s) in enumerate(rec.data_writes):
            g[f"d{j}"] = t
            tail.append(f"    d{j}.data = v{s}")
        for j, (p, s) in enumerate(rec.grad_writes):
            g[f"p{j}"] = p
            tail.append(f"    p{j}._grad = None" if s is None else f"    p{j}._grad = _wrap(v{s})")
        run = head + lines + tail + [f"    return {result}"]
        self.source = "\n".join(body) + "\n\n" + "\n".join(run) + "\n"
        exec(builtins.compile(self.source, f"<compiled step {rec.name}>", "exec"), g)
        self.body, self.run = g["body"], g["run"]

    @staticmethod
    def _fold(rec: _Recorder, writes: set) -> list:
        """Slot kinds, with the results of ops that read only constants turned into constants."""
        kind = [s.kind for s in rec.slots]
        written = set()  # slots an op wrote in place (it handed back its input array)
        for op in rec.ops:
            out = rec.slots[op.out].value
            written.update(i for i in op.ins if rec.slots[i].value is out)
        for op in rec.ops:
            if (op.ins and not op.random and op.out not in writes and all(kind[i] == CONST for i in op.ins)
                    and not any(i in written for i in (*op.ins, op.out)) and _plain(tuple(op.params.values()))):
                kind[op.out] = CONST
        for s in rec.slots:
            if kind[s.index] == CONST:
                s.value.flags.writeable = False  # shared by every replay: a write into it must fail loudly
        return kind

    def _collect_outputs(self, o, keep: set) -> None:
        kind, v = o
        if kind == "tensor":
            keep.add(v)
        elif kind in ("tuple", "list"):
            for x in v:
                self._collect_outputs(x, keep)
        elif kind == "dict":
            for _, x in v:
                self._collect_outputs(x, keep)

    def _expr(self, o, g: dict) -> str:
        """Python for the returned structure: new Tensors around copies, everything else as recorded."""
        kind, v = o
        if kind == "tensor":
            return f"_wrap(v{v}.copy())"
        if kind in ("same", "value"):
            name = f"r{len(g)}"
            g[name] = v
            return name
        if kind == "dict":
            items = []
            for key, x in v:
                name = f"r{len(g)}"
                g[name] = key
                items.append(f"{name}: {self._expr(x, g)}")
            return "{" + ", ".join(items) + "}"
        parts = [self._expr(x, g) for x in v]
        if kind == "list":
            return "[" + ", ".join(parts) + "]"
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


# ---------------------------------------------------------------------------
