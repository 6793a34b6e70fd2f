"""nn.RNN, nn.GRU, nn.LSTM, nn.MultiheadAttention and F.scaled_dot_product_attention.

Gradients by central differences in float64 (inputs and every parameter), grad-of-grad, a compiled
training step equal to the eager one bit for bit, and (where PyTorch is installed) values and all
gradients equal to PyTorch's modules after copying their weights.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_mnist as tg
import tinygrad_mnist.nn.functional as F
from tinygrad_mnist import Tensor, engine, grad, nn
from tinygrad_mnist.gradcheck import gradcheck

RNG = np.random.default_rng(0)
RECURRENT = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}


def t64(*shape, requires_grad=True):
    return Tensor(RNG.standard_normal(shape), requires_grad=requires_grad)


def _set(module, name: str, value) -> None:
    *path, last = name.split(".")
    for p in path:
        module = getattr(module, p)
    setattr(module, last, value)


def as_function(module, call):
    """fn(*inputs, *parameters) running call(module, *inputs) with the given tensors as the parameters, so
    gradcheck perturbs both."""
    names = [n for n, _ in module.named_parameters()]

    def fn(*args):
        inputs, params = args[:len(args) - len(names)], args[len(args) - len(names):]
        for n, p in zip(names, params):
            _set(module, n, p)
        return call(module, *inputs)

    return fn, [p for _, p in module.named_parameters()]


def weighted(out):
    """A scalar that weighs every output element differently (so no gradient can hide in a symmetric sum)."""
    w = np.linspace(-1.0, 1.5, out.numel()).reshape(out.shape)
    return (out * Tensor(w)).sum()


def rnn_loss(m, x, *state):
    out, h = m(x, (state if len(state) == 2 else state[0]) if state else None)
    hs = h if isinstance(h, tuple) else (h,)
    return weighted(out) + sum(weighted(s * s) for s in hs)


# ---------------------------------------------------------------------------
# gradients: central differences in float64, and grad of grad
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_recurrent_gradcheck_inputs_states_and_parameters(kind):
    tg.manual_seed(1)
    m = RECURRENT[kind](2, 3, dtype=np.float64)
    state = [t64(1, 2, 3)] * (2 if kind == "LSTM" else 1)
    state = [t64(1, 2, 3) for _ in state]
    fn, params = as_function(m, rnn_loss)
    gradcheck(fn, [t64(4, 2, 2), *state, *params])


def test_two_layer_bidirectional_batch_first_gru_gradcheck():
    tg.manual_seed(2)
    m = nn.GRU(2, 2, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64)
    fn, params = as_function(m, rnn_loss)
    gradcheck(fn, [t64(2, 3, 2), t64(4, 2, 2), *params])


def test_lstm_with_projections_gradcheck():
    tg.manual_seed(11)
    m = nn.LSTM(2, 3, proj_size=2, dtype=np.float64)
    assert [n for n, _ in m.named_parameters()][-1] == "weight_hr_l0" and m.weight_hh_l0.shape == (12, 2)
    fn, params = as_function(m, rnn_loss)
    gradcheck(fn, [t64(3, 2, 2), t64(1, 2, 2), t64(1, 2, 3), *params])


def test_rnn_relu_without_bias_gradcheck():
    tg.manual_seed(3)
    m = nn.RNN(3, 2, nonlinearity="relu", bias=False, dtype=np.float64)
    fn, params = as_function(m, rnn_loss)
    assert len(params) == 2
    gradcheck(fn, [t64(3, 3), *params])  # unbatched (L, H_in)


def grad_of(f):
    """The concatenated gradient of the scalar f with respect to every input, itself differentiable."""
    def g(*xs):
        return Tensor.cat([t.reshape(-1) for t in grad(f(*xs), list(xs), create_graph=True)])
    return g


def test_lstm_grad_of_grad():
    tg.manual_seed(4)
    m = nn.LSTM(2, 2, dtype=np.float64)
    fn, params = as_function(m, rnn_loss)
    w_ih = params[0]
    gradcheck(grad_of(lambda x, w: fn(x, w, *params[1:])), [t64(3, 1, 2), w_ih])


def sdpa_loss(q, k, v, mask=None, **kw):
    return weighted(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw))


@pytest.mark.parametrize("case", ["plain", "bool_mask", "float_mask", "causal", "scale"])
def test_scaled_dot_product_attention_gradcheck(case):
    q, k, v = t64(2, 3, 4), t64(2, 5, 4), t64(2, 5, 3)
    mask = {"bool_mask": Tensor(RNG.random((3, 5)) > 0.4) | Tensor(np.eye(3, 5, dtype=bool)),
            "float_mask": t64(2, 3, 5, requires_grad=True)}.get(case)
    kw = {"causal": {"is_causal": True}, "scale": {"scale": 0.7}}.get(case, {})
    if case == "causal":
        k, v = t64(2, 3, 4), t64(2, 3, 3)
    gradcheck(lambda *a: sdpa_loss(*a, **kw), [q, k, v] + ([mask] if mask is not None else []))


def test_scaled_dot_product_attention_grad_of_grad():
    mask = Tensor(np.tril(np.ones((3, 3), bool)))
    gradcheck(grad_of(lambda q, k, v: sdpa_loss(q, k, v, mask)), [t64(1, 3, 2), t64(1, 3, 2), t64(1, 3, 2)])


def mha_loss(m, q, k, v, **kw):
    out, w = m(q, k, v, **kw)
    return weighted(out) + (0 if w is None else weighted(w))


@pytest.mark.parametrize("case", ["self_masks", "kdim_vdim_batch_first", "per_head_weights"])
def test_multihead_attention_gradcheck(case):
    tg.manual_seed(5)
    if case == "kdim_vdim_batch_first":
        m = nn.MultiheadAttention(4, 2, kdim=3, vdim=2, batch_first=True, dtype=np.float64)
        inputs, kw = [t64(2, 3, 4), t64(2, 2, 3), t64(2, 2, 2)], {}
    else:
        m = nn.MultiheadAttention(4, 2, dtype=np.float64)
        x = t64(3, 2, 4)
        pad = Tensor(np.array([[False, False, True], [False, False, False]]))
        causal = Tensor(np.triu(np.ones((3, 3), bool), 1))
        inputs = [x, x, x]
        kw = ({"key_padding_mask": pad, "attn_mask": causal} if case == "self_masks"
              else {"average_attn_weights": False, "attn_mask": t64(4, 3, 3, requires_grad=False)})
    fn, params = as_function(m, lambda mod, *a: mha_loss(mod, *a, **kw))
    gradcheck(fn, [*inputs, *params])


def test_multihead_attention_extra_keys_gradcheck():
    tg.manual_seed(12)
    m = nn.MultiheadAttention(2, 1, add_bias_kv=True, add_zero_attn=True, dtype=np.float64)
    assert m.bias_k.shape == (1, 1, 2) and [n for n, _ in m.named_parameters()][2:4] == ["bias_k", "bias_v"]
    pad = Tensor(np.array([[False, True]]))
    fn, params = as_function(m, lambda mod, x: mha_loss(mod, x, x, x, key_padding_mask=pad))
    gradcheck(fn, [t64(2, 1, 2), *params])


def test_multihead_attention_grad_of_grad():
    tg.manual_seed(6)
    m = nn.MultiheadAttention(2, 1, dtype=np.float64)
    gradcheck(grad_of(lambda x: mha_loss(m, x, x, x)), [t64(2, 1, 2)])


# ---------------------------------------------------------------------------
# PyTorch's defaults, shapes, errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_recurrent_parameters_names_shapes_and_init(kind):
    tg.manual_seed(7)
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
    m = RECURRENT[kind](5, 8, num_layers=2, bidirectional=True)
    names = [n for n, _ in m.named_parameters()]
    per = ["weight_ih_l{}{}", "weight_hh_l{}{}", "bias_ih_l{}{}", "bias_hh_l{}{}"]
    assert names == [p.format(layer, sfx) for layer in (0, 1) for sfx in ("", "_reverse") for p in per]
    assert m.weight_ih_l0.shape == (gates * 8, 5) and m.weight_ih_l1_reverse.shape == (gates * 8, 16)
    assert m.weight_hh_l1.shape == (gates * 8, 8) and m.bias_hh_l0_reverse.shape == (gates * 8,)
    bound = 1 / math.sqrt(8)
    values = np.concatenate([p.data.ravel() for p in m.parameters()])
    assert values.dtype == np.float32 and np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.9 * bound and abs(values.mean()) < 0.05  # spread over U(-b, b)
    tg.manual_seed(7)
    again = RECURRENT[kind](5, 8, num_layers=2, bidirectional=True)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(m.parameters(), again.parameters()))


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_recurrent_output_shapes(kind):
    m = RECURRENT[kind](3, 4, num_layers=2, bidirectional=True, batch_first=True)
    out, h = m(tg.randn(5, 7, 3))  # (N, L, H_in)
    assert out.shape == (5, 7, 8)
    for s in (h if kind == "LSTM" else (h,)):
        assert s.shape == (4, 5, 4)  # h_n is never batch-first
    out, h = m(tg.randn(7, 3))  # unbatched
    assert out.shape == (7, 8) and (h[0] if kind == "LSTM" else h).shape == (4, 4)


def test_recurrent_final_state_is_the_last_step_of_each_direction():
    m = nn.GRU(2, 3, bidirectional=True, dtype=np.float64)
    out, h = m(t64(5, 2, 2))
    np.testing.assert_array_equal(h.data[0], out.data[-1, :, :3])  # forward direction ends at t = L-1
    np.testing.assert_array_equal(h.data[1], out.data[0, :, 3:])   # reverse direction ends at t = 0


def test_dropout_between_layers_only_in_training():
    tg.manual_seed(8)
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    plain = nn.LSTM(3, 4, num_layers=2)
    plain.load_state_dict(m.state_dict())
    x = tg.randn(6, 2, 3)
    ref = plain(x)[0].data
    assert not np.allclose(m(x)[0].data, ref)  # training: the first layer's output is dropped out
    m.eval()
    np.testing.assert_array_equal(m(x)[0].data, ref)
    one = nn.LSTM(3, 4, num_layers=2, dropout=1.0)  # p = 1: the second layer sees only zeros
    one.load_state_dict(m.state_dict())
    out, (h, c) = one(x)
    second = nn.LSTM(4, 4)
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.state_dict().items() if "_l1" in k})
    np.testing.assert_allclose(out.data, second(tg.zeros(6, 2, 4))[0].data, rtol=1e-6)


def test_multihead_attention_parameters_and_init():
    tg.manual_seed(9)
    m = nn.MultiheadAttention(8, 2)
    assert list(m.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert m.in_proj_weight.shape == (24, 8) and m.out_proj.weight.shape == (8, 8)
    assert np.abs(m.in_proj_weight.data).max() <= math.sqrt(6 / (24 + 8))  # Xavier uniform on (3E, E)
    assert not m.in_proj_bias.data.any() and not m.out_proj.bias.data.any()
    assert np.abs(m.out_proj.weight.data).max() <= 1 / math.sqrt(8)
    k = nn.MultiheadAttention(8, 2, kdim=3, vdim=5, bias=False)
    assert [n for n, _ in k.named_parameters()] == ["q_proj_weight", "k_proj_weight", "v_proj_weight",
                                                    "out_proj.weight"]
    assert k.in_proj_weight is None and k.v_proj_weight.shape == (8, 5)


def test_multihead_attention_shapes():
    m = nn.MultiheadAttention(8, 2, batch_first=True)
    x = tg.randn(3, 5, 8)
    out, w = m(x, x, x)
    assert out.shape == (3, 5, 8) and w.shape == (3, 5, 5)
    np.testing.assert_allclose(w.data.sum(-1), 1, rtol=1e-5)
    out, w = m(x, x, x, average_attn_weights=False)
    assert w.shape == (3, 2, 5, 5)
    out, w = m(x[0], x[0], x[0])  # unbatched
    assert out.shape == (5, 8) and w.shape == (5, 5)
    assert m(x, x, x, need_weights=False)[1] is None


def test_key_padding_mask_hides_the_padded_keys():
    m = nn.MultiheadAttention(4, 2)
    x = tg.randn(4, 2, 4)
    pad = Tensor(np.array([[False, False, True, True], [False] * 4]))
    out, w = m(x, x, x, key_padding_mask=pad)
    assert not w.data[0, :, 2:].any() and w.data[1, :, 2:].all()
    # changing what sits at a padded position changes nothing for that sequence
    y = x.detach().clone()
    y[2:, 0] = 100.0
    out2, _ = m(y, y, y, key_padding_mask=pad)
    np.testing.assert_allclose(out2.data[:2, 0], out.data[:2, 0], rtol=1e-5, atol=1e-6)


def test_causal_attention_ignores_the_future():
    q = t64(1, 4, 3, requires_grad=False)
    out = F.scaled_dot_product_attention(q, q, q, is_causal=True).data
    later = q.data.copy()
    later[0, 3] = 50.0
    out2 = F.scaled_dot_product_attention(Tensor(later), Tensor(later), Tensor(later), is_causal=True).data
    np.testing.assert_array_equal(out2[0, :3], out[0, :3])
    np.testing.assert_allclose(out[0, 0], q.data[0, 0])  # the first query sees only itself


def test_attention_dropout_is_random_and_training_only():
    tg.manual_seed(10)
    q = tg.randn(2, 6, 4)
    a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5).data
    b = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5).data
    assert not np.allclose(a, b)
    m = nn.MultiheadAttention(4, 1, dropout=0.5)
    m.eval()
    x = tg.randn(3, 1, 4)
    np.testing.assert_array_equal(m(x, x, x)[0].data, m(x, x, x)[0].data)


@pytest.mark.parametrize("make, match", [
    (lambda: nn.LSTM(3, 4, proj_size=4), "proj_size"),
    (lambda: nn.GRU(3, 4, proj_size=2), "proj_size"),
    (lambda: nn.LSTM(3, 4, proj_size=2)(tg.randn(5, 2, 3), (tg.zeros(1, 2, 4), tg.zeros(1, 2, 4))), "h_0"),
    (lambda: nn.RNN(3, 4, nonlinearity="gelu"), "nonlinearity"),
    (lambda: nn.GRU(3, 4, dropout=1.5), "dropout"),
    (lambda: nn.GRU(3, 0), "hidden_size"),
    (lambda: nn.MultiheadAttention(8, 3), "divisible"),
    (lambda: nn.LSTM(3, 4)(tg.randn(5, 2, 2)), "input_size"),
    (lambda: nn.GRU(3, 4)(tg.randn(5, 2, 3), tg.randn(1, 3, 4)), "hx"),
    (lambda: nn.GRU(3, 4)(tg.randn(5, 3), tg.randn(1, 3, 4)), "2-D"),
    (lambda: nn.LSTM(3, 4)(tg.randn(5, 2, 3), tg.randn(1, 2, 4)), "tuple"),
    (lambda: F.scaled_dot_product_attention(tg.randn(4, 2, 3), tg.randn(3, 2, 3), tg.randn(3, 2, 3), enable_gqa=True),
     "enable_gqa"),
    (lambda: F.scaled_dot_product_attention(tg.randn(2, 3), tg.randn(2, 3), tg.randn(2, 3),
                                            attn_mask=tg.ones(2, 2), is_causal=True), "is_causal"),
    (lambda: F.scaled_dot_product_attention(tg.randn(2, 3), tg.randn(4, 2), tg.randn(4, 2)), "don't fit"),
    (lambda: nn.MultiheadAttention(4, 2)(tg.randn(3, 1, 4), tg.randn(3, 1, 4), tg.randn(3, 1, 4), is_causal=True),
     "is_causal"),
    (lambda: nn.MultiheadAttention(4, 2)(tg.randn(3, 1, 4), tg.randn(3, 1, 4), tg.randn(3, 1, 4),
                                         key_padding_mask=tg.zeros(3, 1).bool()), "key_padding_mask"),
    (lambda: nn.MultiheadAttention(4, 2)(tg.randn(3, 1, 4), tg.randn(3, 1, 4), tg.randn(3, 1, 4),
                                         attn_mask=tg.zeros(2, 3).bool()), "attn_mask"),
])
def test_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError, RuntimeError, NotImplementedError), match=match):
        make()


# ---------------------------------------------------------------------------
# tinygrad_mnist.compile: a recorded step replays exactly
# ---------------------------------------------------------------------------


class SeqNet(nn.Module):
    def __init__(self):
        self.emb = nn.Embedding(7, 4)
        self.lstm = nn.LSTM(4, 6, num_layers=2, dropout=0.3, batch_first=True)
        self.gru = nn.GRU(6, 6, bidirectional=True, batch_first=True)
        self.rnn = nn.RNN(12, 8, batch_first=True, nonlinearity="relu")
        self.attn = nn.MultiheadAttention(8, 2, dropout=0.2, batch_first=True)
        self.out = nn.Linear(8, 7)

    def forward(self, idx, pad):
        x, _ = self.lstm(self.emb(idx))
        x, _ = self.gru(x)
        x, _ = self.rnn(x)
        causal = tg.ones(x.shape[1], x.shape[1]).triu(1).bool()
        a, _ = self.attn(x, x, x, key_padding_mask=pad, attn_mask=causal)
        return self.out(a + F.scaled_dot_product_attention(a, a, a, is_causal=True, dropout_p=0.1))


def _seq_run():
    tg.manual_seed(0)
    model = SeqNet()
    opt = tg.optim.Adam(model.parameters(), lr=1e-2)

    def step(idx, pad, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(idx, pad).reshape(-1, 7), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    return model, step


def test_compiled_training_step_equals_eager():
    eager_model, eager = _seq_run()
    compiled_model, step = _seq_run()
    compiled = tg.compile(step)
    rng_e, rng_c = np.random.default_rng(1), np.random.default_rng(1)  # dropout draws, one generator per run
    data = np.random.default_rng(2)
    saved = engine._rng
    try:
        for i in range(6):
            idx, y = tg.tensor(data.integers(0, 7, (3, 5))), tg.tensor(data.integers(0, 7, (3, 5)))
            pad = tg.tensor(data.random((3, 5)) < 0.2) & tg.tensor(np.arange(5) > 0)  # key 0 always visible
            engine._rng = rng_e
            le = eager(idx, pad, y)
            engine._rng = rng_c
            lc = compiled(idx, pad, y)
            assert le.data.tobytes() == lc.data.tobytes(), f"step {i}: loss {le.item()} != {lc.item()}"
        for a, b in zip(eager_model.parameters(), compiled_model.parameters()):
            assert a.data.tobytes() == b.data.tobytes()
    finally:
        engine._rng = saved
    assert compiled.replays >= 3


# ---------------------------------------------------------------------------
# against PyTorch, weights copied: values and every gradient
# ---------------------------------------------------------------------------

CONFIGS = [{}, {"num_layers": 2, "batch_first": True, "bidirectional": True}, {"bias": False},
           {"num_layers": 3, "nonlinearity": "relu"}, {"num_layers": 2, "bidirectional": True, "proj_size": 2}]


def _copy_weights(ours, theirs):
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: Tensor(v.detach().numpy().copy()) for k, v in theirs.state_dict().items()})


def _compare_grads(ours, theirs, inputs, t_inputs):
    for a, b in zip(inputs, t_inputs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-9, atol=1e-12)
    for (n, p), (n2, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert n == n2
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("kind", sorted(RECURRENT))
@pytest.mark.parametrize("config", range(len(CONFIGS)))
@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent_matches_pytorch(kind, config, with_state):
    torch = pytest.importorskip("torch")
    kw = dict(CONFIGS[config])
    if "nonlinearity" in kw and kind != "RNN":
        kw.pop("nonlinearity")
    if "proj_size" in kw and kind != "LSTM":
        kw.pop("proj_size")
    theirs = getattr(torch.nn, kind)(3, 4, **kw).double()
    ours = RECURRENT[kind](3, 4, **kw, dtype=np.float64)
    _copy_weights(ours, theirs)
    D = 2 if kw.get("bidirectional") else 1
    layers = kw.get("num_layers", 1)
    x = RNG.standard_normal((2, 5, 3) if kw.get("batch_first") else (5, 2, 3))
    states = [RNG.standard_normal((D * layers, 2, size)) for size in
              ([kw.get("proj_size", 4), 4] if kind == "LSTM" else [4])]
    if not with_state:
        states = []
    ins = [Tensor(a, requires_grad=True) for a in [x, *states]]
    t_ins = [torch.tensor(a, requires_grad=True) for a in [x, *states]]

    def run(m, xs):
        hx = None if len(xs) == 1 else (tuple(xs[1:]) if kind == "LSTM" else xs[1])
        out, h = m(xs[0], hx)
        hs = h if isinstance(h, tuple) else (h,)
        return out, hs

    out, hs = run(ours, ins)
    t_out, t_hs = run(theirs, t_ins)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for h, th in zip(hs, t_hs):
        np.testing.assert_allclose(h.data, th.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = RNG.standard_normal(out.shape)
    (out * Tensor(w)).sum().__add__(sum((h * h).sum() for h in hs)).backward()
    ((t_out * torch.tensor(w)).sum() + sum((h * h).sum() for h in t_hs)).backward()
    _compare_grads(ours, theirs, ins, t_ins)


MHA_CASES = {
    "plain": ({}, {}),
    "per_head": ({}, {"average_attn_weights": False}),
    "no_weights": ({}, {"need_weights": False}),
    "batch_first": ({"batch_first": True}, {}),
    "no_bias": ({"bias": False}, {}),
    "kdim_vdim": ({"kdim": 3, "vdim": 6}, {}),
    "padding": ({}, {"key_padding_mask": "bool_pad"}),
    "causal_bool": ({}, {"attn_mask": "bool_causal"}),
    "both_bool": ({}, {"attn_mask": "bool_causal", "key_padding_mask": "bool_pad"}),
    "float_masks": ({}, {"attn_mask": "float_2d", "key_padding_mask": "float_pad"}),
    "per_head_mask": ({}, {"attn_mask": "float_3d"}),
    "is_causal_hint": ({}, {"attn_mask": "bool_causal", "is_causal": True, "need_weights": False}),
    "unbatched": ({}, {"key_padding_mask": "bool_pad_1d"}),
    "bias_kv": ({"add_bias_kv": True}, {"attn_mask": "bool_causal", "key_padding_mask": "bool_pad"}),
    "zero_attn": ({"add_zero_attn": True}, {"attn_mask": "float_3d", "average_attn_weights": False}),
    "bias_kv_zero_attn": ({"add_bias_kv": True, "add_zero_attn": True, "batch_first": True}, {}),
}


@pytest.mark.parametrize("case", sorted(MHA_CASES))
def test_multihead_attention_matches_pytorch(case):
    torch = pytest.importorskip("torch")
    kw, fkw = MHA_CASES[case]
    theirs = torch.nn.MultiheadAttention(8, 2, **kw).double()
    ours = nn.MultiheadAttention(8, 2, **kw, dtype=np.float64)
    _copy_weights(ours, theirs)
    L, S, N = 4, (4 if fkw.get("is_causal") else 5), 2
    kdim, vdim = kw.get("kdim", 8), kw.get("vdim", 8)
    shapes = [(L, 8), (S, kdim), (S, vdim)]
    if case != "unbatched":
        shapes = [(N, a, b) if kw.get("batch_first") else (a, N, b) for a, b in shapes]
    pad = np.zeros((N, S), bool)
    pad[0, 3:] = True
    masks = {"bool_pad": pad, "bool_pad_1d": pad[0], "bool_causal": np.triu(np.ones((L, S), bool), 1),
             "float_2d": RNG.standard_normal((L, S)), "float_pad": RNG.standard_normal((N, S)),
             "float_3d": RNG.standard_normal((N * 2, L, S))}
    xs = [RNG.standard_normal(s) for s in shapes]
    ins, t_ins = [Tensor(a, requires_grad=True) for a in xs], [torch.tensor(a, requires_grad=True) for a in xs]
    ours_kw = {k: (Tensor(masks[v]) if isinstance(v, str) else v) for k, v in fkw.items()}
    theirs_kw = {k: (torch.tensor(masks[v]) if isinstance(v, str) else v) for k, v in fkw.items()}
    out, w = ours(*ins, **ours_kw)
    t_out, t_w = theirs(*t_ins, **theirs_kw)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert (w is None) == (t_w is None)
    loss = (out * out).sum() + (0 if w is None else (w * Tensor(np.arange(w.numel()).reshape(w.shape))).sum())
    t_loss = (t_out * t_out).sum()
    if t_w is not None:
        np.testing.assert_allclose(w.data, t_w.detach().numpy(), rtol=1e-10, atol=1e-12)
        t_loss = t_loss + (t_w * torch.arange(t_w.numel()).reshape(t_w.shape)).sum()
    loss.backward()
    t_loss.backward()
    _compare_grads(ours, theirs, ins, t_ins)


@pytest.mark.parametrize("case", ["plain", "bool_mask", "float_mask", "causal", "scale", "4d", "gqa"])
def test_scaled_dot_product_attention_matches_pytorch(case):
    torch = pytest.importorskip("torch")
    from tinygrad_mnist.gradcheck import compare_with_reference, torch_reference

    shapes = [(2, 3, 4), (2, 5, 4), (2, 5, 6)] if case != "4d" else [(2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 6)]
    if case == "causal":
        shapes = [(2, 4, 4), (2, 4, 4), (2, 4, 6)]
    if case == "gqa":  # 6 query heads share 2 key/value heads
        shapes = [(2, 6, 3, 4), (2, 2, 5, 4), (2, 2, 5, 6)]
    ins = [Tensor(RNG.standard_normal(s), requires_grad=True) for s in shapes]
    mask = {"bool_mask": (RNG.random((3, 5)) > 0.4) | np.eye(3, 5, dtype=bool),
            "float_mask": RNG.standard_normal((2, 3, 5))}.get(case)
    kw = {"causal": {"is_causal": True}, "scale": {"scale": 0.3}, "gqa": {"enable_gqa": True}}.get(case, {})
    if mask is not None:
        ins.append(Tensor(mask, requires_grad=mask.dtype != bool))
    compare_with_reference(lambda *a: F.scaled_dot_product_attention(*a, **kw),
                           torch_reference(lambda *a: torch.nn.functional.scaled_dot_product_attention(*a, **kw)),
                           ins)


def test_lstm_hessian_vector_product_matches_pytorch():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.LSTM(2, 3).double()
    ours = nn.LSTM(2, 3, dtype=np.float64)
    _copy_weights(ours, theirs)
    x, v = RNG.standard_normal((4, 2, 2)), RNG.standard_normal((4, 2, 2))
    xo, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (g,) = grad((ours(xo)[0] ** 3).sum(), xo, create_graph=True)
    (hv,) = grad((g * Tensor(v)).sum(), xo)
    (gt,) = torch.autograd.grad((theirs(xt)[0] ** 3).sum(), xt, create_graph=True)
    (hvt,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), xt)
    np.testing.assert_allclose(hv.data, hvt.numpy(), rtol=1e-9, atol=1e-12)


CELLS = {"RNNCell": nn.RNNCell, "GRUCell": nn.GRUCell, "LSTMCell": nn.LSTMCell}


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_pytorch(kind, batched, bias):
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn, kind)(3, 4, bias=bias).double()
    ours = CELLS[kind](3, 4, bias=bias, dtype=np.float64)
    _copy_weights(ours, theirs)
    x = RNG.standard_normal((2, 3) if batched else (3,))
    states = [RNG.standard_normal((2, 4) if batched else (4,)) for _ in range(2 if kind == "LSTMCell" else 1)]
    ins = [Tensor(a, requires_grad=True) for a in [x, *states]]
    t_ins = [torch.tensor(a, requires_grad=True) for a in [x, *states]]
    results = []
    for m, xs in ((ours, ins), (theirs, t_ins)):
        hx = tuple(xs[1:]) if kind == "LSTMCell" else xs[1]
        out = m(xs[0], hx)
        results.append(out if isinstance(out, tuple) else (out,))
        sum((o * o).sum() for o in results[-1]).backward()
    for a, b in zip(*results):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-10, atol=1e-12)
    _compare_grads(ours, theirs, ins, t_ins)
    zero = ours(Tensor(x))  # no state: zeros, as PyTorch
    np.testing.assert_allclose((zero[0] if kind == "LSTMCell" else zero).data,
                               (theirs(torch.tensor(x))[0] if kind == "LSTMCell" else theirs(torch.tensor(x)))
                               .detach().numpy(), rtol=1e-10, atol=1e-12)


def test_lstm_cell_gradcheck_and_equals_one_lstm_step():
    tg.manual_seed(13)
    cell = nn.LSTMCell(2, 3, dtype=np.float64)
    fn, params = as_function(cell, lambda m, x, h, c: sum(weighted(s) for s in m(x, (h, c))))
    gradcheck(fn, [t64(2, 2), t64(2, 3), t64(2, 3), *params])
    lstm = nn.LSTM(2, 3, dtype=np.float64)
    lstm.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x, h, c = t64(1, 2, 2), t64(1, 2, 3), t64(1, 2, 3)
    out, (h1, c1) = lstm(x, (h, c))
    h2, c2 = cell(x[0], (h[0], c[0]))
    np.testing.assert_allclose(h1.data[0], h2.data, rtol=1e-12)
    np.testing.assert_allclose(c1.data[0], c2.data, rtol=1e-12)
