"""The docs/ pages build into a static site (Sphinx with MyST Markdown), offline, with no warning.

A warning fails the build (-W): a broken link to a heading, a page left out of docs/index.md's table of
contents, a missing image.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"

pytest.importorskip("sphinx", reason="the docs site needs Sphinx (the dev extra)")
pytest.importorskip("myst_parser", reason="the docs site needs myst-parser (the dev extra)")


def test_docs_site_builds_without_warnings(tmp_path):
    out = tmp_path / "html"
    p = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-E",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    for page in DOCS.glob("*.md"):
        assert (out / f"{page.stem}.html").is_file(), f"{page.name} was not built"
    assert (out / "_images" / "cnn_step.svg").is_file()  # the graph drawn on graphs.md
    assert 'href="replay.html"' in (out / "cli.html").read_text(encoding="utf-8")  # page-to-page links resolve
