"""Grad mode is per thread: `no_grad` in one thread, or a backward running there, never switches
recording off in another, and two threads training two models concurrently each get exactly the
gradients they get alone."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from tinygrad_mnist import Function, Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled

TIMEOUT = 60  # seconds a thread may wait for the other before the test reports a deadlock


def _run_threads(*targets):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # reported in the main thread
                errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def _wait(event):
    assert event.wait(TIMEOUT), "the other thread never got there"


def _loss_and_grads(seed):
    rng = np.random.default_rng(seed)
    w = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    x = Tensor(rng.standard_normal((5, 3)))
    loss = x.linear(w).tanh().sum()
    loss.backward()
    return w.grad.data.copy()


def test_no_grad_in_one_thread_does_not_stop_recording_in_another():
    inside, done = threading.Event(), threading.Event()
    expected = _loss_and_grads(1)
    got = {}

    def quiet():
        with no_grad():
            assert not is_grad_enabled()
            inside.set()
            _wait(done)  # stay inside no_grad while the other thread records
            assert not is_grad_enabled()
        assert is_grad_enabled()

    def trainer():
        _wait(inside)
        try:
            assert is_grad_enabled()
            got["grad"] = _loss_and_grads(1)
        finally:
            done.set()

    _run_threads(quiet, trainer)
    np.testing.assert_array_equal(got["grad"], expected)


class _Gate(Function):
    """Identity whose backward waits: holds a backward open while another thread runs."""

    saves_inputs = False
    entered: threading.Event
    release_it: threading.Event

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        _Gate.entered.set()
        _wait(_Gate.release_it)
        return (g,)


def test_a_backward_in_one_thread_does_not_switch_off_recording_in_another():
    _Gate.entered, _Gate.release_it = threading.Event(), threading.Event()
    expected = _loss_and_grads(2)
    got = {}

    def backward_thread():
        w = Tensor(np.ones(3), requires_grad=True)
        _Gate.apply(w * 2.0).sum().backward()  # the sweep runs with grad mode off, in this thread
        got["w"] = w.grad.data.copy()

    def other():
        _wait(_Gate.entered)
        try:
            assert is_grad_enabled()
            got["grad"] = _loss_and_grads(2)
        finally:
            _Gate.release_it.set()

    _run_threads(backward_thread, other)
    np.testing.assert_array_equal(got["grad"], expected)
    np.testing.assert_array_equal(got["w"], [2.0, 2.0, 2.0])


def test_new_threads_start_with_grad_enabled():
    seen = []
    with no_grad():
        _run_threads(lambda: seen.append(is_grad_enabled()))
    assert seen == [True]


class _MLP:
    def __init__(self, seed, sizes):
        rng = np.random.default_rng(seed)
        self.params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.params += [Tensor(rng.standard_normal((n_out, n_in)) * 0.3, requires_grad=True),
                            Tensor(np.zeros(n_out), requires_grad=True)]

    def loss(self, x, y):
        h = x
        for i in range(0, len(self.params) - 2, 2):
            h = h.linear(self.params[i], self.params[i + 1]).relu()
        return h.linear(self.params[-2], self.params[-1]).cross_entropy(y)


def _train(seed, sizes, steps, barrier=None):
    """Train; return every step's gradients and the final weights. Updates run under no_grad."""
    model = _MLP(seed, sizes)
    rng = np.random.default_rng(seed + 100)
    history = []
    for _ in range(steps):
        if barrier is not None:
            barrier.wait(TIMEOUT)  # keep the two threads in step, so their ops interleave
        x = Tensor(rng.standard_normal((8, sizes[0])))
        y = rng.integers(0, sizes[-1], 8)
        loss = model.loss(x, y)
        loss.backward()
        history.append([p.grad.data.copy() for p in model.params])
        with no_grad():
            for p in model.params:
                p.data -= 0.1 * (p.grad * 1.0).data  # a recorded op would fail here under no_grad
                p.grad = None
    return history, [p.data.copy() for p in model.params]


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the ops interleave finely
    yield
    sys.setswitchinterval(old)


def test_two_threads_train_two_models_with_the_gradients_they_get_alone(fast_switching):
    configs = [(11, (6, 8, 4)), (12, (5, 7, 7, 3))]
    alone = [_train(seed, sizes, 30) for seed, sizes in configs]
    barrier = threading.Barrier(2)
    together = [None, None]

    def worker(i):
        def run():
            together[i] = _train(*configs[i], 30, barrier)
        return run

    _run_threads(worker(0), worker(1))
    for (hist_a, final_a), (hist_t, final_t) in zip(alone, together):
        for step_a, step_t in zip(hist_a, hist_t):
            for ga, gt in zip(step_a, step_t):
                np.testing.assert_array_equal(ga, gt)
        for wa, wt in zip(final_a, final_t):
            np.testing.assert_array_equal(wa, wt)


def test_set_grad_enabled_forms():
    assert is_grad_enabled()
    set_grad_enabled(False)  # a plain call switches at once, as torch.set_grad_enabled
    try:
        assert not is_grad_enabled()
        with enable_grad():
            assert is_grad_enabled()
        assert not is_grad_enabled()
    finally:
        set_grad_enabled(True)
    with set_grad_enabled(False):
        assert not is_grad_enabled()
    assert is_grad_enabled()

    @no_grad()
    def f():
        return is_grad_enabled()

    @no_grad
    def g():
        return is_grad_enabled()

    @set_grad_enabled(False)
    def h():
        return is_grad_enabled()

    assert is_grad_enabled()  # decorating switched nothing
    assert (f(), g(), h()) == (False, False, False)
    assert is_grad_enabled()
    w = Tensor([1.0], requires_grad=True)
    assert no_grad()(lambda: w * 2)().grad_fn is None
