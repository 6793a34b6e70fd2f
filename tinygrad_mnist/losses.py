"""The demo's losses under their older names, plus accuracy.

The losses themselves live in `tinygrad_mnist.nn.functional` (PyTorch's names
and semantics); these are thin spellings of them, except `mse`, which is
Nielsen's quadratic cost (halved and summed per example), not PyTorch's
mse_loss.  Labels may be class indices (an int array or Tensor of shape (N,))
or, where it makes sense, one-hot / probability targets of the predictions' shape.
"""

from __future__ import annotations

import numpy as np

from .engine import Tensor
from .nn import functional as F

REDUCTIONS = F.REDUCTIONS


def _target(pred: Tensor, target, name: str) -> Tensor:
    """Targets in pred's dtype; integer labels (N,) become one-hot rows for (N, C) predictions.

    A float Tensor target stays in the graph, so the loss can be differentiated
    with respect to it too (as in PyTorch).
    """
    y = target.data if isinstance(target, Tensor) else np.asarray(target)
    if y.dtype.kind in "iu" and pred.ndim == 2 and y.ndim == 1:
        if y.shape != pred.shape[:1]:
            raise ValueError(f"{name}: labels must have shape ({pred.shape[0]},) for predictions {pred.shape}, "
                             f"got {y.shape}")
        F.check_class_indices(y, pred.shape[1], name)
        target = F._one_hot(target, pred.shape[1], pred.dtype)  # in pred's dtype: no cast op
    return F._target_like(pred, target, name, same_shape=True)


def mse(pred: Tensor, target, reduction: str = "mean") -> Tensor:
    """Nielsen's quadratic cost C = 1/(2n) * sum_x ||y(x) - a(x)||^2.

    The squared error is summed over each example's outputs, halved (so the
    gradient is simply a - y), and averaged over the n examples of the batch
    (axis 0).  reduction="sum" drops the 1/n; "none" gives 1/2 ||y - a||^2 per
    example.  Note torch's mse_loss (F.mse_loss here) averages over every
    element and has no 1/2: it equals 2C / (outputs per example).  Integer
    labels (N,) are one-hot encoded.
    """
    F._check_reduction("mse", reduction)
    d = pred - _target(pred, target, "mse")
    sq = d ** 2  # PowConst: a two-op gradient, where d * d takes three
    if reduction == "none":
        return (sq.sum(tuple(range(1, sq.ndim))) if sq.ndim > 1 else sq) * 0.5
    n = sq.shape[0] if reduction == "mean" and sq.ndim else 1
    return sq.sum() * (0.5 / n)  # one sum and one scale: this loss runs every step of Nielsen's net


def cross_entropy(logits: Tensor, labels, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (N, C) against class indices (N,) or target probabilities (N, C)."""
    return F.cross_entropy(logits, labels, reduction=reduction)


def nll(log_probs: Tensor, labels, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -log_probs[i, labels[i]] (feed it log_softmax outputs)."""
    return F.nll_loss(log_probs, labels, reduction=reduction)


def binary_cross_entropy(probs: Tensor, targets, eps: float = 1e-7, reduction: str = "mean") -> Tensor:
    """F.binary_cross_entropy with p clipped to [eps, 1 - eps] first, so the loss stays finite and smooth.

    Averaged over all elements for "mean" (as torch); "none" gives the
    elementwise losses.  Prefer binary_cross_entropy_with_logits: it is exact
    where this one clips.
    """
    return F.binary_cross_entropy(probs.clip(eps, 1.0 - eps), _target(probs, targets, "binary_cross_entropy"),
                                  reduction=reduction)


def binary_cross_entropy_with_logits(logits: Tensor, targets, reduction: str = "mean") -> Tensor:
    """binary_cross_entropy(sigmoid(x), t), computed stably for any x (see F.binary_cross_entropy_with_logits)."""
    return F.binary_cross_entropy_with_logits(logits, _target(logits, targets, "binary_cross_entropy_with_logits"),
                                              reduction=reduction)


def accuracy(logits, labels) -> float:
    """Fraction of rows whose largest score is at the label (indices (N,) or one-hot (N, C))."""
    scores = logits.data if isinstance(logits, Tensor) else np.asarray(logits)
    y = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"accuracy: scores must have shape (N, C), got {scores.shape}")
    if y.ndim == 2:
        y = y.argmax(axis=1)
    if y.shape != (scores.shape[0],):
        raise ValueError(f"accuracy: labels must have shape ({scores.shape[0]},), got {y.shape}")
    if not len(y):
        return float("nan")
    return float(np.mean(scores.argmax(axis=1) == y))
