"""PyTorch's MNIST example (pytorch/examples, mnist/main.py), run with `import tinygrad_mnist as torch`.

    python examples/pytorch_mnist.py                          # 14 epochs, as the original
    python examples/pytorch_mnist.py --epochs 1 --limit 2000  # a short run
    python examples/pytorch_mnist.py --dry-run                # one batch per epoch

The model, the train/test functions, the DataLoader loop, StepLR and the printed lines are the
original's. Three things differ: the images come from tinygrad_mnist.data (the full MNIST when found,
else the bundled 10,000-image sample) instead of torchvision, normalised with the same mean and std;
the optimizer is Adam (lr 1e-3), because this library has no Adadelta; and the run stays on the CPU.
"""

import argparse
import sys

import tinygrad_mnist as torch
import tinygrad_mnist.nn as nn
import tinygrad_mnist.nn.functional as F
import tinygrad_mnist.optim as optim
from tinygrad_mnist.data import images_2d, load_mnist
from tinygrad_mnist.optim.lr_scheduler import StepLR


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print("Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}".format(  # noqa: UP032 (the original's line)
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
            if args.dry_run:
                break


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)
    print("\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n".format(  # noqa: UP032 (as the original)
        test_loss, correct, len(test_loader.dataset),
        100. * correct / len(test_loader.dataset)))
    return correct / len(test_loader.dataset)


def mnist_dataset(images, labels, limit=None):
    """What torchvision's MNIST with ToTensor() and Normalize((0.1307,), (0.3081,)) hands the loader."""
    x = torch.from_numpy(images_2d(images[:limit]))  # (N, 1, 28, 28) in [0, 1]
    return torch.utils.data.TensorDataset((x - 0.1307) / 0.3081, torch.from_numpy(labels[:limit]))


def main(argv=None):
    parser = argparse.ArgumentParser(description="PyTorch MNIST Example")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N",
                        help="input batch size for training (default: 64)")
    parser.add_argument("--test-batch-size", type=int, default=1000, metavar="N",
                        help="input batch size for testing (default: 1000)")
    parser.add_argument("--epochs", type=int, default=14, metavar="N",
                        help="number of epochs to train (default: 14)")
    parser.add_argument("--lr", type=float, default=1e-3, metavar="LR",
                        help="learning rate (default: 1e-3, Adam's; the original's 1.0 is Adadelta's)")
    parser.add_argument("--gamma", type=float, default=0.7, metavar="M",
                        help="Learning rate step gamma (default: 0.7)")
    parser.add_argument("--dry-run", action="store_true", help="quickly check a single pass")
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default: 1)")
    parser.add_argument("--log-interval", type=int, default=10, metavar="N",
                        help="how many batches to wait before logging training status")
    parser.add_argument("--save-model", action="store_true", help="For Saving the current Model")
    parser.add_argument("--limit", type=int, metavar="N", help="train on the first N training images only")
    parser.add_argument("--test-limit", type=int, metavar="N", help="test on the first N test images only")
    parser.add_argument("--data", metavar="DIR", help="MNIST directory (default: search, else the bundled sample)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    device = torch.device("cpu")

    ds = load_mnist(args.data)
    train_kwargs = {"batch_size": args.batch_size, "shuffle": True}
    test_kwargs = {"batch_size": args.test_batch_size}
    dataset1 = mnist_dataset(ds.x_train, ds.y_train, args.limit)
    dataset2 = mnist_dataset(ds.x_test, ds.y_test, args.test_limit)
    train_loader = torch.utils.data.DataLoader(dataset1, **train_kwargs)
    test_loader = torch.utils.data.DataLoader(dataset2, **test_kwargs)

    model = Net().to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), "mnist_cnn.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
