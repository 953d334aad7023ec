"""Manipulation "play" data: OGBench's scripted PlanOracles chaining random tasks.

Follows OGBench's `data_gen_scripts/generate_manipspace.py` with dataset_type=play. In
mode='data_collection' the environment keeps proposing a random next task (move a cube, press a
button, open a drawer or window); the oracle for that task plans keyframes, interpolates them into
a trajectory with temporally smoothed noise, and tracks it. When the plan is finished we ask the
environment for a new task, so an episode is a long stream of back-to-back behaviours.

The oracles draw their keyframe jitter and plan noise from global np.random, and the environment
draws its task choices from its own np_random; the caller seeds both per episode.
"""

from collections import defaultdict

import numpy as np

import ogbench.manipspace  # noqa: F401  (registers the manipulation environments with gymnasium)
from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

from autodidact.envs.render import make_visual_env, settings_for

# Task name (as the env reports it in info['privileged/target_task']) -> oracle class.
PLAN_ORACLES = {
    "cube": CubePlanOracle,
    "button": ButtonPlanOracle,
    "drawer": DrawerPlanOracle,
    "window": WindowPlanOracle,
}

# An unhealthy scene episode is redrawn; OGBench retries forever, we give up loudly instead.
MAX_HEALTH_RETRIES = 100


def scene_is_healthy(qpos):
    """OGBench's scene check: the cube never leaves the camera view unless it is in the drawer.

    Otherwise goal images rendered from such states would be ambiguous. qpos[:, 14:17] is the
    cube's xyz in scene-v0.
    """
    cube_xyz = np.asarray(qpos)[:, 14:17]
    too_far_right = (cube_xyz[:, 1] >= 0.29).any()
    in_drawer_height = (cube_xyz[:, 2] >= 0.06) & (cube_xyz[:, 2] <= 0.08)
    too_far_left = ((cube_xyz[:, 1] <= -0.3) & ~in_drawer_height).any()
    return not (too_far_right or too_far_left)


class PlayCollector:
    """Runs play episodes in one manipulation environment, reused across episodes."""

    def __init__(self, recipe, max_episode_steps, render="fast"):
        self.recipe = recipe
        # terminate_at_goal=False + data_collection mode: the env never ends an episode early and
        # hands out an endless sequence of random tasks instead of a fixed evaluation goal. A
        # `visual-` env's observation is its camera frame, drawn with the `render` preset; the
        # oracles read only `info`, so states and actions are those of the state env.
        visual = recipe.env_name.startswith("visual-")
        self.env = make_visual_env(
            recipe.env_name,
            settings_for(render) if visual else None,
            terminate_at_goal=False,
            mode="data_collection",
            max_episode_steps=max_episode_steps,
        )
        self.oracles = {task: self._make_oracle(task) for task in recipe.oracle_tasks}
        self.has_button_states = hasattr(self.env.unwrapped, "_cur_button_states")

    def _make_oracle(self, task):
        kwargs = dict(env=self.env, noise=self.recipe.noise, noise_smoothing=self.recipe.noise_smoothing)
        if task == "button":
            # Puzzle presses buttons with a closed gripper; scene opens it like for grasping.
            kwargs["gripper_always_closed"] = self.recipe.gripper_always_closed
        return PLAN_ORACLES[task](**kwargs)

    def _start_task(self, ob, info):
        oracle = self.oracles[info["privileged/target_task"]]
        oracle.reset(ob, info)
        return oracle

    def run_episode(self, rng, env_seed):
        """One episode as per-step lists; scene episodes failing the health check are redrawn."""
        reset_seed = env_seed
        for _ in range(MAX_HEALTH_RETRIES):
            steps = self._play(rng, reset_seed)
            if not self.recipe.health_check or scene_is_healthy(steps["qpos"]):
                return steps
            # Reset without a seed: the env continues its seeded stream, so the retry is a new
            # start that is still reproducible.
            reset_seed = None
        raise RuntimeError(f"{self.recipe.env_name}: {MAX_HEALTH_RETRIES} unhealthy episodes in a row")

    def _play(self, rng, reset_seed):
        # How often a cube task asks for stacking onto another cube rather than a free spot.
        p_stack = rng.uniform(*self.recipe.p_stack_range)
        ob, info = self.env.reset(seed=reset_seed)
        oracle = self._start_task(ob, info)
        steps = defaultdict(list)
        done = False
        while not done:
            action = np.clip(np.asarray(oracle.select_action(ob, info)), -1.0, 1.0)
            next_ob, _, terminated, truncated, info = self.env.step(action)
            done = terminated or truncated
            if oracle.done:
                task_ob, task_info = self.env.unwrapped.set_new_target(p_stack=p_stack)
                oracle = self._start_task(task_ob, task_info)
            # OGBench stores the state *before* the step (prev_*), aligned with `ob`.
            steps["observations"].append(ob)
            steps["actions"].append(action)
            steps["terminals"].append(done)
            steps["qpos"].append(info["prev_qpos"])
            steps["qvel"].append(info["prev_qvel"])
            if self.has_button_states:
                steps["button_states"].append(info["prev_button_states"])
            ob = next_ob
        return steps
