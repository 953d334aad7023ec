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
from torch.func import functional_call

from autodidact.config import check_common, opt
from autodidact.data.sampler import GoalSampler
from autodidact.methods.base import Method
from autodidact.nn import (GCValue, GaussianActor, adam, awr_weights, ema_update, expectile_loss,
                           gaussian_log_prob)


@dataclass
class GCIQLConfig:
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


class GCIQL(Method):
    name = "gciql"
    summary = "goal-conditioned IQL: expectile V(s, g), TD Q(s, a, g) with target net, DDPG+BC actor (OGBench GCIQL)"
    Config = GCIQLConfig
    prompts = ("goal",)
    # impls/hyperparameters.sh (DDPG+BC's BC coefficient): small on pointmaze, 1.0 on manipulation.
    presets = {
        "pointmaze-medium-navigate-v0": {"alpha": 0.003},
        "pointmaze-large-navigate-v0": {"alpha": 0.003},
        "antmaze-medium-navigate-v0": {"alpha": 0.3},
        "cube-single-play-v0": {"alpha": 1.0},
        "scene-play-v0": {"alpha": 1.0},
        "puzzle-3x3-play-v0": {"alpha": 1.0},
    }

    def __init__(self, cfg: GCIQLConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        goal_in = 2 * self.obs_dim
        self.value = GCValue(goal_in, cfg.value_hidden_dims, layer_norm=cfg.layer_norm, ensemble=0)  # [B]
        # The reference's two critic heads as one ensemble network: outputs are [2, B].
        self.critic = GCValue(goal_in + action_dim, cfg.value_hidden_dims, layer_norm=cfg.layer_norm, ensemble=2)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor = GaussianActor(goal_in, action_dim, cfg.actor_hidden_dims, layer_norm=False,
                                   const_std=cfg.const_std)
        # The reference applies one Adam to the sum of the three losses over its whole network dict;
        # the target receives no gradient there (its Adam update is exactly zero), so it is left out.
        self.opt = adam([*self.value.parameters(), *self.critic.parameters(),
                                     *self.actor.parameters()], lr=cfg.lr)

    def make_sampler(self, dataset, seed):
        return GoalSampler(dataset, self.cfg, seed=seed, need_actions=True)

    def optimizers(self):
        return {"main": self.opt}

    def value_loss(self, obs, goals, actions):
        with torch.no_grad():
            q = self.target_critic(obs, goals, actions).min(0).values
        v = self.value(obs, goals)
        loss = expectile_loss(q - v, self.cfg.expectile).mean()
        v = v.detach()
        return loss, {"value/loss": loss.detach(), "value/v_mean": v.mean(), "value/v_max": v.max(),
                      "value/v_min": v.min()}

    def critic_loss(self, obs, next_obs, goals, actions, rewards, masks):
        with torch.no_grad():
            # The online V (no target V exists in IQL), read without gradient as the reference does.
            q_target = rewards + self.cfg.discount * masks * self.value(next_obs, goals)
        q = self.critic(obs, goals, actions)                                  # [2, B]
        loss = (q - q_target).pow(2).sum(0).mean()                            # ((q1-q)^2 + (q2-q)^2).mean()
        return loss, {"critic/loss": loss.detach(), "critic/q_mean": q_target.mean(),
                      "critic/q_max": q_target.max(), "critic/q_min": q_target.min()}

    def _critic_frozen(self, obs, goals, actions):
        """Q through the critic's current weights as constants: gradients reach the actions (and so
        the actor) but not the critic, as the reference's critic outside grad_params."""
        params = {k: p.detach() for k, p in self.critic.named_parameters()}
        return functional_call(self.critic, params, (obs, goals, actions))

    def actor_loss(self, obs, goals, actions):
        cfg = self.cfg
        x = torch.cat([obs, goals], -1)
        if cfg.actor_loss == "awr":
            with torch.no_grad():
                adv = self.critic(obs, goals, actions).min(0).values - self.value(obs, goals)
                weights = awr_weights(adv, cfg.alpha)
            mean, log_std = self.actor(x)
            log_prob = gaussian_log_prob(mean, log_std, actions)
            loss = -(weights * log_prob).mean()
            return loss, {"actor/loss": loss.detach(), "actor/adv": adv.mean(),
                          "actor/bc_log_prob": log_prob.detach().mean(),
                          "actor/mse": (mean.detach() - actions).pow(2).mean(),
                          "actor/std": log_std.detach().exp().mean()}
        mean, log_std = self.actor(x)
        if cfg.const_std:
            pi_actions = mean
        else:  # reparameterised sample, drawn from the torch RNG the trainer checkpoints
            pi_actions = mean + torch.randn_like(mean) * log_std.exp()
        q = self._critic_frozen(obs, goals, pi_actions.clamp(-1, 1)).min(0).values
        # Normalising by the (constant) mean |Q| makes the loss scale-free, so alpha transfers
        # between tasks whose returns differ in magnitude.
        q_abs = q.detach().abs().mean()
        q_loss = -q.mean() / (q_abs + 1e-6)
        log_prob = gaussian_log_prob(mean, log_std, actions)
        bc_loss = -(cfg.alpha * log_prob).mean()
        loss = q_loss + bc_loss
        return loss, {"actor/loss": loss.detach(), "actor/q_loss": q_loss.detach(),
                      "actor/bc_loss": bc_loss.detach(), "actor/q_mean": q.detach().mean(),
                      "actor/q_abs_mean": q_abs, "actor/bc_log_prob": log_prob.detach().mean(),
                      "actor/mse": (mean.detach() - actions).pow(2).mean(),
                      "actor/std": log_std.detach().exp().mean()}

    def update(self, batch):
        obs, next_obs = self.flat(batch["observations"]), self.flat(batch["next_observations"])
        value_goals, actor_goals = self.flat(batch["value_goals"]), self.flat(batch["actor_goals"])
        actions = batch["actions"]
        value_loss, info = self.value_loss(obs, value_goals, actions)
        critic_loss, critic_info = self.critic_loss(obs, next_obs, value_goals, actions,
                                                    batch["rewards"], batch["masks"])
        actor_loss, actor_info = self.actor_loss(obs, actor_goals, actions)
        info.update(critic_info)
        info.update(actor_info)
        # The reference moves the target towards the critic parameters from *before* this step's
        # gradient update, so the Polyak step comes first (targets were read under no_grad).
        ema_update(self.target_critic, self.critic, self.cfg.tau)
        self.optimize(value_loss + critic_loss + actor_loss, self.opt)
        return info

    def act(self, observations, goals, temperature=0.0, generator=None):
        x = torch.cat([self.flat(observations), self.flat(goals)], -1)
        return self.actor.sample(x, temperature=temperature, generator=generator)

    @torch.no_grad()
    def values(self, observations, goals):
        """V(s, g), for inspection and tests."""
        return self.value(self.flat(observations), self.flat(goals))
