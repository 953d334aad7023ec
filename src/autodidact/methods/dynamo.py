"""DynaMo: an encoder trained jointly with a latent inverse and a latent forward dynamics model
over short windows of observations, without actions.

Cui et al. 2024, "DynaMo: In-Domain Dynamics Pretraining for Visuo-Motor Control" (reference:
jeffacce/dynamo_ssl, its DynaMoSSL). For a window o_1 .. o_T with embeddings z_t = f(o_t):
- an inverse model, a transformer over the whole window, emits a small latent action u_t per step;
- a forward model, a causal transformer, reads [z_t, u_t+1] at each step t < T and predicts z_t+1;
- the prediction is compared by cosine with z_t+1 under stop-gradient (SimSiam's target, the
  reference's default: no EMA network), and the embeddings' off-diagonal covariance is penalized so
  they cannot collapse:

    L = 1 - mean_t cos(F(z_<=t, u_<=t+1)_t, sg(z_t+1)) + 0.04 * mean_{i != j} Cov(z)_ij^2.

The bottleneck of u makes the forward model need z_t to carry the state: the inverse model cannot
smuggle o_t+1 through a 32-dim latent. Defaults as the reference's DynaMoSSL and a published
configuration of it: covariance coefficient 0.04, transformers of 6 layers, 6 heads and 120 units,
latent actions of 32 dims, windows of 4 observations, Adam 1e-4. Departures: one view (the
reference handles several cameras), a pre-LayerNorm torch transformer with learned positions.
"""

from dataclasses import dataclass

import torch
from torch import nn

from autodidact.core.config import check, opt
from autodidact.methods.objective import EncoderObjective, ObjectiveConfig, cosine_loss, off_diagonal


@dataclass
class DynaMoConfig(ObjectiveConfig):
    lr: float = opt(1e-4, "Adam learning rate (DynaMo: 1e-4)")
    window_size: int = opt(4, "observations per window (T)")
    latent_action_dim: int = opt(32, "width of the inverse model's latent action u_t")
    n_layer: int = opt(6, "transformer layers of each dynamics model")
    n_head: int = opt(6, "attention heads")
    n_embd: int = opt(120, "transformer width")
    covariance_weight: float = opt(0.04, "weight of the embeddings' off-diagonal covariance penalty (DynaMo: 0.04)")

    def __post_init__(self):
        super().__post_init__()
        check(self.window_size >= 2, "window_size", f"must be >= 2, got {self.window_size}")
        check(self.latent_action_dim >= 1, "latent_action_dim", f"must be >= 1, got {self.latent_action_dim}")
        check(self.n_layer >= 1 and self.n_head >= 1, "n_layer", "n_layer and n_head must be >= 1")
        check(self.n_embd % self.n_head == 0, "n_embd", f"must be a multiple of n_head ({self.n_head}), got {self.n_embd}")
        check(self.covariance_weight >= 0, "covariance_weight", f"must be >= 0, got {self.covariance_weight}")


class WindowTransformer(nn.Module):
    """[B, T, in] -> [B, T, out]: a linear embedding plus learned positions, pre-LayerNorm
    transformer layers (causal or not), a final LayerNorm and a linear output."""

    def __init__(self, in_dim, out_dim, length, n_layer, n_head, n_embd, causal):
        super().__init__()
        self.inp = nn.Linear(in_dim, n_embd)
        self.pos = nn.Parameter(torch.zeros(1, length, n_embd))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(n_embd, n_head, 4 * n_embd, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.norm, self.out = nn.LayerNorm(n_embd), nn.Linear(n_embd, out_dim)
        self.causal = causal

    def forward(self, x):
        t = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=x.device) if self.causal else None
        h = self.blocks(self.inp(x) + self.pos[:, :t], mask=mask, is_causal=self.causal)
        return self.out(self.norm(h))


class DynaMo(EncoderObjective):
    name = "dynamo"
    summary = "latent inverse + forward dynamics over windows with a covariance regularizer"
    paper = "Cui et al. 2024 (DynaMo)"
    reference = "jeffacce/dynamo_ssl"
    Config = DynaMoConfig
    data = "windows"

    def __init__(self, cfg: DynaMoConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.window = cfg.window_size - 1  # the sampler's window plus the observation after it
        d, T = self.embed_dim, cfg.window_size
        self.inverse = WindowTransformer(d, cfg.latent_action_dim, T, cfg.n_layer, cfg.n_head, cfg.n_embd, causal=False)
        self.forward_model = WindowTransformer(d + cfg.latent_action_dim, d, T - 1, cfg.n_layer, cfg.n_head,
                                               cfg.n_embd, causal=True)
        self.optimizer = self.make_optimizer(self.parameters())

    def loss(self, batch):
        z = self.window_embeddings(batch)                                   # [B, T, d]
        u = self.inverse(z)                                                 # [B, T, u]
        predicted = self.forward_model(torch.cat([z[:, :-1], u[:, 1:]], -1))  # z_2 .. z_T
        dynamics = cosine_loss(predicted, z[:, 1:].detach())
        flat = z.reshape(-1, z.shape[-1])
        covariance = off_diagonal(torch.cov(flat.T)).pow(2).mean()
        loss = dynamics + self.cfg.covariance_weight * covariance
        return loss, {"dynamo/loss": loss.detach(), "dynamo/dynamics": dynamics.detach(),
                      "dynamo/covariance": covariance.detach(), **self.encoder_info(z[:, 0])}
