"""Atomic file writes: the one helper every writer in the package uses.

A file is written to a temporary name beside its target, flushed and fsynced,
then renamed over the target, so a reader (or a crash) sees the old file or the
new one, never half of one.  Temp names carry the writer's process id; a temp
file left by a killed process is removed by the next successful write of the
same target.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Remove temp files of `path` whose writing process no longer exists."""
    prefix = f".{path.name}."
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        parts = name[len(prefix):-len(".tmp")].split(".")
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        pid = int(parts[0])
        if pid != os.getpid() and not _pid_alive(pid):
            entry.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some systems can't open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path, mode: str = "wb", make_parents: bool = True):
    """Yield a file object whose contents replace `path` only if the block finishes.

    The temp file is created with plain open(), so permissions follow the umask
    (0644 under the usual 022).  On any exception it is removed and `path` is
    left as it was.  `mode` is "wb" or "w".
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; expected a file name")
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        with open(tmp, mode.replace("w", "x")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    _remove_stale_temps(path)


def write_bytes_atomic(path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text_atomic(path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)
