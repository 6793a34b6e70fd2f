"""Capture soundness of the gradient rules (issue 12): every array a step touches comes out of an op.

A throwaway tracer stands in for tinygrad_mnist.compile's recorder: it hooks `engine._tracer`,
knows the step's inputs and the parameters, learns each op's output, and fails on any op input
that is none of these (an array computed with NumPy behind the graph's back and wrapped), or
on an ndarray passed as an op param.  0-d constants (Python numbers) are allowed: a recording
bakes them in.

The fused primitives the rules use (ReluGrad, MaskMul, CrossEntropyGrad, ProdGrad) are checked
against the composites they stand for in tests/test_ops_fused.py; OneHot and Full in test_ops_factories.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_mnist as tg
from tinygrad_mnist import Tensor, engine, losses, ops
from tinygrad_mnist.nn import functional as F


class Tracer:
    """Records op outputs; collects every op input that is not a known array (the recorder's refusal)."""

    def __init__(self, *known):
        self.keep = list(known)  # kept alive, so no id() is reused while tracing
        self.known = {id(a) for a in known}
        self.unknown, self.array_params = [], []

    def leaf(self, t):  # a new leaf is not known by itself: only its array's origin counts
        pass

    def op(self, ctx, inputs, params, out):
        for t in inputs:
            a = t.data
            if a.ndim and id(a) not in self.known:
                self.unknown.append((ctx.name, a.shape))
        for k, v in params.items():
            items = v if isinstance(v, (tuple, list)) else (v,)
            if any(isinstance(x, np.ndarray) for x in items):
                self.array_params.append((ctx.name, k))
        self.keep.append(out.data)
        self.known.add(id(out.data))

    def __enter__(self):
        assert engine._tracer is None
        engine._tracer = self
        return self

    def __exit__(self, *exc):
        engine._tracer = None
        return False

    def assert_sound(self, *tensors):
        """No unknown op inputs, no array params, and every given tensor's array came from an op."""
        assert not self.unknown, f"arrays computed behind the graph reached ops: {self.unknown}"
        assert not self.array_params, f"ndarray params: {self.array_params}"
        for t in tensors:
            assert t is None or t.data.ndim == 0 or id(t.data) in self.known, f"{t.shape} made behind the graph"


def _params(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]


def _step(fn, *params, inputs=(), create_graph=False):
    """Run fn (forward) and backward under the tracer; the gradients must be op outputs too."""
    arrays = [p.data for p in params] + [a.data if isinstance(a, Tensor) else a for a in inputs]
    with Tracer(*arrays) as tr:
        loss = fn()
        loss.backward(create_graph=create_graph)
        if create_graph:  # grad of grad: differentiate the gradient norm again
            gs = [p.grad for p in params if p.grad is not None]
            for p in params:
                p.grad = None
            sum(((g * g).sum() for g in gs), Tensor(0.0)).backward()
    tr.assert_sound(loss, *[p.grad for p in params])
    return loss


# ---------------------------------------------------------------------------
# each demo-relevant op, forward + backward (and grad of grad where it has one)
# ---------------------------------------------------------------------------

ELEMENTWISE = {
    "relu": lambda x, y: x.relu(),
    "leaky_relu": lambda x, y: x.leaky_relu(0.1),
    "maximum": lambda x, y: x.maximum(y),
    "maximum_ties": lambda x, y: x.maximum(x.detach()),
    "minimum": lambda x, y: x.minimum(y),
    "clamp": lambda x, y: x.clamp(-0.5, 0.5),
    "clamp_tensor": lambda x, y: x.clamp(min=y),
    "abs": lambda x, y: x.abs(),
    "where": lambda x, y: Tensor.where(x > y, x, y * 2),
    "amax": lambda x, y: x.amax(1),
    "max_all": lambda x, y: x.max(),
    "min_ties": lambda x, y: x.round().amin(0),
    "softmax": lambda x, y: x.softmax(1),
    "log_softmax": lambda x, y: x.log_softmax(1),
    "sigmoid": lambda x, y: x.sigmoid(),
    "tanh": lambda x, y: x.tanh(),
    "logsumexp": lambda x, y: x.logsumexp(1),
    "norm": lambda x, y: x.norm(dim=1),
    "prod": lambda x, y: x.prod(1),
    "tril": lambda x, y: x.tril(),
    "masked_fill": lambda x, y: x.masked_fill(x > 0, 0.0),
}


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_op_backward_is_recorded(name, create_graph):
    if name == "min_ties" and create_graph:
        pytest.skip("round's gradient is a constant zero: nothing to differentiate twice")
    x, y = _params((4, 5), (4, 5))
    fn = ELEMENTWISE[name]
    _step(lambda: (fn(x, y) * fn(x, y)).sum(), x, y, create_graph=create_graph)


@pytest.mark.parametrize("labels_kind", ["ndarray", "tensor"])
@pytest.mark.parametrize("loss", ["cross_entropy", "F.cross_entropy", "mse", "nll", "F.one_hot_mse"])
def test_losses_with_integer_labels_are_recorded(loss, labels_kind):
    (logits,) = _params((6, 10))
    y = np.array([0, 3, 9, 3, 1, 2])
    labels = y if labels_kind == "ndarray" else Tensor(y)
    fns = {
        "cross_entropy": lambda: losses.cross_entropy(logits, labels),
        "F.cross_entropy": lambda: F.cross_entropy(logits, labels, reduction="sum"),
        "mse": lambda: losses.mse(logits.sigmoid(), labels),
        "nll": lambda: losses.nll(logits.log_softmax(1), labels),
        "F.one_hot_mse": lambda: F.mse_loss(logits, F.one_hot(labels, 10).float()),
    }
    _step(fns[loss], logits, inputs=(y, labels))


def test_cross_entropy_grad_of_grad_is_recorded():
    (logits,) = _params((6, 10))
    y = np.array([0, 3, 9, 3, 1, 2])
    _step(lambda: logits.cross_entropy(y), logits, inputs=(y,), create_graph=True)


def test_dropout_is_recorded_and_draws_in_eager_order():
    (x,) = _params((8, 16))
    tg.manual_seed(3)
    _step(lambda: x.dropout(0.3).sum() + x.dropout(0.5).sum(), x)
    # the same numbers as the mask drawn by hand from the generator, in the same order
    tg.manual_seed(3)
    a, b = x.dropout(0.3), x.dropout(0.5)
    tg.manual_seed(3)
    r = engine.rng()
    for out, p in ((a, 0.3), (b, 0.5)):
        keep = r.random(x.shape, dtype=np.float32) >= p
        np.testing.assert_array_equal(out.data, x.data * (keep * (1.0 / (1.0 - p))).astype(np.float32))


NONDIFF = {
    "gt": lambda x: x > 0,
    "eq_tensor": lambda x: x == x.detach(),
    "ne_number": lambda x: x != 0.5,
    "argmax": lambda x: x.argmax(1),
    "argmin": lambda x: x.argmin(),
    "isnan": lambda x: x.isnan(),
    "isfinite": lambda x: x.isfinite(),
    "logical": lambda x: (x > 0) & (x < 1) | ~(x > 0.5),
    "logical_not": lambda x: (x > 0).logical_not().logical_xor(x < 0),
    "any": lambda x: (x > 0).any(1),
    "all": lambda x: (x > -10).all(),
    "argsort": lambda x: x.argsort(1, descending=True),
    "nonzero": lambda x: (x > 0).nonzero(),
    "count_nonzero": lambda x: (x > 0).count_nonzero(1),
    "int_floordiv": lambda x: (x > 0).long() // 2 + (x > 0).long() % 3,
    "long": lambda x: x.long(),
}


@pytest.mark.parametrize("name", sorted(NONDIFF))
def test_non_differentiable_results_are_recorded_outside_the_graph(name):
    (x,) = _params((4, 5))
    with Tracer(x.data) as tr:
        out = NONDIFF[name](x)
    tr.assert_sound(out)
    assert out.grad_fn is None and not out.requires_grad


WEIGHT = Tensor(np.linspace(0.5, 1.5, 5, dtype=np.float32))
INDEXED = {
    "getitem_tensor": lambda x, i: x[i],
    "getitem_mixed": lambda x, i: x[1:, i],
    "getitem_mask": lambda x, i: x[x > 0],
    "index_select": lambda x, i: x.index_select(1, i),
    "unfold": lambda x, i: x.unfold(1, 2, 1),
    "roll": lambda x, i: x.roll(2, 1),
    "repeat_interleave": lambda x, i: x.repeat_interleave(2, dim=0),
    "diagonal": lambda x, i: x.diagonal(1),
    "diag": lambda x, i: x[0].diag(),
    "triu": lambda x, i: x.triu(1),
    "pad_reflect": lambda x, i: F.pad(x, (2, 1), mode="reflect"),
    "embedding": lambda x, i: F.embedding(i, x, padding_idx=1),
    "label_smoothing": lambda x, i: F.cross_entropy(x, i, label_smoothing=0.1, ignore_index=2),
    "weighted_ce": lambda x, i: F.cross_entropy(x, i, weight=WEIGHT),
    "setitem_clone": lambda x, i: _written(x, i),
}


def _written(x, i):  # SetItem with its index array as an input (inplace.setitem, optim's, still bakes it)
    index, arrays = ops.split_index(i)
    return ops.SetItem.apply(x * 1.0, (x[0:1] * 2).expand(4, 5), *arrays, index=index)


@pytest.mark.parametrize("name", sorted(INDEXED))
def test_indexing_ops_take_index_arrays_as_inputs(name):
    (x,) = _params((4, 5))
    i = tg.from_numpy(np.array([0, 2, 3, 2]))
    _step(lambda: (INDEXED[name](x, i) ** 2).sum(), x, inputs=(i, WEIGHT))


@pytest.mark.parametrize("name", ["max_dim", "sort", "topk", "median", "gather"])
def test_index_results_feed_the_graph_through_ops(name):
    (x,) = _params((4, 5))
    ramp = Tensor(np.arange(5.0, dtype=np.float32))
    fns = {
        "max_dim": lambda: x.max(1).values.sum() + x.min(0, keepdim=True).values.sum(),
        "sort": lambda: (x.sort(1).values * ramp).sum(),
        "topk": lambda: x.topk(2, 1).values.sum(),
        "median": lambda: x.median(1).values.sum(),
        "gather": lambda: x.gather(1, x.argmax(1, keepdim=True)).sum(),
    }
    _step(fns[name], x, inputs=(ramp,))


def test_seed_of_a_one_element_non_scalar_output_and_copied_grads_are_recorded():
    (x,) = _params((1, 1))
    with Tracer(x.data) as tr:
        (x * 2).backward()  # the seed: ones of shape (1, 1)
        g1 = x.grad
        (x * 3).backward()  # accumulation
    tr.assert_sound(g1, x.grad)
    np.testing.assert_array_equal(x.grad.data, [[5.0]])


def test_gradient_passed_through_unchanged_gets_its_own_recorded_copy():
    a, b = _params((3,), (3,))
    with Tracer(a.data, b.data) as tr:
        (a + b).sum().backward()  # both leaves would get one expanded (read-only) array: each gets a copy
    tr.assert_sound(a.grad, b.grad)
    assert a.grad.data is not b.grad.data and a.grad.data.flags.writeable


@pytest.mark.parametrize("model", ["nielsen", "mlp", "cnn"])
def test_demo_models_forward_backward_are_recorded(model):
    from tinygrad_mnist.models import MODELS

    tg.manual_seed(0)
    net = MODELS[model]()
    params = list(net.parameters())
    rng = np.random.default_rng(0)
    x = rng.random((4, 784), dtype=np.float32)
    y = rng.integers(0, 10, 4)
    loss_fn = losses.mse if model == "nielsen" else losses.cross_entropy
    xt = tg.from_numpy(x)
    _step(lambda: loss_fn(net(xt), y), *params, inputs=(x, y))


# ---------------------------------------------------------------------------
# under tinygrad_mnist.compile: replaying forward + backward equals eager, bit for bit
# ---------------------------------------------------------------------------


def _replay_equals_eager(build, calls, seed=7):
    """build() -> (step, params); run 5 calls eagerly, then the same 5 compiled (2 recordings, 3 replays)
    from the same random state, and compare the returned tensors and the gradients bit for bit."""

    def run(compiled):
        step, params = build()
        fn = tg.compile(step) if compiled else step
        tg.manual_seed(seed)
        outs = []
        for args in calls:
            for p in params:
                p.grad = None
            out = fn(*args)
            outs.append([o.data.copy() for o in (out if isinstance(out, tuple) else (out,))]
                        + [p.grad.data.copy() for p in params if p.grad is not None])
        return outs, fn

    eager, _ = run(False)
    replayed, fn = run(True)
    assert fn.replays == len(calls) - 2
    for k, (a, b) in enumerate(zip(eager, replayed)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f"call {k} differs"


def _batches(n=5, rows=6, cols=10, seed=0):
    rng = np.random.default_rng(seed)
    return [(tg.from_numpy(rng.standard_normal((rows, cols)).astype(np.float32)), rng.integers(0, 10, rows))
            for _ in range(n)]


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_op_step_replays_like_eager(name):
    def build():
        (w,) = _params((10, 5), seed=1)
        fn = ELEMENTWISE[name]

        def step(x, y):
            h = x @ w
            out = fn(h, h * 0.5 + 0.1)
            (out * out).sum().backward()
            return out

        return step, [w]

    _replay_equals_eager(build, _batches())


@pytest.mark.parametrize("loss", ["cross_entropy", "F.cross_entropy", "mse", "nll", "one_hot_mse",
                                  "cross_entropy_probs", "dropout", "argmax_accuracy"])
def test_loss_step_replays_like_eager(loss):
    fns = {
        "cross_entropy": lambda h, y: losses.cross_entropy(h, y),
        "F.cross_entropy": lambda h, y: F.cross_entropy(h, tg.from_numpy(y), reduction="sum"),
        "mse": lambda h, y: losses.mse(h.sigmoid(), y),
        "nll": lambda h, y: losses.nll(h.log_softmax(1), y),
        "one_hot_mse": lambda h, y: F.mse_loss(h, F.one_hot(tg.from_numpy(y), 10).float()),
        "cross_entropy_probs": lambda h, y: h.cross_entropy(F.one_hot(tg.from_numpy(y), 10).float().softmax(1)),
        "dropout": lambda h, y: losses.cross_entropy(h.relu().dropout(0.3), y),
        "argmax_accuracy": lambda h, y: (losses.cross_entropy(h, h.argmax(1))
                                         + (h.max(1).values * (h.amax(1) > 0)).sum()),
    }

    def build():
        (w,) = _params((10, 10), seed=2)

        def step(x, y):
            loss = fns[loss_name](x @ w, y)
            loss.backward()
            return loss

        return step, [w]

    loss_name = loss
    _replay_equals_eager(build, _batches())


@pytest.mark.parametrize("model", ["nielsen", "mlp"])
def test_demo_model_forward_backward_replays_like_eager(model):
    """The demo's models (the MLP with its dropout), forward and backward; the optimizer is optim's to record."""
    from tinygrad_mnist.models import MODELS

    def build():
        tg.manual_seed(0)
        net = MODELS[model]()
        loss_fn = losses.mse if model == "nielsen" else losses.cross_entropy

        def step(x, y):
            loss = loss_fn(net(x), y)
            loss.backward()
            return loss

        return step, list(net.parameters())

    _replay_equals_eager(build, _batches(rows=4, cols=784))


def test_cross_entropy_with_an_in_range_ignore_index_takes_the_general_path():
    x = Tensor(np.random.default_rng(10).standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 1, 3]), ignore_index=2)  # no label is 2: a replay might see one
    assert loss.grad_fn.name != "CrossEntropy"
    np.testing.assert_allclose(loss.data, F.cross_entropy(x, np.array([0, 1, 3])).data, rtol=1e-6)


@pytest.mark.parametrize("model,steps", [("nielsen", 100), ("mlp", 100), ("cnn", 12)])
def test_demo_model_training_replays_like_eager(model, steps):
    """The recipe's model and optimizer (the MLP and the CNN: dropout and Adam): compiled steps equal
    eager ones bit for bit, losses and parameters."""
    from tinygrad_mnist.models import MODELS
    from tinygrad_mnist.train import RECIPES, make_optimizer

    def run(compiled):
        tg.manual_seed(0)
        net = MODELS[model]()
        opt = make_optimizer(RECIPES[model], net.parameters())
        loss_fn = losses.mse if model == "nielsen" else losses.cross_entropy

        def step(x, y):
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = tg.compile(step) if compiled else step
        rng = np.random.default_rng(1)
        out = [fn(tg.from_numpy(rng.random((8, 784), dtype=np.float32)), rng.integers(0, 10, 8)).data.copy()
               for _ in range(steps)]
        return out, [p.data.copy() for p in net.parameters()], fn

    eager, pe, _ = run(False)
    replayed, pc, fn = run(True)
    assert fn.replays == steps - 3  # the first calls run eagerly and record
    assert [a.tobytes() for a in eager] == [b.tobytes() for b in replayed]
    assert [a.tobytes() for a in pe] == [b.tobytes() for b in pc]


def test_round_with_decimals_records_the_same_op_twice():
    def build():
        (w,) = _params((10, 5), seed=3)

        def step(x, y):
            out = (x @ w).round(2) + x @ w
            out.sum().backward()
            return out

        return step, [w]

    _replay_equals_eager(build, _batches())


def test_random_factories_inside_a_step_replay_fresh_draws_like_eager():
    def build():
        (w,) = _params((10, 5), seed=4)

        def step(x, y):
            noise = tg.randn(6, 5) * 0.1 + tg.rand(6, 5) + Tensor.uniform(6, 5, low=-1.0, high=2.0)
            pick = tg.randint(0, 5, (6,))
            h = x @ w + noise
            out = h[tg.arange(6), pick] + h[:, tg.randperm(5)].sum(1)
            out.sum().backward()
            return out, pick

        return step, [w]

    _replay_equals_eager(build, _batches())
