"""What every encoder-pretraining objective shares (`autodidact pretrain`).

An objective trains one observation encoder, f: o -> z, from a dataset's observations (and its
actions, for the objectives that read them), with whatever heads its loss needs. The encoder is
OGBench's IMPALA for frames (`encoder`, e.g. impala_small) and a `StateEncoder` (an MLP whose
every layer is GELU-activated and layer-normalized) of `state_encoder_dims` for state vectors.
After training, `autodidact pretrain` writes f alone to RUN/encoder.safetensors, which `train
--encoder RUN` starts a method's encoders from.

Every objective logs `encoder/rankme`, the effective rank of the batch's embeddings (RankMe,
Garrido et al. 2023), every `rankme_every` updates: a label-free health measure that falls towards
1 when the embeddings collapse. The update counter is part of the state, so a resumed run logs
the same values.

An objective is a `Method` without prompts: it trains, checkpoints and resumes through the one
trainer, but does not act.
"""

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch

from autodidact.core.config import check, check_common, opt
from autodidact.core.errors import UserError
from autodidact.data.sampler import GoalConfig, GoalSampler, WindowSampler
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import MLP, ema_update
from autodidact.nn.diagnostics import rankme
from autodidact.nn.encoders import is_image_shape, make_encoder


STATE_ENCODER_DIMS = (256, 256)  # the state encoder's widths unless `state_encoder_dims` says otherwise


@dataclass
class ObjectiveConfig(ObservationConfig):
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over the encoder and the objective's heads)")
    batch_size: int = opt(256, "samples per gradient step")
    state_encoder_dims: tuple[int, ...] = opt((), "state observations: the encoder MLP's widths, the last the "
                                                  "embedding's; empty: 256,256 (frames use `encoder`)")
    rankme_every: int = opt(10, "log the batch embeddings' RankMe every this many updates")

    def __post_init__(self):
        check_common(self)
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.batch_size >= 2, "batch_size", f"must be >= 2, got {self.batch_size}")
        check(self.rankme_every >= 1, "rankme_every", f"must be >= 1, got {self.rankme_every}")


@dataclass
class ViewsConfig(ObjectiveConfig):
    """Objectives that compare two views of the data: (o_t, o_t+k), the second drawn as a goal is."""
    views: GoalConfig = opt(GoalConfig(p_curgoal=0.0, p_trajgoal=1.0, p_randomgoal=0.0, geom_sample=True),
                            "how the second view o_t+k is drawn: a future state of the trajectory at a geometric "
                            "offset (p = 1 - view_discount) by default")
    view_discount: float = opt(0.9, "discount of the geometric offset k between the two views (mean 1 / (1 - it))")

    def __post_init__(self):
        super().__post_init__()
        check(0.0 <= self.view_discount < 1.0, "view_discount", f"must be in [0, 1), got {self.view_discount}")


class EncoderObjective(Method):
    prompts: ClassVar[tuple] = ()
    needs_actions: ClassVar[bool] = False
    window: ClassVar[int] = 0  # > 0: windows of this many steps (o_t .. o_t+window, a_t .. a_t+window-1); 0: view pairs

    def __init__(self, cfg, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.images = is_image_shape(self.obs_shape)
        self.state_dims = () if self.images else tuple(cfg.state_encoder_dims or STATE_ENCODER_DIMS)
        self.encoder = make_encoder(cfg.encoder, self.obs_shape, 1, self.state_dims)
        self.embed_dim = self.encoder.out_dim
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_rankme", torch.zeros(()))

    def make_sampler(self, dataset, seed):
        """Windows of `window` steps (the window's goal is the observation after its last step), or
        pairs of views (observations, actor_goals) as `cfg.views` draws them."""
        cfg = self.cfg
        if self.window:
            return WindowSampler(dataset, self.window, seed=seed, need_actions=self.needs_actions, p_aug=cfg.p_aug,
                                 frame_stack=cfg.frame_stack)
        return GoalSampler(dataset, seed, p_aug=cfg.p_aug, frame_stack=cfg.frame_stack, actor_goals=cfg.views,
                           discount=cfg.view_discount, need_actions=False)

    def window_embeddings(self, batch):
        """f of a window's observations and of the one after it: [B, window + 1, embed_dim]."""
        obs = torch.cat([batch["observations"], batch["goals"][:, None]], 1)
        return self.embed(obs)

    def head(self, in_dim, hidden_dims, out_dim, layer_norm=True):
        """An MLP head (GELU, LayerNorm after each hidden layer, a linear output)."""
        return MLP(in_dim, hidden_dims, out_dim, layer_norm=layer_norm)

    def embed(self, observations):
        """f(o): [..., embed_dim] for observations [..., *obs_shape]."""
        lead = observations.shape[:observations.dim() - len(self.obs_shape)]
        z = self.encoder(observations.reshape(-1, *self.obs_shape))
        return z.reshape(*lead, z.shape[-1])

    def encoder_info(self, z):
        """RankMe of embeddings z [B, d] (recomputed every `rankme_every` updates) and their mean
        per-dimension std."""
        if int(self.updates) % self.cfg.rankme_every == 0:
            self.last_rankme.copy_(rankme(z.reshape(-1, z.shape[-1])[:4096]))
        return {"encoder/rankme": self.last_rankme.clone(), "encoder/std": z.detach().std(0).mean()}

    def update(self, batch):
        info = super().update(batch)
        self.updates += 1
        return info

    def build_targets(self):
        """EMA targets of the encoder and the projection, never trained (BYOL's and SPR's f', g')."""
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_projection = copy.deepcopy(self.projection).requires_grad_(False)

    def targets(self):
        if not hasattr(self, "target_encoder"):
            return []
        return [(self.target_encoder, self.encoder), (self.target_projection, self.projection)]

    def online_parameters(self):
        """Every trained parameter: all but the `target_*` networks."""
        return [p for n, p in self.named_parameters() if not n.startswith("target_")]

    def update_targets(self):
        """Targets move with momentum m = `cfg.target_momentum`: target <- m target + (1 - m) online."""
        for target, online in self.targets():
            ema_update(target, online, 1.0 - self.cfg.target_momentum)

    def act(self, observations, goals=None, temperature=0.0, generator=None):
        raise UserError(f"'{self.name}' pretrains an encoder and does not act; start a method from it with "
                        "`autodidact train --encoder RUN`")

    def check_prompt(self, kind):
        raise UserError(f"'{self.name}' pretrains an encoder and accepts no prompts; start a method from it with "
                        "`autodidact train --method M --encoder RUN` and prompt that run")


def cosine_loss(prediction, target):
    """1 - cos(prediction, target) per row, averaged: BYOL's and SPR's normalized regression."""
    return 1.0 - torch.nn.functional.cosine_similarity(prediction, target, dim=-1).mean()


def off_diagonal(m):
    """The off-diagonal entries of a square matrix, flattened."""
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()
