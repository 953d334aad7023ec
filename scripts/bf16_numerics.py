"""Run an autodidact command with bfloat16 matmuls done in float32 on a CPU that lacks bf16 hardware.

    .venv/bin/python scripts/bf16_numerics.py train --method gcbc --dataset D.npz --out R --precision bf16
    .venv/bin/python scripts/bf16_numerics.py check --dataset D.npz [--method gcbc] [--steps 30] [--set K=V]

The question it answers is whether `--precision bf16` lowers success. That is a question about
numbers, not hardware. A CPU without AVX512-BF16 or AMX runs torch's bfloat16 matmuls through slow
fallback loops: a 10,000-step HIQL run at the learning-benchmark size takes 2.6 hours
(docs/BENCHMARKS.md). Those runs are too slow to train at the benchmark's budget.

This script runs the real autocast path of `autodidact train --precision bf16`. Autocast picks the
same layers, casts the same tensors to bfloat16, and runs GELU, adds and reductions in bfloat16
as usual. Only the matrix products change. Each product whose operands are bfloat16 is done in
float32 and rounded back to bfloat16.

This gives the same numbers as a bf16 matmul, apart from summation order:
- A product of two bfloat16 numbers is exact in float32 (8 + 8 significand bits fit in 24).
- torch's bf16 matmuls on CPU (the fallback, oneDNN's AVX512-BF16 kernels) and GPU tensor
  cores all sum in float32, then round the result to bfloat16.

`check` measures how close the two are. It runs the same GCBC updates on one batch three ways:
float32, the real (slow) bf16 path, and this emulation. It prints how far apart the losses and
weights end up.

This is a benchmark tool, not part of the library: it makes bf16 no faster than float32.
"""

import contextlib
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

aten = torch.ops.aten
MATMULS = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten.mv, aten.addmv, aten.dot, aten._addmm_activation}


def _is_bf16(a):
    return isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16


class Bf16MatmulsInFloat32(TorchDispatchMode):
    """Matrix products with bfloat16 operands run in float32 and are rounded back to bfloat16."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket not in MATMULS or "out" in kwargs:
            return func(*args, **kwargs)
        if not any(_is_bf16(a) for a in args):
            return func(*args, **kwargs)
        self.calls += 1
        up = tree_map(lambda a: a.float() if _is_bf16(a) else a, (args, kwargs))
        out = func(*up[0], **up[1])
        return tree_map(lambda t: t.to(torch.bfloat16) if isinstance(t, torch.Tensor) else t, out)


def check(argv):
    """The same updates three ways on one batch; how far apart the losses and weights end up."""
    import argparse
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from bench_ensemble import method_and_batch
    from autodidact.data.dataset import load
    from autodidact.trainer import autocast

    ap = argparse.ArgumentParser(prog="bf16_numerics.py check", description=check.__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--method", default="gcbc")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args(argv)
    dataset = load(a.dataset)
    results = {}
    for way in ("float32", "bf16", "emulated"):
        method, batch = method_and_batch(a.method, a.dataset, dataset, a.overrides)  # seeded: same start
        if way == "float32":
            start = torch.cat([p.detach().flatten() for p in method.parameters()])
        mode = Bf16MatmulsInFloat32() if way == "emulated" else None
        losses = []
        for _ in range(a.steps):
            # One autocast region per update, as the trainer has it: autocast caches its bf16 copies
            # of the weights until the region ends, so one region around every update would keep
            # using the first update's weights.
            precision = "float32" if way == "float32" else "bf16"
            with autocast(torch.device("cpu"), precision), mode or contextlib.nullcontext():
                info = method.update(batch)
            losses.append(sum(float(v) for k, v in info.items() if k.endswith("/loss")))
        results[way] = (losses, torch.cat([p.detach().flatten() for p in method.parameters()]))
        print(f"{way:9s} summed losses after 1 / {a.steps} updates: {losses[0]:.5f} / {losses[-1]:.5f}"
              + (f"  ({mode.calls} products emulated)" if mode else ""))
    moved = (results["bf16"][1] - start).norm()
    for other in ("emulated", "float32"):
        lo, po = results[other]
        lb, pb = results["bf16"]
        print(f"{other} vs bf16: largest loss difference {max(abs(x - y) for x, y in zip(lo, lb)):.2e}, "
              f"weight difference / bf16's weight change {float((po - pb).norm() / moved):.4f}")


def main(argv):
    if argv[:1] == ["check"]:
        check(argv[1:])
        return 0
    from autodidact import trainer
    from autodidact.cli import main as cli_main
    # The trainer would warn that bf16 runs many times slower here; under this mode it does not.
    trainer.precision_warning = lambda device, precision: (
        "note: bf16 matrix products run in float32 and are rounded to bf16 (scripts/bf16_numerics.py)"
        if precision == "bf16" else None)
    with Bf16MatmulsInFloat32():
        return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
