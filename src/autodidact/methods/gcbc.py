"""GCBC: goal-conditioned behavioural cloning.

Maximise log pi(a | s, g) with g a future state of the same trajectory (uniform offset), the
simplest hindsight-relabeling baseline (Ghosh et al., 2019; Emmons et al., 2021). Defaults are
OGBench's `impls/agents/gcbc.py`: 3x512 GELU MLP without LayerNorm, unit-std Gaussian, Adam 3e-4,
batch 1024.
"""

from dataclasses import dataclass

import torch

from autodidact.core.config import check_common, opt
from autodidact.data.sampler import GoalConfig
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import GaussianActor, actor_info, gaussian_log_prob


@dataclass
class GCBCConfig(ObservationConfig):
    lr: float = opt(3e-4, "Adam learning rate")
    batch_size: int = opt(1024, "transitions per gradient step")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "actor MLP hidden layer widths")
    actor_layer_norm: bool = opt(False, "LayerNorm after each hidden activation (off in the reference)")
    const_std: bool = opt(True, "fix the policy std at 1 (log-likelihood becomes squared error)")
    discount: float = opt(0.99, "only used when actor goals are sampled with geometric offsets")
    actor_goals: GoalConfig = opt(GoalConfig(p_trajgoal=1.0), "how the goal each action is cloned towards is drawn")

    def __post_init__(self):
        check_common(self)


class GCBC(Method):
    name = "gcbc"
    summary = "goal-conditioned behavioural cloning on hindsight-relabeled future states (OGBench GCBC)"
    paper = "Ghosh et al. 2019; Emmons et al. 2021"
    reference = "OGBench impls/agents/gcbc.py"
    Config = GCBCConfig

    def __init__(self, cfg: GCBCConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.actor_encoder = self.gc_encoder(concat=True)
        self.actor = GaussianActor(self.actor_encoder.out_dim, action_dim, cfg.actor_hidden_dims,
                                   layer_norm=cfg.actor_layer_norm, const_std=cfg.const_std)
        self.optimizer = self.make_optimizer(self.parameters())

    def loss(self, batch):
        x = self.actor_encoder(batch["observations"], batch["actor_goals"])
        mean, log_std = self.actor(x)
        log_prob = gaussian_log_prob(mean, log_std, batch["actions"])
        loss = -log_prob.mean()
        return loss, {"actor/loss": loss.detach(), **actor_info("actor", mean, log_std, log_prob, batch["actions"])}

    def act(self, observations, goals, temperature=0.0, generator=None):
        x = self.actor_encoder(observations, goals)
        return self.actor.sample(x, temperature=temperature, generator=generator)
