"""A tiny 2-D point world for learning checks that need no simulator.

The point lives in [-1, 1]^2 and moves by STEP * action. `point_play_dataset` writes unlabeled
"play" in it; `rollout_success` measures goal reaching of any batched policy.
"""

import numpy as np

from autodidact.workflows.runs import load_run
from autodidact.data.dataset import Dataset

STEP = 0.1  # how far one action moves the point


def point_play_dataset(path, episodes=40, length=60, seed=0):
    """A point in [-1, 1]^2 moving by STEP * action. Each episode wanders between random targets
    with noisy actions, like unlabeled play: no task, but every future state is reachable by the
    actions that led there, which hindsight relabeling turns into goal-reaching supervision."""
    rng = np.random.default_rng(seed)
    obs, acts, terms = [], [], []
    for _ in range(episodes):
        s = rng.uniform(-1, 1, 2)
        target = rng.uniform(-1, 1, 2)
        for t in range(length):
            if np.linalg.norm(target - s) < STEP or rng.random() < 0.05:
                target = rng.uniform(-1, 1, 2)
            a = np.clip((target - s) / STEP + rng.normal(0, 0.3, 2), -1, 1)
            obs.append(s.copy())
            acts.append(a)
            terms.append(t == length - 1)
            s = np.clip(s + STEP * a, -1, 1)
    ds = Dataset(np.array(obs, np.float32), np.array(terms), np.array(acts, np.float32))
    ds.save(path)
    return path


def point_frames(states, size=16):
    """Camera frames of point-world states: [N, size, size, 3] uint8, a bright blob where the
    point is in the first channel, fixed gradients in the other two (so frames have structure
    an encoder must read, as a scene's background)."""
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    d2 = (xs[None] - states[:, :1, None]) ** 2 + (ys[None] - states[:, 1:, None]) ** 2
    blob = 255 * np.exp(-d2 / 0.02)
    back = np.broadcast_to(np.stack([(xs + 1) * 60, (ys + 1) * 60]), (len(states), 2, size, size))
    return np.concatenate([blob[:, None], back], 1).transpose(0, 2, 3, 1).round().astype(np.uint8)


def point_frames_dataset(path, episodes=5, length=30, seed=0, size=16):
    """`point_play_dataset` seen through a camera: frames as observations, the states kept as
    `qpos` (as OGBench's visual files keep the simulator state)."""
    states_path = point_play_dataset(str(path) + ".states.npz", episodes, length, seed)
    ds = Dataset.load(states_path)
    Dataset(point_frames(np.asarray(ds.observations), size), ds.terminals, np.asarray(ds.actions),
            extras={"qpos": np.asarray(ds.observations)}).save(path, compressed=False)
    return path


def rollout_success(policy_fn, episodes=100, horizon=40, seed=123):
    """Fraction of episodes that end within 0.15 of a random goal."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(-1, 1, (episodes, 2)).astype(np.float32)
    g = rng.uniform(-1, 1, (episodes, 2)).astype(np.float32)
    for _ in range(horizon):
        a = np.clip(policy_fn(s, g), -1, 1)
        s = np.clip(s + STEP * a, -1, 1).astype(np.float32)
    return float((np.linalg.norm(s - g, axis=1) < 0.15).mean())


def settings(method, tmp_path, data, steps, out="run", overrides=(), **kw):
    """TrainSettings for a quiet test run of `method` (no evaluation, no progress bar)."""
    from autodidact.workflows.train import TrainSettings
    return TrainSettings(method=method, dataset=str(data), out=str(tmp_path / out), steps=steps, eval_episodes=0,
                         seed=kw.pop("seed", 0), overrides=overrides, progress=False, **kw)


def train_on_point_play(method, tmp_path, steps, overrides, log_every=100):
    """Train `method` on point play data; return (trained method, {metric: values per log row}, run
    directory)."""
    import csv

    from autodidact.workflows import train as trainer
    data = point_play_dataset(tmp_path / "point.npz")
    run = trainer.new_run(settings(method, tmp_path, data, steps, overrides=overrides, log_every=log_every),
                          argv=["test"])
    _, trained, _, step = load_run(run)
    assert step == steps
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return trained, {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}, run


def goal_batch(n=16, obs_dim=3, action_dim=2, seed=0):
    """A random batch shaped like GoalSampler's output, as torch tensors (30% goal hits)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    successes = (torch.rand(n, generator=g) < 0.3).float()
    return {"observations": torch.randn(n, obs_dim, generator=g),
            "next_observations": torch.randn(n, obs_dim, generator=g),
            "value_goals": torch.randn(n, obs_dim, generator=g),
            "actor_goals": torch.randn(n, obs_dim, generator=g),
            "actions": torch.rand(n, action_dim, generator=g) * 2 - 1,
            "rewards": successes - 1.0, "masks": 1.0 - successes}


def assert_resume_matches_uninterrupted(method, tmp_path, overrides, steps=40, every=10, data=None):
    """Train `steps` in one go, and `steps // 2` then resume to `steps` from the checkpoint before
    the last (so steps are replayed after a restore too); the final weights must be identical.
    Returns the final weights for method-specific checks."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from autodidact.workflows import train as trainer
    data = data or point_play_dataset(tmp_path / "point.npz", episodes=5)
    full = trainer.new_run(settings(method, tmp_path, data, steps, out="full", overrides=overrides,
                                    checkpoint_every=every), argv=["x"])
    half = steps // 2
    part = trainer.new_run(settings(method, tmp_path, data, half, out="part", overrides=overrides,
                                    checkpoint_every=every), argv=["x"])
    shutil.rmtree(part / "checkpoints" / f"step_{half:08d}")
    (part / "checkpoints" / "latest.json").unlink()
    trainer.resume_run(part, argv=["resume"], steps=steps, progress=False)
    a, b = (load_file(r / "checkpoints" / f"step_{steps:08d}" / "model.safetensors") for r in (full, part))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    return a
