"""Ready-made MNIST models.  Each takes images as (N, 784) float32 and returns (N, 10).

    from tinygrad_mnist.models import MODELS
    model = MODELS["cnn"]()

The recipes (optimizer, epochs, learning rate) live with the training code;
here is only the architecture and its initialization.  Each model names the
initialization it was tuned with (nn.Linear's default is PyTorch's, U(+-1/sqrt(fan_in))):
He uniform ("kaiming") for the ReLU networks, N(0, 1) for Nielsen's.
"""

from __future__ import annotations

from .engine import Tensor
from .nn import MLP, BatchNorm2d, Conv2d, Dropout, Linear, Module


def nielsen(hidden: int = 30) -> MLP:
    """Nielsen's 784-30-10 network: sigmoid hidden and output units, N(0, 1) weights and biases."""
    return MLP([784, hidden, 10], activation="sigmoid", output_activation="sigmoid", init="nielsen")


def mlp(sizes=(784, 512, 256, 10), dropout: float = 0.2) -> MLP:
    """The default MLP: ReLU hidden layers with dropout, He init (zero biases); outputs logits."""
    return MLP(sizes, activation="relu", dropout=dropout, init="kaiming")


def mlp_100_200() -> MLP:
    """784-100-200-10 ReLU, no dropout, He init (zero biases); outputs logits."""
    return MLP([784, 100, 200, 10], activation="relu", init="kaiming")


class CNN(Module):
    """conv5x5 -> pool -> conv5x5 -> pool -> linear -> linear; outputs logits.

    28x28 -conv5-> 24x24 -pool2-> 12x12 -conv5-> 8x8 -pool2-> 4x4.
    """

    def __init__(self, channels=(32, 64), hidden: int = 128, dropout: float = 0.5):
        c1, c2 = channels
        self.conv1 = Conv2d(1, c1, 5, init="kaiming")  # He init, zero biases: what the recipe was tuned with
        self.conv2 = Conv2d(c1, c2, 5, init="kaiming")
        self.fc1 = Linear(c2 * 4 * 4, hidden, init="kaiming")
        self.drop = Dropout(dropout)
        self.fc2 = Linear(hidden, 10, init="kaiming")

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(-1, 1, 28, 28)
        # pooling before relu gives the same result (both are monotone) on 4x fewer elements
        x = self.conv1(x).max_pool2d(2).relu()
        x = self.conv2(x).max_pool2d(2).relu()
        x = self.drop(self.fc1(x.flatten(1)).relu())
        return self.fc2(x)


def cnn(channels=(32, 64), hidden: int = 128, dropout: float = 0.5) -> CNN:
    return CNN(channels, hidden, dropout)


class FastCNN(Module):
    """The `fast` recipe's net: few passes over big activations, so an epoch costs little on a CPU.

    conv5x5/2 (1 -> c1) -> pool2 -> BN -> ReLU -> conv3x3 (c1 -> c2) -> pool2 -> BN -> ReLU
    -> conv3x3 (c2 -> c2) -> BN -> ReLU -> linear.  28x28 -conv/2-> 14x14 -pool-> 7x7 -conv-> 7x7 -pool-> 3x3
    -conv-> 3x3.  The first conv's stride 2 and the pooling before each batch norm keep the per-image
    activations small (c1 * 49 and c2 * 49 values after the convs' outputs); the convs (padded to keep
    their size) have no bias, the batch norm right after adds one.  No dropout.
    """

    def __init__(self, channels=(32, 64)):
        c1, c2 = channels
        self.conv1 = Conv2d(1, c1, 5, stride=2, padding=2, bias=False, init="kaiming")
        self.bn1 = BatchNorm2d(c1)
        self.conv2 = Conv2d(c1, c2, 3, padding=1, bias=False, init="kaiming")
        self.bn2 = BatchNorm2d(c2)
        self.conv3 = Conv2d(c2, c2, 3, padding=1, bias=False, init="kaiming")
        self.bn3 = BatchNorm2d(c2)
        self.fc = Linear(c2 * 3 * 3, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(-1, 1, 28, 28)
        x = self.bn1(self.conv1(x).max_pool2d(2)).relu()
        x = self.bn2(self.conv2(x).max_pool2d(2)).relu()
        x = self.bn3(self.conv3(x)).relu()
        return self.fc(x.flatten(1))


def fast(channels=(32, 64)) -> FastCNN:
    return FastCNN(channels)


MODELS = {"nielsen": nielsen, "mlp": mlp, "mlp_100_200": mlp_100_200, "cnn": cnn, "fast": fast}
