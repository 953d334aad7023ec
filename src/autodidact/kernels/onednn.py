"""Float32 dense layers on CPU through oneDNN instead of MKL, and ensembles member by member.

PyTorch's CPU build sends float32 `addmm`/`mm`/`bmm` to MKL's sgemm. On the AMD EPYC (Zen 4) this
project is measured on, oneDNN, which PyTorch also ships, multiplies the published layer shape
(1024x512 @ 512x512) faster. The arithmetic is float32 in both (oneDNN's default "ieee" float32
mode). On an Intel Xeon, MKL was the faster of the two: there `--kernels torch` is the better
choice (docs/PERFORMANCE.md).

PyTorch reaches oneDNN for float32 linear layers only through `torch.ops.mkldnn._linear_pointwise`
(what its compiler emits for frozen inference graphs); it has no autograd formula, so the
functions below supply the backward: the input gradient goes through oneDNN as well, the weight
gradient stays an MKL `mm`, the bias gradient a sum. The weight gradient is computed as
`(x^T @ grad)^T` when the layer has fewer inputs than outputs: MKL is slow at `grad^T @ x` when
`x` is narrow (a published network's first layer: 1024 rows, 4 inputs, 512 outputs).

It is used only where it pays: CPU float32 tensors outside autocast and torch.compile, products of
at least `MIN_MACS` multiply-adds (oneDNN costs ~30 us more per call, so small layers and single
observations stay on MKL), after a one-time check that the operator exists and agrees with
`torch.nn.functional.linear`.

Ensembles: torch has no batched oneDNN matmul, so an ensemble layer whose members are big runs
member by member (`_EnsembleMembers`), each product on the kernel fastest for its shape: oneDNN for
the big ones, and a matrix-vector product for a single output column (value heads), where MKL's
batched matmul is several times slower.
"""

import torch
import torch.nn.functional as F

MIN_MACS = 1 << 25            # per matmul, for oneDNN (below, MKL is as fast or faster)
MIN_FUNCTION_MACS = 1 << 20   # per layer, for this module's autograd function (below, its Python
                              # overhead is more than the weight-gradient orientation saves)
_state = {}


def _onednn(x, weight, bias):
    """x @ weight^T + bias through oneDNN (weight [out, in], row- or column-major)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def available():
    """Whether oneDNN's linear operator exists here and agrees with torch (checked once)."""
    if "ok" not in _state:
        _state["ok"] = False
        try:
            if torch.backends.mkldnn.is_available():
                gen = torch.Generator().manual_seed(0)
                x, w, b = (torch.randn(*shape, generator=gen) for shape in ((70, 24), (16, 24), (16,)))
                with torch.no_grad():
                    ok = torch.allclose(_onednn(x, w, b), F.linear(x, w, b), rtol=1e-4, atol=1e-4)
                    # A column-major weight, as the backward passes it.
                    _state["ok"] = ok and torch.allclose(_onednn(x, w.t().contiguous().t(), None), x @ w.t(),
                                                         rtol=1e-4, atol=1e-4)
        except (AttributeError, RuntimeError):
            pass
    return _state["ok"]


def _dense(t):
    """Row- or column-major without gaps: oneDNN takes these directly. (A weight that is a slice
    of a wider tensor sends it down a path hundreds of times slower, so such tensors stay on MKL.)"""
    return t.is_contiguous() or (t.dim() == 2 and t.t().is_contiguous())


def _macs(x, weight):
    return x.numel() // x.shape[-1] * weight.shape[-1] * weight.shape[-2]


def _eligible(x, weight, min_macs=None):
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling() and x.stride(-1) == 1
            and _macs(x, weight) >= (MIN_MACS if min_macs is None else min_macs) and available())


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
            gw = _mm_t(grad, x)
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
    working on stacked [E, N, in] tensors would copy its per-member outputs into a stack. Each product takes the kernel that is fastest for its shape: oneDNN for the
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
    return list(_EnsembleMembers.apply(weight, bias, *xs))


def flop_formulas():
    """FLOP formulas for `torch.utils.flop_counter.FlopCounterMode(custom_mapping=...)`, which
    otherwise counts only aten's matmuls and would miss the oneDNN calls."""
    def linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs):
        rows = 1
        for d in x_shape[:-1]:
            rows *= d
        return 2 * rows * x_shape[-1] * w_shape[0]
    ops = {torch.ops.mkldnn._linear_pointwise: linear_flops}
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


