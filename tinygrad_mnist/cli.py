"""Command line: python -m tinygrad_mnist {train,evaluate,predict,graph,download} ...

    python -m tinygrad_mnist train --model cnn --save cnn.npz
    python -m tinygrad_mnist evaluate --load cnn.npz
    python -m tinygrad_mnist predict --load cnn.npz digit.png
    python -m tinygrad_mnist graph --model mlp -o graph.svg
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import data, serialization
from .train import RECIPES, build_model, evaluate, fit, predict_logits
from .viz import command as viz_command


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="directory with the four MNIST files (gz or raw); default: "
                   f"${data.ENV_VAR}, then the cache dir, then a download, then the bundled sample")
    p.add_argument("--dataset", choices=sorted(data.DATASETS), default="mnist")
    p.add_argument("--no-download", action="store_true", help="never download; fall back to the bundled sample")


def _load_data(args) -> data.Dataset:
    return data.load_mnist(args.data, dataset=args.dataset, download=not args.no_download)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tinygrad_mnist",
                                     description="Train and inspect MNIST models written as tensor math.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model and report test accuracy")
    t.add_argument("--model", choices=sorted(RECIPES), default="mlp")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer", choices=["sgd", "momentum", "nesterov", "adam", "adamw"])
    t.add_argument("--schedule", choices=["none", "step", "cosine"])
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--validation", action="store_true",
                   help="hold out the last 10,000 training images (Nielsen's 50,000/10,000 split) and report "
                        "validation accuracy per epoch; the test set is used once, at the end")
    t.add_argument("--limit", type=int, metavar="N", help="train on the first N training images only")
    t.add_argument("--save", metavar="PATH", help="write the trained model to PATH (.npz)")
    t.add_argument("--metrics-json", metavar="PATH", help="write per-epoch metrics as JSON")
    t.add_argument("--plot", metavar="DIR", help="write loss/accuracy curves, a confusion matrix and "
                   "misclassified digits (needs matplotlib)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch only)")
    _add_data_args(t)

    e = sub.add_parser("evaluate", help="test accuracy of a saved model")
    e.add_argument("--load", metavar="PATH", required=True)
    _add_data_args(e)

    p = sub.add_parser("predict", help="classify an image file with a saved model")
    p.add_argument("--load", metavar="PATH", required=True)
    p.add_argument("image", help="a grayscale or colour image of one digit (28x28 or larger; it is resized)")

    g = sub.add_parser("graph", help="draw the computation graph of one training step")
    viz_command.add_graph_arguments(g)  # the options live with the drawing code

    d = sub.add_parser("download", help="download and verify the full data set into the cache dir")
    d.add_argument("--dataset", choices=sorted(data.DATASETS), default="mnist")
    d.add_argument("--dest", metavar="DIR", help=f"target directory (default: {data.cache_dir('mnist')})")
    return parser


# ---------------------------------------------------------------------------------------------------------


def cmd_train(args) -> int:
    recipe = RECIPES[args.model]
    overrides = {k: v for k, v in dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                       optimizer=args.optimizer, schedule=args.schedule,
                                       weight_decay=args.weight_decay, seed=args.seed).items() if v is not None}
    recipe = replace(recipe, **overrides)
    ds = _load_data(args)
    if args.limit:
        ds = replace(ds, x_train=ds.x_train[:args.limit], y_train=ds.y_train[:args.limit])
    from .engine import manual_seed
    manual_seed(recipe.seed)
    model = build_model(recipe.model)
    print(f"training {recipe.model} ({model.num_parameters():,} parameters) on {len(ds.x_train):,} images "
          f"from {ds.source}: {recipe.epochs} epochs, batch {recipe.batch_size}, {recipe.optimizer} "
          f"lr {recipe.lr:g}, {recipe.loss} loss")
    if args.validation:
        split = data.nielsen_split(ds)
        train_ds = replace(ds, x_train=split.x_train, y_train=split.y_train)
        history = fit(model, train_ds, recipe, x_eval=split.x_val, y_eval=split.y_val, eval_split="validation",
                      progress=not args.no_progress)
    else:
        history = fit(model, ds, recipe, progress=not args.no_progress)
    history.test_acc = evaluate(model, ds.x_test, ds.y_test)
    note = " (bundled sample, not the full MNIST test set)" if ds.is_sample else ""
    print(f"test accuracy: {history.test_acc:.4f} on {len(ds.x_test):,} images{note}")
    if args.save:
        serialization.save(model, args.save, metadata={"model": recipe.model, "test_acc": history.test_acc,
                                                       "recipe": history.recipe, "data": ds.source})
        print(f"saved model to {args.save}")
    if args.metrics_json:
        _write_json_atomic(args.metrics_json, history.to_dict())
        print(f"wrote metrics to {args.metrics_json}")
    if args.plot:
        _plot(args.plot, history, model, ds)
    return 0


def _plot(out_dir, history, model, ds) -> None:
    try:
        from . import plots
    except ImportError as e:  # matplotlib is an optional extra
        print(f"--plot needs matplotlib ({e}); install it with: pip install 'tinygrad_mnist[plot]'", file=sys.stderr)
        return
    logits = predict_logits(model, ds.x_test)
    for path in plots.write_all(out_dir, history, ds.x_test, ds.y_test, logits):
        print(f"wrote {path}")


def _load_model(path):
    if not Path(path).is_file():
        raise CLIError(f"no model file at {path} (train one with: python -m tinygrad_mnist train --save {path})")
    state, meta = serialization.load(path)
    name = meta.get("model")
    if name not in RECIPES:
        raise CLIError(f"{path}: metadata names model {name!r}, expected one of {sorted(RECIPES)}")
    model = build_model(name)
    model.load_state_dict(state)
    return model, meta


def cmd_evaluate(args) -> int:
    model, meta = _load_model(args.load)
    ds = _load_data(args)
    acc = evaluate(model, ds.x_test, ds.y_test)
    print(f"{meta['model']}: test accuracy {acc:.4f} on {len(ds.x_test):,} images from {ds.source}")
    return 0


class CLIError(Exception):
    """A user error the CLI reports in one line (exit code 2)."""


def load_digit_image(path) -> np.ndarray:
    """An image file as one MNIST-style row: white digit on black, 20x20 box, centre of mass at the middle."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path).convert("L")
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise CLIError(f"can't read image {path}: {e}") from None
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


def cmd_predict(args) -> int:
    model, meta = _load_model(args.load)
    x = load_digit_image(args.image)
    out = predict_logits(model, x)[0]
    if meta["model"] == "nielsen":  # sigmoid outputs: normalise for display
        probs = out / out.sum()
    else:
        e = np.exp(out - out.max())
        probs = e / e.sum()
    digit = int(probs.argmax())
    print(f"{args.image}: {digit} ({probs[digit]:.1%})")
    print("  " + "  ".join(f"{d}:{p:.2f}" for d, p in enumerate(probs)))
    return 0


def cmd_graph(args) -> int:
    return viz_command.run_graph_command(args)


def cmd_download(args) -> int:
    dest = data.download_mnist(args.dest, dataset=args.dataset)
    print(f"{args.dataset} is in {dest}; set {data.ENV_VAR}={dest} or pass --data {dest}")
    return 0


def _write_text_atomic(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; these are ordinary outputs
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json_atomic(path, obj) -> None:
    _write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "graph": cmd_graph,
            "download": cmd_download}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CLIError, data.DataError, serialization.SerializationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
