#!/usr/bin/env bash
# Side-by-side CPU training speed: autodidact vs OGBench's JAX reference implementations (impls/).
#
# The reference lives outside this repository (see scripts/reference_env.sh); $WORK holds the
# timing harness (written by this script) and per-run JSON results.
#
# Measurements are interleaved per method (each autodidact variant, then the reference) for $REPS
# repetitions; the summary reports medians of the per-repetition ratios. Variants: KERNELS (default
# "torch tuned": `autodidact bench --kernels K`), BF16=1 adds `--precision bf16`, and BEFORE=PATH
# times another autodidact installation's `autodidact` executable with its defaults (e.g. the
# release before a change, installed from a clone of it) in the same rounds. Threads are left at their defaults (both cores for
# torch and XLA), unless ONE_CORE=1: then every run is pinned to core 0 with taskset and told to
# use one thread (XLA ignores its thread flags; only the pin holds it to one core).
# BATCH=256 HIDDEN=256,256,256 times both sides at that batch size and MLP width instead of the
# published size (the learning benchmark's reduced config). ENV_NAME=visual-cube-single-play-v0
# times OGBench's visual row on both sides (impala_small, batch 256, p_aug 0.5, the visual alphas);
# for timing, write its dataset first (frames of noise; speed does not depend on content):
#   python scripts/bench_frames_memory.py $DATA_DIR/visual-cube-single-play-v0.npz --frames 20000 --steps 0
#
# Usage: bash scripts/bench_reference.sh            (env vars below override the defaults)
set -euo pipefail

source "$(dirname "$0")/reference_env.sh"
WORK=${WORK:-/tmp/refbench}
REPS=${REPS:-3}
WARMUP=${WARMUP:-5}
METHODS=${METHODS:-"gcbc gcivl gciql qrl crl hiql"}
KERNELS=${KERNELS:-"torch tuned"}
BF16=${BF16:-0}  # also time autodidact with --precision bf16 in each repetition
BEFORE=${BEFORE:-}  # another installation's autodidact executable, timed with its own defaults
ONE_CORE=${ONE_CORE:-0}
BATCH=${BATCH:-}
HIDDEN=${HIDDEN:-}
RUN=()
[ "$ONE_CORE" = 1 ] && RUN=(pinned 0 "${ONE_THREAD[@]}")

steps_for() {  # short timings: more steps for the cheap method (STEPS=N: N for every method)
  [ -z "${STEPS:-}" ] || { echo "$STEPS"; return; }
  case $1 in gcbc) echo 300 ;; *) echo 30 ;; esac
}

reference_setup
if [ "$BF16" = 1 ] && ! cpu_has_native_bf16; then
  echo "this CPU has no native bfloat16 matmul (AVX512-BF16 or AMX): bf16 is emulated, many times slower; not timed"
  BF16=0
fi

# 4. Timing harness for the reference (mirrors impls/main.py's setup; lives in $WORK).
mkdir -p "$WORK/results"
cat > "$WORK/ref_harness.py" <<'PY'
"""Time OGBench reference agents: get_config() defaults + published alpha, the reference's own
GCDataset/HGCDataset sampler over the dataset loaded as impls/utils/env_utils.py loads it
(ogbench.load_dataset(..., compact_dataset=True)), jit warm-up, then N steps of sample + update."""
import argparse, ast, importlib, json, re, resource, sys, time, types

import numpy as np

p = argparse.ArgumentParser()
p.add_argument('--ref', required=True)
p.add_argument('--method', required=True)
p.add_argument('--dataset', required=True)
p.add_argument('--steps', type=int, default=50)
p.add_argument('--warmup', type=int, default=5)
p.add_argument('--json')
p.add_argument('--set', action='append', default=[], metavar='KEY=PYTHON_LITERAL', help='config override')
a = p.parse_args()

# Import ogbench.utils from the exported tree without running ogbench/__init__.py (which pulls in
# the MuJoCo environments).
pkg = types.ModuleType('ogbench')
pkg.__path__ = [a.ref + '/ogbench']
sys.modules['ogbench'] = pkg
sys.path.insert(0, a.ref + '/impls')

import jax
from ogbench.utils import load_dataset
from utils.datasets import Dataset, GCDataset, HGCDataset

# impls/hyperparameters.sh: pointmaze-medium-navigate-v0, and the row every visual-*-play-v0
# dataset shares (impala_small, batch 256, p_aug 0.5).
PUBLISHED = {'gcbc': {}, 'gcivl': {'alpha': 10.0}, 'gciql': {'alpha': 0.003}, 'qrl': {'alpha': 0.0003},
             'crl': {'alpha': 0.03}, 'hiql': {'high_alpha': 3.0, 'low_alpha': 3.0}}
VISUAL_ROW = {'encoder': 'impala_small', 'batch_size': 256, 'p_aug': 0.5}
VISUAL = {'gcbc': {}, 'gcivl': {'alpha': 10.0}, 'gciql': {'alpha': 1.0}, 'qrl': {'alpha': 0.3},
          'crl': {'alpha': 3.0},
          'hiql': {'high_alpha': 3.0, 'low_alpha': 3.0, 'subgoal_steps': 10, 'low_actor_rep_grad': True}}
CLASSES = {'gcbc': 'GCBCAgent', 'gcivl': 'GCIVLAgent', 'gciql': 'GCIQLAgent', 'qrl': 'QRLAgent',
           'crl': 'CRLAgent', 'hiql': 'HIQLAgent'}


def dot_flops(stablehlo_text):
    """Matmul-only FLOPs of the traced update: 2 * prod(result) * prod(contracted dims) per dot."""
    total = 0
    for line in stablehlo_text.splitlines():
        if 'stablehlo.dot' not in line:
            continue
        sig = re.search(r':\s*\((tensor<[^>]*>),\s*(tensor<[^>]*>)\)\s*->\s*(tensor<[^>]*>)', line)
        if not sig:
            raise ValueError('unparsed dot: ' + line.strip()[:200])
        dims = lambda t: [int(x) for x in t[len('tensor<'):-1].split('x')[:-1]]
        lhs, out = dims(sig.group(1)), dims(sig.group(3))
        m = re.search(r'contracting_dims = \[([0-9, ]*)\] x', line)
        cdims = [int(x) for x in m.group(1).split(',')] if m and m.group(1).strip() else [len(lhs) - 1]
        total += 2 * int(np.prod(out)) * int(np.prod([lhs[c] for c in cdims]))
    return total


mod = importlib.import_module(f'agents.{a.method}')
config = mod.get_config()
visual = a.dataset.rsplit('/', 1)[-1].startswith('visual-')
for k, v in ({**VISUAL_ROW, **VISUAL[a.method]} if visual else PUBLISHED[a.method]).items():
    config[k] = v
for kv in a.set:
    k, v = kv.split('=', 1)
    if k not in config:
        sys.exit(f'unknown config key {k}')
    config[k] = ast.literal_eval(v)
agent_cls = getattr(mod, CLASSES[a.method])
ds_cls = {'GCDataset': GCDataset, 'HGCDataset': HGCDataset}[config['dataset_class']]
train = ds_cls(Dataset.create(**load_dataset(a.dataset, compact_dataset=True)), config)
np.random.seed(0)
ex = train.sample(1)
agent = agent_cls.create(0, ex['observations'], ex['actions'], config)
bs = config['batch_size']

for _ in range(a.warmup):
    train.sample(bs)
t = time.perf_counter()
n_sample = max(a.steps, 20)
for _ in range(n_sample):
    train.sample(bs)
sampler_rate = n_sample / (time.perf_counter() - t)

for _ in range(a.warmup):
    agent, info = agent.update(train.sample(bs))
jax.block_until_ready(agent)
t = time.perf_counter()
for _ in range(a.steps):
    agent, info = agent.update(train.sample(bs))
jax.block_until_ready(agent)
steps_per_s = a.steps / (time.perf_counter() - t)

lowered = agent_cls.update.lower(agent, train.sample(bs))
ca = lowered.compile().cost_analysis()
ca = ca[0] if isinstance(ca, (list, tuple)) else ca
r = {'method': a.method, 'impl': 'ogbench-jax', 'batch_size': bs, 'steps': a.steps,
     'steps_per_s': steps_per_s, 'sampler_batches_per_s': sampler_rate,
     'update_gflop_xla_cost_analysis': float(ca['flops']) / 1e9,
     'update_gflop_dots': dot_flops(lowered.as_text()) / 1e9,
     'peak_memory_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
     'jax': jax.__version__, 'backend': jax.default_backend(),
     'config': {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}}
print(json.dumps({k: v for k, v in r.items() if k != 'config'}))
with open(a.json, 'w') as fh:
    json.dump(r, fh, indent=1)
PY

# 5. Interleaved measurements (SUMMARY_ONLY=1 skips them and re-summarises $WORK/results).
if [ "${SUMMARY_ONLY:-0}" != 1 ]; then
{
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); cores: $(nproc)"
  echo "torch: $("$(dirname "$AUTODIDACT")/python" -c 'import torch; print(torch.__version__)')"
  echo "jax: $("$REF_VENV/bin/python" -c 'import jax, jaxlib, flax; print(jax.__version__, "jaxlib", jaxlib.__version__, "flax", flax.__version__)')"
  echo "reference commit: $REF_COMMIT"
  echo "autodidact: $(git -C "$REPO" rev-parse --short HEAD)${BEFORE:+; before: $BEFORE}"
} | tee "$WORK/results/machine.txt"
: > "$WORK/results/load.log"
mark() { echo "rep $1 $2 $3 load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/results/load.log"; }
for rep in $(seq 1 "$REPS"); do
  for m in $METHODS; do
    s=$(steps_for "$m")
    mapfile -t osets < <(size_sets "$m" "$BATCH" "$HIDDEN")
    mapfile -t rsets < <(size_sets "$m" "$BATCH" "$HIDDEN" literal)
    common=(bench --method "$m" --dataset "$DATASET" --steps "$s" --warmup "$WARMUP" "${osets[@]}")
    if [ -n "$BEFORE" ]; then
      mark "$rep" "$m" before
      "${RUN[@]}" "$BEFORE" "${common[@]}" --json "$WORK/results/before_${m}_$rep.json" > /dev/null
    fi
    for k in $KERNELS; do
      mark "$rep" "$m" "$k"
      "${RUN[@]}" "$AUTODIDACT" "${common[@]}" --kernels "$k" --json "$WORK/results/${k}_${m}_$rep.json" > /dev/null
    done
    if [ "$BF16" = 1 ]; then
      mark "$rep" "$m" bf16
      "${RUN[@]}" "$AUTODIDACT" "${common[@]}" --precision bf16 --json "$WORK/results/bf16_${m}_$rep.json" > /dev/null
    fi
    mark "$rep" "$m" reference
    (cd "$WORK" && "${RUN[@]}" "$REF_VENV/bin/python" ref_harness.py --ref "$REF_DIR" --method "$m" "${rsets[@]}" \
      --dataset "$DATASET" --steps "$s" --warmup "$WARMUP" --json "$WORK/results/ref_${m}_$rep.json" > /dev/null)
  done
done
echo "end          load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/results/load.log"
fi

# 6. Medians. A ratio is the median of the per-repetition ratios (the runs of a repetition follow
#    each other, so a change in background load hits all sides of a repetition alike).
"$REF_VENV/bin/python" - "$WORK/results" "$METHODS" "before $KERNELS bf16" <<'PY'
import glob, json, statistics, sys
d, methods, variants = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
med = statistics.median
load = lambda p: [json.load(open(f)) for f in sorted(glob.glob(p))]
runs = {(v, m): load(f'{d}/{v}_{m}_*.json') for v in variants + ['ref'] for m in methods}
variants = [v for v in variants if any(runs[v, m] for m in methods)]
ratio = lambda a, b: med([x['steps_per_s'] / y['steps_per_s'] for x, y in zip(a, b)]) if a and b else float('nan')
sps = lambda rs: med([r['steps_per_s'] for r in rs]) if rs else float('nan')
print('steps/s (median) and ratios (median of per-repetition ratios):\n')
cols = [f'{v} steps/s' for v in variants] + ['reference steps/s'] + [f'{v} / reference' for v in variants]
base = [v for v in variants if v != 'before'] if 'before' in variants else []
cols += [f'{v} / before' for v in base]
print('| method | ' + ' | '.join(cols) + ' |')
print('|---' * (len(cols) + 1) + '|')
for m in methods:
    cells = [f'{sps(runs[v, m]):.2f}' for v in variants] + [f"{sps(runs['ref', m]):.2f}"]
    cells += [f"**{ratio(runs[v, m], runs['ref', m]):.2f}**" for v in variants]
    cells += [f"{ratio(runs[v, m], runs['before', m]):.2f}" for v in base]
    print(f'| {m} | ' + ' | '.join(cells) + ' |')
print('\nper-repetition steps/s:')
for m in methods:
    print(f'  {m}: ' + '; '.join(f"{v} {[round(r['steps_per_s'], 2) for r in runs[v, m]]}" for v in variants + ['ref']))
ours = [r for v in variants for m in methods for r in runs[v, m]]
print('\nupdate GFLOP (autodidact / reference dots): ' + ', '.join(
    f"{m} {runs[variants[-1], m][0]['update_gflop']:.2f} / {runs['ref', m][0]['update_gflop_dots']:.2f}"
    for m in methods if runs[variants[-1], m] and runs['ref', m]))
print('matmul-rate samples (GFLOP/s): ' + ', '.join(f"{r['matmul_gflop_per_s']:.1f}" for r in ours))
PY
