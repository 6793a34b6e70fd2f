"""Tests of tinygrad_mnist.nn and the model zoo: parameter discovery, modes, state dicts, layers vs PyTorch."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import tinygrad_mnist as tm
from tinygrad_mnist import losses, nn, optim
from tinygrad_mnist.engine import Tensor
from tinygrad_mnist.models import CNN, MODELS

try:
    import torch
except ImportError:  # PyTorch is only a reference
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (reference only) is not installed")


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# parameter discovery
# ---------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(np.ones(4, np.float32))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 3)
        self.layers = [nn.Linear(3, 3), nn.Linear(3, 3, bias=False)]
        self.pair = (Block(), nn.ReLU())
        self.heads = {"a": nn.Linear(3, 1)}
        self.w = Tensor(np.zeros(2, np.float32), requires_grad=True)  # a plain leaf tensor counts too
        self.buffer = Tensor(np.zeros(2, np.float32))  # no grad: not a parameter
        self.sizes = [2, 3]  # non-tensors are ignored
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(self.fc1(x).relu())


def test_named_parameters_dotted_names_in_pytorchs_order():
    """A module's own parameters first, then its submodules' (and containers') in definition order."""
    names = [n for n, _ in Net().named_parameters()]
    assert names == ["w", "fc1.weight", "fc1.bias", "layers.0.weight", "layers.0.bias", "layers.1.weight",
                     "pair.0.scale", "pair.0.fc.weight", "pair.0.fc.bias", "heads.a.weight", "heads.a.bias",
                     "fc2.weight", "fc2.bias"]


@needs_torch
def test_parameter_order_matches_torch():
    class Ours(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            self.scale = nn.Parameter(np.ones(2, np.float32))
            self.blocks = nn.ModuleList([nn.Linear(2, 2)])
            self.offset = nn.Parameter(np.zeros(2, np.float32))
            self.register_buffer("mask", Tensor(np.ones(2, np.float32)))

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)
            self.scale = torch.nn.Parameter(torch.ones(2))
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2)])
            self.offset = torch.nn.Parameter(torch.zeros(2))
            self.register_buffer("mask", torch.ones(2))

    assert [n for n, _ in Ours().named_parameters()] == [n for n, _ in Theirs().named_parameters()]
    assert list(Ours().state_dict()) == list(Theirs().state_dict())


def test_parameters_are_leaves_requiring_grad_and_match_named():
    net = Net()
    params = list(net.parameters())  # an iterator, as in PyTorch
    assert [id(p) for p in params] == [id(p) for _, p in net.named_parameters()]
    assert all(p.requires_grad and p.is_leaf for p in params)
    assert net.num_parameters() == sum(p.numel() for p in params) == 6 + 3 + 12 + 9 + 12 + 4 + 4 + 3 + 1 + 2 + 6 + 2


def test_prefix_and_copies():
    net = Net()
    assert [n for n, _ in net.named_parameters(prefix="net")][:2] == ["net.w", "net.fc1.weight"]
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert list(clone.state_dict()) == list(net.state_dict())
        assert isinstance(clone.fc1.weight, nn.Parameter) and clone.fc1.weight.requires_grad
        assert not np.shares_memory(clone.fc1.weight.data, net.fc1.weight.data)


def test_shared_parameters_and_modules_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            self.a = nn.Linear(3, 3)
            self.b = self.a  # the same module twice
            self.extra = [self.a.weight]  # and its weight again

    t = Tied()
    assert [n for n, _ in t.named_parameters()] == ["a.weight", "a.bias"]
    assert [n for n, _ in t.named_modules()] == ["", "a"]


def test_cycles_do_not_recurse_forever():
    a, b = nn.Sequential(nn.Linear(1, 1)), nn.Sequential()
    a.other, b.other = b, a
    assert [n for n, _ in a.named_parameters()] == ["0.weight", "0.bias"]


def test_modules_children_and_names():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["fc1", "layers.0", "layers.1", "pair.0", "pair.1", "heads.a",
                                                    "fc2"]
    names = [n for n, _ in net.named_modules()]
    assert names[:4] == ["", "fc1", "layers.0", "layers.1"] and "pair.0.fc" in names
    assert next(net.modules()) is net and len(list(net.modules())) == len(names)
    assert [n for n, _ in net.named_modules(prefix="net")][:2] == ["net", "net.fc1"]
    assert next(net.children()) is net.fc1


def test_parameter_is_a_tensor_subclass():
    p = nn.Parameter([1.0, 2.0])
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf and p.dtype == np.float32
    (p * p).sum().backward()
    np.testing.assert_array_equal(p.grad.data, [2.0, 4.0])
    assert type(p * 2) is Tensor  # results of ops are plain tensors
    assert "Parameter containing" in repr(p)
    arr = np.zeros(3, np.float32)
    assert nn.Parameter(arr).data is arr  # shares memory, as torch.nn.Parameter


def test_train_eval_propagate_into_containers():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert not net.pair[0].fc.training and not net.heads["a"].training
    net.train()
    assert all(m.training for m in net.modules())


def test_dropout_follows_training_mode():
    tm.manual_seed(0)
    drop = nn.Dropout(0.5)
    x = Tensor(np.ones((200, 50), np.float32))
    y = drop(x).data
    assert set(np.unique(y)) == {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


def test_zero_grad_clears_all():
    net = Net()
    net(Tensor(rand(4, 2))).sum().backward()
    assert net.fc1.weight.grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_call_runs_forward_and_base_forward_is_abstract():
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        nn.Module()(1)


# ---------------------------------------------------------------------------
# state dicts
# ---------------------------------------------------------------------------


def test_state_dict_is_an_ordered_copy():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == [n for n, _ in net.named_parameters()]
    assert all(type(v) is Tensor and not v.requires_grad for v in sd.values())  # detached tensors, as PyTorch
    sd["fc1.weight"].data[...] = 42
    assert not (net.fc1.weight.data == 42).any()


def test_state_dict_round_trip():
    tm.manual_seed(0)
    a = Net()
    tm.manual_seed(1)
    b = Net()
    x = Tensor(rand(5, 2))
    assert not np.allclose(a(x).data, b(x).data)
    assert b.load_state_dict(a.state_dict()) == ([], [])
    np.testing.assert_array_equal(a(x).data, b(x).data)
    # loaded arrays are copies: training b leaves a's state dict alone
    sd = a.state_dict()
    b.load_state_dict(sd)
    b.fc1.weight.data += 1
    assert not np.shares_memory(b.fc1.weight.data, sd["fc1.weight"])
    # Tensors are accepted as values
    b.load_state_dict({k: Tensor(v) for k, v in sd.items()})
    np.testing.assert_array_equal(b.fc1.weight.data, sd["fc1.weight"])


def test_load_state_dict_shape_mismatch_names_key_and_shapes_and_changes_nothing():
    net = nn.MLP([4, 3, 2])
    before = net.state_dict()
    sd = nn.MLP([4, 5, 2]).state_dict()
    with pytest.raises(ValueError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert "0.weight: expected shape (3, 4), found (5, 4)" in msg
    assert "2.weight: expected shape (2, 3), found (2, 5)" in msg
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_dtype_mismatch():
    net = nn.Linear(2, 2)
    sd = {k: v.astype(np.float64) for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match="weight: expected dtype float32, found float64"):
        net.load_state_dict(sd)


def test_load_state_dict_missing_and_unexpected_keys():
    net = nn.MLP([2, 3, 1])
    sd = net.state_dict()
    del sd["2.bias"]
    sd["9.weight"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError) as e:
        net.load_state_dict(sd)
    assert "missing keys: 2.bias" in str(e.value) and "unexpected keys: 9.weight" in str(e.value)
    sd["0.weight"] = np.full((3, 2), 7, np.float32)
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["2.bias"] and result.unexpected_keys == ["9.weight"]
    assert (net[0].weight.data == 7).all()


# ---------------------------------------------------------------------------
# repr
# ---------------------------------------------------------------------------


def test_repr_is_a_tree():
    model = nn.Sequential(nn.Linear(784, 30), nn.Sigmoid(), nn.Sequential(nn.Dropout(0.25), nn.Flatten()))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=784, out_features=30, bias=True)\n"
        "  (1): Sigmoid()\n"
        "  (2): Sequential(\n"
        "    (0): Dropout(p=0.25)\n"
        "    (1): Flatten(start_dim=1, end_dim=-1)\n"
        "  )\n"
        ")")
    assert repr(nn.Conv2d(1, 8, 3, padding=1, bias=False)) == (
        "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)")
    assert "(conv1): Conv2d(1, 32" in repr(CNN())


# ---------------------------------------------------------------------------
# initializers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("init", nn.INITS)
def test_linear_init_float32_and_reproducible(init):
    tm.manual_seed(3)
    a = nn.Linear(50, 40, init=init)
    tm.manual_seed(3)
    b = nn.Linear(50, 40, init=init)
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data)


def test_init_distributions():
    tm.manual_seed(0)
    lin = nn.Linear(400, 300)  # PyTorch's default: weight and bias U(+-1 / sqrt(fan_in))
    for p in (lin.weight.data, lin.bias.data):
        assert np.abs(p).max() <= 1 / 20 and np.abs(p).max() > 0.95 / 20
    assert abs(lin.weight.data.std() - 1 / 20 / np.sqrt(3)) < 0.02 / 20
    conv = nn.Conv2d(8, 16, 3)  # fan_in = 8 * 3 * 3
    assert np.abs(conv.weight.data).max() <= 1 / np.sqrt(72) and np.abs(conv.bias.data).max() <= 1 / np.sqrt(72)
    w = nn.Linear(400, 300, init="kaiming").weight.data  # He uniform: U(+-sqrt(6 / fan_in))
    bound = np.sqrt(6 / 400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - np.sqrt(2 / 400)) < 0.02 * np.sqrt(2 / 400)
    assert (nn.Linear(400, 300, init="kaiming").bias.data == 0).all()
    w = nn.Linear(400, 300, init="xavier").weight.data
    assert abs(w.std() - np.sqrt(2 / 700)) < 0.02 * np.sqrt(2 / 700)
    lin = nn.Linear(400, 300, init="normal")
    assert abs(lin.weight.data.std() - 1) < 0.02 and abs(lin.bias.data.std() - 1) < 0.2
    conv = nn.Conv2d(8, 16, 3, init="kaiming")
    assert np.abs(conv.weight.data).max() <= np.sqrt(6 / 72)
    t = Tensor(np.zeros((300, 200), np.float32))
    assert nn.init.kaiming_normal_(t) is t and abs(t.data.std() - np.sqrt(2 / 200)) < 0.03 * np.sqrt(2 / 200)
    nn.init.xavier_normal_(t, gain=2.0)
    assert abs(t.data.std() - 2 * np.sqrt(2 / 500)) < 0.03 * 2 * np.sqrt(2 / 500)
    with pytest.raises(ValueError, match="init must be one of"):
        nn.Linear(2, 2, init="orthogonal")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.kaiming_uniform_(Tensor(np.zeros(3, np.float32)))


def test_nielsen_init_reproduces_network_py_exactly():
    """network.py draws every bias vector randn(y, 1), then every weight matrix randn(y, x)."""
    seed, sizes = 1234, [784, 30, 10]
    tm.manual_seed(seed)
    model = MODELS["nielsen"]()
    g = np.random.default_rng(seed)
    biases = [g.standard_normal((y, 1)) for y in sizes[1:]]
    weights = [g.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:])]
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for lin, b, w in zip(linears, biases, weights):
        assert lin.weight.dtype == lin.bias.dtype == np.float32
        np.testing.assert_array_equal(lin.weight.data, w.astype(np.float32))
        np.testing.assert_array_equal(lin.bias.data, b.ravel().astype(np.float32))


# ---------------------------------------------------------------------------
# layers: shapes and agreement with PyTorch
# ---------------------------------------------------------------------------


def test_sequential_container():
    seq = nn.Sequential(nn.Linear(4, 3), "relu", lambda x: x * 2, nn.Linear(3, 2))
    assert len(seq) == 4 and isinstance(seq[1], nn.ReLU) and isinstance(seq[2], nn.Lambda)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Lambda", "Linear"]
    x = Tensor(rand(5, 4))
    np.testing.assert_allclose(seq(x).data, seq[3](seq[0](x).relu() * 2).data)
    seq.append(nn.Sigmoid())
    assert len(seq) == 5 and seq(x).shape == (5, 2)
    assert nn.Sequential([nn.ReLU(), nn.Tanh()])[1].__class__ is nn.Tanh
    with pytest.raises(ValueError, match="unknown activation"):
        nn.Sequential("swish")


def test_mlp_structure():
    m = nn.MLP([4, 8, 8, 3], activation="tanh", output_activation="sigmoid", dropout=0.1)
    assert [type(l).__name__ for l in m] == ["Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear",
                                             "Sigmoid"]
    assert m.sizes == [4, 8, 8, 3]
    out = m(Tensor(rand(6, 4)))
    assert out.shape == (6, 3) and out.dtype == np.float32 and ((out.data > 0) & (out.data < 1)).all()
    assert isinstance(nn.MLP([2, 2], activation=nn.ReLU)[0], nn.Linear)
    custom = nn.MLP([2, 3, 1], activation=lambda x: x.leaky_relu(0.1))
    assert isinstance(custom[1], nn.Lambda)
    with pytest.raises(ValueError, match="at least an input and an output"):
        nn.MLP([3])


def test_pool_flatten_activation_modules():
    x = Tensor(rand(2, 3, 6, 6))
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 3, 3)
    assert nn.AvgPool2d(3, stride=1, padding=1)(x).shape == (2, 3, 6, 6)
    assert nn.Flatten()(x).shape == (2, 108)
    assert nn.Flatten(start_dim=2)(x).shape == (2, 3, 36)
    np.testing.assert_allclose(nn.ReLU()(x).data, np.maximum(x.data, 0))
    np.testing.assert_allclose(nn.Tanh()(x).data, np.tanh(x.data), rtol=1e-6)
    np.testing.assert_allclose(nn.Sigmoid()(x).data, 1 / (1 + np.exp(-x.data)), rtol=1e-6)
    assert nn.Identity()(x) is x


def _grads(module):
    return {n: p.grad.data for n, p in module.named_parameters()}


def _copy_to_torch(ours, theirs):
    with torch.no_grad():
        for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert name == tname, (name, tname)
            tp.copy_(torch.from_numpy(p.data.copy()))


def _check_against_torch(ours, theirs, x, atol=1e-5):
    _copy_to_torch(ours, theirs)
    xt = torch.tensor(x, requires_grad=True)
    xo = Tensor(x, requires_grad=True)
    out, tout = ours(xo), theirs(xt)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-5, atol=atol)
    g = rand(*out.shape, seed=7)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xo.grad.data, xt.grad.numpy(), rtol=1e-4, atol=atol)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(_grads(ours)[name], p.grad.numpy(), rtol=1e-4, atol=atol, err_msg=name)


@needs_torch
@pytest.mark.parametrize("bias", [True, False])
def test_linear_vs_torch(bias):
    lin = nn.Linear(7, 5, bias=bias)
    assert lin.weight.shape == (5, 7)
    _check_against_torch(lin, torch.nn.Linear(7, 5, bias=bias), rand(4, 7))


@needs_torch
@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2), (2, 0))])
def test_conv2d_vs_torch(stride, padding):
    conv = nn.Conv2d(3, 4, (3, 2), stride=stride, padding=padding)
    ref = torch.nn.Conv2d(3, 4, (3, 2), stride=stride, padding=padding)
    _check_against_torch(conv, ref, rand(2, 3, 7, 6))


@needs_torch
def test_mlp_vs_torch_sequential():
    ours = nn.MLP([6, 8, 5, 3], activation="tanh", output_activation="sigmoid")
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5), torch.nn.Tanh(),
                                 torch.nn.Linear(5, 3), torch.nn.Sigmoid())
    assert list(ours.state_dict()) == list(theirs.state_dict())  # same names, so weights can be exchanged
    _check_against_torch(ours, theirs, rand(4, 6))


@needs_torch
def test_pooling_vs_torch():
    x = rand(2, 3, 8, 8)
    for ours, theirs in [(nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
                         (nn.MaxPool2d(3, stride=2, padding=1), torch.nn.MaxPool2d(3, stride=2, padding=1)),
                         (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
                         (nn.AvgPool2d(3, stride=1, padding=1), torch.nn.AvgPool2d(3, stride=1, padding=1))]:
        _check_against_torch(ours, theirs, x)


@needs_torch
def test_cnn_vs_torch():
    """The zoo's CNN against the same architecture written with torch.nn (dropout off)."""
    ours = CNN(channels=(4, 6), hidden=16).eval()

    class TorchCNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = torch.nn.Conv2d(1, 4, 5), torch.nn.Conv2d(4, 6, 5)
            self.fc1, self.fc2 = torch.nn.Linear(96, 16), torch.nn.Linear(16, 10)

        def forward(self, x):
            x = x.reshape(-1, 1, 28, 28)
            x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))

    _check_against_torch(ours, TorchCNN(), rand(3, 784), atol=1e-4)


# ---------------------------------------------------------------------------
# model zoo
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_models_map_images_to_10_scores(name):
    tm.manual_seed(0)
    model = MODELS[name]()
    x = Tensor(np.random.default_rng(0).random((3, 784), dtype=np.float32))
    out = model(x)
    assert out.shape == (3, 10) and out.dtype == np.float32
    out.cross_entropy(np.array([1, 2, 3])).backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())


def test_zoo_sizes():
    assert MODELS["nielsen"]().num_parameters() == 784 * 30 + 30 + 30 * 10 + 10
    assert MODELS["mlp_100_200"]().num_parameters() == 784 * 100 + 100 + 100 * 200 + 200 + 200 * 10 + 10
    assert [type(m).__name__ for m in MODELS["nielsen"]()] == ["Linear", "Sigmoid", "Linear", "Sigmoid"]


# ---------------------------------------------------------------------------
# training sanity
# ---------------------------------------------------------------------------


def test_2_3_1_sigmoid_network_learns_xor():
    tm.manual_seed(0)
    x = Tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32))
    y = np.array([[0], [1], [1], [0]], np.float32)
    net = nn.MLP([2, 3, 1], activation="sigmoid", output_activation="sigmoid", init="normal")
    opt = optim.SGD(net.parameters(), lr=5.0)
    history = []
    for _ in range(2000):
        opt.zero_grad()
        loss = losses.mse(net(x), y)
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.01 * history[0]
    assert all(b <= a + 1e-6 for a, b in zip(history[::100], history[100::100]))  # going down
    with tm.no_grad():
        pred = net(x).data
    np.testing.assert_array_equal(pred > 0.5, y > 0.5)
    assert all(p.dtype == np.float32 for p in net.parameters())


# ---------------------------------------------------------------------------
# PyTorch's containers and Module methods
# ---------------------------------------------------------------------------


def test_module_list_and_dict_name_parameters_like_torch():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 3)])
            self.heads = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Identity()})

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.heads["a"](x)

    net = Net()
    assert list(net.state_dict()) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                                      "heads.a.weight", "heads.a.bias"]
    assert net(Tensor(rand(4, 2))).shape == (4, 1)
    net.blocks.append(nn.Linear(3, 3))
    net.blocks.insert(0, nn.ReLU())
    assert len(net.blocks) == 4 and isinstance(net.blocks[0], nn.ReLU) and isinstance(net.blocks[-1], nn.Linear)
    assert isinstance(net.blocks[1:], nn.ModuleList) and len(net.blocks[1:]) == 3
    del net.blocks[0]
    assert [n for n, _ in net.blocks.named_children()] == ["0", "1", "2"]
    assert "a" in net.heads and list(net.heads.keys()) == ["a", "b"] and len(net.heads) == 2
    net.heads["c"] = nn.Linear(1, 1)
    assert list(net.heads) == ["a", "b", "c"] and net.heads.pop("c") is not None
    with pytest.raises(NotImplementedError, match="no forward"):
        net.blocks(Tensor(rand(1, 2)))
    if torch is not None:
        class TorchNet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 3), torch.nn.Linear(3, 3)])
                self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 1), "b": torch.nn.Identity()})
        assert list(Net().state_dict()) == list(TorchNet().state_dict())


def test_sequential_ordered_dict_indexing_and_editing():
    from collections import OrderedDict
    seq = nn.Sequential(OrderedDict([("fc1", nn.Linear(4, 3)), ("act", nn.ReLU()), ("fc2", nn.Linear(3, 2))]))
    assert list(seq.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert seq.fc1 is seq[0] and seq[-1] is seq.fc2 and len(seq) == 3
    seq[1] = nn.Tanh()
    assert isinstance(seq.act, nn.Tanh)
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    with pytest.raises(AttributeError):
        _ = seq.nope


def test_apply_visits_children_first_then_self():
    seen = []
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]

    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.ones_(m.bias)

    net.apply(init_weights)
    assert (net[0].weight.data == 0).all() and (net[1][1].bias.data == 1).all()


def test_to_dtype_and_device():
    net = nn.Sequential(nn.Linear(3, 2))
    w = net[0].weight
    net(Tensor(rand(2, 3))).sum().backward()
    assert net.to(tm.float64) is net and w.dtype == np.float64 and w.grad.dtype == np.float64
    assert net[0].weight is w  # the same Parameter objects, so an optimizer built earlier keeps working
    assert net.float()[0].bias.dtype == np.float32 and net.double()[0].bias.dtype == np.float64
    assert net.to("cpu") is net and net.cpu() is net and net.to(device="cpu", dtype=tm.float32) is net
    assert w.dtype == np.float32
    with pytest.raises(RuntimeError, match="CPU"):
        net.cuda()
    with pytest.raises(TypeError, match="floating point"):
        net.to(tm.int64)
    assert nn.Linear(2, 2, dtype=tm.float64).weight.dtype == np.float64


def test_requires_grad_freezes_but_keeps_parameters():
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    net[0].requires_grad_(False)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias"]  # frozen ones stay, as in PyTorch
    assert list(net.state_dict()) == names
    opt = optim.SGD(net.parameters(), lr=0.1)  # frozen leaves are allowed in an optimizer
    before = net[0].weight.data.copy()
    net(Tensor(rand(4, 3))).sum().backward()
    assert net[0].weight.grad is None and net[1].weight.grad is not None
    opt.step()
    np.testing.assert_array_equal(net[0].weight.data, before)
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert len(trainable) == 2


def test_zero_grad_set_to_none_false_keeps_zeros():
    lin = nn.Linear(2, 2)
    lin(Tensor(rand(3, 2))).sum().backward()
    lin.zero_grad(set_to_none=False)
    assert (lin.weight.grad.data == 0).all() and lin.weight.grad.shape == (2, 2)
    opt = optim.SGD(lin.parameters(), lr=0.1)
    opt.zero_grad()
    assert lin.weight.grad is None


@needs_torch
def test_default_init_matches_torch_distribution_bounds():
    lin, ref = nn.Linear(50, 7), torch.nn.Linear(50, 7)
    for ours, theirs in ((lin.weight.data, ref.weight.detach().numpy()), (lin.bias.data, ref.bias.detach().numpy())):
        assert np.abs(ours).max() <= 1 / np.sqrt(50) and np.abs(theirs).max() <= 1 / np.sqrt(50)
    conv = nn.Conv2d(2, 4, 3)
    assert np.abs(conv.bias.data).max() <= 1 / np.sqrt(18)


def test_init_functions_match_torch_signatures():
    t = Tensor(np.zeros((64, 32), np.float32))
    assert nn.init.kaiming_uniform_(t, a=np.sqrt(5)) is t
    assert np.abs(t.data).max() <= 1 / np.sqrt(32)
    nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    assert abs(t.data.std() - np.sqrt(2 / 64)) < 0.1 * np.sqrt(2 / 64)
    assert nn.init.calculate_gain("tanh") == 5 / 3 and nn.init.calculate_gain("relu") == np.sqrt(2)
    nn.init.constant_(t, 0.5)
    assert (t.data == 0.5).all()
    nn.init.uniform_(t, -0.1, 0.1)
    assert np.abs(t.data).max() <= 0.1
    arr = np.zeros((3, 3), np.float32)
    nn.init.eye_(nn.Parameter(arr))
    np.testing.assert_array_equal(arr, np.eye(3))  # in place, into the shared array


def test_buffers_are_saved_loaded_and_converted_but_not_trained():
    class Masked(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(3, 2)
            self.register_buffer("mask", Tensor(np.array([1.0, 0.0], np.float32)))
            self.register_buffer("cache", Tensor(np.zeros(2, np.float32)), persistent=False)

        def forward(self, x):
            return self.fc(x) * self.mask

    m = Masked()
    assert [n for n, _ in m.named_parameters()] == ["fc.weight", "fc.bias"]
    assert [n for n, _ in m.named_buffers()] == ["mask", "cache"]
    assert list(m.state_dict()) == ["mask", "fc.weight", "fc.bias"]  # own tensors first, non-persistent left out
    sd = m.state_dict()
    sd["mask"] = Tensor(np.array([0.0, 1.0], np.float32))
    m.load_state_dict(sd)
    np.testing.assert_array_equal(m.mask.data, [0.0, 1.0])
    m.to(tm.float64)
    assert m.mask.dtype == np.float64 and m.cache.dtype == np.float64
    with pytest.raises(TypeError, match="must be a Tensor"):
        m.register_buffer("bad", np.zeros(2))
