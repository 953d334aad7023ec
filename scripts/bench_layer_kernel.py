"""Whole training updates with the dense layers on oneDNN against MKL, eager and (for GCBC)
compiled, alternating in one process (docs/BENCHMARKS.md, "The published size on the Intel CPU").

    .venv/bin/python scripts/bench_layer_kernel.py --dataset /tmp/benchdata/pointmaze-medium-navigate-v0.npz \\
        --method gcbc --rounds 8

Each side is built with the dataset's published preset; the kernel is chosen by setting
cpu_matmul's operator on or off before building, compiling and timing that side. Prints each
side's median ms per update and the ratio eager-oneDNN / side per round (above 1: faster).
"""

import argparse
import statistics
import time

import torch

from autodidact import compiling, config as cfglib, cpu_matmul
from autodidact.allocator import keep_freed_memory
from autodidact.data.dataset import load
from autodidact.methods import get_method
from autodidact.presets import preset_for
from autodidact.trainer import to_tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--method", default="gcbc")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--compiled", action="store_true", help="also time compiled updates (default: gcbc only)")
    a = ap.parse_args()
    keep_freed_memory()
    ds = load(a.dataset)
    cls = get_method(a.method)
    cfg = cfglib.apply_overrides(cls.Config(), preset_for(a.dataset, cls.name))
    cpu_matmul.active()
    op = cpu_matmul._state["op"] or cpu_matmul._checked_op()
    if op is None:
        raise SystemExit("oneDNN linear operator unavailable")

    def use(onednn):
        cpu_matmul._state["op"] = op if onednn else None

    def build(onednn, compiled):
        use(onednn)
        torch.manual_seed(0)
        m = cls(cfg, ds.obs_shape, ds.action_dim)
        batch = to_tensors(m.make_sampler(ds, 0).sample(cfg.batch_size), "cpu")
        fn = m.update
        if compiled:
            fn = compiling.compiled_update(m, batch, lambda: torch.autocast("cpu", enabled=False), print)
        return fn, batch

    names = ["eager-onednn", "eager-mkl"]
    if a.compiled or a.method == "gcbc":
        names += ["compiled-onednn", "compiled-mkl"]
    sides = {k: build(k.endswith("onednn"), k.startswith("compiled")) for k in names}
    n = 20 if a.method == "gcbc" else 4
    for k, (fn, batch) in sides.items():
        use(k.endswith("onednn"))
        for _ in range(3):
            fn(batch)
    ms = {k: [] for k in sides}
    for _ in range(a.rounds):
        for k, (fn, batch) in sides.items():
            use(k.endswith("onednn"))
            t = time.perf_counter()
            for _ in range(n):
                fn(batch)
            ms[k].append((time.perf_counter() - t) / n * 1e3)
    print(f"| {a.method} update | ms | eager-oneDNN / this (median) | rounds |")
    print("|---|---|---|---|")
    for k in ms:
        r = [e / x for e, x in zip(ms["eager-onednn"], ms[k])]
        print(f"| {k} | {statistics.median(ms[k]):.1f} | {statistics.median(r):.3f} | "
              f"{', '.join(f'{x:.2f}' for x in r)} |")


if __name__ == "__main__":
    main()
