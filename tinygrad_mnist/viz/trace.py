"""Recording which module made which op: `with viz.trace_modules(model) as trace:`."""

from __future__ import annotations

import contextlib
from collections import Counter

from ..engine import Tensor


class ModuleTrace:
    """Module calls recorded by `trace_modules`: one entry per call, in call order.

    Each call is a dict with `name` (dotted module name, "#2" appended for a
    second call of the same module), `module` (the dotted name alone), `cls`,
    `depth` (0: called by the model itself), `parent` (the enclosing call's
    name or None), `inputs` and `outputs` (the Tensors passed in and returned).  It holds references to those
    tensors, so keep it only as long as the drawing needs.
    """

    def __init__(self):
        self.calls: list = []
        self._stack: list = []
        self._count: Counter = Counter()

    def __len__(self) -> int:
        return len(self.calls)

    def __repr__(self) -> str:
        return f"ModuleTrace({[c['name'] for c in self.calls]})"


def _tensors_in(obj) -> list:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors_in(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors_in(o)]
    return []


@contextlib.contextmanager
def trace_modules(model):
    """Record which tensors each submodule of `model` takes and returns during the block.

        with viz.trace_modules(model) as trace:
            loss = loss_fn(model(x), y)
        viz.draw_graph(loss, params=model, trace=trace)

    Every submodule (not the model itself, unless it has none) is called
    through a temporary subclass whose `__call__` records the call; the
    original classes are restored when the block ends, even on error.  nn.py
    is not changed and nothing about the computation is.
    """
    if not hasattr(model, "named_modules"):
        raise TypeError(f"trace_modules: expected a Module (anything with named_modules()), "
                        f"got {type(model).__name__}")
    trace = ModuleTrace()
    mods = list(model.named_modules())
    named = [(n, m) for n, m in mods if n] or [(n or type(m).__name__, m) for n, m in mods]
    names: dict = {}
    subclasses: dict = {}
    patched = []

    def make_subclass(cls):
        orig_call = cls.__call__

        def __call__(self, *args, **kwargs):
            name = names.get(id(self), type(self).__name__)
            trace._count[name] += 1
            n = trace._count[name]
            rec = {"name": name if n == 1 else f"{name}#{n}", "module": name, "cls": cls.__name__,
                   "depth": len(trace._stack), "parent": trace._stack[-1]["name"] if trace._stack else None,
                   "inputs": _tensors_in((args, kwargs)), "outputs": []}
            trace.calls.append(rec)
            trace._stack.append(rec)
            try:
                out = orig_call(self, *args, **kwargs)
            finally:
                trace._stack.pop()
            rec["outputs"] = _tensors_in(out)
            return out

        return type(cls.__name__, (cls,), {"__slots__": (), "__call__": __call__, "__module__": cls.__module__,
                                            "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})

    try:
        for name, m in named:
            if id(m) in names or not callable(m):
                continue
            cls = type(m)
            sub = subclasses.get(cls) or subclasses.setdefault(cls, make_subclass(cls))
            try:
                m.__class__ = sub
            except TypeError:  # an unusual class layout: leave this module untraced
                continue
            names[id(m)] = name
            patched.append((m, cls))
        yield trace
    finally:
        for m, cls in reversed(patched):
            m.__class__ = cls
