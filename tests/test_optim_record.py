"""Optimizer updates and in-place writes are recorded primitives (issue 12's capture contract).

A small tracer stands in for tinygrad_mnist.compile's recorder: it hooks `engine._tracer`, notes every op
(ctx, input arrays, params, output array) and every new leaf, and checks that each array an op reads is
known (a parameter, a gradient, optimizer state, an earlier op's output, or 0-d) and that no param is an
ndarray.  `replay` re-runs the recorded forwards on the same ctx objects, as compile's replay does, so
these tests also show that replaying a step equals running it eagerly, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import strict_compile

from tinygrad_mnist import engine, nn, optim
from tinygrad_mnist.engine import Tensor, no_grad


class Tracer:
    def __init__(self, known=()):
        self.arrays = list(known)  # kept alive: ids stay unique
        self.known = {id(a) for a in self.arrays}
        self.ops, self.leaves, self.unknown, self.array_params = [], [], [], []

    def op(self, ctx, inputs, params, out):
        arrays = [t.data for t in inputs]
        for a in arrays:
            if id(a) not in self.known and a.ndim:
                self.unknown.append((ctx.name, a.shape))
        for k, v in params.items():
            if any(isinstance(x, np.ndarray) for x in (v if isinstance(v, (tuple, list)) else (v,))):
                self.array_params.append((ctx.name, k))
        self.ops.append((ctx, arrays, params, out.data))
        self.arrays.append(out.data)
        self.known.add(id(out.data))

    def leaf(self, t):
        self.leaves.append(t)


def trace(fn, known=()):
    tracer = engine._tracer = Tracer(known)
    try:
        fn()
    finally:
        engine._tracer = None
    return tracer


def replay(tracer):
    """Re-run the recorded forwards in order on the same ctx objects; outputs of ops feed later ops."""
    made = {}
    for ctx, arrays, params, out in tracer.ops:
        res = ctx.forward(*[made.get(id(a), a) for a in arrays], **params)
        made[id(out)] = res


def signature(tracer):
    """What two recordings of a step must agree on: the ops, their input arrays and their params."""
    return [(type(ctx), [id(a) for a in arrays if a.ndim], sorted(params)) for ctx, arrays, params, _ in tracer.ops]


def sound(tracer):
    assert tracer.unknown == [] and tracer.array_params == []
    # a new leaf is a 0-d constant or wraps an array already known (compile reads it as that array)
    assert all(t.data.ndim == 0 or id(t.data) in tracer.known for t in tracer.leaves), [t.shape for t in tracer.leaves]


SHAPES = [(5, 7), (5,), (3, 5), (3,)]
OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.5),
    "sgd_wd": lambda ps: optim.SGD(ps, lr=0.5, weight_decay=0.1),
    "momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    "momentum_dampening": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01),
    "nesterov_wd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: optim.Adam(ps, lr=0.01),
    "adam_wd": lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), weight_decay=0.1),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
}


def setup(make, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    params = [Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in SHAPES]
    for p in params:
        p.grad = np.zeros(p.shape, dtype)
    return params, make(params), rng


def new_grads(params, rng):
    """Fresh gradient values written into the same arrays (what a replayed backward does)."""
    for p in params:
        p.grad.data[...] = rng.standard_normal(p.shape)


def state_arrays(opt):
    return [t.data for s in opt._buffers.values() for t in s.values()]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_step_is_recorded_primitives_and_the_same_twice(name):
    params, opt, rng = setup(OPTIMIZERS[name])
    known = [p.data for p in params] + [p.grad.data for p in params] + state_arrays(opt)
    new_grads(params, rng)
    first = trace(opt.step, known)
    new_grads(params, rng)
    second = trace(opt.step, known)
    sound(first)
    sound(second)
    assert len(first.ops) == 1 and first.leaves == []  # one update primitive per parameter group
    assert signature(first) == signature(second)  # state existed before the first step
    for op in first.ops:
        assert op[2]["hp"].group is opt.param_groups[0]  # hyperparameters are read from the group at forward time


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_replayed_steps_equal_eager_steps_bit_for_bit(name, dtype):
    """100 steps, with the learning rate changed by a scheduler every 10: replayed == eager, bit for bit."""
    make = OPTIMIZERS[name]
    (pe, oe, re), (pr, orr, rr) = setup(make, dtype), setup(make, dtype)
    se = optim.lr_scheduler.StepLR(oe, step_size=10, gamma=0.5)
    sr = optim.lr_scheduler.StepLR(orr, step_size=10, gamma=0.5)
    new_grads(pe, re)
    new_grads(pr, rr)
    oe.step()
    recording = trace(orr.step)
    for _ in range(99):
        se.step()
        sr.step()
        new_grads(pe, re)
        new_grads(pr, rr)
        oe.step()
        replay(recording)
    for p, q in zip(pe, pr):
        assert p.data.dtype == q.data.dtype == dtype
        np.testing.assert_array_equal(p.data, q.data)
    for k, v in oe.state_dict()["state"].items():
        for name_, a in v.items():
            np.testing.assert_array_equal(a, orr.state_dict()["state"][k][name_])


# ---------------------------------------------------------------------------
# the update primitives against NumPy written out with the same operations (bit for bit)
# ---------------------------------------------------------------------------


def sgd_reference(p, g, buf, lr, momentum=0.0, dampening=0.0, nesterov=False, wd=0.0):
    dt = p.dtype.type
    if wd:
        g = g + dt(wd) * p
    if momentum:
        if buf is None:
            buf = g.copy()
        else:
            buf = buf * dt(momentum) + (dt(1 - dampening) * g if dampening else g)
        g = g + dt(momentum) * buf if nesterov else buf
    return p - g * dt(lr), buf


def adam_reference(p, g, m, v, t, lr, b1, b2, eps, wd=0.0, decoupled=False):
    dt = p.dtype.type
    if wd and decoupled:
        p = p * dt(1 - lr * wd)
    elif wd:
        g = g + dt(wd) * p
    m = m * dt(b1) + g * dt(1 - b1)
    v = v * dt(b2) + g * g * dt(1 - b2)
    denom = np.sqrt(v) / dt(math.sqrt(1 - b2 ** t)) + dt(eps)
    return p - m / denom * dt(lr / (1 - b1 ** t)), m, v


@pytest.mark.parametrize("kw", [{}, {"wd": 0.1}, {"momentum": 0.9}, {"momentum": 0.9, "dampening": 0.3, "wd": 0.01},
                                {"momentum": 0.9, "nesterov": True, "wd": 0.01}], ids=str)
def test_sgd_step_equals_numpy_bit_for_bit(kw):
    params, opt, rng = setup(lambda ps: optim.SGD(ps, lr=0.3, momentum=kw.get("momentum", 0.0),
                                                   dampening=kw.get("dampening", 0.0),
                                                   nesterov=kw.get("nesterov", False),
                                                   weight_decay=kw.get("wd", 0.0)))
    ref = [p.data.copy() for p in params]
    bufs = [None] * len(params)
    for step in range(20):
        if step == 10:
            opt.lr = 0.1
        new_grads(params, rng)
        for i, p in enumerate(params):
            ref[i], bufs[i] = sgd_reference(ref[i], p.grad.data, bufs[i], opt.lr, **kw)
        opt.step()
        for p, r in zip(params, ref):
            np.testing.assert_array_equal(p.data, r)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_step_equals_numpy_bit_for_bit(decoupled):
    cls = optim.AdamW if decoupled else optim.Adam
    params, opt, rng = setup(lambda ps: cls(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05))
    ref = [[p.data.copy(), np.zeros_like(p.data), np.zeros_like(p.data)] for p in params]
    for t in range(1, 21):
        if t == 10:
            opt.lr = 0.002
        new_grads(params, rng)
        for r, p in zip(ref, params):
            r[:] = adam_reference(r[0], p.grad.data, r[1], r[2], t, opt.lr, 0.8, 0.95, 1e-6, 0.05, decoupled)
        opt.step()
        for p, r in zip(params, ref):
            np.testing.assert_array_equal(p.data, r[0])
    assert opt.state[params[0]]["step"] == 20


def test_sgd_first_momentum_step_is_exact_with_dampening():
    """PyTorch's first step sets buf = g (no dampening): the counter read inside forward tells it apart."""
    p = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=1.0, momentum=0.9, dampening=0.5)
    p.grad = np.full(3, 2.0, np.float32)
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"], 2.0)
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"], np.float32(0.9) * 2 + np.float32(0.5) * 2)


# ---------------------------------------------------------------------------
# state: eager, and what state_dict / load_state_dict make of it
# ---------------------------------------------------------------------------


def test_state_exists_before_the_first_step_and_stays_the_same_arrays():
    p = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    before = {k: t.data for k, t in opt._buffers[p].items()}
    assert before["step"].shape == () and before["step"].dtype == np.int64 and set(before) >= {"exp_avg", "exp_avg_sq"}
    assert opt.state == {}  # PyTorch shows no state until a parameter is stepped
    p.grad = np.ones(3, np.float32)
    opt.step()
    sd = opt.state_dict()
    assert sd["state"][0]["step"] == 1 and isinstance(sd["state"][0]["step"], int)
    opt.step()
    fresh = optim.Adam([p], lr=0.1)
    arrays = {k: t.data for k, t in fresh._buffers[p].items()}
    fresh.load_state_dict(sd)  # loaded into the arrays made at construction
    assert all(fresh._buffers[p][k].data is a for k, a in arrays.items())
    assert int(arrays["step"]) == 1 and fresh.state[p]["step"] == 1
    np.testing.assert_array_equal(arrays["exp_avg"], sd["state"][0]["exp_avg"])
    assert all(opt._buffers[p][k].data is a for k, a in before.items())


def test_load_state_dict_without_momentum_buffer_restarts_momentum():
    p = Tensor(np.ones(2, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=1.0, momentum=0.5)
    p.grad = np.ones(2, np.float32)
    opt.step()
    opt.step()
    opt.load_state_dict(optim.SGD([Tensor(np.ones(2, np.float32))], lr=1.0, momentum=0.5).state_dict())
    assert opt.state == {}
    opt.step()  # a first step again: buf = g
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"], 1.0)


def test_state_follows_a_parameter_cast_after_the_optimizer_was_made():
    lin = nn.Linear(3, 2)
    opt = optim.Adam(lin.parameters(), lr=0.1)
    lin.to(np.float64)
    lin(Tensor(np.ones((1, 3)))).sum().backward()
    opt.step()
    assert all(p.dtype == np.float64 and opt.state[p]["exp_avg"].dtype == np.float64 for p in opt.params)


# ---------------------------------------------------------------------------
# the manual loop, zero_grad and in-place writes
# ---------------------------------------------------------------------------


def test_manual_sgd_loop_is_recorded_and_replays():
    params, _, rng = setup(lambda ps: None)
    twins = [Tensor(p.data.copy(), requires_grad=True) for p in params]
    for q, p in zip(twins, params):
        q.grad = p.grad.data.copy()

    def manual(ps):
        with no_grad():
            for p in ps:
                p -= 0.1 * p.grad

    new_grads(params, rng)
    for q, p in zip(twins, params):
        q.grad.data[...] = p.grad.data
    known = [p.data for p in params] + [p.grad.data for p in params]
    recording = trace(lambda: manual(params), known)
    sound(recording)
    assert all(p.data is q for p, q in zip(params, known))  # written in place
    manual(twins)
    for _ in range(5):
        new_grads(params, rng)
        for q, p in zip(twins, params):
            q.grad.data[...] = p.grad.data
        replay(recording)
        manual(twins)
    for p, q in zip(params, twins):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_is_recorded(set_to_none):
    lin = nn.Linear(3, 2)
    opt = optim.SGD(lin.parameters(), lr=0.1)
    lin(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    grads = [p.grad.data for p in opt.params]
    rec = trace(lambda: opt.zero_grad(set_to_none=set_to_none), grads)
    sound(rec)
    if set_to_none:
        assert all(p.grad is None for p in opt.params) and rec.ops == []
    else:
        assert all(p.grad.data is g and not g.any() for p, g in zip(opt.params, grads))  # zeroed in place
        for g in grads:
            g[...] = 1
        replay(rec)
        assert not any(g.any() for g in grads)


INDEX = Tensor(np.array([0, 2]))
ROWS = Tensor(np.array([True, False, True, False]))
WRITES = {
    "isub": lambda x, v, m: x.__isub__(v),
    "add_": lambda x, v, m: x.add_(v, alpha=2.0),
    "mul_": lambda x, v, m: x.mul_(v),
    "div_": lambda x, v, m: x.div_(2.0),
    "fill_": lambda x, v, m: x.fill_(3.0),
    "zero_": lambda x, v, m: x.zero_(),
    "copy_": lambda x, v, m: x.copy_(v),
    "setitem_slice": lambda x, v, m: x.__setitem__((slice(1, 3), 0), 7.0),
    "setitem_mask": lambda x, v, m: x.__setitem__(m, 0.5),
    "setitem_index": lambda x, v, m: x.__setitem__(INDEX, v[0]),
    "setitem_mask_and_slice": lambda x, v, m: x.__setitem__((ROWS, slice(0, 2)), v[:2, :2]),
    "clamp_": lambda x, v, m: x.clamp_(-0.5, v),
    "relu_": lambda x, v, m: x.relu_(),
    "masked_fill_": lambda x, v, m: x.masked_fill_(m, 0.25),
}


@pytest.mark.parametrize("write", WRITES)
def test_inplace_write_on_a_leaf_under_no_grad_is_a_recorded_primitive(write):
    """The write itself is an op: replaying the recording on the old values writes the same new ones."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    v = Tensor(rng.standard_normal((4, 3)).astype(np.float32))
    m = Tensor(rng.standard_normal((4, 3)) > 0)
    before, array = x.data.copy(), x.data

    def step():
        with no_grad():
            WRITES[write](x, v, m)

    rec = trace(step, [x.data, v.data, m.data, INDEX.data, ROWS.data])
    sound(rec)
    after = x.data.copy()
    assert x.data is array and not np.array_equal(before, after) and x.is_leaf
    array[...] = before
    replay(rec)
    np.testing.assert_array_equal(array, after)


def test_integer_tensor_write_is_a_recorded_primitive():
    x, one = Tensor(np.arange(6).reshape(2, 3)), Tensor(np.ones(3, np.int64))
    rec = trace(lambda: x.__iadd__(one), [x.data, one.data])
    sound(rec)
    assert (x.data == np.arange(6).reshape(2, 3) + 1).all()
    replay(rec)
    assert (x.data == np.arange(6).reshape(2, 3) + 2).all()


# ---------------------------------------------------------------------------
# with tinygrad_mnist.compile: replayed training steps equal eager ones
# ---------------------------------------------------------------------------


def _training(name, zero="none"):
    """A small classifier, its optimizer with a StepLR, and its step function."""
    import tinygrad_mnist as tm
    from tinygrad_mnist.nn import functional as F

    tm.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))
    params = list(model.parameters())
    if name == "manual":
        opt = sched = None
    else:
        opt = OPTIMIZERS[name](params)
        sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)

    def step(x, y):
        if opt is None:
            for p in params:
                p.grad = None
        else:
            opt.zero_grad(set_to_none=zero == "none")
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if opt is None:
            with no_grad():
                for p in params:
                    p -= 0.05 * p.grad
        else:
            opt.step()
        return loss

    return params, opt, sched, step


def _batches(n=100):
    rng = np.random.default_rng(3)
    return [(rng.standard_normal((6, 12)).astype(np.float32), rng.integers(0, 3, 6)) for _ in range(n)]


@pytest.mark.parametrize("name,zero", [(n, z) for n in OPTIMIZERS for z in ("none", "zeros")] + [("manual", "none")])
def test_compiled_steps_equal_eager_steps_bit_for_bit(name, zero):
    """100 steps (the learning rate halved every 10 by StepLR): losses, parameters and optimizer state of the
    replayed run are bit-identical to the eager run's."""
    import tinygrad_mnist as tm

    runs = []
    for compiled in (False, True):
        params, opt, sched, step = _training(name, zero)
        fn = strict_compile(step) if compiled else step
        losses = []
        for x, y in _batches():
            losses.append(fn(tm.from_numpy(x), y).data.copy())
            if sched is not None:
                sched.step()
        if compiled:
            assert fn.replays >= 97 and fn.recordings == 1  # (a first call without .grad may record once more)
        state = [] if opt is None else [a for s in opt.state_dict()["state"].values() for a in s.values()]
        runs.append((losses, [p.data.copy() for p in params], state))
    (le, pe, se), (lr, pr, sr) = runs
    assert [a.tobytes() for a in le] == [a.tobytes() for a in lr]
    for a, b in zip(pe + se, pr + sr):
        np.testing.assert_array_equal(a, b)


def _batchnorm_run(compiled, momentum=0.1, steps=8):
    import tinygrad_mnist as tm
    from tinygrad_mnist.nn import functional as F

    tm.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.BatchNorm1d(8, momentum=momentum), nn.Tanh(), nn.Linear(8, 3))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = strict_compile(step) if compiled else step
    for x, y in _batches(steps):
        fn(tm.from_numpy(x), y)
    return {k: v.data.copy() for k, v in model.state_dict().items()}


def test_batchnorm_running_statistics_are_replayed():
    """The running mean/var and the batch count are written by write primitives: replay updates them too."""
    eager, replayed = _batchnorm_run(False), _batchnorm_run(True)
    assert int(replayed["1.num_batches_tracked"]) == 8
    for k in eager:
        np.testing.assert_array_equal(eager[k], replayed[k], err_msg=k)


def test_batchnorm_cumulative_average_is_replayed():
    """momentum=None divides by the batch count, as a tensor op (it was read in Python, which compile refused):
    the replayed running statistics equal eager's bit for bit, and differ from momentum 0.1's."""
    eager, replayed = _batchnorm_run(False, momentum=None), _batchnorm_run(True, momentum=None)
    assert int(replayed["1.num_batches_tracked"]) == 8
    for k in eager:
        np.testing.assert_array_equal(eager[k], replayed[k], err_msg=k)
    assert not np.array_equal(eager["1.running_mean"], _batchnorm_run(False)["1.running_mean"])


def test_inplace_writes_inside_a_graph_compile_and_replay_exactly():
    """x[mask] = v, h[:, 1] += c and mul_ (which saves the old value) on graph tensors: the recorded write
    (SetItem with its index arrays as inputs) and the memory write are ops, so replay equals eager."""
    import tinygrad_mnist as tm

    def run(compiled):
        w = Tensor(np.linspace(0.5, 1.5, 12, dtype=np.float32).reshape(4, 3), requires_grad=True)
        opt = optim.SGD([w], lr=0.1)

        def step(x):
            opt.zero_grad()
            h = x * w
            h[x > 0.5] = 0.0
            h.mul_(w)
            h[:, 1] += 1.0
            loss = (h * h).sum()
            loss.backward()
            opt.step()
            return loss

        fn = strict_compile(step) if compiled else step
        rng = np.random.default_rng(0)
        losses = [fn(tm.from_numpy(rng.random((4, 3), dtype=np.float32))).data.copy() for _ in range(6)]
        return losses, w.data.copy(), fn

    (le, we, _), (lr, wr, fn) = run(False), run(True)
    assert fn.replays >= 3
    assert [a.tobytes() for a in le] == [a.tobytes() for a in lr]
    np.testing.assert_array_equal(we, wr)
