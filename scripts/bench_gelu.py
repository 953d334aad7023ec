"""The compiled GELU kernel and the fused actors against torch's GELU (native.py, fused.py;
docs/BENCHMARKS.md).

Part 1 times GELU on one block, forward and backward, through torch and through the kernel
(whose backward is a multiply by the derivative it saved). Part 2 times whole training updates
of the given methods on one fixed batch, alternating three ways in one process: fused actors with
the kernel (the default), the kernel alone (every network layer by layer), and torch's GELU.

    .venv/bin/python scripts/bench_gelu.py --dataset /tmp/benchdata/pointmaze-medium-navigate-v0.npz \
        --methods "gcbc gcivl hiql"                                     # published size, 2 threads
    taskset -c 0 .venv/bin/python scripts/bench_gelu.py --dataset ... --threads 1 \
        --set batch_size=256 --set actor_hidden_dims=256,256,256 --set value_hidden_dims=256,256,256
"""

import statistics
import time

import torch
import torch.nn.functional as F

from autodidact import fused, native
from autodidact.data.dataset import load
from bench_ensemble import best_ms, method_and_batch, parse_args  # this script's folder


def blocks(kernel):
    for shape in ((1024, 512), (256, 256), (8, 8)):
        gen = torch.Generator().manual_seed(0)
        z, g = torch.randn(*shape, generator=gen), torch.randn(*shape, generator=gen)
        h, d = torch.empty_like(z), torch.empty_like(z)
        n = max(20, 4_000_000 // z.numel())
        ms = {
            "torch forward": best_ms(lambda: F.gelu(z), n),
            "torch backward": best_ms(lambda: torch.ops.aten.gelu_backward(g, z), n),
            "kernel forward": best_ms(lambda: kernel(z.data_ptr(), h.data_ptr(), d.data_ptr(), z.numel(),
                                                     torch.get_num_threads()), n),
            "kernel backward": best_ms(lambda: g * d, n),
        }
        print(f"{shape[0]}x{shape[1]}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items()))


def updates(path, methods, overrides, rounds, kernel):
    eligible = fused.eligible
    ways = {"fused": (kernel, eligible), "kernel": (kernel, lambda mlp, x: False),
            "torch": (None, lambda mlp, x: False)}
    dataset = load(path)
    try:
        for name in methods:
            method, batch = method_and_batch(name, path, dataset, overrides)
            t = time.perf_counter()
            method.update(batch)
            n = max(2, int(1.5 / max(time.perf_counter() - t, 1e-4)))  # about 1.5 s per timing
            ms = {way: [] for way in ways}
            for _ in range(rounds):
                for way, (k, e) in ways.items():
                    native._state["fn"], fused.eligible = k, e
                    ms[way].append(best_ms(lambda: method.update(batch), n, rounds=1))
            pairs = {way: statistics.median(t / f for f, t in zip(ms[way], ms["torch"])) for way in ("fused", "kernel")}
            print(f"{name}: " + ", ".join(f"{w} {statistics.median(v):.2f} ms" for w, v in ms.items())
                  + f" per update; torch / fused {pairs['fused']:.3f}, torch / kernel {pairs['kernel']:.3f}"
                  f" (medians of {rounds} rounds)")
    finally:
        native._state["fn"], fused.eligible = kernel, eligible


def main():
    a = parse_args(__doc__, "gcbc gcivl hiql", 6)
    kernel = native.kernel()
    if kernel is None:
        raise SystemExit(f"no kernel to compare: {native.status()}")
    blocks(kernel)
    updates(a.dataset, a.methods.split(), a.overrides, a.rounds, kernel)


if __name__ == "__main__":
    main()
