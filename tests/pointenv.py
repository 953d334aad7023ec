"""A tiny 2-D point world for learning checks that need no simulator.

The point lives in [-1, 1]^2 and moves by STEP * action. `point_play_dataset` writes unlabeled
"play" in it; `rollout_success` measures goal reaching of any batched policy.
"""

import numpy as np

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


def rollout_success(policy_fn, episodes=100, horizon=40, seed=123):
    """Fraction of episodes that end within 0.15 of a random goal."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(-1, 1, (episodes, 2)).astype(np.float32)
    g = rng.uniform(-1, 1, (episodes, 2)).astype(np.float32)
    for _ in range(horizon):
        a = np.clip(policy_fn(s, g), -1, 1)
        s = np.clip(s + STEP * a, -1, 1).astype(np.float32)
    return float((np.linalg.norm(s - g, axis=1) < 0.15).mean())
