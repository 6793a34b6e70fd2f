"""The core: a Tensor wraps a NumPy array and records the op that made it.

Every op is a `Function`: `forward` computes on ndarrays, `backward` returns the
gradients of its inputs written with Tensor ops, so a gradient can itself be
recorded (create_graph=True) and differentiated again.  `backward()` is one
topological sort (`walk`) plus one loop over it in reverse (`_gradients`).

Read top to bottom: the Tensor's state, `Function.apply`, `walk`, the backward
sweep, `grad`, grad mode.  Everything else lives beside this file:
  tensor_methods/  the PyTorch surface (x + y, x.sum(), x.reshape(), ...),
                   attached to Tensor once, by the package's __init__;
  ops/             the primitives by family: a Function each, forward and gradient rule;
  inplace.py       writes into a tensor (x[i] = v, add_) and their autograd rules;
  records.py       what a released graph keeps of a tensor, and composite calls;
  capture/         tinygrad_mnist.compile: records a step through `_tracer`, replays it.
This module imports none of them at load (see "late binding" at the end), and
knows nothing of layers, data or pictures.
"""

from __future__ import annotations

import functools
import threading
import weakref

import numpy as np

from .records import Introspection, TensorRecord, _record_of, _tag_backward_ops

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

# The recorder of tinygrad_mnist.compile while it captures a step, else None: every op (Function.apply) and
# every new leaf tensor is reported to it, so a step can be replayed without the engine.
_tracer = None
_clock = 0  # in-place writes so far (inplace.py); while 0, recording and backward skip all version bookkeeping
_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator behind randn/rand/uniform/dropout and nn initializers."""
    global _rng
    _rng = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    """The generator used by the library (reseeded by manual_seed)."""
    return _rng


# ---------------------------------------------------------------------------
# Tensor: the data, the gradient, the op that made it
# ---------------------------------------------------------------------------


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    Here: its state, the constructors and `backward`.  Its PyTorch methods (arithmetic, reductions,
    shape, nn-style, in-place) are attached by tensor_methods/, grouped by kind.
    """

    # _record: what stands for this tensor in a released graph (see TensorRecord), made on release;
    # _name: a label given by the user (see `name`)
    __slots__ = ("data", "_grad", "_requires_grad", "_ctx", "_retain", "_record", "_name", "__weakref__")
    __hash__ = object.__hash__  # == is elementwise, identity stays hashable
    _copies_data = True  # Tensor(ndarray) copies like torch.tensor; nn.Parameter shares like torch's

    def __init__(self, data, requires_grad: bool = False, dtype=None, device=None):
        if device is not None:
            _check_device(device, "Tensor")
        if type(requires_grad) is int and isinstance(data, int):
            raise TypeError(f"Tensor({data}, {requires_grad}, ...) looks like PyTorch's legacy Tensor(*sizes); "
                            f"write tinygrad_mnist.zeros({data}, {requires_grad}) or empty(...) for a shape")
        self.data = _as_array(data, dtype, copy=self._copies_data)  # a copy, as torch.tensor (from_numpy shares)
        self._grad = None
        self._ctx = None
        self._retain = False
        self._record = None
        self._name = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True
        if _tracer is not None:
            _tracer.leaf(self)

    @staticmethod
    def _const(arr: np.ndarray) -> Tensor:
        """Wrap an ndarray that is already in its final dtype (no checks)."""
        t = Tensor.__new__(Tensor)
        t.data = arr if type(arr) is np.ndarray else np.asarray(arr)
        t._grad = None
        t._ctx = None
        t._retain = False
        t._record = None
        t._name = None
        t._requires_grad = False
        if _tracer is not None:
            _tracer.leaf(t)
        return t

    @classmethod
    def _leaf(cls, arr: np.ndarray, requires_grad: bool = False, device=None) -> Tensor:
        """A new leaf around a freshly made array (the factories: no second copy)."""
        if device is not None:
            _check_device(device, "factory")
        t = cls.__new__(cls)  # every slot set, as in _const
        t.data, t._grad, t._ctx, t._retain, t._requires_grad = arr, None, None, False, False
        t._record = t._name = None
        if requires_grad:
            t.requires_grad = True
        if _tracer is not None:
            _tracer.leaf(t)
        return t

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag and not _is_float(self.data.dtype):
            raise TypeError(f"only floating-point tensors can require grad; this one is {self.data.dtype} "
                            f"(use dtype=float32 or cast with .float())")
        if not flag and self._ctx is not None:
            raise RuntimeError("requires_grad can only be switched off on a leaf tensor; use .detach()")
        self._requires_grad = bool(flag)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = flag
        return self

    @property
    def grad(self) -> Tensor | None:
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            value = value if isinstance(value, Tensor) else Tensor(value, dtype=self.data.dtype)
            if value.shape != self.shape:
                raise ValueError(f"grad: assigned gradient has shape {value.shape}, "
                                 f"tensor has shape {self.shape}")
        self._grad = value

    @property
    def grad_fn(self) -> Function | None:
        return self._ctx

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def name(self) -> str | None:
        """A label for this tensor (shown by repr and viz); None unless set."""
        try:
            return self._name
        except AttributeError:  # a tensor made without the usual constructors
            return None

    @name.setter
    def name(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"name must be a str or None, got {type(value).__name__}")
        self._name = value

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._const(self.data)

    def retain_grad(self) -> Tensor:
        """Keep .grad on this non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        self._retain = True
        return self

    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into .grad of every leaf that requires grad."""
        if retain_graph is None:
            retain_graph = create_graph
        _backprop([self], [gradient], retain_graph, create_graph)


def _as_array(data, dtype=None, copy: bool = True) -> np.ndarray:
    """Convert user data to an ndarray with the library's dtype rules.

    Arrays and tensors are copied (as torch.tensor does) unless `copy` is False;
    from_numpy is the way to share an array's memory.
    """
    if isinstance(data, (Tensor, np.ndarray)):
        arr = data.data if isinstance(data, Tensor) else data  # float64 stays float64
        if copy and (dtype is None or np.dtype(dtype) == arr.dtype):
            arr = arr.copy()  # (a cast below copies anyway)
    elif isinstance(data, np.generic):
        arr = np.asarray(data)
    else:
        arr = np.asarray(data)
        if arr.dtype == float64:  # Python floats default to float32
            arr = arr.astype(float32)
        elif arr.dtype.kind not in "biuf":
            raise TypeError(f"Tensor: can't make a tensor from {type(data).__name__} "
                            f"(numpy dtype {arr.dtype}); expected numbers")
    if dtype is not None:
        arr = _cast_checked(arr, np.dtype(dtype))
    return arr


def _cast_checked(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if arr.dtype == dtype:
        return arr
    if arr.dtype.kind == "f" and dtype.kind in "biu" and arr.size and not np.all(np.isfinite(arr)
                                                                                 & (arr == np.trunc(arr))):
        bad = arr[~(np.isfinite(arr) & (arr == np.trunc(arr)))].ravel()[0]
        raise TypeError(f"Tensor: casting {arr.dtype} data to {dtype} would silently truncate "
                        f"(found {bad!r}); round the values first or keep a float dtype")
    return arr.astype(dtype)


def _is_float(dt: np.dtype) -> bool:
    return dt.kind == "f"


def _check_device(dev, op: str) -> str:
    """None and "cpu" pass; any other device is a clear error (this engine computes with NumPy on the CPU)."""
    if dev is None:
        return "cpu"
    name = str(dev)
    if name in ("cpu", "cpu:0"):
        return "cpu"
    raise RuntimeError(f"{op}: device {name!r} is not available: this engine runs on the CPU (NumPy) only; "
                       f"use device='cpu' or leave the device out")


# ---------------------------------------------------------------------------
# Function: the base of every primitive op
# ---------------------------------------------------------------------------


class Function(Introspection):
    """One node of the graph: an op and the edges to its inputs.

    Subclasses implement `forward(*arrays, **params) -> ndarray` and
    `backward(grad: Tensor) -> tuple[Tensor | None, ...]` (one entry per
    input, None where an input needs no gradient).  `self.parents` holds the
    input Tensors in argument order (also readable as `inputs`).

    What an op may rely on during `backward`:
    - grad mode (`is_grad_enabled()`) equals the sweep's `create_graph`: the
      Tensor ops a backward runs are recorded exactly when the gradient itself
      must be differentiable, so a backward may pick a cheaper array path when
      it is off (see CrossEntropy);
    - `self.parents` are the live input Tensors (the engine sums each returned
      gradient down to its input's shape and casts it to its dtype);
    - `saves_output = True` keeps a weak reference to the result, read with
      `self.output()`: ops whose gradient is cheapest in terms of their result
      (exp, sigmoid, ...) need not keep their input alive;
    - `saves_inputs = False` declares that backward reads only the inputs'
      shapes, dtypes and `requires_grad`, never their values (add, reshape,
      sum, ...); such an op can be backpropagated again after a release;
    - `saved` names the attributes holding arrays the op stored for its
      backward (a mask, indices); release sets them to None.

    `release()` runs right after the op's backward in a sweep without
    `retain_graph`: it frees what was saved and keeps the structure (edges to
    the inputs as `TensorRecord`s; leaves that require grad stay themselves).
    A later backward through an op that saved values raises; through one that
    saved nothing it works, as in PyTorch.

    Introspection (used by viz): `name`, `released`, `backward_of` (the forward
    op whose backward recorded this op, under create_graph=True) and, from the
    base class (records.py), `inputs`, `saved_arrays()` and `calls`.
    """

    saves_output = False
    saves_inputs = True  # backward reads its inputs' values (True, or a tuple of input indices)
    parents: tuple = ()
    call_name: str | None = None  # a primitive that is by itself a whole user call (Linear is `linear`)
    _calls: tuple = ()
    backward_of: Function | None = None
    saved: tuple = ()
    released = False
    _t = 0  # the in-place clock when this op was recorded (stamped only once the clock runs)

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def output(self) -> Tensor:
        # a weak reference: out -> ctx -> out would be a cycle.  While a
        # backward pass runs, every node of the graph is alive.
        return self._out()

    @classmethod
    def apply(cls, *inputs: Tensor, **params) -> Tensor:
        ctx = cls()
        try:
            # record only if an input requires grad and grad mode is on in this thread
            # (a call with **params costs several times a plain one, even when params is empty)
            if len(inputs) == 2:  # the common cases, spelled out: this is the hottest path
                a, b = inputs
                data = ctx.forward(a.data, b.data, **params) if params else ctx.forward(a.data, b.data)
                record = (a._requires_grad or b._requires_grad) and (not _grad_off or _state.grad_enabled)
            elif len(inputs) == 1:
                x = inputs[0]
                data = ctx.forward(x.data, **params) if params else ctx.forward(x.data)
                record = x._requires_grad and (not _grad_off or _state.grad_enabled)
            else:
                arrays = [t.data for t in inputs]
                data = ctx.forward(*arrays, **params) if params else ctx.forward(*arrays)
                record = any([t._requires_grad for t in inputs]) and (not _grad_off or _state.grad_enabled)
        except (ValueError, IndexError) as e:
            raise _op_error(cls, inputs, e) from None
        out = Tensor.__new__(Tensor)
        out.data = data if type(data) is np.ndarray else _to_array(cls, data)
        out._grad = None
        out._retain = False
        out._record = None
        out._name = None
        if record:
            ctx.parents = inputs
            if _clock:
                ctx._t = _clock
            if cls.saves_output:
                ctx._out = weakref.ref(out)
            out._ctx = ctx
            out._requires_grad = True
        else:
            out._ctx = None
            out._requires_grad = False
        if _tracer is not None:
            _tracer.op(ctx, inputs, params, out)
        return out

    def release(self) -> None:
        """Free what was saved for backward, keep the structure (see the class docstring)."""
        if self.saved:
            for k in self.saved:  # masks, indices, columns
                setattr(self, k, None)
        # edges stay, data goes: each input becomes its record (a parameter stays itself).  The
        # output's weak reference (saves_output) holds no data: it needs no clearing.
        ps = self.parents
        try:
            n = len(ps)
            if n == 2:  # the common cases spelled out: this runs once per op in every backward
                a, b = ps
                self.parents = (a if a._ctx is None and a._requires_grad else a._record or TensorRecord(a),
                                b if b._ctx is None and b._requires_grad else b._record or TensorRecord(b))
            elif n == 1:
                a = ps[0]
                self.parents = (a if a._ctx is None and a._requires_grad else a._record or TensorRecord(a),)
            else:
                self.parents = tuple([p if p._ctx is None and p._requires_grad else p._record or TensorRecord(p)
                                      for p in ps])
        except AttributeError:  # an input made without the usual constructors (no _record slot set)
            self.parents = tuple([_record_of(p) for p in ps])
        self.released = True
        if self._calls:  # records made later (call_name) take the released inputs anyway
            for c in self._calls:
                c._release()
        if _clock:  # in-place bookkeeping (inplace.py) may hold the tensors as recorded
            self.__dict__.pop("_raw_parents", None)
            self.__dict__.pop("_view", None)


def _to_array(cls, data) -> np.ndarray:
    if isinstance(data, Tensor):  # an input's .data holds a Tensor (`t.data = <Tensor>`): stop here, loudly
        raise TypeError(f"{cls.__name__.lower()}: an input's .data is a Tensor, but .data holds the NumPy array: "
                        f"assign t.data = x.numpy(), or update in place (t.data -= lr * t.grad)")
    return np.asarray(data)


def _op_error(cls, inputs, e):
    shapes = " and ".join(str(tuple(t.shape)) for t in inputs)
    kind = IndexError if isinstance(e, IndexError) and not isinstance(e, ValueError) else ValueError
    return kind(f"{cls.__name__.lower()}: {e} (input shape{'s' if len(inputs) > 1 else ''} {shapes})")


# ---------------------------------------------------------------------------
# the backward pass
# ---------------------------------------------------------------------------


def walk(roots, *, constants: bool = True) -> list:
    """Every node reachable from `roots` through `grad_fn.inputs`, parents before children.

    Nodes are Tensors, or TensorRecords where a backward released the graph.
    Inputs are visited in argument order (depth first, iterative: no recursion
    limit).  `constants=False` keeps only nodes that require grad: the order
    the backward sweep runs in reverse.
    """
    if not isinstance(roots, (list, tuple)):
        roots = [roots]
    # sets and dicts of nodes hash by identity (Tensor.__hash__), cheaper than keying by id()
    order, seen = [], set()
    clock = _clock
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        if node is _DONE:  # all of the node below the marker's inputs are in order: now the node
            order.append(stack.pop())
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append(node)
        stack.append(_DONE)
        ctx = node._ctx
        if ctx is not None:
            if clock and ctx._t < clock:  # recorded before an in-place write: see what it really read
                inplace.resolve(ctx)
            for p in reversed(ctx.parents):  # reversed onto the stack: popped in argument order
                if (constants or p._requires_grad) and p not in seen:
                    stack.append(p)
    return order


_DONE = object()  # walk's stack marker: the node under it has had its inputs visited


def _seed_grad(root: Tensor, gradient) -> Tensor:
    if not root._requires_grad:
        raise RuntimeError("backward: this tensor does not require grad and has no grad_fn "
                           "(did you create it under no_grad() or from data only?)")
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(f"backward: output has shape {root.shape}; grad can be implicitly created only "
                               f"for scalar outputs: pass gradient= (a tensor of that shape)")
        if root.data.ndim == 0:  # a 0-d constant is baked into a recording
            return Tensor._const(np.ones((), root.data.dtype))
        return ops.Full.apply(shape=root.shape, value=1, dtype=root.data.dtype)
    # the caller's array, wrapped (not copied: compile knows a step input); .grad never aliases it (see given)
    g = gradient if isinstance(gradient, Tensor) else Tensor._const(np.asarray(gradient))
    if g.shape != root.shape:
        raise ValueError(f"backward: gradient has shape {g.shape} but the output has shape {root.shape}")
    if g.data.dtype != root.data.dtype:
        g = g.cast(root.data.dtype)
    return g


def _gradients(roots, seeds, retain_graph: bool, create_graph: bool, inputs=None) -> list:
    """The reverse-mode sweep from `roots` (seeded with `seeds`); touches no `.grad`.

    Returns, with `inputs` given, one gradient (or None) per input; otherwise `(node, gradient)` for
    every leaf that requires grad and every tensor that called retain_grad(), in the order the sweep
    finished them.  Grad mode in this thread equals `create_graph` while it runs; without
    `retain_graph` every op is released right after its backward.
    """
    prev = _set_grad_mode(create_graph)  # without create_graph backward records nothing
    try:
        grads = {}
        for r, g in zip(roots, seeds):
            grads[r] = grads[r] + g if r in grads else g  # keyed by the node itself: identity hash
        stop = set(seeds) if create_graph else None  # for tagging backward ops
        wanted = None if inputs is None else dict.fromkeys(inputs)
        found = []
        clock = _clock
        for t in reversed(walk(roots, constants=False)):
            g = grads.pop(t, None)
            if g is None:
                continue
            ctx = t._ctx
            if wanted is not None:
                if t in wanted:
                    wanted[t] = g
            elif ctx is None or t._retain:
                found.append((t, g))
            if ctx is None:
                continue
            if ctx.released:
                if ctx.saves_inputs or ctx.saves_output or ctx.saved:
                    raise RuntimeError(f"backward: the graph through {ctx.name} was already released by an earlier "
                                       f"backward() (it freed what {ctx.name} saved for its gradient); pass "
                                       f"retain_graph=True to the first backward() to go through it twice")
            elif clock and ctx._t < clock:  # something was written in place since this op was recorded
                inplace.check(ctx, t)
            parents = ctx.parents
            in_grads = ctx.backward(g)
            if not retain_graph:
                ctx.release()
            for p, pg in zip(parents, in_grads):
                if pg is None or not p._requires_grad:
                    continue
                try:
                    meta = p.data  # for its shape and dtype
                except AttributeError:  # a TensorRecord (a released graph) carries them itself
                    meta = p
                gd = pg.data
                if gd.shape != meta.shape:
                    pg = pg.sum_to(meta.shape)
                if gd.dtype is not meta.dtype and gd.dtype != meta.dtype:
                    pg = pg.cast(meta.dtype)
                old = grads.get(p)
                grads[p] = pg if old is None else old + pg
            if create_graph:
                _tag_backward_ops(ctx, t, g, parents, grads, stop)
        return found if inputs is None else [wanted[t] for t in inputs]
    finally:
        _set_grad_mode(prev)


def _backprop(roots, gradients, retain_graph: bool, create_graph: bool) -> None:
    """backward() of several roots: the sweep, then the accumulation into .grad."""
    seeds = [_seed_grad(r, g) for r, g in zip(roots, gradients)]
    given = [s for s, g in zip(seeds, gradients) if g is not None]  # the caller's arrays: never a leaf's .grad
    prev = _set_grad_mode(create_graph)  # one switch for the sweep and the accumulation
    try:
        _accumulate_grads(_gradients(roots, seeds, retain_graph, create_graph), given)
    finally:
        _set_grad_mode(prev)


def _accumulate_grads(found, seeds) -> None:
    """Add each gradient of a sweep into its tensor's `.grad` (PyTorch's accumulation); grad mode equals the
    sweep's create_graph, so the sum of an old and a new .grad is part of the graph exactly then."""
    create_graph = _state.grad_enabled
    # bases of arrays handed to leaves: no two leaves may share one, nor alias the caller's gradient
    leaf_arrays = {id(g.data if g.data.base is None else g.data.base) for g in seeds}
    for t, g in found:
        if type(t) is TensorRecord:  # a second backward through a released graph: the tensor itself
            t = None if t._tensor is None else t._tensor()
            if t is None:
                continue
        if not create_graph and g._ctx is not None:
            g = Tensor._const(g.data)  # .grad of a plain backward carries no graph
        if t._grad is None:
            base = g.data if g.data.base is None else g.data.base
            if id(base) in leaf_arrays or not (g.data.flags.writeable and g.data.flags.c_contiguous):
                # own, writable memory per leaf; under create_graph a recorded copy keeps the graph
                g = ops.Cast.apply(g, dtype=g.data.dtype) if create_graph else ops.Clone.apply(g)
            else:
                leaf_arrays.add(id(base))
            t._grad = g
        else:
            t._grad = t._grad + g


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of `outputs` w.r.t. `inputs`, returned as a tuple; `.grad` is left alone.  As torch.autograd.grad:
    `grad_outputs` is needed for non-scalar outputs; `retain_graph` defaults to `create_graph`."""
    single = isinstance(outputs, Tensor)
    outputs = [outputs] if single else list(outputs)
    inputs_seq = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(inputs_seq):
        if not isinstance(t, Tensor) or not t._requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    seeds = [_seed_grad(r, g) for r, g in zip(outputs, grad_outputs)]
    result = _gradients(outputs, seeds, retain_graph, create_graph, inputs=inputs_seq)
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} (shape {inputs_seq[i].shape}) was not used in computing the "
                               f"outputs; pass allow_unused=True to get None for it")
        if g is not None and not create_graph:
            result[i] = Tensor._const(g.data)
    return tuple(result)


# ---------------------------------------------------------------------------
# grad mode (per thread)
# ---------------------------------------------------------------------------


class _ThreadState(threading.local):
    """Autograd state of one thread: `no_grad` in one thread, or a backward
    running there, must not switch recording off in another."""

    def __init__(self):
        self.grad_enabled = True


_state = _ThreadState()

# Threads with grad mode off right now: while 0, every thread records and Function.apply skips the thread-local.
_grad_off = 0
_grad_off_lock = threading.Lock()


def _set_grad_mode(mode: bool) -> bool:
    """Set this thread's grad mode; return the previous one."""
    global _grad_off
    state = _state
    prev = state.grad_enabled
    if mode != prev:
        if mode:
            state.grad_enabled = True
        with _grad_off_lock:  # count before switching off, after switching on: never under-counted
            _grad_off += -1 if mode else 1
        if not mode:
            state.grad_enabled = False
    return prev


def is_grad_enabled() -> bool:
    """Whether ops record a graph in this thread."""
    return _state.grad_enabled


class _GradMode:
    """Base of no_grad/enable_grad: a context manager, and a decorator when called on a function."""

    mode = True

    def __enter__(self):
        self.prev = _set_grad_mode(self.mode)
        return self

    def __exit__(self, *exc):
        _set_grad_mode(self.prev)
        return False

    def _fresh(self):
        return type(self)()

    def __call__(self, fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            with self._fresh():  # a new manager per call: calls may nest or run in several threads
                return fn(*args, **kwargs)
        return run


class no_grad(_GradMode):
    """Ops inside record nothing in this thread (inference, optimizer updates).

    `with no_grad():`, `@no_grad()` or `@no_grad` on a function."""

    mode = False

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        return self if fn is None else self(fn)


class enable_grad(no_grad):
    """Record again inside a no_grad block (this thread only)."""

    mode = True


class set_grad_enabled(_GradMode):
    """Switch recording on or off in this thread, as PyTorch's: a plain call takes effect at
    once (`set_grad_enabled(False)`); as a context manager the previous mode returns on exit."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = _set_grad_mode(self.mode)

    def __enter__(self):
        return self  # the mode was set by the call already

    def _fresh(self):
        return set_grad_enabled(self.mode)

    def __call__(self, fn):
        _set_grad_mode(self.prev)  # used as a decorator: the call itself must not switch the mode
        return super().__call__(fn)


# Late binding, in one place: the ops (the primitives) and inplace.py subclass Function and make Tensors, so
# they import this module.  The core calls a few of them only while a backward runs (the seed of ones, a
# .grad's own copy, the checks after an in-place write) through these two names, which tinygrad_mnist/__init__
# binds once everything is loaded.  Importing the core alone loads neither (tests/test_layout.py checks).
ops = inplace = None
