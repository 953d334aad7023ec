"""Goal-conditioned evaluation on OGBench's tasks, with vectorized envs and optional videos.

Follows OGBench's protocol (`impls/main.py`, `impls/utils/evaluation.py`): for each task id the env
is reset with `options=dict(task_id=..., render_goal=...)`, the goal observation comes from
`info['goal']`, and an episode counts as a success when `info['success']` is set on its last step.
Video episodes are extra episodes, left out of the statistics.

Departures, both for speed on small CPU boxes:
- Many env instances step in lockstep and the policy is called once per step on the whole batch;
  episodes of all tasks share the batch. Row i of every batch is env slot i for the whole run, and
  a slot that finished while others still run keeps its last observation (its actions are dropped),
  so batch shapes never change within a run.
- Every episode has its own seed, derived from (seed, task id, episode index), so a result does not
  depend on how many envs run at once or in which order episodes finish. Resets also seed the
  action space OGBench's resets sample "settle" steps from (envs.seed_reset_sampling): without
  that, antmaze and manipulation goals differ between runs with the same seed.
- The lockstep envs are kept between calls (per env id and time limit, `ENV_CACHE_MAX_ENVS` at
  most; `clear_env_cache()` closes them): building a manipulation env takes ~2 s and the
  trainer evaluates every few thousand steps. Every episode is reset with its own seed, so a
  reused env gives the same result as a fresh one. Subprocess workers and video envs are not kept.

Perturbation mode (`perturb=`): once per counted or video episode the object or the agent is
displaced (envs.perturb: a cube moved across the table, the arm thrown to a random pose, a maze
agent teleported a few cells away), at a step drawn from the episode's own seed or at its first
success. It measures the claim of Play-LMP (Lynch et al. 2019, arXiv:1903.01973) that
play-supervised policies "are more robust to perturbations and exhibit retrying-till-success":
whether a policy recovers when the world does not go as planned. The policy is not told; it sees
the displaced state at its next call. Since OGBench ends an episode at its first success, a
perturbation at a step can only hit episodes that have not succeeded yet; `at='success'` instead
undoes each first success (the episode goes on) and counts how many are achieved again.
"""

import atexit
import collections
import importlib.util
import math
import multiprocessing
import os
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from autodidact.envs import (
    PERTURB_TARGETS, check_perturb_target, goal_reached, make_env, perturb as perturb_env, seed_reset_sampling,
    task_ids, task_names, time_limit,
)
from autodidact.errors import UserError

VIDEO_FRAME_SKIP = 3  # render every 3rd step (and the last), as OGBench does
VIDEO_FPS = 15
VIDEO_FORMATS = ("mp4", "gif")

# Lockstep (all envs in this process) vs subprocess workers (one per core), measured on the 2-core
# CPU dev box while other jobs kept both cores busy (load average 5-6), random policy, env steps/s,
# two alternating runs each (pointmaze: 16 envs x 64 episodes of 500 steps; cube: 8 envs x 48 x 200):
#   pointmaze-medium-v0: lockstep 5.7k / 6.9k    subprocess 3.6k / 2.8k
#   cube-single-v0:      lockstep  280 / 380     subprocess  240 / 340
# Lockstep wins both. A pointmaze step (~0.1 ms of CPU) costs less than a pipe round trip; a cube
# step (~2 ms) is costly enough to split over two processes, but that only pays when a second core
# is idle. Per-step CPU accounting (parent ~65 us, each worker about as much as a lockstep step)
# suggests up to ~1.7x for cube on an otherwise idle 2-core box, hence vector_mode='subprocess'.
DEFAULT_NUM_ENVS = 16  # enough to amortize the policy call; more only costs env construction
# Idle lockstep envs kept between calls: one env id at the default 16 envs (0 disables the cache).
# A manipulation env holds ~150 MB (its meshes and textures, twice: scene and IK model), so 16 cube
# envs keep ~2.4 GB alive; building them again costs ~2 s each on the 2-core dev box.
ENV_CACHE_MAX_ENVS = 16

# Default perturbation time: uniform over 10%-30% of the time limit. Competent policies finish
# OGBench tasks well within the limit (the pointmaze-medium oracle needs ~160 of 1000 steps, the
# scripted cube oracle ~100 of 200), so a later window would mostly find episodes already over.
DEFAULT_PERTURB_WINDOW = (0.1, 0.3)
_PERTURB_STEP_STREAM, _PERTURB_STATE_STREAM = 1, 2  # per-episode RNG streams, derived from its seed
_PERTURB_MARK_STEPS = 2 * VIDEO_FRAME_SKIP  # video frames this soon after a perturbation get a red border


@dataclass(frozen=True)
class Perturbation:
    """What to displace once per episode, and when (see the module docstring and envs.perturb).

    target: 'object', 'arm' (= 'agent': the arm, or a maze's agent) or 'both'.
    at: (lo, hi) fractions of the time limit (the step is uniform in between, drawn per episode),
        a step number, or 'success' (at the episode's first success, which then does not end it).
    cells: mazes only: how many corridor cells away at most the agent (or ball) lands.
    """

    target: str = "object"
    at: object = DEFAULT_PERTURB_WINDOW
    cells: int = 2

    def __post_init__(self):
        if self.target not in PERTURB_TARGETS:
            raise UserError(f"perturbation target must be one of {', '.join(PERTURB_TARGETS)}; got '{self.target}'")
        at = self.at
        if isinstance(at, list):
            at = tuple(at)
        ok = isinstance(at, str) and at == "success"
        if isinstance(at, (int, np.integer)) and not isinstance(at, bool):
            at, ok = int(at), int(at) >= 1
        elif isinstance(at, tuple) and len(at) == 2 and all(isinstance(x, (int, float)) for x in at):
            at = (float(at[0]), float(at[1]))
            ok = 0.0 <= at[0] <= at[1] <= 1.0
        if not ok:
            raise UserError(f"perturbation time must be 'success', a step >= 1 or a window (lo, hi) with "
                            f"0 <= lo <= hi <= 1 (fractions of the time limit); got {self.at!r}")
        object.__setattr__(self, "at", at)
        if isinstance(self.cells, bool) or not isinstance(self.cells, (int, np.integer)) or self.cells < 1:
            raise UserError(f"perturbation cells must be an integer >= 1; got {self.cells!r}")

    @classmethod
    def parse(cls, spec, cells=2):
        """'TARGET[@WHEN]', WHEN = 'success', a step ('50'), a fraction ('0.2') or a window ('0.1-0.3')."""
        target, _, when = str(spec).partition("@")
        if not when:
            return cls(target, cells=cells)
        try:
            if when == "success":
                at = when
            elif "-" in when:
                lo, hi = when.split("-", 1)
                at = (float(lo), float(hi))
            elif when.isdigit():
                at = int(when)
            else:
                at = (float(when), float(when))
        except ValueError:
            raise UserError(f"perturbation '{spec}': WHEN must be 'success', a step (e.g. 50) or a fraction "
                            f"window of the time limit (e.g. 0.1-0.3)") from None
        return cls(target, at, cells)

    def plan(self, episode_seed, limit):
        """This episode's perturbation: when (None: at its first success), what, how far."""
        step = None
        if isinstance(self.at, int):
            step = self.at
        elif self.at != "success":
            lo = max(1, math.ceil(self.at[0] * limit))
            hi = max(lo, min(limit - 1, math.floor(self.at[1] * limit)))
            rng = np.random.default_rng([episode_seed, _PERTURB_STEP_STREAM])
            step = int(rng.integers(lo, hi + 1))
        return _PerturbPlan(self.target, step, int(self.cells))

    def as_dict(self):
        return {"target": self.target, "at": list(self.at) if isinstance(self.at, tuple) else self.at,
                "cells": int(self.cells)}


class _PerturbPlan(NamedTuple):
    target: str
    step: int  # after this many env steps; None: at the first success
    cells: int


class _Episode(NamedTuple):
    task_id: int
    index: int  # 0-based within its task; video episodes come after the counted ones
    seed: int
    record: bool  # a video episode: render frames, not counted
    perturb: _PerturbPlan = None


class _Outcome(NamedTuple):
    """How an episode went, besides success and return."""
    steps: int
    perturbed_at: int  # the step after which the perturbation happened; None if it did not
    undone: bool  # the perturbation turned an achieved goal into an unachieved one


def _episode_seed(seed, task_id, index):
    return int(np.random.SeedSequence([seed, task_id, index]).generate_state(1)[0])


class _EnvSlot:
    """One env instance that runs one episode at a time."""

    def __init__(self, env_name, env_kwargs):
        self.env = make_env(env_name, **env_kwargs)
        self.discrete = not hasattr(self.env.action_space, "low")
        # OGBench mazes draw the start noise (at reset) and teleport exits (at every step) from
        # numpy's *global* RNG. Reset seeds it per episode; teleport mazes also get their own
        # copy of it swapped in around each step, so envs stepping in lockstep don't share draws.
        # (Swapping costs ~70 us, half a pointmaze step, so only where it is needed.)
        self._own_global_rng = getattr(self.env.unwrapped, "_teleport_info", None) is not None
        self._global_rng = None
        self.record = False
        self.t = 0
        self.plan, self._perturb_rng, self.perturbed_at, self.undone = None, None, None, False

    def reset(self, episode):
        np.random.seed(episode.seed)
        seed_reset_sampling(self.env, episode.seed)
        ob, info = self.env.reset(
            seed=episode.seed, options=dict(task_id=episode.task_id, render_goal=episode.record)
        )
        if self._own_global_rng:
            self._global_rng = np.random.get_state()
        if info.get("goal") is None:
            raise UserError(f"{self.env.spec.id}: reset gave no goal (info['goal']); not an OGBench task env")
        self.record, self.t = episode.record, 0
        self.plan, self.perturbed_at, self.undone = episode.perturb, None, False
        if self.plan is not None:
            self._perturb_rng = np.random.default_rng([episode.seed, _PERTURB_STATE_STREAM])
        goal_frame = info.get("goal_rendered") if episode.record else None
        return ob, info["goal"], goal_frame

    def step(self, action):
        """-> (ob, done, success, reward, frame or None, _Outcome once done else None)"""
        if self._own_global_rng:
            np.random.set_state(self._global_rng)
        ob, reward, terminated, truncated, info = self.env.step(action)
        if self._own_global_rng:
            self._global_rng = np.random.get_state()
        self.t += 1
        success = float(info.get("success", 0.0))
        perturbed_now = False
        if self.plan is not None and self.perturbed_at is None and not truncated:
            if self.plan.step is None:  # at the first success, which then does not end the episode
                perturbed_now = bool(terminated and success > 0)
            else:  # unless the episode just ended with a success
                perturbed_now = self.t == self.plan.step and not terminated
            if perturbed_now:
                achieved = goal_reached(self.env)
                ob = perturb_env(self.env, self.plan.target, self._perturb_rng, self.plan.cells)
                self.undone = achieved and not goal_reached(self.env)
                self.perturbed_at, terminated = self.t, False
        done = bool(terminated or truncated)
        frame = None
        if self.record and (self.t % VIDEO_FRAME_SKIP == 0 or done or perturbed_now):
            frame = np.array(self.env.render())  # copy: renderers reuse their buffer
            if self.perturbed_at is not None and self.t - self.perturbed_at < _PERTURB_MARK_STEPS:
                _red_border(frame)
        outcome = _Outcome(self.t, self.perturbed_at, self.undone) if done else None
        return ob, done, success, float(reward), frame, outcome

    def close(self):
        self.env.close()


def _red_border(frame, width=3):
    red = np.array([255, 0, 0], dtype=frame.dtype)
    for edge in (frame[:width], frame[-width:], frame[:, :width], frame[:, -width:]):
        edge[..., :3] = red


# Idle lockstep env slots kept between evaluate() calls: (env id, sorted env kwargs) -> [_EnvSlot],
# least recently used first.
_ENV_CACHE = collections.OrderedDict()


def clear_env_cache():
    """Close the envs evaluate() keeps between calls (also done at interpreter exit)."""
    while _ENV_CACHE:
        _, slots = _ENV_CACHE.popitem(last=False)
        for slot in slots:
            try:
                slot.close()
            except Exception:  # at interpreter exit, mujoco may already be half torn down
                pass


atexit.register(clear_env_cache)


def _cache_key(env_name, env_kwargs):
    return env_name, tuple(sorted(env_kwargs.items()))


class _LocalPool:
    """All slots in this process, stepped one after another.

    With `cache`, slots come from the idle-env cache where it has them, and go back there on
    close(reuse=True).
    """

    def __init__(self, env_name, env_kwargs, num_slots, cache=False):
        self.key = _cache_key(env_name, env_kwargs) if cache else None
        idle = _ENV_CACHE.pop(self.key, []) if cache else []
        if len(idle) > num_slots:
            _ENV_CACHE[self.key] = idle[num_slots:]
        self.slots = idle[:num_slots]
        try:
            while len(self.slots) < num_slots:
                self.slots.append(_EnvSlot(env_name, env_kwargs))
        except BaseException:
            self.close(reuse=True)
            raise
        self.discrete = self.slots[0].discrete

    def reset(self, assignments):
        """[(slot, episode)] -> [(ob, goal, goal_frame)]"""
        return [self.slots[s].reset(episode) for s, episode in assignments]

    def step(self, assignments):
        """[(slot, action)] -> [(ob, done, success, reward, frame, outcome)]"""
        return [self.slots[s].step(action) for s, action in assignments]

    def close(self, reuse=True):
        """Close the envs, or with a cache and `reuse`, keep them for the next pool."""
        if self.key is None or not reuse:
            for slot in self.slots:
                slot.close()
            return
        slots = _ENV_CACHE.pop(self.key, []) + self.slots
        _ENV_CACHE[self.key] = slots  # most recently used last
        excess = sum(len(v) for v in _ENV_CACHE.values()) - ENV_CACHE_MAX_ENVS
        while excess > 0:
            key, old = next(iter(_ENV_CACHE.items()))
            drop, keep = old[:excess], old[excess:]
            for slot in drop:
                slot.close()
            if keep:
                _ENV_CACHE[key] = keep
            else:
                del _ENV_CACHE[key]
            excess -= len(drop)


def _worker(conn, env_name, env_kwargs, num_slots):
    """Subprocess loop: a _LocalPool driven by (method, assignments) messages over a pipe."""
    pool = None
    try:
        pool = _LocalPool(env_name, env_kwargs, num_slots)
        conn.send(("ok", pool.discrete))
        while True:
            method, arg = conn.recv()
            if method == "close":
                break
            conn.send(("ok", getattr(pool, method)(arg)))
    except KeyboardInterrupt:
        pass
    except Exception as e:  # hand the failure to the parent, which raises it
        try:
            conn.send(("error", (e, traceback.format_exc())))
        except Exception:
            conn.send(("error", (RuntimeError(repr(e)), traceback.format_exc())))
    finally:
        if pool is not None:
            pool.close()
        conn.close()


class _SubprocPool:
    """Slots spread round-robin over worker processes that step in parallel.

    Forks on Linux: 'spawn' would re-run the caller's main module in every worker, which breaks any
    script without an `if __name__ == "__main__"` guard. The workers only touch numpy and mujoco,
    never the parent's torch threads or GL contexts, which is what makes forking unsafe elsewhere.
    """

    def __init__(self, env_name, env_kwargs, num_slots, num_workers):
        num_workers = max(1, min(num_workers, num_slots))
        self.where = [(s % num_workers, s // num_workers) for s in range(num_slots)]  # (worker, local)
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        self.conns, self.procs = [], []
        for w in range(num_workers):
            parent, child = ctx.Pipe()
            n_local = sum(1 for worker, _ in self.where if worker == w)
            proc = ctx.Process(target=_worker, args=(child, env_name, env_kwargs, n_local), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        try:
            self.discrete = [self._recv(conn) for conn in self.conns][0]
        except BaseException:
            self.close()
            raise

    def _recv(self, conn):
        try:
            status, payload = conn.recv()
        except EOFError:
            raise RuntimeError("an evaluation worker process died") from None
        if status == "error":
            error, tb = payload
            if isinstance(error, UserError):
                raise error
            raise RuntimeError(f"evaluation worker failed:\n{tb}") from error
        return payload

    def _call(self, method, assignments):
        per_worker = collections.defaultdict(list)
        for s, arg in assignments:
            w, local = self.where[s]
            per_worker[w].append((local, arg))
        for w, items in per_worker.items():  # send all first so the workers run in parallel
            self.conns[w].send((method, items))
        results = {w: iter(self._recv(self.conns[w])) for w in per_worker}
        return [next(results[self.where[s][0]]) for s, _ in assignments]

    def reset(self, assignments):
        return self._call("reset", assignments)

    def step(self, assignments):
        return self._call("step", assignments)

    def close(self, reuse=True):  # noqa: ARG002  (workers exit; nothing to keep)
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


def _as_numpy(actions):
    if hasattr(actions, "detach"):  # a torch tensor
        actions = actions.detach().cpu().numpy()
    return np.asarray(actions)


def _run_episodes(pool, num_slots, episodes, policy, on_done):
    """Run `episodes` on `num_slots` env slots in lockstep, one batched policy call per step.

    on_done(episode, success, episode_return, frames, outcome) is called as each episode ends;
    frames (for recorded episodes) is (goal_frame or None, [frame, ...]); episode_return is the
    undiscounted sum of the env's rewards (meaningful for reward-carrying envs such as OGBench's
    `-singletask` ones); outcome is an _Outcome.
    """
    queue = collections.deque(episodes)
    current = [None] * num_slots  # the episode each slot runs, None once the queue ran dry
    frames = {}
    returns = np.zeros(num_slots)
    batch = {}  # 'obs', 'goals': [num_slots, *shape] arrays, allocated from the first reset
    policy_reset = getattr(policy, "reset", None)

    def start(free_slots):
        assignments = []
        for s in free_slots:
            if queue:
                current[s] = queue.popleft()
                assignments.append((s, current[s]))
        if not assignments:
            return
        started = np.zeros(num_slots, dtype=bool)
        for (s, episode), (ob, goal, goal_frame) in zip(assignments, pool.reset(assignments)):
            if not batch:
                for key, x in (("obs", ob), ("goals", goal)):
                    x = np.asarray(x)
                    # Datasets store float observations as float32; keep images as they are (uint8).
                    dtype = np.float32 if np.issubdtype(x.dtype, np.floating) else x.dtype
                    batch[key] = np.zeros((num_slots, *x.shape), dtype=dtype)
            batch["obs"][s], batch["goals"][s] = ob, goal
            returns[s] = 0.0
            started[s] = True
            if episode.record:
                frames[episode] = (goal_frame, [])
        if policy_reset is not None:
            policy_reset(started)

    start(range(num_slots))
    while any(episode is not None for episode in current):
        actions = _as_numpy(policy.act(batch["obs"], batch["goals"]))
        if actions.shape[0] != num_slots:
            raise ValueError(f"policy.act returned {actions.shape[0]} actions for a batch of {num_slots}")
        if pool.discrete:
            actions = actions.reshape(num_slots).astype(np.int64)
        else:
            actions = np.clip(actions, -1.0, 1.0)
        active = [s for s in range(num_slots) if current[s] is not None]
        results = pool.step([(s, actions[s]) for s in active])
        finished = []
        for s, (ob, done, success, reward, frame, outcome) in zip(active, results):
            batch["obs"][s] = ob
            returns[s] += reward
            episode = current[s]
            if frame is not None:
                frames[episode][1].append(frame)
            if done:
                on_done(episode, success, float(returns[s]), frames.pop(episode, None), outcome)
                current[s] = None
                finished.append(s)
        start(finished)


def _make_pool(env_name, env_kwargs, num_slots, vector_mode):
    if vector_mode == "subprocess":
        return _SubprocPool(env_name, env_kwargs, num_slots, num_workers=os.cpu_count() or 1)
    return _LocalPool(env_name, env_kwargs, num_slots, cache=True)


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
    perturbation = _perturbation(perturb, env_name, max_episode_steps)
    limit = time_limit(env_name, max_episode_steps)

    def episode(task_id, i, record):
        episode_seed = _episode_seed(seed, task_id, i)
        plan = perturbation.plan(episode_seed, limit) if perturbation else None
        return _Episode(task_id, i, episode_seed, record=record, perturb=plan)

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
    outcomes = collections.defaultdict(list)  # task id -> [(success, _Outcome)]
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
            pool = _make_pool(env_name, env_kwargs, num_slots, vector_mode)
            finished = False
            try:
                _run_episodes(pool, num_slots, counted, policy, on_done)
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
            t.update(_perturbation_stats(outcomes[t["task_id"]]))
        result["perturbation"] = perturbation.as_dict()
        for key in ("perturbed", "success_perturbed", "undone", "recovered"):
            values = [t[key] for t in task_results if not math.isnan(t[key])]
            result["perturbation"][key] = float(np.mean(values)) if values else float("nan")
    return result


def _perturbation(perturb, env_name, max_episode_steps):
    """`perturb` (None, a Perturbation, a dict of its fields or a spec string) -> checked Perturbation or None."""
    if perturb is None:
        return None
    if isinstance(perturb, str):
        perturb = Perturbation.parse(perturb)
    elif isinstance(perturb, dict):
        unknown = set(perturb) - {"target", "at", "cells"}
        if unknown:
            raise UserError(f"unknown perturbation field(s) {sorted(unknown)}; fields: target, at, cells")
        perturb = Perturbation(**perturb)
    elif not isinstance(perturb, Perturbation):
        raise UserError(f"perturb must be a spec string such as 'object@success', a dict or a Perturbation; "
                        f"got {type(perturb).__name__}")
    check_perturb_target(env_name, perturb.target)
    limit = time_limit(env_name, max_episode_steps)
    if perturb.at != "success" and limit is None:
        raise UserError(f"{env_name} has no time limit; perturb at 'success' or set max_episode_steps")
    if isinstance(perturb.at, int) and perturb.at >= limit:
        raise UserError(f"perturbation step {perturb.at} is not before the end of the episode ({limit} steps)")
    return perturb


def _perturbation_stats(outcomes):
    """Per-task perturbation fields from [(success, _Outcome)] (see evaluate's Returns)."""
    nan = float("nan")
    n = len(outcomes)
    perturbed = [(success, o) for success, o in outcomes if o.perturbed_at is not None]
    recovery = [o.steps - o.perturbed_at for success, o in perturbed if success]
    return {
        "perturbed": len(perturbed) / n if n else nan,
        "success_perturbed": float(np.mean([success for success, _ in perturbed])) if perturbed else nan,
        "undone": float(np.mean([o.undone for _, o in outcomes])) if n else nan,
        "recovered": float(np.mean([bool(o.undone and success) for success, o in outcomes])) if n else nan,
        "recovery_steps": float(np.mean(recovery)) if recovery else nan,
    }


def _record_video(env_name, env_kwargs, policy, recorded, on_done, videos, video_dir, name, video_format,
                  video_size, num_rows, num_cols):
    """Run the video episodes in this process and write the tiled video; returns its path.

    In-process because each renderer needs its own GL context, and there are only a few of these.
    """
    _check_rendering()
    env_kwargs = dict(env_kwargs, render_mode="rgb_array")
    if video_size is not None and not env_name.startswith("visual-"):
        env_kwargs["width"], env_kwargs["height"] = video_size
    pool = _LocalPool(env_name, env_kwargs, len(recorded))
    try:
        _run_episodes(pool, len(recorded), recorded, policy, on_done)
    finally:
        pool.close()
    # Grid: one column per task, one row per video episode (recorded is ordered row-major).
    cells = [_cell_frames(*videos[episode]) for episode in recorded]
    grid = _tile(cells, num_rows, num_cols)
    os.makedirs(video_dir, exist_ok=True)
    return _write_video(grid, os.path.join(video_dir, name), video_format)


def _check_rendering():
    """Fail early, in one line, when mujoco cannot open an offscreen GL context here."""
    # mujoco reads MUJOCO_GL once, at import; envs.py sets it before importing ogbench.
    imported_too_early = "MUJOCO_GL" not in os.environ and "mujoco" in sys.modules
    os.environ.setdefault("MUJOCO_GL", "egl")
    import mujoco

    gl = os.environ["MUJOCO_GL"]
    try:
        context = mujoco.GLContext(16, 16)
        context.make_current()
        context.free()
    except Exception as e:
        if imported_too_early:
            hint = "mujoco was imported before MUJOCO_GL was set; run with MUJOCO_GL=egl in the environment"
        elif gl == "egl":
            hint = (
                "on Debian/Ubuntu install EGL and Mesa's drivers (software rendering without a GPU): "
                "apt-get install -y libegl1 libgl1-mesa-dri"
            )
        else:
            hint = "unset MUJOCO_GL to render with EGL"
        raise UserError(f"cannot render videos with MUJOCO_GL={gl} ({type(e).__name__}: {e}); {hint}") from e


def _cell_frames(goal_frame, frames):
    if goal_frame is None:
        return frames
    return [np.concatenate([goal_frame, frame], axis=1) for frame in frames]


def _tile(cells, num_rows, num_cols):
    """[cell][t] HxWx3 frames -> [T, rows*H, cols*W, 3]; short episodes hold their last frame."""
    length = max(len(frames) for frames in cells)
    h = max(frames[0].shape[0] for frames in cells)
    w = max(frames[0].shape[1] for frames in cells)
    # Even sizes: H.264 in yuv420p halves the chroma resolution.
    height, width = num_rows * h, num_cols * w
    grid = np.zeros((length, height + height % 2, width + width % 2, 3), np.uint8)
    for k, frames in enumerate(cells):
        r, c = divmod(k, num_cols)
        for t in range(length):
            frame = frames[min(t, len(frames) - 1)]
            grid[t, r * h : r * h + frame.shape[0], c * w : c * w + frame.shape[1]] = frame[..., :3]
    return grid


def _write_video(frames, stem, video_format):
    """Write atomically (temp file in the same dir, then os.replace), so readers never see half a video."""
    import imageio.v2 as imageio

    if video_format == "mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        warnings.warn("imageio-ffmpeg is not installed; writing the video as a gif instead", stacklevel=3)
        video_format = "gif"
    path = f"{stem}.{video_format}"
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(stem)}.", suffix=f".{video_format}",
                               dir=os.path.dirname(path) or ".")
    os.close(fd)
    try:
        if video_format == "mp4":
            imageio.mimwrite(tmp, frames, format="FFMPEG", fps=VIDEO_FPS, codec="libx264",
                             pixelformat="yuv420p", macro_block_size=1)
        else:
            imageio.mimwrite(tmp, frames, format="GIF", duration=1000 / VIDEO_FPS, loop=0)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
