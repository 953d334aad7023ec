"""CRL: contrastive RL (Eysenbach et al., 2022).

The critic is a classifier f(s, a, g) = phi(s, a) . psi(g) / sqrt(d) trained with binary NCE to
tell the future state actually reached after (s, a) (geometric offsets, so the positive is drawn
from the discounted state occupancy) from the futures of the other transitions in the batch; its
optimum is log of the occupancy ratio, i.e. a Q-function up to a goal-only term. The actor is
DDPG+BC on that critic (OGBench's default), or AWR with a second contrastive V(s, g).
Defaults follow OGBench's `impls/agents/crl.py` and its `GCBilinearValue`.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autodidact.core.config import check, check_common, opt
from autodidact.data.sampler import GoalConfig
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import (MLP, GaussianActor, actor_info, awr_loss, ddpgbc_loss, frozen, gaussian_log_prob,
                           policy_actions)


@dataclass
class CRLConfig(ObservationConfig):
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over critic, value and actor)")
    batch_size: int = opt(1024, "transitions per gradient step; each row's negatives are the other rows")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "actor MLP hidden layer widths")
    value_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "phi and psi MLP hidden layer widths")
    latent_dim: int = opt(512, "width of phi(s, a) and psi(g)")
    layer_norm: bool = opt(True, "LayerNorm in the phi and psi MLPs (the actor never has it)")
    ensemble: int = opt(2, "critic ensemble size (the reference's 2); Q = min over it")
    logsumexp_coef: float = opt(0.0, "coef * logsumexp(row logits)^2 penalty of the original CRL code; 0 in OGBench")
    discount: float = opt(0.99, "discount: positives are future states with geometric offsets, p = 1 - discount")
    actor_loss: str = opt("ddpgbc", "'ddpgbc' (through the critic) or 'awr' (adds a contrastive V for advantages)")
    alpha: float = opt(0.1, "BC coefficient in DDPG+BC, or inverse temperature in AWR")
    const_std: bool = opt(True, "fix the policy std at 1; with False DDPG+BC uses a reparameterised sample")
    value_goals: GoalConfig = opt(GoalConfig(p_trajgoal=1.0, geom_sample=True),
                                  "how the critic's positive goals are drawn (the discounted future occupancy)")
    actor_goals: GoalConfig = opt(GoalConfig(p_trajgoal=1.0), "how the actor's goals are drawn")

    def __post_init__(self):
        check_common(self)
        check(self.batch_size >= 2, "batch_size", f"must be >= 2 (negatives come from the batch), got {self.batch_size}")
        check(self.latent_dim >= 1, "latent_dim", f"must be >= 1, got {self.latent_dim}")
        check(self.ensemble >= 1, "ensemble", f"must be >= 1, got {self.ensemble}")
        check(self.logsumexp_coef >= 0, "logsumexp_coef", f"must be >= 0, got {self.logsumexp_coef}")


class Bilinear(torch.nn.Module):
    """phi([enc_s(s); a]) . psi(enc_g(g)) / sqrt(d) with `ensemble` independent copies of both
    towers over shared encoders (the reference's GCBilinearValue). Towers return [E, B, d];
    scores [E, B]."""

    def __init__(self, state_encoder, goal_encoder, action_dim, hidden_dims, latent_dim, layer_norm, ensemble):
        super().__init__()
        self.state_encoder, self.goal_encoder = state_encoder, goal_encoder
        self.phi = MLP(state_encoder.out_dim + action_dim, hidden_dims, out_dim=latent_dim, layer_norm=layer_norm,
                       ensemble=ensemble)
        self.psi = MLP(goal_encoder.out_dim, hidden_dims, out_dim=latent_dim, layer_norm=layer_norm, ensemble=ensemble)
        self.scale = 1.0 / math.sqrt(latent_dim)

    def towers(self, observations, goals, actions=None):
        """(phi, psi), each [E, B, d]."""
        s = self.state_encoder(observations)
        return self.phi(s if actions is None else torch.cat([s, actions], -1)), self.psi(self.goal_encoder(goals))

    def forward(self, observations, goals, actions=None):
        phi, psi = self.towers(observations, goals, actions)
        return (phi * psi).sum(-1) * self.scale


class CRL(Method):
    name = "crl"
    summary = "contrastive RL: binary-NCE critic phi(s,a).psi(g) over in-batch negatives, DDPG+BC actor (OGBench CRL)"
    paper = "Eysenbach et al. 2022"
    reference = "OGBench impls/agents/crl.py"
    Config = CRLConfig

    def __init__(self, cfg: CRLConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.critic = Bilinear(self.make_encoder(), self.make_encoder(), action_dim, cfg.value_hidden_dims,
                               cfg.latent_dim, cfg.layer_norm, cfg.ensemble)
        if cfg.actor_loss == "awr":
            # AWR needs V(s, g) for advantages: one more contrastive tower pair, not ensembled (as the reference).
            self.value_net = Bilinear(self.make_encoder(), self.make_encoder(), 0, cfg.value_hidden_dims,
                                      cfg.latent_dim, cfg.layer_norm, 1)
        self.actor_encoder = self.gc_encoder(concat=True)
        self.actor = GaussianActor(self.actor_encoder.out_dim, action_dim, cfg.actor_hidden_dims, layer_norm=False,
                                   const_std=cfg.const_std)
        # One optimizer and one backward over the summed losses, as the reference's single apply_loss_fn.
        self.optimizer = self.make_optimizer(self.parameters())

    # ------------------------------------------------------------ losses
    def contrastive_loss(self, phi, psi, prefix):
        """Binary NCE over the batch: row i's positive is goal i, the other B - 1 goals are its
        negatives. phi, psi: [E, B, d]."""
        e, b, d = phi.shape
        logits = torch.bmm(phi, psi.transpose(1, 2)) / math.sqrt(d)  # [E, B, B]
        positives = logits.diagonal(dim1=1, dim2=2)                   # [E, B]
        # sigmoid BCE with identity labels = softplus(logits) - logits * I, without building I.
        loss = F.softplus(logits).mean() - positives.sum() / (e * b * b)
        if self.cfg.logsumexp_coef:
            loss = loss + self.cfg.logsumexp_coef * torch.logsumexp(logits, dim=2).pow(2).mean()
        with torch.no_grad():
            v = positives.exp()
            mean_logits = logits.mean(0)
            pos = positives.mean(0)
            n_pos, n_all = b, b * b
            correct = mean_logits.argmax(1) == torch.arange(b, device=logits.device)
            # (logits > 0) == I: positives above 0 plus negatives at or below 0.
            above = (mean_logits > 0).sum() - (pos > 0).sum()
            binary_accuracy = ((pos > 0).sum() + (n_all - n_pos - above)) / n_all
            info = {f"{prefix}/loss": loss.detach(), f"{prefix}/v_mean": v.mean(), f"{prefix}/v_max": v.max(),
                    f"{prefix}/v_min": v.min(), f"{prefix}/binary_accuracy": binary_accuracy,
                    f"{prefix}/categorical_accuracy": correct.float().mean(),
                    f"{prefix}/logits_pos": pos.mean(),
                    f"{prefix}/logits_neg": (mean_logits.sum() - pos.sum()) / (n_all - n_pos),
                    f"{prefix}/logits": mean_logits.mean()}
        return loss, info

    def loss(self, batch):
        cfg = self.cfg
        obs, actions = batch["observations"], batch["actions"]
        value_goals, actor_goals = batch["value_goals"], batch["actor_goals"]
        s = self.critic.state_encoder(obs)
        phi = self.critic.phi(torch.cat([s, actions], -1))
        psi = self.critic.psi(self.critic.goal_encoder(value_goals))
        critic_loss, info = self.contrastive_loss(phi, psi, "critic")
        total = critic_loss
        if cfg.actor_loss == "awr":
            value_loss, value_info = self.contrastive_loss(*self.value_net.towers(obs, value_goals), "value")
            info.update(value_info)
            total = total + value_loss

        with torch.no_grad():
            psi_actor = self.critic.psi(self.critic.goal_encoder(actor_goals))  # the actor treats the critic as fixed
        mean, log_std = self.actor(self.actor_encoder(obs, actor_goals))
        log_prob = gaussian_log_prob(mean, log_std, actions)
        if cfg.actor_loss == "ddpgbc":
            # Q through the critic's phi with its weights as constants: gradients reach the actions.
            q_actions = policy_actions(mean, log_std, cfg.const_std)
            q = (frozen(self.critic.phi, torch.cat([s.detach(), q_actions], -1)) * psi_actor).sum(-1).amin(0) * self.critic.scale
            actor_loss, extra = ddpgbc_loss(q, log_prob, cfg.alpha)
        else:
            with torch.no_grad():
                q = ((phi.detach() * psi_actor).sum(-1) * self.critic.scale).amin(0)
                adv = q - self.value_net(obs, actor_goals)[0]
            actor_loss, extra = awr_loss(adv, log_prob, cfg.alpha), {"actor/adv": adv.mean()}
        info.update({"actor/loss": actor_loss.detach(), **extra, **actor_info("actor", mean, log_std, log_prob, actions)})
        return total + actor_loss, info

    def q_value(self, observations, goals, actions):
        """min over the ensemble of phi(s, a) . psi(g) / sqrt(d): [B]."""
        return self.critic(observations, goals, actions).amin(0)

    def act(self, observations, goals, temperature=0.0, generator=None):
        x = self.actor_encoder(observations, goals)
        return self.actor.sample(x, temperature=temperature, generator=generator)
