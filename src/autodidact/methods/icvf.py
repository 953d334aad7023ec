"""ICVF: a state representation learned from observations alone (no actions, no rewards).

Intention-conditioned value functions (Ghosh et al., 2023, "Reinforcement Learning from Passive
Data via Latent Intentions"): V(s, g, z) is the discounted chance of reaching outcome g when acting
to reach intent z, modelled multilinearly as phi(s)^T T(z) psi(g), with the release's low-rank T(z):
    V(s, g, z) = < A (t(z) * phi(s)), B (t(z) * psi(g)) >,   t(z) an MLP of psi(z),
and fitted by an expectile TD regression whose weight is the advantage of the step s -> s' under
the intent: adv = r(s, z) + gamma V_target(s', z, z) - V_target(s, z, z) (min over the two heads
at s', mean at s). A transition counts as acting towards z when that advantage is positive, so
no action is ever read. phi(s) and psi(g) then initialize a goal-conditioned value network
(GCIVL's `icvf` setting), the downstream use the paper makes of phi.

Defaults are the release's state-based ones (`experiments/antmaze/train_icvf.py`,
`src/icvf_learner.py`, `src/gc_dataset.py`): two ensembled multilinear heads of 256-256 GELU MLPs
without LayerNorm, Adam 3e-4, batch 256, discount 0.99, expectile 0.9, Polyak 0.005, outcomes and
intents each the current state / a uniform future state of the trajectory / a random state with
probability 0.2 / 0.5 / 0.3, and the outcome equal to the intent half the time. Departures: every
layer is Xavier-uniform initialized (the release's `matrix_a` / `matrix_b` use flax's LeCun
default), and for frames one encoder is shared by s, g and z, as the release's ICVFWithEncoder.

Not a policy, so not in the method registry: `autodidact icvf` trains it (workflows/icvf.py).
"""

import copy
import json
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from autodidact.core.config import check, opt
from autodidact.data.sampler import GoalConfig, IntentSampler
from autodidact.nn import MLP, EnsembleLayerNorm, EnsembleLinear, adam, ema_update, expectile_loss, make_encoder
from autodidact.nn.encoders import ENCODERS, is_image_shape
from autodidact.nn.representation import FILE_FORMAT, FILE_VERSION, Representation


@dataclass
class ICVFConfig:
    lr: float = opt(3e-4, "Adam learning rate")
    batch_size: int = opt(256, "transitions per gradient step")
    hidden_dims: tuple[int, ...] = opt((256, 256), "phi, psi and T MLP widths; the last is the representation's")
    layer_norm: bool = opt(False, "LayerNorm after each hidden activation (off in the release's state runs)")
    discount: float = opt(0.99, "discount factor gamma")
    tau: float = opt(0.005, "Polyak rate of the target value network")
    expectile: float = opt(0.9, "expectile of the TD regression, weighted by the intent's advantage")
    p_samegoal: float = opt(0.5, "probability the outcome g is the intent z")
    goals: GoalConfig = opt(GoalConfig(p_curgoal=0.2, p_trajgoal=0.5, p_randomgoal=0.3),
                            "how outcomes and intents are drawn (uniform future offsets, as the release)")
    encoder: Optional[str] = opt(None, "image encoder for frame observations: " + ", ".join(ENCODERS)
                                 + " (None: state vectors straight into the MLPs)")

    def __post_init__(self):
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(len(self.hidden_dims) > 0 and all(d > 0 for d in self.hidden_dims), "hidden_dims",
              f"must be positive widths, got {self.hidden_dims}")
        check(0.0 < self.discount < 1.0, "discount", f"must be in (0, 1), got {self.discount}")
        check(0.0 < self.tau <= 1.0, "tau", f"must be in (0, 1], got {self.tau}")
        check(0.5 <= self.expectile < 1.0, "expectile", f"must be in [0.5, 1), got {self.expectile}")
        check(0.0 <= self.p_samegoal <= 1.0, "p_samegoal", f"must be in [0, 1], got {self.p_samegoal}")
        check(self.encoder is None or self.encoder in ENCODERS, "encoder",
              f"must be one of {', '.join(ENCODERS)} or None, got '{self.encoder}'")


class MultilinearValue(nn.Module):
    """V(s, g, z) of two ensembled heads: [2, B]."""

    def __init__(self, cfg: ICVFConfig, obs_shape):
        super().__init__()
        self.encoder = make_encoder(cfg.encoder, tuple(obs_shape))
        d = cfg.hidden_dims[-1]
        mlp = lambda n: MLP(n, cfg.hidden_dims, layer_norm=cfg.layer_norm, activate_final=True, ensemble=2)  # noqa: E731
        self.phi, self.psi, self.T = mlp(self.encoder.out_dim), mlp(self.encoder.out_dim), mlp(d)
        self.matrix_a, self.matrix_b = EnsembleLinear(2, d, d), EnsembleLinear(2, d, d)

    def forward(self, observations, outcomes, intents):
        phi = self.phi(self.encoder(observations))
        psi = self.psi(self.encoder(outcomes))
        tz = self.T(self.psi(self.encoder(intents)))
        return (self.matrix_a(tz * phi) * self.matrix_b(tz * psi)).sum(-1)


class ICVF(nn.Module):
    def __init__(self, cfg: ICVFConfig, obs_shape):
        super().__init__()
        images = is_image_shape(tuple(obs_shape))
        check(images == (cfg.encoder is not None), "encoder",
              f"observations are frames {list(obs_shape)}: set encoder=impala_small" if images
              else f"observations are state vectors {list(obs_shape)}: leave encoder unset")
        self.cfg, self.obs_shape = cfg, tuple(obs_shape)
        self.value = MultilinearValue(cfg, obs_shape)
        self.target_value = copy.deepcopy(self.value).requires_grad_(False)
        self.optimizer = adam(self.value.parameters(), lr=cfg.lr)

    def make_sampler(self, dataset, seed):
        return IntentSampler(dataset, seed, goals=self.cfg.goals, p_samegoal=self.cfg.p_samegoal,
                             discount=self.cfg.discount)

    def loss(self, batch):
        cfg = self.cfg
        obs, next_obs, g, z = batch["observations"], batch["next_observations"], batch["goals"], batch["intents"]
        with torch.no_grad():
            q_gz = batch["rewards"] + cfg.discount * batch["masks"] * self.target_value(next_obs, g, z)
            next_v_zz = self.target_value(next_obs, z, z).min(0).values
            v_zz = self.target_value(obs, z, z).mean(0)
            adv = batch["intent_rewards"] + cfg.discount * batch["intent_masks"] * next_v_zz - v_zz
        v_gz = self.value(obs, g, z)
        loss = expectile_loss(adv, q_gz - v_gz, cfg.expectile).mean(1).sum()
        return loss, {"icvf/loss": loss.detach(), "icvf/v_gz": v_gz.mean().detach(),
                      "icvf/v_zz": v_zz.mean(), "icvf/adv": adv.mean(), "icvf/accept": (adv >= 0).float().mean()}

    def update(self, batch):
        loss, info = self.loss(batch)
        ema_update(self.target_value, self.value, self.cfg.tau)  # towards the pre-step weights, as the release
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return info

    @torch.no_grad()
    def values(self, observations, outcomes, intents):
        """V(s, g, z) averaged over the two heads."""
        return self.value(observations, outcomes, intents).mean(0)

    @torch.no_grad()
    def representations(self):
        """{"phi": Representation, "psi": Representation} of the first head, each with its own copy
        of the encoder: the weights a downstream value network starts from."""
        cfg = self.cfg
        out = {}
        for name in ("phi", "psi"):
            rep = Representation(cfg.encoder, self.obs_shape, cfg.hidden_dims, cfg.layer_norm)
            rep.encoder.load_state_dict(self.value.encoder.state_dict())
            ensemble = [m for m in getattr(self.value, name).net if isinstance(m, (EnsembleLinear, EnsembleLayerNorm))]
            plain = [m for m in rep.mlp.net if isinstance(m, (nn.Linear, nn.LayerNorm))]
            for e, p in zip(ensemble, plain, strict=True):
                if isinstance(e, EnsembleLinear):  # [E, in, out] -> Linear's [out, in]
                    p.weight.copy_(e.weight[0].T)
                    p.bias.copy_(e.bias[0, 0])
                else:
                    p.weight.copy_(e.weight[0])
                    p.bias.copy_(e.bias[0])
            out[name] = rep
        return out


# ---------------------------------------------------------------- the representation file
def representation_tensors(icvf: ICVF):
    """{"phi.<param>": tensor, "psi.<param>": tensor} and the metadata a representation file holds."""
    reps = icvf.representations()
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous() for name, rep in reps.items()
               for k, v in rep.state_dict().items()}
    cfg = icvf.cfg
    meta = {"format": FILE_FORMAT, "version": str(FILE_VERSION), "obs_shape": json.dumps(list(icvf.obs_shape)),
            "hidden_dims": json.dumps(list(cfg.hidden_dims)), "layer_norm": json.dumps(cfg.layer_norm),
            "encoder": json.dumps(cfg.encoder)}
    return tensors, meta
