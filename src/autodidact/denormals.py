"""Flush denormal floats to zero while training, on every thread torch computes on.

Numbers below float32's smallest normal value (1.2e-38) are "denormal". On Intel CPUs each
arithmetic operation that reads or produces one takes a slow microcode path, about a hundred times
slower than usual. Training produces them as it goes: Adam's first moment of a weight whose
gradient has stopped decays by 0.9 per step and spends about 150 steps in the denormal range, and
activations and gradients of units that have gone quiet do the same. QRL at the learning-benchmark
size (batch 256, 3x256, one thread) fell from 7.0 to 2.2 steps/s over its first 2,000 steps on an
Intel Xeon (docs/BENCHMARKS.md). XLA, and so OGBench's JAX reference, runs every computation with
flush-to-zero and denormals-are-zero set. This module does the same for the training loop.

The flags live in each thread's MXCSR register (FPCR on ARM). `torch.set_flush_denormal` sets
them only on the calling thread. Threads created later inherit them, but the OpenMP threads torch
runs matmuls and elementwise kernels on usually exist already, so the flags are also set from
inside one OpenMP parallel region, on each of its threads.
"""

import contextlib
import ctypes

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
