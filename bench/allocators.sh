#!/usr/bin/env bash
# DP3 training throughput under the three allocators, alternated (absolute speed drifts on these
# machines, so only a comparison within one window means anything):
#   bench/allocators.sh DATA [ROUNDS] [BATCH]
# glibc as shipped, glibc with dynarep's tuning, and jemalloc with the DP3 measurements' tuning.
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1; rounds=${2:-2}; batch=${3:-128}
PY=.venv/bin/python
lib=$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2 2>/dev/null | head -1 || true)
run() { $PY bench/policy.py --data "$data" --presets cpu --batch "$batch" --steps 8 --train-only "$@" | tail -1; }
for _ in $(seq "$rounds"); do
  echo -n "glibc as shipped:  "; run --malloc-tuning off
  echo -n "glibc, tuned:      "; run --malloc-tuning on
  if [ -n "$lib" ]; then
    echo -n "jemalloc, tuned:   "
    LD_PRELOAD=$lib MALLOC_CONF=oversize_threshold:1,background_thread:true,dirty_decay_ms:-1,muzzy_decay_ms:-1 run --malloc-tuning off
  fi
done
