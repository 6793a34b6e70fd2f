"""The W1-W5 models in PyTorch eager on the CPU: what a user would pick instead of this engine.

Same initial weights (copied from the NumPy arrays), same batches (``torch.from_numpy``, no copy),
float32. Layers are written with the functional ops ``nn.Linear``/``nn.Conv2d`` call internally
(``addmm``, ``F.conv2d``), and the SGD update is done by hand under ``no_grad`` - the same update
the engine benchmark does, without ``torch.optim``'s bookkeeping.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.workloads import ADD, CHAIN_ADD, CHAIN_MUL, CHAIN_OPS, CHAIN_X0, MUL, Workload


class _Model:
    def __init__(self, params: dict[str, np.ndarray], lr: float):
        self.p = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in params.items()}
        self.plist = list(self.p.values())
        self.lr = lr

    def prepare(self, x, y):
        return torch.from_numpy(x), torch.from_numpy(y)

    def _sgd(self):
        with torch.no_grad():
            for p in self.plist:
                p.sub_(p.grad, alpha=self.lr)
        for p in self.plist:
            p.grad = None

    def step(self, x, y):
        loss = self.loss(x, y)
        loss.backward()
        self._sgd()
        return loss

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.p.items()}

    @staticmethod
    def loss_float(loss) -> float:
        return float(loss.item())


class NielsenMLP(_Model):
    def loss(self, x, y):
        p = self.p
        a1 = torch.sigmoid(torch.addmm(p["b0"], x, p["w0"]))
        a2 = torch.sigmoid(torch.addmm(p["b1"], a1, p["w1"]))
        return ((a2 - y) ** 2).sum() * (0.5 / x.shape[0])


class ReluMLP(_Model):
    def __init__(self, params, lr):
        super().__init__(params, lr)
        n = len(self.p) // 2
        self.layers = [(self.p[f"w{i}"], self.p[f"b{i}"]) for i in range(n)]

    def loss(self, x, labels):
        h = x
        for w, b in self.layers[:-1]:
            h = torch.relu(torch.addmm(b, h, w))
        w, b = self.layers[-1]
        return F.cross_entropy(torch.addmm(b, h, w), labels)


class SmallCNN(_Model):
    def loss(self, x, labels):
        p = self.p
        h = F.max_pool2d(torch.relu(F.conv2d(x, p["conv_w"], p["conv_b"])), 2)
        return F.cross_entropy(torch.addmm(p["fc_b"], h.flatten(1), p["fc_w"]), labels)


class DemoCNN:
    """W7: the PyTorch mirror of the demo CNN (benchmarks.epoch) with dropout off, torch.optim.Adam."""

    def __init__(self, params, lr):
        from benchmarks.epoch import _torch_cnn

        self.model = _torch_cnn()
        self.model.drop.p = 0.0
        self.names = [f"{layer}_{kind}" for layer in ("conv1", "conv2", "fc1", "fc2") for kind in "wb"]
        self.plist = list(self.model.parameters())
        with torch.no_grad():
            for p, name in zip(self.plist, self.names):
                p.copy_(torch.from_numpy(params[name]))
        self.opt = torch.optim.Adam(self.plist, lr=lr)

    def prepare(self, x, y):
        return torch.from_numpy(x), torch.from_numpy(y)

    def step(self, x, y):
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss

    def params(self) -> dict[str, np.ndarray]:
        return {n: p.detach().numpy().copy() for n, p in zip(self.names, self.plist)}

    @staticmethod
    def loss_float(loss) -> float:
        return float(loss.item())


class OpChain:
    def __init__(self, params=None, lr=0.0):
        self.x0 = torch.tensor([CHAIN_X0], dtype=torch.float32, requires_grad=True)
        self.ca = torch.tensor([CHAIN_ADD], dtype=torch.float32)
        self.cm = torch.tensor([CHAIN_MUL], dtype=torch.float32)
        self.grad = None

    def prepare(self):
        return ()

    def step(self):
        ca, cm = self.ca, self.cm
        x = self.x0
        for op in CHAIN_OPS:
            if op == ADD:
                x = x + ca
            elif op == MUL:
                x = x * cm
            else:
                x = torch.tanh(x)
        loss = x.sum()
        loss.backward()
        self.grad = self.x0.grad
        self.x0.grad = None
        return loss

    def params(self):
        return {"x_grad": self.grad.numpy().copy()}

    @staticmethod
    def loss_float(loss) -> float:
        return float(loss.item())


def build(w: Workload, params: dict[str, np.ndarray]):
    cls = {"sigmoid_mse": NielsenMLP, "relu_ce": ReluMLP, "cnn": SmallCNN, "chain": OpChain,
           "demo_cnn": DemoCNN}[w.kind]
    return cls(params, w.lr)
