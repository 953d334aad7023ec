"""What each piece of `--kernels tuned` is worth: whole-update steps/s of every method at the
published size with plain torch, with all tuned pieces, and with all but one, each variant in a
fresh process, interleaved over rounds (docs/PERFORMANCE.md, "What `--kernels tuned` does").

    .venv/bin/python scripts/bench_kernels.py --dataset /tmp/benchdata/pointmaze-medium-navigate-v0.npz

A piece is left out through `bench(kernel_pieces=...)`. `torch-glibc-malloc` measures the
trainer's runtime setting that keeps freed memory (workflows/runtime.py): it runs with glibc's
initial thresholds set through glibc's own variables (MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ at 128 KiB), which autodidact leaves alone. Prints a table of medians and
the per-round ratios, and writes every measurement as JSON lines with --out.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

from autodidact import kernels
from autodidact.workflows import bench

VARIANTS = ("torch", "tuned", "tuned-no-onednn", "tuned-no-ensembles", "torch-glibc-malloc")
GLIBC_DEFAULTS = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
METHODS = ("gcbc", "gcivl", "gciql", "qrl", "crl", "hiql")


def measure(method, dataset, variant, steps, warmup):
    """One bench in this process; returns `autodidact bench`'s result."""
    left_out = variant.removeprefix("tuned-no-") if variant.startswith("tuned-no-") else None
    pieces = tuple(p for p in kernels.PIECES if p != left_out)
    return bench.bench(method, dataset, steps=steps, warmup=warmup, kernels_name=variant.split("-")[0],
                       kernel_pieces=pieces, log=lambda m: None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", default=None, help="append every measurement to this JSON-lines file")
    p.add_argument("--one", nargs=2, metavar=("METHOD", "VARIANT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    steps = lambda m: 300 if m == "gcbc" else 30  # noqa: E731 -- as bench_reference.sh
    if a.one:
        method, variant = a.one
        r = measure(method, a.dataset, variant, steps(method), a.warmup)
        print(json.dumps({"method": method, "variant": variant, "steps_per_s": r["steps_per_s"], "tuned": r["tuned"]}))
        return
    rows = []
    for rnd in range(a.rounds):
        for m in a.methods:
            for v in a.variants:
                env = {**os.environ, **(GLIBC_DEFAULTS if v == "torch-glibc-malloc" else {})}
                out = subprocess.run([sys.executable, __file__, "--dataset", a.dataset, "--warmup", str(a.warmup),
                                      "--one", m, v], capture_output=True, text=True, check=True, env=env)
                row = {**json.loads(out.stdout.strip().splitlines()[-1]), "round": rnd}
                rows.append(row)
                print(f"round {rnd} {m:<6} {v:<20} {row['steps_per_s']:7.2f} steps/s  {','.join(row['tuned'])}",
                      file=sys.stderr)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    med = statistics.median
    print("| method | " + " | ".join(f"{v} steps/s" for v in a.variants) + " | "
          + " | ".join(f"{v} / torch" for v in a.variants if v != "torch") + " |")
    print("|---" * (2 * len(a.variants)) + "|")
    for m in a.methods:
        by = {v: [r["steps_per_s"] for r in rows if r["method"] == m and r["variant"] == v] for v in a.variants}
        ratios = {v: med([x / y for x, y in zip(by[v], by["torch"])]) for v in a.variants if v != "torch"}
        print(f"| {m} | " + " | ".join(f"{med(by[v]):.2f}" for v in a.variants) + " | "
              + " | ".join(f"{ratios[v]:.2f}" for v in ratios) + " |")
    print("\nper-round ratios to torch:")
    for m in a.methods:
        torch_runs = [r["steps_per_s"] for r in rows if r["method"] == m and r["variant"] == "torch"]
        for v in a.variants:
            if v != "torch":
                runs = [r["steps_per_s"] for r in rows if r["method"] == m and r["variant"] == v]
                print(f"  {m} {v}: {[round(x / y, 3) for x, y in zip(runs, torch_runs)]}")


if __name__ == "__main__":
    main()
