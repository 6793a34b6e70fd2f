"""Nielsen's [784, 30, 10] network from "Neural Networks and Deep Learning", chapter 1, as tensor math.

    python examples/nielsen.py                      # 30 epochs; about 95% on the full MNIST test set
    python examples/nielsen.py --epochs 1 --limit 2000
    python examples/nielsen.py --no-compile         # every step eager (same numbers, slower)
"""

import argparse
import sys

import numpy as np

from tinygrad_mnist import Tensor, compile, from_numpy, manual_seed, no_grad
from tinygrad_mnist.data import iterate_minibatches, load_mnist, one_hot


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Nielsen's 784-30-10 sigmoid network, trained by plain SGD")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--limit", type=int, metavar="N", help="train on the first N training images only")
    ap.add_argument("--data", metavar="DIR", help="MNIST directory (default: search, else the bundled sample)")
    ap.add_argument("--no-compile", action="store_true", help="run every step eagerly instead of replaying it")
    args = ap.parse_args(argv)
    ds = load_mnist(args.data)
    x_train, y_train = ds.x_train[:args.limit], one_hot(ds.y_train[:args.limit])

    manual_seed(0)
    # N(0, 1) weights and biases, as his network.py draws them with np.random.randn
    W1, b1 = Tensor.randn(30, 784, requires_grad=True), Tensor.randn(30, requires_grad=True)
    W2, b2 = Tensor.randn(10, 30, requires_grad=True), Tensor.randn(10, requires_grad=True)
    params = [W1, b1, W2, b2]

    def feedforward(x):
        a = (x @ W1.T + b1).sigmoid()  # hidden layer: a = sigma(W1 x + b1), one row per image
        return (a @ W2.T + b2).sigmoid()

    lr, batch_size = 3.0, 10

    def train_step(x, y):  # compile records it on its first calls, then replays its NumPy kernels
        cost = ((y - feedforward(x)) ** 2).sum() * (0.5 / len(x))  # C = 1/2n sum_x ||y(x) - a(x)||^2
        cost.backward()
        with no_grad():  # the update is not part of the model: record no graph for it
            for p in params:
                p -= lr * p.grad  # w -> w - eta dC/dw, in place
                p.grad = None  # backward adds to .grad, so clear it for the next step
    step = compile(train_step, enabled=not args.no_compile)
    rng = np.random.default_rng(0)  # one generator for all epochs: a new shuffle every epoch
    for epoch in range(args.epochs):
        for xb, yb in iterate_minibatches(x_train, y_train, batch_size, rng=rng):
            step(from_numpy(xb), from_numpy(yb))
        with no_grad():
            correct = int((feedforward(Tensor(ds.x_test)).data.argmax(axis=1) == ds.y_test).sum())
        n = len(ds.y_test)
        print(f"Epoch {epoch}: {correct} / {n}  (test accuracy {correct / n:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
