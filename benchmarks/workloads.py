"""Workload definitions shared by every system: shapes, hyper-parameters, initial weights, batches.

Every system (engine, NumPy, PyTorch) is built from the arrays made here, so all of them start
from the same float32 weights and see the same batches in the same order.

Parameter layout (canonical, what ``params()`` of every model returns):
  MLPs: ``w0, b0, w1, b1, ...`` with weights stored (in, out) so a layer is ``x @ w + b``.
  CNN:  ``conv_w`` (8, 1, 3, 3), ``conv_b`` (8,), ``fc_w`` (1352, 10) (in, out), ``fc_b`` (10,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED = 1234
N_BATCHES = 16  # a small pool of batches cycled through while timing (all systems, same order)

# W4: the op chain. Integers rather than strings so the dispatch in each system's loop is cheap
# and identical; the constants keep the value bounded over 200 ops.
ADD, MUL, TANH = 0, 1, 2
CHAIN_LEN = 200
CHAIN_OPS = tuple((ADD, MUL, TANH)[i % 3] for i in range(CHAIN_LEN))
CHAIN_X0 = 0.5
CHAIN_ADD = 0.1
CHAIN_MUL = 0.9


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    kind: str  # "sigmoid_mse" | "relu_ce" | "chain" | "cnn"
    sizes: tuple[int, ...] = ()
    batch: int = 0
    lr: float = 0.0
    per: int = 1  # the reported time is per `per` units (W4: per op of the chain)
    unit: str = "step"
    # the engine's dense layers written each of these ways, timed side by side (see engine_impl.py):
    # "linear" h.linear(W, b), "matmul" h @ W + b, "matmul_t" h @ W.T + b;
    # "compiled": the "linear" step through tinygrad_mnist.compile (recorded once, replayed)
    spellings: tuple[str, ...] = ("linear", "compiled")
    numpy_ref: bool = True  # False: no hand-written NumPy version; the check compares with PyTorch


WORKLOADS: dict[str, Workload] = {
    w.key: w
    for w in (
        Workload("W1", "Nielsen 784-30-10 sigmoid, quadratic cost, SGD eta=3.0, batch 10",
                 "sigmoid_mse", (784, 30, 10), 10, 3.0),
        Workload("W2", "784-100-200-10 ReLU, softmax CE, SGD lr=0.1, batch 64",
                 "relu_ce", (784, 100, 200, 10), 64, 0.1),
        Workload("W3", "784-512-512-10 ReLU, softmax CE, SGD lr=0.1, batch 128; engine as h.linear(W, b), "
                 "h @ W + b (engine@) and h @ W.T + b (engine@T)",
                 "relu_ce", (784, 512, 512, 10), 128, 0.1, spellings=("linear", "matmul", "matmul_t", "compiled")),
        Workload("W4", f"chain of {CHAIN_LEN} elementwise ops (add, mul, tanh) on 1 element, fwd+bwd",
                 "chain", per=CHAIN_LEN, unit="op"),
        Workload("W5", "conv3x3 1->8 +bias, ReLU, maxpool 2x2, linear 1352->10, softmax CE, SGD lr=0.1, "
                 "batch 64", "cnn", batch=64, lr=0.1),
        Workload("W7", "one step of the demo CNN (W6 cnn): conv5x5 1->32, pool, relu, conv5x5 32->64, pool, "
                 "relu, fc 1024->128, relu, fc 128->10 (dropout off), softmax CE, Adam lr=1e-3, batch 64",
                 "demo_cnn", batch=64, lr=1e-3, numpy_ref=False),
    )
}


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def init_params(w: Workload) -> dict[str, np.ndarray]:
    """Initial weights for workload ``w`` (fixed seed, float32, C-contiguous)."""
    rng = np.random.default_rng(SEED)
    p: dict[str, np.ndarray] = {}
    if w.kind == "sigmoid_mse":
        # Nielsen's network.py: weights and biases N(0, 1)
        for i, (n_in, n_out) in enumerate(zip(w.sizes[:-1], w.sizes[1:])):
            p[f"w{i}"] = _f32(rng.standard_normal((n_in, n_out)))
            p[f"b{i}"] = _f32(rng.standard_normal(n_out))
    elif w.kind == "relu_ce":
        # Kaiming-normal weights, PyTorch-style uniform biases (non-zero, so bias grads matter)
        for i, (n_in, n_out) in enumerate(zip(w.sizes[:-1], w.sizes[1:])):
            p[f"w{i}"] = _f32(rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in))
            p[f"b{i}"] = _f32(rng.uniform(-1, 1, n_out) / np.sqrt(n_in))
    elif w.kind == "cnn":
        p["conv_w"] = _f32(rng.standard_normal((8, 1, 3, 3)) * np.sqrt(2.0 / 9))
        p["conv_b"] = _f32(rng.uniform(-1, 1, 8) / 3.0)
        p["fc_w"] = _f32(rng.standard_normal((8 * 13 * 13, 10)) * np.sqrt(1.0 / (8 * 13 * 13)))
        p["fc_b"] = _f32(rng.uniform(-1, 1, 10) / np.sqrt(8 * 13 * 13))
    elif w.kind == "demo_cnn":  # He-uniform like the demo's layers; linear weights (out, in) as nn.Linear
        for name, shape, fan_in in (("conv1", (32, 1, 5, 5), 25), ("conv2", (64, 32, 5, 5), 800),
                                    ("fc1", (128, 1024), 1024), ("fc2", (10, 128), 128)):
            bound = np.sqrt(6.0 / fan_in)
            p[f"{name}_w"] = _f32(rng.uniform(-bound, bound, shape))
            p[f"{name}_b"] = _f32(rng.uniform(-1, 1, shape[0]) / np.sqrt(fan_in))
    elif w.kind != "chain":
        raise ValueError(w.kind)
    return p


def make_batches(w: Workload, n: int = N_BATCHES) -> list[tuple[np.ndarray, ...]]:
    """``n`` random MNIST-shaped batches: x ~ U[0, 1) float32, labels int64 (one-hot float32 for W1)."""
    if w.kind == "chain":
        return [()]  # the chain takes no input: its leaf is built into the model
    rng = np.random.default_rng(SEED + 1)
    out = []
    for _ in range(n):
        x = rng.random((w.batch, 784), dtype=np.float32)
        labels = rng.integers(0, 10, w.batch).astype(np.int64)
        if w.kind == "sigmoid_mse":
            y = np.zeros((w.batch, 10), np.float32)
            y[np.arange(w.batch), labels] = 1.0
            out.append((x, y))
        elif w.kind == "cnn":
            out.append((x.reshape(w.batch, 1, 28, 28), labels))
        else:
            out.append((x, labels))
    return out
