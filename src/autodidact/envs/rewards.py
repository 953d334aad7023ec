"""Rewards of OGBench's single-task variants, computed for dataset states.

OGBench's single-task variant of an environment (`cube-single-singletask-task2-v0`) defines the
reward of a state; `task_rewards` computes it with the env's own success rules (the single-task
envs compute rewards 'pre' step, so reward t belongs to state t), so a reward-free dataset can be
labeled for reward prompting.
"""

import numpy as np

from autodidact.core.errors import UserError
from autodidact.envs.ogbench import make_env, task_names


def singletask_env_name(env_name, task_id):
    """'cube-single-v0', 2 -> 'cube-single-singletask-task2-v0' (OGBench's naming)."""
    names = task_names(env_name)
    if not (isinstance(task_id, (int, np.integer)) and 1 <= task_id <= len(names)):
        raise UserError(f"{env_name}: task ids are 1..{len(names)}, got {task_id}")
    base, version = env_name.rsplit("-", 1)
    return f"{base}-singletask-task{int(task_id)}-{version}"


def task_rewards(env_name, dataset, idxs):
    """Rewards of dataset states `idxs` under the single-task env `env_name`'s reward.

    Mazes: 0 within the goal tolerance of the task's (noise-free) goal x-y, else -1, from the
    state's x-y (qpos[:2], equal to the first two observation dimensions of state-based mazes).
    Manipulation (cube, scene, puzzle): the env's own `compute_reward` on the state restored from
    the dataset's qpos/qvel (and button_states), after a reset that placed the task's targets:
    minus the number of objects not at their targets.
    """
    idxs = np.asarray(idxs)
    extras = dataset.extras
    env = make_env(env_name)
    try:
        env.reset(seed=0)
        u = env.unwrapped
        if hasattr(u, "maze_map"):
            if hasattr(u, "get_agent_ball_xy"):
                raise UserError(f"{env_name}: rewards of soccer mazes depend on the ball; pass --reward-samples")
            if "qpos" in extras:
                xy = np.asarray(extras["qpos"][idxs], dtype=np.float64)[:, :2]
            elif dataset.observations.ndim == 2:
                xy = np.asarray(dataset.observations[idxs], dtype=np.float64)[:, :2]
            else:
                raise UserError(f"{dataset.path}: field 'qpos': missing, needed for maze rewards of image observations")
            hit = np.linalg.norm(xy - np.asarray(u.cur_goal_xy), axis=-1) <= u._goal_tol
            return hit.astype(np.float32) - 1.0
        if hasattr(u, "_compute_successes"):
            import mujoco
            for k in ("qpos", "qvel"):
                if k not in extras:
                    raise UserError(f"{dataset.path}: field '{k}': missing, needed to compute {env_name}'s rewards "
                                    "for dataset states (collect with `autodidact collect`, or pass --reward-samples)")
            buttons = hasattr(u, "_cur_button_states")
            if buttons and "button_states" not in extras:
                raise UserError(f"{dataset.path}: field 'button_states': missing, needed for {env_name}'s rewards")
            qpos, qvel = np.asarray(extras["qpos"][idxs]), np.asarray(extras["qvel"][idxs])
            bstates = np.asarray(extras["button_states"][idxs]) if buttons else None
            out = np.empty(len(idxs), np.float32)
            for i in range(len(idxs)):
                u._data.qpos[:] = qpos[i]
                u._data.qvel[:] = qvel[i]
                if buttons:
                    u._cur_button_states = bstates[i].copy()
                mujoco.mj_forward(u._model, u._data)
                out[i] = u.compute_reward()
            return out
        raise UserError(f"{env_name}: computing its rewards for dataset states is not supported; pass --reward-samples")
    finally:
        env.close()
