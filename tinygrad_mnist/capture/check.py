"""Checking a recording before it is replayed: the two recordings agree, and replay reproduces the eager call.

`_first_difference` compares the ops, slots and writes of calls 1 and 2; `_verify` replays the second
recording from copies of the state before call 2 and compares every result, write and re-bound
array with what eager left, bit for bit.
"""

from __future__ import annotations

import numpy as np

from .. import engine
from ..engine import Function, Tensor
from .program import _Program
from .record import CONST, INPUT, LIVE, CaptureError, _get_data, _Recorder

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


def _assumptions(rec: _Recorder) -> tuple:
    """What a recording assumed about the start of a call: which parameters had no .grad, whose .grad it read
    (the Python state it read is compared by `same_start`)."""
    return (tuple(id(p) for p in rec.need_no_grad),
            tuple(id(s.owner) for s in rec.slots if s.kind == LIVE and s.owner is not None))


def same_start(r1: _Recorder, r2: _Recorder) -> bool:
    """Did two recordings start from the same state: .grads there or not, the same Python values?"""
    return _assumptions(r1) == _assumptions(r2) and r1.watch.same_as(r2.watch)


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
    # the Generators the step draws from (generator= of its random ops) replay from their state now, too
    streams = {id(g): g._np for op in first.ops if (g := op.params.get("generator")) is not None}
    states = [(s, s.bit_generator.state) for s in streams.values() if s is not rng]
    return [None if a is None else np.copy(a, order="K") for a in arrays], rng, rng.bit_generator.state, states


def _verify(prog: _Program, rec: _Recorder, before, result) -> None:
    """Replay the second recording from the state before the second call; it must match that eager call bit for bit."""
    copies, rng, state, streams = before
    if len(copies) != len(prog.sources) or any(a is None for a in copies):
        raise CaptureError("compile: the state read by the step changed between the first two calls")
    after_rng, after_state = engine._rng, engine._rng.bit_generator.state
    after_streams = [(s, s.bit_generator.state) for s, _ in streams]
    engine._rng = rng
    rng.bit_generator.state = state
    for s, st in streams:
        s.bit_generator.state = st
    try:
        out, data_w, grad_w = prog.body(*copies)
    finally:
        engine._rng = after_rng
        after_rng.bit_generator.state = after_state
        for s, st in after_streams:
            s.bit_generator.state = st
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
