"""scripts/compare_grid.sh: lanes take lines from the cells file as they come free, so that the file
can be edited while a grid runs. Each line runs CELL_COMMAND; here a small script that records its
arguments (the grid itself is what is tested; scripts/compare.sh trains real policies for minutes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support import SCRIPTS

GRID = SCRIPTS / "compare_grid.sh"

# records each line it runs; line "a" edits the cells file meanwhile, line "f" fails
CELL = """#!/usr/bin/env bash
echo "$*" >> "$RECORD"
case $1 in
  a) printf 'd 0 x\\na 0 x\\nb 0 x\\n' > "$CELLS" ;;  # d added before b, c removed
  f) exit 1 ;;
esac
sleep 0.2
"""


def run_grid(tmp_path: Path, cells: str, lanes: int) -> tuple[subprocess.CompletedProcess, list[str]]:
    (tmp_path / "cells.txt").write_text(cells)
    command = tmp_path / "cell.sh"
    command.write_text(CELL)
    command.chmod(0o755)
    env = {**os.environ, "ROOT": str(tmp_path / "root"), "ARCHIVE": "", "CELL_COMMAND": str(command),
           "LANES": str(lanes), "RECORD": str(tmp_path / "record"), "CELLS": str(tmp_path / "cells.txt")}
    done = subprocess.run(["bash", str(GRID), str(tmp_path / "cells.txt")], env=env, capture_output=True, text=True,
                          timeout=60)
    return done, (tmp_path / "record").read_text().splitlines()


def test_grid_follows_edits_to_the_cells_file_made_while_it_runs(tmp_path):
    done, ran = run_grid(tmp_path, "a 0 x\n# a comment\n\nb 0 x\nc 0 x\n", lanes=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ran == ["a 0 x", "d 0 x", "b 0 x"]  # a is not run again, c was removed before its turn
    assert (tmp_path / "root" / "logs" / "d-0-x.log").exists()


def test_grid_runs_each_line_once_over_lanes_and_reports_a_failed_line(tmp_path):
    lines = [f"t{i} 0 x" for i in range(5)] + ["f 0 x", "t5 0 x"]
    done, ran = run_grid(tmp_path, "\n".join(lines) + "\n", lanes=2)
    assert done.returncode == 1  # f failed ...
    assert "FAILED: f 0 x" in done.stdout
    assert sorted(ran) == sorted(lines)  # ... and the others still ran, each once
    assert done.stdout.count("done: ") == 6


def test_grid_refuses_a_memory_limit_that_is_not_whole_gigabytes(tmp_path):
    (tmp_path / "cells.txt").write_text("a 0 x\n")
    done = subprocess.run(["bash", str(GRID), str(tmp_path / "cells.txt")], capture_output=True, text=True,
                          env={**os.environ, "ROOT": str(tmp_path / "root"), "MEM_LIMIT_GB": "0.5"}, timeout=60)
    assert done.returncode == 2 and "'0.5'" in done.stderr
