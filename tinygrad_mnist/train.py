"""Training and evaluation loops for the MNIST demo (used by the CLI, examples and benchmarks).

The loop is the textbook one: forward, loss, zero_grad, backward, step.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from . import __version__, losses, nn, optim
from .data import Dataset, iterate_minibatches, one_hot
from .engine import Tensor, from_numpy, no_grad
from .models import MODELS


@dataclass
class Recipe:
    """Everything needed to reproduce a training run besides the data."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"  # sgd | momentum | nesterov | adam | adamw
    loss: str = "cross_entropy"  # cross_entropy | mse (Nielsen's quadratic cost)
    schedule: str = "none"  # none | step | cosine
    weight_decay: float = 0.0
    seed: int = 0


# Defaults: each trains a good model in minutes on 2 CPU cores (README has the measured results).
RECIPES = {
    # Nielsen's network1.py: [784, 30, 10], sigmoid, quadratic cost, SGD eta=3.0, mini-batch 10.
    "nielsen": Recipe("nielsen", epochs=30, batch_size=10, lr=3.0, optimizer="sgd", loss="mse"),
    "mlp": Recipe("mlp", epochs=10, batch_size=128, lr=1e-3, optimizer="adam", schedule="cosine"),
    "cnn": Recipe("cnn", epochs=6, batch_size=64, lr=1e-3, optimizer="adam", schedule="cosine"),
}


def build_model(name: str) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]()


def make_optimizer(recipe: Recipe, params) -> optim.Optimizer:
    name, lr, wd = recipe.optimizer, recipe.lr, recipe.weight_decay
    if name == "sgd":
        return optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    if name == "nesterov":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=wd or 1e-2)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, momentum, nesterov, adam or adamw")


def make_schedule(recipe: Recipe, opt: optim.Optimizer):
    if recipe.schedule == "none":
        return None
    if recipe.schedule == "step":
        return optim.StepLR(opt, step_size=max(1, recipe.epochs // 3), gamma=0.1)
    if recipe.schedule == "cosine":
        return optim.CosineAnnealingLR(opt, T_max=recipe.epochs)
    raise ValueError(f"unknown schedule {recipe.schedule!r}; choose none, step or cosine")


def compute_loss(recipe: Recipe, output: Tensor, labels: np.ndarray) -> Tensor:
    if recipe.loss == "mse":
        return losses.mse(output, one_hot(labels, output.shape[1]))
    if recipe.loss == "cross_entropy":
        return losses.cross_entropy(output, labels)
    raise ValueError(f"unknown loss {recipe.loss!r}; choose cross_entropy or mse")


def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Model outputs for every row of x, in eval mode and without recording a graph."""
    was_training = model.training
    model.eval()
    with no_grad():
        outs = [model(from_numpy(x[i:i + batch_size])).data for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return np.concatenate(outs) if outs else np.zeros((0, 10), np.float32)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    """Accuracy in [0, 1]."""
    return float((predict_logits(model, x, batch_size).argmax(axis=1) == y).mean())


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    eval_acc: float
    seconds: float
    samples_per_s: float
    lr: float


@dataclass
class History:
    recipe: dict
    data_source: str
    is_sample: bool
    eval_split: str
    epochs: list = field(default_factory=list)
    test_acc: float | None = None
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def fit(model: nn.Module, ds: Dataset, recipe: Recipe, *, x_eval=None, y_eval=None, eval_split="test",
        progress: bool = True, log=print) -> History:
    """Train `model` on ds.x_train with `recipe`; evaluate after every epoch on (x_eval, y_eval).

    Evaluation data default to the test set (Nielsen reports test accuracy per
    epoch too); pass a validation split to keep the test set untouched.
    """
    if x_eval is None:
        x_eval, y_eval = ds.x_test, ds.y_test
    opt = make_optimizer(recipe, model.parameters())
    schedule = make_schedule(recipe, opt)
    rng = np.random.default_rng(recipe.seed)
    history = History(recipe=asdict(recipe), data_source=ds.source, is_sample=ds.is_sample, eval_split=eval_split,
                      environment={"python": platform.python_version(), "numpy": np.__version__,
                                   "tinygrad_mnist": __version__, "platform": platform.platform()})
    n = len(ds.x_train)
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(total=n, desc=f"epoch {epoch}/{recipe.epochs}", unit="img", unit_scale=True, leave=False,
                   disable=not progress, file=sys.stderr, mininterval=0.5)
        for step, (xb, yb) in enumerate(iterate_minibatches(ds.x_train, ds.y_train, recipe.batch_size, rng=rng)):
            out = model(from_numpy(xb))  # the batch is shared, not copied
            loss = compute_loss(recipe, out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.data) * len(yb)
            correct += int((out.data.argmax(axis=1) == yb).sum())
            seen += len(yb)
            bar.update(len(yb))
            if step % 50 == 0:  # formatting the postfix every step would cost more than a small step
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
        bar.close()
        seconds = time.perf_counter() - start
        lr = opt.lr
        if schedule is not None:
            schedule.step()
        acc = evaluate(model, x_eval, y_eval)
        stats = EpochStats(epoch, loss_sum / max(seen, 1), correct / max(seen, 1), acc, seconds,
                           seen / seconds if seconds else 0.0, lr)
        history.epochs.append(stats)
        log(f"epoch {epoch:>2}/{recipe.epochs}: loss {stats.train_loss:.4f}  train acc {stats.train_acc:.4f}  "
            f"{eval_split} acc {acc:.4f}  ({seconds:.1f}s, {stats.samples_per_s:,.0f} img/s, lr {lr:.3g})")
    return history
