"""Tests of tinygrad_mnist.optim: each update rule against the formula in NumPy and against torch.optim."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tinygrad_mnist import nn, optim
from tinygrad_mnist.engine import Tensor

try:
    import torch
except ImportError:  # PyTorch is only a reference
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (reference only) is not installed")

SHAPES = [(3, 4), (4,)]
STEPS = 6


def initial():
    g = np.random.default_rng(1)
    return [g.standard_normal(s).astype(np.float32) for s in SHAPES]


def gradients():
    """A fixed sequence of gradients (one list per step), so only the update rule is tested."""
    g = np.random.default_rng(2)
    return [[g.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(STEPS)]


def run_ours(make_opt):
    params = [Tensor(a.copy(), requires_grad=True) for a in initial()]
    opt = make_opt(params)
    history = []
    for grads in gradients():
        for p, g in zip(params, grads):
            p.grad = g.copy()
        opt.step()
        history.append([p.data.copy() for p in params])
    return history, opt, params


def run_torch(make_opt):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in initial()]
    opt = make_opt(params)
    history = []
    for grads in gradients():
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


# ---------------------------------------------------------------------------
# the formulas, written out once more in float64 NumPy
# ---------------------------------------------------------------------------


def sgd_by_hand(lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
    ps = [a.astype(np.float64) for a in initial()]
    bufs = [None] * len(ps)
    history = []
    for grads in gradients():
        for i, g in enumerate(grads):
            d = g + weight_decay * ps[i]
            if momentum:
                bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * d
                d = d + momentum * bufs[i] if nesterov else bufs[i]
            ps[i] = ps[i] - lr * d
        history.append([p.copy() for p in ps])
    return history


def adam_by_hand(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    b1, b2 = betas
    ps = [a.astype(np.float64) for a in initial()]
    ms = [np.zeros_like(p) for p in ps]
    vs = [np.zeros_like(p) for p in ps]
    history = []
    for t, grads in enumerate(gradients(), start=1):
        for i, g in enumerate(grads):
            if decoupled:
                ps[i] = ps[i] * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * ps[i]
            ms[i] = b1 * ms[i] + (1 - b1) * g
            vs[i] = b2 * vs[i] + (1 - b2) * g * g
            m_hat, v_hat = ms[i] / (1 - b1 ** t), vs[i] / (1 - b2 ** t)
            ps[i] = ps[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append([p.copy() for p in ps])
    return history


def assert_histories_close(ours, want, rtol=1e-5, atol=1e-6):
    """Parameters agree after every step, and so do their displacements (small with small lr)."""
    assert len(ours) == len(want)
    for step, (a, b) in enumerate(zip(ours, want)):
        for i, (x, y, x0) in enumerate(zip(a, b, initial())):
            msg = f"step {step + 1}, parameter {i}"
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=msg)
            d = np.asarray(y, np.float64) - x0
            np.testing.assert_allclose(x - x0, d, rtol=1e-3, atol=1e-3 * np.abs(d).max(), err_msg=msg)


SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.8, dampening=0.3),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.01),
    "everything": dict(lr=0.07, momentum=0.5, nesterov=True, weight_decay=0.1),
}
ADAM_CASES = {
    "default": dict(lr=1e-3),
    "big_lr": dict(lr=0.1, betas=(0.8, 0.99)),
    "weight_decay": dict(lr=0.01, weight_decay=0.1),
    "eps": dict(lr=0.01, eps=1e-2),
}


@pytest.mark.parametrize("case", SGD_CASES)
def test_sgd_matches_formula(case):
    ours, _, _ = run_ours(lambda ps: optim.SGD(ps, **SGD_CASES[case]))
    assert_histories_close(ours, sgd_by_hand(**SGD_CASES[case]))


@pytest.mark.parametrize("case", ADAM_CASES)
def test_adam_matches_formula(case):
    ours, _, _ = run_ours(lambda ps: optim.Adam(ps, **ADAM_CASES[case]))
    assert_histories_close(ours, adam_by_hand(**ADAM_CASES[case]))


@pytest.mark.parametrize("case", ADAM_CASES)
def test_adamw_matches_formula(case):
    kw = dict(ADAM_CASES[case])
    kw.setdefault("weight_decay", 1e-2)
    ours, _, _ = run_ours(lambda ps: optim.AdamW(ps, **kw))
    assert_histories_close(ours, adam_by_hand(**kw, decoupled=True))


def test_adamw_default_decay_differs_from_adam_l2():
    adamw, _, _ = run_ours(lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.5))
    adam, _, _ = run_ours(lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.5))
    assert not np.allclose(adamw[-1][0], adam[-1][0])
    assert optim.AdamW([Tensor([1.0], requires_grad=True)]).param_groups[0]["weight_decay"] == 1e-2


@needs_torch
@pytest.mark.parametrize("case", SGD_CASES)
def test_sgd_matches_torch(case):
    ours, _, _ = run_ours(lambda ps: optim.SGD(ps, **SGD_CASES[case]))
    assert_histories_close(ours, run_torch(lambda ps: torch.optim.SGD(ps, **SGD_CASES[case])))


@needs_torch
@pytest.mark.parametrize("case", ADAM_CASES)
@pytest.mark.parametrize("kind", ["Adam", "AdamW"])
def test_adam_matches_torch(case, kind):
    kw = ADAM_CASES[case]
    ours, _, _ = run_ours(lambda ps: getattr(optim, kind)(ps, **kw))
    assert_histories_close(ours, run_torch(lambda ps: getattr(torch.optim, kind)(ps, **kw)))


@needs_torch
def test_training_loop_matches_torch():
    """Gradients from backward() through a small network, 5 Adam steps, same as PyTorch."""
    ours = nn.MLP([4, 8, 3])
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for (_, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            tp.copy_(torch.from_numpy(p.data.copy()))
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    y = np.arange(16) % 3
    opt, topt = optim.Adam(ours.parameters(), lr=0.01), torch.optim.Adam(theirs.parameters(), lr=0.01)
    for _ in range(5):
        opt.zero_grad()
        ours(Tensor(x)).cross_entropy(y).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# dtype, bookkeeping, validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=np.float64(0.1), momentum=np.float64(0.9), nesterov=True, weight_decay=0.01),
    lambda ps: optim.Adam(ps, lr=np.float64(0.01), betas=(np.float64(0.9), 0.999), weight_decay=0.1),
    lambda ps: optim.AdamW(ps, lr=0.01),
], ids=["SGD", "Adam", "AdamW"])
def test_float32_stays_float32(make):
    _, opt, params = run_ours(make)
    for p in params:
        assert p.dtype == np.float32
        for name, buf in opt.state[p].items():
            assert not isinstance(buf, np.ndarray) or buf.dtype == np.float32, name


def test_float64_parameters_stay_float64():
    p = Tensor(np.ones(3), requires_grad=True)
    assert p.dtype == np.float64
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones(3)
    opt.step()
    assert p.dtype == np.float64 and opt.state[p]["exp_avg"].dtype == np.float64


def test_update_is_in_place_and_keeps_grad():
    p = Tensor(np.ones(3, np.float32), requires_grad=True)
    data = p.data
    p.grad = np.full(3, 2.0, np.float32)
    optim.SGD([p], lr=0.5, weight_decay=1.0).step()
    assert p.data is data
    np.testing.assert_allclose(p.data, 1 - 0.5 * (2 + 1))
    np.testing.assert_array_equal(p.grad.data, 2.0)  # weight decay does not touch .grad
    assert p.is_leaf and p.grad_fn is None


def test_parameters_without_grad_are_skipped():
    a, b = Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = np.ones(1, np.float32)
    opt.step()
    assert a.data[0] != 1.0 and b.data[0] == 1.0 and b not in opt.state


def test_zero_grad_sets_none():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    model(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert all(p.grad is not None for p in opt.params)
    opt.zero_grad()
    assert all(p.grad is None for p in opt.params)


def test_param_groups_and_lr_attribute():
    a, b = Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0] and opt.param_groups[1]["momentum"] == 0.5
    assert opt.params == [a, b] and opt.lr == 0.1
    a.grad, b.grad = np.ones(1, np.float32), np.ones(1, np.float32)
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.0])
    opt.lr = 0.01
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01]
    assert "group 1" in repr(opt)


@pytest.mark.parametrize("bad", [
    lambda: optim.SGD([], lr=0.1),
    lambda: optim.SGD([Tensor([1.0], requires_grad=True)], lr=-1),
    lambda: optim.SGD([Tensor([1.0], requires_grad=True)], lr=0.1, momentum=-0.1),
    lambda: optim.SGD([Tensor([1.0], requires_grad=True)], lr=0.1, nesterov=True),
    lambda: optim.SGD([Tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9, nesterov=True, dampening=0.1),
    lambda: optim.SGD([Tensor([1.0], requires_grad=True) * 2], lr=0.1),  # not a leaf
    lambda: optim.Adam([Tensor([1.0], requires_grad=True)], betas=(1.0, 0.9)),
    lambda: optim.Adam([Tensor([1.0], requires_grad=True)], eps=-1),
    lambda: optim.Adam([Tensor([1.0], requires_grad=True)], weight_decay=-1),
])
def test_invalid_arguments(bad):
    with pytest.raises(ValueError):
        bad()


def test_parameter_in_two_groups_rejected():
    p = Tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="must be Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.05)], ids=["SGD", "Adam"])
def test_optimizer_state_dict_resumes_exactly(make):
    grads = gradients()
    params = [Tensor(a.copy(), requires_grad=True) for a in initial()]
    opt = make(params)

    def steps(opt, params, gs):
        for step in gs:
            for p, g in zip(params, step):
                p.grad = g.copy()
            opt.step()

    steps(opt, params, grads[:3])
    saved = opt.state_dict()
    saved_params = [p.data.copy() for p in params]
    steps(opt, params, grads[3:])  # continuing must not change the saved state

    clones = [Tensor(a.copy(), requires_grad=True) for a in saved_params]
    resumed = make(clones)
    resumed.load_state_dict(saved)
    steps(resumed, clones, grads[3:])
    for p, q in zip(params, clones):
        np.testing.assert_array_equal(p.data, q.data)


def test_optimizer_load_state_dict_checks_sizes():
    opt = optim.Adam([Tensor(np.ones(3, np.float32), requires_grad=True)])
    other = optim.Adam([Tensor(np.ones(2, np.float32), requires_grad=True)])
    other.params[0].grad = np.ones(2, np.float32)
    other.step()
    with pytest.raises(ValueError, match="has shape"):
        opt.load_state_dict(other.state_dict())
    two = optim.Adam([Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="group 0 has 2 parameters"):
        opt.load_state_dict(two.state_dict())


# ---------------------------------------------------------------------------
# learning-rate schedules
# ---------------------------------------------------------------------------


def lrs_ours(make_sched, epochs, lrs=(0.1, 0.03)):
    opt = optim.SGD([{"params": [Tensor([1.0], requires_grad=True)], "lr": lr} for lr in lrs], lr=lrs[0])
    sched = make_sched(opt)
    out = [sched.get_last_lr()]
    for _ in range(epochs):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == out[-1]
    return out


def lrs_torch(make_sched, epochs, lrs=(0.1, 0.03)):
    opt = torch.optim.SGD([{"params": [torch.ones(1, requires_grad=True)], "lr": lr} for lr in lrs], lr=lrs[0])
    sched = make_sched(opt)
    out = [sched.get_last_lr()]
    for _ in range(epochs):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr())
    return out


def test_step_lr_formula():
    lrs = lrs_ours(lambda o: optim.StepLR(o, step_size=3, gamma=0.5), 10)
    assert [round(l[0], 12) for l in lrs] == [round(0.1 * 0.5 ** (e // 3), 12) for e in range(11)]


def test_cosine_formula():
    lrs = lrs_ours(lambda o: optim.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 10)
    for e, (lr, _) in enumerate(lrs):
        assert math.isclose(lr, 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2, rel_tol=1e-12)
    assert math.isclose(lrs[-1][0], 0.001) and math.isclose(lrs[0][0], 0.1)


@needs_torch
@pytest.mark.parametrize("ours,theirs", [
    (lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    (lambda o: optim.StepLR(o, step_size=1, gamma=0.9),
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.9)),
    (lambda o: optim.CosineAnnealingLR(o, T_max=10),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10)),
    (lambda o: optim.CosineAnnealingLR(o, T_max=7, eta_min=0.005),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.005)),
], ids=["step3", "step1", "cosine", "cosine_eta_min"])
def test_schedules_match_torch(ours, theirs):
    a, b = lrs_ours(ours, 25), lrs_torch(theirs, 25)  # 25 epochs: past T_max too
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-9, atol=1e-12)


def test_scheduler_drives_the_update_and_resumes():
    p = Tensor([0.0], requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    for expected in [-1.0, -1.5, -1.75]:
        p.grad = np.ones(1, np.float32)
        opt.step()
        sched.step()
        assert p.data[0] == expected
    state = sched.state_dict()
    assert state["last_epoch"] == 3 and "optimizer" not in state
    resumed = optim.StepLR(optim.SGD([p], lr=1.0), step_size=1, gamma=0.5)
    resumed.load_state_dict(state)
    resumed.step()
    assert resumed.get_last_lr() == [0.0625]


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.Adam(ps)], ids=["sgd", "adam"])
def test_backward_through_a_graph_recorded_before_step_raises_like_torch(make):
    """opt.step() writes the parameters in place: a graph that saved them can't give their old gradient."""
    lin = nn.Linear(3, 2)
    opt = make(lin.parameters())
    x = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    loss = (lin(x) ** 2).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()
    opt.zero_grad()
    (lin(x) ** 2).sum().backward()  # a graph recorded after the step is fine
    opt.step()


def test_reduce_lr_on_plateau_resumes_through_save_and_load(tmp_path):
    import tinygrad_mnist as tm

    def make():
        opt = optim.SGD([Tensor([1.0], requires_grad=True)], lr=1.0)
        return opt, optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)

    metrics = [3.0, 2.0, 2.5, 2.6, 2.7, 1.0, 1.5, 1.6]
    opt, sched = make()
    for m in metrics[:4]:
        sched.step(m)
    tm.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "s.pt")
    for m in metrics[4:]:
        sched.step(m)
    opt2, sched2 = make()
    ck = tm.load(tmp_path / "s.pt")
    opt2.load_state_dict(ck["opt"])
    sched2.load_state_dict(ck["sched"])
    for m in metrics[4:]:
        sched2.step(m)
    assert sched2.get_last_lr() == sched.get_last_lr() == [0.25]
    with pytest.raises(ValueError, match="factor must be < 1.0"):
        optim.lr_scheduler.ReduceLROnPlateau(opt, factor=2.0)


# -- OneCycleLR: stepped once per batch, lr and momentum (SGD's momentum or Adam's beta1) both cycle -----

ONE_CYCLE_CASES = {  # keyword arguments, given to both ours and torch's
    "defaults": dict(max_lr=0.5, total_steps=20),
    "epochs_steps": dict(max_lr=[0.5, 0.2], epochs=3, steps_per_epoch=7),
    "linear": dict(max_lr=0.3, total_steps=17, anneal_strategy="linear", pct_start=0.25),
    "three_phase": dict(max_lr=0.4, total_steps=23, three_phase=True, div_factor=10.0, final_div_factor=100.0),
    "momentums": dict(max_lr=0.1, total_steps=12, base_momentum=[0.8, 0.7], max_momentum=0.99, pct_start=0.5),
    "no_momentum": dict(max_lr=0.1, total_steps=9, cycle_momentum=False),
}


def _one_cycle_history(module, opt_kind: str, kw: dict, steps: int):
    """(lr, momentum or beta1, beta2) of each group after construction and after each of `steps` steps."""
    if module is optim:
        ps = [[Tensor(np.ones(1, np.float32), requires_grad=True)] for _ in range(2)]
    else:
        ps = [[torch.ones(1, requires_grad=True)] for _ in range(2)]
    groups = [{"params": ps[0], "lr": 0.1}, {"params": ps[1], "lr": 0.03}]
    opt = (module.SGD(groups, lr=0.1, momentum=0.9) if opt_kind == "sgd"
           else module.Adam(groups, lr=0.1, betas=(0.9, 0.99)))
    sched = module.lr_scheduler.OneCycleLR(opt, **kw)

    def now():
        return [(g["lr"], g["momentum"] if opt_kind == "sgd" else g["betas"][0],
                 None if opt_kind == "sgd" else g["betas"][1]) for g in opt.param_groups]

    out = [now()]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(now())
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    return out, sched


@needs_torch
@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
@pytest.mark.parametrize("case", sorted(ONE_CYCLE_CASES))
def test_one_cycle_matches_torch(case, opt_kind):
    kw = ONE_CYCLE_CASES[case]
    total = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
    ours, _ = _one_cycle_history(optim, opt_kind, kw, total)  # every step of the cycle, the last one included
    theirs, _ = _one_cycle_history(torch.optim, opt_kind, kw, total)
    for a, b in zip(ours, theirs):
        for (lr, m, b2), (tlr, tm, tb2) in zip(a, b):
            assert math.isclose(lr, tlr, rel_tol=1e-12, abs_tol=1e-15)
            assert math.isclose(m, tm, rel_tol=1e-12) and b2 == tb2


def test_one_cycle_shape_and_limits():
    (hist, sched) = _one_cycle_history(optim, "adam", dict(max_lr=1.0, total_steps=10), 10)
    lrs = [h[0][0] for h in hist]
    assert lrs[0] == pytest.approx(1.0 / 25) and max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 2
    assert lrs[9] == pytest.approx(1.0 / 25 / 1e4)  # the cycle's last step (9): max_lr / div / final_div
    betas = [h[0][1] for h in hist]
    assert betas[0] == pytest.approx(0.95) and min(betas) == pytest.approx(0.85) and betas[9] == pytest.approx(0.95)
    with pytest.raises(ValueError, match="tried to step 11 times; the schedule has 10 steps"):
        sched.step()


def test_one_cycle_drives_a_compiled_adam_step_like_eager():
    """The lr and beta1 a OneCycleLR sets between steps reach the update when a compiled step replays."""
    import tinygrad_mnist as tm

    def run(compiled):
        tm.manual_seed(0)
        lin = nn.Linear(4, 3)
        opt = optim.Adam(lin.parameters(), lr=0.01)
        sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=8)
        x = Tensor(np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4))
        y = Tensor(np.array([0, 1, 2, 0, 1, 2]))

        def step():
            opt.zero_grad()
            loss = lin(x).cross_entropy(y)
            loss.backward()
            opt.step()
            return loss

        step = tm.compile(step, enabled=compiled)
        for _ in range(8):
            step()
            sched.step()
        return [p.data.copy() for p in lin.parameters()], step

    eager, _ = run(False)
    replayed, step = run(True)
    assert step.replays > 0
    for a, b in zip(eager, replayed):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("kw,match", [
    (dict(max_lr=0.1), "either total_steps or both epochs and steps_per_epoch"),
    (dict(max_lr=0.1, total_steps=0), "positive integer total_steps"),
    (dict(max_lr=0.1, epochs=2, steps_per_epoch=0), "positive integer steps_per_epoch"),
    (dict(max_lr=0.1, total_steps=5, pct_start=1.5), "pct_start between 0 and 1"),
    (dict(max_lr=0.1, total_steps=5, anneal_strategy="exp"), "'cos' or 'linear'"),
    (dict(max_lr=[0.1, 0.2], total_steps=5), "expected 1 values for max_lr"),
])
def test_one_cycle_bad_arguments(kw, match):
    opt = optim.SGD([Tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=match):
        optim.lr_scheduler.OneCycleLR(opt, **kw)


def test_one_cycle_state_dict_resumes_exactly():
    def make():
        opt = optim.SGD([Tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9)
        return opt, optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=12, three_phase=True)

    opt, sched = make()
    for _ in range(5):
        sched.step()
    state = json.loads(json.dumps(sched.state_dict()))  # as a checkpoint's metadata keeps it
    rest = []
    for _ in range(7):
        sched.step()
        rest.append((sched.get_last_lr(), opt.param_groups[0]["momentum"]))
    opt2, sched2 = make()
    sched2.load_state_dict(state)
    for expected in rest:
        sched2.step()
        assert (sched2.get_last_lr(), opt2.param_groups[0]["momentum"]) == expected
