"""Every ```python block of README.md runs as pasted (each in a fresh namespace, in a temporary directory).

A block whose first line is `# not run by the tests: <reason>` is skipped with that reason; prefer
blocks that run (the bundled MNIST sample is always there).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP_MARK = "# not run by the tests:"


def python_blocks() -> list[tuple[int, str]]:
    """(line number, code) of each ```python block, in order."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.S | re.M):
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(1)))
    return blocks


BLOCKS = python_blocks()


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_block_runs(line, code, tmp_path, monkeypatch):
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    if first.startswith(SKIP_MARK):
        pytest.skip(first[len(SKIP_MARK):].strip() or "marked in README.md")
    monkeypatch.chdir(tmp_path)  # files the snippet writes land here
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
