"""`autodidact prompt`: prompt a run's model with a goal or a reward, zero-shot, and evaluate it.

The prompts themselves are `model.py` (the public `autodidact.load(run).prompt(...)` API) and
`hilp.py` (HILP's reward fitting and planning); rewards of dataset states for a task come from
`autodidact.envs.rewards`.
"""

from pathlib import Path

import numpy as np

from autodidact.core.errors import UserError
from autodidact.data.dataset import load as load_dataset
from autodidact.envs.ogbench import task_ids as env_task_ids
from autodidact.envs.rewards import singletask_env_name
from autodidact.workflows.evaluate import evaluate
from autodidact.workflows.prompt.hilp import (DEFAULT_PLAN_KNNS, DEFAULT_PLAN_RECURSIONS, DEFAULT_PLAN_STATES,
                                              DEFAULT_REWARD_SAMPLES, sample_idxs)
from autodidact.workflows.prompt.model import Model, load

__all__ = ["Model", "format_prompt_result", "load", "load_reward_samples", "run_prompt"]


def load_reward_samples(path):
    """(states, rewards) from an .npz with `observations` and `rewards` (the reward of each
    observation), or with `next_observations` too (rewards then belong to the state reached, the
    transition convention; HILP regresses phi(s') on r)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .npz ({exc})") from None
    for k in ("observations", "rewards"):
        if k not in data:
            raise UserError(f"{path}: field '{k}': missing (fields present: {sorted(data)})")
    states = data.get("next_observations", data["observations"])
    rewards = data["rewards"].reshape(-1)
    if len(states) != len(rewards):
        raise UserError(f"{path}: field 'rewards': has {len(rewards)} entries but observations has {len(states)}")
    return states.astype(np.float32), rewards.astype(np.float32)


def run_prompt(run_dir, goal=None, goal_file=None, reward_task=None, reward_samples=None, tasks=None,
               plan=False, episodes=20, num_samples=DEFAULT_REWARD_SAMPLES, plan_states=DEFAULT_PLAN_STATES,
               plan_recursions=DEFAULT_PLAN_RECURSIONS, plan_knns=DEFAULT_PLAN_KNNS, dataset=None, seed=None,
               max_episode_steps=None, checkpoint=None, progress=True, name=None):
    """Prompt the run's model and evaluate it; returns (name, result). Exactly one of `goal` (task
    ids, or 'all'), `goal_file`, `reward_task`, `reward_samples` must be given. `tasks`: for a goal
    file, the tasks whose starts and success checks are used (default all); for reward samples,
    the single-task env to score returns in (default the env's default task)."""
    given = [k for k, v in (("--goal", goal), ("--goal-file", goal_file), ("--reward-task", reward_task),
                            ("--reward-samples", reward_samples)) if v is not None]
    if len(given) != 1:
        raise UserError("prompt needs exactly one of --goal, --goal-file, --reward-task, --reward-samples"
                        + (f" (got {', '.join(given)})" if given else ""))
    model = load(run_dir, checkpoint)
    env = model._require_env()
    seed = model.run_cfg["seed"] if seed is None else seed
    ds = None
    if dataset is not None:
        ds = load_dataset(dataset)
        if ds.obs_shape != tuple(model.method.obs_shape):
            raise UserError(f"{dataset}: observations have shape {ds.obs_shape}, the model takes "
                            f"{model.method.obs_shape}")
    info = {"plan": bool(plan)}
    if plan:
        info.update(plan_states=plan_states, plan_recursions=plan_recursions, plan_knns=plan_knns)
    plan_kw = dict(plan=plan, plan_states=plan_states, plan_recursions=plan_recursions, plan_knns=plan_knns,
                   dataset=ds, seed=seed)
    if goal is not None or goal_file is not None:
        if goal is not None:
            eval_tasks = list(env_task_ids(env)) if goal == "all" else _task_list(goal)
            policy = model.prompt(**plan_kw)  # the env's goal of each task, read at every step
            info.update(kind="goal", source="task")
            default = "goal-" + ("all" if goal == "all" else "task" + "_".join(map(str, eval_tasks)))
        else:
            policy = model.prompt(goal=_load_goal(goal_file), **plan_kw)
            eval_tasks = list(env_task_ids(env)) if tasks is None else _task_list(tasks)
            info.update(kind="goal", source=str(goal_file))
            default = f"goal-file-{Path(goal_file).stem}"
        eval_env = env
    else:
        if plan:
            raise UserError("--plan applies to goal prompts (--goal, --goal-file), not reward prompts")
        model.method.check_prompt("reward")
        if reward_task is not None:
            task = _task_list(reward_task)
            if len(task) != 1:
                raise UserError(f"--reward-task takes one task id, got {reward_task}")
            eval_env = singletask_env_name(env, task[0])
            policy = model.reward_task_prompt(task[0], num_samples=num_samples, seed=seed, dataset=ds)
            info.update(kind="reward", source=eval_env)
            default = f"reward-task{task[0]}"
        else:
            states, rewards = load_reward_samples(reward_samples)
            if len(states) > num_samples:
                keep = sample_idxs(len(states), num_samples, seed)
                states, rewards = states[keep], rewards[keep]
            policy = model.prompt(rewards=(states, rewards), seed=seed)
            if tasks is None:
                base, version = env.rsplit("-", 1)
                eval_env = f"{base}-singletask-{version}"  # the env's default task
            else:
                task = _task_list(tasks)
                if len(task) != 1:
                    raise UserError(f"--task takes one task id for reward samples, got {tasks}")
                eval_env = singletask_env_name(env, task[0])
            info.update(kind="reward", source=str(reward_samples))
            default = f"reward-samples-{Path(reward_samples).stem}"
        info["fit"] = policy.fit
        info["skill"] = policy.skill.tolist()
        eval_tasks = None
    name = name or default + ("-plan" if plan else "")
    if "/" in name or name.startswith("."):
        raise UserError(f"--name {name}: must be a plain file name")
    result = evaluate(eval_env, policy, episodes_per_task=episodes, tasks=eval_tasks, seed=seed,
                      progress=progress, max_episode_steps=max_episode_steps)
    result.update(prompt=info, method=model.name, checkpoint_step=model.step, run_dir=str(run_dir))
    return name, result


def _task_list(text):
    if isinstance(text, (int, np.integer)):
        return [int(text)]
    try:
        out = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise UserError(f"task ids must be integers like 2 or 1,3 (or 'all' for --goal), got '{text}'") from None
    if not out:
        raise UserError(f"no task id in '{text}'")
    return out


def _load_goal(path):
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .npy observation ({exc})") from None


def format_prompt_result(name, result):
    """A table: one row per task with success (and return for reward prompts)."""
    p = result["prompt"]
    title = (f"{result['method']} @ step {result['checkpoint_step']}: {p['kind']} prompt '{name}' "
             f"on {result['env']}" + (" with planning" if p.get("plan") else ""))
    reward = p["kind"] == "reward"
    lines = [title, f"{'task':<28}{'success':>8}" + (f"{'return':>10}" if reward else "")]
    for t in result["tasks"]:
        lines.append(f"{t['task_name']:<28}{t['success']:>8.3f}" + (f"{t['return']:>10.1f}" if reward else ""))
    lines.append(f"{'overall':<28}{result['overall_success']:>8.3f}  ({result['episodes_per_task']} episodes per task)")
    if reward and p.get("fit"):
        f = p["fit"]
        lines.append(f"reward fit: R^2 {f['r2']:.3f} of phi-linear rewards over {f['samples']} samples")
    return "\n".join(lines)
