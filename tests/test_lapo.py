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
