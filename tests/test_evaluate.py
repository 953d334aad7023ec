"""Evaluator tests: env-name mapping, an oracle beating trivial policies, determinism, videos.

Pointmaze episodes are cut short with `max_episode_steps` wherever the test allows, to stay fast.
"""

import json
import os

import numpy as np
import pytest

pytest.importorskip("ogbench")

from autodidact.envs import env_name_for_dataset, make_env, num_tasks, task_names  # noqa: E402
from autodidact.core.errors import UserError  # noqa: E402
from autodidact.workflows.evaluate import evaluate  # noqa: E402

MAZE = "pointmaze-medium-v0"


@pytest.mark.parametrize(
    "name, env_id",
    [
        ("data/pointmaze-medium-navigate-v0.npz", "pointmaze-medium-v0"),
        ("/d/pointmaze-medium-navigate-v0-val.npz", "pointmaze-medium-v0"),
        ("pointmaze-large-stitch-v0", "pointmaze-large-v0"),
        ("antmaze-medium-navigate-v0", "antmaze-medium-v0"),
        ("cube-single-play-v0", "cube-single-v0"),
        ("cube-double-play-100m-v0", "cube-double-v0"),
        ("puzzle-3x3-play-v0", "puzzle-3x3-v0"),
        ("scene-play-v0", "scene-v0"),
        ("visual-cube-single-play-v0", "visual-cube-single-v0"),
        ("cube-single-play-singletask-task2-v0", "cube-single-singletask-task2-v0"),
        ("cube-single-play-singletask-v0", "cube-single-singletask-v0"),
        ("pointmaze-medium-v0", "pointmaze-medium-v0"),  # an env id maps to itself
        ("antmaze-large-navigate-oraclerep-v0", None),
        ("my-own-data.npz", None),
        ("my-own-data-v0", None),
        ("cube-single-play", None),
    ],
)
def test_env_name_for_dataset(name, env_id):
    assert env_name_for_dataset(name) == env_id


def test_make_env_unknown_name_is_a_user_error():
    with pytest.raises(UserError, match="its env is 'pointmaze-medium-v0'"):
        make_env("pointmaze-medium-navigate-v0")
    with pytest.raises(UserError, match="unknown OGBench environment"):
        make_env("nomaze-v0")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to see open files")
def test_make_env_leaves_no_model_file_or_descriptor_behind(tmp_path, monkeypatch):
    # OGBench's maze constructor writes its model with mkstemp and keeps the descriptor open.
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    for _ in range(2):
        env = make_env(MAZE)
        env.reset(seed=0)
        env.step(env.action_space.sample())
        env.close()
    assert os.listdir(tmp_path) == []
    open_files = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            open_files.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the listing's own descriptor, closed by now
            pass
    assert not [f for f in open_files if f.startswith(str(tmp_path))]


def test_tasks():
    assert num_tasks(MAZE) == 5
    assert task_names(MAZE)[0] == "task1"
    assert num_tasks("pointmaze-medium-singletask-task3-v0") == 1


class OracleMazePolicy:
    """Heads for the next cell on the shortest path, from the maze's own BFS oracle.

    Pointmaze observations (and goals) are the agent's (x, y), so the batch alone is enough; the
    oracle needs a maze instance for its map.
    """

    def __init__(self, env_name=MAZE):
        self.maze = make_env(env_name).unwrapped

    def act(self, observations, goals):
        actions = np.zeros((len(observations), 2))
        for k, (xy, goal_xy) in enumerate(zip(observations[:, :2], goals[:, :2])):
            if self.maze.xy_to_ij(xy) == self.maze.xy_to_ij(goal_xy):
                target = goal_xy  # same cell: the oracle would return this cell's centre
            else:
                target, _ = self.maze.get_oracle_subgoal(xy, goal_xy)
            direction = target - xy
            actions[k] = direction / (np.linalg.norm(direction) + 1e-6)
        return actions


class ZeroPolicy:
    def act(self, observations, goals):
        return np.zeros((len(observations), 2))


class RandomPolicy:
    def __init__(self):
        self.rng = np.random.default_rng(0)

    def act(self, observations, goals):
        return self.rng.uniform(-1, 1, size=(len(observations), 2))


class RecordingPolicy(ZeroPolicy):
    """Records reset masks and the observation each episode starts from."""

    def __init__(self):
        self.masks, self.starts, self._pending = [], [], None

    def reset(self, mask):
        self.masks.append(np.array(mask))
        self._pending = np.array(mask)

    def act(self, observations, goals):
        if self._pending is not None:
            self.starts.extend(map(tuple, np.concatenate([observations, goals], 1)[self._pending]))
            self._pending = None
        return super().act(observations, goals)


@pytest.mark.slow
def test_oracle_beats_zero_and_random_policies():
    kwargs = dict(episodes_per_task=2, seed=0, progress=False, max_episode_steps=400)
    oracle = evaluate(MAZE, OracleMazePolicy(), **kwargs)
    zero = evaluate(MAZE, ZeroPolicy(), **kwargs)
    rand = evaluate(MAZE, RandomPolicy(), **kwargs)
    assert [t["task_id"] for t in oracle["tasks"]] == [1, 2, 3, 4, 5]
    assert all(t["episodes"] == 2 for t in oracle["tasks"])
    assert oracle["overall_success"] >= 0.8, oracle
    assert zero["overall_success"] == 0.0 and rand["overall_success"] <= 0.2
    assert oracle["video"] is None


@pytest.mark.slow
def test_results_depend_only_on_seed():
    kwargs = dict(episodes_per_task=3, tasks=[1, 4], progress=False, max_episode_steps=5)

    def starts(**more):
        policy = RecordingPolicy()
        result = evaluate(MAZE, policy, **kwargs, **more)
        return result, sorted(policy.starts)

    result, reference = starts(seed=3, num_envs=4)
    assert len(reference) == 6
    # Same seed: same episodes, however many envs share the batch and in which process they run.
    assert starts(seed=3, num_envs=4) == (result, reference)
    assert starts(seed=3, num_envs=1)[1] == reference
    assert starts(seed=3, num_envs=4, vector_mode="subprocess")[1] == reference
    assert starts(seed=4, num_envs=4)[1] != reference


@pytest.mark.slow
def test_oracle_success_is_deterministic():
    # Tight step limit: some episodes succeed and some don't, so equal rates mean something.
    # (the oracle needs ~155-175 steps on tasks 1 and 4 of pointmaze-medium, depending on the start).
    kwargs = dict(episodes_per_task=6, tasks=[1, 4], seed=1, progress=False, max_episode_steps=162)
    first = evaluate(MAZE, OracleMazePolicy(), num_envs=12, **kwargs)
    assert 0 < first["tasks"][0]["success"] < 1 and 0 < first["tasks"][1]["success"] < 1, first
    assert first == evaluate(MAZE, OracleMazePolicy(), num_envs=5, **kwargs)


@pytest.mark.slow
def test_reset_is_called_for_every_episode():
    policy = RecordingPolicy()
    evaluate(MAZE, policy, episodes_per_task=3, tasks=[1, 2], num_envs=4, progress=False, max_episode_steps=3)
    assert policy.masks[0].shape == (4,) and policy.masks[0].all()
    assert sum(int(m.sum()) for m in policy.masks) == 6


@pytest.mark.slow
def test_bad_arguments():
    with pytest.raises(UserError, match="task ids are 1..5"):
        evaluate(MAZE, ZeroPolicy(), episodes_per_task=1, tasks=[6], progress=False)
    with pytest.raises(ValueError, match="returned 1 actions for a batch of 2"):
        evaluate(MAZE, type("P", (), {"act": lambda self, o, g: np.zeros((1, 2))})(),
                 episodes_per_task=2, tasks=[1], progress=False, max_episode_steps=3)


@pytest.mark.slow
@pytest.mark.parametrize("video_format", ["mp4", "gif"])
def test_video(tmp_path, video_format):
    import imageio.v2 as imageio

    result = evaluate(
        MAZE, OracleMazePolicy(), episodes_per_task=1, tasks=[1, 2], progress=False, max_episode_steps=7,
        video_dir=tmp_path, video_episodes=1, video_format=video_format, video_size=(48, 32),
    )
    assert result["video"] == os.path.join(tmp_path, f"{MAZE}.{video_format}")
    assert os.listdir(tmp_path) == [f"{MAZE}.{video_format}"]  # no temp file left behind
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(result["video"]).st_mode & 0o777 == 0o666 & ~mask  # as open() would create it
    frames = imageio.mimread(result["video"])
    # Frames at steps 3, 6 and the last (7); each cell is goal | current (2 x 48 wide), 2 tasks side by side.
    assert len(frames) == 3
    assert frames[0].shape[:2] == (32, 2 * 2 * 48)
    assert np.asarray(frames[0]).std() > 0  # a rendered scene, not a blank canvas
    # Video episodes are not counted.
    assert all(t["episodes"] == 1 for t in result["tasks"])


@pytest.mark.slow
def test_manipulation_env_in_worker_processes():
    policy = RecordingPolicy()
    policy.act = lambda observations, goals: np.zeros((len(observations), 5))
    result = evaluate("cube-single-v0", policy, episodes_per_task=1, tasks=[1, 2], progress=False,
                      max_episode_steps=3, vector_mode="subprocess")
    assert [t["episodes"] for t in result["tasks"]] == [1, 1]
    assert policy.masks[0].shape == (2,)


class GoalSeeker:
    """Moves the effector toward the goal's cube position; records what it sees."""

    def __init__(self):
        self.seen = []

    def act(self, observations, goals):
        self.seen.append(np.concatenate([observations, goals], 1))
        actions = np.zeros((len(observations), 5))
        actions[:, :3] = np.tanh(goals[:, 19:22] - observations[:, 12:15])
        return actions


@pytest.mark.slow
def test_env_cache_reuses_envs_and_matches_fresh_envs(monkeypatch):
    from autodidact.workflows.evaluate import episodes as ev

    def run():
        policy = GoalSeeker()
        result = evaluate("cube-single-v0", policy, episodes_per_task=2, tasks=[1, 3], num_envs=2, seed=5,
                          progress=False, max_episode_steps=10, perturb="both@4")
        return result, np.stack(policy.seen)

    ev.clear_env_cache()
    first, seen = run()
    (key, slots), = ev._ENV_CACHE.items()
    assert key == ("cube-single-v0", (("max_episode_steps", 10),)) and len(slots) == 2
    with monkeypatch.context() as m:  # the second call builds no env
        m.setattr(ev, "make_env", lambda *a, **k: pytest.fail("built an env despite the cache"))
        second, seen_again = run()
    assert [id(s) for s in ev._ENV_CACHE[key]] == [id(s) for s in slots]
    assert json.dumps(second) == json.dumps(first)  # (NaN != NaN, so compare as text)
    assert np.array_equal(seen_again, seen)
    # Fresh envs see the same goals and states: resets seed everything, the settle steps that
    # OGBench's resets take before recording the goal included.
    ev.clear_env_cache()
    assert not ev._ENV_CACHE
    third, seen_fresh = run()
    assert json.dumps(third) == json.dumps(first) and np.array_equal(seen_fresh, seen)
    # Bounded: the least recently used env id gives up its envs first.
    monkeypatch.setattr(ev, "ENV_CACHE_MAX_ENVS", 3)
    evaluate(MAZE, ZeroPolicy(), episodes_per_task=1, tasks=[1, 2], num_envs=2, progress=False, max_episode_steps=2)
    assert [len(s) for s in ev._ENV_CACHE.values()] == [1, 2] and list(ev._ENV_CACHE)[1][0] == MAZE
    ev.clear_env_cache()
