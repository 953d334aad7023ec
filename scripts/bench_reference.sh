#!/usr/bin/env bash
# Side-by-side CPU training speed: autodidact vs OGBench's JAX reference implementations (impls/).
#
# The reference lives outside this repository (see scripts/reference_env.sh); $WORK holds the
# timing harness (written by this script) and per-run JSON results.
#
# Measurements are interleaved per method (ours, reference, ours, reference, ...) for $REPS
# repetitions; the summary reports medians. Threads are left at their defaults (both cores for
# torch and XLA), unless ONE_CORE=1: then every run is pinned to core 0 with taskset and told to
# use one thread (XLA ignores its thread flags; only the pin holds it to one core).
# BATCH=256 HIDDEN=256,256,256 times both sides at that batch size and MLP width instead of the
# published size (the learning benchmark's reduced config).
#
# Usage: bash scripts/bench_reference.sh            (env vars below override the defaults)
set -euo pipefail

source "$(dirname "$0")/reference_env.sh"
WORK=${WORK:-/tmp/refbench}
REPS=${REPS:-3}
WARMUP=${WARMUP:-5}
METHODS=${METHODS:-"gcbc gcivl gciql qrl crl hiql"}
BF16=${BF16:-1}  # also time autodidact with --precision bf16 in each repetition
EAGER=${EAGER:-1}  # where autodidact compiles the update (--compile auto), also time it uncompiled
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

# impls/hyperparameters.sh, pointmaze-medium-navigate-v0.
PUBLISHED = {'gcbc': {}, 'gcivl': {'alpha': 10.0}, 'gciql': {'alpha': 0.003}, 'qrl': {'alpha': 0.0003},
             'crl': {'alpha': 0.03}, 'hiql': {'high_alpha': 3.0, 'low_alpha': 3.0}}
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
for k, v in PUBLISHED[a.method].items():
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
} | tee "$WORK/results/machine.txt"
: > "$WORK/results/load.log"
for rep in $(seq 1 "$REPS"); do
  for m in $METHODS; do
    s=$(steps_for "$m")
    mapfile -t osets < <(size_sets "$m" "$BATCH" "$HIDDEN")
    mapfile -t rsets < <(size_sets "$m" "$BATCH" "$HIDDEN" literal)
    echo "rep $rep $m ours   load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/results/load.log"
    "${RUN[@]}" "$AUTODIDACT" bench --method "$m" --dataset "$DATASET" --steps "$s" --warmup "$WARMUP" "${osets[@]}" \
      --json "$WORK/results/ours_${m}_$rep.json" > /dev/null
    if [ "$EAGER" = 1 ] && grep -q '"compiled": true' "$WORK/results/ours_${m}_$rep.json"; then
      echo "rep $rep $m eager  load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/results/load.log"
      "${RUN[@]}" "$AUTODIDACT" bench --method "$m" --dataset "$DATASET" --steps "$s" --warmup "$WARMUP" "${osets[@]}" --compile off \
        --json "$WORK/results/ours_eager_${m}_$rep.json" > /dev/null
    fi
    if [ "$BF16" = 1 ]; then
      echo "rep $rep $m bf16   load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/results/load.log"
      "${RUN[@]}" "$AUTODIDACT" bench --method "$m" --dataset "$DATASET" --steps "$s" --warmup "$WARMUP" "${osets[@]}" --precision bf16 \
        --json "$WORK/results/ours_bf16_${m}_$rep.json" > /dev/null
    fi
    echo "rep $rep $m ref    load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/results/load.log"
    (cd "$WORK" && "${RUN[@]}" "$REF_VENV/bin/python" ref_harness.py --ref "$REF_DIR" --method "$m" "${rsets[@]}" \
      --dataset "$DATASET" --steps "$s" --warmup "$WARMUP" --json "$WORK/results/ref_${m}_$rep.json" > /dev/null)
  done
done
echo "end          load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/results/load.log"
fi

# 6. Medians. The ratio is the median of the per-repetition ratios ours/reference (each pair runs
#    back to back, so a change in background load hits both sides of a pair alike).
"$REF_VENV/bin/python" - "$WORK/results" "$METHODS" <<'PY'
import glob, json, statistics, sys
d, methods = sys.argv[1], sys.argv[2].split()
med = statistics.median
load = lambda p: [json.load(open(f)) for f in sorted(glob.glob(p))]
rate = med([r['matmul_gflop_per_s'] for r in load(f'{d}/ours_*.json')])
print(f'median torch float32 matmul rate (1024x512 @ 512x512): {rate:.1f} GFLOP/s\n')
print('| method | compiled | autodidact steps/s | reference steps/s | ratio ours/ref (median of pairs) | autodidact % of matmul rate '
      '| reference % of matmul rate | autodidact update GFLOP | reference update GFLOP (dots / XLA total) |')
print('|---|---|---|---|---|---|---|---|---|')
for m in methods:
    o, r = load(f'{d}/ours_{m}_*.json'), load(f'{d}/ref_{m}_*.json')
    os_, rs = med([x['steps_per_s'] for x in o]), med([x['steps_per_s'] for x in r])
    ratio = med([x['steps_per_s'] / y['steps_per_s'] for x, y in zip(o, r)])
    og, rg, rx = o[0]['update_gflop'], r[0]['update_gflop_dots'], r[0]['update_gflop_xla_cost_analysis']
    compiled = 'yes' if all(x.get('compiled') for x in o) else 'no' if not any(x.get('compiled') for x in o) else 'mixed'
    print(f'| {m} | {compiled} | {os_:.2f} | {rs:.2f} | {ratio:.2f} | {100 * og * os_ / rate:.0f}% | '
          f'{100 * rg * rs / rate:.0f}% | {og:.2f} | {rg:.2f} / {rx:.2f} |')
print('\nper-repetition steps/s:')
for m in methods:
    o = [round(x['steps_per_s'], 2) for x in load(f'{d}/ours_{m}_*.json')]
    r = [round(x['steps_per_s'], 2) for x in load(f'{d}/ref_{m}_*.json')]
    print(f'  {m}: ours {o}  reference {r}  ratios {[round(x / y, 2) for x, y in zip(o, r)]}')
def variant_table(kind, title, label, last_column, ours_over_variant):
    """Steps/s of an autodidact variant (files ours_<kind>_*) against the reference and ours."""
    runs = {m: load(f'{d}/ours_{kind}_{m}_*.json') for m in methods}
    if not any(runs.values()):
        return
    print(f'\n{title}\n')
    print(f'| method | {label} steps/s | ratio {label} / reference (median of pairs) | {last_column} |')
    print('|---|---|---|---|')
    measured = [m for m in methods if runs[m]]
    for m in measured:
        v, o, r = runs[m], load(f'{d}/ours_{m}_*.json'), load(f'{d}/ref_{m}_*.json')
        last = zip(o, v) if ours_over_variant else zip(v, o)
        print(f"| {m} | {med([x['steps_per_s'] for x in v]):.2f} | "
              f"{med([x['steps_per_s'] / y['steps_per_s'] for x, y in zip(v, r)]):.2f} | "
              f"{med([x['steps_per_s'] / y['steps_per_s'] for x, y in last]):.2f} |")
    print(f'\nper-repetition {label} steps/s:')
    for m in measured:
        print(f"  {m}: {[round(x['steps_per_s'], 2) for x in runs[m]]}")


variant_table('eager', 'the same update uncompiled (--compile off), same repetitions:', 'uncompiled',
              'ratio compiled / uncompiled', ours_over_variant=True)
variant_table('bf16', 'autodidact --precision bf16 against the float32 reference (same repetitions):', 'bf16',
              'ratio bf16 / our float32', ours_over_variant=False)
print('\nsampler batches/s (median): ' + ', '.join(
    f"{m} ours {med([x['sampler_batches_per_s'] for x in load(f'{d}/ours_{m}_*.json')]):.0f} / "
    f"ref {med([x['sampler_batches_per_s'] for x in load(f'{d}/ref_{m}_*.json')]):.0f}" for m in methods))
print('peak RSS MB (median): ' + ', '.join(
    f"{m} ours {med([x['peak_memory_mb'] for x in load(f'{d}/ours_{m}_*.json')]):.0f} / "
    f"ref {med([x['peak_memory_mb'] for x in load(f'{d}/ref_{m}_*.json')]):.0f}" for m in methods))
print('matmul-rate samples (GFLOP/s): ' + ', '.join(
    f"{r['matmul_gflop_per_s']:.1f}" for r in load(f'{d}/ours_*.json')))
PY
