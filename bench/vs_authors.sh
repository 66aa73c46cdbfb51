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
ours() { $PY bench/policy.py --data "$data" --presets cpu --batch "$batch" --steps "${STEPS:-10}" --train-only "$@" | tail -1; }
theirs() { $PY "$authors" --steps "${STEPS:-10}" --batch "$batch" --zarr "$data" --no-tqdm 2>/dev/null | awk '/authors DP3 train:/ && !n {print; n=1}'; }
rate() { grep -oE '[0-9]+(\.[0-9]+)? samples/s' <<<"$1" | head -1 | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "?" }'; }
show() { echo "  $1: $2"; }
# Three comparisons: both on plain glibc (ours with its in-process glibc tuning switched off), ours on
# glibc with that tuning (what dynarep runs when libjemalloc is missing), both on tuned jemalloc (what
# dynarep runs when it is installed, as scripts/setup.sh does; the authors ship plain glibc).
for _ in $(seq "$rounds"); do
  a=$(theirs); o=$(ours --malloc-tuning off); t=$(ours --malloc-tuning on)
  show "authors, glibc            " "$a"
  show "ours, glibc, untuned      " "$o"
  show "ours, glibc, tuned        " "$t"
  echo "  ratio, same allocator glibc untuned: $(ratio "$(rate "$a")" "$(rate "$o")");" \
       "ours tuned over theirs on glibc: $(ratio "$(rate "$a")" "$(rate "$t")")"
  if [ -n "$lib" ]; then
    aj=$(LD_PRELOAD=$lib MALLOC_CONF=$JE theirs); oj=$(LD_PRELOAD=$lib MALLOC_CONF=$JE ours --malloc-tuning off)
    show "authors, jemalloc         " "$aj"
    show "ours, jemalloc            " "$oj"
    echo "  ratio, same allocator jemalloc: $(ratio "$(rate "$aj")" "$(rate "$oj")");" \
         "as each ships (theirs glibc, ours jemalloc): $(ratio "$(rate "$a")" "$(rate "$oj")")"
  fi
done
