"""Optimizers and target networks."""

import torch
from torch import nn


def adam(params, lr, cls=torch.optim.Adam, **kwargs):
    """Adam (or `cls`, e.g. AdamW) as every method uses it: torch's fused implementation, one
    kernel over all parameters instead of a loop over tensors (the same arithmetic, several times
    faster per step on CPU). Falls back to the multi-tensor form where a device has no fused kernel."""
    params = list(params)
    try:
        return cls(params, lr=lr, fused=True, **kwargs)
    except RuntimeError:
        return cls(params, lr=lr, foreach=True, **kwargs)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, tau: float):
    """Polyak averaging target <- tau * source + (1 - tau) * target, fused over all tensors."""
    targets = list(target.parameters())
    if targets:  # a parameter-free network (a flat state encoder) has nothing to average
        torch._foreach_lerp_(targets, list(source.parameters()), tau)
