"""Inverse-dynamics pretraining: an encoder trained so that a_t can be read off (f(o_t), f(o_t+1)).

Brandfonbrener et al. 2023, "Inverse Dynamics Pretraining Learns Good Representations for
Multitask Imitation": for each transition an MLP head reads the two embeddings and regresses the
action; the encoder is what is kept. Loss: mean squared error of the predicted action. Needs
actions (on a partly labeled file, its labeled transitions). Departures: one MLP head of 2x512
(GELU, LayerNorm) and squared error throughout (the paper's heads and losses vary by
environment).
"""

from dataclasses import dataclass

import torch

from autodidact.core.config import opt
from autodidact.methods.objective import EncoderObjective, ObjectiveConfig


@dataclass
class IDMConfig(ObjectiveConfig):
    head_dims: tuple[int, ...] = opt((512, 512), "hidden widths of the action head reading [f(o_t), f(o_t+1)]")


class IDM(EncoderObjective):
    name = "idm"
    summary = "predict a_t from the embeddings of o_t and o_t+1"
    paper = "Brandfonbrener et al. 2023"
    Config = IDMConfig
    data = "windows"
    needs_actions = True
    window = 1  # one transition: o_t, a_t and o_t+1

    def __init__(self, cfg: IDMConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.action_head = self.head(2 * self.embed_dim, cfg.head_dims, action_dim)
        self.optimizer = self.make_optimizer(self.parameters())

    def loss(self, batch):
        z = self.window_embeddings(batch)                          # [B, 2, d]
        predicted = self.action_head(z.flatten(1))
        loss = (predicted - batch["actions"][:, 0]).pow(2).mean()
        return loss, {"idm/loss": loss.detach(), **self.encoder_info(z[:, 0])}
