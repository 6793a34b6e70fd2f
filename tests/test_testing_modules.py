"""assert_module_matches: right modules pass in train and eval mode; injected bugs (a transposed weight,
a wrong weight-gradient rule, a wrong buffer update, a missing key) are caught and named."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_mnist as tg
from tinygrad_mnist import Function, Tensor, nn
from tinygrad_mnist.nn import functional as F
from tinygrad_mnist.testing import GradcheckError, assert_module_matches

torch = pytest.importorskip("torch", reason="PyTorch is the reference here (pip install -e .[ref])")

X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)


def pair():
    """An MLP with batch norm, ours and PyTorch's, with different initial weights (ours are copied over)."""
    tg.manual_seed(0)
    torch.manual_seed(1)
    ours = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
                                 torch.nn.Linear(5, 3))
    return ours, theirs


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_matching_modules_pass_and_keep_their_grads_alone(mode):
    ours, theirs = pair()
    ours.train(mode == "train")
    assert_module_matches(ours, theirs, X)
    assert theirs.training is (mode == "train")
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_array_equal(p.data, tp.detach().numpy())  # our weights went over
        assert p.grad is None and tp.grad is None  # gradients were returned, not accumulated
    if mode == "train":  # a training forward updates the running statistics on both sides, equally
        assert int(ours[1].num_batches_tracked.data) == 1
        assert not np.allclose(ours[1].running_mean.data, 0)


def test_float64_module_converts_the_torch_module():
    ours, theirs = pair()
    ours.double()
    assert_module_matches(ours, theirs, X)  # float32 inputs are cast to the parameters' dtype
    assert theirs[0].weight.dtype == torch.float64


def test_conv_net_and_a_given_grad_output():
    tg.manual_seed(2)
    ours = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(12, 2))
    x = np.random.default_rng(3).standard_normal((2, 2, 4, 4))
    assert_module_matches(ours, theirs, x, grad_output=np.array([[1.0, -1.0], [0.5, 2.0]]))
    with pytest.raises(ValueError, match=r"grad_output has shape \(2,\), the output has \(2, 2\)"):
        assert_module_matches(ours, theirs, x, grad_output=np.ones(2))


def test_a_loss_module_with_integer_labels():
    labels = np.array([0, 2, 1, 3, 3, 0])
    assert_module_matches(nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), X, labels)
    assert_module_matches(nn.CrossEntropyLoss(label_smoothing=0.1), torch.nn.CrossEntropyLoss(label_smoothing=0.1),
                          X, labels)


def test_frozen_parameters_are_not_compared():
    ours, theirs = pair()
    ours[0].weight.requires_grad_(False)
    assert_module_matches(ours, theirs, X)
    assert not theirs[0].weight.requires_grad


# ---------------------------------------------------------------------------
# injected bugs
# ---------------------------------------------------------------------------


class TransposedLinear(nn.Module):
    """A Linear that multiplies by W instead of W.T: a bug invisible to the shapes when W is square."""

    def __init__(self, n):
        self.weight = nn.Parameter(np.random.default_rng(4).standard_normal((n, n)).astype(np.float32))
        self.bias = nn.Parameter(np.zeros(n, np.float32))

    def forward(self, x):
        return x @ self.weight + self.bias


def test_a_transposed_square_weight_is_caught_at_the_output():
    with pytest.raises(GradcheckError) as info:
        assert_module_matches(TransposedLinear(4), torch.nn.Linear(4, 4), X)
    msg = str(info.value)
    assert msg.startswith("output differs from the PyTorch module at 24 of 24 elements"), msg
    assert "first at index [0, 0]" in msg
    assert info.value.what == "output" and info.value.index == (0, 0)
    assert "PyTorch module:" in info.value.table()


def test_a_transposed_non_square_weight_is_caught_by_the_shapes():
    class Wrong(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(np.zeros((4, 3), np.float32))  # (in, out): PyTorch keeps (out, in)
            self.bias = nn.Parameter(np.zeros(3, np.float32))

        def forward(self, x):
            return x @ self.weight + self.bias

    with pytest.raises(ValueError, match=r"weight: ours has shape \(4, 3\), the torch module \(3, 4\)"):
        assert_module_matches(Wrong(), torch.nn.Linear(4, 3), X)


class LinearWithTransposedWeightGrad(Function):
    """x @ w.T + b with a wrong weight gradient: (g.T @ x).T, the transpose of the right one."""

    def forward(self, x, w, b):
        return x @ w.T + b

    def backward(self, g):
        x, w, b = self.parents
        return g @ w, (g.T @ x).T, g.sum(0)


class BuggyLinear(nn.Linear):
    def forward(self, x):
        return LinearWithTransposedWeightGrad.apply(x, self.weight, self.bias)


def test_a_transposed_weight_gradient_names_the_parameter_and_element():
    tg.manual_seed(5)
    ours = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), BuggyLinear(3, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3))
    with pytest.raises(GradcheckError) as info:
        assert_module_matches(ours, theirs, X)
    msg, e = str(info.value), info.value
    # the output, the input's gradient and layer 0's parameters are right: the first difference is layer 2's weight
    assert msg.startswith("gradient of parameter '2.weight' differs from the PyTorch module"), msg
    assert e.what == "gradient of parameter '2.weight'"
    first = np.argwhere(~np.isclose(e.got, e.want, rtol=1e-4, atol=1e-5 * max(1, np.abs(e.want).max())))[0]
    assert e.index == tuple(first) and e.index[0] != e.index[1]  # an off-diagonal element: the transpose differs
    np.testing.assert_allclose(e.got, e.want.T, rtol=1e-5)  # and the values say what went wrong
    assert f"index {list(e.index)}: ours {e.got[e.index]:.8g}, PyTorch module {e.want[e.index]:.8g}" in msg


class BatchNormWrongMomentum(nn.BatchNorm1d):
    """Updates the running statistics with 1 - momentum: the output in train mode is still right."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        self.num_batches_tracked += 1
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True,
                            1 - self.momentum, self.eps)


def test_a_wrong_buffer_update_is_caught_after_the_forward():
    ours, theirs = pair()
    ours[1] = BatchNormWrongMomentum(5)
    with pytest.raises(GradcheckError) as info:
        assert_module_matches(ours, theirs, X)
    assert str(info.value).startswith("buffer '1.running_mean' after the forward differs from the PyTorch module")
    ours[1].eval()  # the modes are mirrored layer by layer
    assert_module_matches(ours, theirs, X)  # in eval mode nothing is updated: the same module passes
    assert theirs.training and not theirs[1].training


class BatchNormWrongEvalBuffer(nn.BatchNorm1d):
    """Uses the running standard deviation where the running variance belongs in eval mode."""

    def forward(self, x):
        if self.training:
            return super().forward(x)
        return F.batch_norm(x, self.running_mean, self.running_var.sqrt(), self.weight, self.bias, False, 0.1,
                            self.eps)


def test_a_wrongly_used_buffer_is_caught_in_eval_mode():
    ours, theirs = pair()
    ours[1] = BatchNormWrongEvalBuffer(5)
    ours[1].running_var.data[:] = np.array([0.5, 2.0, 4.0, 1.0, 9.0], np.float32)  # copied into torch as well
    assert_module_matches(ours, theirs, X)  # train mode: right
    ours.eval()
    with pytest.raises(GradcheckError, match=r"^output differs from the PyTorch module"):
        assert_module_matches(ours, theirs, X)


def test_missing_and_extra_keys_are_named():
    with pytest.raises(ValueError, match=r"only in the torch module \(Linear\): bias"):
        assert_module_matches(nn.Linear(4, 3, bias=False), torch.nn.Linear(4, 3), X)
    with pytest.raises(ValueError, match=r"only in ours \(Sequential\): 1\.weight, 1\.bias.*"
                                         r"only in the torch module \(Sequential\): 2\.weight, 2\.bias"):
        assert_module_matches(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)),
                              torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)), X)


def test_a_non_tensor_result_is_an_error():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(TypeError, match="both modules must return one tensor; got tuple"):
        assert_module_matches(Pair(), torch.nn.Identity(), X)


def test_inputs_given_as_tensors():
    ours, theirs = pair()
    assert_module_matches(ours, theirs, Tensor(X))
