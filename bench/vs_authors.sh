#!/usr/bin/env bash
# Training throughput, ours against the authors' code, alternated in one window under the same
# allocator and threads (absolute speed drifts on these machines; only the ratio is reported):
#   bench/vs_authors.sh dp3|afro AUTHORS_BENCH DATA [ROUNDS] [BATCH]
# dp3: DP3 policy training at the `cpu` preset's UNet (samples/s, default batch 128).
# afro: AFRO pre-training at the `paper` preset (33-frame windows of 512 points; windows/s, default
#   batch 192 as the paper; the authors' latest afro.yaml says 128).
# AUTHORS_BENCH: a script that runs the authors' own training step (dp3: YanjieZe/3D-Diffusion-Policy,
# their policy, dataset, DataLoader, AdamW, EMA and LR scheduler; afro: KolaKivy/AFRO, their AFRO
# model, dataset, DataLoader, AdamW, LR scheduler and momentum update) and prints one line
# "authors DP3 train: X samples/s" or "authors AFRO pretrain: X windows/s". It takes --steps,
# --batch, --zarr and --no-tqdm. Their code is theirs, so dynarep does not ship it. DATA: a
# DP3-format zarr both can read (ours writes that layout). STEPS overrides the timed steps.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=$1; authors=$2; data=$3; rounds=${4:-2}
PY=.venv/bin/python
case $kind in
  dp3) batch=${5:-128}; steps=${STEPS:-10}; label="authors DP3 train:"
       ours_bench=(bench/policy.py --data "$data" --presets cpu --batch "$batch" --steps "$steps" --train-only) ;;
  afro) batch=${5:-192}; steps=${STEPS:-3}; label="authors AFRO pretrain:"
        ours_bench=(bench/pretrain.py --data "$data" --methods afro --presets paper --batch "$batch" --steps "$steps") ;;
  *) echo "first argument: dp3 or afro, not '$kind'" >&2; exit 2 ;;
esac
# jemalloc's library and tuning as dynarep itself finds and applies them (dynarep/runtime.py)
lib=$($PY -c "from dynarep.runtime import find_jemalloc; print(find_jemalloc() or '')")
JE=$($PY -c "from dynarep.runtime import JEMALLOC_CONF; print(JEMALLOC_CONF)")
ours() { $PY "${ours_bench[@]}" | tail -1; }
ours_untuned() { DYNAREP_MALLOC_TUNING=0 ours; }  # glibc as it comes: no mmap or trim settings
theirs() { $PY "$authors" --steps "$steps" --batch "$batch" --zarr "$data" --no-tqdm 2>/dev/null | awk -v l="$label" 'index($0, l) && !n {print; n=1}'; }
rate() { grep -oE '[0-9]+(\.[0-9]+)? (samples|windows)/s' <<<"$1" | head -1 | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "?" }'; }
show() { echo "  $1: $2"; }
# Three comparisons: both on plain glibc (ours with its in-process glibc tuning switched off), ours on
# glibc with that tuning (what dynarep runs when libjemalloc is missing), both on tuned jemalloc (what
# dynarep runs when it is installed, as scripts/setup.sh does; the authors ship plain glibc).
for _ in $(seq "$rounds"); do
  a=$(theirs); o=$(ours_untuned); t=$(ours)
  show "authors, glibc            " "$a"
  show "ours, glibc, untuned      " "$o"
  show "ours, glibc, tuned        " "$t"
  echo "  ratio, same allocator glibc untuned: $(ratio "$(rate "$a")" "$(rate "$o")");" \
       "ours tuned over theirs on glibc: $(ratio "$(rate "$a")" "$(rate "$t")")"
  if [ -n "$lib" ]; then
    aj=$(LD_PRELOAD=$lib MALLOC_CONF=$JE theirs); oj=$(LD_PRELOAD=$lib MALLOC_CONF=$JE ours)
    show "authors, jemalloc         " "$aj"
    show "ours, jemalloc            " "$oj"
    echo "  ratio, same allocator jemalloc: $(ratio "$(rate "$aj")" "$(rate "$oj")");" \
         "as each ships (theirs glibc, ours jemalloc): $(ratio "$(rate "$a")" "$(rate "$oj")")"
  fi
done
