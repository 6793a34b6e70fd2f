"""W6: full MNIST epochs of the demo's nielsen, mlp and cnn models, engine vs PyTorch, with peak RSS.

The engine runs twice: eagerly ("engine") and with its step recorded once and replayed through
``tinygrad_mnist.compile`` ("engine+c", what ``python -m tinygrad_mnist train`` does by default).

The engine side trains ``tinygrad_mnist.models.MODELS[name]()`` with the demo's recipe (batch
size, optimizer, lr from ``tinygrad_mnist.train.RECIPES``); the PyTorch side trains a hand-written
mirror of the same architecture (TORCH_MIRRORS below) from the same initial weights, with
``torch.optim``'s version of the same optimizer, on the same shuffled batches. The learning-rate
schedule is left out: it changes the lr between epochs, not the cost of a step. Dropout masks
differ between the systems, so their losses agree only roughly.

Each (model, system) pair runs in a subprocess of its own (``python -m benchmarks.epoch``) so that
its peak RSS is its own: no torch libraries in the engine's process, no left-over arrays from
another run. Everything from the engine is imported lazily: until it exists, that side reports
"skipped: <reason>". Needs the real MNIST files in $TINYGRAD_MNIST_DATA or ../shared/data/mnist.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "TINYGRAD_MNIST_DATA"
RESULT_TAG = "W6RESULT "
SEED = 1234
MODEL_NAMES = ("nielsen", "mlp", "cnn")
# used only when tinygrad_mnist.train.RECIPES can't be imported: the demo's defaults when written
FALLBACK_RECIPES = {
    "nielsen": {"batch_size": 10, "lr": 3.0, "optimizer": "sgd", "weight_decay": 0.0, "loss": "mse"},
    "mlp": {"batch_size": 128, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0},
    "cnn": {"batch_size": 64, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0},
}


# ----------------------------------------------------------------------------------------- data

def find_data() -> tuple[Path | None, str]:
    """The MNIST folder, or None and the reason it wasn't found."""
    candidates = []
    if os.environ.get(DATA_ENV):
        candidates.append(Path(os.environ[DATA_ENV]))
    candidates.append(ROOT.parent / "shared" / "data" / "mnist")
    for d in candidates:
        if all(_idx_path(d, name) is not None for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
            return d, ""
    return None, f"MNIST not found (looked in ${DATA_ENV} and {', '.join(str(c) for c in candidates)})"


def _idx_path(d: Path, name: str) -> Path | None:
    for p in (d / name, d / (name + ".gz")):
        if p.is_file():
            return p
    return None


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data for dims {dims}")
    return data.reshape(dims)


def load_mnist(d: Path):
    def images(name):
        return (read_idx(_idx_path(d, name)).reshape(-1, 784).astype(np.float32) / np.float32(255))

    def labels(name):
        return read_idx(_idx_path(d, name)).astype(np.int64)

    return (images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
            images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"))


# ---------------------------------------------------------------------------------------- models

def _torch_nielsen():
    """Mirror of tinygrad_mnist.models.nielsen(): 784-30-10, sigmoid hidden and output units."""
    from torch import nn

    return nn.Sequential(nn.Linear(784, 30), nn.Sigmoid(), nn.Linear(30, 10), nn.Sigmoid())


def _torch_mlp():
    """Mirror of tinygrad_mnist.models.mlp(): 784-512-256-10 ReLU, Dropout(0.2) after each hidden layer."""
    from torch import nn

    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 256), nn.ReLU(),
                         nn.Dropout(0.2), nn.Linear(256, 10))


def _torch_cnn():
    """Mirror of tinygrad_mnist.models.cnn(): conv5 32 -> pool -> relu -> conv5 64 -> pool -> relu ->
    fc 1024->128 -> relu -> Dropout(0.5) -> fc 128->10 (parameters in the same order)."""
    import torch.nn.functional as F
    from torch import nn

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 5)
            self.conv2 = nn.Conv2d(32, 64, 5)
            self.fc1 = nn.Linear(64 * 4 * 4, 128)
            self.drop = nn.Dropout(0.5)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = x.reshape(-1, 1, 28, 28)
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2(x), 2))
            x = self.drop(F.relu(self.fc1(x.flatten(1))))
            return self.fc2(x)

    return CNN()


# keep in step with tinygrad_mnist/models.py: a shape mismatch makes the torch side report an error
TORCH_MIRRORS = {"nielsen": _torch_nielsen, "mlp": _torch_mlp, "cnn": _torch_cnn}


def build_engine(name: str):
    from tinygrad_mnist.models import MODELS  # lazily: may not exist yet

    return MODELS[name]()


def resolve_recipe(name: str) -> tuple[dict, str]:
    """The demo's recipe for `name` (batch size, optimizer, lr, weight decay), and where it came from."""
    try:
        from tinygrad_mnist.train import RECIPES

        r = RECIPES[name]
        return ({"batch_size": r.batch_size, "lr": r.lr, "optimizer": r.optimizer,
                 "weight_decay": r.weight_decay, "loss": r.loss}, "tinygrad_mnist.train.RECIPES")
    except Exception as e:
        return dict(FALLBACK_RECIPES[name]), f"fallback ({type(e).__name__}: {e})"


def make_optimizer(optim, recipe: dict, params):
    """Works for torch.optim and tinygrad_mnist.optim alike (same constructor arguments)."""
    name, lr, wd = recipe["optimizer"], recipe["lr"], recipe["weight_decay"]
    if name == "sgd":
        return optim.SGD(params, lr=lr, weight_decay=wd)
    if name in ("momentum", "nesterov"):
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=name == "nesterov", weight_decay=wd)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=wd or 1e-2)
    raise ValueError(f"unknown optimizer {name!r}")


def load_weights(params, weights: list[np.ndarray], copy) -> None:
    if len(params) != len(weights):
        raise ValueError(f"model has {len(params)} parameter tensors, the weights file {len(weights)}")
    for i, (p, w) in enumerate(zip(params, weights)):
        if tuple(p.shape) != w.shape:
            raise ValueError(f"parameter {i}: shape {tuple(p.shape)} != initial weights {w.shape}")
        copy(p, w)


# ---------------------------------------------------------------------------------------- memory

def rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler(threading.Thread):
    """Samples RSS every `interval` s; `take_peak()` returns the peak since the last call."""

    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = rss_bytes()
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def take_peak(self) -> int:
        peak, self.peak = max(self.peak, rss_bytes()), rss_bytes()
        return peak

    def stop(self):
        self._stop_event.set()


# -------------------------------------------------------------------------------------- training

class _Parts:
    """What differs between the engine and torch in the training loop; the loop itself is shared."""

    def __init__(self, system: str, loss: str = "cross_entropy"):
        if system.startswith("engine"):
            import tinygrad_mnist
            from tinygrad_mnist import from_numpy, losses, optim

            self.optim = optim
            if loss == "mse":
                # integer labels: mse one-hot encodes them with a recorded op (compile can replay it)
                self.loss = lambda model, xb, yb: losses.mse(model(from_numpy(xb)), from_numpy(yb))
            else:
                self.loss = lambda model, xb, yb: model(from_numpy(xb)).cross_entropy(yb)
            self.item = lambda loss: float(loss.data)
            self.no_grad = tinygrad_mnist.no_grad
            self.logits = lambda model, xb: model(from_numpy(xb)).data
            self.copy = lambda p, w: p.data.__setitem__(Ellipsis, w)
        else:
            import torch
            import torch.nn.functional as F

            eye = np.eye(10, dtype=np.float32)  # one-hot targets for Nielsen's quadratic cost

            self.optim = torch.optim
            if loss == "mse":  # C = 1/(2n) sum ||y - a||^2, the same formula as losses.mse
                self.loss = lambda model, xb, yb: ((model(torch.from_numpy(xb)) - torch.from_numpy(eye[yb])) ** 2
                                                   ).sum() * (0.5 / len(yb))
            else:
                self.loss = lambda model, xb, yb: F.cross_entropy(model(torch.from_numpy(xb)), torch.from_numpy(yb))
            self.item = lambda loss: loss.item()
            self.no_grad = torch.no_grad
            self.logits = lambda model, xb: model(torch.from_numpy(xb)).numpy()

            def copy(p, w):
                with torch.no_grad():
                    p.copy_(torch.from_numpy(w))

            self.copy = copy
        self.compiled = system == "engine+c"

    def make_step(self, model, opt):
        """step(xb, yb) -> loss: the textbook step; for engine+c recorded once, then replayed."""
        def step(xb, yb):
            loss = self.loss(model, xb, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        if self.compiled:
            from tinygrad_mnist import compile

            return compile(step)
        return step


def train_epoch(parts: _Parts, step, xs, ys, order, batch: int, max_steps: int | None):
    """The textbook loop: forward, loss, zero_grad, backward, step. Returns (mean loss, step times)."""
    total, times = 0.0, []
    for start in range(0, len(order), batch):
        t0 = time.perf_counter()
        idx = order[start:start + batch]
        loss = step(xs[idx], ys[idx])
        total += parts.item(loss)  # the demo reads the loss every step too
        times.append(time.perf_counter() - t0)
        if len(times) == max_steps:
            break
    return total / len(times), times


def accuracy(parts: _Parts, model, x, y) -> float:
    model.eval()
    correct = 0
    with parts.no_grad():
        for s in range(0, len(x), 1000):
            correct += int((parts.logits(model, x[s:s + 1000]).argmax(1) == y[s:s + 1000]).sum())
    model.train()
    return correct / len(x)


def worker(system: str, name: str, recipe: dict, epochs: int, max_steps: int | None, threads: int | None,
           weights_path: str | None, eval_limit: int | None = None) -> dict:
    """Runs in the subprocess: train `epochs` epochs; report times, losses, accuracy and RSS."""
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")  # process-wide for the rest of its life
    data_dir, reason = find_data()
    if data_dir is None:
        return {"status": "skipped", "reason": reason}
    try:
        parts = _Parts(system, recipe.get("loss", "cross_entropy"))
        model = build_engine(name) if system.startswith("engine") else TORCH_MIRRORS[name]()
    except (ImportError, AttributeError, KeyError) as e:  # engine or its model zoo not there (yet)
        return {"status": "skipped", "reason": f"{system} model not buildable ({type(e).__name__}: {e})"}
    if system == "torch" and threads:
        import torch

        torch.set_num_threads(threads)
    params = list(model.parameters())
    if weights_path:
        with np.load(weights_path) as f:
            load_weights(params, [f[f"arr_{i}"] for i in range(len(f.files))], parts.copy)
    opt = make_optimizer(parts.optim, recipe, params)
    step = parts.make_step(model, opt)
    model.train()
    xtr, ytr, xte, yte = load_mnist(data_dir)
    xte, yte = xte[:eval_limit], yte[:eval_limit]
    rng = np.random.default_rng(SEED)
    sampler = RssSampler()
    out = {"status": "ok", "recipe": recipe, "initial_weights": "shared" if weights_path else "own init",
           "rss_before_training_mb": rss_bytes() / 2**20, "epochs": []}
    sampler.start()
    for _ in range(epochs):
        order = rng.permutation(len(xtr))
        sampler.take_peak()
        t0 = time.perf_counter()
        loss, times = train_epoch(parts, step, xtr, ytr, order, recipe["batch_size"], max_steps)
        seconds = time.perf_counter() - t0
        peak = sampler.take_peak()
        t1 = time.perf_counter()
        acc = accuracy(parts, model, xte, yte)
        median_step = float(np.median(times))
        out["epochs"].append({
            "seconds": seconds, "steps": len(times), "samples_per_s": len(times) * recipe["batch_size"] / seconds,
            # median step x steps: an estimate of the epoch that ignores bursts of machine noise
            "median_step_s": median_step, "epoch_from_median_s": median_step * len(times),
            "mean_loss": loss, "test_accuracy": acc, "eval_seconds": time.perf_counter() - t1,
            "peak_rss_mb": peak / 2**20,
        })
    sampler.stop()
    # ru_maxrss is in KiB on Linux: the process-lifetime peak, data loading included
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["partial_epoch"] = max_steps is not None
    out["test_images"] = len(xte)
    return out


def _initial_weights(name: str, folder: str) -> tuple[str | None, str]:
    """Build the engine's model once and save its initial parameters, so both systems start equal."""
    try:
        params = build_engine(name).parameters()
    except Exception as e:
        return None, f"engine model unavailable ({type(e).__name__}: {e}); torch uses its own init"
    path = os.path.join(folder, f"{name}_init.npz")
    np.savez(path, *[np.asarray(p.data, dtype=np.float32) for p in params])
    return path, "shared (from tinygrad_mnist.models)"


def run_w6(epochs: int = 1, max_steps: int | None = None, eval_limit: int | None = None,
           threads: int | None = None, timeout_s: float = 3600, models=None) -> dict:
    """Parent side: one subprocess per (model, system); returns the results by model and system."""
    data_dir, reason = find_data()
    if data_dir is None:
        return {"status": "skipped", "reason": reason}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    results: dict = {"status": "ok", "data": str(data_dir), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in models or MODEL_NAMES:
            if name not in MODEL_NAMES:
                raise ValueError(f"W6: unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
            recipe, source = resolve_recipe(name)
            weights, weights_note = _initial_weights(name, tmp)
            print(f"  {name}: recipe {recipe} from {source}; initial weights {weights_note}")
            per = results["models"][name] = {"recipe": recipe, "recipe_source": source, "weights": weights_note}
            for system in ("engine", "engine+c", "torch"):
                cmd = [sys.executable, "-m", "benchmarks.epoch", "--system", system, "--model", name,
                       "--recipe", json.dumps(recipe), "--epochs", str(epochs)]
                if max_steps:
                    cmd += ["--max-steps", str(max_steps)]
                if eval_limit:
                    cmd += ["--eval-limit", str(eval_limit)]
                if threads:
                    cmd += ["--threads", str(threads)]
                if weights:
                    cmd += ["--weights", weights]
                print(f"  W6 {name:<4} {system:<7}", end="", flush=True)
                try:
                    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                          timeout=timeout_s)
                    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
                    if lines:
                        r = json.loads(lines[-1][len(RESULT_TAG):])
                    else:
                        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                        r = {"status": "error", "reason": f"exit {proc.returncode}: " + " | ".join(tail)}
                except subprocess.TimeoutExpired:
                    r = {"status": "error", "reason": f"timed out after {timeout_s:.0f} s"}
                print(" " + describe(r))
                per[system] = r
    return results


def describe(r: dict) -> str:
    if r.get("status") != "ok":
        return f"{r.get('status')}: {r.get('reason')}"
    parts = []
    for i, e in enumerate(r["epochs"], 1):
        parts.append(f"epoch {i}: {e['seconds']:.1f} s (median step {e['median_step_s'] * 1e3:.2f} ms x "
                     f"{e['steps']} = {e['epoch_from_median_s']:.1f} s), loss {e['mean_loss']:.4f}, "
                     f"test acc {e['test_accuracy']:.4f}, peak RSS {e['peak_rss_mb']:.0f} MB")
    partial = " [partial epoch]" if r.get("partial_epoch") else ""
    return "; ".join(parts) + f"; process max RSS {r['ru_maxrss_mb']:.0f} MB{partial}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="W6 worker: MNIST epochs of one model in one system")
    ap.add_argument("--system", choices=("engine", "engine+c", "torch"), required=True)
    ap.add_argument("--model", choices=MODEL_NAMES, required=True)
    ap.add_argument("--recipe", default=None, help="JSON: batch_size, lr, optimizer, weight_decay")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=None, help="stop each epoch after this many batches")
    ap.add_argument("--eval-limit", type=int, default=None, help="test accuracy on the first N test images")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--weights", default=None, help=".npz of initial parameters, in parameters() order")
    a = ap.parse_args(argv)
    recipe = json.loads(a.recipe) if a.recipe else resolve_recipe(a.model)[0]
    try:
        r = worker(a.system, a.model, recipe, a.epochs, a.max_steps, a.threads, a.weights, a.eval_limit)
    except Exception as e:  # reported to the parent as an error, with the reason
        r = {"status": "error", "reason": f"{type(e).__name__}: {e}"}
    print(RESULT_TAG + json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
