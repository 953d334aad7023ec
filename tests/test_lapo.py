"""LAPO: latent actions learned from observations, decoded with the labeled few.

(The conformance suite in test_methods.py checks the rest: the contract, learning on the point
world with every label, the latent probe, resume.)"""

import csv

import numpy as np
import torch

from autodidact import cli
from autodidact.core.config import apply_overrides
from autodidact.data.dataset import Dataset
from autodidact.data.labels import hide_actions
from autodidact.methods.lapo import LAPO, LAPOConfig
from autodidact.workflows.runtime import to_tensors
from pointenv import point_play_dataset

MOVES = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)


def _four_move_world(episodes=20, length=30, seed=0):
    """A point on the plane that moves 0.1 in one of four directions per step, chosen at random."""
    rng = np.random.default_rng(seed)
    obs, acts, terms = [], [], []
    for _ in range(episodes):
        s = rng.uniform(-1, 1, 2).astype(np.float32)
        for t in range(length):
            a = MOVES[rng.integers(4)]
            obs.append(s)
            acts.append(a)
            terms.append(t == length - 1)
            s = s + 0.1 * a
    return Dataset(np.array(obs), np.array(terms), np.array(acts))


def test_latent_actions_separate_the_actions_of_a_toy_world():
    ds = hide_actions(_four_move_world(), 0.1, seed=0)  # the latents never see an action
    cfg = apply_overrides(LAPOConfig(), ["batch_size=128", "idm_hidden_dims=64,64", "fdm_hidden_dims=64,64",
                                         "actor_hidden_dims=32", "decoder_hidden_dims=32", "lr=1e-3",
                                         "num_latents=1", "num_codes=8"])  # a tight bottleneck
    torch.manual_seed(0)
    lapo = LAPO(cfg, (2,), 2)
    sampler = lapo.make_sampler(ds, seed=0)
    for _ in range(300):
        lapo.update(to_tensors(sampler.sample(128), "cpu"))
    full = _four_move_world()
    idxs = full.valid_idxs
    with torch.no_grad():
        _, _, _, ids = lapo.latent_actions(torch.as_tensor(full.observations[idxs]),
                                           torch.as_tensor(full.observations[idxs + 1]))
    codes = ids.numpy()[:, 0]
    move = (np.asarray(full.actions)[idxs] @ np.array([1, 2])).astype(int)  # 1, -1, 2, -2: which move
    # Every code stands for one move (a move may use two codes), and every move has a code.
    pure, owners = 0, set()
    for code in np.unique(codes):
        moves, counts = np.unique(move[codes == code], return_counts=True)
        pure += counts.max()
        owners.add(int(moves[counts.argmax()]))
    assert pure / len(codes) > 0.98 and owners == {1, -1, 2, -2}, (pure / len(codes), owners)


def _run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_lapo_learns_from_every_transition_of_a_partly_labeled_file(tmp_path, capsys):
    full = Dataset.load(point_play_dataset(tmp_path / "point.npz", episodes=20, length=30))
    hide_actions(full, 0.1, seed=0).save(tmp_path / "part.npz")
    code, _, err = _run(capsys, "train", "--method", "lapo", "--dataset", tmp_path / "part.npz", "--out",
                        tmp_path / "run", "--steps", "20", "--log-every", "10", "--eval-episodes", "0",
                        "--no-progress", "--set", "batch_size=64", "--set", "idm_hidden_dims=16",
                        "--set", "fdm_hidden_dims=16", "--set", "actor_hidden_dims=16",
                        "--set", "decoder_hidden_dims=16")
    assert code == 0, err
    assert "'lapo' learns from every transition and reads actions on those" in err
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        labeled = [float(r["decoder/labeled"]) for r in csv.DictReader(f)]
    assert all(0.0 < x < 0.3 for x in labeled), labeled  # about 2 of 20 episodes' rows
    hide_actions(full, 0.0).save(tmp_path / "free.npz")
    code, _, err = _run(capsys, "train", "--method", "lapo", "--dataset", tmp_path / "free.npz", "--out",
                        tmp_path / "run2", "--steps", "2")
    assert code == 2 and err.count("\n") == 1 and "autodidact label" in err and "lapo" in err


def test_laom_options_continuous_latents_with_supervision():
    from autodidact.nn.diagnostics import linear_probe_r2
    full = Dataset.load(point_play_dataset_in_memory())
    ds = hide_actions(full, 0.1, seed=0)
    cfg = apply_overrides(LAPOConfig(), ["batch_size=128", "idm_hidden_dims=64,64", "fdm_hidden_dims=64,64",
                                         "actor_hidden_dims=32", "decoder_hidden_dims=32", "lr=1e-3",
                                         "quantize=false", "action_loss=1.0"])
    torch.manual_seed(0)
    lapo = LAPO(cfg, (2,), 2)
    assert lapo.quantizer is None and lapo.action_head is not None
    sampler = lapo.make_sampler(ds, seed=0)
    head = lapo.action_head.weight.detach().clone()
    for _ in range(600):
        info = lapo.update(to_tensors(sampler.sample(128), "cpu"))
    assert "idm/action_loss" in info and not any(k.startswith("vq/") for k in info)
    assert not torch.equal(head, lapo.action_head.weight)
    idxs = full.valid_idxs
    obs, nxt = (torch.as_tensor(np.asarray(full.observations)[i]) for i in (idxs, idxs + 1))
    actions = np.asarray(full.actions, np.float64)[idxs]
    fit = np.arange(len(idxs)) % 2 == 0
    with torch.no_grad():
        z = lapo.latent_actions(obs, nxt)[0]
        decoded = lapo.decoder(z).double().numpy()
    z = z.double().numpy()
    assert linear_probe_r2(z[fit], actions[fit], z[~fit], actions[~fit]) > 0.9
    # The decoder, trained on 2 episodes (10%), reads the actions of the other 18 off the latent, far
    # better than their mean does (worse than `label` here: 58 labeled steps for a 64-d latent).
    # (An untrained model's continuous latents would also probe well here: a random MLP of (s, s')
    # keeps s' - s, so the probe alone is no test of learning without quantization.)
    unlabeled = ~ds.action_mask[idxs]
    mse = np.mean((decoded[unlabeled] - actions[unlabeled]) ** 2)
    baseline = np.mean((actions[unlabeled] - actions[~unlabeled].mean(0)) ** 2)
    assert mse < 0.5 * baseline, (mse, baseline)


def point_play_dataset_in_memory(episodes=20, length=30):
    import tempfile
    from pathlib import Path
    return point_play_dataset(Path(tempfile.mkdtemp()) / "point.npz", episodes=episodes, length=length)


LAOM_TINY = ["encoder=impala_debug", "latent_forward=true", "quantize=false", "num_latents=1", "batch_size=64",
             "idm_hidden_dims=64,64", "fdm_hidden_dims=64,64", "actor_hidden_dims=16", "decoder_hidden_dims=16"]


def test_latent_forward_learns_latent_actions_from_frames(tmp_path):
    """LAOM on camera frames of the point world, 30% of the episodes labeled: the forward model
    predicts an EMA target's embedding, the target takes no gradient and moves by EMA only, and
    the latent actions (read off frame pairs) carry the true actions far better than at init."""
    import json

    from pointenv import point_frames_dataset

    from autodidact.workflows.figures import latent_probe
    full = Dataset.load(point_frames_dataset(tmp_path / "frames.npz", episodes=20, length=30))
    ds = hide_actions(full, 0.3, seed=0)
    cfg = apply_overrides(LAPOConfig(), [*LAOM_TINY, "lr=1e-3", "action_loss=1.0", "future_offset=2",
                                         "frame_stack=2"])
    torch.manual_seed(0)
    lapo = LAPO(cfg, ds.obs_shape, 2)
    assert [t for t, _ in lapo.targets()] == [lapo.target_encoder]
    assert not any(p.requires_grad for p in lapo.target_encoder.parameters())
    stepped = {id(p) for group in lapo.optimizer.param_groups for p in group["params"]}
    assert stepped.isdisjoint(map(id, lapo.target_encoder.parameters()))
    assert not hasattr(lapo, "fdm_encoder") and lapo.fdm.out_dim == lapo.obs_encoder.out_dim
    sampler = lapo.make_sampler(ds, seed=0)
    for step in range(200):
        batch = to_tensors(sampler.sample(64), "cpu")
        assert batch["future_observations"].shape == batch["observations"].shape == (64, 16, 16, 6)
        target = [p.detach().clone() for p in lapo.target_encoder.parameters()]
        info = lapo.update(batch)
        assert all(np.isfinite(float(v)) for v in info.values()), info
    # The last step moved the target by EMA towards the online encoder's new weights, and no further.
    tau = cfg.target_tau
    for t0, t1, online in zip(target, lapo.target_encoder.parameters(), lapo.obs_encoder.parameters()):
        assert t1.grad is None
        torch.testing.assert_close(t1, t0 + tau * (online - t0))
    assert any(not torch.equal(t, o) for t, o in zip(lapo.target_encoder.parameters(), lapo.obs_encoder.parameters()))
    # LAOM's linear probe (the figure `train` writes), fitted on half the episodes, scored on the rest.
    stats = json.loads(latent_probe(lapo, tmp_path, full)[0].read_text())
    assert stats["r2"] > 0.3 and stats["r2"] > stats["r2_random_init"] + 0.3, stats


def _indexed_episodes(lengths):
    """Observations that are their own index, episodes of the given lengths."""
    terms = np.concatenate([np.arange(n) == n - 1 for n in lengths])
    obs = np.arange(len(terms), dtype=np.float32)[:, None]
    return Dataset(obs, terms, np.zeros((len(terms), 2), np.float32))


def test_future_offsets_are_uniform_up_to_k_inside_the_episode():
    from autodidact.data.sampler import GoalSampler
    ds = _indexed_episodes([3, 12, 7, 20])
    sampler = GoalSampler(ds, seed=0, future_offset=4, frame_stack=2, unlabeled=True)
    batch = sampler.sample(4000)
    obs, future = batch["observations"][:, -1], batch["future_observations"][:, -1]  # the last stacked frame
    offset = future - obs
    assert set(np.unique(offset)) == {1, 2, 3, 4}
    end = ds.episode_end_of(obs.astype(int))
    start = ds.episode_start_of(obs.astype(int))
    assert (future <= end).all() and (ds.episode_start_of(future.astype(int)) == start).all()
    # Far from the end every offset is equally likely; near it, only those that stay in the episode.
    far = end - obs >= 4
    np.testing.assert_allclose(np.bincount(offset[far].astype(int), minlength=5)[1:] / far.sum(), 0.25, atol=0.04)
    last = end - obs == 1
    assert last.any() and (offset[last] == 1).all()
    # Frames stack before the future observation as before the others (its episode's earlier frames).
    np.testing.assert_array_equal(batch["future_observations"][:, 0],
                                  np.maximum(future - 1, ds.episode_start_of(future.astype(int))))
    # Without it, batches are what they were: no key, the same draws.
    plain = GoalSampler(ds, seed=0, frame_stack=2, unlabeled=True).sample(8)
    explicit = GoalSampler(ds, seed=0, frame_stack=2, unlabeled=True, future_offset=1).sample(8)
    assert "future_observations" not in plain and plain.keys() == explicit.keys()
    assert all(np.array_equal(plain[k], explicit[k]) for k in plain)


def test_latent_forward_resumes_bit_identically(tmp_path):
    from pointenv import assert_resume_matches_uninterrupted, point_frames_dataset
    full = Dataset.load(point_frames_dataset(tmp_path / "frames.npz", episodes=4, length=12))
    hide_actions(full, 0.5, seed=0).save(tmp_path / "part.npz")
    weights = assert_resume_matches_uninterrupted(
        "lapo", tmp_path, [*LAOM_TINY, "batch_size=16", "action_loss=0.05", "future_offset=3", "frame_stack=2",
                           "p_aug=0.5"], steps=4, every=2, data=tmp_path / "part.npz")
    assert any(k.startswith("target_encoder.") for k in weights)
