"""The W1-W5 models written with this engine, as a user would write them: tensor expressions,
``backward()``, and the manual SGD update ``p.data -= lr * p.grad.data; p.grad = None``.

The "compiled" spelling (system ``engine+c``) runs the same model's step through
``tinygrad_mnist.compile``: recorded on its first two calls, replayed after that.  Its SGD update is
the in-place tensor op ``p -= lr * p.grad`` under no_grad (NumPy on ``.data`` can't be recorded).

Importing this module fails when the engine can't be imported; the harness reports that as
"skipped" and runs the references alone.
"""

from __future__ import annotations

import numpy as np

from benchmarks.workloads import ADD, CHAIN_ADD, CHAIN_MUL, CHAIN_OPS, CHAIN_X0, MUL, Workload
from tinygrad_mnist import Tensor, compile, from_numpy, no_grad


def _is_linear_weight(name: str, value: np.ndarray) -> bool:
    # the references store dense weights as (in, out); nn.Linear (and Tensor.linear) use (out, in)
    return value.ndim == 2 and (name.startswith("w") or name == "fc_w")


class _Model:
    stores_in_out = False  # True: dense weights kept (in, out), as the references do, for h @ W + b

    def __init__(self, params: dict[str, np.ndarray], lr: float):
        self.p = {k: Tensor(np.array(v.T if self._transposed(k, v) else v, dtype=np.float32, order="C"),
                            requires_grad=True)
                  for k, v in params.items()}
        self.plist = list(self.p.values())
        self.lr = lr

    def prepare(self, x, y):
        # inputs are constants, shared rather than copied; integer labels stay a plain ndarray for cross_entropy
        return from_numpy(x), (y if y.dtype.kind in "iu" else from_numpy(y))

    def _sgd(self):
        lr = self.lr
        for p in self.plist:
            p.data -= lr * p.grad.data
            p.grad = None

    def step(self, x, y):
        loss = self.loss(x, y)
        loss.backward()
        self._sgd()
        return loss

    def recordable_step(self, x, y):
        """The same step with the update as recorded tensor ops (what compile replays)."""
        loss = self.loss(x, y)
        loss.backward()
        with no_grad():
            for p in self.plist:
                p -= self.lr * p.grad
                p.grad = None
        return loss

    def dtypes(self, x, y) -> dict[str, str]:
        """One forward+backward without an update: dtypes of the loss and each gradient (all
        must stay float32: a float64 gradient would be cast back silently by ``-=``)."""
        loss = self.loss(x, y)
        loss.backward()
        out = {"loss": str(loss.data.dtype)}
        for k, p in self.p.items():
            out[f"{k}.grad"] = "None" if p.grad is None else str(p.grad.data.dtype)
            p.grad = None
        return out

    def _transposed(self, name: str, value: np.ndarray) -> bool:
        return _is_linear_weight(name, value) and not self.stores_in_out

    def params(self) -> dict[str, np.ndarray]:
        return {k: np.array(v.data.T if self._transposed(k, v.data) else v.data, copy=True)
                for k, v in self.p.items()}

    @staticmethod
    def loss_float(loss) -> float:
        return float(loss.data)


class NielsenMLP(_Model):
    def loss(self, x, y):
        p = self.p
        a1 = x.linear(p["w0"], p["b0"]).sigmoid()  # x @ W.T + b, as nn.Linear does
        a2 = a1.linear(p["w1"], p["b1"]).sigmoid()
        return ((a2 - y) ** 2).sum() * (0.5 / x.shape[0])


class ReluMLP(_Model):
    def __init__(self, params, lr):
        super().__init__(params, lr)
        n = len(self.p) // 2
        self.layers = [(self.p[f"w{i}"], self.p[f"b{i}"]) for i in range(n)]

    def loss(self, x, labels):
        h = x
        for w, b in self.layers[:-1]:
            h = h.linear(w, b).relu()
        w, b = self.layers[-1]
        return h.linear(w, b).cross_entropy(labels)


class ReluMLPMatmul(ReluMLP):
    """The same network the way the README's ten lines teach: W stored (in, out), h @ W + b."""

    stores_in_out = True

    def loss(self, x, labels):
        h = x
        for w, b in self.layers[:-1]:
            h = (h @ w + b).relu()
        w, b = self.layers[-1]
        return (h @ w + b).cross_entropy(labels)


class ReluMLPMatmulT(ReluMLP):
    """The same network with W stored (out, in) as nn.Linear does, written h @ W.T + b."""

    def loss(self, x, labels):
        h = x
        for w, b in self.layers[:-1]:
            h = (h @ w.T + b).relu()
        w, b = self.layers[-1]
        return (h @ w.T + b).cross_entropy(labels)


class SmallCNN(_Model):
    def loss(self, x, labels):
        p = self.p
        h = x.conv2d(p["conv_w"], p["conv_b"]).relu().max_pool2d(2).flatten(1)
        return h.linear(p["fc_w"], p["fc_b"]).cross_entropy(labels)


class DemoCNN:
    """W7: tinygrad_mnist.models.cnn (dropout off) with optim.Adam, the demo's training step."""

    def __init__(self, params, lr):
        from tinygrad_mnist import optim
        from tinygrad_mnist.models import cnn

        self.model = cnn(dropout=0.0)
        self.names = [f"{layer}_{kind}" for layer in ("conv1", "conv2", "fc1", "fc2") for kind in "wb"]
        self.plist = list(self.model.parameters())
        for p, name in zip(self.plist, self.names):
            p.data[...] = params[name]
        self.opt = optim.Adam(self.plist, lr=lr)

    def prepare(self, x, y):
        return Tensor(x), y

    def step(self, x, y):
        loss = self.model(x).cross_entropy(y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss

    recordable_step = step

    def dtypes(self, x, y) -> dict[str, str]:
        loss = self.model(x).cross_entropy(y)
        loss.backward()
        out = {"loss": str(loss.data.dtype)}
        out.update({f"{n}.grad": str(p.grad.data.dtype) for n, p in zip(self.names, self.plist)})
        self.opt.zero_grad()
        return out

    def params(self) -> dict[str, np.ndarray]:
        return {n: np.array(p.data, copy=True) for n, p in zip(self.names, self.plist)}

    @staticmethod
    def loss_float(loss) -> float:
        return float(loss.data)


class OpChain:
    def __init__(self, params=None, lr=0.0):
        self.x0 = Tensor(np.array([CHAIN_X0], np.float32), requires_grad=True)
        self.ca = Tensor(np.array([CHAIN_ADD], np.float32))
        self.cm = Tensor(np.array([CHAIN_MUL], np.float32))
        self.x_grad = None  # not "grad": compile guards attributes by the names the step reads (self.x0.grad)

    def prepare(self):
        return ()

    def step(self):
        loss, self.x_grad = self.recordable_step()
        return loss

    def recordable_step(self):
        """The chain's forward and backward; the gradient is returned, not stored on self: a replay runs
        none of the step's Python, so compile refuses a step that assigns attributes."""
        ca, cm = self.ca, self.cm
        x = self.x0
        for op in CHAIN_OPS:
            if op == ADD:
                x = x + ca
            elif op == MUL:
                x = x * cm
            else:
                x = x.tanh()
        loss = x.sum()
        loss.backward()
        grad = self.x0.grad
        self.x0.grad = None
        return loss, grad

    def dtypes(self) -> dict[str, str]:
        loss = self.step()
        return {"loss": str(loss.data.dtype), "x.grad": str(self.x_grad.data.dtype)}

    def params(self):
        return {"x_grad": np.array(self.x_grad.data, copy=True)}

    @staticmethod
    def loss_float(loss) -> float:
        return float(loss.data)


class Compiled:
    """A model whose step runs through tinygrad_mnist.compile (system "engine+c")."""

    def __init__(self, model):
        self.model = model
        # strict: a step that compile refuses must fail the benchmark, never be timed eagerly as engine+c
        self._step = compile(model.recordable_step, fallback=False)
        self.prepare, self.params, self.loss_float = model.prepare, model.params, model.loss_float

    def step(self, *args):
        out = self._step(*args)
        if isinstance(out, tuple):  # OpChain: (loss, gradient)
            out, self.model.x_grad = out
        return out

    def dtypes(self, *args):
        return self.model.dtypes(*args)


SPELLINGS = {"linear": ReluMLP, "matmul": ReluMLPMatmul, "matmul_t": ReluMLPMatmulT}


def build(w: Workload, params: dict[str, np.ndarray], spelling: str = "linear"):
    if spelling == "compiled":
        return Compiled(build(w, params))
    if spelling != "linear":
        if w.kind != "relu_ce":
            raise ValueError(f"spelling {spelling!r} exists for the ReLU MLPs only, not {w.kind!r}")
        return SPELLINGS[spelling](params, w.lr)
    cls = {"sigmoid_mse": NielsenMLP, "relu_ce": ReluMLP, "cnn": SmallCNN, "chain": OpChain,
           "demo_cnn": DemoCNN}[w.kind]
    return cls(params, w.lr)
