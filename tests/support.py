"""What the tests share: where the repository, its scripts and the peers' fixtures lie, and running
`dynarep` or a script the way a user does (a fresh interpreter, output captured)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
# ../shared beside the clone, as CI lays it out (no absolute path: the clone may live anywhere)
FIXTURES = REPO.parent / "shared" / "fixtures"
FIXTURE = FIXTURES / "dp3_metaworld_button-press_2ep.zarr"
DYNAREP = [sys.executable, "-m", "dynarep.cli"]


def run(command: list, check: bool = True, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    """Run COMMAND; with CHECK, a non-zero exit fails the test with the command and its stderr's tail."""
    command = [str(part) for part in command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def dynarep(*args, **kwargs) -> subprocess.CompletedProcess:
    """`dynarep ARGS...` through the installed package's CLI module."""
    return run([*DYNAREP, *args], **kwargs)


def script(name: str, *args, **kwargs) -> subprocess.CompletedProcess:
    """`python scripts/NAME ARGS...`."""
    return run([sys.executable, SCRIPTS / name, *args], **kwargs)
