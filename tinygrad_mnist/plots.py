"""Pictures of a training run (optional: needs matplotlib, `pip install 'tinygrad_mnist[plot]'`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .fileio import atomic_write  # noqa: E402


def _save(fig, path: Path) -> Path:
    """Write atomically: a crash never leaves a half-written picture."""
    try:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """counts[i, j] = number of images of class i predicted as j."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def plot_curves(history, path: Path) -> Path:
    epochs = [e.epoch for e in history.epochs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(epochs, [e.train_loss for e in history.epochs], "o-")
    ax1.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax2.plot(epochs, [e.train_acc for e in history.epochs], "o-", label="train")
    ax2.plot(epochs, [e.eval_acc for e in history.epochs], "o-", label=history.eval_split)
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(y_true, y_pred, path: Path) -> Path:
    cm = confusion_matrix(y_true, y_pred)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(10):
        for j in range(10):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"confusion matrix (accuracy {np.trace(cm) / cm.sum():.4f})")
    return _save(fig, path)


def plot_misclassified(x, y_true, y_pred, path: Path, max_images: int = 36) -> Path:
    wrong = np.flatnonzero(y_true != y_pred)[:max_images]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.5))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, i in zip(np.atleast_1d(axes).ravel(), wrong):
        ax.imshow(x[i].reshape(28, 28), cmap="gray")
        ax.set_title(f"{y_true[i]} → {y_pred[i]}", fontsize=8)
    fig.suptitle(f"misclassified: {len(np.flatnonzero(y_true != y_pred))} (true → predicted)")
    return _save(fig, path)


def write_all(out_dir, history, x_test, y_test, logits) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred = logits.argmax(axis=1)
    return [plot_curves(history, out / "curves.png"),
            plot_confusion(y_test, pred, out / "confusion.png"),
            plot_misclassified(x_test, y_test, pred, out / "misclassified.png")]
