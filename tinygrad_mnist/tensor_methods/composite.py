"""`composite`: a function built of several ops (conv2d, cross_entropy, ...) shows as one box in viz."""

from __future__ import annotations

import functools

from ..engine import Tensor
from ..records import Call


def composite(name: str):
    """Decorator: the ops a call of the function records carry a `Call(name)` record.

    A function built from several ops (conv2d, cross_entropy, ...) can then be
    shown as one box: every op met walking back from the result to the
    tensors the caller passed gets the call appended to its `calls` (so nested
    composites list the innermost first).  Ops that use a tensor recorded
    before the call must receive it as an argument.  Costs nothing when
    nothing is recorded.
    """
    def decorate(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            out = fn(*args, **kwargs) if kwargs else fn(*args)  # an empty **kwargs call costs extra
            # a result with a grad_fn means ops were recorded (or an input came straight back)
            if type(out) is Tensor:
                if out._ctx is not None:
                    _tag_call(name, args, kwargs, [out])
            elif isinstance(out, tuple):
                outs = [o for o in out if isinstance(o, Tensor) and o._ctx is not None]
                if outs:
                    _tag_call(name, args, kwargs, outs)
            return out
        return call
    return decorate


def _tag_call(name: str, args, kwargs, outs: list) -> None:
    inputs = []  # the tensors the caller passed, in argument order
    for v in (*args, *kwargs.values()) if kwargs else args:
        if isinstance(v, Tensor):
            inputs.append(v)
        elif type(v) in (list, tuple):
            inputs += [x for x in v if isinstance(x, Tensor)]
    seen = set(inputs)  # the walk back stops at them
    call = Call(name, tuple(inputs), outs[0].data.shape)
    stack = outs
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        ctx = t._ctx
        ctx._calls = ctx.calls + (call,)
        for p in ctx.parents:
            if p._ctx is not None and p not in seen:
                stack.append(p)
