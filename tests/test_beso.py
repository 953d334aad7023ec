"""BESO: EDM pieces, the 3-step sampler on a two-mode action distribution, classifier-free guidance,
action chunks (sampler, policy, resume) and config errors. The generic checks (update, learning on
the point world, resume, presets, listing) are in test_methods.py."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from autodidact.core.config import apply_overrides
from autodidact.data.dataset import Dataset
from autodidact.core.errors import UserError
from autodidact.methods.beso import BESO, BESOConfig
from autodidact.nn import GaussianActor
from pointenv import assert_resume_matches_uninterrupted, point_play_dataset

TINY = ("batch_size=32", "hidden_dims=32,32", "sigma_embed_dim=8")


def _method(obs_dim=2, action_dim=1, **kw):
    torch.manual_seed(0)
    kw = {"hidden_dims": (64, 64), "batch_size": 256, "lr": 1e-3, **kw}
    return BESO(BESOConfig(**kw), (obs_dim,), action_dim)


def _train(method, make_batch, steps, gaussian=None):
    """`steps` updates of `method` (and of a Gaussian policy by max likelihood on the same batches)."""
    if gaussian is not None:
        gopt = torch.optim.Adam(gaussian.parameters(), lr=1e-3)
    for _ in range(steps):
        b = make_batch()
        method.update(b)
        if gaussian is not None:
            x = torch.cat([b["observations"], b["actor_goals"]], -1)
            loss = -gaussian.log_prob(x, b["actions"].reshape(len(x), -1)).mean()
            gopt.zero_grad()
            loss.backward()
            gopt.step()


def _wasserstein1(a, b):
    return float(np.abs(np.sort(a) - np.sort(b)).mean())


# ---------------------------------------------------------------- EDM pieces
def test_loss_is_edm_weighted_denoising_error():
    m = _method(obs_dim=3, action_dim=2, chunk=2)
    b = {"observations": torch.randn(64, 3), "actor_goals": torch.randn(64, 3),
         "actions": torch.rand(64, 2, 2) * 2 - 1}
    torch.manual_seed(5)
    loss, info = m.loss(b)
    # Replay the same draws: the F-space loss is EDM's lambda(sigma) ||D - a||^2, lambda = 1 / c_out^2.
    torch.manual_seed(5)
    sigma = m.sample_sigmas(64)
    noise = torch.randn(64, 4)
    dropped = (torch.rand(64, 1) < m.cfg.goal_dropout).float()
    a = b["actions"].reshape(64, 4)
    x = a + sigma * noise
    denoised = m.denoise(m.net, x, sigma, b["observations"], b["actor_goals"], dropped)
    sd = m.cfg.sigma_data
    lam = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2
    torch.testing.assert_close(loss, (lam * (denoised - a) ** 2).mean(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(info["actor/denoise_mse"], ((denoised - a) ** 2).mean(), rtol=1e-4, atol=1e-6)
    # At vanishing noise the denoiser is the identity (c_skip -> 1, c_out -> 0).
    tiny = torch.full((64, 1), 1e-6)
    torch.testing.assert_close(m.denoise(m.net, x, tiny, b["observations"], b["actor_goals"], dropped), x,
                               rtol=0, atol=1e-4)


def test_update_moves_the_ema_towards_the_weights_it_produced():
    """BESO's own step: the EMA (with the reference's warm-up) moves towards the weights after this
    step's optimizer update, and counts the updates."""
    m = _method(obs_dim=3, action_dim=2, ema_decay=0.9)
    b = {"observations": torch.randn(64, 3), "actor_goals": torch.randn(64, 3), "actions": torch.rand(64, 1, 2) * 2 - 1}
    for n in (1, 2):
        ema_before = [p.clone() for p in m.ema_net.parameters()]
        net_before = [p.detach().clone() for p in m.net.parameters()]
        m.update(b)
        assert int(m.num_updates) == n
        decay = min(0.9, (1 + n) / (10 + n))
        for e, e0, p, p0 in zip(m.ema_net.parameters(), ema_before, m.net.parameters(), net_before):
            torch.testing.assert_close(e, decay * e0 + (1 - decay) * p.detach())
        assert any(not torch.equal(p, p0) for p, p0 in zip(m.net.parameters(), net_before))


def test_training_sigmas_follow_the_truncated_log_logistic():
    m = _method()
    torch.manual_seed(0)
    s = m.sample_sigmas(200_000).flatten()
    assert s.min() >= m.cfg.sigma_min * 0.999 and s.max() <= m.cfg.sigma_max * 1.001
    # CDF(sigma_data) of the truncated density: (sigmoid(0) - cdf(sigma_min)) / (cdf(sigma_max) - cdf(sigma_min)).
    cdf = lambda v: 1 / (1 + math.exp(-(math.log(v) - math.log(0.5)) / 0.5))  # noqa: E731
    expected = (0.5 - cdf(0.005)) / (cdf(1.0) - cdf(0.005))
    assert abs(float((s < 0.5).float().mean()) - expected) < 0.01


def test_sampler_schedule_and_exact_denoiser():
    m = _method()
    np.testing.assert_allclose(m.schedule(), [1.0, math.sqrt(0.005), 0.005, 0.0], rtol=1e-6)
    # With the exact denoiser of a two-point distribution (+-0.7), 3 DDIM steps land on the points.
    m.guided_denoise = lambda x, s, obs, g, w: 0.7 * torch.tanh(0.7 * x / s ** 2)
    obs = torch.zeros(4000, 2)
    a1 = m.sample_chunks(obs, obs, 0.0, torch.Generator().manual_seed(0)).flatten()
    a2 = m.sample_chunks(obs, obs, 0.0, torch.Generator().manual_seed(0)).flatten()
    assert torch.equal(a1, a2)  # temperature 0: all randomness is the seeded initial noise
    assert ((a1.abs() - 0.7).abs() < 0.01).all() and 0.45 < (a1 > 0).float().mean() < 0.55
    a3 = m.sample_chunks(obs, obs, 1.0, torch.Generator().manual_seed(0)).flatten()  # Euler-ancestral
    assert not torch.equal(a1, a3) and ((a3.abs() - 0.7).abs() < 0.01).all()


# ---------------------------------------------------------------- multimodality and guidance
@pytest.mark.slow
def test_three_step_sampler_reproduces_two_modes_better_than_a_gaussian():
    """The same state has actions +0.7 and -0.7 with equal probability (a 1-D two-mode action
    distribution); GCBC's Gaussian policy can only put its mass in between."""
    m = _method()
    gaussian = GaussianActor(4, 1, (64, 64), const_std=False)
    g = torch.Generator().manual_seed(0)

    def batch(n=256):
        obs = torch.rand(n, 2, generator=g) * 2 - 1
        sign = (torch.rand(n, 1, generator=g) < 0.5).float() * 2 - 1
        return {"observations": obs, "actor_goals": obs.clone(), "actions": (0.7 * sign).reshape(n, 1, 1)}

    _train(m, batch, 1000, gaussian)
    n = 2000
    obs = torch.rand(n, 2, generator=g) * 2 - 1
    truth = np.where(np.arange(n) % 2 == 0, 0.7, -0.7)
    with torch.no_grad():
        beso = m.make_policy(temperature=0.0, seed=1).act(obs.numpy(), obs.numpy()).flatten()
        x = torch.cat([obs, obs], -1)
        gauss = gaussian.sample(x, 1.0, torch.Generator().manual_seed(1)).clamp(-1, 1).numpy().flatten()
        gauss_mean = gaussian.sample(x, 0.0).numpy().flatten()
    near = lambda a: float((np.abs(np.abs(a) - 0.7) < 0.2).mean())  # noqa: E731
    assert near(beso) > 0.55 and near(beso) > 1.8 * near(gauss), (near(beso), near(gauss))
    assert near(gauss_mean) == 0.0  # the Gaussian's mode is the average of the two modes
    assert 0.35 < (beso > 0).mean() < 0.65  # both modes kept, in about equal shares
    assert _wasserstein1(beso, truth) < 0.7 * _wasserstein1(gauss, truth), (
        _wasserstein1(beso, truth), _wasserstein1(gauss, truth))


@pytest.mark.slow
def test_classifier_free_guidance_moves_samples_towards_the_goal():
    """The goal says which mode to take, but only 75% of the time: the goal-free policy is 50/50,
    the goal-conditioned one 75/25, and guidance w > 0 sharpens towards the goal's mode."""
    m = _method()
    g = torch.Generator().manual_seed(0)

    def batch(n=256):
        goal_sign = (torch.rand(n, 1, generator=g) < 0.5).float() * 2 - 1
        agree = (torch.rand(n, 1, generator=g) < 0.75).float() * 2 - 1
        return {"observations": torch.rand(n, 2, generator=g) * 2 - 1, "actor_goals": goal_sign.expand(n, 2).clone(),
                "actions": (0.7 * goal_sign * agree).reshape(n, 1, 1)}

    _train(m, batch, 1000)
    n = 2000
    obs = torch.rand(n, 2, generator=g) * 2 - 1
    goal_sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    agreement, samples = {}, {}
    with torch.no_grad():
        for w in (-1.0, 0.0, 1.0, 3.0):
            a = m.sample_chunks(obs, goal_sign.expand(n, 2), 0.0, torch.Generator().manual_seed(1), guidance=w)
            samples[w] = a.reshape(n, 1)
            agreement[w] = float((samples[w] * goal_sign > 0).float().mean())
    assert not torch.equal(samples[-1.0], samples[0.0])  # same noise, goal-free vs goal-conditioned differ
    assert abs(agreement[-1.0] - 0.5) < 0.1, agreement
    assert 0.62 < agreement[0.0] < 0.85, agreement
    assert agreement[1.0] > agreement[0.0] + 0.04 and agreement[3.0] > agreement[1.0] + 0.02, agreement
    # The config's guidance is what act / the policy use.
    m.cfg.guidance = 3.0
    with torch.no_grad():
        a = m.act(obs, goal_sign.expand(n, 2), 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(a, samples[3.0])


# ---------------------------------------------------------------- chunks
def test_chunk_sampler_windows_stay_in_one_labeled_episode(tmp_path):
    ds = Dataset.load(point_play_dataset(tmp_path / "p.npz", episodes=4, length=12))
    mask = np.ones(len(ds), bool)
    mask[5] = False  # an unlabeled step: no chunk may cover it
    ds = Dataset(ds.observations, ds.terminals, ds.actions, action_mask=mask)
    m = BESO(BESOConfig(chunk=4, hidden_dims=(8,)), (2,), 2)
    sampler = m.make_sampler(ds, seed=0)
    b = sampler.sample(512)
    assert b["actions"].shape == (512, 4, 2) and b["observations"].shape == (512, 2)
    idx = np.array([np.flatnonzero((ds.observations == o).all(1))[0] for o in b["observations"]])
    goal = np.array([np.flatnonzero((ds.observations == o).all(1))[0] for o in b["actor_goals"]])
    np.testing.assert_array_equal(b["actions"], ds.actions[idx[:, None] + np.arange(4)])
    assert (ds.episode_end_of(idx) - idx >= 4).all()  # the 4 steps are transitions of one episode
    assert not ((idx <= 5) & (5 < idx + 4)).any()
    assert ((goal > idx) & (ds.episode_end_of(goal) == ds.episode_end_of(idx))).all()  # future, same episode
    with pytest.raises(UserError, match="chunk=12"):
        BESO(BESOConfig(chunk=12, hidden_dims=(8,)), (2,), 2).make_sampler(ds, seed=0)


@pytest.mark.parametrize("open_loop", [True, False])
def test_policy_executes_chunks_and_replans_on_reset(open_loop):
    m = BESO(BESOConfig(chunk=3, open_loop=open_loop, hidden_dims=(8,)), (2,), 1)
    calls = []

    def fake_sample(obs, goals, temperature=0.0, generator=None):
        # Chunk j of call c is the action 10 c + j, so the executed sequence shows what ran when.
        calls.append(len(obs))
        base = 10.0 * len(calls)
        return (base + torch.arange(3.0)).expand(len(obs), 3).reshape(len(obs), 3, 1) / 100

    m.sample_chunks = fake_sample
    policy = m.make_policy(seed=0)
    obs = np.zeros((2, 2), np.float32)
    policy.reset(np.ones(2, bool))
    out = [policy.act(obs, obs)[:, 0] * 100 for _ in range(4)]
    if open_loop:
        np.testing.assert_allclose(out, [[10, 10], [11, 11], [12, 12], [20, 20]], atol=1e-4)
        policy.reset(np.array([False, True]))  # row 1's episode restarts: only it replans
        np.testing.assert_allclose(policy.act(obs, obs)[:, 0] * 100, [21, 30], atol=1e-4)
        assert calls == [2, 2, 1]
    else:
        np.testing.assert_allclose(out, [[10, 10], [20, 20], [30, 30], [40, 40]], atol=1e-4)
    policy.reset(np.ones(5, bool))  # another batch size (the evaluator's video run)
    assert policy.act(np.zeros((5, 2)), np.zeros((5, 2))).shape == (5, 1)


def test_seeded_policy_is_reproducible():
    m = _method(obs_dim=2, action_dim=2)
    obs, goals = np.random.default_rng(0).uniform(-1, 1, (2, 6, 2)).astype(np.float32)
    runs = [[m.make_policy(0.0, seed).act(obs, goals) for _ in range(3)] for seed in (0, 0, 1)]
    np.testing.assert_array_equal(np.stack(runs[0]), np.stack(runs[1]))
    assert not np.array_equal(np.stack(runs[0]), np.stack(runs[2]))


# ---------------------------------------------------------------- resume, config
def test_resume_with_action_chunks_matches_uninterrupted(tmp_path):
    # chunk=1 is test_methods.py's resume check; chunks draw from the same sampler stream.
    chunk = 3
    a = assert_resume_matches_uninterrupted("beso", tmp_path, TINY + (f"chunk={chunk}",))
    assert any(k.startswith("ema_net.") for k in a) and int(a["num_updates"]) == 40


@pytest.mark.parametrize("key, value", [
    ("sigma_min", "0"), ("sigma_max", "0.001"), ("sigma_data", "-1"), ("sampling_steps", "0"),
    ("schedule", "cosine"), ("goal_dropout", "1.0"), ("guidance", "-2"), ("ema_decay", "1.0"),
    ("chunk", "0"), ("lr_decay", "0"), ("hidden_dims", "0"), ("actor_goals.p_trajgoal", "0.5"),
])
def test_config_errors_are_one_line_naming_the_key(key, value):
    with pytest.raises(UserError) as err:
        apply_overrides(BESOConfig(), [f"{key}={value}"])
    msg = str(err.value)
    # A goal probability names its goal kind's dotted key (the sum of the three is what breaks).
    named = "actor_goals.p_*goal" if key.startswith("actor_goals.") else key
    assert "\n" not in msg and f"config key '{named}'" in msg, msg


def test_guidance_needs_goal_dropout():
    with pytest.raises(UserError, match="config key 'guidance'.*goal_dropout > 0"):
        BESOConfig(goal_dropout=0.0)
    BESOConfig(goal_dropout=0.0, guidance=0.0)  # C-BESO: goal-conditioned only


@pytest.mark.slow
def test_cli_reports_guidance_without_goal_dropout_in_one_line(tmp_path):
    data = point_play_dataset(tmp_path / "point.npz", episodes=2)
    out = subprocess.run([sys.executable, "-m", "autodidact", "train", "--method", "beso", "--dataset", str(data),
                          "--out", str(tmp_path / "run"), "--steps", "1", "--set", "goal_dropout=0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "guidance" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
