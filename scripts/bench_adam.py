"""Adam step time on GCBC's published-size parameters: fused, multi-tensor (foreach) and per-tensor
forms (docs/PERFORMANCE.md, "Settings every run gets"). Median of 7 rounds of 50 steps.

    .venv/bin/python scripts/bench_adam.py
"""

import statistics
import time

import torch

from autodidact.methods import get_method


def main():
    gcbc = get_method("gcbc")
    params = list(gcbc(gcbc.Config(), (2,), 2).parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    for name, kw in (("fused", {"fused": True}), ("multi-tensor", {"foreach": True}), ("per-tensor", {"foreach": False})):
        opt = torch.optim.Adam(params, lr=3e-4, **kw)
        for _ in range(10):
            opt.step()
        rounds = []
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(50):
                opt.step()
            rounds.append((time.perf_counter() - t) / 50 * 1e3)
        print(f"{name:<13} {statistics.median(rounds):.2f} ms per step")


if __name__ == "__main__":
    main()
