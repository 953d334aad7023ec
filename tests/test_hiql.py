"""HIQL: its loss against the reference's three terms through the gradients (only the value trains
phi, unless low_actor_rep_grad), the length-normalized phi, two-level inference, and subgoal steps
from the manipulation presets. The generic checks (update, learning on the point world, resume,
presets, listing) are in test_methods.py."""

import math

import numpy as np
import pytest
import torch

from autodidact.methods.hiql import HIQL, HIQLConfig
from autodidact.workflows import train as trainer
from autodidact.workflows.runs import load_run
from pointenv import point_play_dataset, settings
from routing import assert_gradients_route

LOG_2PI = float(np.log(2 * np.pi))


def _batch(n=16, obs_dim=3, action_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = {k: torch.randn(n, obs_dim, generator=g) for k in (
        "observations", "next_observations", "value_goals", "low_actor_goals", "high_actor_goals",
        "high_actor_targets", "actor_goals")}
    b["actions"] = torch.rand(n, action_dim, generator=g) * 2 - 1
    success = (torch.rand(n, generator=g) < 0.2).float()
    b["rewards"], b["masks"] = success - 1.0, 1.0 - success
    return b


def _tiny_method(**kw):
    torch.manual_seed(0)
    cfg = HIQLConfig(actor_hidden_dims=(16,), value_hidden_dims=(16,), rep_dim=4, **kw)
    m = HIQL(cfg, (3,), 2)
    with torch.no_grad():  # target != value, so reads of each are distinguishable
        for p in m.target_value.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def _log_prob(mean, x):  # unit-std Gaussian (const_std, the reference's default)
    return (-0.5 * (x - mean) ** 2 - 0.5 * LOG_2PI).sum(-1)


def _reference_terms(m, b):
    """OGBench's hiql.py, term by term, with its stop-gradients: the value is GCIVL's loss on
    V(s, phi([s; g])) with the target value running the online phi; the low actor does AWR towards
    phi([s; w]) of the state k steps ahead (stop-gradient into phi unless low_actor_rep_grad) with
    advantage V(s', w) - V(s, w); the high actor does AWR regression of phi([s; w]) (no gradient)
    with advantage V(w, g) - V(s, g); advantages read the online value without gradient."""
    cfg = m.cfg
    s, s2, vg, lg, hg, ht, a = (b[k] for k in ("observations", "next_observations", "value_goals",
                                                "low_actor_goals", "high_actor_goals", "high_actor_targets",
                                                "actions"))
    r, mask = b["rewards"], b["masks"]
    with torch.no_grad():
        n1, n2 = m.target_value(s2, m.phi(s2, vg))
        t1, t2 = m.target_value(s, m.phi(s, vg))
        adv = r + cfg.discount * mask * torch.minimum(n1, n2) - (t1 + t2) / 2
        w = torch.where(adv >= 0, cfg.expectile, 1 - cfg.expectile)
        low_adv = m.value(s2, m.phi(s2, lg)).mean(0) - m.value(s, m.phi(s, lg)).mean(0)
        high_adv = m.value(ht, m.phi(ht, hg)).mean(0) - m.value(s, m.phi(s, hg)).mean(0)
        target_rep = m.phi(s, ht)
    v1, v2 = m.value(s, m.phi(s, vg))
    value = sum((w * (r + cfg.discount * mask * n - v) ** 2).mean() for n, v in ((n1, v1), (n2, v2)))
    rep_low = m.phi(s, lg) if cfg.low_actor_rep_grad else m.phi(s, lg).detach()
    low = -(torch.clamp(torch.exp(cfg.low_alpha * low_adv), max=100.0)
            * _log_prob(m.low_actor.mode(torch.cat([s, rep_low], -1)), a)).mean()
    high = -(torch.clamp(torch.exp(cfg.high_alpha * high_adv), max=100.0)
             * _log_prob(m.high_actor.mode(torch.cat([s, hg], -1)), target_rep)).mean()
    return value, low, high


@pytest.mark.parametrize("rep_grad", [False, True])
def test_loss_is_the_sum_of_the_reference_terms(rep_grad):
    m, b = _tiny_method(low_actor_rep_grad=rep_grad), _batch()
    value, low, high = _reference_terms(m, b)
    loss, info = m.loss(b)
    torch.testing.assert_close(loss, value + low + high)
    for k, term in (("value/loss", value), ("low_actor/loss", low), ("high_actor/loss", high)):
        torch.testing.assert_close(info[k], term.detach())
    assert all(k.split("/")[0] in ("value", "low_actor", "high_actor") for k in info)


@pytest.mark.parametrize("rep_grad", [False, True])
def test_only_the_value_trains_phi_unless_low_actor_rep_grad(rep_grad):
    """Actor terms never reach the value; the high actor's targets never reach phi; the value term
    trains phi and the value, never the target or the actors."""
    m, b = _tiny_method(low_actor_rep_grad=rep_grad), _batch()
    value, low, high = _reference_terms(m, b)
    loss, _ = m.loss(b)
    assert_gradients_route(loss, {"phi": (m.phi, value + low if rep_grad else value), "value": (m.value, value),
                                  "low_actor": (m.low_actor, low), "high_actor": (m.high_actor, high)},
                           frozen=[m.target_value])


def test_phi_is_length_normalized():
    m = _tiny_method()
    m.update(_batch())
    z = m.phi(torch.randn(8, 3), torch.randn(8, 3))
    torch.testing.assert_close(z.norm(dim=-1), torch.full((8,), math.sqrt(4)))


def test_act_is_two_level():
    m = _tiny_method()
    obs, goals = torch.randn(6, 3), torch.randn(6, 3)
    with torch.no_grad():
        a = m.act(obs, goals)
        # By hand: the high actor's mean subgoal rep, projected to norm sqrt(rep_dim), feeds the low actor.
        z = m.high_actor.mode(torch.cat([obs, goals], -1))
        z = z / z.norm(dim=-1, keepdim=True) * 2.0
        expected = m.low_actor.mode(torch.cat([obs, z], -1)).clamp(-1, 1)
        torch.testing.assert_close(a, expected)
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        s1, s2 = m.act(obs, goals, 1.0, g1), m.act(obs, goals, 1.0, g2)
        assert torch.equal(s1, s2) and not torch.equal(s1, a) and s1.abs().max() <= 1


def test_manipulation_presets_set_subgoal_steps(tmp_path):
    # A dataset file named like an OGBench manipulation dataset trains with subgoal_steps 10.
    data = point_play_dataset(tmp_path / "scene-play-v0.npz", episodes=3)
    run = trainer.new_run(settings("hiql", tmp_path, data, 2, overrides=(
        "batch_size=32", "actor_hidden_dims=32,32", "value_hidden_dims=32,32")), argv=["x"])
    _, method, _, _ = load_run(run)
    assert method.cfg.subgoal_steps == 10 and method.cfg.expectile == 0.7
