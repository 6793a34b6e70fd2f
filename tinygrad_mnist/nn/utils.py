"""torch.nn.utils' gradient clipping: clip_grad_norm_ and clip_grad_value_.

Call them between loss.backward() and opt.step().  Everything is computed with tensor
ops under no_grad (the norm, the non-finite check, the scale), so a compiled step that
clips replays the clipping too.  Each clipped gradient is a new tensor (two leaves may
share one gradient array, so scaling in place could scale it twice); its values are
what PyTorch's in-place clipping leaves.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops as _ops
from ..engine import Tensor, float64, no_grad


def _with_grads(parameters) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def _raise_if_nonfinite(total: np.ndarray, norm_type: float) -> np.ndarray:
    """The check of error_if_nonfinite, as a recorded op (ops.Detached): a replay checks again."""
    if not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}, "
                           f"non-finite, so it can't be clipped; pass error_if_nonfinite=False to scale by it anyway")
    return total


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale all gradients together so that their joint norm is at most max_norm; returns the norm before.

    As PyTorch: total = norm of the per-gradient norms; every gradient is multiplied by
    min(max_norm / (total + 1e-6), 1).  The norms are summed in float64 (then the returned
    norm is cast to the gradients' dtype).  `foreach` is accepted (one result either way).
    """
    params = _with_grads(parameters)
    if not params:
        return Tensor(np.float32(0.0))
    norm_type = float(norm_type)
    with no_grad():
        grads = [p.grad.cast(float64) for p in params]
        if math.isinf(norm_type):
            norms = [g.abs().max() if g.numel() else Tensor._const(np.zeros((), float64)) for g in grads]
            total = Tensor.stack(norms).max()
        else:
            total = Tensor.stack([(g.abs() ** norm_type).sum() for g in grads]).sum() ** (1.0 / norm_type)
        if error_if_nonfinite:
            total = _ops.Detached.apply(total, fn=_raise_if_nonfinite, norm_type=norm_type)
        coef = (float(max_norm) / (total + 1e-6)).clamp(max=1.0)  # 1e-6 keeps a zero norm finite, as PyTorch
        for p in params:
            p.grad = p.grad * coef.cast(p.grad.dtype)
        return total.cast(params[0].grad.dtype)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clip every gradient element to [-clip_value, clip_value] (a clamp op: a compiled step replays it)."""
    clip_value = float(clip_value)
    with no_grad():
        for p in _with_grads(parameters):
            p.grad = p.grad.clamp(-clip_value, clip_value)
