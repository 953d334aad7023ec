"""Stacked against member-by-member ensembles (nn.MLP's note; docs/BENCHMARKS.md).

Part 1 times a two-member 3xW value network with LayerNorm (forward + backward, and a no-grad
forward) both ways at several sizes. Part 2 times whole training updates of the given methods,
alternating the two ways in one process on one fixed batch (the way is switched through
`MLP.STACKED_MAX_MACS`), and prints each method's median ratio.

    .venv/bin/python scripts/bench_ensemble.py --dataset /tmp/benchdata/pointmaze-medium-navigate-v0.npz \
        --threads 1 --set batch_size=256 --set actor_hidden_dims=256,256,256 --set value_hidden_dims=256,256,256
"""

import argparse
import statistics
import time

import torch

from autodidact import config as cfglib
from autodidact.allocator import keep_freed_memory
from autodidact.data.dataset import load
from autodidact.methods import get_method
from autodidact.nn import MLP
from autodidact.presets import preset_for
from autodidact.trainer import to_tensors

WAYS = {"stacked": 1 << 62, "member": 0}  # STACKED_MAX_MACS that forces each way


def best_ms(fn, n, rounds=5):
    for _ in range(3):
        fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t) / n * 1e3)
    return min(times)


def networks():
    for rows, width in ((8, 8), (256, 256), (512, 256), (1024, 512)):
        torch.manual_seed(0)
        mlp = MLP(4, (width,) * 3, 1, layer_norm=True, ensemble=2)
        x = torch.randn(rows, 4)

        def grad_step():
            mlp.zero_grad(set_to_none=True)
            mlp(x).sum().backward()

        def no_grad():
            with torch.no_grad():
                mlp(x)

        n = max(3, 2000 * 64 // (rows * width))
        for label, fn in (("fwd+bwd", grad_step), ("no-grad fwd", no_grad)):
            ms = {}
            for way, limit in WAYS.items():
                MLP.STACKED_MAX_MACS = limit
                ms[way] = best_ms(fn, n)
            print(f"{rows} rows, 3x{width}, {label}: member {ms['member']:.3f} ms, stacked {ms['stacked']:.3f} ms, "
                  f"member / stacked {ms['member'] / ms['stacked']:.2f}")


def method_and_batch(name, path, dataset, overrides):
    """Method `name` with the dataset's preset and the overrides it knows, seeded, and one batch."""
    cls = get_method(name)
    cfg = cfglib.apply_overrides(cls.Config(), preset_for(path, cls.name))
    known = set(cfglib.to_dict(cfg))
    cfg = cfglib.apply_overrides(cfg, [o for o in overrides if o.split("=", 1)[0] in known])
    torch.manual_seed(0)
    method = cls(cfg, dataset.obs_shape, dataset.action_dim)
    return method, to_tensors(method.make_sampler(dataset, 0).sample(cfg.batch_size), "cpu")


def parse_args(doc, methods, rounds):
    """The options both update benchmarks take; applies --threads and the allocator setting."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--methods", default=methods)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, as `train --set` (repeatable; keys a method lacks are skipped)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    keep_freed_memory()
    return a


def updates(path, methods, overrides, rounds):
    dataset = load(path)
    for name in methods:
        method, batch = method_and_batch(name, path, dataset, overrides)
        n = 100 if name == "gcbc" else 10
        ms = {way: [] for way in WAYS}
        for _ in range(rounds):
            for way, limit in WAYS.items():
                MLP.STACKED_MAX_MACS = limit
                ms[way].append(best_ms(lambda: method.update(batch), n, rounds=1))
        ratio = statistics.median(m / s for m, s in zip(ms["member"], ms["stacked"]))
        print(f"{name}: member {statistics.median(ms['member']):.2f} ms, stacked {statistics.median(ms['stacked']):.2f} ms "
              f"per update, member / stacked {ratio:.2f} (median of {rounds} pairs)")


def main():
    a = parse_args(__doc__, "gcivl gciql qrl crl hiql", 4)
    networks()
    updates(a.dataset, a.methods.split(), a.overrides, a.rounds)


if __name__ == "__main__":
    main()
