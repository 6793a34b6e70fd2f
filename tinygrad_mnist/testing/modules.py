"""assert_module_matches: one of our modules against its PyTorch twin, weights, buffers and every gradient."""

from __future__ import annotations

import numpy as np

from ..engine import Tensor, grad
from ..gradcheck import DEFAULT_TOLERANCES, assert_close


def assert_module_matches(module, torch_module, *inputs, rtol: float | None = None, atol: float | None = None,
                          grad_output=None, seed: int = 0) -> None:
    """Check `module` (ours) against `torch_module` on the same weights and inputs.

    1. Our parameters and persistent buffers are copied into the torch module by state_dict name
       (the two state dicts must have the same keys and shapes; a ValueError lists what differs).
       The torch module is converted to our parameters' float dtype and put in our module's mode
       (train or eval, submodule by submodule where the names match): it is changed in place.
    2. Both run forward on the inputs (ndarrays or Tensors; float ones become inputs that require
       grad, cast to the parameters' dtype; integer ones, such as labels, pass as they are) and
       then backward with `grad_output` (default: random normal values drawn from `seed`).
    3. Compared, in this order: the outputs, the buffers after the forward (running statistics a
       training-mode forward updates), the gradient of each float input, the gradient of every
       parameter that requires grad (in named_parameters order).  The first difference raises
       GradcheckError naming it ("gradient of parameter 'fc1.weight'"), its first differing element
       and both values.

    Tolerances default by dtype as in compare_with_reference (float32: atol=1e-5 relative to the
    reference's scale, rtol=1e-4).  No `.grad` is touched on either side; a training-mode forward
    does update both modules' running statistics, as any forward would.  PyTorch is imported here,
    when called, never before.
    """
    __tracebackhide__ = True  # pytest shows the caller's line
    import torch  # a test-time reference only

    ours_state = module.state_dict()
    theirs_state = torch_module.state_dict()
    _check_same_keys_and_shapes(module, torch_module, ours_state, theirs_state)
    params = list(module.named_parameters())
    torch_params = dict(torch_module.named_parameters())
    not_params = [name for name, _ in params if name not in torch_params]
    if not_params:
        raise ValueError(f"assert_module_matches: {', '.join(not_params)} are parameters of "
                         f"{type(module).__name__} but not of {type(torch_module).__name__}")

    dtype = next((p.data.dtype for _, p in params if p.data.dtype.kind == "f"), None)
    if dtype is not None:
        torch_module.to(getattr(torch, dtype.name))
    torch_module.train(module.training)
    torch_submodules = dict(torch_module.named_modules())
    for name, m in module.named_modules():  # a submodule switched on its own (one layer in eval) too
        if name in torch_submodules:
            torch_submodules[name].training = m.training
    for name, p in params:  # the same parameters are frozen on both sides
        torch_params[name].requires_grad_(p.requires_grad)
    with torch.no_grad():
        torch_module.load_state_dict({k: torch.from_numpy(np.array(v.data)) for k, v in ours_state.items()})

    ours_in, theirs_in = [], []
    for x in inputs:
        arr = x.data if isinstance(x, Tensor) else x
        if isinstance(arr, np.ndarray):
            if arr.dtype.kind == "f":
                arr = arr.astype(dtype or arr.dtype)
            differentiable = arr.dtype.kind == "f"
            ours_in.append(Tensor(arr.copy(), requires_grad=differentiable))
            theirs_in.append(torch.tensor(arr.copy(), requires_grad=differentiable))
        else:  # Python numbers, strings, None: arguments, not data
            ours_in.append(x)
            theirs_in.append(x)

    out = module(*ours_in)
    t_out = torch_module(*theirs_in)
    if not isinstance(out, Tensor) or not isinstance(t_out, torch.Tensor):
        raise TypeError(f"assert_module_matches: both modules must return one tensor; got "
                        f"{type(out).__name__} and {type(t_out).__name__}")
    d_atol, d_rtol = DEFAULT_TOLERANCES.get(out.data.dtype, (1e-5, 1e-4))
    atol, rtol = d_atol if atol is None else atol, d_rtol if rtol is None else rtol

    def same(what, ours, theirs):
        __tracebackhide__ = True
        theirs = np.zeros(ours.shape, ours.dtype) if theirs is None else theirs.detach().numpy()
        assert_close(ours, theirs, atol, rtol, what, reference="PyTorch module")

    same("output", out.data, t_out)
    t_buffers = dict(torch_module.named_buffers())
    for name, b in module.named_buffers():
        if name in ours_state:  # persistent buffers: the ones the two modules started equal on
            same(f"buffer '{name}' after the forward", b.data, t_buffers[name])

    wrt = [(f"input {i}", t, theirs_in[i]) for i, t in enumerate(ours_in)
           if isinstance(t, Tensor) and t.requires_grad]
    wrt += [(f"parameter '{name}'", p, torch_params[name]) for name, p in params if p.requires_grad]
    if not wrt:
        return
    go = (np.random.default_rng(seed).standard_normal(out.shape) if grad_output is None
          else np.asarray(grad_output.data if isinstance(grad_output, Tensor) else grad_output))
    go = go.astype(out.data.dtype)
    if go.shape != out.shape:
        raise ValueError(f"assert_module_matches: grad_output has shape {go.shape}, the output has {out.shape}")
    ours_grads = grad(out, [t for _, t, _ in wrt], grad_outputs=go, allow_unused=True) if out.requires_grad \
        else [None] * len(wrt)
    t_wrt = [t for _, _, t in wrt]
    theirs_grads = (torch.autograd.grad(t_out, t_wrt, grad_outputs=torch.from_numpy(go.copy()), allow_unused=True)
                    if t_out.requires_grad else [None] * len(wrt))
    for (what, t, _), g, tg in zip(wrt, ours_grads, theirs_grads):
        same(f"gradient of {what}", np.zeros(t.shape, t.data.dtype) if g is None else g.data, tg)


def _check_same_keys_and_shapes(module, torch_module, ours: dict, theirs: dict) -> None:
    ours_name, theirs_name = type(module).__name__, type(torch_module).__name__
    only_ours = [k for k in ours if k not in theirs]
    only_theirs = [k for k in theirs if k not in ours]
    problems = []
    if only_ours:
        problems.append(f"only in ours ({ours_name}): {', '.join(only_ours)}")
    if only_theirs:
        problems.append(f"only in the torch module ({theirs_name}): {', '.join(only_theirs)}")
    problems += [f"{k}: ours has shape {tuple(v.shape)}, the torch module {tuple(theirs[k].shape)}"
                 for k, v in ours.items() if k in theirs and tuple(v.shape) != tuple(theirs[k].shape)]
    if problems:
        raise ValueError("assert_module_matches: the state dicts do not line up: " + "; ".join(problems))
