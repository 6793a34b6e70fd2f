"""tinygrad_mnist: a small, readable reverse-mode autograd engine on NumPy.

    import tinygrad_mnist as tg
    x = tg.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 * x

The top level is spelled like `torch.*`: tensor() copies, from_numpy() shares,
zeros/ones/randn/arange/cat/stack/where/softmax/..., the dtypes, manual_seed,
no_grad, and `autograd.grad` / `autograd.backward`.
"""

from types import SimpleNamespace as _SimpleNamespace

import numpy as _np

from . import engine as _engine
from . import inplace as _inplace
from . import ops as _ops
from . import tensor_methods as _tensor_methods

# The one place where the core is joined to the layers above it (engine.py imports none of them at load):
_tensor_methods.attach(_engine.Tensor)  # Tensor's PyTorch methods, grouped by kind in tensor_methods/
_engine.ops, _engine.inplace = _ops, _inplace  # what a backward calls at run time (see the end of engine.py)

from . import autograd, cuda  # noqa: E402
from . import functions as _functions  # noqa: E402
from .engine import (  # noqa: E402
    Function,
    Tensor,
    bool_,
    enable_grad,
    float32,
    float64,
    grad,
    int64,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .functions import (  # noqa: E402, F401  (torch.f(x, ...) for the Tensor methods x.f(...); all in functions.__all__)
    abs,
    add,
    all,
    allclose,
    amax,
    amin,
    any,
    arange,
    argmax,
    argmin,
    argsort,
    as_tensor,
    bernoulli,
    bmm,
    cat,
    ceil,
    chunk,
    clamp,
    clamp_max,
    clamp_min,
    clip,
    clone,
    concat,
    concatenate,
    cos,
    count_nonzero,
    cumprod,
    cumsum,
    diag,
    diagonal,
    div,
    divide,
    dot,
    einsum,
    empty,
    empty_like,
    eq,
    equal,
    exp,
    exp2,
    expm1,
    eye,
    flatten,
    flip,
    floor,
    full,
    full_like,
    gather,
    ge,
    greater,
    greater_equal,
    gt,
    index_select,
    is_tensor,
    isfinite,
    isinf,
    isnan,
    le,
    lerp,
    less,
    less_equal,
    linspace,
    log,
    log1p,
    log2,
    log10,
    log_softmax,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    logsumexp,
    lt,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    median,
    min,
    minimum,
    mm,
    movedim,
    mul,
    multinomial,
    multiply,
    mv,
    narrow,
    ne,
    neg,
    negative,
    nonzero,
    norm,
    normal,
    not_equal,
    numel,
    ones,
    ones_like,
    outer,
    permute,
    pow,
    prod,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    reciprocal,
    relu,
    repeat_interleave,
    reshape,
    roll,
    round,
    rsqrt,
    select,
    sigmoid,
    sign,
    sin,
    softmax,
    sort,
    split,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    sub,
    subtract,
    sum,
    t,
    tanh,
    tensor,
    topk,
    trace,
    transpose,
    tril,
    triu,
    true_divide,
    trunc,
    unbind,
    unflatten,
    unsqueeze,
    var,
    where,
    zeros,
    zeros_like,
)
from .generator import Generator, default_generator, initial_seed, manual_seed, seed  # noqa: E402
from .tensor_methods.attributes import Size, device  # noqa: E402
from .tensor_methods.common import return_types  # noqa: E402
from .tensor_methods.creation import from_numpy  # noqa: E402

# torch's dtype names (`bool` is tinygrad_mnist.bool, like torch.bool; bool_ stays)
bool = bool_  # noqa: A001
float = float32  # noqa: A001
double = float64
long = int64
int32 = _np.dtype(_np.int32)
int = int32  # noqa: A001
uint8 = _np.dtype(_np.uint8)

# torch.backends: only the CPU here; flags scripts set (cudnn.benchmark = True) are accepted and change nothing
backends = _SimpleNamespace(mps=_SimpleNamespace(is_available=lambda: False, is_built=lambda: False),
                            cudnn=_SimpleNamespace(enabled=False, benchmark=False, deterministic=False,
                                                   is_available=lambda: False))
inference_mode = no_grad


def get_default_dtype():
    return float32


def set_default_dtype(dtype) -> None:
    """Only float32 (the default) exists here: Python floats become float32 tensors."""
    if _np.dtype(dtype) != float32:
        raise NotImplementedError(f"set_default_dtype: only float32 is supported; pass dtype={_np.dtype(dtype)} "
                                  f"to the factories instead")


__version__ = "0.1.0"

# the layers above the core, reachable as after `import torch`: tinygrad_mnist.nn.Linear, tinygrad_mnist.optim.SGD
from . import nn, optim, utils  # noqa: E402

# record a training step once, replay it: tinygrad_mnist.compile is the function (torch's name); its
# package is tinygrad_mnist.capture, so the two names never shadow each other
from .capture import CaptureError, compile  # noqa: E402, A004
from .ops import get_num_threads, set_num_threads  # noqa: E402  (threads of the conv/pool copies, torch's names)
from .serialization import load_object as load  # noqa: E402
from .serialization import save_object as save  # noqa: E402

__all__ = _functions.__all__ + [  # (some names twice: harmless)
    "Function", "Tensor", "autograd", "bool", "bool_", "device", "double", "enable_grad", "float", "float32",
    "float64", "from_numpy", "grad", "int", "int32", "int64", "is_grad_enabled", "long", "manual_seed", "no_grad",
    "return_types", "set_grad_enabled", "uint8", "__version__", "backends", "cuda", "get_default_dtype",
    "inference_mode", "set_default_dtype", "Generator", "default_generator", "initial_seed", "seed", "Size",
    "abs", "allclose", "arange", "argmax", "as_tensor", "cat", "clamp", "clip", "concat", "concatenate", "empty",
    "empty_like", "equal", "exp", "eye", "flatten", "full", "full_like", "is_tensor", "linspace", "log",
    "log_softmax", "matmul", "max", "maximum", "mean", "min", "minimum", "mm", "numel", "ones", "ones_like", "rand",
    "rand_like", "randint", "randn", "randn_like", "randperm", "relu", "reshape", "sigmoid", "softmax", "sqrt",
    "stack", "sum", "tanh", "tensor", "transpose", "where", "zeros", "zeros_like",
    "load", "nn", "optim", "save", "utils", "compile", "CaptureError", "get_num_threads", "set_num_threads",
]
