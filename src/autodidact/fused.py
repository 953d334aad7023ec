"""A plain GELU MLP (no ensemble, no LayerNorm) as one autograd function on CPU.

Layer by layer, autograd runs two Python functions per hidden layer (the dense layer of
`cpu_matmul` and the GELU of `native`), each with its own forward and backward, and the backward
multiplies the incoming gradient by the saved GELU derivative in a pass of its own. Here the whole
network is one function, and in its backward the GELU derivative of layer i is applied inside the
oneDNN product that computes layer i+1's input gradient (a "mul" post-op), while the block is in
cache: `dL/dz_i = (dL/dz_{i+1} @ W_{i+1}) * GELU'(z_i)` in one call. The arithmetic is the layer-by-
layer network's (tests/test_fused.py compares outputs and every gradient).

Where a hidden layer's product is MKL's (layers below oneDNN's threshold, and every layer on
Intel CPUs, see cpu_matmul.py), the product is a plain `mm` and its bias is added inside the GELU
kernel (`native.gelu_and_derivative(z, bias=b)`), which reads every element anyway: torch's
`addmm` would first copy the bias into every row of the output and MKL then read it back. oneDNN
adds the bias inside its product already.

A Gaussian actor's mean layer joins its trunk's function (`gelu_mlp(trunk, x, head=mean)`): the
head's backward then needs no autograd nodes of its own, and the trunk's last GELU derivative is
applied in place to the head's input gradient instead of in a separate product.

This covers the actors of GCBC, GCIVL, GCIQL, CRL and HIQL at every size; networks with LayerNorm
or ensembles, bfloat16 autocast, `torch.compile`, GPUs and no-grad calls take the layer-by-layer
path.
"""

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from autodidact import cpu_matmul, native
from autodidact.cpu_matmul import _dense, _macs, _mm_t, _onednn

_state = {}
BIAS_IN_GELU = True  # see the module note; off only to measure against it


def _binary_ok():
    """Whether oneDNN's linear with a "mul" post-op exists here and computes (a @ w) * d."""
    if "binary" not in _state:
        _state["binary"] = False
        try:
            op = torch.ops.mkldnn._linear_pointwise.binary
            gen = torch.Generator().manual_seed(0)
            a, w, d = (torch.randn(*s, generator=gen) for s in ((70, 24), (24, 16), (70, 16)))
            with torch.no_grad():
                got = op(a, d, w.t(), None, "mul")
            _state["binary"] = bool(torch.allclose(got, (a @ w) * d, rtol=1e-4, atol=1e-4))
        except (AttributeError, RuntimeError):
            pass
    return _state["binary"]


def _input_grad(g, w, onednn, d=None):
    """g @ w (w [out, in], torch's layout), times d when given."""
    if onednn and d is not None and _binary_ok():
        return torch.ops.mkldnn._linear_pointwise.binary(g, d, w.t(), None, "mul")
    out = _onednn(g, w.t(), None) if onednn else g @ w
    return out if d is None else out.mul_(d)


class _GeluMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, activate_final, x, *params):
        n = len(params) // 2
        h, inputs, derivs, onednn = x, [], [], []
        for i in range(n):
            w, b = params[2 * i], params[2 * i + 1]
            big = _macs(h, w) >= cpu_matmul.MIN_MACS and _dense(w) and cpu_matmul.active()
            gelu = i < n - 1 or activate_final
            inputs.append(h)
            onednn.append(big)
            if gelu and not big and BIAS_IN_GELU:  # module note
                h, d = native.gelu_and_derivative(h @ w.t(), bias=b)
            else:
                z = _onednn(h, w, b) if big else F.linear(h, w, b)
                h, d = native.gelu_and_derivative(z) if gelu else (z, None)
            if gelu:
                derivs.append(d)
        ctx.n, ctx.activate_final, ctx.onednn = n, activate_final, onednn
        ctx.save_for_backward(*inputs, *derivs, *params[0::2])
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        n = ctx.n
        saved = ctx.saved_tensors
        inputs, derivs, weights = saved[:n], saved[n:-n], saved[-n:]
        g = grad.contiguous()
        if ctx.activate_final:
            g = g * derivs[n - 1]
        grads = [None] * (2 * n)
        gx = None
        for i in reversed(range(n)):
            if ctx.needs_input_grad[2 + 2 * i]:
                grads[2 * i] = _mm_t(g, inputs[i])
            if ctx.needs_input_grad[3 + 2 * i]:
                grads[2 * i + 1] = g.sum(0)
            if i > 0:
                g = _input_grad(g, weights[i], ctx.onednn[i], derivs[i - 1])
            elif ctx.needs_input_grad[1]:
                gx = _input_grad(g, weights[0], ctx.onednn[0])
        return (None, gx, *grads)


def eligible(mlp, x):
    """Whether `mlp` (an nn.MLP) can run as one function on input `x` (module note)."""
    return (not mlp.ensemble and mlp.fusable and x.device.type == "cpu" and x.dtype == torch.float32
            and torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and not torch.is_autocast_enabled("cpu") and native.kernel() is not None
            and (x.requires_grad or any(p.requires_grad for p in mlp.parameters())))


def gelu_mlp(mlp, x, head=None):
    """The network's output, through the function above; with `head` (a Linear after an MLP with
    `activate_final`), that layer's output on the network's."""
    linears = [m for m in mlp.net if isinstance(m, torch.nn.Linear)]
    if head is not None:
        assert mlp.activate_final, "a head follows a GELU"
        linears.append(head)
    params = [t for m in linears for t in (m.weight, m.bias)]
    activate_final = mlp.activate_final and head is None
    if x.dim() == 2:
        return _GeluMLP.apply(activate_final, x.contiguous(), *params)
    out = _GeluMLP.apply(activate_final, x.reshape(-1, x.shape[-1]).contiguous(), *params)
    return out.reshape(*x.shape[:-1], out.shape[-1])
