#!/usr/bin/env bash
# One cell of the baseline table under the `cpu` protocol (shared/PROTOCOL.md):
# 10 expert demonstrations, train with the given preset and seed, evaluate the final checkpoint
# on 50 fresh configurations, blind replay beside it. Prints the wall time of each stage; a cell
# with its eval.json is skipped.
#   scripts/baseline.sh TASK SEED [extra train options...]
# ROOT (default runs/baseline) holds data/ and the runs; NAME (default dp3-cpu) names this variant.
set -euo pipefail
cd "$(dirname "$0")/.."
task=$1; seed=$2; shift 2
root=${ROOT:-runs/baseline}
data=$root/data/$task.zarr
run=$root/${NAME:-dp3-cpu}/$task/seed$seed
DR=.venv/bin/dynarep
timed() { local label=$1; shift; local t0=$SECONDS; "$@"; echo "$label: $((SECONDS - t0)) s" | tee -a "$root/times.txt"; }
mkdir -p "$root"
if [ -f "$run/eval.json" ]; then  # a finished cell: so that a grid of cells resumes where it stopped
  echo "$run: done already (delete $run/eval.json to train and evaluate it again)"; exit 0
fi
if [ ! -d "$data" ]; then
  timed "collect $task" $DR collect --task "$task" --episodes 10 --seed 0 --out "$data"
fi
timed "train ${NAME:-dp3-cpu} $task seed $seed" $DR train --data "$data" --preset cpu --seed "$seed" --out "$run" "$@"
timed "eval ${NAME:-dp3-cpu} $task seed $seed" $DR eval --policy "$run" --episodes 50 --seeds "$seed" --out "$run/eval.json"
