"""SUPE with HILP skills: an online high-level policy over frozen pretrained skills, learned
ExPLORe-style from prior data pseudo-labeled with skills and optimistic rewards.

Wilcoxson, Li, Frans and Levine 2025, "Leveraging Skills from Unlabeled Prior Data for Efficient
Online Exploration" (reference: rail-berkeley/supe, its HILP-skill variant). A pretrained HILP run
supplies the skills: its policy pi(a | s, z) executes a skill z (a unit vector in phi space) for
`skill_horizon` environment steps. Online, this method is ExPLORe one level up:
- a high-level action is a in (-1, 1)^d (the tanh-squashed actor's output); the skill it runs is
  z = normalize(arctanh(a)), and its transition (s_t, a, sum of the H rewards, s_{t+H});
- the prior data becomes high-level transitions too: every window of H steps inside an episode,
  labeled with the skill that HILP reads off it, z = normalize(phi(s_{t+H}) - phi(s_t)), stored as
  a = tanh(z), which `skill_of_action` maps back to z (the reference converts with a "tanh
  converter" whose code was not available to check), and with ExPLORe's optimistic reward and mask
  (reward model plus RND on (s, a), trained on the online high-level transitions).
- each high-level step makes `updates_per_step` RLPD updates of `utd` critic steps each.

Published settings (the reference's HILP script): skill horizon 4, 4 updates of UTD 20 per
high-level step (20 critic updates per environment step), RLPD's 10 critics with the min over 2
(its `rlpd_config`), entropy backup on, start_training 5000 environment steps. CPU defaults:
2 critics and UTD 2 per update (2 critic updates per environment step, as `rlpd`'s defaults).
Departures: the reward and mask models start at 2 x start_training, as the reference's antmaze
runs (its other environments start them at start_training); the H rewards of a high-level step
are summed undiscounted; the low-level HILP policy acts deterministically (its mean).
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

    def __post_init__(self):
        super().__post_init__()
        check(self.skill_horizon >= 1, "skill_horizon", f"must be >= 1, got {self.skill_horizon}")
        check(self.updates_per_step >= 1, "updates_per_step", f"must be >= 1, got {self.updates_per_step}")


def skill_of_action(actions):
    """The unit skill a high-level action in (-1, 1)^d stands for: normalize(arctanh(a))."""
    return normalize(torch.atanh(actions.clamp(-_TANH_EDGE, _TANH_EDGE)))


class SUPE(ExPLORe):
    name: ClassVar[str] = "supe"
    summary: ClassVar[str] = "high-level RLPD over frozen HILP skills, prior data labeled with skills and optimism"
    paper: ClassVar[str] = "Wilcoxson et al. 2025 (SUPE)"
    reference: ClassVar[str] = "rail-berkeley/supe"
    Config: ClassVar[type] = SUPEConfig
    needs_skills: ClassVar[bool] = True
    PUBLISHED: ClassVar[dict] = {**ExPLORe.PUBLISHED, "num_min_critics": 2, "backup_entropy": True,
                                 "skill_horizon": 4, "updates_per_step": 4}

    def __init__(self, cfg: SUPEConfig, obs_dim: int, action_dim: int, skills=None):
        """`action_dim` is the skill dimension; `skills` the frozen HILP method (not part of this
        module's state: the run names the HILP run it loads it from)."""
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

    @torch.no_grad()
    def skill_features(self, observations):
        """phi(s) of the skills' HILP run, [B, skill_dim]: the prior data's skill labels come from it."""
        return self.skills.phi(observations)

    @torch.no_grad()
    def label_prior(self, prior):
        """Skill labels a = tanh(normalize(phi(s_{t+H}) - phi(s_t))), then ExPLORe's rewards and masks."""
        prior["actions"] = torch.tanh(normalize(prior.pop("next_features") - prior.pop("features")))
        return super().label_prior(prior)

    @torch.no_grad()
    def act_low(self, observations, actions):
        """The environment actions of the skills that high-level `actions` stand for."""
        return self.skills.act_skill(observations, skill_of_action(actions), temperature=0.0)
