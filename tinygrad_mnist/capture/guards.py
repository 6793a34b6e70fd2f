"""What a recorded step read from Python, and the check that it still holds before each replay.

Replay runs no Python of the step, so every Python value that steered the recording is a guard:
- the `training` flag and the other attributes of each Module the step read (Dropout's p, a layer's
  weight tensor, a Sequential's list of layers);
- the globals, closure variables and attributes of `self` that the step's own code (not the
  library's) names: numbers and strings by value, tensors, models and optimizers by identity,
  lists and dicts of tensors by their items' identities;
- requires_grad of every tensor from before the step that an op read, and this thread's grad mode;
- each optimizer's parameter groups (which tensors, whether SGD's momentum is on).
Reseeding a generator inside the step (Generator.manual_seed/set_state) is refused.

While a thread records, `Module.__getattribute__`/`__setattr__` and `sys.settrace` report to its
`Watch`; nothing is hooked otherwise.  `guard_source` turns the reads into one Python expression for
the generated `run` (a failed guard raises `_Guard` before anything is written).
"""

from __future__ import annotations

import gc
import sys
import sysconfig
import threading
import types

import numpy as np

from .. import engine
from ..engine import Tensor
from ..generator import Generator
from ..nn.modules import Module
from ..optim.optimizer import Optimizer

_PLAIN = (bool, int, float, complex, str, bytes, type(None), np.generic, np.dtype)
_MISSING = object()  # a global or attribute that is gone


class _Guard(Exception):
    """Python state a recording read differs now: try another recording, or record again."""


def _plain(v, depth: int = 0) -> bool:
    if isinstance(v, _PLAIN):
        return True
    return depth < 2 and type(v) is tuple and len(v) <= 16 and all(_plain(x, depth + 1) for x in v)


def _tensors_only(v) -> bool:
    """A list or dict whose items are tensors or modules (a parameter list, a layer dict): guarded item by item."""
    items = v.values() if isinstance(v, dict) else v
    return len(v) <= 64 and all(isinstance(x, (Tensor, Module)) for x in items)


class Read:
    """One guarded read: where to fetch it again, what was seen (see `expected`), and how it is compared."""

    __slots__ = ("obj", "kind", "key", "value", "how", "label", "vtype")

    def __init__(self, obj, kind: str, key, value, how: str, label: str, vtype: type):
        self.obj, self.kind, self.key = obj, kind, key  # kind: "attr" obj.key, "item" obj[key], "cell"
        self.value, self.how, self.label = value, how, label  # how: "is", "eq", "ids" (items), "truth"
        self.vtype = vtype  # the type of the value read (r.value holds ids for "ids")

    def fetch_source(self, name: str) -> str:
        if self.kind == "attr":
            return f"{name}.{self.key}" if self.key.isidentifier() else f"getattr({name}, {self.key!r}, _MISSING)"
        if self.kind == "item":
            return f"{name}.get({self.key!r}, _MISSING)"
        return f"{name}.cell_contents"

    def describe(self) -> str:
        shown = {"ids": "the same items", "is": f"the same {type(self.value).__name__}"}.get(
            self.how, _short(self.value))
        if self.how == "is" and (self.value is True or self.value is False or self.value is None):
            shown = repr(self.value)
        return f"{self.label} is {shown}" if self.how != "truth" else f"{self.label} is {'on' if self.value else 'off'}"


def expected(value, how: str):
    """What a read is compared with: the items ("ids": (key, item) pairs of a dict), the truth value, a copy
    of a list or dict."""
    if how == "ids":
        return tuple(value.items()) if isinstance(value, dict) else tuple(value)
    if how == "truth":
        return bool(value)
    return value.copy() if how == "eq" and type(value) in (list, dict) else value


def classify(value) -> str | None:
    """How a read value is guarded: None when it needs no guard (functions, classes, modules)."""
    if value is True or value is False or value is None:
        return "is"
    if _plain(value):
        return "eq"
    if isinstance(value, (list, dict)) and value and _tensors_only(value):
        return "ids"
    if type(value) in (list, dict) and len(value) <= 16 and all(
            _plain(x) for x in (value.values() if type(value) is dict else value)):
        return "eq"  # a small config list or dict: by value (compared with a copy)
    if isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type,
                          types.MethodType)):
        return None
    return "is"


def guard_source(reads: list[Read], g: dict) -> str:
    """One expression that is true while every read still holds; its objects become globals of g."""
    g["_MISSING"] = _MISSING
    parts = []
    for j, r in enumerate(reads):
        o, e = f"_go{j}", f"_ge{j}"
        g[o], g[e] = r.obj, r.value
        fetch = r.fetch_source(o)
        if r.how == "is" and r.obj is engine._state and r.value is True:  # grad mode on: while no thread
            g["_engine"] = engine  # has it off (engine._grad_off, what Function.apply reads), no thread-local
            parts.append(f"(not _engine._grad_off or {fetch} is True)")
        elif r.how == "is":
            parts.append(f"{fetch} is {e}")
        elif r.how == "truth":
            parts.append(f"bool({fetch}) is {e}")
        elif r.how == "eq":  # the type first: == on an array or tensor that replaced a number is no truth value
            g[f"_gt{j}"] = r.vtype
            parts.append(f"(type(_x := {fetch}) is _gt{j} and _x == {e})")
        else:  # each item by identity: `x[0] is t0` costs a few ns (a KeyError or IndexError fails the guard)
            g[f"_gt{j}"] = r.vtype
            items = []
            for i, item in enumerate(r.value):
                if issubclass(r.vtype, dict):
                    g[f"_gk{j}_{i}"], g[f"_gi{j}_{i}"] = item
                    items.append(f"_x[_gk{j}_{i}] is _gi{j}_{i}")
                else:
                    g[f"_gi{j}_{i}"] = item
                    items.append(f"_x[{i}] is _gi{j}_{i}")
            parts.append(f"(type(_x := {fetch}) is _gt{j} and len(_x) == {len(r.value)}"
                         + "".join(f" and {x}" for x in items) + ")")
    return " and ".join(parts) or "True"


def guard_function(reads: list[Read]):
    """The guard expression as a function: True while the reads hold, False when one fails (or raises)."""
    g: dict = {}
    src = (f"def check():\n    try:\n        return {guard_source(reads, g)}\n"
           f"    except Exception:\n        return False\n")
    exec(compile(src, "<compile guards>", "exec"), g)  # noqa: S102  (our own generated code)
    return g["check"]


def _same_value(a, b, how: str) -> bool:
    if how == "is":
        return a is b
    if how == "ids":
        return len(a) == len(b) and all(
            (x is y) if not isinstance(x, tuple) else (x[0] == y[0] and x[1] is y[1]) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  (no plain truth value: not the same)
        return False


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def current(r: Read):
    """The value a read fetches now."""
    g = {"_go0": r.obj, "_MISSING": _MISSING}
    return eval(r.fetch_source("_go0"), g)  # noqa: S307  (our own generated expression)


def holds(reads: list[Read]) -> Read | None:
    """The first read that no longer holds (checked in Python), else None."""
    for r in reads:
        if not guard_function([r])():
            return r
    return None


# ---------------------------------------------------------------------------
# watching one recording
# ---------------------------------------------------------------------------

_LIBRARY = "tinygrad_mnist"
_APP_MODULES = {"tinygrad_mnist.train", "tinygrad_mnist.cli", "tinygrad_mnist.__main__"}
_NOT_USER = {_LIBRARY, "numpy", *sys.stdlib_module_names}  # code whose globals are not the step's state
# installed packages and the standard library: their code is no user's step (a test framework's gc callback
# runs inside a step too)
_NOT_USER_DIRS = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})
_user_code: dict = {}  # code object -> is it the user's (cached: the tracer sees every call while recording)


def _user_module(name: str) -> bool:
    return name in _APP_MODULES or name.split(".")[0] not in _NOT_USER


def _is_user_code(code, g: dict) -> bool:
    mine = _user_code.get(code)
    if mine is None:
        name = g.get("__name__", "")
        mine = _user_code[code] = name in _APP_MODULES or (
            _user_module(name) and not code.co_filename.startswith(_NOT_USER_DIRS))
    return mine


def _cell_value(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return _MISSING


def _user_object(obj) -> bool:
    """An instance of a user's class (a config, a trainer): its attributes are state the step may read.
    Modules report their reads themselves; tensors, optimizers, functions and classes are not such state."""
    return not isinstance(obj, (Module, Optimizer, Tensor, type, types.ModuleType, types.FunctionType,
                                types.MethodType)) and _user_module(type(obj).__module__)


class Watch:
    """The Python reads and writes of one recording (see the module docstring)."""

    def __init__(self, strict_refuse):
        self.reads: list[Read] = []
        self.seen: set = set()  # (id(obj), kind, key) read or written already
        self.module_writes: dict = {}  # (module, name) -> the plain value the step left there
        self.optimizers: list = []
        self.frames: set = set()  # code objects looked at
        self.refuse = strict_refuse  # (message) -> raises CaptureError or gives the recording up
        self.hyper_start: list = []
        self.grad_mode = True  # at the start of the call

    def _note(self, obj, kind: str, key, value, label: str) -> None:
        k = (id(obj), kind, key)
        if k in self.seen:
            return
        self.seen.add(k)
        how = classify(value)
        if how is not None:
            self._add(obj, kind, key, value, how, label)

    def _add(self, obj, kind: str, key, value, how: str, label: str) -> None:
        self.reads.append(Read(obj, kind, key, expected(value, how), how, label, type(value)))

    # -- modules ------------------------------------------------------------------
    def module_read(self, m, name: str, value) -> None:
        if name.startswith("__"):
            return
        if name in m.__dict__ or name == "training":  # instance state (and the class-wide training default)
            self._note(m, "attr", name, value, f"{type(m).__name__}.{name}")

    def module_write(self, m, name: str, value) -> None:
        old = m.__dict__.get(name, _MISSING)
        self.seen.add((id(m), "attr", name))  # read after this write: the step's own value, no guard
        if _plain(value) and (old is _MISSING or _plain(old)):
            self.module_writes[(m, name)] = value  # replay sets it again
            return
        if old is value:
            return  # `self.count += 1` on a tensor: an in-place op, recorded
        self.refuse(f"compile: the step assigns {type(m).__name__}.{name} a new "
                    f"{type(value).__name__}; replay would not do it again. Assign it before the step "
                    f"(and call step.reset() if it replaces a tensor the step uses)")

    # -- the step's own Python code --------------------------------------------------
    def frame(self, frame) -> None:
        code = frame.f_code
        g = frame.f_globals
        if code.co_name == "step" and code.co_argcount and code.co_varnames[0] == "self":
            opt = frame.f_locals.get("self")
            if isinstance(opt, Optimizer) and all(o is not opt for o in self.optimizers):
                self._optimizer(opt)
        if code in self.frames or not _is_user_code(code, g):
            return
        self.frames.add(code)
        where = g.get("__name__", "?")
        for name in code.co_names:  # (attribute names too: a global of that name is guarded needlessly, no harm)
            value = g.get(name, _MISSING)
            if value is not _MISSING:
                self._note(g, "item", name, value, f"global {name} of {where}")
        if code.co_freevars:  # a closure the step calls (a loss made by a factory): its variables too
            self._nested_closure(code, frame.f_locals)
        # attributes the code names, of the plain objects it starts with: self, arguments, closure values, globals
        names = code.co_names
        for obj in [*frame.f_locals.values(), *(g[n] for n in names if n in g)]:
            d = getattr(obj, "__dict__", None)
            if type(d) is dict and _user_object(obj):
                for name in names:
                    if name in d:
                        self._note(obj, "attr", name, d[name], f"{type(obj).__name__}.{name}")

    def _nested_closure(self, code, local_values: dict) -> None:
        """Guard the cells of the function running `code`: those of every function of that code whose cells
        hold these values (a frame does not say which function it runs)."""
        fns = [f for f in gc.get_referrers(code) if isinstance(f, types.FunctionType) and f.__closure__]
        fns = [f for f in fns if all(_cell_value(c) is local_values.get(n, _MISSING)
                                     for n, c in zip(code.co_freevars, f.__closure__))]
        for f in fns[:8]:  # (several alike, the same factory called twice: which one runs is unknown, so all)
            self.closure(f)

    def closure(self, fn) -> None:
        """The closure variables of the step function itself (of a bound method's function, a partial's)."""
        while isinstance(fn, types.MethodType) or hasattr(fn, "func"):
            fn = fn.__func__ if isinstance(fn, types.MethodType) else fn.func
        code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
        if code is None or not cells:
            return
        for name, cell in zip(code.co_freevars, cells):
            try:
                value = cell.cell_contents
            except ValueError:  # not assigned yet
                continue
            self._note(cell, "cell", name, value, f"closure variable {name}")

    def _optimizer(self, opt) -> None:
        self.optimizers.append(opt)
        self.hyper_start = self.hyperparameters()
        name = type(opt).__name__
        self._add(opt, "attr", "param_groups", opt.param_groups, "ids", f"{name}'s parameter groups")
        for i, group in enumerate(opt.param_groups):
            self._add(group, "item", "params", group["params"], "ids", f"the parameters of {name}'s group {i}")
            if "momentum" in group:  # on or off decides which state the update reads
                self._add(group, "item", "momentum", group["momentum"], "truth", f"momentum of {name}'s group {i}")

    def changed_by_step(self) -> str | None:
        """Why replay can't stand in for this call: the step itself changed Python state it read (a counter,
        a global it assigns, a scheduler stepped inside it), which replay would not do again."""
        written = {(id(m), name) for m, name in self.module_writes}
        while True:
            r = holds([r for r in self.reads if (id(r.obj), r.key) not in written])
            if r is None or not (r.how == "eq" and type(r.value) in (list, dict)):
                break
            r.how, r.value = "is", current(r)  # a list the step appends to (a log): its side effect, not its input
        if r is not None:
            return (f"compile: the step changes {r.label} (it was {_short(r.value)} when the step read it); replay "
                    f"runs none of the step's Python, so it would not change it again. Keep counters and such "
                    f"outside the compiled step, or pass them as arguments")
        if self.hyperparameters() != self.hyper_start:
            return ("compile: the step changes its optimizer's hyperparameters (an lr scheduler stepped inside "
                    "it?); replay would not. Step schedulers and set the lr outside the compiled step")
        return None

    def same_as(self, other: Watch) -> bool:
        """Did two recordings start from the same Python state?"""
        a, b = self.reads, other.reads
        return len(a) == len(b) and all(
            x.obj is y.obj and x.kind == y.kind and x.key == y.key and x.how == y.how
            and x.vtype is y.vtype and _same_value(x.value, y.value, x.how) for x, y in zip(a, b))

    def hyperparameters(self) -> list:
        """The optimizers' group values now (a step that changes them, a scheduler stepped inside it, can't replay)."""
        return [[{k: v for k, v in g.items() if k != "params"} for g in o.param_groups] for o in self.optimizers]

    def read_by_ops(self, ops) -> None:
        """A dict or list an op takes as a parameter is read when the op runs (a param group): replay sees its
        changes, so it is guarded by identity, not by value."""
        ids = set()
        for op in ops:
            for v in op.params.values():
                ids.add(id(getattr(v, "group", v)))  # (an optimizer's GroupRef holds its group)
        for r in self.reads:
            if r.how == "eq" and type(r.value) in (list, dict) and id(now := current(r)) in ids:
                r.how, r.value = "is", now

    def tensors(self, slots, live: str) -> None:
        """requires_grad of each tensor from before the step that an op read, and the grad mode."""
        for s in slots:
            if s.kind == live and s.owner is None:
                t = s.tensor
                self._add(t, "attr", "_requires_grad", t._requires_grad, "is",
                          f"requires_grad of a tensor of shape {s.shape}")
        self._add(engine._state, "attr", "grad_enabled", self.grad_mode, "is", "grad mode (no_grad() around the call)")


# ---------------------------------------------------------------------------
# the hooks, installed while any thread records
# ---------------------------------------------------------------------------

_watch_of: dict = {}  # thread id -> Watch
_get_ident = threading.get_ident
_object_getattribute = object.__getattribute__
_object_setattr = object.__setattr__


def _module_getattribute(self, name):
    value = _object_getattribute(self, name)
    w = _watch_of.get(_get_ident())
    if w is not None:
        w.module_read(self, name, value)
    return value


def _module_setattr(self, name, value):
    w = _watch_of.get(_get_ident())
    if w is not None:
        w.module_write(self, name, value)
    _object_setattr(self, name, value)


def _reseeding(name: str):
    """A Generator method that restarts its stream, refused inside a recorded step (replay would not)."""
    original = Generator.__dict__[name]

    def reseed(self, *args, **kwargs):
        w = _watch_of.get(_get_ident())
        if w is not None:
            w.refuse(f"compile: the step calls Generator.{name}(); replay would not, so the numbers drawn "
                     f"after it would differ. Seed generators outside the compiled step")
        return original(self, *args, **kwargs)

    return name, original, reseed


_GENERATOR_METHODS = [_reseeding(n) for n in ("manual_seed", "set_state")]  # (manual_seed of the default
# generator replaces engine._rng: the recorder notices that itself)


def install(w: Watch, ident: int) -> None:
    """Called under the recorder's install lock."""
    if not _watch_of:
        Module.__getattribute__ = _module_getattribute
        Module.__setattr__ = _module_setattr
        for name, _, reseed in _GENERATOR_METHODS:
            setattr(Generator, name, reseed)
    _watch_of[ident] = w


def uninstall(ident: int) -> None:
    if _watch_of.pop(ident, None) is not None and not _watch_of:
        del Module.__getattribute__
        del Module.__setattr__
        for name, original, _ in _GENERATOR_METHODS:
            setattr(Generator, name, original)


def trace_calls(w: Watch):
    """A sys.settrace function for this thread: each new Python frame is shown to w (chained with one there)."""
    previous = sys.gettrace()

    def tracer(frame, event, arg):
        if event == "call":
            w.frame(frame)
        return previous(frame, event, arg) if previous is not None else None

    return tracer, previous
