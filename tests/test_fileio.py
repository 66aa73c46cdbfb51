"""Atomic writes, which the lanes of scripts/compare_grid.sh rely on when they archive side by side."""

from __future__ import annotations

import os

from dynarep.fileio import atomic_symlink, atomic_write_bytes


def test_atomic_symlink_replaces_a_link_that_another_process_made_first(tmp_path):
    link = tmp_path / "row" / "task" / "seed1"
    atomic_symlink(link, "../../a/task/seed1")
    atomic_symlink(link, "../../b/task/seed1")  # the second lane: Path.symlink_to would raise here
    assert os.readlink(link) == "../../b/task/seed1"
    assert sorted(p.name for p in link.parent.iterdir()) == ["seed1"]  # no temporary left beside it


def test_atomic_write_bytes_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "cell" / "eval.json"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["eval.json"]
