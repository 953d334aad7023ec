"""CRL: the contrastive loss against the reference's formulation, learning on the point world, resume, presets."""

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autodidact import trainer
from autodidact.methods.base import GoalPolicy
from autodidact.methods.crl import CRL
from autodidact.presets import preset_for
from clihelp import methods_listing
from pointenv import assert_resume_matches_uninterrupted, point_play_dataset, rollout_success

# discount 0.9: geometric positives ~10 steps ahead; at 0.99 they would mostly be the end of these
# 60-step episodes (OGBench episodes are 1000 steps long).
SMALL = ("batch_size=256", "actor_hidden_dims=128,128", "value_hidden_dims=128,128", "latent_dim=64",
         "discount=0.9")


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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crl")
    data = point_play_dataset(tmp / "point.npz")
    run = trainer.new_run(trainer.TrainSettings(method="crl", dataset=str(data), out=str(tmp / "run"), steps=800,
                                                eval_episodes=0, seed=0, log_every=50, overrides=SMALL,
                                                progress=False), argv=["test"])
    _, method, _, step = trainer.load_run(run)
    assert step == 800
    return run, method


def test_losses_move(trained):
    run, _ = trained
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    first, last = rows[0], rows[-1]
    # The classifier learns to pick each transition's own future out of the batch: its loss goes
    # below the best goal-blind classifier (one constant logit c with sigmoid(c) = 1/B) and it
    # finds the positive several times more often than chance.
    b = 256
    c = np.log(1 / (b - 1))
    blind = np.log1p(np.exp(c)) - c / b
    assert float(last["critic/loss"]) < 0.97 * blind < float(first["critic/loss"])
    assert float(last["critic/categorical_accuracy"]) > 4 / b
    assert float(last["critic/logits_pos"]) > float(last["critic/logits_neg"]) + 0.5


def test_beats_random_policy(trained):
    _, method = trained
    learned = rollout_success(GoalPolicy(method).act)
    rng = np.random.default_rng(0)
    random = rollout_success(lambda s, g: rng.uniform(-1, 1, s.shape))
    assert learned > random + 0.25, (learned, random)


def test_critic_ranks_states_nearer_the_goal_higher(trained):
    _, method = trained
    with torch.no_grad():
        for goal in ([0.7, 0.6], [-0.6, 0.5], [0.2, -0.7]):
            g = torch.tensor(goal)
            start = -g
            frac = torch.linspace(0, 1, 12)[:, None]
            states = start + frac * (g - start)                  # a line from -g to g
            goals = g.expand_as(states)
            v = method.q_value(states, goals, method.act(states, goals).clamp(-1, 1)).numpy()
            ranks = np.argsort(np.argsort(v))
            spearman = np.corrcoef(ranks, np.arange(len(v)))[0, 1]
            assert spearman > 0.9, (goal, v)


def test_resume_matches_uninterrupted(tmp_path):
    assert_resume_matches_uninterrupted("crl", tmp_path, ("batch_size=64", "actor_hidden_dims=32,32", "value_hidden_dims=32,32", "latent_dim=16"), steps=60, every=20)


def test_presets_and_listing(capsys):
    assert preset_for("pointmaze-medium-navigate-v0", "crl") == {"alpha": 0.03}
    assert preset_for("data/puzzle-3x3-play-v0-val.npz", "crl") == {"alpha": 3.0}
    assert preset_for("something-else.npz", "crl") == {}
    out = methods_listing(capsys)
    assert any(line.startswith("crl ") for line in out.splitlines())


@pytest.mark.parametrize("overrides", [{"actor_loss": "awr"}, {"const_std": False}, {"logsumexp_coef": 0.01}])
def test_variants_update(overrides):
    cfg = CRL.Config(batch_size=16, actor_hidden_dims=(16,), value_hidden_dims=(16,), latent_dim=16, **overrides)
    torch.manual_seed(0)
    m = CRL(cfg, (3,), 2)
    batch = {k: torch.randn(16, 3) for k in ("observations", "next_observations", "value_goals", "actor_goals")}
    batch["actions"] = torch.rand(16, 2) * 2 - 1
    before = {k: v.clone() for k, v in m.state_dict().items()}
    info = m.update(batch)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in info.values())
    assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_actor_loss_leaves_critic_gradients_alone():
    # DDPG+BC differentiates Q through the action only, as the reference (critic params constant).
    torch.manual_seed(0)
    m = CRL(CRL.Config(batch_size=8, actor_hidden_dims=(8,), value_hidden_dims=(8,), latent_dim=4), (3,), 2)
    batch = {k: torch.randn(8, 3) for k in ("observations", "value_goals", "actor_goals")}
    batch["actions"] = torch.rand(8, 2) * 2 - 1
    _, info = m.losses(batch)
    obs, ag = batch["observations"], batch["actor_goals"]
    mean, _ = m.actor(torch.cat([obs, ag], -1))
    q = m.q_value(obs, ag, mean.clamp(-1, 1))
    (-q.mean() / q.abs().mean()).backward()
    critic_grad = [p.grad.clone() for p in m.critic.parameters()]
    m.zero_grad()
    loss, _ = m.losses(batch)
    crit_only, _ = m.contrastive_loss(m.critic.phi(torch.cat([obs, batch["actions"]], -1)),
                                      m.critic.psi(batch["value_goals"]), "critic")
    g_total = torch.autograd.grad(loss, list(m.critic.parameters()))
    g_crit = torch.autograd.grad(crit_only, list(m.critic.parameters()))
    for a, b in zip(g_total, g_crit):
        torch.testing.assert_close(a, b)
    assert any(g.abs().sum() > 0 for g in critic_grad)  # the naive path would have touched the critic
