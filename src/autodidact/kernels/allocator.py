"""Keep freed memory in the process for reuse during training (glibc only; elsewhere a no-op).

glibc's malloc serves every allocation above its mmap threshold (128 KiB at start, adapting
upwards only as such blocks are freed) with a fresh `mmap`, and returns freed heap tops to the
kernel. An update allocates and frees the same activation-sized tensors (1-8 MB) every step, so
each step faults every page of them in again, zero-filled by the kernel: 700-1,400 minor faults per
GCBC update and 7,000-17,000 per GCIVL update at the published size, 1-66 ms of system time per
step. Raising both thresholds once makes the next step reuse the freed blocks. This is what
jemalloc/tcmalloc, which PyTorch recommends for CPU training, do by design; the cost is that up to
the trim threshold of freed memory stays mapped to this process.
"""

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20    # glibc's largest allowed value on 64-bit: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 256 << 20   # freed heap top kept for reuse before it is returned to the kernel

_done = False


def keep_freed_memory():
    """Apply the thresholds above once per process; returns whether glibc accepted them."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
