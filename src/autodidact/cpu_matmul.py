"""Float32 dense layers on CPU through oneDNN instead of MKL.

PyTorch's CPU build sends float32 `addmm`/`mm`/`bmm` to MKL's sgemm. On the AMD EPYC (Zen 4) this
project is measured on, MKL reaches 140-150 GFLOP/s with two threads on the published layer
shape (1024x512 @ 512x512), its batched `bmm` for the value ensembles no more, while oneDNN, which
PyTorch also ships, reaches ~183 on the forward and input-gradient matmuls
(`python scripts/bench_matmul.py`; docs/BENCHMARKS.md has the table).
The arithmetic is float32 in both (oneDNN's default "ieee" float32 mode, no bfloat16 inside).

PyTorch reaches oneDNN for float32 linear layers only through `torch.ops.mkldnn._linear_pointwise`
(what its compiler emits for frozen inference graphs); it has no autograd formula, so the two
functions below supply the backward: the input gradient goes through oneDNN as well, the weight
gradient stays an MKL `mm` (no faster in oneDNN on these shapes), the bias gradient a sum.

It is used only where it pays and is known to work: CPU float32 tensors outside autocast, matmuls
of at least `MIN_MACS` multiply-adds (oneDNN costs ~30 us more per call, so small layers, a single
observation at evaluation time, and the tiny networks of the test suite are faster through MKL;
the two break even around 256x256 @ 256x256), and only after a one-time check that the operator
exists and agrees with `torch.nn.functional.linear`.
`AUTODIDACT_CPU_MATMUL=native` turns it off (for comparison, or on a machine where MKL is faster).
"""

import os

import torch
import torch.nn.functional as F

MIN_MACS = 1 << 24
_ENV = "AUTODIDACT_CPU_MATMUL"
_state = {}


def _op():
    """The oneDNN linear operator, or None where it is unavailable, disabled or disagrees."""
    if "op" not in _state:
        _state["op"] = None
        choice = os.environ.get(_ENV, "onednn").strip().lower()
        if choice not in ("onednn", "native"):
            raise ValueError(f"{_ENV} must be 'onednn' or 'native', got '{choice}'")
        if choice == "onednn":
            _state["op"] = _checked_op()
    return _state["op"]


def _checked_op():
    try:
        op = torch.ops.mkldnn._linear_pointwise
        if not torch.backends.mkldnn.is_available():
            return None
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(70, 24, generator=gen)
        w = torch.randn(16, 24, generator=gen)
        b = torch.randn(16, generator=gen)
        with torch.no_grad():
            y = op(x, w, b, "none", [], "")
            ok = y.shape == (70, 16) and torch.allclose(y, F.linear(x, w, b), rtol=1e-4, atol=1e-4)
            # A column-major weight, as the backward passes it.
            ok = ok and torch.allclose(op(x, w.t().contiguous().t(), None, "none", [], ""), x @ w.t(),
                                       rtol=1e-4, atol=1e-4)
        return op if ok else None
    except (AttributeError, RuntimeError):
        return None


def active():
    """Whether float32 CPU dense layers go through oneDNN in this process."""
    return _op() is not None


def _dense(t):
    """Row- or column-major without gaps: oneDNN takes these directly. (A weight that is a slice
    of a wider tensor sends it down a path hundreds of times slower, so such tensors stay on MKL.)"""
    return t.is_contiguous() or (t.dim() == 2 and t.t().is_contiguous())


def _eligible(x, weight):
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and x.stride(-1) == 1
            and x.numel() // x.shape[-1] * weight.shape[-1] * weight.shape[-2] >= MIN_MACS
            and _op() is not None)


def _mm_t(a, b):
    """a^T @ b over all leading dims folded into rows: [..., m], [..., n] -> [m, n]."""
    return a.reshape(-1, a.shape[-1]).t() @ b.reshape(-1, b.shape[-1])


class _Linear(torch.autograd.Function):
    """y = x @ weight^T + bias, weight [out, in] (torch's layout)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _op()(x, weight, bias, "none", [], "")

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()  # a broadcast loss gradient arrives with zero strides
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _op()(grad, weight.t(), None, "none", [], "")
        if ctx.needs_input_grad[1]:
            gw = _mm_t(grad, x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.reshape(-1, grad.shape[-1]).sum(0)
        return gx, gw, gb


class _EnsembleLinear(torch.autograd.Function):
    """y[e] = x[e] @ weight[e] + bias[e], weight [E, in, out], bias [E, 1, out]: one oneDNN call per
    member, which beats MKL's float32 `bmm` even with the stack (module note)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        op = _op()
        return torch.stack([op(x[e], weight[e].t(), bias[e].reshape(-1), "none", [], "")
                            for e in range(weight.shape[0])])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()  # a broadcast loss gradient arrives with zero strides
        op, n = _op(), weight.shape[0]
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.stack([op(grad[e], weight[e], None, "none", [], "") for e in range(n)])
        if ctx.needs_input_grad[1]:
            gw = torch.stack([_mm_t(x[e], grad[e]) for e in range(n)])
        if ctx.needs_input_grad[2]:
            gb = grad.reshape(n, -1, grad.shape[-1]).sum(1, keepdim=True)
        return gx, gw, gb


def flop_formulas():
    """FLOP formulas for `torch.utils.flop_counter.FlopCounterMode(custom_mapping=...)`, which
    otherwise counts only aten's matmuls and would miss the oneDNN calls."""
    def linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs):
        rows = 1
        for d in x_shape[:-1]:
            rows *= d
        return 2 * rows * x_shape[-1] * w_shape[0]
    try:
        return {torch.ops.mkldnn._linear_pointwise: linear_flops}
    except AttributeError:
        return {}


def matmul(a, b):
    """a @ b for 2-d float32 CPU tensors through the same kernel the layers use (for measuring
    this machine's matmul rate)."""
    if _eligible(a, b) and _dense(b):
        return _op()(a, b.t(), None, "none", [], "")
    return a @ b


def linear(x, weight, bias=None):
    """`torch.nn.functional.linear`, through oneDNN where eligible (module note)."""
    if _eligible(x, weight) and _dense(weight):
        return _Linear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


def ensemble_linear(x, weight, bias):
    """`torch.baddbmm(bias, x, weight)` for x [E, ..., in] (3-d on the fallback path), through
    oneDNN where eligible."""
    if _eligible(x, weight) and weight.is_contiguous():
        return _EnsembleLinear.apply(x, weight, bias)
    return torch.baddbmm(bias, x, weight)
