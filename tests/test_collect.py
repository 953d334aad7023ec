"""Local OGBench data collection: file layout, recipe details, determinism, errors.

Episodes are shortened with max_episode_steps to keep the file fast, except one real-length
pointmaze episode. Worker-count tests start real 'spawn' processes.
"""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import ogbench
import pytest

import autodidact.workflows.collect as collect_mod
from autodidact.workflows.collect import RECIPES, collect
from autodidact.core.errors import UserError


def _load_raw(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _check_file(path, episodes, steps, ob_dim, act_dim):
    raw = _load_raw(path)
    n = episodes * steps
    assert raw["observations"].shape == (n, ob_dim) and raw["observations"].dtype == np.float32
    assert raw["actions"].shape == (n, act_dim) and raw["actions"].dtype == np.float32
    assert raw["terminals"].dtype == bool
    # True exactly on the last step of each episode.
    assert np.array_equal(np.nonzero(raw["terminals"])[0], np.arange(steps - 1, n, steps))
    assert np.abs(raw["actions"]).max() <= 1.0
    for key in ("observations", "actions", "qpos", "qvel"):
        assert np.isfinite(raw[key]).all(), key
        assert len(raw[key]) == n, key
    # OGBench's loader drops each episode's last step to build next_observations.
    data = ogbench.load_dataset(str(path), add_info=True)
    assert data["observations"].shape == (n - episodes, ob_dim)
    assert data["next_observations"].shape == (n - episodes, ob_dim)
    assert data["actions"].shape == (n - episodes, act_dim)
    assert data["qpos"].shape[0] == n - episodes
    return raw


@pytest.mark.slow
def test_pointmaze_navigate_real_length(tmp_path):
    train, val = collect("pointmaze-medium-navigate-v0", tmp_path, episodes=1, progress=False)
    assert train.name == "pointmaze-medium-navigate-v0.npz"
    assert val.name == "pointmaze-medium-navigate-v0-val.npz"
    raw = _check_file(train, episodes=1, steps=1001, ob_dim=2, act_dim=2)
    _check_file(val, episodes=1, steps=1001, ob_dim=2, act_dim=2)  # max(1, 1 // 10) episodes
    assert raw["qpos"].shape == (1001, 2) and raw["qvel"].shape == (1001, 2)
    # The point's observation is its position, which qpos (the pre-step state) matches.
    np.testing.assert_allclose(raw["observations"], raw["qpos"], atol=1e-5)
    # The noisy oracle travels: a 1001-step navigate episode crosses several maze cells.
    assert np.ptp(raw["observations"], axis=0).max() > 8.0


@pytest.mark.slow
def test_pointmaze_stitch_goal_is_four_cells_away(tmp_path):
    from autodidact.workflows.collect.maze import MazeCollector, bfs_distances

    collector = MazeCollector(RECIPES["pointmaze-medium-stitch-v0"], max_episode_steps=10)
    rng = np.random.default_rng(0)
    for _ in range(20):
        init_ij, goal_ij = collector._sample_task(rng)
        dist = bfs_distances(collector.maze.maze_map, init_ij)
        assert dist[goal_ij] == 4 or (goal_ij == init_ij and 4 not in dist.values())
    train, _ = collect("pointmaze-medium-stitch-v0", tmp_path, episodes=2, progress=False)
    _check_file(train, episodes=2, steps=201, ob_dim=2, act_dim=2)


def test_maze_cell_helpers():
    from autodidact.workflows.collect.maze import bfs_distances, free_cells, is_hallway

    maze = np.array(
        [
            [1, 1, 1, 1, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 1, 0, 1],
            [1, 1, 1, 1, 1],
        ]
    )
    assert free_cells(maze) == [(1, 1), (1, 2), (1, 3), (2, 3)]
    assert [is_hallway(maze, c) for c in free_cells(maze)] == [False, True, False, False]
    assert bfs_distances(maze, (1, 1)) == {(1, 1): 0, (1, 2): 1, (1, 3): 2, (2, 3): 3}


@pytest.mark.slow
def test_cube_single_play_layout(tmp_path):
    train, val = collect("cube-single-play-v0", tmp_path, episodes=2, max_episode_steps=40, progress=False)
    raw = _check_file(train, episodes=2, steps=40, ob_dim=28, act_dim=5)
    _check_file(val, episodes=1, steps=40, ob_dim=28, act_dim=5)
    assert raw["qpos"].shape == (80, 21) and raw["qvel"].shape == (80, 20)
    assert "button_states" not in raw
    assert raw["qpos"].dtype == np.float32


@pytest.mark.slow
def test_puzzle_has_int64_button_states(tmp_path):
    train, _ = collect("puzzle-3x3-play-v0", tmp_path, episodes=1, max_episode_steps=20, progress=False)
    raw = _check_file(train, episodes=1, steps=20, ob_dim=55, act_dim=5)
    assert raw["button_states"].shape == (20, 9) and raw["button_states"].dtype == np.int64


def test_scene_health_check():
    from autodidact.workflows.collect.manip import scene_is_healthy

    qpos = np.zeros((5, 25))
    qpos[:, 14:17] = [0.4, 0.0, 0.02]  # cube on the table, in view
    assert scene_is_healthy(qpos)
    qpos[2, 15] = 0.3  # too far right
    assert not scene_is_healthy(qpos)
    qpos[2, 14:17] = [0.4, -0.35, 0.07]  # far left but inside the drawer
    assert scene_is_healthy(qpos)
    qpos[2, 16] = 0.02  # far left on the table: out of view
    assert not scene_is_healthy(qpos)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, episodes, steps",
    [("pointmaze-medium-navigate-v0", 6, 120), ("cube-single-play-v0", 3, 30)],
)
def test_same_bytes_for_any_worker_count(tmp_path, name, episodes, steps):
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        paths = collect(name, out, episodes, seed=3, workers=workers, max_episode_steps=steps, progress=False)
        outputs[workers] = [_load_raw(p) for p in paths]
    for single, double in zip(outputs[1], outputs[2]):
        assert single.keys() == double.keys()
        for key in single:
            assert single[key].tobytes() == double[key].tobytes(), key


@pytest.mark.slow
def test_seed_changes_data_and_episodes_are_prefix_stable(tmp_path):
    def train(seed, episodes):
        out = tmp_path / f"{seed}-{episodes}"
        name = "pointmaze-medium-navigate-v0"
        path, _ = collect(name, out, episodes, seed=seed, max_episode_steps=50, progress=False)
        return _load_raw(path)

    short, long, other = train(0, 2), train(0, 4), train(1, 2)
    # Episode i is seeded by (seed, split, i) alone: more episodes only append.
    assert np.array_equal(short["observations"], long["observations"][:100])
    assert not np.array_equal(short["observations"], other["observations"])


@pytest.mark.slow
def test_workers_1_restores_global_numpy_state(tmp_path):
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    collect("pointmaze-medium-navigate-v0", tmp_path, episodes=1, max_episode_steps=5, progress=False)
    assert np.random.rand() == expected


@pytest.mark.slow
def test_maze_collection_leaves_no_model_file_in_the_temp_dir(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))  # where OGBench's maze writes its model
    collect("pointmaze-medium-navigate-v0", tmp_path / "out", episodes=1, max_episode_steps=5, progress=False)
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    real_run_episode = collect_mod._run_episode

    def failing(collector, seed, split, index):
        if index == 1:
            raise RuntimeError("simulated worker failure")
        return real_run_episode(collector, seed, split, index)

    monkeypatch.setattr(collect_mod, "_run_episode", failing)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated"):
        collect("pointmaze-medium-navigate-v0", out, episodes=3, max_episode_steps=5, progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(UserError) as err:
        collect("pointmaze-tiny-navigate-v0", tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert all(name in message for name in RECIPES)
    assert not any(tmp_path.iterdir())


def test_antmaze_needs_expert_policy(tmp_path):
    with pytest.raises(UserError, match="expert") as err:
        collect("antmaze-large-navigate-v0", tmp_path)
    assert "antmaze-large-navigate-v0.npz" in str(err.value)


@pytest.mark.parametrize(
    "kwargs", [dict(episodes=0), dict(workers=0), dict(max_episode_steps=-1), dict(seed=-1)]
)
def test_bad_counts_are_user_errors(tmp_path, kwargs):
    with pytest.raises(UserError):
        collect("pointmaze-medium-navigate-v0", tmp_path, progress=False, **kwargs)


def test_recipes_match_ogbench_commands():
    assert RECIPES["pointmaze-medium-navigate-v0"].episodes == 1000
    assert RECIPES["pointmaze-medium-navigate-v0"].max_episode_steps == 1001
    assert RECIPES["pointmaze-large-stitch-v0"].episodes == 5000
    assert RECIPES["pointmaze-large-stitch-v0"].max_episode_steps == 201
    for name, recipe in RECIPES.items():
        assert recipe.env_name == name.replace(f"-{recipe.kind}", "")
        if recipe.kind == "play":
            assert (recipe.noise, recipe.noise_smoothing, recipe.episodes) == (0.1, 0.5, 1000)
        else:
            assert recipe.noise == 0.5


# ------------------------------------------------------------------ visual datasets


@pytest.mark.slow
def test_visual_collect_layout_determinism_and_frames(tmp_path):
    """visual-cube-single-play-v0: OGBench's visual layout, same bytes for 1 and 2 workers, the
    same trajectories as the state dataset, frames that re-render from their stored states."""
    from autodidact.envs.render import render_frames

    episodes, steps = 2, 12
    outputs = {}
    for workers in (1, 2):
        paths = collect("visual-cube-single-play-v0", tmp_path / f"w{workers}", episodes, seed=5,
                        workers=workers, max_episode_steps=steps, progress=False)
        outputs[workers] = [_load_raw(p) for p in paths]
    for single, double in zip(outputs[1], outputs[2]):
        assert single.keys() == double.keys()
        for key in single:
            assert np.array_equal(single[key], double[key]), key
    train = outputs[1][0]
    n = episodes * steps
    assert train["observations"].shape == (n, 64, 64, 3) and train["observations"].dtype == np.uint8
    assert train["qpos"].shape == (n, 21) and train["qvel"].shape == (n, 20)
    assert train["observations"].std() > 10  # a real image, not a blank frame
    data = ogbench.load_dataset(str(tmp_path / "w1" / "visual-cube-single-play-v0.npz"), ob_dtype=np.uint8)
    assert data["observations"].shape == (n - episodes, 64, 64, 3)
    assert data["next_observations"].dtype == np.uint8

    # Pixels change only the observation: the state recipe with the same seed moves identically.
    state_train, _ = collect("cube-single-play-v0", tmp_path / "states", episodes, seed=5,
                             max_episode_steps=steps, progress=False)
    np.testing.assert_array_equal(_load_raw(state_train)["qpos"], train["qpos"])
    # Frames drawn during the step and frames drawn later from the stored (qpos, qvel) agree.
    rerendered = render_frames("visual-cube-single-v0", train["qpos"][::4], train["qvel"][::4])
    assert np.abs(rerendered.astype(int) - train["observations"][::4]).mean() < 1.0


@pytest.mark.slow
def test_visual_collect_renders_headless_without_mujoco_gl(tmp_path):
    """A shell without MUJOCO_GL (no X display either): the CLI picks EGL itself."""
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "autodidact", "collect", "visual-cube-single-play-v0", "--out",
                           str(tmp_path), "--episodes", "2", "--max-episode-steps", "3", "--workers", "2", "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "visual-cube-single-play-v0.npz").exists()
    assert "precision lowered" not in proc.stderr  # gymnasium's float64-bounds warning, in the workers too


def test_visual_recipes_mirror_the_state_recipes():
    for name, recipe in RECIPES.items():
        if name.startswith("visual-"):
            assert RECIPES[name[len("visual-"):]] == dataclasses.replace(recipe, env_name=recipe.env_name[7:])


def test_unknown_render_preset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="render preset"):
        collect("visual-cube-single-play-v0", tmp_path, episodes=1, render="gpu", progress=False)
    assert not list(tmp_path.iterdir())
