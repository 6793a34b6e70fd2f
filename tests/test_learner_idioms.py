"""Learners' PyTorch code under both imports (the runner of test_pytorch_idioms.py): torch.utils.data,
the recurrent and attention layers, and the lectures' character-level language models.

Random draws differ between the two libraries (each has its own generator), so snippets that shuffle
compare what must agree: sizes, shapes, dtypes, the multiset of samples, what a seed reproduces.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_pytorch_idioms import _check, _compare, run_both

import tinygrad_mnist

DATA = {
    "tensor_dataset_in_order": """
        ds = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(Y))
        loader = torch.utils.data.DataLoader(ds, batch_size=4)
        batches = [(xb, yb) for xb, yb in loader]
        result = len(ds), ds[2], len(loader), batches, list(next(iter(loader)))
    """,
    "drop_last_and_len": """
        ds = torch.utils.data.TensorDataset(torch.arange(10.).reshape(10, 1))
        loader = torch.utils.data.DataLoader(ds, batch_size=3, drop_last=True)
        result = len(loader), [b[0] for b in loader], len(torch.utils.data.DataLoader(ds, batch_size=3))
    """,
    "shuffle_reorders_every_epoch": """
        torch.manual_seed(0)
        ds = torch.utils.data.TensorDataset(torch.arange(40.), torch.arange(40))
        loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)
        epochs = [torch.cat([y for _, y in loader]) for _ in range(2)]
        firsts = [x for x, _ in loader]
        result = ([sorted(e.tolist()) for e in epochs], not torch.equal(epochs[0], epochs[1]),
                  epochs[0].tolist() != list(range(40)), [f.shape for f in firsts], firsts[0].dtype)
    """,
    "random_split_lengths_and_fractions": """
        ds = torch.utils.data.TensorDataset(torch.arange(11))
        a, b, c = torch.utils.data.random_split(ds, [0.5, 0.3, 0.2])
        d, e = torch.utils.data.random_split(range(10), [7, 3])
        covered = sorted([a[i][0].item() for i in range(len(a))] + [b[i][0].item() for i in range(len(b))]
                         + [c[i][0].item() for i in range(len(c))])
        result = [len(s) for s in (a, b, c, d, e)], covered, sorted(list(d) + list(e)), type(a).__name__
    """,
    "subset_and_concat": """
        ds = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(Y))
        sub = torch.utils.data.Subset(ds, [4, 1, 3])
        both = ds + sub
        loader = torch.utils.data.DataLoader(sub, batch_size=2)
        result = len(sub), sub[1], len(both), both[7], both[-1], [b for b in loader]
    """,
    "custom_dataset_numpy_samples": """
        class Squares(torch.utils.data.Dataset):
            def __len__(self):
                return 7

            def __getitem__(self, i):
                return np.full((2,), i, np.float32), i * i, float(i) / 2, f"s{i}"

        batches = list(torch.utils.data.DataLoader(Squares(), batch_size=3))
        result = len(batches), batches[0], batches[-1]
    """,
    "default_collate_structures": """
        from collections import namedtuple
        Pair = namedtuple("Pair", "a b")
        collate = torch.utils.data.default_collate
        result = (collate([{"x": torch.ones(2), "y": 1}, {"x": torch.zeros(2), "y": 2}]),
                  collate([(1.5, True), (2.5, False)]), tuple(collate([Pair(1, 2.0), Pair(3, 4.0)])),
                  collate([[1, 2], [3, 4]]), collate([np.float32(1), np.float32(2)]),
                  collate([np.arange(3), np.arange(3)]), collate([np.zeros(2), np.ones(2)]))
    """,
    "batch_size_none_and_custom_collate": """
        ds = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(Y))
        single = list(torch.utils.data.DataLoader(ds, batch_size=None))
        summed = list(torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=lambda b: sum(y for _, y in b)))
        result = len(single), single[3], summed
    """,
    "samplers": """
        ds = torch.utils.data.TensorDataset(torch.arange(10))
        data = torch.utils.data
        by_sampler = list(data.DataLoader(ds, batch_size=3, sampler=[9, 0, 8, 1, 7]))
        by_batches = list(data.DataLoader(ds, batch_sampler=[[1, 2], [5], [0, 9, 3]]))
        bs = data.BatchSampler(data.SequentialSampler(range(7)), batch_size=3, drop_last=False)
        torch.manual_seed(1)
        drawn = list(data.RandomSampler(range(5), replacement=True, num_samples=40))
        sub = sorted(data.SubsetRandomSampler([3, 5, 7]))
        result = by_sampler, by_batches, list(bs), len(bs), len(drawn), 0 <= min(drawn) and max(drawn) < 5, sub
    """,
    "iterable_dataset": """
        class Stream(torch.utils.data.IterableDataset):
            def __iter__(self):
                return iter(range(7))

        result = list(torch.utils.data.DataLoader(Stream(), batch_size=3))
    """,
    "generator_reproduces_shuffles_and_splits": """
        ds = torch.utils.data.TensorDataset(torch.arange(30))

        def order(seed):
            g = torch.Generator().manual_seed(seed)
            loader = torch.utils.data.DataLoader(ds, batch_size=7, shuffle=True, generator=g)
            return torch.cat([b[0] for b in loader]), torch.cat([b[0] for b in loader])

        (a1, a2), (b1, _), (c1, _) = order(1), order(1), order(2)

        def split(seed):
            g = torch.Generator().manual_seed(seed)
            return [list(p) for p in torch.utils.data.random_split(range(10), [0.5, 0.3, 0.2], generator=g)]

        sampler = torch.utils.data.RandomSampler(range(6), generator=torch.Generator().manual_seed(4))
        again = torch.utils.data.RandomSampler(range(6), generator=torch.Generator().manual_seed(4))
        sub = torch.utils.data.SubsetRandomSampler([2, 4, 6], generator=torch.Generator().manual_seed(4))
        sub2 = torch.utils.data.SubsetRandomSampler([2, 4, 6], generator=torch.Generator().manual_seed(4))
        result = (torch.equal(a1, b1), torch.equal(a1, c1), torch.equal(a1, a2), sorted(a1.tolist()) == list(range(30)),
                  split(3) == split(3), sorted(sum(split(3), [])), [len(p) for p in split(5)],
                  list(sampler) == list(again), list(sub) == list(sub2), sorted(sub))
    """,
    "generator_leaves_the_global_stream_alone": """
        ds = torch.utils.data.TensorDataset(torch.arange(12))
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(7)
        plain = torch.rand(3)
        torch.manual_seed(7)
        for _ in torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True, generator=g):
            pass
        torch.utils.data.random_split(ds, [6, 6], generator=g)
        result = torch.equal(torch.rand(3), plain)
    """,
    "training_loop_with_loader": """
        model = seeded(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(Y)),
                                             batch_size=2)
        losses = []
        for epoch in range(2):
            for batch_idx, (data, target) in enumerate(loader):
                opt.zero_grad()
                loss = F.cross_entropy(model(data), target)
                loss.backward()
                opt.step()
                losses.append(loss.item())
        result = losses, model[0].weight, len(loader.dataset), batch_idx
    """,
}

DATA_RAISE_BOTH = {
    "split_lengths_dont_add_up": "result = torch.utils.data.random_split(range(10), [3, 4])",
    "sampler_and_shuffle": "result = torch.utils.data.DataLoader(range(4), sampler=[0, 1], shuffle=True)",
    "batch_sampler_and_batch_size": "result = torch.utils.data.DataLoader(range(4), batch_sampler=[[0]], batch_size=2)",
    "tensor_dataset_sizes": "result = torch.utils.data.TensorDataset(torch.zeros(3), torch.zeros(4))",
    "collate_ragged_lists": "result = torch.utils.data.default_collate([[1, 2], [3]])",
    "none_batch_drop_last": "result = torch.utils.data.DataLoader(range(4), batch_size=None, drop_last=True)",
    "iterable_shuffle": """
        class Stream(torch.utils.data.IterableDataset):
            def __iter__(self):
                return iter(range(7))
        result = torch.utils.data.DataLoader(Stream(), shuffle=True)
    """,
}

LAYERS = {
    "lstm_classifier": """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(4, 6, num_layers=2, batch_first=True)
                self.fc = nn.Linear(6, 3)

            def forward(self, x):
                out, (h, c) = self.lstm(x)
                return self.fc(out[:, -1]), h, c

        model = seeded(Net())
        logits, h, c = model(torch.tensor(X).reshape(2, 3, 4))
        loss = F.cross_entropy(logits, torch.tensor([0, 2]))
        loss.backward()
        result = logits, h, c, loss, model.lstm.weight_hh_l1.grad, model.lstm.bias_ih_l0.grad, list(model.state_dict())
    """,
    "gru_with_h0_bidirectional": """
        gru = seeded(nn.GRU(4, 3, bidirectional=True))
        h0 = torch.tensor(A[:2, :3].reshape(2, 1, 3).copy(), requires_grad=True)
        x = torch.tensor(X, requires_grad=True).unsqueeze(1)
        out, h = gru(x, h0)
        (out.sum() + h.pow(2).sum()).backward()
        result = out, h, h0.grad, gru.weight_ih_l0_reverse.grad
    """,
    "rnn_relu_unbatched": """
        rnn = seeded(nn.RNN(4, 2, nonlinearity="relu", bias=False))
        out, h = rnn(torch.tensor(X))
        result = out, h, [n for n, _ in rnn.named_parameters()]
    """,
    "multihead_self_attention": """
        mha = seeded(nn.MultiheadAttention(4, 2, batch_first=True))
        x = torch.tensor(X).reshape(2, 3, 4).requires_grad_()
        pad = torch.tensor([[False, False, True], [False, False, False]])
        causal = torch.triu(torch.ones(3, 3, dtype=torch.bool), diagonal=1)  # the tutorials' causal mask
        out, w = mha(x, x, x, key_padding_mask=pad, attn_mask=causal)
        out.sum().backward()
        result = (out, w, x.grad, mha.in_proj_weight.grad, mha.out_proj.bias.grad, list(mha.state_dict()), causal,
                  torch.tril(torch.ones(2, 2, dtype=torch.bool)))
    """,
    "sdpa": """
        q = torch.tensor(X).reshape(1, 2, 3, 4).requires_grad_()
        k = torch.tensor(A).reshape(1, 1, 3, 4)
        out = F.scaled_dot_product_attention(q, k, k, is_causal=True)
        masked = F.scaled_dot_product_attention(q, k, k, attn_mask=torch.tensor([True, False, True]), scale=0.5)
        (out.sum() + masked.sum()).backward()
        result = out, masked, q.grad
    """,
}


LECTURES = {
    "bigram_counts": """
        words = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "ella", "ada"]
        chars = sorted(set("".join(words)))
        stoi = {s: i + 1 for i, s in enumerate(chars)}
        stoi["."] = 0
        V = len(stoi)
        N = torch.zeros((V, V), dtype=torch.int32)
        for w in words:
            chs = ["."] + list(w) + ["."]
            for ch1, ch2 in zip(chs, chs[1:]):
                N[stoi[ch1], stoi[ch2]] += 1
        P = (N + 1).float()
        P /= P.sum(1, keepdims=True)
        log_likelihood = 0.0
        n = 0
        for w in words:
            chs = ["."] + list(w) + ["."]
            for ch1, ch2 in zip(chs, chs[1:]):
                logprob = torch.log(P[stoi[ch1], stoi[ch2]])
                log_likelihood += logprob
                n += 1
        nll = -log_likelihood
        result = N, P, nll / n, (nll / n).item(), P[0].sum().item(), N.dtype, P.shape
    """,
}


def _lectures_namespace_code(kind: str, spelling: str) -> str:
    """A character-level language model over a generated word list, as the lectures build it: a vocabulary
    with '.' as start/end, one-hot (bigram) or an embedding + tanh MLP over a block of 3 characters, softmax,
    the negative log-likelihood, and a manual SGD loop.

    spelling "lectures": the lectures' own lines: weights and minibatches drawn with
    `g = torch.Generator().manual_seed(2147483647)` (so each library starts from its own numbers), the update
    `p.data += -lr * p.grad`, and names sampled with `torch.multinomial(..., generator=g)` at the end.
    spelling "shared_weights": both libraries start from the same NumPy-drawn weights and minibatches, and
    update under no_grad(); their losses then agree from the first step on.
    """
    return f"""
        import random
        random.seed(42)
        syllables = [random.choice("bcdfghjklmnprstvz") + random.choice("aeiouy") for _ in range(30)]
        words = ["".join(random.choice(syllables) for _ in range(random.randint(1, 4))) + random.choice(["", "n", "a"])
                 for _ in range(400)]
        chars = sorted(set("".join(words)))
        stoi = {{s: i + 1 for i, s in enumerate(chars)}}
        stoi["."] = 0
        itos = {{i: s for s, i in stoi.items()}}
        V = len(stoi)
        lectures = "{spelling}" == "lectures"
        rng = np.random.default_rng(0)
        g = torch.Generator().manual_seed(2147483647)

        def init(*shape, scale=1.0):
            if lectures:
                return torch.randn(shape, generator=g) * scale
            return torch.tensor((rng.standard_normal(shape) * scale).astype(np.float32))

        if "{kind}" == "bigram":
            xs, ys = [], []
            for w in words:
                chs = ["."] + list(w) + ["."]
                for ch1, ch2 in zip(chs, chs[1:]):
                    xs.append(stoi[ch1])
                    ys.append(stoi[ch2])
            xs, ys = torch.tensor(xs), torch.tensor(ys)
            W = init(V, V).requires_grad_()
            params = [W]
            steps, lr = 60, 50.0

            def forward():
                xenc = F.one_hot(xs, num_classes=V).float()
                logits = xenc @ W
                counts = logits.exp()
                probs = counts / counts.sum(1, keepdims=True)
                return -probs[torch.arange(len(ys)), ys].log().mean() + 0.01 * (W ** 2).mean()

            def next_probs(context):
                counts = (F.one_hot(torch.tensor([context[-1]]), num_classes=V).float() @ W).exp()
                return counts / counts.sum(1, keepdims=True)
        else:
            block_size = 3
            X, Ys = [], []
            for w in words:
                context = [0] * block_size
                for ch in w + ".":
                    X.append(context)
                    Ys.append(stoi[ch])
                    context = context[1:] + [stoi[ch]]
            X, Ys = torch.tensor(X), torch.tensor(Ys)
            C = init(V, 6)
            W1, b1 = init(18, 64, scale=0.2), init(64, scale=0.01)
            W2, b2 = init(64, V, scale=0.05), torch.zeros(V)
            params = [C, W1, b1, W2, b2]
            for p in params:
                p.requires_grad = True
            steps, lr = 80, 0.5
            batches = rng.integers(0, X.shape[0], (steps, 64))

            def next_probs(context):
                h = torch.tanh(C[torch.tensor([context])].view(1, -1) @ W1 + b1)
                return F.softmax(h @ W2 + b2, dim=1)

        losses = []
        for step in range(steps):
            if "{kind}" == "bigram":
                loss = forward()
            else:
                ix = torch.randint(0, X.shape[0], (64,), generator=g) if lectures else torch.tensor(batches[step])
                emb = C[X[ix]]
                h = torch.tanh(emb.view(-1, 18) @ W1 + b1)
                logits = h @ W2 + b2
                loss = F.cross_entropy(logits, Ys[ix])
            for p in params:
                p.grad = None
            loss.backward()
            if lectures:
                for p in params:
                    p.data += -lr * p.grad
            else:
                with torch.no_grad():
                    for p in params:
                        p -= lr * p.grad
            losses.append(loss.item())
        with torch.no_grad():
            if "{kind}" == "mlp":
                full = F.cross_entropy(torch.tanh(C[X].view(-1, 18) @ W1 + b1) @ W2 + b2, Ys).item()
            else:
                full = forward().item()

        def sample_names(seed, count=5):
            gen = torch.Generator().manual_seed(seed)
            names = []
            for _ in range(count):
                out, context = [], [0] * 3
                while len(out) < 30:
                    ix = torch.multinomial(next_probs(context), num_samples=1, replacement=True, generator=gen).item()
                    out.append(itos[ix])
                    context = context[1:] + [ix]
                    if ix == 0:
                        break
                names.append("".join(out))
            return names

        names = sample_names(2147483647 + 10) if lectures else []
        samples_ok = (names == sample_names(2147483647 + 10) and all(n.endswith(".") for n in names)
                      and all(ch in stoi for n in names for ch in n)) if lectures else True
        result = losses[0], losses[-1], full, samples_ok
    """


@pytest.mark.parametrize("name", sorted(DATA))
def test_utils_data_idioms(name, tmp_path):
    _check(DATA[name], tmp_path)


@pytest.mark.parametrize("name", sorted(DATA_RAISE_BOTH))
def test_utils_data_errors_where_pytorch_errors(name, tmp_path):
    ours, theirs = run_both(DATA_RAISE_BOTH[name], tmp_path)
    assert isinstance(theirs, Exception), "PyTorch accepts this snippet: it does not belong here"
    assert isinstance(ours, type(theirs)) or isinstance(ours, (ValueError, TypeError, RuntimeError)), (ours, theirs)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_idioms(name, tmp_path):
    ours, theirs = run_both(LAYERS[name], tmp_path)
    if isinstance(theirs, Exception):
        pytest.fail(f"the snippet fails in PyTorch itself: {theirs!r}")
    if isinstance(ours, Exception):
        raise ours
    _compare(ours, theirs)


@pytest.mark.parametrize("name", sorted(LECTURES))
def test_lecture_idioms(name, tmp_path):
    _check(LECTURES[name], tmp_path)


@pytest.mark.parametrize("spelling", ["lectures", "shared_weights"])
@pytest.mark.parametrize("kind", ["bigram", "mlp"])
def test_character_language_models_train_alike(kind, spelling, tmp_path):
    """The lectures' bigram and MLP language models under both imports: the losses at the end agree within
    5%. From the same initial weights they agree from the first step (the libraries round differently,
    nothing more); with the lectures' generator each library draws its own weights and batches."""
    ours, theirs = run_both(_lectures_namespace_code(kind, spelling), tmp_path)
    if isinstance(theirs, Exception):
        pytest.fail(f"the snippet fails in PyTorch itself: {theirs!r}")
    if isinstance(ours, Exception):
        raise ours
    first, last, full, samples_ok = ours
    t_first, t_last, t_full, t_samples_ok = theirs
    if spelling == "shared_weights":
        assert abs(first - t_first) <= 1e-4 * t_first  # the same model, data and weights
    assert last < 0.8 * first and t_last < 0.8 * t_first  # both learned something
    assert abs(full - t_full) <= 0.05 * t_full, (full, t_full)
    if kind == "bigram" or spelling == "shared_weights":  # a minibatch's loss is only comparable on the same batch
        assert abs(last - t_last) <= 0.05 * t_last, (last, t_last)
    assert samples_ok and t_samples_ok  # sampled names: from the vocabulary, ended by '.', reproducible by seed


def test_num_workers_raise_not_implemented():
    from tinygrad_mnist.utils.data import DataLoader

    with pytest.raises(NotImplementedError, match="num_workers"):
        DataLoader(range(4), num_workers=2)


def test_fast_batches_equal_collated_samples():
    """A TensorDataset batch is taken by indexing each tensor once; it equals stacking the samples."""
    from tinygrad_mnist.utils.data import DataLoader, Subset, TensorDataset, default_collate

    x = tinygrad_mnist.randn(9, 2, requires_grad=True)
    ds = Subset(TensorDataset(x, tinygrad_mnist.arange(9)), [8, 1, 5, 0, 2])
    fast = list(DataLoader(ds, batch_size=2))
    slow = list(DataLoader(ds, batch_size=2, collate_fn=lambda b: default_collate(b)))
    for (a, ya), (b, yb) in zip(fast, slow):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(ya.data, yb.data)
        assert a.dtype == b.dtype and ya.dtype == yb.dtype
    (fast[0][0].sum() * 2 + fast[2][0].sum()).backward()  # the batch stays in the graph, as stacking does
    want = np.zeros((9, 2))
    want[[8, 1]] = 2
    want[2] = 1
    np.testing.assert_array_equal(x.grad.data, want)
