"""GCIVL: goal-conditioned implicit V-learning.

IQL without a Q function (OGBench, Park et al., 2024): an expectile regression of V(s, g) onto the
one-step target r + gamma * V_target(s', g), with the expectile *weight* taken from the target
network's advantage and the squared error from the online network (a double-DQN-like split that
damps overestimation, since the TD target itself contains the same noisy V). The policy is
extracted by AWR with the one-step advantage V(s', g) - V(s, g) of the dataset action.

Defaults are OGBench's `impls/agents/gcivl.py`: two value heads (one ensemble network with
a leading head axis) with LayerNorm and a Polyak target (tau 0.005), expectile 0.9, AWR temperature 10,
a 3x512 GELU actor without LayerNorm and unit std, one Adam (3e-4) over value and actor together,
batch 1024, value goals 0.2/0.5/0.3 current/future (geometric)/random, actor goals uniform future.

With `icvf` (a file of `autodidact icvf`, nn/representation.py) the value network reads [phi(s), psi(g)]
instead of [s; g], phi and psi started from ICVF's representation learned without actions (its
paper's downstream use), frozen or fine-tuned (`icvf_frozen`).
"""

import copy
from dataclasses import dataclass
from typing import Optional

import torch

from autodidact.core.config import check, check_common, opt
from autodidact.core.errors import UserError
from autodidact.data.sampler import VALUE_GOALS, GoalConfig
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import GCEncoder, GCValue, GaussianActor, actor_info, awr_loss, expectile_td_loss, gaussian_log_prob, value_info
from autodidact.nn.representation import Representation, read_representation

@dataclass
class GCIVLConfig(ObservationConfig):
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over value and actor, as the reference)")
    batch_size: int = opt(1024, "transitions per gradient step")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "actor MLP hidden layer widths")
    value_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "value MLP hidden layer widths")
    layer_norm: bool = opt(True, "LayerNorm in the value MLPs (the actor never has it, as in the reference)")
    discount: float = opt(0.99, "discount factor gamma of the goal-reaching return")
    tau: float = opt(0.005, "Polyak rate of the target value network")
    expectile: float = opt(0.9, "IQL expectile of the value regression (0.5 is plain TD)")
    alpha: float = opt(10.0, "AWR inverse temperature: weights exp(alpha * advantage), clipped at 100")
    const_std: bool = opt(True, "fix the policy std at 1 (log-likelihood becomes squared error)")
    gc_negative: bool = opt(True, "rewards 0 at the goal, -1 elsewhere (True) or 1/0 (False)")
    value_goals: GoalConfig = opt(VALUE_GOALS, "how the value's goals are drawn")
    actor_goals: GoalConfig = opt(GoalConfig(p_trajgoal=1.0), "how the actor's goals are drawn")
    icvf: Optional[str] = opt(None, "ICVF representation file (`autodidact icvf`): the value network reads "
                              "[phi(s), psi(g)] initialized from it instead of [s; g] (None: off)")
    icvf_frozen: bool = opt(False, "keep phi and psi at their ICVF weights (True) or fine-tune them (False)")
    icvf_hidden_dims: tuple[int, ...] = opt((256, 256), "phi and psi widths; `train` copies them from the icvf file")
    icvf_layer_norm: bool = opt(False, "LayerNorm in phi and psi; `train` copies it from the icvf file")

    def __post_init__(self):
        check_common(self)
        check(not (self.icvf and self.pretrained_encoder), "pretrained_encoder",
              "cannot be combined with icvf (both start the value network's encoders); choose one")


class GCIVL(Method):
    name = "gcivl"
    summary = "goal-conditioned implicit V-learning: expectile V(s, g) with target net, AWR actor (OGBench GCIVL)"
    paper = "Park et al. 2024 (OGBench)"
    reference = "OGBench impls/agents/gcivl.py"
    Config = GCIVLConfig

    def __init__(self, cfg: GCIVLConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        # The reference's two value heads as one ensemble network: outputs are [2, B].
        value_encoder = self.gc_encoder(concat=True)
        if cfg.icvf:
            value_encoder = GCEncoder(state=self._representation(), goal=self._representation())
            value_encoder.requires_grad_(not cfg.icvf_frozen)
        self.value = GCValue(value_encoder, cfg.value_hidden_dims, layer_norm=cfg.layer_norm, ensemble=2)
        self.target_value = copy.deepcopy(self.value).requires_grad_(False)
        self.actor_encoder = self.gc_encoder(concat=True)
        self.actor = GaussianActor(self.actor_encoder.out_dim, action_dim, cfg.actor_hidden_dims,
                                   layer_norm=False, const_std=cfg.const_std)
        # The reference applies one Adam to the sum of both losses over its whole network dict; the
        # target receives no gradient there (its Adam update is exactly zero), so it is left out.
        self.optimizer = self.make_optimizer([p for p in (*self.value.parameters(), *self.actor_encoder.parameters(),
                                                          *self.actor.parameters()) if p.requires_grad])

    def _representation(self):
        cfg = self.cfg
        return Representation(cfg.encoder, self.obs_shape, cfg.icvf_hidden_dims, cfg.icvf_layer_norm)

    @classmethod
    def pretrained_overrides(cls, cfg, obs_shape=None):
        """The phi/psi architecture of the ICVF file the config names (so the run rebuilds it
        without the file), besides the pretrained encoder's (the base's)."""
        overrides = super().pretrained_overrides(cfg, obs_shape)
        if not cfg.icvf:
            return overrides
        meta, _ = read_representation(cfg.icvf)
        if meta["encoder"] != cfg.encoder:
            raise UserError(f"{cfg.icvf}: the ICVF representation reads observations with encoder "
                            f"{meta['encoder']}, this run with {cfg.encoder}; set the same encoder")
        return {**overrides, "icvf_hidden_dims": ",".join(map(str, meta["hidden_dims"])),
                "icvf_layer_norm": str(meta["layer_norm"])}

    def load_pretrained(self):
        """Start phi and psi (online and target value) from the ICVF file's first head (ICVF's
        downstream use: its representation initializes the value network), and the encoders from
        a pretrained encoder (the base's)."""
        super().load_pretrained()
        if not self.cfg.icvf:
            return
        _, tensors = read_representation(self.cfg.icvf)
        for encoder in (self.value.encoder, self.target_value.encoder):
            for name in ("phi", "psi"):
                part = encoder.state if name == "phi" else encoder.goal
                state = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
                try:
                    part.load_state_dict(state)
                except RuntimeError:
                    raise UserError(f"{self.cfg.icvf}: its {name} does not fit this run's observations "
                                    f"{list(self.obs_shape)}; pretrain ICVF on the same kind of data") from None

    def targets(self):
        return [(self.target_value, self.value)]

    def loss(self, batch):
        cfg = self.cfg
        obs, next_obs = batch["observations"], batch["next_observations"]
        value_goals, actor_goals = batch["value_goals"], batch["actor_goals"]
        value_loss, v = expectile_td_loss(self.value, self.target_value, obs, next_obs, value_goals, value_goals,
                                          batch["rewards"], batch["masks"], cfg.discount, cfg.expectile)

        # AWR on the one-step advantage V(s', g) - V(s, g) of the online value (without gradient,
        # as the reference reads it outside grad_params), heads averaged.
        with torch.no_grad():
            v_s, v_next = self.value(torch.cat([obs, next_obs]), torch.cat([actor_goals, actor_goals])).mean(0).chunk(2)
            adv = v_next - v_s
        mean, log_std = self.actor(self.actor_encoder(obs, actor_goals))
        log_prob = gaussian_log_prob(mean, log_std, batch["actions"])
        actor_loss = awr_loss(adv, log_prob, cfg.alpha)
        return value_loss + actor_loss, {
            "value/loss": value_loss.detach(), **value_info("value", v), "actor/loss": actor_loss.detach(),
            "actor/adv": adv.mean(), **actor_info("actor", mean, log_std, log_prob, batch["actions"])}

    def act(self, observations, goals, temperature=0.0, generator=None):
        x = self.actor_encoder(observations, goals)
        return self.actor.sample(x, temperature=temperature, generator=generator)

    @torch.no_grad()
    def values(self, observations, goals):
        """V(s, g) averaged over the two heads, for inspection and tests."""
        return self.value(observations, goals).mean(0)
