"""The neural-network functions as Tensor methods: softmax, cross_entropy, conv2d, pools, dropout."""

from __future__ import annotations

import numpy as np

from .. import ops
from ..engine import Tensor, _is_float
from .common import _dim_alias, _one_dim, _promote
from .composite import composite


def _check_labels(y: np.ndarray, c: int) -> np.ndarray:
    """Class indices in [0, c), else cross_entropy's IndexError naming the first bad one."""
    if len(y) and (np.minimum.reduce(y) < 0 or np.maximum.reduce(y) >= c):  # (y.min() without its Python layer)
        bad = y[(y < 0) | (y >= c)][0]
        raise IndexError(f"cross_entropy: label {bad} is out of range for {c} classes")
    return y.view()


class NNFunctions:
    """Tensor's softmax, log_softmax, cross_entropy, unfold2d, conv2d, pools and dropout.

    Attached to Tensor, with every other group, in tensor_methods/__init__.py.
    """

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
            _check_labels(y, c)
            target = labels.detach() if isinstance(labels, Tensor) else Tensor._const(y)  # CrossEntropy reads indices
            # the check again as a recorded op: a compiled step's replay raises eager's error for a bad label
            target = ops.Detached.apply(target, fn=_check_labels, c=c)
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


def _pair(v, what: str) -> tuple:
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    v = tuple(int(x) for x in v)
    if len(v) != 2 or min(v) < (0 if what == "padding" else 1):
        raise ValueError(f"{what} must be a positive int or a pair of them, got {v}")
    return v
