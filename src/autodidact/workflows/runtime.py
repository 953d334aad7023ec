"""The trainer's runtime setup: flushing denormal floats, keeping freed memory, mixed precision,
moving batches.

These are cheap and apply on every machine, so they are not behind the `--kernels` switch.

Denormals. Numbers below float32's smallest normal value (1.2e-38) are "denormal". On Intel CPUs
each arithmetic operation that reads or produces one takes a slow microcode path, about a hundred times
slower than usual. Training produces them as it goes: Adam's first moment of a weight whose
gradient has stopped decays by 0.9 per step and spends about 150 steps in the denormal range, and
activations and gradients of units that have gone quiet do the same; QRL's update can become
several times slower as training goes on. XLA, and so OGBench's JAX reference, runs every
computation with flush-to-zero and denormals-are-zero set. The training loop does the same.

The flags live in each thread's MXCSR register (FPCR on ARM). `torch.set_flush_denormal` sets
them only on the calling thread. Threads created later inherit them, but the OpenMP threads torch
runs matmuls and elementwise kernels on usually exist already, so the flags are also set from
inside one OpenMP parallel region, on each of its threads.

Freed memory (glibc only; elsewhere a no-op). glibc's malloc serves every allocation above its
mmap threshold (128 KiB at start, adapting upwards only as such blocks are freed) with a fresh
`mmap`, and returns freed heap tops to the kernel. An update allocates and frees the same activation-sized tensors (1-8 MB) every step, so
each step faults every page of them in again, zero-filled by the kernel: 700-1,400 minor faults per
GCBC update and 7,000-17,000 per GCIVL update at the published size, 1-66 ms of system time per
step. Raising both thresholds once makes the next step reuse the freed blocks. This is what
jemalloc/tcmalloc, which PyTorch recommends for CPU training, do by design; the cost is that up to
the trim threshold of freed memory stays mapped to this process.
"""

import contextlib
import ctypes
import ctypes.util
import os
import platform
import sys

import numpy as np
import torch

_SET_ON_THREAD = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_openmp_runtime = []  # [library or None], found once


def _openmp():
    """torch's loaded OpenMP runtime, whose GOMP_parallel runs a function on each pool thread (or None).

    LLVM's and Intel's OpenMP runtimes export GOMP_parallel too, for code built with gcc.
    """
    if not _openmp_runtime:
        _openmp_runtime.append(None)
        try:
            with open("/proc/self/maps") as maps:  # Linux; elsewhere only the calling thread is set
                paths = sorted({line.split()[-1] for line in maps
                                if line.rsplit("/", 1)[-1].startswith(("libgomp", "libomp", "libiomp"))})
        except OSError:
            paths = []
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
                lib.GOMP_parallel.argtypes = [_SET_ON_THREAD, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                lib.GOMP_parallel.restype = None
            except (OSError, AttributeError):
                continue
            _openmp_runtime[0] = lib
            break
    return _openmp_runtime[0]


def main_thread_flushes():
    """Whether the calling thread flushes a denormal result to zero."""
    return float(torch.tensor(1e-20) * torch.tensor(1e-20)) == 0.0


def set_flush_denormal(on):
    """Set flush-to-zero and denormals-are-zero on this thread and every OpenMP thread of torch's pool.

    Returns False where the CPU has no such mode (torch's own answer).
    """
    if not torch.set_flush_denormal(on):
        return False
    gomp = _openmp()
    if gomp is not None and torch.get_num_threads() > 1:
        on_each_thread = _SET_ON_THREAD(lambda _: torch.set_flush_denormal(on))
        gomp.GOMP_parallel(on_each_thread, None, 0, 0)  # 0 threads: the pool's current size
    return True


@contextlib.contextmanager
def denormals_flushed(on=True):
    """Inside, denormals are flushed to zero (on=True) or kept (on=False); after, as the calling thread had it."""
    before = main_thread_flushes()
    set_flush_denormal(on)
    try:
        yield
    finally:
        set_flush_denormal(before)


# ---------------------------------------------------------------- freed memory


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20    # glibc's largest allowed value on 64-bit: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 256 << 20   # freed heap top kept for reuse before it is returned to the kernel

_done = False


def keep_freed_memory():
    """Apply the thresholds above once per process; returns whether glibc accepted them. A user
    who sets glibc's own MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ keeps that choice."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done


# ---------------------------------------------------------------- mixed precision
PRECISIONS = ("float32", "bf16")


def autocast(device, precision):
    """Mixed precision for one update: bfloat16 matmuls (CPUs with AVX512-BF16/AMX, GPU tensor
    cores), float32 weights, optimizer state and output layers (nn/layers.py). float32: no change."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def native_bf16(device):
    """Whether `device` multiplies bfloat16 matrices in hardware: AVX512-BF16 or AMX on a CPU, bf16
    tensor cores (compute capability 8.0+) on a GPU. Elsewhere torch emulates bfloat16 matmuls,
    many times slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return True
    if platform.machine().lower() not in ("x86_64", "amd64"):   # Arm's BF16 extension, where oneDNN uses it
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def precision_warning(device, precision):
    """The line to log when `precision` would run emulated on `device`, else None."""
    if precision != "bf16" or native_bf16(device):
        return None
    what = "this CPU has no AVX512-BF16 or AMX" if device.type == "cpu" else f"{device} has no bf16 tensor cores"
    return (f"warning: --precision bf16 is emulated here ({what}) and runs many times slower than float32; "
            f"use --precision float32 on this machine")


def to_tensors(batch, device):
    """A sampler's numpy batch as tensors on `device`: float32 (no copy on CPU for float32 arrays),
    except frames, which stay uint8 (a quarter of the bytes to move) until the encoder scales them."""
    def tensor(v):
        t = torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True)
        return t if t.dtype == torch.uint8 else t.float()
    return {k: tensor(v) for k, v in batch.items()}
