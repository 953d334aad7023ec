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


# ---------------------------------------------------------------- a sparse-reward task for online learning

POINT_TASK = "pointgoal-singletask-task1-v0"
POINT_START, POINT_GOAL, POINT_TOL = (-0.8, -0.8), (0.8, 0.8), 0.15


def point_task_env_class():
    """A gymnasium env shaped like an OGBench single-task env: reach POINT_GOAL from near
    POINT_START; reward -1 per step and 0 at success, which ends the episode; `info['goal']` at
    reset and `task_infos` as the evaluator reads them."""
    import gymnasium

    class PointGoalEnv(gymnasium.Env):
        task_infos = [{"task_name": "task1_corner"}]
        _reward_task_id = 1

        def __init__(self):
            self.observation_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
            self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
            self.goal = np.array(POINT_GOAL, np.float32)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.s = (np.array(POINT_START) + self.np_random.uniform(-0.05, 0.05, 2)).astype(np.float32)
            return self.s.copy(), {"goal": self.goal.copy()}

        def step(self, action):
            self.s = np.clip(self.s + STEP * np.clip(action, -1, 1), -1, 1).astype(np.float32)
            success = float(np.linalg.norm(self.s - self.goal) < POINT_TOL)
            return self.s.copy(), success - 1.0, bool(success), False, {"success": success}

    return PointGoalEnv


def register_point_task(max_episode_steps=50):
    """Register POINT_TASK with gymnasium (once per process)."""
    from autodidact.envs.ogbench import _register
    gymnasium = _register()
    if POINT_TASK not in gymnasium.registry:
        gymnasium.register(id=POINT_TASK, entry_point=point_task_env_class(), max_episode_steps=max_episode_steps)
    return POINT_TASK


def point_task_prior(path, episodes=20, length=40, seed=0, obs_dim=2):
    """Reward-free prior data for POINT_TASK: noisy trips from the start region towards the goal and
    past it (no rewards, no terminals at the goal), as navigation data collected for other tasks."""
    rng = np.random.default_rng(seed)
    obs, acts, terms = [], [], []
    for _ in range(episodes):
        s = np.array(POINT_START) + rng.uniform(-0.1, 0.1, 2)
        for t in range(length):
            a = np.clip((np.array(POINT_GOAL) - s) / STEP + rng.normal(0, 0.5, 2), -1, 1)
            obs.append(np.resize(s, obs_dim))
            acts.append(a)
            terms.append(t == length - 1)
            s = np.clip(s + STEP * a, -1, 1)
    Dataset(np.array(obs, np.float32), np.array(terms), np.array(acts, np.float32)).save(path)
    return path
