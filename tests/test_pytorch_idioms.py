"""The same PyTorch-style snippets, run once with `torch` bound to PyTorch and once bound to this engine.

Each snippet is ordinary PyTorch code.  It runs in a namespace holding `torch`, `nn`, `F` (either
`import torch; import torch.nn as nn; import torch.nn.functional as F` or
`import tinygrad_mnist as torch; import tinygrad_mnist.nn as nn; import tinygrad_mnist.nn.functional as F`),
`np`, fixed NumPy inputs (A, B, X, W, Y), a temporary directory `tmp`, and `seeded(model)`, which loads
the same deterministic weights into a model through `model.load_state_dict` (the two libraries'
random generators differ).  The snippet leaves its answer in `result`: tensors (values, dtype and
shape compared), Python numbers, strings, bools, and tuples/lists/dicts of them.  Skipped without PyTorch.
"""

from __future__ import annotations

import importlib
import math
import textwrap

import numpy as np
import pytest

torch_ref = pytest.importorskip("torch")

import tinygrad_mnist  # noqa: E402
from tinygrad_mnist import Tensor  # noqa: E402

RNG = np.random.default_rng(0)
DATA = {
    "A": RNG.standard_normal((3, 4)).astype(np.float32),
    "B": RNG.standard_normal((4, 2)).astype(np.float32),
    "X": RNG.standard_normal((6, 4)).astype(np.float32),
    "W": RNG.standard_normal((4, 3)).astype(np.float32),
    "Y": np.array([0, 2, 1, 1, 0, 2]),
    "IMG": RNG.standard_normal((2, 1, 8, 8)).astype(np.float32),
}

HAS_INPLACE = hasattr(Tensor, "add_") and hasattr(Tensor, "__setitem__")
needs_inplace = pytest.mark.skipif(not HAS_INPLACE, reason="in-place ops and x[i] = v have not landed yet")


def _namespace(lib: str, tmp_path) -> dict:
    if lib == "torch":
        torch, nn, F = (importlib.import_module(m) for m in ("torch", "torch.nn", "torch.nn.functional"))
    else:
        torch = tinygrad_mnist
        nn, F = (importlib.import_module(m) for m in ("tinygrad_mnist.nn", "tinygrad_mnist.nn.functional"))

    def seeded(model, seed=0, scale=0.3):
        rng = np.random.default_rng(seed)
        model.load_state_dict({k: torch.tensor((rng.standard_normal(tuple(v.shape)) * scale).astype(np.float32))
                               for k, v in model.state_dict().items()})
        return model

    tmp = tmp_path / lib
    tmp.mkdir()
    return {"torch": torch, "nn": nn, "F": F, "np": np, "math": math, "tmp": tmp, "seeded": seeded,
            **{k: v.copy() for k, v in DATA.items()}}


def _plain(value):
    """A comparable form: tensors -> ndarrays, torch.Size -> tuple, named tuples -> tuples."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return np.array(value.detach().numpy(), copy=True)
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value) if type(value) in (tuple, list) else tuple(
            _plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.dtype) or type(value).__name__ == "dtype":
        return str(value).replace("torch.", "")  # torch.float32 and np.dtype("float32") compare equal
    return value


def _compare(ours, theirs, where="result"):
    if isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray), f"{where}: expected a tensor, got {type(ours).__name__}"
        assert ours.shape == theirs.shape, f"{where}: shape {ours.shape} != PyTorch's {theirs.shape}"
        assert ours.dtype == theirs.dtype, f"{where}: dtype {ours.dtype} != PyTorch's {theirs.dtype}"
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, err_msg=where)
    elif isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs), f"{where}: {ours!r} != {theirs!r}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _compare(a, b, f"{where}[{i}]")
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), f"{where}: keys {list(ours)} != {list(theirs)}"
        for k in theirs:
            _compare(ours[k], theirs[k], f"{where}[{k!r}]")
    elif isinstance(theirs, float):
        assert type(ours) is float, f"{where}: {type(ours).__name__} where PyTorch gives float"
        assert math.isclose(ours, theirs, rel_tol=1e-5, abs_tol=1e-6) or (math.isnan(ours) and math.isnan(theirs)), \
            f"{where}: {ours} != {theirs}"
    else:
        assert type(ours) is type(theirs) and ours == theirs, f"{where}: {ours!r} != PyTorch's {theirs!r}"


def run_both(code: str, tmp_path):
    """Run `code` with both libraries; returns (ours, theirs) in plain form, or the exceptions raised."""
    outs = []
    for lib in ("torch", "engine"):
        ns = _namespace(lib, tmp_path)
        try:
            exec(textwrap.dedent(code), ns)
        except Exception as e:  # noqa: BLE001 - the comparison decides whether raising was right
            outs.append(e)
            continue
        outs.append(_plain(ns["result"]))
    return outs[1], outs[0]


# ---------------------------------------------------------------------------
# the snippets
# ---------------------------------------------------------------------------

TENSOR = {
    "factories": """
        result = (torch.zeros(3), torch.ones(2, 3), torch.tensor([1., 2.]), torch.tensor([1, 2]), torch.arange(5),
                  torch.arange(0., 1., 0.25), torch.full((2, 2), 7.), torch.eye(3), torch.zeros_like(torch.ones(2)),
                  torch.linspace(0, 1, 5))
    """,
    "tensor_copies_numpy": """
        a = np.zeros(3, np.float32)
        t = torch.tensor(a)
        a[0] = 5
        s = torch.from_numpy(a)
        result = t, s
    """,
    "mean_sum_dim": """
        x = torch.tensor(A)
        result = x.mean(dim=1), x.mean(dim=(0, 1)), x.sum(1, keepdim=True), x.sum(dim=0), x.mean()
    """,
    "size_numel_dim": """
        x = torch.tensor(A)
        result = x.size(0), tuple(x.size()), x.size(-1), tuple(x.shape), x.numel(), x.dim(), x.ndim, len(x)
    """,
    "max_min_dim": """
        x = torch.tensor(A)
        v, i = x.max(1)
        result = v, i, x.max(dim=0).indices, x.min(1).values, x.max(), x.argmax(dim=1), x.max(1)[1]
    """,
    "clamp": """
        x = torch.tensor(A, requires_grad=True)
        y = x.clamp(min=0) + x.clamp(max=0.5) * 2 + x.clamp(-0.5, 0.5) * 3
        y.sum().backward()
        result = y, x.grad
    """,
    "to_dtype": """
        x = torch.tensor(A)
        result = x.to(torch.float64), x.double(), x.float(), x.long(), x.to(torch.float64).dtype, x.to("cpu")
    """,
    "clone_keeps_grad": """
        a = torch.tensor(A, requires_grad=True)
        b = a.clone()
        (b * b).sum().backward()
        result = a.grad, b.requires_grad, b is a
    """,
    "t_and_views": """
        x = torch.tensor(A)
        result = x.t(), x.T, x.t().contiguous(), x.view(-1), x.view(2, 6), x.reshape(4, 3), x.unsqueeze(0).shape,
        result = result[0] + result[1]
    """,
    "shape_ops": """
        x = torch.tensor(A)
        result = (x.unsqueeze(1).squeeze(), x.permute(1, 0), x.transpose(0, 1), x.flatten(), x[None].squeeze(0),
                  torch.cat([x, x], dim=0), torch.stack([x, x], dim=1), x[:, 1:3], x[x > 0])
    """,
    "matmul_and_grad": """
        a = torch.tensor(A, requires_grad=True)
        b = torch.tensor(B, requires_grad=True)
        c = (a @ b).tanh().sum()
        c.backward()
        result = c, a.grad, b.grad, c.item()
    """,
    "where_and_compare": """
        x = torch.tensor(A)
        result = torch.where(x > 0, x, torch.zeros_like(x)), (x > 0).sum().item(), (x > 0).float().mean().item()
    """,
    "top_level_functions": """
        x = torch.tensor(A)
        result = (torch.softmax(x, dim=1), torch.log_softmax(x, dim=0), torch.exp(x), torch.relu(x),
                  torch.sigmoid(x), torch.tanh(x), torch.matmul(x, torch.tensor(B)))
    """,
    "no_grad": """
        w = torch.tensor(A, requires_grad=True)
        with torch.no_grad():
            y = w * 2
        z = w * 2
        result = y.requires_grad, z.requires_grad, torch.is_grad_enabled()
    """,
    "autograd_grad": """
        x = torch.tensor(A, requires_grad=True)
        y = (x ** 3).sum()
        (g,) = torch.autograd.grad(y, x, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), x)
        result = g, h
    """,
    "detach_item_tolist": """
        x = torch.tensor([[1.5, 2.0]], requires_grad=True)
        y = (x * 2).detach()
        result = y.requires_grad, y.sum().item(), y.tolist(), x.detach().numpy().tolist()
    """,
}

INPLACE = {
    "setitem": """
        x = torch.zeros(3)
        x[0] = 1
        x[1:] = torch.tensor([2., 3.])
        m = torch.zeros(2, 3)
        m[:, 1] = 5
        m[m > 1] = 4
        result = x, m
    """,
    "manual_sgd_loop": """
        w = torch.tensor(W, requires_grad=True)
        x = torch.tensor(X)
        for _ in range(3):
            loss = ((x @ w) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                w -= 0.1 * w.grad
                w.grad.zero_()
        result = w, loss
    """,
    "relu_inplace": """
        x = torch.tensor(A, requires_grad=True)
        h = x * 2
        out = F.relu(h, inplace=True)
        m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True))
        seeded(m)
        (out.sum() + m(x).sum()).backward()
        result = out is h, h, x.grad
    """,
    "relu_inplace_on_leaf_requiring_grad_raises": """
        x = torch.tensor(A, requires_grad=True)
        result = F.relu(x, inplace=True)
    """,
    "inplace_on_leaf_requiring_grad_raises": """
        w = torch.tensor(W, requires_grad=True)
        w += 1
        result = w
    """,
}

NN = {
    "sequential_cross_entropy_sgd": """
        model = seeded(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        criterion = nn.CrossEntropyLoss()
        x, y = torch.tensor(X), torch.tensor(Y)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        result = losses, [p for p in model.parameters()], model[0].weight.grad
    """,
    "module_subclass_nll_adam": """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(4, 8)
                self.fc2 = nn.Linear(8, 3)

            def forward(self, x):
                return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)

        model = seeded(Net())
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        x, y = torch.tensor(X), torch.tensor(Y)
        for _ in range(4):
            opt.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            opt.step()
        result = loss, model.fc1.weight, [n for n, _ in model.named_parameters()]
    """,
    "conv_net": """
        class ConvNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
                self.fc = nn.Linear(4 * 4 * 4, 3)

            def forward(self, x):
                x = F.max_pool2d(F.relu(self.conv(x)), 2)
                return self.fc(torch.flatten(x, 1))

        model = seeded(ConvNet())
        out = model(torch.tensor(IMG))
        loss = F.cross_entropy(out, torch.tensor([0, 2]))
        loss.backward()
        result = out, loss, model.conv.weight.grad, model.fc.bias.grad
    """,
    "module_list_and_dict": """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
                self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 1)})

            def forward(self, x):
                for layer in self.layers:
                    x = torch.tanh(layer(x))
                return self.heads["a"](x), self.heads["b"](x)

        model = seeded(Net())
        a, b = model(torch.tensor(X))
        result = a, b, list(model.state_dict().keys()), len(model.layers)
    """,
    "apply_init": """
        def init_weights(m):
            if isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, 0.1)
                nn.init.zeros_(m.bias)

        model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
        model.apply(init_weights)
        result = model(torch.tensor(X))
    """,
    "count_parameters_and_modules": """
        model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 2), nn.Identity()))
        result = (sum(p.numel() for p in model.parameters()), [n for n, _ in model.named_modules()],
                  [n for n, _ in model.named_children()], len(list(model.modules())), len(model))
    """,
    "eval_no_grad_inference": """
        model = seeded(nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5), nn.Linear(3, 2)))
        model.eval()
        with torch.no_grad():
            out = model(torch.tensor(X))
        pred = out.argmax(dim=1)
        result = out, out.requires_grad, pred, model.training, model[1].training
    """,
    "zero_grad_sets_none": """
        model = seeded(nn.Linear(4, 2))
        model(torch.tensor(X)).sum().backward()
        had = model.weight.grad is not None
        model.zero_grad()
        result = had, model.weight.grad is None
    """,
    "freeze_with_requires_grad_": """
        model = seeded(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))
        model[0].requires_grad_(False)
        opt = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=0.5)
        model(torch.tensor(X)).pow(2).mean().backward()
        opt.step()
        result = model[0].weight.grad is None, model[0].weight, model[1].weight, len(list(model.parameters()))
    """,
    "module_to_float64": """
        model = seeded(nn.Linear(4, 2)).to(torch.float64)
        out = model(torch.tensor(X).double())
        result = out, model.weight.dtype
    """,
    "loss_modules": """
        x = torch.tensor(A, requires_grad=True)
        p = torch.sigmoid(x)
        t = torch.tensor((A > 0).astype(np.float32))
        labels = torch.tensor([0, 3, 1])
        losses = [nn.CrossEntropyLoss()(x, labels),
                  nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1)(x, labels),
                  nn.NLLLoss()(F.log_softmax(x, dim=1), labels), nn.MSELoss()(x, t), nn.L1Loss()(x, t),
                  nn.BCELoss()(p, t), nn.BCEWithLogitsLoss()(x, t), F.mse_loss(x, t, reduction="none").sum()]
        sum(losses).backward()
        result = losses, x.grad
    """,
    "functional_misc": """
        x = torch.tensor(A)
        result = (F.one_hot(torch.tensor([0, 2, 1]), 3), F.one_hot(torch.tensor([1, 3])),
                  F.pad(x, (1, 2)), F.pad(x, (0, 0, 1, 1), value=9.), F.dropout(x, 0.5, training=False),
                  F.gelu(x), F.softmax(x, dim=0), F.linear(x, torch.tensor(B).t()),
                  F.avg_pool2d(torch.tensor(IMG), 2), F.max_pool2d(torch.tensor(IMG), 3, stride=2, padding=1))
    """,
    "schedulers": """
        def lrs(make):
            opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
            sched = make(opt)
            out = []
            for _ in range(7):
                opt.step()
                sched.step()
                out.append(sched.get_last_lr()[0])
            return out

        def plateau(**kw):
            opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
            out = []
            for metric in [5, 4, 4.1, 4.2, 4.0, 3.9999, 5, 5, 5, 2, 3, 3, 3, 3]:
                sched.step(metric)
                out.append(opt.param_groups[0]["lr"])
            return out

        S = torch.optim.lr_scheduler
        result = [plateau(patience=1), plateau(mode="max", factor=0.5, patience=0, cooldown=1),
                  plateau(patience=2, threshold=0.5, threshold_mode="abs", min_lr=0.005),
                  lrs(lambda o: S.StepLR(o, step_size=2, gamma=0.5)),
                  lrs(lambda o: S.MultiStepLR(o, milestones=[1, 4], gamma=0.1)),
                  lrs(lambda o: S.ExponentialLR(o, gamma=0.9)),
                  lrs(lambda o: S.CosineAnnealingLR(o, T_max=5, eta_min=0.01)),
                  lrs(lambda o: S.LambdaLR(o, lambda epoch: 1 / (epoch + 1)))]
    """,
    "optimizer_state_dict": """
        model = seeded(nn.Linear(4, 2))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
        model(torch.tensor(X)).sum().backward()
        opt.step()
        sd = opt.state_dict()
        g = sd["param_groups"][0]
        result = (g["lr"], g["betas"], g["params"], sorted(sd["state"].keys()), sorted(sd["state"][0].keys()),
                  sd["state"][0]["exp_avg"])
    """,
    "save_load_state_dict": """
        model = seeded(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(torch.tensor(X)).sum().backward()
        opt.step()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, tmp / "ckpt.pt")
        ckpt = torch.load(tmp / "ckpt.pt")
        model2 = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        model2.load_state_dict(ckpt["model"])
        opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
        opt2.load_state_dict(ckpt["optimizer"])
        for m, o in ((model, opt), (model2, opt2)):
            o.zero_grad()
            m(torch.tensor(X)).sum().backward()
            o.step()
        result = model2(torch.tensor(X)), model(torch.tensor(X)), ckpt["epoch"], list(ckpt["model"])
    """,
    "save_load_tensor": """
        torch.save(torch.tensor(A), tmp / "t.pt")
        torch.save([torch.tensor(A), {"k": torch.arange(3)}], tmp / "l.pt")
        t = torch.load(tmp / "t.pt")
        l = torch.load(tmp / "l.pt")
        result = t, l[0], l[1]["k"]
    """,
    "accuracy_idiom": """
        model = seeded(nn.Linear(4, 3))
        x, y = torch.tensor(X), torch.tensor(Y)
        with torch.no_grad():
            pred = model(x).argmax(dim=1)
        correct = (pred == y).sum().item()
        result = correct, (pred == y).float().mean().item(), pred.eq(y).sum().item()
    """,
}

RAISE_BOTH = {  # both libraries must raise (an error, never a different answer)
    "linear_shape_mismatch": "result = nn.Linear(3, 2)(torch.tensor(A))",
    "cuda_device": "result = nn.Linear(3, 2).to('cuda')",
    "cross_entropy_label_out_of_range": "result = F.cross_entropy(torch.tensor(A), torch.tensor([0, 1, 4]))",
    "backward_after_step": """
        model = nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = model(torch.tensor(X, requires_grad=True)).pow(2).sum()
        loss.backward(retain_graph=True)
        opt.step()
        loss.backward()
        result = 0
    """,
    "load_state_dict_missing_key": """
        m = nn.Linear(3, 2)
        m.load_state_dict({"weight": m.weight.detach()})
        result = 0
    """,
}


def _check(code, tmp_path):
    ours, theirs = run_both(code, tmp_path)
    if isinstance(theirs, Exception):
        pytest.fail(f"the snippet fails in PyTorch itself: {theirs!r}")
    if isinstance(ours, Exception):
        raise ours
    _compare(ours, theirs)


@pytest.mark.parametrize("name", sorted(TENSOR))
def test_tensor_idioms(name, tmp_path):
    _check(TENSOR[name], tmp_path)


@needs_inplace
@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_idioms(name, tmp_path):
    if name.endswith("_raises"):
        ours, theirs = run_both(INPLACE[name], tmp_path)
        assert isinstance(theirs, RuntimeError) and isinstance(ours, RuntimeError), (ours, theirs)
        return
    _check(INPLACE[name], tmp_path)


@pytest.mark.parametrize("name", sorted(NN))
def test_nn_optim_and_save_idioms(name, tmp_path):
    _check(NN[name], tmp_path)


@pytest.mark.parametrize("name", sorted(RAISE_BOTH))
def test_errors_where_pytorch_errors(name, tmp_path):
    ours, theirs = run_both(RAISE_BOTH[name], tmp_path)
    assert isinstance(theirs, Exception), "PyTorch accepts this snippet: it does not belong here"
    assert isinstance(ours, Exception), f"the engine returned {ours!r} where PyTorch raises {theirs!r}"


NN_EXTRA = {
    "clip_grad": """
        model = seeded(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)), scale=2.0)
        (model(torch.tensor(X)) ** 2).sum().backward()
        before = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        after = nn.utils.clip_grad_norm_(model.parameters(), max_norm=100.0)
        nn.utils.clip_grad_value_(model.parameters(), 0.05)
        inf = nn.utils.clip_grad_norm_(model.parameters(), 0.01, norm_type=float("inf"))
        result = before, after, inf, [p.grad for p in model.parameters()]
    """,
    "buffers": """
        class Masked(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)
                self.register_buffer("mask", torch.tensor([1., 0.]))

            def forward(self, x):
                return self.fc(x) * self.mask

        m = seeded(Masked())
        result = m(torch.tensor(X)), list(m.state_dict()), [n for n, _ in m.named_buffers()]
    """,
}


@pytest.mark.parametrize("name", sorted(NN_EXTRA))
def test_nn_utils_and_buffers(name, tmp_path):
    _check(NN_EXTRA[name], tmp_path)
