"""Losses and the small pieces of them every offline RL method shares, each written once.

The names and formulas are OGBench's (`impls/agents/*.py`): the expectile loss of IQL, AWR's
clipped exponential weights, DDPG+BC's Q term normalised by the mean |Q|, the diagonal-Gaussian
log-likelihood the actors maximise.
"""

import math

import torch
from torch.func import functional_call

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(mean, log_std, x):
    """Sum over action dims of the diagonal-Gaussian log-density."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)


def expectile_loss(adv, diff, expectile):
    """IQL's asymmetric L2: |expectile - 1(adv < 0)| * diff^2, elementwise.

    The weight's sign may come from another quantity than the error itself: GCIVL, HIQL and HILP
    weight each value head's TD error by the advantage of the target networks (a double-DQN-like
    split that damps overestimation); with `adv = diff` this is the plain expectile regression."""
    weight = torch.where(adv >= 0, expectile, 1.0 - expectile)
    return weight * diff.pow(2)


def expectile_td_loss(value, target_value, obs, next_obs, goals, next_goals, rewards, masks, discount, expectile,
                      v=None):
    """The value loss of GCIVL, HIQL and HILP's phi, on value functions with two heads ([2, B]
    outputs): (loss, online values v [2, B]).

    Each head regresses onto its own target head's TD value r + gamma * mask * V_target(s', g'),
    weighted by the expectile of one shared advantage from the target networks (min over heads at
    s', mean at s); the sum of the two head means is the reference's value_loss1 + value_loss2.
    `goals` and `next_goals` are what the value reads beside s and s' (the same goals, or HIQL's
    goal representations of each). `v`: the online values V(obs, goals) when the caller has
    already computed them (with gradient)."""
    with torch.no_grad():
        next_v_t, v_t = target_value(torch.cat([next_obs, obs]), torch.cat([next_goals, goals])).chunk(2, dim=1)
        q_per_head = rewards + discount * masks * next_v_t
        adv = rewards + discount * masks * next_v_t.min(0).values - v_t.mean(0)
    if v is None:
        v = value(obs, goals)
    return expectile_loss(adv, q_per_head - v, expectile).mean(1).sum(), v


def value_info(prefix, v):
    """Mean, max and min of values ([heads, B] averaged over heads, or [B])."""
    v = v.detach()
    v = v.mean(0) if v.dim() > 1 else v
    return {f"{prefix}/v_mean": v.mean(), f"{prefix}/v_max": v.max(), f"{prefix}/v_min": v.min()}


def awr_weights(advantage, temperature, max_weight=100.0):
    """Advantage-weighted regression weights exp(A * temperature), clipped as the reference does."""
    return torch.clamp(torch.exp(advantage * temperature), max=max_weight)


def awr_loss(advantage, log_prob, temperature):
    """-E[exp(temperature * A) log pi(a | s)]: AWR policy extraction; the advantage carries no gradient."""
    return -(awr_weights(advantage.detach(), temperature) * log_prob).mean()


def policy_actions(mean, log_std, const_std):
    """The actions DDPG+BC scores: the mean with a fixed std, else a reparameterised sample (drawn
    from the torch RNG the trainer checkpoints); clipped to the action bounds."""
    if const_std:
        return mean.clamp(-1, 1)
    return (mean + torch.randn_like(mean) * log_std.exp()).clamp(-1, 1)


def ddpgbc_loss(q, log_prob, alpha):
    """DDPG+BC: -Q(s, pi(s)) / mean|Q| - alpha * log pi(a_data | s). Normalising by the (constant)
    mean |Q| makes the loss scale-free, so alpha transfers between tasks whose returns differ in
    magnitude. Returns (loss, info)."""
    q_abs = q.detach().abs().mean()
    q_loss = -q.mean() / (q_abs + 1e-6)
    bc_loss = -(alpha * log_prob).mean()
    return q_loss + bc_loss, {"actor/q_loss": q_loss.detach(), "actor/bc_loss": bc_loss.detach(),
                              "actor/q_mean": q.detach().mean(), "actor/q_abs_mean": q_abs}


def actor_info(prefix, mean, log_std, log_prob, targets):
    """What every Gaussian actor logs: mean log-likelihood, squared error of the mean, std."""
    return {f"{prefix}/bc_log_prob": log_prob.detach().mean(),
            f"{prefix}/mse": (mean.detach() - targets).pow(2).mean(),
            f"{prefix}/std": log_std.detach().exp().mean()}


def frozen(module, *inputs):
    """`module(*inputs)` with its parameters as constants: gradients reach the inputs (an actor's
    actions) but not the module, as the reference's networks called outside `grad_params`."""
    params = {k: p.detach() for k, p in module.named_parameters()}
    return functional_call(module, params, inputs)
