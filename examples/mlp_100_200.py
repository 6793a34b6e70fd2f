"""A 784-100-200-10 ReLU network with softmax cross-entropy, built from nn.Module and trained with Adam.

    python examples/mlp_100_200.py                  # 5 epochs; about 97.5% on the full MNIST test set
    python examples/mlp_100_200.py --epochs 1 --limit 2000
    python examples/mlp_100_200.py --no-compile     # every step eager (same numbers, slower)
"""

import argparse
import sys

import numpy as np

from tinygrad_mnist import Tensor, compile, from_numpy, manual_seed, nn, no_grad, optim
from tinygrad_mnist.data import iterate_minibatches, load_mnist


class Net(nn.Module):
    def __init__(self):
        # Module finds parameters by looking at attributes: fc1.weight, fc1.bias, fc2.weight, ...
        self.fc1 = nn.Linear(784, 100, init="kaiming")  # He init (PyTorch's default is U(+-1/sqrt(fan_in)))
        self.fc2 = nn.Linear(100, 200, init="kaiming")
        self.fc3 = nn.Linear(200, 10, init="kaiming")

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x).relu()
        x = self.fc2(x).relu()
        return self.fc3(x)  # logits: cross_entropy applies the softmax itself, stably


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with no_grad():  # inference: record no graph
        return float((model(Tensor(x)).data.argmax(axis=1) == y).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="784-100-200-10 ReLU MLP, softmax cross-entropy, Adam")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--limit", type=int, metavar="N", help="train on the first N training images only")
    ap.add_argument("--data", metavar="DIR", help="MNIST directory (default: search, else the bundled sample)")
    ap.add_argument("--no-compile", action="store_true", help="run every step eagerly instead of replaying it")
    args = ap.parse_args(argv)
    ds = load_mnist(args.data)
    x_train, y_train = ds.x_train[:args.limit], ds.y_train[:args.limit]

    manual_seed(0)  # the layers' initial weights come from the library's generator
    model = Net()
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def train_step(x, y):
        loss = model(x).cross_entropy(y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    step = compile(train_step, enabled=not args.no_compile)  # recorded once, then replayed (see README)
    rng = np.random.default_rng(0)
    print(f"{model.num_parameters():,} parameters, {len(x_train):,} training images")
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for xb, yb in iterate_minibatches(x_train, y_train, 64, rng=rng):
            loss = step(from_numpy(xb), from_numpy(yb))
            total += float(loss.data) * len(yb)
        print(f"epoch {epoch}: train loss {total / len(x_train):.4f}  "
              f"test accuracy {accuracy(model, ds.x_test, ds.y_test):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
