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

Which kernel is faster depends on the CPU's maker. MKL is Intel's library: on the 2-core Intel Xeon
(AVX-512, 2.0 GHz) measured in the eleventh session it beat oneDNN on every product of the
published layer (forward 4.94 against 5.05 ms, input gradient 4.85 against 5.17, weight gradient
5.27 against 7.82; `scripts/bench_matmul.py`), and whole updates without oneDNN were 4% faster
(GCBC, GCIVL, HIQL; CRL 1%), alternating in one process (`scripts/bench_layer_kernel.py`). On both AMD EPYC machines oneDNN was the
faster one. So `AUTODIDACT_CPU_MATMUL=auto` (the default) uses oneDNN except on CPUs whose vendor
is GenuineIntel; `onednn` uses it on any CPU, `native` never.

It is used only where it pays and is known to work: CPU float32 tensors outside autocast, matmuls
of at least `MIN_MACS` multiply-adds (oneDNN costs ~30 us more per call, so small layers, a single
observation at evaluation time, and the tiny networks of the test suite are faster through MKL;
the two break even around 256x256 @ 256x256, where torch's own layer also saves this module's
Python autograd overhead: a GCBC update at batch 256 and 3x256 took 11.6 against 13.0 ms on one
thread, 7.9 against 8.5 on two, with that shape left to MKL), and only after a one-time check that
the operator exists and agrees with `torch.nn.functional.linear`.

Two more things the same autograd function does for layers of at least `MIN_FUNCTION_MACS` (a layer
below MIN_MACS with at least as many inputs as outputs skips it):
- The weight gradient `grad^T @ x` is computed as `(x^T @ grad)^T` when the layer has fewer inputs
  than outputs. MKL is slow at the first form when `x` is narrow: the published networks' first
  layer (1024 rows, 4 inputs, 512 outputs) takes 0.65 ms that way and 0.13 ms the other.
- Under `torch.compile` the weight gradient goes through oneDNN too, as `grad^T` (transposed by
  the compiled kernel that produces `grad`, where the transpose is nearly free) times `x`. In
  eager mode the transpose would cost a separate pass as long as the gain, so it stays MKL.

The oneDNN call is wrapped as the operator `autodidact::onednn_linear` so that compiled graphs can
hold it: inductor's own lowering of `mkldnn._linear_pointwise` assumes frozen (constant) weights.
"""

import os
from typing import Optional

import torch
import torch.nn.functional as F

MIN_MACS = 1 << 25            # per matmul, for oneDNN (below, MKL is as fast or faster)
MIN_FUNCTION_MACS = 1 << 20   # per layer, for this module's autograd function (below, its Python
                              # overhead is more than the weight-gradient orientation saves)
_ENV = "AUTODIDACT_CPU_MATMUL"
_state = {}


def _register_operator():
    """`autodidact::onednn_linear(x, weight, bias)`: the oneDNN call as a torch operator."""
    existing = getattr(torch.ops.autodidact, "onednn_linear", None)
    if existing is not None:  # this module imported twice (e.g. reloaded)
        return existing

    @torch.library.custom_op("autodidact::onednn_linear", mutates_args=())
    def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        return _onednn_linear(x, weight, bias)

    @onednn_linear.register_fake
    def _(x, weight, bias):
        return x.new_empty((*x.shape[:-1], weight.shape[0]))

    return onednn_linear


def _onednn_linear(x, weight, bias):
    if x.stride(-1) != 1 or not _dense(weight):
        # Compiled graphs may hand over other layouts than eager code checked for; oneDNN
        # takes some of them only on a very slow path (see _dense).
        return F.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _onednn(x, weight, bias):
    """x @ weight^T + bias through oneDNN: the registered operator where torch.compile traces,
    else the call itself. (Eager calls skip the operator's Python dispatch, ~90 us a call on this
    project's CPU: 3% of a GCBC update at batch 256 and 3x256 layers, one thread.)"""
    if torch.compiler.is_compiling():
        return _op()(x, weight, bias)
    return _onednn_linear(x, weight, bias)


def _op():
    """The oneDNN linear operator, or None where it is unavailable, not chosen or disagrees."""
    if "op" not in _state:
        _state["op"] = None
        choice = os.environ.get(_ENV, "auto").strip().lower()
        if choice not in ("auto", "onednn", "native"):
            raise ValueError(f"{_ENV} must be 'auto', 'onednn' or 'native', got '{choice}'")
        if choice == "onednn" or (choice == "auto" and cpu_vendor() != "GenuineIntel"):
            _state["op"] = _checked_op()
    return _state["op"]


def cpu_vendor():
    """The CPU's vendor string ("GenuineIntel", "AuthenticAMD", ...), or "" where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def kernel():
    """The float32 CPU matmul kernel of the big dense layers in this process: "onednn" or "mkl"."""
    return "onednn" if active() else "mkl"


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
        return _register_operator() if ok else None
    except (AttributeError, RuntimeError):
        return None


def active():
    """Whether float32 CPU dense layers go through oneDNN in this process."""
    return _op() is not None


def _dense(t):
    """Row- or column-major without gaps: oneDNN takes these directly. (A weight that is a slice
    of a wider tensor sends it down a path hundreds of times slower, so such tensors stay on MKL.)"""
    return t.is_contiguous() or (t.dim() == 2 and t.t().is_contiguous())


def _macs(x, weight):
    return x.numel() // x.shape[-1] * weight.shape[-1] * weight.shape[-2]


def _eligible(x, weight, min_macs=None):
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and x.stride(-1) == 1
            and _macs(x, weight) >= (MIN_MACS if min_macs is None else min_macs)
            and _op() is not None)


def _mm_t(a, b):
    """a^T @ b over all leading dims folded into rows: [..., m], [..., n] -> [m, n]. The wider
    operand goes second (module note: MKL is slow at a wide a^T times a narrow b); the result may
    then be a transposed view."""
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    if a.shape[1] > b.shape[1]:
        return (b.t() @ a).t()
    return a.t() @ b


class _Linear(torch.autograd.Function):
    """y = x @ weight^T + bias, weight [out, in] (torch's layout). Each product goes through
    oneDNN if it has at least MIN_MACS multiply-adds, else through torch's own kernels."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.onednn = _macs(x, weight) >= MIN_MACS and _dense(weight)
        return _onednn(x, weight, bias) if ctx.onednn else F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()  # a broadcast loss gradient arrives with zero strides
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _onednn(grad, weight.t(), None) if ctx.onednn else grad @ weight
        if ctx.needs_input_grad[1]:
            g2, x2 = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
            if ctx.onednn and torch.compiler.is_compiling() and x2.is_contiguous():
                gw = _onednn(g2.t().contiguous(), x2.t(), None)  # module note
            else:
                gw = _mm_t(g2, x2)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.reshape(-1, grad.shape[-1]).sum(0)
        return gx, gw, gb


def _member_forward(x, w, b, onednn):
    """x [N, in] @ w [in, out] + b [out], one ensemble member (see _EnsembleMembers)."""
    if onednn:
        return _onednn(x, w.t(), b)
    if w.shape[1] == 1:  # the caller has cast x, w and b to one dtype and turned autocast off
        return torch.addmv(b, x, w[:, 0]).unsqueeze(1)
    return torch.addmm(b, x, w)


class _EnsembleMembers(torch.autograd.Function):
    """An ensemble layer applied member by member: y_e = x_e @ weight[e] + bias[e] for weight
    [E, in, out], bias [E, 1, out] and one input x_e [N, in] per member.

    Inputs and outputs stay one tensor per member. Torch has no batched oneDNN matmul, so a layer
    working on stacked [E, N, in] tensors had to copy its per-member outputs into a stack, 4.2% of
    a GCIVL update. Each product takes the kernel that is fastest for its shape: oneDNN for the
    big ones, and for a single output column (value heads) a matrix-vector product, where MKL's
    batched matmul is 5-20x slower (2 members, 2048 rows, 512 inputs, in cache: forward 1.19
    against 0.20 ms; input gradient 1.2-1.6 against 0.08 as a broadcast multiply; weight gradient
    3.6-3.9 against 0.19).

    Under autocast the products run in the autocast dtype, as torch's own matmuls would."""

    @staticmethod
    def forward(ctx, weight, bias, *xs):
        device = xs[0].device.type
        ctx.shapes = [x.shape for x in xs]
        ctx.param_dtype = weight.dtype
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        if dtype is not None:  # cast once here, for the forward and the backward
            weight, bias = weight.to(dtype), bias.to(dtype)
        flat = {}  # an input shared by the members is reshaped and cast once
        for x in xs:
            if id(x) not in flat:
                x2 = x.reshape(-1, x.shape[-1])
                flat[id(x)] = x2 if dtype is None else x2.to(dtype)
        x2s = [flat[id(x)] for x in xs]
        ctx.onednn = [_eligible(x, weight[e].t()) and _dense(weight[e]) for e, x in enumerate(x2s)]
        with torch.autocast(device, enabled=False):
            outs = [_member_forward(x, weight[e], bias[e, 0], ctx.onednn[e]) for e, x in enumerate(x2s)]
        ctx.save_for_backward(weight, *x2s)
        return tuple(y.reshape(*shape[:-1], y.shape[-1]) for y, shape in zip(outs, ctx.shapes))

    @staticmethod
    def backward(ctx, *grads):
        weight, *x2s = ctx.saved_tensors  # in the dtype the products ran in
        gws, gbs, gxs = [], [], []
        for e, (x, g) in enumerate(zip(x2s, grads)):
            w = weight[e]
            g = g.reshape(-1, g.shape[-1]).to(w.dtype).contiguous()  # a broadcast gradient has zero strides
            if ctx.needs_input_grad[2 + e]:
                if ctx.onednn[e]:
                    gx = _onednn(g, w, None)
                elif w.shape[1] == 1:
                    gx = g * w[:, 0]
                else:
                    gx = g @ w.t()
                gxs.append(gx.reshape(ctx.shapes[e]))  # autograd casts it to the input's dtype
            else:
                gxs.append(None)
            if ctx.needs_input_grad[0]:
                gws.append(torch.mv(x.t(), g[:, 0]).unsqueeze(1) if w.shape[1] == 1 else _mm_t(x, g))
            if ctx.needs_input_grad[1]:
                gbs.append(g.sum(0))
        gw = torch.stack(gws).to(ctx.param_dtype) if gws else None
        gb = torch.stack(gbs).unsqueeze(1).to(ctx.param_dtype) if gbs else None
        return (gw, gb, *gxs)


def ensemble_members(xs, weight, bias):
    """[x_e @ weight[e] + bias[e] for each member e]: weight [E, in, out], bias [E, 1, out], xs a
    list of E inputs [..., in] (the same tensor E times for a shared input)."""
    if torch.compiler.is_compiling():
        # torch.compile (2.13) fails to trace this Function inside the methods' updates (its
        # forward is handed mismatched tensors, a [16, 3] input against [1, 32] weights in a tiny
        # GCIVL; a minimal Function with a variable number of inputs traces fine, and the cause was
        # not pinned down). Compiled graphs (`--compile on`) get the plain per-member products.
        return [torch.matmul(x, weight[e]) + bias[e, 0] for e, x in enumerate(xs)]
    return list(_EnsembleMembers.apply(weight, bias, *xs))


def flop_formulas():
    """FLOP formulas for `torch.utils.flop_counter.FlopCounterMode(custom_mapping=...)`, which
    otherwise counts only aten's matmuls and would miss the oneDNN calls."""
    def linear_flops(x_shape, *args, out_shape=None, **kwargs):
        # (x, weight, bias, ...) for the plain call and this module's operator; the "binary"
        # overload (fused.py) is (x, other, weight, bias, attr). The counter looks formulas up by
        # operator, not overload, so one formula tells them apart: the plain call's attr is a str.
        w_shape = args[1] if len(args) >= 4 and not isinstance(args[2], str) else args[0]
        rows = 1
        for d in x_shape[:-1]:
            rows *= d
        return 2 * rows * x_shape[-1] * w_shape[0]
    ops = {}
    for namespace, name in (("mkldnn", "_linear_pointwise"), ("autodidact", "onednn_linear")):
        op = getattr(getattr(torch.ops, namespace, None), name, None)
        if op is not None:
            ops[op] = linear_flops
    # Matrix-vector products (single-output ensemble heads), which the counter skips as well.
    def mv_flops(*shapes, out_shape=None, **kwargs):
        rows, cols = next(s for s in shapes if isinstance(s, (tuple, list, torch.Size)) and len(s) == 2)
        return 2 * rows * cols

    ops[torch.ops.aten.mv] = ops[torch.ops.aten.addmv] = mv_flops
    return ops


def matmul(a, b):
    """a @ b for 2-d float32 CPU tensors through the same kernel the layers use (for measuring
    this machine's matmul rate)."""
    if _eligible(a, b) and _dense(b):
        return _onednn(a, b.t(), None)
    return a @ b


def linear(x, weight, bias=None):
    """`torch.nn.functional.linear`, through this module's autograd function where eligible
    (module note)."""
    # The function only where it does something torch's own layer does not: a oneDNN product, or
    # the weight-gradient orientation of a narrow-input layer. Otherwise its Python forward and
    # backward would be pure overhead.
    if _eligible(x, weight, MIN_FUNCTION_MACS) and (weight.shape[1] < weight.shape[0]
                                                    or _macs(x, weight) >= MIN_MACS):
        return _Linear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


