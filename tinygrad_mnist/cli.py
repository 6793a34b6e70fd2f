"""Command line: python -m tinygrad_mnist {train,evaluate,predict,graph,download} ...

    python -m tinygrad_mnist train --model cnn --save cnn.npz
    python -m tinygrad_mnist train --resume cnn.ckpt.npz      # after Ctrl-C, a crash or a reboot
    python -m tinygrad_mnist evaluate --load cnn.npz
    python -m tinygrad_mnist predict --load cnn.npz digit.png more_digits/
    python -m tinygrad_mnist graph --model mlp -o graph.svg

Every argument is checked before the first training step.  Anything a user can get wrong ends in one
line on stderr, `error: <what> (<where>): <how to fix>`, and an exit code per kind of problem (EXIT_CODES);
--debug (or TINYGRAD_MNIST_DEBUG=1) shows the traceback as well.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import traceback
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from . import data, serialization
from .fileio import write_text_atomic
from .train import (
    RECIPES,
    WHOLE_RUN_SCHEDULES,
    Diverged,
    Interrupted,
    Recipe,
    build_model,
    evaluate,
    fit,
    load_checkpoint,
    predict_logits,
)
from .viz import command as viz_command

DEBUG_ENV = "TINYGRAD_MNIST_DEBUG"

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_IO, EXIT_DIVERGED, EXIT_MISSING_DEPENDENCY = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM, as shells report them
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug: rerun with --debug and report the traceback)",
    EXIT_USAGE: "bad command line: an unknown option or a value out of range",
    EXIT_IO: "data or file problem: missing, corrupt or mismatched data, model or image files, an unwritable "
             "output path, a full disk",
    EXIT_DIVERGED: "training diverged (NaN or infinite loss), or a model file holds NaN/infinite weights",
    EXIT_MISSING_DEPENDENCY: "an optional program or package is missing (matplotlib for --plot, Graphviz's dot)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); train --save wrote a checkpoint to resume from",
    EXIT_TERMINATED: "terminated (SIGTERM, e.g. `kill` or a job scheduler); handled like Ctrl-C",
}

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
MAX_IMAGE_SIDE = 4096  # a digit photo needs far less; bigger images are rejected before they are decoded


class CLIError(Exception):
    """A problem the user can fix, reported as one line: error: <what> (<where>): <how to fix>."""

    def __init__(self, what: str, where=None, fix: str | None = None, code: int = EXIT_USAGE):
        self.what, self.where, self.fix, self.code = what, where, fix, code
        super().__init__(self.line())

    def line(self) -> str:
        text = self.what + (f" ({self.where})" if self.where is not None else "")
        text += f": {self.fix}" if self.fix else ""
        return "error: " + " ".join(text.split())  # one line, however the parts were wrapped


# ---------------------------------------------------------------------------------------------------------
# output that survives a closed pipe (`... | head -1`): the run goes on, only the printing stops


def say(*parts, file=None) -> None:
    stream = sys.stdout if file is None else file
    try:
        print(*parts, file=stream, flush=True)
    except BrokenPipeError:
        if stream is sys.stdout:  # point stdout at /dev/null, so the final flush at exit can't fail either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    except (OSError, ValueError):  # stderr closed as well: nothing left to tell
        pass


def warn(message: str) -> None:
    say(f"warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------
# argument types: a value out of range is a usage error naming the option, before anything runs


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _finite_float_at_least_zero(what: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{what} must be a finite number >= 0, got {text}")
        return value
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message and exits; we want our one line
        raise CLIError(message, "command line", f"see {self.prog} --help")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help=f"show tracebacks and details (or set {DEBUG_ENV}=1)")


def _add_data_args(p: argparse.ArgumentParser, dataset_default="mnist") -> None:
    p.add_argument("--data", metavar="DIR", help="directory with the four MNIST files (gz or raw); default: "
                   f"${data.ENV_VAR}, then the cache dir, then a download, then the bundled sample")
    p.add_argument("--dataset", choices=sorted(data.DATASETS), default=dataset_default)
    p.add_argument("--no-download", action="store_true", help="never download; fall back to the bundled sample")


def _epilog() -> str:
    codes = "\n".join(f"  {code:>3}  {what}" for code, what in EXIT_CODES.items())
    return f"exit codes:\n{codes}\n\nerrors are one line on stderr; --debug (or {DEBUG_ENV}=1) adds the traceback."


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m tinygrad_mnist", epilog=_epilog(),
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Train and inspect MNIST models written as tensor math.")
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, **kw):
        p = sub.add_parser(name, epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        _add_common(p)
        return p

    t = command("train", help="train a model and report test accuracy")
    t.add_argument("--model", choices=sorted(RECIPES), help="default mlp")
    t.add_argument("--epochs", type=_int_at_least(1))
    t.add_argument("--batch-size", type=_int_at_least(1))
    t.add_argument("--lr", type=_finite_float_at_least_zero("the learning rate"))
    t.add_argument("--optimizer", choices=["sgd", "momentum", "nesterov", "adam", "adamw"])
    t.add_argument("--schedule", choices=["none", "step", "cosine", "onecycle"])
    t.add_argument("--weight-decay", type=_finite_float_at_least_zero("the weight decay"))
    t.add_argument("--seed", type=_int_at_least(0), help="default 0")
    t.add_argument("--validation", action="store_true",
                   help="hold out the last 1/6 of the training images (Nielsen's 50,000/10,000 split) and report "
                        "validation accuracy per epoch; the test set is used once, at the end")
    t.add_argument("--limit", type=_int_at_least(1), metavar="N",
                   help="train on the first N training images only")
    t.add_argument("--save", metavar="PATH", help="write the trained model to PATH (.npz), and after every epoch "
                   "a checkpoint to PATH.ckpt.npz (removed when the run completes)")
    t.add_argument("--resume", metavar="CKPT", help="continue the run a checkpoint (or a finished run's --save "
                   "model file) was written by: recipe, data and --save come from it; gives exactly the weights of "
                   "an uninterrupted run.  With --epochs N, train up to N epochs (not with a cosine or onecycle "
                   "schedule: those depend on the total)")
    t.add_argument("--metrics-json", metavar="PATH", help="write per-epoch metrics as (strict) JSON")
    t.add_argument("--plot", metavar="DIR", help="write loss/accuracy curves, a confusion matrix and "
                   "misclassified digits (needs matplotlib: pip install matplotlib)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch only)")
    t.add_argument("--no-compile", action="store_true", help="run every training step eagerly instead of "
                   "recording it once and replaying it (same results, slower on small models)")
    _add_data_args(t, dataset_default=None)

    e = command("evaluate", help="test accuracy of a saved model")
    e.add_argument("--load", metavar="PATH", required=True, help="a model file (train --save) or a checkpoint")
    _add_data_args(e, dataset_default=None)

    p = command("predict", help="classify image files with a saved model, one line per image")
    p.add_argument("--load", metavar="PATH", required=True)
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="grayscale or colour images of one digit each (28x28 or larger; resized), or directories "
                        "of them")
    p.add_argument("--probs", action="store_true", help="also print the probability of every digit")

    g = command("graph", help="draw the computation graph of one training step")
    viz_command.add_graph_arguments(g)  # the options live with the drawing code (tinygrad_mnist/viz/command.py)

    d = command("download", help="download and verify the full data set into the cache dir")
    d.add_argument("--dataset", choices=sorted(data.DATASETS), default="mnist")
    d.add_argument("--dest", metavar="DIR", help=f"target directory (default: {data.cache_dir('mnist')})")
    return parser


# ---------------------------------------------------------------------------------------------------------
# checks made before any work starts


def _writable_dir(d: Path, flag: str) -> None:
    """Create `d` (and parents) if missing and make sure a file can be created in it."""
    for part in (d, *d.parents):  # the nearest existing ancestor must be a directory
        if part.exists():
            if not part.is_dir():
                raise CLIError(f"{flag}: {part} is a file, not a directory", d, "choose another path", EXIT_IO)
            break
    try:
        d.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=d).close()  # the honest test: access() says yes to root on a read-only disk
    except OSError as e:
        raise CLIError(f"{flag}: can't write into directory {d}", e.strerror or type(e).__name__,
                       "choose a writable place", EXIT_IO) from None


def _output_file(path, flag: str) -> Path:
    if not str(path).strip():
        raise CLIError(f"{flag} is empty", "command line", "give a file name")
    p = Path(path).expanduser()
    if p.is_dir():
        raise CLIError(f"{flag} names a directory, expected a file", p, f"give a file name, e.g. {p / 'out'}",
                       EXIT_IO)
    if p.exists() and not p.is_file():  # a device or a pipe: renaming a new file over it would replace it
        raise CLIError(f"{flag} names something that is not a regular file", p, "give a file name", EXIT_IO)
    _writable_dir(p.parent, flag)
    return p


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError("--plot needs matplotlib, which is not installed", "import matplotlib",
                       "pip install matplotlib  (or: pip install 'tinygrad_mnist[plot]'), or drop --plot",
                       EXIT_MISSING_DEPENDENCY) from None


def _need_dot(output: Path) -> None:
    if output.suffix.lower() != ".dot" and shutil.which("dot") is None:
        raise CLIError(f"drawing {output.suffix} files needs Graphviz's `dot` program, which is not on PATH",
                       output, "install it (apt-get install graphviz / brew install graphviz / conda install "
                       "graphviz), or write DOT text with -o graph.dot", EXIT_MISSING_DEPENDENCY)


def checkpoint_path(save) -> Path:
    """Where `train --save m.npz` keeps its checkpoint: m.ckpt.npz beside it."""
    p = Path(save)
    return p.with_name((p.name[:-4] if p.name.endswith(".npz") else p.name) + ".ckpt.npz")


def _load_data(args, dataset: str) -> data.Dataset:
    return data.load_mnist(args.data, dataset=dataset, download=not args.no_download, details=args.debug)


def _fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """A cheap hash of a training set: resuming on other data would not be the same run."""
    import hashlib

    h = hashlib.blake2b(digest_size=12)
    h.update(np.ascontiguousarray(y).tobytes())
    h.update(np.ascontiguousarray(x[::97]).tobytes())
    return f"{len(y)}:{h.hexdigest()}"


# ---------------------------------------------------------------------------------------------------------
# train

RECIPE_OPTIONS = ("model", "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "seed", "limit",
                  "dataset")


def cmd_train(args) -> int:
    resume = None
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k in RECIPE_OPTIONS if k != "epochs" and getattr(args, k) is not None]
        given += ["--validation"] if args.validation else []
        if given:
            raise CLIError(f"--resume continues a run exactly as it started; {', '.join(given)} can't change it",
                           "command line", f"drop {', '.join(given)} (or start a new run without --resume)")
        resume = _read_checkpoint(args.resume)
        _check_more_epochs(args, resume[1])
        if args.epochs is not None:
            resume[1]["recipe"]["epochs"] = args.epochs
        started = resume[1]["run"]
        args.model, args.limit, args.validation = started["model"], started["limit"], started["validation"]
        args.dataset = started["dataset"]
        if args.data is None:
            args.data = started["data"]
        if args.save is None:
            args.save = started["save"]
        # a field the checkpoint lacks is one the run's code did not have yet: its default is what that run used
        recipe = Recipe(**resume[1]["recipe"])
    else:
        args.model = args.model or "mlp"
        args.dataset = args.dataset or "mnist"
        recipe = replace(RECIPES[args.model], **{k: v for k, v in dict(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
            schedule=args.schedule, weight_decay=args.weight_decay, seed=args.seed).items() if v is not None})

    # every output is checked (and its directory created) before the data are loaded or a step is taken
    save = _output_file(args.save, "--save").resolve() if args.save is not None else None
    ckpt = checkpoint_path(save) if save else None
    if save and ckpt.is_dir():
        raise CLIError(f"--save: the checkpoint path {ckpt} is a directory", ckpt, "remove it or choose another "
                       "--save name", EXIT_IO)
    metrics = _output_file(args.metrics_json, "--metrics-json") if args.metrics_json is not None else None
    if args.plot is not None:
        if not args.plot.strip():
            raise CLIError("--plot is empty", "command line", "give a directory name")
        _writable_dir(Path(args.plot).expanduser(), "--plot")
        _need_matplotlib()
    if save and ckpt.exists() and resume is None:  # don't let a fresh run overwrite the progress of an older one
        raise CLIError("an unfinished run left a checkpoint here", ckpt,
                       f"continue it with: python -m tinygrad_mnist train --resume {ckpt}  (or delete it to start "
                       "over)")
    outs = [p.resolve() for p in (save, ckpt, metrics) if p is not None]
    if len(set(outs)) < len(outs):
        raise CLIError("--save and --metrics-json name the same file", args.metrics_json, "give each its own path")
    if args.plot and Path(args.plot).expanduser().resolve() in outs:
        raise CLIError("--plot names a directory to create, and --save or --metrics-json writes a file there",
                       args.plot, "give --plot a directory name of its own")

    ds = _load_data(args, args.dataset)
    if args.limit:
        ds = replace(ds, x_train=ds.x_train[:args.limit], y_train=ds.y_train[:args.limit])
    if args.validation and len(ds.y_train) < 6:
        raise CLIError(f"--validation holds out 1/6 of the training images, and there are only {len(ds.y_train)}",
                       "--limit", "train on at least 6 images")
    from .generator import manual_seed

    manual_seed(recipe.seed)
    model = build_model(recipe.model)
    if args.validation:
        split = data.nielsen_split(ds)
        train_ds = replace(ds, x_train=split.x_train, y_train=split.y_train)
        x_eval, y_eval, eval_split = split.x_val, split.y_val, "validation"
    else:
        train_ds, x_eval, y_eval, eval_split = ds, ds.x_test, ds.y_test, "test"
    fingerprint = _fingerprint(train_ds.x_train, train_ds.y_train)
    if resume is not None and resume[1]["run"]["fingerprint"] != fingerprint:
        raise CLIError("the training data differ from the ones the checkpoint was trained on", args.resume,
                       f"pass --data with the files the run started with ({resume[1]['run']['source']})", EXIT_IO)
    run_info = {"model": recipe.model, "dataset": args.dataset, "limit": args.limit, "validation": args.validation,
                "data": str(Path(args.data).expanduser().resolve()) if args.data else None,
                "save": str(save) if save else None, "source": ds.source, "fingerprint": fingerprint}

    stop = {"asked": False, "code": EXIT_INTERRUPTED}

    def on_signal(signum, frame):
        if stop["asked"]:  # a second Ctrl-C: stop at once (the last checkpoint stays as it was)
            raise KeyboardInterrupt
        stop["asked"] = True
        stop["code"] = EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED

    # From here on Ctrl-C (or a plain `kill`) finishes the current step, writes the checkpoint and exits.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _train(args, SimpleNamespace(recipe=recipe, resume=resume, model=model, ds=ds, train_ds=train_ds,
                                            x_eval=x_eval, y_eval=y_eval, eval_split=eval_split, save=save, ckpt=ckpt,
                                            metrics=metrics, info=run_info, stop=stop))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_more_epochs(args, meta: dict) -> None:
    """--resume with --epochs N: N may not be fewer than the epochs begun, nor change a schedule fixed by the
    total (cosine, onecycle); without --epochs a finished run has nothing left to do."""
    recipe, pos = meta["recipe"], meta["position"]
    begun = pos["epoch"] + (pos["step"] > 0)
    if args.epochs is None:
        if pos["epoch"] >= recipe["epochs"]:
            raise CLIError(f"this run is complete ({pos['epoch']} of {recipe['epochs']} epochs)", args.resume,
                           f"give --epochs N with N > {pos['epoch']} to train it longer")
        return
    if args.epochs < max(begun, 1) or (args.epochs == pos["epoch"] and pos["epoch"] >= recipe["epochs"]):
        raise CLIError(f"--epochs {args.epochs}: the run has done {pos['epoch']} epoch(s)"
                       + (f" and {pos['step']} step(s) of the next" if pos["step"] else ""), "command line",
                       f"give --epochs N with N > {pos['epoch']}")
    if args.epochs != recipe["epochs"] and recipe["schedule"] in WHOLE_RUN_SCHEDULES:
        raise CLIError(f"--epochs can't change a {recipe['schedule']} schedule: its learning rate at every step "
                       f"depends on the total number of epochs ({recipe['epochs']})", "command line",
                       f"start a new run with --epochs {args.epochs} (the schedule then spans them all), or train "
                       f"with --schedule none or step to be able to extend a run")


def _train(args, run) -> int:
    """The run itself, once everything is checked: train, then test, save, write metrics and plots."""
    recipe, model, ds, train_ds, save, ckpt, metrics = (run.recipe, run.model, run.ds, run.train_ds, run.save,
                                                         run.ckpt, run.metrics)
    what = "resuming" if run.resume else "training"
    say(f"{what} {recipe.model} ({model.num_parameters():,} parameters) on {len(train_ds.x_train):,} images "
        f"from {ds.source}: {recipe.epochs} epochs, batch {recipe.batch_size}, {recipe.optimizer} "
        f"lr {recipe.lr:g}, {recipe.loss} loss"
        + (f" with label smoothing {recipe.label_smoothing:g}" if recipe.label_smoothing else "")
        + (f" (held out for validation: {len(run.y_eval):,})" if args.validation else ""))
    if run.resume:
        pos = run.resume[1]["position"]
        say(f"resuming from {args.resume}: {pos['epoch']} epoch(s) and {pos['step']} step(s) of the next done")

    quiet_numpy = np.errstate(all="warn" if args.debug else "ignore")  # a divergence is reported in one line below
    try:
        with quiet_numpy:
            history = fit(model, train_ds, recipe, x_eval=run.x_eval, y_eval=run.y_eval, eval_split=run.eval_split,
                          progress=not args.no_progress, log=say, checkpoint=ckpt,
                          checkpoint_meta={"run": run.info}, resume=run.resume,
                          should_stop=lambda: run.stop["asked"], compiled=not args.no_compile)
    except Diverged as e:
        if metrics:
            _write_metrics(metrics, e.history)
        kept = f"; the last good checkpoint is {ckpt}" if ckpt and ckpt.exists() else ""
        raise CLIError("training diverged", f"epoch {e.epoch}, step {e.step}: {e.what}",
                       f"lower the learning rate, e.g. --lr {recipe.lr / 10:g} (it was {recipe.lr:g}){kept}",
                       EXIT_DIVERGED) from None
    except Interrupted as e:
        if metrics:
            _write_metrics(metrics, e.history)
        how = "interrupted" if run.stop["code"] == EXIT_INTERRUPTED else "terminated"
        if ckpt:
            say(f"{how} at epoch {e.epoch}, step {e.step}: checkpoint saved to {ckpt}; resume with: "
                f"python -m tinygrad_mnist train --resume {ckpt}", file=sys.stderr)
        else:
            say(f"{how} at epoch {e.epoch}, step {e.step}: nothing saved (train with --save PATH to be able "
                "to resume)", file=sys.stderr)
        return run.stop["code"]
    except OSError as e:  # only checkpoint writes touch the disk during training: a full disk, a lost mount
        kept = f"the last complete checkpoint is kept; resume it with --resume {ckpt}" if ckpt.exists() else \
            "no checkpoint was completed"
        raise CLIError("can't write the checkpoint", ckpt, f"{e.strerror or e}; free space, then: {kept}",
                       EXIT_IO) from None
    except KeyboardInterrupt:
        kept = f"; the last checkpoint is {ckpt}" if ckpt and ckpt.exists() else ""
        say(f"interrupted twice: stopped at once{kept}", file=sys.stderr)
        return EXIT_INTERRUPTED

    last = history.epochs[-1] if history.epochs else None
    if run.eval_split == "test" and last is not None and last.epoch == recipe.epochs:
        history.test_acc = last.eval_acc  # fit just measured this model on the test set: don't pay for it twice
    else:
        history.test_acc = evaluate(model, ds.x_test, ds.y_test)
    note = " (bundled sample, not the full MNIST test set)" if ds.is_sample else ""
    say(f"test accuracy: {history.test_acc:.4f} on {len(ds.x_test):,} images{note}")
    if save:
        try:
            # the final checkpoint (written after the last epoch) goes into the model file: the run can go on
            final = load_checkpoint(ckpt) if ckpt and ckpt.exists() else None
            serialization.save(model, save, metadata={"model": recipe.model, "dataset": args.dataset,
                                                      "test_acc": history.test_acc, "recipe": history.recipe,
                                                      "data": ds.source}, train_state=final)
        except OSError as e:
            raise CLIError("can't write the model", save, f"{e.strerror or e}; free space or fix the path, then "
                           f"finish the run with: python -m tinygrad_mnist train --resume {ckpt}", EXIT_IO) from None
        if ckpt:
            ckpt.unlink(missing_ok=True)  # the run is complete: nothing left to resume
        say(f"saved model to {args.save}")
    if metrics:
        _write_metrics(metrics, history)
        say(f"wrote metrics to {args.metrics_json}")
    if args.plot:
        from . import plots

        logits = predict_logits(model, ds.x_test)
        try:
            for path in plots.write_all(Path(args.plot).expanduser(), history, ds.x_test, ds.y_test, logits):
                say(f"wrote {path}")
        except OSError as e:
            raise CLIError("can't write the plots", args.plot, f"{e.strerror or e}", EXIT_IO) from None
    return EXIT_OK


def _write_metrics(path: Path, history) -> None:
    try:
        write_text_atomic(path, json.dumps(history.to_dict(), indent=2, allow_nan=False) + "\n")
    except OSError as e:
        raise CLIError("can't write the metrics", path, f"{e.strerror or e}", EXIT_IO) from None


def _read_checkpoint(path):
    p = Path(path).expanduser()
    if not p.is_file():
        raise CLIError("no checkpoint file", p, "train with --save PATH; its checkpoint is PATH.ckpt.npz, kept "
                       "until the run completes", EXIT_IO)
    state = _model_train_state(p)
    if state is not None and "run" in state[1]:  # a finished run's model file: it goes on from its last epoch
        return state
    try:
        arrays, meta = load_checkpoint(p)
    except serialization.SerializationError as e:
        fix = f"resume from the checkpoint, {checkpoint_path(p)}" if "a model file" in str(e) else \
            "give the PATH.ckpt.npz file that train --save PATH writes"
        raise CLIError("not a training checkpoint", p, fix, EXIT_IO) from None
    if "run" not in meta:
        raise CLIError("this checkpoint was not written by the command line", p, "resume it with train.fit(resume=)",
                       EXIT_IO)
    return arrays, meta


def _model_train_state(p: Path):
    """The final training state a model file written by train --save carries (None: an older file, or not
    written by train)."""
    try:
        return serialization.load_train_state(p)
    except (serialization.SerializationError, OSError, KeyError):
        return None


# ---------------------------------------------------------------------------------------------------------
# evaluate / predict


def _load_model(path):
    p = Path(path).expanduser()
    if not p.is_file():
        raise CLIError("no model file", p, f"train one with: python -m tinygrad_mnist train --save {path}", EXIT_IO)
    state, meta = serialization.load(p)
    if "format" in meta and "run" in meta:  # a training checkpoint: its model part
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        meta = {"model": meta["run"]["model"], "dataset": meta["run"]["dataset"]}
    name = meta.get("model")
    if name not in RECIPES:
        raise CLIError(f"the file's metadata names model {name!r}, expected one of {sorted(RECIPES)}", p,
                       "load a file written by train --save", EXIT_IO)
    bad = [k for k, v in state.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:
        raise CLIError(f"the model's weights are NaN or infinite ({', '.join(bad[:3])}"
                       f"{', ...' if len(bad) > 3 else ''})", p,
                       "it comes from a diverged run; train again with a smaller --lr", EXIT_DIVERGED)
    model = build_model(name)
    try:
        model.load_state_dict(state)
    except (ValueError, KeyError) as e:
        raise CLIError(f"the file does not fit a {name} model: {e}", p, "load a file written by train --save",
                       EXIT_IO) from None
    return model, meta


def cmd_evaluate(args) -> int:
    model, meta = _load_model(args.load)
    ds = _load_data(args, args.dataset or meta.get("dataset", "mnist"))
    acc = evaluate(model, ds.x_test, ds.y_test)
    note = " (not the full MNIST test set)" if ds.is_sample else ""
    say(f"{meta['model']}: test accuracy {acc:.4f} on the {len(ds.x_test):,} test images of {ds.source}{note}")
    return EXIT_OK


def load_digit_image(path) -> np.ndarray:
    """An image file as one MNIST-style row: white digit on black, 20x20 box, centre of mass at the middle."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check the size ourselves
            img = Image.open(path)
        w, h = img.size
        if max(w, h) > MAX_IMAGE_SIDE:
            raise CLIError(f"image too large: {w}x{h} pixels, the limit is {MAX_IMAGE_SIDE} per side", path,
                           "scale it down (a digit needs 28x28 to a few hundred pixels)", EXIT_IO)
        img = img.convert("L")
    except Image.DecompressionBombError:
        raise CLIError("image too large", path, "scale it down (a digit needs 28x28 to a few hundred pixels)",
                       EXIT_IO) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        why = "not an image file PIL can read" if isinstance(e, UnidentifiedImageError) else \
            (getattr(e, "strerror", None) or str(e))
        raise CLIError("can't read image", path, f"{why}; give a PNG, JPEG, BMP, ... of one digit", EXIT_IO) from None
    a = np.asarray(img, dtype=np.float32) / 255.0
    if a.mean() > 0.5:  # dark ink on light paper: MNIST digits are light on dark
        a = 1.0 - a
    if a.shape == (28, 28):
        return a.reshape(1, 784)
    ink = np.argwhere(a > 0.2)
    if len(ink):  # crop to the digit
        (top, left), (bottom, right) = ink.min(0), ink.max(0) + 1
        a = a[top:bottom, left:right]
    h, w = a.shape
    scale = 20.0 / max(h, w)  # MNIST: the digit's longer side is 20 px ...
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    a = np.asarray(Image.fromarray((a * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
                   dtype=np.float32) / 255.0
    h, w = a.shape
    # ... and its centre of mass sits at the centre of the 28x28 field
    total = a.sum()
    cy, cx = ((np.indices(a.shape) * a).sum(axis=(1, 2)) / total) if total else (h / 2, w / 2)
    top = int(np.clip(round(14 - cy), 0, 28 - h))
    left = int(np.clip(round(14 - cx), 0, 28 - w))
    canvas = np.zeros((28, 28), np.float32)
    canvas[top:top + h, left:left + w] = a
    return canvas.reshape(1, 784)


def _image_files(items) -> list[Path]:
    files = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise CLIError("no image files in directory", p, f"put {', '.join(sorted(IMAGE_SUFFIXES))} files "
                               "there or name the images", EXIT_IO)
            files += found
        else:
            files.append(p)
    return files


def cmd_predict(args) -> int:
    model, meta = _load_model(args.load)
    files = _image_files(args.images)
    failed = 0
    for path in files:
        try:
            x = load_digit_image(path)
        except CLIError as e:
            if len(files) == 1:
                raise
            say(e.line(), file=sys.stderr)  # report it and go on with the other images
            failed += 1
            continue
        if x.max() - x.min() < 0.1:
            warn(f"{path} looks blank (no digit found); its prediction means nothing")
        out = predict_logits(model, x)[0].astype(np.float64)
        if meta["model"] == "nielsen":  # sigmoid outputs: normalise for display
            probs = out / out.sum() if out.sum() > 0 else np.full(10, 0.1)
        else:
            e = np.exp(out - out.max())
            probs = e / e.sum()
        digit = int(probs.argmax())
        extra = "  " + " ".join(f"{d}:{p:.2f}" for d, p in enumerate(probs)) if args.probs else ""
        say(f"{path}: {digit} ({probs[digit]:.1%}){extra}")
    if failed:
        raise CLIError(f"{failed} of {len(files)} images could not be read", "see above", "fix or remove them",
                       EXIT_IO)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# graph / download


def cmd_graph(args) -> int:
    output = _output_file(args.output, "-o")
    if output.suffix.lower() not in (".svg", ".png", ".pdf", ".dot"):
        raise CLIError(f"-o {args.output}: unknown file type {output.suffix or '(none)'!r}", "command line",
                       "use a name ending in .svg, .png, .pdf or .dot")
    _need_dot(output)
    from . import viz

    try:
        dot = viz_command.draw_step(args)
    except ValueError as e:  # an --expand or --highlight name the graph does not have
        raise CLIError(str(e).removeprefix("draw_graph: "), "command line",
                       "choose one of the names listed") from None
    try:
        path = viz.render_graph(dot, output)
    except OSError as e:
        raise CLIError("can't write the graph", output, f"{e.strerror or e}", EXIT_IO) from None
    say(f"wrote {path}")
    return EXIT_OK


def cmd_download(args) -> int:
    dest = Path(args.dest).expanduser() if args.dest else data.cache_dir(args.dataset)
    _writable_dir(dest, "--dest")
    dest = data.download_mnist(dest, dataset=args.dataset)
    say(f"{args.dataset} is in {dest}; set {data.ENV_VAR}={dest} or pass --data {dest}")
    return EXIT_OK


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "graph": cmd_graph,
            "download": cmd_download}


_DATA_WHERE = re.compile(r"^(--data \S+|\S+): (.+)$", re.S)


def _error_line(e: BaseException) -> tuple[str, int]:
    """The one line and exit code for an exception that reached the top."""
    if isinstance(e, CLIError):
        return e.line(), e.code
    if isinstance(e, data.DataError):  # "<file>: <what>[; <fix>]" -> error: <what> (<file>): <fix>
        m = _DATA_WHERE.match(str(e))
        if m and ("/" in m[1] or m[1].startswith(("--", "$"))):
            what, _, fix = m[2].partition("; ")
            return CLIError(what, m[1], fix or "replace it with a good copy (python -m tinygrad_mnist download "
                            "fetches verified files)", EXIT_IO).line(), EXIT_IO
        return CLIError(str(e), code=EXIT_IO).line(), EXIT_IO
    if isinstance(e, serialization.SerializationError):  # "<file>: <what>"
        where, _, what = str(e).partition(": ")
        return CLIError(what or where, where if what else None, "load a file written by train --save").line(), EXIT_IO
    if isinstance(e, MemoryError):
        return CLIError("out of memory", "this machine", "use a smaller --batch-size or --limit").line(), EXIT_IO
    if isinstance(e, OSError):
        where = e.filename if getattr(e, "filename", None) else "file system"
        return CLIError(e.strerror or str(e), where, "check the path and free space").line(), EXIT_IO
    return (CLIError(f"internal error: {e}", type(e).__name__,
                     "rerun with --debug for the traceback and please report it").line(), EXIT_INTERNAL)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    debug = bool(os.environ.get(DEBUG_ENV)) or "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        args.debug = debug
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        say("interrupted: stopped before anything was finished (train --save keeps a checkpoint after each epoch)",
            file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if debug:
            traceback.print_exc()
        line, code = _error_line(e)
        say(line, file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
