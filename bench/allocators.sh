#!/usr/bin/env bash
# DP3 training throughput under the three allocators, alternated (absolute speed drifts on these
# machines, so only a comparison within one window means anything):
#   bench/allocators.sh DATA [ROUNDS] [BATCH]
# glibc as shipped, glibc with dynarep's tuning, and jemalloc with the DP3 measurements' tuning.
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1; rounds=${2:-2}; batch=${3:-128}
PY=.venv/bin/python
# jemalloc's library and tuning as dynarep itself finds and applies them (dynarep/runtime.py)
lib=$($PY -c "from dynarep.runtime import find_jemalloc; print(find_jemalloc() or '')")
JE=$($PY -c "from dynarep.runtime import JEMALLOC_CONF; print(JEMALLOC_CONF)")
run() { $PY bench/policy.py --data "$data" --presets cpu --batch "$batch" --steps 8 --train-only "$@" | tail -1; }
for _ in $(seq "$rounds"); do
  echo -n "glibc as shipped:  "; run --malloc-tuning off
  echo -n "glibc, tuned:      "; run --malloc-tuning on
  if [ -n "$lib" ]; then
    echo -n "jemalloc, tuned:   "
    LD_PRELOAD=$lib MALLOC_CONF=$JE run --malloc-tuning off
  fi
done
