"""A small convolutional network for MNIST: two conv + max-pool stages and a linear classifier, trained with Adam.

    python examples/cnn.py                          # 3 epochs; about 98.8% on the full MNIST test set
    python examples/cnn.py --epochs 1 --limit 2000
    python examples/cnn.py --no-compile             # every step eager (same numbers)

Convolutions run as im2col + one matrix product (Tensor.conv2d), so on a CPU this is slower per image
than an MLP; the channel counts are kept small to make an epoch take a couple of minutes, not ten.
(models.cnn() is the bigger CNN the CLI trains.)
"""

import argparse
import sys

import numpy as np
from tqdm import tqdm

from tinygrad_mnist import Tensor, compile, from_numpy, manual_seed, nn, no_grad, optim
from tinygrad_mnist.data import images_2d, iterate_minibatches, load_mnist


class SmallCNN(nn.Module):
    def __init__(self):
        self.conv1 = nn.Conv2d(1, 8, kernel_size=5, init="kaiming")  # He init; 1x28x28 -> 8x24x24, pooled to 8x12x12
        self.conv2 = nn.Conv2d(8, 16, kernel_size=5, init="kaiming")  # -> 16x8x8, pooled to 16x4x4
        self.fc = nn.Linear(16 * 4 * 4, 10, init="kaiming")

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x).relu().max_pool2d(2)
        x = self.conv2(x).relu().max_pool2d(2)
        return self.fc(x.flatten(1))  # logits


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    with no_grad():  # inference: record no graph, and keep memory flat by going in batches
        pred = [model(Tensor(x[i:i + batch_size])).data.argmax(axis=1) for i in range(0, len(x), batch_size)]
    return float((np.concatenate(pred) == y).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="a small CNN on MNIST, trained with Adam")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, metavar="N", help="train on the first N training images only")
    ap.add_argument("--data", metavar="DIR", help="MNIST directory (default: search, else the bundled sample)")
    ap.add_argument("--no-compile", action="store_true", help="run every step eagerly instead of replaying it")
    args = ap.parse_args(argv)
    ds = load_mnist(args.data)
    # Conv2d wants NCHW images: (N, 784) -> (N, 1, 28, 28), a view of the same memory
    x_train, y_train = images_2d(ds.x_train[:args.limit]), ds.y_train[:args.limit]
    x_test = images_2d(ds.x_test)

    manual_seed(0)
    model = SmallCNN()
    opt = optim.Adam(model.parameters(), lr=2e-3)

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
        total, seen = 0.0, 0
        # a progress bar on stderr: an epoch takes minutes, so show it moving (refreshed every 0.5 s)
        bar = tqdm(total=len(x_train), desc=f"epoch {epoch}", unit="img", leave=False, mininterval=0.5)
        for xb, yb in iterate_minibatches(x_train, y_train, 32, rng=rng):
            loss = step(from_numpy(xb), from_numpy(yb))
            total += float(loss.data) * len(yb)
            seen += len(yb)
            bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
            bar.update(len(yb))
        bar.close()
        print(f"epoch {epoch}: train loss {total / len(x_train):.4f}  "
              f"test accuracy {accuracy(model, x_test, ds.y_test):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
