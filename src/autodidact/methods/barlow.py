"""Barlow Twins: an encoder whose two views' embeddings agree dimension by dimension and
decorrelate across dimensions.

Zbontar et al. 2021. Both views pass through the encoder and a projector; each output dimension
is standardized over the batch, and the cross-correlation matrix C of the two views is pushed to
the identity:

    L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2,   lambda = 0.0051 (the paper's).

The views are (o_t, o_t+k), k ~ Geometric(1 - view_discount) inside the trajectory, plus the
sampler's random shift on frames: control data offer time where image datasets offer crops.
Departures: a projector of 2x1024 -> 1024 with LayerNorm (the paper: 8192-wide with BatchNorm);
temporal views instead of image augmentations.
"""

from dataclasses import dataclass

from autodidact.core.config import check, opt
from autodidact.methods.objective import EncoderObjective, ViewsConfig, off_diagonal


@dataclass
class BarlowConfig(ViewsConfig):
    projection_dims: tuple[int, ...] = opt((1024, 1024), "hidden widths of the projector")
    projection_dim: int = opt(1024, "output width of the projector: the size of the cross-correlation matrix")
    redundancy_weight: float = opt(0.0051, "lambda: weight of the off-diagonal terms (Barlow Twins: 0.0051)")

    def __post_init__(self):
        super().__post_init__()
        check(self.redundancy_weight >= 0, "redundancy_weight", f"must be >= 0, got {self.redundancy_weight}")


def standardized(x, eps=1e-5):
    return (x - x.mean(0)) / (x.std(0, unbiased=False) + eps)


class Barlow(EncoderObjective):
    name = "barlow"
    summary = "Barlow Twins on temporal views: cross-correlation of two views' projections pushed to the identity"
    paper = "Zbontar et al. 2021 (Barlow Twins)"
    Config = BarlowConfig

    def __init__(self, cfg: BarlowConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.projector = self.head(self.embed_dim, cfg.projection_dims, cfg.projection_dim)
        self.optimizer = self.make_optimizer(self.parameters())

    def loss(self, batch):
        z1, z2 = self.embed(batch["observations"]), self.embed(batch["actor_goals"])
        p1, p2 = standardized(self.projector(z1)), standardized(self.projector(z2))
        c = p1.T @ p2 / len(p1)
        on_diagonal = (1.0 - c.diagonal()).pow(2).sum()
        redundancy = off_diagonal(c).pow(2).sum()
        loss = on_diagonal + self.cfg.redundancy_weight * redundancy
        return loss, {"barlow/loss": loss.detach(), "barlow/on_diagonal": on_diagonal.detach(),
                      "barlow/redundancy": redundancy.detach(), **self.encoder_info(z1)}
