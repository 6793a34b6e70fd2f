"""Optimizers (SGD, Adam, AdamW) with PyTorch's update rules; schedulers are in lr_scheduler.py.

Each parameter's update is one recorded primitive (updates.py): a Function whose
forward writes into the parameter's array and its state arrays in place, called
through `.apply` under no_grad with the parameter, its gradient and its state as
Tensor inputs.  So `tinygrad_mnist.compile` records the update like any other op
and replays it on the same arrays.  For that:
- the state (momentum buffers, Adam's moments and its step counter, a scratch
  array) exists from the moment a parameter group is added, not from its first
  step: the first and second recordings of a step are the same;
- hyperparameters are read inside forward from the group dict, so an lr
  scheduler's change takes effect on replay too.

Hyperparameters are cast to each parameter's dtype first, so float32 parameters
stay float32 and no float64 temporaries appear.

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

import numpy as np

from .. import inplace
from ..engine import Tensor, _set_grad_mode, enable_grad
from .updates import AdamStep, GroupRef, SGDStep

# ---------------------------------------------------------------------------
# Optimizer base
# ---------------------------------------------------------------------------


class Optimizer:
    """Holds parameter groups (dicts with "params" and hyperparameters) and per-parameter state.

    `params` is an iterable of Tensors, or of dicts {"params": [...], "lr": ...}
    for groups with their own hyperparameters.  `opt.lr` reads the learning rate
    (of the first group) and sets it for every group.

    `state` shows PyTorch's view (parameter -> {name: array or int}) of the
    parameters stepped so far; the arrays behind it (`_buffers`: parameter ->
    {name: Tensor}) exist from `add_param_group` on.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self._buffers: dict = {}  # parameter -> {name: Tensor}, made eagerly (Tensor hashes by identity)
        self._slots: dict = {}  # parameter -> what step() hands its update (see _slot)
        self._refs: dict = {}  # id(group) -> its GroupRef
        self._stepped: set = set()  # parameters updated at least once: those `state` lists, as PyTorch does
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
        for p in group["params"]:
            self._buffers[p] = self._new_state(p, group)

    def _validate(self, group: dict) -> None:
        if group["lr"] < 0:
            raise ValueError(f"invalid learning rate {group['lr']}")
        if group.get("weight_decay", 0) < 0:
            raise ValueError(f"invalid weight_decay {group['weight_decay']}")

    def _new_state(self, p: Tensor, group: dict) -> dict:
        """The state arrays of p, as Tensors; "_scratch" is a p-sized temporary kept between steps
        (allocating a fresh weight-sized array every step costs more than the arithmetic done in it)."""
        return {"_scratch": Tensor._const(np.empty_like(p.data))}

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
        inplace.zero_grads(self.params, set_to_none)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; closure() (re)computes the loss first, as in PyTorch."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        stepped, slots = self._stepped, self._slots
        prev = _set_grad_mode(False)  # no_grad(), without the context manager's cost (this runs every batch)
        try:
            for group in self.param_groups:
                # one primitive per group updates all its parameters (as torch's foreach): inputs
                # p0, g0, state of p0..., p1, g1, ...; one op costs less than one per parameter
                self._prepare(group)
                inputs, ps = [], []
                for p in group["params"]:
                    g = p._grad
                    if g is None:
                        continue
                    slot = slots.get(p)
                    if slot is None or slot[0] is not p.data:  # new, or p.data was replaced (a cast, a load)
                        slot = self._slot(p, group)
                    inputs.append(p)
                    inputs.append(g)
                    inputs += slot[1]
                    ps.append(p)
                if not ps:
                    continue
                self._update(inputs, len(inputs) // len(ps), group)
                inplace.written(*ps)  # a version bump, as PyTorch's in-place update: a stale graph can't backprop
                stepped.update(ps)
        finally:
            _set_grad_mode(prev)
        return loss

    def _prepare(self, group: dict) -> None:
        """Called before each step of a group (SGD: momentum switched on later)."""

    def _slot(self, p: Tensor, group: dict) -> tuple:
        """(p's array, the state Tensors its update takes after p and its gradient), kept in _slots while
        p.data stays the same array; if its shape or dtype changed, the state follows it first."""
        s = self._buffers[p]["_scratch"].data
        state = self._buffers[p] if s.shape == p.data.shape and s.dtype == p.data.dtype else self._refit(p, group)
        slot = self._slots[p] = (p.data, self._state_inputs(p, state, group))
        return slot

    def _state_inputs(self, p: Tensor, state: dict, group: dict) -> list:
        """The state Tensors the update primitive takes after p and its gradient."""
        return [state["_scratch"]]

    def _update(self, inputs: list, k: int, group: dict) -> None:
        """Apply the update primitive (updates.py) to inputs, k per parameter."""
        raise NotImplementedError

    def _ref(self, group: dict) -> GroupRef:
        """The one GroupRef of a group (the update primitives' `hp`)."""
        ref = self._refs.get(id(group))
        if ref is None or ref.group is not group:
            ref = self._refs[id(group)] = GroupRef(group)
        return ref

    def _refit(self, p: Tensor, group: dict) -> dict:
        """p's array changed shape or dtype since its state was made: cast the state (same shape) or start anew."""
        old, new = self._buffers[p], self._new_state(p, group)
        for k, t in new.items():
            if k != "_scratch" and k in old and old[k].data.shape == t.data.shape:
                np.copyto(t.data, old[k].data, casting="unsafe")
        self._buffers[p] = new
        self._slots.pop(p, None)
        return new

    # -- state -------------------------------------------------------------------
    @property
    def state(self) -> dict:
        """{parameter: {name: array or int}} for the parameters stepped so far, as torch.optim's `state`
        (the arrays are the live ones; "step" is a Python int read from its counter)."""
        return {p: self._public_state(p, self._buffers[p]) for g in self.param_groups for p in g["params"]
                if p in self._stepped}

    def _public_state(self, p: Tensor, state: dict) -> dict:
        return {}

    def _load_state(self, p: Tensor, state: dict, saved: dict | None) -> None:
        """Write a state_dict entry (None: no entry, a fresh state) into p's state arrays."""
        for k, t in state.items():
            if k != "_scratch":
                t.data[...] = 0

    def state_dict(self) -> dict:
        """{"state": {param index: {name: array}}, "param_groups": [hyperparameters, "params": [indices]]}."""
        index = {id(p): i for i, p in enumerate(self.params)}
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items()}
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
        loaded = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            for name, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != p.shape:
                    raise ValueError(f"optimizer state: {name} of parameter {i} has shape {v.shape}, "
                                     f"the parameter has {p.shape}")
            loaded[p] = s
        for saved, own in zip(groups, self.param_groups):
            own.update({k: v for k, v in saved.items() if k != "params"})
        # into the arrays made at add_param_group (a recorded step keeps updating the same ones)
        for group in self.param_groups:
            for p in group["params"]:
                state = self._buffers[p]
                if state["_scratch"].data.shape != p.data.shape or state["_scratch"].data.dtype != p.data.dtype:
                    state = self._refit(p, group)
                self._load_state(p, state, loaded.get(p))
        self._stepped = set(loaded)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            hp = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} tensors, {hp}")
        return "\n".join(lines) + "\n)"


def _zeros(p: Tensor, dtype=None) -> Tensor:
    return Tensor._const(np.zeros(p.data.shape, p.data.dtype) if dtype is None else np.zeros((), dtype))


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

    With momentum, a 0-d flag (state "_started", not in state_dict: torch's SGD
    has none) tells the first step apart inside forward.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 dampening: float = 0.0):
        if momentum < 0:
            raise ValueError(f"invalid momentum {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                      dampening=dampening))

    def _new_state(self, p, group):
        state = super()._new_state(p, group)
        if group["momentum"]:
            state["momentum_buffer"] = _zeros(p)
            state["_started"] = _zeros(p, np.bool_)
        return state

    def _prepare(self, group):
        if group["momentum"] and "momentum_buffer" not in self._buffers[group["params"][0]]:
            # momentum switched on after the group was added: the buffers start now (new leaves mid-step,
            # which a captured step refuses; make the optimizer with momentum > 0 instead)
            for q in group["params"]:
                self._buffers[q].update(momentum_buffer=_zeros(q), _started=_zeros(q, np.bool_))
                self._slots.pop(q, None)

    def _state_inputs(self, p, state, group):
        if "momentum_buffer" not in state:
            return [state["_scratch"]]
        return [state["_scratch"], state["momentum_buffer"], state["_started"]]

    def _update(self, inputs, k, group):
        SGDStep.apply(*inputs, hp=self._ref(group), k=k)

    def _public_state(self, p, state):
        return {"momentum_buffer": state["momentum_buffer"].data} if "momentum_buffer" in state else {}

    def _load_state(self, p, state, saved):
        super()._load_state(p, state, saved)
        if saved is not None and "momentum_buffer" in saved and "momentum_buffer" in state:
            np.copyto(state["momentum_buffer"].data, np.asarray(saved["momentum_buffer"]), casting="unsafe")
            state["_started"].data[...] = True  # buf was started: the next step is a later one


# ---------------------------------------------------------------------------
# Adam and AdamW
# ---------------------------------------------------------------------------


class Adam(Optimizer):
    """Adam (Kingma & Ba) with torch.optim.Adam's rule; weight_decay is L2 added to the gradient:

        g = grad + weight_decay * p
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;   t += 1
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    t is a 0-d int64 array the update primitive increments; state_dict shows it as an int.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"invalid betas {betas}: each must be in [0, 1)")
        if eps < 0:
            raise ValueError(f"invalid eps {eps}")
        super().__init__(params, dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay))

    def _new_state(self, p, group):
        state = super()._new_state(p, group)
        state["step"] = _zeros(p, np.int64)
        state["exp_avg"] = _zeros(p)
        state["exp_avg_sq"] = _zeros(p)
        return state

    def _state_inputs(self, p, state, group):
        return [state["exp_avg"], state["exp_avg_sq"], state["step"], state["_scratch"]]

    def _update(self, inputs, k, group):
        AdamStep.apply(*inputs, hp=self._ref(group), decoupled=self.decoupled)

    def _public_state(self, p, state):
        return {"step": int(state["step"].data), "exp_avg": state["exp_avg"].data,
                "exp_avg_sq": state["exp_avg_sq"].data}

    def _load_state(self, p, state, saved):
        super()._load_state(p, state, saved)
        if saved is not None:
            state["step"].data[...] = int(saved.get("step", 0))
            for k in ("exp_avg", "exp_avg_sq"):
                if k in saved:
                    np.copyto(state[k].data, np.asarray(saved[k]), casting="unsafe")


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * weight_decay before the Adam step."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
