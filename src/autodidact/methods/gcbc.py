"""GCBC: goal-conditioned behavioural cloning.

Maximise log pi(a | s, g) with g a future state of the same trajectory (uniform offset), the
simplest hindsight-relabeling baseline (Ghosh et al., 2019; Emmons et al., 2021). Defaults are
OGBench's `impls/agents/gcbc.py`: 3x512 GELU MLP without LayerNorm, unit-std Gaussian, Adam 3e-4,
batch 1024.
"""

from dataclasses import dataclass

import torch

from autodidact.config import check_common, opt
from autodidact.data.sampler import GoalSampler
from autodidact.methods.base import Method
from autodidact.nn import GaussianActor, adam, gaussian_log_prob


@dataclass
class GCBCConfig:
    lr: float = opt(3e-4, "Adam learning rate")
    batch_size: int = opt(1024, "transitions per gradient step")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "actor MLP hidden layer widths")
    actor_layer_norm: bool = opt(False, "LayerNorm after each hidden activation (off in the reference)")
    const_std: bool = opt(True, "fix the policy std at 1 (log-likelihood becomes squared error)")
    discount: float = opt(0.99, "discount; only used when goals are sampled with geometric offsets")
    value_p_curgoal: float = opt(0.0, "unused by GCBC (kept so every goal sampler reads one config)")
    value_p_trajgoal: float = opt(1.0, "unused by GCBC")
    value_p_randomgoal: float = opt(0.0, "unused by GCBC")
    value_geom_sample: bool = opt(False, "unused by GCBC")
    actor_p_curgoal: float = opt(0.0, "probability the actor goal is the current state")
    actor_p_trajgoal: float = opt(1.0, "probability the actor goal is a future state of the trajectory")
    actor_p_randomgoal: float = opt(0.0, "probability the actor goal is a random dataset state")
    actor_geom_sample: bool = opt(False, "geometric (True) or uniform (False) future-goal offsets")
    gc_negative: bool = opt(True, "rewards 0/-1 (True) or 1/0 (False); unused by GCBC")

    def __post_init__(self):
        check_common(self)


class GCBC(Method):
    name = "gcbc"
    summary = "goal-conditioned behavioural cloning on hindsight-relabeled future states (OGBench GCBC)"
    Config = GCBCConfig
    prompts = ("goal",)
    # Compiled, its update fuses the elementwise work around the six big matmuls and moves their
    # weight gradients to oneDNN: at the published size on CPU, 1.04-1.21x the uncompiled steps/s
    # in three benchmark runs (docs/BENCHMARKS.md; compiling.py says where `auto` applies).
    compile_pays = True

    def __init__(self, cfg: GCBCConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.actor = GaussianActor(2 * self.obs_dim, action_dim, cfg.actor_hidden_dims,
                                   layer_norm=cfg.actor_layer_norm, const_std=cfg.const_std)
        self.opt = adam(self.parameters(), lr=cfg.lr)

    def make_sampler(self, dataset, seed):
        return GoalSampler(dataset, self.cfg, seed=seed, need_actions=True)

    def optimizers(self):
        return {"actor": self.opt}

    def actor_loss(self, batch):
        x = torch.cat([self.flat(batch["observations"]), self.flat(batch["actor_goals"])], -1)
        mean, log_std = self.actor(x)
        log_prob = gaussian_log_prob(mean, log_std, batch["actions"])
        loss = -log_prob.mean()
        info = {"actor/loss": loss.detach(), "actor/bc_log_prob": log_prob.mean().detach(),
                "actor/mse": (mean.detach() - batch["actions"]).pow(2).mean(),
                "actor/std": log_std.detach().exp().mean()}
        return loss, info

    def update(self, batch):
        loss, info = self.actor_loss(batch)
        self.optimize(loss, self.opt)
        return info

    def act(self, observations, goals, temperature=0.0, generator=None):
        x = torch.cat([self.flat(observations), self.flat(goals)], -1)
        return self.actor.sample(x, temperature=temperature, generator=generator)
