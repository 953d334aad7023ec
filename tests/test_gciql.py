"""GCIQL: its loss against the reference's formulas, term by term through the gradients (value,
critic, DDPG+BC or AWR actor), and the reference's defaults. The generic checks (update, learning
on the point world, resume, presets, listing) are in test_methods.py."""

import numpy as np
import pytest
import torch
from torch.func import functional_call

from autodidact.methods import get_method
from pointenv import goal_batch
from routing import assert_gradients_route, grads

LOG_2PI = float(np.log(2 * np.pi))


def _tiny_method(**overrides):
    cls = get_method("gciql")
    torch.manual_seed(0)
    m = cls(cls.Config(actor_hidden_dims=(16, 16), value_hidden_dims=(16, 16), **overrides), (3,), 2)
    with torch.no_grad():  # make target and online critic distinguishable
        for p in m.target_critic.parameters():
            p.add_(0.1 * torch.randn_like(p))
        m.actor.mean.weight.mul_(100.0)  # actions large enough that clipping matters
    return m


def _fields(b):
    return (b[k] for k in ("observations", "next_observations", "value_goals", "actor_goals", "actions"))


def _reference_terms(m, b):
    """As OGBench's gciql.py, with its stop-gradients: V expectile onto the min of the target critic
    heads; both Q heads onto r + gamma * m * V(s') (V read without gradient); DDPG+BC =
    -Q(s, clip(mu), g) / mean|Q| - alpha * log pi(a), Q with the critic's weights as constants and
    mean|Q| without gradient."""
    cfg = m.cfg
    obs, nobs, vg, ag, a = _fields(b)
    with torch.no_grad():
        q1, q2 = m.target_critic(obs, vg, a)
        q_min = torch.minimum(q1, q2)
        target = b["rewards"] + cfg.discount * b["masks"] * m.value(nobs, vg)
    diff = q_min - m.value(obs, vg)
    value = (torch.where(diff >= 0, cfg.expectile, 1 - cfg.expectile) * diff ** 2).mean()
    c1, c2 = m.critic(obs, vg, a)
    critic = ((c1 - target) ** 2 + (c2 - target) ** 2).mean()
    mu = m.actor.mode(torch.cat([obs, ag], -1))
    constants = {k: p.detach() for k, p in m.critic.named_parameters()}
    q = torch.minimum(*functional_call(m.critic, constants, (obs, ag, mu.clamp(-1, 1))))
    log_prob = (-0.5 * (a - mu) ** 2 - 0.5 * LOG_2PI).sum(-1)
    actor = -q.mean() / (q.abs().mean().detach() + 1e-6) - (cfg.alpha * log_prob).mean()
    return value, critic, actor


def test_defaults_are_the_references():
    cfg = get_method("gciql").Config()
    assert cfg.actor_loss == "ddpgbc" and cfg.alpha == 0.3 and cfg.expectile == 0.9 and cfg.tau == 0.005
    vg, ag = cfg.value_goals, cfg.actor_goals
    assert (vg.p_curgoal, vg.p_trajgoal, vg.p_randomgoal, vg.geom_sample) == (0.2, 0.5, 0.3, True)
    assert (ag.p_curgoal, ag.p_trajgoal, ag.p_randomgoal, ag.geom_sample) == (0.0, 1.0, 0.0, False)
    assert cfg.value_hidden_dims == cfg.actor_hidden_dims == (512, 512, 512) and cfg.batch_size == 1024


def test_loss_is_the_sum_of_the_reference_terms():
    m, b = _tiny_method(), goal_batch()
    value, critic, actor = _reference_terms(m, b)
    loss, info = m.loss(b)
    torch.testing.assert_close(loss, value + critic + actor)
    torch.testing.assert_close(info["value/loss"], value.detach())
    torch.testing.assert_close(info["critic/loss"], critic.detach())
    torch.testing.assert_close(info["actor/loss"], actor.detach())
    assert {"value/loss", "critic/loss", "critic/q_mean", "actor/loss", "actor/q_loss", "actor/bc_loss"} <= set(info)


def test_awr_option_matches_the_reference_formula():
    m, b = _tiny_method(actor_loss="awr", alpha=3.0), goal_batch()
    obs, _, _, ag, a = _fields(b)
    with torch.no_grad():
        adv = torch.minimum(*m.critic(obs, ag, a)) - m.value(obs, ag)
    mu = m.actor.mode(torch.cat([obs, ag], -1))
    log_prob = (-0.5 * (a - mu) ** 2 - 0.5 * LOG_2PI).sum(-1)
    expected = -(torch.clamp(torch.exp(3.0 * adv), max=100.0) * log_prob).mean()
    actor_loss, info = m.actor_loss(obs, ag, a)
    torch.testing.assert_close(actor_loss, expected)
    assert "actor/adv" in info
    # In the total loss the AWR term trains the actor alone: its advantage carries no gradient.
    value, critic, _ = _reference_terms(m, b)
    loss, _ = m.loss(b)
    torch.testing.assert_close(loss, value + critic + expected)
    assert_gradients_route(loss, {"value": (m.value, value), "critic": (m.critic, critic),
                                  "actor": (m.actor, expected)}, frozen=[m.target_critic])


def test_gradients_reach_only_the_networks_the_reference_trains():
    """Value, critic and actor each get exactly their own term's gradient: V(s') in the critic's
    target carries none, and the Q term reaches the actor through the actions, never the critic."""
    m, b = _tiny_method(), goal_batch()
    value, critic, actor = _reference_terms(m, b)
    loss, _ = m.loss(b)
    assert_gradients_route(loss, {"value": (m.value, value), "critic": (m.critic, critic),
                                  "actor": (m.actor, actor)}, frozen=[m.target_critic])


def test_with_a_learned_std_the_actor_term_still_leaves_value_and_critic_alone():
    """const_std=False scores a reparameterised sample (random), so only the deterministic terms are
    compared exactly: value and critic get their own terms' gradients, and the actor's std learns."""
    m, b = _tiny_method(const_std=False), goal_batch()
    value, critic, _ = _reference_terms(m, b)
    loss, _ = m.loss(b)
    assert_gradients_route(loss, {"value": (m.value, value), "critic": (m.critic, critic)}, frozen=[m.target_critic])
    log_std_grad, = grads(loss, [m.actor.log_std])
    assert log_std_grad.abs().sum() > 0


@pytest.mark.parametrize("const_std", [True, False])
def test_the_q_term_alone_reaches_the_actor(const_std):
    # With alpha = 0 only the Q term is left; a detached action would give the actor no gradient.
    m, b = _tiny_method(const_std=const_std, alpha=0.0), goal_batch()
    loss, _ = m.loss(b)
    assert grads(loss, [m.actor.mean.weight])[0].abs().sum() > 0
