"""tinygrad_mnist.compile: record a step twice, replay it; replay equals eager bit for bit, or a clear refusal."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from helpers import strict_compile

import tinygrad_mnist as tg
from tinygrad_mnist import CaptureError, Function, Tensor, engine, no_grad
from tinygrad_mnist.tensor_methods.attributes import Attributes

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


class SGDStep(Function):
    """p -= lr * g in place, lr read from a param-group dict when the op runs (so a changed lr is seen)."""

    def forward(self, p, g, group):
        p -= p.dtype.type(group["lr"]) * g
        return p


def mlp(seed=0, sizes=(6, 5, 3)):
    rng = np.random.default_rng(seed)
    ps = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        ps.append(Tensor(rng.standard_normal((n_out, n_in)).astype(np.float32), requires_grad=True))
        ps.append(Tensor(rng.standard_normal(n_out).astype(np.float32), requires_grad=True))
    return ps


def make_step(ps, group, act="sigmoid"):
    """forward (linear + act), quadratic loss, backward, the SGDStep update; returns the loss."""

    def step(x, y):
        x, y = as_tensor(x), as_tensor(y)
        for p in ps:
            p.grad = None
        h = x
        for i in range(0, len(ps), 2):
            h = getattr(h.linear(ps[i], ps[i + 1]), act)()
        loss = ((h - y) ** 2).sum() * (0.5 / x.shape[0])
        loss.backward()
        with no_grad():
            for p in ps:
                SGDStep.apply(p, p.grad, group=group)
        return loss

    return step


def as_tensor(a):
    return tg.from_numpy(a) if isinstance(a, np.ndarray) else a  # shares the argument's memory: no copy


def batches(n, batch=4, sizes=(6, 3), seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.random((batch, sizes[0]), dtype=np.float32), rng.random((batch, sizes[1]), dtype=np.float32))
            for _ in range(n)]


def same(a, b) -> bool:
    a = a.data if isinstance(a, Tensor) else a
    b = b.data if isinstance(b, Tensor) else b
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_restored():
    """After any capture, eager Tensors are back to plain slots and methods: no checks left on the hot path."""
    assert engine._tracer is None
    assert type(Tensor.__dict__["data"]).__name__ == "member_descriptor"
    assert isinstance(Tensor.__dict__["grad"], property) and Tensor.__dict__["grad"].fset.__module__.endswith("engine")
    assert Tensor.__dict__["item"] is Attributes.__dict__["item"]  # the method itself, not capture's guard


# ---------------------------------------------------------------------------
# replay equals eager
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_replay_matches_eager_bit_for_bit(act):
    group_e, group_c = {"lr": 0.5}, {"lr": 0.5}
    pe, pc = mlp(), mlp()
    eager = make_step(pe, group_e, act)
    step = strict_compile(make_step(pc, group_c, act))
    for x, y in batches(20):
        le = eager(Tensor(x), Tensor(y))
        lc = step(Tensor(x), Tensor(y))
        assert same(le, lc)
        for a, b in zip(pe, pc):
            assert same(a, b) and same(a.grad, b.grad)
    assert (step.eager_calls, step.replays, step.recordings) == (2, 18, 1)
    assert_restored()


def test_arrays_as_inputs_and_decorator_form():
    pe, pc = mlp(), mlp()
    group = {"lr": 0.1}
    eager = make_step(pe, dict(group))
    step = strict_compile()(make_step(pc, dict(group)))
    for x, y in batches(6):
        assert same(eager(tg.from_numpy(x), tg.from_numpy(y)), step(x, y))  # ndarrays straight in
    assert step.replays == 4

    @strict_compile
    def double(x):
        return as_tensor(x) * 2.0

    for _ in range(3):
        assert same(double(np.ones(3, np.float32)), np.full(3, 2.0, np.float32))
    assert double.replays == 1


def test_grad_after_replay_is_a_fresh_tensor_as_eager_leaves_it():
    ps = mlp()
    step = strict_compile(make_step(ps, {"lr": 0.1}))
    data = batches(5)
    held = []
    for x, y in data:
        step(x, y)
        held.append([p.grad for p in ps])
        assert all(type(p.grad) is Tensor and p.grad.grad_fn is None and not p.grad.requires_grad for p in ps)
    # every step handed out new gradient tensors; the ones held from earlier steps kept their values
    assert all(a is not b for a, b in zip(held[3], held[4]))
    assert not all(same(a, b) for a, b in zip(held[3], held[4]))


def test_outputs_are_copies():
    ps = mlp()
    step = strict_compile(make_step(ps, {"lr": 0.1}))
    outs = []
    for x, y in batches(6):
        out = step(x, y)
        outs.append((out, out.data.copy()))
    for out, value in outs:
        assert same(out, value)  # later replays did not write into earlier results
    assert len({id(o.data) for o, _ in outs}) == len(outs)


def test_shorter_last_batch_records_its_own():
    pe, pc = mlp(), mlp()
    eager = make_step(pe, {"lr": 0.2})
    step = strict_compile(make_step(pc, {"lr": 0.2}))
    full, short = batches(6, batch=4), batches(4, batch=3, seed=5)
    order = [full[0], full[1], full[2], short[0], full[3], short[1], short[2], short[3], full[4]]
    for x, y in order:
        assert same(eager(x, y), step(x, y))
    for a, b in zip(pe, pc):
        assert same(a, b)
    assert step.programs == 2
    assert step.replays == len(order) - 4


def test_changed_lr_is_honoured_on_replay():
    ge, gc = {"lr": 0.5}, {"lr": 0.5}
    pe, pc = mlp(), mlp()
    eager, step = make_step(pe, ge), strict_compile(make_step(pc, gc))
    for i, (x, y) in enumerate(batches(12)):
        ge["lr"] = gc["lr"] = 0.5 * 0.8 ** i  # a scheduler
        assert same(eager(x, y), step(x, y))
    for a, b in zip(pe, pc):
        assert same(a, b)
    assert step.replays == 10


def test_python_argument_is_part_of_the_key():
    calls = []

    def scaled(x, k):
        calls.append(k)
        return as_tensor(x) * float(k)

    step = strict_compile(scaled)
    x = np.arange(3, dtype=np.float32)
    for k in (1, 1, 1, 2, 2, 2):
        assert same(step(x, k), x * np.float32(k))
    assert calls == [1, 1, 2, 2] and step.replays == 2 and step.programs == 2


def test_enabled_false_runs_eagerly_every_time():
    ps = mlp()
    step = strict_compile(make_step(ps, {"lr": 0.1}), enabled=False)
    for x, y in batches(4):
        loss = step(x, y)
        assert loss.grad_fn is not None  # the eager graph, not a replayed copy
    assert (step.eager_calls, step.replays) == (4, 0)


def test_grad_accumulated_without_zeroing_is_read_live():
    """A step that never clears .grad adds to the previous one: replay reads the .grad of the call before."""

    def make(ps):
        def step(x):
            (as_tensor(x).linear(ps[0], ps[1]).tanh().sum()).backward()
            return ps[0].grad * 1.0

        return step

    pe, pc = mlp(sizes=(6, 3)), mlp(sizes=(6, 3))
    eager, step = make(pe), strict_compile(make(pc))
    xs = [x for x, _ in batches(8)]
    eager(xs[0])  # the first call sees no .grad, later ones do: record from the second call on
    pc[0].grad, pc[1].grad = Tensor(pe[0].grad.data.copy()), Tensor(pe[1].grad.data.copy())
    for x in xs[1:]:
        assert same(eager(x), step(x))
    assert step.replays == len(xs) - 3
    pc[0].grad = pc[1].grad = None  # the assumption (a .grad to add to) is gone: record again, still right
    pe[0].grad = pe[1].grad = None
    for x in xs[:4]:
        assert same(eager(x), step(x))


# ---------------------------------------------------------------------------
# refusals: never a silently wrong replay
# ---------------------------------------------------------------------------


def test_branch_on_data_is_refused():
    ps = mlp(sizes=(6, 3))

    def step(x):
        h = as_tensor(x).linear(ps[0], ps[1])
        h = h.tanh() if x[0, 0] > 0.5 else h.sigmoid()  # a plain ndarray input: the branch reads its data
        return h.sum()

    c = strict_compile(step)
    c(np.full((2, 6), 0.9, np.float32))
    with pytest.raises(CaptureError, match=r"differ at op 1 \(Tanh\).*Python branch on data"):
        c(np.full((2, 6), 0.1, np.float32))
    assert_restored()


@pytest.mark.parametrize("escape,call", [
    (lambda t: float(t), "float()"),
    (lambda t: int(t), "int()"),
    (lambda t: bool(t), "bool()"),
    (lambda t: t.item(), ".item()"),
    (lambda t: t.numpy(), ".numpy()"),
    (lambda t: t.tolist(), ".tolist()"),
    (lambda t: np.asarray(t), "np.asarray()"),
    (lambda t: print(t), "repr()/print()"),
    (lambda t: f"{t:.3f}", "formatting"),
    (lambda t: t.data, ".data"),
    (lambda t: t.grad_fn.parents[0].data, ".data"),
])
def test_escapes_raise(escape, call):
    w = Tensor(np.ones(3, np.float32), requires_grad=True)

    def step(x):
        loss = (x * w).sum()
        escape(loss)
        return loss

    with pytest.raises(CaptureError, match="compile: " + re.escape(call)):
        strict_compile(step)(np.ones(3, np.float32))
    assert_restored()


def test_reading_a_gradient_in_user_code_is_refused():
    ps = mlp()
    lr = 0.1

    def step(x, y):
        for p in ps:
            p.grad = None
        loss = ((as_tensor(x).linear(ps[0], ps[1]).sigmoid().linear(ps[2], ps[3]) - y) ** 2).sum()
        loss.backward()
        for p in ps:
            p.data -= lr * p.grad.data  # the classic manual loop: NumPy behind the ops
        return loss

    with pytest.raises(CaptureError, match=r"\.data of a tensor of shape .* read by user code"):
        strict_compile(step)(*batches(1)[0])
    assert_restored()


def test_assigning_data_in_user_code_is_refused():
    w = Tensor(np.ones(3, np.float32), requires_grad=True)

    def step(x):
        w.data = w.data * 0.5
        return (x * w).sum()

    with pytest.raises(CaptureError, match="assigned .data"):
        strict_compile(step)(np.ones(3, np.float32))


def test_an_array_made_inside_the_step_is_refused():
    w = Tensor(np.ones((3, 3), np.float32), requires_grad=True)

    def step(x):
        noise = Tensor(np.random.rand(3, 3))  # NumPy's generator, outside any op: replay would reuse it
        return (x @ w + noise).sum()

    with pytest.raises(CaptureError, match=r"Add \(input 1\) received an array of shape \(3, 3\)"):
        strict_compile(step)(np.ones((3, 3), np.float32))
    assert_restored()


def test_a_copied_input_is_refused_with_the_fix():
    def step(x):
        return (Tensor(x) * 2.0).sum()  # Tensor(x) copies the argument

    with pytest.raises(CaptureError, match="pass the Tensor, or use from_numpy"):
        strict_compile(step)(np.ones(3, np.float32))


def test_ndarray_params_are_refused():
    class Masked(Function):
        def forward(self, x, mask):
            return x * mask

    def step(x):
        return Masked.apply(x, mask=np.ones(3, np.float32))

    with pytest.raises(CaptureError, match=r"Masked got an ndarray of shape \(3,\) in its parameter mask="):
        strict_compile(step)(Tensor(np.ones(3, np.float32)))


def test_write_behind_the_ops_is_refused_when_checked():
    """The second call replays its recording from the state before it: an untraced write shows as a difference."""
    ps = mlp(sizes=(6, 3))

    def step(x):
        ps[0].data[0, 0] += 1.0  # reading a parameter's .data is allowed; writing it with NumPy is invisible
        return as_tensor(x).linear(ps[0], ps[1]).sum()

    c = strict_compile(step)
    c(np.ones((2, 6), np.float32))
    with pytest.raises(CaptureError, match="does not reproduce the eager step"):
        c(np.ones((2, 6), np.float32))


def test_python_side_effect_random_draw_is_refused():
    w = Tensor(np.ones(3, np.float32), requires_grad=True)

    def step(x):
        # a draw from the library's generator outside an op (tg.rand itself is a recorded op, ops.Random)
        r = Tensor(engine.rng().random(3, dtype=np.float32))
        return (x * w * r).sum()

    with pytest.raises(CaptureError, match=r"received an array of shape \(3,\)"):
        strict_compile(step)(np.ones(3, np.float32))


def test_step_inputs_that_require_grad_are_refused():
    with pytest.raises(CaptureError, match="requires grad"):
        strict_compile(lambda x: x * 2.0)(Tensor(np.ones(2, np.float32), requires_grad=True))


def test_errors_inside_the_step_restore_everything():
    def step(x):
        raise KeyError("boom")

    with pytest.raises(KeyError):
        strict_compile(step)(np.ones(2, np.float32))
    assert_restored()


def test_other_threads_are_not_checked_during_a_capture():
    started, release = threading.Event(), threading.Event()
    seen = []

    def other():
        started.wait()
        t = Tensor(np.ones(2, np.float32)) * 3.0
        seen.append(float(t.sum()))  # an escape, but not in the capturing thread
        release.set()

    th = threading.Thread(target=other)
    th.start()

    def step(x):
        started.set()
        release.wait(10)
        return as_tensor(x) * 2.0

    strict_compile(step)(np.ones(2, np.float32))
    th.join()
    assert seen == [6.0]
    assert_restored()


def test_nested_compiled_step_runs_inside_the_outer_recording():
    inner = strict_compile(lambda x: as_tensor(x) * 2.0)
    outer = strict_compile(lambda x: inner(x) + 1.0)
    x = np.ones(2, np.float32)
    for _ in range(4):
        assert same(outer(x), np.full(2, 3.0, np.float32))
    assert outer.replays == 2 and inner.replays == 0


def test_compile_as_a_method_decorator():
    class Model:
        def __init__(self, scale):
            self.w = Tensor(np.full(3, scale, np.float32), requires_grad=True)

        @strict_compile
        def step(self, x):
            self.w.grad = None
            loss = (as_tensor(x) * self.w).sum()
            loss.backward()
            return loss

    a, b = Model(1.0), Model(2.0)
    x = np.arange(3, dtype=np.float32)
    for _ in range(3):
        assert same(a.step(x), np.float32(3.0)) and same(b.step(x), np.float32(6.0))
    assert Model.step.programs == 2 and Model.step.replays == 2  # one recording per instance
    assert same(a.w.grad, x) and same(b.w.grad, x)


def test_reading_an_input_tensor_in_user_code_is_refused():
    def step(x):
        scale = x.data.mean()  # a Python number from the data: baked into the recording
        return x * float(scale)

    with pytest.raises(CaptureError, match=r"\.data of a tensor of shape \(3,\)"):
        strict_compile(step)(Tensor(np.ones(3, np.float32)))


def test_a_parameter_rebound_to_another_shape_records_again():
    w = Tensor(np.ones(3, np.float32), requires_grad=True)

    def step(x):
        w.grad = None
        loss = (as_tensor(x) * w).sum()
        loss.backward()
        return loss

    c = strict_compile(step)
    for _ in range(3):
        c(np.ones(3, np.float32))
    w.data = np.full((2, 3), 2.0, np.float32)  # outside the step: allowed; the recording no longer fits
    assert same(c(np.ones(3, np.float32)), np.float32(12.0))
    assert w.grad.shape == (2, 3) and c.replays == 1


def test_recordings_kept_are_bounded():
    step = strict_compile(lambda x, k: as_tensor(x) * k)
    step.max_programs = 3
    x = np.ones(2, np.float32)
    for k in range(10):  # a new Python value every time: each records (twice) and would be kept
        for _ in range(3):
            assert same(step(x, float(k)), np.full(2, k, np.float32))
    assert step.programs == 3 and len(step._first) == 0 and step.replays == 10


@pytest.mark.parametrize("make_opt", [
    lambda ps: tg.optim.SGD(ps, lr=0.5, momentum=0.9),
    lambda ps: tg.optim.Adam(ps, lr=0.05),
], ids=["sgd-momentum", "adam"])
def test_scheduler_lr_is_honoured_with_the_library_optimizers(make_opt):
    def make():
        ps = mlp()
        opt = make_opt(ps)
        sched = tg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

        def step(x, y):
            opt.zero_grad()
            h = as_tensor(x).linear(ps[0], ps[1]).sigmoid().linear(ps[2], ps[3])
            loss = ((h - as_tensor(y)) ** 2).mean()
            loss.backward()
            opt.step()
            return loss

        return step, ps, sched

    (eager, pe, se), (step, pc, sc) = make(), make()
    step = strict_compile(step)
    for x, y in batches(10):
        assert same(eager(x, y), step(x, y))
        se.step()
        sc.step()  # lr halves every second step: the update reads it when it runs
    for a, b in zip(pe, pc):
        assert same(a, b) and same(a.grad, b.grad)
    assert step.replays >= 7  # (the first call sees no .grad, which zero_grad leaves alone: a third recording)


def test_threads_sharing_one_compiled_step_get_eager_results():
    w = Tensor(np.ones((4, 4), np.float32), requires_grad=True)

    def step(x):
        return (as_tensor(x) @ w).tanh().sum(0)

    c = strict_compile(step)
    xs = [np.random.default_rng(i).random((8, 4), dtype=np.float32) for i in range(8)]
    expect = [step(x).data.copy() for x in xs]
    results = {}

    def worker(i):
        for _ in range(20):
            results[i] = c(xs[i]).data

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i].tobytes() == expect[i].tobytes() for i in range(8))
