"""Play-LMP: learning latent plans from play (Lynch et al., 2019).

Play is cut into windows of 16-32 steps; the state right after a window is its hindsight goal.
A plan recognizer q(z | s_0..s_l) (a bidirectional GRU over the window's states) explains *how*
the window got from s_0 to its goal s_l as a Gaussian latent plan; a plan proposal p(z | s_0, s_l)
(an MLP) learns to predict that plan from the start and the goal alone; an action decoder
pi(a_t | s_t, s_l, z) replays the window's actions. The loss is the conditional VAE bound

    -1/N sum_t log pi(a_t | s_t, s_l, z)  +  beta * KL(q(z | window) || p(z | s_0, s_l)),  z ~ q,

with beta 0.01. At test time z comes from the proposal, p(z | s, g), and is drawn again every
`replan_every` steps. Without z the same decoder is Play-GCBC (`play_gcbc.py`), the paper's
baseline: the latent is what lets one goal-conditioned policy keep play's several ways of reaching
a goal apart instead of averaging them.

Defaults follow the paper where they fit: windows of 16 to 32 steps (a length drawn per window),
beta 0.01, latent dimension 256, a discretized mixture of logistics over each action dimension
(`nn.LogisticMixtureActor`, 10 components), all networks trained by one Adam. Departures, for CPU
budgets and OGBench's state observations:

- Networks are this library's size rather than the paper's 2048-unit ones: a 2-layer
  bidirectional GRU of 256 units per direction, 3x512 MLPs for proposal and decoder (OGBench's
  reference width), 128 windows per batch (~3k decoded steps, three times GCBC's 1024
  transitions, since consecutive steps of a window are far from independent samples).
- The decoder is a per-step MLP over (s_t, s_l, z) rather than an RNN. OGBench's observations are
  full states with joint velocities, so a recurrent decoder's memory has little left to carry;
  the MLP decodes every step of every window in one batched matmul (the RNN's sequential steps
  are what dominate its CPU time), and the evaluator can call it one step at a time without a
  hidden state to thread through.
- Adam at 3e-4, as the library's other behavioural-cloning methods. The reconstruction term is
  averaged over decoded steps and the KL over windows, so beta = 0.01 prices one nat of plan
  information at 0.01 nats of per-step action likelihood.
- Replanning every 20 steps: Play-LMP replans about every 30 steps of its robot's control loop;
  OGBench's manipulation envs act at 20 Hz (control_timestep 0.05 s), and 20 steps also stay
  inside the 16-32 step horizon a plan was recognised over.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from autodidact.core.config import check, check_common, opt
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import MLP, Linear, LogisticMixtureActor


@dataclass
class PlayConfig(ObservationConfig):
    """What Play-LMP and Play-GCBC share: windows, decoder and action head."""
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over every network)")
    batch_size: int = opt(128, "windows per gradient step (~3k decoded steps: 16-32 per window)")
    window: int = opt(32, "longest window, in steps; the state after it is the hindsight goal")
    window_min: int = opt(16, "shortest window; each window's length is drawn uniformly in [window_min, window]")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "action decoder MLP hidden layer widths")
    actor_layer_norm: bool = opt(False, "LayerNorm after each decoder hidden activation")
    num_mixtures: int = opt(10, "logistic components per action dimension in the action head")
    num_bins: int = opt(256, "bins the action range [-1, 1] is discretized into for the likelihood")

    def __post_init__(self):
        check_common(self)
        check(self.window >= 1, "window", f"must be >= 1, got {self.window}")
        check(1 <= self.window_min <= self.window, "window_min",
              f"must be in [1, window={self.window}], got {self.window_min}")
        check(self.num_mixtures >= 1, "num_mixtures", f"must be >= 1, got {self.num_mixtures}")
        check(self.num_bins >= 2, "num_bins", f"must be >= 2, got {self.num_bins}")


@dataclass
class PlayLMPConfig(PlayConfig):
    latent_dim: int = opt(256, "dimension of the latent plan z")
    beta: float = opt(0.01, "weight of KL(q(z | window) || p(z | s_0, goal)) against the action likelihood")
    recognizer_hidden: int = opt(256, "GRU units per direction in the plan recognizer")
    recognizer_layers: int = opt(2, "stacked bidirectional GRU layers in the plan recognizer")
    proposal_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "plan proposal MLP hidden layer widths")
    replan_every: int = opt(20, "test time: draw a new plan from p(z | s, g) every this many env steps")

    def __post_init__(self):
        super().__post_init__()
        check(self.latent_dim >= 1, "latent_dim", f"must be >= 1, got {self.latent_dim}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(self.recognizer_hidden >= 1, "recognizer_hidden", f"must be >= 1, got {self.recognizer_hidden}")
        check(self.recognizer_layers >= 1, "recognizer_layers", f"must be >= 1, got {self.recognizer_layers}")
        check(self.replan_every >= 1, "replan_every", f"must be >= 1, got {self.replan_every}")


# ---------------------------------------------------------------------------- shared with play-gcbc
def hindsight_windows(encoder, batch, window_min):
    """Cut each sampled window to a random length and take the state after it as the goal.

    The sampler returns `window` states, the one after them and `window` actions; Play-LMP trains
    on windows of random length in [window_min, window] (the paper's 16-32), so each row keeps its
    first l steps and s_l becomes its goal. Lengths come from torch's RNG, which the trainer
    checkpoints, so resumed runs draw the same ones.

    States are read through `encoder` (one shared perception network, as in Play-LMP from pixels).
    Returns (states [B, L+1, D]: s_0..s_L, lengths [B], goals [B, D]: s_l, valid [B, L]: t < l).
    """
    obs = batch["observations"]
    b, window = obs.shape[0], obs.shape[1]
    states = encoder(torch.cat([obs, batch["goals"][:, None]], 1))
    if window_min < window:
        lengths = torch.randint(window_min, window + 1, (b,), device=states.device)
    else:
        lengths = torch.full((b,), window, device=states.device, dtype=torch.long)
    goals = states[torch.arange(b, device=states.device), lengths]
    valid = torch.arange(window, device=states.device)[None] < lengths[:, None]
    return states, lengths, goals, valid


def window_rows(states, goals, valid, *per_window):
    """The decoder's rows: every valid step t of every window as (s_t, goal[, per-window extras]),
    flattened to [N, ...] so one MLP pass decodes them all."""
    b, window = valid.shape
    rows = [states[:, :window], goals[:, None].expand(-1, window, -1)]
    rows += [x[:, None].expand(-1, window, -1) for x in per_window]
    return torch.cat(rows, -1)[valid]


def decoder_info(prefix, decoder, inputs, actions, log_prob, rows=256):
    """Likelihood and the squared error of the deterministic action (the mode the evaluator
    executes), the latter on the first `rows` rows: the mode scans every bin."""
    with torch.no_grad():
        mse = (decoder.mode(inputs[:rows].detach()) - actions[:rows]).pow(2).mean()
    return {f"{prefix}/nll": -log_prob.detach().mean(), f"{prefix}/bc_log_prob": log_prob.detach().mean(),
            f"{prefix}/mse": mse}


# ---------------------------------------------------------------------------- networks
def gaussian_kl(q_mean, q_std, p_mean, p_std):
    """KL(N(q_mean, q_std^2) || N(p_mean, p_std^2)) of diagonal Gaussians, summed over the last dim."""
    return (torch.log(p_std / q_std) + (q_std.pow(2) + (q_mean - p_mean).pow(2)) / (2 * p_std.pow(2)) - 0.5).sum(-1)


def _mean_std(out):
    mean, raw = out.chunk(2, -1)
    return mean, F.softplus(raw) + 1e-4  # softplus keeps the std positive without exp's blow-ups


class PlanRecognizer(nn.Module):
    """q(z | s_0..s_l): a bidirectional GRU over the window's states; the two directions' final
    hidden states (the last layer's) give the mean and std of a diagonal Gaussian."""

    def __init__(self, obs_dim, hidden, layers, latent_dim):
        super().__init__()
        self.gru = nn.GRU(obs_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.head = Linear(2 * hidden, 2 * latent_dim)

    def forward(self, states, lengths):
        """states [B, T, D]; lengths [B]: how many leading states of each row are real."""
        if bool((lengths == states.shape[1]).all()):
            _, h = self.gru(states)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(states, lengths.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            _, h = self.gru(packed)
        return _mean_std(self.head(torch.cat([h[-2], h[-1]], -1)))


class PlanProposal(nn.Module):
    """p(z | s_0, goal): an MLP to the mean and std of a diagonal Gaussian."""

    def __init__(self, obs_dim, hidden_dims, latent_dim):
        super().__init__()
        self.net = MLP(2 * obs_dim, hidden_dims, out_dim=2 * latent_dim)

    def forward(self, observations, goals):
        return _mean_std(self.net(torch.cat([observations, goals], -1)))


# ---------------------------------------------------------------------------- method
class PlayMethod(Method):
    """What Play-LMP and Play-GCBC share: hindsight windows from a `WindowSampler`, a per-step
    mixture-of-logistics decoder, one Adam over every network."""

    data = "windows"

    def make_decoder(self, in_dim):
        cfg = self.cfg
        return LogisticMixtureActor(in_dim, self.action_dim, cfg.actor_hidden_dims, num_mixtures=cfg.num_mixtures,
                                    num_bins=cfg.num_bins, layer_norm=cfg.actor_layer_norm)


class PlayLMP(PlayMethod):
    name = "play-lmp"
    summary = "latent plans from play: window VAE (biGRU recognizer, goal-conditioned prior), mixture decoder"
    paper = "Lynch et al. 2019"
    reference = "the paper (no public code)"
    Config = PlayLMPConfig

    def __init__(self, cfg: PlayLMPConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.encoder = self.make_encoder()
        d = self.encoder.out_dim
        self.recognizer = PlanRecognizer(d, cfg.recognizer_hidden, cfg.recognizer_layers, cfg.latent_dim)
        self.proposal = PlanProposal(d, cfg.proposal_hidden_dims, cfg.latent_dim)
        self.decoder = self.make_decoder(2 * d + cfg.latent_dim)
        self.optimizer = self.make_optimizer(self.parameters())

    def loss(self, batch):
        """(total loss, info) of one batch of windows."""
        cfg = self.cfg
        states, lengths, goals, valid = hindsight_windows(self.encoder, batch, cfg.window_min)
        # The recognizer reads s_0..s_l (l + 1 states: the window and its goal).
        q_mean, q_std = self.recognizer(states, lengths + 1)
        p_mean, p_std = self.proposal(states[:, 0], goals)
        z = q_mean + q_std * torch.randn_like(q_std)          # reparameterised sample of q
        kl = gaussian_kl(q_mean, q_std, p_mean, p_std).mean()
        inputs = window_rows(states, goals, valid, z)
        actions = batch["actions"][valid]
        log_prob = self.decoder.log_prob(inputs, actions)
        nll = -log_prob.mean()
        loss = nll + cfg.beta * kl
        info = {"lmp/loss": loss.detach(), **decoder_info("actor", self.decoder, inputs, actions, log_prob),
                "plan/kl": kl.detach(), "plan/recognizer_std": q_std.detach().mean(),
                "plan/proposal_std": p_std.detach().mean(),
                "plan/proposal_error": (q_mean.detach() - p_mean.detach()).pow(2).sum(-1).mean(),
                "plan/window_length": lengths.float().mean()}
        return loss, info

    def propose(self, observations, goals, temperature=0.0, generator=None):
        """A plan for each (state, goal): the proposal's mean, or a draw with its std scaled by
        `temperature`."""
        mean, std = self.proposal(self.encoder(observations), self.encoder(goals))
        if temperature == 0:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + temperature * std * noise

    def decode(self, observations, goals, plans, temperature=0.0, generator=None):
        x = torch.cat([self.encoder(observations), self.encoder(goals), plans], -1)
        return self.decoder.sample(x, temperature=temperature, generator=generator)

    def act(self, observations, goals, temperature=0.0, generator=None):
        """Stateless: a fresh plan from p(z | s, g) at every call (replanning every step)."""
        z = self.propose(observations, goals, temperature, generator)
        return self.decode(observations, goals, z, temperature, generator)

    @torch.no_grad()
    def recognize(self, windows):
        """Mean of q(z | window) for full windows of states [B, T, *obs] (goal state last)."""
        states = self.encoder(windows)
        lengths = torch.full((states.shape[0],), states.shape[1], dtype=torch.long, device=states.device)
        return self.recognizer(states, lengths)[0]

    def make_policy(self, temperature=0.0, seed=0):
        return PlanPolicy(self, temperature=temperature, seed=seed)


class PlanPolicy:
    """The evaluator's Play-LMP policy: each row holds its plan for `replan_every` steps, then draws
    a new one from p(z | s, g); a row whose episode (re)starts plans afresh at its next step."""

    _DUE = np.iinfo(np.int64).max // 2  # a plan's age that forces replanning at the next step

    def __init__(self, method: PlayLMP, temperature=0.0, seed=0):
        self.method, self.temperature = method, temperature
        self.generator = torch.Generator().manual_seed(seed)
        self.plans, self.age = None, None

    def _fit(self, n):
        """Per-row state for a batch of n rows; a batch of a new size starts over."""
        if self.age is None or len(self.age) != n:
            self.age = np.full(n, self._DUE)
            self.plans = torch.zeros(n, self.method.cfg.latent_dim)

    def reset(self, mask):
        mask = np.asarray(mask, dtype=bool)
        self._fit(len(mask))
        self.age[mask] = self._DUE

    @torch.no_grad()
    def act(self, observations, goals):
        m = self.method
        obs = torch.as_tensor(np.asarray(observations), dtype=torch.float32)
        g = torch.as_tensor(np.asarray(goals), dtype=torch.float32)
        self._fit(obs.shape[0])
        was_training = m.training
        m.eval()
        try:
            due = self.age >= m.cfg.replan_every
            if due.any():
                rows = torch.from_numpy(due)
                self.plans[rows] = m.propose(obs[rows], g[rows], self.temperature, self.generator)
                self.age[due] = 0
            a = m.decode(obs, g, self.plans, self.temperature, self.generator)
        finally:
            m.train(was_training)
        self.age += 1
        return a.clamp(-1, 1).numpy()
