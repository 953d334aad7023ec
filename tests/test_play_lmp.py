"""Play-LMP and Play-GCBC: the mixture action head, the latent plan on two behaviours, test-time
replanning, hindsight windows and their labels, config errors. The generic checks (update, goal
reaching on the point world, the plan-latent figure, resume, listing) are in test_methods.py."""

import math

import numpy as np
import pytest
import torch

from autodidact.data.dataset import Dataset
from autodidact.data.sampler import WindowSampler
from autodidact.core.errors import UserError
from autodidact.methods.play_gcbc import PlayGCBC, PlayGCBCConfig
from autodidact.envs.layouts import window_labels
from autodidact.methods.play_lmp import PlayLMP, PlayLMPConfig, gaussian_kl
from autodidact.nn import GaussianActor, LogisticMixtureActor, gaussian_log_prob
from autodidact.workflows.runtime import to_tensors
from pointenv import assert_resume_matches_uninterrupted, point_play_dataset

TINY = ("batch_size=4", "window=8", "window_min=4", "actor_hidden_dims=16", "num_mixtures=3")
LMP_TINY = TINY + ("latent_dim=4", "recognizer_hidden=8", "recognizer_layers=1", "proposal_hidden_dims=16")


# ------------------------------------------------------------------ mixture head
def test_mixture_head_fits_two_modes_better_than_a_gaussian():
    """Actions at +-0.6 (per dimension, independently) for each of four inputs: the Gaussian's
    mean lands between the modes, where no data is; the mixture's mode sits on one of them, and its
    likelihood (as a density) beats the Gaussian's by a wide margin."""
    torch.manual_seed(0)
    n, a_dim = 512, 2
    x = torch.randn(4, 3).repeat(n // 4, 1)
    actions = (torch.randint(0, 2, (n, a_dim)) * 1.2 - 0.6 + 0.05 * torch.randn(n, a_dim)).clamp(-1, 1)
    mix = LogisticMixtureActor(3, a_dim, (32, 32), num_mixtures=5)
    gauss = GaussianActor(3, a_dim, (32, 32), const_std=False)
    opt = torch.optim.Adam([*mix.parameters(), *gauss.parameters()], lr=3e-3)
    for _ in range(200):
        loss = -mix.log_prob(x, actions).mean() - gauss.log_prob(x, actions).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        # log-mass over bins of width 2 / (num_bins - 1) -> a density on [-1, 1]
        mix_density = mix.log_prob(x, actions).mean() + a_dim * math.log((mix.num_bins - 1) / 2)
        mean, log_std = gauss(x)
        gauss_density = gaussian_log_prob(mean, log_std, actions).mean()
        assert mix_density > gauss_density + 1.0, (mix_density, gauss_density)
        dist_to_mode = lambda a: (a.abs() - 0.6).abs().mean()  # noqa: E731
        assert dist_to_mode(mix.sample(x, temperature=0.0)) < 0.1
        assert dist_to_mode(gauss.mode(x)) > 0.4
        # Sampling covers both modes in every dimension, about half each.
        s = mix.sample(x, temperature=1.0, generator=torch.Generator().manual_seed(0))
        assert ((s > 0).float().mean(0) - 0.5).abs().max() < 0.1, (s > 0).float().mean(0)


def test_mixture_mass_sums_to_one_over_bins():
    torch.manual_seed(0)
    head = LogisticMixtureActor(2, 1, (8,), num_mixtures=4, num_bins=64)
    x = torch.randn(1, 2).expand(64, 2)
    centres = torch.linspace(-1, 1, 64)[:, None]
    assert torch.allclose(head.log_prob(x, centres).exp().sum(), torch.tensor(1.0), atol=1e-4)


# ------------------------------------------------------------------ two behaviours
LOOP, RADIUS, STEP = 16, 0.5, 0.25


def two_behaviour_dataset(episodes=64, seed=0):
    """One loop around a circle in LOOP steps from a random point on it, clockwise or
    anticlockwise: the goal (the state after the loop) is the start, and any (state, goal) pair
    occurs in both directions, so only the window (the order of its states) tells them apart."""
    rng = np.random.default_rng(seed)
    obs, acts, terms, kinds = [], [], [], []
    for e in range(episodes):
        kind = e % 2
        sign = 1.0 if kind == 0 else -1.0
        angle = rng.uniform(0, 2 * np.pi)
        s = RADIUS * np.array([np.cos(angle), np.sin(angle)])
        for t in range(LOOP + 1):
            nxt = angle + sign * 2 * np.pi * (t + 1) / LOOP
            a = np.clip((RADIUS * np.array([np.cos(nxt), np.sin(nxt)]) - s) / STEP + rng.normal(0, 0.03, 2), -1, 1)
            obs.append(s.copy())
            acts.append(a)
            terms.append(t == LOOP)
            s = s + STEP * a
        kinds.append(kind)
    ds = Dataset(np.array(obs, np.float32), np.array(terms), np.array(acts, np.float32))
    return ds, np.array(kinds)


def _train_two_behaviours(beta, steps=300):
    ds, kinds = two_behaviour_dataset()
    torch.manual_seed(0)
    cfg = PlayLMPConfig(batch_size=64, window=LOOP, window_min=LOOP, actor_hidden_dims=(64, 64),
                        num_mixtures=3, latent_dim=8, recognizer_hidden=32, recognizer_layers=1,
                        proposal_hidden_dims=(64, 64), beta=beta, lr=1e-2)
    m = PlayLMP(cfg, (2,), 2)
    sampler = m.make_sampler(ds, seed=0)
    history = []
    for _ in range(steps):
        info = m.update(to_tensors(sampler.sample(cfg.batch_size), "cpu"))
        history.append((float(info["actor/nll"]), float(info["plan/kl"])))
    # Every episode is exactly one window: recognise each, grouped by behaviour.
    windows = torch.as_tensor(ds.observations.reshape(len(kinds), LOOP + 1, 2))
    actions = torch.as_tensor(ds.actions.reshape(len(kinds), LOOP + 1, 2)[:, :-1])
    m.eval()
    z = m.recognize(windows)
    return m, np.array(history), z, kinds, windows, actions


def _separation(z, kinds):
    """Distance between the two behaviours' mean latents over their average within-group spread."""
    z = np.asarray(z)
    a, b = z[kinds == 0], z[kinds == 1]
    spread = 0.5 * (np.linalg.norm(a - a.mean(0), axis=1).mean() + np.linalg.norm(b - b.mean(0), axis=1).mean())
    return np.linalg.norm(a.mean(0) - b.mean(0)) / spread


@pytest.fixture(scope="module")
def two_behaviours():
    return _train_two_behaviours(beta=0.01)


@pytest.mark.slow
def test_latent_separates_two_behaviours_and_losses_move(two_behaviours):
    m, history, z, kinds, windows, actions = two_behaviours
    nll, kl = history[:, 0], history[:, 1]
    # Reconstruction improves a lot; the KL grows from ~0 as z starts carrying which way the window
    # went (telling two behaviours apart takes at least log 2 nats), and stays bounded.
    assert nll[-20:].mean() < nll[:5].mean() - 3.0, (nll[:5], nll[-20:])
    assert kl[:5].mean() < 1.0 and math.log(2) < kl[-20:].mean() < 50, (kl[:5], kl[-20:])
    assert _separation(z, kinds) > 3.0, _separation(z, kinds)
    # The latent is what explains the window: decoding with the window's own plan beats decoding
    # with the plan of a window that went the other way (neighbouring episodes alternate).
    states, goals = windows[:, :-1], windows[:, -1:].expand(-1, LOOP, -1)
    with torch.no_grad():
        def nll_with(plans):
            x = torch.cat([states, goals, plans[:, None].expand(-1, LOOP, -1)], -1)
            return -m.decoder.log_prob(x, actions).mean()
        own, other = nll_with(z), nll_with(torch.cat([z[1:], z[:1]]))
    assert own < other - 5.0, (own, other)


@pytest.mark.slow
def test_plans_drawn_from_the_proposal_reproduce_both_behaviours(two_behaviours):
    """z ~ p(z | s_0, g) then the decoder, for a quarter loop: some plans go clockwise, others
    anticlockwise, and (almost) none averages the two into a move towards the centre."""
    m = two_behaviours[0]
    n = 64
    gen = torch.Generator().manual_seed(0)
    angle = torch.rand(n, generator=gen) * 2 * math.pi
    s = RADIUS * torch.stack([angle.cos(), angle.sin()], -1)
    g = s.clone()
    with torch.no_grad():
        z = m.propose(s, g, temperature=1.0, generator=gen)
        for _ in range(LOOP // 4):
            s = s + STEP * m.decode(s, g, z).clamp(-1, 1)
    turned = torch.atan2(s[:, 1], s[:, 0]) - angle
    turned = torch.remainder(turned + math.pi, 2 * math.pi) - math.pi         # in (-pi, pi]
    quarter = math.pi / 2
    anticlockwise = ((turned - quarter).abs() < 0.5).float().mean()
    clockwise = ((turned + quarter).abs() < 0.5).float().mean()
    assert anticlockwise > 0.2 and clockwise > 0.2 and anticlockwise + clockwise > 0.8, (anticlockwise, clockwise)


@pytest.mark.slow
def test_a_large_beta_collapses_the_latent(two_behaviours):
    """With the KL weighted heavily the posterior falls back onto the prior and no longer tells the
    behaviours apart: the KL term regularises as it should."""
    _, history, z, kinds, _, _ = _train_two_behaviours(beta=10.0, steps=150)
    assert history[-20:, 1].mean() < 0.1, history[-20:, 1]
    assert _separation(z, kinds) < 0.5 * _separation(two_behaviours[2], two_behaviours[3])


def test_gaussian_kl_matches_torch():
    g = torch.Generator().manual_seed(0)
    qm, pm = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    qs, ps = torch.rand(5, 3, generator=g) + 0.1, torch.rand(5, 3, generator=g) + 0.1
    D = torch.distributions
    expected = D.kl_divergence(D.Normal(qm, qs), D.Normal(pm, ps)).sum(-1)
    torch.testing.assert_close(gaussian_kl(qm, qs, pm, ps), expected)


# ------------------------------------------------------------------ replanning policy
def test_policy_replans_every_k_steps_and_on_reset():
    torch.manual_seed(0)
    cfg = PlayLMPConfig(actor_hidden_dims=(8,), latent_dim=3, recognizer_hidden=4, recognizer_layers=1,
                        proposal_hidden_dims=(8,), num_mixtures=2, replan_every=3)
    policy = PlayLMP(cfg, (2,), 2).make_policy(temperature=1.0, seed=0)
    obs, goals = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    policy.reset(np.array([True, True]))
    plans = []
    for _ in range(7):
        a = policy.act(obs, goals)
        assert a.shape == (2, 2) and np.abs(a).max() <= 1
        plans.append(policy.plans.clone())
    changed = [not torch.equal(plans[i], plans[i - 1]) for i in range(1, 7)]
    assert changed == [False, False, True, False, False, True]
    policy.reset(np.array([True, False]))
    policy.act(obs, goals)
    assert not torch.equal(policy.plans[0], plans[-1][0]) and torch.equal(policy.plans[1], plans[-1][1])
    # A batch of another size (the evaluator's video run) starts fresh.
    assert policy.act(np.zeros((5, 2), np.float32), np.ones((5, 2), np.float32)).shape == (5, 2)


def test_stateless_act_uses_the_proposal_mean():
    torch.manual_seed(0)
    cfg = PlayLMPConfig(actor_hidden_dims=(8,), latent_dim=3, recognizer_hidden=4, recognizer_layers=1,
                        proposal_hidden_dims=(8,), num_mixtures=2)
    m = PlayLMP(cfg, (2,), 2)
    s, g = torch.randn(4, 2), torch.randn(4, 2)
    with torch.no_grad():
        z = m.proposal(s, g)[0]
        torch.testing.assert_close(m.act(s, g), m.decoder.mode(torch.cat([s, g, z], -1)))


# ------------------------------------------------------------------ windows, labels, config
def test_hindsight_goal_is_the_state_after_each_cut_window():
    from autodidact.methods.play_lmp import hindsight_windows
    from autodidact.nn import Flat
    torch.manual_seed(0)
    obs = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    batch = {"observations": obs, "goals": obs[:, -1] + 1, "actions": torch.zeros(2, 5, 1)}
    states, lengths, goals, valid = hindsight_windows(Flat((1,)), batch, window_min=2)
    assert torch.equal(states[:, :5], obs) and (lengths >= 2).all() and (lengths <= 5).all()
    assert torch.equal(goals[:, 0], obs[:, 0, 0] + lengths)  # s_l
    assert torch.equal(valid.sum(1), lengths)


def test_window_labels_name_the_object_that_moved():
    rng = np.random.default_rng(0)
    # cube-single: 19 proprio dims + one cube (xyz scaled by 10 first).
    w = rng.normal(0, 0.01, (3, 5, 28))
    w[0, -1, 19] += 1.0      # cube moved +x by 10 cm
    w[1, -1, 21] += 0.8      # lifted
    labels, _ = window_labels("data/cube-single-play-v0.npz", w)
    assert list(labels) == ["cube +x", "cube up", "arm only"]
    # puzzle-3x3: 9 buttons of (one-hot state, position, velocity); button 4 pushed mid-window.
    w = np.zeros((2, 5, 19 + 36))
    w[0, 2, 19 + 4 * 4 + 2] = -3.0
    labels, _ = window_labels("puzzle-3x3-play-v0-val.npz", w)
    assert list(labels) == ["button 4", "arm only"]
    # scene: drawer opened.
    w = np.zeros((1, 5, 40))
    w[0, -1, 36] = 2.0
    assert list(window_labels("scene-play-v0.npz", w)[0]) == ["drawer +"]
    # anything else: the direction of the first two dims.
    w = np.zeros((2, 3, 2))
    w[0, -1] = [0.0, 1.0]
    w[1, -1] = [-1.0, 0.1]
    assert list(window_labels("point.npz", w)[0]) == ["+y", "-x"]


@pytest.mark.parametrize("overrides,key", [({"window_min": 40}, "window_min"), ({"beta": -1.0}, "beta"),
                                           ({"num_mixtures": 0}, "num_mixtures"), ({"window": 0}, "window")])
def test_bad_config_is_a_one_line_error(overrides, key):
    with pytest.raises(UserError, match=f"'{key}'"):
        PlayLMPConfig(**overrides)
    if key != "beta":
        with pytest.raises(UserError, match=f"'{key}'"):
            PlayGCBCConfig(**overrides)


def test_windows_longer_than_every_episode_are_a_user_error(tmp_path):
    data = point_play_dataset(tmp_path / "point.npz", episodes=2, length=10)
    with pytest.raises(UserError, match="long enough"):
        PlayGCBC(PlayGCBCConfig(), (2,), 2).make_sampler(Dataset.load(data), seed=0)
    assert isinstance(PlayGCBC(PlayGCBCConfig(window=4, window_min=4), (2,), 2).make_sampler(
        Dataset.load(data), seed=0), WindowSampler)


# ------------------------------------------------------------------ resume
def test_resume_matches_uninterrupted_with_every_window_length(tmp_path):
    """test_methods.py resumes windows of 4-8 steps; here every window has the same length, so
    the recognizer runs its unpacked path, and the plan draws still resume exactly."""
    assert_resume_matches_uninterrupted("play-lmp", tmp_path, LMP_TINY + ("window_min=8",))
