"""Pictures of a training run (optional: needs matplotlib, `pip install 'tinygrad_mnist[plot]'`).

Each function returns the figure and, given a path, also writes it there. The figures are made without
pyplot: no backend is chosen or changed (a notebook keeps its inline backend, a script needs no screen)
and nothing is left open. In Jupyter a returned figure shows itself inline.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .fileio import atomic_write


class PlotFigure(Figure):
    """A matplotlib Figure that Jupyter displays inline as PNG, whichever backend is active."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        return buf.getvalue()


def _finish(fig: PlotFigure, path) -> PlotFigure:
    """Write the figure atomically when a path is given (a crash never leaves a half-written picture)."""
    if path is not None:
        path = Path(path)
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    return fig


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """counts[i, j] = number of images of class i predicted as j."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def plot_curves(history, path=None) -> PlotFigure:
    """Training loss and train/eval accuracy per epoch of a train.History."""
    epochs = [e.epoch for e in history.epochs]
    fig = PlotFigure(figsize=(10, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [e.train_loss for e in history.epochs], "o-")
    ax1.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax2.plot(epochs, [e.train_acc for e in history.epochs], "o-", label="train")
    ax2.plot(epochs, [e.eval_acc for e in history.epochs], "o-", label=history.eval_split)
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return _finish(fig, path)


def plot_confusion(y_true, y_pred, path=None) -> PlotFigure:
    """The confusion matrix, counts written in each cell."""
    cm = confusion_matrix(y_true, y_pred)
    fig = PlotFigure(figsize=(5.5, 5))
    ax = fig.subplots()
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(10):
        for j in range(10):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"confusion matrix (accuracy {np.trace(cm) / cm.sum():.4f})")
    return _finish(fig, path)


def plot_misclassified(x, y_true, y_pred, path=None, max_images: int = 36) -> PlotFigure:
    """The first `max_images` misclassified images, each titled "true → predicted"."""
    wrong = np.flatnonzero(y_true != y_pred)[:max_images]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig = PlotFigure(figsize=(cols * 1.3, rows * 1.5))
    axes = fig.subplots(rows, cols)
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, i in zip(np.atleast_1d(axes).ravel(), wrong):
        ax.imshow(x[i].reshape(28, 28), cmap="gray")
        ax.set_title(f"{y_true[i]} → {y_pred[i]}", fontsize=8)
    fig.suptitle(f"misclassified: {len(np.flatnonzero(y_true != y_pred))} (true → predicted)")
    return _finish(fig, path)


def write_all(out_dir, history, x_test, y_test, logits) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred = logits.argmax(axis=1)
    paths = [out / "curves.png", out / "confusion.png", out / "misclassified.png"]
    plot_curves(history, paths[0])
    plot_confusion(y_test, pred, paths[1])
    plot_misclassified(x_test, y_test, pred, paths[2])
    return paths
