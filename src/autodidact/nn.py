"""Network building blocks shared by every method (each exists once, here).

Initialisation and layer order follow OGBench's reference networks so published hyperparameters
transfer: Xavier-uniform weights ("variance_scaling(1, fan_avg, uniform)"), zero biases, GELU,
LayerNorm *after* the activation when enabled, and a final layer scaled by 1e-2 for actor means.

One deliberate departure: GELU is the exact (erf) form, where flax's default is the tanh
approximation. The two differ by at most 5e-4 anywhere, but on CPU torch's tanh form costs ~4x
the erf form (1.17 vs 0.30 ms forward and 1.03 vs 0.53 ms backward per 1024x512 block, one
thread), 5-10% of a whole GCBC/GCIVL update. docs/BENCHMARKS.md compares learning with the
reference side by side.

Mixed precision: under `torch.autocast(..., dtype=torch.bfloat16)` (`--precision bf16`) the hidden
layers run in bfloat16, but every output layer (values, logits, action means) runs in float32: a
bfloat16 value of -50 is only resolved to 0.25, which would swamp TD errors and advantages.
"""

import math

import torch
from torch import nn


def _xavier_(weight, scale=1.0, fan_in=None, fan_out=None):
    fan_in = fan_in or weight.shape[-1]
    fan_out = fan_out or weight.shape[-2]
    bound = math.sqrt(3.0 * scale / ((fan_in + fan_out) / 2.0))
    with torch.no_grad():
        weight.uniform_(-bound, bound)
    return weight


def _autocasting(x):
    return torch.is_autocast_enabled(x.device.type)


class Linear(nn.Linear):
    """Dense layer with the reference's init; `full_precision` keeps it in float32 under autocast
    (output layers, see the module note)."""

    def __init__(self, in_dim, out_dim, init_scale=1.0, full_precision=False):
        super().__init__(in_dim, out_dim)
        _xavier_(self.weight, init_scale)
        nn.init.zeros_(self.bias)
        self.full_precision = full_precision

    def forward(self, x):
        if self.full_precision and _autocasting(x):
            with torch.autocast(x.device.type, enabled=False):
                return super().forward(x.float())
        return super().forward(x)


class EnsembleLinear(nn.Module):
    """`ensemble` independent linear layers evaluated as one batched matmul: [E, B, in] -> [E, B, out]."""

    def __init__(self, ensemble, in_dim, out_dim, init_scale=1.0, full_precision=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, out_dim))
        for w in self.weight:
            _xavier_(w, init_scale, fan_in=in_dim, fan_out=out_dim)
        self.full_precision = full_precision

    def forward(self, x):
        if self.full_precision and _autocasting(x):
            with torch.autocast(x.device.type, enabled=False):
                return torch.baddbmm(self.bias, x.float(), self.weight)
        return torch.baddbmm(self.bias, x, self.weight)


class MLP(nn.Module):
    """Dense -> GELU -> (LayerNorm) per hidden layer; `ensemble` > 0 stacks that many copies that
    run as batched matmuls (value ensembles, twin critics) and adds a leading ensemble axis."""

    def __init__(self, in_dim, hidden_dims, out_dim=None, layer_norm=False, activate_final=False,
                 ensemble=0, final_init_scale=1.0):
        super().__init__()
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
                layers.append(nn.GELU())  # exact form: see the module note
                if layer_norm:
                    layers.append(nn.LayerNorm(dims[i + 1], eps=1e-6))  # flax default eps
        self.net = nn.Sequential(*layers)
        self.out_dim = dims[-1]

    def forward(self, x):
        if self.ensemble:
            x = x.unsqueeze(0).expand(self.ensemble, *x.shape) if x.dim() == 2 else x
        return self.net(x)


class GaussianActor(nn.Module):
    """Diagonal Gaussian policy head over an MLP trunk, as OGBench's GCActor.

    `const_std=True` fixes the std at 1 (the reference's default for GCBC and AWR actors): the
    log-likelihood then reduces to a scaled squared error on the mean.
    """

    def __init__(self, in_dim, action_dim, hidden_dims, layer_norm=False, const_std=True,
                 state_dependent_std=False, log_std_min=-5.0, log_std_max=2.0, tanh_squash=False):
        super().__init__()
        self.trunk = MLP(in_dim, hidden_dims, layer_norm=layer_norm, activate_final=True)
        self.mean = Linear(self.trunk.out_dim, action_dim, init_scale=1e-2, full_precision=True)
        self.const_std, self.state_dependent_std = const_std, state_dependent_std
        self.log_std_min, self.log_std_max, self.tanh_squash = log_std_min, log_std_max, tanh_squash
        if state_dependent_std:
            self.log_std = Linear(self.trunk.out_dim, action_dim, init_scale=1e-2, full_precision=True)
        elif not const_std:
            self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, x):
        """Return (mean, log_std) of the pre-squash Gaussian."""
        h = self.trunk(x)
        mean = self.mean(h)
        if self.state_dependent_std:
            log_std = self.log_std(h)
        elif self.const_std:
            log_std = torch.zeros_like(mean)
        else:
            log_std = self.log_std.expand_as(mean)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def log_prob(self, x, actions):
        mean, log_std = self(x)
        return gaussian_log_prob(mean, log_std, actions)

    def mode(self, x):
        mean, _ = self(x)
        return torch.tanh(mean) if self.tanh_squash else mean

    def sample(self, x, temperature=1.0, generator=None):
        mean, log_std = self(x)
        if temperature == 0:
            a = mean
        else:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            a = mean + noise * log_std.exp() * temperature
        return torch.tanh(a) if self.tanh_squash else a


_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(mean, log_std, x):
    """Sum over action dims of the diagonal-Gaussian log-density."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)


def expectile_loss(diff, expectile):
    """IQL's asymmetric L2: |tau - 1(diff < 0)| * diff^2."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff.pow(2)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, tau: float):
    """Polyak averaging target <- tau * source + (1 - tau) * target, fused over all tensors."""
    t = list(target.parameters())
    s = list(source.parameters())
    torch._foreach_lerp_(t, s, tau)


class GCValue(nn.Module):
    """Goal-conditioned value V(s, g) or critic Q(s, g, a) as OGBench's GCValue: an MLP on the
    concatenated inputs with LayerNorm, `ensemble` copies (2 in the reference) fused as batched
    matmuls. Returns [ensemble, B] (or [B] with ensemble=0)."""

    def __init__(self, in_dim, hidden_dims, layer_norm=True, ensemble=2):
        super().__init__()
        self.net = MLP(in_dim, hidden_dims, out_dim=1, layer_norm=layer_norm, ensemble=ensemble)

    def forward(self, *inputs):
        return self.net(torch.cat(inputs, dim=-1)).squeeze(-1)


def awr_weights(advantage, temperature, max_weight=100.0):
    """Advantage-weighted regression weights exp(A * temperature), clipped as the reference does."""
    return torch.clamp(torch.exp(advantage * temperature), max=max_weight)
