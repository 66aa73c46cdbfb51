#!/usr/bin/env bash
# Cells of the encoder comparison on several lanes at once:
#   scripts/compare_grid.sh [CELLS_FILE]          (default: standard input)
#   e.g. LANES=2 scripts/compare_grid.sh scripts/comparison_cells.txt
# Each line of CELLS_FILE holds the arguments of one `scripts/compare.sh` call (TASK SEED VARIANT...);
# blank lines and lines starting with '#' are skipped. LANES lines (default 2) run at once, each
# with OMP_NUM_THREADS=1 unless it is set, and write their output to ROOT/logs/TASK-SEED-VARIANT.log.
# Run it again after an interruption: finished cells are skipped (scripts/baseline.sh), an encoder
# or dataset that two lanes need is made once (scripts/compare.sh locks it), and interrupted
# training resumes from its last checkpoint. Exits non-zero if any line failed.
# After each finished cell, its records are copied into ARCHIVE (scripts/archive_results.py; default
# results/baseline when ROOT is the default runs/baseline, else none) to be committed: runs/ is not.
# Each cell's processes may allocate at most MEM_LIMIT_GB (default 10) of data memory (ulimit -d):
# a process that runs away then fails with an allocation error and its traceback in the cell's log,
# instead of the kernel's OOM killer taking it, or the other lane, without a word.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROOT=${ROOT:-runs/baseline} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
default_archive=; [ "$ROOT" = runs/baseline ] && default_archive=results/baseline
export ARCHIVE=${ARCHIVE-$default_archive} MEM_LIMIT_GB=${MEM_LIMIT_GB:-10}
if ! [[ $MEM_LIMIT_GB =~ ^[1-9][0-9]*$ ]]; then
  echo "MEM_LIMIT_GB must be a whole number of gigabytes, got '$MEM_LIMIT_GB'" >&2; exit 2
fi
mkdir -p "$ROOT/logs"
# shellcheck disable=SC2016  # the inner script expands its own arguments
grep -v -E '^[[:space:]]*(#|$)' "${1:-/dev/stdin}" | xargs -P "${LANES:-2}" -L 1 bash -c '
  log=$ROOT/logs/$(IFS=-; echo "$*").log
  ulimit -d $((MEM_LIMIT_GB * 1024 * 1024))
  echo "start: $* ($(date +%T))"
  if ! scripts/compare.sh "$@" > "$log" 2>&1; then echo "FAILED: $* (see $log)"; exit 1; fi
  if [ -n "$ARCHIVE" ]; then .venv/bin/python scripts/archive_results.py "$ROOT" "$ARCHIVE" >> "$log"; fi
  echo "done: $* ($(date +%T))"
' cell
