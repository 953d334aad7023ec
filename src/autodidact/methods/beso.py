"""BESO: goal-conditioned behaviour generation with score-based diffusion policies.

Reuss et al., "Goal-Conditioned Imitation Learning using Score-based Diffusion Policies" (RSS 2023),
reference code intuitive-robots/beso. The policy is a continuous-time score model over actions in
the EDM formulation (Karras et al., 2022), conditioned on the state s and a goal g relabeled in
hindsight from the same trajectory:

- Denoiser D(x; sigma, s, g) = c_skip x + c_out F(c_in x, c_noise, s, g) with EDM's preconditioning
  (Karras Table 1): c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
  c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4, with sd = sigma_data = 0.5 (BESO's value).
- Training: x = a + sigma n, n ~ N(0, I), and the loss ||F - (a - c_skip x) / c_out||^2, which is
  EDM's lambda(sigma) ||D - a||^2 with lambda = 1 / c_out^2 (Karras eq. 2 and 8). sigma is drawn from
  BESO's truncated log-logistic density (location ln(sigma_data), scale 0.5, truncated to
  [sigma_min, sigma_max]; the reference's `rand_log_logistic`, its default "loglogistic" density),
  not EDM's log-normal.
- Classifier-free guidance (Ho & Salimans, 2022): with probability `goal_dropout` (0.1) the goal is
  replaced by a null goal, so one network is both pi(a | s, g) and the goal-free pi(a | s). At
  inference D = (1 + w) D(. | g) - w D(. | null), w = `guidance`. BESO's code writes this as
  D_u + lambda (D_c - D_u), so lambda = 1 + w; its released CFG-BESO runs use lambda = 1.5 on
  (play-data) Franka kitchen and 2 on block push, hence w = 0.5 here. w = -1 is the goal-free policy.
- Sampling: 3 steps of the DDIM sampler (first-order DPM-Solver, an Euler step of the probability
  flow ODE in sigma) on an exponential sigma schedule (evenly spaced in log sigma) from
  sigma_max = 1 to sigma_min = 0.005, starting from x ~ N(0, sigma_max^2 I): the released
  configurations (`sampler_type: ddim`, `n_timesteps: 3`, `sigma_max: 1`; the agent hard-codes the
  'exponential' schedule; `sigma_min` is 0.005 for Franka kitchen, 0.05 for block push). With so few
  steps sigma_min matters: it sets the middle noise level (sqrt(sigma_min * sigma_max) here), and
  spread-out action modes are resolved better with a larger one (0.05).
- An EMA of the weights (decay 0.999 with the reference's warm-up min(decay, (1+n)/(10+n))) is what
  acts, as in the reference. AdamW with lr 1e-4 and batch 1024, as its configs.

What `temperature` means here: a diffusion policy has no cheap "mean action" (the mean of a
bimodal action distribution is an action nobody took), so temperature never collapses the
distribution. It is the stochasticity eta of the sampler: 0 (what the evaluator uses) runs BESO's
deterministic DDIM sampler, so all randomness is the initial noise drawn from the `generator`
(a seeded evaluation is reproducible); eta > 0 runs Euler-ancestral steps (the other sampler the
paper reports) that re-inject fresh noise of std eta * sigma_up after each step; eta = 1 is the
fully stochastic reverse SDE. Every temperature samples the learned action distribution.

Departures, both for CPU budgets:
- The score network is an MLP over (c_in x, an embedding of c_noise, s, g, a "goal dropped" flag)
  instead of BESO's GPT over a window of 4-5 past observations. OGBench's states are Markov (full
  joint positions and velocities), so the history adds little there, and the kitchen GPT (6 layers,
  width 360, ~11 tokens) costs about 200x the FLOPs per sample of a 3x512 MLP. LayerNorm stays on
  (BESO's transformer normalises every block; without it the two-mode test below learns half as
  well).
- The reference replaces a dropped goal by zeros (and drops each goal *coordinate* independently);
  here the whole goal is dropped per sample and the network also reads a 0/1 flag, whose
  first-layer weights are a learned null-goal embedding. Zeros alone would make "no goal" and
  "go to the origin" the same input (the origin is a real state in many envs).
- The reference decays the learning rate by 0.99 every 100 steps (a StepLR); over its 40-60k
  steps that ends near 2e-6, but over this trainer's 100k+ steps it would stop learning halfway,
  so it is off by default (`lr_decay=0.99` restores it).

Action chunks (`chunk` > 1, as in Diffusion Policy): the model denoises the next `chunk` actions
jointly; the policy executes them open loop and replans when they run out (`open_loop`), or
replans every step and executes only the first (receding horizon).
"""

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from autodidact.core.config import check, check_common, opt
from autodidact.data.sampler import GoalConfig
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import MLP, ema_update

SIGMA_DENSITY_SCALE = 0.5  # scale of the log-logistic training density (the reference's default)
SCHEDULES = ("exponential", "karras")


@dataclass
class BESOConfig(ObservationConfig):
    lr: float = opt(1e-4, "AdamW learning rate (BESO's configs)")
    weight_decay: float = opt(0.01, "AdamW weight decay (torch's default, which BESO's kitchen config uses)")
    lr_decay: float = opt(1.0, "multiply the lr by this every 100 steps (BESO's StepLR uses 0.99; off, see top)")
    batch_size: int = opt(1024, "transitions (or action chunks) per gradient step")
    hidden_dims: tuple[int, ...] = opt((512, 512, 512), "score MLP hidden layer widths")
    layer_norm: bool = opt(True, "LayerNorm after each hidden activation of the score MLP")
    sigma_embed_dim: int = opt(64, "width of the learned embedding of c_noise = ln(sigma) / 4")
    sigma_data: float = opt(0.5, "EDM's sigma_data: assumed std of the actions (BESO uses 0.5)")
    sigma_min: float = opt(0.005, "smallest noise level for training and sampling (BESO: kitchen 0.005, push 0.05)")
    sigma_max: float = opt(1.0, "largest noise level; sampling starts from N(0, sigma_max^2)")
    sampling_steps: int = opt(3, "denoising steps at inference (network calls; twice that with guidance)")
    schedule: str = opt("exponential", "sigma schedule of the sampler: 'exponential' (BESO) or 'karras'")
    rho: float = opt(7.0, "Karras schedule exponent (schedule=karras only; EDM 7, BESO's configs 5)")
    goal_dropout: float = opt(0.1, "probability a training goal is replaced by the null goal (for guidance)")
    guidance: float = opt(0.5, "guidance w: D = (1+w) D(g) - w D(null); 0 goal-conditioned only, -1 goal-free")
    ema_decay: float = opt(0.999, "EMA decay of the weights that act (0 acts with the raw weights)")
    chunk: int = opt(1, "actions denoised jointly per call (1 = one action per step)")
    open_loop: bool = opt(True, "chunk > 1: run the whole chunk before replanning (else only its first action)")
    discount: float = opt(0.99, "only used when goals are sampled with geometric offsets")
    actor_goals: GoalConfig = opt(GoalConfig(p_trajgoal=1.0), "how the goal each action (chunk) is denoised towards is drawn")

    def __post_init__(self):
        check_common(self)
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(0 < self.lr_decay <= 1, "lr_decay", f"must be in (0, 1], got {self.lr_decay}")
        check(self.sigma_embed_dim >= 1, "sigma_embed_dim", f"must be >= 1, got {self.sigma_embed_dim}")
        check(self.sigma_data > 0, "sigma_data", f"must be > 0, got {self.sigma_data}")
        check(self.sigma_min > 0, "sigma_min", f"must be > 0, got {self.sigma_min}")
        check(self.sigma_max > self.sigma_min, "sigma_max",
              f"must be > sigma_min ({self.sigma_min}), got {self.sigma_max}")
        check(self.sampling_steps >= 1, "sampling_steps", f"must be >= 1, got {self.sampling_steps}")
        check(self.schedule in SCHEDULES, "schedule", f"must be one of {', '.join(SCHEDULES)}, got '{self.schedule}'")
        check(self.rho > 0, "rho", f"must be > 0, got {self.rho}")
        check(0 <= self.goal_dropout < 1, "goal_dropout", f"must be in [0, 1), got {self.goal_dropout}")
        check(self.guidance >= -1, "guidance", f"must be >= -1 (-1 is the goal-free policy), got {self.guidance}")
        check(self.guidance == 0 or self.goal_dropout > 0, "guidance",
              f"{self.guidance} needs the goal-free model, which only goal_dropout > 0 trains; set guidance=0")
        check(0 <= self.ema_decay < 1, "ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        check(self.chunk >= 1, "chunk", f"must be >= 1, got {self.chunk}")


class ScoreNet(nn.Module):
    """F(c_in x, c_noise, s, g, dropped): the raw network inside EDM's preconditioning, on encoded
    states and goals. Its one observation encoder (flat for states, CNN for frames, shared by s and
    g as BESO's image encoder) belongs to the net, so the EMA averages it too."""

    def __init__(self, x_dim, encoder, hidden_dims, sigma_embed_dim, layer_norm):
        super().__init__()
        self.encoder = encoder
        obs_dim = encoder.out_dim
        # BESO embeds c_noise with a learned layer (a linear token in its GPT); inside an MLP a linear
        # embedding adds nothing over the scalar, so it gets one hidden layer.
        self.sigma_embed = MLP(1, (sigma_embed_dim,), out_dim=sigma_embed_dim)
        self.trunk = MLP(x_dim + sigma_embed_dim + 2 * obs_dim + 1, hidden_dims, out_dim=x_dim,
                         layer_norm=layer_norm)

    def forward(self, x_in, c_noise, obs, goals, dropped):
        # dropped: [B, 1] in {0, 1}; the goal is zeroed and the flag's weights act as the null goal.
        h = torch.cat([x_in, self.sigma_embed(c_noise), obs, goals * (1.0 - dropped), dropped], -1)
        return self.trunk(h)


class BESO(Method):
    name = "beso"
    summary = "goal-conditioned score-based diffusion policy, 3 DDIM steps, classifier-free guidance (BESO)"
    paper = "Reuss et al. 2023"
    reference = "intuitive-robots/beso"
    Config = BESOConfig

    def __init__(self, cfg: BESOConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.x_dim = cfg.chunk * action_dim
        self.net = ScoreNet(self.x_dim, self.make_encoder(), cfg.hidden_dims, cfg.sigma_embed_dim, cfg.layer_norm)
        self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
        # Updates so far: drives the EMA warm-up and the lr decay, and is saved with the weights.
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))
        self.optimizer = self.make_optimizer(self.net.parameters(), cls=torch.optim.AdamW, betas=(0.9, 0.999),
                                             weight_decay=cfg.weight_decay)

    # ------------------------------------------------------------ EDM pieces
    def scalings(self, sigma):
        """EDM preconditioning (Karras et al. 2022, Table 1) for sigma of shape [B, 1]."""
        sd2 = self.cfg.sigma_data ** 2
        total = sigma ** 2 + sd2
        return sd2 / total, sigma * self.cfg.sigma_data / total.sqrt(), total.rsqrt(), sigma.log() / 4

    def denoise(self, net, x, sigma, obs, goals, dropped):
        """D(x; sigma, s, g) = c_skip x + c_out F(c_in x, c_noise, s, g)."""
        c_skip, c_out, c_in, c_noise = self.scalings(sigma)
        return c_skip * x + c_out * net(c_in * x, c_noise, obs, goals, dropped)

    def sample_sigmas(self, n):
        """Truncated log-logistic training noise levels: BESO's `rand_log_logistic` with location
        ln(sigma_data) and scale 0.5, inverse-CDF sampled between sigma_min and sigma_max."""
        cfg = self.cfg
        loc = math.log(cfg.sigma_data)
        lo, hi = (torch.tensor((math.log(v) - loc) / SIGMA_DENSITY_SCALE, dtype=torch.float64).sigmoid()
                  for v in (cfg.sigma_min, cfg.sigma_max))
        u = torch.rand(n, 1, dtype=torch.float64) * (hi - lo) + lo
        return (u.logit() * SIGMA_DENSITY_SCALE + loc).exp().float()

    def schedule(self):
        """Sampling noise levels sigma_max ... sigma_min, then 0 (the last step returns D itself)."""
        cfg, n = self.cfg, self.cfg.sampling_steps
        ramp = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
        if cfg.schedule == "exponential":  # BESO's default: evenly spaced in log sigma
            sigmas = np.exp(np.log(cfg.sigma_max) + ramp * (np.log(cfg.sigma_min) - np.log(cfg.sigma_max)))
        else:  # Karras et al. (2022) eq. 5
            a, b = cfg.sigma_max ** (1 / cfg.rho), cfg.sigma_min ** (1 / cfg.rho)
            sigmas = (a + ramp * (b - a)) ** cfg.rho
        return [float(s) for s in sigmas] + [0.0]

    # ------------------------------------------------------------ training
    def loss(self, batch):
        cfg = self.cfg
        obs, goals = (self.net.encoder(batch[k]) for k in ("observations", "actor_goals"))
        actions = batch["actions"].reshape(obs.shape[0], -1)
        n, device = obs.shape[0], obs.device
        # Every random draw comes from torch's CPU generator, which checkpoints save, so a resumed
        # run (on CPU or GPU) draws exactly what an uninterrupted one would.
        sigma = self.sample_sigmas(n).to(device)
        noise = torch.randn(actions.shape).to(device)
        dropped = (torch.rand(n, 1) < cfg.goal_dropout).float().to(device)
        x = actions + sigma * noise
        c_skip, c_out, c_in, c_noise = self.scalings(sigma)
        out = self.net(c_in * x, c_noise, obs, goals, dropped)
        # EDM's effective training target for F; the unweighted squared error on F equals
        # lambda(sigma) ||D - a||^2 with EDM's lambda(sigma) = 1 / c_out^2.
        target = (actions - c_skip * x) / c_out
        loss = (out - target).pow(2).mean()
        with torch.no_grad():
            denoised = c_skip * x + c_out * out
            info = {"actor/loss": loss.detach(),
                    "actor/denoise_mse": (denoised - actions).pow(2).mean(),
                    "actor/goal_dropped": dropped.mean()}
        return loss, info

    def update(self, batch):
        """The default step, with BESO's learning-rate decay before it and its EMA of the weights
        (with warm-up) after it, towards the weights this step produced."""
        cfg = self.cfg
        loss, info = self.loss(batch)
        if cfg.lr_decay != 1.0:  # BESO's StepLR(step_size=100, gamma=lr_decay), stepped every update
            lr = cfg.lr * cfg.lr_decay ** (int(self.num_updates) // 100)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            info["actor/lr"] = torch.tensor(lr)
        self.optimize(loss)
        self.num_updates += 1
        # The reference's EMA warm-up: early averages forget the random initialisation quickly.
        n = int(self.num_updates)
        decay = min(cfg.ema_decay, (1 + n) / (10 + n))
        ema_update(self.ema_net, self.net, 1.0 - decay)
        return info

    # ------------------------------------------------------------ inference
    def guided_denoise(self, x, sigma, obs, goals, guidance):
        """Classifier-free guidance on the denoiser: (1 + w) D(x | g) - w D(x | null), with the
        conditional and goal-free passes batched into one network call."""
        net, n = self.ema_net, x.shape[0]
        sig = torch.full((n, 1), sigma, dtype=x.dtype, device=x.device)
        ones, zeros = torch.ones(n, 1, device=x.device), torch.zeros(n, 1, device=x.device)
        if guidance == 0:
            return self.denoise(net, x, sig, obs, goals, zeros)
        if guidance == -1:
            return self.denoise(net, x, sig, obs, goals, ones)
        both = self.denoise(net, torch.cat([x, x]), torch.cat([sig, sig]), torch.cat([obs, obs]),
                            torch.cat([goals, goals]), torch.cat([zeros, ones]))
        # Slices, not split(n): torch.export (ONNX export) then keeps the batch size symbolic.
        cond, uncond = both[:n], both[n:]
        return (1 + guidance) * cond - guidance * uncond

    def sample_chunks(self, observations, goals, temperature=0.0, generator=None, guidance=None, noise=None):
        """[B, chunk, action_dim] actions: BESO's sampler from x ~ N(0, sigma_max^2 I). Each step is
        an Euler step of the probability-flow ODE in sigma (= DDIM / DPM-Solver-1, exact at the last
        step where it returns D); with temperature eta > 0 it steps to sigma_down and adds fresh
        noise of std sigma_up (Euler-ancestral), so eta = 0 is the reference's DDIM sampler.
        `noise` ([B, chunk * action_dim] standard normals) replaces the first draw, which makes
        eta = 0 a pure function of its inputs (an exported policy takes it as an input)."""
        guidance = self.cfg.guidance if guidance is None else guidance
        obs, g = (self.ema_net.encoder(x) for x in (observations, goals))  # once for every denoising step
        n, device = obs.shape[0], obs.device

        def randn():  # from the caller's generator (CPU), so seeded evaluation is reproducible
            return torch.randn((n, self.x_dim), generator=generator).to(device)

        sigmas = self.schedule()
        x = (randn() if noise is None else noise) * sigmas[0]
        for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
            denoised = self.guided_denoise(x, sigma, obs, g, guidance)
            sigma_up = 0.0
            if temperature > 0 and sigma_next > 0:  # k-diffusion's get_ancestral_step
                sigma_up = min(sigma_next, temperature * math.sqrt(sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2)
                                                                   / sigma ** 2))
            sigma_down = math.sqrt(sigma_next ** 2 - sigma_up ** 2)
            x = x + (sigma_down - sigma) * (x - denoised) / sigma
            if sigma_up > 0:
                x = x + randn() * sigma_up
        return x.clamp(-1.0, 1.0).reshape(n, self.cfg.chunk, self.action_dim)

    def act(self, observations, goals, temperature=0.0, generator=None):
        """One action per row: the first of a freshly sampled chunk (no per-episode state; the
        evaluator uses `make_policy`, which executes chunks open loop)."""
        return self.sample_chunks(observations, goals, temperature, generator)[:, 0]

    def make_policy(self, temperature=0.0, seed=0):
        return ChunkPolicy(self, temperature=temperature, seed=seed)


class ChunkPolicy:
    """What the evaluator drives: samples a chunk per row, executes it open loop (or only its first
    action with open_loop=False) and replans a row when its chunk runs out or its episode restarts.
    Noise comes from one generator seeded once, so a seeded evaluation is reproducible."""

    def __init__(self, method: BESO, temperature=0.0, seed=0):
        self.method = method
        self.temperature = temperature
        self.generator = torch.Generator().manual_seed(seed)
        cfg = method.cfg
        self.steps_per_plan = cfg.chunk if cfg.open_loop else 1
        self.plan = self.left = None  # [N, chunk, A] planned actions, [N] how many are still to run

    def reset(self, mask):
        mask = np.asarray(mask, dtype=bool)
        if self.left is None or len(self.left) != len(mask):
            self.plan = self.left = None  # a new batch size: replan every row at the next act
        else:
            self.left[mask] = 0

    @torch.no_grad()
    def act(self, observations, goals):
        obs, goals = np.asarray(observations), np.asarray(goals)
        n, m = len(obs), self.method
        device = next(m.parameters()).device
        if self.left is None or len(self.left) != n:
            self.plan = np.zeros((n, m.cfg.chunk, m.action_dim), np.float32)
            self.left = np.zeros(n, np.int64)
        rows = np.flatnonzero(self.left == 0)
        if len(rows):
            was_training = m.training
            m.eval()
            try:
                chunks = m.sample_chunks(torch.as_tensor(obs[rows], dtype=torch.float32, device=device),
                                         torch.as_tensor(goals[rows], dtype=torch.float32, device=device),
                                         temperature=self.temperature, generator=self.generator)
            finally:
                m.train(was_training)
            self.plan[rows] = chunks.cpu().numpy()
            self.left[rows] = self.steps_per_plan
        actions = self.plan[np.arange(n), self.steps_per_plan - self.left]
        self.left -= 1
        return np.clip(actions, -1.0, 1.0)
