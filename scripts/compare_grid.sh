#!/usr/bin/env bash
# Cells of the encoder comparison on several lanes at once:
#   scripts/compare_grid.sh [CELLS_FILE]          (default: standard input)
#   e.g. LANES=2 scripts/compare_grid.sh scripts/comparison_cells.txt
# Each line of CELLS_FILE holds the arguments of one `scripts/compare.sh` call (TASK SEED VARIANT...);
# blank lines and lines starting with '#' are skipped. LANES lines (default 2) run at once, each
# with OMP_NUM_THREADS=1 unless it is set, and write their output to ROOT/logs/TASK-SEED-VARIANT.log.
# A lane that comes free reads CELLS_FILE again and takes its first line that this grid has not
# started, so the file may be edited while the grid runs (lines added, removed or moved up take
# effect at the next free lane; a line that started runs to its end). Hence no `xargs -P`, which
# reads its input once.
# Run it again after an interruption: finished cells are skipped (scripts/baseline.sh), an encoder
# or dataset that two lanes need is made once (scripts/compare.sh locks it), and interrupted
# training resumes from its last checkpoint. Exits non-zero if any line failed.
# After each finished cell, its records are copied into ARCHIVE (scripts/archive_results.py; default
# results/baseline when ROOT is the default runs/baseline, else none) to be committed: runs/ is not.
# Each cell's processes may allocate at most MEM_LIMIT_GB (default 10) of data memory (ulimit -d):
# a process that runs away then fails with an allocation error and its traceback in the cell's log,
# instead of the kernel's OOM killer taking it, or the other lane, without a word.
# CELL_COMMAND (default scripts/compare.sh) runs each line; tests/test_compare_grid.py sets a quick one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-runs/baseline}; export ROOT OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
default_archive=; [ "$ROOT" = runs/baseline ] && default_archive=results/baseline
ARCHIVE=${ARCHIVE-$default_archive}; MEM_LIMIT_GB=${MEM_LIMIT_GB:-10}
CELL_COMMAND=${CELL_COMMAND:-scripts/compare.sh}
if ! [[ $MEM_LIMIT_GB =~ ^[1-9][0-9]*$ ]]; then
  echo "MEM_LIMIT_GB must be a whole number of gigabytes, got '$MEM_LIMIT_GB'" >&2; exit 2
fi
mkdir -p "$ROOT/logs"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cells=${1:-}
if [ -z "$cells" ]; then cells=$work/stdin; cat > "$cells"; fi  # standard input can be read only once
[ -r "$cells" ] || { echo "cells file '$cells' cannot be read" >&2; exit 2; }
started=$work/started; : > "$started"

next_line() {  # the first line of the cells file that no lane has started, marked started; empty at the end
  {
    flock 9
    grep -v -E '^[[:space:]]*(#|$)' "$cells" | grep -vxF -f "$started" | head -n 1 | tee -a "$started" || true
  } 9> "$started.lock"
}

run_cell() {  # the arguments of one line
  local log; log=$ROOT/logs/$(IFS=-; echo "$*").log
  echo "start: $* ($(date +%T))"
  # the limit in a subshell, so that it binds this cell's processes only
  if ! (ulimit -d $((MEM_LIMIT_GB * 1024 * 1024)); "$CELL_COMMAND" "$@") > "$log" 2>&1; then
    echo "FAILED: $* (see $log)"; return 1
  fi
  if [ -n "$ARCHIVE" ] && ! .venv/bin/python scripts/archive_results.py "$ROOT" "$ARCHIVE" >> "$log" 2>&1; then
    echo "FAILED to archive: $* (see $log)"; return 1
  fi
  echo "done: $* ($(date +%T))"
}

lane() {  # run lines until none is left; non-zero if any failed
  local line status=0 words
  while line=$(next_line) && [ -n "$line" ]; do
    read -ra words <<< "$line"
    run_cell "${words[@]}" || status=1
  done
  return "$status"
}

pids=()
for _ in $(seq "${LANES:-2}"); do lane & pids+=($!); done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit "$status"
