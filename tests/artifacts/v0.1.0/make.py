"""Writes the v0.1.0 compatibility artifact: a tiny dataset, one small run per method, and each
run's actions on a fixed batch of observations and goals. Run with autodidact 0.1.0 (commit
6508898) installed: `python make.py OUT_DIR`. The files it wrote are committed; this script only
documents how (it uses 0.1.0's Python API, which later releases changed)."""

import sys
from pathlib import Path

import numpy as np
import torch

from autodidact import trainer
from autodidact.data.dataset import Dataset

TINY = {
    "gcbc": ("batch_size=16", "actor_hidden_dims=16,16"),
    "gcivl": ("batch_size=16", "actor_hidden_dims=16,16", "value_hidden_dims=16,16"),
    "gciql": ("batch_size=16", "actor_hidden_dims=16,16", "value_hidden_dims=16,16"),
    "qrl": ("batch_size=16", "actor_hidden_dims=16,16", "value_hidden_dims=16,16", "latent_dim=16"),
    "crl": ("batch_size=16", "actor_hidden_dims=16,16", "value_hidden_dims=16,16", "latent_dim=16"),
    "hiql": ("batch_size=16", "actor_hidden_dims=16,16", "value_hidden_dims=16,16", "subgoal_steps=5"),
    "hilp": ("batch_size=16", "actor_hidden_dims=16,16", "value_hidden_dims=16,16", "skill_dim=4"),
    "play-lmp": ("batch_size=8", "window=8", "window_min=4", "actor_hidden_dims=16,16", "latent_dim=8",
                 "recognizer_hidden=8", "recognizer_layers=1", "proposal_hidden_dims=16,16", "num_bins=32"),
    "play-gcbc": ("batch_size=8", "window=8", "window_min=4", "actor_hidden_dims=16,16", "num_bins=32"),
    "beso": ("batch_size=16", "hidden_dims=16,16", "sigma_embed_dim=8"),
}


def point_play(path, episodes=6, length=40, seed=0):
    rng = np.random.default_rng(seed)
    obs, acts, terms = [], [], []
    for _ in range(episodes):
        s, target = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
        for t in range(length):
            if np.linalg.norm(target - s) < 0.1 or rng.random() < 0.05:
                target = rng.uniform(-1, 1, 2)
            a = np.clip((target - s) / 0.1 + rng.normal(0, 0.3, 2), -1, 1)
            obs.append(s.copy())
            acts.append(a)
            terms.append(t == length - 1)
            s = np.clip(s + 0.1 * a, -1, 1)
    Dataset(np.array(obs, np.float32), np.array(terms), np.array(acts, np.float32)).save(path)


def main(out):
    out = Path(out)
    data = out / "pointmaze-medium-navigate-v0.npz"
    point_play(data)
    rng = np.random.default_rng(7)
    probe = {"observations": rng.uniform(-1, 1, (16, 2)).astype(np.float32),
             "goals": rng.uniform(-1, 1, (16, 2)).astype(np.float32)}
    for method, overrides in TINY.items():
        run = out / "runs" / method
        s = trainer.TrainSettings(method=method, dataset=str(data), out=str(run), steps=20, eval_every=0,
                                  eval_episodes=0, seed=0, log_every=5, checkpoint_every=10, keep_checkpoints=1,
                                  overrides=overrides, progress=False, compile="off")
        trainer.new_run(s, argv=["autodidact", "train", "--method", method, "--dataset", str(data), "--out",
                                 str(run), "--steps", "20"])
        _, m, _, _ = trainer.load_run(run)
        m.eval()
        policy = m.make_policy(temperature=0.0, seed=0)
        if hasattr(policy, "reset"):
            policy.reset(np.ones(16, bool))
        probe[f"actions/{method}"] = np.asarray(policy.act(probe["observations"], probe["goals"]), np.float32)
    np.savez(out / "probe.npz", **probe)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1])
