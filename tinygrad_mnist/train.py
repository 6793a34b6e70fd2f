"""Training and evaluation loops for the MNIST demo (used by the CLI, examples and benchmarks).

The loop is the textbook one: forward, loss, zero_grad, backward, step, written as one function that
`compile` records on its first calls and then replays at NumPy speed (the same numbers as eager).
Around it, what a long run needs: a checkpoint after every epoch (and on request between steps) that
resumes bit-identically, and a stop at the first non-finite loss instead of training on NaNs.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from tqdm.auto import tqdm  # a widget in Jupyter (with ipywidgets), text elsewhere

from . import __version__, engine, losses, nn, optim, serialization
from .capture import compile
from .data import Dataset
from .engine import Function, Tensor, no_grad
from .fileio import atomic_write
from .models import MODELS
from .nn import functional as F
from .tensor_methods.creation import from_numpy


@dataclass
class Recipe:
    """Everything needed to reproduce a training run besides the data."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"  # sgd | momentum | nesterov | adam | adamw
    loss: str = "cross_entropy"  # cross_entropy | mse (Nielsen's quadratic cost)
    schedule: str = "none"  # none | step | cosine | onecycle (stepped after every batch)
    weight_decay: float = 0.0
    seed: int = 0
    adam_beta2: float = 0.999  # adam/adamw's beta2 (beta1 is 0.9, or cycled by the onecycle schedule)
    label_smoothing: float = 0.0  # cross_entropy's (PyTorch's): the target is (1 - s) one-hot + s / classes


# Defaults: each trains a good model in minutes on 2 CPU cores (README has the measured results).
RECIPES = {
    # Nielsen's network1.py: [784, 30, 10], sigmoid, quadratic cost, SGD eta=3.0, mini-batch 10.
    "nielsen": Recipe("nielsen", epochs=30, batch_size=10, lr=3.0, optimizer="sgd", loss="mse"),
    "mlp": Recipe("mlp", epochs=10, batch_size=128, lr=1e-3, optimizer="adam", schedule="cosine"),
    "cnn": Recipe("cnn", epochs=6, batch_size=64, lr=1e-3, optimizer="adam", schedule="cosine"),
    # 99.2% test accuracy in 2 epochs (docs/cli.md has the measured runs: 99.31 / 99.33 / 99.31% for seeds
    # 0-2): a small conv net with batch norm (models.FastCNN), Adam (beta2 0.99) under a one-cycle schedule
    # (lr up to `lr` and back down, beta1 0.95 -> 0.85 -> 0.95), batch 256, cross-entropy with label
    # smoothing 0.1.  Smoothing took the worst of three seeds from 99.16% to 99.29% at batch 128 and lr 0.01;
    # batch 256 (lr doubled) keeps the margin (worst 99.31%) in 235 steps an epoch instead of 469: as fast
    # on one core, a little faster with OpenBLAS's 2 threads (bigger GEMMs).
    "fast": Recipe("fast", epochs=2, batch_size=256, lr=2e-2, optimizer="adam", schedule="onecycle",
                   adam_beta2=0.99, label_smoothing=0.1),
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
    betas = (0.9, recipe.adam_beta2)
    if name == "adam":
        return optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd or 1e-2)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, momentum, nesterov, adam or adamw")


# schedules whose every step depends on the total epoch count: a run can't be made longer afterwards
WHOLE_RUN_SCHEDULES = ("cosine", "onecycle")


def make_schedule(recipe: Recipe, opt: optim.Optimizer, steps_per_epoch: int = 1):
    """The recipe's lr schedule: stepped once per epoch, except onecycle (once per batch, steps_per_epoch)."""
    if recipe.schedule == "none":
        return None
    if recipe.schedule == "step":
        return optim.StepLR(opt, step_size=max(1, recipe.epochs // 3), gamma=0.1)
    if recipe.schedule == "cosine":
        return optim.CosineAnnealingLR(opt, T_max=recipe.epochs)
    if recipe.schedule == "onecycle":
        return optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, epochs=recipe.epochs,
                                             steps_per_epoch=steps_per_epoch)
    raise ValueError(f"unknown schedule {recipe.schedule!r}; choose none, step, cosine or onecycle")


def compute_loss(recipe: Recipe, output: Tensor, labels: np.ndarray) -> Tensor:
    if recipe.loss == "mse":
        return losses.mse(output, labels)  # integer labels become one-hot rows there, checked once
    if recipe.loss == "cross_entropy":
        return F.cross_entropy(output, labels, label_smoothing=recipe.label_smoothing)
    raise ValueError(f"unknown loss {recipe.loss!r}; choose cross_entropy or mse")


class NonFiniteLoss(ArithmeticError):
    """The loss of a step is NaN or infinite (raised before the step's backward and update run)."""

    def __init__(self, value: float):
        self.value = value
        super().__init__(f"loss is {value}")


class _StopIfNotFinite(Function):
    """The identity on a scalar loss that raises NonFiniteLoss when it is NaN or infinite.

    An op rather than a Python `if` on the loss: a compiled step replays it like any other op,
    so a replayed step stops at the same point as an eager one, before anything is updated.
    """

    saves_inputs = False

    def forward(self, x):
        if not np.isfinite(x).all():
            raise NonFiniteLoss(float(x))
        return x

    def backward(self, g):
        return (g,)


def make_train_step(model: nn.Module, opt: optim.Optimizer, recipe: Recipe, compiled: bool = True):
    """`step(x, y) -> (loss, logits)`: forward, loss, zero_grad, backward, optimizer step.

    compiled: record the step on its first calls and replay it afterwards (see capture/); the
    results are the eager ones bit for bit.  A non-finite loss raises NonFiniteLoss before the
    weights change.
    """
    def train_step(x, y):
        out = model(x)
        loss = _StopIfNotFinite.apply(compute_loss(recipe, out, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss, out

    return compile(train_step, enabled=compiled)


# Evaluation batches: small enough that a batch's activations stay in cache.  One core, 10,000 test
# images: fast 0.54 s at 250 against 0.73 s at 1000, cnn 2.0 s against 2.7 s (mlp the same either way);
# the logits were the same bit for bit at both sizes (batches under ~100 can differ in the last bits).
EVAL_BATCH = 250


def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Model outputs for every row of x, in eval mode and without recording a graph."""
    was_training = model.training
    model.eval()
    with no_grad():
        outs = [model(from_numpy(x[i:i + batch_size])).data for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return np.concatenate(outs) if outs else np.zeros((0, 10), np.float32)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = EVAL_BATCH) -> float:
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
    train_size: int = 0
    eval_size: int = 0
    epochs: list = field(default_factory=list)
    test_acc: float | None = None
    status: str = "running"  # running | completed | diverged | interrupted
    stopped_at: dict | None = None  # {"epoch", "step", "reason"} when diverged or interrupted
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON types only, NaN and infinities as None: strict JSON readers accept the result."""
        return _finite_or_none(asdict(self))


def _finite_or_none(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


class Diverged(ArithmeticError):
    """The loss or the parameters became NaN or infinite; training stopped before using them."""

    def __init__(self, epoch: int, step: int, what: str, lr: float):
        self.epoch, self.step, self.what, self.lr = epoch, step, what, lr
        super().__init__(f"training diverged at epoch {epoch}, step {step}: {what} (learning rate {lr:g})")


class Interrupted(Exception):
    """Training stopped on request (Ctrl-C) after finishing a step; `checkpoint` is where it can resume."""

    def __init__(self, epoch: int, step: int, checkpoint=None):
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint
        super().__init__(f"interrupted at epoch {epoch}, step {step}")


# ---------------------------------------------------------------------------------------------------------
# Checkpoints: one .npz (no pickle) with the arrays (model weights under "model.", optimizer state under
# "optim.<param index>.") and a JSON metadata entry with everything else: recipe, position, RNG states,
# scalar optimizer and schedule state, the metrics so far.  serialization.load reads it.

CHECKPOINT_FORMAT = "tinygrad_mnist.checkpoint/1"


def _write_npz(path, arrays: dict, metadata: dict) -> None:
    meta = json.dumps(metadata, allow_nan=False)  # a checkpoint is only written when everything is finite
    with atomic_write(path, "wb") as f:
        np.savez(f, allow_pickle=False, **arrays, **{serialization.METADATA_KEY: np.array(meta)})


def load_checkpoint(path) -> tuple[dict, dict]:
    """(arrays, metadata) of a training checkpoint; SerializationError if the file is not one."""
    arrays, meta = serialization.load(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        what = "a model file, not a training checkpoint" if "model" in meta else "not a training checkpoint"
        raise serialization.SerializationError(f"{path}: {what} (expected format {CHECKPOINT_FORMAT})")
    return arrays, meta


def _finite(params) -> bool:
    return all(np.isfinite(p.data).all() for p in params)


@dataclass
class _Position:
    """Where a run is: `epoch` epochs done, `step` steps of the next one done, with its running sums."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    batch_rng: dict | None = None  # the batch generator's state at the start of epoch `epoch + 1`


def fit(model: nn.Module, ds: Dataset, recipe: Recipe, *, x_eval=None, y_eval=None, eval_split="test",
        progress: bool = True, log=print, checkpoint=None, checkpoint_meta: dict | None = None, resume=None,
        should_stop=None, compiled: bool = True) -> History:
    """Train `model` on ds.x_train with `recipe`; evaluate after every epoch on (x_eval, y_eval).

    Evaluation data default to the test set (Nielsen reports test accuracy per
    epoch too); pass a validation split to keep the test set untouched.

    checkpoint: a path; after every epoch (and when stopping early) the whole state is written there
    atomically, with `checkpoint_meta` added to its metadata.  resume: (arrays, metadata) from
    load_checkpoint; the run goes on exactly where it stopped (same weights, batches, dropout masks).
    should_stop: called after every step; when it returns True the step's state is checkpointed and
    Interrupted is raised.  A non-finite loss raises Diverged before the step is taken, and no
    checkpoint with non-finite parameters is ever written.  compiled=False runs every step eagerly
    instead of replaying a recording (same results).
    """
    if x_eval is None:
        x_eval, y_eval = ds.x_test, ds.y_test
    params = model.parameters()
    opt = make_optimizer(recipe, params)
    n_steps = -(-len(ds.x_train) // recipe.batch_size)
    schedule = make_schedule(recipe, opt, n_steps)
    per_batch = recipe.schedule == "onecycle"
    rng = np.random.default_rng(recipe.seed)
    history = History(recipe=asdict(recipe), data_source=ds.source, is_sample=ds.is_sample, eval_split=eval_split,
                      train_size=len(ds.x_train), eval_size=len(x_eval),
                      environment={"python": platform.python_version(), "numpy": np.__version__,
                                   "tinygrad_mnist": __version__, "platform": platform.platform()})
    train_step = make_train_step(model, opt, recipe, compiled)
    pos = _Position(batch_rng=rng.bit_generator.state)
    if resume is not None:
        pos = _restore(resume, model, opt, schedule, rng, history)

    def save_state(p: _Position) -> None:
        if checkpoint is None:
            return
        if not _finite(params):
            raise Diverged(p.epoch + (p.step > 0), p.step, "the parameters became NaN or infinite", opt.lr)
        arrays = {f"model.{k}": v.data if isinstance(v, Tensor) else np.asarray(v)
                  for k, v in model.state_dict().items()}
        osd = opt.state_dict()
        scalars = {}
        for i, st in osd["state"].items():
            scalars[i] = {}
            for k, v in st.items():
                if isinstance(v, np.ndarray):
                    arrays[f"optim.{i}.{k}"] = v
                else:
                    scalars[i][k] = v
        meta = {**(checkpoint_meta or {}), "format": CHECKPOINT_FORMAT, "recipe": asdict(recipe),
                "position": asdict(p), "engine_rng": engine.rng().bit_generator.state,
                "optimizer": {"state": scalars, "param_groups": osd["param_groups"]},
                "schedule": schedule.state_dict() if schedule is not None else None,
                "history": {k: v for k, v in asdict(history).items() if k in ("epochs", "environment")}}
        _write_npz(checkpoint, arrays, meta)

    try:
        n = len(ds.x_train)
        for epoch in range(pos.epoch + 1, recipe.epochs + 1):
            model.train()
            rng.bit_generator.state = pos.batch_rng
            order = rng.permutation(n)  # the epoch's batches: the same as data.iterate_minibatches(rng=...) gives
            first, loss_sum, correct, seen, prior = pos.step, pos.loss_sum, pos.correct, pos.seen, pos.seconds
            start = last_shown = time.perf_counter()
            bar = tqdm(total=n, initial=seen, desc=f"epoch {epoch}/{recipe.epochs}", unit="img", unit_scale=True,
                       leave=False, disable=not progress, file=sys.stderr, mininterval=0.2)
            for step in range(first, n_steps):
                idx = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
                xb, yb = ds.x_train[idx], ds.y_train[idx]
                try:
                    loss, out = train_step(from_numpy(xb), from_numpy(yb))  # the batch is shared, not copied
                except NonFiniteLoss as e:  # raised before this step touched the weights
                    bar.close()
                    raise Diverged(epoch, step + 1, str(e), opt.lr) from None
                if per_batch:
                    schedule.step()
                value = float(loss.data)
                loss_sum += value * len(yb)
                correct += int((out.data.argmax(axis=1) == yb).sum())
                seen += len(yb)
                bar.update(len(yb))
                now = time.perf_counter()
                if now - last_shown >= 0.2 or step + 1 == n_steps:  # by time: fresh numbers however long a step is
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
                    last_shown = now
                if should_stop is not None and step + 1 < n_steps and should_stop():
                    bar.close()
                    save_state(_Position(epoch - 1, step + 1, loss_sum, correct, seen, prior + now - start,
                                         pos.batch_rng))
                    raise Interrupted(epoch, step + 1, checkpoint)
            bar.close()
            seconds = prior + time.perf_counter() - start
            lr = opt.lr
            if not _finite(params):
                raise Diverged(epoch, n_steps, "the parameters became NaN or infinite", lr)
            if schedule is not None and not per_batch:
                schedule.step()
            acc = evaluate(model, x_eval, y_eval)
            stats = EpochStats(epoch, loss_sum / max(seen, 1), correct / max(seen, 1), acc, seconds,
                               seen / seconds if seconds else 0.0, lr)
            history.epochs.append(stats)
            log(f"epoch {epoch:>2}/{recipe.epochs}: loss {stats.train_loss:.4f}  train acc {stats.train_acc:.4f}  "
                f"{eval_split} acc {acc:.4f}  ({seconds:.1f}s, {stats.samples_per_s:,.0f} img/s, lr {lr:.3g})")
            pos = _Position(epoch, batch_rng=rng.bit_generator.state)
            save_state(pos)
            if should_stop is not None and epoch < recipe.epochs and should_stop():
                raise Interrupted(epoch + 1, 0, checkpoint)
    except (Diverged, Interrupted) as e:
        history.status = "diverged" if isinstance(e, Diverged) else "interrupted"
        history.stopped_at = {"epoch": e.epoch, "step": e.step, "reason": str(e)}
        e.history = history  # the metrics so far, for the caller to write
        raise
    history.status = "completed"
    return history


def _restore(resume, model, opt, schedule, rng, history) -> _Position:
    arrays, meta = resume
    model.load_state_dict({k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")})
    osd = meta["optimizer"]
    state = {int(i): dict(s) for i, s in osd["state"].items()}
    for key, v in arrays.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": osd["param_groups"]})
    if schedule is not None:
        schedule.load_state_dict(meta["schedule"])
    engine.rng().bit_generator.state = meta["engine_rng"]
    names = {f.name for f in fields(EpochStats)}
    history.epochs = [EpochStats(**{k: v for k, v in e.items() if k in names}) for e in meta["history"]["epochs"]]
    pos = _Position(**meta["position"])
    rng.bit_generator.state = pos.batch_rng
    return pos
