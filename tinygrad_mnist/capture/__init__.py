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

The package: record.py (the tracer and one recording), program.py (a recording as generated Python),
check.py (two recordings agree, replay equals eager), and here the user's object, `Compiled`.
"""

from __future__ import annotations

import functools
import threading
import warnings

import numpy as np

from .. import engine
from ..engine import Tensor
from .check import _first_difference, _snapshot, _verify, same_start
from .guards import _Guard, holds
from .program import _hashable, _Program
from .record import CaptureError, _active, _add_input, _get_ident, _install, _Miss, _Recorder, _Stale, _uninstall

__all__ = ["compile", "Compiled", "CaptureError"]


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
    `replays`, `recordings` (completed recordings), `rerecords` (recordings started because Python
    state a recording read had changed). `enabled = False` runs every call eagerly; `refused` says
    why a step that fell back runs eagerly (None while it may replay).
    """

    max_programs = 16  # recordings kept (and first recordings waiting for their second): oldest dropped
    max_rerecords = 8  # Python state that keeps changing: record this often, then run eagerly (or raise)

    def __init__(self, fn, enabled: bool = True, fallback: bool = True):
        if not callable(fn):
            raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.enabled = enabled
        self.fallback = fallback  # a refused recording: run eagerly with one warning (False: raise CaptureError)
        self.refused: str | None = None
        self._programs: dict[tuple, list[_Program]] = {}  # key -> recordings, each with its own guard values
        self._last: _Program | None = None  # tried first: the usual case is the same signature as last time
        self._lock = threading.Lock()
        # key -> [(first recording, the objects its key names by id)]: one per starting state (train or eval...)
        self._first: dict[tuple, list] = {}
        self.calls = self.eager_calls = self.replays = self.recordings = self.rerecords = 0

    def __get__(self, obj, cls=None):
        """@compile on a method: the instance is the first argument (keyed by identity, like any object)."""
        return self if obj is None else functools.partial(self, obj)

    def reset(self) -> None:
        """Forget every recording, and a refusal: the next calls record afresh."""
        self._programs.clear()
        self._first.clear()
        self._last = None
        self.refused = None
        self.rerecords = 0

    @property
    def source(self) -> str | None:
        """The generated Python of the recording used last (each line one op's forward), to read."""
        return None if self._last is None else self._last.source

    @property
    def guards(self) -> list[str] | None:
        """What the recording used last depends on from Python, checked before each replay (a change
        records again): module flags and attributes, globals, closure variables, requires_grad, ..."""
        return None if self._last is None else [r.describe() for r in self._last.reads]

    @property
    def programs(self) -> int:
        """How many replayable recordings there are (one per input signature and guarded Python state)."""
        return sum(len(v) for v in self._programs.values())

    def __repr__(self) -> str:
        return (f"<compiled {getattr(self.fn, '__name__', 'step')}: {self.replays} replays, "
                f"{self.eager_calls} eager calls, {self.programs} recordings>")

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if not self.enabled or self.refused is not None or (
                engine._tracer is not None and _active.get(_get_ident()) is not None):
            self.eager_calls += 1  # off, given up, or inside another capture (which records what this runs)
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
            except (_Miss, _Guard):
                pass
            except _Stale:
                self._drop(prog)
        key = _signature(args, kwargs)
        changed = None  # a recording of this signature whose Python state no longer holds
        for prog in list(self._programs.get(key, ())):
            try:
                out = prog.run(args, kwargs)
                self.replays += 1
                self._last = prog
                return out
            except _Guard:
                changed = prog
            except _Miss:
                pass
            except _Stale:
                self._drop(prog)
        return self._record(key, args, kwargs, changed)

    def _drop(self, prog: _Program) -> None:
        self._programs = {k: kept for k, ps in self._programs.items() if (kept := [p for p in ps if p is not prog])}
        if self._last is prog:
            self._last = None

    def _give_up(self, reason: str) -> None:
        """Run eagerly from now on, with one warning (fallback), or raise (strict)."""
        if not self.fallback:
            raise CaptureError(reason)
        self.refused = reason
        self._programs.clear()
        self._first.clear()
        self._last = None
        warnings.warn(f"{reason}\n(compile: {getattr(self.fn, '__name__', 'step')} now runs eagerly; fix the step "
                      f"as said and call .reset() to record it again, or compile(fn, fallback=False) to get this "
                      f"as a CaptureError)", RuntimeWarning, stacklevel=5)  # (the caller of the step)

    def _record(self, key, args, kwargs, changed=None):
        if changed is not None or key in self._first:
            if self.rerecords >= self.max_rerecords:
                reads = changed.reads if changed is not None else self._first[key][0][0].watch.reads
                what = holds(reads)
                self._give_up(
                    f"compile: {getattr(self.fn, '__name__', 'step')} was recorded {self.rerecords} more times "
                    f"because Python state it reads keeps changing"
                    + (f" ({what.describe()} no more)" if what is not None else "")
                    + ". Pass a value that changes as a step argument, or keep it where an op reads it when it "
                      "runs (an optimizer's param group)")
                self.eager_calls += 1
                return self.fn(*args, **kwargs)
            self.rerecords += changed is not None
        self.eager_calls += 1
        firsts = self._first.get(key, [])
        befores = [_snapshot(f[0], args, kwargs) for f in firsts]
        rec = _Recorder(getattr(self.fn, "__name__", "step"), strict=not self.fallback)
        rec.watch.grad_mode = engine.is_grad_enabled()
        rec.watch.closure(self.fn)
        _install(rec)
        try:
            try:
                for pos, v in enumerate(args):
                    _add_input(rec, v, pos)
                for name, v in kwargs.items():
                    _add_input(rec, v, name)
            except CaptureError as e:
                rec.refuse(str(e))
            result = self.fn(*args, **kwargs)
        finally:
            _uninstall(rec)
        try:
            if rec.refused is not None:
                raise CaptureError(rec.refused)
            rec.finish(result)
            return self._keep(rec, key, firsts, befores, args, kwargs, result)
        except CaptureError as e:
            self._give_up(str(e))  # (strict: raises it)
            return result

    def _keep(self, rec, key, firsts, befores, args, kwargs, result):
        """Pair this recording with a first one that started from the same state, or keep it as a first one."""
        match = next((k for k, f in enumerate(firsts) if same_start(f[0], rec)), None)
        if match is None:
            # the first recording of this state (a .grad there or not, other Python values): the next call
            # that starts like this one is compared with it
            if firsts:
                self.rerecords += 1
            firsts.insert(0, (rec, [v for v in (*args, *kwargs.values()) if not _hashable(v)]))
            del firsts[4:]
            self._first[key] = firsts
            _trim(self._first, self.max_programs)
            return result
        first, before = firsts.pop(match), befores[match]
        if not firsts:
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
        # the arrays of call 2
        prog.rec = rec.keep = rec.arrays = rec.slot_of = rec.created = rec.origin = rec.first_data = None
        self._programs.setdefault(key, []).insert(0, prog)
        del self._programs[key][self.max_programs:]
        self._last = prog
        _trim(self._programs, self.max_programs)
        self.recordings += 1
        return result


def _trim(d: dict, n: int) -> None:
    """Keep the n newest entries: a step called with an ever-changing Python value (a float lr as an
    argument) would otherwise keep a recording, with its arrays, for every value."""
    while len(d) > n:
        del d[next(iter(d))]


def compile(fn=None, *, enabled: bool = True, fallback: bool = True):  # noqa: A001  (torch.compile's name)
    """Record a training step on its first two calls and replay it from then on (see the module docstring).

    `step = compile(train_step)` or `@compile`; `compile(train_step, enabled=False)` never records.
    A step that can't be replayed runs eagerly with one warning saying why; `fallback=False` raises a
    CaptureError instead.
    """
    if fn is None:
        return lambda f: Compiled(f, enabled, fallback)
    return Compiled(fn, enabled, fallback)
