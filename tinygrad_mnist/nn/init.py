"""Initializers with torch.nn.init's names and signatures: each fills a tensor in place and returns it.

    nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")   # He
    nn.init.normal_(layer.weight)                                 # N(0, 1), Nielsen's book
    nn.init.zeros_(layer.bias)

Values are drawn in float64 from the library's default stream (so
`tinygrad_mnist.manual_seed(s)` makes them reproducible), or from `generator=`
where given, and stored in the tensor's dtype.  Nothing is recorded in the graph.
"""

from __future__ import annotations

import math

import numpy as np

from .. import inplace
from ..engine import Tensor
from ..generator import check_generator, numpy_rng


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The gain torch.nn.init recommends for a nonlinearity (used by xavier_* and kaiming_*)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
              "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(t) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight (out, in) or a conv kernel (out, in, kh, kw), as PyTorch."""
    shape = t.shape
    if len(shape) < 2:
        raise ValueError(f"fan in/out need a weight with at least 2 dimensions, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fill(t: Tensor, values: np.ndarray) -> Tensor:
    """Write `values` into t's array (in place, like torch's init functions), in t's dtype."""
    if t.data.flags.writeable:
        np.copyto(t.data, values, casting="unsafe")
        inplace.written(t)  # an in-place write: graphs that saved t see it (version counter)
    else:  # e.g. a broadcast view: give the tensor its own array
        t.data = np.asarray(values).astype(t.data.dtype)
    return t


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """U(a, b)."""
    return _fill(tensor, _stream(generator, "uniform_").uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """N(mean, std^2).  With the defaults this is Nielsen's `np.random.randn` init."""
    return _fill(tensor, _stream(generator, "normal_").standard_normal(tensor.shape) * std + mean)


def _stream(generator, op: str):
    """The NumPy generator the values come from: `generator`'s, else the library's default stream."""
    return numpy_rng(check_generator(generator, op))


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def eye_(tensor: Tensor) -> Tensor:
    if tensor.ndim != 2:
        raise ValueError(f"eye_: needs a 2-D tensor, got shape {tensor.shape}")
    return _fill(tensor, np.eye(*tensor.shape))


def _kaiming_std(tensor, a, mode, nonlinearity) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """He init: U(-b, b) with b = gain * sqrt(3 / fan); the defaults (a=0) give gain sqrt(2), for ReLU."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    """He init: N(0, gain^2 / fan)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot init, U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def default_(weight: Tensor, bias: Tensor | None = None) -> None:
    """What nn.Linear and nn.Conv2d do by default in PyTorch (reset_parameters):

    weight: kaiming_uniform_(a=sqrt(5)), that is U(-1/sqrt(fan_in), 1/sqrt(fan_in));
    bias:   U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = _calculate_fan_in_and_fan_out(weight)[0]
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound)
