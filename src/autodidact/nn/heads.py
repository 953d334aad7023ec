"""Policy and value heads over an MLP trunk: Gaussian (OGBench's GCActor), discretized mixture
of logistics (Play-LMP), goal-conditioned value (OGBench's GCValue)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from autodidact.nn.layers import MLP, Linear
from autodidact.nn.losses import gaussian_log_prob


class GaussianActor(nn.Module):
    """Diagonal Gaussian policy head over an MLP trunk, as OGBench's GCActor.

    `const_std=True` fixes the std at 1 (the reference's default for GCBC and AWR actors): the
    log-likelihood then reduces to a scaled squared error on the mean.
    """

    def __init__(self, in_dim, action_dim, hidden_dims, layer_norm=False, const_std=True,
                 state_dependent_std=False, log_std_min=-5.0, log_std_max=2.0, tanh_squash=False,
                 activation="gelu", out_init_scale=1e-2):
        super().__init__()
        self.trunk = MLP(in_dim, hidden_dims, layer_norm=layer_norm, activate_final=True, activation=activation)
        self.mean = Linear(self.trunk.out_dim, action_dim, init_scale=out_init_scale, full_precision=True)
        self.const_std, self.state_dependent_std = const_std, state_dependent_std
        self.log_std_min, self.log_std_max, self.tanh_squash = log_std_min, log_std_max, tanh_squash
        if state_dependent_std:
            self.log_std = Linear(self.trunk.out_dim, action_dim, init_scale=out_init_scale, full_precision=True)
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

    def sample_with_log_prob(self, x, generator=None):
        """(tanh-squashed action, its log-density) by reparameterization: SAC's policy sample.
        The log-density includes the tanh Jacobian, log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))
        (the numerically stable form of tfp's Tanh bijector)."""
        mean, log_std = self(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + noise * log_std.exp()
        log_prob = gaussian_log_prob(mean, log_std, u)
        log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), log_prob



class GCValue(nn.Module):
    """Goal-conditioned value V(s, g) or critic Q(s, g, a) as OGBench's GCValue: an MLP with
    LayerNorm on [encoder(s, g); extra inputs (actions, a latent)], `ensemble` independent copies
    (2 in the reference) sharing the encoder. Returns [ensemble, B] (or [B] with ensemble=0)."""

    def __init__(self, encoder, hidden_dims, extra_dim=0, layer_norm=True, ensemble=2):
        super().__init__()
        self.encoder = encoder
        self.net = MLP(encoder.out_dim + extra_dim, hidden_dims, out_dim=1, layer_norm=layer_norm, ensemble=ensemble)

    def forward(self, observations, goals=None, *extra):
        x = self.encoder(observations, goals)
        return self.net(torch.cat([x, *extra], dim=-1) if extra else x).squeeze(-1)



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

