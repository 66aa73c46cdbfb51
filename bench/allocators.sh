#!/usr/bin/env bash
# DP3 training throughput under four allocators, alternated (absolute speed drifts on these
# machines, so only a comparison within one window means anything):
#   bench/allocators.sh DATA [ROUNDS] [BATCH] [POLICY]
# glibc as shipped, glibc with dynarep's tuning, jemalloc with dynarep's tuning, and jemalloc with
# the DP3 measurements' tuning (which adds oversize_threshold:1). With POLICY (a trained policy
# directory), also evaluates it for EPISODES (default 20) episodes under glibc and both jemalloc
# tunings, and prints each one's wall time and peak resident memory: under the DP3 measurements'
# tuning it grows with every episode.
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1; rounds=${2:-2}; batch=${3:-128}; policy=${4:-}
PY=.venv/bin/python
# jemalloc's library and tuning as dynarep itself finds and applies them (dynarep/runtime.py)
lib=$($PY -c "from dynarep.runtime import find_jemalloc; print(find_jemalloc() or '')")
JE=$($PY -c "from dynarep.runtime import JEMALLOC_CONF; print(JEMALLOC_CONF)")
DP3_JE=oversize_threshold:1,$JE
run() { $PY bench/policy.py --data "$data" --presets cpu --batch "$batch" --steps 8 --train-only "$@" | tail -1; }
for _ in $(seq "$rounds"); do
  echo -n "glibc as shipped:  "; run --malloc-tuning off
  echo -n "glibc, tuned:      "; run --malloc-tuning on
  if [ -n "$lib" ]; then
    echo -n "jemalloc, tuned:   "
    LD_PRELOAD=$lib MALLOC_CONF=$JE run --malloc-tuning off
    echo -n "jemalloc, DP3's:   "
    LD_PRELOAD=$lib MALLOC_CONF=$DP3_JE run --malloc-tuning off
  fi
done
[ -z "$policy" ] && exit 0
out=$(mktemp -d)
evaluate() {  # LABEL ENV...: one evaluation of POLICY, its wall time and peak memory from eval.json
  env "${@:2}" $PY -m dynarep.cli eval --policy "$policy" --episodes "${EPISODES:-20}" --seeds 0 \
    --out "$out/$1.json" > /dev/null 2>&1
  $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(f'eval, {sys.argv[2]:<28} {r[\"wall_seconds\"]:7.1f} s, peak {r[\"peak_memory_mb\"]:8.0f} MB')" "$out/$1.json" "$1"
}
evaluate glibc DYNAREP_ALLOCATOR=glibc
if [ -n "$lib" ]; then
  evaluate "jemalloc, tuned" "MALLOC_CONF=$JE"
  evaluate "jemalloc, DP3 measurements" "MALLOC_CONF=$DP3_JE"
fi
rm -rf "$out"
