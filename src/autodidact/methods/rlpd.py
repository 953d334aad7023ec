"""RLPD: online soft actor-critic that samples half of every batch from prior data.

Ball et al. 2023, "Efficient Online Reinforcement Learning with Offline Data" (reference:
ikostrikov/rlpd, `agents/sac/sac_learner.py`, `configs/rlpd_config.py`, `train_finetuning.py`).
Three things on top of SAC make prior data useful online:
- symmetric sampling: each batch is `prior_ratio` prior transitions, the rest online ones;
- LayerNorm in the critics (Dense -> LayerNorm -> ReLU), which bounds Q outside the data;
- an ensemble of `num_critics` critics, whose TD target is the min over a random subset of
  `num_min_critics` target critics (REDQ), updated `utd` times per environment step.

Per environment step (`update`): `utd` critic steps on consecutive slices of one big batch, each
followed by the Polyak step of the target critics; then one actor step and one temperature step on
the last slice, as the reference does. Critic target:
    y = r + gamma * mask * (min_{k in subset} Q'_k(s', a') - [backup_entropy] alpha * log pi(a'|s')),
    a' ~ pi(.|s'); actor: min E[alpha * log pi(a|s) - mean_k Q_k(s, a)]; temperature:
    min alpha * (entropy - target_entropy), alpha = exp(log_alpha), target entropy -action_dim/2.

Prior data is reward-free: every prior transition gets reward `prior_reward` (0 by default, issue
26's "zero reward"; in OGBench's single-task convention, -1 per step and 0 at success, 0 is the
success reward, so unlabeled data reads as optimistic) and mask 1 (a prior episode's end is a time
limit, not a terminal). `explore.py` replaces these labels with learned optimistic ones.

Prompt-then-improve (`finetune --init RUN`, not in the paper): a pretrained goal-conditioned run,
prompted with the task's goal, is the `behaviour` policy. It acts (plus Gaussian noise of std
`init_noise`) for the first `start_training` steps instead of uniform random actions, so the buffer
holds its successes; before the first RL update the actor is distilled into it (`init_distill_steps`
steps of squared error on tanh(mean), on replay and prior states); and the actor loss keeps a pull
towards it,
    + w_t * max(mean |Q|, 1) * ||tanh(mean(s)) - a_behaviour(s)||^2,
w_t = init_bc_weight falling linearly to 0 over `init_bc_steps` env steps: TD3+BC's Q-scaled
behaviour cloning, strong while the critic is untrained (its first updates would otherwise drag the
distilled actor anywhere) and gone after init_bc_steps, by when the critic should know the task.

Published settings (`PUBLISHED`): 10 critics, min over 2, UTD 20, start_training 5000. The CPU
defaults are smaller (see the config's fields): `autodidact finetune --published` restores them.
Departures: the target ensemble is evaluated in full and the subset picked afterwards (the same
numbers as evaluating only the subset); the actor's Tanh-Gaussian is clipped to log-std [-20, 2]
as the reference, and deterministic evaluation takes tanh(mean).
"""

import copy
import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import nn

from autodidact.core.config import check, check_common, opt
from autodidact.nn import MLP, GaussianActor, adam, ema_update, frozen


@dataclass
class RLPDConfig:
    hidden_dims: tuple[int, ...] = opt((256, 256), "actor and critic MLP hidden widths (published 256x256)")
    num_critics: int = opt(2, "critics in the ensemble (published 10; 2 keeps a CPU run affordable)")
    num_min_critics: int = opt(2, "random target critics whose min forms the TD target (published 2)")
    utd: int = opt(2, "critic updates per environment step, the update-to-data ratio (published 20)")
    batch_size: int = opt(256, "transitions per critic update, prior and online together (published 256)")
    prior_ratio: float = opt(0.5, "fraction of each batch drawn from the prior data (published 0.5: symmetric)")
    lr: float = opt(3e-4, "Adam learning rate of actor, critics and temperature")
    discount: float = opt(0.99, "discount factor gamma")
    tau: float = opt(0.005, "Polyak rate of the target critics")
    init_temperature: float = opt(1.0, "initial entropy temperature alpha")
    target_entropy: Optional[float] = opt(None, "entropy the temperature is tuned towards (None: -action_dim / 2)")
    backup_entropy: bool = opt(True, "subtract alpha * log pi(a'|s') in the TD target (the reference's default)")
    critic_layer_norm: bool = opt(True, "LayerNorm in the critics (RLPD's key design choice)")
    start_training: int = opt(5000, "environment steps of uniformly random actions before the first update "
                                    "(published 5000)")
    prior_reward: float = opt(0.0, "rlpd: reward of every prior transition (reward-free data; 0 = issue 26's zero "
                                   "reward); explore and supe learn theirs")
    init_distill_steps: int = opt(1000, "with --init: actor steps that distill the prompted pretrained policy into the "
                                        "actor before its first RL update (on prior and online states)")
    init_bc_weight: float = opt(10.0, "with --init: weight of the actor's pull towards the prompted pretrained policy, "
                                     "times the batch's mean |Q| (at least 1)")
    init_bc_steps: int = opt(10_000, "with --init: env steps after start_training over which that weight decays "
                                     "linearly to 0")
    init_noise: float = opt(0.1, "with --init: std of the Gaussian noise on the prompted policy's actions during "
                                 "the first start_training steps (instead of uniform random actions)")

    def __post_init__(self):
        check_common(self)
        check(self.num_critics >= 1, "num_critics", f"must be >= 1, got {self.num_critics}")
        check(1 <= self.num_min_critics <= self.num_critics, "num_min_critics",
              f"must be in [1, num_critics={self.num_critics}], got {self.num_min_critics}")
        check(self.utd >= 1, "utd", f"must be >= 1, got {self.utd}")
        check(0.0 <= self.prior_ratio < 1.0, "prior_ratio", f"must be in [0, 1), got {self.prior_ratio}")
        check(self.init_temperature > 0, "init_temperature", f"must be > 0, got {self.init_temperature}")
        check(self.start_training >= 0, "start_training", f"must be >= 0, got {self.start_training}")
        check(self.init_distill_steps >= 0, "init_distill_steps", f"must be >= 0, got {self.init_distill_steps}")
        check(self.init_bc_weight >= 0, "init_bc_weight", f"must be >= 0, got {self.init_bc_weight}")
        check(self.init_bc_steps >= 0, "init_bc_steps", f"must be >= 0, got {self.init_bc_steps}")
        check(self.init_noise >= 0, "init_noise", f"must be >= 0, got {self.init_noise}")


class RLPD(nn.Module):
    name: ClassVar[str] = "rlpd"
    summary: ClassVar[str] = "SAC with symmetric prior/online sampling, LayerNorm critic ensemble, high UTD"
    paper: ClassVar[str] = "Ball et al. 2023 (RLPD)"
    reference: ClassVar[str] = "ikostrikov/rlpd"
    Config: ClassVar[type] = RLPDConfig
    needs_prior: ClassVar[bool] = False  # without prior data RLPD is its own from-scratch baseline
    needs_skills: ClassVar[bool] = False  # acts in the environment's action space
    PUBLISHED: ClassVar[dict] = {"num_critics": 10, "num_min_critics": 2, "utd": 20, "batch_size": 256,
                                 "hidden_dims": (256, 256), "start_training": 5000}
    legacy_defaults: ClassVar[dict] = {}  # {config key added later: the value runs saved before it used}
    # What `update` and `observe` report, once training has started: the columns of metrics.csv.
    METRICS: ClassVar[tuple] = ("critic/loss", "critic/q", "critic/reward", "actor/loss", "actor/entropy",
                                "temperature/loss", "temperature/alpha")

    def __init__(self, cfg: RLPDConfig, obs_dim: int, action_dim: int, behaviour=None):
        """`behaviour`: with `finetune --init`, the frozen prompted pretrained policy, observations
        -> actions (not part of this module's state: the run names the run it comes from)."""
        super().__init__()
        self.cfg, self.obs_dim, self.action_dim = cfg, obs_dim, action_dim
        object.__setattr__(self, "behaviour", behaviour)
        self.actor = GaussianActor(obs_dim, action_dim, cfg.hidden_dims, const_std=False, state_dependent_std=True,
                                   log_std_min=-20.0, log_std_max=2.0, tanh_squash=True, activation="relu",
                                   out_init_scale=1.0)
        self.critic = MLP(obs_dim + action_dim, cfg.hidden_dims, out_dim=1, layer_norm=cfg.critic_layer_norm,
                          ensemble=cfg.num_critics, activation="relu", norm_first=True)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.target_entropy = -action_dim / 2 if cfg.target_entropy is None else cfg.target_entropy
        self.actor_optimizer = adam(self.actor.parameters(), cfg.lr)
        self.critic_optimizer = adam(self.critic.parameters(), cfg.lr)
        self.temperature_optimizer = adam([self.log_alpha], cfg.lr)

    def metric_names(self):
        """The columns of metrics.csv: what `update` and `observe` report once training has started."""
        init = ("actor/distill_loss", "actor/bc_loss", "actor/bc_weight") if self.behaviour is not None else ()
        return self.METRICS + init

    def bc_weight(self, steps_done):
        """The pull towards the behaviour policy `steps_done` env steps into the run: init_bc_weight
        at start_training, falling linearly to 0 over init_bc_steps."""
        cfg = self.cfg
        if self.behaviour is None or not cfg.init_bc_steps:
            return 0.0
        return cfg.init_bc_weight * max(0.0, 1.0 - (steps_done - cfg.start_training) / cfg.init_bc_steps)

    @torch.no_grad()
    def explore(self, observations, noise):
        """Actions of the first start_training steps with a behaviour policy: its actions plus
        `noise` (standard normal, the loop's RNG) times init_noise, clipped to the action box."""
        return (self.behaviour(observations) + self.cfg.init_noise * noise).clamp(-1.0, 1.0)

    def distill(self, observations):
        """One actor step towards the behaviour policy's actions on a batch of observations: the
        squared error of the deterministic action (tanh of the mean)."""
        with torch.no_grad():
            target = self.behaviour(observations)
        loss = (self.actor.mode(observations) - target).pow(2).sum(-1).mean()
        _step(self.actor_optimizer, loss)
        return {"actor/distill_loss": float(loss.detach())}

    def batches_per_step(self):
        """Batches of `batch_size` that `update` reads per environment (or high-level) step."""
        return self.cfg.utd

    def optimizers(self):
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer,
                "temperature": self.temperature_optimizer}

    # ------------------------------------------------------------ losses
    def q(self, critic, observations, actions):
        """[num_critics, B] values of one critic ensemble."""
        return critic(torch.cat([observations, actions], -1)).squeeze(-1)

    def critic_loss(self, batch):
        cfg = self.cfg
        with torch.no_grad():
            next_actions, next_log_prob = self.actor.sample_with_log_prob(batch["next_observations"])
            subset = torch.randperm(cfg.num_critics)[:cfg.num_min_critics]
            next_q = self.q(self.target_critic, batch["next_observations"], next_actions)[subset].min(0).values
            target = batch["rewards"] + cfg.discount * batch["masks"] * next_q
            if cfg.backup_entropy:
                target = target - cfg.discount * batch["masks"] * self.log_alpha.exp() * next_log_prob
        qs = self.q(self.critic, batch["observations"], batch["actions"])
        loss = (qs - target).pow(2).mean()
        return loss, {"critic/loss": loss.detach(), "critic/q": qs.detach().mean(),
                      "critic/reward": batch["rewards"].mean()}

    def actor_loss(self, batch, bc_weight=0.0):
        actions, log_prob = self.actor.sample_with_log_prob(batch["observations"])
        q = frozen(self.critic, torch.cat([batch["observations"], actions], -1)).squeeze(-1).mean(0)
        loss = (self.log_alpha.exp().detach() * log_prob - q).mean()
        info = {"actor/loss": loss.detach(), "actor/entropy": -log_prob.detach().mean()}
        if self.behaviour is not None:
            # TD3+BC's form: the squared error of the deterministic action from the behaviour
            # policy's, scaled by the batch's mean |Q| so the weight means the same at any reward
            # scale; the floor of 1 keeps the pull alive while an untrained critic's Q is near 0.
            with torch.no_grad():
                target = self.behaviour(batch["observations"])
            bc = (self.actor.mode(batch["observations"]) - target).pow(2).sum(-1).mean()
            loss = loss + bc_weight * q.detach().abs().mean().clamp_min(1.0) * bc
            info.update({"actor/bc_loss": bc.detach(), "actor/bc_weight": torch.tensor(bc_weight)})
        return loss, info

    def temperature_loss(self, entropy):
        alpha = self.log_alpha.exp()
        loss = alpha * (entropy - self.target_entropy)
        return loss, {"temperature/loss": loss.detach(), "temperature/alpha": alpha.detach()}

    # ------------------------------------------------------------ one environment step's updates
    def update(self, batch, steps_done=0):
        """`utd` critic steps on consecutive slices of `batch` (utd * batch_size rows), then one
        actor and one temperature step on the last slice; `steps_done` env steps into the run."""
        size = self.cfg.batch_size
        sums = {}
        for i in range(self.cfg.utd):
            mini = {k: v[i * size:(i + 1) * size] for k, v in batch.items()}
            loss, info = self.critic_loss(mini)
            _step(self.critic_optimizer, loss)
            ema_update(self.target_critic, self.critic, self.cfg.tau)
            for k, v in info.items():
                sums[k] = sums.get(k, 0.0) + float(v) / self.cfg.utd
        loss, actor_info = self.actor_loss(mini, self.bc_weight(steps_done))
        _step(self.actor_optimizer, loss)
        loss, temp_info = self.temperature_loss(actor_info["actor/entropy"])
        _step(self.temperature_optimizer, loss)
        return {**sums, **{k: float(v) for k, v in {**actor_info, **temp_info}.items()}}

    def label_prior(self, prior):
        """Rewards and masks of a batch of reward-free prior transitions (in place)."""
        prior["rewards"] = torch.full_like(prior["rewards"], self.cfg.prior_reward)
        prior["masks"] = torch.ones_like(prior["masks"])
        return prior

    def observe(self, steps_done, transition, sample_online):
        """Learning that happens once per environment step besides `update` (ExPLORe's reward
        model and RND), `steps_done` env steps into the run; `sample_online(n)` draws n online
        transitions. RLPD has none."""
        return {}

    @torch.no_grad()
    def act(self, observations, temperature=1.0, generator=None):
        """Actions for a batch of observations: a policy sample (temperature 1) or tanh(mean) (0)."""
        if temperature == 0:
            return self.actor.mode(observations)
        return self.actor.sample(observations, temperature=temperature, generator=generator)


def _step(optimizer, loss):
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
