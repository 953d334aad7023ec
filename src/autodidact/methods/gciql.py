"""GCIQL: goal-conditioned implicit Q-learning.

IQL (Kostrikov et al., 2022) with goal-conditioned Q(s, a, g) and V(s, g), as in OGBench (Park et
al., 2024): V regresses onto the target critic's min over two heads with an expectile loss, Q
onto r + gamma * V(s', g) with squared error. The policy is extracted by DDPG+BC by default
(maximise Q(s, pi(s, g), g) normalised by its mean |Q|, plus alpha * log-likelihood of the data
action), or by AWR with advantage Q - V (`actor_loss=awr`).

Defaults are OGBench's `impls/agents/gciql.py`: one value net, two critic heads (one ensemble network
here) with a Polyak target (tau 0.005), LayerNorm in value and critic MLPs, a 3x512
GELU actor without LayerNorm and unit std, expectile 0.9, `actor_loss=ddpgbc` with alpha 0.3, one
Adam (3e-4) over value, critic and actor together, batch 1024, value goals 0.2/0.5/0.3
current/future (geometric)/random, actor goals uniform future.
"""

import copy
from dataclasses import dataclass

import torch

from autodidact.core.config import check_common, opt
from autodidact.data.sampler import VALUE_GOALS, GoalConfig
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import (GCValue, GaussianActor, actor_info, awr_loss, ddpgbc_loss, expectile_loss, frozen,
                           gaussian_log_prob, policy_actions, value_info)


@dataclass
class GCIQLConfig(ObservationConfig):
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over value, critic and actor, as the reference)")
    batch_size: int = opt(1024, "transitions per gradient step")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "actor MLP hidden layer widths")
    value_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "value and critic MLP hidden layer widths")
    layer_norm: bool = opt(True, "LayerNorm in the value and critic MLPs (the actor never has it, as in the reference)")
    discount: float = opt(0.99, "discount factor gamma of the goal-reaching return")
    tau: float = opt(0.005, "Polyak rate of the target critic")
    expectile: float = opt(0.9, "IQL expectile of the value regression onto Q (0.5 is SARSA-like)")
    actor_loss: str = opt("ddpgbc", "policy extraction: 'ddpgbc' (reference default) or 'awr'")
    alpha: float = opt(0.3, "BC coefficient in DDPG+BC, or AWR inverse temperature with actor_loss=awr")
    const_std: bool = opt(True, "fix the policy std at 1; DDPG+BC then scores the mean action, else a sample")
    gc_negative: bool = opt(True, "rewards 0 at the goal, -1 elsewhere (True) or 1/0 (False)")
    value_goals: GoalConfig = opt(VALUE_GOALS, "how the value's and critic's goals are drawn")
    actor_goals: GoalConfig = opt(GoalConfig(p_trajgoal=1.0), "how the actor's goals are drawn")

    def __post_init__(self):
        check_common(self)


class GCIQL(Method):
    name = "gciql"
    summary = "goal-conditioned IQL: expectile V(s, g), TD Q(s, a, g) with target net, DDPG+BC actor (OGBench GCIQL)"
    paper = "Kostrikov et al. 2022 (IQL); Park et al. 2024 (OGBench)"
    reference = "OGBench impls/agents/gciql.py"
    Config = GCIQLConfig

    def __init__(self, cfg: GCIQLConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.value = GCValue(self.gc_encoder(concat=True), cfg.value_hidden_dims, layer_norm=cfg.layer_norm,
                             ensemble=0)  # [B]
        # The reference's two critic heads as one ensemble network: outputs are [2, B].
        self.critic = GCValue(self.gc_encoder(concat=True), cfg.value_hidden_dims, extra_dim=action_dim,
                              layer_norm=cfg.layer_norm, ensemble=2)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_encoder = self.gc_encoder(concat=True)
        self.actor = GaussianActor(self.actor_encoder.out_dim, action_dim, cfg.actor_hidden_dims, layer_norm=False,
                                   const_std=cfg.const_std)
        # The reference applies one Adam to the sum of the three losses over its whole network dict;
        # the target receives no gradient there (its Adam update is exactly zero), so it is left out.
        self.optimizer = self.make_optimizer([*self.value.parameters(), *self.critic.parameters(),
                                              *self.actor_encoder.parameters(), *self.actor.parameters()])

    def targets(self):
        return [(self.target_critic, self.critic)]

    def loss(self, batch):
        cfg = self.cfg
        obs, next_obs = batch["observations"], batch["next_observations"]
        goals, actor_goals = batch["value_goals"], batch["actor_goals"]
        actions = batch["actions"]

        # Value: expectile regression onto the target critic's min over its two heads.
        with torch.no_grad():
            q_target = self.target_critic(obs, goals, actions).min(0).values
        v = self.value(obs, goals)
        value_loss = expectile_loss(q_target - v, q_target - v, cfg.expectile).mean()

        # Critic: squared TD error onto r + gamma * V(s', g), the online V (IQL has no target V)
        # read without gradient as the reference does.
        with torch.no_grad():
            q_td = batch["rewards"] + cfg.discount * batch["masks"] * self.value(next_obs, goals)
        q = self.critic(obs, goals, actions)                              # [2, B]
        critic_loss = (q - q_td).pow(2).sum(0).mean()                     # ((q1-q)^2 + (q2-q)^2).mean()

        actor_loss, info = self.actor_loss(obs, actor_goals, actions)
        return value_loss + critic_loss + actor_loss, {
            "value/loss": value_loss.detach(), **value_info("value", v),
            "critic/loss": critic_loss.detach(), "critic/q_mean": q_td.mean(), "critic/q_max": q_td.max(),
            "critic/q_min": q_td.min(), **info}

    def actor_loss(self, obs, goals, actions):
        cfg = self.cfg
        mean, log_std = self.actor(self.actor_encoder(obs, goals))
        log_prob = gaussian_log_prob(mean, log_std, actions)
        if cfg.actor_loss == "awr":
            with torch.no_grad():
                adv = self.critic(obs, goals, actions).min(0).values - self.value(obs, goals)
            loss, info = awr_loss(adv, log_prob, cfg.alpha), {"actor/adv": adv.mean()}
        else:  # DDPG+BC through the critic, whose weights the actor loss does not train
            q = frozen(self.critic, obs, goals, policy_actions(mean, log_std, cfg.const_std)).min(0).values
            loss, info = ddpgbc_loss(q, log_prob, cfg.alpha)
        return loss, {"actor/loss": loss.detach(), **info, **actor_info("actor", mean, log_std, log_prob, actions)}

    def act(self, observations, goals, temperature=0.0, generator=None):
        x = self.actor_encoder(observations, goals)
        return self.actor.sample(x, temperature=temperature, generator=generator)

    @torch.no_grad()
    def values(self, observations, goals):
        """V(s, g), for inspection and tests."""
        return self.value(observations, goals)
