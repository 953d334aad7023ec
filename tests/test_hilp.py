"""HILP: losses against the reference's formulas, gradient routing, phi as a temporal distance on a
folded chain, goal prompting on the point world, the phi figure, resume, the CLI listing."""


import numpy as np
import pytest
import torch

from autodidact import trainer
from autodidact.data.dataset import Dataset
from autodidact.methods.hilp import HILP, HILPConfig, normalize
from clihelp import methods_listing
from pointenv import assert_resume_matches_uninterrupted, goal_batch, point_play_dataset, rollout_success, settings

# Reduced for 2 CPU cores: 2x64 networks, batch 128, lr 1e-3 (the published 3x512 / 1024 / 3e-4
# needs ~100x the compute to get as far).
LEARN = ("batch_size=128", "actor_hidden_dims=64,64", "value_hidden_dims=64,64", "lr=1e-3")
TINY = ("batch_size=32", "actor_hidden_dims=16", "value_hidden_dims=16,16", "skill_dim=4")


def _tiny_method(**kw):
    torch.manual_seed(0)
    m = HILP(HILPConfig(actor_hidden_dims=(16,), value_hidden_dims=(16, 16), skill_dim=4, **kw), (3,), 2)
    with torch.no_grad():  # targets != online networks, so reads of each are distinguishable
        for p in [*m.target_phi_net.parameters(), *m.target_skill_critic.parameters()]:
            p.add_(0.1 * torch.randn_like(p))
    return m


def _spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_defaults_are_the_published_ones():
    cfg = HILPConfig()
    assert (cfg.skill_dim, cfg.expectile, cfg.skill_expectile, cfg.skill_temperature) == (32, 0.95, 0.9, 10.0)
    assert cfg.batch_size == 1024 and cfg.value_hidden_dims == (512, 512, 512) and cfg.layer_norm
    assert (cfg.value_p_curgoal, cfg.value_p_trajgoal, cfg.value_p_randomgoal) == (0.0, 0.625, 0.375)
    with pytest.raises(Exception, match="skill_expectile"):
        HILPConfig(skill_expectile=1.0)


def test_actor_activation_is_the_references_relu_and_older_runs_keep_gelu(tmp_path):
    import json
    assert HILPConfig().actor_activation == "relu"  # jaxrl_m's Policy, which the HILP code uses
    acts = lambda m: {type(x).__name__ for x in m.actor.modules()} & {"ReLU", "GELU"}  # noqa: E731
    assert acts(_tiny_method()) == {"ReLU"}
    assert acts(_tiny_method(actor_activation="gelu")) == {"GELU"}
    with pytest.raises(Exception, match="actor_activation"):
        HILPConfig(actor_activation="tanh")
    # A run saved before the option existed (no key in its config) was trained with GELU.
    data = point_play_dataset(tmp_path / "point.npz")
    run = trainer.new_run(settings("hilp", tmp_path, data, 2, overrides=TINY + ("actor_activation=gelu",)),
                          argv=["test"])
    run_json = json.loads((run / "run.json").read_text())
    del run_json["config"]["actor_activation"]
    (run / "run.json").write_text(json.dumps(run_json))
    _, method, _, _ = trainer.load_run(run)
    assert acts(method) == {"GELU"}


def test_losses_match_the_reference_formulas():
    """hilp_gcrl/src/agents/hilp.py, term by term, with the skills fixed."""
    m, b = _tiny_method(), goal_batch()
    cfg = m.cfg
    z = normalize(torch.randn(16, 4, generator=torch.Generator().manual_seed(3)))
    s, s2, g, a, r, mask = (b[k] for k in ("observations", "next_observations", "value_goals", "actions",
                                           "rewards", "masks"))

    def v(net, x, y):  # [2, B]: -sqrt(max(||phi(x) - phi(y)||^2, 1e-6)) per phi network
        return -torch.sqrt(((net(x) - net(y)) ** 2).sum(-1).clamp_min(1e-6))

    with torch.no_grad():
        n1, n2 = v(m.target_phi_net, s2, g)
        q = r + cfg.discount * mask * torch.minimum(n1, n2)
        adv = q - v(m.target_phi_net, s, g).mean(0)
        v1, v2 = v(m.phi_net, s, g)
        w = torch.where(adv >= 0, cfg.expectile, 1 - cfg.expectile)
        value = sum((w * (r + cfg.discount * mask * n - vv) ** 2).mean() for n, vv in ((n1, v1), (n2, v2)))
        loss, _ = m.value_loss(b)
        torch.testing.assert_close(loss, value)

        phi = m.phi_net(torch.cat([s, s2]))[0]
        rew = ((phi[16:] - phi[:16]) * z).sum(-1)
        qt = m.target_skill_critic(torch.cat([s, z, a], -1)).min(0).values
        sv = m.skill_value(torch.cat([s, z], -1))
        ws = torch.where(qt - sv >= 0, cfg.skill_expectile, 1 - cfg.skill_expectile)
        skill_value = (ws * (qt - sv) ** 2).mean()
        qtd = rew + cfg.skill_discount * m.skill_value(torch.cat([s2, z], -1))
        q1, q2 = m.skill_critic(torch.cat([s, z, a], -1))
        critic = ((q1 - qtd) ** 2 + (q2 - qtd) ** 2).mean()
        weights = torch.exp((qt - sv) * cfg.skill_temperature).clamp(max=100.0)
        actor = -(weights * m.actor.log_prob(torch.cat([s, z], -1), a)).mean()
        losses, info = m.skill_losses(b, z)
    torch.testing.assert_close(losses["skill_value"], skill_value)
    torch.testing.assert_close(losses["skill_critic"], critic)
    torch.testing.assert_close(losses["skill_actor"], actor)
    torch.testing.assert_close(info["skill_critic/reward_mean"], rew.mean())


def test_gradients_reach_only_their_networks():
    m, b = _tiny_method(), goal_batch()
    z = m.sample_skills(16, "cpu")
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(16))
    value_loss, _ = m.value_loss(b)
    losses, _ = m.skill_losses(b, z)
    nets = {"phi": m.phi_net, "value": m.skill_value, "critic": m.skill_critic, "actor": m.actor}

    def touched(loss):
        m.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        return {k for k, net in nets.items() if any(p.grad is not None and p.grad.abs().sum() > 0
                                                     for p in net.parameters())}
    # phi learns only from its temporal-distance value; the skill rewards read it under stop-gradient.
    assert touched(value_loss) == {"phi"}
    assert touched(losses["skill_value"]) == {"value"}
    assert touched(losses["skill_critic"]) == {"critic"}
    assert touched(losses["skill_actor"]) == {"actor"}
    assert all(p.grad is None for p in [*m.target_phi_net.parameters(), *m.target_skill_critic.parameters()])


def test_targets_follow_pre_update_networks():
    m = _tiny_method(tau=0.5)
    before = {k: [p.detach().clone() for p in getattr(m, k).parameters()] for k in (
        "phi_net", "skill_critic", "target_phi_net", "target_skill_critic")}
    m.update(goal_batch())
    for online, target in (("phi_net", "target_phi_net"), ("skill_critic", "target_skill_critic")):
        for t, t0, o0 in zip(getattr(m, target).parameters(), before[target], before[online]):
            torch.testing.assert_close(t, 0.5 * t0 + 0.5 * o0)


def test_act_is_goal_prompting():
    m = _tiny_method()
    obs, goals = torch.randn(5, 3), torch.randn(5, 3)
    with torch.no_grad():
        z = normalize(m.phi(goals) - m.phi(obs))
        torch.testing.assert_close(m.act(obs, goals), m.act_skill(obs, z))
        torch.testing.assert_close(m.act_skill(obs, z[0]), m.act_skill(obs, z[:1].expand(5, -1)))
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert torch.equal(m.act(obs, goals, 1.0, g1), m.act(obs, goals, 1.0, g2))
        # At the goal the skill is ~0 instead of NaN.
        assert torch.isfinite(m.act(obs, obs)).all()


def _folded_chain(path, length=24, episodes=40, steps=50, seed=0):
    """A chain of `length` states on a U: up one side, across, down the other, so its two ends are
    near in space (0.3 apart) and far in time. Episodes walk it, reversing now and then."""
    side = length // 3
    up = [(0.0, i / (side - 1)) for i in range(side)]
    across = [(0.3 * (i + 1) / (length - 2 * side + 1), 1.0) for i in range(length - 2 * side)]
    down = [(0.3, 1 - i / (side - 1)) for i in range(side)]
    pos = np.array(up + across + down, np.float32)
    rng = np.random.default_rng(seed)
    obs, acts, terms = [], [], []
    for _ in range(episodes):
        k, d = int(rng.integers(length)), int(rng.choice([-1, 1]))
        for t in range(steps):
            d = -d if rng.random() < 0.2 else d
            obs.append(pos[k])
            acts.append([float(d)])
            terms.append(t == steps - 1)
            k = int(np.clip(k + d, 0, length - 1))
    Dataset(np.array(obs), np.array(terms), np.array(acts, np.float32)).save(path)
    return pos


def test_phi_distances_grow_with_temporal_distance(tmp_path):
    pos = _folded_chain(tmp_path / "chain.npz")
    run = trainer.new_run(settings("hilp", tmp_path, tmp_path / "chain.npz", 300, overrides=(
        "batch_size=128", "actor_hidden_dims=16", "value_hidden_dims=64,64", "lr=1e-3")), argv=["test"])
    _, m, _, _ = trainer.load_run(run)
    with torch.no_grad():
        phi = m.phi(torch.from_numpy(pos)).numpy()
    n = len(pos)
    dist = np.linalg.norm(phi[:, None] - phi[None], axis=-1)
    steps = np.abs(np.arange(n)[:, None] - np.arange(n)[None])
    space = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    iu = np.triu_indices(n, 1)
    rho_time, rho_space = _spearman(dist[iu], steps[iu]), _spearman(dist[iu], space[iu])
    # phi orders pairs by steps apart, not by how near they are in space.
    assert rho_time > 0.8 and rho_time > rho_space + 0.1, (rho_time, rho_space)
    # The chain's far end (0.3 away in space) is farther in phi than its middle (~1 away in space).
    assert dist[0, -1] > 1.3 * dist[0, n // 2], (dist[0, -1], dist[0, n // 2])
    assert (run / "figures" / "phi.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hilp")
    data = point_play_dataset(tmp / "point.npz")
    run = trainer.new_run(settings("hilp", tmp, data, 600, overrides=LEARN, log_every=50), argv=["test"])
    _, method, _, step = trainer.load_run(run)
    assert step == 600
    return run, method


def test_goal_prompting_beats_random_policy(trained):
    from autodidact.methods.base import GoalPolicy
    _, method = trained
    learned = rollout_success(GoalPolicy(method).act)
    rng = np.random.default_rng(0)
    random = rollout_success(lambda s, g: rng.uniform(-1, 1, s.shape))
    assert learned > random + 0.4, (learned, random)


def test_value_is_minus_learned_steps(trained):
    """-V(s, g) = ||phi(s) - phi(g)|| grows along a straight line away from g, about one unit per
    STEP-sized move (the point moves 0.1 per step)."""
    _, method = trained
    goal = torch.tensor([[0.5, -0.3]])
    line = torch.stack([torch.linspace(0.5, -0.7, 13), torch.full((13,), -0.3)], -1)
    v = method.values(line, goal.expand(13, 2)).numpy()
    assert _spearman(-v, np.arange(13)) > 0.9, v
    assert 4.0 < -v[-1] < 40.0, v


def test_phi_figure_written(trained):
    run, _ = trained
    assert (run / "figures" / "phi.png").stat().st_size > 10_000


def test_resume_matches_uninterrupted(tmp_path):
    a = assert_resume_matches_uninterrupted("hilp", tmp_path, TINY)
    assert any(k.startswith("target_phi_net.") for k in a) and any(k.startswith("target_skill_critic.") for k in a)


def test_listed_by_cli_with_its_prompts(capsys):
    out = methods_listing(capsys)
    line = next(line for line in out.splitlines() if line.startswith("hilp "))
    assert "goal,reward" in line
