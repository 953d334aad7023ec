"""CPU speed-ups, applied to a built method from outside: `--kernels torch|tuned`.

The model layer (`autodidact.nn`) is plain PyTorch. `apply(method, "tuned")` changes how some of
its modules compute, never what: each tuned module class is a subclass of the plain one with the
same parameters (so checkpoints are the same either way) and a different `forward`, swapped in
after the method is built. `torch` leaves everything as it is. Deleting this package and the
switch changes no method.

What `tuned` does, on CPUs only:
- `onednn`: float32 products of big dense layers through oneDNN instead of MKL (`onednn.py`);
- `ensembles`: members of big ensemble layers one by one, each product on its fastest kernel.
Each piece is kept because leaving it out of `tuned` cost at least 5% of a whole update for some
method on the AMD CPU this project is measured on (docs/PERFORMANCE.md, scripts/bench_kernels.py).

The default is `tuned`: on the AMD CPU this project is measured on, plain torch trains GCIVL and
HIQL about 10% slower. `torch` is one switch away: the plain PyTorch that a method's code
reads as, and the better choice on an Intel CPU, where MKL is the faster kernel.
"""

import torch

from autodidact.core.errors import UserError
from autodidact.kernels import onednn
from autodidact.nn.layers import MLP, EnsembleLayerNorm, EnsembleLinear, Linear

KERNELS = ("torch", "tuned")
PIECES = ("onednn", "ensembles")
DEFAULT = "tuned"


class TunedLinear(Linear):
    """`Linear` whose big float32 CPU products go through oneDNN."""

    def forward(self, x):
        if self.full_precision and torch.is_autocast_enabled(x.device.type):
            return super().forward(x)
        return onednn.linear(x, self.weight, self.bias)


class TunedEnsembleMLP(MLP):
    """An ensemble `MLP` that runs its members one by one where a member's largest layer has more
    than STACKED_MAX_MACS multiply-adds: each big product then takes the fastest kernel for its
    shape and nothing is copied into a stack. Below that, the per-member calls cost more than the
    products themselves, and the stacked form runs."""

    STACKED_MAX_MACS = 1 << 25

    def forward(self, x):
        widest = max(m.weight.shape[1] * m.weight.shape[2] for m in self.net if isinstance(m, EnsembleLinear))
        rows = x.numel() // x.shape[-1] // (1 if x.dim() == 2 else self.ensemble)
        if rows * widest <= self.STACKED_MAX_MACS or torch.compiler.is_compiling() or x.device.type != "cpu":
            return super().forward(x)
        xs = [x] * self.ensemble if x.dim() == 2 else list(x.unbind(0))
        for layer in self.net:
            if isinstance(layer, EnsembleLinear):
                if layer.full_precision and torch.is_autocast_enabled(x.device.type):
                    with torch.autocast(x.device.type, enabled=False):
                        xs = onednn.ensemble_members([h.float() for h in xs], layer.weight, layer.bias)
                else:
                    xs = onednn.ensemble_members(xs, layer.weight, layer.bias)
            elif isinstance(layer, EnsembleLayerNorm):
                xs = [torch.nn.functional.layer_norm(h, h.shape[-1:], layer.weight[e], layer.bias[e], layer.eps)
                      for e, h in enumerate(xs)]
            else:
                xs = [layer(h) for h in xs]
        return torch.stack(xs)


def apply(method, kernels, pieces=PIECES):
    """Switch `method`'s modules to `kernels` ('torch' or 'tuned') in place; returns the names of
    the tuned pieces in use (empty for 'torch', or where none applies, as on GPUs). `pieces`
    limits 'tuned' to some of PIECES (to measure what each is worth)."""
    if kernels not in KERNELS:
        raise UserError(f"--kernels must be one of {', '.join(KERNELS)}, got '{kernels}'")
    if unknown := set(pieces) - set(PIECES):
        raise UserError(f"unknown kernel pieces {sorted(unknown)}: choose from {', '.join(PIECES)}")
    plain = {TunedLinear: Linear, TunedEnsembleMLP: MLP}
    tuned = {Linear: TunedLinear}
    on_cpu = all(p.device.type == "cpu" for p in method.parameters())
    used = set()
    for module in method.modules():
        cls = type(module)
        if kernels == "torch" or not on_cpu:
            module.__class__ = plain.get(cls, cls)
        elif cls in tuned and "onednn" in pieces and onednn.available():
            module.__class__ = tuned[cls]
            used.add("onednn")
        elif cls is MLP and module.ensemble and "ensembles" in pieces:
            module.__class__ = TunedEnsembleMLP
            used.add("ensembles")
    return sorted(used)
