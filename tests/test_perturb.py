"""Perturbation mode of the evaluator: the object or the agent is displaced once per episode.

Checks that the displacement happens at its step (an observation jump) in pointmaze and
cube-single (and the other OGBench families), that results depend only on the seed, and that the
measure separates a policy that retries (a closed-loop maze oracle) from one that does not (the
same oracle steering by dead reckoning, i.e. acting open loop on its own belief of where it is).
"""

import json

import numpy as np
import pytest

pytest.importorskip("ogbench")

from autodidact.envs import make_env  # noqa: E402
from autodidact.core.errors import UserError  # noqa: E402
from autodidact.workflows.evaluate import Perturbation, evaluate  # noqa: E402

MAZE = "pointmaze-medium-v0"
CUBE = "cube-single-v0"
# cube-single state observations: arm joint angles, then (after proprioception) the cube's xyz x10.
ARM_JOINTS, CUBE_XYZ = slice(0, 6), slice(19, 22)


class Recorder:
    """Takes a fixed action and records every observation batch it is shown."""

    def __init__(self, action_dim):
        self.action_dim, self.obs = action_dim, []

    def act(self, observations, goals):
        self.obs.append(np.array(observations))
        return np.zeros((len(observations), self.action_dim))

    def jumps(self, dims, row=0):
        """|change| of obs[dims] of one batch row between consecutive calls; jumps[k-1] spans env step k."""
        obs = np.stack(self.obs)[:, row, dims]
        return np.abs(np.diff(obs, axis=0)).max(axis=-1)


class MazeOracle:
    """Heads for the next cell on the shortest path (the maze's own BFS oracle).

    open_loop: steer from a believed position, started from the first observation and moved by
    each action as the point's dynamics would (0.2 * action), instead of from the observation:
    the same plan without feedback, as an agent that never looks again would act.
    """

    def __init__(self, open_loop=False):
        self.maze = make_env(MAZE).unwrapped
        self.open_loop, self.belief = open_loop, None

    def reset(self, mask):
        if self.belief is not None:
            self.belief[mask] = np.nan

    def act(self, observations, goals):
        xy = np.array(observations[:, :2], dtype=np.float64)
        if self.open_loop:
            if self.belief is None:
                self.belief = np.full_like(xy, np.nan)
            fresh = np.isnan(self.belief[:, 0])
            self.belief[fresh] = xy[fresh]
            xy = self.belief
        actions = np.zeros((len(xy), 2))
        for k, (here, goal) in enumerate(zip(xy, goals[:, :2])):
            if self.maze.xy_to_ij(here) == self.maze.xy_to_ij(goal):
                target = goal
            else:
                target, _ = self.maze.get_oracle_subgoal(here, goal)
            direction = target - here
            actions[k] = direction / (np.linalg.norm(direction) + 1e-6)
        if self.open_loop:
            self.belief += 0.2 * actions
        return actions


@pytest.mark.slow
def test_maze_agent_is_teleported_at_its_step():
    policy = Recorder(2)
    result = evaluate(MAZE, policy, episodes_per_task=1, tasks=[1, 2], num_envs=2, progress=False,
                      max_episode_steps=10, perturb="agent@5")
    for row in (0, 1):
        jumps = policy.jumps(slice(0, 2), row)
        # A still agent, then a jump of at least one cell (4 units) less the +-1 start noise.
        assert jumps[4] > 1.5, jumps
        assert np.delete(jumps, 4).max() < 0.05, jumps
    assert result["perturbation"] == {"target": "agent", "at": 5, "cells": 2, "perturbed": 1.0,
                                      "success_perturbed": 0.0, "undone": 0.0, "recovered": 0.0}
    assert all(t["perturbed"] == 1.0 and t["success"] == 0.0 for t in result["tasks"])


@pytest.mark.slow
@pytest.mark.parametrize("target", ["object", "arm", "both"])
def test_cube_and_arm_are_displaced_at_their_step(target):
    policy = Recorder(5)
    evaluate(CUBE, policy, episodes_per_task=1, tasks=[2], num_envs=1, progress=False,
             max_episode_steps=8, perturb=f"{target}@4")
    cube, arm = policy.jumps(CUBE_XYZ), policy.jumps(ARM_JOINTS)
    # Without a perturbation the cube rests and the arm drifts a little (0.1 rad a step at most).
    assert np.delete(cube, 3).max() < 0.02 and np.delete(arm, 3).max() < 0.15, (cube, arm)
    moves_cube, moves_arm = target in ("object", "both"), target in ("arm", "both")
    assert (cube[3] > 0.3) == moves_cube, cube  # 0.3 = 3 cm in observation units
    assert (arm[3] > 0.5) == moves_arm, arm
    if moves_cube:  # put back on the table, inside the env's own sampling bounds, at rest
        xyz = np.stack(policy.obs)[4, 0, CUBE_XYZ] / 10 + np.array([0.425, 0.0, 0.0])
        assert 0.3 <= xyz[0] <= 0.55 and -0.3 <= xyz[1] <= 0.3 and abs(xyz[2] - 0.02) < 0.005, xyz


@pytest.mark.slow
@pytest.mark.parametrize("env_name, target, action_dim, dims", [
    ("puzzle-3x3-v0", "object", 5, slice(None)),  # a button press: button states flip
    ("scene-v0", "both", 5, slice(None)),
    ("antmaze-medium-v0", "agent", 8, slice(0, 2)),  # the torso's xy (its joints flail as it lands)
])
def test_other_env_families(env_name, target, action_dim, dims):
    policy = Recorder(action_dim)
    result = evaluate(env_name, policy, episodes_per_task=1, tasks=[1], num_envs=1, progress=False,
                      max_episode_steps=5, perturb=f"{target}@3")
    jumps = policy.jumps(dims)
    assert jumps[2] > 3 * np.delete(jumps, 2).max(), jumps
    assert result["tasks"][0]["perturbed"] == 1.0


@pytest.mark.slow
def test_results_depend_only_on_the_seed():
    # Default window (10%-30% of a 180-step limit): the oracle is displaced mid-way, and the limit
    # is tight enough that some episodes fail; recovery_steps means depend on every draw.
    kwargs = dict(episodes_per_task=3, tasks=[1, 4], seed=2, progress=False, max_episode_steps=180, perturb="agent")
    def run(**more):
        return json.dumps(evaluate(MAZE, MazeOracle(), **dict(kwargs, **more)))  # as text: NaN != NaN

    first = run(num_envs=6)
    assert 0 < json.loads(first)["overall_success"] < 1, first
    assert run(num_envs=6) == first
    assert run(num_envs=4) == first
    assert run(num_envs=6, vector_mode="subprocess") == first
    assert run(num_envs=6, seed=3) != first


@pytest.mark.slow
def test_perturbation_separates_retrying_from_open_loop():
    kwargs = dict(episodes_per_task=4, tasks=[1, 4], seed=0, progress=False, max_episode_steps=250)
    for policy in (MazeOracle, lambda: MazeOracle(open_loop=True)):  # both succeed unperturbed
        assert evaluate(MAZE, policy(), **kwargs)["overall_success"] == 1.0
    # Undo every first success: the oracle walks back; open loop, the agent believes it is there.
    closed = evaluate(MAZE, MazeOracle(), perturb="agent@success", **kwargs)
    blind = evaluate(MAZE, MazeOracle(open_loop=True), perturb="agent@success", **kwargs)
    assert closed["perturbation"]["undone"] == 1.0 and blind["perturbation"]["undone"] == 1.0
    assert closed["perturbation"]["recovered"] == 1.0 and closed["overall_success"] == 1.0
    assert blind["perturbation"]["recovered"] <= 0.25, blind
    assert all(t["recovery_steps"] > 5 for t in closed["tasks"])
    # Displaced mid-way (step 100), with 80 steps to spare: the oracle still gets there.
    closed = evaluate(MAZE, MazeOracle(), perturb="agent@100", **kwargs)
    blind = evaluate(MAZE, MazeOracle(open_loop=True), perturb="agent@100", **kwargs)
    assert closed["overall_success"] == 1.0 and blind["overall_success"] <= 0.25, (closed, blind)
    # With a tight limit a retry costs successes: the price of the detour shows.
    tight = evaluate(MAZE, MazeOracle(), perturb="agent@success", **dict(kwargs, max_episode_steps=180))
    assert 0 < tight["overall_success"] < 1


@pytest.mark.slow
def test_video_shows_the_perturbation(tmp_path):
    import imageio.v2 as imageio

    # A moving agent, so that no two frames are alike (the gif writer drops repeated frames).
    result = evaluate(MAZE, MazeOracle(), episodes_per_task=0, tasks=[1], progress=False, max_episode_steps=7,
                      video_dir=tmp_path, video_format="gif", video_size=(32, 32), perturb="agent@4")
    frames = [np.asarray(f)[..., :3].astype(int) for f in imageio.mimread(result["video"])]
    # Frames at steps 3, 4 (the perturbation, always rendered), 6 and 7; the goal image comes first
    # (left), the episode right. Frames within 6 steps of the perturbation have a red border.
    assert len(frames) == 4
    red = [f[0, 32 + 5:-5].mean(axis=0) for f in frames]  # the top edge of the episode's half
    assert all(r[0] > 180 and r[1] < 80 for r in red[1:]), red
    assert not (red[0][0] > 180 and red[0][1] < 80), red[0]


def test_bad_perturbations_are_user_errors():
    run = dict(episodes_per_task=1, tasks=[1], progress=False, max_episode_steps=5)
    with pytest.raises(UserError, match=r"must be one of object, arm, agent, both; got 'hand'"):
        evaluate(MAZE, Recorder(2), perturb="hand", **run)
    with pytest.raises(UserError, match="no object to displace; perturbation targets here: arm, agent, both"):
        evaluate(MAZE, Recorder(2), perturb="object", **run)
    with pytest.raises(UserError, match="WHEN must be 'success', a step"):
        evaluate(MAZE, Recorder(2), perturb="agent@soon", **run)
    with pytest.raises(UserError, match="not before the end of the episode"):
        evaluate(MAZE, Recorder(2), perturb="agent@5", **run)
    with pytest.raises(UserError, match="0 <= lo <= hi <= 1"):
        evaluate(MAZE, Recorder(2), perturb={"target": "agent", "at": (0.5, 0.2)}, **run)
    with pytest.raises(UserError, match="unknown perturbation field"):
        evaluate(MAZE, Recorder(2), perturb={"target": "agent", "when": 3}, **run)
    with pytest.raises(UserError, match="cells must be an integer >= 1"):
        Perturbation("agent", cells=0)
    assert Perturbation.parse("arm@0.2-0.5") == Perturbation("arm", (0.2, 0.5))
    assert Perturbation.parse("both@success").at == "success" and Perturbation.parse("arm@12").at == 12
    for message in ("hand", "agent@soon"):
        with pytest.raises(UserError) as info:
            Perturbation.parse(message)
        assert "\n" not in str(info.value)
