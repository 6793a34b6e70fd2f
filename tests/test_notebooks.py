"""The notebook tour (examples/*.ipynb) runs top to bottom in a fresh, real Jupyter kernel.

Each notebook must run without a cell error, its graph cells must show an SVG and its plot cells an
image. The notebooks are kept in git without outputs. The progress bar (tqdm.auto) is a widget in a
kernel with ipywidgets and text in one without.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat (the dev extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient (the dev extra)")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel (the dev extra)")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "examples").glob("*.ipynb"))
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
SVG, PNG, WIDGET = "image/svg+xml", "image/png", "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def kernel_env(monkeypatch):
    """The kernel is this Python (its spec runs `python`), imports this checkout's package and draws inline."""
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")


def execute(nb, cwd: Path):
    """Run every cell in a fresh kernel; a cell error raises CellExecutionError naming the cell."""
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def mimes(cell) -> set[str]:
    return {m for out in cell.get("outputs", []) for m in out.get("data", {})}


def code_cells(nb, contains: str):
    return [c for c in nb.cells if c.cell_type == "code" and contains in c.source]


def test_the_tour_is_there():
    assert len(NOTEBOOKS) >= 3, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_kept_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip the outputs"


@needs_dot
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_in_a_fresh_kernel(path, tmp_path, kernel_env):
    nb = execute(nbformat.read(path, as_version=4), tmp_path)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    for cell in code_cells(nb, "draw_graph("):  # a graph shows inline, no render call needed
        assert SVG in mimes(cell), f"{path.name}: no SVG from\n{cell.source}"
    for cell in code_cells(nb, "plt.show()") + code_cells(nb, "plots.plot_"):
        assert PNG in mimes(cell), f"{path.name}: no image from\n{cell.source}"
    for cell in code_cells(nb, "tqdm("):
        assert WIDGET in mimes(cell), f"{path.name}: the progress bar is not a widget\n{cell.source}"


def test_the_tour_shows_a_graph_a_plot_and_a_progress_widget():
    sources = "\n".join(c.source for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells)
    assert "draw_graph(" in sources and "plots.plot_" in sources and "plt.show()" in sources and "tqdm(" in sources


PROBE = """
import sys
{block}
import tqdm.notebook
import tinygrad_mnist.train as train
from tinygrad_mnist.plots import plot_confusion
bar = train.tqdm(total=1, file=sys.stderr)
print("widget" if isinstance(bar, tqdm.notebook.tqdm) else "text")
plot_confusion([0, 1], [0, 1])
"""


@pytest.mark.parametrize("widgets", [True, False], ids=["with-ipywidgets", "without-ipywidgets"])
def test_training_bar_is_a_widget_with_ipywidgets_and_text_without(widgets, tmp_path, kernel_env):
    if widgets:
        pytest.importorskip("ipywidgets", reason="the widget bar needs ipywidgets (the dev extra)")
    block = "" if widgets else "sys.modules['ipywidgets'] = None  # as if it were not installed"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(PROBE.format(block=block)))
    nb = execute(nb, tmp_path)
    outputs = nb.cells[0].outputs
    printed = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    assert printed.strip() == ("widget" if widgets else "text"), outputs
    assert (WIDGET in mimes(nb.cells[0])) == widgets
    assert PNG in mimes(nb.cells[0])  # a plot returned last in a cell shows inline
