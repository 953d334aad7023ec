"""HILP: its loss against the reference's formulas, term by term through the gradients, its
defaults, goal prompting as `act`, and phi as a temporal distance on a folded chain. The generic
checks (update, learning and goal prompting on the point world, the phi figure, resume, listing)
are in test_methods.py; prompting is in test_prompt.py."""

import numpy as np
import pytest
import torch

from autodidact.workflows.runs import load_run
from autodidact.workflows import train as trainer
from autodidact.data.dataset import Dataset
from autodidact.methods.hilp import HILP, HILPConfig, normalize
from pointenv import goal_batch, point_play_dataset, settings
from routing import assert_gradients_route

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
    vg = cfg.value_goals
    assert (vg.p_curgoal, vg.p_trajgoal, vg.p_randomgoal, vg.geom_sample) == (0.0, 0.625, 0.375, True)
    assert not hasattr(cfg, "actor_goals")  # the skill policy's goals are skills, not relabeled states
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
    _, method, _, _ = load_run(run)
    assert acts(method) == {"GELU"}


def _reference_terms(m, b, z):
    """hilp_gcrl/src/agents/hilp.py, term by term, with the skills fixed to z and the reference's
    stop-gradients: phi's value trains phi only; the skill rewards read phi without gradient; the
    skill value regresses onto the min target critic; the critic's target uses the skill value
    without gradient; the actor's AWR advantage carries none."""
    cfg = m.cfg
    s, s2, g, a, r, mask = (b[k] for k in ("observations", "next_observations", "value_goals", "actions",
                                           "rewards", "masks"))
    n = len(s)

    def v(net, x, y):  # [2, B]: -sqrt(max(||phi(x) - phi(y)||^2, 1e-6)) per phi network
        return -torch.sqrt(((net(x) - net(y)) ** 2).sum(-1).clamp_min(1e-6))

    with torch.no_grad():
        n1, n2 = v(m.target_phi_net, s2, g)
        q = r + cfg.discount * mask * torch.minimum(n1, n2)
        adv = q - v(m.target_phi_net, s, g).mean(0)
        w = torch.where(adv >= 0, cfg.expectile, 1 - cfg.expectile)
        phi = m.phi_net(torch.cat([s, s2]))[0]
        rew = ((phi[n:] - phi[:n]) * z).sum(-1)
        qt = m.target_skill_critic(s, z, a).min(0).values
        qtd = rew + cfg.skill_discount * m.skill_value(s2, z)
    v1, v2 = v(m.phi_net, s, g)
    value = sum((w * (r + cfg.discount * mask * nn - vv) ** 2).mean() for nn, vv in ((n1, v1), (n2, v2)))
    sv = m.skill_value(s, z)
    ws = torch.where(qt - sv.detach() >= 0, cfg.skill_expectile, 1 - cfg.skill_expectile)
    skill_value = (ws * (qt - sv) ** 2).mean()
    q1, q2 = m.skill_critic(s, z, a)
    critic = ((q1 - qtd) ** 2 + (q2 - qtd) ** 2).mean()
    weights = torch.exp((qt - sv.detach()) * cfg.skill_temperature).clamp(max=100.0)
    mean, log_std = m.actor(m.actor_encoder(s, z))
    log_prob = (-0.5 * ((a - mean) / log_std.exp()) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    actor = -(weights * log_prob).mean()
    return {"value": value, "skill_value": skill_value, "skill_critic": critic, "skill_actor": actor}, rew


def _fixed_skills(m, n=16):
    z = normalize(torch.randn(n, 4, generator=torch.Generator().manual_seed(3)))
    m.sample_skills = lambda count, device: z  # the skills the loss draws
    return z


def test_loss_is_the_sum_of_the_reference_terms():
    m, b = _tiny_method(), goal_batch()
    z = _fixed_skills(m)
    terms, rew = _reference_terms(m, b, z)
    loss, info = m.loss(b)
    torch.testing.assert_close(loss, sum(terms.values()))
    for k, term in terms.items():
        torch.testing.assert_close(info[f"{k}/loss"], term.detach())
    torch.testing.assert_close(info["skill_critic/reward_mean"], rew.mean())


def test_gradients_reach_only_their_networks():
    """phi learns only from its temporal-distance value (the skill rewards read it under
    stop-gradient); skill value, skill critic and actor each only from their own term."""
    m, b = _tiny_method(), goal_batch()
    z = m.sample_skills(16, "cpu")
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(16))
    z = _fixed_skills(m)
    terms, _ = _reference_terms(m, b, z)
    loss, _ = m.loss(b)
    assert_gradients_route(loss, {"phi": (m.phi_net, terms["value"]), "value": (m.skill_value, terms["skill_value"]),
                                  "critic": (m.skill_critic, terms["skill_critic"]),
                                  "actor": (m.actor, terms["skill_actor"])},
                           frozen=[m.target_phi_net, m.target_skill_critic])


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


@pytest.mark.slow
def test_phi_distances_grow_with_temporal_distance(tmp_path):
    pos = _folded_chain(tmp_path / "chain.npz")
    run = trainer.new_run(settings("hilp", tmp_path, tmp_path / "chain.npz", 300, overrides=(
        "batch_size=128", "actor_hidden_dims=16", "value_hidden_dims=64,64", "lr=1e-3")), argv=["test"])
    _, m, _, _ = load_run(run)
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
