"""SPR: an encoder trained to predict its own future embeddings K steps ahead, through a latent
transition model that reads the actions.

Schwarzer et al. 2021, "Data-Efficient Reinforcement Learning with Self-Predictive
Representations". From z_t = f(o_t), a transition model rolls the latent forward with the window's
actions, z^_t+k = h(z^_t+k-1, a_t+k-1); each prediction is projected and passed through a
predictor, and compared by cosine with the target network's projection of the real o_t+k:

    L = 1/K sum_k ( 1 - cos( q(g(z^_t+k)), g'(f'(o_t+k)) ) ),

f' and g' an exponential moving average of f and g (momentum `target_momentum`), never trained.
Defaults from the paper: K = 5 steps, a linear predictor q. Departures: continuous actions enter
the transition model as they are (the paper one-hot encodes Atari's discrete actions), h is a
residual MLP on the flat embedding rather than a convolution over the spatial latent, g an MLP
to 256 dims; the target momentum is 0.99 (the paper's value without augmentation; it uses 0, the
online weights, with augmentation); the loss stands alone (the paper adds it to an RL loss).
Needs actions.
"""

from dataclasses import dataclass

import torch
from torch import nn

from autodidact.core.config import check, opt
from autodidact.methods.objective import EncoderObjective, ObjectiveConfig, cosine_loss


@dataclass
class SPRConfig(ObjectiveConfig):
    prediction_steps: int = opt(5, "K: how many steps ahead the latent transition model predicts (SPR: 5)")
    transition_dims: tuple[int, ...] = opt((512, 512), "hidden widths of the transition model h(z, a)")
    projection_dims: tuple[int, ...] = opt((512,), "hidden widths of the projection g")
    projection_dim: int = opt(256, "output width of the projection g (and of the predictor q)")
    target_momentum: float = opt(0.99, "EMA momentum of the target encoder and projection (0: the online weights)")

    def __post_init__(self):
        super().__post_init__()
        check(self.prediction_steps >= 1, "prediction_steps", f"must be >= 1, got {self.prediction_steps}")
        check(0.0 <= self.target_momentum < 1.0, "target_momentum", f"must be in [0, 1), got {self.target_momentum}")


class SPR(EncoderObjective):
    name = "spr"
    summary = "predict future embeddings K steps ahead through a latent transition model, EMA target"
    paper = "Schwarzer et al. 2021 (SPR)"
    Config = SPRConfig
    data = "windows"
    needs_actions = True

    def __init__(self, cfg: SPRConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.window = cfg.prediction_steps
        d = self.embed_dim
        self.transition = self.head(d + action_dim, cfg.transition_dims, d)
        self.projection = self.head(d, cfg.projection_dims, cfg.projection_dim)
        self.predictor = nn.Linear(cfg.projection_dim, cfg.projection_dim)
        self.build_targets()
        self.optimizer = self.make_optimizer(self.online_parameters())

    def loss(self, batch):
        obs = torch.cat([batch["observations"], batch["goals"][:, None]], 1)   # o_t .. o_t+K
        actions = batch["actions"]                                              # a_t .. a_t+K-1
        z = z_t = self.embed(obs[:, 0])
        with torch.no_grad():
            lead = obs[:, 1:]
            flat = self.target_encoder(lead.reshape(-1, *self.obs_shape))
            target = self.target_projection(flat).reshape(*lead.shape[:2], -1)   # [B, K, p]
        losses = []
        for k in range(self.window):
            z = z + self.transition(torch.cat([z, actions[:, k].to(z.dtype)], -1))
            losses.append(cosine_loss(self.predictor(self.projection(z)), target[:, k]))
        loss = torch.stack(losses).mean()
        return loss, {"spr/loss": loss.detach(), "spr/loss_first_step": losses[0].detach(),
                      "spr/loss_last_step": losses[-1].detach(), **self.encoder_info(z_t)}
