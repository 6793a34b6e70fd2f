"""tinygrad_mnist: a small, readable reverse-mode autograd engine on NumPy.

    import tinygrad_mnist as tg
    x = tg.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 * x

The top level is spelled like `torch.*`: tensor() copies, from_numpy() shares,
zeros/ones/randn/arange/cat/stack/where/softmax/..., the dtypes, manual_seed,
no_grad, and `autograd.grad` / `autograd.backward`.
"""

import numpy as _np

from . import autograd
from .engine import (
    Function,
    Tensor,
    bool_,
    device,
    enable_grad,
    float32,
    float64,
    from_numpy,
    grad,
    int64,
    is_grad_enabled,
    manual_seed,
    no_grad,
    return_types,
    set_grad_enabled,
)
from .functions import (
    abs,
    allclose,
    arange,
    argmax,
    as_tensor,
    cat,
    clamp,
    clip,
    concat,
    concatenate,
    empty,
    empty_like,
    equal,
    exp,
    eye,
    flatten,
    full,
    full_like,
    is_tensor,
    linspace,
    log,
    log_softmax,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mm,
    numel,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    relu,
    reshape,
    sigmoid,
    softmax,
    sqrt,
    stack,
    sum,
    tanh,
    tensor,
    transpose,
    where,
    zeros,
    zeros_like,
)

# torch's dtype names (`bool` is tinygrad_mnist.bool, like torch.bool; bool_ stays)
bool = bool_  # noqa: A001
float = float32  # noqa: A001
double = float64
long = int64
int32 = _np.dtype(_np.int32)
int = int32  # noqa: A001
uint8 = _np.dtype(_np.uint8)

__version__ = "0.1.0"

# the layers above the core, reachable as after `import torch`: tinygrad_mnist.nn.Linear, tinygrad_mnist.optim.SGD
from . import nn, optim  # noqa: E402
from .serialization import load_object as load  # noqa: E402
from .serialization import save_object as save  # noqa: E402

__all__ = [
    "Function", "Tensor", "autograd", "bool", "bool_", "device", "double", "enable_grad", "float", "float32",
    "float64", "from_numpy", "grad", "int", "int32", "int64", "is_grad_enabled", "long", "manual_seed", "no_grad",
    "return_types", "set_grad_enabled", "uint8", "__version__",
    "abs", "allclose", "arange", "argmax", "as_tensor", "cat", "clamp", "clip", "concat", "concatenate", "empty",
    "empty_like", "equal", "exp", "eye", "flatten", "full", "full_like", "is_tensor", "linspace", "log",
    "log_softmax", "matmul", "max", "maximum", "mean", "min", "minimum", "mm", "numel", "ones", "ones_like", "rand",
    "rand_like", "randint", "randn", "randn_like", "randperm", "relu", "reshape", "sigmoid", "softmax", "sqrt",
    "stack", "sum", "tanh", "tensor", "transpose", "where", "zeros", "zeros_like",
    "load", "nn", "optim", "save",
]
