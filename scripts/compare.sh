#!/usr/bin/env bash
# Cells of the encoder comparison (issue 4) under the `cpu` protocol, beside the DP3 baseline:
#   scripts/compare.sh TASK SEED VARIANT...
# VARIANT: dp3 | random-frozen | dynamo3d-frozen | afro-frozen | afro-finetune | afro-multi-frozen
#          | ENCODER-frozen for an AFRO ablation of Table 5 (ENCODER below, e.g. afro-mse-frozen)
#          | probe:ENCODER  pre-train and probe only (no policy), e.g. probe:afro-k1
# Table 5's ablations, as encoders: afro-det (deterministic FDM), afro-pair (raw pair instead of the
# difference), afro-noic (no inverse consistency), afro-mse (MSE instead of VICReg), afro-act64,
# afro-act128 (latent action size), afro-k1, afro-k16 (interval). Not in Table 5: afro-long, the
# default AFRO pre-trained 4 times longer (1600 steps of 32 windows, a third of the paper's length).
# In-domain encoders are pre-trained on the task's own 10 demonstrations; `afro-multi` on those of
# every development-set task (collected on demand). Encoders land in ROOT/encoders/, runs in
# ROOT/<variant>/<task>/seed<k>/ (see scripts/baseline.sh), wall times in ROOT/times.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
task=$1; seed=$2; shift 2
root=${ROOT:-runs/baseline}
DR=.venv/bin/dynarep
DEV_TASKS="button-press drawer-open door-open coffee-push hammer pick-place assembly stick-pull"
# stdout of the helpers below is the path they return; everything else goes to stderr
timed() { local label=$1; shift; local t0=$SECONDS; "$@" >&2; echo "$label: $((SECONDS - t0)) s" | tee -a "$root/times.txt" >&2; }

dataset() {  # collect a task's 10 demonstrations once
  local t=$1 data=$root/data/$1.zarr
  [ -d "$data" ] || timed "collect $t" $DR collect --task "$t" --episodes 10 --seed 0 --out "$data"
  echo "$data"
}

ablation() {  # --set options of an encoder name; the method is the name's first word
  case $1 in
    afro|dynamo3d|random) ;;
    afro-det) echo deterministic_fdm=true ;;
    afro-pair) echo use_difference=false ;;
    afro-noic) echo inverse_consistency=false ;;
    afro-mse) echo loss=mse ;;
    afro-act64) echo latent_action_dim=64 ;;
    afro-act128) echo latent_action_dim=128 ;;
    afro-k1) echo interval=1 ;;
    afro-k16) echo interval=16 ;;
    afro-long) ;;
    *) echo "unknown encoder $1" >&2; exit 2 ;;
  esac
}

steps() {  # --steps of an encoder name, when it is not the preset's
  case $1 in afro-long) echo 1600 ;; esac
}

encoder() {  # pre-train ENCODER on SCOPE (a task, or "multi") once and probe it; print its directory
  local name=$1 scope=$2 out=$root/encoders/$1/$2 method=${1%%-*}
  local sets; sets=$(ablation "$name")
  local steps; steps=$(steps "$name")
  if [ ! -f "$out/model.safetensors" ]; then
    local data=()
    if [ "$scope" = multi ]; then
      for t in $DEV_TASKS; do data+=("$(dataset "$t")"); done
    else
      data+=("$(dataset "$scope")")
    fi
    timed "pretrain $name $scope" $DR pretrain --method "$method" --data "${data[@]}" --preset cpu \
      --seed 0 --out "$out" ${sets:+--set $sets} ${steps:+--steps $steps}
  fi
  if [ ! -f "$out/probe.json" ]; then  # probed on the task's own demonstrations, also for multi
    local probe_data; probe_data=$(dataset "${scope/multi/$task}")
    $DR probe --encoder "$out" --data "$probe_data" --out "$out/probe.json" --pca-image "$out/pca.png" >&2
  fi
  echo "$out"
}

dataset "$task" > /dev/null
for variant in "$@"; do
  case $variant in
    dp3) NAME=dp3-cpu scripts/baseline.sh "$task" "$seed" ;;
    random-frozen|dynamo3d-frozen|afro-frozen)
      NAME=$variant scripts/baseline.sh "$task" "$seed" --encoder "$(encoder "${variant%-frozen}" "$task")" --freeze ;;
    afro-finetune)
      NAME=$variant scripts/baseline.sh "$task" "$seed" --encoder "$(encoder afro "$task")" --finetune ;;
    afro-multi-frozen)
      NAME=$variant scripts/baseline.sh "$task" "$seed" --encoder "$(encoder afro multi)" --freeze ;;
    probe:*) encoder "${variant#probe:}" "$task" > /dev/null ;;
    *-frozen) NAME=$variant scripts/baseline.sh "$task" "$seed" --encoder "$(encoder "${variant%-frozen}" "$task")" --freeze ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
  esac
done
