"""torch.autograd's two entry points: `grad` (returns gradients) and `backward` (accumulates into .grad).

    from tinygrad_mnist import autograd
    (dx,) = autograd.grad(y, [x], create_graph=True)
    autograd.backward([loss1, loss2])
"""

from __future__ import annotations

from .engine import Tensor, grad
from .gradcheck import gradcheck, gradgradcheck

__all__ = ["backward", "grad", "gradcheck", "gradgradcheck"]


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
    """Accumulate the gradients of `tensors` (one or a sequence) into the .grad of the leaves.

    grad_tensors: one gradient per tensor (None for a scalar); inputs: only these tensors get .grad.
    """
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors]
    else:
        grad_tensors = list(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise ValueError(f"backward: got {len(grad_tensors)} grad_tensors for {len(tensors)} tensors")
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        grads = grad(tensors, inputs, grad_tensors, retain_graph=retain_graph, create_graph=create_graph,
                     allow_unused=True)
        for t, g in zip(inputs, grads):
            if g is not None:
                t.grad = g if t.grad is None else t.grad + g
        return
    if len(tensors) == 1:
        tensors[0].backward(grad_tensors[0], retain_graph=retain_graph, create_graph=create_graph)
        return
    # several roots, one sweep: the gradient of sum_i <t_i, g_i> is sum_i J_i^T g_i (exactly: the extra
    # sum and product only multiply by ones and by g_i)
    total = None
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t.requires_grad:
            raise RuntimeError(f"backward: tensor {i} does not require grad and has no grad_fn")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError(f"backward: tensor {i} has shape {t.shape}; grad can be implicitly created only "
                                   f"for scalar outputs: pass its gradient in grad_tensors")
            term = t.sum()
        else:
            g = g if isinstance(g, Tensor) else Tensor(g, dtype=t.dtype)
            if g.shape != t.shape:
                raise ValueError(f"backward: grad_tensors[{i}] has shape {g.shape} but tensor {i} has shape {t.shape}")
            term = (t * g.detach().cast(t.dtype)).sum()
        total = term if total is None else total + term.cast(total.dtype)
    total.backward(retain_graph=retain_graph, create_graph=create_graph)
