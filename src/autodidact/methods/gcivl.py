"""GCIVL: goal-conditioned implicit V-learning.

IQL without a Q function (OGBench, Park et al., 2024): an expectile regression of V(s, g) onto the
one-step target r + gamma * V_target(s', g), with the expectile *weight* taken from the target
network's advantage and the squared error from the online network (a double-DQN-like split that
damps overestimation, since the TD target itself contains the same noisy V). The policy is
extracted by AWR with the one-step advantage V(s', g) - V(s, g) of the dataset action.

Defaults are OGBench's `impls/agents/gcivl.py`: two value heads (one ensemble network with
a leading head axis) with LayerNorm and a Polyak target (tau 0.005), expectile 0.9, AWR temperature 10,
a 3x512 GELU actor without LayerNorm and unit std, one Adam (3e-4) over value and actor together,
batch 1024, value goals 0.2/0.5/0.3 current/future (geometric)/random, actor goals uniform future.
"""

import copy
from dataclasses import dataclass

import torch

from autodidact.config import check_common, opt
from autodidact.data.sampler import GoalSampler
from autodidact.methods.base import Method
from autodidact.nn import GCValue, GaussianActor, adam, awr_weights, ema_update, gaussian_log_prob


@dataclass
class GCIVLConfig:
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over value and actor, as the reference)")
    batch_size: int = opt(1024, "transitions per gradient step")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "actor MLP hidden layer widths")
    value_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "value MLP hidden layer widths")
    layer_norm: bool = opt(True, "LayerNorm in the value MLPs (the actor never has it, as in the reference)")
    discount: float = opt(0.99, "discount factor gamma of the goal-reaching return")
    tau: float = opt(0.005, "Polyak rate of the target value network")
    expectile: float = opt(0.9, "IQL expectile of the value regression (0.5 is plain TD)")
    alpha: float = opt(10.0, "AWR inverse temperature: weights exp(alpha * advantage), clipped at 100")
    const_std: bool = opt(True, "fix the policy std at 1 (log-likelihood becomes squared error)")
    value_p_curgoal: float = opt(0.2, "probability the value goal is the current state (reward 0, episode ends)")
    value_p_trajgoal: float = opt(0.5, "probability the value goal is a future state of the same trajectory")
    value_p_randomgoal: float = opt(0.3, "probability the value goal is a random dataset state")
    value_geom_sample: bool = opt(True, "geometric (p = 1 - discount) rather than uniform future value goals")
    actor_p_curgoal: float = opt(0.0, "probability the actor goal is the current state")
    actor_p_trajgoal: float = opt(1.0, "probability the actor goal is a future state of the trajectory")
    actor_p_randomgoal: float = opt(0.0, "probability the actor goal is a random dataset state")
    actor_geom_sample: bool = opt(False, "geometric (True) or uniform (False) future actor-goal offsets")
    gc_negative: bool = opt(True, "rewards 0 at the goal, -1 elsewhere (True) or 1/0 (False)")

    def __post_init__(self):
        check_common(self)


class GCIVL(Method):
    name = "gcivl"
    summary = "goal-conditioned implicit V-learning: expectile V(s, g) with target net, AWR actor (OGBench GCIVL)"
    Config = GCIVLConfig
    prompts = ("goal",)
    # impls/hyperparameters.sh: alpha 10 on every state-based dataset (the default, stated anyway).
    presets = {name: {"alpha": 10.0} for name in (
        "pointmaze-medium-navigate-v0", "pointmaze-large-navigate-v0", "antmaze-medium-navigate-v0",
        "cube-single-play-v0", "scene-play-v0", "puzzle-3x3-play-v0")}

    def __init__(self, cfg: GCIVLConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        # The reference's two value heads as one ensemble network: outputs are [2, B].
        self.value = GCValue(2 * self.obs_dim, cfg.value_hidden_dims, layer_norm=cfg.layer_norm, ensemble=2)
        self.target_value = copy.deepcopy(self.value).requires_grad_(False)
        self.actor = GaussianActor(2 * self.obs_dim, action_dim, cfg.actor_hidden_dims,
                                   layer_norm=False, const_std=cfg.const_std)
        # The reference applies one Adam to the sum of both losses over its whole network dict; the
        # target receives no gradient there (its Adam update is exactly zero), so it is left out.
        self.opt = adam([*self.value.parameters(), *self.actor.parameters()], lr=cfg.lr)

    def make_sampler(self, dataset, seed):
        return GoalSampler(dataset, self.cfg, seed=seed, need_actions=True)

    def optimizers(self):
        return {"main": self.opt}

    def value_loss(self, batch):
        cfg = self.cfg
        obs, next_obs, goals = (self.flat(batch[k]) for k in ("observations", "next_observations", "value_goals"))
        rewards, masks = batch["rewards"], batch["masks"]
        with torch.no_grad():
            # Target values at s' and s in one fused pass: [2, 2B] -> two [2, B].
            both = self.target_value(torch.cat([next_obs, obs]), torch.cat([goals, goals]))
            next_v_t, v_t = both.chunk(2, dim=1)
            q_per_head = rewards + cfg.discount * masks * next_v_t            # [2, B]: q1, q2
            # Advantage for the expectile weight: pessimistic target over the mean target value.
            adv = rewards + cfg.discount * masks * next_v_t.min(0).values - v_t.mean(0)
        v = self.value(obs, goals)                                            # [2, B]
        # Each head regresses onto its own target head's TD value, weighted by the shared advantage;
        # summing the two head means is value_loss1 + value_loss2 of the reference.
        weight = torch.where(adv >= 0, cfg.expectile, 1.0 - cfg.expectile)
        loss = (weight * (q_per_head - v).pow(2)).mean(1).sum()
        v_avg = v.detach().mean(0)
        return loss, {"value/loss": loss.detach(), "value/v_mean": v_avg.mean(),
                      "value/v_max": v_avg.max(), "value/v_min": v_avg.min()}

    def actor_loss(self, batch):
        obs, next_obs, goals = (self.flat(batch[k]) for k in ("observations", "next_observations", "actor_goals"))
        with torch.no_grad():
            # The online value (not the target), without gradient: the reference reads it outside
            # grad_params. V(s, g) and V(s', g) in one fused pass, heads averaged.
            v, next_v = self.value(torch.cat([obs, next_obs]), torch.cat([goals, goals])).mean(0).chunk(2)
            adv = next_v - v
            weights = awr_weights(adv, self.cfg.alpha)
        mean, log_std = self.actor(torch.cat([obs, goals], -1))
        log_prob = gaussian_log_prob(mean, log_std, batch["actions"])
        loss = -(weights * log_prob).mean()
        return loss, {"actor/loss": loss.detach(), "actor/adv": adv.mean(),
                      "actor/bc_log_prob": log_prob.detach().mean(),
                      "actor/mse": (mean.detach() - batch["actions"]).pow(2).mean(),
                      "actor/std": log_std.detach().exp().mean()}

    def update(self, batch):
        value_loss, info = self.value_loss(batch)
        actor_loss, actor_info = self.actor_loss(batch)
        info.update(actor_info)
        # The reference moves the target towards the value parameters from *before* this step's
        # gradient update, so the Polyak step comes first (targets were read under no_grad).
        ema_update(self.target_value, self.value, self.cfg.tau)
        self.optimize(value_loss + actor_loss, self.opt)
        return info

    def act(self, observations, goals, temperature=0.0, generator=None):
        x = torch.cat([self.flat(observations), self.flat(goals)], -1)
        return self.actor.sample(x, temperature=temperature, generator=generator)

    @torch.no_grad()
    def values(self, observations, goals):
        """V(s, g) averaged over the two heads, for inspection and tests."""
        return self.value(self.flat(observations), self.flat(goals)).mean(0)
