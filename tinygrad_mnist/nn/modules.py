"""Layers on top of the engine: Module, Parameter, Linear, Conv2d, containers, loss modules, MLP.

A Module finds its parameters by looking at its attributes (and inside lists,
tuples and dicts of them), in the order they were assigned, so a model is just

    class Net(nn.Module):
        def __init__(self):
            self.fc1 = nn.Linear(784, 30)
            self.fc2 = nn.Linear(30, 10)

        def forward(self, x):
            return self.fc2(self.fc1(x).sigmoid())

and `Net().named_parameters()` yields fc1.weight, fc1.bias, fc2.weight, fc2.bias.
Calling super().__init__() is optional.  Initializers draw from the library's
generator, so `tinygrad_mnist.manual_seed(s)` makes every model reproducible.

The ready-made MNIST models (nielsen, mlp, cnn, MODELS) live in models.py.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from .. import engine as _core
from .. import inplace
from ..engine import Tensor
from . import functional as F
from . import init

# ---------------------------------------------------------------------------
# Parameter
# ---------------------------------------------------------------------------


class Parameter(Tensor):
    """A Tensor a Module trains: a leaf, requiring grad unless told otherwise.

    Like torch.nn.Parameter it shares memory with an ndarray (or Tensor) it is
    given.  A Parameter stays a parameter of its module when frozen with
    requires_grad_(False); any other leaf Tensor with requires_grad=True stored on
    a Module counts as a parameter too.
    """

    __slots__ = ()
    _copies_data = False  # shares the array or tensor it wraps, as torch.nn.Parameter

    def __init__(self, data=None, requires_grad: bool = True, dtype=None):
        super().__init__(np.zeros(0, np.float32) if data is None else data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _is_param(v) -> bool:
    return isinstance(v, Parameter) or (isinstance(v, Tensor) and v.is_leaf and v.requires_grad)


def _scan(name: str, value) -> Iterator[tuple[str, object]]:
    """The parameters and modules inside one attribute value, descending into containers."""
    if isinstance(value, Module) or _is_param(value):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _scan(f"{name}.{i}", v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                yield from _scan(f"{name}.{k}", v)


class IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list


def _to_args(args, kwargs, op: str = "Module.to"):
    """The dtype (or None) of to(...) arguments, read as Tensor.to reads them; devices other than the CPU raise."""
    dtype, device = kwargs.pop("dtype", None), kwargs.pop("device", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"{op}: unexpected arguments {', '.join(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, str):
            device = a
        else:
            dtype = a
    _core._check_device(device, op)
    return None if dtype is None else np.dtype(dtype)


# ---------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------


class Module:
    """Base class of layers and models: parameter discovery, train/eval, state dicts."""

    training = True  # a class default, so subclasses need not call super().__init__()

    def __init__(self):
        pass  # nothing to register: parameters are found by looking at attributes

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- discovery ---------------------------------------------------------------
    def _members(self):
        """(name, value) pairs that may hold parameters or modules, in assignment order."""
        return self.__dict__.items()

    def _own(self, prefix: str, buffers: bool):
        """(own, rest): the parameters held directly as attributes (then the persistent buffers), and
        everything else in assignment order: submodules, and tensors inside lists, tuples and dicts."""
        own, rest = [], []
        for name, value in self._members():
            if _is_param(value):
                own.append((prefix + name, value))
            else:
                rest.extend(_scan(prefix + name, value))
        if buffers:
            for name, persistent in self.__dict__.get("_buffers", {}).items():
                if persistent and isinstance(getattr(self, name, None), Tensor):
                    own.append((prefix + name, getattr(self, name)))
        return own, rest

    def _walk(self, prefix: str, seen: set, buffers: bool = False) -> Iterator[tuple[str, object]]:
        """Depth-first: (dotted name, tensor or module); a module's own parameters (and buffers) come
        before its submodules', as PyTorch orders them; each module once."""
        own, rest = self._own(prefix, buffers)
        yield from own
        for full, obj in rest:
            if not isinstance(obj, Module):
                yield full, obj
            elif id(obj) not in seen:
                seen.add(id(obj))
                yield full, obj
                yield from obj._walk(full + ".", seen, buffers)

    def _tensors(self, prefix: str = "", recurse: bool = True, buffers: bool = False):
        seen_tensors = set()
        pre = prefix + "." if prefix else ""
        own, rest = self._own(pre, buffers)
        walk = self._walk(pre, {id(self)}, buffers) if recurse else own + [(n, t) for n, t in rest
                                                                            if not isinstance(t, Module)]
        for name, obj in walk:
            if not isinstance(obj, Module) and id(obj) not in seen_tensors:
                seen_tensors.add(id(obj))
                yield name, obj

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, parameter), each shared parameter once, under its first name."""
        return self._tensors(prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:
        """An iterator, as in PyTorch: list(model.parameters()) to keep them."""
        return (p for _, p in self.named_parameters(recurse=recurse))

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor the module keeps that is not trained (a mask, running statistics): in state_dict()
        when persistent, converted by to(dtype)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        self.__dict__.setdefault("_buffers", {})[name] = bool(persistent)
        setattr(self, name, tensor)

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        for mod_name, m in (self.named_modules(prefix) if recurse else [(prefix, self)]):
            for name in m.__dict__.get("_buffers", {}):
                value = getattr(m, name, None)
                if isinstance(value, Tensor):
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers(recurse=recurse))

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for self (named `prefix`, "" by default) and every submodule."""
        yield prefix, self
        for name, obj in self._walk(prefix + "." if prefix else "", {id(self)}):
            if isinstance(obj, Module):
                yield name, obj

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct submodules only."""
        seen = {id(self)}
        for name, obj in self._own("", False)[1]:
            if isinstance(obj, Module) and id(obj) not in seen:
                seen.add(id(obj))
                yield name, obj

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def apply(self, fn: Callable) -> Module:
        """Call fn(module) on every submodule, children first, then on self (as PyTorch); returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes, gradients, dtypes ------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        inplace.zero_grads(self.parameters(), set_to_none)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter; frozen ones stay in parameters() and state_dict()."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, **kwargs) -> Module:
        """to(dtype), to("cpu"), to(device="cpu", dtype=...): converts floating parameters in place."""
        dtype = _to_args(args, kwargs)
        if dtype is None:
            return self
        if dtype.kind != "f":
            raise TypeError(f"Module.to: parameters must stay floating point, got {dtype}")
        for p in [*self.parameters(), *self.buffers()]:
            if p.dtype.kind == "f" and p.dtype != dtype:
                p.data = p.data.astype(dtype)  # the same Parameter objects: optimizers keep working
                if p.grad is not None:
                    p.grad = p.grad.data.astype(dtype)
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    def cpu(self) -> Module:
        return self

    def cuda(self, device=None) -> Module:
        return self.to("cuda")  # raises: CPU only

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """name -> a detached copy of each parameter and persistent buffer, in PyTorch's order.

        Unlike PyTorch (whose state dict shares memory with the parameters), the
        values are copies: later training does not change a state dict you kept.
        """
        return OrderedDict((name, t.detach().clone()) for name, t in self._tensors(buffers=True))

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (or Tensors) into the parameters of the same name.

        Shapes and dtypes must match exactly.  With strict=True missing and
        unexpected keys are errors too; otherwise they are returned.  Everything
        is checked before anything is copied, so a failed load changes nothing.
        """
        own = OrderedDict(self._tensors(buffers=True))  # parameters and persistent buffers
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems, arrays = [], {}
        for key, p in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            arr = value.data if isinstance(value, Tensor) else np.asarray(value)
            if arr.shape != p.shape:
                problems.append(f"{key}: expected shape {p.shape}, found {arr.shape}")
            elif arr.dtype != p.dtype:
                problems.append(f"{key}: expected dtype {p.dtype}, found {arr.dtype}")
            arrays[key] = arr
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        for key, arr in arrays.items():
            own[key].data = np.array(arr, copy=True)  # own memory: later updates don't touch the caller's array
        return IncompatibleKeys(missing, unexpected)

    # -- printing ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [self.extra_repr()] if self.extra_repr() else []
        lines += [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()]
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and "\n" not in lines[0] and not lines[0].startswith("("):
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


# ---------------------------------------------------------------------------
# layer initialization presets
# ---------------------------------------------------------------------------

INITS = ("default", "kaiming", "xavier", "normal", "zeros")


def _init_layer(weight: Tensor, bias: Tensor | None, how: str) -> None:
    """Weight first, then bias (the order of the draws is part of reproducibility)."""
    if how == "default":
        init.default_(weight, bias)  # PyTorch's: U(+-1/sqrt(fan_in)) for weight and bias
        return
    if how == "kaiming":
        init.kaiming_uniform_(weight)  # He uniform, gain sqrt(2): for ReLU
    elif how == "xavier":
        init.xavier_uniform_(weight)
    elif how == "normal":
        init.normal_(weight)
    elif how != "zeros":
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {how!r}")
    if bias is not None and how == "normal":
        init.normal_(bias)  # Nielsen's N(0, 1) biases; kaiming and xavier start biases at zero


# ---------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------


def _float_dtype(dtype, device, what: str):
    _core._check_device(device, what)
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype.kind != "f":
        raise TypeError(f"{what}: dtype must be floating point, got {dtype}")
    return dtype


class Linear(Module):
    """y = x @ W.T + b with W of shape (out_features, in_features), as PyTorch.

    init: "default" (PyTorch's: weight and bias U(-1/sqrt(in), 1/sqrt(in))),
    "kaiming" (He uniform, zero bias; for ReLU), "xavier" (Glorot uniform, zero
    bias; for sigmoid/tanh), "normal" (weights and biases N(0, 1), Nielsen's
    book) or "zeros".
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None, *,
                 init: str = "default"):
        dtype = _float_dtype(dtype, device, "Linear")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = Parameter(np.zeros((self.out_features, self.in_features), dtype))
        self.bias = Parameter(np.zeros(self.out_features, dtype)) if bias else None
        _init_layer(self.weight, self.bias, init)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution on NCHW input; weight (out, in, kh, kw).  init as for Linear (fan_in = in * kh * kw)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None, *,
                 init: str = "default"):
        F._unsupported("Conv2d", dilation=(dilation, 1), groups=(groups, 1), padding_mode=(padding_mode, "zeros"))
        dtype = _float_dtype(dtype, device, "Conv2d")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = Parameter(np.zeros(shape, dtype))
        self.bias = Parameter(np.zeros(self.out_channels, dtype)) if bias else None
        _init_layer(self.weight, self.bias, init)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        return s + ("" if self.bias is not None else ", bias=False")


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(x) for x in v)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        F._unsupported("MaxPool2d", dilation=(dilation, 1), return_indices=(return_indices, False),
                       ceil_mode=(ceil_mode, False))
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        F._unsupported("AvgPool2d", ceil_mode=(ceil_mode, False), count_include_pad=(count_include_pad, True),
                       divisor_override=(divisor_override, None))
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zero inputs with probability p while training (scaling the rest by 1/(1-p)); identity in eval()."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.inplace = inplace  # accepted; the result is computed out of place and returned, as F.dropout's

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _Activation(Module):
    """A parameter-free elementwise layer.  inplace=True writes in place for ReLU; the others accept it and
    compute out of place (use the returned tensor)."""

    def __init__(self, inplace: bool = False):
        self.inplace = inplace


class ReLU(_Activation):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, self.inplace)


class LeakyReLU(_Activation):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, approximate=self.approximate)


class Softmax(Module):
    def __init__(self, dim=None):
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)


class SiLU(_Activation):
    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class ELU(_Activation):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)


class LayerNorm(Module):
    """Normalise over the last dimensions; weight ones and bias zeros, as PyTorch."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        dtype = _float_dtype(dtype, device, "LayerNorm")
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = tuple(int(s) for s in shape), eps, elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class _BatchNorm(Module):
    """Running statistics are buffers (in state_dict); train() uses batch statistics, eval() the running ones."""

    _ndims = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None):
        dtype = _float_dtype(dtype, device, type(self).__name__)
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(self.num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(self.num_features, dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._ndims:
            raise ValueError(f"{type(self).__name__}: expected {' or '.join(f'{d}-D' for d in self._ndims)} input, "
                             f"got shape {x.shape}")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            with _core.no_grad():  # a write primitive: compile replays the count too
                self.num_batches_tracked += 1
            if momentum is None:  # a cumulative moving average: 1 / count, as a tensor op (compile replays it)
                momentum = 1.0 / self.num_batches_tracked.double()
        use_batch = self.training or not self.track_running_stats
        return F.batch_norm(x, self.running_mean if not use_batch or self.training else None,
                            self.running_var if not use_batch or self.training else None, self.weight, self.bias,
                            use_batch, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    _ndims = (4,)


class Embedding(Module):
    """A lookup table: rows of weight (num_embeddings, embedding_dim), N(0, 1) init, as PyTorch."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, device=None, dtype=None):
        F._unsupported("Embedding", max_norm=(max_norm, None), scale_grad_by_freq=(scale_grad_by_freq, False),
                       sparse=(sparse, False))
        dtype = _float_dtype(dtype, device, "Embedding")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = None if padding_idx is None else padding_idx % self.num_embeddings
        if _weight is not None:
            self.weight = Parameter(_weight, requires_grad=not _freeze)
        else:
            self.weight = Parameter(np.zeros((self.num_embeddings, self.embedding_dim), dtype))
            init.normal_(self.weight)
            if self.padding_idx is not None:
                self.weight.data[self.padding_idx] = 0

    def forward(self, idx) -> Tensor:
        return F.embedding(idx, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class Identity(Module):
    """Returns its input; takes (and ignores) any constructor arguments, as PyTorch's."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x: Tensor) -> Tensor:
        return x


class Lambda(Module):
    """Wrap a plain function (Tensor -> Tensor) as a parameter-free layer."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "gelu": GELU, "silu": SiLU, "elu": ELU,
               "identity": Identity}


def _as_layer(layer) -> Module:
    if isinstance(layer, Module):
        return layer
    if isinstance(layer, type) and issubclass(layer, Module):
        return layer()
    if isinstance(layer, str):
        if layer.lower() not in ACTIVATIONS:
            raise ValueError(f"unknown activation {layer!r}; use one of {', '.join(ACTIVATIONS)} or a callable")
        return ACTIVATIONS[layer.lower()]()
    if callable(layer):
        return Lambda(layer)
    raise TypeError(f"expected a Module, an activation name or a callable, got {type(layer).__name__}")


# ---------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------


class _Container(Module):
    """Modules kept by name in `_modules` (an OrderedDict); the names are the state-dict prefixes."""

    def _members(self):
        yield from self._modules.items()
        yield from ((k, v) for k, v in self.__dict__.items() if k != "_modules")

    def __getattr__(self, name):  # only called when normal lookup fails: seq.fc1 for Sequential(OrderedDict)
        modules = self.__dict__.get("_modules")
        if modules is not None and name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __len__(self) -> int:
        return len(self._modules)


class _Indexed(_Container):
    """Shared by Sequential and ModuleList: integer indexing, slicing, append/extend/insert."""

    def _index(self, i: int) -> int:
        n = len(self._modules)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__}: index {i} is out of range for {n} modules")
        return i % n

    def __getitem__(self, i):
        items = list(self._modules.items())
        if isinstance(i, slice):
            out = type(self).__new__(type(self))
            out._modules = OrderedDict(items[i])
            return out
        return items[self._index(i)][1]

    def __setitem__(self, i: int, module) -> None:
        key = list(self._modules)[self._index(i)]
        self._modules[key] = _as_layer(module)

    def __delitem__(self, i) -> None:
        keys = list(self._modules)
        for key in (keys[i] if isinstance(i, slice) else [keys[self._index(i)]]):
            del self._modules[key]
        if all(k.isdigit() for k in keys):  # renumber, as PyTorch does
            self._modules = OrderedDict((str(j), m) for j, m in enumerate(self._modules.values()))

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self._modules[str(len(self._modules))] = _as_layer(module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, _as_layer(module))
        self._modules = OrderedDict((str(j), m) for j, m in enumerate(mods))


class Sequential(_Indexed):
    """Layers applied in order; parameters are named by position (`0.weight`), or by the names of an
    OrderedDict given instead, as PyTorch."""

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            self._modules = OrderedDict((str(k), _as_layer(v)) for k, v in layers[0].items())
            return
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = layers[0]
        self._modules = OrderedDict((str(i), _as_layer(layer)) for i, layer in enumerate(layers))

    @property
    def layers(self) -> list[Module]:
        return list(self._modules.values())

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x


class ModuleList(_Indexed):
    """A list of modules whose parameters the owner finds (`name.0.weight`, ...); it has no forward."""

    def __init__(self, modules=None):
        self._modules = OrderedDict()
        self.extend(modules or [])

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it and call its modules")


class ModuleDict(_Container):
    """A dict of modules, by string key, in insertion order (`name.key.weight`, ...)."""

    def __init__(self, modules=None):
        self._modules = OrderedDict()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict keys must be strings, got {type(key).__name__}")
        self._modules[key] = _as_layer(module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __contains__(self, key) -> bool:
        return key in self._modules

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules) -> None:
        for k, m in (modules.items() if hasattr(modules, "items") else modules):
            self[k] = m

    def pop(self, key: str) -> Module:
        return self._modules.pop(key)

    def clear(self) -> None:
        self._modules.clear()

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); call its modules by key")


class MLP(Sequential):
    """A fully connected network: Linear layers of `sizes`, each but the last followed by `activation`.

    MLP([784, 30, 10], "sigmoid", output_activation="sigmoid", init="nielsen")
    is the network of Nielsen's book.  `dropout` > 0 adds Dropout after each
    hidden activation.  `init` is one of Linear's (PyTorch's "default",
    "kaiming", "xavier", "normal", "zeros") or "nielsen", which draws N(0, 1)
    like his network.py: first every layer's biases, then every layer's
    weights, so that

        g = np.random.default_rng(seed)
        biases = [g.standard_normal((y, 1)) for y in sizes[1:]]
        weights = [g.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:])]

    gives exactly (in float32) the parameters after manual_seed(seed).
    """

    def __init__(self, sizes, activation="relu", output_activation=None, init: str = "default",
                 dropout: float = 0.0, bias: bool = True):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(n_in, n_out, bias, init="zeros" if init == "nielsen" else init))
            last = i == len(sizes) - 2
            act = output_activation if last else activation
            if act is not None:
                layers.append(_as_layer(act))
            if dropout and not last:
                layers.append(Dropout(dropout))
        super().__init__(*layers)
        self.sizes = sizes
        if init == "nielsen":
            linears = [m for m in self.layers if isinstance(m, Linear)]
            for lin in linears:
                if lin.bias is not None:
                    _init_module.normal_(lin.bias)
            for lin in linears:
                _init_module.normal_(lin.weight)


_init_module = init  # MLP's `init` argument shadows the module name inside __init__


# ---------------------------------------------------------------------------
# loss modules: thin wrappers of nn.functional, PyTorch's constructor arguments
# ---------------------------------------------------------------------------


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, reduction: str = "mean"):
        self.weight, self.reduction = weight, reduction


class CrossEntropyLoss(_WeightedLoss):
    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        F._unsupported("CrossEntropyLoss", size_average=(size_average, None), reduce=(reduce, None))
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target) -> Tensor:
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        F._unsupported("NLLLoss", size_average=(size_average, None), reduce=(reduce, None))
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    def forward(self, input: Tensor, target) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Tensor, target) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    def forward(self, input: Tensor, target) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
        F._unsupported("BCEWithLogitsLoss", size_average=(size_average, None), reduce=(reduce, None))
        self.weight, self.reduction, self.pos_weight = weight, reduction, pos_weight

    def forward(self, input: Tensor, target) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)
