"""torch.Generator, generator= on every random function and method, and torch.multinomial (issue 18, items 1-2).

The snippets run under both imports (the runner of test_pytorch_idioms.py).  The two libraries' streams
differ (NumPy's PCG64 against PyTorch's Mersenne twister), so a snippet compares what must agree: shapes,
dtypes, ranges, what one seed reproduces, that two generators don't touch each other, frequencies.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_pytorch_idioms import _check, run_both

import tinygrad_mnist as tg

DRAWS = """
        def draws(g):
            return [torch.rand(3, generator=g), torch.randn(2, 2, generator=g), torch.randint(3, 9, (5,), generator=g),
                    torch.randint(4, (2, 2), generator=g), torch.randperm(6, generator=g),
                    torch.normal(0.0, 1.0, size=(3,), generator=g), torch.normal(torch.zeros(2, 2), 2.0, generator=g),
                    torch.bernoulli(torch.full((4,), 0.5), generator=g),
                    torch.multinomial(torch.tensor([0.2, 0.3, 0.5]), 2, generator=g),
                    torch.rand_like(torch.zeros(2, dtype=torch.float64), generator=g),
                    torch.randn_like(torch.zeros(2), generator=g), torch.randint_like(torch.zeros(3), 5, generator=g),
                    torch.empty(3).uniform_(generator=g), torch.empty(3).normal_(generator=g),
                    torch.empty(3).bernoulli_(0.5, generator=g), torch.empty(3).random_(10, generator=g),
                    torch.empty(3).exponential_(generator=g)]
"""

SNIPPETS = {
    "generator_api": """
        g = torch.Generator()
        same = g.manual_seed(2147483647) is g
        state = g.get_state()
        s = g.seed()
        result = (same, torch.Generator(device="cpu").manual_seed(7).initial_seed(), g.initial_seed() == s,
                  type(s) is int, g.device.type, state.dtype == torch.uint8, state.ndim,
                  g.set_state(state) is g, torch.manual_seed(3) is torch.default_generator, torch.initial_seed())
    """,
    "one_seed_reproduces_every_draw": DRAWS + """
        a, b = draws(torch.Generator().manual_seed(42)), draws(torch.Generator().manual_seed(42))
        c = draws(torch.Generator().manual_seed(43))
        result = ([bool(torch.equal(x, y)) for x, y in zip(a, b)], [tuple(x.shape) for x in a], [x.dtype for x in a],
                  sum(bool(torch.equal(x, y)) for x, y in zip(a, c)) < 6)
    """,
    "generators_are_independent": """
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        a = torch.rand(4, generator=g1)
        torch.manual_seed(0)
        torch.rand(10)                                  # the default stream moves ...
        torch.randn(3, generator=torch.Generator())     # ... and so does another generator
        b = torch.rand(4, generator=g2)                 # g2 still starts where g1 did
        torch.manual_seed(5)
        x = torch.rand(3)
        torch.rand(5, generator=g1)                     # drawing from g1 leaves the default stream alone
        y = torch.rand(3)
        torch.manual_seed(5)
        result = bool(torch.equal(a, b)), bool(torch.equal(torch.cat([x, y]), torch.rand(6)))
    """,
    "manual_seed_still_drives_the_default_stream": """
        torch.manual_seed(3)
        a = torch.randn(3)
        torch.manual_seed(3)
        b = torch.randn(3)
        result = bool(torch.equal(a, b)), bool(torch.equal(torch.randn(3), a))
    """,
    "get_and_set_state_rewind": """
        g = torch.Generator().manual_seed(9)
        torch.rand(2, generator=g)
        state = g.get_state()
        a = torch.randn(5, generator=g)
        g.set_state(state)
        result = bool(torch.equal(a, torch.randn(5, generator=g)))
    """,
    "ranges_and_dtypes": """
        g = torch.Generator().manual_seed(0)
        u = torch.rand(2000, generator=g)
        i = torch.randint(3, 7, (2000,), generator=g)
        p = torch.randperm(50, generator=g)
        x = torch.empty(4000).uniform_(-2.0, 3.0, generator=g)
        n = torch.empty(4000, dtype=torch.float64).normal_(5.0, 0.5, generator=g)
        e = torch.empty(4000).exponential_(2.0, generator=g)
        b = torch.empty(4000).bernoulli_(0.25, generator=g)
        r = torch.empty(500, dtype=torch.int64).random_(2, 5, generator=g)
        result = (bool((u >= 0).all()) and bool((u < 1).all()), sorted(set(i.tolist())), i.dtype,
                  sorted(p.tolist()) == list(range(50)), p.dtype, x.min().item() >= -2.0, x.max().item() < 3.0,
                  abs(n.mean().item() - 5.0) < 0.05, abs(n.std().item() - 0.5) < 0.05, n.dtype,
                  bool((e > 0).all()), abs(e.mean().item() - 0.5) < 0.05, sorted(set(b.tolist())),
                  abs(b.mean().item() - 0.25) < 0.04, sorted(set(r.tolist())), r.dtype)
    """,
    "nn_init_takes_a_generator": """
        def init(seed):
            w, v = torch.empty(30, 20), torch.empty(30, 20)
            g = torch.Generator().manual_seed(seed)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
            nn.init.xavier_normal_(v, generator=g)
            nn.init.uniform_(w[:1], -0.5, 0.5, generator=g)
            nn.init.normal_(v[:1], 0.0, 0.1, generator=g)
            nn.init.kaiming_normal_(v[1:2], generator=g)
            nn.init.xavier_uniform_(w[1:2], generator=g)
            return w, v
        (a, b), (c, d) = init(1), init(1)
        bound = 1 / math.sqrt(20)
        result = bool(torch.equal(a, c)), bool(torch.equal(b, d)), bool((a[2:].abs() <= bound).all())
    """,
    "normal_and_bernoulli_give_zero_gradients_as_pytorch": """
        mean = torch.zeros(3, requires_grad=True)
        std = torch.ones(3, requires_grad=True)
        p = torch.full((3,), 0.5, requires_grad=True)
        (torch.normal(mean, std).sum() + torch.bernoulli(p).sum()).backward()
        result = mean.grad, std.grad, p.grad, torch.normal(2.0, 3.0, size=(2, 3)).shape
    """,
    "multinomial_shapes_and_rules": """
        g = torch.Generator().manual_seed(0)
        w = torch.tensor([0.0, 1.0, 2.0, 7.0])
        with_r = torch.multinomial(w, 500, replacement=True, generator=g)
        rows = torch.multinomial(torch.tensor([[1.0, 1.0, 0.0], [0.0, 3.0, 1.0]]), 2, generator=g)
        full = torch.multinomial(w, 4, generator=g)
        two = w.multinomial(3, generator=g)
        result = (with_r.shape, with_r.dtype, 0 not in with_r.tolist(), rows.shape, rows.dtype,
                  sorted(rows[0].tolist()), sorted(rows[1].tolist()), full[-1].item(), sorted(full.tolist()),
                  len(set(two.tolist())), 0 not in two.tolist())
    """,
    "multinomial_frequencies": """
        g = torch.Generator().manual_seed(1)
        ix = torch.multinomial(torch.tensor([1.0, 2.0, 7.0]), 20000, replacement=True, generator=g)
        freq = [(ix == k).float().mean().item() for k in range(3)]
        first = torch.multinomial(torch.tensor([[1.0, 9.0]] * 4000), 1, generator=g)  # without replacement
        result = ([abs(f - w) < 0.015 for f, w in zip(freq, (0.1, 0.2, 0.7))],
                  abs(first.float().mean().item() - 0.9) < 0.02)
    """,
    "data_loading_takes_a_generator": """
        ds = torch.utils.data.TensorDataset(torch.arange(20))
        def order(seed):
            g = torch.Generator().manual_seed(seed)
            return [b[0].tolist() for b in torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True, generator=g)]
        split = lambda: torch.utils.data.random_split(range(10), [7, 3], generator=torch.Generator().manual_seed(0))
        (a, b), (c, d) = split(), split()
        result = (order(3) == order(3), sorted(sum(order(3), [])) == list(range(20)), list(a) == list(c),
                  sorted(list(a) + list(b)) == list(range(10)), len(a), len(d))
    """,
    "makemore_sampling_loop": """
        P = torch.tensor(np.abs(A[:3, :3]) + 0.1)
        P = P / P.sum(1, keepdims=True)
        def sample(seed):
            g = torch.Generator().manual_seed(seed)
            out, ix = [], 0
            for _ in range(20):
                ix = torch.multinomial(P[ix], num_samples=1, replacement=True, generator=g).item()
                out.append(ix)
            return out
        a = sample(2147483647)
        result = a == sample(2147483647), all(0 <= i < 3 for i in a), type(a[0]) is int
    """,
}

RAISE_BOTH = {
    "multinomial_negative": "torch.multinomial(torch.tensor([0.5, -0.1, 0.6]), 1)",
    "multinomial_nan": "torch.multinomial(torch.tensor([0.5, float('nan')]), 1)",
    "multinomial_inf": "torch.multinomial(torch.tensor([0.5, float('inf')]), 1, replacement=True)",
    "multinomial_all_zero_row": "torch.multinomial(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), 1)",
    "multinomial_too_many_without_replacement": "torch.multinomial(torch.tensor([0.5, 0.5]), 3)",
    "multinomial_three_dims": "torch.multinomial(torch.ones(2, 2, 2), 1)",
    "multinomial_integer_weights": "torch.multinomial(torch.tensor([1, 2]), 1)",
    "multinomial_no_samples": "torch.multinomial(torch.tensor([1.0, 2.0]), 0, replacement=True)",
    "uniform_backwards_range": "torch.empty(3).uniform_(2.0, 1.0)",
    "bernoulli_p_out_of_range": "torch.empty(3).bernoulli_(1.5)",
    "exponential_negative_rate": "torch.empty(3).exponential_(-1.0)",
    "random_empty_range": "torch.empty(3).random_(5, 2)",
    "normal_negative_std": "torch.normal(torch.zeros(2), -1.0)",
    "fill_a_leaf_that_requires_grad": "torch.zeros(2, requires_grad=True).uniform_()",
    "seed_not_an_int": "torch.Generator().manual_seed(1.5)",
}


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_random_idioms(name, tmp_path):
    _check(SNIPPETS[name], tmp_path)


@pytest.mark.parametrize("name", sorted(RAISE_BOTH))
def test_bad_random_calls_raise_as_in_pytorch(name, tmp_path):
    ours, theirs = run_both(f"result = {RAISE_BOTH[name]}", tmp_path)
    assert isinstance(theirs, Exception), "PyTorch accepts this call: it does not belong here"
    assert isinstance(ours, Exception), f"the engine returned {ours!r} where PyTorch raises {theirs!r}"
    assert type(ours) is type(theirs) or (type(theirs), type(ours)) == (RuntimeError, TypeError), (ours, theirs)


def test_multinomial_errors_name_the_problem():
    with pytest.raises(RuntimeError, match=r"multinomial: can't draw 3 samples without replacement from 2"):
        tg.multinomial(tg.tensor([0.5, 0.5]), 3)
    with pytest.raises(RuntimeError, match=r"multinomial: the weights must be 1-D or 2-D, got shape \(2, 2, 2\)"):
        tg.multinomial(tg.ones(2, 2, 2), 1)
    with pytest.raises(RuntimeError, match=r"inf, nan or a value < 0"):
        tg.multinomial(tg.tensor([0.5, -1.0]), 1)
    with pytest.raises(RuntimeError, match=r"sums to 0"):
        tg.multinomial(tg.tensor([[1.0, 1.0], [0.0, 0.0]]), 1)
    with pytest.raises(TypeError, match=r"randn: generator must be a tinygrad_mnist.Generator"):
        tg.randn(2, generator=np.random.default_rng(0))


def test_a_generator_is_its_own_stream_and_the_default_is_the_global_one():
    tg.manual_seed(11)
    assert tg.initial_seed() == 11 and tg.default_generator.initial_seed() == 11
    a = tg.rand(4)
    assert np.array_equal(tg.rand(4, generator=tg.Generator().manual_seed(11)).data, a.data)  # one algorithm
    tg.default_generator.manual_seed(11)  # the default generator object is the global stream
    assert np.array_equal(tg.rand(4).data, a.data)
    b = tg.rand(4, generator=tg.default_generator)
    tg.manual_seed(11)
    tg.rand(4)
    assert np.array_equal(tg.rand(4).data, b.data)


def test_a_compiled_step_that_draws_from_a_generator_replays_exactly():
    """Draws go through the recorded random primitive: a replay draws from the generator, in eager order."""
    w = tg.randn(4, 3, generator=tg.Generator().manual_seed(1)).requires_grad_()
    x = tg.randn(5, 4, generator=tg.Generator().manual_seed(2))
    g = tg.Generator()

    def step(x):
        noise = tg.randn(4, 3, generator=g)
        mask = tg.empty(5, 3).bernoulli_(0.8, generator=g)
        probs = (x @ w).detach().softmax(1)
        picks = tg.multinomial(probs, 2, generator=g)  # the weights come from the step: read when the op runs
        loss = ((x @ (w + noise)) * mask).pow(2).mean()
        loss.backward()
        with tg.no_grad():
            w.sub_(0.01 * w.grad)
            w.grad = None
        return loss, picks

    w0 = w.data.copy()
    g.manual_seed(7)
    eager = [step(x) for _ in range(6)]
    w_eager = w.data.copy()
    w.data[...] = w0
    g.manual_seed(7)
    compiled = tg.compile(step)
    replayed = [compiled(x) for _ in range(6)]
    assert compiled.replays >= 3  # recorded on the first calls, replayed after
    for (l1, p1), (l2, p2) in zip(eager, replayed):
        assert np.array_equal(l1.data, l2.data) and np.array_equal(p1.data, p2.data)
    assert np.array_equal(w.data, w_eager)
    # and the next draw from g continues where eager's would
    g2 = tg.Generator().manual_seed(7)
    for _ in range(6):
        tg.randn(4, 3, generator=g2), tg.rand(5, 3, generator=g2), tg.multinomial(tg.ones(5, 3), 2, generator=g2)
    assert np.array_equal(tg.rand(3, generator=g).data, tg.rand(3, generator=g2).data)
