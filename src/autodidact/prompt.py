"""Prompting a pretrained policy: a goal, a reward, or a goal with test-time planning.

    model = autodidact.load("runs/hilp")
    policy = model.prompt(goal=goal_observation)          # head for this observation
    policy = model.prompt(rewards=(states, rewards))      # maximize a reward known on some states
    policy = model.prompt(goal=goal_observation, plan=True)
    action = policy.act(observation)                      # one observation or a batch

`model.prompt()` with neither returns the goal-conditioned policy itself, `act(obs, goals)`, the
form `autodidact.evaluate.evaluate` drives with each task's goal.

Which prompts a method serves is its `prompts` attribute: every goal-conditioned method takes
goals (through its own `act(obs, goals)`); HILP also takes rewards and plans, through its latent
skills z and its Hilbert representation phi (`methods/hilp.py`):

- goal: z = normalize(phi(g) - phi(s)), recomputed at every step (`HILP.act`).
- reward: z* = argmin_z sum_i (<phi(s_i), z> + b - r_i)^2 over reward-labeled states, normalized
  to the unit sphere the skills were trained on. Following the HILP code (hilp_zsrl's default
  `feature_type='state'`), the regressor is phi of the state the reward is received in (its s');
  the intercept b plays the role of its running-mean centering of phi, so a constant reward
  offset, which no policy can change, does not tilt z. 10k samples, as its `num_inference_steps`.
- plan: HILP-Plan's recursive midpoints. Among the phi of dataset states, the `knns` nearest the
  midpoint (smallest max(||phi_i - phi(s)||, ||phi_i - phi(g)||)) are averaged into a subgoal;
  repeating it `recursions` times with the subgoal as the new goal ends `2^-recursions` of the way
  to g, and z points there. Published: 3 recursions, 50 neighbours, 50k states.

Reward tasks: OGBench's single-task variant of an environment (`cube-single-singletask-task2-v0`)
defines the reward of a state; `task_rewards` computes it for dataset states with the env's own
success rules (the single-task envs compute rewards 'pre' step, so reward t belongs to state t).
"""

import functools
from pathlib import Path

import numpy as np
import torch

from autodidact.errors import UserError

DEFAULT_REWARD_SAMPLES = 10_000  # hilp_zsrl's num_inference_steps
DEFAULT_PLAN_STATES = 50_000     # hilp_gcrl's planning_num_states
DEFAULT_PLAN_RECURSIONS = 3      # its README's HILP-Plan command
DEFAULT_PLAN_KNNS = 50           # planning_num_knns


def load(run_dir, checkpoint=None):
    """The pretrained model of a run (newest checkpoint unless `checkpoint` names one)."""
    from autodidact.trainer import load_run
    run_cfg, method, ckpt, step = load_run(run_dir, checkpoint)
    method.eval()
    return Model(Path(run_dir), run_cfg, method, ckpt, step)


class Model:
    """A trained method plus what its run knows (environment, dataset); makes policies from prompts."""

    def __init__(self, run_dir, run_cfg, method, checkpoint, step):
        self.run_dir, self.run_cfg, self.method = run_dir, run_cfg, method
        self.checkpoint, self.step = checkpoint, step

    @property
    def name(self):
        return self.method.name

    @property
    def env(self):
        return self.run_cfg.get("env")

    @property
    def prompts(self):
        return tuple(self.method.prompts)

    @functools.cached_property
    def dataset(self):
        from autodidact.data.dataset import load as load_dataset
        return load_dataset(self.run_cfg["dataset"])

    def __repr__(self):
        return f"Model({self.name} @ step {self.step}, env={self.env}, prompts={','.join(self.prompts)})"

    # ---------------------------------------------------------------- prompts
    def prompt(self, goal=None, rewards=None, plan=False, *, temperature=0.0, seed=0, plan_states=None,
               plan_recursions=DEFAULT_PLAN_RECURSIONS, plan_knns=DEFAULT_PLAN_KNNS, dataset=None):
        """A policy for a goal observation, for reward samples `(states, rewards)`, or (neither)
        for goals given at each `act(obs, goals)` call. `plan=True` adds HILP's midpoint subgoals
        over `plan_states` dataset states (default 50k, or all if fewer) of `dataset` (default:
        the run's)."""
        if goal is not None and rewards is not None:
            raise UserError("prompt with a goal or with rewards, not both")
        kind = "reward" if rewards is not None else "goal"
        self.method.check_prompt(kind)
        if plan and kind != "goal":
            raise UserError("planning applies to goal prompts, not reward prompts")
        if plan and not hasattr(self.method, "act_skill"):
            raise UserError(f"method '{self.name}' cannot plan: planning picks subgoals in a Hilbert "
                            "representation and steers latent skills towards them (hilp)")
        if kind == "reward":
            states, values = _unpack_rewards(rewards)
            z, fit = infer_reward_skill(self.method, states, values)
            return SkillPolicy(self.method, z, temperature=temperature, seed=seed, fit=fit)
        fixed_goal = None if goal is None else self._check_goal(goal)
        if plan:
            ds = self.dataset if dataset is None else dataset
            bank = plan_bank(self.method, ds, num_states=plan_states or DEFAULT_PLAN_STATES, seed=seed)
            return PlanningPolicy(self.method, bank, fixed_goal, recursions=plan_recursions, knns=plan_knns,
                                  temperature=temperature, seed=seed)
        return GoalPromptPolicy(self.method, fixed_goal, temperature=temperature, seed=seed)

    def reward_task_prompt(self, task_id, num_samples=DEFAULT_REWARD_SAMPLES, seed=0, dataset=None, **kw):
        """Reward prompt for task `task_id` of the env's single-task variant: rewards of
        `num_samples` random dataset states computed locally, then `prompt(rewards=...)`."""
        self.method.check_prompt("reward")
        env_name = singletask_env_name(self._require_env(), task_id)
        ds = self.dataset if dataset is None else dataset
        idxs = _sample_idxs(len(ds), num_samples, seed)
        rewards = task_rewards(env_name, ds, idxs)
        return self.prompt(rewards=(np.asarray(ds.observations[idxs]), rewards), seed=seed, **kw)

    # ---------------------------------------------------------------- helpers
    def _require_env(self):
        if not self.env:
            raise UserError(f"{self.run_dir}: its dataset {self.run_cfg['dataset']} has no known OGBench "
                            "environment (name the file like an OGBench dataset)")
        return self.env

    def _check_goal(self, goal):
        g = np.asarray(goal, dtype=np.float32)
        shape = tuple(self.method.obs_shape)
        if g.shape == (1, *shape):
            g = g[0]
        if g.shape != shape:
            raise UserError(f"goal has shape {g.shape}, expected one observation of shape {shape}")
        if not np.isfinite(g).all():
            raise UserError("goal holds non-finite values (NaN or inf)")
        return g


def _unpack_rewards(rewards):
    try:
        states, values = rewards
    except (TypeError, ValueError):
        raise UserError("rewards must be a pair (states [N, *obs_shape], rewards [N])") from None
    return np.asarray(states, dtype=np.float32), np.asarray(values, dtype=np.float32).reshape(-1)


def _sample_idxs(n, num, seed):
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(num, n), replace=False))


# ==================================================================== policies
class _Policy:
    """numpy in, numpy out, no gradients; one observation or a batch. The evaluator calls
    `act(obs, goals)` and `reset(mask)`; a prompted policy ignores the evaluator's goals. Methods
    with per-episode state (a plan held for k steps) want `reset(mask)` (a bool per batch row)
    whenever episodes restart."""

    def __init__(self, method, temperature, seed):
        self.method = method
        self.temperature = temperature
        self.generator = torch.Generator().manual_seed(seed)
        self.obs_shape = tuple(method.obs_shape)

    def _batch(self, obs):
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.shape == self.obs_shape
        batch = obs[None] if single else obs
        if batch.shape[1:] != self.obs_shape:
            raise UserError(f"observations have shape {obs.shape}; expected {self.obs_shape} or [B, *{self.obs_shape}]")
        return torch.from_numpy(batch), single

    @torch.no_grad()
    def act(self, observations, goals=None):
        obs, single = self._batch(observations)
        was_training = self.method.training
        self.method.eval()
        try:
            a = self._act(obs, goals)
        finally:
            self.method.train(was_training)
        a = np.clip(np.asarray(a, dtype=np.float32), -1.0, 1.0)
        return a[0] if single else a

    def _goals_for(self, obs, goals, fixed):
        if fixed is not None:
            return torch.from_numpy(np.broadcast_to(fixed, obs.shape).copy())
        if goals is None:
            raise UserError("this policy has no goal: prompt it with goal=..., or pass goals to act(obs, goals)")
        g = torch.as_tensor(np.asarray(goals, dtype=np.float32))
        return g[None] if g.shape == self.obs_shape else g

    def reset(self, mask):
        pass


class GoalPromptPolicy(_Policy):
    """Any goal-conditioned method: its own evaluator policy (`make_policy`, per-episode state
    included) fed the prompt's goal, or the goals of each call when the prompt has none."""

    def __init__(self, method, goal=None, temperature=0.0, seed=0):
        super().__init__(method, temperature, seed)
        self.goal = goal
        self.inner = method.make_policy(temperature=temperature, seed=seed)

    def _act(self, obs, goals):
        g = self._goals_for(obs, goals, self.goal)
        return self.inner.act(obs.numpy(), g.numpy())

    def reset(self, mask):
        if hasattr(self.inner, "reset"):
            self.inner.reset(mask)


class SkillPolicy(_Policy):
    """A fixed latent skill z (a reward prompt): pi(a | s, z) at every step."""

    def __init__(self, method, skill, temperature=0.0, seed=0, fit=None):
        super().__init__(method, temperature, seed)
        self.skill = torch.as_tensor(skill, dtype=torch.float32)
        self.fit = fit or {}

    def _act(self, obs, goals):
        return self.method.act_skill(obs, self.skill, temperature=self.temperature, generator=self.generator)


class PlanningPolicy(_Policy):
    """Goal prompting through HILP-Plan's recursive midpoint subgoals in phi space."""

    def __init__(self, method, bank, goal=None, recursions=DEFAULT_PLAN_RECURSIONS, knns=DEFAULT_PLAN_KNNS,
                 temperature=0.0, seed=0):
        super().__init__(method, temperature, seed)
        if recursions < 0 or knns < 1:
            raise UserError(f"planning needs recursions >= 0 and knns >= 1, got {recursions} and {knns}")
        self.bank, self.goal, self.recursions, self.knns = bank, goal, recursions, min(knns, len(bank))

    def _act(self, obs, goals):
        g = self._goals_for(obs, goals, self.goal)
        phis = self.method.phi(torch.cat([obs, g]))
        phi_s, phi_g = phis.chunk(2)
        sub = midpoint_subgoal(phi_s, phi_g, self.bank, self.recursions, self.knns)
        from autodidact.methods.hilp import normalize
        return self.method.act_skill(obs, normalize(sub - phi_s), temperature=self.temperature,
                                     generator=self.generator)


def midpoint_subgoal(phi_s, phi_g, bank, recursions, knns):
    """HILP-Plan: `recursions` times, replace the goal by the mean of the `knns` bank points that
    minimize max(distance to s, distance to the goal), i.e. the states nearest the midpoint."""
    for _ in range(recursions):
        d = torch.maximum(torch.cdist(phi_s, bank), torch.cdist(phi_g, bank))      # [B, N]
        nearest = d.topk(knns, dim=1, largest=False).indices                       # [B, knns]
        phi_g = bank[nearest].mean(1)
    return phi_g


@torch.no_grad()
def plan_bank(method, dataset, num_states=DEFAULT_PLAN_STATES, seed=0, chunk=8192):
    """phi of `num_states` random dataset states: the candidate subgoals of planning."""
    idxs = _sample_idxs(len(dataset), num_states, seed)
    return _phi_of(method, np.asarray(dataset.observations[idxs], dtype=np.float32), chunk)


def _phi_of(method, observations, chunk=8192):
    with torch.no_grad():
        return torch.cat([method.phi(torch.from_numpy(np.ascontiguousarray(observations[i:i + chunk])))
                          for i in range(0, len(observations), chunk)])


# ==================================================================== reward prompting
def infer_reward_skill(method, states, rewards):
    """(z, fit): the unit skill whose phi-linear reward best fits `rewards` by least squares, with
    an intercept; fit holds the R^2 of that fit and the sample count."""
    states = np.asarray(states, dtype=np.float32)
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if states.shape[1:] != tuple(method.obs_shape) or len(states) != len(rewards):
        raise UserError(f"reward samples: states have shape {states.shape} and rewards {rewards.shape}; expected "
                        f"[N, *{tuple(method.obs_shape)}] and [N]")
    if len(states) < 2 or not np.isfinite(rewards).all() or not np.isfinite(states).all():
        raise UserError("reward samples: need at least 2 samples with finite states and rewards")
    features = _phi_of(method, states).double()
    r = torch.from_numpy(rewards)
    fc, rc = features - features.mean(0), r - r.mean()
    if rc.abs().max() < 1e-12:
        raise UserError("reward samples: every reward is the same, so no direction is better than another "
                        "(a reward task needs states where it succeeds; use more or other samples)")
    w = torch.linalg.lstsq(fc, rc[:, None]).solution[:, 0]
    resid = rc - fc @ w
    fit = {"samples": len(rewards), "r2": float(1.0 - resid.pow(2).sum() / rc.pow(2).sum()),
           "reward_mean": float(r.mean()), "reward_min": float(r.min()), "reward_max": float(r.max())}
    from autodidact.methods.hilp import normalize
    return normalize(w.float()), fit


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


def singletask_env_name(env_name, task_id):
    """'cube-single-v0', 2 -> 'cube-single-singletask-task2-v0' (OGBench's naming)."""
    from autodidact.envs import task_names
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
    from autodidact.envs import make_env
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


# ==================================================================== evaluation (CLI)
def run_prompt(run_dir, goal=None, goal_file=None, reward_task=None, reward_samples=None, tasks=None,
               plan=False, episodes=20, num_samples=DEFAULT_REWARD_SAMPLES, plan_states=DEFAULT_PLAN_STATES,
               plan_recursions=DEFAULT_PLAN_RECURSIONS, plan_knns=DEFAULT_PLAN_KNNS, dataset=None, seed=None,
               max_episode_steps=None, checkpoint=None, progress=True, name=None):
    """Prompt the run's model and evaluate it; returns (name, result). Exactly one of `goal` (task
    ids, or 'all'), `goal_file`, `reward_task`, `reward_samples` must be given. `tasks`: for a goal
    file, the tasks whose starts and success checks are used (default all); for reward samples,
    the single-task env to score returns in (default the env's default task)."""
    from autodidact.evaluate import evaluate
    from autodidact.envs import task_ids as env_task_ids
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
        from autodidact.data.dataset import load as load_dataset
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
                keep = _sample_idxs(len(states), num_samples, seed)
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
