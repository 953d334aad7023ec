"""HIQL: gradient routing, two-level inference, learning on the point world, resume, presets."""

import csv
import math

import numpy as np
import pytest
import torch

from autodidact import trainer
from autodidact.methods.base import GoalPolicy
from autodidact.methods.hiql import HIQL, HIQLConfig
from autodidact.presets import preset_for
from clihelp import methods_listing
from pointenv import assert_resume_matches_uninterrupted, point_play_dataset, rollout_success

# Reduced config for 2 CPU cores; subgoals 10 steps ahead since point episodes are short.
LEARN = ("batch_size=256", "actor_hidden_dims=128,128", "value_hidden_dims=128,128", "subgoal_steps=10")
TINY = ("batch_size=32", "actor_hidden_dims=32,32", "value_hidden_dims=32,32", "subgoal_steps=5")


def _settings(tmp_path, data, steps, out, overrides, **kw):
    return trainer.TrainSettings(method="hiql", dataset=str(data), out=str(tmp_path / out), steps=steps,
                                 eval_episodes=0, seed=kw.pop("seed", 0), overrides=overrides,
                                 progress=False, **kw)


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
    return HIQL(cfg, (3,), 2)


@pytest.mark.parametrize("rep_grad", [False, True])
def test_only_the_value_trains_phi_unless_low_actor_rep_grad(rep_grad):
    m = _tiny_method(low_actor_rep_grad=rep_grad)
    losses, info = m.losses(_batch())
    assert all(k.split("/")[0] in ("value", "low_actor", "high_actor") for k in info)
    # Actor losses never reach the value; the high actor's targets never reach phi.
    (losses["low_actor"] + losses["high_actor"]).backward(retain_graph=True)
    assert all(p.grad is None for p in m.value.parameters())
    phi_grads = [p.grad for p in m.phi.parameters()]
    if rep_grad:
        assert any(g is not None and g.abs().sum() > 0 for g in phi_grads)
    else:
        assert all(g is None for g in phi_grads)
    m.zero_grad(set_to_none=True)
    losses["high_actor"].backward(retain_graph=True)
    assert all(p.grad is None for p in m.phi.parameters())
    # The value loss trains phi and the value, never the target or the actors.
    m.zero_grad(set_to_none=True)
    losses["value"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.phi.parameters())
    assert all(p.grad is None for p in [*m.low_actor.parameters(), *m.high_actor.parameters(),
                                        *m.target_value.parameters()])


def test_target_follows_pre_update_value_and_phi_is_length_normalized():
    m = _tiny_method(tau=0.5)
    before_value = [p.detach().clone() for p in m.value.parameters()]
    with torch.no_grad():
        for p in m.target_value.parameters():
            p.add_(1.0)  # make target != value so the Polyak step is visible
    before_target = [p.detach().clone() for p in m.target_value.parameters()]
    m.update(_batch())
    for t, t0, v0 in zip(m.target_value.parameters(), before_target, before_value):
        torch.testing.assert_close(t, 0.5 * t0 + 0.5 * v0)
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hiql")
    data = point_play_dataset(tmp / "point.npz")
    run = trainer.new_run(_settings(tmp, data, 1000, "run", LEARN, log_every=10), argv=["test"])
    _, method, _, step = trainer.load_run(run)
    assert step == 1000
    return run, method


def test_losses_move_as_they_should(trained):
    run, _ = trained
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    col = lambda k: np.array([float(r[k]) for r in rows])  # noqa: E731
    value_loss, v_mean, high_mse = col("value/loss"), col("value/v_mean"), col("high_actor/mse")
    # The TD loss falls fast from its start; later it rises again as values grow towards the
    # number of steps to the goal (bootstrapped residuals scale with |V|), so compare the early
    # minimum and check it never returns to its start.
    assert value_loss[:20].min() < 0.5 * value_loss[0], value_loss[:20]
    assert value_loss[-1] < value_loss[0], (value_loss[0], value_loss[-1])
    # Values are (minus) discounted steps to the goal: they fall well below a one-step horizon.
    assert v_mean[-1] < v_mean[0] - 2.0, (v_mean[0], v_mean[-1])
    # The high actor regresses phi of the subgoal ever better. (The low actor's action error on this
    # noisy play data stays near its start, as GCBC's does; its learning shows in the rollouts.)
    assert high_mse[-1] < 0.7 * high_mse[0], (high_mse[0], high_mse[-1])


def test_beats_random_policy(trained):
    _, method = trained
    learned = rollout_success(GoalPolicy(method).act)
    rng = np.random.default_rng(0)
    random = rollout_success(lambda s, g: rng.uniform(-1, 1, s.shape))
    assert learned > random + 0.25, (learned, random)


def test_value_ranks_states_nearer_the_goal_higher(trained):
    _, method = trained
    rng = np.random.default_rng(1)
    worst = 1.0
    for _ in range(10):
        start, goal = rng.uniform(-0.9, 0.9, 2), rng.uniform(-0.9, 0.9, 2)
        line = np.linspace(0.0, 1.0, 8)[:, None]
        states = torch.tensor(start + line * (goal - start), dtype=torch.float32)
        v = method.values(states, torch.tensor(goal, dtype=torch.float32).expand(8, 2)).numpy()
        # Spearman correlation between progress along the line and value (no ties in progress).
        ranks = np.argsort(np.argsort(v))
        rho = np.corrcoef(ranks, np.arange(8))[0, 1]
        worst = min(worst, rho)
    assert worst > 0.7, worst


def test_resume_matches_uninterrupted(tmp_path):
    a = assert_resume_matches_uninterrupted("hiql", tmp_path, TINY)
    assert any(k.startswith("target_value.") for k in a)


def test_presets_applied_for_ogbench_names(tmp_path):
    assert preset_for("pointmaze-medium-navigate-v0", "hiql") == {"high_alpha": 3.0, "low_alpha": 3.0}
    assert preset_for("data/cube-single-play-v0-val.npz", "hiql")["subgoal_steps"] == 10
    assert preset_for("puzzle-3x3-play-v0", "hiql")["subgoal_steps"] == 10
    assert "subgoal_steps" not in preset_for("antmaze-medium-navigate-v0", "hiql")
    # A dataset file named like an OGBench manipulation dataset trains with subgoal_steps 10.
    data = point_play_dataset(tmp_path / "scene-play-v0.npz", episodes=3)
    run = trainer.new_run(_settings(tmp_path, data, 2, "run", TINY[:3]), argv=["x"])
    _, method, _, _ = trainer.load_run(run)
    assert method.cfg.subgoal_steps == 10 and method.cfg.expectile == 0.7


def test_listed_by_cli(capsys):
    out = methods_listing(capsys)
    assert "hiql" in out
