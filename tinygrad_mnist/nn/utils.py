"""torch.nn.utils' gradient clipping: clip_grad_norm_ and clip_grad_value_.

Call them between loss.backward() and opt.step().  Each clipped gradient gets
a new array (two leaves may share one gradient array, so scaling in place could
scale it twice).
"""

from __future__ import annotations

import math

import numpy as np

from ..engine import Tensor


def _grads(parameters) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale all gradients together so that their joint norm is at most max_norm; returns the norm before."""
    params = _grads(parameters)
    if not params:
        return Tensor(np.float32(0.0))
    norm_type = float(norm_type)
    grads = [p.grad.data for p in params]
    if math.isinf(norm_type):
        total = max(float(np.abs(g).max()) if g.size else 0.0 for g in grads)
    else:
        total = sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}")
    coef = min(max_norm / (total + 1e-6), 1.0)  # as PyTorch: 1e-6 keeps a zero norm finite
    if coef < 1.0:
        for p in params:
            p.grad = p.grad.data * p.grad.dtype.type(coef)
    return Tensor(np.asarray(total, dtype=grads[0].dtype))


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clip every gradient element to [-clip_value, clip_value]."""
    for p in _grads(parameters):
        p.grad = np.clip(p.grad.data, -clip_value, clip_value).astype(p.grad.dtype, copy=False)
