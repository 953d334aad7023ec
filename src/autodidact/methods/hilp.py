"""HILP: foundation policies with Hilbert representations (goal-conditioned variant).

Park, Kreiman and Levine (2024). Two things are learned from reward-free data:

1. A Hilbert representation phi: S -> R^d whose distances are temporal distances. It is trained
   as a goal-conditioned value V(s, g) = -||phi(s) - phi(g)|| with IQL's expectile regression
   (reward 0 at the goal, -1 elsewhere, so -V counts steps), two phi networks with Polyak targets
   as GCIVL's two value heads.
2. A latent-skill policy pi(a | s, z), z on the unit sphere, trained by offline RL on the
   intrinsic reward r(s, z, s') = <phi(s') - phi(s), z>: moving along direction z in phi space.
   IQL (expectile V(s, z), twin Q(s, z, a) with Polyak targets) and AWR extract it.

Prompting needs no further training: a goal g gives z = normalize(phi(g) - phi(s)) recomputed
every step (the reward <phi(s') - phi(s), z> then is the one-step progress towards g); a reward
function linear in phi gives z by least squares; see `autodidact.workflows.prompt`. `act(obs, goals)` is
goal prompting, so the standard evaluator and `autodidact eval` work unchanged.

Defaults are the public code's goal-conditioned agent (seohongpark/HILP, `hilp_gcrl/main.py` and
`src/agents/hilp.py`): skill (latent) dim 32, expectile 0.95, skill expectile 0.9, AWR temperature
10, discounts 0.99, tau 0.005, 3x512 LayerNorm GELU MLPs for phi, V and Q, a 3x512 ReLU actor
(jaxrl_m's Policy default; `actor_activation=gelu` gives OGBench's) without LayerNorm with a learned
state-independent std (log std >= -5), one Adam (3e-4) over all of it,
batch 1024, value goals 0.625 future-in-trajectory (geometric offsets) / 0.375 random, never the
current state.

Faithful details of the reference kept here:
- phi's value loss weights each head's squared TD error by the expectile of one shared advantage
  computed from the *target* networks (min over heads at s', mean at s), as GCIVL does.
- V(s, g) = -sqrt(max(||phi(s) - phi(g)||^2, 1e-6)): the floor keeps the gradient of the norm
  finite at s = g.
- Skills, rewards and prompts use the first phi network (`get_phi` returns head 0), computed with
  the online parameters under stop-gradient.
- The skill critic's target is r + gamma * V(s', z) with no terminal mask (skills never end), and
  V is the online skill value read without gradient; the skill value regresses onto the min of the
  *target* critics, and the AWR advantage is min target Q - V.
- Both Polyak targets move towards the parameters from before this step's gradient update.

Departures:
- The reference builds a `skill_target_value` network it never reads or updates; it is left out.
- Skills are drawn from torch's CPU generator (the trainer checkpoints it), so a resumed run draws
  exactly the skills an uninterrupted one would, on any device.
"""

import copy
from dataclasses import dataclass

import torch

from autodidact.core.config import check, check_common, opt
from autodidact.data.sampler import GoalConfig
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import (ACTIVATIONS, MLP, GCValue, GaussianActor, actor_info, awr_loss, expectile_loss,
                           expectile_td_loss, gaussian_log_prob, value_info)


@dataclass
class HILPConfig(ObservationConfig):
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over phi, skill value, skill critic and actor)")
    batch_size: int = opt(1024, "transitions per gradient step")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "skill-policy MLP hidden layer widths")
    value_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "hidden widths of phi, skill value and skill critic")
    layer_norm: bool = opt(True, "LayerNorm in phi, skill value and critic (never the actor, as the reference)")
    skill_dim: int = opt(32, "d: dimension of the Hilbert representation phi(s) and of the skills z")
    discount: float = opt(0.99, "discount of the goal-reaching value that trains phi")
    tau: float = opt(0.005, "Polyak rate of the target phi and target skill critic")
    expectile: float = opt(0.95, "IQL expectile of phi's goal-conditioned value regression")
    skill_expectile: float = opt(0.9, "IQL expectile of the skill value V(s, z) against min target Q(s, z, a)")
    skill_temperature: float = opt(10.0, "skill-policy AWR inverse temperature: weights exp(temp * adv), max 100")
    skill_discount: float = opt(0.99, "discount of the intrinsic skill return")
    const_std: bool = opt(False, "fix the policy std at 1 (the reference learns a state-independent log std)")
    actor_activation: str = opt("relu", "skill-policy hidden activation: relu (the reference's jaxrl_m Policy) or gelu")
    gc_negative: bool = opt(True, "phi's value rewards 0 at the goal, -1 elsewhere (True) or 1/0 (False)")
    value_goals: GoalConfig = opt(GoalConfig(p_trajgoal=0.625, p_randomgoal=0.375, geom_sample=True),
                                  "how the goals of phi's value are drawn (the reference never uses the current state)")

    def __post_init__(self):
        check_common(self)
        check(self.skill_dim >= 1, "skill_dim", f"must be >= 1, got {self.skill_dim}")
        check(0.0 < self.skill_expectile < 1.0, "skill_expectile", f"must be in (0, 1), got {self.skill_expectile}")
        check(self.skill_temperature >= 0, "skill_temperature", f"must be >= 0, got {self.skill_temperature}")
        check(0.0 <= self.skill_discount < 1.0, "skill_discount", f"must be in [0, 1), got {self.skill_discount}")
        check(self.actor_activation in ACTIVATIONS, "actor_activation",
              f"must be one of {', '.join(ACTIVATIONS)}, got '{self.actor_activation}'")


def normalize(x, eps=1e-6):
    """Unit vectors along the last axis; a (near-)zero vector stays near zero instead of NaN (the
    reference divides by the raw norm, undefined when the agent sits exactly on its goal)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)


class HILP(Method):
    name = "hilp"
    summary = "Hilbert foundation policy: temporal-distance phi, latent skills z; prompt by goal or reward (HILP)"
    paper = "Park, Kreiman and Levine 2024"
    reference = "seohongpark/HILP hilp_gcrl"
    Config = HILPConfig
    prompts = ("goal", "reward")
    # Runs saved before `actor_activation` existed trained a GELU actor.
    legacy_defaults = {"actor_activation": "gelu"}

    def __init__(self, cfg: HILPConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        k = cfg.skill_dim
        # Two phi networks as one ensemble network over one encoder: phi(x) is [2, B, skill_dim].
        self.phi_encoder = self.make_encoder()
        self.phi_net = MLP(self.phi_encoder.out_dim, cfg.value_hidden_dims, out_dim=k, layer_norm=cfg.layer_norm,
                           ensemble=2)
        self.target_phi_encoder = copy.deepcopy(self.phi_encoder).requires_grad_(False)
        self.target_phi_net = copy.deepcopy(self.phi_net).requires_grad_(False)
        # The skill networks read [enc(s); z] (and a): each its own state encoder on frames.
        self.skill_value = GCValue(self.gc_encoder(state=True, encoded_goal_dim=k), cfg.value_hidden_dims,
                                   layer_norm=cfg.layer_norm, ensemble=0)
        self.skill_critic = GCValue(self.gc_encoder(state=True, encoded_goal_dim=k), cfg.value_hidden_dims,
                                    extra_dim=action_dim, layer_norm=cfg.layer_norm, ensemble=2)
        self.target_skill_critic = copy.deepcopy(self.skill_critic).requires_grad_(False)
        self.actor_encoder = self.gc_encoder(state=True, encoded_goal_dim=k)
        self.actor = GaussianActor(self.actor_encoder.out_dim, action_dim, cfg.actor_hidden_dims, layer_norm=False,
                                   const_std=cfg.const_std, log_std_min=-5.0, activation=cfg.actor_activation)
        # One Adam over everything the summed loss trains; the targets get no gradient in the
        # reference (their Adam update is exactly zero), so they are left out.
        self.optimizer = self.make_optimizer([
            *self.phi_encoder.parameters(), *self.phi_net.parameters(), *self.skill_value.parameters(),
            *self.skill_critic.parameters(), *self.actor_encoder.parameters(), *self.actor.parameters()])

    def targets(self):
        pairs = [(self.target_phi_net, self.phi_net), (self.target_skill_critic, self.skill_critic)]
        if any(True for _ in self.phi_encoder.parameters()):  # a frame or MLP encoder has weights to average
            pairs.insert(0, (self.target_phi_encoder, self.phi_encoder))
        return pairs

    # ------------------------------------------------------------ representation
    @staticmethod
    def _distance_value(phi_s, phi_g):
        """V = -||phi(s) - phi(g)|| with the reference's 1e-6 floor under the square root."""
        return -torch.sqrt((phi_s - phi_g).pow(2).sum(-1).clamp_min(1e-6))

    def phis(self, observations, target=False):
        """Both phi networks' representations, [2, B, skill_dim]."""
        if target:
            return self.target_phi_net(self.target_phi_encoder(observations))
        return self.phi_net(self.phi_encoder(observations))

    def phi(self, observations):
        """The Hilbert representation of the first phi network, [B, skill_dim]."""
        return self.phis(observations)[0]

    def goal_skills(self, observations, goals):
        """z = normalize(phi(g) - phi(s)): the skill that heads straight for g in phi space."""
        phis = self.phi(torch.cat([observations, goals]))
        # Slices, not chunk(2): torch.export (ONNX export) then keeps the batch size symbolic.
        phi_s, phi_g = phis[: observations.shape[0]], phis[observations.shape[0]:]
        return normalize(phi_g - phi_s)

    @torch.no_grad()
    def values(self, observations, goals):
        """V(s, g) = -||phi(s) - phi(g)|| averaged over the two phi networks (minus the learned
        temporal distance), for inspection and tests."""
        phi_s, phi_g = self.phis(torch.cat([observations, goals])).chunk(2, dim=1)
        return self._distance_value(phi_s, phi_g).mean(0)

    # ------------------------------------------------------------ losses
    def _value_of(self, target):
        """V(s, g) = -||phi(s) - phi(g)|| for both phi networks (online or target): [2, B]."""
        def value(observations, goals):
            phi_s, phi_g = self.phis(torch.cat([observations, goals]), target).chunk(2, dim=1)
            return self._distance_value(phi_s, phi_g)
        return value

    def sample_skills(self, n, device):
        """z uniform on the unit sphere: normalized standard normals, from torch's CPU generator
        (checkpointed by the trainer) so resume and device changes draw the same skills."""
        return normalize(torch.randn(n, self.cfg.skill_dim)).to(device)

    def loss(self, batch):
        """phi's goal-conditioned value (GCIVL's expectile TD on V = -||phi(s) - phi(g)||), then IQL +
        AWR for the skill policy on the intrinsic reward <phi(s') - phi(s), z> of random skills z."""
        cfg = self.cfg
        s, s_next, a = batch["observations"], batch["next_observations"], batch["actions"]
        goals = batch["value_goals"]
        n = s.shape[0]
        value_loss, v = expectile_td_loss(self._value_of(target=False), self._value_of(target=True), s,
                                          s_next, goals, goals, batch["rewards"], batch["masks"], cfg.discount,
                                          cfg.expectile)

        skills = self.sample_skills(n, s.device)
        with torch.no_grad():
            phi_s, phi_next = self.phi(torch.cat([s, s_next])).split(n)
            rewards = ((phi_next - phi_s) * skills).sum(-1)
            q_target = self.target_skill_critic(s, skills, a).min(0).values          # min of [2, B]
            next_v = self.skill_value(s_next, skills)
        # Skill value: expectile regression onto min target Q (the IQL value step).
        skill_v = self.skill_value(s, skills)
        adv = q_target - skill_v.detach()
        skill_value_loss = expectile_loss(adv, q_target - skill_v, cfg.skill_expectile).mean()
        # Skill critic: one-step TD onto r + gamma * V(s', z), no terminal mask (skills never end).
        q_td = rewards + cfg.skill_discount * next_v
        critic_loss = (self.skill_critic(s, skills, a) - q_td).pow(2).sum(0).mean()
        # Actor: AWR with advantage min target Q - V on the dataset action.
        mean, log_std = self.actor(self.actor_encoder(s, skills))
        log_prob = gaussian_log_prob(mean, log_std, a)
        actor_loss = awr_loss(adv, log_prob, cfg.skill_temperature)
        info = {"value/loss": value_loss.detach(), **value_info("value", v),
                "skill_value/loss": skill_value_loss.detach(), **value_info("skill_value", skill_v),
                "skill_critic/loss": critic_loss.detach(), "skill_critic/q_mean": q_td.mean(),
                "skill_critic/reward_mean": rewards.mean(), "skill_critic/reward_std": rewards.std(),
                "skill_actor/loss": actor_loss.detach(), "skill_actor/adv": adv.mean(),
                **actor_info("skill_actor", mean, log_std, log_prob, a)}
        return value_loss + skill_value_loss + critic_loss + actor_loss, info

    # ------------------------------------------------------------ acting
    def act_skill(self, observations, skills, temperature=0.0, generator=None):
        """pi(a | s, z) for skills z (unit vectors, [B, skill_dim] or one [skill_dim] for all)."""
        z = torch.as_tensor(skills, dtype=torch.float32, device=observations.device)
        z = z.expand(observations.shape[0], -1) if z.dim() == 1 else z
        return self.actor.sample(self.actor_encoder(observations, z), temperature=temperature, generator=generator)

    def act(self, observations, goals, temperature=0.0, generator=None):
        """Goal prompting: the skill towards phi(g), recomputed from the current state each call."""
        z = self.goal_skills(observations, goals)
        return self.act_skill(observations, z, temperature=temperature, generator=generator)
