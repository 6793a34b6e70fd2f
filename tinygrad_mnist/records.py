"""What the graph keeps and shows besides live tensors: the core's helpers for release and viz.

- `TensorRecord`: a backward without retain_graph releases each op after its
  gradient; the op keeps its edges, but each input becomes a record (shape,
  dtype, name, grad_fn), never the data.
- `Call`: a composite function (conv2d, cross_entropy, ...; see
  tensor_methods/composite.py) leaves one on each op it recorded, so viz can
  draw the call as one box.
- `Introspection`: what viz reads off an op (`inputs`, `saved_arrays()`,
  `calls`), the base class of engine.Function; `_tag_backward_ops` marks the
  ops a create_graph backward recorded (`backward_of`).
The core (engine.py) imports this module; it imports nothing of the package.
"""

from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .engine import Function, Tensor


class TensorRecord:
    """What a released graph keeps of a tensor it no longer holds.

    Shape, dtype, name and the edge to the op that made it (`grad_fn`): enough
    to draw the graph and to backpropagate again through ops that saved
    nothing, never the data.  One record per tensor, so two consumers of one
    tensor share it.
    """

    __slots__ = ("shape", "dtype", "name", "_ctx", "_tensor")

    def __init__(self, t: Tensor):
        d = t.data
        self.shape = d.shape
        self.dtype = d.dtype
        try:
            self.name = t._name
        except AttributeError:  # a tensor made without the usual constructors
            self.name = None
        self._ctx = t._ctx
        # a tensor that asked for retain_grad() keeps showing its .grad while it lives
        self._tensor = weakref.ref(t) if t._retain else None
        t._record = self  # one record per tensor: later consumers find it there

    @property
    def grad_fn(self) -> Function | None:
        return self._ctx

    @property
    def _requires_grad(self) -> bool:
        return self._ctx is not None  # records stand for non-leaves and constants only

    requires_grad = _requires_grad

    @property
    def _retain(self) -> bool:
        return self._tensor is not None

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad(self):
        t = None if self._tensor is None else self._tensor()
        return None if t is None else t.grad

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def _record(self) -> TensorRecord:
        return self  # a record stands for itself

    def __repr__(self) -> str:
        extra = f", grad_fn={self._ctx.name}" if self._ctx is not None else ""
        name = f", name={self.name!r}" if self.name is not None else ""
        return f"TensorRecord(shape={self.shape}, dtype={self.dtype}{extra}{name})"


def _record_of(t):
    """The node that stands for `t` in a released graph: itself for a leaf that requires grad
    (a parameter, alive anyway), else its one TensorRecord (made once, kept on the tensor)."""
    if t._ctx is None and t._requires_grad:
        return t
    rec = getattr(t, "_record", None)  # None also for a tensor made without the usual constructors
    return TensorRecord(t) if rec is None else rec


def node_of(t):
    """What stands for `t` in the graph walk() returns: its TensorRecord once a backward released the ops
    that read it, else `t` itself (lets viz match a tensor the user still holds, like the input batch)."""
    rec = getattr(t, "_record", None)
    return t if rec is None else rec


class Call:
    """One call of a composite function (conv2d, cross_entropy, ...): see `composite`."""

    __slots__ = ("name", "id", "inputs", "output_shape", "_released")

    def __init__(self, name: str, inputs: tuple, output_shape: tuple):
        self.name = name
        self.id = next(_call_ids)
        self.inputs = inputs  # the Tensors the caller passed; records after a release
        self.output_shape = output_shape
        self._released = False

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self.inputs = tuple([_record_of(t) for t in self.inputs])

    def __repr__(self) -> str:
        return f"Call({self.name!r}, id={self.id}, output_shape={self.output_shape})"


_call_ids = itertools.count(1)


class Introspection:
    """What viz reads off an op: the base class of engine.Function."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}{' (released)' if self.released else ''}>"

    @property
    def calls(self) -> tuple:
        """The composite calls this op was made in, innermost first (see `composite`).

        An op whose class names a `call_name` is that call by itself: its record
        is made here, on first look, so the hot path never pays for it.
        """
        if self.call_name is not None and not any(c.name == self.call_name for c in self._calls[:1]):
            self._calls = (Call(self.call_name, tuple(self.parents), self.call_output_shape()),) + self._calls
        return self._calls

    def call_output_shape(self) -> tuple | None:
        """The output shape for a `call_name` op's record (ops that set call_name override this)."""
        return None

    @property
    def inputs(self) -> tuple:
        """The op's inputs in argument order: live Tensors, or TensorRecords once released."""
        return self.parents

    def saved_arrays(self) -> list:
        """The ndarrays this op keeps alive for its backward ([] once released)."""
        if self.released:
            return []
        read = self.saves_inputs
        out = [p.data for i, p in enumerate(self.parents) if read is True or i in read] if read else []
        if self.saves_output:
            t = self._out()
            if t is not None:
                out.append(t.data)
        for v in self.__dict__.values():
            if type(v) is np.ndarray:
                out.append(v)
            elif type(v) in (tuple, list):
                out += [x for x in v if type(x) is np.ndarray]
        return out


def _tag_backward_ops(ctx, t, g, parents, grads, stop) -> None:
    """Set `backward_of = ctx` on the ops ctx's backward just recorded (create_graph=True).

    They lie between the gradients now pending for ctx's inputs and what the
    backward read: the forward tensors (t, its inputs), the incoming gradient g
    and ops recorded earlier (already tagged) or before the sweep (seeds).
    """
    known = stop | {t, g, *parents}
    stack = [grads[p] for p in parents if p in grads]
    while stack:
        u = stack.pop()
        f = u._ctx
        if f is None or u in known or f.backward_of is not None or type(u) is TensorRecord:
            continue
        known.add(u)
        f.backward_of = ctx
        stack.extend(f.parents)
