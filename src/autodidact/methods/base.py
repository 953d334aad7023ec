"""The contract every method implements, and the little they share.

A method is an `nn.Module` that owns its networks (target networks included, so one `state_dict()`
holds everything) and one optimizer. What the trainer, evaluator and prompts rely on:

- `loss(batch) -> (loss, info)`: the training objective on one batch, every term summed into one
  scalar; `info` holds detached metrics with namespaced keys (`actor/loss`). The method computes,
  the trainer logs.
- `update(batch) -> info`: one gradient step. The default is `loss`, then the Polyak step of the
  target networks `targets()` names (towards the weights from before this step, as the reference),
  then the optimizer step. A method overrides it only when its step differs (BESO's EMA).
- `act(observations, goals, temperature, generator) -> actions`: batched torch tensors in and out.
- what it accepts and needs, as class attributes: `prompts` (goal, reward), `data` (transitions
  with hindsight goals, or windows), `needs_actions`; `Config`, a typed dataclass of its settings.

Shared settings: every `Config` inherits `ObservationConfig` (how observations are read: an image
encoder, augmentation, frame stacking), and `value_goals` / `actor_goals` (`GoalConfig`) say how
the sampler relabels goals, for every method that uses them.

Networks read observations through `gc_encoder` / `make_encoder`: flat vectors for states (no
parameters, so state-based networks are what they always were), or a `StateEncoder` MLP of
`state_encoder_dims`; OGBench's IMPALA encoders for frames, one per network as the reference
builds them.

A pretrained encoder (`pretrained_encoder`, a file of `autodidact pretrain`; `train --encoder RUN`)
starts every one of those encoders, target copies included, from the same weights, fine-tuned or
frozen (`freeze_encoder`: no gradient, left out of the optimizer, so they stay bit-identical).
`pretrained_overrides` copies its architecture (`encoder`, `state_encoder_dims`) into the run's
config, so resuming and evaluating rebuild the networks without the file. Departure: a pretrained
encoder reads one observation, so a network that reads [s; g] through one early-fusion `concat`
encoder reads [enc(s), enc(g)] through separate state and goal encoders instead.
"""

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from autodidact.core.config import ConfigError, check, opt
from autodidact.core.errors import UserError
from autodidact.data.sampler import GoalSampler, WindowSampler
from autodidact.nn import adam, ema_update
from autodidact.nn.encoders import ENCODERS, GCEncoder, is_image_shape, make_encoder
from autodidact.nn.representation import ENCODER_FILE, read_encoder_file

PROMPTS = ("goal", "reward")
DATA = ("transitions", "windows")


@dataclass
class ObservationConfig:
    """How a method reads observations; every method's Config inherits these fields."""
    encoder: Optional[str] = opt(None, "image encoder for frame observations: " + ", ".join(ENCODERS)
                                 + " (None: state vectors, flat or through state_encoder_dims)")
    p_aug: Optional[float] = opt(None, "probability that a batch of frames is randomly shifted (pad 3 by "
                                 "edge, crop back), OGBench's augmentation (None: never)")
    frame_stack: Optional[int] = opt(None, "stack this many consecutive frames along channels (None: one); "
                                     "the first frames of an episode repeat its first frame")
    state_encoder_dims: tuple[int, ...] = opt((), "state vectors enter the networks through an MLP encoder of these "
                                              "widths (GELU, LayerNorm), one per network as frame encoders "
                                              "(empty: the flat vector itself)")
    pretrained_encoder: Optional[str] = opt(None, "file of a pretrained encoder (`autodidact pretrain`; "
                                            "`train --encoder RUN` sets it): every observation and goal encoder "
                                            "starts from its weights, and its architecture sets encoder / "
                                            "state_encoder_dims (None: encoders start at random)")
    freeze_encoder: bool = opt(False, "keep the pretrained encoder's weights fixed (True) or fine-tune them "
                               "(False); needs pretrained_encoder")
    # Ranges are checked by `check_common`, the encoder's name when the method is built.


class Method(nn.Module, abc.ABC):
    name: ClassVar[str] = ""           # the CLI name
    summary: ClassVar[str] = ""        # one line for `autodidact methods`
    paper: ClassVar[str] = ""          # the paper it follows
    reference: ClassVar[str] = ""      # the reference implementation it is checked against
    Config: ClassVar[type] = None
    prompts: ClassVar[tuple] = ("goal",)
    data: ClassVar[str] = "transitions"  # "transitions" with relabeled goals, or "windows" of steps
    needs_actions: ClassVar[bool] = True
    # Trains on every transition, reading actions only where `action_labeled` (LAPO); otherwise a
    # method that needs actions sees the labeled transitions only.
    learns_from_unlabeled: ClassVar[bool] = False
    legacy_defaults: ClassVar[dict] = {}  # {config key added later: the value runs saved before it used}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "act" in cls.__dict__:  # acting never builds a graph, however a caller reaches it
            cls.act = torch.no_grad()(cls.act)
        if "name" not in cls.__dict__:  # a shared base of several methods (PlayMethod)
            return
        problems = [what for what, ok in (
            ("a name", bool(cls.name)), ("a summary", bool(cls.summary)), ("a Config dataclass", cls.Config is not None),
            (f"prompts among {PROMPTS}", set(cls.prompts) <= set(PROMPTS)), (f"data in {DATA}", cls.data in DATA),
        ) if not ok]
        if problems:
            raise TypeError(f"method class {cls.__name__} needs {', '.join(problems)}")

    def __init__(self, cfg, obs_shape, action_dim):
        super().__init__()
        self.cfg = cfg
        obs_shape = tuple(obs_shape)
        check(cfg.encoder is None or cfg.encoder in ENCODERS, "encoder",
              f"must be one of {', '.join(ENCODERS)} or None, got '{cfg.encoder}'")
        images = is_image_shape(obs_shape)
        if images and cfg.encoder is None:
            raise UserError(f"observations are frames {list(obs_shape)} and method '{self.name}' has no image "
                            "encoder: add --set encoder=impala_small")
        if not images and cfg.encoder is not None:
            raise ConfigError("encoder", f"'{cfg.encoder}' reads frames [H, W, C], but observations are "
                              f"state vectors {list(obs_shape)}; leave encoder unset")
        if images and cfg.state_encoder_dims:
            raise ConfigError("state_encoder_dims", f"reads state vectors, but observations are frames "
                              f"{list(obs_shape)}; leave it unset (frames go through `encoder`)")
        if cfg.pretrained_encoder and not images and not cfg.state_encoder_dims:
            raise ConfigError("state_encoder_dims", "is empty, but pretrained_encoder is set; the file's widths "
                              "belong here (`train` copies them: Method.pretrained_overrides)")
        if cfg.frame_stack and cfg.frame_stack > 1:
            obs_shape = (*obs_shape[:-1], obs_shape[-1] * cfg.frame_stack)
        self.obs_shape = obs_shape  # what the networks read (frames stacked along channels)
        self.obs_dim = int(np.prod(obs_shape))
        self.action_dim = action_dim

    # ------------------------------------------------------------ the contract
    @abc.abstractmethod
    def loss(self, batch) -> tuple[torch.Tensor, dict]:
        """(scalar loss to minimise, info of detached metrics) on one batch of tensors."""

    @abc.abstractmethod
    def act(self, observations, goals, temperature=0.0, generator=None) -> torch.Tensor:
        """Actions for a batch of observations and goals; temperature 0 is deterministic. Runs
        without gradients."""

    def update(self, batch) -> dict:
        loss, info = self.loss(batch)
        self.update_targets()
        self.optimize(loss)
        return info

    @classmethod
    def pretrained_overrides(cls, cfg, obs_shape=None) -> dict:
        """Config values a new run takes from pretrained weights its config names (their shapes),
        so resuming and evaluating rebuild the networks without those files: the pretrained
        encoder's absolute path and architecture. With `obs_shape` (the dataset's), the file must
        read observations of that shape. A method with files of its own adds to these."""
        if not cfg.pretrained_encoder:
            return {}
        path = Path(cfg.pretrained_encoder).expanduser()
        meta, _ = read_encoder_file(path)  # a pretrain run directory, or its file
        path = (path / ENCODER_FILE if path.is_dir() else path).resolve()
        name, dims, shape = meta.get("encoder"), tuple(meta.get("state_dims") or ()), meta.get("obs_shape")
        what = f"a frame encoder ({name})" if name else f"a state encoder (widths {list(dims)})"
        if name is not None and name not in ENCODERS:
            raise UserError(f"{path}: its encoder '{name}' is not one this autodidact builds ({', '.join(ENCODERS)}); "
                            "upgrade autodidact")
        if name is None and not dims:
            raise UserError(f"{path}: holds a parameter-free state encoder (no state_dims); there is nothing to "
                            "start from")
        if cfg.encoder is not None and cfg.encoder != name:
            raise UserError(f"{path}: the pretrained encoder is {what}, but this run sets encoder={cfg.encoder}; "
                            "drop --set encoder (the file decides the architecture)")
        if cfg.state_encoder_dims and tuple(cfg.state_encoder_dims) != dims:
            raise UserError(f"{path}: the pretrained encoder is {what}, but this run sets state_encoder_dims="
                            f"{','.join(map(str, cfg.state_encoder_dims))}; drop --set state_encoder_dims "
                            "(the file decides the architecture)")
        if obs_shape is not None:
            _check_encoder_shape(path, what, name, shape, tuple(obs_shape), cfg.frame_stack or 1)
        return {"pretrained_encoder": str(path), "encoder": name, "state_encoder_dims": list(dims)}

    def load_pretrained(self):
        """Load pretrained weights the config names into a freshly built method (a new run only;
        a resumed run restores its own checkpoint): the pretrained encoder's into every encoder
        built from it, online and target copies alike."""
        if not self.cfg.pretrained_encoder:
            return
        path = self.cfg.pretrained_encoder
        _, tensors = read_encoder_file(path)
        for encoder in self.pretrained_encoders():
            try:
                encoder.load_state_dict(tensors)
            except RuntimeError:
                raise UserError(f"{path}: its weights do not fit this run's encoder of observations "
                                f"{list(self.obs_shape)}; pretrain on the same kind of data") from None

    def pretrained_encoders(self) -> list:
        """Every encoder module started from the pretrained encoder (each once; target networks'
        deep copies included, as they carry the mark)."""
        return [m for m in self.modules() if getattr(m, "from_pretrained", False)]

    def targets(self) -> list:
        """[(target network, online network)] moved by Polyak averaging with rate `cfg.tau`."""
        return []

    def update_targets(self):
        for target, online in self.targets():
            ema_update(target, online, self.cfg.tau)

    def make_optimizer(self, params, **kwargs):
        """The method's one optimizer: fused Adam at `cfg.lr` unless `kwargs` say otherwise. A
        frozen pretrained encoder's weights are left out (no step, no weight decay moves them)."""
        params = list(params)
        if self.cfg.freeze_encoder:
            frozen = {id(p) for encoder in self.pretrained_encoders() for p in encoder.parameters()}
            params = [p for p in params if id(p) not in frozen]
        return adam(params, lr=kwargs.pop("lr", self.cfg.lr), **kwargs)

    def optimizers(self) -> dict:
        """{name: optimizer}, as checkpoints store them."""
        return {"main": self.optimizer}

    def make_sampler(self, dataset, seed):
        """The batches `loss` reads: windows of `cfg.window` steps, or transitions with the goals the
        config's `value_goals` / `actor_goals` describe."""
        cfg = self.cfg
        if self.data == "windows":
            return WindowSampler(dataset, cfg.window, seed=seed, need_actions=self.needs_actions,
                                 p_aug=cfg.p_aug, frame_stack=cfg.frame_stack)
        return GoalSampler(dataset, seed, p_aug=cfg.p_aug, frame_stack=cfg.frame_stack,
                           value_goals=getattr(cfg, "value_goals", None),
                           actor_goals=getattr(cfg, "actor_goals", None), discount=cfg.discount,
                           gc_negative=getattr(cfg, "gc_negative", True),
                           subgoal_steps=getattr(cfg, "subgoal_steps", 0), chunk=getattr(cfg, "chunk", 1),
                           future_offset=getattr(cfg, "future_offset", 1),
                           need_actions=self.needs_actions, unlabeled=self.learns_from_unlabeled)

    def make_policy(self, temperature=0.0, seed=0):
        """The object the evaluator drives (`act(obs, goals)`, optional `reset(mask)`). Methods with
        per-episode state (a plan latent held for k steps, an action chunk) return their own."""
        return GoalPolicy(self, temperature=temperature, seed=seed)

    def policy(self, temperature=0.0, seed=0):
        """`make_policy`, fed the last `frame_stack` observations of each episode when the method
        reads stacked frames: what the evaluator and prompts drive."""
        inner = self.make_policy(temperature=temperature, seed=seed)
        k = self.cfg.frame_stack or 1
        return FrameStackPolicy(inner, k) if k > 1 else inner

    # ------------------------------------------------------------ shared
    def make_encoder(self, channels=1):
        """A fresh encoder of observations (`channels` = 2: [s; g] stacked): `Flat` or a
        `StateEncoder` of `cfg.state_encoder_dims` for states, `cfg.encoder` for frames. Its width
        is `.out_dim`. With a pretrained encoder it is marked `from_pretrained` (`load_pretrained`
        fills it) and, frozen, takes no gradient from its construction on, so a resumed run is
        frozen too."""
        cfg = self.cfg
        encoder = make_encoder(cfg.encoder, self.obs_shape, channels, cfg.state_encoder_dims)
        if cfg.pretrained_encoder:
            if channels != 1:
                raise ValueError("a pretrained encoder reads one observation; build separate parts")
            encoder.from_pretrained = True
            encoder.requires_grad_(not cfg.freeze_encoder)
        return encoder

    def gc_encoder(self, state=False, goal=False, concat=False, encoded_goal_dim=0):
        """OGBench's GCEncoder with the parts asked for, each a fresh encoder: (s, g) ->
        [enc(s), enc(g), enc([s; g])]; with `encoded_goal_dim`, g is already a representation of
        that width (a subgoal rep, a skill) and is appended as it is. With a pretrained encoder,
        `concat` becomes separate state and goal parts (it reads one observation)."""
        if concat and self.cfg.pretrained_encoder:
            state = goal = True
            concat = False
        return GCEncoder(state=self.make_encoder() if state else None, goal=self.make_encoder() if goal else None,
                         concat=self.make_encoder(2) if concat else None, encoded_goal_dim=encoded_goal_dim)

    def optimize(self, loss):
        """One gradient step. Under torchrun, gradients are averaged across processes before the
        step (plain data parallelism, as DDP does, without wrapping each sub-network)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            grads = [p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            for g, avg in zip(grads, flat.split([g.numel() for g in grads])):
                g.copy_(avg.view_as(g))
        self.optimizer.step()

    def check_prompt(self, kind):
        if kind not in self.prompts:
            if not self.prompts:  # skills another method composes (skill-vae under SUPE)
                raise UserError(f"method '{self.name}' accepts no prompts; its skills are composed online by "
                                "`autodidact finetune --method supe --skills RUN`")
            raise UserError(f"method '{self.name}' cannot be prompted with a {kind}; it accepts: "
                            f"{', '.join(self.prompts)}")


def _check_encoder_shape(path, what, name, file_shape, obs_shape, frame_stack):
    """One line when the pretrained encoder at `path` cannot read this run's observations
    (`obs_shape` as the dataset holds them, `frame_stack` of them stacked along channels)."""
    file_shape = tuple(file_shape or ())
    images = is_image_shape(obs_shape)
    if images != (name is not None):
        kind = f"frames {list(obs_shape)}" if images else f"state vectors {list(obs_shape)}"
        raise UserError(f"{path}: the pretrained encoder is {what}, but this dataset's observations are {kind}; "
                        "pretrain on the same kind of data")
    if not images:
        if file_shape != obs_shape:
            raise UserError(f"{path}: the pretrained encoder reads observations of shape {list(file_shape)}, this "
                            f"dataset's are {list(obs_shape)}; pretrain on the same kind of data")
        return
    stacked = (*obs_shape[:-1], obs_shape[-1] * frame_stack)
    if file_shape[:-1] != obs_shape[:-1] or len(file_shape) != 3:
        raise UserError(f"{path}: the pretrained encoder reads frames {list(file_shape)}, this dataset's are "
                        f"{list(obs_shape)}; pretrain on frames of the same size")
    if file_shape[-1] != stacked[-1]:
        hint = (f"set frame_stack={file_shape[-1] // obs_shape[-1]}" if file_shape[-1] % obs_shape[-1] == 0
                else "pretrain with the same frame_stack")
        raise UserError(f"{path}: the pretrained encoder reads {file_shape[-1]} channels, this run {stacked[-1]} "
                        f"(frames of {obs_shape[-1]} channels, frame_stack {frame_stack}); {hint}")


class GoalPolicy:
    """Adapter the evaluator calls: numpy batches in, numpy actions out, no gradients."""

    def __init__(self, method: Method, temperature=0.0, seed=0):
        self.method = method
        self.temperature = temperature
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(self, observations, goals):
        obs = torch.as_tensor(np.asarray(observations), dtype=torch.float32)
        g = torch.as_tensor(np.asarray(goals), dtype=torch.float32)
        was_training = self.method.training
        self.method.eval()
        try:
            a = self.method.act(obs, g, temperature=self.temperature, generator=self.generator)
        finally:
            self.method.train(was_training)
        return a.clamp(-1, 1).numpy()


class FrameStackPolicy:
    """Feeds a policy the last k observations of each row stacked along the last axis (an episode's
    first observation repeated until it has k), and the goal repeated k times, as OGBench's
    FrameStackWrapper gives them."""

    def __init__(self, inner, k):
        self.inner, self.k = inner, k
        self.history, self.fresh = None, None

    def reset(self, mask):
        mask = np.asarray(mask, dtype=bool)
        if self.fresh is None or len(self.fresh) != len(mask):
            self.history, self.fresh = None, np.ones(len(mask), bool)
        self.fresh |= mask
        if hasattr(self.inner, "reset"):
            self.inner.reset(mask)

    def act(self, observations, goals):
        obs = np.asarray(observations)
        if self.history is None or len(self.history) != len(obs):
            self.history, self.fresh = np.repeat(obs[:, None], self.k, 1), np.zeros(len(obs), bool)
        self.history[self.fresh] = obs[self.fresh, None]
        self.history[~self.fresh] = np.concatenate([self.history[~self.fresh, 1:], obs[~self.fresh, None]], 1)
        self.fresh[:] = False
        stacked = np.concatenate(list(np.moveaxis(self.history, 1, 0)), -1)
        return self.inner.act(stacked, np.concatenate([np.asarray(goals)] * self.k, -1))
