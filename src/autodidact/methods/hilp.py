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
function linear in phi gives z by least squares; see `autodidact.prompt`. `act(obs, goals)` is
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
from pathlib import Path

import numpy as np
import torch

from autodidact.config import check, check_common, opt
from autodidact.data.sampler import GoalSampler
from autodidact.methods.base import Method
from autodidact.nn import ACTIVATIONS, GCValue, GaussianActor, MLP, adam, awr_weights, ema_update, gaussian_log_prob


@dataclass
class HILPConfig:
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
    value_p_curgoal: float = opt(0.0, "probability the value goal is the current state (the reference never uses it)")
    value_p_trajgoal: float = opt(0.625, "probability the value goal is a future state of the same trajectory")
    value_p_randomgoal: float = opt(0.375, "probability the value goal is a random dataset state")
    value_geom_sample: bool = opt(True, "geometric (p = 1 - discount) rather than uniform future value goals")
    actor_p_curgoal: float = opt(0.0, "unused by HILP: its actor is trained on random skills, not goals")
    actor_p_trajgoal: float = opt(1.0, "unused by HILP")
    actor_p_randomgoal: float = opt(0.0, "unused by HILP")
    actor_geom_sample: bool = opt(False, "unused by HILP")
    gc_negative: bool = opt(True, "phi's value rewards 0 at the goal, -1 elsewhere (True) or 1/0 (False)")

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
    Config = HILPConfig
    prompts = ("goal", "reward")
    # Neither the HILP code (D4RL AntMaze/Kitchen, ExORL) nor OGBench's impls/hyperparameters.sh
    # publishes HILP settings for OGBench datasets, so there is no per-dataset table.
    presets = {}
    # Runs saved before `actor_activation` existed trained a GELU actor.
    legacy_defaults = {"actor_activation": "gelu"}

    def __init__(self, cfg: HILPConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        d, k = self.obs_dim, cfg.skill_dim
        # Two phi networks as one ensemble network: phi(x) is [2, B, skill_dim].
        self.phi_net = MLP(d, cfg.value_hidden_dims, out_dim=k, layer_norm=cfg.layer_norm, ensemble=2)
        self.target_phi_net = copy.deepcopy(self.phi_net).requires_grad_(False)
        self.skill_value = GCValue(d + k, cfg.value_hidden_dims, layer_norm=cfg.layer_norm, ensemble=0)
        self.skill_critic = GCValue(d + k + action_dim, cfg.value_hidden_dims, layer_norm=cfg.layer_norm, ensemble=2)
        self.target_skill_critic = copy.deepcopy(self.skill_critic).requires_grad_(False)
        self.actor = GaussianActor(d + k, action_dim, cfg.actor_hidden_dims, layer_norm=False,
                                   const_std=cfg.const_std, log_std_min=-5.0, activation=cfg.actor_activation)
        # One Adam over everything the summed loss trains; the targets get no gradient in the
        # reference (their Adam update is exactly zero), so they are left out.
        self.opt = adam([*self.phi_net.parameters(), *self.skill_value.parameters(),
                                     *self.skill_critic.parameters(), *self.actor.parameters()], lr=cfg.lr)

    def make_sampler(self, dataset, seed):
        return GoalSampler(dataset, self.cfg, seed=seed, need_actions=True)

    def optimizers(self):
        return {"main": self.opt}

    # ------------------------------------------------------------ representation
    @staticmethod
    def _distance_value(phi_s, phi_g):
        """V = -||phi(s) - phi(g)|| with the reference's 1e-6 floor under the square root."""
        return -torch.sqrt((phi_s - phi_g).pow(2).sum(-1).clamp_min(1e-6))

    def phi(self, observations):
        """The Hilbert representation of the first phi network, [B, skill_dim]."""
        return self.phi_net(self.flat(observations))[0]

    def goal_skills(self, observations, goals):
        """z = normalize(phi(g) - phi(s)): the skill that heads straight for g in phi space."""
        s, g = self.flat(observations), self.flat(goals)
        phis = self.phi_net(torch.cat([s, g]))[0]
        phi_s, phi_g = phis.chunk(2)
        return normalize(phi_g - phi_s)

    @torch.no_grad()
    def values(self, observations, goals):
        """V(s, g) = -||phi(s) - phi(g)|| averaged over the two phi networks (minus the learned
        temporal distance), for inspection and tests."""
        s, g = self.flat(observations), self.flat(goals)
        phi_s, phi_g = self.phi_net(torch.cat([s, g])).chunk(2, dim=1)
        return self._distance_value(phi_s, phi_g).mean(0)

    # ------------------------------------------------------------ losses
    def value_loss(self, batch):
        """phi's goal-conditioned value: GCIVL's expectile TD on V = -||phi(s) - phi(g)||."""
        cfg = self.cfg
        s, s_next, g = (self.flat(batch[k]) for k in ("observations", "next_observations", "value_goals"))
        rewards, masks = batch["rewards"], batch["masks"]
        n = s.shape[0]
        with torch.no_grad():
            target_phi = self.target_phi_net(torch.cat([s_next, s, g]))              # [2, 3B, k]
            phi_next_t, phi_s_t, phi_g_t = target_phi.split(n, dim=1)
            next_v_t = self._distance_value(phi_next_t, phi_g_t)                      # [2, B]
            v_t = self._distance_value(phi_s_t, phi_g_t).mean(0)
            q_per_head = rewards + cfg.discount * masks * next_v_t
            adv = rewards + cfg.discount * masks * next_v_t.min(0).values - v_t
        phi_s, phi_g = self.phi_net(torch.cat([s, g])).split(n, dim=1)
        v = self._distance_value(phi_s, phi_g)                                        # [2, B]
        weight = torch.where(adv >= 0, cfg.expectile, 1.0 - cfg.expectile)
        loss = (weight * (q_per_head - v).pow(2)).mean(1).sum()                       # loss1 + loss2
        v_avg = v.detach().mean(0)
        return loss, {"value/loss": loss.detach(), "value/v_mean": v_avg.mean(), "value/v_max": v_avg.max(),
                      "value/v_min": v_avg.min(), "value/adv_mean": adv.mean(),
                      "value/accept_prob": (adv >= 0).float().mean()}

    def sample_skills(self, n, device):
        """z uniform on the unit sphere: normalized standard normals, from torch's CPU generator
        (checkpointed by the trainer) so resume and device changes draw the same skills."""
        return normalize(torch.randn(n, self.cfg.skill_dim)).to(device)

    def skill_losses(self, batch, skills):
        """IQL + AWR on the intrinsic reward <phi(s') - phi(s), z>: (losses, info)."""
        cfg = self.cfg
        s, s_next, a = self.flat(batch["observations"]), self.flat(batch["next_observations"]), batch["actions"]
        n = s.shape[0]
        with torch.no_grad():
            phi_s, phi_next = self.phi_net(torch.cat([s, s_next]))[0].split(n)
            rewards = ((phi_next - phi_s) * skills).sum(-1)
            q_target = self.target_skill_critic(s, skills, a).min(0).values          # min of [2, B]
            next_v = self.skill_value(s_next, skills)
        # Skill value: expectile regression onto min target Q (the IQL value step).
        v = self.skill_value(s, skills)
        adv_v = q_target - v.detach()
        weight = torch.where(adv_v >= 0, cfg.skill_expectile, 1.0 - cfg.skill_expectile)
        value_loss = (weight * (q_target - v).pow(2)).mean()
        # Skill critic: one-step TD onto r + gamma * V(s', z), no terminal mask.
        q_td = rewards + cfg.skill_discount * next_v
        q = self.skill_critic(s, skills, a)                                           # [2, B]
        critic_loss = (q - q_td).pow(2).sum(0).mean()
        # Actor: AWR with advantage min target Q - V on the dataset action.
        adv = adv_v
        weights = awr_weights(adv, cfg.skill_temperature)
        mean, log_std = self.actor(torch.cat([s, skills], -1))
        log_prob = gaussian_log_prob(mean, log_std, a)
        actor_loss = -(weights * log_prob).mean()
        v_d = v.detach()
        info = {"skill_value/loss": value_loss.detach(), "skill_value/v_mean": v_d.mean(),
                "skill_value/v_max": v_d.max(), "skill_value/v_min": v_d.min(),
                "skill_critic/loss": critic_loss.detach(), "skill_critic/q_mean": q_td.mean(),
                "skill_critic/reward_mean": rewards.mean(), "skill_critic/reward_std": rewards.std(),
                "skill_actor/loss": actor_loss.detach(), "skill_actor/adv": adv.mean(),
                "skill_actor/bc_log_prob": log_prob.detach().mean(),
                "skill_actor/mse": (mean.detach() - a).pow(2).mean(),
                "skill_actor/std": log_std.detach().exp().mean()}
        return {"skill_value": value_loss, "skill_critic": critic_loss, "skill_actor": actor_loss}, info

    def update(self, batch):
        value_loss, info = self.value_loss(batch)
        skills = self.sample_skills(batch["observations"].shape[0], batch["observations"].device)
        losses, skill_info = self.skill_losses(batch, skills)
        info.update(skill_info)
        # Both targets move towards the parameters from before this step's update (the reference
        # computes the new targets from the old network); every target read above is done.
        ema_update(self.target_phi_net, self.phi_net, self.cfg.tau)
        ema_update(self.target_skill_critic, self.skill_critic, self.cfg.tau)
        self.optimize(value_loss + sum(losses.values()), self.opt)
        return info

    # ------------------------------------------------------------ acting
    def act_skill(self, observations, skills, temperature=0.0, generator=None):
        """pi(a | s, z) for skills z (unit vectors, [B, skill_dim] or one [skill_dim] for all)."""
        s = self.flat(observations)
        z = torch.as_tensor(skills, dtype=s.dtype, device=s.device)
        z = z.expand(s.shape[0], -1) if z.dim() == 1 else z
        return self.actor.sample(torch.cat([s, z], -1), temperature=temperature, generator=generator)

    def act(self, observations, goals, temperature=0.0, generator=None):
        """Goal prompting: the skill towards phi(g), recomputed from the current state each call."""
        z = self.goal_skills(observations, goals)
        return self.act_skill(observations, z, temperature=temperature, generator=generator)

    # ------------------------------------------------------------ figures
    def write_figures(self, run_dir, dataset, max_states=4000):
        """figures/phi.png: the learned Hilbert representation of dataset states.

        Left: the states at their positions (the maze x-y for OGBench mazes, else a PCA of the
        observations), coloured by position. Middle: phi of the same states projected on its top
        two principal axes, same colours; a representation that keeps the layout keeps the colours
        in the same order. Right: the learned temporal distance ||phi(s) - phi(g)|| to one state g
        (star), drawn at each state's position; in a maze it grows along corridors, not through walls.
        """
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from autodidact.io import atomic_path, read_json

        run_dir = Path(run_dir)
        env = None
        if (run_dir / "run.json").exists():
            env = read_json(run_dir / "run.json", "run file").get("env")
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(len(dataset), size=min(max_states, len(dataset)), replace=False))
        obs = np.asarray(dataset.observations[idx], dtype=np.float32).reshape(len(idx), -1)
        device = next(self.parameters()).device
        with torch.no_grad():
            phi = self.phi(torch.as_tensor(obs, device=device)).cpu().numpy()
        maze = env is not None and "maze" in env
        if maze or obs.shape[1] == 2:
            pos, pos_label = obs[:, :2], ("x", "y")
        else:
            pos, pos_label = _pca2(obs), ("observation PC 1", "observation PC 2")
        lo, hi = pos.min(0), pos.max(0)
        u = (pos - lo) / np.maximum(hi - lo, 1e-9)
        colors = np.stack([u[:, 0], 0.35 + 0.3 * (1 - u[:, 1]), u[:, 1]], -1).clip(0, 1)  # 2-D colour map
        proj = _pca2(phi)
        # The reference state g: the one nearest a corner of the data (far from most others).
        ref = int(np.argmin(pos.sum(-1)))
        dist = np.linalg.norm(phi - phi[ref], axis=-1)

        fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
        axes[0].scatter(pos[:, 0], pos[:, 1], c=colors, s=4)
        axes[0].set(title="states by position" + (f" ({env})" if env else ""), xlabel=pos_label[0], ylabel=pos_label[1])
        axes[1].scatter(proj[:, 0], proj[:, 1], c=colors, s=4)
        axes[1].set(title=f"phi(s) (d={phi.shape[1]}), top-2 PCA, same colours", xlabel="phi PC 1", ylabel="phi PC 2")
        sc = axes[2].scatter(pos[:, 0], pos[:, 1], c=dist, s=4, cmap="viridis")
        axes[2].scatter(pos[ref, 0], pos[ref, 1], marker="*", s=250, c="red", edgecolors="white")
        axes[2].set(title="learned temporal distance ||phi(s) - phi(g)||", xlabel=pos_label[0], ylabel=pos_label[1])
        fig.colorbar(sc, ax=axes[2])
        for ax in axes:
            ax.set_aspect("equal", adjustable="datalim")
        fig.tight_layout()
        path = run_dir / "figures" / "phi.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
        plt.close(fig)
        return [path]


def _pca2(x):
    """Project rows of x on their top two principal axes (of a 64-d random projection first when
    x is wide, e.g. pixels: distances survive it and the SVD stays cheap)."""
    if x.shape[1] > 256:
        x = x @ np.random.default_rng(0).normal(size=(x.shape[1], 64)).astype(x.dtype)
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    out = x @ vt[:2].T
    return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
