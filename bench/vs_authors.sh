#!/usr/bin/env bash
# DP3 training throughput, ours against the DP3 authors' code, alternated in one window under the
# same allocator and threads (absolute speed drifts on these machines; only the ratio is reported):
#   bench/vs_authors.sh AUTHORS_BENCH DATA [ROUNDS] [BATCH]
# AUTHORS_BENCH: a script that runs the authors' own training step (YanjieZe/3D-Diffusion-Policy:
# their DP3 policy, dataset, DataLoader, AdamW, EMA and LR scheduler) and prints a line
# "authors DP3 train: X samples/s". Their code is theirs, so dynarep does not ship it. DATA: a
# DP3-format zarr both can read (ours writes that layout).
set -euo pipefail
cd "$(dirname "$0")/.."
authors=$1; data=$2; rounds=${3:-2}; batch=${4:-128}
PY=.venv/bin/python
# jemalloc's library and tuning as dynarep itself finds and applies them (dynarep/runtime.py)
lib=$($PY -c "from dynarep.runtime import find_jemalloc; print(find_jemalloc() or '')")
JE=$($PY -c "from dynarep.runtime import JEMALLOC_CONF; print(JEMALLOC_CONF)")
ours() { $PY bench/policy.py --data "$data" --presets cpu --batch "$batch" --steps "${STEPS:-10}" --train-only --malloc-tuning off | tail -1; }
theirs() { $PY "$authors" --steps "${STEPS:-10}" --batch "$batch" --zarr "$data" --no-tqdm 2>/dev/null | awk '/authors DP3 train:/ && !n {print; n=1}'; }
for _ in $(seq "$rounds"); do
  echo "glibc, as each ships:"
  echo -n "  authors: "; theirs
  echo -n "  ours:    "; ours
  if [ -n "$lib" ]; then
    echo "jemalloc ($JE):"
    echo -n "  authors: "; LD_PRELOAD=$lib MALLOC_CONF=$JE theirs
    echo -n "  ours:    "; LD_PRELOAD=$lib MALLOC_CONF=$JE ours
  fi
done
