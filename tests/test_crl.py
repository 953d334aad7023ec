"""CRL: the contrastive loss against the reference's formulation, the total loss term by term
through the gradients (the DDPG+BC term never trains the critic), and its variants. The generic
checks (update, learning on the point world, resume, presets, listing) are in test_methods.py."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from autodidact.methods.crl import CRL
from routing import assert_gradients_route, grads, params_of

LOG_2PI = float(np.log(2 * np.pi))


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = {k: torch.randn(n, 3, generator=g) for k in ("observations", "next_observations", "value_goals", "actor_goals")}
    b["actions"] = torch.rand(n, 2, generator=g) * 2 - 1
    return b


def test_contrastive_loss_matches_reference_bce():
    torch.manual_seed(0)
    m = CRL(CRL.Config(value_hidden_dims=(16,), latent_dim=8, actor_hidden_dims=(8,)), (3,), 2)
    phi, psi = torch.randn(2, 32, 8), torch.randn(2, 32, 8)
    loss, info = m.contrastive_loss(phi, psi, "critic")
    logits = torch.einsum("eik,ejk->eij", phi, psi) / 8 ** 0.5
    eye = torch.eye(32).expand(2, 32, 32)
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits, eye))
    mean = logits.mean(0)
    torch.testing.assert_close(info["critic/binary_accuracy"], ((mean > 0) == torch.eye(32).bool()).float().mean())
    torch.testing.assert_close(info["critic/logits_pos"], mean.diagonal().mean())
    torch.testing.assert_close(info["critic/logits_neg"], mean[~torch.eye(32).bool()].mean())
    assert info["critic/categorical_accuracy"] == (mean.argmax(1) == torch.arange(32)).float().mean()


def _reference_terms(m, b):
    """OGBench's crl.py: binary NCE of phi(s, a) . psi(g) / sqrt(d) over the batch, and DDPG+BC with
    Q = min over the ensemble of the critic at the clipped mean action, the critic's weights
    constant (and psi of the actor goals without gradient), normalised by a constant mean |Q|."""
    obs, a, vg, ag = (b[k] for k in ("observations", "actions", "value_goals", "actor_goals"))
    cfg = m.cfg
    phi, psi = m.critic.phi(torch.cat([obs, a], -1)), m.critic.psi(vg)
    logits = torch.einsum("eik,ejk->eij", phi, psi) / cfg.latent_dim ** 0.5
    critic = F.binary_cross_entropy_with_logits(logits, torch.eye(len(obs)).expand_as(logits))
    mu = m.actor.mode(torch.cat([obs, ag], -1))
    constants = {k: p.detach() for k, p in m.critic.named_parameters()}
    q = functional_call(m.critic, constants, (obs, ag, mu.clamp(-1, 1))).amin(0)
    log_prob = (-0.5 * (a - mu) ** 2 - 0.5 * LOG_2PI).sum(-1)
    actor = -q.mean() / (q.abs().mean().detach() + 1e-6) - cfg.alpha * log_prob.mean()
    return critic, actor


def _tiny_method():
    torch.manual_seed(0)
    return CRL(CRL.Config(batch_size=8, actor_hidden_dims=(8,), value_hidden_dims=(8,), latent_dim=4), (3,), 2)


def test_loss_is_the_sum_of_the_reference_terms():
    m, b = _tiny_method(), _batch()
    critic, actor = _reference_terms(m, b)
    loss, info = m.loss(b)
    torch.testing.assert_close(loss, critic + actor)
    torch.testing.assert_close(info["critic/loss"], critic.detach())
    torch.testing.assert_close(info["actor/loss"], actor.detach())


def test_actor_loss_leaves_critic_gradients_alone():
    """DDPG+BC differentiates Q through the action only, as the reference (critic params constant):
    the critic gets exactly the contrastive term's gradient, the actor exactly the actor term's."""
    m, b = _tiny_method(), _batch()
    critic, actor = _reference_terms(m, b)
    loss, _ = m.loss(b)
    assert_gradients_route(loss, {"critic": (m.critic, critic), "actor": (m.actor, actor)})
    # Not vacuous: Q through the critic's own weights does reach the critic.
    obs, ag = b["observations"], b["actor_goals"]
    mean, _ = m.actor(torch.cat([obs, ag], -1))
    q = m.q_value(obs, ag, mean.clamp(-1, 1))
    assert any(g.abs().sum() > 0 for g in grads(-q.mean() / q.abs().mean(), params_of(m.critic)))


@pytest.mark.parametrize("overrides", [{"actor_loss": "awr"}, {"const_std": False}, {"logsumexp_coef": 0.01}])
def test_variants_update(overrides):
    cfg = CRL.Config(batch_size=16, actor_hidden_dims=(16,), value_hidden_dims=(16,), latent_dim=16, **overrides)
    torch.manual_seed(0)
    m = CRL(cfg, (3,), 2)
    batch = _batch(16)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    info = m.update(batch)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in info.values())
    assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items())
    if overrides.get("actor_loss") == "awr":  # the contrastive V that gives AWR its advantages is trained too
        assert "value/loss" in info and any(not torch.equal(before[k], v) for k, v in m.state_dict().items()
                                            if k.startswith("value_net."))
