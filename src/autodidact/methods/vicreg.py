"""VICReg: an encoder whose two views' embeddings are close (invariance), keep a unit standard
deviation in every dimension (variance) and decorrelate across dimensions (covariance).

Bardes, Ponce and LeCun 2022. With projections p1, p2 of the two views ([B, D]):

    L = lambda * MSE(p1, p2) + mu * (v(p1) + v(p2)) + nu * (c(p1) + c(p2)),
    v(p) = mean_j max(0, 1 - sqrt(Var(p_j) + 1e-4)),   c(p) = sum_{i != j} Cov(p)_ij^2 / D,

with the paper's lambda = mu = 25, nu = 1. Views as Barlow Twins here: (o_t, o_t+k), k ~
Geometric(1 - view_discount), plus the sampler's random shift on frames. Departures: a projector
of 2x1024 -> 1024 with LayerNorm (the paper: 8192-wide with BatchNorm); temporal views.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autodidact.core.config import check, opt
from autodidact.methods.objective import EncoderObjective, ViewsConfig, off_diagonal


@dataclass
class VICRegConfig(ViewsConfig):
    projection_dims: tuple[int, ...] = opt((1024, 1024), "hidden widths of the projector")
    projection_dim: int = opt(1024, "output width of the projector")
    invariance_weight: float = opt(25.0, "lambda: weight of the views' mean squared distance (VICReg: 25)")
    variance_weight: float = opt(25.0, "mu: weight of the per-dimension std hinge (VICReg: 25)")
    covariance_weight: float = opt(1.0, "nu: weight of the off-diagonal covariance (VICReg: 1)")

    def __post_init__(self):
        super().__post_init__()
        for k in ("invariance_weight", "variance_weight", "covariance_weight"):
            check(getattr(self, k) >= 0, k, f"must be >= 0, got {getattr(self, k)}")


def variance_hinge(p):
    return F.relu(1.0 - torch.sqrt(p.var(0) + 1e-4)).mean()


def covariance_penalty(p):
    p = p - p.mean(0)
    cov = p.T @ p / (len(p) - 1)
    return off_diagonal(cov).pow(2).sum() / p.shape[1]


class VICReg(EncoderObjective):
    name = "vicreg"
    summary = "VICReg on temporal views: invariance, variance and covariance terms on the projections"
    paper = "Bardes et al. 2022 (VICReg)"
    Config = VICRegConfig

    def __init__(self, cfg: VICRegConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.projector = self.head(self.embed_dim, cfg.projection_dims, cfg.projection_dim)
        self.optimizer = self.make_optimizer(self.parameters())

    def loss(self, batch):
        cfg = self.cfg
        z1, z2 = self.embed(batch["observations"]), self.embed(batch["actor_goals"])
        p1, p2 = self.projector(z1), self.projector(z2)
        invariance = F.mse_loss(p1, p2)
        variance = variance_hinge(p1) + variance_hinge(p2)
        covariance = covariance_penalty(p1) + covariance_penalty(p2)
        loss = cfg.invariance_weight * invariance + cfg.variance_weight * variance + cfg.covariance_weight * covariance
        return loss, {"vicreg/loss": loss.detach(), "vicreg/invariance": invariance.detach(),
                      "vicreg/variance": variance.detach(), "vicreg/covariance": covariance.detach(),
                      **self.encoder_info(z1)}
