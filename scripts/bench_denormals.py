"""Training updates with denormal floats kept against flushed to zero (denormals.py; docs/BENCHMARKS.md).

Denormals appear as training goes on, not at the start, so this resumes a run from its newest
checkpoint (weights and optimizer state) and times updates from there, alternating rounds of the
two ways in one process. Every round starts again from the checkpoint and uses the same batches.

    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_denormals.py RUN_DIR [--updates 20] [--rounds 3]

It also counts the denormal values in the checkpoint's weights and optimizer state.
"""

import argparse
import statistics
import time

import torch

from autodidact.checkpoint import latest_checkpoint, load_checkpoint
from autodidact.data.dataset import load
from autodidact.denormals import denormals_flushed
from autodidact.io import read_json
from autodidact.trainer import autocast, build_method, to_tensors

TINY = torch.finfo(torch.float32).tiny


def denormal_count(tensors):
    return sum(int(((t.abs() > 0) & (t.abs() < TINY)).sum()) for t in tensors
               if t is not None and t.dtype == torch.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run directory with at least one checkpoint")
    ap.add_argument("--updates", type=int, default=20, help="timed updates per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each way, alternating")
    a = ap.parse_args()
    run_cfg = read_json(f"{a.run}/run.json", "run file")
    ckpt = latest_checkpoint(f"{a.run}/checkpoints")
    dataset = load(run_cfg["dataset"])
    precision = run_cfg.get("precision", "float32")

    def restored():
        method = build_method(run_cfg)
        step = load_checkpoint(ckpt, method)["step"]
        method.train()
        return method, step

    method, step = restored()
    batches = [to_tensors(b, "cpu") for b in
               (method.make_sampler(dataset, 12345).sample(method.cfg.batch_size) for _ in range(a.updates + 1))]
    state = [t for opt in method.optimizers().values() for s in opt.state.values() for t in s.values()
             if isinstance(t, torch.Tensor)]
    print(f"{run_cfg['method']} at step {step} ({ckpt}), {torch.get_num_threads()} thread(s), {precision}: "
          f"{denormal_count(method.parameters())} denormal weights, {denormal_count(state)} denormal optimizer values")

    ms = {"kept": [], "flushed": []}
    for _ in range(a.rounds):
        for way in ms:
            method, _ = restored()
            with denormals_flushed(way == "flushed"):
                with autocast(torch.device("cpu"), precision):
                    method.update(batches[0])  # warm-up
                t = time.perf_counter()
                for batch in batches[1:]:
                    with autocast(torch.device("cpu"), precision):
                        method.update(batch)
                ms[way].append(1000 * (time.perf_counter() - t) / a.updates)
            print(f"  {way:8s} {ms[way][-1]:8.1f} ms/update", flush=True)
    kept, flushed = statistics.median(ms["kept"]), statistics.median(ms["flushed"])
    print(f"median: kept {kept:.1f} ms ({1000 / kept:.2f} steps/s), flushed {flushed:.1f} ms "
          f"({1000 / flushed:.2f} steps/s); kept / flushed {kept / flushed:.2f}")


if __name__ == "__main__":
    main()
