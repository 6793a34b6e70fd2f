"""Loss functions written as Tensor expressions: the engine derives their gradients.

Labels may be class indices (an int array or Tensor of shape (N,)) or, where it
makes sense, one-hot / probability targets of the predictions' shape.
"""

from __future__ import annotations

import numpy as np

from .engine import Tensor

REDUCTIONS = ("mean", "sum", "none")


def _array(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(per_example: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_example.sum() * (1.0 / max(per_example.shape[0] if per_example.ndim else 1, 1))
    if reduction == "sum":
        return per_example.sum()
    return per_example


def _one_hot(labels: np.ndarray, shape: tuple, dtype, name: str) -> np.ndarray:
    n, c = shape
    if labels.shape != (n,):
        raise ValueError(f"{name}: labels must have shape ({n},) for predictions {shape}, got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= c):
        raise IndexError(f"{name}: label {labels[(labels < 0) | (labels >= c)][0]} is out of range for {c} classes")
    out = np.zeros(shape, dtype)
    out[np.arange(n), labels] = 1
    return out


def _target(pred: Tensor, target, name: str) -> Tensor:
    """Targets in pred's dtype; integer labels (N,) become one-hot rows for (N, C) predictions.

    A float Tensor target stays in the graph, so the loss can be differentiated
    with respect to it too (as in PyTorch).
    """
    if isinstance(target, Tensor) and target.dtype.kind == "f":
        if target.shape != pred.shape:
            raise ValueError(f"{name}: target shape {target.shape} does not match prediction shape {pred.shape}")
        return target.cast(pred.dtype)
    y = _array(target)
    if y.dtype.kind in "iu" and pred.ndim == 2 and y.ndim == 1:
        y = _one_hot(y, pred.shape, pred.dtype, name)
    if y.shape != pred.shape:
        raise ValueError(f"{name}: target shape {y.shape} does not match prediction shape {pred.shape}")
    return Tensor(y.astype(pred.dtype, copy=False))


def mse(pred: Tensor, target, reduction: str = "mean") -> Tensor:
    """Nielsen's quadratic cost C = 1/(2n) * sum_x ||y(x) - a(x)||^2.

    The squared error is summed over each example's outputs, halved (so the
    gradient is simply a - y), and averaged over the n examples of the batch
    (axis 0).  reduction="sum" drops the 1/n; "none" gives 1/2 ||y - a||^2 per
    example.  Note torch's mse_loss averages over every element and has no 1/2:
    it equals 2C / (outputs per example).  Integer labels (N,) are one-hot encoded.
    """
    _check_reduction("mse", reduction)
    d = pred - _target(pred, target, "mse")
    sq = d ** 2  # PowConst: a two-op gradient, where d * d takes three
    if reduction == "none":
        return (sq.sum(axis=tuple(range(1, sq.ndim))) if sq.ndim > 1 else sq) * 0.5
    n = sq.shape[0] if reduction == "mean" and sq.ndim else 1
    return sq.sum() * (0.5 / n)  # one sum and one scale: this loss runs every step of Nielsen's net


def cross_entropy(logits: Tensor, labels, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (N, C) against class indices (N,) or target probabilities (N, C)."""
    _check_reduction("cross_entropy", reduction)
    return logits.cross_entropy(labels, reduction=reduction)


def nll(log_probs: Tensor, labels, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -log_probs[i, labels[i]] (feed it log_softmax outputs)."""
    _check_reduction("nll", reduction)
    if log_probs.ndim != 2:
        raise ValueError(f"nll: log_probs must have shape (N, C), got {log_probs.shape}")
    y = _array(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"nll: labels must be integer class indices, got {y.dtype}")
    _one_hot(y, log_probs.shape, log_probs.dtype, "nll")  # validates shape and range
    return _reduce(-log_probs[np.arange(len(y)), y], reduction)


def binary_cross_entropy(probs: Tensor, targets, eps: float = 1e-7, reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)), with p clipped to [eps, 1 - eps] so log never sees 0.

    Averaged over all elements for "mean" (as torch); "none" gives the
    elementwise losses.  Prefer binary_cross_entropy_with_logits: it is exact
    where this one clips.
    """
    _check_reduction("binary_cross_entropy", reduction)
    t = _target(probs, targets, "binary_cross_entropy")
    p = probs.clip(eps, 1.0 - eps)
    loss = -(t * p.log() + (1.0 - t) * (1.0 - p).log())
    return _elementwise_reduce(loss, reduction)


def binary_cross_entropy_with_logits(logits: Tensor, targets, reduction: str = "mean") -> Tensor:
    """binary_cross_entropy(sigmoid(x), t), computed stably for any x.

    The softmax of the pair (0, x) is (1 - sigmoid(x), sigmoid(x)), so its
    log_softmax gives both logs without overflow for any x, and the gradient
    is exactly sigmoid(x) - t, also at x = 0 (where the usual
    max(x, 0) - x t + log(1 + exp(-|x|)) form gets a one-sided derivative).
    """
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    t = _target(logits, targets, "binary_cross_entropy_with_logits")
    pair = Tensor.stack([Tensor.zeros_like(logits), logits], axis=-1)  # (..., 2)
    log_p = pair.log_softmax(axis=-1)  # [..., 0] = log(1 - sigmoid x), [..., 1] = log sigmoid x
    loss = -(t * log_p[..., 1] + (1.0 - t) * log_p[..., 0])
    return _elementwise_reduce(loss, reduction)


def _elementwise_reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def accuracy(logits, labels) -> float:
    """Fraction of rows whose largest score is at the label (indices (N,) or one-hot (N, C))."""
    scores, y = _array(logits), _array(labels)
    if scores.ndim != 2:
        raise ValueError(f"accuracy: scores must have shape (N, C), got {scores.shape}")
    if y.ndim == 2:
        y = y.argmax(axis=1)
    if y.shape != (scores.shape[0],):
        raise ValueError(f"accuracy: labels must have shape ({scores.shape[0]},), got {y.shape}")
    if not len(y):
        return float("nan")
    return float(np.mean(scores.argmax(axis=1) == y))
