"""Online fine-tuning on an OGBench single-task environment: `autodidact finetune`.

One environment steps in this process (a pointmaze step costs ~0.1 ms and a cube step ~2 ms, both
far below an update at any UTD, so vectorized envs would not pay here). Per environment step: act
(uniformly random for the first `start_training` steps, then a policy sample), store the
transition, then the method's `update` on `utd` batches of `batch_size`, each `prior_ratio` prior
transitions (labeled by the method) and the rest online ones, as RLPD's `train_finetuning.py`.
A method over skills (SUPE) acts one level up: `SkillEnv` runs each of its actions with the frozen
skill policy for `skill_horizon` env steps, and the prior data comes as windows of that length.
The loop counts env steps either way, and logs, evaluates and checkpoints at the first step at or
past each multiple of its interval.

Run directory: as `train`'s (runs.py), with `kind: finetune` in run.json, and
  metrics.csv   per `log_every` env steps: losses (means), episodes finished, their success and
                return, env steps/s and critic updates/s
  episodes.csv  one row per training episode: env step at its end, return, length, success
  eval.csv      success rate and return of the deterministic policy (tanh of the mean) over
                `eval_episodes` evaluator episodes
  videos/       with --video, one rendered episode of the last evaluation
  checkpoints/  weights, optimizers, torch RNG, the numpy RNG of random actions and batches, the
                loop's counters and the replay buffer (replay.safetensors)

Resume is bit-identical: a checkpoint does not hold the simulator's state, so the episode under
way is rebuilt by resetting the env with that episode's seed and replaying its actions from the
replay buffer (checked against the stored observations); SUPE's skill policy samples from a
generator seeded from the episode's seed, so the replay draws the same samples again.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from autodidact.core import config as cfglib
from autodidact.core.errors import DataError, UserError
from autodidact.core.io import atomic_write_json
from autodidact.data.dataset import load as load_dataset
from autodidact.data.replay import FIELDS, PriorTransitions, PriorWindows, ReplayBuffer
from autodidact.envs import env_name_for_dataset, make_env, seed_reset_sampling, single_task_id
from autodidact.methods import get_finetune_method
from autodidact.workflows.checkpoint import (latest_checkpoint, load_checkpoint, load_replay, prune_checkpoints,
                                             save_checkpoint)
from autodidact.workflows.evaluate import evaluate
from autodidact.workflows.runs import RUN_FORMAT_VERSION, append_command, create_run_dir, load_run, read_run
from autodidact.workflows.runtime import denormals_flushed
from autodidact.workflows.train import CsvLog

_EPISODE_STREAM = 0x7A1  # training episodes' seeds, apart from the evaluator's (seed, task, index)
_SKILL_STREAM = 0x5C1  # the skill policy's action samples in an episode, from the episode's seed


@dataclass
class FinetuneSettings:
    env: str
    method: str
    out: str
    prior: Optional[str] = None   # reward-free dataset .npz; None: from scratch
    skills: Optional[str] = None  # a skill-vae or HILP run whose skills a high-level method (supe) composes
    init: Optional[str] = None    # a pretrained goal-conditioned run, prompted with the task's goal
    env_steps: int = 100_000
    eval_every: int = 10_000
    eval_episodes: int = 10       # 0 disables evaluation
    seed: int = 0
    log_every: int = 0            # 0: env_steps // 100, at least 1
    checkpoint_every: int = 0     # 0: eval_every (or env_steps // 10 without evaluation)
    keep_checkpoints: int = 2
    published: bool = False       # the method's published settings (before --set overrides)
    overrides: tuple = ()
    max_episode_steps: Optional[int] = None  # shorter episodes than the env's limit (quick looks, tests)
    video: bool = False           # render one episode at the last evaluation to RUN_DIR/videos/
    progress: bool = True

    def validate(self):
        if self.env_steps < 1:
            raise UserError(f"--env-steps must be >= 1, got {self.env_steps}")
        if min(self.eval_every, self.eval_episodes, self.log_every, self.checkpoint_every) < 0:
            raise UserError("--eval-every, --eval-episodes, --log-every and --checkpoint-every must be >= 0")
        if self.keep_checkpoints < 1:
            raise UserError(f"--keep-checkpoints must be >= 1, got {self.keep_checkpoints}")


def resolve_env(name):
    """The gymnasium id of a single-task OGBench env, given it or its dataset-style name
    (`pointmaze-medium-navigate-singletask-task1-v0` -> `pointmaze-medium-singletask-task1-v0`)."""
    derived = env_name_for_dataset(name)
    env_id = derived if derived else name
    env = make_env(env_id)  # unknown names: one line
    try:
        if single_task_id(env) is None:
            raise UserError(f"environment '{env_id}' has no task reward; fine-tune on its single-task variant, "
                            f"e.g. '{env_id.rsplit('-', 1)[0]}-singletask-task1-{env_id.rsplit('-', 1)[1]}'")
        space = env.observation_space
        if len(space.shape) != 1:
            raise UserError(f"environment '{env_id}': observations {list(space.shape)} are not state vectors; "
                            "fine-tuning reads states only")
        return env_id, int(space.shape[0]), int(env.action_space.shape[0])
    finally:
        env.close()


def load_prior(path, env_name, obs_dim, action_dim, skill_horizon=None):
    """The prior dataset's transitions (or windows of `skill_horizon` steps), checked against the
    environment's spaces."""
    ds = load_dataset(path)
    if ds.obs_shape != (obs_dim,):
        raise DataError(path, "observations", f"shape {list(ds.obs_shape)} per step does not match environment "
                        f"'{env_name}', whose observations are {[obs_dim]}")
    if ds.actions is not None and ds.action_dim != action_dim:
        raise DataError(path, "actions", f"shape {[ds.action_dim]} per step does not match environment "
                        f"'{env_name}', whose actions are {[action_dim]}")
    return PriorWindows(ds, skill_horizon) if skill_horizon else PriorTransitions(ds)


def new_run(s: FinetuneSettings, argv=None):
    """Create the run directory for settings `s`, then fine-tune."""
    s.validate()
    out = Path(s.out)
    if (out / "run.json").exists():
        raise UserError(f"{out}: a run already exists there; continue it with "
                        f"`autodidact finetune --resume {out}` or choose another --out")
    cls = get_finetune_method(s.method)
    if cls.needs_prior and s.prior is None:
        raise UserError(f"method '{cls.name}' labels prior data with optimistic rewards; pass --prior DATASET "
                        "(or use rlpd to learn from scratch)")
    if cls.needs_skills and s.skills is None:
        raise UserError(f"method '{cls.name}' composes pretrained skills; pass --skills RUN "
                        "(a run of `autodidact train --method skill-vae` or `--method hilp` on the prior data)")
    if s.skills is not None and not cls.needs_skills:
        raise UserError(f"method '{cls.name}' uses no skills; drop --skills (or use --method supe)")
    if s.init is not None and cls.needs_skills:
        raise UserError(f"method '{cls.name}' acts with skills, and --init starts a policy over the environment's "
                        "actions; use --init with rlpd or explore")
    env_name, obs_dim, env_action_dim = resolve_env(s.env)
    cfg = cfglib.apply_overrides(cls.Config(), cls.PUBLISHED if s.published else {})
    cfg = cfglib.apply_overrides(cfg, list(s.overrides))
    # Validate before anything is written.
    action_dim = env_action_dim
    if cls.needs_skills:
        skills, skills_ckpt = load_skills(s.skills, env_name, obs_dim, env_action_dim)
        action_dim = skills.cfg.skill_dim
        cfg = _skill_horizon_of(skills, cfg, s)
    if s.prior is not None:
        prior = load_prior(s.prior, env_name, obs_dim, env_action_dim, cfg.skill_horizon if cls.needs_skills else None)
        if cls.needs_skills and skills.name == "skill-vae" and prior.dataset.actions is None:
            raise _no_actions(prior.dataset.path)
    init_goal = init_ckpt = None
    if s.init is not None:
        _, init_ckpt = load_init(s.init, env_name, obs_dim, env_action_dim)
        init_goal = task_goal(env_name, s.seed)
    evaluating = bool(s.eval_every and s.eval_episodes)
    run_cfg = {
        "format_version": RUN_FORMAT_VERSION, "kind": "finetune", "method": cls.name, "env": env_name,
        "prior": str(Path(s.prior).resolve()) if s.prior else None,
        # The pretrained runs' checkpoints are pinned: one that trains on keeps the resume exact.
        "skills": str(Path(s.skills).resolve()) if s.skills else None,
        "skills_checkpoint": str(skills_ckpt.resolve()) if s.skills else None,
        "init": str(Path(s.init).resolve()) if s.init else None,
        "init_checkpoint": str(init_ckpt.resolve()) if s.init else None, "init_goal": init_goal,
        "seed": s.seed, "env_steps": s.env_steps,
        "eval_every": s.eval_every, "eval_episodes": s.eval_episodes,
        "log_every": s.log_every or max(1, s.env_steps // 100),
        "checkpoint_every": s.checkpoint_every or (s.eval_every if evaluating else max(1, s.env_steps // 10)),
        "keep_checkpoints": s.keep_checkpoints, "published": s.published, "max_episode_steps": s.max_episode_steps,
        "video": s.video,
        "obs_dim": obs_dim, "action_dim": action_dim, "env_action_dim": env_action_dim, "config": {"type": cls.name, **cfglib.to_dict(cfg)},
    }
    create_run_dir(out, run_cfg, argv)
    return _finetune(out, run_cfg, s.progress, resume=False)


def resume_run(run_dir, argv=None, env_steps=None, progress=True):
    """Continue the fine-tuning run in `run_dir` from its newest checkpoint (to `env_steps` in all)."""
    run_dir = Path(run_dir)
    run_cfg = read_run(run_dir)
    if run_cfg.get("kind") != "finetune":
        raise UserError(f"{run_dir}: not a fine-tuning run; continue it with `autodidact train --resume {run_dir}`")
    if env_steps is not None:
        run_cfg["env_steps"] = env_steps
    append_command(run_dir, argv)
    atomic_write_json(run_dir / "run.json", run_cfg)
    return _finetune(run_dir, run_cfg, progress, resume=True)


def build_agent(run_cfg):
    """The run's method, built from its saved config and seeded (with its frozen skills, if any)."""
    cls = get_finetune_method(run_cfg["method"])
    saved = {k: v for k, v in run_cfg["config"].items() if k != "type"}
    # A run saved before a config field existed ran with that field's old behaviour.
    cfg = cfglib.from_dict(cls.Config, {**{k: v for k, v in cls.legacy_defaults.items() if k not in saved}, **saved})
    if not cls.needs_skills:
        behaviour = None
        if run_cfg.get("init"):
            init, _ = load_init(run_cfg["init"], run_cfg["env"], run_cfg["obs_dim"], run_cfg["env_action_dim"],
                                run_cfg.get("init_checkpoint"))
            behaviour = PromptedPolicy(init, run_cfg["init_goal"])
        torch.manual_seed(run_cfg["seed"])  # after loading the pretrained run, which seeds too
        return cls(cfg, run_cfg["obs_dim"], run_cfg["action_dim"], behaviour=behaviour)
    skills, _ = load_skills(run_cfg["skills"], run_cfg["env"], run_cfg["obs_dim"], run_cfg["env_action_dim"],
                            run_cfg.get("skills_checkpoint"))
    torch.manual_seed(run_cfg["seed"])  # after loading the skills, which seeds too
    return cls(cfg, run_cfg["obs_dim"], run_cfg["action_dim"], skills=skills)


def _skill_horizon_of(skills, cfg, s):
    """SUPE's config with the skill horizon a skill-vae run was trained for: its skills are
    chunks of that many steps. A different `--set skill_horizon` is refused."""
    horizon = getattr(skills.cfg, "skill_horizon", None)
    if horizon is None or horizon == cfg.skill_horizon:
        return cfg
    if any(o.split("=", 1)[0].strip() == "skill_horizon" for o in s.overrides):
        raise UserError(f"{s.skills}: its skill-vae skills are {horizon}-step chunks; drop --set "
                        f"skill_horizon={cfg.skill_horizon} (or train the skills with that horizon)")
    return cfglib.apply_overrides(cfg, {"skill_horizon": horizon})


def _load_pretrained(run_dir, checkpoint):
    """(method, checkpoint dir) of a pretrained run: its newest checkpoint, or the one named."""
    if checkpoint is not None and not Path(checkpoint).is_dir():
        raise UserError(f"{run_dir}: checkpoint {checkpoint}, which this fine-tuning run started from, is gone "
                        "(pruned as that run trained on?); the run cannot continue exactly without it")
    _, method, ckpt, _ = load_run(run_dir, checkpoint)
    return method, ckpt


def load_skills(run_dir, env_name, obs_dim, action_dim, checkpoint=None):
    """(frozen HILP or skill-vae method, its checkpoint) of a pretrained run, checked against the
    environment's spaces."""
    method, ckpt = _load_pretrained(run_dir, checkpoint)
    if method.name not in ("hilp", "skill-vae"):
        raise UserError(f"{run_dir}: --skills needs a HILP or skill-vae run (autodidact train --method hilp or "
                        f"--method skill-vae), this one trained '{method.name}'")
    if tuple(method.obs_shape) != (obs_dim,) or method.action_dim != action_dim:
        raise UserError(f"{run_dir}: its {method.name} skills read observations {list(method.obs_shape)} and act in "
                        f"{[method.action_dim]}; environment '{env_name}' has {[obs_dim]} and {[action_dim]}")
    return method.eval().requires_grad_(False), ckpt


def load_init(run_dir, env_name, obs_dim, action_dim, checkpoint=None):
    """(frozen method, its checkpoint) of the pretrained run that `--init` prompts with the task's
    goal, checked against the environment's spaces."""
    run_cfg = read_run(run_dir)
    if run_cfg.get("kind") == "finetune":
        raise UserError(f"{run_dir}: --init needs a run of `autodidact train` (pretrained on unlabeled data); "
                        "this is a fine-tuning run")
    method, ckpt = _load_pretrained(run_dir, checkpoint)
    if "goal" not in method.prompts:
        raise UserError(f"{run_dir}: its method '{method.name}' cannot be prompted with a goal; --init needs a "
                        "goal-conditioned run (gcbc, gcivl, gciql, qrl, crl, hiql, hilp, ...)")
    if tuple(method.obs_shape) != (obs_dim,) or method.action_dim != action_dim:
        raise UserError(f"{run_dir}: its {method.name} policy reads observations {list(method.obs_shape)} and acts "
                        f"in {[method.action_dim]}; environment '{env_name}' has {[obs_dim]} and {[action_dim]}")
    return method.eval().requires_grad_(False), ckpt


def task_goal(env_name, seed):
    """The goal observation the single-task env gives at reset (`info['goal']`), as a list: what a
    goal-conditioned policy is prompted with."""
    env = make_env(env_name)
    try:
        _, info = env.reset(seed=episode_seed(seed, 0))
    finally:
        env.close()
    goal = info.get("goal")
    if goal is None:
        raise UserError(f"environment '{env_name}' gives no goal observation at reset (info['goal']); "
                        "--init cannot prompt a goal-conditioned policy with its task")
    return np.asarray(goal, np.float32).tolist()


class PromptedPolicy:
    """A pretrained goal-conditioned method prompted with one fixed goal: observations -> its
    deterministic actions, in the action box."""

    def __init__(self, method, goal):
        self.method, self.goal = method, torch.as_tensor(goal, dtype=torch.float32)

    def __call__(self, observations):
        goals = self.goal.expand(len(observations), -1)
        return self.method.act(observations, goals, temperature=0.0).clamp(-1.0, 1.0)


def episode_seed(seed, episode):
    return int(np.random.SeedSequence([seed, _EPISODE_STREAM, episode]).generate_state(1)[0])


def _reset(env, seed):
    # OGBench mazes draw their start noise from numpy's global RNG, as the evaluator handles it.
    np.random.seed(seed)
    seed_reset_sampling(env, seed)
    observation, _ = env.reset(seed=seed)
    return observation


class SkillEnv:
    """The environment one level up: an action is a high-level action of `agent` (SUPE), run by its
    frozen skill policy for `horizon` env steps, or until the episode ends, as the reference's
    `MetaPolicyActionWrapper`. The skill policy samples its actions at `temperature` from a
    generator seeded at each reset, so an episode replays exactly from its seed and high-level
    actions. The reward is sum_i discount^i r_{t+i} over the steps taken; `info` says how many
    (`env_steps`) and their plain sum (`env_reward`). With `windows`, `info['windows']` holds the
    high-level transitions of the other H-step windows of the stream that end inside this skill:
    whole windows inside the episode, not ending at its last step, each with the skill the agent
    reads off it and the same discounted reward."""

    def __init__(self, env, agent, horizon, discount=1.0, temperature=0.0, windows=False):
        self.env, self.agent, self.horizon = env, agent, horizon
        self.discount, self.temperature, self.windows = discount, temperature, windows
        self.unwrapped, self.observation, self.generator = env.unwrapped, None, torch.Generator()

    def reset(self, seed=None, **kwargs):
        self.observation, info = self.env.reset(seed=seed, **kwargs)
        self.generator.manual_seed(int(np.random.SeedSequence([seed or 0, _SKILL_STREAM]).generate_state(1)[0]))
        # The episode's latest H + 1 observations, H actions and H rewards: the window ending now.
        self.trail = ([np.asarray(self.observation, np.float32)], [], [])
        return self.observation, info

    def _discounted(self, rewards):
        return float(sum(self.discount ** i * r for i, r in enumerate(rewards)))

    def step(self, action):
        high = torch.as_tensor(np.asarray(action)[None], dtype=torch.float32)
        observations, actions, rewards = self.trail
        taken, windows, h = [], [], self.horizon
        for n in range(1, h + 1):
            obs = torch.as_tensor(np.asarray(self.observation)[None], dtype=torch.float32)
            low = self.agent.act_low(obs, high, self.temperature, self.generator)[0].clamp(-1, 1).numpy()
            self.observation, reward, terminated, truncated, info = self.env.step(low)
            taken.append(float(reward))
            observations.append(np.asarray(self.observation, np.float32))
            actions.append(low)
            rewards.append(float(reward))
            del observations[:-h - 1], actions[:-h], rewards[:-h]
            if terminated or truncated:
                break
            if self.windows and n < h and len(actions) == h:
                windows.append((np.stack(observations), np.stack(actions), self._discounted(rewards)))
        info = {**info, "env_steps": n, "env_reward": sum(taken)}
        if windows:
            info["windows"] = self._transitions(windows)
        return self.observation, self._discounted(taken), terminated, truncated, info

    def _transitions(self, windows):
        observations, actions, rewards = (np.stack(x) for x in zip(*windows))
        high = self.agent.label_online_windows(torch.from_numpy(observations), torch.from_numpy(actions)).numpy()
        return {"observations": observations[:, 0], "actions": high, "rewards": rewards.astype(np.float32),
                "masks": np.ones(len(rewards), np.float32), "next_observations": observations[:, -1]}

    def close(self):
        self.env.close()


class _Policy:
    """The evaluator's view of an agent: deterministic actions, goals ignored (the task is the env's).
    With skills, each row holds its high-level action for `horizon` steps from its episode's start."""

    def __init__(self, agent, horizon=1):
        self.agent, self.horizon = agent, horizon
        self.t, self.high = None, None

    def reset(self, mask):
        mask = np.asarray(mask, bool)
        if self.t is None or len(self.t) != len(mask):
            self.t, self.high = np.zeros(len(mask), np.int64), None
        self.t[mask] = 0

    def act(self, observations, goals):
        obs = torch.as_tensor(np.asarray(observations), dtype=torch.float32)
        if self.horizon == 1 and not self.agent.needs_skills:
            return self.agent.act(obs, temperature=0.0).clamp(-1, 1).numpy()
        if self.t is None or len(self.t) != len(obs):
            self.t = np.zeros(len(obs), np.int64)
        if self.high is None or len(self.high) != len(obs):
            self.high = torch.zeros(len(obs), self.agent.action_dim)
        new = torch.from_numpy(self.t % self.horizon == 0)
        if new.any():
            self.high[new] = self.agent.act(obs[new], temperature=0.0)
        self.t += 1
        return self.agent.act_low(obs, self.high).clamp(-1, 1).numpy()


def _tensors(batch):
    return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in batch.items()}


def _accumulate(window, info):
    for k, v in info.items():
        window["sums"][k] = window["sums"].get(k, 0.0) + v
        window["counts"][k] = window["counts"].get(k, 0) + 1


def _make_prior(run_cfg, agent):
    if not run_cfg.get("prior"):
        return None
    prior = load_prior(run_cfg["prior"], run_cfg["env"], run_cfg["obs_dim"], run_cfg["env_action_dim"],
                       skill_horizon=agent.cfg.skill_horizon if agent.needs_skills else None)
    if agent.needs_skills:
        prior.skills = _window_skills(agent, prior)
    return prior


def _no_actions(path):
    return DataError(path, "actions", "missing; skill-vae skills label prior windows from their actions "
                     "(HILP skills need none)")


def _window_skills(agent, prior, chunk=8192):
    """The skill of every prior window, once, as a row per window start (other rows 0)."""
    if agent.vae_skills and prior.dataset.actions is None:
        raise _no_actions(prior.dataset.path)
    skills = np.zeros((len(prior.dataset), agent.action_dim), np.float32)
    for i in range(0, len(prior.idxs), chunk):
        starts = prior.idxs[i:i + chunk]
        observations, actions = prior.windows(starts)
        skills[starts] = agent.label_windows(torch.from_numpy(observations),
                                             None if actions is None else torch.from_numpy(actions)).numpy()
    return skills


def _finetune(run_dir, run_cfg, progress, resume):
    env_name, seed, total = run_cfg["env"], run_cfg["seed"], run_cfg["env_steps"]
    env_kwargs = {"max_episode_steps": run_cfg["max_episode_steps"]} if run_cfg.get("max_episode_steps") else {}
    agent = build_agent(run_cfg)
    cfg = agent.cfg
    horizon = cfg.skill_horizon if agent.needs_skills else 1
    prior = _make_prior(run_cfg, agent)
    n_prior = int(round(cfg.batch_size * cfg.prior_ratio)) if prior is not None else 0
    rng = np.random.default_rng(seed)
    interpolating = agent.needs_skills and cfg.interpolate_skills
    # The loop's state between steps, all of it in every checkpoint. `step` counts env steps;
    # `episode_row` is the replay-buffer row where the episode under way starts; with SUPE's
    # re-labeled windows between them, `episode_rows` lists the rows of its own steps.
    loop = {"step": 0, "episode": 0, "episode_start": 0, "episode_row": 0, "episode_return": 0.0,
            "final_rows": [], "window": {"sums": {}, "counts": {}, "updates": 0, "successes": [], "returns": []}}
    if interpolating:
        loop["episode_rows"] = []
    # A skill's last step may pass `total`; its windows never outnumber the env steps before it.
    buffer = ReplayBuffer(total + horizon, run_cfg["obs_dim"], run_cfg["action_dim"])
    if resume and (ckpt := latest_checkpoint(run_dir / "checkpoints")) is not None:
        state = load_checkpoint(ckpt, agent)
        rng.bit_generator.state = state["rng"]
        loop = state["loop"]
        buffer = ReplayBuffer.from_arrays(load_replay(ckpt), total + horizon)
    start = loop["step"]
    if start >= total:
        print(f"run already at env step {start} of {total}; nothing to do")
        return run_dir

    env = make_env(env_name, **env_kwargs)
    if agent.needs_skills:
        env = SkillEnv(env, agent, horizon, cfg.skill_discount, cfg.skill_temperature, interpolating)
    observation = _reset(env, episode_seed(seed, loop["episode"]))
    observation = _replay_episode(env, observation, buffer, loop.get("episode_rows",
                                                                     range(loop["episode_row"], len(buffer))))

    log_every, ckpt_every = run_cfg["log_every"], run_cfg["checkpoint_every"]
    eval_every = run_cfg["eval_every"] if run_cfg["eval_episodes"] else 0
    # A run that ended between logging (evaluation) steps wrote one last row there; resumed, it
    # drops that row and logs the window at the next logging step, as an uninterrupted run does.
    resume_step = start if resume else None
    final_rows = {tuple(r) for r in loop["final_rows"]} if resume else set()
    metrics = CsvLog(run_dir / "metrics.csv", resume_step, keep=lambda step: ("metrics", step) not in final_rows)
    episodes = CsvLog(run_dir / "episodes.csv", resume_step)
    evals = CsvLog(run_dir / "eval.csv", resume_step, keep=lambda step: ("eval", step) not in final_rows)
    loop["final_rows"] = []
    from tqdm import tqdm
    bar = tqdm(total=total, initial=start, desc=f"{run_cfg['method']} {env_name}", unit="env step",
               dynamic_ncols=True, disable=not progress, smoothing=0.05)
    window = loop["window"]
    t_last, steps_since = time.perf_counter(), 0

    def sample_online(n):
        return _tensors(buffer.sample(rng, n))

    def crossed(every, before, after):
        return bool(every) and after // every > before // every

    while loop["step"] < total:
        before = loop["step"]  # env steps taken before this action
        if before < cfg.start_training and agent.behaviour is not None:
            noise = torch.as_tensor(rng.standard_normal((1, run_cfg["action_dim"])), dtype=torch.float32)
            action = agent.explore(torch.as_tensor(observation[None], dtype=torch.float32), noise)[0].numpy()
        elif before < cfg.start_training:
            action = rng.uniform(-1.0, 1.0, run_cfg["action_dim"]).astype(np.float32)
        else:
            action = agent.act(torch.as_tensor(observation[None], dtype=torch.float32))[0].numpy()
        next_observation, reward, terminated, truncated, info = env.step(action)
        step = before + info.get("env_steps", 1)
        mask = 0.0 if terminated else 1.0
        if "episode_rows" in loop:
            loop["episode_rows"].append(len(buffer))
        buffer.add(observation, action, reward, mask, next_observation)
        relabeled = info.get("windows")
        for i in range(len(relabeled["rewards"]) if relabeled else 0):
            buffer.add(*(relabeled[k][i] for k in FIELDS))
        loop["episode_return"] += float(info.get("env_reward", reward))
        if before >= cfg.start_training and agent.behaviour is not None and not loop.get("distilled"):
            with denormals_flushed():
                _accumulate(window, {"actor/distill_loss": _distill(agent, rng, buffer, prior)})
            loop["distilled"] = True
        if before >= cfg.start_training:
            batch = _batch(agent, rng, buffer, prior, n_prior)
            with denormals_flushed():
                info_update = agent.update(batch, steps_done=before)
            window["updates"] += 1
            _accumulate(window, info_update)
        transition = {"observations": observation[None], "actions": action[None], "rewards": np.array([reward]),
                      "masks": np.array([mask]), "next_observations": next_observation[None]}
        if relabeled:
            transition = {k: np.concatenate([relabeled[k], transition[k]]) for k in FIELDS}
        transition = _tensors(transition)
        with denormals_flushed():
            _accumulate(window, agent.observe(before, transition, sample_online))
        observation = next_observation
        if terminated or truncated:
            success = float(info.get("success", 0.0))
            episodes.write({"step": step, "episode": loop["episode"], "return": loop["episode_return"],
                            "length": step - loop["episode_start"], "success": success})
            window["successes"].append(success)
            window["returns"].append(loop["episode_return"])
            loop.update(episode=loop["episode"] + 1, episode_start=step, episode_row=len(buffer), episode_return=0.0)
            if "episode_rows" in loop:
                loop["episode_rows"] = []
            observation = _reset(env, episode_seed(seed, loop["episode"]))
        loop["step"] = step
        steps_since += step - before
        bar.update(step - before)
        last = step >= total
        if crossed(log_every, before, step) or last:
            now = time.perf_counter()
            elapsed = max(now - t_last, 1e-9)
            row = _metrics_row(step, window, agent)
            row["time/env_steps_per_s"] = steps_since / elapsed
            row["time/critic_updates_per_s"] = window["updates"] * agent.batches_per_step() / elapsed
            metrics.write(row)
            if window["successes"]:
                bar.set_postfix({"success": f"{row['episode/success']:.2f}"}, refresh=False)
            if crossed(log_every, before, step):  # else the run ends here, and a resumed run continues the window
                window.update(sums={}, counts={}, updates=0, successes=[], returns=[])
            else:
                loop["final_rows"].append(("metrics", step))
            t_last, steps_since = now, 0
        if eval_every and (crossed(eval_every, before, step) or last):
            video_dir = run_dir / "videos" if run_cfg.get("video") and last else None
            result = evaluate(env_name, _Policy(agent, horizon), episodes_per_task=run_cfg["eval_episodes"],
                              seed=seed, progress=False, max_episode_steps=run_cfg.get("max_episode_steps"),
                              video_dir=video_dir, video_name=f"{env_name}-step{step}")
            evals.write({"step": step, "evaluation/success": result["overall_success"],
                         "evaluation/return": float(np.mean([t["return"] for t in result["tasks"]]))})
            atomic_write_json(run_dir / "eval" / f"step_{step:08d}.json", result)
            bar.write(f"env step {step}: success {result['overall_success']:.3f}")
            if not crossed(eval_every, before, step):
                loop["final_rows"].append(("eval", step))
        if crossed(ckpt_every, before, step) or last:
            save_checkpoint(run_dir / "checkpoints", step, agent,
                            {"rng": rng.bit_generator.state, "loop": loop}, replay=buffer.arrays())
            prune_checkpoints(run_dir / "checkpoints", run_cfg["keep_checkpoints"])
    bar.close()
    env.close()
    return run_dir


def _batch(agent, rng, buffer, prior, n_prior):
    """`utd` consecutive batches of `batch_size`, each its first `n_prior` rows from the prior data
    (labeled by the method), the rest online: the reference's interleaving, slice by slice."""
    cfg = agent.cfg
    utd, n_online = agent.batches_per_step(), cfg.batch_size - n_prior
    online = _tensors(buffer.sample(rng, utd * n_online))
    if not n_prior:
        return online
    offline = agent.label_prior(_tensors(prior.sample(rng, utd * n_prior)))
    return {k: torch.cat([offline[k].reshape(utd, n_prior, *offline[k].shape[1:]),
                          online[k].reshape(utd, n_online, *online[k].shape[1:])], 1).reshape(-1, *online[k].shape[1:])
            for k in online}


def _distill(agent, rng, buffer, prior):
    """`init_distill_steps` actor steps towards the prompted pretrained policy on batches of states
    from the replay buffer (its rollouts so far) and the prior data, mixed as RL batches are. The
    last step's loss is returned."""
    cfg = agent.cfg
    n_prior = int(round(cfg.batch_size * cfg.prior_ratio)) if prior is not None else 0
    info = {"actor/distill_loss": math.nan}
    for _ in range(cfg.init_distill_steps):
        observations = [buffer.sample(rng, cfg.batch_size - n_prior)["observations"]]
        if n_prior:
            observations.append(prior.sample(rng, n_prior)["observations"])
        info = agent.distill(torch.as_tensor(np.concatenate(observations), dtype=torch.float32))
    return info["actor/distill_loss"]


def _metrics_row(step, window, agent):
    row = {"step": step, "episode/count": len(window["successes"]),
           "episode/success": float(np.mean(window["successes"])) if window["successes"] else math.nan,
           "episode/return": float(np.mean(window["returns"])) if window["returns"] else math.nan}
    for k in agent.metric_names():
        row[k] = window["sums"][k] / window["counts"][k] if k in window["sums"] else math.nan
    return row


def _replay_episode(env, observation, buffer, rows):
    """Step a freshly reset env through the episode under way (its transitions in the buffer at
    `rows`), so a resumed run continues from the very state it stopped in."""
    data = buffer.data
    for i in rows:
        if not np.array_equal(np.asarray(observation, np.float32), data["observations"][i]):
            raise UserError(f"environment did not replay the interrupted episode (transition {i}); "
                            "it is not deterministic given its seed and actions, so this run cannot resume exactly")
        observation, *_ = env.step(data["actions"][i])
    return observation
