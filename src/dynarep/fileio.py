"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def _temporary_beside(path: Path) -> Path:
    """A name in PATH's directory (made if missing) for building PATH before os.replace puts it in place
    (same directory, so the replace is a rename within one file system); one per process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_via(path: Path, write: Callable[[Path], None]) -> None:
    """Let WRITE build the file at a temporary name beside PATH (for writers that take a file name,
    such as safetensors' save_file), then put it in place in one step."""
    path = Path(path)
    tmp = _temporary_beside(path)
    write(tmp)
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    def write_synced(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())

    atomic_write_via(path, write_synced)


def atomic_symlink(path: Path, target: str) -> None:
    """Make PATH a symbolic link to TARGET, replacing whatever link is there in one step, so that two
    processes that make the same link at once both succeed (plain `symlink_to` fails for the second)."""
    path = Path(path)
    tmp = _temporary_beside(path)
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, path)
