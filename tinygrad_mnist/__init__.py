"""tinygrad_mnist: a small, readable reverse-mode autograd engine on NumPy.

    from tinygrad_mnist import Tensor
    x = Tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 * x
"""

from .engine import (
    Function,
    Tensor,
    bool_,
    enable_grad,
    float32,
    float64,
    grad,
    int64,
    is_grad_enabled,
    manual_seed,
    no_grad,
    set_grad_enabled,
)

__version__ = "0.1.0"

__all__ = [
    "Function", "Tensor", "bool_", "enable_grad", "float32", "float64", "grad", "int64",
    "is_grad_enabled", "manual_seed", "no_grad", "set_grad_enabled", "__version__",
]
