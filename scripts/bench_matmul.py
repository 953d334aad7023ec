"""Float32 matmul kernels on this CPU, at the published layer size: MKL (torch's default for
float32 `addmm`/`mm`/`bmm`) against oneDNN (`torch.ops.mkldnn._linear_pointwise`, what
src/autodidact/cpu_matmul.py uses), for each matmul of a dense layer's forward and backward.

    python scripts/bench_matmul.py [--rounds 5]

Prints the median ms and GFLOP/s of each kernel over interleaved rounds.
"""

import argparse
import statistics
import time

import torch

import autodidact  # noqa: F401  (sets the OpenMP wait policy the way training runs do)


def timed(fn, reps):
    for _ in range(3):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the median is reported)")
    p.add_argument("--reps", type=int, default=20, help="calls per kernel per round")
    p.add_argument("--batch", type=int, default=1024, help="rows (the batch size)")
    p.add_argument("--width", type=int, default=512, help="layer width (in = out)")
    a = p.parse_args()
    lp = torch.ops.mkldnn._linear_pointwise
    g = torch.Generator().manual_seed(0)
    b, d, e = a.batch, a.width, 2
    x, grad = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    w, bias = torch.randn(d, d, generator=g), torch.randn(d, generator=g)
    xe, grade = torch.randn(e, b, d, generator=g), torch.randn(e, b, d, generator=g)
    we, biase = torch.randn(e, d, d, generator=g), torch.randn(e, 1, d, generator=g)
    flop = 2 * b * d * d
    kernels = {  # name: (flops, fn)
        "forward      MKL addmm": (flop, lambda: torch.addmm(bias, x, w.t())),
        "forward      oneDNN": (flop, lambda: lp(x, w, bias, "none", [], "")),
        "input grad   MKL mm": (flop, lambda: grad @ w),
        "input grad   oneDNN": (flop, lambda: lp(grad, w.t(), None, "none", [], "")),
        "weight grad  MKL mm": (flop, lambda: grad.t() @ x),
        "weight grad  oneDNN": (flop, lambda: lp(x.t(), grad.t(), None, "none", [], "").t()),
        "2-ensemble forward     MKL baddbmm": (e * flop, lambda: torch.baddbmm(biase, xe, we)),
        "2-ensemble forward     oneDNN x2 + stack": (e * flop, lambda: torch.stack(
            [lp(xe[i], we[i].t(), biase[i].reshape(-1), "none", [], "") for i in range(e)])),
        "2-ensemble input grad  MKL bmm": (e * flop, lambda: torch.bmm(grade, we.transpose(1, 2))),
        "2-ensemble input grad  oneDNN x2 + stack": (e * flop, lambda: torch.stack(
            [lp(grade[i], we[i], None, "none", [], "") for i in range(e)])),
        "2-ensemble weight grad MKL bmm": (e * flop, lambda: torch.bmm(xe.transpose(1, 2), grade)),
    }
    times = {k: [] for k in kernels}
    for _ in range(a.rounds):
        for k, (_, fn) in kernels.items():
            times[k].append(timed(fn, a.reps))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}, width {d}, "
          f"median of {a.rounds} rounds x {a.reps} calls")
    for k, (f, _) in kernels.items():
        t = statistics.median(times[k])
        print(f"{k:42s} {t * 1e3:7.3f} ms  {f / t / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
