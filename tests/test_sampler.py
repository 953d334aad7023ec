"""Samplers, checked statistically against OGBench's GCDataset/HGCDataset semantics.

Every observation encodes where it came from (column 0: global index, column 1: episode id), so
sampled goals decode back to dataset indices and the index arithmetic can be checked exactly.
"""

import json
import numpy as np
import pytest

from autodidact.data.dataset import Dataset
from autodidact.core.config import apply_overrides
from autodidact.data.sampler import GoalConfig, GoalSampler, WindowSampler
from autodidact.core.errors import UserError

try:
    from scipy import stats
except ImportError:  # pragma: no cover
    stats = None

N_SAMPLES = 20_000


def _make(lens, action_mask=None, actions=True):
    n = int(sum(lens))
    term = np.zeros(n, bool)
    term[np.cumsum(lens) - 1] = True
    obs = np.zeros((n, 3), np.float32)
    obs[:, 0] = np.arange(n)
    obs[:, 1] = np.repeat(np.arange(len(lens)), lens)
    obs[:, 2] = np.arange(n) % 7
    act = None
    if actions:
        act = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32)
    return Dataset(observations=obs, terminals=term, actions=act, action_mask=action_mask)


@pytest.fixture(scope="module")
def ds():
    # 40 episodes of 300..500 states: long enough that geometric offsets rarely hit the end, and
    # many enough that a random goal seldom lands in the current episode.
    lens = np.random.default_rng(123).integers(300, 501, size=40)
    return _make(lens)


def _goals(cur=0.0, traj=1.0, rand=0.0, geom=True, a_cur=None, a_traj=None, a_rand=None, a_geom=None,
           discount=0.9, gc_negative=True, subgoal_steps=0):
    """GoalSampler keyword arguments: value goals from (cur, traj, rand, geom), actor goals the same
    unless the a_* arguments say otherwise."""
    return dict(
        value_goals=GoalConfig(p_curgoal=cur, p_trajgoal=traj, p_randomgoal=rand, geom_sample=geom),
        actor_goals=GoalConfig(p_curgoal=cur if a_cur is None else a_cur, p_trajgoal=traj if a_traj is None else a_traj,
                               p_randomgoal=rand if a_rand is None else a_rand,
                               geom_sample=geom if a_geom is None else a_geom),
        discount=discount, gc_negative=gc_negative, subgoal_steps=subgoal_steps)


def _sampler(ds, seed=0, need_actions=True, **kw):
    return GoalSampler(ds, seed, need_actions=need_actions, **_goals(**kw))


def _gc(cur, traj, rand, geom):
    return GoalConfig(p_curgoal=cur, p_trajgoal=traj, p_randomgoal=rand, geom_sample=geom)


def _idx(x):
    return x[..., 0].astype(np.int64)


def _ep(x):
    return x[..., 1].astype(np.int64)


def _final(ds, idxs):
    """The reference's final state: OGBench compact terminals mark the last two steps of an episode,
    and GCDataset takes the first terminal at or after the index."""
    term = ds.terminals
    compact_terminals = term | np.append(term[1:], True)
    locs = np.flatnonzero(compact_terminals)
    return locs[np.searchsorted(locs, idxs)]


def _chi2_pvalue(observed, expected):
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    expected = expected * observed.sum() / expected.sum()
    if stats is not None:
        return stats.chisquare(observed, expected).pvalue
    # Without scipy: a crude normal approximation of the chi-square statistic.
    k = len(observed) - 1
    chi2 = ((observed - expected) ** 2 / expected).sum()
    return 1.0 if chi2 < k + 5 * np.sqrt(2 * k) else 0.0


# ==================================================================== goal sampler
def test_batch_fields_and_transitions(ds):
    s = _sampler(ds, 0, cur=0.2, traj=0.5, rand=0.3, subgoal_steps=10)
    b = s.sample(512)
    for k in ("observations", "next_observations", "value_goals", "actor_goals", "low_actor_goals",
              "high_actor_goals", "high_actor_targets"):
        assert b[k].shape == (512, 3), k
    assert b["actions"].shape == (512, 2)
    assert b["rewards"].shape == b["masks"].shape == (512,)
    idx = _idx(b["observations"])
    assert not ds.terminals[idx].any()  # a transition never starts on an episode's last step
    np.testing.assert_array_equal(_idx(b["next_observations"]), idx + 1)
    np.testing.assert_array_equal(_ep(b["next_observations"]), _ep(b["observations"]))
    np.testing.assert_array_equal(b["actions"][:, 0], idx)  # actions belong to the same step


@pytest.mark.parametrize("geom", [True, False], ids=["geometric", "uniform"])
def test_traj_goals_stay_in_episode_and_ahead(ds, geom):
    s = _sampler(ds, 1, traj=1.0, geom=geom)
    b = s.sample(N_SAMPLES)
    idx = _idx(b["observations"])
    final = _final(ds, idx)
    np.testing.assert_array_equal(final, ds.episode_end_of(idx) - 1)
    for key in ("value_goals", "actor_goals"):
        g = _idx(b[key])
        np.testing.assert_array_equal(_ep(b[key]), _ep(b["observations"]))
        assert (g <= final).all()
        # Strictly in the future, except from the last transition where the only choice is itself.
        assert ((g > idx) | (idx == final)).all()
        assert (g[idx == final] == idx[idx == final]).all()
        assert not ds.terminals[g].any()  # the reference's final state is the last transition start


@pytest.mark.parametrize("probs", [(0.2, 0.5, 0.3), (0.0, 0.7, 0.3), (0.5, 0.0, 0.5), (0.3, 0.7, 0.0)])
def test_goal_source_fractions(ds, probs):
    p_cur, p_traj, p_rand = probs
    # Value goals use `probs`, actor goals a different mix: they are drawn independently.
    s = _sampler(ds, 2, cur=p_cur, traj=p_traj, rand=p_rand, a_cur=0.1, a_traj=0.2, a_rand=0.7)
    b = s.sample(N_SAMPLES)
    idx, ep = _idx(b["observations"]), _ep(b["observations"])
    at_final = (idx == _final(ds, idx)).mean()
    t = ds.episode_lengths - 1
    same_ep = ((t / t.sum()) ** 2).sum()  # chance a random goal falls in the current episode
    for key, (pc, pt, pr) in (("value_goals", probs), ("actor_goals", (0.1, 0.2, 0.7))):
        g, gep = _idx(b[key]), _ep(b[key])
        cur = (g == idx).mean()
        other = (gep != ep).mean()
        ahead = ((g != idx) & (gep == ep)).mean()
        want_cur = pc + pt * at_final
        want_other = pr * (1 - same_ep)
        assert abs(cur - want_cur) < 0.012, (key, cur, want_cur)
        assert abs(other - want_other) < 0.012, (key, other, want_other)
        assert abs(ahead - (1 - want_cur - want_other)) < 0.012, (key, ahead)


def test_cur_goal_only(ds):
    s = _sampler(ds, 3, cur=1.0, traj=0.0, rand=0.0)
    b = s.sample(1000)
    np.testing.assert_array_equal(b["value_goals"], b["observations"])
    np.testing.assert_array_equal(b["actor_goals"], b["observations"])
    assert (b["masks"] == 0).all() and (b["rewards"] == 0).all()


@pytest.mark.parametrize("gc_negative", [True, False])
def test_rewards_and_masks_follow_goal_equals_current(ds, gc_negative):
    s = _sampler(ds, 4, cur=0.3, traj=0.5, rand=0.2, gc_negative=gc_negative)
    b = s.sample(N_SAMPLES)
    hit = _idx(b["value_goals"]) == _idx(b["observations"])
    assert 0.25 < hit.mean() < 0.35
    np.testing.assert_array_equal(b["masks"], np.where(hit, 0.0, 1.0))
    np.testing.assert_array_equal(b["rewards"], np.where(hit, 0.0, -1.0) if gc_negative else np.where(hit, 1.0, 0.0))
    # Rewards/masks follow value goals only: actor goals are sampled independently.
    assert (_idx(b["actor_goals"]) != _idx(b["value_goals"])).any()


def test_geometric_offsets_mean_and_distribution(ds):
    discount = 0.9
    s = _sampler(ds, 5, traj=1.0, geom=True, discount=discount)
    b = s.sample(N_SAMPLES)
    idx = _idx(b["observations"])
    far = (_final(ds, idx) - idx) > 150  # truncation at the episode end has chance 0.9**150
    assert far.sum() > 10_000
    for key in ("value_goals", "actor_goals"):
        off = (_idx(b[key]) - idx)[far]
        assert off.min() >= 1
        mean, var = 1 / (1 - discount), discount / (1 - discount) ** 2
        assert abs(off.mean() - mean) < 4 * np.sqrt(var / len(off)), off.mean()
        assert abs(off.var() - var) < 0.15 * var, off.var()
        # Full shape: counts of offsets 1..40 (and the tail) against the geometric pmf.
        k = np.arange(1, 41)
        pmf = (1 - discount) * discount ** (k - 1)
        observed = np.append(np.bincount(off, minlength=42)[1:41], (off > 40).sum())
        assert _chi2_pvalue(observed, np.append(pmf, discount ** 40)) > 1e-4


def test_geometric_offsets_are_clipped_at_episode_end(ds):
    """Near the end the offset is min(idx + offset, final): the final state takes the tail mass."""
    discount = 0.9
    s = _sampler(ds, 6, traj=1.0, geom=True, discount=discount)
    idx0 = int(ds.episode_ends[3]) - 5  # final (last transition start) = idx0 + 4
    assert _final(ds, idx0) == idx0 + 4
    idxs = np.full(N_SAMPLES, idx0)
    g = s.sample_goals(idxs, _gc(0.0, 1.0, 0.0, True), _final(ds, idxs))
    off = g - idx0
    assert off.min() == 1 and off.max() == 4
    p = (1 - discount) * discount ** np.arange(3)
    expected = np.append(p, discount ** 3)  # P(offset >= 4)
    assert _chi2_pvalue(np.bincount(off, minlength=5)[1:], expected) > 1e-4


def test_uniform_offsets(ds):
    """Uniform over (idx, final], with the reference's rounding of a continuous draw: the two end
    values get half the weight of the interior ones (round(a*u + b*(1-u)), u in [0, 1))."""
    s = _sampler(ds, 7, traj=1.0, geom=False)
    idx0 = int(ds.episode_starts[5]) + 10
    final = int(_final(ds, idx0))
    idxs = np.full(N_SAMPLES, idx0)
    g = s.sample_goals(idxs, _gc(0.0, 1.0, 0.0, False), _final(ds, idxs))
    a, bnd = idx0 + 1, final
    assert g.min() == a and g.max() == bnd
    counts = np.bincount(g - a, minlength=bnd - a + 1)
    expected = np.ones(bnd - a + 1)
    expected[[0, -1]] = 0.5
    assert _chi2_pvalue(counts, expected) > 1e-4
    # A short tail: (idx, final] = {idx + 1, idx + 2} -> half/half; from the final state itself.
    idx1 = int(ds.episode_ends[2]) - 3
    idxs = np.full(N_SAMPLES, idx1)
    g = s.sample_goals(idxs, _gc(0.0, 1.0, 0.0, False), _final(ds, idxs))
    assert set(np.unique(g)) == {idx1 + 1, idx1 + 2}
    assert abs((g == idx1 + 1).mean() - 0.5) < 0.015
    idx2 = int(ds.episode_ends[2]) - 1
    idxs = np.full(100, idx2)
    assert (s.sample_goals(idxs, _gc(0.0, 1.0, 0.0, False), _final(ds, idxs)) == idx2).all()


def test_uniform_offsets_over_whole_batch(ds):
    s = _sampler(ds, 8, traj=1.0, geom=False)
    b = s.sample(N_SAMPLES)
    idx = _idx(b["observations"])
    final = _final(ds, idx)
    ok = final - idx >= 2
    w = (_idx(b["value_goals"]) - (idx + 1))[ok] / (final - idx - 1)[ok]  # position in [0, 1]
    assert w.min() >= 0 and w.max() <= 1
    assert abs(w.mean() - 0.5) < 4 * np.sqrt(1 / 12 / len(w))
    assert abs(w.var() - 1 / 12) < 0.01
    hist = np.histogram(w, bins=10, range=(0, 1))[0]
    assert _chi2_pvalue(hist, np.ones(10)) > 1e-4


def test_random_goals_spread_over_all_episodes(ds):
    s = _sampler(ds, 9, traj=0.0, rand=1.0)
    b = s.sample(N_SAMPLES)
    for key in ("value_goals", "actor_goals"):
        g = _idx(b[key])
        assert not ds.terminals[g].any()  # drawn from transition starts, as the reference's valid_idxs
        counts = np.bincount(_ep(b[key]), minlength=ds.num_episodes)
        assert (counts > 0).all()
        assert _chi2_pvalue(counts, ds.episode_lengths - 1) > 1e-4
        # Within the dataset, uniform over transition starts (not over the current episode).
        assert abs(np.mean(g) - np.mean(ds.valid_idxs)) < 4 * np.std(ds.valid_idxs) / np.sqrt(len(g))


def test_hiql_low_actor_goals_exact(ds):
    k = 25
    s = _sampler(ds, 10, cur=0.2, traj=0.5, rand=0.3, subgoal_steps=k)
    b = s.sample(N_SAMPLES)
    idx = _idx(b["observations"])
    final = _final(ds, idx)
    np.testing.assert_array_equal(_idx(b["low_actor_goals"]), np.minimum(idx + k, final))
    assert (np.minimum(idx + k, final) < idx + k).any()  # the clipping case was exercised


def test_hiql_high_goals_and_targets(ds):
    k = 25
    # Only trajectory goals: the target is k steps toward the high goal, never past it.
    s = _sampler(ds, 11, cur=0.0, traj=1.0, rand=0.0, subgoal_steps=k, geom=False)
    b = s.sample(N_SAMPLES)
    idx, hg, ht = _idx(b["observations"]), _idx(b["high_actor_goals"]), _idx(b["high_actor_targets"])
    final = _final(ds, idx)
    np.testing.assert_array_equal(_ep(b["high_actor_goals"]), _ep(b["observations"]))
    assert ((hg > idx) | (idx == final)).all() and (hg <= final).all()
    np.testing.assert_array_equal(ht, np.minimum(idx + k, hg))
    assert (hg < idx + k).any() and (hg > idx + k).any()
    # Only random goals: the target is the low-level subgoal k steps ahead in the own episode.
    s = _sampler(ds, 12, cur=0.0, traj=0.0, rand=1.0, subgoal_steps=k)
    b = s.sample(N_SAMPLES)
    idx, ht = _idx(b["observations"]), _idx(b["high_actor_targets"])
    np.testing.assert_array_equal(ht, np.minimum(idx + k, _final(ds, idx)))
    assert (np.bincount(_ep(b["high_actor_goals"]), minlength=ds.num_episodes) > 0).all()
    # A mix: the random share follows actor_goals.p_randomgoal.
    s = _sampler(ds, 13, cur=0.2, traj=0.5, rand=0.3, subgoal_steps=k)
    b = s.sample(N_SAMPLES)
    other = (_ep(b["high_actor_goals"]) != _ep(b["observations"])).mean()
    t = ds.episode_lengths - 1
    assert abs(other - 0.3 * (1 - ((t / t.sum()) ** 2).sum())) < 0.012
    # Whatever the pick, the target lies in the current episode, ahead, at most k steps away.
    idx, ht = _idx(b["observations"]), _idx(b["high_actor_targets"])
    np.testing.assert_array_equal(_ep(b["high_actor_targets"]), _ep(b["observations"]))
    assert ((ht > idx) | (idx == _final(ds, idx))).all() and (ht <= idx + k).all()


def test_no_subgoals_without_subgoal_steps(ds):
    b = _sampler(ds, 0).sample(8)
    assert "low_actor_goals" not in b and "high_actor_goals" not in b


def test_probabilities_must_sum_to_one():
    from autodidact.methods.gcivl import GCIVLConfig
    with pytest.raises(UserError, match=r"'p_\*goal': p_curgoal \+ p_trajgoal \+ p_randomgoal must sum to 1, got 1.1"):
        GoalConfig(p_curgoal=0.5, p_trajgoal=0.6, p_randomgoal=0.0)
    # Through a method config the error names the dotted key, as `--set` spells it.
    with pytest.raises(UserError, match=r"config key 'value_goals\.p_\*goal': .*must sum to 1, got 1.3"):
        apply_overrides(GCIVLConfig(), {"value_goals.p_curgoal": "0.5"})
    with pytest.raises(UserError, match=r"config key 'actor_goals\.p_\*goal': .*must sum to 1, got 0.3"):
        apply_overrides(GCIVLConfig(), ["actor_goals.p_curgoal=0.1", "actor_goals.p_trajgoal=0.1",
                                        "actor_goals.p_randomgoal=0.1"])
    with pytest.raises(UserError, match=r"config key 'actor_goals\.p_randomgoal': must be in \[0, 1\], got 1.5"):
        apply_overrides(GCIVLConfig(), {"actor_goals.p_randomgoal": "1.5"})
    # Changes to one goal config are applied together, so a valid new mix passes.
    cfg = apply_overrides(GCIVLConfig(), {"value_goals.p_curgoal": "0.0", "value_goals.p_trajgoal": "0.7"})
    assert (cfg.value_goals.p_curgoal, cfg.value_goals.p_trajgoal, cfg.value_goals.p_randomgoal) == (0.0, 0.7, 0.3)


def test_batches_hold_only_the_goal_kinds_asked_for(ds):
    gc = GoalConfig(p_curgoal=0.2, p_trajgoal=0.5, p_randomgoal=0.3)
    b = GoalSampler(ds, 0, value_goals=gc).sample(8)
    assert {"value_goals", "rewards", "masks"} <= set(b) and "actor_goals" not in b
    b = GoalSampler(ds, 0, actor_goals=gc).sample(8)
    assert "actor_goals" in b and not {"value_goals", "rewards", "masks"} & set(b)
    b = GoalSampler(ds, 0).sample(8)
    assert set(b) == {"observations", "next_observations", "actions"}


def test_need_actions_on_action_free_dataset():
    free = _make([50, 60], actions=False)
    with pytest.raises(UserError, match="actions"):
        _sampler(free, need_actions=True)
    with pytest.raises(UserError, match="actions"):
        WindowSampler(free, 5, need_actions=True)
    b = _sampler(free, need_actions=False).sample(16)
    assert "actions" not in b and b["observations"].shape == (16, 3)
    b = WindowSampler(free, 5, need_actions=False).sample(16)
    assert "actions" not in b and b["observations"].shape == (16, 5, 3)


def test_partially_labeled_actions():
    n = 300
    mask = np.random.default_rng(0).random(n) < 0.5
    part = _make([100, 120, 80], action_mask=mask)
    b = _sampler(part, 0, need_actions=True).sample(4000)
    idx = _idx(b["observations"])
    assert mask[idx].all()
    np.testing.assert_array_equal(b["actions"][:, 0], idx)
    # Action-free methods use every transition, labeled or not.
    idx = _idx(_sampler(part, 0, need_actions=False).sample(4000)["observations"])
    assert not mask[idx].all() and not part.terminals[idx].any()
    with pytest.raises(UserError, match="no usable transitions"):
        _sampler(_make([50, 50], action_mask=np.zeros(100, bool)))


def test_single_step_episodes_only():
    with pytest.raises(UserError, match="no usable transitions"):
        _sampler(_make([1, 1, 1]))


# ==================================================================== window sampler
@pytest.mark.parametrize("window", [1, 8, 300])
def test_windows_consecutive_within_episode(ds, window):
    s = WindowSampler(ds, window, seed=14)
    b = s.sample(4000)
    assert b["observations"].shape == (4000, window, 3)
    assert b["actions"].shape == (4000, window, 2)
    assert b["goals"].shape == (4000, 3)
    idx = _idx(b["observations"])
    start = idx[:, 0]
    np.testing.assert_array_equal(idx, start[:, None] + np.arange(window)[None])
    ep = _ep(b["observations"])
    assert (ep == ep[:, :1]).all()
    assert not ds.terminals[idx].any()  # every step of the window is a transition
    np.testing.assert_array_equal(_idx(b["goals"]), start + window)  # the state right after
    np.testing.assert_array_equal(_ep(b["goals"]), ep[:, 0])
    np.testing.assert_array_equal(b["actions"][..., 0], idx)
    # Usable starts are exactly those whose window plus goal fit in the episode.
    want = np.array([i for i in range(len(ds)) if ds.episode_end_of(i) - i >= window])
    np.testing.assert_array_equal(s.start_idxs, want)


def test_window_starts_cover_all_and_include_episode_end(ds):
    s = WindowSampler(ds, 10, seed=15)
    b = s.sample(N_SAMPLES)
    goals = _idx(b["goals"])
    assert np.isin(goals, ds.episode_ends).any()  # a window may end right before the final state
    # Starts are uniform over usable starts: an episode of L states has L - 10 of them.
    per_ep = np.bincount(_ep(b["observations"])[:, 0], minlength=ds.num_episodes)
    assert _chi2_pvalue(per_ep, ds.episode_lengths - 10) > 1e-4
    starts = _idx(b["observations"])[:, 0]
    assert abs(starts.mean() - s.start_idxs.mean()) < 4 * s.start_idxs.std() / np.sqrt(len(starts))


def test_windows_skip_unlabeled_steps():
    mask = np.ones(200, bool)
    mask[[20, 21, 150]] = False
    part = _make([100, 100], action_mask=mask)
    s = WindowSampler(part, 6, seed=0)
    idx = _idx(s.sample(5000)["observations"])
    assert mask[idx].all()
    want = [i for i in range(200) if part.episode_end_of(i) - i >= 6 and mask[i:i + 6].all()]
    np.testing.assert_array_equal(s.start_idxs, want)
    # Without actions, unlabeled steps are fine.
    assert len(WindowSampler(part, 6, need_actions=False).start_idxs) > len(want)


def test_window_errors():
    short = _make([5, 6])
    with pytest.raises(UserError, match="long enough"):
        WindowSampler(short, 6)
    WindowSampler(short, 5)
    with pytest.raises(UserError, match="window"):
        WindowSampler(short, 0)


# ==================================================================== reproducibility
def _samplers(ds, seed):
    return [_sampler(ds, seed, cur=0.2, traj=0.5, rand=0.3, subgoal_steps=10, a_geom=False),
            WindowSampler(ds, 7, seed=seed)]


def _same(b1, b2):
    assert b1.keys() == b2.keys()
    return all(np.array_equal(b1[k], b2[k]) for k in b1)


def test_seeds_reproduce_batches(ds):
    for a, b, c in zip(_samplers(ds, 42), _samplers(ds, 42), _samplers(ds, 43)):
        for _ in range(3):
            x, y, z = a.sample(256), b.sample(256), c.sample(256)
            assert _same(x, y)
            assert not _same(x, z)


def test_state_dict_round_trip(ds):
    for a, b in zip(_samplers(ds, 7), _samplers(ds, 999)):
        for _ in range(3):
            a.sample(128)
        state = json.loads(json.dumps(a.state_dict()))  # plain JSON, as a checkpoint stores it
        want = [a.sample(128) for _ in range(3)]
        b.load_state_dict(state)
        got = [b.sample(128) for _ in range(3)]
        assert all(_same(w, g) for w, g in zip(want, got))
        # Restoring again rewinds to the same point.
        a.load_state_dict(state)
        assert _same(a.sample(128), want[0])
