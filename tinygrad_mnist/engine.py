"""The core: a Tensor wraps a NumPy array and records the op that made it.

Every op is a small `Function` (see ops.py): `forward` works on ndarrays,
`backward` works on Tensors, so the gradient computation can itself be recorded
(create_graph=True) and differentiated again.  `backward()` is a topological
sort of the recorded DAG plus one loop over it in reverse.

This module knows nothing of layers, data or pictures.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import threading
import weakref

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

# ---------------------------------------------------------------------------
# state: grad mode (per thread) and the random generator
# ---------------------------------------------------------------------------


class _ThreadState(threading.local):
    """Autograd state of one thread: `no_grad` in one thread, or a backward
    running there, must not switch recording off in another."""

    def __init__(self):
        self.grad_enabled = True


_state = _ThreadState()
# How many threads have grad mode off right now.  While it is 0 every thread
# records, and Function.apply skips reading the (slower) thread-local flag.
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


_rng = np.random.default_rng()
# The recorder of tinygrad_mnist.compile while it captures a step (compile.py), else None: every op
# (Function.apply) and every new leaf tensor is reported to it, so a step can be replayed without the engine.
_tracer = None
_clock = 0  # in-place writes so far (inplace.py); while 0, recording and backward skip all version bookkeeping


def manual_seed(seed: int) -> None:
    """Seed the generator behind randn/rand/uniform/dropout and nn initializers."""
    global _rng
    _rng = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    """The generator used by the library (reseeded by manual_seed)."""
    return _rng


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


# ---------------------------------------------------------------------------
# Function: the base of every primitive op
# ---------------------------------------------------------------------------


class Function:
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
    `retain_graph`: it frees what was saved (the inputs' and output's data,
    stored arrays) and keeps the structure: the name, and edges to the inputs
    as lightweight records (`TensorRecord`; leaves that require grad stay the
    real Tensors).  A later backward through an op that saved values raises;
    through one that saved nothing it works, as in PyTorch.

    Introspection (used by viz): `name`, `inputs`, `released`,
    `saved_arrays()`, `calls` (the composite calls this op belongs to,
    innermost first, see `composite`) and `backward_of` (the forward op whose
    backward recorded this op, under create_graph=True).
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
        out.data = data if type(data) is np.ndarray else np.asarray(data)
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

    @property
    def name(self) -> str:
        return type(self).__name__

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

    def __repr__(self) -> str:
        return f"<{self.name}{' (released)' if self.released else ''}>"


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


def _op_error(cls, inputs, e):
    shapes = " and ".join(str(tuple(t.shape)) for t in inputs)
    kind = IndexError if isinstance(e, IndexError) and not isinstance(e, ValueError) else ValueError
    return kind(f"{cls.__name__.lower()}: {e} (input shape{'s' if len(inputs) > 1 else ''} {shapes})")


# ---------------------------------------------------------------------------
# dtype helpers
# ---------------------------------------------------------------------------


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


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor that shares `arr`'s memory (torch.from_numpy): writes to one show in the other."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy: expected an np.ndarray, got {type(arr).__name__} (use tensor(data) to copy data)")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: can't make a tensor from numpy dtype {arr.dtype}; expected numbers")
    return Tensor._const(arr)


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


def _shape_arg(shape) -> tuple:
    """Accept f(2, 3), f((2, 3)) and f([2, 3])."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _norm_axes(axis, ndim: int, op: str = "reduce"):
    """None -> None; int or tuple -> a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise IndexError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimension(s)")
        out.append(int(a) % max(ndim, 1))
    return tuple(sorted(set(out)))


def _dim_alias(op: str, dim, axis, keepdim=False, keepdims=None):
    """PyTorch's dim=/keepdim= with NumPy's axis=/keepdims= accepted as aliases (called only when one is given)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both dim= and axis= (the same argument under two names); pass only dim=")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, keepdim


def _one_dim(dim, ndim: int, op: str) -> int:
    """A single dimension, range-checked, as a non-negative int."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimension(s)")
    return int(dim) % max(ndim, 1)


class device(str):
    """The device a tensor lives on: always "cpu" (compares equal to the string, like torch.device)."""

    def __new__(cls, spec="cpu"):
        return super().__new__(cls, _check_device(spec, "device"))

    @property
    def type(self) -> str:
        return "cpu"

    @property
    def index(self):
        return None

    def __repr__(self) -> str:
        return "device(type='cpu')"


def _check_device(dev, op: str) -> str:
    """None and "cpu" pass; any other device is a clear error (this engine computes with NumPy on the CPU)."""
    if dev is None:
        return "cpu"
    name = str(dev)
    if name in ("cpu", "cpu:0"):
        return "cpu"
    raise RuntimeError(f"{op}: device {name!r} is not available: this engine runs on the CPU (NumPy) only; "
                       f"use device='cpu' or leave the device out")


_CPU = device("cpu")


class _static_or_method:
    """Tensor.f(a, b, c) calls f as written; x.f(b, c) calls f(b, x, c).

    For where: Tensor.where(cond, x, y) as torch.where, and x.where(cond, y) as torch's Tensor.where.
    """

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self.fn
        return functools.partial(lambda x, cond, other: self.fn(cond, x, other), obj)


class return_types:  # noqa: N801  (named after torch.return_types)
    """The (values, indices) named tuples of max(dim) and min(dim), as torch.return_types."""

    max = collections.namedtuple("max", ["values", "indices"])
    min = collections.namedtuple("min", ["values", "indices"])
    sort = collections.namedtuple("sort", ["values", "indices"])
    topk = collections.namedtuple("topk", ["values", "indices"])
    median = collections.namedtuple("median", ["values", "indices"])


# ---------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------


class Tensor:
    """An n-dimensional array that remembers how it was computed."""

    # _record: what stands for this tensor in a released graph (see TensorRecord), made on release;
    # _name: a label given by the user (see `name`)
    __slots__ = ("data", "_grad", "_requires_grad", "_ctx", "_retain", "_record", "_name", "__weakref__")
    __array_ufunc__ = None  # make `ndarray * Tensor` call Tensor.__rmul__
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

    # -- attributes ----------------------------------------------------------
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

    def size(self, dim=None):
        """The shape as a tuple, or the length of one dimension (x.size(0))."""
        if dim is None:
            return self.data.shape
        return self.data.shape[_one_dim(dim, self.data.ndim, "size")]

    def numel(self) -> int:
        return self.data.size

    nelement = numel

    def dim(self) -> int:
        return self.data.ndim

    def element_size(self) -> int:
        return self.data.itemsize

    @property
    def device(self) -> device:
        return _CPU

    @property
    def is_cuda(self) -> bool:
        return False

    def is_floating_point(self) -> bool:
        return _is_float(self.data.dtype)

    def is_contiguous(self) -> bool:
        return self.data.flags.c_contiguous

    def stride(self, dim=None):
        """Steps in elements (not bytes, unlike NumPy's strides), as torch.stride."""
        steps = tuple(st // self.data.itemsize for st in self.data.strides)
        return steps if dim is None else steps[_one_dim(dim, self.data.ndim, "stride")]

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def numpy(self) -> np.ndarray:
        return self.data

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python scalar, "
                             f"this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._const(self.data)

    def retain_grad(self) -> Tensor:
        """Keep .grad on this non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        self._retain = True
        return self

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20, edgeitems=2,
                               prefix="Tensor(")
        extra = ""
        if self.data.dtype != float32:
            extra += f", dtype={self.data.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx.name}"
        elif self._requires_grad:
            extra += ", requires_grad=True"
        if self.name is not None:
            extra += f", name={self.name!r}"
        return f"Tensor({body}{extra})"

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        """A one-element integer tensor can index a list or a range, as in PyTorch."""
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an index "
                            f"(this one: {self.data.dtype}, shape {self.shape})")
        return int(self.data.item())

    def __format__(self, spec: str) -> str:
        """f"{loss:.4f}" formats the value of a one-element tensor, as in PyTorch."""
        if self.data.size == 1 and self.data.ndim == 0:
            return format(self.data.item(), spec)
        return format(str(self), spec)

    # -- factories -------------------------------------------------------------
    # (also at the top level, torch-style: tinygrad_mnist.zeros(2, 3), tinygrad_mnist.randn(...)).
    # Their arrays come out of recorded ops (_made, _draw): a factory called inside a compiled step replays.
    @classmethod
    def zeros(cls, *shape, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(np.zeros, _shape_arg(shape), np.dtype(dtype or float32)), requires_grad, device)

    @classmethod
    def ones(cls, *shape, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(np.ones, _shape_arg(shape), np.dtype(dtype or float32)), requires_grad, device)

    @classmethod
    def empty(cls, *shape, requires_grad=False, dtype=None, device=None) -> Tensor:
        """Zeros (NumPy's uninitialised memory would only hide bugs)."""
        return cls.zeros(*shape, requires_grad=requires_grad, dtype=dtype, device=device)

    @classmethod
    def full(cls, shape, fill_value, requires_grad=False, dtype=None, device=None) -> Tensor:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if isinstance(fill_value, Tensor):
            fill_value = fill_value.item()
        if dtype is None:
            dtype = float32 if isinstance(fill_value, float) else np.asarray(fill_value).dtype
        # no silent 1.5 -> 1
        return cls._leaf(_made(_full_checked, shape, fill_value, np.dtype(dtype)), requires_grad, device)

    @classmethod
    def zeros_like(cls, t, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(np.zeros, np.shape(t), np.dtype(dtype or _dtype_of(t))), requires_grad, device)

    @classmethod
    def ones_like(cls, t, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(np.ones, np.shape(t), np.dtype(dtype or _dtype_of(t))), requires_grad, device)

    @classmethod
    def full_like(cls, t, fill_value, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls.full(np.shape(t), fill_value, requires_grad, dtype or _dtype_of(t), device)

    @classmethod
    def randn(cls, *shape, requires_grad=False, dtype=None, device=None) -> Tensor:
        """Standard normal samples (seed with tinygrad_mnist.manual_seed)."""
        dtype = np.dtype(dtype or float32)
        return cls._leaf(_draw(_normal, shape=_shape_arg(shape), dtype=dtype), requires_grad, device)

    @classmethod
    def uniform(cls, *shape, low=0.0, high=1.0, requires_grad=False, dtype=None, device=None) -> Tensor:
        dtype = np.dtype(dtype or float32)
        data = _draw(_uniform, shape=_shape_arg(shape), low=low, high=high, dtype=dtype)
        return cls._leaf(data, requires_grad, device)

    @classmethod
    def rand(cls, *shape, requires_grad=False, dtype=None, device=None) -> Tensor:
        """Uniform samples in [0, 1)."""
        return cls.uniform(*shape, requires_grad=requires_grad, dtype=dtype, device=device)

    @classmethod
    def randint(cls, low, high=None, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
        """Integers uniform in [low, high); randint(high, size) starts at 0, as torch.randint."""
        if size is None:  # torch.randint(high, size)
            if high is None:
                raise TypeError("randint: needs high and size, e.g. randint(0, 10, (3,)) or randint(10, (3,))")
            low, high, size = 0, low, high
        size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        data = _draw(_integers, low=low, high=high, size=size)
        return cls._leaf(_cast_checked(data, np.dtype(dtype or int64)), requires_grad, device)

    @classmethod
    def eye(cls, n, m=None, requires_grad=False, dtype=None, device=None) -> Tensor:
        return cls._leaf(_made(_eye, n, m, np.dtype(dtype or float32)), requires_grad, device)

    @classmethod
    def arange(cls, start, stop=None, step=1, requires_grad=False, dtype=None, device=None) -> Tensor:
        if stop is None:
            start, stop = 0, start
        if dtype is None:
            ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
            dtype = int64 if ints else float32
        # no silent 0.5 -> 0
        return cls._leaf(_made(_arange_checked, start, stop, step, np.dtype(dtype)), requires_grad, device)

    @classmethod
    def linspace(cls, start, end, steps, requires_grad=False, dtype=None, device=None) -> Tensor:
        """`steps` evenly spaced values from start to end, both included."""
        return cls._leaf(_made(_linspace, start, end, int(steps), np.dtype(dtype or float32)), requires_grad, device)

    # -- autograd ----------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into .grad of every leaf that requires grad."""
        if retain_graph is None:
            retain_graph = create_graph
        _backprop([self], [gradient], retain_graph, create_graph)

    # -- conversions --------------------------------------------------------------
    def cast(self, dtype) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype == self.data.dtype:
            return self
        if self._requires_grad and not _is_float(dtype):
            # an integer result can't carry a gradient: cut it from the graph
            return ops.Cast.apply(self.detach(), dtype=dtype)
        return ops.Cast.apply(self, dtype=dtype)

    astype = cast

    def float(self) -> Tensor:
        return self.cast(float32)

    def double(self) -> Tensor:
        return self.cast(float64)

    def long(self) -> Tensor:
        return self.cast(int64)

    def int(self) -> Tensor:
        return self.cast(np.int32)

    def bool(self) -> Tensor:
        return self.cast(bool_)

    def half(self) -> Tensor:
        raise TypeError("half: float16 is not supported by this engine; use .float() (float32) or .double()")

    def type_as(self, other: Tensor) -> Tensor:
        return self.cast(other.data.dtype)

    def type(self, dtype=None):
        """x.type(float64) converts; x.type() names the dtype ("float32")."""
        return str(self.data.dtype) if dtype is None else self.cast(dtype)

    # new tensors with this one's dtype, as torch's Tensor.new_*
    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return Tensor.zeros(*size, dtype=dtype or self.data.dtype, device=device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return Tensor.ones(*size, dtype=dtype or self.data.dtype, device=device, requires_grad=requires_grad)

    new_empty = new_zeros

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
        return Tensor.full(size, fill_value, dtype=dtype or self.data.dtype, device=device,
                           requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False) -> Tensor:
        return Tensor(data, dtype=dtype or self.data.dtype, device=device, requires_grad=requires_grad)

    def to(self, *args, dtype=None, device=None, copy: bool = False, non_blocking: bool = False) -> Tensor:
        """x.to(float64), x.to("cpu"), x.to(device="cpu", dtype=...), x.to(other_tensor), as in PyTorch.

        Only the CPU exists here: any other device is a clear error.
        """
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.data.dtype
            elif isinstance(a, str):
                device = a
            else:
                dtype = a
        _check_device(device, "to")
        out = self if dtype is None else self.cast(dtype)
        return out.clone() if copy and out is self else out

    def cpu(self) -> Tensor:
        return self

    def cuda(self, *args, **kwargs) -> Tensor:
        return self.to("cuda")  # the clear error

    def clone(self) -> Tensor:
        """A copy in new memory; recorded, so the gradient flows back to self (torch.clone)."""
        return ops.Clone.apply(self)

    def contiguous(self) -> Tensor:
        """self when its memory is already C-contiguous (as PyTorch), else a recorded copy."""
        return self if self.data.flags.c_contiguous else self.clone()

    # -- arithmetic ----------------------------------------------------------------
    def _lift(self, other) -> Tensor:
        """Turn a Python/NumPy scalar or array into a constant Tensor."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float, np.generic)):
            dt = self.data.dtype
            if not _is_float(dt) and isinstance(other, (float, np.floating)):
                dt = float32  # int tensor * 0.5 gives float32, as in PyTorch
            elif dt.kind == "b" and not isinstance(other, (bool, np.bool_)):
                dt = np.asarray(other).dtype
            return Tensor._const(np.array(other, dt))
        return Tensor._const(_as_array(other, copy=False))  # a constant operand: no copy needed

    def _binary(self, cls, other, reverse=False):
        if type(other) is not Tensor:
            other = self._lift(other)
        a, b = (other, self) if reverse else (self, other)
        da, db = a.data.dtype, b.data.dtype
        if da is not db and da != db:
            a, b = _promote(a, b)
        return cls.apply(a, b)

    def __add__(self, other):
        return self._binary(ops.Add, other)

    def __radd__(self, other):
        return self._binary(ops.Add, other, True)

    def __sub__(self, other):
        return self._binary(ops.Sub, other)

    def __rsub__(self, other):
        return self._binary(ops.Sub, other, True)

    def __mul__(self, other):
        return self._binary(ops.Mul, other)

    def __rmul__(self, other):
        return self._binary(ops.Mul, other, True)

    def __truediv__(self, other):
        if self.data.dtype.kind != "f" and not (isinstance(other, Tensor) and other.data.dtype.kind == "f"):
            return self.float()._binary(ops.Div, other)  # int / int is float32, as in PyTorch (NumPy: float64)
        return self._binary(ops.Div, other)

    def __rtruediv__(self, other):
        if self.data.dtype.kind != "f" and not isinstance(other, (float, np.floating)):
            return self.float()._binary(ops.Div, other, True)
        return self._binary(ops.Div, other, True)

    def __pow__(self, other):
        if isinstance(other, (int, float)) and not isinstance(other, bool) and (
                _is_float(self.data.dtype) or isinstance(other, int)):
            return ops.PowConst.apply(self, c=other)
        return self._binary(ops.Pow, other)

    def __rpow__(self, other):
        return self._binary(ops.Pow, other, True)

    def __matmul__(self, other):
        return self.matmul(other)

    def __rmatmul__(self, other):
        return self._lift(other).matmul(self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    mul, div, pow = __mul__, __truediv__, __pow__

    def add(self, other, *, alpha=1):
        """self + alpha * other (torch.add)."""
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    subtract, multiply, divide, true_divide, neg, negative = sub, mul, div, div, __neg__, __neg__

    def __abs__(self):
        return self.abs()

    def __floordiv__(self, other):
        """floor(self / other), as torch's //: a step function, so no gradient flows."""
        other = self._lift(other)
        if not (_is_float(self.data.dtype) or _is_float(other.data.dtype)):  # int // int stays int
            return ops.Detached.apply(self, other, fn=np.floor_divide)
        return (self / other).floor()

    def __rfloordiv__(self, other):
        return self._lift(other) // self

    def __mod__(self, other):
        """Python's (and torch.remainder's) modulo, self - floor(self / other) * other; differentiable."""
        other = self._lift(other)
        if not (_is_float(self.data.dtype) or _is_float(other.data.dtype)):
            return ops.Detached.apply(self, other, fn=np.remainder)
        return self - (self / other).floor() * other

    def __rmod__(self, other):
        return self._lift(other) % self

    floor_divide, remainder = __floordiv__, __mod__

    # logical and bitwise ops on bool/int tensors: recorded, outside the graph, as comparisons
    def _logical(self, other, fn, op):
        b = other if isinstance(other, Tensor) else Tensor._const(np.asarray(other))
        if _is_float(self.data.dtype) or _is_float(b.data.dtype):
            raise TypeError(f"{op}: needs bool or integer tensors, got {self.data.dtype} and {b.data.dtype} "
                            f"(compare first, e.g. (x > 0) {op} (y > 0))")
        return ops.Detached.apply(self, b, fn=fn)

    def __and__(self, other):
        return self._logical(other, np.bitwise_and, "&")

    def __or__(self, other):
        return self._logical(other, np.bitwise_or, "|")

    def __xor__(self, other):
        return self._logical(other, np.bitwise_xor, "^")

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__
    bitwise_and, bitwise_or, bitwise_xor = __and__, __or__, __xor__

    def __invert__(self):
        if _is_float(self.data.dtype):
            raise TypeError(f"~: needs a bool or integer tensor, got {self.data.dtype}")
        return ops.Detached.apply(self, fn=np.invert)

    bitwise_not = __invert__

    def logical_not(self) -> Tensor:
        return ops.Detached.apply(self, fn=np.logical_not)

    def logical_and(self, other) -> Tensor:
        return self._compare(other, np.logical_and)

    def logical_or(self, other) -> Tensor:
        return self._compare(other, np.logical_or)

    def logical_xor(self, other) -> Tensor:
        return self._compare(other, np.logical_xor)

    # comparisons: boolean tensors outside the graph, made by a recorded op (ops.Detached)
    def _compare(self, other, fn):
        if isinstance(other, (int, float, bool, np.generic)):  # a number is baked into the op, as NumPy sees it
            return ops.Detached.apply(self, fn=fn, args=(other,))
        other = other if isinstance(other, Tensor) else Tensor._const(np.asarray(other))
        try:
            np.broadcast_shapes(self.shape, other.shape)
        except ValueError as e:
            raise ValueError(f"{fn.__name__}: {e} (shapes {self.shape} and {other.shape})") from None
        return ops.Detached.apply(self, other, fn=fn)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne

    def equal(self, other) -> bool:
        """True when shapes and all elements are equal (torch.equal)."""
        other = other.data if isinstance(other, Tensor) else np.asarray(other)
        return self.data.shape == other.shape and bool(np.array_equal(self.data, other))

    def allclose(self, other, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
        other = other.data if isinstance(other, Tensor) else other
        return bool(np.allclose(self.data, other, rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isnan(self) -> Tensor:
        return ops.Detached.apply(self, fn=np.isnan)

    def isfinite(self) -> Tensor:
        return ops.Detached.apply(self, fn=np.isfinite)

    def isinf(self) -> Tensor:
        return ops.Detached.apply(self, fn=np.isinf)

    # -- elementwise ------------------------------------------------------------
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def log1p(self):
        """log(1 + x), accurate for tiny x."""
        return ops.Log1p.apply(self)

    def expm1(self):
        """exp(x) - 1, accurate for tiny x."""
        return ops.Expm1.apply(self)

    @composite("log2")
    def log2(self):
        return self.log() * (1.0 / math.log(2.0))

    @composite("log10")
    def log10(self):
        return self.log() * (1.0 / math.log(10.0))

    @composite("exp2")
    def exp2(self):
        return (self * math.log(2.0)).exp()

    @composite("lerp")
    def lerp(self, end, weight):
        """self + weight * (end - self)."""
        return self + (end - self) * weight

    def clamp_min(self, min):  # noqa: A002
        return self.clamp(min=min)

    def clamp_max(self, max):  # noqa: A002
        return self.clamp(max=max)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def relu(self):
        return ops.Relu.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def leaky_relu(self, slope: float = 0.01):
        return ops.LeakyRelu.apply(self, slope=slope)

    def maximum(self, other):
        return self._binary(ops.Maximum, other)

    def minimum(self, other):
        return self._binary(ops.Minimum, other)

    def clamp(self, min=None, max=None):  # noqa: A002  (PyTorch's keyword names)
        """Limit to [min, max]; the gradient passes where min <= x <= max (PyTorch's rule).

        Bounds may be tensors (broadcast against x); they then get the gradient where they are the result.
        """
        if min is None and max is None:
            raise ValueError("clamp: at least one of min= and max= must be given")
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            out = self
            if min is not None:
                out = Tensor.where(out < min, min, out)
            if max is not None:
                out = Tensor.where(out > max, max, out)
            return out
        return ops.Clip.apply(self, lo=min, hi=max)

    clip = clamp

    def square(self):
        return self * self

    def sin(self):
        return ops.Sin.apply(self)

    def cos(self):
        return ops.Cos.apply(self)

    def reciprocal(self):
        return 1.0 / self if _is_float(self.data.dtype) else 1.0 / self.float()

    @composite("rsqrt")
    def rsqrt(self):
        return self.sqrt().reciprocal()

    # step functions: the gradient is zero (PyTorch's convention), but it does flow as zeros
    def floor(self):
        return self if not _is_float(self.data.dtype) else ops.Step.apply(self, fn=np.floor)

    def ceil(self):
        return self if not _is_float(self.data.dtype) else ops.Step.apply(self, fn=np.ceil)

    def trunc(self):
        return self if not _is_float(self.data.dtype) else ops.Step.apply(self, fn=np.trunc)

    def round(self, decimals: int = 0):
        """Round half to even, as torch.round (and NumPy)."""
        if not _is_float(self.data.dtype):
            return self
        # decimals as a plain param, not a functools.partial made per call: compile compares the params of two steps
        return ops.Step.apply(self, fn=np.round) if decimals == 0 else ops.Step.apply(self, fn=np.round,
                                                                                     decimals=decimals)

    def sign(self):
        return ops.Step.apply(self, fn=np.sign)

    @_static_or_method
    def where(cond, a, b) -> Tensor:
        """Elementwise `a if cond else b`; the gradient flows to a and b, not cond.

        Tensor.where(cond, a, b) as torch.where; x.where(cond, other) as torch's Tensor.where (x where cond).
        """
        if not isinstance(cond, Tensor):
            cond = Tensor._const(np.asarray(cond, dtype=bool))
        elif cond.data.dtype != bool_:
            cond = ops.Detached.apply(cond, fn=np.asarray, dtype=bool_)
        if not isinstance(a, Tensor):  # a scalar side takes the tensor side's dtype
            a = b._lift(a) if isinstance(b, Tensor) else Tensor(a)
        if not isinstance(b, Tensor):
            b = a._lift(b)
        if a.data.dtype != b.data.dtype:
            a, b = _promote(a, b)
        return ops.Where.apply(a, b, cond)

    # -- reductions -------------------------------------------------------------
    # PyTorch's dim=/keepdim=; NumPy's axis=/keepdims= are accepted as aliases (checked only when given).
    def sum(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("sum", dim, axis, keepdim, keepdims)
        return ops.Sum.apply(self, axis=_norm_axes(dim, self.ndim, "sum"), keepdim=keepdim)

    @composite("mean")
    def mean(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("mean", dim, axis, keepdim, keepdims)
        axes = _norm_axes(dim, self.ndim, "mean")
        n = self.data.size if axes is None else math.prod(self.shape[a] for a in axes)
        if n == 0:
            raise ValueError(f"mean: reducing an empty set of elements (shape {self.shape}, dim {dim})")
        return self.sum(axes, keepdim) * (1.0 / n)

    def amax(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Largest values over dim (an int or a tuple; None: all); ties share the gradient equally."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("amax", dim, axis, keepdim, keepdims)
        return ops.Max.apply(self, axis=_norm_axes(dim, self.ndim, "amax"), keepdim=keepdim)

    def amin(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Smallest values over dim (an int or a tuple; None: all); ties share the gradient equally."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("amin", dim, axis, keepdim, keepdims)
        return ops.Min.apply(self, axis=_norm_axes(dim, self.ndim, "amin"), keepdim=keepdim)

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """As torch.max: x.max() is the largest value (ties share the gradient);
        x.max(dim) is a (values, indices) named tuple (the gradient goes to the element at indices);
        x.max(other_tensor) is the elementwise maximum."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("max", dim, axis, keepdim, keepdims)
        if dim is None:
            return ops.Max.apply(self, axis=None, keepdim=keepdim)
        return self._extremum(dim, keepdim, "max", np.argmax)

    def min(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """As torch.min: x.min(), x.min(dim) -> (values, indices), x.min(other_tensor)."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("min", dim, axis, keepdim, keepdims)
        if dim is None:
            return ops.Min.apply(self, axis=None, keepdim=keepdim)
        return self._extremum(dim, keepdim, "min", np.argmin)

    def _extremum(self, dim, keepdim, op, arg):
        if isinstance(dim, Tensor):  # torch.max(a, b): the elementwise maximum
            return self.maximum(dim) if op == "max" else self.minimum(dim)
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"{op}: dim must be one int (it returns values and indices); "
                            f"for several dims use a{op}(dim={tuple(dim)}), which returns the values")
        d = _one_dim(dim, self.ndim, op)
        if self.ndim == 0:
            return getattr(return_types, op)(self, Tensor._const(np.zeros((), int64)))
        if self.shape[d] == 0:
            raise IndexError(f"{op}: dim {dim} has size 0 (shape {self.shape}): there is no {op}")
        idx = ops.Detached.apply(self, fn=_arg_index, which=arg, axis=d, keepdims=True)
        values = self.gather(d, idx)
        if not keepdim:
            values, idx = values.squeeze(d), idx.squeeze(d)
        return getattr(return_types, op)(values, idx)

    @composite("var")
    def var(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None, axis=None, keepdims=None):
        """Variance with Bessel's correction by default (unbiased=True, i.e. correction=1), as PyTorch."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("var", dim, axis, keepdim, keepdims)
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        elif unbiased is not None:
            raise TypeError("var: pass either unbiased= or correction=, not both")
        axes = _norm_axes(dim, self.ndim, "var")
        n = self.data.size if axes is None else math.prod(self.shape[a] for a in axes)
        d = self - self.mean(axes, keepdim=True)
        return (d * d).sum(axes, keepdim) * (1.0 / (n - correction) if n > correction else math.nan)

    @composite("std")
    def std(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None, axis=None, keepdims=None):
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("std", dim, axis, keepdim, keepdims)
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    @composite("logsumexp")
    def logsumexp(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("logsumexp", dim, axis, keepdim, keepdims)
        axes = _norm_axes(dim, self.ndim, "logsumexp")
        m = ops.Detached.apply(self, fn=_finite_max, axis=axes)  # all -inf rows stay -inf
        out = (self - m).exp().sum(axes, keepdim=True).log() + m
        if keepdim:
            return out
        return out.reshape(()) if axes is None else out.squeeze(axes)

    def argmax(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """Index of the largest value (the first on ties); dim None: into the flattened tensor."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("argmax", dim, axis, keepdim, keepdims)
        d = None if dim is None else _one_dim(dim, self.ndim, "argmax")
        return ops.Detached.apply(self, fn=_arg_index, which=np.argmax, axis=d, keepdims=keepdim)

    def argmin(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("argmin", dim, axis, keepdim, keepdims)
        d = None if dim is None else _one_dim(dim, self.ndim, "argmin")
        return ops.Detached.apply(self, fn=_arg_index, which=np.argmin, axis=d, keepdims=keepdim)

    def prod(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Product over one dim (None: all elements)."""
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("prod", dim, axis, keepdim, keepdims)
        if dim is None:
            out = ops.Prod.apply(self.reshape(-1), axis=0)
            return out.reshape((1,) * self.ndim) if keepdim else out
        d = _one_dim(dim, self.ndim, "prod")
        out = ops.Prod.apply(self, axis=d) if self.ndim else self
        return out.unsqueeze(d) if keepdim and self.ndim else out

    def cumsum(self, dim=None, *, axis=None):
        """Running sums along dim (required, as in PyTorch)."""
        if axis is not None:
            dim, _ = _dim_alias("cumsum", dim, axis)
        if dim is None:
            raise TypeError("cumsum: dim is required, e.g. x.cumsum(0) (flatten first for a running sum over all)")
        if self.ndim == 0:
            return self
        return ops.Cumsum.apply(self, axis=_one_dim(dim, self.ndim, "cumsum"), reverse=False)

    @composite("norm")
    def norm(self, p="fro", dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Vector p-norm over dim (None: all elements); p: 2 (= 'fro'), 1, inf, -inf, 0 or any number.

        The gradient at an all-zero input is 0 (PyTorch's subgradient), not nan.
        """
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("norm", dim, axis, keepdim, keepdims)
        if p == "fro":
            p = 2
        if isinstance(p, str):
            raise ValueError(f"norm: p={p!r} is not supported (use 2, 'fro', 1, inf, -inf, 0 or a number)")
        axes = _norm_axes(dim, self.ndim, "norm")
        a = self.abs()
        if p == math.inf:
            return a.amax(axes, keepdim)
        if p == -math.inf:
            return a.amin(axes, keepdim)
        if p == 0:
            return (a != 0).cast(self.data.dtype).sum(axes, keepdim)
        if p == 1:
            return a.sum(axes, keepdim)
        s = (self * self if p == 2 else a ** p).sum(axes, keepdim)
        # s ** (1/p) where s > 0; the inner where keeps the gradient finite at s = 0
        pos = s > 0
        safe = Tensor.where(pos, s, 1.0)
        root = safe.sqrt() if p == 2 else safe ** (1.0 / p)
        return Tensor.where(pos, root, 0.0)

    def any(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("any", dim, axis, keepdim, keepdims)
        return ops.Detached.apply(self, fn=np.any, axis=_norm_axes(dim, self.ndim, "any"), keepdims=keepdim)

    def all(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        if axis is not None or keepdims is not None:
            dim, keepdim = _dim_alias("all", dim, axis, keepdim, keepdims)
        return ops.Detached.apply(self, fn=np.all, axis=_norm_axes(dim, self.ndim, "all"), keepdims=keepdim)

    # -- shape ----------------------------------------------------------------
    def reshape(self, *shape):
        shape = _shape_arg(shape)
        if shape == self.data.shape:
            return self
        return ops.Reshape.apply(self, shape=shape)

    def view(self, *shape):
        """reshape (-1 allowed); like reshape it copies only when NumPy must."""
        if len(shape) == 1 and isinstance(shape[0], (np.dtype, type)):
            raise TypeError("view(dtype) (reinterpreting the bits) is not supported; use .to(dtype) to convert values")
        return self.reshape(*shape)

    def reshape_as(self, other: Tensor):
        return self.reshape(other.shape)

    view_as = reshape_as

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:]
        return self.reshape(shape)

    def permute(self, *order):
        order = _shape_arg(order)
        if len(order) != self.ndim or sorted(o % max(self.ndim, 1) for o in order) != list(range(self.ndim)):
            raise ValueError(f"permute: {order} is not a permutation of the {self.ndim} axes of shape {self.shape}")
        order = tuple(o % self.ndim for o in order)
        if order == tuple(range(self.ndim)):
            return self
        return ops.Permute.apply(self, order=order)

    def transpose(self, dim0: int = -2, dim1: int = -1):
        if not (-self.ndim <= dim0 < self.ndim and -self.ndim <= dim1 < self.ndim):
            raise IndexError(f"transpose: dims ({dim0}, {dim1}) out of range for shape {self.shape}")
        order = list(range(self.ndim))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        return self.permute(order)

    swapaxes = swapdims = transpose

    def t(self):
        """Transpose of a matrix; 0-d and 1-d tensors come back as they are (torch.t)."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor with <= 2 dimensions, got shape {self.shape}; "
                             f"use .mT or transpose(-2, -1) for a batch of matrices")
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self):  # noqa: N802  (PyTorch's name)
        """Transpose of the last two dims (a batch of matrices)."""
        if self.ndim < 2:
            raise ValueError(f"mT: needs at least 2 dimensions, got shape {self.shape}")
        return self.transpose(-2, -1)

    def expand(self, *shape):
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        if shape == self.shape:
            return self
        return ops.Expand.apply(self, shape=shape)

    broadcast_to = expand

    def expand_as(self, other: Tensor):
        return self.expand(other.shape)

    @composite("repeat")
    def repeat(self, *sizes):
        """Tile the tensor sizes[i] times along each dim (torch.repeat, np.tile)."""
        sizes = _shape_arg(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat: needs at least one size per dim ({self.ndim}), got {sizes}")
        shape = (1,) * (len(sizes) - self.ndim) + self.shape
        # (1, s0, 1, s1, ...) -> expand to (r0, s0, r1, s1, ...) -> merge each pair
        x = self.reshape(tuple(v for s in shape for v in (1, s)))
        x = x.expand(tuple(v for r, s in zip(sizes, shape) for v in (r, s)))
        return x.reshape(tuple(r * s for r, s in zip(sizes, shape)))

    def sum_to(self, shape):
        """Sum broadcast axes away so the result has `shape` (the adjoint of expand)."""
        shape = tuple(shape)
        if shape == self.shape:
            return self
        return ops.SumTo.apply(self, shape=shape)

    def squeeze(self, dim=None, *, axis=None):
        """Drop size-1 dims (all of them, or those in dim); a dim of another size is left alone, as PyTorch."""
        if axis is not None:
            dim, _ = _dim_alias("squeeze", dim, axis)
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        axes = _norm_axes(dim, self.ndim, "squeeze")
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if i not in axes or s != 1))

    def unsqueeze(self, dim=None, *, axis=None):
        if axis is not None:
            dim, _ = _dim_alias("unsqueeze", dim, axis)
        if dim is None:
            raise TypeError("unsqueeze: dim is required, e.g. x.unsqueeze(0)")
        d = _one_dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def pad(self, pad_width, value: float = 0.0):
        """Constant padding, `pad_width` per axis as in np.pad: ((before, after), ...)."""
        pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (self.ndim, 2))
        if (pw < 0).any():
            raise ValueError(f"pad: negative pad widths {pad_width} are not supported")
        return ops.Pad.apply(self, pad_width=tuple(map(tuple, pw.tolist())), value=value)

    def __getitem__(self, index):
        index, arrays = ops.split_index(index)  # index arrays become tensor inputs of the op, not baked params
        return ops.GetItem.apply(self, *arrays, index=index)

    def _slice(self, d: int, start: int, stop: int):
        return ops.GetItem.apply(self, index=(slice(None),) * d + (slice(start, stop),))

    @composite("split")
    def split(self, split_size_or_sections, dim=None, *, axis=None) -> tuple:
        """Pieces along dim (default 0): of split_size each (the last may be smaller), or of the listed sizes."""
        dim = _dim_alias("split", dim, axis)[0] if axis is not None else 0 if dim is None else dim
        d = _one_dim(dim, self.ndim, "split")
        n = self.shape[d]
        if isinstance(split_size_or_sections, (int, np.integer)):
            step = int(split_size_or_sections)
            if step <= 0:
                raise ValueError(f"split: split_size must be positive, got {step}")
            bounds = [(i, min(i + step, n)) for i in range(0, n, step)] or [(0, 0)]
        else:
            sizes = [int(v) for v in split_size_or_sections]
            if sum(sizes) != n or min(sizes, default=0) < 0:
                raise ValueError(f"split: sizes {sizes} don't add up to {n}, the length of dim {dim} "
                                 f"(shape {self.shape})")
            ends = np.cumsum([0] + sizes).tolist()
            bounds = list(zip(ends[:-1], ends[1:]))
        return tuple(self._slice(d, a, b) for a, b in bounds)

    @composite("chunk")
    def chunk(self, chunks: int, dim=None, *, axis=None) -> tuple:
        """Up to `chunks` pieces of ceil(n / chunks) along dim (default 0; fewer when they run out, as PyTorch)."""
        dim = _dim_alias("chunk", dim, axis)[0] if axis is not None else 0 if dim is None else dim
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be positive, got {chunks}")
        n = self.shape[_one_dim(dim, self.ndim, "chunk")]
        return self.split(max(-(-n // chunks), 1), dim)

    def narrow(self, dim: int, start: int, length: int):
        d = _one_dim(dim, self.ndim, "narrow")
        start = start + self.shape[d] if start < 0 else start
        if not (0 <= start and length >= 0 and start + length <= self.shape[d]):
            raise IndexError(f"narrow: start {start} + length {length} exceeds dim {dim} of size {self.shape[d]}")
        return self._slice(d, start, start + length)

    def select(self, dim: int, index: int):
        d = _one_dim(dim, self.ndim, "select")
        if not -self.shape[d] <= index < self.shape[d]:
            raise IndexError(f"select: index {index} is out of range for dim {dim} of size {self.shape[d]}")
        return ops.GetItem.apply(self, index=(slice(None),) * d + (int(index),))

    def flip(self, *dims):
        """Reverse the order along the given dims (a view-like slice with step -1; the gradient flips back)."""
        dims = _norm_axes(_shape_arg(dims), self.ndim, "flip")
        return ops.GetItem.apply(self, index=tuple(slice(None, None, -1) if i in dims else slice(None)
                                                   for i in range(self.ndim)))

    def movedim(self, source, destination):
        src = _norm_axes(source, self.ndim, "movedim") if isinstance(source, int) else \
            tuple(_one_dim(s, self.ndim, "movedim") for s in source)
        dst = _norm_axes(destination, self.ndim, "movedim") if isinstance(destination, int) else \
            tuple(_one_dim(s, self.ndim, "movedim") for s in destination)
        if len(src) != len(dst):
            raise ValueError(f"movedim: source {source} and destination {destination} differ in length")
        order = [i for i in range(self.ndim) if i not in src]
        for d, s in sorted(zip(dst, src)):
            order.insert(d, s)
        return self.permute(order)

    moveaxis = movedim

    @composite("tril")
    def tril(self, diagonal: int = 0):
        """The lower triangle of the last two dims (the rest zero); the gradient is masked the same way."""
        mask = ops.Detached.apply(fn=np.tri, args=self.shape[-2:], k=diagonal, dtype=bool_)
        return Tensor.where(mask, self, 0)

    @composite("triu")
    def triu(self, diagonal: int = 0):
        mask = ~ops.Detached.apply(fn=np.tri, args=self.shape[-2:], k=diagonal - 1, dtype=bool_)
        return Tensor.where(mask, self, 0)

    @composite("outer")
    def outer(self, other):
        if self.ndim != 1 or other.ndim != 1:
            raise ValueError(f"outer: needs two 1-D tensors, got shapes {self.shape} and {np.shape(other)}")
        return self.reshape(-1, 1) * other.reshape(1, -1)

    ger = outer

    def mm(self, other):
        if self.ndim != 2 or np.ndim(other) != 2:
            raise ValueError(f"mm: needs two matrices, got shapes {self.shape} and {np.shape(other)} "
                             f"(matmul broadcasts)")
        return self.matmul(other)

    def bmm(self, other):
        if self.ndim != 3 or np.ndim(other) != 3 or self.shape[0] != np.shape(other)[0]:
            raise ValueError(f"bmm: needs two (B, n, m) batches of the same B, got shapes {self.shape} and "
                             f"{np.shape(other)}")
        return self.matmul(other)

    def mv(self, vec):
        if self.ndim != 2 or np.ndim(vec) != 1:
            raise ValueError(f"mv: needs a matrix and a vector, got shapes {self.shape} and {np.shape(vec)}")
        return self.matmul(vec)

    @composite("sort")
    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """(values, indices) along dim; the values' gradient goes back to where each came from."""
        d = _one_dim(dim, self.ndim, "sort")
        idx = self.argsort(d, descending)
        return return_types.sort(self.gather(d, idx), idx) if self.ndim else return_types.sort(self, idx)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        if self.ndim == 0:
            return Tensor._const(np.zeros((), int64))
        d = _one_dim(dim, self.ndim, "argsort")
        return ops.Detached.apply(self, fn=_argsort, axis=d, descending=descending)

    @composite("topk")
    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
        """The k largest (or smallest) values along dim and their indices, as torch.topk."""
        d = _one_dim(dim, self.ndim, "topk")
        if not 0 <= k <= (self.shape[d] if self.ndim else 1):
            raise IndexError(f"topk: k={k} is out of range for dim {dim} of size {self.shape[d] if self.ndim else 1}")
        if self.ndim == 0:
            return return_types.topk(self, Tensor._const(np.zeros((), int64)))
        idx = ops.Detached.apply(self.argsort(d, descending=largest), fn=_first_k, k=k, axis=d)
        return return_types.topk(self.gather(d, idx), idx)

    def nonzero(self, as_tuple: bool = False):
        """Indices of the nonzero elements: an (n, ndim) int64 tensor, or one per dim with as_tuple=True."""
        if as_tuple:
            return tuple(ops.Detached.apply(self, fn=_nonzero, dim=i) for i in range(self.ndim))
        return ops.Detached.apply(self, fn=_nonzero)

    def count_nonzero(self, dim=None) -> Tensor:
        return ops.Detached.apply(self, fn=_count_nonzero, axis=_norm_axes(dim, self.ndim, "count_nonzero"))

    @composite("unfold")
    def unfold(self, dimension: int, size: int, step: int):
        """Windows of `size` every `step` along a dim, as a new last dim (torch.Tensor.unfold)."""
        d = _one_dim(dimension, self.ndim, "unfold")
        n = self.shape[d]
        if size > n or size <= 0 or step <= 0:
            raise ValueError(f"unfold: size {size} and step {step} don't fit dim {dimension} of size {n}")
        count = (n - size) // step + 1
        x = self.index_select(d, ops.Detached.apply(fn=_windows_index, count=count, size=size, step=step))
        return x.reshape(self.shape[:d] + (count, size) + self.shape[d + 1:]).movedim(d + 1, -1)

    def cumprod(self, dim=None, *, axis=None):
        """Running products along dim; differentiable where the input has no zeros (else a clear error)."""
        if axis is not None:
            dim, _ = _dim_alias("cumprod", dim, axis)
        if dim is None:
            raise TypeError("cumprod: dim is required, e.g. x.cumprod(0)")
        if self.ndim == 0:
            return self
        d = _one_dim(dim, self.ndim, "cumprod")
        return ops.Cumprod.apply(self, axis=d)

    def unflatten(self, dim: int, sizes):
        d = _one_dim(dim, self.ndim, "unflatten")
        return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])

    @composite("repeat_interleave")
    def repeat_interleave(self, repeats, dim=None):
        """Each element `repeats` times in a row along dim (None: of the flattened tensor)."""
        x, d = (self.reshape(-1), 0) if dim is None else (self, _one_dim(dim, self.ndim, "repeat_interleave"))
        if isinstance(repeats, (int, np.integer)):
            return x.index_select(d, ops.Detached.apply(fn=_repeat_index, args=(int(repeats),), n=x.shape[d]))
        reps = repeats if isinstance(repeats, Tensor) else Tensor._const(np.asarray(repeats))
        return x.index_select(d, ops.Detached.apply(reps, fn=_repeat_index, n=x.shape[d]))

    @composite("roll")
    def roll(self, shifts, dims=None):
        """Shift elements along dims, wrapping around (torch.roll); dims None rolls the flattened tensor."""
        if dims is None:
            return self.reshape(-1).roll(shifts, 0).reshape(self.shape)
        shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
        dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
        if len(shifts) != len(dims):
            raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
        out = self
        for sh, dm in zip(shifts, dims):
            d = _one_dim(dm, self.ndim, "roll")
            out = out.index_select(d, ops.Detached.apply(fn=_rolled_index, n=self.shape[d], shift=sh))
        return out

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1):
        """The diagonal of dims (dim1, dim2), appended as the last dim, as torch.diagonal."""
        d1, d2 = _one_dim(dim1, self.ndim, "diagonal"), _one_dim(dim2, self.ndim, "diagonal")
        if d1 == d2:
            raise ValueError("diagonal: dim1 and dim2 must differ")
        rest = [i for i in range(self.ndim) if i not in (d1, d2)]
        x = self.permute(rest + [d1, d2])
        n1, n2 = x.shape[-2:]
        i = ops.Detached.apply(fn=_diagonal_index, n1=n1, n2=n2, offset=offset)
        return ops.GetItem.apply(x, i, i + offset, index=(Ellipsis, ops.At(0), ops.At(1)))

    @composite("diag")
    def diag(self, diagonal: int = 0):
        """1-D: a square matrix with the vector on a diagonal; 2-D: that diagonal, as torch.diag."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise ValueError(f"diag: expects a 1-D or 2-D tensor, got shape {self.shape}")
        n = self.shape[0] + abs(diagonal)
        eye = ops.Detached.apply(fn=np.eye, args=(n,), k=diagonal, dtype=bool_)
        return Tensor.where(eye, self[ops.Detached.apply(eye, fn=_diag_picks)], 0)

    @composite("trace")
    def trace(self):
        if self.ndim != 2:
            raise ValueError(f"trace: expects a matrix, got shape {self.shape}")
        return self.diagonal().sum()

    @composite("median")
    def median(self, dim=None, keepdim: bool = False):
        """The lower median (of all elements, or (values, indices) along dim), as torch.median."""
        if dim is None:
            flat = self.reshape(-1)
            if flat.shape[0] == 0:
                raise ValueError("median: of an empty tensor")
            return flat.sort().values[(flat.shape[0] - 1) // 2]
        d = _one_dim(dim, self.ndim, "median")
        srt = self.sort(d)
        k = (self.shape[d] - 1) // 2
        idx = ops.Detached.apply(srt.indices, fn=_take_one, k=k, axis=d)
        values = self.gather(d, idx)
        if not keepdim:
            values, idx = values.squeeze(d), idx.squeeze(d)
        return return_types.median(values, idx)

    def unbind(self, dim: int = 0) -> tuple:
        d = _one_dim(dim, self.ndim, "unbind")
        return tuple(ops.GetItem.apply(self, index=(slice(None),) * d + (i,)) for i in range(self.shape[d]))

    def gather(self, dim: int, index, *, axis=None):
        """out[i][j] = self[index[i][j]][j] for dim 0 (and so on), as torch.gather; the gradient scatters back."""
        if axis is not None:
            dim, _ = _dim_alias("gather", dim, axis)
        idx = _int_index(index, "gather")
        d = _one_dim(dim, self.ndim, "gather")
        if idx.ndim != self.ndim:
            raise ValueError(f"gather: index must have as many dims as the input ({self.ndim}), got shape {idx.shape}")
        if any(i > s for k, (i, s) in enumerate(zip(idx.shape, self.shape)) if k != d):
            raise ValueError(f"gather: index shape {idx.shape} is larger than the input {self.shape} "
                             f"outside dim {d}")
        _check_index_range(idx, self.shape[d], "gather")
        index = index.detach() if isinstance(index, Tensor) else Tensor._const(idx)
        return ops.Gather.apply(self, index, axis=d)

    def index_select(self, dim: int, index, *, axis=None):
        """The entries at the 1-D `index` along dim (repeats allowed)."""
        if axis is not None:
            dim, _ = _dim_alias("index_select", dim, axis)
        idx = _int_index(index, "index_select")
        if idx.ndim > 1:
            raise ValueError(f"index_select: index must be 1-D, got shape {idx.shape}")
        d = _one_dim(dim, self.ndim, "index_select")
        _check_index_range(idx, self.shape[d], "index_select")
        index = index.reshape(-1) if isinstance(index, Tensor) else Tensor._const(idx.reshape(-1))
        return ops.GetItem.apply(self, index, index=(slice(None),) * d + (ops.At(0),))

    @composite("masked_fill")
    def masked_fill(self, mask, value):
        """`value` where mask is True, self elsewhere; mask must be boolean and broadcast to self's shape."""
        m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got {m.dtype} (compare first, e.g. x > 0)")
        if np.broadcast_shapes(m.shape, self.shape) != self.shape:
            raise ValueError(f"masked_fill: mask of shape {m.shape} doesn't broadcast to {self.shape}")
        if isinstance(value, Tensor) and value.ndim:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
        cond = mask if isinstance(mask, Tensor) else m  # a tensor mask stays an op input (compile records it)
        return Tensor.where(cond, value if isinstance(value, Tensor) else self._lift(value), self)

    # -- in-place ops: they write into self.data; the autograd rules live in inplace.py ----
    def __setitem__(self, index, value) -> None:
        inplace.setitem(self, index, value)

    def add_(self, other, alpha=1) -> Tensor:
        return inplace.binary(self, "add", other, "add_", alpha)

    def sub_(self, other, alpha=1) -> Tensor:
        return inplace.binary(self, "sub", other, "sub_", alpha)

    def mul_(self, other) -> Tensor:
        return inplace.binary(self, "mul", other, "mul_")

    def div_(self, other) -> Tensor:
        return inplace.binary(self, "div", other, "div_")

    def __iadd__(self, other):
        return inplace.binary(self, "add", other, "+=")

    def __isub__(self, other):
        return inplace.binary(self, "sub", other, "-=")

    def __imul__(self, other):
        return inplace.binary(self, "mul", other, "*=")

    def __itruediv__(self, other):
        return inplace.binary(self, "div", other, "/=")

    def clamp_(self, min=None, max=None) -> Tensor:  # noqa: A002  (PyTorch's keyword names)
        return inplace.clamp(self, min, max)

    def fill_(self, value) -> Tensor:
        return inplace.fill(self, value, "fill_")

    def zero_(self) -> Tensor:
        return inplace.fill(self, 0, "zero_")

    def copy_(self, src) -> Tensor:
        return inplace.copy(self, src)

    def relu_(self) -> Tensor:
        return inplace.apply(self, "relu_", Tensor.relu, reads_self=True)

    def sigmoid_(self) -> Tensor:
        return inplace.apply(self, "sigmoid_", Tensor.sigmoid)

    def tanh_(self) -> Tensor:
        return inplace.apply(self, "tanh_", Tensor.tanh)

    def exp_(self) -> Tensor:
        return inplace.apply(self, "exp_", Tensor.exp)

    def log_(self) -> Tensor:
        return inplace.apply(self, "log_", Tensor.log, reads_self=True)

    def sqrt_(self) -> Tensor:
        return inplace.apply(self, "sqrt_", Tensor.sqrt)

    def abs_(self) -> Tensor:
        return inplace.apply(self, "abs_", Tensor.abs, reads_self=True)

    def neg_(self) -> Tensor:
        return inplace.apply(self, "neg_", Tensor.__neg__)

    def pow_(self, exponent) -> Tensor:
        others = (exponent,) if isinstance(exponent, Tensor) else ()
        return inplace.apply(self, "pow_", lambda s: s ** exponent, others, reads_self=True)

    def masked_fill_(self, mask, value) -> Tensor:
        others = (value,) if isinstance(value, Tensor) else ()
        return inplace.apply(self, "masked_fill_", lambda s: s.masked_fill(mask, value), others)

    def clamp_min_(self, min) -> Tensor:  # noqa: A002  (PyTorch's keyword name)
        return inplace.clamp(self, min, None, "clamp_min_")

    def clamp_max_(self, max) -> Tensor:  # noqa: A002
        return inplace.clamp(self, None, max, "clamp_max_")

    @property
    def _version(self) -> int:
        """In-place writes into this tensor's memory so far (shared by its views), as in PyTorch."""
        return inplace.version(self)

    @staticmethod
    def cat(tensors, dim=None, *, axis=None) -> Tensor:
        dim = _dim_alias("cat", dim, axis)[0] if axis is not None else 0 if dim is None else dim
        tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
        if not tensors:
            raise ValueError("cat: needs at least one tensor")
        dtype = np.result_type(*[t.data.dtype for t in tensors])
        tensors = [t.cast(dtype) for t in tensors]
        return ops.Cat.apply(*tensors, axis=dim)

    @staticmethod
    @composite("stack")
    def stack(tensors, dim=None, *, axis=None) -> Tensor:
        dim = _dim_alias("stack", dim, axis)[0] if axis is not None else 0 if dim is None else dim
        tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
        if not tensors:
            raise ValueError("stack: needs at least one tensor")
        shapes = {t.shape for t in tensors}
        if len(shapes) > 1:
            raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
        return Tensor.cat([t.unsqueeze(dim) for t in tensors], dim=dim)

    # -- linear algebra ------------------------------------------------------------
    def matmul(self, other) -> Tensor:
        """Matrix product with NumPy's matmul rules (batching, broadcasting, 1-D)."""
        other = self._lift(other)
        a, b = self, other
        if a.data.dtype != b.data.dtype:
            a, b = _promote(a, b)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least one dimension, got shapes {a.shape} and {b.shape}")
        k = b.shape[-2] if b.ndim >= 2 else b.shape[0]
        if a.shape[-1] != k:  # checked here so the message names the caller's shapes, not the 1-D reshapes
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} don't match ({a.shape[-1]} != {k})")
        if a.ndim >= 2 and b.ndim >= 2:
            return ops.Matmul.apply(a, b)
        # 1-D operands: promote to matrices, multiply, drop the added axis
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        out = ops.Matmul.apply(a2, b2)
        if a.ndim == 1 and b.ndim == 1:
            return out.reshape(())
        return out.squeeze(-2 if a.ndim == 1 else -1)

    dot = matmul

    def linear(self, weight, bias=None) -> Tensor:
        """self @ weight.T + bias, with weight (out, in) as in nn.Linear; no transpose is materialised."""
        if weight.ndim != 2 or self.ndim < 2 or self.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input {self.shape} and weight {weight.shape} don't fit "
                             f"(need input (..., in) and weight (out, in))")
        if weight.dtype != self.dtype or (bias is not None and (bias.dtype != self.dtype or bias.ndim > 1)):
            out = ops.Matmul.apply(*_promote(self, weight), tb=True)  # mixed dtypes: the general path
            out = out if bias is None else out + bias
            if out._ctx is not None:
                _tag_call("linear", (self, weight, bias), None, [out])
            return out
        # one op, the whole call: Linear names itself `linear` (call_name), no tagging cost per step
        return ops.Linear.apply(self, weight) if bias is None else ops.Linear.apply(self, weight, bias)

    # -- neural-network functions -------------------------------------------------------
    @composite("softmax")
    def softmax(self, dim=None, *, axis=None):
        """exp(log_softmax): dim defaults to the last."""
        dim = _dim_alias("softmax", dim, axis)[0] if axis is not None else -1 if dim is None else dim
        return self.log_softmax(dim).exp()

    @composite("log_softmax")
    def log_softmax(self, dim=None, *, axis=None):
        dim = _dim_alias("log_softmax", dim, axis)[0] if axis is not None else -1 if dim is None else dim
        return ops.LogSoftmax.apply(self, axis=_one_dim(dim, self.ndim, "log_softmax"))

    @composite("cross_entropy")
    def cross_entropy(self, labels, reduction: str = "mean"):
        """Softmax cross-entropy of logits (N, C) against class indices (N,) or targets (N, C)."""
        if self.ndim != 2:
            raise ValueError(f"cross_entropy: logits must have shape (N, C), got {self.shape}")
        n, c = self.shape
        y = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
        if y.dtype.kind in "iu":
            if y.shape != (n,):
                raise ValueError(f"cross_entropy: labels must have shape ({n},) for logits {self.shape}, "
                                 f"got {y.shape}")
            if n and (y.min() < 0 or y.max() >= c):
                bad = y[(y < 0) | (y >= c)][0]
                raise IndexError(f"cross_entropy: label {bad} is out of range for {c} classes")
            target = labels.detach() if isinstance(labels, Tensor) else Tensor._const(y)  # CrossEntropy reads indices
        elif y.dtype.kind == "f":
            if y.shape != self.shape:
                raise ValueError(f"cross_entropy: target probabilities must have the logits' shape "
                                 f"{self.shape}, got {y.shape}")
            # the target gets no gradient here (nn.functional.cross_entropy differentiates a target that asks)
            target = labels.detach() if isinstance(labels, Tensor) else Tensor._const(y)
            target = target.cast(self.data.dtype)
        else:
            raise TypeError(f"cross_entropy: labels must be integer class indices or float targets, got {y.dtype}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        return ops.CrossEntropy.apply(self, target, reduction=reduction)

    def unfold2d(self, kernel, stride=1):
        """Sliding kh x kw windows of an (N, C, H, W) tensor -> (C, kh, kw, N, OH, OW) (im2col)."""
        if self.ndim != 4:
            raise ValueError(f"unfold2d: expected an (N, C, H, W) tensor, got shape {self.shape}")
        kh, kw = _pair(kernel, "kernel")
        sh, sw = _pair(stride, "stride")
        if kh > self.shape[2] or kw > self.shape[3]:
            raise ValueError(f"unfold2d: kernel {(kh, kw)} is larger than the input {self.shape[2:]} "
                             f"(after padding)")
        return ops.Unfold.apply(self, kernel=(kh, kw), stride=(sh, sw))

    @composite("conv2d")
    def conv2d(self, weight, bias=None, stride=1, padding=0):
        """2-D cross-correlation on NCHW input with weight (O, C, kh, kw): im2col + one GEMM (ops.Conv2d)."""
        if self.ndim != 4 or weight.ndim != 4:
            raise ValueError(f"conv2d: expected input (N, C, H, W) and weight (O, C, kh, kw), "
                             f"got {self.shape} and {weight.shape}")
        c = self.shape[1]
        o, wc, kh, kw = weight.shape
        if wc != c:
            raise ValueError(f"conv2d: input has {c} channels but weight {weight.shape} expects {wc}")
        if bias is not None and bias.shape != (o,):
            raise ValueError(f"conv2d: bias must have shape ({o},), got {bias.shape}")
        ph, pw = _pair(padding, "padding")
        sh, sw = _pair(stride, "stride")
        if kh > self.shape[2] + 2 * ph or kw > self.shape[3] + 2 * pw:
            raise ValueError(f"conv2d: kernel {(kh, kw)} is larger than the input {self.shape[2:]} "
                             f"(after padding)")
        x = self
        if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
            x, weight = _promote(x, weight)
            bias = None if bias is None else bias.cast(x.dtype)
        inputs = (x, weight) if bias is None else (x, weight, bias)
        return ops.Conv2d.apply(*inputs, stride=(sh, sw), padding=(ph, pw))

    def _pool(self, kernel, stride, padding, kind):
        if self.ndim != 4:
            raise ValueError(f"pool2d: expected an (N, C, H, W) tensor, got shape {self.shape}")
        kh, kw = _pair(kernel, "kernel")
        sh, sw = _pair(kernel if stride is None else stride, "stride")
        ph, pw = _pair(padding, "padding")
        h, w = self.shape[2] + 2 * ph, self.shape[3] + 2 * pw
        if kh > h or kw > w:
            raise ValueError(f"pool2d: kernel {(kh, kw)} is larger than the input {(h, w)}")
        geometry = ops._PoolGeometry(self.shape, (kh, kw), (sh, sw), (ph, pw))
        if kind == "max":
            return ops.MaxPool2d.apply(self, geometry=geometry)
        x = self if _is_float(self.dtype) else self.float()
        return ops.PoolGather.apply(x, geometry=geometry, scale=1.0 / (kh * kw))

    @composite("max_pool2d")
    def max_pool2d(self, kernel=2, stride=None, padding=0):
        """Max over windows; ties share the gradient equally (see Tensor.max)."""
        return self._pool(kernel, stride, padding, "max")

    @composite("avg_pool2d")
    def avg_pool2d(self, kernel=2, stride=None, padding=0):
        """Mean over windows (zero padding counts, as PyTorch's default)."""
        return self._pool(kernel, stride, padding, "avg")

    @composite("dropout")
    def dropout(self, p: float = 0.5, training: bool = True):
        """Zero each element with probability p and scale the rest by 1/(1-p)."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout: p must be in [0, 1], got {p}")
        if not training or p == 0.0:
            return self
        if p == 1.0:
            return self * 0.0
        # the mask is a recorded random op: it draws from rng() when it runs, so capture replays fresh draws
        return self * ops.DropoutMask.apply(shape=self.shape, p=p, dtype=self.data.dtype)


# ---------------------------------------------------------------------------
# helpers used by Tensor methods
# ---------------------------------------------------------------------------


# NumPy functions for ops.Detached: module level, so a recording can bake them in and compare them


def _made(fn, *args) -> np.ndarray:
    """A new array fn(*args) of plain values (a factory's), made by a recorded op (ops.Detached)."""
    return ops.Detached.apply(fn=fn, args=args).data


def _full_checked(shape, fill_value, dtype):
    return _cast_checked(np.full(shape, fill_value), dtype)


def _arange_checked(start, stop, step, dtype):
    return _cast_checked(np.arange(start, stop, step), dtype)


def _linspace(start, end, steps, dtype):
    return np.linspace(start, end, steps).astype(dtype)


def _eye(n, m, dtype):
    return np.eye(n, m, dtype=dtype)


def _draw(draw, **kw) -> np.ndarray:
    """Random numbers from a recorded op (ops.Random): under compile a replay draws fresh ones, in eager order."""
    return ops.Random.apply(draw=draw, **kw).data


def _normal(r, shape, dtype):
    return r.standard_normal(shape, dtype=dtype)


def _uniform(r, shape, low, high, dtype):
    data = r.random(shape, dtype=dtype)
    if (low, high) != (0.0, 1.0):
        data = data * dtype.type(high - low) + dtype.type(low)
    return data


def _integers(r, low, high, size):
    return r.integers(low, high, size, dtype=np.int64)


def _permutation(r, n, dtype):
    return r.permutation(n).astype(dtype)


def _windows_index(count, size, step):
    return (np.arange(count)[:, None] * step + np.arange(size)).ravel()


def _repeat_index(repeats, n):
    return np.repeat(np.arange(n), repeats)


def _rolled_index(n, shift):
    return np.roll(np.arange(n), shift)


def _diagonal_index(n1, n2, offset):
    return np.arange(max(0, -offset), min(n1, n2 - offset)) if n2 - offset > 0 else np.arange(0)


def _diag_picks(eye):
    """For each place of a square matrix, the vector entry on its diagonal (0 off it)."""
    rows, cols = np.nonzero(eye)
    picks = np.zeros(eye.shape, np.int64)
    picks[rows, cols] = np.arange(len(rows))
    return picks


def _arg_index(a, which, axis, keepdims):
    return np.asarray(which(a, axis=axis, keepdims=keepdims), int64)


def _argsort(a, axis, descending):
    if descending and a.dtype.kind == "b":
        return np.ascontiguousarray(np.flip(np.argsort(a, axis=axis, kind="stable"), axis), dtype=int64)
    idx = np.argsort(-a if descending else a, axis=axis, kind="stable")
    return np.ascontiguousarray(idx, dtype=int64)


def _first_k(idx, k, axis):
    return np.ascontiguousarray(np.take(idx, np.arange(k), axis=axis))


def _take_one(idx, k, axis):
    return np.ascontiguousarray(idx.take([k], axis=axis))


def _nonzero(a, dim=None):
    found = np.nonzero(a)
    if dim is not None:
        return found[dim].astype(int64)
    return np.stack(found, axis=1).astype(int64) if found else np.zeros((0, 0), int64)


def _count_nonzero(a, axis):
    return np.asarray(np.count_nonzero(a, axis=axis), int64)


def _finite_max(a, axis):
    """The max over axis (kept), 0 where it is not finite (logsumexp's shift)."""
    m = np.max(a, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0).astype(a.dtype)


def _dtype_of(t):
    return t.data.dtype if isinstance(t, Tensor) else np.asarray(t).dtype


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _int_index(index, op: str) -> np.ndarray:
    idx = index.data if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got {idx.dtype}")
    return idx


def _check_index_range(idx: np.ndarray, n: int, op: str) -> None:
    """PyTorch rejects negative and too-large indices here (NumPy would wrap the negative ones)."""
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].ravel()[0]
        raise IndexError(f"{op}: index {bad} is out of range for a dim of size {n}")


def _pair(v, what: str) -> tuple:
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    v = tuple(int(x) for x in v)
    if len(v) != 2 or min(v) < (0 if what == "padding" else 1):
        raise ValueError(f"{what} must be a positive int or a pair of them, got {v}")
    return v


def _promote(a: Tensor, b: Tensor):
    """Mixed dtypes: a float side wins over an int side (no float64 creep from int data)."""
    fa, fb = _is_float(a.data.dtype), _is_float(b.data.dtype)
    if fa and not fb:
        return a, b.cast(a.data.dtype)
    if fb and not fa:
        return a.cast(b.data.dtype), b
    if (a.data.ndim == 0) != (b.data.ndim == 0) and (a.data.dtype.kind == "b") == (b.data.dtype.kind == "b"):
        # PyTorch: within a category a 0-d tensor doesn't widen one with dims (float32 * float64 0-d -> float32)
        return (a.cast(b.data.dtype), b) if a.data.ndim == 0 else (a, b.cast(a.data.dtype))
    dt = np.result_type(a.data.dtype, b.data.dtype)
    return a.cast(dt), b.cast(dt)


def _index_arg(index):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


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


def _released_error(ctx: Function) -> RuntimeError:
    return RuntimeError(
        f"backward: the graph through {ctx.name} was already released by an earlier backward() "
        f"(it freed what {ctx.name} saved for its gradient); pass retain_graph=True to the first "
        f"backward() to go through it twice")


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

    Returns, with `inputs` given, one gradient (or None) per input; otherwise
    `(node, gradient)` for every leaf that requires grad and every tensor that
    called retain_grad(), in the order the sweep finished them.  Grad mode in
    this thread equals `create_graph` while it runs; without `retain_graph`
    every op is released right after its backward.
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
                    raise _released_error(ctx)
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
    """Add each gradient of a sweep into its tensor's `.grad` (PyTorch's accumulation).

    Runs with grad mode equal to the sweep's create_graph: the sum of an old and a new
    .grad is part of the graph exactly then.
    """
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
    """Gradients of `outputs` w.r.t. `inputs`, returned as a tuple; `.grad` is left alone.

    Semantics of torch.autograd.grad: `grad_outputs` is needed for non-scalar
    outputs; `retain_graph` defaults to `create_graph`.
    """
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


from . import inplace, ops  # noqa: E402  (the primitives subclass Function, defined above)
