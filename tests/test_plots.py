"""plots: each function returns a figure that Jupyter shows inline, and writes it when given a path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="plots need matplotlib (the plot or dev extra)")

from tinygrad_mnist import plots  # noqa: E402
from tinygrad_mnist.train import EpochStats, History  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def history():
    h = History(recipe={}, data_source="test", is_sample=True, eval_split="test")
    for e in (1, 2, 3):
        h.epochs.append(EpochStats(e, 1.0 / e, 0.8 + e / 100, 0.79 + e / 100, 1.0, 100.0, 0.1))
    return h


def figures():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, 50)
    y_pred = np.where(rng.random(50) < 0.8, y_true, (y_true + 1) % 10)
    x = rng.random((50, 784), dtype=np.float32)
    return {
        "curves": lambda path=None: plots.plot_curves(history(), path),
        "confusion": lambda path=None: plots.plot_confusion(y_true, y_pred, path),
        "misclassified": lambda path=None: plots.plot_misclassified(x, y_true, y_pred, path),
    }


@pytest.mark.parametrize("name", ["curves", "confusion", "misclassified"])
def test_a_plot_displays_inline_and_saves_when_asked(name, tmp_path):
    make = figures()[name]
    fig = make()
    assert fig._repr_png_().startswith(PNG)  # what Jupyter shows
    assert list(tmp_path.iterdir()) == []  # nothing written without a path
    path = tmp_path / f"{name}.png"
    make(path)
    assert path.read_bytes().startswith(PNG)


def test_the_format_follows_the_suffix(tmp_path):
    figures()["confusion"](tmp_path / "c.svg")
    assert b"<svg" in (tmp_path / "c.svg").read_bytes()


def test_confusion_counts():
    cm = plots.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_importing_plots_leaves_the_matplotlib_backend_alone():
    """A notebook's inline backend must survive `import tinygrad_mnist.plots` (it used to force Agg)."""
    code = ("import matplotlib; matplotlib.use('svg'); import tinygrad_mnist.plots as p; "
            "p.plot_confusion([0, 1], [0, 1]); print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"
