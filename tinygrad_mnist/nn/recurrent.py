"""Recurrent layers with torch.nn's names, parameters and equations: RNN, GRU, LSTM.

    rnn = nn.LSTM(input_size=10, hidden_size=20, num_layers=2, batch_first=True)
    output, (h_n, c_n) = rnn(x)            # x (N, L, 10) -> output (N, L, 20), h_n and c_n (2, N, 20)

Each time step is a few recorded tensor ops (a matrix product, gate slices, sigmoid/tanh), so the
graph, gradcheck, grad-of-grad and tinygrad_mnist.compile see an unrolled network. The input's
projection is done for all time steps at once before the loop.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ..engine import Tensor
from ..functions import zeros
from . import functional as F
from . import init
from .modules import Module, Parameter, _float_dtype


def _rnn_tanh(x, h, w_hh, b_hh, state=None):
    return (x + h.linear(w_hh, b_hh)).tanh(), None


def _rnn_relu(x, h, w_hh, b_hh, state=None):
    return (x + h.linear(w_hh, b_hh)).relu(), None


def _gru(x, h, w_hh, b_hh, state=None):
    """PyTorch's GRU: gates in the order (r, z, n); the reset gate multiplies W_hn h + b_hn."""
    i_r, i_z, i_n = x.chunk(3, 1)
    h_r, h_z, h_n = h.linear(w_hh, b_hh).chunk(3, 1)
    r = (i_r + h_r).sigmoid()
    z = (i_z + h_z).sigmoid()
    n = (i_n + r * h_n).tanh()
    return n + z * (h - n), None  # (1 - z) * n + z * h


def _lstm(x, h, w_hh, b_hh, c):
    """PyTorch's LSTM: gates in the order (i, f, g, o)."""
    i, f, g, o = (x + h.linear(w_hh, b_hh)).chunk(4, 1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


class _RNNBase(Module):
    _gates = 1
    _cell = None

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        name = type(self).__name__
        dtype = _float_dtype(dtype, device, name)
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the probability of "
                             f"an element being zeroed, got {dropout!r}")
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        if not isinstance(proj_size, (int, np.integer)) or isinstance(proj_size, bool) or proj_size < 0:
            raise ValueError(f"{name}: proj_size should be a positive integer or zero to disable projections, "
                             f"got {proj_size!r}")
        if proj_size and not isinstance(self, LSTM):
            raise ValueError(f"{name}: proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size ({proj_size}) has to be smaller than hidden_size ({hidden_size})")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout option adds dropout after all but last recurrent layer, so non-zero "
                          f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=3)
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), int(proj_size)
        directions = 2 if bidirectional else 1
        gate_size = self._gates * self.hidden_size
        out_size = self.proj_size or self.hidden_size  # what h holds: the projection when there is one
        # PyTorch's names and order: per layer, per direction: weight_ih, weight_hh, bias_ih, bias_hh(, weight_hr)
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else out_size * directions
            for suffix in ("", "_reverse")[:directions]:
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, out_size)}
                if self.bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if self.proj_size:
                    shapes.update(weight_hr=(self.proj_size, self.hidden_size))
                for kind, shape in shapes.items():
                    setattr(self, f"{kind}_l{layer}{suffix}", Parameter(np.zeros(shape, dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _layer_params(self, layer: int, suffix: str):
        get = lambda kind: getattr(self, f"{kind}_l{layer}{suffix}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def _check_state(self, state, shape, what: str, batched: bool):
        if not isinstance(state, Tensor):
            raise TypeError(f"{type(self).__name__}: {what} must be a Tensor, got {type(state).__name__}")
        if state.ndim != (3 if batched else 2):
            raise RuntimeError(f"{type(self).__name__}: for {'batched 3-D' if batched else 'unbatched 2-D'} input, "
                               f"{what} should also be {3 if batched else 2}-D but got {state.ndim}-D tensor")
        found = state.shape if batched else (state.shape[0], 1, *state.shape[1:])
        if tuple(found) != shape:
            want = shape if batched else (shape[0], shape[2])
            raise RuntimeError(f"{type(self).__name__}: expected {what} of size {want}, got {tuple(state.shape)}")
        return state if batched else state.unsqueeze(1)

    def _initial(self, hx, batch: int, batched: bool, dtype):
        """The initial states as a tuple (h0,) or (h0, c0), each (layers * directions, N, hidden) (h0's last
        dimension is proj_size when the LSTM projects)."""
        first = self.num_layers * (2 if self.bidirectional else 1)
        names = ("h_0", "c_0") if isinstance(self, LSTM) else ("hx",)
        shapes = [(first, batch, self.proj_size or self.hidden_size), (first, batch, self.hidden_size)]
        if hx is None:  # a recorded factory, so a compiled step makes them afresh
            return tuple(zeros(shape, dtype=dtype) for shape, _ in zip(shapes, names))
        states = (hx,) if len(names) == 1 else hx
        if len(names) == 2 and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        return tuple(self._check_state(s, shape, n, batched) for s, shape, n in zip(states, shapes, names))

    def forward(self, input: Tensor, hx=None):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: expected input to be 2-D or 3-D, got {input.ndim}-D tensor instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.shape[-1]}")
        batched = input.ndim == 3
        x = input if not batched else input.transpose(0, 1) if self.batch_first else input
        if not batched:
            x = x.unsqueeze(1)
        steps, batch = x.shape[0], x.shape[1]
        directions = 2 if self.bidirectional else 1
        states = self._initial(hx, batch, batched, x.dtype)
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outputs = []
            for d, suffix in enumerate(("", "_reverse")[:directions]):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(layer, suffix)
                projected = x.linear(w_ih, b_ih).unbind(0)  # the input's part of every step at once
                k = layer * directions + d
                h = states[0][k]
                c = states[1][k] if len(states) == 2 else None
                ys = [None] * steps
                for t in (reversed(range(steps)) if d else range(steps)):
                    h, c = self._cell(projected[t], h, w_hh, b_hh, c)
                    if w_hr is not None:  # LSTM with projections: h_t = W_hr (o * tanh(c_t))
                        h = h.linear(w_hr)
                    ys[t] = h
                outputs.append(Tensor.stack(ys, 0))
                finals[0].append(h)
                if c is not None:
                    finals[1].append(c)
            x = outputs[0] if directions == 1 else Tensor.cat(outputs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        out_states = tuple(Tensor.stack(f, 0) for f in finals)
        if not batched:
            x, out_states = x.squeeze(1), tuple(s.squeeze(1) for s in out_states)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, (out_states if len(out_states) == 2 else out_states[0])

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s


class RNN(_RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu with nonlinearity="relu").

    RNN(input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
    dropout=0.0, bidirectional=False); forward(input, h_0=None) -> (output, h_n).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        self._cell = _rnn_tanh if nonlinearity == "tanh" else _rnn_relu
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity='relu'"


class GRU(_RNNBase):
    """Gated recurrent unit, PyTorch's equations and gate order (r, z, n); forward(input, h_0=None) -> (output, h_n)."""

    _gates = 3
    _cell = staticmethod(_gru)


class LSTM(_RNNBase):
    """Long short-term memory, PyTorch's equations and gate order (i, f, g, o);
    forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n)). proj_size > 0 projects each h_t to proj_size
    features with weight_hr_l{k} (proj_size, hidden_size), as PyTorch."""

    _gates = 4
    _cell = staticmethod(_lstm)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
                         device, dtype)


class _CellBase(Module):
    """One time step of RNN/GRU/LSTM: parameters weight_ih, weight_hh, bias_ih, bias_hh (PyTorch's names)."""

    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        name = type(self).__name__
        dtype = _float_dtype(dtype, device, name)
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        g = self._gates * self.hidden_size
        self.weight_ih = Parameter(np.zeros((g, self.input_size), dtype))
        self.weight_hh = Parameter(np.zeros((g, self.hidden_size), dtype))
        self.bias_ih = Parameter(np.zeros(g, dtype)) if bias else None
        self.bias_hh = Parameter(np.zeros(g, dtype)) if bias else None
        self.reset_parameters()

    reset_parameters = _RNNBase.reset_parameters

    def _step(self, input: Tensor, states: tuple):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape (N, {self.input_size}) or ({self.input_size},), "
                             f"got {input.shape}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        n = x.shape[0]
        fixed = []
        for what, s in states:
            if s is None:
                s = zeros((n, self.hidden_size), dtype=x.dtype)
            elif not isinstance(s, Tensor) or tuple(s.shape) != ((n, self.hidden_size) if batched else
                                                                 (self.hidden_size,)):
                want = (n, self.hidden_size) if batched else (self.hidden_size,)
                got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                raise RuntimeError(f"{name}: expected {what} of shape {want}, got {got}")
            elif not batched:
                s = s.unsqueeze(0)
            fixed.append(s)
        h, c = self._cell(x.linear(self.weight_ih, self.bias_ih), fixed[0], self.weight_hh, self.bias_hh,
                          fixed[1] if len(fixed) == 2 else None)
        return (h, c) if batched else (h.squeeze(0), None if c is None else c.squeeze(0))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu); forward(input, hx=None) -> h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        self._cell = _rnn_tanh if nonlinearity == "tanh" else _rnn_relu
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx=None) -> Tensor:
        return self._step(input, (("hx", hx),))[0]


class GRUCell(_CellBase):
    """One GRU step (gates r, z, n as nn.GRU); forward(input, hx=None) -> h'."""

    _gates = 3
    _cell = staticmethod(_gru)

    def forward(self, input: Tensor, hx=None) -> Tensor:
        return self._step(input, (("hx", hx),))[0]


class LSTMCell(_CellBase):
    """One LSTM step (gates i, f, g, o as nn.LSTM); forward(input, (h, c)=None) -> (h', c')."""

    _gates = 4
    _cell = staticmethod(_lstm)

    def forward(self, input: Tensor, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        h, c = (None, None) if hx is None else hx
        return self._step(input, (("h", h), ("c", c)))
