"""Goal-conditioned evaluation on OGBench's tasks, with vectorized envs and optional videos.

Follows OGBench's protocol (`impls/main.py`, `impls/utils/evaluation.py`): for each task id the env
is reset with `options=dict(task_id=..., render_goal=...)`, the goal observation comes from
`info['goal']`, and an episode counts as a success when `info['success']` is set on its last step.
Video episodes are extra episodes, left out of the statistics.

Departures, for speed on small CPU boxes (`episodes.py` says how): envs step in lockstep with one
batched policy call per step; every episode has its own seed, so results do not depend on how
many envs run at once; idle envs are kept between calls. `perturb=` displaces the object or the
agent once per episode to measure recovery (`perturbation.py`).

Modules: `episodes` (env pools and the lockstep loop), `perturbation`, `video`.
"""

import collections
import math
import os

import numpy as np

from autodidact.core.errors import UserError
from autodidact.envs.ogbench import task_ids, task_names, time_limit
from autodidact.workflows.evaluate.episodes import (DEFAULT_NUM_ENVS, Episode, LocalPool, clear_env_cache,
                                                    episode_seed, make_pool, run_episodes)
from autodidact.workflows.evaluate.perturbation import Perturbation, as_perturbation, perturbation_stats
from autodidact.workflows.evaluate.video import VIDEO_FORMATS, cell_frames, check_rendering, tile, write_video

__all__ = ["DEFAULT_NUM_ENVS", "Perturbation", "clear_env_cache", "evaluate", "evaluate_run", "format_result"]


def evaluate(
    env_name,
    policy,
    episodes_per_task=50,
    tasks=None,
    seed=0,
    video_dir=None,
    video_episodes=1,
    video_format="mp4",
    progress=True,
    num_envs=None,
    *,
    max_episode_steps=None,
    vector_mode="lockstep",
    video_size=None,
    video_name=None,
    perturb=None,
):
    """Success rates of `policy` on the env's evaluation tasks.

    Args:
        env_name: OGBench env id, e.g. 'pointmaze-medium-v0' (see envs.env_name_for_dataset).
        policy: has `act(observations, goals) -> actions`, all batched along axis 0, deterministic;
            actions are clipped to [-1, 1]. An optional `reset(mask)` is called with a bool array
            over the batch rows whose episode (re)starts; each run (counted episodes, then video
            episodes) starts with a reset of all its rows, and the video run may use another batch size.
        episodes_per_task: counted episodes per task.
        tasks: task ids (1-based) to run; default all (the fixed one for a `-singletask` env).
        seed: seeds every episode's reset; the same seed and policy give the same result.
        video_dir: if given, also run `video_episodes` uncounted episodes per task with rendering and
            write one video there (tasks side by side, video episodes in rows, goal left of each frame).
        video_format: 'mp4' (falls back to 'gif' when imageio-ffmpeg is missing) or 'gif'.
        progress: show a tqdm bar over episodes.
        num_envs: envs stepping at once (the policy's batch size); default min(16, episodes).
        max_episode_steps: override the env's time limit (short episodes for tests and smoke runs).
        vector_mode: 'lockstep' (all envs in this process; measured faster here, see the note at the
            top) or 'subprocess' (envs spread over worker processes, one per core).
        video_size: (width, height) of rendered frames; default the env's (200x200). Ignored for
            visual envs, whose render size is their observation size.
        video_name: video file name without extension; default the env name.
        perturb: displace the object or the agent once per episode (see the module docstring): a
            Perturbation, a dict of its fields, or a spec string 'TARGET[@WHEN]' such as 'object',
            'arm@success', 'both@50' or 'agent@0.2-0.5'. Video episodes are perturbed too (frames
            just after the perturbation get a red border).

    Returns:
        {"env", "episodes_per_task",
         "tasks": [{"task_id", "task_name", "success", "episodes", "return" (mean), "returns" (per episode)}],
         "overall_success" (mean over tasks, as OGBench reports it), "video" (path or None)}
        With `perturb`, also "perturbation": its settings and the means over tasks of the per-task
        fields added to each task: "perturbed" (fraction of episodes perturbed; the others
        succeeded first), "success_perturbed" (success rate among those, NaN if none), "undone"
        (fraction whose achieved goal the perturbation undid; only `at='success'` can, as OGBench
        ends an episode at its first success), "recovered" (undone, then achieved again), and
        "recovery_steps" (mean steps from the perturbation to success, over perturbed successes).
    """
    if video_format not in VIDEO_FORMATS:
        raise UserError(f"video_format must be one of {VIDEO_FORMATS}, got '{video_format}'")
    if vector_mode not in ("lockstep", "subprocess"):
        raise UserError(f"vector_mode must be 'lockstep' or 'subprocess', got '{vector_mode}'")
    if episodes_per_task < 0 or video_episodes < 0:
        raise UserError("episodes_per_task and video_episodes must be >= 0")
    names = task_names(env_name)
    tasks = list(task_ids(env_name) if tasks is None else tasks)
    for task_id in tasks:
        if not 1 <= task_id <= len(names):
            raise UserError(f"{env_name}: task ids are 1..{len(names)}, got {task_id}")
    env_kwargs = {} if max_episode_steps is None else {"max_episode_steps": int(max_episode_steps)}
    perturbation = as_perturbation(perturb, env_name, max_episode_steps)
    limit = time_limit(env_name, max_episode_steps)

    def episode(task_id, i, record):
        own_seed = episode_seed(seed, task_id, i)
        plan = perturbation.plan(own_seed, limit) if perturbation else None
        return Episode(task_id, i, own_seed, record=record, perturb=plan)

    counted = [episode(task_id, i, False) for task_id in tasks for i in range(episodes_per_task)]
    recorded = []
    if video_dir is not None:
        recorded = [
            episode(task_id, i, True)
            for i in range(episodes_per_task, episodes_per_task + video_episodes)
            for task_id in tasks
        ]

    from tqdm.auto import tqdm

    successes = collections.defaultdict(list)
    returns = collections.defaultdict(list)
    outcomes = collections.defaultdict(list)  # task id -> [(success, Outcome)]
    videos = {}
    bar = tqdm(total=len(counted) + len(recorded), desc=f"eval {env_name}", unit="ep", disable=not progress)

    def on_done(episode, success, episode_return, frames, outcome):
        if episode.record:
            videos[episode] = frames
        else:
            successes[episode.task_id].append(success)
            returns[episode.task_id].append((episode.index, episode_return))
            outcomes[episode.task_id].append((success, outcome))
        bar.update(1)

    caller_rng = np.random.get_state()  # resets reseed numpy's global RNG; give the caller theirs back
    try:
        if counted:
            num_slots = min(num_envs or DEFAULT_NUM_ENVS, len(counted))
            pool = make_pool(env_name, env_kwargs, num_slots, vector_mode)
            finished = False
            try:
                run_episodes(pool, num_slots, counted, policy, on_done)
                finished = True
            finally:
                pool.close(reuse=finished)  # an env that raised mid-episode is not trusted again
        video_path = None
        if recorded:
            video_path = _record_video(
                env_name, env_kwargs, policy, recorded, on_done, videos, video_dir,
                video_name or env_name, video_format, video_size,
                num_rows=video_episodes, num_cols=len(tasks),
            )
    finally:
        np.random.set_state(caller_rng)
        bar.close()

    task_results = [
        {
            "task_id": task_id,
            "task_name": names[task_id - 1],
            "success": float(np.mean(successes[task_id])) if successes[task_id] else float("nan"),
            "episodes": len(successes[task_id]),
            "return": float(np.mean([r for _, r in returns[task_id]])) if returns[task_id] else float("nan"),
            "returns": [r for _, r in sorted(returns[task_id])],  # in episode order
        }
        for task_id in tasks
    ]
    overall = float(np.mean([t["success"] for t in task_results])) if counted else float("nan")
    result = {
        "env": env_name,
        "episodes_per_task": episodes_per_task,
        "tasks": task_results,
        "overall_success": overall,
        "video": video_path,
    }
    if perturbation is not None:
        for t in task_results:
            t.update(perturbation_stats(outcomes[t["task_id"]]))
        result["perturbation"] = perturbation.as_dict()
        for key in ("perturbed", "success_perturbed", "undone", "recovered"):
            values = [t[key] for t in task_results if not math.isnan(t[key])]
            result["perturbation"][key] = float(np.mean(values)) if values else float("nan")
    return result


def _record_video(env_name, env_kwargs, policy, recorded, on_done, videos, video_dir, name, video_format,
                  video_size, num_rows, num_cols):
    """Run the video episodes in this process and write the tiled video; returns its path.

    In-process because each renderer needs its own GL context, and there are only a few of these.
    """
    check_rendering()
    env_kwargs = dict(env_kwargs, render_mode="rgb_array")
    if video_size is not None and not env_name.startswith("visual-"):
        env_kwargs["width"], env_kwargs["height"] = video_size
    pool = LocalPool(env_name, env_kwargs, len(recorded))
    try:
        run_episodes(pool, len(recorded), recorded, policy, on_done)
    finally:
        pool.close()
    # Grid: one column per task, one row per video episode (recorded is ordered row-major).
    cells = [cell_frames(*videos[episode]) for episode in recorded]
    grid = tile(cells, num_rows, num_cols)
    os.makedirs(video_dir, exist_ok=True)
    return write_video(grid, os.path.join(video_dir, name), video_format)


def evaluate_run(method, run_cfg, episodes, video_dir=None, progress=True, seed=None, max_episode_steps=None,
                   perturb=None):
    """Evaluate a run's `method` on the run's environment with OGBench's tasks (on CPU)."""
    if not run_cfg.get("env"):
        raise UserError(f"dataset {run_cfg['dataset']} has no known environment to evaluate in "
                        "(name it like an OGBench dataset, e.g. pointmaze-medium-navigate-v0.npz)")
    if "goal" not in method.prompts:
        raise UserError(f"method '{method.name}' learns skills, not goal reaching: there is nothing to evaluate on "
                        "OGBench's goals; compose its skills with `autodidact finetune --method supe --skills RUN`")
    seed = run_cfg["seed"] if seed is None else seed
    method_device = next(method.parameters()).device
    policy = method.cpu().policy(temperature=0.0, seed=seed)
    try:
        return evaluate(run_cfg["env"], policy, episodes_per_task=episodes, seed=seed,
                        video_dir=video_dir, progress=progress, max_episode_steps=max_episode_steps,
                        perturb=perturb)
    finally:
        method.to(method_device)


def format_result(result, title):
    """A table of an evaluation result: success per task, with the perturbation columns if any."""
    perturbed = result.get("perturbation") is not None
    head = f"{'task':<28}{'success':>8}" + (f"{'perturbed':>11}{'succ|pert':>11}{'recovered':>11}" if perturbed else "")
    lines = [title, head]
    for t in result["tasks"]:
        row = f"{t['task_name']:<28}{t['success']:>8.3f}"
        if perturbed:
            row += f"{t['perturbed']:>11.3f}{t['success_perturbed']:>11.3f}{t['recovered']:>11.3f}"
        lines.append(row)
    lines.append(f"{'overall':<28}{result['overall_success']:>8.3f}  "
                 f"({result['episodes_per_task']} episodes per task)")
    if perturbed:
        p = result["perturbation"]
        at = f"{p['at'][0]:g}-{p['at'][1]:g} of the time limit" if isinstance(p["at"], list) else p["at"]
        lines.append(f"perturbation: {p['target']} at {at}; perturbed {p['perturbed']:.3f}, success when "
                     f"perturbed {p['success_perturbed']:.3f}, goals undone {p['undone']:.3f}, "
                     f"recovered {p['recovered']:.3f}")
    return "\n".join(lines)
