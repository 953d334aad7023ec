"""A non-causal inverse dynamics model: a_t from the observations around step t.

VPT (Baker et al., 2022) labels unlabeled video with a model that sees frames on both sides of the
action it predicts; "Semi-Supervised Offline RL with Action-Free Trajectories" (Zheng et al., 2023)
does the same with states and shows a few labeled trajectories suffice. Here the model reads
o_{t-K} .. o_{t+K+1} (K = `context`) stacked along the last axis: one flat vector for states, an
early-fusion stack of 2K + 2 frames along channels for the IMPALA encoder, the same way methods
stack [s; g]. Departures, for continuous control: actions are regressed with squared error (VPT
classifies discrete keys and mouse bins), and states and actions are standardized with
statistics of the data, stored as buffers so a saved model carries them.
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from autodidact.core.config import check, opt
from autodidact.nn.encoders import ENCODERS, is_image_shape, make_encoder
from autodidact.nn.layers import MLP


@dataclass
class InverseDynamicsConfig:
    context: int = opt(1, "observations on each side of the action: a_t from o_{t-K} .. o_{t+K+1}")
    hidden_dims: tuple[int, ...] = opt((512, 512, 512), "MLP hidden layer widths")
    layer_norm: bool = opt(True, "LayerNorm after each hidden activation")
    lr: float = opt(3e-4, "Adam learning rate")
    batch_size: int = opt(256, "labeled steps per gradient step")
    val_fraction: float = opt(0.1, "fraction of labeled episodes held out to measure the action error "
                              "(at least one when two or more are labeled)")
    encoder: Optional[str] = opt(None, "image encoder for frame observations: " + ", ".join(ENCODERS)
                                 + " (None: state vectors straight into the MLP)")

    def __post_init__(self):
        check(0 <= self.context <= 64, "context", f"must be in [0, 64], got {self.context}")
        check(len(self.hidden_dims) > 0 and all(d > 0 for d in self.hidden_dims), "hidden_dims",
              f"must be positive widths, got {self.hidden_dims}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(0.0 <= self.val_fraction < 1.0, "val_fraction", f"must be in [0, 1), got {self.val_fraction}")
        check(self.encoder is None or self.encoder in ENCODERS, "encoder",
              f"must be one of {', '.join(ENCODERS)} or None, got '{self.encoder}'")


class InverseDynamics(nn.Module):
    """observations [B, 2K + 2, *obs] around step t -> predicted a_t [B, action_dim]."""

    def __init__(self, cfg: InverseDynamicsConfig, obs_shape, action_dim):
        super().__init__()
        obs_shape = tuple(obs_shape)
        images = is_image_shape(obs_shape)
        check(images == (cfg.encoder is not None), "encoder",
              f"observations are frames {list(obs_shape)}: set encoder=impala_small" if images
              else f"observations are state vectors {list(obs_shape)}: leave encoder unset")
        self.cfg, self.window = cfg, 2 * cfg.context + 2
        self.encoder = make_encoder(cfg.encoder, obs_shape, self.window)
        self.mlp = MLP(self.encoder.out_dim, cfg.hidden_dims, action_dim, layer_norm=cfg.layer_norm)
        # Standardization (identity until `fit_statistics`): states per dimension, frames never
        # (the encoder scales them), actions per dimension.
        self.register_buffer("obs_mean", torch.zeros(obs_shape if not images else ()))
        self.register_buffer("obs_std", torch.ones(obs_shape if not images else ()))
        self.register_buffer("action_mean", torch.zeros(action_dim))
        self.register_buffer("action_std", torch.ones(action_dim))
        self.images = images

    def fit_statistics(self, observations, actions):
        """Standardize with these samples' mean and std (observations: states only)."""
        if not self.images:
            obs = torch.as_tensor(observations, dtype=torch.float32)
            self.obs_mean.copy_(obs.mean(0))
            self.obs_std.copy_(obs.std(0).clamp_min(1e-6))
        a = torch.as_tensor(actions, dtype=torch.float32)
        self.action_mean.copy_(a.mean(0))
        self.action_std.copy_(a.std(0).clamp_min(1e-6) if len(a) > 1 else torch.ones_like(self.action_std))

    def normalized(self, observations):
        """The model's output in standardized action units."""
        x = observations if self.images else (observations.float() - self.obs_mean) / self.obs_std
        return self.mlp(self.encoder(torch.cat(x.unbind(1), dim=-1)))

    def forward(self, observations):
        return self.normalized(observations) * self.action_std + self.action_mean

    def loss(self, batch):
        target = (batch["actions"] - self.action_mean) / self.action_std
        loss = ((self.normalized(batch["observations"]) - target) ** 2).mean()
        return loss, {"idm/loss": loss.detach()}
