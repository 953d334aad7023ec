"""The public model API: `autodidact.load(run)` and the policies its prompts make.

    model = autodidact.load("runs/hilp")
    policy = model.prompt(goal=goal_observation)          # head for this observation
    policy = model.prompt(rewards=(states, rewards))      # maximize a reward known on some states
    policy = model.prompt(goal=goal_observation, plan=True)
    action = policy.act(observation)                      # one observation or a batch

`model.prompt()` with neither returns the goal-conditioned policy itself, `act(obs, goals)`, the
form the evaluator drives with each task's goal.

Which prompts a method serves is its `prompts` attribute: every goal-conditioned method takes
goals (through its own `act(obs, goals)`); HILP also takes rewards and plans, through its latent
skills z and its Hilbert representation phi (`hilp.py` beside this file).
"""

import functools
from pathlib import Path

import numpy as np
import torch

from autodidact.core.errors import UserError
from autodidact.envs.rewards import singletask_env_name, task_rewards
from autodidact.methods.hilp import normalize
from autodidact.workflows.prompt.hilp import (DEFAULT_PLAN_KNNS, DEFAULT_PLAN_RECURSIONS, DEFAULT_PLAN_STATES,
                                              DEFAULT_REWARD_SAMPLES, infer_reward_skill, midpoint_subgoal,
                                              plan_bank, sample_idxs)
from autodidact.workflows.runs import load_run


def load(run_dir, checkpoint=None):
    """The pretrained model of a run (newest checkpoint unless `checkpoint` names one)."""
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
        idxs = sample_idxs(len(ds), num_samples, seed)
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
    """Any goal-conditioned method: its own evaluator policy (`policy`, per-episode state
    included) fed the prompt's goal, or the goals of each call when the prompt has none."""

    def __init__(self, method, goal=None, temperature=0.0, seed=0):
        super().__init__(method, temperature, seed)
        self.goal = goal
        self.inner = method.policy(temperature=temperature, seed=seed)

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
        return self.method.act_skill(obs, normalize(sub - phi_s), temperature=self.temperature,
                                     generator=self.generator)
