"""A GELU kernel compiled for this machine: one pass that writes GELU(z) and GELU'(z) together.

torch's CPU GELU computes the activation in the forward pass and the derivative from scratch in
the backward (`gelu_backward`: erf, exp and their products again, over the saved input). Every
hidden layer of every method pays both. This kernel computes the activation and its derivative
from one erf and one exp in the forward and saves the derivative, so the backward is a single
multiply. On this project's AVX2 CPU, per 1024x512 block on two threads: torch forward 0.72-0.91
and backward 1.09-1.53 ms; here forward 0.77-0.97 and backward 0.08-0.23 ms (docs/BENCHMARKS.md).

The function is the exact (erf) GELU that `torch.nn.functional.gelu` computes; `Phi(-|z|)` uses
Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, as ATen's own vectorised erf), `exp` a
degree-5 polynomial after range reduction (relative error below 2e-7). Against torch: at most
5e-7 apart on the activation and 4e-7 on the derivative; NaN stays NaN.

The C source below is compiled once per machine with the system C compiler (`cc`, or `$CC`) into
the cache directory (`$AUTODIDACT_CACHE`, else `$XDG_CACHE_HOME/autodidact`, else
`~/.cache/autodidact`), keyed by the source, the compiler and the CPU's flags, written to a
temporary file and renamed. It is loaded with ctypes and checked against torch before first use.
Where there is no compiler, the build fails, the check disagrees, or `AUTODIDACT_NATIVE=off`,
`gelu` is torch's own, and nothing else changes. Its OpenMP threads are torch's: the library
links `libgomp.so.1`, which the loader resolves to the copy torch has already loaded.

A second entry point computes the same at z + b for a bias b added to every row of a 2-d z: the
fused networks (fused.py) add their hidden layers' biases there instead of in the product.

Used for contiguous float32 CPU tensors that need a gradient, outside `torch.compile` (inductor
fuses GELU itself); everything else (no-grad evaluation, bfloat16 under autocast, GPUs) takes
`torch.nn.functional.gelu`.
"""

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

_ENV = "AUTODIDACT_NATIVE"

_SOURCE = r"""
#include <stdint.h>
#include <string.h>

/* h = x * Phi(x), d = Phi(x) + x * phi(x). */
static inline __attribute__((always_inline)) void gelu_one(float x, float *restrict h, float *restrict d) {
    float xx = x * x;
    xx = xx < 170.0f ? xx : 170.0f;            /* exp(-85) is still a normal float */
    /* e = exp(-xx / 2): 2^k * exp(r), k = round(-xx / 2 / ln 2) by the 1.5 * 2^23 shift */
    float k = xx * -0.72134752044448170f + 12582912.0f;
    float kf = k - 12582912.0f;
    float r = kf * -0.693145751953125f + xx * -0.5f;
    r = kf * -1.428606765330187045e-06f + r;   /* ln 2 in two parts */
    float p = 0.008333837613463402f;
    p = p * r + 0.04189857840538025f;
    p = p * r + 0.1666688621044159f;
    p = p * r + 0.49999141693115234f;
    float er = (r * r) * p + r + 1.0f;
    uint32_t kb;
    memcpy(&kb, &k, 4);
    uint32_t sb = (kb + 127u) << 23;           /* the shift's high bits fall off */
    float s;
    memcpy(&s, &sb, 4);
    float e = er * s;
    /* q = Phi(-|x|) = erfc(|x| / sqrt 2) / 2, Abramowitz & Stegun 7.1.26, halved */
    float ax = x < 0.0f ? -x : x;
    float t = 1.0f / (ax * 0.23164189879853344f + 1.0f);
    float q = t * (0.127414796f + t * (-0.142248368f + t * (0.7107068705f
              + t * (-0.7265760135f + t * 0.5307027145f)))) * e;
    float cdf = x >= 0.0f ? 1.0f - q : q;
    *h = x * cdf;
    float xc = x < -16.0f ? -16.0f : (x > 16.0f ? 16.0f : x);  /* e stops at exp(-85) */
    *d = (xc * 0.3989422804014327f) * e + cdf;                 /* 1 / sqrt(2 pi) */
}

static void gelu_chunk(const float *restrict z, float *restrict h, float *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        gelu_one(z[i], h + i, d + i);
}

/* The same at z + b: z row-major [rows, cols], the bias b [cols] added to every row. */
static void gelu_bias_rows(const float *restrict z, const float *restrict b, float *restrict h,
                           float *restrict d, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict zr = z + r * cols;
        float *restrict hr = h + r * cols, *restrict dr = d + r * cols;
        for (int64_t c = 0; c < cols; c++)
            gelu_one(zr[c] + b[c], hr + c, dr + c);
    }
}

#define CHUNK 16384  /* elements per thread's share of work */

void autodidact_gelu(const float *z, float *h, float *d, int64_t n, int threads) {
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    if (threads <= 1 || chunks < 2) {
        gelu_chunk(z, h, d, n);
        return;
    }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t s = c * CHUNK, e = s + CHUNK < n ? s + CHUNK : n;
        gelu_chunk(z + s, h + s, d + s, e - s);
    }
}

void autodidact_gelu_bias(const float *z, const float *b, float *h, float *d, int64_t rows, int64_t cols,
                          int threads) {
    int64_t per = cols >= CHUNK ? 1 : CHUNK / cols;  /* rows per share */
    int64_t chunks = (rows + per - 1) / per;
    if (threads <= 1 || chunks < 2) {
        gelu_bias_rows(z, b, h, d, rows, cols);
        return;
    }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t s = c * per, e = s + per < rows ? s + per : rows;
        gelu_bias_rows(z + s * cols, b, h + s * cols, d + s * cols, e - s, cols);
    }
}
"""

_state = {}


def _vector_width():
    """Vector width (bits) to ask gcc for on x86. gcc's own tuning prefers 128-bit vectors on some
    AMD cores and 256-bit on Intel's AVX-512 cores (for their clock speed); this kernel is faster
    at full width on both: 256 on the AVX2 EPYC, 512 on the AVX-512 Intel Xeon of the twelfth
    session (a 1024x512 block on two threads: 0.79 against 1.24 ms with the cores shared,
    docs/BENCHMARKS.md). Other CPUs keep 256, the width measured on the AMD machines (512 was
    not tried on the AVX-512 EPYC)."""
    from autodidact.cpu_matmul import cpu_vendor
    if " avx512f" in _cpu_flags() and cpu_vendor() == "GenuineIntel":
        return 512
    return 256


def _flag_sets():
    base = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        return [base + ["-march=native", f"-mprefer-vector-width={_vector_width()}"], base]
    return [base + ["-march=native"], base]


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def _cache_dir():
    root = os.environ.get("AUTODIDACT_CACHE")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "autodidact")
    return Path(root)


def _compiler():
    cc = os.environ.get("CC") or "cc"
    path = shutil.which(cc)
    if path is None:
        return None, ""
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None, ""
    return path, version


def _build(directory):
    """Compile the library into `directory` unless it is there already; returns its path."""
    cc, version = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, or $CC) on PATH")
    errors = []
    for flags in _flag_sets():
        key = hashlib.sha256("\0".join([_SOURCE, version, _cpu_flags(), *flags]).encode()).hexdigest()[:16]
        target = directory / f"autodidact-gelu-{key}.so"
        if target.exists():
            return target
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", prefix=".build-", dir=directory)
        os.close(fd)
        src = tmp[:-3] + ".c"
        try:
            Path(src).write_text(_SOURCE)
            done = subprocess.run([cc, *flags, src, "-o", tmp], capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                os.replace(tmp, target)
                return target
            errors.append(done.stderr.strip().splitlines()[-1:] or ["failed"])
        finally:
            for leftover in (tmp, src):
                if os.path.exists(leftover):
                    os.unlink(leftover)
    raise RuntimeError(f"{cc} could not build it: {errors}")


def _load():
    """The library's two functions: (autodidact_gelu, autodidact_gelu_bias)."""
    directory = _cache_dir()
    try:
        path = _build(directory)
    except OSError:  # an unwritable cache (permissions, a read-only disk): build in the temp dir
        path = _build(Path(tempfile.gettempdir()) / f"autodidact-{os.getuid()}")
    return _bind(path)


def _bind(path):
    """The two functions of the library at `path`, typed: (autodidact_gelu, autodidact_gelu_bias)."""
    lib = ctypes.CDLL(str(path))
    fn = lib.autodidact_gelu
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    fn.restype = None
    bias_fn = lib.autodidact_gelu_bias
    bias_fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
    bias_fn.restype = None
    return fn, bias_fn


def _agrees(z, h, d):
    ref = z.clone().requires_grad_()
    out = F.gelu(ref)
    out.backward(torch.ones_like(out))
    return (torch.allclose(h, out.detach(), rtol=1e-5, atol=2e-6)
            and torch.allclose(d, ref.grad, rtol=1e-5, atol=2e-6))


def _check(fn, bias_fn=None):
    """The kernels against torch on values across the whole range, threaded and not."""
    gen = torch.Generator().manual_seed(0)
    z = torch.cat([torch.randn(40_000, generator=gen) * 4, torch.linspace(-12, 12, 2001),
                   torch.tensor([0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 1e4, -1e4])])
    rows = torch.randn(300, 130, generator=gen) * 4
    bias = torch.randn(130, generator=gen) * 2
    for threads in (1, 2):
        if not _agrees(z, *gelu_and_derivative(z, fn, threads)):
            return False
        if bias_fn is not None and not _agrees(rows + bias, *gelu_and_derivative(rows, bias_fn, threads, bias)):
            return False
    nan = torch.tensor([float("nan")])
    h, d = torch.empty(1), torch.empty(1)
    fn(nan.data_ptr(), h.data_ptr(), d.data_ptr(), 1, 1)
    return bool(h.isnan() and d.isnan())


def gelu_and_derivative(z, fn=None, threads=None, bias=None):
    """(GELU(z), GELU'(z)) for a contiguous float32 CPU tensor, through the kernel (`fn`, default the
    loaded one) on `threads` threads (default torch's). With `bias` ([cols], for a 2-d z [rows,
    cols]): the same at z + bias, through the bias kernel (`fn` then names that one)."""
    h, d = torch.empty_like(z), torch.empty_like(z)
    threads = torch.get_num_threads() if threads is None else threads
    if bias is None:
        (fn or _state["fn"])(z.data_ptr(), h.data_ptr(), d.data_ptr(), z.numel(), threads)
    else:
        (fn or _state["bias_fn"])(z.data_ptr(), bias.data_ptr(), h.data_ptr(), d.data_ptr(), z.shape[0], z.shape[1],
                                  threads)
    return h, d


def kernel():
    """The compiled kernel, or None (disabled, no compiler, failed build or check); the reason is
    in `status()`."""
    if "fn" not in _state:
        _state["fn"], _state["why"] = None, ""
        choice = os.environ.get(_ENV, "on").strip().lower()
        if choice not in ("on", "off"):
            raise ValueError(f"{_ENV} must be 'on' or 'off', got '{choice}'")
        if choice == "off":
            _state["why"] = f"{_ENV}=off"
        else:
            try:
                fn, bias_fn = _load()
                if _check(fn, bias_fn):
                    _state["fn"], _state["bias_fn"] = fn, bias_fn
                else:
                    _state["why"] = "the compiled kernel disagreed with torch"
            except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                _state["why"] = str(e)
            if _state["fn"] is None:
                warnings.warn(f"autodidact's GELU kernel is unavailable ({_state['why']}); "
                              "using torch's GELU, which is slower on CPU", stacklevel=3)
    return _state["fn"]


def status():
    """'native' where the kernel is in use, else torch's and why (for bench records)."""
    return "native" if kernel() is not None else f"torch ({_state['why']})"


class _GELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        h, d = gelu_and_derivative(z)
        ctx.save_for_backward(d)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (d,) = ctx.saved_tensors
        return grad * d


def gelu(z):
    """Exact GELU; through the compiled kernel where it applies (module note)."""
    if (z.requires_grad and torch.is_grad_enabled() and z.dtype == torch.float32 and z.device.type == "cpu"
            and z.is_contiguous() and not torch.compiler.is_compiling() and kernel() is not None):
        return _GELU.apply(z)
    return F.gelu(z)


class GELU(torch.nn.Module):
    """`torch.nn.GELU()` (exact form) through `gelu` above; no parameters, so state dicts are
    unchanged."""

    def forward(self, z):
        return gelu(z)
