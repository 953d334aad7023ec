# Shared setup for the side-by-side comparisons with OGBench's JAX reference (sourced by
# bench_reference.sh and learn_reference.sh; not run on its own).
#
# Everything belonging to the reference lives OUTSIDE this repository:
#   $REF_DIR   exported tree of the OGBench mirror (impls/ plus ogbench/utils.py)
#   $REF_VENV  scratch venv with jax (CPU), flax, optax, distrax, ml_collections, gymnasium, tqdm,
#              and ogbench + mujoco pinned to autodidact's versions (environments for evaluation;
#              scipy + fast-simplification for the visual evaluator's fast renderer)
# Nothing is installed into or copied into this repository.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIRROR=${MIRROR:-/work/.mirror/seohongpark+ogbench/repo}
REF_DIR=${REF_DIR:-/tmp/ogbench-ref}
REF_VENV=${REF_VENV:-/tmp/refvenv}
DATA_DIR=${DATA_DIR:-/tmp/benchdata}
AUTODIDACT=${AUTODIDACT:-$REPO/.venv/bin/autodidact}
ENV_NAME=${ENV_NAME:-pointmaze-medium-navigate-v0}
DATASET=$DATA_DIR/$ENV_NAME.npz

reference_setup() {
  # 1. Reference source, exported from the bare mirror (only the paths the harnesses import; the
  #    mirror's large mesh assets are not present, so a full `git archive HEAD` fails).
  if [ ! -f "$REF_DIR/impls/agents/__init__.py" ] || [ ! -f "$REF_DIR/ogbench/utils.py" ]; then
    mkdir -p "$REF_DIR"
    git -C "$MIRROR" archive HEAD impls ogbench/utils.py ogbench/relabel_utils.py | tar -x -C "$REF_DIR" || true
    [ -f "$REF_DIR/impls/agents/__init__.py" ] && [ -f "$REF_DIR/ogbench/utils.py" ] \
      || { echo "could not export the reference tree into $REF_DIR" >&2; exit 1; }
  fi
  REF_COMMIT=$(git -C "$MIRROR" rev-parse HEAD)

  # 2. Scratch venv for the reference (CPU jax; wandb/matplotlib/moviepy are not needed because
  #    main.py is not imported).
  if [ ! -x "$REF_VENV/bin/python" ]; then
    python3 -m venv "$REF_VENV"
  fi
  if ! "$REF_VENV/bin/python" -c "import jax, flax, optax, distrax, ml_collections, gymnasium, tqdm, ogbench, mujoco, scipy, fast_simplification" 2>/dev/null; then
    # The versions every recorded comparison used (docs/PERFORMANCE.md); REF_NEWEST=1 takes the newest.
    local pins=("jax[cpu]==0.10.2" jaxlib==0.10.2 flax==0.12.8 optax==0.2.8 distrax==0.1.9
                ml_collections==1.1.0 numpy==2.4.6)
    [ "${REF_NEWEST:-0}" = 1 ] && pins=("jax[cpu]" jaxlib flax optax distrax ml_collections numpy)
    "$REF_VENV/bin/pip" install "${pins[@]}" gymnasium tqdm scipy \
      $(grep -E '^(ogbench|mujoco|imageio|fast-simplification)==' "$REPO/constraints.txt")
  fi

  # 3. One dataset file, read by both sides.
  if [ ! -f "$DATASET" ]; then
    "$AUTODIDACT" collect "$ENV_NAME" --out "$DATA_DIR" --episodes 100 --workers 2
  fi
}

# One thread per side. XLA ignores its flags below (a "one thread" reference run still used about two
# cores' CPU time), so only a taskset pin (pinned) holds it to one core.
ONE_THREAD=(env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MUJOCO_GL=egl
            XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

pinned() {  # pinned <core> <command...>: run on that core (unpinned, with a warning, without taskset)
  local core=$1; shift
  if command -v taskset > /dev/null && [ "$(nproc)" -gt "$core" ]; then
    taskset -c "$core" "$@"
  else
    echo "warning: cannot pin to core $core (no taskset or too few cores); running unpinned" >&2
    "$@"
  fi
}

size_sets() {  # size_sets <method> <batch> <hidden> [literal]: --set flags, one per line, for a
  # batch size and MLP width (empty: leave the published value); `literal` writes the widths as a
  # Python tuple, for the reference's config.
  local m=$1 batch=$2 hidden=$3 dims=$3
  [ "${4:-}" = literal ] && dims="($hidden)"
  [ -z "$batch" ] || printf '%s\n' --set "batch_size=$batch"
  if [ -n "$hidden" ]; then
    printf '%s\n' --set "actor_hidden_dims=$dims"
    [ "$m" = gcbc ] || printf '%s\n' --set "value_hidden_dims=$dims"
  fi
}

cpu_has_native_bf16() {  # exit 0 where bfloat16 matmuls run in hardware (autodidact's own test)
  [ "$("$(dirname "$AUTODIDACT")/python" -c 'import torch
from autodidact.workflows.runtime import native_bf16
print(int(native_bf16(torch.device("cpu"))))')" = 1 ]
}
