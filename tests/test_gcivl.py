"""GCIVL: its losses against the reference's formulas, learning on the tiny point world (losses,
goal reaching, value ordering), checkpoint/resume, presets and the CLI listing."""

import copy
import json

import numpy as np
import pytest
import torch

from autodidact import nn as ann
from autodidact import trainer
from autodidact.checkpoint import load_checkpoint, save_checkpoint
from autodidact.methods import get_method
from autodidact.methods.base import GoalPolicy
from autodidact.presets import preset_for
from clihelp import methods_listing
from pointenv import assert_resume_matches_uninterrupted, goal_batch, point_play_dataset, rollout_success, settings, train_on_point_play

LEARN = ("batch_size=256", "actor_hidden_dims=128,128", "value_hidden_dims=128,128")
TINY = ("batch_size=32", "actor_hidden_dims=32,32", "value_hidden_dims=32,32")


def _settings(tmp_path, data, steps, out="run", overrides=TINY, **kw):
    return settings("gcivl", tmp_path, data, steps, out=out, overrides=overrides, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small training run shared by the learning checks (about 20 s on one thread)."""
    return train_on_point_play("gcivl", tmp_path_factory.mktemp("gcivl"), 700, LEARN)


def _tiny_method(**overrides):
    cls = get_method("gcivl")
    torch.manual_seed(0)
    m = cls(cls.Config(actor_hidden_dims=(16, 16), value_hidden_dims=(16, 16), **overrides), (3,), 2)
    # Push the target away from the online value so target and online reads are distinguishable.
    with torch.no_grad():
        for p in m.target_value.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def test_losses_match_the_reference_formulas():
    """Value loss as OGBench's gcivl.py writes it, head by head: expectile weight from the target
    advantage (min target at s', mean target at s), squared error of each online head onto its own
    target head; AWR actor on the online value's V(s', g) - V(s, g)."""
    m, b = _tiny_method(), goal_batch()
    cfg = m.cfg
    with torch.no_grad():
        tv = lambda o, g: m.target_value(o, g)  # noqa: E731
        (n1, n2), (t1, t2) = tv(b["next_observations"], b["value_goals"]), tv(b["observations"], b["value_goals"])
        q = b["rewards"] + cfg.discount * b["masks"] * torch.minimum(n1, n2)
        adv = q - (t1 + t2) / 2
        v1, v2 = m.value(b["observations"], b["value_goals"])
        w = torch.where(adv >= 0, cfg.expectile, 1 - cfg.expectile)
        expected_value = sum((w * (b["rewards"] + cfg.discount * b["masks"] * n - v) ** 2).mean()
                             for n, v in ((n1, v1), (n2, v2)))
        v = m.value(b["observations"], b["actor_goals"]).mean(0)
        nv = m.value(b["next_observations"], b["actor_goals"]).mean(0)
        weights = torch.clamp(torch.exp(cfg.alpha * (nv - v)), max=100.0)
        mean = m.actor.mode(torch.cat([b["observations"], b["actor_goals"]], -1))
        log_prob = (-0.5 * (b["actions"] - mean) ** 2 - 0.5 * np.log(2 * np.pi)).sum(-1)
        expected_actor = -(weights * log_prob).mean()
    value_loss, info = m.value_loss(b)
    actor_loss, actor_info = m.actor_loss(b)
    torch.testing.assert_close(value_loss, expected_value)
    torch.testing.assert_close(actor_loss, expected_actor)
    assert {"value/loss", "value/v_mean", "actor/loss", "actor/adv", "actor/mse"} <= set(info) | set(actor_info)


def test_update_gradients_and_target_follow_the_reference():
    """The actor loss does not train the value, the value loss does not train the actor, and the
    target moves towards the value weights from before the step (as the reference's update)."""
    m, b = _tiny_method(), goal_batch()
    value_loss, _ = m.value_loss(b)
    value_loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in m.actor.parameters())
    assert all(p.grad is None for p in m.target_value.parameters())
    m.zero_grad(set_to_none=True)
    actor_loss, _ = m.actor_loss(b)
    actor_loss.backward()
    assert all(p.grad is None for p in m.value.parameters())
    assert any(p.grad is not None and p.grad.any() for p in m.actor.parameters())
    m.zero_grad(set_to_none=True)

    before_value, before_target = copy.deepcopy(m.value), copy.deepcopy(m.target_value)
    m.update(b)
    tau = m.cfg.tau
    for t, tb, vb, v in zip(m.target_value.parameters(), before_target.parameters(),
                            before_value.parameters(), m.value.parameters()):
        torch.testing.assert_close(t, (1 - tau) * tb + tau * vb)
        assert not torch.equal(v, vb)  # and the online value did take its step
    assert set(m.optimizers()) == {"main"}
    trained = {id(p) for g in m.opt.param_groups for p in g["params"]}
    assert trained == {id(p) for p in [*m.value.parameters(), *m.actor.parameters()]}


def test_losses_move_as_they_should(trained):
    _, log = trained
    # TD regression gets fitted early, then rises a little as values keep propagating (the target
    # moves); its best interval is far below the first.
    assert log["value/loss"][1:].min() < 0.5 * log["value/loss"][0], log["value/loss"]
    # Values spread out towards -(steps to goal): the most distant goals grow more negative.
    assert log["value/v_min"][-1] < log["value/v_min"][0] - 1.0, log["value/v_min"]
    # Dataset actions towards in-trajectory goals gain value: the AWR advantage becomes positive.
    assert log["actor/adv"][-1] > 0.05, log["actor/adv"]


def test_beats_random_policy(trained):
    method, _ = trained
    learned = rollout_success(GoalPolicy(method).act)
    rng = np.random.default_rng(0)
    random = rollout_success(lambda s, g: rng.uniform(-1, 1, s.shape))
    assert learned > random + 0.4, (learned, random)


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
    # Pairwise ordering along each line: the nearer state has the higher value.
    i, j = np.triu_indices(len(dist), 1)
    concordant = (v[:, i] > v[:, j]).mean()
    assert concordant > 0.95, v.round(2)


def test_resume_matches_uninterrupted(tmp_path):
    a = assert_resume_matches_uninterrupted("gcivl", tmp_path, TINY)
    assert any(k.startswith("target_value.") for k in a)
    # The target really differs from the online value (it is checkpointed, not recomputed).
    assert not torch.equal(a["value.net.net.0.weight"], a["target_value.net.net.0.weight"])
    state = json.loads((tmp_path / "full" / "checkpoints" / "step_00000040" / "state.json").read_text())
    assert set(state["optimizers"]) == {"main"}


def test_value_heads_have_their_own_layer_norms():
    """As in the reference, whose ensembles are vmapped over whole networks: after an update the
    two value heads' LayerNorm parameters differ."""
    m = _tiny_method()
    m.update(goal_batch())
    norms = [mod for mod in m.value.modules() if isinstance(mod, ann.EnsembleLayerNorm)]
    assert norms and all(n.weight.shape[0] == 2 for n in norms)
    assert all(not torch.equal(n.weight[0], n.weight[1]) for n in norms)


def test_checkpoint_with_a_shared_layer_norm_loads(tmp_path, monkeypatch):
    """Runs saved before the LayerNorms were per member (one shared by both heads) load with a copy
    per member, Adam's moments included, compute the same values and train on."""
    class SharedLayerNorm(torch.nn.LayerNorm):  # the earlier layout
        def __init__(self, ensemble, dim, eps):
            super().__init__(dim, eps=eps)

        def forward(self, xs):
            return [torch.nn.functional.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps) for x in xs]

        def stacked(self, h):
            return torch.nn.functional.layer_norm(h, h.shape[-1:], self.weight, self.bias, self.eps)

    b = goal_batch()
    monkeypatch.setattr(ann, "EnsembleLayerNorm", SharedLayerNorm)
    old = _tiny_method()
    for _ in range(2):
        old.update(b)
    saved = save_checkpoint(tmp_path, 2, old, {})
    with torch.no_grad():
        expected = old.value(b["observations"], b["value_goals"])
    monkeypatch.undo()

    new = get_method("gcivl")(old.cfg, (3,), 2)
    load_checkpoint(saved, new)
    with torch.no_grad():
        torch.testing.assert_close(new.value(b["observations"], b["value_goals"]), expected)
    for p in new.parameters():
        assert all(v.shape == p.shape for v in new.opt.state[p].values() if v.dim())
    new.update(b)


def test_presets_for_ogbench_datasets(tmp_path):
    for name in ("pointmaze-medium-navigate-v0", "pointmaze-large-navigate-v0", "antmaze-medium-navigate-v0",
                 "cube-single-play-v0", "scene-play-v0", "puzzle-3x3-play-v0"):
        assert preset_for(name, "gcivl") == {"alpha": 10.0}, name
    assert preset_for("data/pointmaze-medium-navigate-v0-val.npz", "gcivl") == {"alpha": 10.0}
    assert preset_for("my-own-data.npz", "gcivl") == {}
    # A run on a file named like an OGBench dataset records the preset it applied.
    data = point_play_dataset(tmp_path / "pointmaze-medium-navigate-v0.npz", episodes=3)
    run = trainer.new_run(_settings(tmp_path, data, steps=1), argv=["x"])
    run_cfg = json.loads((run / "run.json").read_text())
    assert run_cfg["preset"] == {"alpha": 10.0} and run_cfg["config"]["alpha"] == 10.0


def test_listed_by_cli(capsys):
    out = methods_listing(capsys)
    line = next(ln for ln in out.splitlines() if ln.split()[:1] == ["gcivl"])
    assert "goal" in line and "GCIVL" in line
