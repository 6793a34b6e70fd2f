"""Gradient checking for your own tests (also importable from `tinygrad_mnist.testing`).

    from tinygrad_mnist.testing import gradcheck, gradgradcheck
    gradcheck(lambda a, b: (a * b).sum(), [a, b])
    gradgradcheck(lambda a, b: (a * b).tanh(), [a, b])

`gradcheck` compares the engine's Jacobian with central differences in
float64 and, on a mismatch, raises a `GradcheckError` that names the input,
the element, and both values.  `gradgradcheck` does the same one order up:
the backward's own backward against central differences of the backward.
`compare_with_reference` checks the engine's gradients against another
implementation (PyTorch, or any callable that returns gradients).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .engine import Tensor, grad


class GradcheckError(AssertionError):
    """Analytic and numeric (or reference) gradients disagree.

    Besides the message it carries what the first difference is, for a closer look (the pytest
    plugin prints `table()` under a failing test):
    `what` names the compared quantity ("input 0", "gradient of parameter 'fc.weight'"), `order` is
    1 or 2 for gradcheck/gradgradcheck (None for comparisons with a reference), `got` and `want` are
    the two arrays (named `got_name`, `want_name`), `bad` marks their elements outside tolerance and
    `index` is the first of those.
    """

    def __init__(self, message: str, *, what: str | None = None, order: int | None = None, got=None, want=None,
                 bad=None, index: tuple | None = None, got_name: str = "got", want_name: str = "want"):
        super().__init__(message)
        self.what, self.order, self.index = what, order, index
        self.got, self.want, self.bad = got, want, bad
        self.got_name, self.want_name = got_name, want_name

    def __reduce__(self):  # keep the details through pickling (pytest-xdist sends failures between processes)
        return type(self), (str(self),), dict(self.__dict__)

    def table(self, radius: int = 2) -> str:
        """got and want around the first differing element ('' when the error has no arrays)."""
        if self.got is None or self.want is None or self.index is None:
            return ""
        return format_table(self.got, self.want, self.index, self.bad, self.got_name, self.want_name, radius)


def format_table(got, want, index: tuple, bad=None, got_name: str = "got", want_name: str = "want",
                 radius: int = 2) -> str:
    """Two small tables, got above want, of the elements within `radius` of `index` in the last two axes.

    `*` marks the elements where `bad` is true (default: where got != want).
    """
    got, want = np.asarray(got), np.asarray(want)
    bad = (got != want) if bad is None else np.asarray(bad, bool)
    index = tuple(int(i) for i in index)
    if got.ndim == 0:
        return f"{got_name}: {_fmt(got[()], 6)}\n{want_name}: {_fmt(want[()], 6)}"
    lead = index[:-2]
    g, w, b = (a[lead] if lead else a for a in (got, want, bad))
    if got.ndim == 1:
        g, w, b = g[None], w[None], b[None]
        (r, c), row_label = (0, index[-1]), lambda i: ""
    else:
        (r, c), row_label = index[-2:], str
    rows = range(max(0, r - radius), min(g.shape[0], r + radius + 1))
    cols = range(max(0, c - radius), min(g.shape[1], c + radius + 1))
    where = f"[{', '.join(map(str, lead))}, :, :] " if lead else ""
    title = f"first difference at {list(index)}; elements {where}near it, * = outside tolerance:"
    cells = {(i, j, k): _fmt(a[i, j], 6) + ("*" if b[i, j] else " ")
             for k, a in enumerate((g, w)) for i in rows for j in cols}
    width = max(len(s) for s in cells.values()) + 1
    label_width = max(len(row_label(i)) for i in rows) + 2
    lines = [title]
    for k, name in enumerate((got_name, want_name)):
        lines.append(f"{name}:")
        lines.append(" " * label_width + "".join(f"{j:>{width}} " for j in cols))
        for i in rows:
            lines.append(f"{row_label(i):>{label_width}}" + "".join(f"{cells[i, j, k]:>{width + 1}}" for j in cols))
    return "\n".join(line.rstrip() for line in lines)


def _fmt(v, digits: int = 8) -> str:
    return f"{v:.{digits}g}" if isinstance(v, (float, np.floating)) else str(v)


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
    """The engine's Jacobian, one backward pass per output element.

    An output that does not depend on an input through the graph (or records no graph at all)
    gives zeros for it.
    """
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


def _checked(inputs: Sequence) -> list[int]:
    """Positions of the inputs whose gradients are checked."""
    return [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]


def _element(flat_index: int, shape: tuple) -> list[int]:
    return [int(i) for i in np.unravel_index(flat_index, shape)] if len(shape) else []  # not np.int64(..)


def _at(name: str, element: list) -> str:
    """'input[0, 1]', or just 'input' for a 0-d tensor."""
    return f"{name}{element}" if element else name


def gradcheck(fn: Callable, inputs: Sequence, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """Check the engine's gradients of `fn` against central differences in float64.

    Every Tensor input with requires_grad is checked (float inputs are copied
    to float64 first).  Returns True, or raises GradcheckError (False with
    raise_exception=False) with a report naming the input, the element, the
    order (1) and the analytic and numeric values.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    numeric = numerical_jacobian(fn, inputs, eps)
    analytic = analytical_jacobian(fn, inputs)
    for pos, num, ana in zip(_checked(inputs), numeric, analytic):
        bad = ~np.isclose(ana, num, atol=atol, rtol=rtol, equal_nan=True)
        if not bad.any():
            continue
        if not raise_exception:
            return False
        in_shape = tuple(inputs[pos].shape)
        out_shape = tuple(_output_array(fn(*_as_float64_inputs(inputs))).shape)
        out_k, in_k = (int(i) for i in np.argwhere(bad)[0])
        out_el, in_el = _element(out_k, out_shape), _element(in_k, in_shape)
        d_out = _at("output", out_el)
        raise GradcheckError(
            f"gradient mismatch (order 1) for input {pos} (shape {in_shape}): {int(bad.sum())} of {bad.size} "
            f"Jacobian entries differ (atol={atol}, rtol={rtol}, largest difference {np.abs(ana - num).max():.3g}).\n"
            f"  first: d {d_out} / d {_at('input', in_el)}: analytic {ana[out_k, in_k]:.8g}, "
            f"numeric {num[out_k, in_k]:.8g}",
            what=f"input {pos}", order=1, index=tuple(in_el), got_name=f"analytic d {d_out} / d input {pos}",
            want_name="numeric", got=ana[out_k].reshape(in_shape), want=num[out_k].reshape(in_shape),
            bad=bad[out_k].reshape(in_shape))
    return True


def gradgradcheck(fn: Callable, inputs: Sequence, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, raise_exception: bool = True, seed: int = 0) -> bool:
    """Check the gradient of the gradient of `fn` against central differences of the backward, in float64.

    The first-order gradients (of fn(*inputs) for `grad_outputs`, random normal by default, drawn
    from `seed`) are taken with create_graph=True, and their Jacobian with respect to every checked
    input and to grad_outputs (the backward is linear in it) is compared with central differences
    of the same backward.  A backward that gives right values but computes them behind the graph's
    back (NumPy on `.data`, a fresh Tensor(...)) is not differentiable and fails here.

    It checks the backward against itself, not against the forward: a wrong first-order rule that
    is a smooth function passes here, so run gradcheck as well.

    Returns True, or raises GradcheckError (False with raise_exception=False) naming the input,
    the element, the order (2) and the analytic and numeric values.
    """
    __tracebackhide__ = True
    inputs = _as_float64_inputs(inputs)
    checked = _checked(inputs)
    if not checked:
        raise ValueError("gradgradcheck: no input requires grad, nothing to check")
    out = _output_array(fn(*inputs))
    if grad_outputs is None:
        grad_outputs = np.random.default_rng(seed).standard_normal(out.shape)
    go = np.asarray(grad_outputs.data if isinstance(grad_outputs, Tensor) else grad_outputs, np.float64)
    if go.shape != out.shape:
        raise ValueError(f"gradgradcheck: grad_outputs has shape {go.shape}, the output has {out.shape}")
    n = len(inputs)
    sizes = [inputs[p].data.size for p in checked]

    def first_order(*args):  # every checked input's gradient, flattened and joined: one output for gradcheck
        xs, g = list(args[:n]), args[n]
        gs = grad(fn(*xs), [xs[p] for p in checked], grad_outputs=g, create_graph=True, allow_unused=True)
        parts = [Tensor(np.zeros(size)) if d is None else d.reshape(-1) for d, size in zip(gs, sizes)]
        return Tensor.cat(parts) if len(parts) > 1 else parts[0]

    args = [*inputs, Tensor(go, requires_grad=True)]
    numeric = numerical_jacobian(first_order, args, eps)
    analytic = analytical_jacobian(first_order, args)
    offsets = np.cumsum([0] + sizes)
    for pos, num, ana in zip(_checked(args), numeric, analytic):
        bad = ~np.isclose(ana, num, atol=atol, rtol=rtol, equal_nan=True)
        if not bad.any():
            continue
        if not raise_exception:
            return False
        name = "grad_output" if pos == n else f"input {pos}"
        in_shape = tuple(args[pos].shape)
        out_k, in_k = (int(i) for i in np.argwhere(bad)[0])
        j = int(np.searchsorted(offsets, out_k, side="right")) - 1  # whose first-order gradient holds out_k
        grad_name = f"grad_input{checked[j]}"
        grad_el = _element(out_k - offsets[j], tuple(inputs[checked[j]].shape))
        in_el = _element(in_k, in_shape)
        msg = (f"second-order gradient mismatch (order 2) for {name} (shape {in_shape}): {int(bad.sum())} of "
               f"{bad.size} entries of the Jacobian of the first-order gradients differ (atol={atol}, rtol={rtol}, "
               f"largest difference {np.abs(ana - num).max():.3g}).\n"
               f"  first: d {_at(grad_name, grad_el)} / d {_at(name.replace(' ', ''), in_el)}: analytic "
               f"{ana[out_k, in_k]:.8g}, numeric {num[out_k, in_k]:.8g}\n"
               f"  ({grad_name} is the gradient of fn's output w.r.t. input {checked[j]} for the grad_outputs, "
               f"taken with create_graph=True)")
        if not ana[bad].any():  # every differing entry is a zero: the gradient lost its graph
            msg += ("\n  The analytic values are zero wherever they differ: does the backward compute behind the "
                    "graph's back (NumPy on .data, a new Tensor(...)) instead of with Tensor ops?")
        raise GradcheckError(
            msg, what=name, order=2, index=tuple(in_el), got_name=f"analytic d {_at(grad_name, grad_el)} / d {name}",
            want_name="numeric", got=ana[out_k].reshape(in_shape), want=num[out_k].reshape(in_shape),
            bad=bad[out_k].reshape(in_shape))
    return True


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
    __tracebackhide__ = True
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
    assert_close(out.data, ref_out, atol, rtol, "output")
    for i, (g, rg) in enumerate(zip(ours, ref_grads)):
        if rg is None or not (isinstance(tensors[i], Tensor) and tensors[i].requires_grad):
            continue
        mine = np.zeros(tensors[i].shape, dtype) if g is None else g.data
        assert_close(mine, rg, atol, rtol, f"gradient of input {i}")
    return True


def assert_close(got, want, atol: float = 1e-5, rtol: float = 1e-4, what: str = "array",
                 reference: str = "reference") -> None:
    """Raise GradcheckError unless `got` (ours) matches `want` (the reference's) in shape and values.

    atol counts relative to the reference's scale, max(1, max |want|): a gradient of size 1e4
    compares at 1e4 * atol.  The message names `what`, the number of differing elements, the
    first one's index and both values; the error carries both arrays for `table()`.
    """
    __tracebackhide__ = True
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise GradcheckError(f"{what}: shape {got.shape}, {reference} has {want.shape}", what=what)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    if got.dtype.kind in "fc" or want.dtype.kind in "fc":
        bad = ~np.isclose(got, want, atol=atol * scale, rtol=rtol, equal_nan=True)
        tolerance = f"atol={atol}*{scale:.3g}, rtol={rtol}"
    else:  # integers (a step counter, indices) must be equal
        bad = got != want
        tolerance = "exactly"
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GradcheckError(f"{what} differs from the {reference} at {int(bad.sum())} of {bad.size} elements "
                             f"({tolerance}); first at index {list(idx)}: "
                             f"ours {_fmt(got[idx])}, {reference} {_fmt(want[idx])}",
                             what=what, got=got, want=want, bad=bad, index=idx, got_name="ours", want_name=reference)
