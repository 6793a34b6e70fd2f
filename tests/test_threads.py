"""Thread safety: grad mode is per thread, and threads training separate models get exactly the
gradients and weights they get alone (issue 8, item 4).

The interleavings are forced with events and barriers (never with sleeps or timeouts): one thread
holds a no_grad block or a running backward open while the other records ops.
"""

from __future__ import annotations

import threading

import numpy as np

from tinygrad_mnist import Function, Tensor, is_grad_enabled, no_grad, set_grad_enabled


def _run_threads(*targets, unblock=()):
    """Run each target in its own thread; re-raise the first exception a thread hit.

    `unblock`: the events and barriers the threads wait on; a failing thread sets or breaks them,
    so the others fail too instead of waiting forever.
    """
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001  (handed back to the test)
                errors.append(e)
                for u in unblock:
                    u.abort() if isinstance(u, threading.Barrier) else u.set()
        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_no_grad_in_one_thread_leaves_other_threads_recording():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def quiet():
        with no_grad():
            inside.set()
            done.wait()
            seen["quiet"] = (Tensor([1.0], requires_grad=True) * 2).requires_grad

    def busy():
        inside.wait()
        seen["enabled"] = is_grad_enabled()
        seen["busy"] = (Tensor([1.0], requires_grad=True) * 2).requires_grad
        done.set()

    _run_threads(quiet, busy, unblock=(inside, done))
    assert seen == {"quiet": False, "enabled": True, "busy": True}
    assert is_grad_enabled()


def test_set_grad_enabled_is_per_thread():
    switched, checked = threading.Event(), threading.Event()
    seen = {}

    def off():
        set_grad_enabled(False)
        try:
            switched.set()
            checked.wait()
            seen["off"] = is_grad_enabled()
        finally:
            set_grad_enabled(True)

    def other():
        switched.wait()
        seen["other"] = is_grad_enabled()
        checked.set()

    _run_threads(off, other, unblock=(switched, checked))
    assert seen == {"off": False, "other": True}


class _Gate(Function):
    """Identity whose backward waits for a signal: holds a backward open in one thread."""

    saves_inputs = False
    entered = threading.Event()
    opened = threading.Event()

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        _Gate.entered.set()
        _Gate.opened.wait()
        return (g,)


def test_a_running_backward_does_not_switch_recording_off_elsewhere():
    _Gate.entered.clear()
    _Gate.opened.clear()
    x = Tensor([1.0, 2.0], requires_grad=True)
    seen = {}

    def sweeping():
        (_Gate.apply(x * 3)).sum().backward()

    def recording():
        _Gate.entered.wait()  # the other thread is inside a backward (grad mode off there)
        w = Tensor([1.0], requires_grad=True)
        y = w * w
        seen["records"] = y.requires_grad and y.grad_fn is not None
        y.backward()
        seen["grad"] = w.grad.item()
        _Gate.opened.set()

    _run_threads(sweeping, recording, unblock=(_Gate.entered, _Gate.opened))
    assert seen == {"records": True, "grad": 2.0}
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])


def _params(seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((6, 16)) * 0.4, rng.standard_normal(16) * 0.1,
            rng.standard_normal((16, 3)) * 0.4, rng.standard_normal(3) * 0.1]


def _batches(seed, n):
    rng = np.random.default_rng(seed + 100)
    return [(rng.standard_normal((8, 6)), rng.integers(0, 3, 8)) for _ in range(n)]


def _train(seed, steps, before=None, after=None, in_update=None):
    """Manual SGD (in-place updates under no_grad) on a small MLP; returns the weights and every step's
    gradients.  The hooks let a test pin where the other thread runs: before/after the recorded
    forward and backward, or inside the no_grad update."""
    ps = [Tensor(p, requires_grad=True) for p in _params(seed)]
    log = []
    for x, y in _batches(seed, steps):
        if before:
            before()
        w1, b1, w2, b2 = ps
        loss = ((Tensor(x) @ w1 + b1).tanh() @ w2 + b2).cross_entropy(y)
        loss.backward()
        if after:
            after()
        log.append([p.grad.data.copy() for p in ps])
        with no_grad():
            if in_update:
                in_update()
            for p in ps:
                p -= 0.5 * p.grad
                p.grad = None
    return [p.data.copy() for p in ps], log


def test_two_threads_training_two_models_get_exactly_their_own_results():
    """Each step, thread 1 sits inside its no_grad update while thread 2 records its forward and
    runs its backward: both end with the weights and gradients they get alone."""
    steps = 12
    alone = {seed: _train(seed, steps) for seed in (1, 2)}
    together = {}
    b = threading.Barrier(2)

    def one():
        together[1] = _train(1, steps, in_update=lambda: (b.wait(), b.wait()))

    def two():
        together[2] = _train(2, steps, before=b.wait, after=b.wait)

    _run_threads(one, two, unblock=(b,))
    for seed in (1, 2):
        (w_alone, g_alone), (w_both, g_both) = alone[seed], together[seed]
        for a, c in zip(w_alone, w_both):
            np.testing.assert_array_equal(a, c)
        for step_a, step_c in zip(g_alone, g_both):
            for a, c in zip(step_a, step_c):
                np.testing.assert_array_equal(a, c)


def test_concurrent_in_place_writes_keep_versions_exact():
    n, per = 4, 500
    ts = [Tensor(np.zeros(3)) for _ in range(n)]
    start = threading.Barrier(n)

    def writer(t):
        def run():
            start.wait()
            for _ in range(per):
                t.add_(1.0)
        return run

    _run_threads(*[writer(t) for t in ts], unblock=(start,))
    for t in ts:
        assert t._version == per
        np.testing.assert_array_equal(t.data, [per] * 3)
