"""GCIQL: its losses against the reference's formulas, gradient routing, learning on the tiny point
world (losses, goal reaching, value ordering), checkpoint/resume, presets and the CLI listing."""

import copy
import json

import numpy as np
import pytest
import torch

from autodidact import trainer
from autodidact.methods import get_method
from autodidact.methods.base import GoalPolicy
from autodidact.presets import preset_for
from clihelp import methods_listing
from pointenv import assert_resume_matches_uninterrupted, goal_batch, point_play_dataset, rollout_success, settings, train_on_point_play

# alpha=1 is the reference's manipulation value; with the default 0.3 the critic's early action
# gradients dominate the BC term and the short run here ends before they settle near goals.
LEARN = ("batch_size=256", "actor_hidden_dims=128,128", "value_hidden_dims=128,128", "alpha=1.0")
TINY = ("batch_size=32", "actor_hidden_dims=32,32", "value_hidden_dims=32,32")
LOG_2PI = float(np.log(2 * np.pi))


def _settings(tmp_path, data, steps, out="run", overrides=TINY, **kw):
    return settings("gciql", tmp_path, data, steps, out=out, overrides=overrides, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small training run shared by the learning checks (about 25 s on one thread)."""
    return train_on_point_play("gciql", tmp_path_factory.mktemp("gciql"), 800, LEARN)


def _tiny_method(**overrides):
    cls = get_method("gciql")
    torch.manual_seed(0)
    m = cls(cls.Config(actor_hidden_dims=(16, 16), value_hidden_dims=(16, 16), **overrides), (3,), 2)
    with torch.no_grad():  # make target and online critic distinguishable
        for p in m.target_critic.parameters():
            p.add_(0.1 * torch.randn_like(p))
        m.actor.mean.weight.mul_(100.0)  # actions large enough that clipping matters
    return m


def _losses(m, b):
    obs, nobs, vg, ag, a = (b[k] for k in ("observations", "next_observations", "value_goals", "actor_goals",
                                           "actions"))
    value_loss, info = m.value_loss(obs, vg, a)
    critic_loss, critic_info = m.critic_loss(obs, nobs, vg, a, b["rewards"], b["masks"])
    actor_loss, actor_info = m.actor_loss(obs, ag, a)
    return value_loss, critic_loss, actor_loss, {**info, **critic_info, **actor_info}


def test_defaults_are_the_references():
    cfg = get_method("gciql").Config()
    assert cfg.actor_loss == "ddpgbc" and cfg.alpha == 0.3 and cfg.expectile == 0.9 and cfg.tau == 0.005
    assert (cfg.value_p_curgoal, cfg.value_p_trajgoal, cfg.value_p_randomgoal) == (0.2, 0.5, 0.3)
    assert cfg.value_hidden_dims == cfg.actor_hidden_dims == (512, 512, 512) and cfg.batch_size == 1024


def test_losses_match_the_reference_formulas():
    """As OGBench's gciql.py: V expectile onto min of the target critic heads; both Q heads onto
    r + gamma * m * V(s'); DDPG+BC = -Q(s, clip(mu), g) / mean|Q| - alpha * log pi(a)."""
    m, b = _tiny_method(), goal_batch()
    cfg = m.cfg
    obs, nobs, vg, ag, a = (b[k] for k in ("observations", "next_observations", "value_goals", "actor_goals",
                                           "actions"))
    with torch.no_grad():
        q1, q2 = m.target_critic(obs, vg, a)
        diff = torch.minimum(q1, q2) - m.value(obs, vg)
        expected_value = (torch.where(diff >= 0, cfg.expectile, 1 - cfg.expectile) * diff ** 2).mean()
        target = b["rewards"] + cfg.discount * b["masks"] * m.value(nobs, vg)
        c1, c2 = m.critic(obs, vg, a)
        expected_critic = ((c1 - target) ** 2 + (c2 - target) ** 2).mean()
        mu = m.actor.mode(torch.cat([obs, ag], -1))
        q = torch.minimum(*m.critic(obs, ag, mu.clamp(-1, 1)))
        log_prob = (-0.5 * (a - mu) ** 2 - 0.5 * LOG_2PI).sum(-1)
        expected_actor = -q.mean() / (q.abs().mean() + 1e-6) - (cfg.alpha * log_prob).mean()
    value_loss, critic_loss, actor_loss, info = _losses(m, b)
    torch.testing.assert_close(value_loss, expected_value)
    torch.testing.assert_close(critic_loss, expected_critic)
    torch.testing.assert_close(actor_loss, expected_actor)
    assert {"value/loss", "critic/loss", "critic/q_mean", "actor/loss", "actor/q_loss", "actor/bc_loss"} <= set(info)


def test_awr_option_matches_the_reference_formula():
    m, b = _tiny_method(actor_loss="awr", alpha=3.0), goal_batch()
    obs, ag, a = b["observations"], b["actor_goals"], b["actions"]
    with torch.no_grad():
        adv = torch.minimum(*m.critic(obs, ag, a)) - m.value(obs, ag)
        mu = m.actor.mode(torch.cat([obs, ag], -1))
        log_prob = (-0.5 * (a - mu) ** 2 - 0.5 * LOG_2PI).sum(-1)
        expected = -(torch.clamp(torch.exp(3.0 * adv), max=100.0) * log_prob).mean()
    torch.testing.assert_close(m.actor_loss(obs, ag, a)[0], expected)


@pytest.mark.parametrize("const_std", [True, False])
def test_gradients_reach_only_the_networks_the_reference_trains(const_std):
    m, b = _tiny_method(const_std=const_std), goal_batch()
    value_loss, critic_loss, actor_loss, _ = _losses(m, b)

    def grads(loss):
        m.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        return {name: p.grad is not None and bool(p.grad.any()) for name, p in m.named_parameters()}

    g = grads(value_loss)
    assert all(g[k] for k in g if k.startswith("value.")) and not any(g[k] for k in g if not k.startswith("value."))
    g = grads(critic_loss)  # V(s') is read without gradient
    assert all(g[k] for k in g if k.startswith("critic.")) and not any(g[k] for k in g if not k.startswith("critic."))
    g = grads(actor_loss)  # the Q term reaches the actor through the actions, never the critic
    assert any(g[k] for k in g if k.startswith("actor.")) and not any(g[k] for k in g if not k.startswith("actor."))
    if not const_std:
        assert g["actor.log_std"]
    # The Q term alone does reach the actor (a detached action would give only the BC gradient).
    bc_free = _tiny_method(const_std=const_std, alpha=0.0)
    bc_free.actor_loss(b["observations"], b["actor_goals"], b["actions"])[0].backward()
    assert bc_free.actor.mean.weight.grad.abs().sum() > 0


def test_update_moves_target_towards_pre_step_critic():
    m, b = _tiny_method(), goal_batch()
    before_critic, before_target = copy.deepcopy(m.critic), copy.deepcopy(m.target_critic)
    m.update(b)
    tau = m.cfg.tau
    for t, tb, cb, c in zip(m.target_critic.parameters(), before_target.parameters(),
                            before_critic.parameters(), m.critic.parameters()):
        torch.testing.assert_close(t, (1 - tau) * tb + tau * cb)
        assert not torch.equal(c, cb)
    trained = {id(p) for g in m.opt.param_groups for p in g["params"]}
    assert trained == {id(p) for p in [*m.value.parameters(), *m.critic.parameters(), *m.actor.parameters()]}


def test_losses_move_as_they_should(trained):
    _, log = trained
    # The expectile value fit and the critic's TD error both fall well below their first interval.
    assert log["value/loss"][-1] < 0.2 * log["value/loss"][0], log["value/loss"]
    assert log["critic/loss"][-1] < 0.7 * log["critic/loss"][0], log["critic/loss"]
    # Values spread out towards -(steps to goal) as TD propagates.
    assert log["value/v_min"][-1] < log["value/v_min"][0] - 1.5, log["value/v_min"]
    # The normalised Q term sits near -1 once Q is negative everywhere (it is -Q/|Q|).
    assert abs(log["actor/q_loss"][-1] - 1.0) < 0.05, log["actor/q_loss"]


def test_beats_random_policy(trained):
    method, _ = trained
    learned = rollout_success(GoalPolicy(method).act)
    rng = np.random.default_rng(0)
    random = rollout_success(lambda s, g: rng.uniform(-1, 1, s.shape))
    assert learned > random + 0.15, (learned, random)
    # And it heads for the goal: actions point along g - s.
    s = torch.rand(500, 2) * 2 - 1
    g = torch.rand(500, 2) * 2 - 1
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(method.act(s, g), g - s).mean()
    assert cos > 0.8, cos


def test_value_ranks_states_nearer_the_goal_higher(trained):
    method, _ = trained
    rng = np.random.default_rng(1)
    goals = rng.uniform(-0.6, 0.6, (20, 2)).astype(np.float32)
    angles = rng.uniform(0, 2 * np.pi, 20)
    directions = np.stack([np.cos(angles), np.sin(angles)], 1)
    dist = np.linspace(0.05, 0.8, 8)
    states = np.clip(goals[:, None] + dist[None, :, None] * directions[:, None], -1, 1).astype(np.float32)
    v = method.values(torch.from_numpy(states.reshape(-1, 2)),
                      torch.from_numpy(np.repeat(goals, len(dist), 0))).reshape(20, len(dist)).numpy()
    i, j = np.triu_indices(len(dist), 1)
    concordant = (v[:, i] > v[:, j]).mean()
    assert concordant > 0.95, v.round(2)


def test_resume_matches_uninterrupted(tmp_path):
    # const_std=False draws actor noise from the torch RNG, so the resume must restore it too.
    a = assert_resume_matches_uninterrupted("gciql", tmp_path, TINY + ("const_std=false",))
    assert any(k.startswith("target_critic.") for k in a)
    assert not torch.equal(a["critic.net.net.0.weight"], a["target_critic.net.net.0.weight"])


def test_presets_for_ogbench_datasets(tmp_path):
    expected = {"pointmaze-medium-navigate-v0": 0.003, "pointmaze-large-navigate-v0": 0.003,
                "antmaze-medium-navigate-v0": 0.3, "cube-single-play-v0": 1.0, "scene-play-v0": 1.0,
                "puzzle-3x3-play-v0": 1.0}
    for name, alpha in expected.items():
        assert preset_for(name, "gciql") == {"alpha": alpha}, name
    assert preset_for("my-own-data.npz", "gciql") == {}
    data = point_play_dataset(tmp_path / "pointmaze-medium-navigate-v0-val.npz", episodes=3)
    run = trainer.new_run(_settings(tmp_path, data, steps=1), argv=["x"])
    run_cfg = json.loads((run / "run.json").read_text())
    assert run_cfg["preset"] == {"alpha": 0.003} and run_cfg["config"]["alpha"] == 0.003
    # --set still wins over the preset.
    run = trainer.new_run(_settings(tmp_path, data, steps=1, out="r2", overrides=TINY + ("alpha=0.5",)), argv=["x"])
    assert json.loads((run / "run.json").read_text())["config"]["alpha"] == 0.5


def test_listed_by_cli(capsys):
    out = methods_listing(capsys)
    line = next(ln for ln in out.splitlines() if ln.split()[:1] == ["gciql"])
    assert "goal" in line and "GCIQL" in line
