"""Environment pools that run evaluation episodes in lockstep, one batched policy call per step.

Many env instances step in lockstep and the policy is called once per step on the whole batch;
episodes of all tasks share the batch. Row i of every batch is env slot i for the whole run, and a
slot that finished while others still run keeps its last observation (its actions are dropped), so
batch shapes never change within a run. Every episode has its own seed, derived from (seed, task
id, episode index), so a result does not depend on how many envs run at once or in which order
episodes finish. Resets also seed the action space OGBench's resets sample "settle" steps from
(`envs.seed_reset_sampling`): without that, antmaze and manipulation goals differ between runs
with the same seed.

The lockstep envs are kept between calls (per env id and time limit, `ENV_CACHE_MAX_ENVS` at most;
`clear_env_cache()` closes them): building a manipulation env takes ~2 s and the trainer evaluates
every few thousand steps. Every episode is reset with its own seed, so a reused env gives the same
result as a fresh one. Subprocess workers and video envs are not kept.
"""

import atexit
import collections
import multiprocessing
import os
import sys
import traceback
from typing import NamedTuple

import numpy as np

from autodidact.core.errors import UserError
from autodidact.envs.ogbench import make_env, seed_reset_sampling
from autodidact.envs.perturb import goal_reached, perturb as perturb_env
from autodidact.envs.render import is_manipspace, use_render_settings
from autodidact.workflows.evaluate.perturbation import PERTURB_STATE_STREAM, PerturbPlan
from autodidact.workflows.evaluate.video import VIDEO_FRAME_SKIP, red_border


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


_PERTURB_MARK_STEPS = 2 * VIDEO_FRAME_SKIP  # video frames this soon after a perturbation get a red border


class Episode(NamedTuple):
    task_id: int
    index: int  # 0-based within its task; video episodes come after the counted ones
    seed: int
    record: bool  # a video episode: render frames, not counted
    perturb: PerturbPlan = None


class Outcome(NamedTuple):
    """How an episode went, besides success and return."""
    steps: int
    perturbed_at: int  # the step after which the perturbation happened; None if it did not
    undone: bool  # the perturbation turned an achieved goal into an unachieved one


def episode_seed(seed, task_id, index):
    return int(np.random.SeedSequence([seed, task_id, index]).generate_state(1)[0])


class _EnvSlot:
    """One env instance that runs one episode at a time."""

    def __init__(self, env_name, env_kwargs):
        self.env = make_env(env_name, **env_kwargs)
        if env_name.startswith("visual-") and is_manipspace(self.env):
            # Observations and goal frames drawn as `collect` draws the visual datasets: the same
            # images within a gray level, several times faster (envs/render.py).
            use_render_settings(self.env)
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
            self._perturb_rng = np.random.default_rng([episode.seed, PERTURB_STATE_STREAM])
        goal_frame = info.get("goal_rendered") if episode.record else None
        return ob, info["goal"], goal_frame

    def step(self, action):
        """-> (ob, done, success, reward, frame or None, Outcome once done else None)"""
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
                red_border(frame)
        outcome = Outcome(self.t, self.perturbed_at, self.undone) if done else None
        return ob, done, success, float(reward), frame, outcome

    def close(self):
        self.env.close()


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


class LocalPool:
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
    """Subprocess loop: a LocalPool driven by (method, assignments) messages over a pipe."""
    pool = None
    try:
        pool = LocalPool(env_name, env_kwargs, num_slots)
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


def run_episodes(pool, num_slots, episodes, policy, on_done):
    """Run `episodes` on `num_slots` env slots in lockstep, one batched policy call per step.

    on_done(episode, success, episode_return, frames, outcome) is called as each episode ends;
    frames (for recorded episodes) is (goal_frame or None, [frame, ...]); episode_return is the
    undiscounted sum of the env's rewards (meaningful for reward-carrying envs such as OGBench's
    `-singletask` ones); outcome is an Outcome.
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


def make_pool(env_name, env_kwargs, num_slots, vector_mode):
    if vector_mode == "subprocess":
        return _SubprocPool(env_name, env_kwargs, num_slots, num_workers=os.cpu_count() or 1)
    return LocalPool(env_name, env_kwargs, num_slots, cache=True)
