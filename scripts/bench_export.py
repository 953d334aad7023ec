"""Export a run both ways and measure: export time, file size, and the exported policy's speed
beside autodidact's own `act` (median of repeated calls, batch 1 and 256, one thread each).

    python scripts/bench_export.py RUN [RUN ...]

Prints a Markdown table (docs/EXPORT.md holds its output).
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from autodidact.workflows.export import example_inputs, export_policy, policy_module
from autodidact.workflows.runs import load_run


def median_ms(fn, repeats=200):
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(runs):
    import onnxruntime as ort
    torch.set_num_threads(1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    print("| run | method | format | export (s) | file (KiB) | batch 1 (ms) | batch 256 (ms) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            _, method, _, _ = load_run(run)
            method.eval()
            module, names = policy_module(method)
            batches = {b: example_inputs(method, names, batch=b) for b in (1, 256)}
            with torch.no_grad():
                own = {b: median_ms(lambda x=x: module(*x)) for b, x in batches.items()}
            print(f"| {Path(run).name} | {method.name} | autodidact `act` | | | {own[1]:.3f} | {own[256]:.3f} |")
            for fmt in ("onnx", "torchscript"):
                info = export_policy(run, fmt, Path(tmp) / f"policy.{fmt}")
                if fmt == "onnx":
                    session = ort.InferenceSession(info["path"], options, providers=["CPUExecutionProvider"])
                    feeds = {b: {n: v.numpy() for n, v in zip(names, x)} for b, x in batches.items()}
                    speed = {b: median_ms(lambda f=f: session.run(None, f)) for b, f in feeds.items()}
                else:
                    policy = torch.jit.load(info["path"])
                    with torch.no_grad():
                        speed = {b: median_ms(lambda x=x: policy(*x)) for b, x in batches.items()}
                print(f"| {Path(run).name} | {method.name} | {fmt} | {info['seconds']:.2f} | "
                      f"{info['bytes'] / 1024:.1f} | {speed[1]:.3f} | {speed[256]:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
