"""Network building blocks shared by every method (each exists once, here).

Initialisation and layer order follow OGBench's reference networks so published hyperparameters
transfer: Xavier-uniform weights ("variance_scaling(1, fan_avg, uniform)"), zero biases, GELU,
LayerNorm *after* the activation when enabled, and a final layer scaled by 1e-2 for actor means.

One deliberate departure: GELU is the exact (erf) form, where flax's default is the tanh
approximation. The two differ by at most 5e-4 anywhere, but on CPU torch's tanh form costs ~4x
the erf form (1.17 vs 0.30 ms forward and 1.03 vs 0.53 ms backward per 1024x512 block, one
thread), 5-10% of a whole GCBC/GCIVL update. docs/BENCHMARKS.md compares learning with the
reference side by side. On CPU the GELU is autodidact.native's compiled kernel where it can be
built, and plain GELU networks run as one autograd function (fused.py).

Mixed precision: under `torch.autocast(..., dtype=torch.bfloat16)` (`--precision bf16`) the hidden
layers run in bfloat16, but every output layer (values, logits, action means) runs in float32: a
bfloat16 value of -50 is only resolved to 0.25, which would swamp TD errors and advantages.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from autodidact.compiling import eager
from autodidact import fused
from autodidact.cpu_matmul import ensemble_members, linear
from autodidact.native import GELU


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
                return linear(x.float(), self.weight, self.bias)
        return linear(x, self.weight, self.bias)


class EnsembleLinear(nn.Module):
    """`ensemble` independent linear layers, applied member by member to a list of inputs (one per
    member) and returning one output per member; weight [E, in, out], bias [E, 1, out]."""

    def __init__(self, ensemble, in_dim, out_dim, init_scale=1.0, full_precision=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, out_dim))
        for w in self.weight:
            _xavier_(w, init_scale, fan_in=in_dim, fan_out=out_dim)
        self.full_precision = full_precision

    def forward(self, xs):
        if self.full_precision and _autocasting(xs[0]):
            with torch.autocast(xs[0].device.type, enabled=False):
                return ensemble_members([x.float() for x in xs], self.weight, self.bias)
        return ensemble_members(xs, self.weight, self.bias)

    def stacked(self, h):
        """All members at once: h [E, N, in] -> [E, N, out], one batched matmul (see MLP)."""
        if self.full_precision and _autocasting(h):
            with torch.autocast(h.device.type, enabled=False):
                return torch.baddbmm(self.bias, h.float(), self.weight)
        return torch.baddbmm(self.bias, h, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with its own scale and offset per ensemble member, as in the reference, whose
    ensembles are whole networks vmapped over their parameters. Applied member by member."""

    def __init__(self, ensemble, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, dim))
        self.eps = eps

    def forward(self, xs):
        return [F.layer_norm(x, x.shape[-1:], self.weight[e], self.bias[e], self.eps) for e, x in enumerate(xs)]

    def stacked(self, h):
        """All members at once: h [E, N, dim] (see MLP)."""
        h = F.layer_norm(h, h.shape[-1:], None, None, self.eps)
        return torch.addcmul(self.bias.unsqueeze(1).to(h.dtype), h, self.weight.unsqueeze(1).to(h.dtype))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Runs saved before 2026-11-22 shared one LayerNorm between the members: give each member
        # a copy (the network computes exactly what it computed when it was saved).
        for name in ("weight", "bias"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape == getattr(self, name).shape[1:]:
                state_dict[prefix + name] = saved.expand_as(getattr(self, name)).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# Hidden activations. GELU is what OGBench's networks use; ReLU is jaxrl_m's default, which the
# HILP code's policy network keeps.
ACTIVATIONS = {"gelu": GELU, "relu": nn.ReLU}  # GELU: torch's, or autodidact.native's kernel


class MLP(nn.Module):
    """Dense -> activation (GELU by default) -> (LayerNorm) per hidden layer; `ensemble` > 0 makes
    that many independent copies (value ensembles, twin critics), with a leading ensemble axis on
    the output.

    An ensemble runs in one of two ways, chosen per call by the size of its largest matmul:
    - member by member (lists of per-member tensors, `cpu_matmul.ensemble_members`) when a member's
      largest layer has more than STACKED_MAX_MACS multiply-adds: each big product then takes the
      fastest kernel for its shape (oneDNN on CPU) and nothing is copied into a stack;
    - stacked ([E, N, *] tensors: one batched matmul, activation and LayerNorm per layer for all
      members) below that, where the per-member calls cost more than the products themselves.
      A 3x256 two-member value network with LayerNorm, forward and backward, at 256 rows: 1.08x
      faster stacked on one thread, 1.21x on two; at 8 rows 2.6x. At the published size (1024
      rows, 3x512) member by member is 5-9% faster (`scripts/bench_ensemble.py`, docs/BENCHMARKS.md).
    """

    STACKED_MAX_MACS = 1 << 25

    def __init__(self, in_dim, hidden_dims, out_dim=None, layer_norm=False, activate_final=False,
                 ensemble=0, final_init_scale=1.0, activation="gelu"):
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
                layers.append(ACTIVATIONS[activation]())  # GELU: exact form, see the module note
                if layer_norm:  # eps: flax's default
                    layers.append(EnsembleLayerNorm(ensemble, dims[i + 1], eps=1e-6) if ensemble
                                  else nn.LayerNorm(dims[i + 1], eps=1e-6))
        self.net = nn.Sequential(*layers)
        self.out_dim = dims[-1]
        self.activate_final = activate_final
        self.fusable = not ensemble and not layer_norm and activation == "gelu"  # fused.py
        self._widest = max(a * b for a, b in zip(dims[:-1], dims[1:]))  # a member's largest layer, MACs per row

    def forward(self, x):
        if not self.ensemble:
            return fused.gelu_mlp(self, x) if fused.eligible(self, x) else self.net(x)
        # [B, in] is every member's input; [E, B, in] holds one per member. Output: [E, B, out].
        if x.dim() != 2 and x.shape[0] != self.ensemble:
            raise ValueError(f"an ensemble of {self.ensemble} takes [B, in] or [{self.ensemble}, B, in], "
                             f"got {tuple(x.shape)}")
        rows = x.numel() // x.shape[-1] // (1 if x.dim() == 2 else self.ensemble)
        if rows * self._widest <= self.STACKED_MAX_MACS and not torch.compiler.is_compiling():
            h = x.expand(self.ensemble, *x.shape) if x.dim() == 2 else x
            lead = h.shape[1:-1]
            h = h.reshape(self.ensemble, -1, h.shape[-1])
            for layer in self.net:
                h = layer.stacked(h) if isinstance(layer, (EnsembleLinear, EnsembleLayerNorm)) else layer(h)
            return h.reshape(self.ensemble, *lead, h.shape[-1])
        xs = [x] * self.ensemble if x.dim() == 2 else list(x.unbind(0))
        for layer in self.net:
            xs = layer(xs) if isinstance(layer, (EnsembleLinear, EnsembleLayerNorm)) else [layer(h) for h in xs]
        return torch.stack(xs)


class GaussianActor(nn.Module):
    """Diagonal Gaussian policy head over an MLP trunk, as OGBench's GCActor.

    `const_std=True` fixes the std at 1 (the reference's default for GCBC and AWR actors): the
    log-likelihood then reduces to a scaled squared error on the mean.
    """

    fuse_head = True  # the mean layer inside the trunk's fused function (fused.py); off only to measure

    def __init__(self, in_dim, action_dim, hidden_dims, layer_norm=False, const_std=True,
                 state_dependent_std=False, log_std_min=-5.0, log_std_max=2.0, tanh_squash=False,
                 activation="gelu"):
        super().__init__()
        self.trunk = MLP(in_dim, hidden_dims, layer_norm=layer_norm, activate_final=True, activation=activation)
        self.mean = Linear(self.trunk.out_dim, action_dim, init_scale=1e-2, full_precision=True)
        self.const_std, self.state_dependent_std = const_std, state_dependent_std
        self.log_std_min, self.log_std_max, self.tanh_squash = log_std_min, log_std_max, tanh_squash
        if state_dependent_std:
            self.log_std = Linear(self.trunk.out_dim, action_dim, init_scale=1e-2, full_precision=True)
        elif not const_std:
            self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, x):
        """Return (mean, log_std) of the pre-squash Gaussian."""
        if self.fuse_head and not self.state_dependent_std and fused.eligible(self.trunk, x):
            mean = fused.gelu_mlp(self.trunk, x, head=self.mean)  # trunk and mean as one function
        else:
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


def adam(params, lr, cls=torch.optim.Adam, **kwargs):
    """Adam (or `cls`, e.g. AdamW) as every method uses it: torch's fused implementation, one
    kernel over all parameters. torch picks it by default on no device; its default on CPU is the
    per-tensor loop and on CUDA the multi-tensor ("foreach") form. The arithmetic is the same; on
    the GCBC update at the published size a step takes 0.2 ms fused against 1.7 ms foreach and 2.4
    ms looped (docs/BENCHMARKS.md). Falls back to "foreach" where a device has no fused kernel."""
    params = list(params)
    try:
        return cls(params, lr=lr, fused=True, **kwargs)
    except RuntimeError:
        return cls(params, lr=lr, foreach=True, **kwargs)


def expectile_loss(diff, expectile):
    """IQL's asymmetric L2: |tau - 1(diff < 0)| * diff^2."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff.pow(2)


@torch.no_grad()
@eager  # stays uncompiled inside a compiled update
def ema_update(target: nn.Module, source: nn.Module, tau: float):
    """Polyak averaging target <- tau * source + (1 - tau) * target, fused over all tensors."""
    t = list(target.parameters())
    s = list(source.parameters())
    torch._foreach_lerp_(t, s, tau)


class GCValue(nn.Module):
    """Goal-conditioned value V(s, g) or critic Q(s, g, a) as OGBench's GCValue: an MLP on the
    concatenated inputs with LayerNorm, `ensemble` independent copies (2 in the reference).
    Returns [ensemble, B] (or [B] with ensemble=0)."""

    def __init__(self, in_dim, hidden_dims, layer_norm=True, ensemble=2):
        super().__init__()
        self.net = MLP(in_dim, hidden_dims, out_dim=1, layer_norm=layer_norm, ensemble=ensemble)

    def forward(self, *inputs):
        return self.net(torch.cat(inputs, dim=-1)).squeeze(-1)


def awr_weights(advantage, temperature, max_weight=100.0):
    """Advantage-weighted regression weights exp(A * temperature), clipped as the reference does."""
    return torch.clamp(torch.exp(advantage * temperature), max=max_weight)


class LogisticMixtureActor(nn.Module):
    """Discretized mixture of logistics over an MLP trunk: Play-LMP's action head (Lynch et al.,
    2019), after PixelCNN++ (Salimans et al., 2017).

    Each action dimension has its own mixture of `num_mixtures` logistics whose mass is integrated
    over `num_bins` equal bins of [-1, 1], with the two edge bins taking the tails (so saturated
    actions, common in play, get real mass). A Gaussian head regresses play's several ways of doing
    one thing to their average, which is often no way at all; a mixture keeps each mode.
    Dimensions are independent given the input (no PixelCNN++-style coupling between channels):
    what they share comes through the decoder's conditioning (for Play-LMP, the latent plan).
    """

    def __init__(self, in_dim, action_dim, hidden_dims, num_mixtures=10, num_bins=256, layer_norm=False,
                 log_scale_min=-7.0):
        super().__init__()
        self.trunk = MLP(in_dim, hidden_dims, layer_norm=layer_norm, activate_final=True)
        self.action_dim, self.num_mixtures, self.num_bins = action_dim, num_mixtures, num_bins
        self.log_scale_min = log_scale_min
        k = num_mixtures
        self.logits = Linear(self.trunk.out_dim, action_dim * k, init_scale=1e-2)
        self.means = Linear(self.trunk.out_dim, action_dim * k, init_scale=1e-2)
        self.log_scales = Linear(self.trunk.out_dim, action_dim * k, init_scale=1e-2)
        # Start the components tiled over [-1, 1] (means spread evenly, each about as wide as the
        # gap): from the default near-zero init all components would sit at 0 and receive almost
        # the same gradient, and they separate only slowly.
        with torch.no_grad():
            self.means.bias.copy_(torch.linspace(-1.0, 1.0, k + 2)[1:-1].repeat(action_dim))
            self.log_scales.bias.fill_(math.log(1.0 / (k + 1)))

    def forward(self, x):
        """(logits, means, log_scales), each [..., action_dim, num_mixtures]."""
        h = self.trunk(x)
        shape = (*h.shape[:-1], self.action_dim, self.num_mixtures)
        log_scales = self.log_scales(h).view(shape).clamp(min=self.log_scale_min)
        return self.logits(h).view(shape), self.means(h).view(shape), log_scales

    def log_prob(self, x, actions):
        return logistic_mixture_log_prob(*self(x), actions, self.num_bins)

    def mode(self, x):
        """Per dimension, the bin of highest mass (edge bins with their tails): the deterministic
        action. Not the mean of the likeliest component: a component may sit outside [-1, 1] to
        put its mass on a saturated action, and overlapping components can share one peak."""
        logits, means, log_scales = self(x)
        nb = self.num_bins
        centres = torch.linspace(-1.0, 1.0, nb, device=means.device, dtype=means.dtype)
        # Each bin's mass is a difference of the CDF at its two edges (interior edges only: the
        # outer ones are -inf and +inf): one sigmoid per edge instead of the log-space likelihood.
        edges = (centres[:-1] + 1.0 / (nb - 1)).view(-1, *([1] * means.dim()))        # [bins - 1, 1, ..., 1]
        cdf = torch.sigmoid((edges - means) * torch.exp(-log_scales))                    # [bins - 1, ..., A, K]
        cdf = torch.cat([torch.zeros_like(cdf[:1]), cdf, torch.ones_like(cdf[:1])])
        mass = ((cdf[1:] - cdf[:-1]) * logits.softmax(-1)).sum(-1)                      # [bins, ..., A]
        return centres[mass.argmax(0)]

    def sample(self, x, temperature=1.0, generator=None):
        """temperature 0: the mode; otherwise a component per dimension drawn from the mixture
        weights, then a logistic draw from it with its scale multiplied by `temperature`, clipped
        to [-1, 1] (where the edge bins' tails land)."""
        if temperature == 0:
            return self.mode(x)
        logits, means, log_scales = self(x)
        flat = logits.softmax(-1).reshape(-1, self.num_mixtures)
        k = torch.multinomial(flat, 1, generator=generator).view(*logits.shape[:-1], 1)
        mu, log_s = means.gather(-1, k).squeeze(-1), log_scales.gather(-1, k).squeeze(-1)
        u = torch.rand(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype).clamp(1e-5, 1.0 - 1e-5)
        return (mu + temperature * log_s.exp() * (torch.log(u) - torch.log1p(-u))).clamp(-1.0, 1.0)


def logistic_mixture_log_prob(logits, means, log_scales, actions, num_bins=256):
    """log P(actions) under per-dimension discretized logistic mixtures, summed over action dims.

    `logits`, `means`, `log_scales`: [..., A, K]; `actions`: [..., A] in [-1, 1]. The mass of the
    bin of half-width 1 / (num_bins - 1) around each action, the lowest and highest bins extended
    to -inf and +inf (PixelCNN++'s `discretized_mix_logistic_loss`, one channel per dimension).
    This is a log-*mass*: add A * log((num_bins - 1) / 2) to compare it with a density on [-1, 1].
    """
    return _logistic_mixture_log_mass(logits, means, log_scales, actions, num_bins).sum(-1)


def _logistic_mixture_log_mass(logits, means, log_scales, actions, num_bins):
    """Per-dimension log-mass [..., A] of `actions` (broadcast against the parameters' [..., A])."""
    x = actions.clamp(-1.0, 1.0).unsqueeze(-1)
    half = 1.0 / (num_bins - 1)
    inv_s = torch.exp(-log_scales)
    centred = x - means
    plus_in, min_in, mid_in = inv_s * (centred + half), inv_s * (centred - half), inv_s * centred
    softplus = nn.functional.softplus
    log_cdf_plus = plus_in - softplus(plus_in)            # log sigmoid: the bottom bin takes (-inf, x]
    log_one_minus_cdf_min = -softplus(min_in)             # log(1 - sigmoid): the top bin takes [x, inf)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    # Where the bin's mass underflows (a very narrow component far away), fall back on the density
    # at the centre times the bin width, as PixelCNN++ does.
    log_pdf_mid = mid_in - log_scales - 2.0 * softplus(mid_in)
    log_mid = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)),
                          log_pdf_mid + math.log(2.0 * half))
    log_probs = torch.where(x < -1.0 + half, log_cdf_plus, torch.where(x > 1.0 - half, log_one_minus_cdf_min, log_mid))
    return torch.logsumexp(log_probs + logits.log_softmax(-1), dim=-1)
