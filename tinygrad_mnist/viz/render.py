"""Rendering with Graphviz's `dot` program; files are written atomically (fileio)."""

from __future__ import annotations

import shutil
from pathlib import Path

import graphviz

from ..fileio import write_bytes_atomic

INSTALL_HINT = ("Install Graphviz (it provides `dot`): apt-get install graphviz (Debian/Ubuntu), "
                "brew install graphviz (macOS), conda install graphviz (conda), or see "
                "https://graphviz.org/download/")

_FORMATS = frozenset({"svg", "png", "pdf", "jpg", "jpeg", "gif", "ps", "eps", "json", "plain", "xdot"})


class GraphvizNotFound(RuntimeError):
    """Graphviz's `dot` program is not installed; `dot_path` is where the DOT text was written instead."""

    def __init__(self, message: str, dot_path: Path | None = None):
        super().__init__(message)
        self.dot_path = dot_path


def render_graph(dot: graphviz.Digraph, path, *, format: str | None = None) -> Path:
    """Write `dot` to `path`, the format chosen by the extension (.svg, .png, .pdf, ...; .dot: the DOT text).

    Rendering runs Graphviz's `dot` program.  Without it, the DOT text is written
    to path.with_suffix(".dot") and GraphvizNotFound (a RuntimeError) says where
    and how to install Graphviz.  Files are written atomically (temp file + rename).
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if not fmt:
        raise ValueError(f"render_graph: {path} has no extension; use .svg, .png, .pdf or .dot (or format=)")
    if fmt in ("dot", "gv"):
        write_bytes_atomic(path, dot.source.encode("utf-8"))
        return path
    if fmt not in _FORMATS:
        raise ValueError(f"render_graph: unsupported format {fmt!r}; use one of svg, png, pdf, dot")

    def missing() -> GraphvizNotFound:
        dot_path = path.with_suffix(".dot")
        write_bytes_atomic(dot_path, dot.source.encode("utf-8"))
        return GraphvizNotFound(
            f"Graphviz's `dot` program was not found on PATH, so {path} could not be rendered. "
            f"The DOT text was written to {dot_path} instead (render it later with "
            f"`dot -T{fmt} {dot_path} -o {path}`). {INSTALL_HINT}", dot_path)

    if shutil.which("dot") is None:
        raise missing()
    try:
        data = dot.pipe(format=fmt, engine="dot")
    except graphviz.ExecutableNotFound:
        raise missing() from None
    except graphviz.CalledProcessError as e:
        err = e.stderr.decode(errors="replace").strip() if isinstance(e.stderr, bytes) else e.stderr
        raise RuntimeError(f"render_graph: Graphviz's dot failed on {path}: {err}") from None
    write_bytes_atomic(path, data)
    return path


save = render_graph
