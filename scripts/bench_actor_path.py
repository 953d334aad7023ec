"""The twelfth session's three changes to a Gaussian actor's fused update, each on and off,
alternating in one process (docs/BENCHMARKS.md, "Sampler, actor head and bias on the Intel CPU").

    .venv/bin/python scripts/bench_actor_path.py --dataset /tmp/benchdata/pointmaze-medium-navigate-v0.npz \\
        --method gcbc --rounds 12

Sides: "before" has all three off; "width" builds the GELU kernel with 512-bit vectors (off: the
256-bit build of both GELU kernels, the plain one and the one that adds a bias,
compiled here into a temporary directory); "head" runs the actor's mean layer
inside the trunk's function (off: a separate layer after it); "bias" adds hidden biases inside
the GELU kernel (off: torch's addmm); "after" has all three on. Every step samples a fresh batch
with the current sampler. Prints each side's median ms per step and the median and range over
rounds of before / side (above 1: faster). On CPUs where the GELU kernel is built 256 wide
anyway, "width" changes nothing.

`--gelu-only` times just the two GELU builds on a 1024x512 block instead (two threads, median
of 30 rounds of 20 calls):

    .venv/bin/python scripts/bench_actor_path.py --gelu-only
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from autodidact import config as cfglib, fused, native, nn as ann
from autodidact.allocator import keep_freed_memory
from autodidact.data.dataset import load
from autodidact.denormals import denormals_flushed
from autodidact.methods import get_method
from autodidact.presets import preset_for
from autodidact.trainer import to_tensors

SIDES = {"before": (0, 0, 0), "width": (1, 0, 0), "head": (0, 1, 0), "bias": (0, 0, 1), "after": (1, 1, 1)}


def _kernels_256():
    """The GELU kernels (plain, bias) built with 256-bit vectors (the width before this change on
    every CPU)."""
    width = native._vector_width
    native._vector_width = lambda: 256
    try:
        with tempfile.TemporaryDirectory(prefix="gelu256-") as tmp:
            return native._bind(native._build(Path(tmp)))  # loaded before the directory goes
    finally:
        native._vector_width = width


def _time_gelu(wide, narrow, rounds=30, calls=20):
    z = torch.randn(1024, 512, generator=torch.Generator().manual_seed(0))
    times = {f"built {native._vector_width()} wide": [], "built 256 wide": []}
    for _ in range(rounds):
        for side, fn in zip(times, (wide, narrow)):
            t = time.perf_counter()
            for _ in range(calls):
                native.gelu_and_derivative(z, fn, 2)
            times[side].append((time.perf_counter() - t) / calls * 1e3)
    for side, ts in times.items():
        print(f"GELU {side}: {statistics.median(ts):.3f} ms per 1024x512 block")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", help="a dataset .npz (not needed with --gelu-only)")
    ap.add_argument("--method", default="gcbc")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--steps", type=int, default=20, help="steps per side per round")
    ap.add_argument("--sides", default=",".join(SIDES), help="comma-separated subset of: " + ", ".join(SIDES))
    ap.add_argument("--gelu-only", action="store_true", help="time the 512- and 256-bit GELU builds alone")
    a = ap.parse_args()
    sides = {k: SIDES[k] for k in ["before"] + [k for k in a.sides.split(",") if k != "before"]}
    keep_freed_memory()
    if native.kernel() is None:
        raise SystemExit(f"no compiled GELU kernel here: {native.status()}")
    wide, narrow = (native._state["fn"], native._state["bias_fn"]), _kernels_256()
    if a.gelu_only:
        _time_gelu(wide[0], narrow[0])
        return
    if not a.dataset:
        ap.error("--dataset is required (unless --gelu-only)")

    def use(width, head, bias):
        native._state["fn"], native._state["bias_fn"] = wide if width else narrow
        ann.GaussianActor.fuse_head = bool(head)
        fused.BIAS_IN_GELU = bool(bias)

    ds = load(a.dataset)
    cls = get_method(a.method)
    cfg = cfglib.apply_overrides(cls.Config(), preset_for(a.dataset, cls.name))
    torch.manual_seed(0)
    method = cls(cfg, ds.obs_shape, ds.action_dim)
    sampler = method.make_sampler(ds, 0)
    times = {k: [] for k in sides}
    with denormals_flushed():
        for side in sides:
            use(*sides[side])
            for _ in range(5):
                method.update(to_tensors(sampler.sample(cfg.batch_size), "cpu"))
        for _ in range(a.rounds):
            for side, flags in sides.items():
                use(*flags)
                t = time.perf_counter()
                for _ in range(a.steps):
                    method.update(to_tensors(sampler.sample(cfg.batch_size), "cpu"))
                times[side].append((time.perf_counter() - t) / a.steps * 1e3)
    print(f"{a.method}, native vector width here {native._vector_width()}, {a.rounds} rounds of {a.steps} steps")
    for side, ts in times.items():
        ratios = [b / t for b, t in zip(times["before"], ts)]
        print(f"{side:7s} {statistics.median(ts):7.2f} ms/step   before/this {statistics.median(ratios):.3f} "
              f"({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
