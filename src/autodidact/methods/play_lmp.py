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
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from autodidact.config import check, check_common, opt
from autodidact.data.sampler import WindowSampler
from autodidact.methods.base import Method
from autodidact.nn import Linear, LogisticMixtureActor, MLP, adam


@dataclass
class PlayConfig:
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
def hindsight_windows(batch, window_min):
    """Cut each sampled window to a random length and take the state after it as the goal.

    The sampler returns `window` states, the one after them and `window` actions; Play-LMP trains
    on windows of random length in [window_min, window] (the paper's 16-32), so each row keeps its
    first l steps and s_l becomes its goal. Lengths come from torch's RNG, which the trainer
    checkpoints, so resumed runs draw the same ones.

    Returns (states [B, L+1, D]: s_0..s_L, lengths [B], goals [B, D]: s_l, valid [B, L]: t < l).
    """
    obs = batch["observations"]
    b, window = obs.shape[0], obs.shape[1]
    states = torch.cat([obs.reshape(b, window, -1), batch["goals"].reshape(b, 1, -1)], 1).float()
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
    mixture-of-logistics decoder, one Adam over every network, and `losses(batch)` as the update."""

    prompts = ("goal",)

    def make_decoder(self, in_dim):
        cfg = self.cfg
        return LogisticMixtureActor(in_dim, self.action_dim, cfg.actor_hidden_dims, num_mixtures=cfg.num_mixtures,
                                    num_bins=cfg.num_bins, layer_norm=cfg.actor_layer_norm)

    def make_sampler(self, dataset, seed):
        return WindowSampler(dataset, self.cfg.window, seed=seed, need_actions=True)

    def optimizers(self):
        return {"main": self.opt}

    def losses(self, batch):
        raise NotImplementedError

    def update(self, batch):
        loss, info = self.losses(batch)
        self.optimize(loss, self.opt)
        return info


class PlayLMP(PlayMethod):
    name = "play-lmp"
    summary = "latent plans from play: window VAE (biGRU recognizer, goal-conditioned prior), mixture decoder"
    Config = PlayLMPConfig

    def __init__(self, cfg: PlayLMPConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        d = self.obs_dim
        self.recognizer = PlanRecognizer(d, cfg.recognizer_hidden, cfg.recognizer_layers, cfg.latent_dim)
        self.proposal = PlanProposal(d, cfg.proposal_hidden_dims, cfg.latent_dim)
        self.decoder = self.make_decoder(2 * d + cfg.latent_dim)
        self.opt = adam(self.parameters(), lr=cfg.lr)

    def losses(self, batch):
        """(total loss, info) of one batch of windows."""
        cfg = self.cfg
        states, lengths, goals, valid = hindsight_windows(batch, cfg.window_min)
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
        mean, std = self.proposal(self.flat(observations), self.flat(goals))
        if temperature == 0:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + temperature * std * noise

    def decode(self, observations, goals, plans, temperature=0.0, generator=None):
        x = torch.cat([self.flat(observations), self.flat(goals), plans], -1)
        return self.decoder.sample(x, temperature=temperature, generator=generator)

    def act(self, observations, goals, temperature=0.0, generator=None):
        """Stateless: a fresh plan from p(z | s, g) at every call (replanning every step)."""
        z = self.propose(observations, goals, temperature, generator)
        return self.decode(observations, goals, z, temperature, generator)

    @torch.no_grad()
    def recognize(self, windows):
        """Mean of q(z | window) for full windows of states [B, T, *obs] (goal state last)."""
        states = windows.reshape(windows.shape[0], windows.shape[1], -1).float()
        lengths = torch.full((states.shape[0],), states.shape[1], dtype=torch.long, device=states.device)
        return self.recognizer(states, lengths)[0]

    def make_policy(self, temperature=0.0, seed=0):
        return PlanPolicy(self, temperature=temperature, seed=seed)

    def write_figures(self, run_dir, dataset):
        return write_plan_latent_figure(self, Path(run_dir), dataset)


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


# ---------------------------------------------------------------------------- plan-latent figure
# OGBench manipspace state layout (`ogbench/manipspace/envs/{cube,scene,puzzle}_env.py`,
# `compute_observation`): 19 proprioceptive dims (6 joint positions, 6 joint velocities, effector
# xyz, cos/sin yaw, gripper opening, gripper contact), then per cube 9 (xyz scaled by 10,
# quaternion, cos/sin yaw), per button 4 (2-way one-hot state, position scaled by 120, velocity),
# and in scene the drawer (position x18, velocity) and window (position x15, velocity).
_PROPRIO, _CUBE, _BUTTON = 19, 9, 4
_DIRECTIONS = ("+x", "-x", "+y", "-y", "up", "down")


def _direction(delta):
    """Dominant direction of a cube's xyz displacement [N, 3]: lifts count when z dominates."""
    axis = np.abs(delta).argmax(-1)
    sign = np.take_along_axis(delta, axis[:, None], -1)[:, 0] < 0
    return np.array([_DIRECTIONS[2 * a + s] for a, s in zip(axis, sign)])


def window_labels(dataset_name, windows):
    """What happened in each window of states [N, T, D]: a short label per window (which object
    moved most, and where) for OGBench's cube, scene and puzzle states; elsewhere the dominant
    direction the first two state dims moved. Returns (labels [N] of str, description)."""
    from autodidact.presets import dataset_base_name
    name = dataset_base_name(dataset_name)
    windows = windows.reshape(windows.shape[0], windows.shape[1], -1)  # images: fall through below
    n, _, d = windows.shape
    start, end = windows[:, 0], windows[:, -1]
    kind = name.split("-")[0]
    # Object scores are in units of "clearly moved" (thresholds in the scaled observation units):
    # the largest above 1 names the window; below 1 everywhere the arm moved alone.
    scores, names = [], []
    if kind == "cube" and d > _PROPRIO and (d - _PROPRIO) % _CUBE == 0:
        for i in range((d - _PROPRIO) // _CUBE):
            lo = _PROPRIO + _CUBE * i
            delta = end[:, lo:lo + 3] - start[:, lo:lo + 3]
            scores.append(np.linalg.norm(delta, axis=-1) / 0.2)              # 2 cm
            prefix = "cube " if d == _PROPRIO + _CUBE else f"cube {i} "
            names.append(np.char.add(prefix, _direction(delta)))
        description = "cube that moved and its main direction"
    elif kind == "scene" and d == _PROPRIO + _CUBE + 2 * _BUTTON + 4:
        delta = end[:, _PROPRIO:_PROPRIO + 3] - start[:, _PROPRIO:_PROPRIO + 3]
        scores.append(np.linalg.norm(delta, axis=-1) / 0.2)
        names.append(np.char.add("cube ", _direction(delta)))
        for i in range(2):
            lo = _PROPRIO + _CUBE + _BUTTON * i
            scores.append(np.abs(end[:, lo:lo + 2] - start[:, lo:lo + 2]).max(-1) * 2.0)  # a state flip
            names.append(np.full(n, f"button {i}"))
        for what, lo in (("drawer", d - 4), ("window", d - 2)):
            delta = end[:, lo] - start[:, lo]
            scores.append(np.abs(delta) / 0.5)
            names.append(np.where(delta > 0, f"{what} +", f"{what} -"))
        description = "object that moved most (cube direction, button, drawer/window sign)"
    elif kind == "puzzle" and d > _PROPRIO and (d - _PROPRIO) % _BUTTON == 0:
        # Pressing one button flips its neighbours' states too (lights out), so name the button that
        # was physically pushed: the largest excursion of its position during the window.
        for i in range((d - _PROPRIO) // _BUTTON):
            pos = windows[:, :, _PROPRIO + _BUTTON * i + 2]
            scores.append(np.abs(pos - pos[:, :1]).max(-1) / 0.5)
            names.append(np.full(n, f"button {i}"))
        description = "button pressed in the window"
    else:
        delta = end[:, :2] - start[:, :2]
        norm = np.linalg.norm(delta, axis=-1)
        angle = np.degrees(np.arctan2(delta[:, 1], delta[:, 0]))
        labels = np.array(["+x", "+y", "-x", "-y"])[np.round(angle / 90.0).astype(int) % 4]
        labels = np.where(norm < 0.25 * np.median(norm), "still", labels)
        return labels.astype(str), "main direction the first two state dims moved"
    scores, names = np.stack(scores, 1), np.stack(names, 1)
    best = scores.argmax(1)
    labels = np.where(scores.max(1) >= 1.0, names[np.arange(n), best], "arm only")
    return labels.astype(str), description


def pca_2d(x, reference=None):
    """Project rows of x onto the top two principal axes of `reference` (default x)."""
    ref = x if reference is None else reference
    mean = ref.mean(0, keepdims=True)
    _, s, vt = np.linalg.svd(ref - mean, full_matrices=False)
    explained = (s[:2] ** 2).sum() / max((s ** 2).sum(), 1e-12)
    return (x - mean) @ vt[:2].T, float(explained)


def knn_label_accuracy(x, labels, k=5, starts=None, window=0):
    """Leave-one-out k-NN majority-vote accuracy of the labels in the space x: how well windows
    with the same outcome sit together. With `starts`, windows overlapping the query (starts less
    than `window` steps apart) are not neighbours: they share most of their states, and counting
    them would measure only that consecutive windows get similar plans."""
    x = torch.as_tensor(x, dtype=torch.float32)
    dist = torch.cdist(x, x)
    dist.fill_diagonal_(float("inf"))
    if starts is not None:
        starts = torch.as_tensor(np.asarray(starts))
        dist[(starts[:, None] - starts[None]).abs() < window] = float("inf")
    nearest = dist.topk(min(k, len(x) - 1), largest=False).indices.numpy()
    _, codes = np.unique(labels, return_inverse=True)
    votes = codes[nearest]
    pred = np.array([np.bincount(v).argmax() for v in votes])
    return float((pred == codes).mean())


def _heldout_windows(dataset, window, max_windows, seed=0):
    """Up to `max_windows` distinct full windows (states s_0..s_window) from the `-val.npz` twin of
    the training file when there is one, else from the training data.
    Returns (windows [N, window + 1, *obs], their start indices, source path, whether held out)."""
    from autodidact.data.dataset import load
    from autodidact.errors import DataError, UserError
    source, path = dataset, Path(getattr(dataset, "path", "<memory>"))
    val = path.with_name(f"{path.stem}-val.npz")
    if path.suffix == ".npz" and not path.stem.endswith("-val") and val.exists():
        try:
            source = load(val)
        except DataError:
            pass
    try:
        sampler = WindowSampler(source, window, seed=seed, need_actions=False)
    except UserError:
        source = dataset
        sampler = WindowSampler(source, window, seed=seed, need_actions=False)
    rng = np.random.default_rng(seed)
    starts = sampler.start_idxs
    # At most ~200 MB of float32 windows, whatever the observation size (pixels).
    per_window = (window + 1) * int(np.prod(source.obs_shape))
    max_windows = max(3, min(max_windows, int(5e7 // per_window)))
    starts = np.sort(rng.choice(starts, size=min(max_windows, len(starts)), replace=False))
    windows = np.asarray(source.observations[starts[:, None] + np.arange(window + 1)[None]])
    return windows, starts, str(source.path), source is not dataset


def write_plan_latent_figure(method, run_dir, dataset, max_windows=2000):
    """Plan latents of held-out windows, 2-D by PCA, coloured by what happened in each window.

    Left: means of q(z | window). Right: means of p(z | s_0, s_T) on the same axes (what the policy
    plans from at test time). The paper's observation is that, without any labels, windows of the
    same task cluster; the title gives the leave-one-out 5-NN accuracy of the outcome labels in
    the full latent space (overlapping windows excluded as neighbours) against the share of the
    most common label.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autodidact.io import atomic_path, atomic_write_json
    windows, starts, source, heldout = _heldout_windows(dataset, method.cfg.window, max_windows)
    if len(windows) < 3:
        return []
    labels, description = window_labels(source, windows)
    device = next(method.parameters()).device  # the trainer calls this before moving anything to CPU
    w = torch.as_tensor(windows, dtype=torch.float32, device=device)
    q = method.recognize(w).cpu().numpy()
    p = method.propose(w[:, 0], w[:, -1]).cpu().numpy()
    q2, explained = pca_2d(q)
    p2, _ = pca_2d(p, reference=q)
    accuracy = knn_label_accuracy(q, labels, starts=starts, window=method.cfg.window)
    values, counts = np.unique(labels, return_counts=True)
    majority = float(counts.max() / counts.sum())

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), sharex=True, sharey=True)
    cmap = plt.get_cmap("tab20" if len(values) > 10 else "tab10")
    order = np.argsort(-counts)
    for ax, pts, title in ((axes[0], q2, "q(z | window): plan recognizer"),
                           (axes[1], p2, "p(z | s_0, goal): plan proposal")):
        for c, i in enumerate(order):
            sel = labels == values[i]
            ax.scatter(pts[sel, 0], pts[sel, 1], s=6, alpha=0.6, color=cmap(c % cmap.N),
                       label=f"{values[i]} ({counts[i]})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PC 1")
    axes[0].set_ylabel("PC 2")
    axes[1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), title=description,
                   title_fontsize=7)
    fig.suptitle(f"Play-LMP plan latents of {len(windows)} {'held-out' if heldout else 'training'} "
                 f"{method.cfg.window}-step windows "
                 f"({Path(source).name}); PCA of q means explains {explained:.0%}\n"
                 f"5-NN outcome-label accuracy in z, overlapping windows excluded: {accuracy:.2f} "
                 f"(most common label: {majority:.2f})",
                 fontsize=9)
    fig.tight_layout()
    out = run_dir / "figures" / "plan_latents.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    stats = run_dir / "figures" / "plan_latents.json"
    atomic_write_json(stats, {"windows": len(windows), "source": source, "heldout": heldout,
                              "window": method.cfg.window,
                              "label_description": description,
                              "label_counts": {str(v): int(c) for v, c in zip(values, counts)},
                              "knn5_label_accuracy": accuracy, "majority_label_share": majority,
                              "pca_explained_variance": explained})
    return [out, stats]
