"""Engine internals that viz and users rely on: the release that keeps the graph's structure, a second
backward through ops that saved nothing, `walk`, `Function.inputs/released/saved_arrays/backward_of`,
`Tensor.name`, composite-call records, and the split of the backward sweep."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from tinygrad_mnist import Tensor, grad, no_grad
from tinygrad_mnist import engine as E
from tinygrad_mnist.engine import walk
from tinygrad_mnist.records import Call, TensorRecord
from tinygrad_mnist.tensor_methods.composite import composite

RNG = np.random.default_rng(7)


def param(*shape):
    return Tensor(RNG.standard_normal(shape), requires_grad=True)


def const(*shape):
    return Tensor(RNG.standard_normal(shape))


def ops_of(root) -> list:
    return [n.grad_fn for n in walk(root) if n.grad_fn is not None]


# ---------------------------------------------------------------------------
# release: data goes, structure stays
# ---------------------------------------------------------------------------


def _mlp(x, w1, b1, w2):
    h = x.linear(w1, b1).relu()
    return h.linear(w2).cross_entropy(np.array([0, 1, 2, 1]))


def test_release_frees_activations_but_keeps_the_graph():
    x, w1, b1, w2 = const(4, 5), param(3, 5), param(3), param(3, 3)
    loss = _mlp(x, w1, b1, w2)
    structure = [(n.grad_fn.name if n.grad_fn else None, n.shape, n.dtype) for n in walk(loss)]
    inner = [n for n in walk(loss) if n.grad_fn is not None and n is not loss]
    arrays = [weakref.ref(n.data) for n in inner]  # every activation
    saved = [weakref.ref(a) for f in ops_of(loss) for a in f.saved_arrays() if a.base is None]
    assert arrays and all(r() is not None for r in arrays)
    del inner
    loss.backward()
    gc.collect()
    assert all(r() is None for r in arrays), "backward kept activations alive"
    kept = {id(x.data), id(w1.data), id(b1.data), id(w2.data)}  # the caller's input and the parameters
    assert all(r() is None for r in saved if id(r()) not in kept)
    after = walk(loss)
    assert [(n.grad_fn.name if n.grad_fn else None, n.shape, n.dtype) for n in after] == structure
    assert all(f.released and f.saved_arrays() == [] for f in ops_of(loss))
    # parameters stay themselves; everything else is a record
    assert {id(n) for n in after if isinstance(n, Tensor)} == {id(loss), id(w1), id(b1), id(w2)}
    assert all(isinstance(n, TensorRecord) for n in after if isinstance(n, Tensor) is False)


def test_records_are_shared_and_describe_the_tensor():
    w = param(3)
    h = w * 2.0
    h.name = "h"
    y = (h.exp() + h.tanh()).sum()
    y.backward()
    consumers = [f for f in ops_of(y) if any(getattr(i, "name", None) == "h" for i in f.inputs)]
    assert len(consumers) == 2
    r1 = [i for i in consumers[0].inputs if i.name == "h"][0]
    r2 = [i for i in consumers[1].inputs if i.name == "h"][0]
    assert r1 is r2 and isinstance(r1, TensorRecord)
    assert (r1.shape, r1.dtype, r1.requires_grad, r1.is_leaf, r1.grad) == ((3,), np.float64, True, False, None)
    assert r1.grad_fn.name == "Mul" and r1.grad_fn.inputs[0] is w
    const_rec = r1.grad_fn.inputs[1]
    assert isinstance(const_rec, TensorRecord) and const_rec.is_leaf and not const_rec.requires_grad
    assert "name='h'" in repr(r1)


def test_released_record_of_a_retained_tensor_shows_its_grad():
    w = param(3)
    h = (w * 3.0).retain_grad()
    y = h.sum()
    y.backward()
    rec = y.grad_fn.inputs[0]
    assert isinstance(rec, TensorRecord)
    np.testing.assert_array_equal(rec.grad.data, np.ones(3))


# ---------------------------------------------------------------------------
# a second backward: fine through ops that saved nothing, a clear error through the others
# ---------------------------------------------------------------------------


def test_second_backward_through_ops_that_saved_nothing():
    w, b = param(2, 3), param(3)
    y = ((w + b).reshape(3, 2).permute(1, 0)[:, 1:] - w.sum(0)[1:].expand(2, 2)).sum()
    z = Tensor.cat([y.reshape(1), (-w).sum(0).pad(((1, 0),)).sum().reshape(1)]).sum()
    z.backward()
    g1 = (w.grad.data.copy(), b.grad.data.copy())
    z.backward()  # PyTorch allows this: nothing was saved
    np.testing.assert_allclose(w.grad.data, 2 * g1[0])
    np.testing.assert_allclose(b.grad.data, 2 * g1[1])


@pytest.mark.parametrize("make", [
    lambda w: (w * w).sum(),
    lambda w: (w @ w.T).sum(),
    lambda w: w.exp().sum(),
    lambda w: w.relu().sum(),
    lambda w: w.max(1).sum() if not isinstance(w.max(1), tuple) else w.max(1)[0].sum(),
    lambda w: w[np.array([0, 1, 1])].sum(),
    lambda w: w.cross_entropy(np.array([0, 2])),
])
def test_second_backward_through_ops_that_saved_values_raises(make):
    w = param(2, 3)
    y = make(w)
    y.backward()
    before = w.grad.data.copy()
    with pytest.raises(RuntimeError, match=r"already released.*retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(w.grad.data, before)  # .grad untouched by the failed sweep


def test_getitem_with_slices_saves_nothing_but_with_arrays_saves_the_index():
    w = param(4)
    y = w[1:3].sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(w.grad.data, [0, 2, 2, 0])
    f = w[np.array([0, 0])].grad_fn
    assert any(a is f.index for a in f.saved_arrays())


def test_saved_arrays_lists_what_backward_reads():
    x, w = const(2, 3), param(2, 3)
    m = x * w
    assert {id(a) for a in m.grad_fn.saved_arrays()} == {id(x.data), id(w.data)}
    e = w.exp()
    assert [id(a) for a in e.grad_fn.saved_arrays()] == [id(e.data)]  # its output, not its input
    s = w.sum()
    assert s.grad_fn.saved_arrays() == []
    r = w.relu()
    assert [id(a) for a in r.grad_fn.saved_arrays()] == [id(w.data)]
    ce = w.cross_entropy(np.array([0, 1]))
    assert len(ce.grad_fn.saved_arrays()) == 3  # logits, the one-hot target, the stored gradient


# ---------------------------------------------------------------------------
# walk
# ---------------------------------------------------------------------------


def test_walk_order_and_constants():
    a, b, c = param(2), param(2), const(2)
    a.name, b.name, c.name = "a", "b", "c"
    s = a * c
    t = b + s
    y = (t * s).sum()
    nodes = walk(y)
    pos = {id(n): i for i, n in enumerate(nodes)}
    for n in nodes:  # parents before children
        for i in (n.grad_fn.inputs if n.grad_fn else ()):
            assert pos[id(i)] < pos[id(n)]
    # argument order: b (the first input of t, which is the first input of the last Mul) comes before a
    assert [n.name for n in nodes if n.name] == ["b", "a", "c"]
    assert len(nodes) == len({id(n) for n in nodes}) == 7
    no_const = walk(y, constants=False)
    assert all(n is not c for n in no_const) and len(no_const) == 6
    assert walk([y]) == nodes


def test_walk_is_iterative():
    x = param(1)
    y = x
    for _ in range(20000):
        y = y + 1.0
    assert len(walk(y)) == 20001 + 20000  # the chain and its constants
    y.backward()
    assert len(walk(y)) == 20001 + 20000  # after release too


def test_backward_order_comes_from_walk(monkeypatch):
    calls = []
    real = E.walk

    def spy(roots, *, constants=True):
        calls.append(constants)
        return real(roots, constants=constants)

    monkeypatch.setattr(E, "walk", spy)
    x = param(3)
    (x * 2.0).sum().backward()
    grad((x * x).sum(), x)
    assert calls == [False, False]


# ---------------------------------------------------------------------------
# backward_of, names, the sweep split
# ---------------------------------------------------------------------------


def test_backward_of_points_at_the_forward_op():
    x = param(3)
    y = (x.tanh() * x).sum()
    forward_ops = ops_of(y)
    assert all(f.backward_of is None for f in forward_ops)
    (g,) = grad(y, x, create_graph=True)
    new = [f for f in ops_of(g) if f not in forward_ops]
    assert new and all(f.backward_of in forward_ops for f in new)
    assert {f.backward_of.name for f in new} >= {"Tanh", "Mul"}
    tanh_grad = [f for f in new if f.name == "TanhGrad"]
    assert tanh_grad and all(f.backward_of.name == "Tanh" for f in tanh_grad)
    (g2,) = grad(g.sum(), x)  # the backward graph itself backpropagates
    np.testing.assert_allclose(g2.data, _second_derivative(x.data), rtol=1e-10)
    with no_grad():
        pass
    (h,) = grad((x * x).sum(), x)  # without create_graph nothing is recorded or tagged
    assert h.grad_fn is None


def _second_derivative(x):
    t = np.tanh(x)
    # d/dx [tanh(x) + x (1 - tanh^2)] = 2 (1 - t^2) - 2 x t (1 - t^2)
    return 2 * (1 - t * t) - 2 * x * t * (1 - t * t)


def test_tensor_name():
    x = Tensor([1.0, 2.0])
    assert x.name is None and "name" not in repr(x)
    x.name = "images"
    assert x.name == "images" and "name='images'" in repr(x)
    x.name = None
    assert x.name is None
    with pytest.raises(TypeError, match="name"):
        x.name = 3


def test_gradients_is_pure_and_backward_accumulates():
    w = param(3)
    y = (w * w).sum()
    seeds = [E._seed_grad(y, None)]
    found = E._gradients([y], seeds, retain_graph=True, create_graph=False)
    assert w.grad is None  # the sweep alone touches no .grad
    assert [t for t, _ in found] == [w]
    np.testing.assert_allclose(found[0][1].data, 2 * w.data)
    with no_grad():  # the mode a plain backward accumulates in (create_graph=False)
        E._accumulate_grads(found, [])
        E._accumulate_grads(found, [])
    np.testing.assert_allclose(w.grad.data, 4 * w.data)


def test_function_docstring_states_the_backward_contract():
    doc = E.Function.__doc__
    for words in ("create_graph", "saves_output", "saves_inputs", "release"):
        assert words in doc


# ---------------------------------------------------------------------------
# composite calls
# ---------------------------------------------------------------------------


def _calls_between(out, inputs):
    """Every op between out and the tensors passed in (those are where the walk stops)."""
    stop = {id(t) for t in inputs}
    found, stack, seen = [], [out], set()
    while stack:
        t = stack.pop()
        if id(t) in stop or t.grad_fn is None or id(t) in seen:
            continue
        seen.add(id(t))
        found.append(t.grad_fn)
        stack.extend(t.grad_fn.inputs)
    return found


def test_conv2d_call_record():
    x, w, b = const(2, 1, 5, 5), param(3, 1, 3, 3), param(3)
    before = x * 1.0 + 0.0  # recorded before the call: no record
    out = x.conv2d(w, b, padding=1)
    fs = _calls_between(out, [x, w, b])  # one fused primitive or several: each carries the call
    assert fs
    call = fs[0].calls[0]
    assert isinstance(call, Call) and call.name == "conv2d" and call.output_shape == (2, 3, 5, 5)
    assert call.inputs[0] is x and call.inputs[1] is w and call.inputs[2] is b
    assert all(f.calls == (call,) for f in fs)
    assert before.grad_fn is None or before.grad_fn.calls == ()


def test_max_pool_and_cross_entropy_call_records():
    x = param(1, 2, 4, 4)
    p = x.max_pool2d(2)
    fs = _calls_between(p, [x])
    assert fs and all([c.name for c in f.calls] == ["max_pool2d"] for f in fs)
    assert fs[0].calls[0].inputs == (x,) and fs[0].calls[0].output_shape == (1, 2, 2, 2)
    logits = param(3, 4)
    loss = logits.cross_entropy(np.array([0, 1, 3]))
    (call,) = loss.grad_fn.calls  # one primitive that is the whole call carries it too
    assert call.name == "cross_entropy" and call.inputs == (logits,) and call.output_shape == ()
    other = param(3, 4).cross_entropy(np.array([0, 1, 3])).grad_fn.calls[0]
    assert other.id != call.id


def test_nested_composites_list_the_innermost_first():
    x = param(2, 3)
    y = x.softmax(1)  # log_softmax inside softmax
    names = {f.name: [c.name for c in f.calls] for f in _calls_between(y, [x])}
    assert names == {"Exp": ["softmax"], "LogSoftmax": ["log_softmax", "softmax"]}
    s = x.std()  # std -> var -> mean
    assert any([c.name for c in f.calls] == ["mean", "var", "std"] for f in _calls_between(s, [x]))


def test_composite_records_nothing_under_no_grad_or_without_grad():
    x = param(2, 3)
    with no_grad():
        assert x.softmax(1).grad_fn is None
    y = const(2, 3).softmax(1)
    assert y.grad_fn is None


def test_composite_decorator_for_user_functions():
    @composite("block")
    def block(x, w):
        return (x @ w).relu().sum(1)

    x, w = const(2, 3), param(3, 4)
    z = x * 2.0  # x itself is a constant: a recorded input is where the walk stops
    out = block(z, w)
    fs = _calls_between(out, [z, w])
    assert {f.name for f in fs} == {"Matmul", "Relu", "Sum"}
    assert all([c.name for c in f.calls] == ["block"] for f in fs)
    assert fs[0].calls[0].inputs == (z, w)
    assert block.__name__ == "block"


def test_call_inputs_are_released_with_the_graph():
    x, w = const(1, 1, 4, 4), param(2, 1, 3, 3)
    data = weakref.ref(x.data)
    conv = x.conv2d(w)
    call = _calls_between(conv, [x, w])[0].calls[0]
    out = conv.sum()
    del conv
    del x
    out.backward()
    gc.collect()
    assert data() is None  # the call record does not keep the image alive
    assert isinstance(call.inputs[0], TensorRecord) and call.inputs[0].shape == (1, 1, 4, 4)
    assert call.inputs[1] is w


def test_linear_is_one_op_that_names_its_call():
    # Linear is the whole `linear` call: its record is made when looked at, with the caller's tensors
    x = Tensor(np.ones((4, 3), np.float32))
    w = Tensor(np.ones((5, 3), np.float32), requires_grad=True)
    b = Tensor(np.zeros(5, np.float32), requires_grad=True)
    out = x.linear(w, b)
    (call,) = out.grad_fn.calls
    assert call.name == "linear" and call.inputs == (x, w, b) and call.output_shape == (4, 5)
    assert out.grad_fn.calls[0] is call  # made once
    out2 = x.linear(w, b).sum()
    out2.backward()
    (call2,) = out2.grad_fn.inputs[0].grad_fn.calls
    assert call2.name == "linear" and call2.inputs[1] is w and call2.inputs[0].shape == (4, 3)


def test_mixed_dtype_linear_is_still_one_call():
    x = Tensor(np.ones((2, 3), np.float64))
    w = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    out = x.linear(w)
    assert [c.name for c in out.grad_fn.calls] == ["linear"]
