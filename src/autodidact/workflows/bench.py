"""`autodidact bench`: steady-state training speed of a method on a dataset.

Measures, after a warm-up, (1) sampler batches/s alone, (2) full training steps/s (sample +
host-to-device + update), and peak memory. Uses the method's config for that dataset (published
presets, then `--set` overrides), so the numbers describe the run `train` would make.
"""

import resource
import sys
import time

import torch

from autodidact import kernels
from autodidact.core import config as cfglib
from autodidact.core.errors import UserError
from autodidact.data.dataset import load
from autodidact.kernels import onednn
from autodidact.methods import get_method
from autodidact.methods.presets import preset_for
from autodidact.workflows import compiling
from autodidact.workflows.runtime import (PRECISIONS, autocast, denormals_flushed, keep_freed_memory, native_bf16,
                                          precision_warning, to_tensors)


def _update_flops(method, batch):
    """FLOPs of one update, counted by torch's dispatcher (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False, custom_mapping=onednn.flop_formulas())
    with counter:
        method.update(batch)
    return counter.get_total_flops()


def matmul_rate(n=1024, k=512, m=512, reps=50, device="cpu", tuned=False):
    """This machine's float32 matmul rate (FLOP/s) at a shape typical of an update, through the
    kernel the update's big layers use (oneDNN with tuned kernels on CPU, else torch's)."""
    a = torch.randn(n, k, device=device)
    b = torch.randn(k, m, device=device)
    matmul = onednn.matmul if tuned else torch.matmul
    for _ in range(5):
        matmul(a, b)
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        matmul(a, b)
    _sync(device)
    return 2 * n * k * m * reps / (time.perf_counter() - t)


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def bench(method_name, dataset_path, steps=50, warmup=10, overrides=(), seed=0, device="cpu", precision="float32",
          kernels_name=kernels.DEFAULT, kernel_pieces=kernels.PIECES, compile_mode="off", log=None):
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    cls = get_method(method_name)
    keep_freed_memory()  # as training does (runtime.py)
    cfg = cfglib.apply_overrides(cls.Config(), preset_for(dataset_path, cls.name))
    cfg = cfglib.apply_overrides(cfg, list(overrides))
    ds = load(dataset_path)
    torch.manual_seed(seed)
    device = torch.device(device)
    method = cls(cfg, ds.obs_shape, ds.action_dim).to(device)
    tuned = kernels.apply(method, kernels_name, kernel_pieces)
    sampler = method.make_sampler(ds, seed)
    bs = cfg.batch_size

    for _ in range(warmup):
        sampler.sample(bs)
    t = time.perf_counter()
    n_sample = max(steps, 20)
    for _ in range(n_sample):
        sampler.sample(bs)
    sampler_rate = n_sample / (time.perf_counter() - t)

    log = log or (lambda msg: print(msg, file=sys.stderr))
    if warning := precision_warning(device, precision):
        log(warning)
    compiled = False
    if compile_mode == "on":
        log("compiling the loss")
        compiled = compiling.compile_loss(method, to_tensors(sampler.sample(bs), device),
                                          lambda: autocast(device, precision), log)

    def step():
        with autocast(device, precision):
            method.update(to_tensors(sampler.sample(bs), device))

    with denormals_flushed():  # as training does (runtime.py)
        for _ in range(warmup):
            step()
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        steps_per_s = steps / (time.perf_counter() - t)

    with autocast(device, precision):
        flops = _update_flops(method, to_tensors(sampler.sample(bs), device))
    rate = matmul_rate(device=device, tuned="onednn" in tuned)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    return {
        "method": cls.name, "dataset": str(dataset_path), "batch_size": bs, "device": str(device),
        "precision": precision, "native_bf16": native_bf16(device), "compiled": compiled,
        "kernels": kernels_name, "tuned": tuned, "threads": torch.get_num_threads(),
        "steps": steps, "steps_per_s": steps_per_s,
        "sampler_batches_per_s": sampler_rate, "update_gflop": flops / 1e9,
        "achieved_gflop_per_s": flops * steps_per_s / 1e9, "matmul_gflop_per_s": rate / 1e9,
        "fraction_of_matmul_rate": flops * steps_per_s / rate, "peak_memory_mb": peak / 2**20,
        "config": cfglib.to_dict(cfg),
    }


def format_bench(r):
    return "\n".join([
        f"{'method':<26}{r['method']}",
        f"{'dataset':<26}{r['dataset']}",
        f"{'device / threads':<26}{r['device']} / {r['threads']}",
        f"{'precision':<26}{r.get('precision', 'float32')}"
        + ("  (emulated: no native bfloat16 matmul here)" if r.get("precision") == "bf16" and r.get("native_bf16") is False else ""),
        f"{'kernels':<26}{r['kernels']}" + (f" ({', '.join(r['tuned'])})" if r["tuned"] else ""),
        f"{'compiled':<26}{'yes' if r['compiled'] else 'no'}",
        f"{'batch size':<26}{r['batch_size']}",
        f"{'training steps/s':<26}{r['steps_per_s']:.2f}",
        f"{'sampler batches/s':<26}{r['sampler_batches_per_s']:.1f}",
        f"{'update GFLOP':<26}{r['update_gflop']:.2f}",
        f"{'achieved GFLOP/s':<26}{r['achieved_gflop_per_s']:.1f}  "
        f"({r['fraction_of_matmul_rate']:.0%} of this machine's {r['matmul_gflop_per_s']:.1f} GFLOP/s matmul rate)",
        f"{'peak memory':<26}{r['peak_memory_mb']:.0f} MB",
    ])
