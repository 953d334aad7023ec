"""Eager against compiled training updates, alternating in one process (docs/BENCHMARKS.md).

For each method: build it with the dataset's published preset, compile its update the way
`train --compile on` does (compiling.compiled_update), then time blocks of eager and compiled
updates on one fixed batch, alternating, and print each pair's ratio. One process for both sides
removes this VM's process-to-process speed differences from the comparison.

    .venv/bin/python scripts/bench_compile.py --dataset /tmp/benchdata/pointmaze-medium-navigate-v0.npz
    .venv/bin/python scripts/bench_compile.py --dataset ... --methods gcbc --precision bf16
    .venv/bin/python scripts/bench_compile.py --dataset ... --methods gcbc --set batch_size=256 \
        --set actor_hidden_dims=256,256,256
"""

import argparse
import statistics
import sys
import time

import torch

from autodidact import compiling, config as cfglib
from autodidact.allocator import keep_freed_memory
from autodidact.data.dataset import load
from autodidact.methods import get_method
from autodidact.presets import preset_for
from autodidact.trainer import autocast, to_tensors


def measure(name, dataset, path, precision, rounds, overrides=()):
    cls = get_method(name)
    cfg = cfglib.apply_overrides(cls.Config(), preset_for(path, cls.name))
    cfg = cfglib.apply_overrides(cfg, list(overrides))
    torch.manual_seed(0)
    method = cls(cfg, dataset.obs_shape, dataset.action_dim)
    batch = to_tensors(method.make_sampler(dataset, 0).sample(cfg.batch_size), "cpu")
    device = torch.device("cpu")

    def run(fn, b):
        with autocast(device, precision):
            return fn(b)

    t = time.perf_counter()
    compiled = compiling.compiled_update(method, batch, lambda: autocast(device, precision),
                                         lambda msg: print(msg, file=sys.stderr))
    compile_s = time.perf_counter() - t
    if compiled == method.update:
        return None
    sides = {"eager": method.update, "compiled": compiled}
    n = 20 if name == "gcbc" else 4
    n *= max(1, 1024 // cfg.batch_size)
    for fn in sides.values():
        for _ in range(3):
            run(fn, batch)
    ms = {k: [] for k in sides}
    for _ in range(rounds):
        for k, fn in sides.items():
            t = time.perf_counter()
            for _ in range(n):
                run(fn, batch)
            ms[k].append((time.perf_counter() - t) / n * 1e3)
    ratios = [e / c for e, c in zip(ms["eager"], ms["compiled"])]
    return compile_s, ms, ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--methods", default="gcbc gcivl gciql qrl crl hiql")
    ap.add_argument("--precision", default="float32", choices=["float32", "bf16"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, as `train --set` (repeatable)")
    a = ap.parse_args()
    keep_freed_memory()
    dataset = load(a.dataset)
    print(f"| method | compile s | eager ms/update | compiled ms/update | eager / compiled (median of pairs) | pairs |")
    print("|---|---|---|---|---|---|")
    for name in a.methods.split():
        r = measure(name, dataset, a.dataset, a.precision, a.rounds, a.overrides)
        if r is None:
            print(f"| {name} | failed | | | | |", flush=True)
            continue
        compile_s, ms, ratios = r
        print(f"| {name} | {compile_s:.0f} | {statistics.median(ms['eager']):.1f} | "
              f"{statistics.median(ms['compiled']):.1f} | {statistics.median(ratios):.2f} | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} |", flush=True)


if __name__ == "__main__":
    main()
