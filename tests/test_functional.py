"""Tests of tinygrad_mnist.nn.functional and the loss modules: every function gradchecked in float64 and
compared with torch.nn.functional (values and input gradients), plus the arguments that must raise."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import HAVE_TORCH, away, check_op, requires_torch, uniform

import tinygrad_mnist.nn.functional as F
from tinygrad_mnist import Tensor, nn

if HAVE_TORCH:
    import torch
    import torch.nn.functional as TF

LABELS = np.array([0, 3, 1, 1, 2])
LABELS_IGN = np.array([0, -100, 1, 1, 2])
W4 = np.array([0.5, 1.0, 2.0, 0.25])
LABELS_2D = np.array([[0, 3, 1], [2, 2, 0]])
RUN_MEAN, RUN_VAR = np.array([0.1, -0.2, 0.3]), np.array([0.5, 1.5, 2.0])
EMB_IDX = np.array([[0, 1, 5], [1, 2, 2]])


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def probs(rng, shape):
    p = rng.uniform(0.1, 1.0, shape)
    return p / p.sum(1, keepdims=True)


CASES = {
    # activations
    "relu": ([(3, 4)], F.relu, lambda a: TF.relu(a), away(0.0)),
    "leaky_relu": ([(3, 4)], lambda a: F.leaky_relu(a, 0.2), lambda a: TF.leaky_relu(a, 0.2), away(0.0)),
    "sigmoid": ([(3, 4)], F.sigmoid, lambda a: TF.sigmoid(a), None),
    "tanh": ([(3, 4)], F.tanh, lambda a: TF.tanh(a), None),
    "gelu": ([(3, 5)], F.gelu, lambda a: TF.gelu(a), uniform(-4, 4)),
    "gelu_tanh": ([(3, 5)], lambda a: F.gelu(a, approximate="tanh"), lambda a: TF.gelu(a, approximate="tanh"),
                  uniform(-4, 4)),
    "softmax_dim0": ([(3, 4)], lambda a: F.softmax(a, dim=0), lambda a: TF.softmax(a, dim=0), None),
    "log_softmax_dim1": ([(3, 4)], lambda a: F.log_softmax(a, dim=1), lambda a: TF.log_softmax(a, dim=1), None),
    "log_softmax_3d": ([(2, 3, 4)], lambda a: F.log_softmax(a, -2), lambda a: TF.log_softmax(a, -2), None),
    "silu": ([(3, 4)], F.silu, lambda a: TF.silu(a), None),
    "elu": ([(3, 4)], lambda a: F.elu(a, 0.7), lambda a: TF.elu(a, 0.7), away(0.0)),
    "softplus": ([(3, 4)], lambda a: F.softplus(a, beta=2.0, threshold=3.0),
                 lambda a: TF.softplus(a, beta=2.0, threshold=3.0), away(1.5, low=-4, high=4)),
    "layer_norm": ([(2, 3, 4), (3, 4), (3, 4)], lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
                   lambda x, w, b: TF.layer_norm(x, (3, 4), w, b), None),
    "batch_norm_train": ([(4, 3, 2, 2), (3,), (3,)], lambda x, w, b: F.batch_norm(x, None, None, w, b, True),
                         lambda x, w, b: TF.batch_norm(x, None, None, w, b, True), None),
    "batch_norm_eval": ([(4, 3), (3,), (3,)],
                        lambda x, w, b: F.batch_norm(x, RUN_MEAN, RUN_VAR, w, b, False),
                        lambda x, w, b: TF.batch_norm(x, _t(RUN_MEAN).to(x.dtype), _t(RUN_VAR).to(x.dtype), w, b,
                                                      False), None),
    "embedding": ([(6, 3)], lambda w: F.embedding(EMB_IDX, w), lambda w: TF.embedding(_t(EMB_IDX), w), None),
    # the padding row's gradient is zero by definition (not the numeric derivative): torch comparison only
    "embedding_padding": ([(6, 3)], lambda w: F.embedding(EMB_IDX, w, padding_idx=1),
                          lambda w: TF.embedding(_t(EMB_IDX), w, padding_idx=1), None),
    # layers as functions
    "linear": ([(4, 3), (5, 3), (5,)], F.linear, lambda x, w, b: TF.linear(x, w, b), None),
    "linear_1d_nobias": ([(3,), (5, 3)], F.linear, lambda x, w: TF.linear(x, w), None),
    "linear_3d": ([(2, 4, 3), (5, 3)], F.linear, lambda x, w: TF.linear(x, w), None),
    "conv2d": ([(2, 3, 6, 5), (4, 3, 3, 2), (4,)], lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1),
               lambda x, w, b: TF.conv2d(x, w, b, stride=(2, 1), padding=1), None),
    "conv2d_same_even": ([(1, 2, 5, 6), (3, 2, 2, 4)], lambda x, w: F.conv2d(x, w, padding="same"),
                         lambda x, w: TF.conv2d(x, w, padding="same"), None),
    "conv2d_valid_unbatched": ([(2, 5, 5), (3, 2, 3, 3)], lambda x, w: F.conv2d(x, w, padding="valid"),
                               lambda x, w: TF.conv2d(x, w, padding="valid"), None),
    "avg_pool2d": ([(2, 3, 6, 6)], lambda a: F.avg_pool2d(a, 3, stride=2, padding=1),
                   lambda a: TF.avg_pool2d(a, 3, stride=2, padding=1), None),
    "max_pool2d_unbatched": ([(3, 4, 4)], lambda a: F.max_pool2d(a, 2), lambda a: TF.max_pool2d(a, 2), None),
    "pad_constant": ([(2, 3, 4)], lambda a: F.pad(a, (1, 2, 0, 1), value=0.5),
                     lambda a: TF.pad(a, (1, 2, 0, 1), value=0.5), None),
    "pad_crop": ([(2, 3, 4)], lambda a: F.pad(a, (-1, 2, 1, -1)), lambda a: TF.pad(a, (-1, 2, 1, -1)), None),
    "pad_reflect": ([(1, 2, 4, 5)], lambda a: F.pad(a, (2, 1, 1, 3), mode="reflect"),
                    lambda a: TF.pad(a, (2, 1, 1, 3), mode="reflect"), None),
    "pad_replicate": ([(1, 2, 4, 5)], lambda a: F.pad(a, (2, 1, 1, 3), mode="replicate"),
                      lambda a: TF.pad(a, (2, 1, 1, 3), mode="replicate"), None),
    "pad_circular": ([(1, 2, 4, 5)], lambda a: F.pad(a, (2, 1, 1, 3), mode="circular"),
                     lambda a: TF.pad(a, (2, 1, 1, 3), mode="circular"), None),
    # losses
    "cross_entropy": ([(5, 4)], lambda a: F.cross_entropy(a, LABELS), lambda a: TF.cross_entropy(a, _t(LABELS)),
                      None),
    "cross_entropy_weight_ignore": (
        [(5, 4)], lambda a: F.cross_entropy(a, LABELS_IGN, weight=W4),
        lambda a: TF.cross_entropy(a, _t(LABELS_IGN), weight=_t(W4).to(a.dtype)), None),
    "cross_entropy_smoothing": (
        [(5, 4)], lambda a: F.cross_entropy(a, LABELS_IGN, label_smoothing=0.2, reduction="sum"),
        lambda a: TF.cross_entropy(a, _t(LABELS_IGN), label_smoothing=0.2, reduction="sum"), None),
    "cross_entropy_smoothing_weight": (
        [(5, 4)], lambda a: F.cross_entropy(a, LABELS_IGN, weight=W4, label_smoothing=0.1),
        lambda a: TF.cross_entropy(a, _t(LABELS_IGN), weight=_t(W4).to(a.dtype), label_smoothing=0.1), None),
    "cross_entropy_probs": ([(5, 4), (5, 4)], lambda a, p: F.cross_entropy(a, p),
                            lambda a, p: TF.cross_entropy(a, p), [uniform(), probs]),
    "cross_entropy_probs_smoothing_none": (
        [(5, 4), (5, 4)], lambda a, p: F.cross_entropy(a, p, label_smoothing=0.3, reduction="none"),
        lambda a, p: TF.cross_entropy(a, p, label_smoothing=0.3, reduction="none"), [uniform(), probs]),
    "cross_entropy_kdim": ([(2, 4, 3)], lambda a: F.cross_entropy(a, LABELS_2D, reduction="none"),
                           lambda a: TF.cross_entropy(a, _t(LABELS_2D), reduction="none"), None),
    "cross_entropy_kdim_mean_ignore": ([(2, 4, 3)], lambda a: F.cross_entropy(a, LABELS_2D, ignore_index=3),
                                       lambda a: TF.cross_entropy(a, _t(LABELS_2D), ignore_index=3), None),
    "cross_entropy_unbatched": ([(4,)], lambda a: F.cross_entropy(a, np.array(2)),
                                lambda a: TF.cross_entropy(a, torch.tensor(2)), None),
    "nll_loss": ([(5, 4)], lambda a: F.nll_loss(a, LABELS_IGN, weight=W4, reduction="none"),
                 lambda a: TF.nll_loss(a, _t(LABELS_IGN), weight=_t(W4).to(a.dtype), reduction="none"), None),
    "nll_loss_mean_weight": ([(5, 4)], lambda a: F.nll_loss(a, LABELS, weight=W4),
                             lambda a: TF.nll_loss(a, _t(LABELS), weight=_t(W4).to(a.dtype)), None),
    "mse_loss": ([(3, 4), (3, 4)], F.mse_loss, lambda a, b: TF.mse_loss(a, b), None),
    "mse_loss_sum": ([(3, 4), (3, 4)], lambda a, b: F.mse_loss(a, b, reduction="sum"),
                     lambda a, b: TF.mse_loss(a, b, reduction="sum"), None),
    "l1_loss_none": ([(3, 4), (3, 4)], lambda a, b: F.l1_loss(a, b, reduction="none"),
                     lambda a, b: TF.l1_loss(a, b, reduction="none"), [uniform(), uniform(3, 4)]),
    "bce": ([(3, 4), (3, 4)], F.binary_cross_entropy, lambda a, b: TF.binary_cross_entropy(a, b),
            [uniform(0.05, 0.95), uniform(0, 1)]),
    "bce_weight_sum": ([(3, 4), (3, 4)], lambda a, b: F.binary_cross_entropy(a, b, W4, reduction="sum"),
                       lambda a, b: TF.binary_cross_entropy(a, b, _t(W4).to(a.dtype), reduction="sum"),
                       [uniform(0.05, 0.95), uniform(0, 1)]),
    "bce_logits": ([(3, 4), (3, 4)], F.binary_cross_entropy_with_logits,
                   lambda a, b: TF.binary_cross_entropy_with_logits(a, b), [uniform(-5, 5), uniform(0, 1)]),
    "bce_logits_pos_weight": (
        [(3, 4), (3, 4)], lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=W4[:1], pos_weight=W4),
        lambda a, b: TF.binary_cross_entropy_with_logits(a, b, weight=_t(W4[:1]).to(a.dtype),
                                                          pos_weight=_t(W4).to(a.dtype)),
        [uniform(-5, 5), uniform(0, 1)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_gradcheck_and_torch(name):
    shapes, fn, tfn, init = CASES[name]
    check_op(shapes, fn, tfn, init, numeric=name != "embedding_padding")


# ---------------------------------------------------------------------------
# loss modules, one_hot, errors
# ---------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("make", [
    lambda m: m.CrossEntropyLoss(), lambda m: m.CrossEntropyLoss(reduction="sum", label_smoothing=0.1),
    lambda m: m.NLLLoss(ignore_index=1), lambda m: m.MSELoss(), lambda m: m.L1Loss(reduction="none"),
    lambda m: m.BCELoss(), lambda m: m.BCEWithLogitsLoss(reduction="sum"),
], ids=["ce", "ce_sum_smooth", "nll_ignore", "mse", "l1_none", "bce", "bce_logits"])
def test_loss_modules_match_torch(make):
    ours, theirs = make(nn), make(torch.nn)
    assert type(ours).__name__ == type(theirs).__name__
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.95, (5, 4)).astype(np.float32)
    name = type(ours).__name__
    target = LABELS if name in ("CrossEntropyLoss", "NLLLoss") else rng.uniform(0, 1, (5, 4)).astype(np.float32)
    xo, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lo, lt = ours(xo, Tensor(target)), theirs(xt, torch.from_numpy(target))
    np.testing.assert_allclose(lo.data, lt.detach().numpy(), rtol=1e-5, atol=1e-6)
    lo.sum().backward()
    lt.sum().backward()
    np.testing.assert_allclose(xo.grad.data, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_one_hot_is_int64_like_torch():
    out = F.one_hot(Tensor(np.array([[0, 2], [1, 0]])), 4)
    assert out.dtype == np.int64 and out.shape == (2, 2, 4) and not out.requires_grad
    np.testing.assert_array_equal(out.data[0, 1], [0, 0, 1, 0])
    assert F.one_hot(np.array([3, 1])).shape == (2, 4)  # num_classes=-1: max + 1
    with pytest.raises(IndexError, match="label 4 is out of range for 4 classes"):
        F.one_hot(np.array([4]), 4)
    with pytest.raises(IndexError, match="label -1"):
        F.one_hot(np.array([-1]), 3)
    with pytest.raises(TypeError, match="integer"):
        F.one_hot(np.array([1.0]), 3)


def test_dropout_functional_defaults_to_training():
    x = Tensor(np.ones((100, 100), np.float32))
    y = F.dropout(x, 0.5)  # training=True by default in F, as in PyTorch
    assert set(np.unique(y.data)) == {0.0, 2.0}
    assert F.dropout(x, 0.5, training=False) is x


@pytest.mark.parametrize("call,error,message", [
    (lambda x: F.conv2d(x, Tensor(np.ones((2, 3, 1, 1), np.float32)), dilation=2), NotImplementedError,
     "dilation=2 is not supported"),
    (lambda x: F.conv2d(x, Tensor(np.ones((2, 1, 1, 1), np.float32)), groups=3), NotImplementedError, "groups=3"),
    (lambda x: F.max_pool2d(x, 2, ceil_mode=True), NotImplementedError, "ceil_mode=True"),
    (lambda x: F.max_pool2d(x, 2, return_indices=True), NotImplementedError, "return_indices"),
    (lambda x: F.avg_pool2d(x, 2, count_include_pad=False), NotImplementedError, "count_include_pad"),
    (lambda x: F.conv2d(x, Tensor(np.ones((2, 3, 3, 3), np.float32)), stride=2, padding="same"), ValueError,
     "strided"),
    (lambda x: F.pad(x, (1, 2, 3)), ValueError, "even length"),
    (lambda x: F.pad(x, (1, 1), mode="wrap"), ValueError, "mode must be"),
    (lambda x: F.cross_entropy(x.reshape(2, 48), np.array([0, 1]), reduction="avg"), ValueError, "reduction"),
    (lambda x: F.cross_entropy(x.reshape(2, 48), np.array([0, 1]), size_average=True), NotImplementedError,
     "deprecated"),
    (lambda x: F.nll_loss(x.reshape(2, 48), np.array([0, 48])), IndexError, "label 48 is out of range"),
    (lambda x: F.binary_cross_entropy(x, x * 0), ValueError, "between 0 and 1"),
    (lambda x: F.binary_cross_entropy_with_logits(x, np.zeros(3, np.float32)), ValueError, "does not match"),
    (lambda x: F.gelu(x, approximate="fast"), ValueError, "approximate"),
    (lambda x: nn.Conv2d(3, 3, 3, groups=3), NotImplementedError, "groups"),
    (lambda x: nn.Linear(2, 2).to("cuda"), RuntimeError, "runs on the CPU"),
])
def test_unsupported_arguments_raise_instead_of_differing(call, error, message):
    x = Tensor(np.random.default_rng(0).uniform(-2, 2, (2, 3, 4, 4)).astype(np.float32))
    with pytest.raises(error, match=message):
        call(x)


def test_nll_loss_all_ignored_is_nan_like_torch():
    x = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    assert np.isnan(F.nll_loss(x, np.array([-100, -100])).item())


def test_mse_loss_broadcast_warns_like_torch():
    with pytest.warns(UserWarning, match="broadcast"):
        F.mse_loss(Tensor(np.zeros((3, 1), np.float32)), np.zeros(3, np.float32))


def test_softmax_without_dim_warns_and_uses_torchs_rule():
    x = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.warns(UserWarning, match="implicit dimension"):
        np.testing.assert_allclose(F.softmax(x).data, F.softmax(x, dim=1).data)


def test_bce_clamps_log_at_minus_100_like_torch():
    p = Tensor(np.array([0.0, 1.0], np.float32), requires_grad=True)
    loss = F.binary_cross_entropy(p, np.array([1.0, 0.0], np.float32), reduction="none")
    np.testing.assert_array_equal(loss.data, [100.0, 100.0])


@pytest.mark.parametrize("fn", [F.gelu, lambda a: F.gelu(a, approximate="tanh"), F.silu, F.elu, F.softplus],
                         ids=["gelu", "gelu_tanh", "silu", "elu", "softplus"])
def test_second_derivatives(fn):
    import tinygrad_mnist as tm
    from tinygrad_mnist.gradcheck import gradcheck

    x = Tensor(np.linspace(-3, 3, 6), requires_grad=True)  # 0, elu's kink, is not among the points
    assert gradcheck(lambda a: tm.autograd.grad(fn(a).sum(), a, create_graph=True)[0], [x])


@requires_torch
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (8, 3)), ("BatchNorm1d", (8, 3, 5)),
                                       ("BatchNorm2d", (4, 3, 5, 5))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_modules_track_running_stats_like_torch(cls, shape, momentum):
    ours, theirs = getattr(nn, cls)(3, momentum=momentum), getattr(torch.nn, cls)(3, momentum=momentum)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        xo, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yo, yt = ours(xo), theirs(xt)
        np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
        (yo * yo).sum().backward()
        (yt * yt).sum().backward()
        np.testing.assert_allclose(xo.grad.data, xt.grad.numpy(), rtol=1e-3, atol=1e-4)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k].data, v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


@requires_torch
def test_layer_norm_and_embedding_modules_like_torch():
    ln, tln = nn.LayerNorm(4), torch.nn.LayerNorm(4)
    assert list(ln.state_dict()) == list(tln.state_dict())
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(ln(Tensor(x)).data, tln(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    emb = nn.Embedding(10, 3, padding_idx=0)
    assert (emb.weight.data[0] == 0).all() and emb(Tensor(np.array([[1, 0]]))).shape == (1, 2, 3)
    with pytest.raises(IndexError, match="index 10 is out of range for 10 rows"):
        emb(np.array([10]))


@pytest.mark.parametrize("call,name", [
    (lambda x: F.mse_loss(x, np.zeros((4, 3), np.float32)), "mse_loss"),
    (lambda x: F.l1_loss(x, np.zeros((4, 3), np.float32)), "l1_loss"),
    (lambda x: F.cross_entropy(x, np.array([0, 1, 2, 1])), "cross_entropy"),
    (lambda x: F.cross_entropy(x, np.array([0, 1, 2, -100])), "cross_entropy"),
    (lambda x: F.nll_loss(x, np.array([0, 1, 2, 1])), "nll_loss"),
    (lambda x: F.binary_cross_entropy_with_logits(x, np.zeros((4, 3), np.float32)), "binary_cross_entropy_with_logits"),
    (lambda x: F.gelu(x), "gelu"),
    (lambda x: F.layer_norm(x, (3,)), "layer_norm"),
    (lambda x: F.pad(x, (1, 1)), "pad"),
], ids=["mse", "l1", "ce_fused", "ce_general", "nll", "bce_logits", "gelu", "layer_norm", "pad"])
def test_functional_calls_are_recorded_once_for_viz(call, name):
    x = Tensor(np.random.default_rng(0).uniform(0.1, 0.9, (4, 3)).astype(np.float32), requires_grad=True)
    calls = [c.name for c in call(x).grad_fn.calls]
    assert calls[-1] == name and calls.count(name) == 1, calls  # outermost last, and not twice
