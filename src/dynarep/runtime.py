"""Process-wide settings that make CPU training faster.

glibc's malloc hands every large tensor (> 32 MB at most) to mmap and returns it on free, so each
training step page-faults its activations in again: measured here, about 30% of a DP3 step's CPU
time went to the kernel. Telling glibc never to mmap and never to trim keeps the memory in the
process and reuses it (the effect of a tuned jemalloc, without a preload). Set
DYNAREP_MALLOC_TUNING=0 to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_done = False


def tune_allocator() -> bool:
    """Apply the glibc settings once; returns whether they are in force."""
    global _done
    if _done:
        return True
    if os.environ.get("DYNAREP_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    _done = ok
    return ok


# The command line that is running, recorded in every output so a report can show how it was made.
# `dynarep` sets it from argv; the demo sets it for each stage it runs in-process.
_command: str | None = None


def set_command(argv: list[str]) -> None:
    import shlex

    global _command
    _command = "dynarep " + shlex.join(argv)


def current_command() -> str | None:
    return _command


def versions() -> dict[str, str]:
    """Versions of what shaped a result: Python, the numeric stack, the simulator, and our commit."""
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    found = {"python": platform.python_version()}
    for name in ("dynarep", "torch", "numpy", "diffusers", "mujoco", "metaworld", "zarr"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    repo = Path(__file__).resolve().parents[2]
    if (repo / ".git").exists():
        try:
            found["git"] = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                          text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return found


def provenance() -> dict:
    """What every output records about how it was made."""
    return {"command": current_command(), "versions": versions()}
