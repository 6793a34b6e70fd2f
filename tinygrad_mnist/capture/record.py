"""Recording one eager call of a step: the tracer, the escape checks, and the list of ops with their arrays.

While a thread captures, `engine._tracer` hands every op (and every new leaf) to that thread's
`_Recorder`, `Tensor.data`/`.grad` become checking properties, and the methods that hand a value to
Python (`.item()`, `float()`, `.numpy()`, ...) refuse tensors computed inside the step: replay would
never run that Python again.  The recorder gives every array a slot (an input, a live tensor from
before the step, a baked 0-d constant, or an op's result) and notes each op with the slots it read.
"""

from __future__ import annotations

import functools
import sys
import threading

import numpy as np

from .. import engine
from ..engine import Tensor
from . import guards


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
            try:
                rec.op(ctx, inputs, params, out)
            except CaptureError as e:
                rec.refuse(str(e))

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
                rec.refuse(
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
                rec.refuse(
                    f"compile: user code assigned .data of a tensor of shape {old.shape} inside the compiled step; "
                    f"replay would not do it again. Write with tensor ops instead (under no_grad(): "
                    f"`p -= lr * p.grad`, `p.copy_(v)`)")
            elif t not in rec.created:
                rec.rebound(t, old)
    _set_data(t, arr)


_GRAD = Tensor.__dict__["grad"]


def _grad_set(t, value):
    rec = _active.get(_get_ident())
    if rec is not None and value is None and t not in rec.grad_at_sight:
        rec.grad_cleared.add(t)  # the step clears it before using t: no assumption about .grad at the start
        if not rec.ops:
            rec.cleared_first.append(t)  # (zero_grad() before any op: a replay that raises clears it too)
    _GRAD.fset(t, value)


def _escape(name: str, call: str):
    """A Tensor method that hands a value to Python, refused on tensors computed inside a capture."""
    original = Tensor.__dict__[name]

    @functools.wraps(original)
    def guarded(self, *args, **kwargs):
        rec = _active.get(_get_ident())
        if rec is not None and self in rec.created:
            rec.refuse(
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
    ident = _get_ident()
    with _install_lock:
        if not _active:  # the first capture in the process right now: swap in the checks
            Tensor.data = property(_data_get, _data_set)
            Tensor.grad = property(_GRAD.fget, _grad_set, doc=_GRAD.__doc__)
            for name, _, guarded in _GUARDS:
                setattr(Tensor, name, guarded)
            engine._tracer = _Dispatch()
        _active[ident] = rec
        guards.install(rec.watch, ident)
    rec.tracer, rec.previous_trace = guards.trace_calls(rec.watch)
    sys.settrace(rec.tracer)


def _uninstall(rec: _Recorder) -> None:
    sys.settrace(rec.previous_trace)
    ident = _get_ident()
    with _install_lock:
        _active.pop(ident, None)
        guards.uninstall(ident)
        if not _active:  # eager code runs at full speed again
            engine._tracer = None
            for name, original, _ in _GUARDS:
                setattr(Tensor, name, original)
            Tensor.data = _DATA
            Tensor.grad = _GRAD


def _detach(rec: _Recorder) -> None:
    """Stop reporting to rec in this thread (it gave up); the hooks go when its call ends (_uninstall)."""
    ident = _get_ident()
    with _install_lock:
        if _active.get(ident) is rec:
            del _active[ident]
        guards.uninstall(ident)


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

    def __init__(self, name: str, strict: bool = True):
        self.name = name
        self.strict = strict  # False: a refusal gives the recording up and lets the call go on eagerly
        self.refused: str | None = None  # why it was given up
        self.watch = guards.Watch(self.refuse)
        self.slots: list[_Slot] = []
        self.slot_of: dict[int, int] = {}  # id(array) -> its newest slot
        self.keep: list = []  # every array seen: ids stay unique while we key by them
        self.arrays: list = []  # slot index -> its array as recorded (which buffers a replay may reuse)
        self.ops: list[_Op] = []
        self.created: set = set()  # tensors made during the capture (op results and new leaves)
        self.first_data: dict = {}  # pre-existing tensor -> its array when the step started (if re-bound)
        self.origin: dict[int, Tensor] = {}  # id(array) -> the pre-existing tensor that holds it
        self.live_of: dict = {}  # pre-existing tensor -> its LIVE slot
        self.params: list[Tensor] = []  # pre-existing leaves that require grad, in first-seen order
        self.grad_at_sight: dict = {}  # parameter -> its ._grad when first seen
        self.grad_cleared: set = set()  # parameters whose .grad the step set to None before first seeing them
        self.cleared_first: list = []  # those of them cleared before the first op
        self.outputs = None  # the returned structure, with slot numbers for tensors
        self.rng_mark = _rng_mark()
        self.rng_at_start = engine._rng

    def refuse(self, message: str) -> None:
        """This step can't be replayed: raise (strict), or stop recording and let the eager call finish."""
        if self.strict:
            raise CaptureError(message)
        if self.refused is None:
            self.refused = message
            _detach(self)

    # -- slots ------------------------------------------------------------------
    def _slot(self, kind, arr, **kw) -> int:
        i = len(self.slots)
        self.slots.append(_Slot(kind, i, arr, **kw))
        self.slot_of[id(arr)] = i
        self.keep.append(arr)
        self.arrays.append(arr)
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
        if _data_dependent_shape(ctx, inputs, params):
            raise CaptureError(
                f"compile: {type(ctx).__name__} gives a result whose shape depends on the values (a boolean mask "
                f"index x[mask], nonzero()); replay needs the same shapes every call. Use masks of fixed shape "
                f"(`(x * mask).sum()`, where()) or run the step eagerly")
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
        if engine._rng is not self.rng_at_start:
            raise CaptureError("compile: the step reseeds the library's generator (manual_seed inside the step); "
                               "replay would not, so later random numbers would differ. Seed outside the step")
        self.watch.read_by_ops(self.ops)
        why = self.watch.changed_by_step()
        if why is not None:
            raise CaptureError(why)
        self.watch.tensors(self.slots, LIVE)

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


def _data_dependent_shape(ctx, inputs, params) -> bool:
    """Indexing with a boolean mask, or nonzero(): how many elements come out depends on the data."""
    name = type(ctx).__name__
    if name == "GetItem":
        return any(_get_data(t).dtype == np.bool_ for t in inputs[1:]) or any(
            isinstance(i, np.ndarray) and i.dtype == np.bool_
            for i in (params.get("index") if isinstance(params.get("index"), tuple) else (params.get("index"),)))
    return name == "Detached" and getattr(params.get("fn"), "__name__", "") == "_nonzero"


def _rng_mark():
    g = engine._rng
    return id(g), g.bit_generator.state


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


def _add_input(rec: _Recorder, v, where) -> None:
    if isinstance(v, np.ndarray):
        rec.add_input(v, where)
    elif isinstance(v, Tensor):
        if v._requires_grad:
            raise CaptureError(f"compile: step argument {where!r} is a tensor that requires grad; replay would not "
                               f"leave its .grad. Pass data (arrays or tensors without requires_grad)")
        rec.add_input(_get_data(v), where)
        rec.created.add(v)  # its values are the step's data: reading them in user code is an escape too
