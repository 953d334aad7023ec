"""ExPLORe: RLPD whose reward-free prior data is labeled with an optimistic reward.

Li et al. 2023, "Accelerating Exploration with Unlabeled Prior Data" (reference:
facebookresearch/ExPLORe, `train_finetuning.py`, `rlpd/agents/rm.py`, `rlpd/agents/rnd.py`, the
'ours' line of `run_antmaze.sh`). Each time a prior batch is used it is relabeled afresh:
    reward(s, a) = r_hat(s, a) + rnd_coeff * ||f(s, a) - f_random(s, a)||^2 / feature_dim
    mask(s, a)   = sigmoid(m_hat(s, a))
where r_hat regresses the online rewards (squared error), m_hat classifies the online masks
(cross-entropy), and f is an RND predictor trained towards a fixed random network f_random on the
online transitions, so states the agent has not visited yet keep a large bonus. The reward and
mask models take `utd` steps of `batch_size` online transitions per environment step, the RND
predictor one step on each new transition, both from 2 * start_training environment steps on, as
the reference. Before that the models are their random initialisation.

Published settings (antmaze, the paper's main setting): RLPD's with backup_entropy False and the
min over 1 random target critic; reward model and RND 3x256, RND features 256, coefficient 1.
The CPU defaults shrink only what RLPD's do (critics, UTD); `--published` restores them.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from autodidact.core.config import check, opt
from autodidact.methods.rlpd import RLPD, RLPDConfig, _step
from autodidact.nn import MLP, adam


@dataclass
class ExPLOReConfig(RLPDConfig):
    num_min_critics: int = opt(1, "random target critics whose min forms the TD target (ExPLORe: 1)")
    backup_entropy: bool = opt(False, "subtract alpha * log pi(a'|s') in the TD target (ExPLORe: False)")
    model_hidden_dims: tuple[int, ...] = opt((256, 256, 256), "reward, mask and RND MLP hidden widths (published 3x256)")
    rnd_feature_dim: int = opt(256, "RND output features (published 256)")
    rnd_coeff: float = opt(1.0, "scale of the RND novelty bonus in the prior data's reward (published 1)")

    def __post_init__(self):
        super().__post_init__()
        check(self.rnd_feature_dim >= 1, "rnd_feature_dim", f"must be >= 1, got {self.rnd_feature_dim}")
        check(self.rnd_coeff >= 0, "rnd_coeff", f"must be >= 0, got {self.rnd_coeff}")


class ExPLORe(RLPD):
    name: ClassVar[str] = "explore"
    summary: ClassVar[str] = "RLPD with prior data labeled by a reward model plus an RND novelty bonus"
    paper: ClassVar[str] = "Li et al. 2023 (ExPLORe)"
    reference: ClassVar[str] = "facebookresearch/ExPLORe"
    Config: ClassVar[type] = ExPLOReConfig
    needs_prior: ClassVar[bool] = True
    PUBLISHED: ClassVar[dict] = {**RLPD.PUBLISHED, "num_min_critics": 1, "backup_entropy": False}
    METRICS: ClassVar[tuple] = RLPD.METRICS + ("reward_model/loss", "mask_model/loss", "rnd/loss")

    def __init__(self, cfg: ExPLOReConfig, obs_dim: int, action_dim: int, behaviour=None):
        super().__init__(cfg, obs_dim, action_dim, behaviour=behaviour)
        in_dim, hidden = obs_dim + action_dim, cfg.model_hidden_dims
        self.reward_model = MLP(in_dim, hidden, out_dim=1, activation="relu")
        self.mask_model = MLP(in_dim, hidden, out_dim=1, activation="relu")
        self.rnd = MLP(in_dim, hidden, out_dim=cfg.rnd_feature_dim, activation="relu")
        self.rnd_target = MLP(in_dim, hidden, out_dim=cfg.rnd_feature_dim, activation="relu").requires_grad_(False)
        self.reward_optimizer = adam(self.reward_model.parameters(), cfg.lr)
        self.mask_optimizer = adam(self.mask_model.parameters(), cfg.lr)
        self.rnd_optimizer = adam(self.rnd.parameters(), cfg.lr)

    def optimizers(self):
        return {**super().optimizers(), "reward_model": self.reward_optimizer, "mask_model": self.mask_optimizer,
                "rnd": self.rnd_optimizer}

    # ------------------------------------------------------------ losses
    def reward_model_loss(self, batch):
        x = torch.cat([batch["observations"], batch["actions"]], -1)
        loss = (self.reward_model(x).squeeze(-1) - batch["rewards"]).pow(2).mean()
        return loss, {"reward_model/loss": loss.detach()}

    def mask_model_loss(self, batch):
        x = torch.cat([batch["observations"], batch["actions"]], -1)
        loss = F.binary_cross_entropy_with_logits(self.mask_model(x).squeeze(-1), batch["masks"])
        return loss, {"mask_model/loss": loss.detach()}

    def novelty(self, observations, actions):
        """RND's bonus per row: mean squared distance of the predictor from the random features."""
        x = torch.cat([observations, actions], -1)
        return (self.rnd(x) - self.rnd_target(x)).pow(2).mean(-1)

    def rnd_loss(self, batch):
        loss = self.novelty(batch["observations"], batch["actions"]).mean()
        return loss, {"rnd/loss": loss.detach()}

    # ------------------------------------------------------------ per environment step
    def observe(self, steps_done, transition, sample_online):
        cfg = self.cfg
        if steps_done < 2 * cfg.start_training:
            return {}
        info = {}
        batch = sample_online(cfg.utd * cfg.batch_size)
        for i in range(cfg.utd):
            mini = {k: v[i * cfg.batch_size:(i + 1) * cfg.batch_size] for k, v in batch.items()}
            loss, r_info = self.reward_model_loss(mini)
            _step(self.reward_optimizer, loss)
            loss, m_info = self.mask_model_loss(mini)
            _step(self.mask_optimizer, loss)
        # One predictor step per new transition (SUPE passes a skill's re-labeled windows with it).
        for i in range(len(transition["rewards"])):
            loss, rnd_info = self.rnd_loss({k: v[i:i + 1] for k, v in transition.items()})
            _step(self.rnd_optimizer, loss)
        for part in (r_info, m_info, rnd_info):
            info.update({k: float(v) for k, v in part.items()})
        return info

    @torch.no_grad()
    def label_prior(self, prior):
        x = torch.cat([prior["observations"], prior["actions"]], -1)
        bonus = self.novelty(prior["observations"], prior["actions"])
        prior["rewards"] = self.reward_model(x).squeeze(-1) + self.cfg.rnd_coeff * bonus
        prior["masks"] = torch.sigmoid(self.mask_model(x).squeeze(-1))
        return prior
