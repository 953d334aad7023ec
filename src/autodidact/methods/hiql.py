"""HIQL: hierarchical implicit Q-learning.

One goal-conditioned value V(s, g) trained as in GCIVL (expectile regression with a Polyak target,
the expectile weight taken from the target's advantage), from which two policies are extracted by
AWR (Park et al., 2023): a high-level actor pi_h(z | s, g) that proposes a *subgoal
representation* z = phi([s; w]) of the state w reached `subgoal_steps` later, and a low-level
actor pi_l(a | s, z) that reaches it. The high level's advantage is V(w, g) - V(s, g), the low
level's V(s', w) - V(s, w).

phi([s; w]) is a length-normalised (norm sqrt(rep_dim)) MLP of the concatenated state and goal.
It is one network shared by the value, its target, the low actor and the high actor's regression
targets, and only the value loss trains it: the value reads V(s, phi([s; g])), so phi learns
whatever about the goal the value needs, and both actors talk in that language.

Defaults are OGBench's `impls/agents/hiql.py` (state-based): 3x512 value and phi MLPs with
LayerNorm, 3x512 actors without, unit std, rep_dim 10, expectile 0.7, AWR temperatures 3 (high and
low), subgoal_steps 25, one Adam (3e-4) over phi, value and both actors, tau 0.005, batch 1024.

Sharing details of the reference, kept here: phi's parameters live once (flax adopts the one
`goal_rep` module into the value, target value and low actor); the Polyak target covers only the
value's state encoder and MLPs, so the target value runs the *online* phi; the low actor's input phi is stop-gradient
unless `low_actor_rep_grad` (meant for pixel encoders); the high actor's targets phi([s; w]) never
carry gradient.
"""

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from autodidact.core.config import check, check_common, opt
from autodidact.data.sampler import VALUE_GOALS, GoalConfig
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import (MLP, GCValue, GaussianActor, actor_info, awr_loss, expectile_td_loss, gaussian_log_prob,
                           value_info)


@dataclass
class HIQLConfig(ObservationConfig):
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over phi, value and both actors, as the reference)")
    batch_size: int = opt(1024, "transitions per gradient step")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "hidden widths of both actor MLPs")
    value_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "hidden widths of the value MLPs and of phi")
    layer_norm: bool = opt(True, "LayerNorm in the value and phi MLPs (the actors never have it, as in the reference)")
    discount: float = opt(0.99, "discount factor gamma of the goal-reaching return")
    tau: float = opt(0.005, "Polyak rate of the target value network")
    expectile: float = opt(0.7, "IQL expectile of the value regression (HIQL uses 0.7, flatter than GCIVL's 0.9)")
    low_alpha: float = opt(3.0, "low-level AWR inverse temperature: weights exp(low_alpha * adv), clipped at 100")
    high_alpha: float = opt(3.0, "high-level AWR inverse temperature: weights exp(high_alpha * adv), clipped at 100")
    subgoal_steps: int = opt(25, "k: subgoals are the state k steps ahead (10 on manipulation datasets)")
    rep_dim: int = opt(10, "dimension of the subgoal representation phi([s; w]) the high actor predicts")
    low_actor_rep_grad: bool = opt(False, "let the low actor's loss train phi too (the reference's choice for pixels)")
    const_std: bool = opt(True, "fix both actors' std at 1 (log-likelihoods become squared errors)")
    gc_negative: bool = opt(True, "rewards 0 at the goal, -1 elsewhere (True) or 1/0 (False)")
    value_goals: GoalConfig = opt(VALUE_GOALS, "how the value's goals are drawn")
    actor_goals: GoalConfig = opt(GoalConfig(p_trajgoal=1.0), "how the high-level actor's goals are drawn "
                                  "(p_trajgoal and p_randomgoal; the low level heads subgoal_steps ahead)")

    def __post_init__(self):
        check_common(self)
        check(self.subgoal_steps >= 1, "subgoal_steps", f"must be >= 1, got {self.subgoal_steps}")
        check(self.rep_dim >= 1, "rep_dim", f"must be >= 1, got {self.rep_dim}")


class GoalRep(nn.Module):
    """phi([s; g]): an MLP whose output is rescaled to norm sqrt(rep_dim) (the reference's
    LengthNormalize), so subgoal representations live on a sphere whose coordinates are O(1)."""

    def __init__(self, encoder, hidden_dims, rep_dim, layer_norm):
        super().__init__()
        self.encoder = encoder  # of [s; g]: the flat concatenation, or frames stacked along channels
        self.net = MLP(encoder.out_dim, hidden_dims, out_dim=rep_dim, layer_norm=layer_norm)
        self.scale = math.sqrt(rep_dim)

    def forward(self, observations, goals):
        z = self.net(self.encoder(observations, goals))
        return z * (self.scale / torch.linalg.vector_norm(z, dim=-1, keepdim=True))


class HIQL(Method):
    name = "hiql"
    summary = "hierarchical IQL: value V(s, phi([s; g])), high actor picks subgoal reps, low actor acts (OGBench HIQL)"
    paper = "Park et al. 2023"
    reference = "OGBench impls/agents/hiql.py"
    Config = HIQLConfig

    def __init__(self, cfg: HIQLConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.phi = GoalRep(self.gc_encoder(concat=True), cfg.value_hidden_dims, cfg.rep_dim, cfg.layer_norm)
        # V(enc(s), phi([s; g])): the reference's two value heads as one ensemble network ([2, B]);
        # on frames the value and the low actor each have their own state encoder.
        self.value = GCValue(self.gc_encoder(state=True, encoded_goal_dim=cfg.rep_dim), cfg.value_hidden_dims,
                             layer_norm=cfg.layer_norm, ensemble=2)
        # The target copies the value's encoder and MLPs; phi is shared with the online value (see top).
        self.target_value = copy.deepcopy(self.value).requires_grad_(False)
        self.low_actor_encoder = self.gc_encoder(state=True, encoded_goal_dim=cfg.rep_dim)
        self.low_actor = GaussianActor(self.low_actor_encoder.out_dim, action_dim, cfg.actor_hidden_dims,
                                       layer_norm=False, const_std=cfg.const_std)
        self.high_actor_encoder = self.gc_encoder(concat=True)
        self.high_actor = GaussianActor(self.high_actor_encoder.out_dim, cfg.rep_dim, cfg.actor_hidden_dims,
                                        layer_norm=False, const_std=cfg.const_std)
        # One Adam over everything the summed loss trains; the target gets no gradient in the
        # reference (its Adam update is exactly zero), so it is left out.
        self.optimizer = self.make_optimizer([*self.phi.parameters(), *self.value.parameters(),
                                              *self.low_actor_encoder.parameters(), *self.low_actor.parameters(),
                                              *self.high_actor_encoder.parameters(), *self.high_actor.parameters()])

    def targets(self):
        return [(self.target_value, self.value)]

    def loss(self, batch):
        """The three reference losses summed. `subgoal_steps` makes the sampler add HIQL's
        low_actor_goals, high_actor_goals and high_actor_targets (OGBench's HGCDataset). Every
        network evaluation the losses make is here, batched by whether it needs gradient."""
        cfg = self.cfg
        s, s_next, value_goals, low_goals, high_goals, high_targets = (batch[k] for k in (
            "observations", "next_observations", "value_goals", "low_actor_goals", "high_actor_goals",
            "high_actor_targets"))
        rewards, masks, actions = batch["rewards"], batch["masks"], batch["actions"]
        n = s.shape[0]

        # phi on every (state, goal) pair the losses read, each pair once. Only the value's pair
        # (and the low actor's with low_actor_rep_grad) carries gradient; the rest is one no-grad pass.
        if cfg.low_actor_rep_grad:
            rep_v, rep_low = self.phi(torch.cat([s, s]), torch.cat([value_goals, low_goals])).split(n)
            pairs = [(s_next, value_goals), (s_next, low_goals), (s, high_goals), (high_targets, high_goals),
                     (s, high_targets)]
        else:
            rep_v, rep_low = self.phi(s, value_goals), None
            pairs = [(s_next, value_goals), (s, low_goals), (s_next, low_goals), (s, high_goals),
                     (high_targets, high_goals), (s, high_targets)]
        # The value's own encoding of s (identity on states, a CNN on frames) serves the value
        # loss with gradient and both actors' advantages without: computed once (the reference
        # evaluates it three times and leaves XLA to merge them).
        enc_s = self.value.encoder.state(s)
        with torch.no_grad():
            reps = self.phi(torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])).split(n)
            if rep_low is None:
                rep_v_next, rep_low, rep_low_next, rep_high, rep_high_next, high_target_reps = reps
            else:
                rep_v_next, rep_low_next, rep_high, rep_high_next, high_target_reps = reps
            rep_low_ng = rep_low.detach()  # stop-gradient into phi, as the reference by default

            # The online value without gradient (the reference reads it outside grad_params), heads
            # averaged: low level V(s', w) - V(s, w), high level V(w, g) - V(s, g).
            enc_next, enc_targets = self.value.encoder.state(torch.cat([s_next, high_targets])).split(n)
            enc_s_ng = enc_s.detach()
            v_actor = self.value.net(torch.cat([torch.cat([enc_s_ng, enc_next, enc_s_ng, enc_targets]),
                                                torch.cat([rep_low_ng, rep_low_next, rep_high, rep_high_next])],
                                               -1)).squeeze(-1).mean(0)
            v_low, v_low_next, v_high, v_high_next = v_actor.split(n)
            low_adv, high_adv = v_low_next - v_low, v_high_next - v_high

        # Value: GCIVL's loss on V(s, phi([s; g])); its gradient is what trains phi. The target
        # value runs the online phi (only the value MLPs have a Polyak copy).
        v = self.value.net(torch.cat([enc_s, rep_v], -1)).squeeze(-1)
        value_loss, v = expectile_td_loss(self.value, self.target_value, s, s_next, rep_v, rep_v_next,
                                          rewards, masks, cfg.discount, cfg.expectile, v=v)

        # Low level: AWR on dataset actions towards the representation of the state k steps ahead.
        low_mean, low_log_std = self.low_actor(self.low_actor_encoder(s, rep_low))
        low_log_prob = gaussian_log_prob(low_mean, low_log_std, actions)
        low_loss = awr_loss(low_adv, low_log_prob, cfg.low_alpha)

        # High level: AWR regression of phi([s; w]) for the subgoal w on the way to g.
        high_mean, high_log_std = self.high_actor(self.high_actor_encoder(s, high_goals))
        high_log_prob = gaussian_log_prob(high_mean, high_log_std, high_target_reps)
        high_loss = awr_loss(high_adv, high_log_prob, cfg.high_alpha)

        info = {"value/loss": value_loss.detach(), **value_info("value", v),
                "low_actor/loss": low_loss.detach(), "low_actor/adv": low_adv.mean(),
                **actor_info("low_actor", low_mean, low_log_std, low_log_prob, actions),
                "high_actor/loss": high_loss.detach(), "high_actor/adv": high_adv.mean(),
                **actor_info("high_actor", high_mean, high_log_std, high_log_prob, high_target_reps)}
        return value_loss + low_loss + high_loss, info

    def act(self, observations, goals, temperature=0.0, generator=None):
        """Two-level inference as the reference's sample_actions: sample a subgoal representation,
        project it back onto phi's sphere (a sample or mean need not have norm sqrt(rep_dim)), then
        sample the action that heads for it."""
        z = self.high_actor.sample(self.high_actor_encoder(observations, goals), temperature=temperature,
                                   generator=generator)
        z = z * (self.phi.scale / torch.linalg.vector_norm(z, dim=-1, keepdim=True))
        a = self.low_actor.sample(self.low_actor_encoder(observations, z), temperature=temperature, generator=generator)
        return a.clamp(-1.0, 1.0)

    @torch.no_grad()
    def values(self, observations, goals):
        """V(s, phi([s; g])) averaged over the two heads, for inspection and tests."""
        return self.value(observations, self.phi(observations, goals)).mean(0)
