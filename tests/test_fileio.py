"""The atomic-write helper: all or nothing, ordinary permissions, no temp files left behind."""

from __future__ import annotations

import os
import stat

import pytest

from tinygrad_mnist.fileio import atomic_write, write_bytes_atomic, write_text_atomic


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"  # parents are created
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_failure_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "out.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_directory_target_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        write_bytes_atomic(tmp_path, b"x")


def test_stale_temp_of_dead_process_is_removed(tmp_path):
    target = tmp_path / "m.npz"
    # a pid that cannot be alive (above the kernel's pid_max)
    stale = tmp_path / f".m.npz.{2 ** 22 + 7}.deadbeef.tmp"
    stale.write_bytes(b"half")
    other = tmp_path / ".other.npz.1.deadbeef.tmp"  # another target's temp is not ours to touch
    other.write_bytes(b"x")
    write_bytes_atomic(target, b"full")
    assert not stale.exists()
    assert other.exists()
    assert target.read_bytes() == b"full"
