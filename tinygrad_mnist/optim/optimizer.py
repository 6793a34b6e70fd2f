"""Optimizers (SGD, Adam, AdamW) with PyTorch's update rules; schedulers are in lr_scheduler.py.

Updates work directly on the parameters' ndarrays, in place: nothing is
recorded and no Tensor is created.  Hyperparameters are cast to each
parameter's dtype first, so float32 parameters stay float32 and no float64
temporaries appear.

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    for epoch in ...:
        for x, y in batches:
            opt.zero_grad()
            loss = cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        sched.step()
"""

from __future__ import annotations

import copy
import math

import numpy as np

from .. import inplace
from ..engine import Tensor, enable_grad

# ---------------------------------------------------------------------------
# Optimizer base
# ---------------------------------------------------------------------------


class Optimizer:
    """Holds parameter groups (dicts with "params" and hyperparameters) and per-parameter state.

    `params` is an iterable of Tensors, or of dicts {"params": [...], "lr": ...}
    for groups with their own hyperparameters.  `opt.lr` reads the learning rate
    (of the first group) and sets it for every group.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}  # parameter -> dict of arrays (Tensor hashes by identity)
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got {type(p).__name__}")
            if not p.is_leaf:  # a frozen (requires_grad=False) leaf is fine: it has no grad, step skips it
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf tensor (shape {p.shape}); "
                                 f"optimize the leaves it was computed from")
            if id(p) in existing:
                raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group")
            existing.add(id(p))
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group: dict) -> None:
        if group["lr"] < 0:
            raise ValueError(f"invalid learning rate {group['lr']}")
        if group.get("weight_decay", 0) < 0:
            raise ValueError(f"invalid weight_decay {group['weight_decay']}")

    @property
    def params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        for g in self.param_groups:
            g["lr"] = value

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = np.zeros_like(p.grad.data)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; closure() (re)computes the loss first, as in PyTorch."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data  # the engine hands leaves contiguous gradients
                # dt: Python floats -> the parameter's scalar type, so float32 math stays float32
                self._update(p.data, g, self.state.setdefault(p, {}), group, p.data.dtype.type)
                inplace.written(p)  # a version bump, as PyTorch's in-place update: a stale graph can't backprop
        return loss

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict, dt) -> None:
        raise NotImplementedError

    # -- state -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"state": {param index: {name: array}}, "param_groups": [hyperparameters, "params": [indices]]}."""
        index = {id(p): i for i, p in enumerate(self.params)}
        state = {index[id(p)]: copy.deepcopy({k: v for k, v in s.items() if not k.startswith("_")})  # no scratch
                 for p, s in self.state.items() if id(p) in index}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"optimizer state: group {i} has {len(saved['params'])} parameters, "
                                 f"this optimizer's has {len(own['params'])}")
        params = self.params
        new_state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            for name, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != p.shape:
                    raise ValueError(f"optimizer state: {name} of parameter {i} has shape {v.shape}, "
                                     f"the parameter has {p.shape}")
            new_state[p] = {k: (v.astype(p.dtype) if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        for saved, own in zip(groups, self.param_groups):
            own.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            hp = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} tensors, {hp}")
        return "\n".join(lines) + "\n)"


def _scratch(state: dict, p: np.ndarray) -> np.ndarray:
    """A temporary the size of p, kept between steps ("_" keys stay out of state_dict): allocating a
    fresh weight-sized array every step costs more than the arithmetic done in it (page faults)."""
    buf = state.get("_scratch")
    if buf is None or buf.shape != p.shape or buf.dtype != p.dtype:
        buf = state["_scratch"] = np.empty_like(p)
    return buf


# ---------------------------------------------------------------------------
# SGD
# ---------------------------------------------------------------------------


class SGD(Optimizer):
    """Stochastic gradient descent, torch.optim.SGD's rule:

        g = grad + weight_decay * p
        buf = g                                   (first step)
        buf = momentum * buf + (1 - dampening) * g (later steps)
        g = g + momentum * buf if nesterov else buf
        p -= lr * g
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 dampening: float = 0.0):
        if momentum < 0:
            raise ValueError(f"invalid momentum {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                      dampening=dampening))

    def _update(self, p, g, state, group, dt):
        momentum, wd = group["momentum"], group["weight_decay"]
        if wd:
            g = g + dt(wd) * p
        if momentum:
            momentum = dt(momentum)
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += dt(1 - group["dampening"]) * g if group["dampening"] else g
            g = g + momentum * buf if group["nesterov"] else buf
        p -= np.multiply(g, dt(group["lr"]), out=_scratch(state, p))  # p -= lr * g; g (maybe p.grad) untouched


# ---------------------------------------------------------------------------
# Adam and AdamW
# ---------------------------------------------------------------------------


class Adam(Optimizer):
    """Adam (Kingma & Ba) with torch.optim.Adam's rule; weight_decay is L2 added to the gradient:

        g = grad + weight_decay * p
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;   t += 1
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"invalid betas {betas}: each must be in [0, 1)")
        if eps < 0:
            raise ValueError(f"invalid eps {eps}")
        super().__init__(params, dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay))

    def _update(self, p, g, state, group, dt):
        b1, b2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if wd and self.decoupled:
            p *= dt(1 - lr * wd)  # AdamW: shrink the weights, apart from the gradient
        elif wd:
            g = g + dt(wd) * p
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        # in-place passes through one kept scratch array: this runs for every parameter on every batch
        tmp = np.multiply(g, dt(1 - b1), out=_scratch(state, p))
        m *= dt(b1)
        m += tmp  # m = b1 m + (1 - b1) g
        np.multiply(g, g, out=tmp)
        tmp *= dt(1 - b2)
        v *= dt(b2)
        v += tmp  # v = b2 v + (1 - b2) g^2
        # bias corrections in Python floats, as torch does, then one cast each
        denom = np.sqrt(v, out=tmp)
        denom /= dt(math.sqrt(1 - b2 ** t))
        denom += dt(group["eps"])
        step = np.divide(m, denom, out=tmp)
        step *= dt(lr / (1 - b1 ** t))
        p -= step  # p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * weight_decay before the Adam step."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
