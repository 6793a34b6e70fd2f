"""torch.nn.functional's names, signatures and semantics, on the engine's Tensor.

    import tinygrad_mnist.nn.functional as F
    loss = F.cross_entropy(model(x), y)            # mean over the batch
    h = F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=1)), 2)

Everything here is a composition of engine ops, so the engine derives every
gradient.  Arguments PyTorch has but this engine does not implement (dilation,
groups, ceil_mode, ...) raise NotImplementedError when given a non-default
value, never silently mean something else.  `inplace=True` writes in place for
relu (Tensor.relu_); elsewhere it is accepted and the result is computed out of
place: use the returned tensor.

This module is the one home of the losses; tinygrad_mnist.losses keeps its older
names (mse is Nielsen's halved quadratic cost) on top of these.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import ops as _ops
from ..engine import Tensor
from ..engine import no_grad as _no_grad
from ..tensor_methods.composite import composite as _composite  # calls show as one box in viz (Function.calls)

REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------
# argument checks (the one place for them in nn)
# ---------------------------------------------------------------------------


def _unsupported(where: str, **args) -> None:
    """Raise for an argument PyTorch has that this engine does not implement: name=(value, default)."""
    for name, (value, default) in args.items():
        if value is default or (type(value) is type(default) and value == default):
            continue
        if isinstance(default, int) and isinstance(value, (tuple, list)) and all(v == default for v in value):
            continue  # dilation=(1, 1)
        raise NotImplementedError(f"{where}: {name}={value!r} is not supported by this engine "
                                  f"(only the default, {default!r})")


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _legacy(name: str, size_average, reduce) -> None:
    if size_average is not None or reduce is not None:
        raise NotImplementedError(f"{name}: size_average and reduce are deprecated in PyTorch and not supported; "
                                  f"use reduction='mean' | 'sum' | 'none'")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _array(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def check_class_indices(labels, n_classes: int, name: str, ignore_index=None, what: str = "label") -> np.ndarray:
    """Integer class labels as an ndarray, each in [0, n_classes) (or equal to ignore_index), else a clear error."""
    y = _array(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name}: {what}s must be integer{' class indices' if what == 'label' else 's'}, "
                        f"got {y.dtype}")
    bad = (y < 0) | (y >= n_classes)
    if ignore_index is not None:
        bad &= y != ignore_index
    if bad.any():
        raise IndexError(f"{name}: {what} {y[bad].flat[0]} is out of range for {n_classes} "
                         f"{'classes' if what == 'label' else 'rows'}")
    return y


def _checked_labels(y: np.ndarray, n_classes: int, name: str, ignore_index=None) -> np.ndarray:
    """check_class_indices as a recorded op (ops.Detached): a compiled step's replay checks its labels too,
    with eager's error."""
    return check_class_indices(y, n_classes, name, ignore_index).view()


def _label_check(labels, n_classes: int, name: str, ignore_index=None) -> Tensor:
    """Labels checked now (the error names the op alone) and again by a recorded op, for a compiled step's
    replay: there the op raises the very error eager raised here."""
    check_class_indices(labels, n_classes, name, ignore_index)
    labels = labels.detach() if isinstance(labels, Tensor) else Tensor._const(np.asarray(labels))
    return _ops.Detached.apply(labels, fn=_checked_labels, n_classes=n_classes, name=name, ignore_index=ignore_index)


def _target_like(input: Tensor, target, name: str, same_shape: bool = False) -> Tensor:
    """A float target in input's dtype; a Tensor target stays in the graph (its gradient is defined too)."""
    if not isinstance(target, Tensor):  # wrapped, not copied (compile knows a step input); a cast is an op
        target = Tensor._const(np.asarray(_array(target)))
    if target.dtype != input.dtype:
        target = target.cast(input.dtype)
    if target.shape != input.shape:
        if same_shape:
            raise ValueError(f"{name}: target shape {target.shape} does not match input shape {input.shape} "
                             f"(they must be the same)")
        try:
            np.broadcast_shapes(target.shape, input.shape)
        except ValueError:
            raise ValueError(f"{name}: target shape {target.shape} does not broadcast with input shape "
                             f"{input.shape}") from None
        warnings.warn(f"{name}: target size {target.shape} is different to the input size {input.shape}; they "
                      f"broadcast, which is likely a mistake (as PyTorch warns)", UserWarning, stacklevel=3)
    return target


def _implicit_dim(name: str, ndim: int) -> int:
    warnings.warn(f"{name}: implicit dimension choice is deprecated (as in PyTorch); pass dim=", UserWarning,
                  stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0); inplace=True writes the result into input (Tensor.relu_, PyTorch's autograd rules)."""
    return input.relu_() if inplace else input.relu()


def relu_(input: Tensor) -> Tensor:
    return input.relu_()


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return input.leaky_relu(negative_slope)


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


@_composite("gelu")
def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal CDF; approximate="tanh" uses the tanh formula, as PyTorch."""
    if approximate == "none":
        return input * 0.5 * (_ops.Erf.apply(input * (1.0 / math.sqrt(2.0))) + 1.0)
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
        return input * 0.5 * (inner.tanh() + 1.0)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (swish)."""
    return input * input.sigmoid()


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    neg = (input.clamp(max=0.0).exp() - 1.0) * alpha  # clamped first: exp never overflows on the unused side
    return Tensor.where(input > 0, input, neg)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, computed stably; linear where beta x > threshold (as PyTorch)."""
    bx = input * beta
    soft = (bx.relu() + ((-bx.abs()).exp() + 1.0).log()) * (1.0 / beta)  # log(1 + e^z) = max(z, 0) + log(1 + e^-|z|)
    return Tensor.where(bx > threshold, input, soft)


def softmax(input: Tensor, dim=None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dtype is not None:
        input = input.cast(dtype)
    return input.softmax(_implicit_dim("softmax", input.ndim) if dim is None else dim)


def log_softmax(input: Tensor, dim=None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dtype is not None:
        input = input.cast(dtype)
    return input.log_softmax(_implicit_dim("log_softmax", input.ndim) if dim is None else dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero elements with probability p and scale the rest by 1/(1-p); identity when not training."""
    return input.dropout(p, training)


# ---------------------------------------------------------------------------
# layers as functions
# ---------------------------------------------------------------------------


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias, weight (out_features, in_features); input (..., in) or (in,)."""
    if input.ndim == 1:
        out = input.reshape(1, -1).linear(weight, bias)
        return out.reshape(out.shape[1:])
    return input.linear(weight, bias)


def _unbatched(fn, input: Tensor, batched_ndim: int, *args, **kwargs) -> Tensor:
    """Run an (N, C, H, W) function on a (C, H, W) input, as PyTorch accepts both."""
    if input.ndim == batched_ndim - 1:
        out = fn(input.reshape(1, *input.shape), *args, **kwargs)
        return out.reshape(out.shape[1:])
    return fn(input, *args, **kwargs)


def _same_padding(kernel) -> tuple[tuple[int, int], tuple[int, int]]:
    """padding="same" for stride 1: k - 1 rows in all, the odd one at the end (as PyTorch)."""
    return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D cross-correlation of (N, C, H, W) (or (C, H, W)) input with weight (O, C, kh, kw).

    padding: an int, a pair, "valid" (0) or "same" (stride 1 only; an even kernel pads one more at the end).
    """
    _unsupported("conv2d", dilation=(dilation, 1), groups=(groups, 1))
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if stride not in (1, (1, 1), [1, 1]):
                raise ValueError("conv2d: padding='same' is not supported for strided convolutions (as PyTorch)")
            (t, b), (l, r) = _same_padding(weight.shape[2:])
            if (t, l) == (b, r):
                padding = (t, l)
            else:
                input, padding = pad(input, (l, r, t, b)), 0
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return _unbatched(Tensor.conv2d, input, 4, weight, bias, stride=stride, padding=padding)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    _unsupported("max_pool2d", dilation=(dilation, 1), ceil_mode=(ceil_mode, False),
                 return_indices=(return_indices, False))
    stride = stride if stride not in ((), []) else None
    return _unbatched(Tensor.max_pool2d, input, 4, kernel_size, stride, padding)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    _unsupported("avg_pool2d", ceil_mode=(ceil_mode, False), count_include_pad=(count_include_pad, True),
                 divisor_override=(divisor_override, None))
    stride = stride if stride not in ((), []) else None
    return _unbatched(Tensor.avg_pool2d, input, 4, kernel_size, stride, padding)


_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@_composite("pad")
def pad(input: Tensor, pad, mode: str = "constant", value=None) -> Tensor:
    """Pad the last len(pad)//2 dimensions, last dimension first: (left, right, top, bottom, ...), as PyTorch.

    Negative amounts crop.  mode: "constant" (with `value`, default 0), "reflect", "replicate", "circular".
    """
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: the pad tuple must have an even length of at most 2 * {input.ndim} (the input's "
                         f"dimensions), got {len(pad)}")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode != "constant":
        if mode not in _PAD_MODES:
            raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
        if value not in (None, 0, 0.0):
            raise ValueError(f"pad: value= only applies to mode='constant', not {mode!r}")
        out = input
        for axis, (before, after) in enumerate(widths):
            if before or after:  # gather along the axis with an index array: its gradient adds back (IndexAdd)
                if min(before, after) < 0:
                    raise ValueError(f"pad: negative padding is only supported in mode='constant', got {pad}")
                idx = _ops.Detached.apply(fn=_pad_index, n=input.shape[axis], widths=(before, after),
                                          mode=_PAD_MODES[mode])
                out = out[(slice(None),) * axis + (idx,)]
        return out
    grow = [(max(b, 0), max(a, 0)) for b, a in widths]
    out = input.pad(grow, value=0.0 if value is None else value) if any(b or a for b, a in grow) else input
    if any(b < 0 or a < 0 for b, a in widths):
        out = out[tuple(slice(-min(b, 0), n + min(a, 0)) for (b, a), n in zip(widths, out.shape))]
    return out


def _pad_index(n, widths, mode):
    return np.pad(np.arange(n), widths, mode=mode)


@_composite("layer_norm")
def layer_norm(input: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last len(normalized_shape) dimensions (biased variance), then scale and shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the input's last dimensions "
                         f"{input.shape}")
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    centred = input - input.mean(dims, keepdim=True)
    var = (centred * centred).mean(dims, keepdim=True)
    out = centred * (var + eps) ** -0.5
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


@_composite("batch_norm")
def batch_norm(input: Tensor, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float | None = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) over the batch (and spatial) dimensions.

    training=True uses the batch's statistics (biased variance) and, when running_mean/running_var are
    given, updates them in place: running = (1 - momentum) running + momentum * batch, with the
    unbiased variance, as PyTorch (momentum may be a 0-d Tensor: BatchNorm's 1 / count when its momentum
    is None).  training=False uses the running statistics.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input (N, C, ...), got shape {input.shape}")
    dims = (0, *range(2, input.ndim))
    bshape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    if training:
        n = input.numel() // input.shape[1]
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                             f"size {input.shape}")
        mean = input.mean(dims, keepdim=True)
        centred = input - mean
        var = (centred * centred).mean(dims, keepdim=True)
        if running_mean is not None and running_var is not None:
            m = 0.1 if momentum is None else momentum
            with _no_grad():  # in-place writes through the write primitives, so compile replays them too
                keep = 1 - m
                if isinstance(m, Tensor):  # a float64 factor (BatchNorm's 1 / count): rounded once, as a scalar
                    keep, m = keep.cast(running_mean.dtype), m.cast(running_mean.dtype)
                running_mean.mul_(keep)
                running_mean.add_(mean.reshape(-1).cast(running_mean.dtype) * m)
                running_var.mul_(keep)
                running_var.add_((var.reshape(-1) * (n / (n - 1))).cast(running_var.dtype) * m)
        out = centred * (var + eps) ** -0.5
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when not training")
        rm, rv = (s if isinstance(s, Tensor) else Tensor(s) for s in (running_mean, running_var))
        rm = rm.reshape(bshape).cast(input.dtype)  # ops, not copies: compile sees them
        rv = rv.reshape(bshape).cast(input.dtype)
        out = (input - rm) * (rv + eps) ** -0.5
    if weight is not None:
        out = out * weight.reshape(bshape)
    return out if bias is None else out + bias.reshape(bshape)


def embedding(input, weight: Tensor, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """weight[input]: rows of weight (num_embeddings, dim) picked by integer indices of any shape."""
    _unsupported("embedding", max_norm=(max_norm, None), scale_grad_by_freq=(scale_grad_by_freq, False),
                 sparse=(sparse, False))
    check_class_indices(input, weight.shape[0], "embedding", what="index")
    idx = input.detach() if isinstance(input, Tensor) else Tensor._const(np.asarray(input))
    out = weight[idx]
    if padding_idx is not None:  # the padding row gets no gradient, as in PyTorch
        keep = (idx != padding_idx % weight.shape[0]).unsqueeze(-1)
        out = Tensor.where(keep, out, out.detach())
    return out


# ---------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    """Integer labels of any shape -> an int64 tensor of that shape + (num_classes,); -1 infers max + 1."""
    y = _array(tensor)
    if y.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got {y.dtype}")
    if num_classes == -1:
        num_classes = int(y.max()) + 1 if y.size else 0
    check_class_indices(y, num_classes, "one_hot")
    return _one_hot(tensor, num_classes, np.int64)


def _one_hot(labels, num_classes: int, dtype) -> Tensor:
    """One-hot rows of checked integer labels, made by a recorded op (ops.OneHot), in `dtype`."""
    labels = labels.detach() if isinstance(labels, Tensor) else Tensor._const(np.asarray(labels))
    return _ops.OneHot.apply(labels, num_classes=num_classes, dtype=np.dtype(dtype))


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------


def _classes_last(input: Tensor, target, prob_target: bool):
    """(N, C, d1, ...) -> rows (N*d1*..., C), as PyTorch's K-dimensional losses; also the unbatched (C,) case."""
    if input.ndim == 1:
        t = target.reshape(1, -1) if prob_target else target.reshape(1)
        return input.reshape(1, -1), t, ()
    if input.ndim == 2:
        return input, target, None
    order = (0, *range(2, input.ndim), 1)
    rows = input.permute(order).reshape(-1, input.shape[1])
    t = target.permute(order).reshape(-1, input.shape[1]) if prob_target else target.reshape(-1)
    return rows, t, (input.shape[0], *input.shape[2:])


def _restore(loss: Tensor, shape, reduction: str) -> Tensor:
    return loss.reshape(shape) if reduction == "none" and shape is not None else loss


def _weights(weight, c: int, dtype, name: str):
    if weight is None:
        return None
    w = np.asarray(_array(weight), dtype=dtype)
    if w.shape != (c,):
        raise ValueError(f"{name}: weight must have shape ({c},) (one per class), got {w.shape}")
    return w


@_composite("nll_loss")
def nll_loss(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean") -> Tensor:
    """-input[i, target[i]] * weight[target[i]]; "mean" divides by the summed weights of the counted rows.

    input holds log-probabilities (N, C) (or (C,), or (N, C, d1, ...)); rows whose target is ignore_index
    count for nothing.
    """
    _legacy("nll_loss", size_average, reduce)
    _check_reduction("nll_loss", reduction)
    if _array(target).dtype.kind not in "iu":
        raise TypeError(f"nll_loss: labels must be integer class indices, got {_array(target).dtype}")
    # every array below comes from a recorded op (tinygrad_mnist.compile replays it): no NumPy on the labels
    labels = target.detach() if isinstance(target, Tensor) else Tensor._const(np.asarray(target))
    rows, y, shape = _classes_last(input, labels, prob_target=False)
    if rows.ndim != 2 or y.shape != (rows.shape[0],):
        raise ValueError(f"nll_loss: expected target of shape {input.shape[:1] + input.shape[2:]} for input "
                         f"{input.shape}, got {labels.shape}")
    c = rows.shape[1]
    y = _label_check(y, c, "nll_loss", ignore_index)
    keep = y != ignore_index
    y_safe = Tensor.where(keep, y, 0)
    w = _weights(weight, c, rows.dtype, "nll_loss")
    row_w = keep.cast(rows.dtype) if w is None else Tensor._const(w).gather(0, y_safe) * keep
    picked = rows.gather(1, y_safe.unsqueeze(1)).squeeze(1)
    loss = -picked * row_w  # row_w is 1 (or the class weight) where kept, 0 where ignored
    if reduction == "mean":  # 1 / (summed weights) in rows' dtype; all ignored: nan, as PyTorch
        return loss.sum() * _ops.Detached.apply(row_w, fn=_inverse_total)
    return _restore(_reduce(loss, reduction), shape, reduction)


def _inverse_total(row_w):
    total = float(row_w.sum())
    return np.asarray(1.0 / total if total else math.nan, row_w.dtype)


def cross_entropy(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits (N, C) (or (C,), or (N, C, d1, ...)) against class indices or
    class probabilities of the logits' shape, with PyTorch's weight, ignore_index and label_smoothing."""
    _legacy("cross_entropy", size_average, reduce)
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    y = _array(target)
    if input.ndim == 2 and weight is None and label_smoothing == 0.0 and not (
            isinstance(target, Tensor) and target.requires_grad):
        # the fused op: one node, exact gradient.  An ignore_index that is a class always takes the general
        # path (a replay under compile can't re-check the labels); one outside the classes makes OneHot fail
        if y.dtype.kind == "f" or (not 0 <= ignore_index < input.shape[1] and not (y == ignore_index).any()):
            return input.cross_entropy(target, reduction=reduction)  # (itself recorded as a cross_entropy call)
    return _cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)


@_composite("cross_entropy")
def _cross_entropy(input: Tensor, target, weight, ignore_index: int, reduction: str, label_smoothing: float):
    """cross_entropy's general path: log_softmax, then nll_loss or the probabilities' sum, and smoothing."""
    y = _array(target)
    prob_target = y.dtype.kind == "f"
    if not prob_target:
        logp = log_softmax(input, 1 if input.ndim > 1 else 0)
        loss = nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
        if not label_smoothing:
            return loss
        labels = target.detach() if isinstance(target, Tensor) else Tensor._const(y)
        rows, y_rows, shape = _classes_last(logp, labels, prob_target=False)
        c = rows.shape[1]
        w = _weights(weight, c, rows.dtype, "cross_entropy")
        w = None if w is None else Tensor._const(w)
        smooth = -(rows if w is None else rows * w).sum(1)
        keep = y_rows != ignore_index
        smooth = smooth * keep.cast(rows.dtype)  # 0 where ignored
        if reduction == "mean":
            row_w = keep.cast(rows.dtype) if w is None else w.gather(0, Tensor.where(keep, y_rows, 0)) * keep
            smooth = smooth.sum() * _ops.Detached.apply(row_w, fn=_inverse_total)
        else:
            smooth = _restore(_reduce(smooth, reduction), shape, reduction)
        return loss * (1.0 - label_smoothing) + smooth * (label_smoothing / c)
    # class probabilities
    t = _target_like(input, target, "cross_entropy", same_shape=True)
    rows, t_rows, shape = _classes_last(input, t, prob_target=True)
    c = rows.shape[1]
    if label_smoothing:
        t_rows = t_rows * (1.0 - label_smoothing) + label_smoothing / c
    w = _weights(weight, c, rows.dtype, "cross_entropy")
    per = t_rows * rows.log_softmax(1)
    loss = -(per if w is None else per * Tensor._const(w)).sum(1)
    if reduction == "mean":
        return loss.mean()
    return _restore(_reduce(loss, reduction), shape, reduction)


@_composite("mse_loss")
def mse_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """(input - target)^2, averaged over every element for "mean" (PyTorch's; no 1/2)."""
    _legacy("mse_loss", size_average, reduce)
    _check_reduction("mse_loss", reduction)
    d = input - _target_like(input, target, "mse_loss")
    return _reduce(d ** 2, reduction)


@_composite("l1_loss")
def l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """|input - target|, averaged over every element for "mean"."""
    _legacy("l1_loss", size_average, reduce)
    _check_reduction("l1_loss", reduction)
    return _reduce((input - _target_like(input, target, "l1_loss")).abs(), reduction)


def _weighted(loss: Tensor, weight) -> Tensor:
    if weight is None:
        return loss
    return loss * (weight if isinstance(weight, Tensor) else Tensor._const(np.asarray(weight, dtype=loss.dtype)))


@_composite("binary_cross_entropy")
def binary_cross_entropy(input: Tensor, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)), each log clamped at -100 as PyTorch does; input must lie in [0, 1].

    Prefer binary_cross_entropy_with_logits: it is exact for any logit.
    """
    _legacy("binary_cross_entropy", size_average, reduce)
    _check_reduction("binary_cross_entropy", reduction)
    t = _target_like(input, target, "binary_cross_entropy", same_shape=True)
    p = input.data
    if p.size and not ((p >= 0) & (p <= 1)).all():
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1 "
                         "(use binary_cross_entropy_with_logits for logits)")
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 just below
        log_p, log_q = input.log().clip(-100.0, None), (1.0 - input).log().clip(-100.0, None)
    loss = -(t * log_p + (1.0 - t) * log_q)
    return _reduce(_weighted(loss, weight), reduction)


@_composite("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """binary_cross_entropy(sigmoid(x), t), computed stably for any x; pos_weight scales the positive term.

    The softmax of the pair (0, x) is (1 - sigmoid(x), sigmoid(x)), so its
    log_softmax gives both logs without overflow for any x, and the gradient
    is exactly sigmoid(x) - t, also at x = 0 (where the usual
    max(x, 0) - x t + log(1 + exp(-|x|)) form gets a one-sided derivative).
    """
    _legacy("binary_cross_entropy_with_logits", size_average, reduce)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    t = _target_like(input, target, "binary_cross_entropy_with_logits", same_shape=True)
    pair = Tensor.stack([Tensor.zeros_like(input), input], -1)  # (..., 2)
    log_p = pair.log_softmax(-1)  # [..., 0] = log(1 - sigmoid x), [..., 1] = log sigmoid x
    positive = t * log_p[..., 1]
    loss = -(_weighted(positive, pos_weight) + (1.0 - t) * log_p[..., 0])
    return _reduce(_weighted(loss, weight), reduction)


# ---------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------


def _mask_bias(mask, dtype, allowed_when_true: bool) -> Tensor:
    """A boolean mask as an additive bias (0 or -inf), or a float mask as it is. SDPA's True means "may
    attend"; MultiheadAttention's True means "masked out"."""
    if not isinstance(mask, Tensor):
        mask = Tensor(np.asarray(mask))
    if mask.dtype == np.bool_:
        blocked = mask.logical_not() if allowed_when_true else mask
        return Tensor.zeros(mask.shape, dtype=dtype).masked_fill(blocked, float("-inf"))
    if mask.dtype.kind != "f":
        raise TypeError(f"attention: a mask must be bool or floating point, got {mask.dtype}")
    return mask


def _attend(query: Tensor, key: Tensor, value: Tensor, bias, dropout_p: float, scale: float):
    """softmax(query @ key^T * scale + bias) @ value, and the attention weights (after dropout)."""
    scores = (query * scale) @ key.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    weights = scores.softmax(-1)
    if dropout_p > 0:
        weights = weights.dropout(dropout_p)
    return weights @ value, weights


@_composite("scaled_dot_product_attention")
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale=None, enable_gqa: bool = False) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value over the last two dimensions, as PyTorch's.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). scale defaults to 1/sqrt(E).
    attn_mask broadcasts to (..., L, S): a bool mask says where attention may go (True = take part), a
    float mask is added to the scores. is_causal masks out the upper triangle (no attn_mask then).
    dropout_p drops attention weights whenever it is > 0 (pass 0.0 when evaluating, as in PyTorch).
    enable_gqa lets key and value have fewer heads (dim -3) than query, each serving a group of query heads.
    """
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got {dropout_p}")
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ValueError(f"scaled_dot_product_attention: query, key and value need at least 2 dimensions, got "
                         f"shapes {query.shape}, {key.shape}, {value.shape}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: query (..., L, E), key (..., S, E) and value (..., S, Ev) "
                         f"don't fit: got {query.shape}, {key.shape}, {value.shape}")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        # grouped-query attention: each key/value head serves query.shape[-3] // key.shape[-3] query heads
        groups, rest = divmod(query.shape[-3], key.shape[-3])
        if rest or key.shape[-3] != value.shape[-3]:
            raise ValueError(f"scaled_dot_product_attention: enable_gqa needs the query heads (dim -3 of "
                             f"{query.shape}) to be a multiple of the key and value heads ({key.shape}, {value.shape})")
        key, value = key.repeat_interleave(groups, dim=-3), value.repeat_interleave(groups, dim=-3)
    L, S = query.shape[-2], key.shape[-2]
    bias = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: explicit attn_mask should not be set when is_causal=True")
        bias = Tensor.full((L, S), float("-inf"), dtype=query.dtype).triu(1)  # -inf above the diagonal
    elif attn_mask is not None:
        bias = _mask_bias(attn_mask, query.dtype, allowed_when_true=True)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    return _attend(query, key, value, bias, dropout_p, scale)[0]
