"""compile's faster replay lines (capture/kernels.py): hot ops written out, results written into dead buffers.

A replay may write an exactly rounded result into the memory of an input that dies there, when the step
itself allocated that array and nothing else (a view, a result, a .grad, an op) can still see it.  Every
test compares the replay with eager bit for bit; the aliasing cases are the ways that could go wrong.
Most run with the size threshold off (kernels.MIN_REUSE_BYTES = 0) so that small arrays are reused too.
"""

from __future__ import annotations

import numpy as np
import pytest
import test_compile_adversarial as adversarial
import test_compile_ops as op_table
from helpers import strict_compile

import tinygrad_mnist as tg
from tinygrad_mnist import Tensor, nn, no_grad
from tinygrad_mnist.capture import kernels


@pytest.fixture
def reuse_every_size(monkeypatch):
    monkeypatch.setattr(kernels, "MIN_REUSE_BYTES", 0)


def compare(fn, make_args, calls=5, state=lambda run: []):
    """Run fn eagerly and compiled on the same arguments; returns the compiled step. `state` gives, for
    each run, arrays that must agree too (parameters), as a callable taking the run's index (0 eager)."""
    step = strict_compile(fn[1])
    for k in range(calls):
        args = make_args(k)
        outs = []
        for f in (fn[0], step):
            out = f(*args)
            outs.append([np.array(t.data, copy=True) for t in (out if isinstance(out, tuple) else (out,))])
        for a, b in zip(*outs):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f"call {k}"
        for a, b in zip(state(0), state(1)):
            assert a.tobytes() == b.tobytes(), f"call {k}: state differs"
    assert step.replays >= calls - 3  # (a first call without .grads records once more)
    return step


def floats(*shapes):
    def make(k):
        rng = np.random.default_rng(k)
        return tuple(tg.from_numpy(rng.standard_normal(s).astype(np.float32)) for s in shapes)

    return make


def twice(fn):
    return fn, fn


# ---------------------------------------------------------------------------
# aliasing: what must not be written over
# ---------------------------------------------------------------------------


def test_a_dead_intermediate_takes_the_result(reuse_every_size):
    step = compare(twice(lambda a, b: (a * b) * 2.0 - a), floats((6, 5), (6, 5)))
    assert step._last.reused >= 1
    assert "out=" in step.source


def test_a_view_of_a_dead_buffer_still_read_later_keeps_it(reuse_every_size):
    def fn(a, b):
        h = a * b
        v = h.T  # a view of h, read after h's last direct use
        y = h * 2.0
        z = v * 3.0
        return y, z

    compare(twice(fn), floats((4, 4), (4, 4)))


def test_a_reshaped_view_of_a_dead_buffer_keeps_it(reuse_every_size):
    def fn(a, b):
        h = a * b
        v = h.reshape(-1)
        y = h + 1.0
        return y, v * 1.0

    compare(twice(fn), floats((3, 4), (3, 4)))


def test_a_result_that_is_also_read_later_is_never_written_over(reuse_every_size):
    def fn(a, b):
        h = a * b
        y = h + 1.0
        return h, y  # h is returned: kept, though its last op is y's

    compare(twice(fn), floats((3, 4), (3, 4)))


def test_a_returned_view_keeps_its_base(reuse_every_size):
    def fn(a, b):
        h = a * b
        tail = h[1:]
        y = h * 2.0  # h's last direct use; its memory is returned through tail
        return y, tail

    compare(twice(fn), floats((3, 4), (3, 4)))


def test_in_place_writes_on_intermediates(reuse_every_size):
    def fn(a, b):
        h = a * b
        first_row = h[0]  # a view taken before the in-place write
        h += 1.0
        y = h * 2.0
        return y, first_row * 1.0

    compare(twice(fn), floats((3, 4), (3, 4)))


def test_an_input_is_never_written_over(reuse_every_size):
    def fn(a, b):
        return a * b, a + b  # a and b die here, but the caller owns them

    def make(k):
        arrays = tuple(np.random.default_rng(k).standard_normal((3, 4)).astype(np.float32) for _ in range(2))
        make.kept.append([a.copy() for a in arrays])
        return tuple(tg.from_numpy(a) for a in arrays)

    make.kept = []
    args = [make(k) for k in range(5)]
    compare(twice(fn), lambda k: args[k])
    for kept, given in zip(make.kept, args):
        for a, t in zip(kept, given):
            assert a.tobytes() == t.data.tobytes()


def sgd_mlp(sizes, clear_grad=True, act="sigmoid"):
    """Two copies of a Nielsen-style MLP step (manual SGD as tensor ops), eager and compiled."""
    runs = []
    for _ in range(2):
        tg.manual_seed(0)
        layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
        params = [p for layer in layers for p in layer.parameters()]

        def step(x, y, layers=layers, params=params):
            h = x
            for layer in layers:
                h = layer(h)
                h = h.sigmoid() if act == "sigmoid" else h.relu()
            loss = ((h - y) ** 2).sum() * 0.05
            loss.backward()
            with no_grad():
                for p in params:
                    p -= 3.0 * p.grad
                    if clear_grad:
                        p.grad = None
            return loss

        runs.append((step, params))
    return runs


def batches(n, d_in, d_out):
    def make(k):
        rng = np.random.default_rng(k)
        return (tg.from_numpy(rng.random((n, d_in), dtype=np.float32)),
                tg.from_numpy(rng.random((n, d_out), dtype=np.float32)))

    return make


def test_sgd_step_reuses_the_gradient_buffers_at_full_size():
    (e, pe), (c, pc) = sgd_mlp([784, 64, 10])

    def params(run):
        ps = (pe, pc)[run]
        return [p.data for p in ps]

    step = compare((e, c), batches(32, 784, 10), state=params)
    assert step._last.reused >= 3  # lr * grad into the gradient's memory, sigmoid into the linear's result
    assert "_tanh(" in step.source and "_matmul(" in step.source


def test_a_gradient_left_on_the_parameter_is_never_written_over(reuse_every_size):
    (e, pe), (c, pc) = sgd_mlp([12, 8, 3], clear_grad=False)

    def params_and_grads(run):
        ps = (pe, pc)[run]
        return [p.data for p in ps] + [p.grad.data for p in ps]

    def make(k):
        for ps in (pe, pc):  # the step accumulates into .grad: start each call from none, as zero_grad would
            for p in ps:
                p.grad = None
        return batches(5, 12, 3)(k)

    step = compare((e, c), make, state=params_and_grads)
    assert step._last.reused >= 1


def test_relu_network_with_cross_entropy(reuse_every_size):
    runs = []
    for _ in range(2):
        tg.manual_seed(1)
        model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
        opt = tg.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            loss = model(x).cross_entropy(y)
            loss.backward()
            opt.step()
            return loss

        runs.append((step, model))

    def make(k):
        rng = np.random.default_rng(k)
        return tg.from_numpy(rng.standard_normal((8, 10)).astype(np.float32)), Tensor(rng.integers(0, 4, 8))

    step = compare((runs[0][0], runs[1][0]), make,
                   state=lambda run: [p.data for p in runs[run][1].parameters()])
    assert step._last.reused >= 1


# ---------------------------------------------------------------------------
# the existing suites again, every buffer reusable
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shapes,fn,tfn,init", op_table.ALL_CASES)
def test_op_table_with_every_buffer_reusable(request, reuse_every_size, shapes, fn, tfn, init):
    name = request.node.callspec.id
    step = op_table.run_case(shapes, fn, init, f"reuse-{name}")
    assert step is not None or op_table.refused_on_purpose(name)


@pytest.mark.parametrize("name", list(adversarial.CASES))
def test_adversarial_cases_with_every_buffer_reusable(reuse_every_size, name):
    adversarial.test_eager_and_compiled_agree(name)


# ---------------------------------------------------------------------------
# one-element chains on NumPy scalars
# ---------------------------------------------------------------------------


def special_values(dtype):
    rng = np.random.default_rng(7)
    info = np.finfo(dtype)
    v = np.concatenate([rng.standard_normal(20000) * 4, rng.standard_normal(5000) * 1e3,
                        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, -info.tiny, info.tiny / 8,
                                  info.max, -info.max, info.eps, 9.0, -9.0, 20.0])])
    return v.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalar_arithmetic_and_tanh_give_the_one_element_arrays_bits(dtype):
    """What the scalar replay relies on: NumPy scalars compute what one-element arrays do, bit for bit."""
    v = special_values(dtype)
    w = np.roll(v, 1)
    with np.errstate(all="ignore"):
        for f in (np.add, np.subtract, np.multiply, np.true_divide, np.maximum, np.minimum):
            for a, b in zip(v[:3000], w[:3000]):
                assert f(a, b).tobytes() == f(np.array([a]), np.array([b])).tobytes(), (f, a, b)
        for a in v:
            assert np.tanh(a).tobytes() == np.tanh(np.array([a])).tobytes(), a
            assert (1 - a * a).tobytes() == (1 - np.array([a]) * np.array([a])).tobytes(), a


def test_a_chain_of_one_element_ops_replays_on_scalars():
    def fn(x, c):
        h = x
        for _ in range(6):
            h = (h + c).tanh() * c - 0.5 * h
        return h, h * 2.0

    step = compare(twice(fn), floats((1,), (1,)))
    assert step._last.scalar_ops >= 20
    assert "s" in step.source and "np.tanh(s" in step.source


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalar_chain_with_gradients_shapes_and_a_broadcast(dtype):
    runs = []
    for _ in range(2):
        x = Tensor(np.array([[0.3]], dtype), requires_grad=True)
        c = Tensor(np.array(1.7, dtype))

        def step(v, x=x, c=c):
            h = x
            for _ in range(5):
                h = (h * c + v).tanh()
            h = h + v.reshape(1, 1) * 0.5  # shapes (1, 1) and (1,): still one element
            loss = (h * h).sum()
            loss.backward()
            g = x.grad
            x.grad = None
            return loss, g

        runs.append(step)

    def make(k):
        return (tg.from_numpy(np.random.default_rng(k).standard_normal(1).astype(dtype)),)

    step = compare(tuple(runs), make)
    assert step._last.scalar_ops > 0


def test_one_element_values_written_in_place_or_viewed_stay_arrays():
    def fn(a, b):
        h = a * b
        with no_grad():
            h += 1.0  # an in-place write: h's memory is shared by two slots, so it stays an array
        v = h.reshape(1, 1)
        y = (h * 3.0).tanh() + v.reshape(1)
        return y, h

    step = compare(twice(fn), floats((1,), (1,)))
    assert step._last.scalar_ops >= 1  # (h * 3.0).tanh() on scalars; h itself read as an array each time


def test_one_element_parameter_updated_in_place_reads_its_new_value():
    runs = []
    for _ in range(2):
        w = Tensor(np.array([0.5], np.float32), requires_grad=True)

        def step(x, w=w):
            loss = ((x * w).tanh() * 2.0 - x).sum()
            loss.backward()
            with no_grad():
                w -= 0.1 * w.grad
                w.grad = None
            return loss, w * 1.0  # reads w after its in-place update

        runs.append((step, w))
    step = compare((runs[0][0], runs[1][0]), floats((1,)), state=lambda run: [runs[run][1].data])
    assert step._last.scalar_ops > 0


def test_a_one_element_value_written_through_a_view_is_read_again_from_memory():
    def fn(a, b):
        h = a * b
        first = (h * 2.0).tanh()  # read before the write
        u = h.reshape(1, 1)
        with no_grad():
            u += 1.0  # changes h through its view: h's later reads must see it
        return first, (h * 3.0).tanh()

    compare(twice(fn), floats((1,), (1,)))
