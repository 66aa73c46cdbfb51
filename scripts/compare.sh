#!/usr/bin/env bash
# Cells of the encoder comparison (issue 4) under the `cpu` protocol, beside the DP3 baseline:
#   scripts/compare.sh TASK SEED VARIANT...
# (many cells on several lanes: scripts/compare_grid.sh scripts/comparison_cells.txt)
# VARIANT: dp3
#        | ENCODER-frozen | ENCODER-finetune        encoder pre-trained on the task's 10 demonstrations
#        | ENCODER-multi-frozen | ENCODER-multi-finetune   ... on those of every development-set task
#        | ENCODER[-multi]-frozen-std                frozen, features standardised per dimension
#                                                   (`dynarep train --standardize-features`)
#        | ENCODER[-multi]-finetune-fulllr           fine-tuned with the encoder at the policy's learning
#                                                   rate (the `cpu` preset's 1e-4) instead of AFRO's 1e-5
#        | probe:ENCODER                            pre-train and probe only (no policy)
#        | dp3-frozen                               control: the encoder DP3 learned end to end for this
#                                                   task and seed, frozen under a new state MLP and UNet
#                                                   (what AFRO's transfer protocol costs by itself)
# ENCODER: a method (random, dynamo3d, pointmae, afro), then options joined by "-", e.g. afro-mse, afro-copy-det:
#   Table 5's ablations: det (deterministic FDM), pair (raw pair instead of the difference), noic (no
#   inverse consistency), mse (MSE instead of VICReg), act64, act128 (latent action size), k1, k16
#   (interval); and, not in Table 5: copy (the EMA teacher starts as a copy of the online encoder,
#   with a final LayerNorm and PyTorch's initialisation in the DiT, as dynarep did before it followed
#   the authors' code there), long (4 times the `cpu` pre-training: 1600 steps of 32 windows);
#   for pointmae: nocentres (the decoder is not told where the masked patches lie); for random:
#   noiseN (each weight tensor moved by N% of its RMS in Gaussian noise, e.g. random-noise5); for
#   any method: sN (pre-training seed N instead of 0, which also draws the initial encoder: random-s1),
#   sP (pre-training seed = the policy seed: each seed of the row has its own encoder; the cell is
#   the one of option sN, e.g. afro-s1-frozen for seed 1 and afro-frozen for seed 0, made if
#   missing and linked under the sP name, so that both rows share it).
# Encoders land in ROOT/encoders/ENCODER/{TASK,multi}, runs in ROOT/<variant>/<task>/seed<k>/ (see
# scripts/baseline.sh), wall times in ROOT/times.txt. Datasets are collected on demand.
# Frozen policies train on features computed once (`dynarep train --cache-features`, about 1.5 times
# faster); CACHE_FEATURES=0 runs the encoder at every step, as every frozen row made before this
# option was (the runs' config.json records which).
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(encoder ...) stops there too
cd "$(dirname "$0")/.."
task=$1; seed=$2; shift 2
root=${ROOT:-runs/baseline}
DR=.venv/bin/dynarep
DEV_TASKS="button-press drawer-open door-open coffee-push hammer pick-place assembly stick-pull"
# stdout of the helpers below is the path they return; everything else goes to stderr
timed() { local label=$1; shift; local t0=$SECONDS; "$@" >&2; echo "$label: $((SECONDS - t0)) s" | tee -a "$root/times.txt" >&2; }
# lanes run side by side (scripts/compare_grid.sh): whoever holds LOCK makes a dataset or an encoder,
# the others wait for it and then find it made
with_lock() { local lock=$1; shift; mkdir -p "$(dirname "$lock")"; { flock 9; "$@"; } 9>"$lock"; }

dataset() {  # collect a task's 10 demonstrations once
  local t=$1 data=$root/data/$1.zarr
  with_lock "$data.lock" collect_missing "$t" "$data"
  echo "$data"
}

collect_missing() {  # TASK DATA
  if [ ! -d "$2" ]; then timed "collect $1" $DR collect --task "$1" --episodes 10 --seed 0 --out "$2"; fi
}

pretrain_options() {  # `dynarep pretrain` options of an encoder name: method first, then its options
  local method=${1%%-*} sets=() steps=() seed=0 option
  IFS=- read -ra words <<<"${1#"$method"}"
  for option in "${words[@]}"; do
    case $option in
      "") ;;
      det) sets+=(deterministic_fdm=true) ;;
      pair) sets+=(use_difference=false) ;;
      noic) sets+=(inverse_consistency=false) ;;
      mse) sets+=(loss=mse) ;;
      act64|act128) sets+=("latent_action_dim=${option#act}") ;;
      k1|k16) sets+=("interval=${option#k}") ;;
      copy) sets+=(teacher_init=copy fdm_final_norm=true fdm_init=default) ;;
      long) steps=(--steps 1600) ;;
      nocentres) sets+=(decoder_sees_centres=false) ;;
      s[0-9]) seed=${option#s} ;;
      noise[0-9]|noise[0-9][0-9]) sets+=("weight_noise=$(printf '0.%02d' "${option#noise}")") ;;
      *) echo "unknown option '$option' in encoder $1" >&2; exit 2 ;;
    esac
  done
  echo --method "$method" --seed "$seed" "${steps[@]}" ${sets[@]:+--set "${sets[@]}"}
}

encoder() {  # pre-train ENCODER on SCOPE (a task, or "multi") once and probe it; print its directory
  local name=$1 scope=$2 out=$root/encoders/$1/$2
  if [ "$name" = dp3 ]; then  # DP3's own encoder, trained end to end with the same seed's policy
    out=$root/dp3-cpu/$task/seed$seed
    NAME=dp3-cpu scripts/baseline.sh "$task" "$seed" >&2  # skips the cell if it is finished
    echo "$out"; return
  fi
  with_lock "$out.lock" pretrain_and_probe "$name" "$scope" "$out" >&2
  echo "$out"
}

pretrain_and_probe() {  # ENCODER SCOPE OUT: what encoder() needs made, unless it is there
  local name=$1 scope=$2 out=$3 options; options=$(pretrain_options "$name")
  if [ ! -f "$out/model.safetensors" ]; then
    local data=()
    if [ "$scope" = multi ]; then
      for t in $DEV_TASKS; do data+=("$(dataset "$t")"); done
    else
      data+=("$(dataset "$scope")")
    fi
    # shellcheck disable=SC2086  # options are words made above, without spaces inside
    timed "pretrain $name $scope" $DR pretrain $options --data "${data[@]}" --preset cpu --out "$out"
  fi
  if [ ! -f "$out/probe.json" ]; then  # probed on the task's own demonstrations, also for multi
    local probe_data; probe_data=$(dataset "${scope/multi/$task}")
    $DR probe --encoder "$out" --data "$probe_data" --out "$out/probe.json" --pca-image "$out/pca.png" >&2
  fi
}

policy() {  # VARIANT = ENCODER[-multi]-frozen[-std]|finetune[-fulllr]: the policy on that encoder
  local variant=$1 extra=() base=$1
  if [[ $variant == *-sP-* ]]; then  # the cell of this seed's encoder, linked under the sP name
    local concrete=${variant/-sP/$([ "$seed" = 0 ] || echo "-s$seed")}
    policy "$concrete"
    mkdir -p "$root/$variant/$task"
    ln -sfn "../../$concrete/$task/seed$seed" "$root/$variant/$task/seed$seed"
    return
  fi
  if [[ $base == *-std ]]; then base=${base%-std}; extra=(--standardize-features); fi
  if [[ $base == *-fulllr ]]; then base=${base%-fulllr}; extra=(--encoder-lr 1e-4); fi
  local mode=${base##*-} name=${base%-*} scope=$task
  if [[ $name == *-multi ]]; then name=${name%-multi}; scope=multi; fi
  if [[ $mode == frozen && ${CACHE_FEATURES:-1} == 1 ]]; then extra+=(--cache-features); fi
  local encoder_dir; encoder_dir=$(encoder "$name" "$scope")  # its own line, so that its failure stops here
  NAME=$variant scripts/baseline.sh "$task" "$seed" --encoder "$encoder_dir" "--${mode/frozen/freeze}" "${extra[@]}"
}

dataset "$task" > /dev/null
for variant in "$@"; do
  case $variant in
    dp3) NAME=dp3-cpu scripts/baseline.sh "$task" "$seed" ;;
    probe:*) encoder "${variant#probe:}" "$task" > /dev/null ;;
    *-frozen|*-finetune|*-frozen-std|*-finetune-fulllr) policy "$variant" ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
  esac
done
