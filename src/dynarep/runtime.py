"""Process-wide settings that make CPU training faster: the memory allocator.

Training allocates and frees tensors of tens of MB every step (DP3's per-point MLP alone makes
(batch x 2 x 512, 256) activations). glibc's malloc serves them from fresh pages each time: PyTorch
asks for 64-byte-aligned blocks, glibc's memalign splits the freed block so that it no longer fits
the next request, and the heap grows into new pages that fault in (measured: a ReLU on 64 MB takes
103 ms with 16 k page faults, 16 ms under jemalloc). So `dynarep` re-executes itself once under
jemalloc with the tuning the DP3 measurements used, when libjemalloc is installed (scripts/setup.sh
installs Debian's libjemalloc2); DYNAREP_ALLOCATOR=glibc keeps glibc. Under glibc we still stop it
from mmapping and trimming large blocks (about 30% of a DP3 step went to the kernel before);
DYNAREP_MALLOC_TUNING=0 leaves glibc alone.

The DP3 measurements' tuning also had `oversize_threshold:1`, which sends every large allocation to
one arena. Together with never purging (decay -1) it made evaluation grow with every episode: 9.3 GB
resident after 20 door-open episodes, against 0.71 GB without it and 0.70 GB under glibc, while DP3
training is as fast without it (`bench/allocators.sh DATA 2 128 POLICY` measures both; figures in
the README). So it is left out; see release_free_memory for what never purging still needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:-1,muzzy_decay_ms:-1"
JEMALLOC_PATHS = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
                  "/usr/lib64/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")


def find_jemalloc() -> str | None:
    found = ctypes.util.find_library("jemalloc")
    candidates = [*JEMALLOC_PATHS, *([found] if found and "/" in found else [])]
    return next((p for p in candidates if Path(p).exists()), None)


def allocator() -> str:
    return "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "glibc"


def reexec_under_jemalloc(module: str, argv: list[str]) -> None:
    """Replace this process by `python -m module argv...` with jemalloc preloaded, once; returns
    (doing nothing) when jemalloc is already in, not installed, or DYNAREP_ALLOCATOR=glibc."""
    if os.environ.get("DYNAREP_ALLOCATOR", "jemalloc") != "jemalloc" or allocator() == "jemalloc":
        return
    lib = find_jemalloc()
    if lib is None or os.environ.get("DYNAREP_REEXEC") == "1":
        return
    preload = " ".join(p for p in (lib, os.environ.get("LD_PRELOAD", "")) if p)
    env = {**os.environ, "LD_PRELOAD": preload, "MALLOC_CONF": os.environ.get("MALLOC_CONF", JEMALLOC_CONF),
           "DYNAREP_REEXEC": "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], env)
_done = False


def tune_allocator() -> bool:
    """Apply the glibc settings once; returns whether they are in force."""
    global _done
    if _done:
        return True
    if os.environ.get("DYNAREP_MALLOC_TUNING", "1") == "0" or allocator() == "jemalloc":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    _done = ok
    return ok


_ALL_ARENAS = 4096  # jemalloc's MALLCTL_ARENAS_ALL


def release_free_memory() -> bool:
    """Give the pages of freed blocks back to the OS; returns whether the allocator did.

    Why: with purging off (decay -1, for speed) jemalloc never merges neighbouring freed blocks
    either (it merges them only when it purges), so when request sizes vary a larger request finds
    no free block big enough and takes new pages. Measured on an AFRO fine-tuning of coffee-push:
    59 MB allocated, 1.5 GB resident after 150 steps and still growing by 5 MB a step. Purging now
    and then (the training loop: every 50 steps; evaluation: after each episode) bounds that for
    the cost of faulting the working set in again once; purging all the time (a finite decay)
    cost 30% of DP3's training speed. Under glibc `malloc_trim` does the same for its heap."""
    try:
        libc = ctypes.CDLL(None)
        if allocator() == "jemalloc":
            return libc.mallctl(f"arena.{_ALL_ARENAS}.purge".encode(), None, None, None, ctypes.c_size_t(0)) == 0
        return bool(libc.malloc_trim(ctypes.c_size_t(0)))
    except (OSError, AttributeError):  # neither jemalloc nor glibc: nothing to release
        return False


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

    found = {"python": platform.python_version(), "allocator": allocator()}
    if found["allocator"] == "jemalloc":
        found["malloc_conf"] = os.environ.get("MALLOC_CONF", "")
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


def peak_memory_mb() -> float | None:
    """This process's peak resident memory so far, in MB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)  # macOS counts bytes, Linux KB


def resident_memory_mb() -> float | None:
    """This process's resident memory now, in MB (Linux; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def provenance() -> dict:
    """What every output records about how it was made."""
    return {"command": current_command(), "versions": versions()}
