"""The torch.* free functions, re-exported at the package root.

    import tinygrad_mnist as tg
    x = tg.tensor([[1.0, 2.0]], requires_grad=True)   # copies, as torch.tensor
    w = tg.randn(2, 3, dtype=tg.float64)
    y = tg.softmax(x @ tg.zeros(2, 3), dim=1)

Each is a thin spelling of a Tensor method or factory; `device` may be
None or "cpu" (anything else is a clear error: this engine runs on NumPy).
"""

from __future__ import annotations

import numpy as np

from .engine import Tensor, _as_array, _check_device
from .tensor_methods.common import _shape_arg
from .tensor_methods.creation import _draw, _randperm, _zero_grad_link, from_numpy  # noqa: F401  (from_numpy re-exported)

# ---------------------------------------------------------------------------
# making tensors
# ---------------------------------------------------------------------------


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new leaf holding a copy of `data` (lists, numbers, arrays, tensors), as torch.tensor.

    Python floats become float32, Python ints int64; an ndarray keeps its dtype.
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like tensor(), but an ndarray or Tensor of the right dtype is shared, not copied (torch.as_tensor)."""
    _check_device(device, "as_tensor")
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    return Tensor._const(_as_array(data, dtype, copy=False))


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:  # noqa: A002  (torch's argument names)
    return input.numel()


def _shape(size):
    return _shape_arg(size)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return Tensor.zeros(_shape(size), dtype=dtype, device=device, requires_grad=requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return Tensor.ones(_shape(size), dtype=dtype, device=device, requires_grad=requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zero-filled (uninitialised memory would only hide bugs)."""
    return Tensor.empty(_shape(size), dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return Tensor.full(size, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def zeros_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    return Tensor.zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    return Tensor.ones_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    return Tensor.full_like(input, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    return Tensor.zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return Tensor.randn(_shape(size), dtype=dtype, device=device, requires_grad=requires_grad, generator=generator)


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return Tensor.rand(_shape(size), dtype=dtype, device=device, requires_grad=requires_grad, generator=generator)


def randn_like(input, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    return randn(input.shape, generator=generator, dtype=dtype or input.dtype, device=device,
                 requires_grad=requires_grad)


def rand_like(input, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    return rand(input.shape, generator=generator, dtype=dtype or input.dtype, device=device,
                requires_grad=requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """randint(low, high, size) or randint(high, size): int64 values in [low, high)."""
    return Tensor.randint(low, high, size, dtype=dtype, device=device, requires_grad=requires_grad,
                          generator=generator)


def randint_like(input, low=0, high=None, *, generator=None, dtype=None, device=None,  # noqa: A002
                 requires_grad: bool = False) -> Tensor:
    """Integers in [low, high) (randint_like(x, high) starts at 0) in input's shape and dtype, as torch's."""
    if high is None:
        low, high = 0, low
    return Tensor.randint(low, high, input.shape, dtype=dtype or input.dtype, device=device,
                          requires_grad=requires_grad, generator=generator)


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    data = _draw(_randperm, generator, n=int(n), dtype=np.dtype(dtype or np.int64))
    return Tensor._leaf(data, requires_grad, device)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Samples of N(mean, std^2), as torch.normal: numbers with a `size`, or tensors broadcast together.

    As in PyTorch, a mean or std that requires grad gets zero gradients through the samples.
    """
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        if size is not None:
            raise TypeError("normal: size= goes with a number mean and std; with tensors the shape is theirs")
        m, s = _lift(mean), _lift(std)
        float_dtype = next((t.dtype for t in (m, s) if t.dtype.kind == "f"), np.dtype(np.float32))
        m, s = m.cast(float_dtype), s.cast(float_dtype)
        if bool((s.detach() < 0).any()):
            raise RuntimeError(f"normal: std must be >= 0, but found std {s.detach().min().item()}")
        z = Tensor.randn(np.broadcast_shapes(m.shape, s.shape), dtype=float_dtype, generator=generator)
        return _zero_grad_link(m.detach() + s.detach() * z, m, s)
    if size is None:
        raise TypeError("normal: with a number mean and std, pass size=, e.g. normal(0.0, 1.0, size=(2, 3))")
    if std < 0:
        raise RuntimeError(f"normal: std must be >= 0, but found std {std}")
    z = Tensor.randn(_shape_arg((size,)), dtype=dtype, device=device, generator=generator)
    out = z * std + mean
    return out.requires_grad_() if requires_grad else out


def bernoulli(input, p=None, *, generator=None) -> Tensor:  # noqa: A002
    """0/1 samples, 1 with probability input (or with probability p, in input's shape), in input's dtype."""
    return _lift(input).bernoulli(p, generator=generator)


def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:  # noqa: A002
    return _lift(input).multinomial(num_samples, replacement, generator=generator)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return Tensor.arange(start, end, step, dtype=dtype, device=device, requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return Tensor.linspace(start, end, steps, dtype=dtype, device=device, requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return Tensor.eye(n, m, dtype=dtype, device=device, requires_grad=requires_grad)


# ---------------------------------------------------------------------------
# joining and choosing
# ---------------------------------------------------------------------------


def cat(tensors, dim: int = 0, *, axis=None) -> Tensor:
    return Tensor.cat(tensors, dim, axis=axis)


concat = concatenate = cat


def stack(tensors, dim: int = 0, *, axis=None) -> Tensor:
    return Tensor.stack(tensors, dim, axis=axis)


def where(condition, input=None, other=None) -> Tensor:  # noqa: A002
    """Elementwise `input if condition else other`; the gradient flows to input and other."""
    if input is None and other is None:
        raise TypeError("where(condition) with one argument (torch.nonzero) is not supported; "
                        "use where(condition, input, other), or np.nonzero(condition.numpy())")
    return Tensor.where(condition, input, other)


def _lift(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


# ---------------------------------------------------------------------------
# math, as torch.exp(x) and friends
# ---------------------------------------------------------------------------


def exp(input) -> Tensor:  # noqa: A002
    return _lift(input).exp()


def log(input) -> Tensor:  # noqa: A002
    return _lift(input).log()


def sqrt(input) -> Tensor:  # noqa: A002
    return _lift(input).sqrt()


def abs(input) -> Tensor:  # noqa: A001, A002
    return _lift(input).abs()


def tanh(input) -> Tensor:  # noqa: A002
    return _lift(input).tanh()


def sigmoid(input) -> Tensor:  # noqa: A002
    return _lift(input).sigmoid()


def relu(input) -> Tensor:  # noqa: A002
    return _lift(input).relu()


def matmul(input, other) -> Tensor:  # noqa: A002
    return _lift(input).matmul(other)


mm = matmul


def softmax(input, dim: int, dtype=None) -> Tensor:  # noqa: A002
    x = _lift(input)
    return (x if dtype is None else x.cast(dtype)).softmax(dim)


def log_softmax(input, dim: int, dtype=None) -> Tensor:  # noqa: A002
    x = _lift(input)
    return (x if dtype is None else x.cast(dtype)).log_softmax(dim)


def clamp(input, min=None, max=None) -> Tensor:  # noqa: A002
    return _lift(input).clamp(min, max)


clip = clamp


def maximum(input, other) -> Tensor:  # noqa: A002
    return _lift(input).maximum(other)


def minimum(input, other) -> Tensor:  # noqa: A002
    return _lift(input).minimum(other)


def sum(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001, A002
    return _lift(input).sum(dim, keepdim)


def mean(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    return _lift(input).mean(dim, keepdim)


def max(input, dim=None, keepdim: bool = False):  # noqa: A001, A002
    return _lift(input).max(dim, keepdim)


def min(input, dim=None, keepdim: bool = False):  # noqa: A001, A002
    return _lift(input).min(dim, keepdim)


def argmax(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    return _lift(input).argmax(dim, keepdim)


def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:  # noqa: A002
    return _lift(input).flatten(start_dim, end_dim)


def reshape(input, shape) -> Tensor:  # noqa: A002
    return _lift(input).reshape(shape)


def transpose(input, dim0: int, dim1: int) -> Tensor:  # noqa: A002
    return _lift(input).transpose(dim0, dim1)


def allclose(input, other, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:  # noqa: A002
    return _lift(input).allclose(other, rtol, atol, equal_nan)


def equal(input, other) -> bool:  # noqa: A002
    return _lift(input).equal(other)


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation with explicit letters, e.g. einsum("bij,bjk->bik", a, b); differentiable."""
    from . import ops

    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    if "." in eq:
        raise NotImplementedError("einsum: '...' is not supported here; write every dim's letter out")
    lhs, arrow, out = eq.partition("->")
    ins = tuple(lhs.split(","))
    if len(ins) != len(operands):
        raise ValueError(f"einsum: {equation!r} names {len(ins)} operands, got {len(operands)}")
    if not arrow:  # implicit output: the letters used once, in alphabetical order (NumPy's and PyTorch's rule)
        letters = "".join(ins)
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    tensors = [_lift(t) for t in operands]
    for sub, t in zip(ins, tensors):
        if len(sub) != t.ndim:
            raise ValueError(f"einsum: subscripts {sub!r} don't match an operand of shape {t.shape}")
    dtype = np.result_type(*[t.dtype for t in tensors])
    return ops.Einsum.apply(*[t.cast(dtype) for t in tensors], spec=(ins, out))


# ---------------------------------------------------------------------------
# the rest of torch.f(input, ...) == input.f(...): one line each
# ---------------------------------------------------------------------------


def _method(name: str):
    def fn(input, *args, **kwargs):  # noqa: A002
        return getattr(_lift(input), name)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"torch.{name}(input, ...): the same as input.{name}(...)."
    return fn


_METHODS = ("add sub mul div pow neg square sin cos floor ceil round trunc sign reciprocal rsqrt argmin amax amin "
            "prod cumsum norm var std logsumexp any all topk sort argsort flip tril triu outer bmm mv dot squeeze "
            "unsqueeze permute chunk split gather index_select masked_fill narrow select movedim unbind clone t "
            "eq ne lt le gt ge isnan isfinite nonzero count_nonzero logical_not logical_and logical_or "
            "logical_xor isinf cumprod log1p expm1 log2 log10 exp2 lerp diag diagonal trace median roll "
            "repeat_interleave unflatten clamp_min clamp_max").split()
for _name in _METHODS:
    globals()[_name] = _method(_name)
subtract, multiply, divide, true_divide, negative = sub, mul, div, div, neg  # noqa: F821  (made just above)
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne  # noqa: F821

__all__ = [n for n in dir() if not n.startswith("_") and n not in ("annotations", "np", "Tensor")]
