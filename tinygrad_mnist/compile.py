"""Record a training step once, replay it at NumPy speed.

    step = tinygrad_mnist.compile(train_step)     # or @tinygrad_mnist.compile
    for x, y in batches:
        loss = step(x, y)                         # forward, backward() and optimizer.step() inside

A small network spends most of an eager step in the engine's own bookkeeping:
making Tensors and Functions, sorting the graph, accumulating gradients.  A
step of fixed shapes does the same thing every time, so `compile` watches it
run (through `engine._tracer`, which `Function.apply` and the leaf
constructors report to) and writes down every primitive it calls: the
forward, the backward and the optimizer update.  From the third call on it
replays that list, calling `ctx.forward(*arrays, **params)` on the very same
op objects, as one generated straight-line Python function: no Tensors, no
graph, no backward sweep.

Calls 1 and 2 run eagerly and record; they must record the same ops (else a
Python branch looked at data) and replaying the second recording must
reproduce the second eager step bit for bit (else something changed arrays
behind the ops' backs).  A call that started from another state (no .grad
yet, where later calls have one) is not compared: the next call records again.
Anything the recorder can't account for is an error, never a silently wrong
replay.  Recordings are kept per input
signature (shapes, dtypes, layouts, and plain arguments by value), so a
shorter last batch records its own.

What replay means for the arrays of a step:
- inputs: the arrays (or the Tensors' arrays) passed in, read at each call;
- live state: tensors that existed before the step (parameters, optimizer
  state, a .grad the step reads) are read from `t.data` at each call;
- everything else comes out of a recorded op, or is a 0-d constant made from a
  Python number (baked into the recording, compared between recordings).
After a replay, `.data` of tensors the step re-bound and `.grad` of the
parameters hold the replayed arrays, as eager would leave them.
"""

from __future__ import annotations

import ast
import builtins
import copy
import functools
import inspect
import re
import sys
import textwrap
import threading

import numpy as np

from . import engine
from .engine import Function, Tensor

__all__ = ["compile", "Compiled", "CaptureError"]


class CaptureError(RuntimeError):
    """A step can't be recorded soundly; the message says what and how to fix it."""


class _Stale(Exception):
    """A recording's assumptions (a .grad present or absent) no longer hold: record again."""


class _Miss(Exception):
    """The arguments don't fit the program tried first: look the right one up by signature."""


# ---------------------------------------------------------------------------
# the tracer: one per capturing thread, reached through engine._tracer
# ---------------------------------------------------------------------------

_DATA = Tensor.__dict__["data"]  # the slot itself; capture puts a checking property in its place for a while
_get_data, _set_data = _DATA.__get__, _DATA.__set__
_active: dict[int, _Recorder] = {}  # thread id -> the recorder capturing there
_install_lock = threading.Lock()
_get_ident = threading.get_ident

# modules of the package that are the application, not the library: their .data reads count as user code
_APP_MODULES = {"tinygrad_mnist.train", "tinygrad_mnist.cli", "tinygrad_mnist.__main__"}


def _library_caller(depth: int = 2) -> bool:
    name = sys._getframe(depth).f_globals.get("__name__", "")
    return (name == "tinygrad_mnist" or name.startswith("tinygrad_mnist.")) and name not in _APP_MODULES


class _Dispatch:
    """engine._tracer while any thread captures: hands each report to that thread's recorder."""

    def op(self, ctx, inputs, params, out):
        rec = _active.get(_get_ident())
        if rec is not None:
            rec.op(ctx, inputs, params, out)

    def leaf(self, t):
        rec = _active.get(_get_ident())
        if rec is not None:
            rec.created.add(t)


def _data_get(t):
    arr = _get_data(t)
    rec = _active.get(_get_ident())
    if rec is not None:
        if t in rec.created:
            if not _library_caller():
                raise CaptureError(
                    f"compile: .data of a tensor of shape {arr.shape} that the compiled step computes (or takes as "
                    f"input) was read by user code; replay would never run that code again. Use tensor ops (under "
                    f"no_grad() for updates, e.g. `p -= lr * p.grad`), or return the tensor from the step and read "
                    f"it outside")
        else:
            rec.seen_array(t, arr)
    return arr


def _data_set(t, arr):
    rec = _active.get(_get_ident())
    if rec is not None:
        try:
            old = _get_data(t)
        except AttributeError:  # a tensor being made right now
            rec.created.add(t)
        else:
            if not _library_caller():
                raise CaptureError(
                    f"compile: user code assigned .data of a tensor of shape {old.shape} inside the compiled step; "
                    f"replay would not do it again. Write with tensor ops instead (under no_grad(): "
                    f"`p -= lr * p.grad`, `p.copy_(v)`)")
            if t not in rec.created:
                rec.rebound(t, old)
    _set_data(t, arr)


_GRAD = Tensor.__dict__["grad"]


def _grad_set(t, value):
    rec = _active.get(_get_ident())
    if rec is not None and value is None and t not in rec.grad_at_sight:
        rec.grad_cleared.add(t)  # the step clears it before using t: no assumption about .grad at the start
    _GRAD.fset(t, value)


def _escape(name: str, call: str):
    """A Tensor method that hands a value to Python, refused on tensors computed inside a capture."""
    original = Tensor.__dict__[name]

    @functools.wraps(original)
    def guarded(self, *args, **kwargs):
        rec = _active.get(_get_ident())
        if rec is not None and self in rec.created:
            raise CaptureError(
                f"compile: {call} of a tensor of the compiled step (shape {self.shape}, computed or an input): "
                f"its value "
                f"would be read once, while recording, and never on replay. Return the tensor from the step "
                f"and read it outside (`loss = step(x, y); print(float(loss))`), or use compile(fn, enabled=False)")
        return original(self, *args, **kwargs)

    return name, original, guarded


_GUARDS = [_escape(*a) for a in (
    ("numpy", ".numpy()"), ("item", ".item()"), ("tolist", ".tolist()"), ("__float__", "float()"),
    ("__int__", "int()"), ("__bool__", "bool()"), ("__index__", "using as an index"),
    ("__array__", "np.asarray() (__array__)"), ("__format__", "formatting"), ("__repr__", "repr()/print()"),
    ("equal", ".equal()"), ("allclose", ".allclose()"))]


def _install(rec: _Recorder) -> None:
    with _install_lock:
        if not _active:  # the first capture in the process right now: swap in the checks
            Tensor.data = property(_data_get, _data_set)
            Tensor.grad = property(_GRAD.fget, _grad_set, doc=_GRAD.__doc__)
            for name, _, guarded in _GUARDS:
                setattr(Tensor, name, guarded)
            engine._tracer = _Dispatch()
        _active[_get_ident()] = rec


def _uninstall() -> None:
    with _install_lock:
        _active.pop(_get_ident(), None)
        if not _active:  # eager code runs at full speed again
            engine._tracer = None
            for name, original, _ in _GUARDS:
                setattr(Tensor, name, original)
            Tensor.data = _DATA
            Tensor.grad = _GRAD


# ---------------------------------------------------------------------------
# one recording
# ---------------------------------------------------------------------------

# where a slot's array comes from
INPUT, LIVE, CONST, OP = "input", "live", "const", "op"


class _Slot:
    __slots__ = ("kind", "index", "shape", "dtype", "tensor", "owner", "value")

    def __init__(self, kind, index, arr, tensor=None, owner=None, value=None):
        self.kind, self.index, self.shape, self.dtype = kind, index, arr.shape, arr.dtype
        self.tensor = tensor  # LIVE: the tensor whose .data is read at each call
        self.owner = owner  # LIVE: a parameter whose .grad this is (read as owner._grad.data)
        self.value = value  # CONST: the baked 0-d array; INPUT: the argument position or keyword


class _Op:
    __slots__ = ("ctx", "ins", "params", "out", "random")

    def __init__(self, ctx, ins, params, out, random):
        self.ctx, self.ins, self.params, self.out = ctx, ins, params, out
        self.random = random  # the library's generator moved while it ran (or just before): never folded


class _Recorder:
    """Watches one eager call: every op with the slots of its input and output arrays."""

    def __init__(self, name: str):
        self.name = name
        self.slots: list[_Slot] = []
        self.slot_of: dict[int, int] = {}  # id(array) -> its newest slot
        self.keep: list = []  # every array seen: ids stay unique while we key by them
        self.ops: list[_Op] = []
        self.created: set = set()  # tensors made during the capture (op results and new leaves)
        self.first_data: dict = {}  # pre-existing tensor -> its array when the step started (if re-bound)
        self.origin: dict[int, Tensor] = {}  # id(array) -> the pre-existing tensor that holds it
        self.live_of: dict = {}  # pre-existing tensor -> its LIVE slot
        self.params: list[Tensor] = []  # pre-existing leaves that require grad, in first-seen order
        self.grad_at_sight: dict = {}  # parameter -> its ._grad when first seen
        self.grad_cleared: set = set()  # parameters whose .grad the step set to None before first seeing them
        self.outputs = None  # the returned structure, with slot numbers for tensors
        self.rng_mark = _rng_mark()

    # -- slots ------------------------------------------------------------------
    def _slot(self, kind, arr, **kw) -> int:
        i = len(self.slots)
        self.slots.append(_Slot(kind, i, arr, **kw))
        self.slot_of[id(arr)] = i
        self.keep.append(arr)
        return i

    def add_input(self, arr: np.ndarray, where) -> None:
        if id(arr) in self.slot_of:
            raise CaptureError(f"compile: step arguments {self.slots[self.slot_of[id(arr)]].value!r} and {where!r} "
                               f"are the same array; pass distinct arrays (replay reads each argument separately)")
        self._slot(INPUT, arr, value=where)

    def seen_array(self, t: Tensor, arr: np.ndarray) -> None:
        """A pre-existing tensor's array was read: remember whose it is (a detach() of it may reach an op)."""
        if id(arr) not in self.origin and t not in self.first_data:
            self.origin[id(arr)] = t
            self.keep.append(arr)

    def rebound(self, t: Tensor, old: np.ndarray) -> None:
        """Library code assigned t.data (t existed before the step): keep what it held at the start."""
        if t not in self.first_data:
            self.first_data[t] = old
            self.keep.append(old)

    def _see_param(self, t: Tensor) -> None:
        if t._requires_grad and t._ctx is None and t not in self.grad_at_sight and t not in self.created:
            self.params.append(t)
            g = t._grad
            self.grad_at_sight[t] = g
            if g is not None and g in self.live_of:  # its .grad was read before it: read it through t
                self.slots[self.live_of[g]].owner = t

    def _source(self, t: Tensor, arr: np.ndarray, where: str, bake: bool = True) -> int:
        """The slot of an array no recorded op made: a live tensor's, a baked 0-d constant, or an error.

        A 0-d constant (a Python number) is baked into the recording; the two recordings must agree on its
        value.  A boolean one is refused: it is a mask computed outside the ops, not a number in the code.
        """
        if t not in self.created:
            if t in self.first_data and self.first_data[t] is not arr:
                raise CaptureError(
                    f"compile: {where} reads a tensor of shape {arr.shape} whose .data was replaced inside the step "
                    f"by an array no recorded op made; replay can't reproduce that")
            return self._live(t, arr)
        owner = self.origin.get(id(arr))
        if owner is not None and _get_data(owner) is arr:  # a new tensor sharing a parameter's array (detach)
            return self._live(owner, arr)
        if bake and arr.ndim == 0 and arr.dtype != np.bool_:
            return self._slot(CONST, arr, value=arr.copy())
        raise CaptureError(
            f"compile: {where} received an array of shape {arr.shape} ({arr.dtype}) that is neither a step input, "
            f"nor a tensor that existed before the step (a parameter, optimizer state), nor the result of a "
            f"recorded op: it was computed outside the ops, so replay would reuse this one value forever. "
            f"Make it a step argument (Tensor(x) copies: pass the Tensor, or use from_numpy), create it before "
            f"the step, or compute it with tensor ops")

    def _live(self, t: Tensor, arr: np.ndarray) -> int:
        owner = next((p for p, g in self.grad_at_sight.items() if g is t), None)
        i = self._slot(LIVE, arr, tensor=t, owner=owner)
        self.live_of[t] = i
        self._see_param(t)
        return i

    # -- the tracer's callbacks -----------------------------------------------------
    def op(self, ctx, inputs, params, out) -> None:
        ins = []
        for k, t in enumerate(inputs):
            self._see_param(t)
            arr = _get_data(t)
            s = self.slot_of.get(id(arr))
            if s is None:
                s = self._source(t, arr, f"{type(ctx).__name__} (input {k})")
            ins.append(s)
        if params:
            for key, v in params.items():
                _check_param(ctx, key, v)
        self.created.add(out)
        arr = _get_data(out)
        for i, t in zip(ins, inputs):
            if self.slots[i].kind == CONST and _get_data(t) is arr:
                raise CaptureError(f"compile: {type(ctx).__name__} writes in place into a constant made inside the "
                                   f"step (shape {arr.shape}); replay would keep adding to one array. Create it "
                                   f"before the step, or use the out-of-place op")
        o = self._slot(OP, arr, value=arr)  # the value only matters if the op gets folded (see _Program)
        mark = _rng_mark()
        self.ops.append(_Op(ctx, tuple(ins), params, o, mark != self.rng_mark))
        self.rng_mark = mark

    # -- the end of the call ------------------------------------------------------
    def finish(self, result) -> None:
        self.outputs = self._output(result)
        self.data_writes = []  # (tensor, slot): .data re-bound by the step
        for t, old in self.first_data.items():
            arr = _get_data(t)
            if arr is old:
                continue
            s = self.slot_of.get(id(arr))
            if s is None:
                raise CaptureError(f"compile: the step set .data of a tensor of shape {arr.shape} to an array no "
                                   f"recorded op made; replay can't reproduce that")
            self.data_writes.append((t, s))
        self.grad_writes = []  # (parameter, slot or None): .grad after the step
        for p in self.params:
            g = p._grad
            if g is not None and g is self.grad_at_sight[p] and g not in self.created:
                continue  # the same tensor as before: any change to it was an op on its array
            if g is None:
                self.grad_writes.append((p, None))
                continue
            s = self.slot_of.get(id(_get_data(g)))
            if s is None:
                raise CaptureError(f"compile: after the step, .grad of a parameter of shape {p.shape} holds an array "
                                   f"no recorded op made; replay can't reproduce it")
            self.grad_writes.append((p, s))
        # a parameter with no .grad when first seen: replay assumes none at the start of a call, unless the
        # step itself cleared it before using the parameter
        self.need_no_grad = [p for p in self.params if self.grad_at_sight[p] is None and p not in self.grad_cleared]

    def _output(self, v):
        if isinstance(v, Tensor):
            arr = _get_data(v)
            if v not in self.created:
                return ("same", v)  # a tensor from before the step (a parameter): returned as itself
            s = self.slot_of.get(id(arr))
            if s is None:
                s = self._source(v, arr, "the step's return value", bake=False)
            return ("tensor", s)
        if isinstance(v, (tuple, list)):
            return (type(v).__name__, [self._output(x) for x in v])
        if isinstance(v, dict):
            return ("dict", [(k, self._output(x)) for k, x in v.items()])
        if isinstance(v, np.ndarray):
            raise CaptureError("compile: the step returns an ndarray; return Tensors (replay hands back copies)")
        return ("value", v)


def _rng_mark():
    g = engine._rng
    return id(g), g.bit_generator.state


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


def _inlined(op: _Op, k: int, args: list, g: dict) -> str | None:
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
        return "(" + ast.unparse(Rename().visit(copy.deepcopy(expr))) + ")"
    except AttributeError:  # a name that is neither an argument nor a global: leave the call as it is
        return None


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


def _plain(v) -> bool:
    """A parameter value that is data, not state read when the op runs (a param-group dict, another op)."""
    if v is None or isinstance(v, (bool, int, float, str, np.dtype, np.generic, slice, type, np.ufunc)) \
            or v is Ellipsis:
        return True
    if isinstance(v, (tuple, list)):
        return all(_plain(x) for x in v)
    return False


def _check_param(ctx, key, v, depth=0) -> None:
    """**params are baked into the recording: arrays there would be stale on replay."""
    if isinstance(v, (np.ndarray, Tensor)):
        raise CaptureError(
            f"compile: {type(ctx).__name__} got an {'ndarray' if isinstance(v, np.ndarray) else 'Tensor'} of shape "
            f"{v.shape} in its parameter {key}=; parameters are baked into the recording, so replay would reuse "
            f"this array. Pass it as a Tensor input of the op (the output of the primitive that makes it)")
    if depth < 3 and isinstance(v, (tuple, list)):  # (a dict is state the op reads when it runs: a param group)
        for x in v:
            _check_param(ctx, key, x, depth + 1)


# ---------------------------------------------------------------------------
# comparing two recordings
# ---------------------------------------------------------------------------


def _same(a, b, pos_a: dict, pos_b: dict, depth: int = 0) -> bool:
    """Are two param values the same, with ops compared by their place in their own recording?"""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, Function):
        return pos_a.get(id(a), -1) == pos_b.get(id(b), -2)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y, pos_a, pos_b, depth + 1) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], pos_a, pos_b, depth + 1) for k in a)
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, np.generic):
        return a.tobytes() == b.tobytes()
    if depth < 3 and hasattr(a, "__dict__") and not callable(a):  # a plain object (pooling geometry): its fields
        return _same(vars(a), vars(b), pos_a, pos_b, depth + 1)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  (a value whose == isn't a plain truth: not the same)
        return False


def _first_difference(r1: _Recorder, r2: _Recorder) -> str | None:
    """None when the recordings agree, else what differs first."""
    pos1 = {id(op.ctx): i for i, op in enumerate(r1.ops)}
    pos2 = {id(op.ctx): i for i, op in enumerate(r2.ops)}

    def slot_diff(i: int, j: int) -> str | None:
        if i != j:
            return "its inputs come from different places"
        s1, s2 = r1.slots[i], r2.slots[j]
        if s1.kind != s2.kind or s1.shape != s2.shape or s1.dtype != s2.dtype:
            return f"an input is {s1.kind} {s1.shape} {s1.dtype} one time, {s2.kind} {s2.shape} {s2.dtype} the other"
        if s1.kind == LIVE and (s1.owner is not s2.owner or (s1.owner is None and s1.tensor is not s2.tensor)):
            return "an input is a different tensor from before the step"
        if s1.kind == CONST and s1.value.tobytes() != s2.value.tobytes():
            return f"a constant is {s1.value} one time and {s2.value} the other"
        return None

    for i, (a, b) in enumerate(zip(r1.ops, r2.ops)):
        name = type(a.ctx).__name__
        why = None
        if type(a.ctx) is not type(b.ctx):
            why = f"{name} was recorded the first time, {type(b.ctx).__name__} the second"
        elif len(a.ins) != len(b.ins):
            why = "a different number of inputs"
        elif a.params.keys() != b.params.keys() or not all(_same(a.params[k], b.params[k], pos1, pos2)
                                                           for k in a.params):
            why = f"different parameters ({a.params} vs {b.params})"
        else:
            why = next((d for d in (slot_diff(x, y) for x, y in zip(a.ins, b.ins)) if d), None)
            s1, s2 = r1.slots[a.out], r2.slots[b.out]
            if why is None and (a.out != b.out or s1.shape != s2.shape or s1.dtype != s2.dtype):
                why = f"its result is {s1.shape} {s1.dtype} one time, {s2.shape} {s2.dtype} the other"
        if why:
            return f"op {i} ({name}): {why}"
    if len(r1.ops) != len(r2.ops):
        n = min(len(r1.ops), len(r2.ops))
        longer = r1 if len(r1.ops) > n else r2
        return (f"op {n} ({type(longer.ops[n].ctx).__name__}) was recorded only once "
                f"({len(r1.ops)} vs {len(r2.ops)} ops)")
    if len(r1.slots) != len(r2.slots) or not _same_outputs(r1.outputs, r2.outputs):
        return "the returned values differ"
    w1 = [(t, s) for t, s in r1.data_writes] + [(p, s) for p, s in r1.grad_writes]
    w2 = [(t, s) for t, s in r2.data_writes] + [(p, s) for p, s in r2.grad_writes]
    if len(w1) != len(w2) or any(t1 is not t2 or s1 != s2 for (t1, s1), (t2, s2) in zip(w1, w2)):
        return "the tensors the step re-binds (.data, .grad) differ"
    if len(r1.need_no_grad) != len(r2.need_no_grad) or any(a is not b for a, b in zip(r1.need_no_grad,
                                                                                        r2.need_no_grad)):
        return "parameters without .grad at the start differ"
    return None


def _same_outputs(a, b) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] in ("tuple", "list", "dict"):
        return len(a[1]) == len(b[1]) and all(
            (x[0] == y[0] and _same_outputs(x[1], y[1])) if a[0] == "dict" else _same_outputs(x, y)
            for x, y in zip(a[1], b[1]))
    if a[0] == "same":
        return a[1] is b[1]
    if a[0] == "value":
        return _same(a[1], b[1], {}, {})
    return a[1] == b[1]


# ---------------------------------------------------------------------------
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
        for k, op in enumerate(rec.ops):
            if kind[op.out] == CONST:
                self.folded += 1
                continue
            args = [f"v{i}" for i in op.ins]
            for j, (name, value) in enumerate(op.params.items()):
                g[f"c{k}_{j}"] = value
                args.append(f"{name}=c{k}_{j}")
            call = _inlined(op, k, args, g)
            if call is None:
                g[f"f{k}"] = op.ctx.forward
                call = f"f{k}({', '.join(args)})"
            if rec.slots[op.out].shape == ():  # NumPy hands back scalars for 0-d results; apply wraps them
                call = f"_asarray({call})"
            lines.append(f"    v{op.out} = {call}")
            dead = sorted({i for i in op.ins if last_use[i] == k and i not in keep and kind[i] == OP})
            if dead:  # drop intermediates as soon as the last op read them (big activations in a CNN)
                lines.append(f"    del {', '.join(f'v{i}' for i in dead)}")
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
            g["_live_shapes"] = tuple(s.shape for s in live)
            head.append(f"    if ({', '.join(f'v{s.index}.shape' for s in live)},) != _live_shapes: raise _Stale")
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
# the user's object
# ---------------------------------------------------------------------------


def _arg_key(v):
    t = type(v)
    if t is np.ndarray:
        return v.shape, v.dtype, v.strides  # layout too: some ops take a different path for a transposed array
    if isinstance(v, Tensor):
        a = v.data
        return t, a.shape, a.dtype, a.strides
    try:
        hash(v)
        return t, v
    except TypeError:
        return t, id(v)


def _signature(args: tuple, kwargs: dict) -> tuple:
    """What a recording is keyed by: arrays by shape, dtype and layout, plain values by value, objects by identity."""
    key = tuple([_arg_key(v) for v in args])
    if kwargs:
        key += tuple([(k, _arg_key(v)) for k, v in sorted(kwargs.items())])
    return key


class Compiled:
    """A step function that records itself on its first two calls and replays from then on.

    Counters: `calls`, `eager_calls` (calls that ran the Python function, recording or not),
    `replays`, `recordings` (completed recordings). `enabled = False` runs every call eagerly.
    """

    max_programs = 16  # recordings kept (and first recordings waiting for their second): oldest dropped

    def __init__(self, fn, enabled: bool = True):
        if not callable(fn):
            raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.enabled = enabled
        self._programs: dict[tuple, _Program] = {}
        self._last: _Program | None = None  # tried first: the usual case is the same signature as last time
        self._lock = threading.Lock()
        self._first: dict[tuple, tuple] = {}  # key -> (first recording, the objects its key names by id)
        self.calls = self.eager_calls = self.replays = self.recordings = 0

    def __get__(self, obj, cls=None):
        """@compile on a method: the instance is the first argument (keyed by identity, like any object)."""
        return self if obj is None else functools.partial(self, obj)

    def reset(self) -> None:
        """Forget every recording (after replacing parameter or optimizer-state tensors, not just their values)."""
        self._programs.clear()
        self._first.clear()
        self._last = None

    @property
    def source(self) -> str | None:
        """The generated Python of the recording used last (each line one op's forward), to read."""
        return None if self._last is None else self._last.source

    @property
    def programs(self) -> int:
        """How many input signatures have a replayable recording."""
        return len(self._programs)

    def __repr__(self) -> str:
        return (f"<compiled {getattr(self.fn, '__name__', 'step')}: {self.replays} replays, "
                f"{self.eager_calls} eager calls, {len(self._programs)} recordings>")

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if not self.enabled or (engine._tracer is not None and _active.get(_get_ident()) is not None):
            self.eager_calls += 1  # off, or inside another capture (which records what this runs)
            return self.fn(*args, **kwargs)
        with self._lock:  # replay runs forwards on shared op objects (they keep arrays on self): one call at a time
            return self._call(args, kwargs)

    def _call(self, args, kwargs):
        prog = self._last
        if prog is not None:  # the same signature as last time: its guards check that, no key to build
            try:
                out = prog.run(args, kwargs)
                self.replays += 1
                return out
            except _Miss:
                pass
            except _Stale:
                self._drop(prog)
        key = _signature(args, kwargs)
        prog = self._programs.get(key)
        if prog is not None:
            try:
                out = prog.run(args, kwargs)
                self.replays += 1
                self._last = prog
                return out
            except _Stale:
                self._drop(prog)
        return self._record(key, args, kwargs)

    def _drop(self, prog: _Program) -> None:
        self._programs = {k: p for k, p in self._programs.items() if p is not prog}
        if self._last is prog:
            self._last = None

    def _record(self, key, args, kwargs):
        self.eager_calls += 1
        first = self._first.get(key)
        before = None if first is None else _snapshot(first[0], args, kwargs)
        rec = _Recorder(getattr(self.fn, "__name__", "step"))
        _install(rec)
        try:
            for pos, v in enumerate(args):
                _add_input(rec, v, pos)
            for name, v in kwargs.items():
                _add_input(rec, v, name)
            result = self.fn(*args, **kwargs)
            rec.finish(result)
        finally:
            _uninstall()
        if first is None:
            self._first[key] = (rec, [v for v in (*args, *kwargs.values()) if not _hashable(v)])
            _trim(self._first, self.max_programs)
            return result
        if _assumptions(first[0]) != _assumptions(rec):
            # the calls started from different states (a .grad there or not): compare the next call with this one
            self._first[key] = (rec, first[1])
            return result
        del self._first[key]
        why = _first_difference(first[0], rec)
        if why is not None:
            raise CaptureError(
                f"compile: the two recordings of {rec.name} differ at {why}. A Python branch on data? Replay "
                f"needs the same ops every call: branch with tensor ops (where, masks), create optimizer state "
                f"before the first step, zero the gradients inside the step, or use compile(fn, enabled=False)")
        prog = _Program(rec, args, kwargs)
        _verify(prog, rec, before, result)
        prog.keepalive = first[1]  # objects the key names by id
        prog.rec_ops = rec.ops
        prog.rec = rec.keep = rec.slot_of = rec.created = rec.origin = rec.first_data = None  # the arrays of call 2
        self._programs[key] = self._last = prog
        _trim(self._programs, self.max_programs)
        self.recordings += 1
        return result


def _trim(d: dict, n: int) -> None:
    """Keep the n newest entries: a step called with an ever-changing Python value (a float lr as an
    argument) would otherwise keep a recording, with its arrays, for every value."""
    while len(d) > n:
        del d[next(iter(d))]


def _assumptions(rec: _Recorder) -> tuple:
    """What a recording assumed about the start of a call: which parameters had no .grad, whose .grad it read."""
    return (tuple(id(p) for p in rec.need_no_grad),
            tuple(id(s.owner) for s in rec.slots if s.kind == LIVE and s.owner is not None))


def _hashable(v) -> bool:
    try:
        hash(v)
        return True
    except TypeError:
        return False


def _add_input(rec: _Recorder, v, where) -> None:
    if isinstance(v, np.ndarray):
        rec.add_input(v, where)
    elif isinstance(v, Tensor):
        if v._requires_grad:
            raise CaptureError(f"compile: step argument {where!r} is a tensor that requires grad; replay would not "
                               f"leave its .grad. Pass data (arrays or tensors without requires_grad)")
        rec.add_input(_get_data(v), where)
        rec.created.add(v)  # its values are the step's data: reading them in user code is an escape too


def _arrays_of_sources(rec: _Recorder, args, kwargs) -> list:
    out = []
    for s in rec.slots:
        if s.kind == INPUT:
            v = args[s.value] if isinstance(s.value, int) else kwargs[s.value]
            out.append(v.data if isinstance(v, Tensor) else v)
        elif s.kind == LIVE:
            t = s.tensor if s.owner is None else s.owner._grad
            out.append(None if t is None else t.data)
    return out


def _snapshot(first: _Recorder, args, kwargs):
    """Copies of what a replay reads, taken before the second eager call, and the random state."""
    arrays = _arrays_of_sources(first, args, kwargs)
    rng = engine._rng
    return [None if a is None else np.copy(a, order="K") for a in arrays], rng, rng.bit_generator.state


def _verify(prog: _Program, rec: _Recorder, before, result) -> None:
    """Replay the second recording from the state before the second call; it must match that eager call bit for bit."""
    copies, rng, state = before
    if len(copies) != len(prog.sources) or any(a is None for a in copies):
        raise CaptureError("compile: the state read by the step changed between the first two calls")
    after_rng, after_state = engine._rng, engine._rng.bit_generator.state
    engine._rng = rng
    rng.bit_generator.state = state
    try:
        out, data_w, grad_w = prog.body(*copies)
    finally:
        engine._rng = after_rng
        after_rng.bit_generator.state = after_state
    replayed = dict(zip([s.index for s in prog.sources], copies))  # sources written in place hold their end state
    problems = []
    _compare_out(result, out, problems, "the returned value")
    for (t, _), a in zip(rec.data_writes, data_w):
        _compare_arrays(_get_data(t), a, problems, f".data of a tensor of shape {a.shape}")
    for (p, _), a in zip(rec.grad_writes, grad_w):
        if a is not None:
            _compare_arrays(p._grad.data, a, problems, f".grad of a parameter of shape {p.shape}")
    rebound = {id(t) for t, _ in rec.data_writes}
    for s in prog.sources:  # what was written in place: parameters, optimizer state
        if s.kind == LIVE and id(s.tensor) not in rebound:
            t = s.tensor
            what = ("the .grad of a parameter" if s.owner is not None else
                    "a parameter" if t._requires_grad and t._ctx is None else "a tensor from before the step")
            _compare_arrays(_get_data(t), replayed[s.index], problems, f"{what} of shape {s.shape} after the step")
    if problems:
        raise CaptureError(
            f"compile: replaying the recording of {rec.name} does not reproduce the eager step: {problems[0]} "
            f"differs. Something in the step changes arrays outside recorded ops (NumPy on .data, an optimizer "
            f"or an in-place write that bypasses the ops), reads a Python value that changed between calls, or "
            f"draws random numbers outside an op (manual_seed inside the step?); it can't be replayed "
            f"(use compile(fn, enabled=False))")


def _compare_out(eager, replayed, problems: list, what: str) -> None:
    if isinstance(eager, Tensor) and isinstance(replayed, Tensor) and eager is not replayed:
        _compare_arrays(eager.data, replayed.data, problems, what)
    elif isinstance(eager, (tuple, list)):
        for i, (a, b) in enumerate(zip(eager, replayed)):
            _compare_out(a, b, problems, f"{what}[{i}]")
    elif isinstance(eager, dict):
        for k in eager:
            _compare_out(eager[k], replayed[k], problems, f"{what}[{k!r}]")


def _compare_arrays(a: np.ndarray, b: np.ndarray, problems: list, what: str) -> None:
    if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
        problems.append(what)


def compile(fn=None, *, enabled: bool = True):  # noqa: A001  (torch.compile's name)
    """Record a training step on its first two calls and replay it from then on (see the module docstring).

    `step = compile(train_step)` or `@compile`; `compile(train_step, enabled=False)` never records.
    """
    if fn is None:
        return lambda f: Compiled(f, enabled)
    return Compiled(fn, enabled)
