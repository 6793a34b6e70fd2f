"""Time to 99.2%: the `train --model fast` recipe in the engine and in PyTorch eager, side by side.

Both systems train the same network (tinygrad_mnist.models.FastCNN and its PyTorch mirror below)
from the same initial weights, on the same shuffled batches, with the same loss (cross-entropy with
label smoothing) and Adam under the same OneCycleLR schedule (the recipe's,
tinygrad_mnist.train.RECIPES["fast"]), one subprocess each (so neither holds the other's libraries
or threads).  Every quarter epoch the training clock stops and the test
accuracy is measured; the first time it reaches the target is reported as training seconds (the
evaluations are not counted), with the accuracy at the end of the run.

    python -m benchmarks.fast                  # seed 0, both systems
    python -m benchmarks.fast --seeds 0,1,2    # three runs of each
    python -m benchmarks.fast --threads 1      # both systems on one thread: per core

Needs the full MNIST in $TINYGRAD_MNIST_DATA or ../shared/data/mnist.  The engine side replays its
compiled step (what `train` does); --eager runs it eagerly too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.epoch import find_data, load_mnist  # noqa: E402

TARGET = 0.992
CHECKS_PER_EPOCH = 4
RESULT_TAG = "FASTRESULT "


def torch_fast(channels=(32, 64)):
    """Mirror of tinygrad_mnist.models.FastCNN (parameters and buffers in the same order)."""
    import torch.nn.functional as F
    from torch import nn

    c1, c2 = channels

    class FastCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, c1, 5, stride=2, padding=2, bias=False)
            self.bn1 = nn.BatchNorm2d(c1)
            self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c2)
            self.conv3 = nn.Conv2d(c2, c2, 3, padding=1, bias=False)
            self.bn3 = nn.BatchNorm2d(c2)
            self.fc = nn.Linear(c2 * 9, 10)

        def forward(self, x):
            x = x.reshape(-1, 1, 28, 28)
            x = F.relu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
            x = F.relu(self.bn2(F.max_pool2d(self.conv2(x), 2)))
            x = F.relu(self.bn3(self.conv3(x)))
            return self.fc(x.flatten(1))

    return FastCNN()


def run_one(system: str, seed: int, eager: bool) -> dict:
    """Train the fast recipe in `system` ("engine" or "torch"); the accuracy after every quarter epoch."""
    import tinygrad_mnist as tm
    from tinygrad_mnist import optim
    from tinygrad_mnist.models import MODELS
    from tinygrad_mnist.train import RECIPES, compute_loss

    recipe = RECIPES["fast"]
    d, why = find_data()
    if d is None:
        return {"skipped": why}
    x_train, y_train, x_test, y_test = load_mnist(d)
    tm.manual_seed(seed)
    model = MODELS["fast"]()  # the initial weights of both systems
    n, bs = len(x_train), recipe.batch_size
    steps = -(-n // bs)
    total = steps * recipe.epochs
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n) for _ in range(recipe.epochs)]
    checks = {steps * k // CHECKS_PER_EPOCH for k in range(1, CHECKS_PER_EPOCH + 1)}

    if system == "engine":
        opt = optim.Adam(model.parameters(), lr=recipe.lr, betas=(0.9, recipe.adam_beta2))
        sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total)

        def step(x, y):
            loss = compute_loss(recipe, model(x), y)  # the recipe's loss, label smoothing included
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        step = tm.compile(step, enabled=not eager)

        def train_step(idx):
            step(tm.from_numpy(x_train[idx]), tm.from_numpy(y_train[idx]))
            sched.step()

        def accuracy():
            model.eval()
            with tm.no_grad():
                pred = np.concatenate([model(tm.from_numpy(x_test[i:i + 1000])).data.argmax(1)
                                       for i in range(0, len(x_test), 1000)])
            model.train()
            return float((pred == y_test).mean())
    else:
        import torch

        if os.environ.get("OMP_NUM_THREADS"):  # --threads (torch's default is one thread per core)
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        tmodel = torch_fast()
        with torch.no_grad():
            for tp, p in zip(list(tmodel.parameters()) + list(tmodel.buffers()),
                             [*model.parameters(), *model.buffers()]):
                tp.copy_(torch.from_numpy(np.array(p.data)))
        topt = torch.optim.Adam(tmodel.parameters(), lr=recipe.lr, betas=(0.9, recipe.adam_beta2))
        tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=recipe.lr, total_steps=total)
        xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)

        def train_step(idx):
            i = torch.from_numpy(idx)
            loss = torch.nn.functional.cross_entropy(tmodel(xt[i]), yt[i], label_smoothing=recipe.label_smoothing)
            topt.zero_grad()
            loss.backward()
            topt.step()
            tsched.step()

        def accuracy():
            tmodel.eval()
            with torch.no_grad():
                pred = tmodel(torch.from_numpy(x_test)).argmax(1).numpy()
            tmodel.train()
            return float((pred == y_test).mean())

    trained, reached, curve = 0.0, None, []
    for epoch in range(recipe.epochs):
        start = time.perf_counter()
        for s in range(steps):
            train_step(orders[epoch][s * bs:(s + 1) * bs])
            if s + 1 in checks:
                trained += time.perf_counter() - start
                acc = accuracy()
                curve.append((round(epoch + (s + 1) / steps, 2), round(trained, 2), acc))
                if reached is None and acc >= TARGET:
                    reached = trained
                start = time.perf_counter()
    return {"system": system + ("" if system == "torch" or eager else "+c"), "seed": seed, "train_s": trained,
            "time_to_target_s": reached, "final_acc": curve[-1][2], "curve": curve}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fast", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    ap.add_argument("--systems", default="engine,torch", help="engine and/or torch (default both)")
    ap.add_argument("--eager", action="store_true", help="also run the engine without compile")
    ap.add_argument("--threads", type=int, help="BLAS/OpenMP threads of both systems (default: as the machine is "
                    "set); 1 compares them per core")
    ap.add_argument("--one", nargs=3, metavar=("SYSTEM", "SEED", "EAGER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        system, seed, eager = args.one
        print(RESULT_TAG + json.dumps(run_one(system, int(seed), eager == "1")))
        return 0
    runs = [(s, seed, e) for seed in map(int, args.seeds.split(",")) for s in args.systems.split(",")
            for e in ((False, True) if s == "engine" and args.eager else (False,))]
    env = dict(os.environ)
    if args.threads is not None:
        if args.threads < 1:
            ap.error(f"--threads: need at least 1, got {args.threads}")
        env.update(OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    threads = "as the machine is set" if args.threads is None else f"{args.threads} thread(s) each"
    print(f"fast recipe, time to {TARGET:.1%} test accuracy (training seconds; evaluations not counted; {threads})")
    print(f"{'system':<10} {'seed':>4} {'to 99.2%':>9} {'train s':>8} {'final acc':>9}  accuracy every 1/4 epoch")
    for system, seed, eager in runs:
        p = subprocess.run([sys.executable, "-m", "benchmarks.fast", "--one", system, str(seed), str(int(eager))],
                           capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, env=env)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith(RESULT_TAG)]
        if p.returncode or not lines:
            print(f"{system:<10} {seed:>4}  failed: {p.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(lines[0][len(RESULT_TAG):])
        if "skipped" in r:
            print(f"{system:<10} {seed:>4}  skipped: {r['skipped']}")
            continue
        reached = "never" if r["time_to_target_s"] is None else f"{r['time_to_target_s']:.1f}"
        curve = " ".join(f"{acc:.4f}" for _, _, acc in r["curve"])
        print(f"{r['system']:<10} {seed:>4} {reached:>9} {r['train_s']:>8.1f} {r['final_acc']:>9.4f}  {curve}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
