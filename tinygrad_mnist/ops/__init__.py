"""The primitive ops, each with its gradient rule next to it, grouped by family.

    factories.py    arrays made without a gradient: const, Detached, Full, OneHot, Random, DropoutMask
    elementwise.py  Add, Mul, ... (binary, broadcasting), Exp, Relu, Sigmoid, ... (unary), Cast, Clone
    reduce.py       Sum, Max, Min, Prod, Cumsum, Cumprod, LogSoftmax
    shape.py        Reshape, Permute, Expand, SumTo, Pad, Cat, GetItem, Gather, ScatterAdd, SetItem, ...
    matmul.py       Matmul, Einsum
    conv.py         Unfold (im2col) and Fold (col2im): the windows a convolution or a pooling reads
    fused.py        speed-ups, each equal to a composite of the above: MaskMul, ReluGrad, SigmoidGrad,
                    TanhGrad, ProdGrad, CrossEntropy(+Grad), Linear
    fused_conv.py   speed-ups for convolution and pooling: Conv2d, MaxPool2d, PoolGather, their gradients
    writes.py       in-place writes as ops, no gradient: AddInPlace, SetItemInPlace, ClampInPlace, ZerosLike

`forward` computes on ndarrays.  `backward` receives the output's gradient as
a Tensor and returns one gradient per input (None where an input needs none),
written with Tensor operations: that is what lets a gradient be differentiated
again (create_graph=True).  Broadcasting is undone by the engine, which sums
each returned gradient down to its input's shape, so binary ops here simply
return the broadcast gradient.

Masks and weights that depend only on which branch was taken (relu, max,
abs, ...) have a derivative that is zero almost everywhere.  They are never
computed with NumPy behind the graph's back: a gradient rule builds every
array with a primitive (`MaskMul`, `ReluGrad`, `Detached`, ...), so
tinygrad_mnist.compile can record and replay a whole step (issue 12).

`saves_inputs = False` marks ops whose backward never reads an input's
values (only shapes, dtypes, requires_grad): after backward releases the
graph they can be backpropagated again.  See Function's docstring.

The ops import the core (engine.Function, Tensor); the core never imports them at module load.
Every op is re-exported here, so `ops.Add` and `from .ops import Add` work; so are the few helpers
that inplace.py, engine.py and the tests reach through `ops` (the underscored names).
"""

# Every import below is a re-export (the names this package offers), none is used here:
# ruff: noqa: F401
from .conv import Fold, Unfold
from .elementwise import (
    Abs,
    Add,
    Cast,
    Clip,
    Clone,
    Cos,
    Div,
    Erf,
    Exp,
    Expm1,
    LeakyRelu,
    Log,
    Log1p,
    Maximum,
    Minimum,
    Mul,
    Neg,
    Pow,
    PowConst,
    Relu,
    Sigmoid,
    Sin,
    Sqrt,
    Step,
    Sub,
    Tanh,
    Where,
    _inside,
    _leaky_slope,
    _wins,
)
from .factories import Detached, DropoutMask, Full, OneHot, Random, const
from .fused import CrossEntropy, CrossEntropyGrad, Linear, MaskMul, ProdGrad, ReluGrad, SigmoidGrad, TanhGrad
from .fused_conv import (
    Conv2d,
    Conv2dWeightGrad,
    ConvTranspose2d,
    MaxPool2d,
    MaxPoolGrad,
    PoolGather,
    PoolHits,
    PoolScatter,
    _PoolGeometry,
    get_num_threads,
    set_num_threads,
)
from .matmul import Einsum, Matmul
from .reduce import Cumprod, Cumsum, LogSoftmax, Max, Min, Prod, Sum, _shares
from .shape import (
    At,
    Cat,
    Expand,
    Gather,
    GetItem,
    IndexAdd,
    Pad,
    Permute,
    Relayout,
    Reshape,
    ScatterAdd,
    SetItem,
    SumTo,
    _fill,
    _is_basic,
    _layout,
    _unwritten,
    split_index,
)
from .writes import (
    AddInPlace,
    ClampInPlace,
    DivInPlace,
    MulInPlace,
    SetItemInPlace,
    SubInPlace,
    ZerosLike,
)
