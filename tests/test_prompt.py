"""Prompting: reward prompts recover linear rewards and reach rewarded states, planning midpoints,
task rewards match OGBench's single-task envs, prompts a method cannot serve are refused, and the
`autodidact prompt` command end to end on a real pointmaze dataset."""

import json

import numpy as np
import pytest
import torch

import autodidact
from autodidact import cli
from autodidact.workflows import train as trainer
from autodidact.data.dataset import Dataset
from autodidact.core.errors import UserError
from autodidact.methods.hilp import HILP, HILPConfig
from autodidact.envs.rewards import singletask_env_name, task_rewards
from autodidact.workflows.prompt.hilp import infer_reward_skill, midpoint_subgoal
from pointenv import STEP, point_play_dataset, settings

# Reduced for 2 CPU cores, and a 4-d phi for this 2-d world: with the published 32 dims, the
# least-squares skill of a reward lies mostly along phi's minor directions, which a skill policy
# trained for 600 steps cannot yet follow (goal prompts, near phi's main plane, work either way).
LEARN = ("batch_size=128", "actor_hidden_dims=64,64", "value_hidden_dims=64,64", "lr=1e-3", "skill_dim=4")
TINY = ("batch_size=32", "actor_hidden_dims=16", "value_hidden_dims=16,16", "skill_dim=4")


def test_reward_prompt_recovers_a_linear_reward():
    """Rewards linear in phi (plus an offset and noise) give back their direction as the skill."""
    torch.manual_seed(0)
    m = HILP(HILPConfig(actor_hidden_dims=(16,), value_hidden_dims=(32, 32), skill_dim=8), (5,), 2)
    rng = np.random.default_rng(0)
    states = rng.normal(size=(3000, 5)).astype(np.float32)
    w = rng.normal(size=8)
    w /= np.linalg.norm(w)
    with torch.no_grad():
        phi = m.phi(torch.from_numpy(states)).double().numpy()
    rewards = phi @ (3.0 * w) - 7.0 + rng.normal(0, 0.01, len(states))
    z, fit = infer_reward_skill(m, states, rewards)
    assert z.shape == (8,) and abs(float(z.norm()) - 1) < 1e-5
    assert float(z.double() @ torch.from_numpy(w)) > 0.999, (z, w)
    assert fit["r2"] > 0.99 and fit["samples"] == 3000
    with pytest.raises(UserError, match="every reward is the same"):
        infer_reward_skill(m, states, np.zeros(len(states)))


def test_midpoint_subgoal_halves_the_way_per_recursion():
    bank = torch.stack([torch.linspace(0, 8, 801), torch.zeros(801)], -1)
    s, g = torch.tensor([[0.0, 0.0]]), torch.tensor([[8.0, 0.0]])
    for recursions, expected in ((0, 8.0), (1, 4.0), (3, 1.0)):
        sub = midpoint_subgoal(s, g, bank, recursions, knns=5)
        assert abs(float(sub[0, 0]) - expected) < 0.05, (recursions, sub)


@pytest.fixture(scope="module")
def point_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prompt")
    data = point_play_dataset(tmp / "point.npz")
    run = trainer.new_run(settings("hilp", tmp, data, 600, overrides=LEARN), argv=["test"])
    return autodidact.load(run)


def _rollout(policy, starts, horizon=40):
    s = starts.astype(np.float32)
    for _ in range(horizon):
        s = np.clip(s + STEP * np.clip(policy(s), -1, 1), -1, 1).astype(np.float32)
    return s


@pytest.mark.slow
def test_reward_prompt_reaches_the_rewarded_region(point_model):
    """A task-like reward (0 near a corner, -1 elsewhere) on dataset states, fitted onto phi, gives a
    skill that drives the point from random starts into the rewarded corner."""
    ds = point_model.dataset
    target = np.array([0.8, -0.8], np.float32)
    rewards = (np.linalg.norm(ds.observations - target, axis=1) < 0.3).astype(np.float32) - 1
    assert 0 < (rewards == 0).mean() < 0.1
    policy = point_model.prompt(rewards=(ds.observations, rewards))
    starts = np.random.default_rng(5).uniform(-1, 1, (100, 2))
    hit = lambda s: float((np.linalg.norm(s - target, axis=1) < 0.3).mean())  # noqa: E731
    rng = np.random.default_rng(0)
    learned, random = hit(_rollout(policy.act, starts)), hit(_rollout(lambda s: rng.uniform(-1, 1, s.shape), starts))
    assert learned > random + 0.5, (learned, random)


@pytest.mark.slow
def test_goal_prompt_api(point_model):
    goal = np.array([0.5, 0.5], np.float32)
    policy = point_model.prompt(goal=goal)
    a = policy.act(np.zeros(2, np.float32))
    assert a.shape == (2,) and np.all(np.abs(a) <= 1)
    batch = policy.act(np.zeros((4, 2), np.float32), goals=np.full((4, 2), -0.9, np.float32))
    np.testing.assert_allclose(batch, np.broadcast_to(a, (4, 2)), atol=1e-6)  # the prompt's goal wins
    end = _rollout(lambda s: policy.act(s), np.random.default_rng(1).uniform(-1, 1, (50, 2)))
    assert np.median(np.linalg.norm(end - goal, axis=1)) < 0.2
    planned = point_model.prompt(goal=goal, plan=True, plan_states=500, plan_knns=10)
    end = _rollout(lambda s: planned.act(s), np.random.default_rng(1).uniform(-1, 1, (50, 2)))
    assert np.median(np.linalg.norm(end - goal, axis=1)) < 0.3
    free = point_model.prompt()
    with pytest.raises(UserError, match="no goal"):
        free.act(np.zeros(2, np.float32))
    with pytest.raises(UserError, match="shape"):
        point_model.prompt(goal=np.zeros(3))
    with pytest.raises(UserError, match="not both"):
        point_model.prompt(goal=goal, rewards=(np.zeros((2, 2)), np.zeros(2)))
    with pytest.raises(UserError, match="planning applies to goal prompts"):
        point_model.prompt(rewards=(np.zeros((2, 2)), np.array([0.0, 1.0])), plan=True)


def test_goal_only_methods_refuse_reward_prompts(tmp_path):
    data = point_play_dataset(tmp_path / "point.npz", episodes=3)
    run = trainer.new_run(settings("gcivl", tmp_path, data, 2, overrides=(
        "batch_size=8", "actor_hidden_dims=8", "value_hidden_dims=8")), argv=["x"])
    model = autodidact.load(run)
    assert model.prompts == ("goal",)
    assert model.prompt(goal=np.zeros(2)).act(np.ones(2)).shape == (2,)
    with pytest.raises(UserError, match="method 'gcivl' cannot be prompted with a reward; it accepts: goal"):
        model.prompt(rewards=(np.zeros((2, 2)), np.array([0.0, 1.0])))
    with pytest.raises(UserError, match="cannot plan"):
        model.prompt(goal=np.zeros(2), plan=True)


@pytest.mark.slow
@pytest.mark.parametrize("env_name", ["pointmaze-medium-singletask-task1-v0", "cube-single-singletask-task2-v0"])
def test_task_rewards_match_the_single_task_env(env_name):
    """Our rewards for stored states equal the env's own step rewards from those states (the
    single-task envs score the state before the step), on states around the task's goal."""
    from autodidact.envs import make_env
    env = make_env(env_name)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    states, theirs = [], []
    for i in range(40):
        ob, _ = env.reset(seed=i)
        if "maze" in env_name:
            u.set_xy(np.asarray(u.cur_goal_xy) + rng.uniform(-1.5, 1.5, 2))
        else:
            joint = u._model.joint("object_joint_0").qposadr[0]
            target = u._data.mocap_pos[u._cube_target_mocap_ids[0]]
            u._data.qpos[joint:joint + 3] = target + rng.uniform(-0.05, 0.05, 3) * [1, 1, 0.5]
        data = u.data if "maze" in env_name else u._data  # gymnasium's MujocoEnv / OGBench's manipspace
        states.append((data.qpos.copy(), data.qvel.copy()))
        theirs.append(env.step(np.zeros(env.action_space.shape))[1])
    env.close()
    qpos, qvel = (np.array(x, np.float32) for x in zip(*states))
    obs = qpos[:, :2] if "maze" in env_name else np.zeros((len(qpos), 28), np.float32)
    ds = Dataset(obs, np.arange(len(obs)) == len(obs) - 1, extras={"qpos": qpos, "qvel": qvel})
    ours = task_rewards(env_name, ds, np.arange(len(obs)))
    np.testing.assert_array_equal(ours, np.array(theirs, np.float32))
    assert 0.1 < (ours == 0).mean() < 0.9  # both outcomes were exercised


def test_singletask_names():
    assert singletask_env_name("cube-single-v0", 2) == "cube-single-singletask-task2-v0"
    with pytest.raises(UserError, match="task ids are 1..5"):
        singletask_env_name("pointmaze-medium-v0", 6)


@pytest.fixture(scope="module")
def maze_run(tmp_path_factory):
    from autodidact.workflows.collect import collect
    tmp = tmp_path_factory.mktemp("maze")
    train, _ = collect("pointmaze-medium-navigate-v0", tmp / "data", episodes=2, max_episode_steps=200, progress=False)
    run = trainer.new_run(settings("hilp", tmp, train, 20, overrides=TINY), argv=["x"])
    return tmp, run


def _cli(capsys, *args):
    code = cli.main(["prompt", *map(str, args), "--episodes", "2", "--max-steps", "15", "--no-progress"])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_cli_prompt_end_to_end(maze_run, capsys):
    tmp, run = maze_run
    code, out, err = _cli(capsys, run, "--goal", "all")
    assert code == 0, err
    assert "overall" in out and "task5" in out
    result = json.loads((run / "prompt" / "goal-all.json").read_text())
    assert len(result["tasks"]) == 5 and result["prompt"]["kind"] == "goal" and result["checkpoint_step"] == 20

    code, out, err = _cli(capsys, run, "--goal", "2", "--plan", "--plan-states", "300", "--plan-knns", "5")
    assert code == 0, err
    assert json.loads((run / "prompt" / "goal-task2-plan.json").read_text())["prompt"]["plan_knns"] == 5

    np.save(tmp / "goal.npy", np.array([20.0, 20.0], np.float32))
    code, out, err = _cli(capsys, run, "--goal-file", tmp / "goal.npy", "--task", "1", "--name", "mine")
    assert code == 0, err
    assert [t["task_id"] for t in json.loads((run / "prompt" / "mine.json").read_text())["tasks"]] == [1]

    # Reward samples of our own: minus the distance to task 1's goal, scored in its single-task env.
    xy = np.random.default_rng(0).uniform(-4, 24, (500, 2)).astype(np.float32)
    np.savez(tmp / "labeled.npz", observations=xy, rewards=-np.linalg.norm(xy - [20.0, 20.0], axis=1))
    code, out, err = _cli(capsys, run, "--reward-samples", tmp / "labeled.npz", "--task", "1")
    assert code == 0, err
    result = json.loads((run / "prompt" / "reward-samples-labeled.json").read_text())
    assert result["env"] == "pointmaze-medium-singletask-task1-v0" and "return" in out
    assert len(result["tasks"][0]["returns"]) == 2 and result["prompt"]["fit"]["samples"] == 500

    # A task's reward on states that reach its goal: a dataset of maze positions, some at the goal.
    near = np.array([20.0, 20.0], np.float32) + np.random.default_rng(1).uniform(-0.7, 0.7, (20, 2)).astype(np.float32)
    states = np.concatenate([xy, near])
    Dataset(states, np.arange(len(states)) == len(states) - 1).save(tmp / "states.npz")
    code, out, err = _cli(capsys, run, "--reward-task", "1", "--dataset", tmp / "states.npz")
    assert code == 0, err
    result = json.loads((run / "prompt" / "reward-task1.json").read_text())
    assert result["tasks"][0]["returns"] == [-15.0, -15.0]  # 15 steps far from the goal: -1 each
    assert len(result["prompt"]["skill"]) == 4


@pytest.mark.slow
def test_cli_prompt_user_errors_are_one_line(maze_run, capsys, tmp_path):
    _, run = maze_run
    for args, message in (([run, "--reward-task", "9"], "task ids are 1..5"),
                          ([run, "--reward-task", "1"], "every reward is the same"),
                          ([run, "--goal-file", tmp_path / "missing.npy"], "file not found"),
                          ([run, "--goal", "x"], "task ids must be integers"),
                          ([tmp_path, "--goal", "1"], "not a run directory"),
                          ([run], "one of the arguments --goal --goal-file --reward-task --reward-samples")):
        code, _, err = _cli(capsys, *args)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("autodidact: error:") and message in lines[0], (args, err)
