"""torch.autograd's two entry points: `grad` (returns gradients) and `backward` (accumulates into .grad).

    from tinygrad_mnist import autograd
    (dx,) = autograd.grad(y, [x], create_graph=True)
    autograd.backward([loss1, loss2])
"""

from __future__ import annotations

from .engine import Tensor, _backprop, grad
from .gradcheck import gradcheck

__all__ = ["backward", "grad", "gradcheck"]


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
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is None:
        _backprop(tensors, grad_tensors, retain_graph, create_graph)
        return
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    grads = grad(tensors, inputs, grad_tensors, retain_graph=retain_graph, create_graph=create_graph,
                  allow_unused=True)
    for t, g in zip(inputs, grads):
        if g is not None:
            t.grad = g if t.grad is None else t.grad + g
