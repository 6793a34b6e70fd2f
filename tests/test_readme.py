"""Every ```python block of README.md and of the pages in docs/ runs as pasted (each in a fresh namespace,
in a temporary directory).

A block whose first line is `# not run by the tests: <reason>` is skipped with that reason; prefer
blocks that run (the bundled MNIST sample is always there).  A block whose first line is
`# needs: torch, hypothesis` runs where those modules import and is skipped elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
SKIP_MARK = "# not run by the tests:"
NEEDS_MARK = "# needs:"


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block of `page`, in order."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.S | re.M):
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(1)))
    return blocks


BLOCKS = [(page.relative_to(REPO).as_posix(), line, code) for page in PAGES for line, code in python_blocks(page)]


def test_readme_and_docs_have_python_blocks():
    assert python_blocks(README), "the README's ten lines are a python block"
    assert {name for name, _, _ in BLOCKS} > {"README.md"}, "the docs pages' snippets are collected too"


@pytest.mark.parametrize("name,line,code", BLOCKS, ids=[f"{name}:{line}" for name, line, _ in BLOCKS])
def test_snippet_runs(name, line, code, tmp_path, monkeypatch):
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    if first.startswith(SKIP_MARK):
        pytest.skip(first[len(SKIP_MARK):].strip() or f"marked in {name}")
    if first.startswith(NEEDS_MARK):  # optional dependencies (PyTorch, hypothesis)
        for module in first[len(NEEDS_MARK):].split(","):
            pytest.importorskip(module.strip())
    monkeypatch.chdir(tmp_path)  # files the snippet writes land here
    exec(compile(code, f"{name}:{line}", "exec"), {"__name__": "__readme__"})


def test_needs_mark_skips_only_where_a_module_is_missing(tmp_path, monkeypatch):
    with pytest.raises(pytest.skip.Exception, match="no_such_module_here"):
        test_snippet_runs("x.md", 1, "# needs: numpy, no_such_module_here\nraise RuntimeError('ran')\n", tmp_path,
                          monkeypatch)
    with pytest.raises(RuntimeError, match="ran"):  # everything it needs is there: the block runs
        test_snippet_runs("x.md", 1, "# needs: numpy\nraise RuntimeError('ran')\n", tmp_path, monkeypatch)
