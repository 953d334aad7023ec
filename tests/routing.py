"""Gradient routing checks for the per-method reference tests.

A method's `loss(batch)` sums every term of its objective into one scalar. Which network each term
trains (the reference's stop-gradients) shows in the gradients: the gradient of the total loss
with respect to a network's parameters must equal the gradient of the reference term(s) that
network is trained by, and nothing else.
"""

import torch


def params_of(net):
    """The trainable parameters of a module (or a list of parameters)."""
    ps = list(net.parameters()) if isinstance(net, torch.nn.Module) else list(net)
    return [p for p in ps if p.requires_grad]


def grads(loss, params):
    """d loss / d params, zeros where the loss does not depend on a parameter."""
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


def assert_gradients_route(loss, routes, frozen=(), rtol=1e-4, atol=1e-6):
    """`routes`: {name: (network, reference term)}. Each network's gradient from `loss` equals the
    gradient of its reference term alone, and that gradient is not zero (not vacuous). `frozen`:
    networks (targets) that must get no gradient at all."""
    for name, (net, term) in routes.items():
        params = params_of(net)
        assert params, name
        got, want = grads(loss, params), grads(term, params)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")
        assert any(w.abs().sum() > 0 for w in want), f"{name}: the reference term does not train it"
    for net in frozen:
        assert not any(p.requires_grad for p in net.parameters())
    loss.backward(retain_graph=True)
    for net in frozen:
        assert all(p.grad is None for p in net.parameters())
