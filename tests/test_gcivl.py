"""GCIVL: its loss against the reference's formulas, term by term through the gradients, and the
per-member LayerNorms of its value heads (old checkpoints included). The generic checks (update,
learning on the point world, resume, presets, listing) are in test_methods.py."""

import numpy as np
import torch

from autodidact import nn as ann
from autodidact.methods import get_method
from autodidact.nn import layers
from autodidact.workflows.checkpoint import load_checkpoint, save_checkpoint
from pointenv import goal_batch
from routing import assert_gradients_route


def _tiny_method(**overrides):
    cls = get_method("gcivl")
    torch.manual_seed(0)
    m = cls(cls.Config(actor_hidden_dims=(16, 16), value_hidden_dims=(16, 16), **overrides), (3,), 2)
    # Push the target away from the online value so target and online reads are distinguishable.
    with torch.no_grad():
        for p in m.target_value.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def _reference_terms(m, b):
    """Value and actor loss as OGBench's gcivl.py writes them, head by head, with its stop-gradients:
    expectile weight from the target advantage (min target at s', mean target at s), squared error
    of each online head onto its own target head; AWR actor on the online value's V(s', g) - V(s, g)
    read without gradient."""
    cfg = m.cfg
    with torch.no_grad():
        tv = lambda o, g: m.target_value(o, g)  # noqa: E731
        (n1, n2), (t1, t2) = tv(b["next_observations"], b["value_goals"]), tv(b["observations"], b["value_goals"])
        q = b["rewards"] + cfg.discount * b["masks"] * torch.minimum(n1, n2)
        adv = q - (t1 + t2) / 2
        w = torch.where(adv >= 0, cfg.expectile, 1 - cfg.expectile)
        v = m.value(b["observations"], b["actor_goals"]).mean(0)
        nv = m.value(b["next_observations"], b["actor_goals"]).mean(0)
        weights = torch.clamp(torch.exp(cfg.alpha * (nv - v)), max=100.0)
    v1, v2 = m.value(b["observations"], b["value_goals"])
    value = sum((w * (b["rewards"] + cfg.discount * b["masks"] * n - v) ** 2).mean() for n, v in ((n1, v1), (n2, v2)))
    mean = m.actor.mode(torch.cat([b["observations"], b["actor_goals"]], -1))
    log_prob = (-0.5 * (b["actions"] - mean) ** 2 - 0.5 * np.log(2 * np.pi)).sum(-1)
    actor = -(weights * log_prob).mean()
    return value, actor


def test_loss_is_the_sum_of_the_reference_terms():
    m, b = _tiny_method(), goal_batch()
    value, actor = _reference_terms(m, b)
    loss, info = m.loss(b)
    torch.testing.assert_close(loss, value + actor)
    torch.testing.assert_close(info["value/loss"], value.detach())
    torch.testing.assert_close(info["actor/loss"], actor.detach())
    assert {"value/loss", "value/v_mean", "actor/loss", "actor/adv", "actor/mse"} <= set(info)


def test_gradients_follow_the_reference():
    """The value gets exactly the value term's gradient (the actor term does not train it), the
    actor exactly the actor term's (the value term does not train it), the target none."""
    m, b = _tiny_method(), goal_batch()
    value, actor = _reference_terms(m, b)
    loss, _ = m.loss(b)
    assert_gradients_route(loss, {"value": (m.value, value), "actor": (m.actor, actor)}, frozen=[m.target_value])


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
    class SharedLayerNorm(torch.nn.LayerNorm):  # the earlier layout: one LayerNorm for every member
        def __init__(self, ensemble, dim, eps):
            super().__init__(dim, eps=eps)

    b = goal_batch()
    monkeypatch.setattr(layers, "EnsembleLayerNorm", SharedLayerNorm)
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
        assert all(v.shape == p.shape for v in new.optimizer.state[p].values() if v.dim())
    new.update(b)
