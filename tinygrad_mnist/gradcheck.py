"""Gradient checking for your own tests.

    from tinygrad_mnist.gradcheck import gradcheck, numerical_jacobian
    gradcheck(lambda a, b: (a * b).sum(), [a, b])

`gradcheck` compares the engine's Jacobian with central differences in
float64 and, on a mismatch, raises a `GradcheckError` that names the input,
the element, and both values.  `compare_with_reference` checks the engine's
gradients against another implementation (PyTorch, or any callable that
returns gradients).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .engine import Tensor, grad


class GradcheckError(AssertionError):
    """Analytic and numeric (or reference) gradients disagree."""


def _as_float64_inputs(inputs: Sequence) -> list[Tensor]:
    out = []
    for t in inputs:
        if isinstance(t, Tensor):
            data = t.data.astype(np.float64) if t.data.dtype.kind == "f" else t.data
            out.append(Tensor(data, requires_grad=t.requires_grad))
        else:
            out.append(t)  # non-tensor arguments (labels, ints) pass through
    return out


def _output_array(out) -> np.ndarray:
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out.data


def numerical_jacobian(fn: Callable, inputs: Sequence, eps: float = 1e-6) -> list[np.ndarray]:
    """d fn(*inputs) / d input by central differences, in float64.

    Returns one array of shape (output.size, input.size) for each input that
    requires grad, in order.
    """
    inputs = _as_float64_inputs(inputs)
    jacobians = []
    for t in inputs:
        if not (isinstance(t, Tensor) and t.requires_grad):
            continue
        flat = t.data.reshape(-1)  # a view: perturbing it perturbs t
        columns = []
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = _output_array(fn(*inputs)).astype(np.float64).ravel()
            flat[i] = orig - eps
            minus = _output_array(fn(*inputs)).astype(np.float64).ravel()
            flat[i] = orig
            columns.append((plus - minus) / (2 * eps))
        out_size = columns[0].size if columns else _output_array(fn(*inputs)).size
        jacobians.append(np.stack(columns, axis=1) if columns else np.zeros((out_size, 0)))
    return jacobians


def analytical_jacobian(fn: Callable, inputs: Sequence) -> list[np.ndarray]:
    """The engine's Jacobian, one backward pass per output element."""
    inputs = _as_float64_inputs(inputs)
    wrt = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    out = fn(*inputs)
    rows = [[] for _ in wrt]
    seed = np.zeros(out.shape, np.float64)
    for k in range(out.data.size):
        seed.reshape(-1)[k] = 1.0
        grads = grad(out, wrt, grad_outputs=seed.copy(), retain_graph=True, allow_unused=True)
        seed.reshape(-1)[k] = 0.0
        for r, g, t in zip(rows, grads, wrt):
            r.append(np.zeros(t.data.size) if g is None else g.data.astype(np.float64).ravel())
    return [np.stack(r, axis=0) if r else np.zeros((0, t.data.size)) for r, t in zip(rows, wrt)]


def gradcheck(fn: Callable, inputs: Sequence, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """Check the engine's gradients of `fn` against central differences in float64.

    Every Tensor input with requires_grad is checked (float inputs are copied
    to float64 first).  Returns True, or raises GradcheckError (False with
    raise_exception=False) with a report naming the input, the element, and
    the analytic and numeric values.
    """
    numeric = numerical_jacobian(fn, inputs, eps)
    analytic = analytical_jacobian(fn, inputs)
    positions = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for pos, num, ana in zip(positions, numeric, analytic):
        bad = ~np.isclose(ana, num, atol=atol, rtol=rtol, equal_nan=True)
        if bad.any():
            if not raise_exception:
                return False
            raise GradcheckError(_report(f"input {pos} (shape {tuple(inputs[pos].shape)})", ana, num, bad,
                                         inputs[pos].shape, atol, rtol, "numeric"))
    return True


def _report(what, got, want, bad, in_shape, atol, rtol, other) -> str:
    out_idx, in_idx = np.argwhere(bad)[0]
    elem = [int(i) for i in np.unravel_index(in_idx, in_shape)] if len(in_shape) else []  # not np.int64(..)
    worst = np.abs(got - want).max()
    return (f"gradient mismatch for {what}: {int(bad.sum())} of {bad.size} Jacobian entries differ "
            f"(atol={atol}, rtol={rtol}, largest difference {worst:.3g}).\n"
            f"  first: d output[{out_idx}] / d input{list(elem)}: analytic {got[out_idx, in_idx]:.8g}, "
            f"{other} {want[out_idx, in_idx]:.8g}")


# ---------------------------------------------------------------------------
# agreement with a reference implementation
# ---------------------------------------------------------------------------

DEFAULT_TOLERANCES = {np.dtype(np.float32): (1e-5, 1e-4), np.dtype(np.float64): (1e-10, 1e-7)}


def torch_reference(torch_fn: Callable) -> Callable:
    """Wrap a function written with PyTorch ops as a reference for compare_with_reference."""
    import torch  # only needed here; PyTorch is never a run-time dependency

    def reference(arrays, grad_output):
        ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") if isinstance(a, np.ndarray) else a
              for a in arrays]
        out = torch_fn(*ts)
        go = torch.tensor(grad_output) if grad_output is not None else torch.ones_like(out)
        wrt = [t for t in ts if isinstance(t, torch.Tensor) and t.requires_grad]
        gs = torch.autograd.grad(out, wrt, grad_outputs=go, allow_unused=True)
        gs = iter(gs)
        grads = [(next(gs) if isinstance(t, torch.Tensor) and t.requires_grad else None) for t in ts]
        return out.detach().numpy(), [None if g is None else g.numpy() for g in grads]

    return reference


def compare_with_reference(fn: Callable, reference: Callable, inputs: Sequence, grad_output=None,
                           atol: float | None = None, rtol: float | None = None) -> bool:
    """Check fn's output and input gradients against a reference implementation.

    `reference(arrays, grad_output) -> (output_array, [grad_array or None per input])`
    receives the inputs as ndarrays (use `torch_reference(torch_fn)` for a
    PyTorch function).  Tolerances default by dtype: float32 compares at
    atol=1e-5, rtol=1e-4 (relative to each array's scale), float64 tighter.
    Raises GradcheckError naming the output or input and the element that differ.
    """
    tensors = [Tensor(t.data.copy(), requires_grad=t.requires_grad) if isinstance(t, Tensor) else t
               for t in inputs]
    out = fn(*tensors)
    dtype = out.data.dtype
    d_atol, d_rtol = DEFAULT_TOLERANCES.get(dtype, (1e-5, 1e-4))
    atol, rtol = atol if atol is not None else d_atol, rtol if rtol is not None else d_rtol
    go = np.ones(out.shape, dtype) if grad_output is None else np.asarray(grad_output, dtype)
    wrt = [t for t in tensors if isinstance(t, Tensor) and t.requires_grad]
    grads = iter(grad(out, wrt, grad_outputs=go, allow_unused=True))
    ours = [(next(grads) if isinstance(t, Tensor) and t.requires_grad else None) for t in tensors]
    arrays = [t.data.copy() if isinstance(t, Tensor) else t for t in tensors]
    ref_out, ref_grads = reference(arrays, go)
    _compare("output", out.data, np.asarray(ref_out), atol, rtol)
    for i, (g, rg) in enumerate(zip(ours, ref_grads)):
        if rg is None or not (isinstance(tensors[i], Tensor) and tensors[i].requires_grad):
            continue
        mine = np.zeros(tensors[i].shape, dtype) if g is None else g.data
        _compare(f"gradient of input {i}", mine, np.asarray(rg), atol, rtol)
    return True


def _compare(what: str, got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> None:
    if got.shape != want.shape:
        raise GradcheckError(f"{what}: shape {got.shape}, reference has {want.shape}")
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    bad = ~np.isclose(got, want, atol=atol * scale, rtol=rtol, equal_nan=True)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GradcheckError(f"{what} differs from the reference at {int(bad.sum())} of {bad.size} elements "
                             f"(atol={atol}*{scale:.3g}, rtol={rtol}); first at index {list(idx)}: "
                             f"ours {got[idx]:.8g}, reference {want[idx]:.8g}")
