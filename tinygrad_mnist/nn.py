"""Layers on top of the engine: Module, Parameter, Linear, Conv2d, MLP, ...

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

import math
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from . import engine as _core
from .engine import Tensor

# ---------------------------------------------------------------------------
# Parameter
# ---------------------------------------------------------------------------


class Parameter(Tensor):
    """A Tensor a Module trains: a leaf with requires_grad=True.

    Like torch.nn.Parameter it shares memory with an ndarray it is given.  Any
    leaf Tensor with requires_grad=True stored on a Module counts as a parameter
    too; this subclass only makes the intent explicit.
    """

    __slots__ = ()
    _copies_data = False  # shares the array or tensor it wraps, as torch.nn.Parameter

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _is_param(v) -> bool:
    return isinstance(v, Tensor) and v.is_leaf and v.requires_grad


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


# ---------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------


class Module:
    """Base class of layers and models: parameter discovery, train/eval, state dicts."""

    training = True  # a class default, so subclasses need not call super().__init__()

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- discovery ---------------------------------------------------------------
    def _members(self):
        """(name, value) pairs that may hold parameters or modules, in assignment order."""
        return self.__dict__.items()

    def _walk(self, prefix: str, seen: set) -> Iterator[tuple[str, object]]:
        """Depth-first, in definition order: (dotted name, parameter or module); each module once."""
        for name, value in self._members():
            for full, obj in _scan(prefix + name, value):
                if isinstance(obj, Module):
                    if id(obj) in seen:
                        continue
                    seen.add(id(obj))
                    yield full, obj
                    yield from obj._walk(full + ".", seen)
                else:
                    yield full, obj

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, parameter), each shared parameter once, under its first name."""
        seen_params = set()
        for name, obj in self._walk(prefix + "." if prefix else "", {id(self)}):
            if not isinstance(obj, Module) and id(obj) not in seen_params:
                seen_params.add(id(obj))
                yield name, obj

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for self (named `prefix`, "" by default) and every submodule."""
        yield prefix, self
        for name, obj in self._walk(prefix + "." if prefix else "", {id(self)}):
            if isinstance(obj, Module):
                yield name, obj

    def modules(self) -> list[Module]:
        return [m for _, m in self.named_modules()]

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct submodules only."""
        seen = {id(self)}
        for name, value in self._members():
            for full, obj in _scan(name, value):
                if isinstance(obj, Module) and id(obj) not in seen:
                    seen.add(id(obj))
                    yield full, obj

    def children(self) -> list[Module]:
        return [m for _, m in self.named_children()]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- modes and gradients ---------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """name -> a copy of the parameter's array, in definition order."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (or Tensors) into the parameters of the same name.

        Shapes and dtypes must match exactly.  With strict=True missing and
        unexpected keys are errors too; otherwise they are returned.  Everything
        is checked before anything is copied, so a failed load changes nothing.
        """
        own = OrderedDict(self.named_parameters())
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
# initializers: fill a tensor in place, drawing from the library's generator
# ---------------------------------------------------------------------------


def _fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight (out, in) or a conv kernel (out, in, kh, kw), as PyTorch."""
    if len(shape) < 2:
        raise ValueError(f"fan in/out need a weight with at least 2 dimensions, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fill(t: Tensor, values: np.ndarray) -> Tensor:
    # drawn in float64, stored in the tensor's dtype (float32 for layers)
    t.data = values.astype(t.dtype)
    return t


def uniform_(t: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    return _fill(t, _core.rng().uniform(low, high, t.shape))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """N(mean, std^2).  With the defaults this is Nielsen's `np.random.randn` init."""
    return _fill(t, _core.rng().standard_normal(t.shape) * std + mean)


def zeros_(t: Tensor) -> Tensor:
    return _fill(t, np.zeros(t.shape))


def kaiming_uniform_(t: Tensor, gain: float = math.sqrt(2.0)) -> Tensor:
    """He init, U(-b, b) with b = gain * sqrt(3 / fan_in); the default gain suits ReLU."""
    bound = gain * math.sqrt(3.0 / _fans(t.shape)[0])
    return uniform_(t, -bound, bound)


def kaiming_normal_(t: Tensor, gain: float = math.sqrt(2.0)) -> Tensor:
    """He init, N(0, gain^2 / fan_in)."""
    return normal_(t, 0.0, gain / math.sqrt(_fans(t.shape)[0]))


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot init, U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(t.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def xavier_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(t.shape)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


# torch-style spelling: nn.init.xavier_uniform_(w)
init = types.SimpleNamespace(uniform_=uniform_, normal_=normal_, zeros_=zeros_, kaiming_uniform_=kaiming_uniform_,
                             kaiming_normal_=kaiming_normal_, xavier_uniform_=xavier_uniform_,
                             xavier_normal_=xavier_normal_)

INITS = ("kaiming", "xavier", "normal", "zeros")


def _init_layer(weight: Tensor, bias: Tensor | None, how: str) -> None:
    """Weight first, then bias (the order of the draws is part of reproducibility)."""
    if how == "kaiming":
        kaiming_uniform_(weight)
    elif how == "xavier":
        xavier_uniform_(weight)
    elif how == "normal":
        normal_(weight)
    elif how != "zeros":
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {how!r}")
    if bias is not None and how == "normal":
        normal_(bias)  # Nielsen's N(0, 1) biases; the others start biases at zero


# ---------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------


class Linear(Module):
    """y = x @ W.T + b with W of shape (out_features, in_features), as PyTorch.

    init: "kaiming" (He uniform, zero bias; for ReLU), "xavier" (Glorot uniform,
    zero bias; for sigmoid/tanh), "normal" (weights and biases N(0, 1), Nielsen's
    book) or "zeros".
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "kaiming"):
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = Parameter(np.zeros((self.out_features, self.in_features), np.float32))
        self.bias = Parameter(np.zeros(self.out_features, np.float32)) if bias else None
        _init_layer(self.weight, self.bias, init)

    def forward(self, x: Tensor) -> Tensor:
        return x.linear(self.weight, self.bias)  # x @ W.T + b without recording a transpose

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution on NCHW input (Tensor.conv2d); weight (out, in, kh, kw)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True,
                 init: str = "kaiming"):
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = Parameter(np.zeros(shape, np.float32))
        self.bias = Parameter(np.zeros(self.out_channels, np.float32)) if bias else None
        _init_layer(self.weight, self.bias, init)

    def forward(self, x: Tensor) -> Tensor:
        return x.conv2d(self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        return s + ("" if self.bias is not None else ", bias=False")


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(x) for x in v)


class MaxPool2d(Module):
    def __init__(self, kernel_size=2, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return x.max_pool2d(self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AvgPool2d(MaxPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return x.avg_pool2d(self.kernel_size, self.stride, self.padding)


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zero inputs with probability p while training (scaling the rest by 1/(1-p)); identity in eval()."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return x.dropout(self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Identity(Module):
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


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "identity": Identity}


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


class Sequential(Module):
    """Layers applied in order; parameters are named by position (`0.weight`), as PyTorch."""

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = layers[0]
        self.layers = [_as_layer(layer) for layer in layers]

    def _members(self):
        # positions instead of "layers.<i>", so state dicts line up with torch.nn.Sequential
        yield from ((str(i), layer) for i, layer in enumerate(self.layers))
        yield from ((k, v) for k, v in self.__dict__.items() if k != "layers")

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def append(self, layer) -> Sequential:
        self.layers.append(_as_layer(layer))
        return self

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(self.layers[i])
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)


class MLP(Sequential):
    """A fully connected network: Linear layers of `sizes`, each but the last followed by `activation`.

    MLP([784, 30, 10], "sigmoid", output_activation="sigmoid", init="nielsen")
    is the network of Nielsen's book.  `dropout` > 0 adds Dropout after each
    hidden activation.  init="nielsen" draws N(0, 1) like his network.py: first
    every layer's biases, then every layer's weights, so that

        g = np.random.default_rng(seed)
        biases = [g.standard_normal((y, 1)) for y in sizes[1:]]
        weights = [g.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:])]

    gives exactly (in float32) the parameters after manual_seed(seed).
    """

    def __init__(self, sizes, activation="relu", output_activation=None, init: str = "kaiming",
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
                    normal_(lin.bias)
            for lin in linears:
                normal_(lin.weight)
