"""Write your own loss as a Tensor expression: the engine derives its gradient, gradcheck verifies it.

Two losses built from log_softmax, exp and **:

- focal loss (Lin et al. 2017): -(1 - p_t)^gamma * log p_t, which down-weights examples the model
  already gets right (p_t near 1) so training concentrates on the hard ones;
- label smoothing: cross-entropy against (1 - eps) * one_hot + eps / C, which stops the model
  from pushing its logits to infinity to reach probability 1.

    python examples/custom_loss.py                  # focal loss, 3 epochs
    python examples/custom_loss.py --loss smooth --epochs 1 --limit 2000
"""

import argparse
import sys

import numpy as np

from tinygrad_mnist import Tensor, manual_seed, nn, no_grad, optim
from tinygrad_mnist.data import iterate_minibatches, load_mnist, one_hot
from tinygrad_mnist.gradcheck import gradcheck


def focal_loss(logits: Tensor, labels: np.ndarray, gamma: float = 2.0) -> Tensor:
    log_p = logits.log_softmax(axis=1)  # stable: never takes the log of a probability that underflowed
    # pick each row's true-class entry with a one-hot mask, in the logits' dtype (float64 for gradcheck)
    log_pt = (log_p * one_hot(labels, logits.shape[1], dtype=logits.dtype)).sum(axis=1)
    pt = log_pt.exp()
    return ((1 - pt) ** gamma * -log_pt).mean()


def smoothed_cross_entropy(logits: Tensor, labels: np.ndarray, eps: float = 0.1) -> Tensor:
    n_classes = logits.shape[1]
    target = (1 - eps) * one_hot(labels, n_classes, dtype=logits.dtype) + eps / n_classes
    return -(logits.log_softmax(axis=1) * target).sum(axis=1).mean()


LOSSES = {"focal": focal_loss, "smooth": smoothed_cross_entropy}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="train an MLP with a loss written as a tensor expression")
    ap.add_argument("--loss", choices=sorted(LOSSES), default="focal")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, metavar="N", help="train on the first N training images only")
    ap.add_argument("--data", metavar="DIR", help="MNIST directory (default: search, else the bundled sample)")
    args = ap.parse_args(argv)
    loss_fn = LOSSES[args.loss]

    # 1. Check the gradient on a small float64 problem before trusting it: central differences need
    #    the precision (in float32 their rounding error would swamp the comparison).
    rng = np.random.default_rng(0)
    logits = Tensor(rng.normal(size=(5, 10)), requires_grad=True)  # float64 ndarray -> float64 Tensor
    labels = rng.integers(0, 10, size=5)
    for name, fn in LOSSES.items():
        gradcheck(lambda z, fn=fn: fn(z, labels), [logits])
        print(f"gradcheck {name}: ok")

    # 2. Train with it: the loss is just a function from (logits, labels) to a scalar Tensor.
    ds = load_mnist(args.data)
    x_train, y_train = ds.x_train[:args.limit], ds.y_train[:args.limit]
    manual_seed(0)
    model = nn.MLP([784, 128, 10], activation="relu", init="kaiming")  # He init
    opt = optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, args.epochs + 1):
        for xb, yb in iterate_minibatches(x_train, y_train, 64, rng=rng):
            loss = loss_fn(model(Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with no_grad():
            acc = float((model(Tensor(ds.x_test)).data.argmax(axis=1) == ds.y_test).mean())
        print(f"epoch {epoch}: {args.loss} loss {float(loss.data):.4f} (last batch)  test accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
