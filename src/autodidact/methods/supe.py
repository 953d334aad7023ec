"""SUPE: an online high-level policy over frozen pretrained skills, learned ExPLORe-style from
prior data pseudo-labeled with skills and optimistic rewards.

Wilcoxson, Li, Frans and Levine 2025, "Leveraging Skills from Unlabeled Prior Data for Efficient
Online Exploration" (reference: rail-berkeley/supe). A pretrained run supplies the skills, a
policy pi(a | s, z) that executes a skill z for `skill_horizon` environment steps: a skill-vae run
(the paper's main variant: z is the latent of an H-step action chunk, and the horizon is the one
the VAE was trained on) or a HILP run (the paper's HILP variant: z a unit vector in phi space).
Online, this method is ExPLORe one level up, its loop the reference's `MetaPolicyActionWrapper`
(finetune.SkillEnv):
- a high-level action is a in (-1, 1)^d (the tanh-squashed actor's output); the skill it runs is
  z = arctanh(a) (VAE) or normalize(arctanh(a)) (HILP), for H env steps or until the episode ends,
  the skill policy sampling its actions (`skill_temperature` 1; evaluation runs their mean);
- its transition is (s_t, a, sum_{i<n} gamma_H^i r_{t+i}, s_{t+n}), n = H or the steps to the
  episode's end, gamma_H = `skill_discount` 0.99 (the reference: 0.99 for HILP skills, its VAE's
  discount for VAE skills; its evaluation sums undiscounted, as the evaluator here does). The TD
  target discounts one high-level step by `discount` (0.99), not by gamma^H, as the reference's
  SAC learner;
- with `interpolate_skills` (the reference's `--interpolate`, off by default in its HILP and
  visual scripts and not passed by its README's commands) the online stream's other H-step windows are stored too: every whole
  window inside an episode that ends inside a skill but not at the episode's end, (s_{e-H}, a,
  its discounted reward, mask 1, s_e), a = tanh of the skill read off it as off a prior window,
  and the RND predictor takes a step on each;
- the prior data becomes high-level transitions too: every window of H steps inside an episode,
  labeled with the skill read off it, the VAE posterior's mean E q(z | s_t..s_{t+H-1},
  a_t..a_{t+H-1}) or HILP's normalize(phi(s_{t+H}) - phi(s_t)), stored as a = tanh(z), which
  `skill_of_action` maps back to z (the reference converts with a `TanhConverter` whose code
  was not available to check), and with ExPLORe's
  optimistic reward and mask (reward model plus RND on (s, a), trained on the online high-level
  transitions);
- each high-level step makes `updates_per_step` RLPD updates of `utd` critic steps each.

Published settings (the reference's HILP script): skill horizon 4, 4 updates of UTD 20 per
high-level step (20 critic updates per environment step), RLPD's 10 critics with the min over 2
(its `rlpd_config`), entropy backup on, start_training 5000 environment steps. CPU defaults:
2 critics and UTD 2 per update (2 critic updates per environment step, as `rlpd`'s defaults).
Departures: the reward and mask models start at 2 x start_training, as the reference's antmaze
runs (its other environments start them at start_training); evaluation runs the skills' mean
actions (the reference's evaluation wrapper samples them); a skill cut short by the episode's end
is rewarded with its own steps (the reference's wrapper there returns the sum over the stream's
last H steps, reaching back into the previous skill); re-labeled windows are stored as each skill
ends (the reference stores them in batches every 100 env steps); before start_training the
high-level actions are uniform for either kind of skill (the reference's VAE scripts draw them
from the VAE's state prior p(z | s), its HILP script uniformly); the high-level actor is RLPD's
tanh-Gaussian with its entropy bonus, without SPiRL's KL towards the VAE's state prior (whether
the reference keeps it could not be checked).
"""

from dataclasses import dataclass
from typing import ClassVar

import torch

from autodidact.core.config import check, opt
from autodidact.methods.explore import ExPLORe, ExPLOReConfig
from autodidact.methods.hilp import normalize

_TANH_EDGE = 1.0 - 1e-6  # arctanh of a value this close to +-1 is finite


@dataclass
class SUPEConfig(ExPLOReConfig):
    num_min_critics: int = opt(2, "random target critics whose min forms the TD target (SUPE: 2)")
    backup_entropy: bool = opt(True, "subtract alpha * log pi(a'|s') in the TD target (SUPE: True)")
    skill_horizon: int = opt(4, "environment steps each high-level skill runs for (published 4)")
    updates_per_step: int = opt(4, "RLPD updates (of `utd` critic steps each) per high-level step (published 4)")
    skill_discount: float = opt(0.99, "a high-level reward is sum_i skill_discount^i r_{t+i} over its skill's "
                                      "steps (SUPE: 0.99; 1 sums them undiscounted)")
    skill_temperature: float = opt(1.0, "the skill policy samples its actions online at this temperature (SUPE: 1; "
                                        "0 acts with its mean); evaluation acts with the mean")
    interpolate_skills: bool = opt(False, "also store every H-step window of the online stream that ends inside a "
                                          "skill, labeled with the skill read off it (the reference's --interpolate, "
                                          "off in its published commands)")

    def __post_init__(self):
        super().__post_init__()
        check(self.skill_horizon >= 1, "skill_horizon", f"must be >= 1, got {self.skill_horizon}")
        check(self.updates_per_step >= 1, "updates_per_step", f"must be >= 1, got {self.updates_per_step}")
        check(0.0 <= self.skill_discount <= 1.0, "skill_discount", f"must be in [0, 1], got {self.skill_discount}")
        check(self.skill_temperature >= 0, "skill_temperature", f"must be >= 0, got {self.skill_temperature}")


def skill_of_action(actions, unit=True):
    """The skill a high-level action in (-1, 1)^d stands for: arctanh(a), normalized to a unit
    vector for HILP's skills (`unit`)."""
    z = torch.atanh(actions.clamp(-_TANH_EDGE, _TANH_EDGE))
    return normalize(z) if unit else z


class SUPE(ExPLORe):
    name: ClassVar[str] = "supe"
    summary: ClassVar[str] = ("high-level RLPD over frozen skill-vae or HILP skills, prior data labeled with "
                              "skills and optimism")
    paper: ClassVar[str] = "Wilcoxson et al. 2025 (SUPE)"
    reference: ClassVar[str] = "rail-berkeley/supe"
    Config: ClassVar[type] = SUPEConfig
    needs_skills: ClassVar[bool] = True
    PUBLISHED: ClassVar[dict] = {**ExPLORe.PUBLISHED, "num_min_critics": 2, "backup_entropy": True,
                                 "skill_horizon": 4, "updates_per_step": 4, "skill_discount": 0.99,
                                 "skill_temperature": 1.0, "interpolate_skills": False}
    # Runs saved before these fields summed a skill's rewards undiscounted and ran its mean actions.
    legacy_defaults: ClassVar[dict] = {"skill_discount": 1.0, "skill_temperature": 0.0}

    def __init__(self, cfg: SUPEConfig, obs_dim: int, action_dim: int, skills=None):
        """`action_dim` is the skill dimension; `skills` the frozen skill-vae or HILP method (not
        part of this module's state: the run names the run it loads it from)."""
        super().__init__(cfg, obs_dim, action_dim)
        object.__setattr__(self, "skills", skills)

    def batches_per_step(self):
        return self.cfg.utd * self.cfg.updates_per_step

    def update(self, batch, steps_done=0):
        size = self.cfg.utd * self.cfg.batch_size
        sums = {}
        for i in range(self.cfg.updates_per_step):
            info = super().update({k: v[i * size:(i + 1) * size] for k, v in batch.items()}, steps_done)
            for k, v in info.items():
                sums[k] = sums.get(k, 0.0) + v / self.cfg.updates_per_step
        return sums

    @property
    def vae_skills(self):
        """Whether the skills are a skill-vae run's latents (else HILP's unit skills)."""
        return self.skills.name == "skill-vae"

    @torch.no_grad()
    def label_windows(self, observations, actions):
        """The skill of each prior window (observations [B, H+1, ...], actions [B, H, ...]): HILP's
        normalize(phi(s_{t+H}) - phi(s_t)), or the mean of the VAE's posterior q(z | window)."""
        if self.vae_skills:
            return self.skills.encode_windows(observations[:, :-1], actions)
        return normalize(self.skills.phi(observations[:, -1]) - self.skills.phi(observations[:, 0]))

    @torch.no_grad()
    def label_prior(self, prior):
        """Skill labels a = tanh(z) of the windows' skills z, then ExPLORe's rewards and masks."""
        prior["actions"] = torch.tanh(prior.pop("skills"))
        return super().label_prior(prior)

    @torch.no_grad()
    def label_online_windows(self, observations, actions):
        """High-level actions a = tanh(z) for windows of the online stream (observations [B, H+1, ...],
        environment actions [B, H, ...]): their skills read off as the prior windows' are."""
        return torch.tanh(self.label_windows(observations, actions))

    @torch.no_grad()
    def act_low(self, observations, actions, temperature=0.0, generator=None):
        """The environment actions of the skills that high-level `actions` stand for (their mean at
        temperature 0, else samples)."""
        z = skill_of_action(actions, unit=not self.vae_skills)
        return self.skills.act_skill(observations, z, temperature=temperature, generator=generator)
