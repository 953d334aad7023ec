"""Dense layers, ensembles and MLPs: plain `torch.nn` modules.

Initialisation and layer order follow OGBench's reference networks so published hyperparameters
transfer: Xavier-uniform weights ("variance_scaling(1, fan_avg, uniform)"), zero biases, GELU,
LayerNorm *after* the activation when enabled (eps 1e-6, flax's default).

One deliberate departure: GELU is the exact (erf) form, where flax's default is the tanh
approximation. The two differ by at most 5e-4 anywhere, and torch's tanh form is several times
slower on CPU.

Mixed precision: under `torch.autocast(..., dtype=torch.bfloat16)` (`--precision bf16`) the hidden
layers run in bfloat16, but every output layer (values, logits, action means) runs in float32: a
bfloat16 value of -50 is only resolved to 0.25, which would swamp TD errors and advantages.

Ensembles (value heads, twin critics) are one module with a leading member axis on every weight,
as the reference's networks vmapped over their parameters: each member has its own weights and
LayerNorm, and all members run as one batched matmul per layer.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def xavier_(weight, scale=1.0, fan_in=None, fan_out=None):
    fan_in = fan_in or weight.shape[-1]
    fan_out = fan_out or weight.shape[-2]
    bound = math.sqrt(3.0 * scale / ((fan_in + fan_out) / 2.0))
    with torch.no_grad():
        weight.uniform_(-bound, bound)
    return weight


def autocasting(x):
    return torch.is_autocast_enabled(x.device.type)


class Linear(nn.Linear):
    """Dense layer with the reference's init; `full_precision` keeps it in float32 under autocast
    (output layers, see the module note)."""

    def __init__(self, in_dim, out_dim, init_scale=1.0, full_precision=False):
        super().__init__(in_dim, out_dim)
        xavier_(self.weight, init_scale)
        nn.init.zeros_(self.bias)
        self.full_precision = full_precision

    def forward(self, x):
        if self.full_precision and autocasting(x):
            with torch.autocast(x.device.type, enabled=False):
                return F.linear(x.float(), self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


class EnsembleLinear(nn.Module):
    """`ensemble` independent dense layers on stacked inputs: h [E, N, in] -> [E, N, out], with
    weight [E, in, out] and bias [E, 1, out]."""

    def __init__(self, ensemble, in_dim, out_dim, init_scale=1.0, full_precision=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, out_dim))
        for w in self.weight:
            xavier_(w, init_scale, fan_in=in_dim, fan_out=out_dim)
        self.full_precision = full_precision

    def forward(self, h):
        if self.full_precision and autocasting(h):
            with torch.autocast(h.device.type, enabled=False):
                return torch.baddbmm(self.bias, h.float(), self.weight)
        return torch.baddbmm(self.bias, h, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with its own scale and offset per ensemble member: h [E, N, dim]."""

    def __init__(self, ensemble, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, dim))
        self.eps = eps

    def forward(self, h):
        h = F.layer_norm(h, h.shape[-1:], None, None, self.eps)
        return torch.addcmul(self.bias.unsqueeze(1).to(h.dtype), h, self.weight.unsqueeze(1).to(h.dtype))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Runs saved by autodidact before 0.1.0 shared one LayerNorm between the members: give each
        # member a copy, so the network computes what it computed when it was saved.
        for name in ("weight", "bias"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape == getattr(self, name).shape[1:]:
                state_dict[prefix + name] = saved.expand_as(getattr(self, name)).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# Hidden activations. GELU is what OGBench's networks use; ReLU is jaxrl_m's default, which the
# HILP code's policy network keeps.
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class MLP(nn.Module):
    """Dense -> activation -> (LayerNorm) per hidden layer, then an optional output layer (scaled
    at init by `final_init_scale`, float32 under autocast).

    `ensemble` > 0 makes that many independent copies (value ensembles, twin critics): the input
    is [B, in] (shared by every member) or [E, B, in] (one per member), the output [E, B, out].
    `norm_first` puts the LayerNorm before the activation, as RLPD's critics (jaxrl's MLP) do.
    """

    def __init__(self, in_dim, hidden_dims, out_dim=None, layer_norm=False, activate_final=False,
                 ensemble=0, final_init_scale=1.0, activation="gelu", norm_first=False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got '{activation}'")
        dims = [in_dim, *hidden_dims] + ([out_dim] if out_dim is not None else [])
        self.ensemble = ensemble
        layers = []
        for i in range(len(dims) - 1):
            last = i == len(dims) - 2
            output = last and out_dim is not None
            scale = final_init_scale if output else 1.0
            layers.append(EnsembleLinear(ensemble, dims[i], dims[i + 1], scale, full_precision=output) if ensemble
                          else Linear(dims[i], dims[i + 1], scale, full_precision=output))
            if not last or activate_final:
                norm = [EnsembleLayerNorm(ensemble, dims[i + 1], eps=1e-6) if ensemble
                        else nn.LayerNorm(dims[i + 1], eps=1e-6)] if layer_norm else []
                act = [ACTIVATIONS[activation]()]
                layers.extend(norm + act if norm_first else act + norm)
        self.net = nn.Sequential(*layers)
        self.out_dim = dims[-1]

    def forward(self, x):
        if not self.ensemble:
            return self.net(x)
        if x.dim() != 2 and x.shape[0] != self.ensemble:
            raise ValueError(f"an ensemble of {self.ensemble} takes [B, in] or [{self.ensemble}, B, in], "
                             f"got {tuple(x.shape)}")
        h = x.expand(self.ensemble, *x.shape) if x.dim() == 2 else x
        lead = h.shape[1:-1]
        h = self.net(h.reshape(self.ensemble, -1, h.shape[-1]))
        return h.reshape(self.ensemble, *lead, h.shape[-1])
