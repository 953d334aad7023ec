#!/usr/bin/env bash
# Learning side by side: each method trained by autodidact and by OGBench's JAX reference on the
# same dataset file, at the same reduced CPU config, budget and seed, both scored by autodidact's
# evaluator on OGBench's 5 tasks with the same episode seeds.
#
# The two runs of a (method, seed) pair run at the same time, one thread each, so background load
# falls on both alike. Each side is pinned to its own core with taskset: XLA ignores the XLA_FLAGS
# thread settings below (a reference run so limited still used about two cores' CPU time), so
# without the pin the reference took a share of the core autodidact's side ran on. Per run: $WORK/<method>_s<seed>_{ours,ref}.json (+ ours' run directory).
#
# Usage: bash scripts/learn_reference.sh      (env vars override the defaults below)
#   STEPS=10000 BATCH=256 HIDDEN=256,256,256 EPISODES=10 SEEDS="0" METHODS="gcbc gcivl ..."
#   ENV_NAME=visual-cube-single-play-v0 HIDDEN= : OGBench's visual row on both sides (impala_small,
#     p_aug 0.5, visual alphas; empty HIDDEN keeps the published MLP widths) on $DATA_DIR/$ENV_NAME.npz
#   PRECISION=bf16 SIDES=ours trains autodidact's side with `--precision bf16` (results *_ours_bf16.*);
#     refused on a CPU without native bfloat16 matmuls unless EMULATED_BF16=1 (torch's slow fallback)
#   KERNELS=torch trains autodidact's side with `--kernels torch` (at the reduced size, the same computation)
#   SUMMARY_ONLY=1 re-prints the table from $WORK.
set -euo pipefail

source "$(dirname "$0")/reference_env.sh"
WORK=${WORK:-/tmp/reflearn}
STEPS=${STEPS:-10000}
BATCH=${BATCH:-256}
HIDDEN=${HIDDEN-256,256,256}
EPISODES=${EPISODES:-10}
SEEDS=${SEEDS:-0}
METHODS=${METHODS:-"gcbc gcivl gciql qrl crl hiql"}
SIDES=${SIDES:-"ours ref"}  # SIDES=ours re-trains only autodidact's side (keeps the reference's results)
OURS_CORE=${OURS_CORE:-0} REF_CORE=${REF_CORE:-1}  # e.g. two SIDES=ours runs at once: OURS_CORE=1 for the second
PRECISION=${PRECISION:-float32}  # autodidact's side only; the reference always runs float32
KERNELS=${KERNELS:-tuned}  # autodidact's side: --kernels tuned (the default) or torch
SUFFIX=$([ "$PRECISION" = float32 ] || echo "_$PRECISION")
reference_setup
if [ "$PRECISION" = bf16 ] && [ "${EMULATED_BF16:-0}" != 1 ] && ! cpu_has_native_bf16; then
  echo "this CPU has no native bfloat16 matmul (AVX512-BF16 or AMX): bf16 training is emulated, many times" \
       "slower; EMULATED_BF16=1 runs it anyway" >&2
  exit 2
fi
mkdir -p "$WORK"

ours() {  # method seed
  local m=$1 seed=$2 run=$WORK/runs/$1_s$2$SUFFIX out=$WORK/$1_s$2_ours$SUFFIX
  local sets
  mapfile -t sets < <(size_sets "$m" "$BATCH" "$HIDDEN")
  rm -rf "$run"
  pinned "$OURS_CORE" "${ONE_THREAD[@]}" "$AUTODIDACT" train --method "$m" --dataset "$DATASET" --out "$run" --steps "$STEPS" \
    --seed "$seed" --precision "$PRECISION" --kernels "$KERNELS" --eval-episodes 0 --no-progress "${sets[@]}" > "$out.log" 2>&1
  pinned "$OURS_CORE" "${ONE_THREAD[@]}" "$AUTODIDACT" eval "$run" --episodes "$EPISODES" --seed "$seed" --no-progress \
    >> "$out.log" 2>&1
  cp "$run/eval/final.json" "$out.json"
}

ref() {  # method seed
  pinned "$REF_CORE" "${ONE_THREAD[@]}" "$REF_VENV/bin/python" "$REPO/scripts/reference_learn.py" --ref "$REF_DIR" --src "$REPO/src" \
    --method "$1" --dataset "$DATASET" --steps "$STEPS" --batch-size "$BATCH" --hidden "$HIDDEN" \
    --seed "$2" --episodes "$EPISODES" --json "$WORK/${1}_s${2}_ref.json" > "$WORK/${1}_s${2}_ref.log" 2>&1
}

if [ "${SUMMARY_ONLY:-0}" != 1 ]; then
  for seed in $SEEDS; do
    for m in $METHODS; do
      echo "$(date +%T) $m seed $seed: $SIDES start, ours $PRECISION (load $(cut -d' ' -f1-3 /proc/loadavg))"
      o= r=
      [[ " $SIDES " == *" ours "* ]] && { ours "$m" "$seed" & o=$!; }
      [[ " $SIDES " == *" ref "* ]] && { ref "$m" "$seed" & r=$!; }
      [ -z "$o" ] || wait $o || echo "  autodidact $m failed: see $WORK/${m}_s${seed}_ours$SUFFIX.log"
      [ -z "$r" ] || wait $r || echo "  reference $m failed: see $WORK/${m}_s${seed}_ref.log"
    done
  done
fi

"$REF_VENV/bin/python" - "$WORK" "$METHODS" "$SEEDS" "$STEPS" "$BATCH" "${HIDDEN:-published}" "$EPISODES" "$ENV_NAME" <<'PY'
import json, os, statistics, sys
work, methods, seeds, steps, batch, hidden, episodes, env_name = sys.argv[1:]
print(f"{env_name}, {steps} steps, batch {batch}, hidden {hidden}, "
      f"{episodes} episodes per task, seeds {seeds}; success per task (mean over seeds)\n")
print("| method | impl | task1 | task2 | task3 | task4 | task5 | overall | per seed |")
print("|---|---|---|---|---|---|---|---|---|")
for m in methods.split():
    for impl, label in (("ours", "autodidact"), ("ours_bf16", "autodidact bf16"), ("ref", "reference")):
        rs = [json.load(open(f)) for s in seeds.split()
              if os.path.exists(f := f"{work}/{m}_s{s}_{impl}.json")]
        if not rs and impl.startswith("ours_bf16"):
            continue  # bf16 rows only where PRECISION=bf16 runs exist
        if not rs:
            print(f"| {m} | {label} | missing ||||||| ")
            continue
        tasks = [statistics.mean(r["tasks"][i]["success"] for r in rs) for i in range(len(rs[0]["tasks"]))]
        overall = statistics.mean(r["overall_success"] for r in rs)
        print(f"| {m} | {label} | " + " | ".join(f"{100 * t:.0f}" for t in tasks) + f" | **{100 * overall:.1f}** | "
              + ", ".join(f"{100 * r['overall_success']:.0f}" for r in rs) + " |")
PY
