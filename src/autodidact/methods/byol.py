"""BYOL-gamma: an encoder trained to predict, from o_t, a target network's embedding of a future
observation o_t+k, k drawn from the discounted state occupancy.

Grill et al. 2020 (BYOL), in the temporal form TD-JEPA (marbaga/td_jepa_public) compares against
as BYOL-gamma: an online encoder f, projection g and predictor q; a target f', g', the exponential
moving average of f and g; the second view is a future state of the same trajectory at an offset
k ~ Geometric(1 - view_discount), so the embedding learns what the future holds (view_discount 0
with `views.p_curgoal=1` gives plain BYOL's same-observation pairs, which on frames differ only by
the sampler's random shift, and on states not at all). Loss, per pair:

    L = 2 - 2 cos( q(g(f(o_t))), g'(f'(o_t+k)) ).

Defaults: momentum 0.99 (BYOL's base value 0.996 and its cosine schedule are for ImageNet-length
runs), discount 0.99, a 2-layer predictor. Departures: projections of 512 -> 256 units with
LayerNorm (BYOL: 4096 -> 256 with BatchNorm); the loss is not symmetrized (a temporal pair has a
direction).
"""

from dataclasses import dataclass

import torch

from autodidact.core.config import check, opt
from autodidact.methods.objective import EncoderObjective, ViewsConfig, cosine_loss


@dataclass
class BYOLConfig(ViewsConfig):
    view_discount: float = opt(0.99, "discount of the geometric offset k of the target view (BYOL-gamma's gamma)")
    projection_dims: tuple[int, ...] = opt((512,), "hidden widths of the projection g")
    projection_dim: int = opt(256, "output width of g and of the predictor q")
    predictor_dims: tuple[int, ...] = opt((512,), "hidden widths of the predictor q")
    target_momentum: float = opt(0.99, "EMA momentum of the target encoder and projection")

    def __post_init__(self):
        super().__post_init__()
        check(0.0 <= self.target_momentum < 1.0, "target_momentum", f"must be in [0, 1), got {self.target_momentum}")


class BYOL(EncoderObjective):
    name = "byol"
    summary = "predict an EMA target's embedding of a future observation (BYOL-gamma)"
    paper = "Grill et al. 2020 (BYOL); BYOL-gamma as in TD-JEPA"
    reference = "marbaga/td_jepa_public"
    Config = BYOLConfig

    def __init__(self, cfg: BYOLConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.projection = self.head(self.embed_dim, cfg.projection_dims, cfg.projection_dim)
        self.predictor = self.head(cfg.projection_dim, cfg.predictor_dims, cfg.projection_dim)
        self.build_targets()
        self.optimizer = self.make_optimizer(self.online_parameters())

    def loss(self, batch):
        z = self.embed(batch["observations"])
        with torch.no_grad():
            target = self.target_projection(self.target_encoder(batch["actor_goals"]))
        loss = 2.0 * cosine_loss(self.predictor(self.projection(z)), target)
        return loss, {"byol/loss": loss.detach(), **self.encoder_info(z)}
